"""Adapter base and CopyAdapter: weights copied not shared, only the head trains, backbones, persistence."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from shiftkit.adapt import CopyAdapter, NotFittedError, build_target_model, load_adapter


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def _mlp(n_in=6, n_classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(16, activation="relu", name="h1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(8, activation="relu", name="h2"),
            keras.layers.Dense(n_classes, activation="softmax", name="out"),
        ],
        name="mlp",
    )


def _data(n=300, n_in=6, n_classes=3, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    centers = np.random.default_rng(99).normal(scale=2.0, size=(n_classes, n_in))
    x = centers[y] + rng.normal(size=(n, n_in)) + shift
    return x.astype("float32"), y


@pytest.fixture(scope="module")
def source():
    model = _mlp()
    x, y = _data()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, verbose=0)
    return model


def test_source_untouched_and_only_head_trains(source):
    before = _weights(source)
    xt, yt = _data(120, shift=1.0, seed=1)
    adapter = CopyAdapter(source).fit(xt, yt, epochs=5, verbose=0)
    assert _same(before, _weights(source)), "source weights changed"
    # only the new head's kernel and bias are trainable
    trainable = adapter.model.trainable_weights
    assert [tuple(w.shape) for w in trainable] == [(8, 3), (3,)]
    # the frozen base still equals the source layers, bit for bit
    src_base = keras.Model(source.inputs, source.get_layer("h2").output)
    assert _same(_weights(src_base), _weights(adapter.base_model))
    # and the base's BatchNorm statistics did not move during head training
    np.testing.assert_array_equal(
        adapter.base_model.get_layer("bn").moving_mean, source.get_layer("bn").moving_mean
    )
    # weights are copies, not shared variables
    assert adapter.base_model.get_layer("h1").kernel is not source.get_layer("h1").kernel


def test_copy_adapter_learns_on_target(source):
    xt, yt = _data(300, shift=2.5, seed=2)
    src_acc = float(np.mean(source.predict(xt, verbose=0).argmax(1) == yt))
    adapter = CopyAdapter(source).fit(xt[:200], yt[:200], epochs=60, learning_rate=1e-2, verbose=0)
    acc = adapter.evaluate(xt[200:], yt[200:])["accuracy"]
    assert acc > src_acc + 0.1, (src_acc, acc)
    assert adapter.features(xt).shape == (300, 8)
    assert adapter.predict(xt).shape == (300, 3)


def test_feature_layer_choice_and_new_head(source):
    xt, yt = _data(60, seed=3)
    a = CopyAdapter(source, feature_layer="h1", n_outputs=5).fit(xt, yt, epochs=1, verbose=0)
    assert a.features(xt).shape == (60, 16)
    assert a.predict(xt).shape == (60, 5)
    head = keras.layers.Dense(3, activation="softmax", name="my_head")
    b = CopyAdapter(source, head=head).fit(xt, yt, epochs=1, verbose=0)
    assert b.model.layers[-1].name == "my_head"


def test_save_load_round_trip(source, tmp_path):
    xt, yt = _data(80, seed=4)
    a = CopyAdapter(source).fit(xt, yt, epochs=2, verbose=0)
    path = a.save(tmp_path / "copy.keras")
    b = load_adapter(path)
    assert isinstance(b, CopyAdapter)
    np.testing.assert_array_equal(a.predict(xt), b.predict(xt))
    np.testing.assert_array_equal(a.features(xt), b.features(xt))
    plain = keras.saving.load_model(path, safe_mode=True)  # still a plain Keras file
    np.testing.assert_array_equal(plain.predict(xt, verbose=0), a.predict(xt))


def test_class_weight_balanced(source):
    xt, yt = _data(200, seed=5)
    keep = (yt != 0) | (np.arange(200) < 20)  # class 0 rare
    a = CopyAdapter(source).fit(xt[keep], yt[keep], epochs=1, class_weight="balanced", verbose=0)
    assert a.history["loss"]


def test_before_after_shift_report(source):
    xs, ys = _data(150, seed=6)
    xt, yt = _data(150, shift=1.5, seed=7)
    a = CopyAdapter(source).fit(xt, yt, epochs=20, learning_rate=1e-2, verbose=0)
    rep = a.shift_report(xs, xt, ys, yt, n_permutations=100, seed=0)
    assert rep.before.feature_test is not None and rep.after.feature_test is not None
    assert rep.accuracy_before is not None and rep.accuracy_after is not None
    # a frozen copy has the same features as the source: the feature-space figures agree
    assert rep.after.feature_test.statistic == pytest.approx(rep.before.feature_test.statistic, rel=1e-5)
    assert str(rep).count("target accuracy") == 1  # once, from compare() or from the adapter


def _cnn(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(4, activation="softmax", name="out")(h)
    return keras.Model(inp, out, name="cnn")


def _rnn(kind, seed=0):
    keras.utils.set_random_seed(seed)
    cell = keras.layers.GRU if kind == "gru" else keras.layers.LSTM
    return keras.Sequential(
        [keras.Input((10, 3)), cell(8, name="rnn"), keras.layers.Dense(4, activation="softmax", name="out")]
    )


def _mobilenet(seed=0, weights=None):
    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=weights, pooling="avg", include_preprocessing=False
    )
    inp = keras.Input((32, 32, 3))
    out = keras.layers.Dense(4, activation="softmax", name="out")(base(inp))
    return keras.Model(inp, out, name="mobilenet_classifier"), base


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: _cnn(), (8, 8, 1)),
        (lambda: _rnn("gru"), (10, 3)),
        (lambda: _rnn("lstm"), (10, 3)),
        pytest.param(lambda: _mobilenet()[0], (32, 32, 3), marks=pytest.mark.slow),
    ],
    ids=["functional_cnn", "gru", "lstm", "mobilenetv3small"],
)
def test_backbones_adapt(make, shape):
    model = make()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, *shape)).astype("float32")
    y = rng.integers(0, 4, size=64)
    before = _weights(model)
    a = CopyAdapter(model).fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert _same(before, _weights(model))
    assert a.predict(x).shape == (64, 4)
    assert a.features(x).shape[0] == 64
    assert len(a.model.trainable_weights) == 2


def test_backbone_from_users_weights_file(tmp_path):
    model, base = _mobilenet(seed=1)
    path = str(tmp_path / "backbone.weights.h5")
    base.save_weights(path)
    _, reloaded = _mobilenet(seed=2, weights=path)  # keras.applications with a local weights file
    assert _same(_weights(base), _weights(reloaded))


@pytest.mark.slow
def test_runs_under_mirrored_strategy():
    """Training happens inside an active tf.distribute strategy (two logical CPU devices)."""
    code = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from shiftkit.adapt import CopyAdapter
        src = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                                keras.layers.Dense(2, activation="softmax")])
        x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            a = CopyAdapter(src).fit(x, y, epochs=2, batch_size=16, verbose=0)
        var = a.model.trainable_weights[0]
        print("REPLICAS", strategy.num_replicas_in_sync, type(var.value).__name__)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "REPLICAS 2" in done.stdout and "Mirrored" in done.stdout, done.stdout


def test_errors(source, tmp_path):
    xt, yt = _data(30, seed=8)
    with pytest.raises(ValueError, match=r"layer must name a layer.*'dense_9'.*h1"):
        CopyAdapter(source, feature_layer="dense_9")
    with pytest.raises(TypeError, match="source_model must be a keras.Model"):
        CopyAdapter("model.keras")
    a = CopyAdapter(source)
    with pytest.raises(NotFittedError, match="not fitted yet. Call fit"):
        a.predict(xt)
    with pytest.raises(ValueError, match="x_target has 5 features, but the model expects 6"):
        a.fit(xt[:, :5], yt)
    with pytest.raises(ValueError, match=r"y_target has label 3, but the target model's head has 3 output"):
        a.fit(xt, np.full(30, 3))
    with pytest.raises(ValueError, match="y_target has 29 labels but there are 30 samples"):
        a.fit(xt, yt[:29])
    with pytest.raises(ValueError, match="NaN"):
        a.fit(np.full_like(xt, np.nan), yt)
    with pytest.raises(ValueError, match="class_weight must be None, a dict or 'balanced'"):
        a.fit(xt, yt, class_weight="auto", verbose=0)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a shiftkit adapter file"):
        load_adapter(bad)
    with pytest.raises(ValueError, match="No adapter file"):
        load_adapter(tmp_path / "missing.keras")


def test_build_target_model_copies_weights(source):
    model, base, head, name = build_target_model(source, feature_layer="h2")
    assert name == "h2" and head.units == 3
    assert _same(_weights(base), _weights(keras.Model(source.inputs, source.get_layer("h2").output)))


def test_adapted_normalization_survives_the_copy():
    """A Normalization layer set up with adapt() computes the same in the copy (regression)."""
    from shiftkit.adapt import FineTuneAdapter, LabelShiftAdapter, MMDAdapter

    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 10.0, size=(200, 3)).astype("float32")
    y = (x[:, 0] > 5).astype(int)
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(x)
    src = keras.Sequential([keras.Input((3,)), norm, keras.layers.Dense(4, activation="relu", name="h"),
                            keras.layers.Dense(2, activation="softmax", name="out")])
    reference = keras.Model(src.inputs, src.get_layer("h").output).predict(x, verbose=0)
    model, base, _, _ = build_target_model(src)
    np.testing.assert_allclose(base.predict(x, verbose=0), reference, rtol=1e-5, atol=1e-5)
    ls = LabelShiftAdapter(src).fit(x[:100], y[:100], x[100:])
    np.testing.assert_allclose(ls.features(x), reference, rtol=1e-5, atol=1e-5)
    for adapter in (CopyAdapter(src), FineTuneAdapter(src, head_epochs=1)):
        adapter.fit(x, y, epochs=0 if isinstance(adapter, FineTuneAdapter) else 1, verbose=0)
        np.testing.assert_allclose(adapter.features(x), reference, rtol=1e-5, atol=1e-5)
    mmd = MMDAdapter(src, mmd_weight=0.0).fit(x, y, x, epochs=1, learning_rate=1e-9, verbose=0)
    np.testing.assert_allclose(mmd.features(x), reference, rtol=1e-3, atol=1e-3)


def test_loaded_adapter_needs_its_source_for_before_figures(source, tmp_path):
    xs, ys = _data(60, seed=10)
    xt, yt = _data(60, shift=1.0, seed=11)
    path = CopyAdapter(source).fit(xt, yt, epochs=1, verbose=0).save(tmp_path / "a.keras")
    with pytest.raises(ValueError, match="loaded without its source model"):
        load_adapter(path).shift_report(xs, xt, n_permutations=20, seed=0)
    rep = load_adapter(path, source_model=source).shift_report(xs, xt, ys, yt, n_permutations=20, seed=0)
    assert rep.accuracy_before == pytest.approx(float(np.mean(source.predict(xt, verbose=0).argmax(1) == yt)))


# ------------------------------------------------------------------------------ the head starts from the source


def _heads(kind, seed=0):
    """A 6 -> 8 -> 3 classifier whose output step is written in one of the ways users write it."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="relu", name="h")(inp)
    if kind == "softmax":
        out = keras.layers.Dense(3, activation="softmax", name="out")(h)
    elif kind == "logits":
        out = keras.layers.Dense(3, name="out")(h)
    elif kind == "activation":  # the mixed-precision pattern
        out = keras.layers.Activation("softmax", dtype="float32")(keras.layers.Dense(3, name="out")(h))
    elif kind == "softmax_layer":
        out = keras.layers.Softmax()(keras.layers.Dropout(0.2)(keras.layers.Dense(3, name="out")(h)))
    else:  # one sigmoid unit
        out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    return keras.Model(inp, out, name=f"model_{kind}")


@pytest.mark.parametrize("kind", ["softmax", "logits", "activation", "softmax_layer", "sigmoid"])
def test_untrained_adapters_are_the_source_model(kind):
    """The new head starts from the source head's weights: no training (or a negligible rate) = the source."""
    from shiftkit.adapt import FineTuneAdapter

    model = _heads(kind)
    x, y = _data(40, seed=12)
    y = y % (2 if kind == "sigmoid" else 3)
    expected = model.predict(x, verbose=0)
    copy = CopyAdapter(model).fit(x, y, epochs=0, verbose=0)
    assert copy.head_initialised_from_source_ and copy.feature_name_ == "input of out"
    np.testing.assert_allclose(copy.predict(x), expected, rtol=1e-5, atol=1e-6)
    tiny = CopyAdapter(model).fit(x, y, epochs=2, learning_rate=1e-12, verbose=0)
    np.testing.assert_allclose(tiny.predict(x), expected, rtol=1e-5, atol=1e-6)
    ft = FineTuneAdapter(model, head_epochs=0).fit(x, y, epochs=0, verbose=0)
    np.testing.assert_allclose(ft.predict(x), expected, rtol=1e-5, atol=1e-6)
    # the features are the head's input (8 units), not the logits
    assert copy.features(x).shape == (40, 8)


def test_a_head_that_cannot_come_from_the_source_is_new():
    model = _heads("softmax")
    x, y = _data(40, seed=13)
    for adapter in (CopyAdapter(model, n_outputs=5), CopyAdapter(_mlp(), feature_layer="h1"),
                    CopyAdapter(model, head_init="random")):
        adapter.fit(x, y, epochs=0, verbose=0)
        assert not adapter.head_initialised_from_source_
    # feature_layer naming the layer whose output *is* the head's input: the source head fits
    same = CopyAdapter(model, feature_layer="h").fit(x, y, epochs=0, verbose=0)
    assert same.head_initialised_from_source_
    other = CopyAdapter(model, n_outputs=5).fit(x, y, epochs=0, verbose=0)
    assert other.predict(x).shape == (40, 5)
    with pytest.raises(ValueError, match="head_init must be 'source'"):
        CopyAdapter(model, head_init="zeros")


# ------------------------------------------------------------------------------ epochs=None and early stopping


def test_holdout_split_is_stratified_and_seeded():
    from shiftkit.adapt.training import holdout_split

    y = np.repeat(np.arange(4), 10)
    tr, va = holdout_split(y, 0.2, seed=0)
    assert np.bincount(y[va]).tolist() == [2, 2, 2, 2] and len(tr) == 32
    assert set(tr).isdisjoint(va) and len(set(tr) | set(va)) == 40
    tr2, va2 = holdout_split(y, 0.2, seed=0)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, holdout_split(y, 0.2, seed=1)[1])
    # a class with one sample stays in training; too few to hold out anything -> None
    tr, va = holdout_split(np.array([0, 0, 0, 1, 1, 1, 2]), 0.2, seed=0)
    assert 6 not in va and len(va) == 2
    assert holdout_split(np.array([0, 1, 2]), 0.2, seed=0) is None
    with pytest.raises(ValueError, match="validation_split"):
        holdout_split(y, 1.5)


@pytest.mark.slow
def test_never_worse_than_the_start_on_validation_data(source):
    """Training labels that contradict the validation labels: every epoch makes the validation loss worse,
    so the kept weights are the starting ones, the source model itself."""
    xv, yv = _data(90, seed=14)
    xt, yt = _data(60, seed=15)
    wrong = (yt + 1) % 3
    a = CopyAdapter(source, patience=3).fit(xt, wrong, validation_data=(xv, yv), learning_rate=3e-2, verbose=0)
    assert a.validation_mode_ == "given" and a.epochs_ == {1: 0} and a.best_epoch_ is None
    assert 1 <= len(a.history["loss"]) <= 10  # stopped early (patience 3 after the first epochs)
    np.testing.assert_allclose(a.predict(xv), source.predict(xv, verbose=0), rtol=1e-5, atol=1e-6)
    # with a rate that learns the (right) labels the start is beaten and kept weights have the lowest loss
    b = CopyAdapter(source, patience=3).fit(xt, yt, validation_data=(xv, yv), verbose=0)
    final = b.model.evaluate(xv, yv, verbose=0, return_dict=True)["loss"]
    # the kept epoch is the last that lowered the loss by more than MIN_DELTA
    from shiftkit.adapt.training import MIN_DELTA

    assert b.epochs_[1] >= 1 and final == pytest.approx(b.history["val_loss"][b.epochs_[1] - 1], rel=1e-5)
    assert final <= min(b.history["val_loss"]) + MIN_DELTA


@pytest.mark.slow
def test_epochs_none_holds_out_stops_and_refits(source):
    xt, yt = _data(60, shift=2.0, seed=16)
    xte, yte = _data(300, shift=2.0, seed=17)
    a = CopyAdapter(source, patience=5).fit(xt, yt, verbose=0)
    h = a.history
    assert a.validation_mode_ == "holdout+refit"
    from shiftkit.adapt.training import VALIDATION_SPLIT, holdout_split

    assert np.bincount(yt[a.held_out_], minlength=3).min() >= 1
    np.testing.assert_array_equal(a.held_out_, holdout_split(yt, VALIDATION_SPLIT, seed=0)[1])
    n_select, n_refit = h["phase"].count("select"), h["phase"].count("refit")
    assert n_select < 300 and n_refit == a.epochs_[1] >= 1  # stopped, then trained again on all labels
    assert all(np.isfinite(h["val_loss"][:n_select])) and all(np.isnan(h["val_loss"][n_select:]))
    src_acc = float(np.mean(source.predict(xte, verbose=0).argmax(1) == yte))
    assert a.evaluate(xte, yte)["accuracy"] > src_acc + 0.1
    # without refit: the selected weights, never worse than the source on the held-out part
    b = CopyAdapter(source, patience=5).fit(xt, yt, refit=False, verbose=0)
    assert b.validation_mode_ == "holdout" and set(b.history["phase"]) == {"select"}
    held = b.held_out_
    loss_source = source.evaluate(xt[held], yt[held], verbose=0, return_dict=True)["loss"]
    assert b.model.evaluate(xt[held], yt[held], verbose=0, return_dict=True)["loss"] <= loss_source + 1e-6
    # the same seed holds out the same rows; explicit epochs train exactly that many on all labels
    assert np.array_equal(b.held_out_, held)
    c = CopyAdapter(source).fit(xt, yt, epochs=3, verbose=0)
    assert c.validation_mode_ == "fixed" and len(c.history["loss"]) == 3 and c.epochs_ == {1: 3}


def test_too_few_labels_to_hold_out_warns_and_trains_a_fixed_budget(source):
    from shiftkit.adapt.training import FALLBACK_EPOCHS

    xt, yt = _data(3, seed=18)
    yt = np.array([0, 1, 2])
    with pytest.warns(UserWarning, match="Too few labelled samples"):
        a = CopyAdapter(source).fit(xt, yt, verbose=0)
    assert a.validation_mode_ == "fixed" and len(a.history["loss"]) == FALLBACK_EPOCHS


def test_load_adapter_checks_the_archive_size_before_keras_reads_it(source, tmp_path):
    """A decompression bomb (a member that inflates far beyond the limit) fails before Keras opens it."""
    import zipfile

    xt, yt = _data(30, seed=19)
    path = CopyAdapter(source).fit(xt, yt, epochs=1, verbose=0).save(tmp_path / "bomb.keras")
    assert isinstance(load_adapter(path, max_bytes=50_000_000), CopyAdapter)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("padding.bin", b"\0" * 20_000_000)  # about 20 kB on disk
    with pytest.raises(ValueError, match="padding.bin"):
        load_adapter(path, max_bytes=10_000_000)


def test_base_runs_in_inference_mode_inside_fit():
    """Keras 3 passes an outer model's training flag into a nested functional model (keras-team/keras#20285):
    the adapters' base must still run with Dropout off while the head trains, as documented."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dropout(0.5, name="drop"), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax", name="out")])
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    from shiftkit.adapt.target_model import build_target_model

    target, base, _, _ = build_target_model(model)
    inference = np.asarray(target(x, training=False))
    np.testing.assert_allclose(np.asarray(target(x, training=True)), inference, atol=1e-6)
    np.testing.assert_allclose(inference, np.asarray(model(x, training=False)), atol=1e-6)
