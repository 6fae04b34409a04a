"""MMDAdapter: lowers feature-space MMD^2 under covariate shift, one kernel for measuring and training."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import shiftkit
from shiftkit.adapt.base import load_adapter
from shiftkit.adapt.mmd import MMDAdapter, batch_mmd2
from shiftkit.shift.kernels import median_bandwidth
from shiftkit.shift import kernels
from _synthetic import covariate_shift_data

EPOCHS = 30
LR = 1e-3


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


_data = covariate_shift_data


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(16, activation="relu", name="h1"),
            keras.layers.Dense(8, activation="relu", name="h2"),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ],
        name="source_mlp",
    )


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(1) == y))


def _normalized_mmd(fs, ft):
    """Scale-free feature MMD^2 (median-heuristic bandwidth, divided by the within-domain kernel mean)."""
    return shiftkit.mmd_test(fs, ft, n_permutations=20, seed=0).normalized


@pytest.fixture(scope="module")
def setting():
    xs, ys = _data(400, target=False, seed=0)
    xt, yt = _data(400, target=True, seed=1)
    xt_test, yt_test = _data(400, target=True, seed=2)
    src = _mlp()
    src.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    src.fit(xs, ys, epochs=20, batch_size=64, verbose=0)
    return {"src": src, "xs": xs, "ys": ys, "xt": xt, "yt": yt, "xt_test": xt_test, "yt_test": yt_test}


@pytest.fixture(scope="module")
def results(setting):
    """Source-only baseline (same architecture, same extra epochs, source data only) vs MMDAdapter."""
    s = setting
    src, xs, ys, xt = s["src"], s["xs"], s["ys"], s["xt"]
    before = _weights(src)

    baseline = keras.models.clone_model(src)
    baseline.set_weights(src.get_weights())
    baseline.compile(keras.optimizers.Adam(LR), "sparse_categorical_crossentropy")
    keras.utils.set_random_seed(0)
    baseline.fit(xs, ys, epochs=EPOCHS, batch_size=64, verbose=0)
    base_features = shiftkit.feature_space(baseline)

    adapted = MMDAdapter(src, mmd_weight=1.0).fit(
        xs, ys, xt, epochs=EPOCHS, batch_size=64, learning_rate=LR, verbose=0, seed=0
    )
    plain = MMDAdapter(src, mmd_weight=0.0).fit(
        xs, ys, xt, epochs=EPOCHS, batch_size=64, learning_rate=LR, verbose=0, seed=0
    )
    out = {
        "source_weights_before": before,
        "adapted": adapted,
        "plain": plain,
        "mmd": {
            "source_model": _normalized_mmd(shiftkit.feature_space(src)(xs), shiftkit.feature_space(src)(xt)),
            "source_only": _normalized_mmd(base_features(xs), base_features(xt)),
            "mmd_adapter": _normalized_mmd(adapted.features(xs), adapted.features(xt)),
            "mmd_weight_0": _normalized_mmd(plain.features(xs), plain.features(xt)),
        },
        "acc": {
            "source_model": _accuracy(src, s["xt_test"], s["yt_test"]),
            "source_only": _accuracy(baseline, s["xt_test"], s["yt_test"]),
            "mmd_adapter": adapted.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
            "mmd_weight_0": plain.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
        },
    }
    print("normalized feature MMD^2:", out["mmd"], "\ntarget accuracy:", out["acc"])
    return out


def test_mmd_adapter_lowers_feature_mmd_and_keeps_accuracy(results):
    mmd, acc = results["mmd"], results["acc"]
    # the acceptance criterion: scale-free feature MMD^2 well below source-only training's
    assert mmd["mmd_adapter"] < 0.5 * mmd["source_only"], mmd
    assert mmd["mmd_adapter"] < 0.5 * mmd["source_model"], mmd
    # not by collapsing the features: target accuracy holds, and here improves
    assert acc["mmd_adapter"] >= acc["source_only"] - 0.02, acc
    assert acc["mmd_adapter"] > acc["source_model"], acc
    # the training objective went down
    hist = results["adapted"].history_.history
    assert hist["mmd2"][-1] < 0.5 * hist["mmd2"][0]


def test_zero_weight_is_plain_source_training(results):
    mmd, acc = results["mmd"], results["acc"]
    assert mmd["mmd_weight_0"] > 0.8 * mmd["source_only"], mmd
    assert abs(acc["mmd_weight_0"] - acc["source_only"]) <= 0.05, acc
    hist = results["plain"].history_.history
    np.testing.assert_allclose(hist["loss"], hist["task_loss"], rtol=1e-6)


def test_source_untouched_history_and_model(results, setting):
    assert _same(results["source_weights_before"], _weights(setting["src"])), "source weights changed"
    a = results["adapted"]
    hist = a.history_.history
    for key in ("loss", "task_loss", "mmd2", "accuracy"):
        assert len(hist[key]) == EPOCHS, key
    assert isinstance(a.model, keras.Model) and a.model is a.model_
    assert a.features(setting["xt"]).shape == (400, 8)
    assert a.predict(setting["xt"]).shape == (400, 2)
    # weights are copies, not shared variables
    assert a.base_model.get_layer("h1").kernel is not setting["src"].get_layer("h1").kernel


def test_with_few_target_labels(setting):
    s = setting
    few_x, few_y = s["xt"][:24], s["yt"][:24]
    a = MMDAdapter(s["src"], bandwidth=[0.5, 2.0, 8.0]).fit(
        s["xs"], s["ys"], few_x, y_target=few_y, epochs=15, batch_size=32,
        validation_data=(s["xt_test"], s["yt_test"]), verbose=0, seed=1,
    )
    hist = a.history_.history
    for key in ("loss", "task_loss", "mmd2", "val_loss", "val_accuracy"):
        assert len(hist[key]) == 15, key
    acc = a.evaluate(s["xt_test"], s["yt_test"])["accuracy"]
    assert acc >= _accuracy(s["src"], s["xt_test"], s["yt_test"]) - 0.02


def test_training_term_is_the_measuring_kernel(setting):
    """One kernel, two uses: the logged MMD^2 of a one-batch epoch equals shiftkit.mmd2 on it."""
    s = setting
    xs, ys, xt = s["xs"][:64], s["ys"][:64], s["xt"][:64]
    feats = shiftkit.feature_space(s["src"])
    fs, ft = feats(xs), feats(xt)
    for bandwidth in (None, [0.5, 3.0]):
        a = MMDAdapter(s["src"], bandwidth=bandwidth).fit(
            xs, ys, xt, epochs=1, batch_size=64, learning_rate=1e-12, verbose=0, seed=0
        )
        # one step per epoch on the whole (shuffled) batch; the step logs the pre-update MMD^2
        logged = a.history_.history["mmd2"][0]
        assert logged == pytest.approx(shiftkit.mmd2(fs, ft, bandwidth=bandwidth), rel=1e-3)
        # training starts from the source model itself (base and head weights copied)
        np.testing.assert_allclose(a.predict(xt), s["src"].predict(xt, verbose=0), atol=1e-5)
    # the same loss term, called directly, against kernels.mmd2_tensor and the numpy heuristic
    bw = kernels.median_heuristic(fs, ft)
    assert float(median_bandwidth(np.concatenate([fs, ft]).astype("float32"))) == pytest.approx(bw, rel=1e-4)
    direct = float(batch_mmd2(fs.astype("float32"), ft.astype("float32")))
    assert direct == pytest.approx(float(kernels.mmd2_tensor(fs, ft, bw)), rel=1e-3)
    assert direct == pytest.approx(shiftkit.mmd2(fs, ft), rel=1e-3)


def test_median_bandwidth_fallbacks():
    z = np.zeros((6, 3), dtype="float32")
    assert float(median_bandwidth(z)) == 1.0  # all points coincide
    z[0] = [3.0, 4.0, 0.0]  # most pairs tie at 0: the mean of the positive distances
    assert float(median_bandwidth(z)) == pytest.approx(kernels.median_heuristic(z), rel=1e-6)
    z = np.random.default_rng(0).normal(size=(7, 2)).astype("float32")  # odd n
    assert float(median_bandwidth(z)) == pytest.approx(kernels.median_heuristic(z), rel=1e-5)


def test_save_load_round_trip(results, setting, tmp_path):
    a = results["adapted"]
    path = a.save(tmp_path / "mmd.keras")
    b = load_adapter(path)
    assert isinstance(b, MMDAdapter)
    assert b.mmd_weight == 1.0 and b.bandwidth is None
    x = setting["xt_test"]
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    np.testing.assert_array_equal(a.features(x), b.features(x))
    plain = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), a.predict(x))


def test_binary_head_batchnorm_and_feature_layer():
    """Sigmoid head, BatchNorm kept in inference mode, a narrower feature layer (a new head)."""
    keras.utils.set_random_seed(1)
    src = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(12, activation="relu", name="h1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(6, activation="relu", name="h2"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ]
    )
    xs, ys = _data(96, target=False, seed=3)
    xt, _ = _data(64, target=True, seed=4)
    src.compile("adam", "binary_crossentropy")
    src.fit(xs, ys, epochs=2, verbose=0)
    a = MMDAdapter(src, bandwidth=1.0).fit(xs, ys, xt, epochs=2, batch_size=32, verbose=0, seed=0)
    assert a.head_initialised_from_source_
    np.testing.assert_array_equal(a.base_model.get_layer("bn").moving_mean, src.get_layer("bn").moving_mean)
    assert not np.array_equal(a.base_model.get_layer("bn").gamma, src.get_layer("bn").gamma)
    assert set(a.predict_classes(xt)) <= {0, 1}
    b = MMDAdapter(src, feature_layer="bn").fit(xs, ys, xt, epochs=1, batch_size=32, verbose=0, seed=0)
    assert not b.head_initialised_from_source_ and b.features(xt).shape == (64, 12)


def _logits_then_softmax(pattern, seed=5):
    """Dense(2) logits followed by a weightless softmax layer (the mixed-precision pattern)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((10,))
    h = keras.layers.Dense(8, activation="relu", name="h")(inp)
    logits = keras.layers.Dense(2, name="logits")(h)
    if pattern == "activation":
        out = keras.layers.Activation("softmax", dtype="float32", name="probs")(logits)
    else:
        out = keras.layers.Softmax(name="probs")(logits)
    return keras.Model(inp, out, name=f"src_{pattern}")


@pytest.mark.parametrize("pattern", ["activation", "softmax_layer"])
def test_head_comes_from_the_source_when_the_output_layer_has_no_weights(pattern):
    """Regression (#7): Dense(k) -> Activation('softmax') / Softmax: the head is the source's Dense, the
    features are its input (not the logits); mmd_weight=0 at a negligible rate reproduces the source."""
    xs, ys = _data(128, target=False, seed=5)
    xt, _ = _data(96, target=True, seed=6)
    src = _logits_then_softmax(pattern)
    src.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    src.fit(xs, ys, epochs=3, verbose=0)
    a = MMDAdapter(src, mmd_weight=0.0).fit(xs, ys, xt, epochs=1, learning_rate=1e-12, verbose=0, seed=0)
    assert a.head_initialised_from_source_
    np.testing.assert_allclose(a.predict(xt), src.predict(xt, verbose=0), atol=1e-5)
    # the default feature space is the head's input (8 hidden units), for the adapter and for shift_report
    reference = keras.Model(src.inputs, src.get_layer("h").output).predict(xt, verbose=0)
    np.testing.assert_allclose(a.features(xt), reference, rtol=1e-5, atol=1e-5)
    space = shiftkit.feature_space(src)
    assert space.layer_name == "input of logits"
    np.testing.assert_allclose(space(xt), reference, rtol=1e-5, atol=1e-5)
    assert a.feature_name_ == "input of logits"


@pytest.mark.slow
def test_runs_under_mirrored_strategy_with_the_same_losses():
    """Regression (#6): 1 vs 2 replicas, same seed and data: the same task loss, and loss = task + w * mmd2.

    Keras 3's `Loss` already divides by the replica count; dividing the task loss again halved the
    logged task loss (and silently doubled mmd_weight) under a 2-replica MirroredStrategy.
    """
    code = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import json, keras
        from shiftkit.adapt.mmd import MMDAdapter
        keras.utils.set_random_seed(0)
        src = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                                keras.layers.Dense(2, activation="softmax")])
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
        xt = (x + 1.0).astype("float32")

        def run(strategy, **kw):
            with strategy.scope():
                a = MMDAdapter(src, mmd_weight=2.0).fit(x, y, xt, verbose=0, seed=0, **kw)
            return a, {k: [float(v) for v in vals] for k, vals in a.history_.history.items()}

        # one step on the whole batch at a negligible rate: the logged values are the pre-update ones
        kw = dict(epochs=1, batch_size=64, learning_rate=1e-12)
        _, one = run(tf.distribute.get_strategy(), **kw)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        _, two = run(strategy, **kw)
        a, trained = run(strategy, epochs=2, batch_size=16)
        print("JSON", json.dumps({"one": one, "two": two, "trained": trained}))
        print("REPLICAS", strategy.num_replicas_in_sync, type(a.model.trainable_weights[0].value).__name__)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "REPLICAS 2" in done.stdout and "Mirrored" in done.stdout, done.stdout
    import json

    logs = json.loads(done.stdout.split("JSON", 1)[1].splitlines()[0])
    one, two = logs["one"], logs["two"]
    # the task loss is a mean over the whole batch, whatever the replica count
    assert two["task_loss"][0] == pytest.approx(one["task_loss"][0], rel=1e-4), (one, two)
    assert two["accuracy"][0] == pytest.approx(one["accuracy"][0])
    for h in (one, two, logs["trained"]):
        assert all(np.isfinite(h[k]).all() for k in ("loss", "task_loss", "mmd2"))
        # the logged loss is the objective: task + mmd_weight * mmd2 (each replica's MMD^2 on its share)
        np.testing.assert_allclose(h["loss"], np.add(h["task_loss"], 2.0 * np.asarray(h["mmd2"])), rtol=1e-4)


def test_bad_input(setting):
    s = setting
    src, xs, ys, xt = s["src"], s["xs"][:40], s["ys"][:40], s["xt"][:30]
    with pytest.raises(ValueError, match="mmd_weight must be a non-negative number"):
        MMDAdapter(src, mmd_weight=-1)
    with pytest.raises(ValueError, match="mmd_weight"):
        MMDAdapter(src, mmd_weight=float("nan"))
    with pytest.raises(TypeError, match="mmd_weight"):
        MMDAdapter(src, mmd_weight="1")
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        MMDAdapter(src, bandwidth=0)
    with pytest.raises(TypeError, match="bandwidth"):
        MMDAdapter(src, bandwidth="median")
    a = MMDAdapter(src)
    with pytest.raises(ValueError, match="x_target has 9 features, but the model expects 10"):
        a.fit(xs, ys, xt[:, :9], verbose=0)
    bad = xt.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="x_target contains 1 NaN"):
        a.fit(xs, ys, bad, verbose=0)
    with pytest.raises(ValueError, match="y_target has 29 labels but there are 30 samples"):
        a.fit(xs, ys, xt, y_target=s["yt"][:29], verbose=0)
    with pytest.raises(ValueError, match="y_source has 39 labels but there are 40 samples"):
        a.fit(xs, ys[:39], xt, verbose=0)
    with pytest.raises(ValueError, match="x_target is empty"):
        a.fit(xs, ys, np.empty((0, 10)), verbose=0)
    with pytest.raises(ValueError, match="x_target has 1 sample"):
        a.fit(xs, ys, xt[:1], verbose=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        a.fit(xs, ys, xt, batch_size=1, verbose=0)
    with pytest.raises(ValueError, match="learning_rate"):
        a.fit(xs, ys, xt, learning_rate=0.0, verbose=0)
    with pytest.raises(TypeError, match="seed"):
        a.fit(xs, ys, xt, seed=-1, verbose=0)
    with pytest.raises(AttributeError, match="not fitted yet"):
        a.predict(xt)
