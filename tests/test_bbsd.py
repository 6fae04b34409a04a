"""Black-box shift detection (shiftkit.shift.bbsd): level, power, agreement with scipy, errors."""

import math

import keras
import numpy as np
import pytest
from scipy import stats

from shiftkit.shift.bbsd import (
    BBSDDetector,
    BBSDResult,
    bbsd_from_probabilities,
    bbsd_test,
    model_probabilities,
)

MEANS = np.array([[1.5, 0, 0, 0, 0], [0, 1.5, 0, 0, 0], [0, 0, 1.5, 0, 0]], dtype=np.float32)


def _linear_classifier(activation: str = "softmax", units: int = 3) -> keras.Model:
    """A fixed Dense classifier on 5-D inputs whose weights are the class means (no training: fast)."""
    inp = keras.Input((5,))
    out = keras.layers.Dense(units, activation=activation, name="out")(inp)
    model = keras.Model(inp, out)
    w = MEANS.T[:, :units] if units > 1 else (MEANS[0] - MEANS[1])[:, None]
    model.get_layer("out").set_weights([w, np.zeros(units, dtype=np.float32)])
    return model


def _mixture(rng, n, proportions=(1 / 3, 1 / 3, 1 / 3), shift=0.0):
    y = rng.choice(3, size=n, p=np.asarray(proportions) / np.sum(proportions))
    x = MEANS[y] + rng.normal(size=(n, 5)) + shift
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def model():
    return _linear_classifier()


def _null_probs(model, draws, n, m, seed):
    """Softmax of `draws` independent null pairs, computed in one forward pass."""
    rng = np.random.default_rng(seed)
    x, _ = _mixture(rng, draws * (n + m))
    p = model_probabilities(model, x, batch_size=4096).reshape(draws, n + m, -1)
    return p[:, :n], p[:, n:]


# ------------------------------------------------------------------------------------------------ level


@pytest.mark.parametrize("n,m", [(20, 20), (40, 25)])
def test_ks_level_over_seeded_nulls(model, n, m):
    alpha, draws = 0.1, 400
    ps, pt = _null_probs(model, draws, n, m, seed=n + m)
    rejections = sum(bbsd_from_probabilities(ps[i], pt[i], alpha=alpha).is_shift for i in range(draws))
    rate = rejections / draws
    se = math.sqrt(alpha * (1 - alpha) / draws)
    assert rate <= alpha + 3 * se, rate
    assert rate > 0.02, rate  # Bonferroni over 3 dependent outputs is conservative, but it does reject


def test_mmd_level_over_seeded_nulls(model):
    alpha, draws = 0.1, 200
    ps, pt = _null_probs(model, draws, 25, 25, seed=7)
    rate = np.mean([bbsd_from_probabilities(ps[i], pt[i], alpha=alpha, test="mmd", n_permutations=99,
                                            seed=i).is_shift for i in range(draws)])
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / draws), rate


def test_binary_ks_level_over_seeded_nulls():
    """One sigmoid unit: one KS test on p (no correction), still at its level."""
    model = _linear_classifier("sigmoid", units=1)
    alpha, draws = 0.1, 300
    ps, pt = _null_probs(model, draws, 30, 30, seed=3)
    results = [bbsd_from_probabilities(ps[i], pt[i], alpha=alpha) for i in range(draws)]
    assert all(r.outputs == (1,) and r.correction == "none" for r in results)
    rate = np.mean([r.is_shift for r in results])
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / draws), rate
    assert rate > 0.03, rate


# ------------------------------------------------------------------------------------------------ power


def _power(model, test, make_target, draws=40, n=100, seed=0):
    rng = np.random.default_rng(seed)
    hits = 0
    for i in range(draws):
        xs, _ = _mixture(rng, n)
        xt = make_target(rng, n)
        res = bbsd_test(model, xs, xt, alpha=0.05, test=test, n_permutations=199, seed=i)
        hits += res.is_shift
    return hits / draws


@pytest.mark.parametrize("test", ["ks", "mmd"])
def test_power_on_label_shift(model, test):
    power = _power(model, test, lambda rng, n: _mixture(rng, n, proportions=(0.7, 0.15, 0.15))[0], draws=20)
    assert power >= 0.8, power


@pytest.mark.parametrize("test", ["ks", "mmd"])
def test_power_on_covariate_shift(model, test):
    power = _power(model, test, lambda rng, n: _mixture(rng, n, shift=np.array([1.2, 0, 0, 0, 0]))[0], draws=20)
    assert power >= 0.8, power


def test_a_shift_the_model_cannot_see_is_not_detected(model):
    """A shift along an input the classifier ignores leaves its softmax unchanged: BBSD holds its level."""
    power = _power(model, "ks", lambda rng, n: _mixture(rng, n, shift=np.array([0, 0, 0, 3.0, 0]))[0], draws=30)
    assert power <= 0.2, power


# ------------------------------------------------------------------------------------------------ agreement


def test_ks_statistics_agree_with_scipy(model, rng):
    xs, _ = _mixture(rng, 80)
    xt, _ = _mixture(rng, 60, proportions=(0.5, 0.3, 0.2))
    res = bbsd_test(model, xs, xt, alpha=0.05)
    ps = keras.ops.convert_to_numpy(model(xs)).astype(np.float64)
    pt = keras.ops.convert_to_numpy(model(xt)).astype(np.float64)
    direct = [stats.ks_2samp(ps[:, k], pt[:, k]) for k in range(3)]
    np.testing.assert_allclose(res.statistics, [d.statistic for d in direct], atol=1e-6)
    np.testing.assert_allclose(res.p_values, [d.pvalue for d in direct], rtol=1e-5, atol=1e-9)
    assert res.p_value == pytest.approx(min(1.0, 3 * min(d.pvalue for d in direct)), rel=1e-5)
    assert res.threshold == pytest.approx(0.05 / 3)
    assert res.is_shift == (res.p_value <= 0.05)
    assert res.outputs == (0, 1, 2) and res.n_outputs == 3 and res.correction == "bonferroni"
    assert set(res.shifted_outputs) == {k for k in range(3) if res.p_values[k] <= 0.05 / 3}
    assert (res.n_source, res.n_target) == (80, 60)


def test_mmd_variant_is_mmd_test_on_the_softmax(model, rng):
    from shiftkit.shift import mmd_test

    xs, _ = _mixture(rng, 50)
    xt, _ = _mixture(rng, 50, shift=0.3)
    res = bbsd_test(model, xs, xt, test="mmd", n_permutations=200, seed=4)
    direct = mmd_test(model_probabilities(model, xs), model_probabilities(model, xt), n_permutations=200, seed=4)
    assert res.statistics == (pytest.approx(direct.statistic),)
    assert res.p_value == pytest.approx(direct.p_value)
    assert res.mmd.n_permutations == 200 and res.threshold == 0.05 and res.correction == "none"


def test_logits_model_gets_softmax_applied(rng):
    probs_model = _linear_classifier("softmax")
    logits_model = _linear_classifier("linear")
    xs, _ = _mixture(rng, 40)
    xt, _ = _mixture(rng, 40, shift=0.5)
    a, b = bbsd_test(probs_model, xs, xt), bbsd_test(logits_model, xs, xt)
    np.testing.assert_allclose(a.statistics, b.statistics, atol=1e-6)
    np.testing.assert_allclose(model_probabilities(logits_model, xs), model_probabilities(probs_model, xs), atol=1e-6)


def test_binary_sigmoid_tests_the_positive_class_once(rng):
    sig = _linear_classifier("sigmoid", units=1)
    logit = _linear_classifier("linear", units=1)
    xs, _ = _mixture(rng, 50)
    xt, _ = _mixture(rng, 40, proportions=(0.6, 0.2, 0.2))
    res = bbsd_test(sig, xs, xt)
    p_s = 1 / (1 + np.exp(-(xs @ (MEANS[0] - MEANS[1]))))
    p_t = 1 / (1 + np.exp(-(xt @ (MEANS[0] - MEANS[1]))))
    direct = stats.ks_2samp(p_s, p_t)
    assert res.outputs == (1,) and res.n_outputs == 2 and res.correction == "none"
    assert res.statistics[0] == pytest.approx(direct.statistic, abs=1e-6)
    assert res.p_value == pytest.approx(direct.pvalue, rel=1e-4)
    assert bbsd_test(logit, xs, xt).statistics[0] == pytest.approx(res.statistics[0], abs=1e-6)
    assert len(bbsd_test(sig, xs, xt, test="mmd", n_permutations=99, seed=0).outputs) == 2


def test_detector_fit_predict_and_result_serialise(model, rng):
    xs, _ = _mixture(rng, 60)
    det = BBSDDetector(model, alpha=0.01).fit(xs)
    assert det.probs_source_.shape == (60, 3)
    res = det.predict(_mixture(rng, 30, proportions=(0.8, 0.1, 0.1))[0])
    assert isinstance(res, BBSDResult) and res.alpha == 0.01
    d = res.to_dict()
    assert d["test"] == "ks" and d["mmd"] is None and len(d["p_values"]) == 3 and "direction" in d
    with pytest.raises(dataclasses_frozen_error()):
        res.p_value = 0.5
    again = res.at_level(0.5)
    assert again.alpha == 0.5 and again.threshold == pytest.approx(0.5 / 3) and again.p_value == res.p_value
    assert again.is_shift == (res.p_value <= 0.5)
    assert "BBSD" in str(res) and "fitted" in repr(det)


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_batched_prediction_matches_one_batch(model, rng):
    xs, _ = _mixture(rng, 70)
    xt, _ = _mixture(rng, 33)
    a = bbsd_test(model, xs, xt, batch_size=7)
    b = bbsd_test(model, xs, xt, batch_size=1000)
    assert a.statistics == b.statistics and a.p_value == b.p_value


# ------------------------------------------------------------------------------------------------ errors


def test_errors_at_the_boundary(model, rng):
    xs, _ = _mixture(rng, 20)
    bad = xs.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x_target contains 1 NaN"):
        bbsd_test(model, xs, bad)
    with pytest.raises(ValueError, match="x_source is empty"):
        bbsd_test(model, xs[:0], xs)
    with pytest.raises(ValueError, match="x_target has 4 features, but the model expects 5"):
        bbsd_test(model, xs, xs[:, :4])
    with pytest.raises(ValueError, match="at least 2"):
        bbsd_test(model, xs[:1], xs)
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        bbsd_test("model.keras", xs, xs)
    with pytest.raises(ValueError, match="Unknown test 'chi2'"):
        bbsd_test(model, xs, xs, test="chi2")
    with pytest.raises(ValueError, match="alpha"):
        bbsd_test(model, xs, xs, alpha=1.5)
    with pytest.raises(RuntimeError, match="call fit"):
        BBSDDetector(model).predict(xs)


def test_not_a_classifier_is_refused():
    inp = keras.Input((5,))
    relu = keras.Model(inp, keras.layers.Dense(3, activation="relu")(inp))
    with pytest.raises(ValueError, match="not a classifier"):
        BBSDDetector(relu)
    one_softmax = keras.Model(inp, keras.layers.Dense(1, activation="softmax")(inp))
    with pytest.raises(ValueError, match="single softmax unit"):
        BBSDDetector(one_softmax)
    two = keras.Model(inp, [keras.layers.Dense(3, activation="softmax")(inp), keras.layers.Dense(2)(inp)])
    with pytest.raises(ValueError, match="2 outputs"):
        BBSDDetector(two)
    seq_in = keras.Input((4, 5))
    seq = keras.Model(seq_in, keras.layers.Dense(3, activation="softmax")(seq_in))
    with pytest.raises(ValueError, match=r"\(batch, n_classes\)"):
        BBSDDetector(seq)


def test_probability_core_validates(rng):
    p = rng.dirichlet([1, 1, 1], size=10)
    with pytest.raises(ValueError, match="do not sum to 1"):
        bbsd_from_probabilities(p * 0.5, p)
    with pytest.raises(ValueError, match="3 classes were expected"):
        bbsd_from_probabilities(p, rng.dirichlet([1, 1], size=10))
    with pytest.raises(ValueError, match="at least 2"):
        bbsd_from_probabilities(p[:1], p)


def test_non_finite_model_outputs_are_an_error(rng):
    model = _linear_classifier("linear")
    w, b = model.get_layer("out").get_weights()
    model.get_layer("out").set_weights([w * np.nan, b])
    with pytest.raises(ValueError, match="not finite"):
        bbsd_test(model, _mixture(rng, 10)[0], _mixture(rng, 10)[0])
