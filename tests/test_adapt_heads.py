"""Adapter heads: source heads copied as a chain, new heads warned about and seeded, labels checked
against the head actually built, a missing class warned about, plain-Keras files, AdaBN's rows."""

import os
import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest

from shiftkit.adapt import (
    BatchNormAdapter,
    CopyAdapter,
    FineTuneAdapter,
    LabelShiftAdapter,
    MMDAdapter,
    load_adapter,
)

L = keras.layers
_CENTERS = np.random.default_rng(123).normal(0, 2.0, size=(3, 8))


def _blobs(n, seed, shift=0.0):
    r = np.random.default_rng(seed)
    y = r.integers(0, 3, n)
    return (_CENTERS[y] + r.normal(size=(n, 8)) + shift).astype("float32"), y


def _source(tail, seed=0, epochs=15):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8,)), L.Dense(16, activation="relu", name="hidden"), *tail])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = _blobs(300, 0)
    model.fit(x, y, epochs=epochs, verbose=0)
    return model


TAILS = {
    "temperature": lambda: [L.Dense(3, name="logits"), L.Rescaling(0.5), L.Softmax()],
    "batch_norm": lambda: [L.Dense(3, name="logits"), L.BatchNormalization(), L.Softmax()],
    "relu_then_softmax": lambda: [L.Dense(3, activation="relu", name="logits"), L.Softmax()],
}


def _shiftkit_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


# ------------------------------------------------------------------ defect 1: the source head copied as a chain
@pytest.mark.parametrize("kind", sorted(TAILS))
def test_a_head_chain_is_copied_so_the_untrained_target_model_is_the_source(kind, tmp_path):
    src = _source(TAILS[kind]())
    x, y = _blobs(60, 1, shift=0.5)
    expected = src.predict(x, verbose=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        copy = CopyAdapter(src).fit(x, y, epochs=0, verbose=0)
    assert copy.head_initialised_from_source_
    assert not [m for m in _shiftkit_warnings(record) if "random" in m]
    np.testing.assert_allclose(copy.predict(x), expected, rtol=1e-5, atol=1e-6)
    assert copy.features(x).shape == (60, 16)  # the input of the last Dense layer, not the logits
    assert copy.feature_name_ == "input of logits"
    # the other adapters start from the same copied head
    mmd = MMDAdapter(src, learning_rate=1e-12).fit(x_source=x, y_source=y, x_target=x, epochs=1, verbose=0, seed=0)
    assert mmd.head_initialised_from_source_
    np.testing.assert_allclose(mmd.predict(x), expected, rtol=1e-4, atol=1e-5)
    # a copied chain trains (its Dense at least) and survives the safe_mode round trip
    trained = CopyAdapter(src).fit(x, y, epochs=2, verbose=0)
    path = trained.save(tmp_path / "chain.keras")
    loaded = load_adapter(path)
    np.testing.assert_allclose(loaded.predict(x), trained.predict(x), rtol=1e-5, atol=1e-6)
    plain = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(plain.predict(x, verbose=0), trained.predict(x), rtol=1e-5, atol=1e-6)


def test_a_batch_norm_in_the_copied_head_stays_in_inference_mode():
    src = _source(TAILS["batch_norm"]())
    x, y = _blobs(64, 1, shift=0.5)
    adapter = CopyAdapter(src).fit(x, y, epochs=1, learning_rate=1e-12, verbose=0)
    bn = [w for w in src.layers[2].weights if "moving" in w.path]
    copied = [layer.inner for layer in adapter.head_.layers if isinstance(getattr(layer, "inner", None),
                                                                           L.BatchNormalization)][0]
    for a, b in zip(bn, [w for w in copied.weights if "moving" in w.path]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_head_that_cannot_be_copied_warns_naming_the_layers():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8,))
    h = L.Dense(16, activation="relu", name="hidden")(inp)
    out = L.Softmax()(L.Multiply(name="times_two")([L.Dense(3, name="logits")(h), L.Dense(3, name="gate")(h)]))
    src = keras.Model(inp, out)
    x, y = _blobs(40, 1)
    with pytest.warns(UserWarning, match=r"(?s)cannot be copied.*times_two.*random.*head_init='random'"):
        adapter = CopyAdapter(src).fit(x, y, epochs=0, verbose=0)
    assert not adapter.head_initialised_from_source_
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for a new head: no warning
        CopyAdapter(src, head_init="random").fit(x, y, epochs=0, verbose=0)


def test_plain_dense_heads_are_built_as_before():
    src = _source([L.Dense(3, activation="softmax", name="out")])
    x, y = _blobs(40, 1)
    adapter = CopyAdapter(src).fit(x, y, epochs=0, verbose=0)
    assert isinstance(adapter.head_, L.Dense) and adapter.head_.name == "head"
    assert adapter.feature_name_ == "input of out"


# ------------------------------------------------------------------ defect 2: n_outputs=1 on a softmax source
def test_one_output_on_a_softmax_source_is_a_sigmoid_unit():
    src = _source([L.Dense(3, activation="softmax")])
    x, y = _blobs(120, 1)
    yb = (y > 0).astype(int)
    adapter = CopyAdapter(src, n_outputs=1).fit(x, yb, epochs=30, verbose=0)
    assert adapter.head_.get_config()["activation"] == "sigmoid"
    p = adapter.predict(x)
    assert p.shape == (120, 1) and len(np.unique(p.round(4))) > 2
    assert adapter.evaluate(x, yb)["accuracy"] > 0.8
    with pytest.raises(ValueError, match="single softmax unit"):
        CopyAdapter(src, head=L.Dense(1, activation="softmax")).fit(x, yb, epochs=1, verbose=0)


# ------------------------------------------------------------------ defect 3: a class without target labels
def test_a_class_missing_from_the_target_labels_warns_and_keeps_its_source_row():
    src = _source([L.Dense(3, activation="softmax")], epochs=20)
    xt, yt = _blobs(300, 1, shift=1.0)
    idx = np.concatenate([np.flatnonzero(yt == 0)[:5], np.flatnonzero(yt == 1)[:5]])
    with pytest.warns(UserWarning, match=r"(?s)no label of class\(es\) \[2\].*unlearn"):
        copy = CopyAdapter(src).fit(xt[idx], yt[idx], verbose=0)
    assert copy.unlabelled_classes_ == [2]
    recall = float(np.mean(copy.predict_classes(xt)[yt == 2] == 2))
    source_recall = float(np.mean(src.predict(xt, verbose=0).argmax(1)[yt == 2] == 2))
    assert recall >= source_recall - 0.1, (recall, source_recall)


# ------------------------------------------------------------------ defect 4: labels against the head built
def test_labels_are_checked_against_the_head_built():
    src = _source([L.Dense(3, activation="softmax")], epochs=2)
    x, y = _blobs(40, 1)
    with pytest.raises(ValueError, match=r"y_target has label 2.*head has 2 output"):
        CopyAdapter(src, n_outputs=2).fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y_target has label 2.*head has 2 output"):
        CopyAdapter(src, head=L.Dense(2, activation="softmax")).fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"y_target has label 2.*head has 2 output"):
        FineTuneAdapter(src, n_outputs=2).fit(x, y, epochs=1, verbose=0)
    # a wider head takes labels the source's outputs do not have
    wide = CopyAdapter(src, n_outputs=4).fit(x, np.where(y == 2, 3, y), epochs=1, verbose=0)
    assert wide.predict(x).shape == (40, 4)


# ------------------------------------------------------------------ defect 5: a new head is seeded
@pytest.mark.parametrize("cls", [CopyAdapter, FineTuneAdapter])
def test_a_new_head_is_seeded(cls):
    src = _source([L.Dense(3, activation="softmax")], epochs=2)
    x, y = _blobs(30, 1)
    kw = {"head_epochs": 2} if cls is FineTuneAdapter else {}
    runs = [cls(src, head_init="random", **kw).fit(x, y, epochs=2, seed=0, verbose=0).predict(x) for _ in range(2)]
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5, atol=1e-6)
    other = cls(src, head_init="random", **kw).fit(x, y, epochs=2, seed=1, verbose=0).predict(x)
    assert not np.allclose(runs[0], other)


@pytest.mark.parametrize("cls", [CopyAdapter, FineTuneAdapter])
def test_a_source_started_head_repeats_with_one_seed_without_the_global_seed(cls):
    """The default path (the head copied from the source): `fit(seed=)` alone fixes the training batches'
    shuffle, so two fits in one process agree without `keras.utils.set_random_seed` (they did not)."""
    src = _source([L.Dense(3, activation="softmax")], epochs=2)
    x, y = _blobs(60, 1, shift=0.7)
    kw = {"head_epochs": 3} if cls is FineTuneAdapter else {}

    def weights(seed):
        adapter = cls(src, **kw).fit(x, y, epochs=3, seed=seed, verbose=0)
        assert adapter.head_initialised_from_source_
        return np.concatenate([w.ravel() for w in adapter.model_.get_weights()])

    first, second = weights(0), weights(0)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, weights(1))


# ------------------------------------------------------------------ defect 6: a saved file is a plain Keras model
def test_a_saved_adapter_loads_in_plain_keras_without_shiftkit(tmp_path):
    src = _source([L.Dense(3, activation="softmax")], epochs=2)
    x, y = _blobs(30, 1)
    adapter = CopyAdapter(src).fit(x, y, epochs=1, verbose=0)
    path = adapter.save(tmp_path / "a.keras")
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(
        f"""
        import sys, numpy as np, keras
        m = keras.saving.load_model({str(path)!r}, safe_mode=True)
        np.save({str(tmp_path / "p.npy")!r}, m.predict(np.load({str(tmp_path / "x.npy")!r}), verbose=0))
        assert "shiftkit" not in sys.modules
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), adapter.predict(x), rtol=1e-5, atol=1e-6)
    # the adapter itself still loads, with its base
    loaded = load_adapter(path)
    np.testing.assert_allclose(loaded.features(x), adapter.features(x), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ defect 7: AdaBN on a handful of rows
def test_adabn_on_a_handful_of_rows_warns():
    src = _source([L.BatchNormalization(), L.Dense(3, activation="softmax")], epochs=2)
    x, _ = _blobs(40, 1)
    with pytest.warns(UserWarning, match=r"(?s)3 target rows.*BatchNormalization statistics"):
        BatchNormAdapter(src).fit(x_target=x[:3], verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BatchNormAdapter(src).fit(x_target=x, verbose=0)


# ------------------------------------------------------------------ defects 8 and 9: messages
def test_label_messages_speak_of_labels_and_outputs():
    src = _source([L.Dense(3, activation="softmax")], epochs=1)
    x, y = _blobs(30, 1)
    with pytest.raises(ValueError, match=r"y_target has label 3.*outputs.*coded 1\.\.3.*subtract 1") as err:
        CopyAdapter(src).fit(x, y + 1, epochs=1, verbose=0)
    assert "n_classes" not in str(err.value)
    with pytest.raises(TypeError, match=r"y_target holds text labels.*index.*output") as err:
        CopyAdapter(src).fit(x, np.array(list("abc"))[y], epochs=1, verbose=0)
    assert "measuring shift" not in str(err.value)


def test_subclassed_models_are_refused_with_how_to_wrap_them():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.h, self.o = L.Dense(4, activation="relu"), L.Dense(3, activation="softmax")

        def call(self, t):
            return self.o(self.h(t))

    net = Net()
    net(np.zeros((1, 8), "float32"))
    with pytest.raises(ValueError, match=r"(?s)subclassed keras.Model.*not supported.*keras.Input"):
        CopyAdapter(net)


def test_target_priors_by_class_value():
    src = _source([L.Dense(3, activation="softmax")], epochs=2)
    x, y = _blobs(200, 0)
    by_dict = LabelShiftAdapter(src, target_priors={0: 0.8, 1: 0.1, 2: 0.1}).fit(x_source=x, y_source=y, verbose=0)
    by_list = LabelShiftAdapter(src, target_priors=[0.8, 0.1, 0.1]).fit(x_source=x, y_source=y, verbose=0)
    np.testing.assert_allclose(by_dict.predict(x), by_list.predict(x), rtol=1e-6)
    with pytest.raises(ValueError, match=r"target_priors.*class 5.*0\.\.2"):
        LabelShiftAdapter(src, target_priors={0: 0.5, 5: 0.5}).fit(x_source=x, y_source=y, verbose=0)


def test_saving_into_a_missing_folder_and_unknown_class_weights(tmp_path):
    src = _source([L.Dense(3, activation="softmax")], epochs=1)
    x, y = _blobs(30, 1)
    adapter = CopyAdapter(src).fit(x, y, epochs=1, verbose=0)
    missing = tmp_path / "no_such_dir" / "a.keras"
    with pytest.raises(ValueError, match=r"folder .*no_such_dir.* does not exist"):
        adapter.save(missing)
    with pytest.raises(ValueError, match=r"class_weight has class\(es\) \[7\].*0\.\.2"):
        CopyAdapter(src).fit(x, y, epochs=1, class_weight={7: 1.0}, verbose=0)


def test_multi_input_models_are_refused_at_construction():
    a, b = keras.Input((4,)), keras.Input((4,))
    two = keras.Model([a, b], L.Dense(3, activation="softmax")(L.Concatenate()([a, b])))
    with pytest.raises(ValueError, match="takes 2 inputs"):
        CopyAdapter(two)


# ------------------------------------------------------------------ one default feature space for reports and adapters
@pytest.mark.parametrize("kind", sorted(TAILS))
def test_reports_read_the_same_default_features_as_the_adapters(kind):
    """A temperature-scaled (Dense -> Rescaling -> Softmax) or BN-of-logits classifier: the report's and the
    training monitor's default feature space was the logits (the input of the weighted tail layer) while
    the adapters used the features (the last Dense layer's input). One rule now serves both."""
    from shiftkit import shift_report
    from shiftkit.callbacks import ShiftMonitor
    from shiftkit.shift.features import FeatureSpace

    src = _source(TAILS[kind]())
    x, y = _blobs(60, 1, shift=0.5)
    fs = FeatureSpace(src)
    assert fs.layer_name == "input of logits"
    copy = CopyAdapter(src).fit(x, y, epochs=0, verbose=0)
    np.testing.assert_allclose(fs(x), copy.features(x), rtol=1e-5, atol=1e-6)
    assert fs(x).shape == (60, 16)
    report = shift_report(x[:30], x[30:], model=src, n_permutations=20, seed=0)
    assert report.layer == "input of logits"
    monitor = ShiftMonitor(x[:30], x[30:], max_samples=30, seed=0)
    monitor.set_model(src)
    f_source, _ = monitor.features()
    np.testing.assert_allclose(f_source, fs(x[:30]), rtol=1e-5, atol=1e-6)
