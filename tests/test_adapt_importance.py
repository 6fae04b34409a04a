"""ImportanceWeightingAdapter: misspecified model under covariate shift, ESS refusal, saving, strategies, errors."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from shiftkit.adapt import registry
from shiftkit.adapt.base import load_adapter
from shiftkit.adapt.importance import ImportanceWeightingAdapter
from shiftkit.shift.density_ratio import DensityRatioEstimator


def _curved(n, *, mean, seed):
    """2-D Gaussian rows (sd 1.2) labelled by a parabola, y = [x1 > x0^2 / 2 - 1]: p(y | x) shared by both domains.

    Source mean (0, 0), target mean (1.2, 0): a covariate shift with a log-linear density ratio. A linear model
    fitted to the source takes the parabola's chord around x0 = 0; the target needs its tangent around x0 = 1.2.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, 1.2, size=(n, 2))
    y = (x[:, 1] > 0.5 * x[:, 0] ** 2 - 1.0).astype(int)
    return x.astype("float32"), y


def _linear_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, name="feat"),
         keras.layers.Dense(2, activation="softmax", name="out")],
        name="linear_source",
    )


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


class UnweightedControl(ImportanceWeightingAdapter):
    """The same training with every weight 1: source-only at the same budget (the control)."""

    def _estimate_weights(self, xs, xt, seed):
        super()._estimate_weights(xs, xt, seed)
        self.weights_ = np.ones_like(self.weights_)


@pytest.fixture(scope="module")
def setting():
    xs, ys = _curved(600, mean=(0.0, 0.0), seed=0)
    xt, yt = _curved(400, mean=(1.2, 0.0), seed=1)
    xt_test, yt_test = _curved(1000, mean=(1.2, 0.0), seed=2)
    src = _linear_model()
    src.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    src.fit(xs, ys, epochs=40, batch_size=32, verbose=0)
    return {"src": src, "xs": xs, "ys": ys, "xt": xt, "yt": yt, "xt_test": xt_test, "yt_test": yt_test}


@pytest.fixture(scope="module")
def results(setting):
    s = setting
    before = _weights(s["src"])
    kw = dict(epochs=20, learning_rate=1e-2, verbose=0, seed=0)
    adapted = ImportanceWeightingAdapter(s["src"]).fit(s["xs"], s["ys"], s["xt"], **kw)
    plain = UnweightedControl(s["src"]).fit(s["xs"], s["ys"], s["xt"], **kw)
    acc = {
        "source_model": float(np.mean(s["src"].predict(s["xt_test"], verbose=0).argmax(1) == s["yt_test"])),
        "unweighted": plain.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
        "importance": adapted.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
    }
    print("target accuracy:", acc, "ESS fraction", adapted.ess_fraction_, "AUC", adapted.domain_auc_)
    return {"adapted": adapted, "acc": acc, "source_weights_before": before}


# ------------------------------------------------------------------------------------------- the method
@pytest.mark.slow
def test_improves_a_misspecified_model_under_covariate_shift(results):
    acc = results["acc"]
    # the source model is a linear rule fitted to the source's part of a parabola (target ~0.73); the
    # same training without weights stays there; weighted, it fits the target's part (seeds 0-1: 0.89-0.90)
    assert acc["source_model"] < 0.80 and acc["unweighted"] < 0.80, acc
    assert acc["importance"] >= acc["unweighted"] + 0.08, acc
    assert acc["importance"] >= acc["source_model"] + 0.08, acc
    a = results["adapted"]
    assert 0.3 < a.ess_fraction_ < 0.7 and 0.7 < a.domain_auc_ < 0.85  # true ratio: ESS fraction e^-1 = 0.37
    assert a.weights_.shape == (600,) and a.weights_.mean() == pytest.approx(1.0)
    assert a.ess_ == pytest.approx(a.ess_fraction_ * 600)
    assert len(a.history["loss"]) == 20


@pytest.mark.slow
def test_weights_are_the_density_ratio_of_the_source_features(results, setting):
    """space='features': the ratio is estimated on the source model's features (the head's input), cross-fitted."""
    s, a = setting, results["adapted"]
    feats = keras.Model(s["src"].inputs, s["src"].get_layer("feat").output)
    est = DensityRatioEstimator(seed=0).fit(feats.predict(s["xs"], verbose=0), feats.predict(s["xt"], verbose=0))
    np.testing.assert_allclose(a.weights_, est.weights_, rtol=1e-6)
    assert a.clip_value_ == pytest.approx(est.clip_value_) and a.domain_auc_ == pytest.approx(est.domain_auc_)
    # weights grow along the shift (x0), as the true ratio exp(1.2 x0 / 1.44 - const) does
    assert np.corrcoef(np.log(a.weights_), s["xs"][:, 0])[0, 1] > 0.9


@pytest.mark.slow
def test_source_untouched(results, setting):
    src = setting["src"]
    before, after = results["source_weights_before"], _weights(src)
    assert len(before) == len(after) and all(np.array_equal(u, v) for u, v in zip(before, after))
    a = results["adapted"]
    assert a.base_model.get_layer("feat").kernel is not src.get_layer("feat").kernel
    assert not np.array_equal(np.asarray(a.head_.kernel), np.asarray(src.get_layer("out").kernel))


def test_negligible_rate_is_the_source_model_and_inputs_space(setting):
    s = setting
    a = ImportanceWeightingAdapter(s["src"], space="input").fit(
        s["xs"][:200], s["ys"][:200], s["xt"][:100], epochs=1, learning_rate=1e-12, verbose=0, seed=0
    )
    assert a.head_initialised_from_source_
    np.testing.assert_allclose(a.predict(s["xt_test"]), s["src"].predict(s["xt_test"], verbose=0), atol=1e-6)
    # the first epoch's logged loss is the weighted mean loss of the source model (Keras: sum(w l) / n)
    est = DensityRatioEstimator(seed=0).fit(s["xs"][:200].astype("float64"), s["xt"][:100].astype("float64"))
    np.testing.assert_allclose(a.weights_, est.weights_, rtol=1e-6)
    p = s["src"].predict(s["xs"][:200], verbose=0)
    losses = -np.log(p[np.arange(200), s["ys"][:200]])
    assert a.history["loss"][0] == pytest.approx(float(np.mean(a.weights_ * losses)), rel=1e-4)


def test_refuses_weights_that_collapse_the_ess(setting):
    s = setting
    far, _ = _curved(300, mean=(4.0, 0.0), seed=3)  # target far out: a few source rows carry every weight
    a = ImportanceWeightingAdapter(s["src"], clip_quantile=None)
    with pytest.raises(ValueError, match=r"collapse the effective sample size: ESS = \d+\.\d of 600 .*below "
                                         r"min_ess_fraction=0\.1.*clip_quantile=0\.9.*'mmd' or 'coral'"):
        a.fit(s["xs"], s["ys"], far, epochs=1, verbose=0, seed=0)
    assert a.ess_fraction_ < 0.1  # the figures are kept for inspection
    assert getattr(a, "history_", None) is None  # refused before training
    with pytest.raises(AttributeError, match="not fitted yet"):  # and no untrained copy left to predict with
        a.predict(s["xt"])
    # accepted when asked to
    ok = ImportanceWeightingAdapter(s["src"], clip_quantile=None, min_ess_fraction=0.0).fit(
        s["xs"], s["ys"], far, epochs=1, verbose=0, seed=0
    )
    assert ok.ess_fraction_ < 0.1 and len(ok.history["loss"]) == 1


@pytest.mark.slow
def test_seeded_fits_repeat(setting):
    s = setting
    kw = dict(epochs=2, batch_size=32, verbose=0, seed=3)
    a = ImportanceWeightingAdapter(s["src"]).fit(s["xs"][:128], s["ys"][:128], s["xt"][:96], **kw)
    b = ImportanceWeightingAdapter(s["src"]).fit(s["xs"][:128], s["ys"][:128], s["xt"][:96], **kw)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.predict(s["xt_test"]), b.predict(s["xt_test"]))


def test_save_load_round_trip(setting, tmp_path):
    s = setting
    a = ImportanceWeightingAdapter(s["src"], clip_quantile=0.95, learning_rate=1e-3).fit(
        s["xs"][:200], s["ys"][:200], s["xt"][:100], epochs=2, verbose=0, seed=1,
        validation_data=(s["xt_test"][:100], s["yt_test"][:100]),
    )
    assert len(a.history["val_loss"]) == 2
    path = a.save(tmp_path / "importance.keras")
    b = load_adapter(path)
    assert isinstance(b, ImportanceWeightingAdapter)
    assert (b.clip_quantile, b.learning_rate, b.space, b.min_ess_fraction) == (0.95, 1e-3, "features", 0.1)
    assert b.ess_ == pytest.approx(a.ess_) and b.domain_auc_ == pytest.approx(a.domain_auc_)
    assert b.clip_value_ == pytest.approx(a.clip_value_)
    x = s["xt_test"]
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    np.testing.assert_array_equal(a.features(x), b.features(x))
    plain = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), a.predict(x))


@pytest.mark.slow
def test_binary_head_and_batchnorm():
    """Sigmoid head; BatchNorm keeps the source's moving statistics (inference mode), gamma learns."""
    keras.utils.set_random_seed(1)
    src = keras.Sequential([
        keras.Input((2,)), keras.layers.Dense(8, activation="relu", name="h1"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(1, activation="sigmoid", name="out"),
    ])
    xs, ys = _curved(160, mean=(0.0, 0.0), seed=4)
    xt, _ = _curved(120, mean=(1.2, 0.0), seed=5)
    src.compile("adam", "binary_crossentropy")
    src.fit(xs, ys, epochs=2, verbose=0)
    a = ImportanceWeightingAdapter(src).fit(xs, ys, xt, epochs=2, batch_size=32, verbose=0, seed=0)
    np.testing.assert_array_equal(a.base_model.get_layer("bn").moving_mean, src.get_layer("bn").moving_mean)
    assert not np.array_equal(a.base_model.get_layer("bn").gamma, src.get_layer("bn").gamma)
    assert set(a.predict_classes(xt)) <= {0, 1}
    assert a.features(xt).shape == (120, 8)


def test_registry_and_config(setting):
    assert "importance" in registry.adapter_names()
    assert registry.get_adapter("importance") is ImportanceWeightingAdapter
    s = setting
    data = registry.fit_data(ImportanceWeightingAdapter, source_train=(s["xs"], s["ys"]), target_unlabeled=s["xt"])
    assert set(data) == {"x_source", "y_source", "x_target"}
    a = ImportanceWeightingAdapter(s["src"], space="input", clip_quantile=0.9, min_ess_fraction=0.2,
                                   learning_rate=1e-3)
    assert a.get_config() == {"feature_layer": None, "space": "input", "classifier": "logistic",
                              "clip_quantile": 0.9, "min_ess_fraction": 0.2, "learning_rate": 1e-3}
    b = ImportanceWeightingAdapter.from_config(a.get_config(), s["src"])
    assert b.get_config() == a.get_config()
    assert ImportanceWeightingAdapter.default_config()["min_ess_fraction"] == 0.1


def test_bad_input(setting):
    s = setting
    src, xs, ys, xt = s["src"], s["xs"][:40], s["ys"][:40], s["xt"][:30]
    with pytest.raises(ValueError, match="Unknown space 'pixels'. Choose one of: features, input"):
        ImportanceWeightingAdapter(src, space="pixels")
    with pytest.raises(ValueError, match=r"min_ess_fraction must be a number in \[0, 1\), e.g. 0.1"):
        ImportanceWeightingAdapter(src, min_ess_fraction=1.0)
    with pytest.raises(ValueError, match="clip_quantile"):
        ImportanceWeightingAdapter(src, clip_quantile=0.0)
    with pytest.raises(ValueError, match="classifier must be 'logistic', 'gbm'"):
        ImportanceWeightingAdapter(src, classifier="svm")
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        ImportanceWeightingAdapter(src, learning_rate=0)
    with pytest.raises(ValueError, match="must name a layer of the model.*nope"):
        ImportanceWeightingAdapter(src, feature_layer="nope")
    a = ImportanceWeightingAdapter(src)
    with pytest.raises(ValueError, match=r"missing: x_target \(target inputs\)\. Pass x_target=\.\.\."):
        a.fit(xs, ys, verbose=0)
    with pytest.raises(ValueError, match="missing: y_source"):
        a.fit(xs, None, xt, verbose=0)
    with pytest.raises(ValueError, match="x_target has 1 features, but the model expects 2"):
        a.fit(xs, ys, xt[:, :1], verbose=0)
    bad = xt.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x_target contains 1 NaN"):
        a.fit(xs, ys, bad, verbose=0)
    with pytest.raises(ValueError, match="y_source has 39 labels but there are 40 samples"):
        a.fit(xs, ys[:39], xt, verbose=0)
    with pytest.raises(ValueError, match="Cannot estimate importance weights: x_target has 3 row"):
        a.fit(xs, ys, xt[:3], verbose=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        a.fit(xs, ys, xt, epochs=0, verbose=0)
    with pytest.raises(ValueError, match="seed"):
        a.fit(xs, ys, xt, seed=-1, verbose=0)
    with pytest.raises(AttributeError, match="not fitted yet"):
        a.predict(xt)


@pytest.mark.slow
def test_runs_under_mirrored_strategy_with_the_same_training():
    """One device vs 1- and 2-replica MirroredStrategy (logical CPUs, in a fresh process): the same weights,
    the same weighted loss before any update and after each of three full-batch epochs (Keras divides the
    weighted loss sum by the global batch on any replica count). Weights are compared loosely: Adam's first
    steps move a weight by about the learning rate whatever its gradient's size, so a near-zero gradient
    whose float summation order differs can flip one weight by 2 x lr per step."""
    code = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import json, keras
        from shiftkit.adapt.importance import ImportanceWeightingAdapter
        keras.utils.set_random_seed(0)
        src = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="relu"),
                                keras.layers.Dense(2, activation="softmax")])
        rng = np.random.default_rng(0)
        x = rng.normal(size=(128, 3)).astype("float32"); y = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(int)
        xt = (rng.normal(size=(96, 3)) + [0.7, 0.0, 0.0]).astype("float32")
        out = {}
        for name, strategy in (("one", tf.distribute.get_strategy()),
                               ("mirrored_one", tf.distribute.MirroredStrategy(["/cpu:0"])),
                               ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
            with strategy.scope():
                a = ImportanceWeightingAdapter(src, learning_rate=1e-3).fit(
                    x, y, xt, epochs=3, batch_size=128, verbose=0, seed=0)
            out[name] = {"loss": [float(v) for v in a.history["loss"]], "weights": a.weights_.tolist(),
                         "params": np.concatenate([w.ravel() for w in a.model_.get_weights()]).tolist(),
                         "replicas": strategy.num_replicas_in_sync,
                         "variable": type(a.model_.trainable_weights[0].value).__name__}
        print("JSON", json.dumps(out))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("JSON", 1)[1].splitlines()[0])
    assert out["two"]["replicas"] == 2 and "Mirrored" in out["two"]["variable"], out["two"]["variable"]
    for name in ("mirrored_one", "two"):
        np.testing.assert_array_equal(out[name]["weights"], out["one"]["weights"])
        np.testing.assert_allclose(out[name]["loss"], out["one"]["loss"], rtol=1e-4)
        np.testing.assert_allclose(out[name]["params"], out["one"]["params"], atol=6.5e-3)  # 3 Adam steps of 1e-3
    assert out["one"]["loss"][-1] < out["one"]["loss"][0]
