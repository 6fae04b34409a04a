"""BatchNormAdapter: AdaBN target statistics and TENT entropy minimisation of the BN gamma/beta."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from shiftkit.adapt.base import load_adapter
from shiftkit.adapt.batch_norm import recalibrate_batch_norm
from shiftkit.adapt.registry import adapter_names, fit_data, get_adapter
from shiftkit.adapt.test_time import BatchNormAdapter, _batch_statistics_view, prediction_entropy


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def _bn_model(seed=0, *, dropout=0.0):
    """3 inputs -> BN -> Dense(8, relu) -> BN [-> Dropout] -> Dense(2, softmax)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    h = keras.layers.BatchNormalization(name="bn_in")(inputs)
    h = keras.layers.Dense(8, activation="relu", name="dense")(h)
    h = keras.layers.BatchNormalization(name="bn_mid")(h)
    if dropout:
        h = keras.layers.Dropout(dropout, name="drop")(h)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(h)
    return keras.Model(inputs, outputs, name="bn_model")


def _sample(n, *, target, seed):
    """2 Gaussian classes in 3-D; the target is 3 * source + 4 (a sensor recalibration)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3)) + 1.5 * y[:, None]
    if target:
        x = 3.0 * x + 4.0
    return x.astype("float32"), y


@pytest.fixture(scope="module")
def trained():
    model = _bn_model(dropout=0.3)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(*_sample(600, target=False, seed=0), epochs=15, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def target():
    return _sample(300, target=True, seed=1)


@pytest.fixture(scope="module")
def adabn(trained, target):
    before = _weights(trained)
    adapter = BatchNormAdapter(trained).fit(x_target=target[0])
    return adapter, before


@pytest.fixture(scope="module")
def tent(trained, target):
    return BatchNormAdapter(trained, tent=True).fit(x_target=target[0], epochs=5, verbose=0, seed=0)


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(1) == y))


# ---------------------------------------------------------------------------------- AdaBN
def test_adabn_sets_each_layer_to_the_target_statistics(adabn, trained, target):
    adapter, _ = adabn
    x = target[0]
    assert adapter.batch_norm_layers_ == ["bn_in", "bn_mid"]
    base = adapter.base_model
    bn_in, bn_mid = base.get_layer("bn_in"), base.get_layer("bn_mid")
    np.testing.assert_allclose(bn_in.moving_mean.numpy(), x.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn_in.moving_variance.numpy(), x.var(0), rtol=1e-4)
    # bn_mid sees the inputs normalised with the *target* statistics, through the dense layer
    normed = (x - x.mean(0)) / np.sqrt(x.var(0) + bn_in.epsilon) * bn_in.gamma.numpy() + bn_in.beta.numpy()
    dense = base.get_layer("dense")
    hidden = np.maximum(normed @ dense.kernel.numpy() + dense.bias.numpy(), 0.0)
    np.testing.assert_allclose(bn_mid.moving_mean.numpy(), hidden.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn_mid.moving_variance.numpy(), hidden.var(0), rtol=1e-3, atol=1e-5)
    # nothing else changed: gamma/beta, kernels and biases are the source's
    for name in ("bn_in", "bn_mid"):
        for attr in ("gamma", "beta"):
            assert np.array_equal(getattr(base.get_layer(name), attr).numpy(),
                                  getattr(trained.get_layer(name), attr).numpy())
    assert np.array_equal(dense.kernel.numpy(), trained.get_layer("dense").kernel.numpy())
    assert np.array_equal(adapter.head_.kernel.numpy(), trained.get_layer("out").kernel.numpy())
    assert adapter.history == {}


def test_source_model_stays_bit_identical(adabn, tent, trained):
    _, before = adabn
    assert _same(_weights(trained), before)
    assert adabn[0].base_model.get_layer("bn_in").moving_mean is not trained.get_layer("bn_in").moving_mean


def test_adabn_fixes_a_shift_that_bn_statistics_undo(adabn, trained):
    adapter, _ = adabn
    x_test, y_test = _sample(1000, target=True, seed=2)
    source = _accuracy(trained, x_test, y_test)
    adapted = adapter.evaluate(x_test, y_test)["accuracy"]
    assert adapted > source + 0.2, (source, adapted)
    assert adapted > 0.85, adapted
    e = adapter.target_entropy_
    assert set(e) == {"source", "adabn"} and all(np.isfinite(list(e.values())))


# ---------------------------------------------------------------------------------- TENT
def test_tent_lowers_entropy_and_changes_only_gamma_beta(adabn, tent, target):
    plain = adabn[0]
    assert tent.target_entropy_["tent"] < tent.target_entropy_["adabn"], tent.target_entropy_
    assert tent.target_entropy_["adabn"] == pytest.approx(plain.target_entropy_["adabn"], rel=1e-6)
    assert list(tent.history) == ["entropy"] and len(tent.history["entropy"]) == 5
    a, t = plain.base_model, tent.base_model
    for name in ("bn_in", "bn_mid"):
        for attr in ("gamma", "beta"):
            assert not np.array_equal(getattr(a.get_layer(name), attr).numpy(), getattr(t.get_layer(name), attr).numpy())
    for la, lt in [(a.get_layer("dense"), t.get_layer("dense")), (plain.head_, tent.head_)]:
        assert _same(_weights(la), _weights(lt))
    # the first BN's statistics are those of the inputs, untouched by training; the second's are
    # recomputed on the target through the adapted bn_in (the target's statistics, as in AdaBN)
    assert _same(_weights(a.get_layer("bn_in"))[2:], _weights(t.get_layer("bn_in"))[2:])
    x = target[0]
    bn_in = t.get_layer("bn_in")
    normed = (x - x.mean(0)) / np.sqrt(x.var(0) + bn_in.epsilon) * bn_in.gamma.numpy() + bn_in.beta.numpy()
    dense = t.get_layer("dense")
    hidden = np.maximum(normed @ dense.kernel.numpy() + dense.bias.numpy(), 0.0)
    np.testing.assert_allclose(t.get_layer("bn_mid").moving_mean.numpy(), hidden.mean(0), rtol=1e-4, atol=1e-5)
    # trainable flags are the copied model's again (only the BN layers trained, and only during fit)
    assert all(layer.trainable for layer in t.layers) and tent.model.trainable


def test_tent_is_seeded(trained, target, tent):
    again = BatchNormAdapter(trained, tent=True).fit(x_target=target[0], epochs=5, verbose=0, seed=0)
    assert _same(_weights(again.model), _weights(tent.model))
    assert again.history == tent.history


def test_batch_statistics_view_uses_batch_statistics_and_no_dropout(trained, target):
    base = BatchNormAdapter(trained).fit(x_target=target[0][:10]).base_model  # source-ish stats, not x's
    x = target[0][100:164]
    view = _batch_statistics_view(base)
    out1, out2 = np.asarray(view([x])), np.asarray(view([x]))
    assert np.array_equal(out1, out2)  # Dropout(0.3) at the end is off
    # with the moving statistics set to x's own, inference mode computes the same thing
    assert not np.allclose(out1, np.asarray(base([x], training=False)), atol=1e-3)
    recalibrate_batch_norm(base, x)
    np.testing.assert_allclose(out1, np.asarray(base([x], training=False)), rtol=1e-4, atol=1e-4)
    assert view.get_layer("dense") is base.get_layer("dense")  # shared layers, not copies


@pytest.mark.parametrize("kind", ["softmax", "logits", "sigmoid", "logit"])
def test_prediction_entropy_matches_numpy(kind):
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(50, 4 if kind in ("softmax", "logits") else 1)).astype("float32")
    if z.shape[1] > 1:
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
    else:
        q = 1 / (1 + np.exp(-z[:, 0]))
        p = np.stack([1 - q, q], axis=1)
    expected = -(p * np.log(p)).sum(1)
    given = {"softmax": (p, "softmax"), "logits": (z, "linear"), "sigmoid": (p[:, 1:], "sigmoid"), "logit": (z, "linear")}
    out, activation = given[kind]
    np.testing.assert_allclose(np.asarray(prediction_entropy(out, activation)), expected, rtol=1e-4, atol=1e-5)


def test_tent_on_a_cnn_with_a_logit_head_and_a_nested_block():
    keras.utils.set_random_seed(1)
    block = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.BatchNormalization(name="bn_block"), keras.layers.ReLU()], name="block")
    inputs = keras.Input((6, 6, 1))
    h = keras.layers.Dropout(0.5)(block(inputs))
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h))
    x = np.random.default_rng(0).normal(2.0, 1.0, size=(40, 6, 6, 1)).astype("float32")
    before = _weights(model)
    a = BatchNormAdapter(model, tent=True, learning_rate=1e-2).fit(x_target=x, epochs=3, batch_size=16,
                                                                   verbose=0, seed=0)
    assert a.batch_norm_layers_ == ["bn_block"]
    assert a.target_entropy_["tent"] < a.target_entropy_["adabn"]
    assert _same(_weights(model), before)
    assert a.predict(x).shape == (40, 3)


# ---------------------------------------------------------------------------------- contract
def test_save_and_load_round_trip(adabn, tent, target, tmp_path):
    x = target[0]
    for adapter in (adabn[0], tent):
        path = adapter.save(str(tmp_path / f"{adapter.tent}.keras"))
        loaded = load_adapter(path)
        assert type(loaded) is BatchNormAdapter and loaded.tent == adapter.tent
        assert np.array_equal(loaded.predict(x), adapter.predict(x))
        assert loaded.batch_norm_layers_ == adapter.batch_norm_layers_
        assert loaded.history == adapter.history and loaded.target_entropy_ == adapter.target_entropy_
        plain = keras.saving.load_model(path, safe_mode=True)
        assert np.array_equal(np.asarray(plain.predict(x, verbose=0)), adapter.predict(x))


def test_registry_and_config(trained, target):
    assert "adabn" in adapter_names() and get_adapter("adabn") is BatchNormAdapter
    a = BatchNormAdapter(trained, tent=True, learning_rate=5e-4)
    assert a.get_config() == {"feature_layer": None, "tent": True, "learning_rate": 5e-4}
    b = BatchNormAdapter.from_config(a.get_config(), trained)
    assert b.tent and b.learning_rate == 5e-4
    assert fit_data(BatchNormAdapter, source_train=(np.zeros((2, 3)), np.zeros(2)), target_unlabeled=target[0]) \
        .keys() == {"x_target"}
    assert BatchNormAdapter.supports(trained)


def test_model_without_batch_norm_is_refused(small_model):
    assert not BatchNormAdapter.supports(small_model)
    with pytest.raises(ValueError, match="BatchNormalization.*'mmd'"):
        BatchNormAdapter(small_model)


def test_bad_arguments(trained, target):
    x = target[0]
    with pytest.raises(ValueError, match=r"needs x_target; missing: x_target \(target inputs\)"):
        BatchNormAdapter(trained).fit()
    with pytest.raises(ValueError, match=r"needs x_target"):
        BatchNormAdapter(trained).fit(np.zeros((4, 3)), np.zeros(4))
    with pytest.raises(TypeError, match="tent must be True"):
        BatchNormAdapter(trained, tent="yes")
    with pytest.raises(ValueError, match="learning_rate"):
        BatchNormAdapter(trained, learning_rate=0)
    a = BatchNormAdapter(trained, tent=True)
    with pytest.raises(ValueError, match="at least 2 target rows"):
        a.fit(x_target=x[:1])
    with pytest.raises(ValueError, match="x_target has 2 features, but the model expects 3"):
        a.fit(x_target=x[:, :2])
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        a.fit(x_target=x, epochs=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        a.fit(x_target=x, batch_size=1)
    with pytest.raises(ValueError, match="learning_rate"):
        a.fit(x_target=x, learning_rate=-1.0)
    with pytest.raises(ValueError, match="not fitted"):
        a.predict(x)


@pytest.mark.slow
def test_runs_under_mirrored_strategy():
    """1 and 2 replicas (logical CPUs): AdaBN gives the same statistics; TENT trains and lowers the entropy."""
    code = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import json, keras
        from shiftkit.adapt.test_time import BatchNormAdapter
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        h = keras.layers.BatchNormalization()(inputs)
        h = keras.layers.BatchNormalization()(keras.layers.Dense(6, activation="relu")(h))
        src = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
        rng = np.random.default_rng(0)
        x = rng.normal(size=(128, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
        src.compile("adam", "sparse_categorical_crossentropy"); src.fit(x, y, epochs=5, verbose=0)
        xt = (2 * x + 1.0).astype("float32")
        out = {}
        for name, strategy in (("one", tf.distribute.get_strategy()),
                               ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
            with strategy.scope():
                plain = BatchNormAdapter(src).fit(x_target=xt)
                tent = BatchNormAdapter(src, tent=True, learning_rate=1e-2).fit(
                    x_target=xt, epochs=3, batch_size=32, verbose=0, seed=0)
            out[name] = {"stats": [np.asarray(w).tolist() for w in plain.model.get_weights()],
                         "entropy": tent.target_entropy_, "history": tent.history["entropy"],
                         "replicas": strategy.num_replicas_in_sync,
                         "var": type(tent.model.trainable_weights[0].value).__name__}
        print("JSON", json.dumps(out))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    logs = json.loads(done.stdout.split("JSON", 1)[1].splitlines()[0])
    one, two = logs["one"], logs["two"]
    assert two["replicas"] == 2 and "Mirrored" in two["var"], two["var"]
    for u, v in zip(one["stats"], two["stats"]):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    for run in (one, two):
        assert len(run["history"]) == 3 and np.isfinite(run["history"]).all()
        assert run["entropy"]["tent"] < run["entropy"]["adabn"], run["entropy"]


def test_experiment_runs_it_by_name_and_as_a_template(trained):
    from shiftkit.data import split_domains
    from shiftkit.experiment import Experiment

    xs, ys = _sample(400, target=False, seed=3)
    xt, yt = _sample(400, target=True, seed=4)
    splits = split_domains(xs, ys, xt, yt, target_labeled=5, seed=0)
    res = Experiment(trained, adapters={"adabn": "adabn", "tent": BatchNormAdapter(trained, tent=True)},
                     target_only=False, monitor=False, n_permutations=20).run(splits, seed=0)
    assert res.methods == ("source_only", "adabn", "tent")
    assert res.rows["adabn"]["accuracy"] > res.rows["source_only"]["accuracy"] + 0.2, res.rows
    assert len(res.histories["tent"]["entropy"]) == 3 and res.histories["adabn"] == {}


@pytest.mark.parametrize("activation", ["sigmoid", None])
def test_tent_on_a_single_unit_binary_head(activation):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((3,))
    h = keras.layers.Dense(6, activation="relu")(keras.layers.BatchNormalization()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation=activation)(keras.layers.BatchNormalization()(h)))
    x, _ = _sample(120, target=True, seed=5)
    a = BatchNormAdapter(model, tent=True, learning_rate=1e-2).fit(x_target=x, epochs=3, batch_size=32,
                                                                   verbose=0, seed=0)
    e = a.target_entropy_
    assert 0 <= e["tent"] < e["adabn"] <= np.log(2) + 1e-6, e
    assert a.predict(x).shape == (120, 1)
