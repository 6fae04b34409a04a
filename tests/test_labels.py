"""Label distributions, ratios, imbalance, label-shift distances and target-prior estimation."""

import functools
import json
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from shiftkit.shift.labels import (
    ClassImbalance,
    LabelRatios,
    LabelShiftDistance,
    PriorEstimate,
    class_imbalance,
    estimate_target_priors,
    fit_bcts,
    label_distribution,
    label_ratios,
    label_shift_distance,
    label_shift_test,
    project_to_simplex,
)

SEEDS = (0, 1, 2)


def _one_hot(y, k):
    return np.eye(k)[np.asarray(y)]


# ---------------------------------------------------------------------------------------------
# label_distribution / label_ratios / class_imbalance
# ---------------------------------------------------------------------------------------------


def test_label_distribution_ints_and_one_hot():
    y = [0, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(label_distribution(y), [1 / 6, 2 / 6, 3 / 6])
    np.testing.assert_allclose(label_distribution(_one_hot(y, 3)), [1 / 6, 2 / 6, 3 / 6])
    # (n, 1) column of ints is read as class indices
    np.testing.assert_allclose(label_distribution(np.array(y).reshape(-1, 1)), [1 / 6, 2 / 6, 3 / 6])


def test_label_distribution_pads_to_n_classes():
    np.testing.assert_allclose(label_distribution([0, 0, 1, 2], n_classes=5), [0.5, 0.25, 0.25, 0, 0])
    # one-hot width is the class count even when the last class never occurs
    np.testing.assert_allclose(label_distribution(_one_hot([0, 1, 1], 4)), [1 / 3, 2 / 3, 0, 0])


def test_label_ratios_hand_computed():
    r = label_ratios([0, 0, 0, 1], [0, 1, 1, 1])
    assert isinstance(r, LabelRatios)
    np.testing.assert_allclose(r.source_proportions, [0.75, 0.25])
    np.testing.assert_allclose(r.target_proportions, [0.25, 0.75])
    np.testing.assert_allclose(r.ratios, [1 / 3, 3.0])
    assert r.absent_in_source == () and r.absent_in_target == ()


def test_label_ratios_absent_classes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning
        r = label_ratios([0, 0, 1, 1, 3], _one_hot([0, 1, 1, 2], 4))
    np.testing.assert_allclose(r.source_proportions, [0.4, 0.4, 0.0, 0.2])
    np.testing.assert_allclose(r.target_proportions, [0.25, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(r.ratios[[0, 1, 3]], [0.625, 1.25, 0.0])
    assert np.isnan(r.ratios[2])
    assert r.absent_in_source == (2,)
    assert r.absent_in_target == (3,)


def test_label_ratios_default_classes_are_the_values_of_both():
    # Issue 9 #2 changed this default: the classes are the distinct values of both arrays (was
    # max label + 1, which made years 2019/2020 into 2,021 classes).
    r = label_ratios([0, 1], [0, 1, 4])
    assert r.ratios.shape == (3,) and r.classes == (0, 1, 4)
    assert r.absent_in_source == (2,)  # the code of class 4
    assert np.isnan(r.ratios[2])
    r = label_ratios([0, 1], [0, 1, 4], n_classes=5)  # class indices with n_classes: empty classes kept
    assert r.ratios.shape == (5,) and r.absent_in_source == (4,)
    assert np.isnan(r.ratios[2:]).all()  # absent from both: still NaN, not listed
    r = label_ratios([0, 1], [0, 1], n_classes=3)
    assert r.ratios.shape == (3,)


def test_class_imbalance_hand_computed():
    ci = class_imbalance([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
    assert isinstance(ci, ClassImbalance)
    assert ci.counts.tolist() == [6, 3, 1]
    np.testing.assert_allclose(ci.proportions, [0.6, 0.3, 0.1])
    assert ci.imbalance_ratio == pytest.approx(6.0)
    expected_h = -(0.6 * np.log(0.6) + 0.3 * np.log(0.3) + 0.1 * np.log(0.1)) / np.log(3)
    assert ci.normalized_entropy == pytest.approx(expected_h)
    assert ci.normalized_entropy == pytest.approx(0.8173, abs=1e-4)
    assert ci.minority_classes == (1, 2)
    assert ci.n_samples == 10 and ci.n_classes == 3


def test_class_imbalance_balanced_and_empty_class():
    ci = class_imbalance(_one_hot([0, 1, 2, 3] * 5, 4))
    assert ci.imbalance_ratio == 1.0
    assert ci.normalized_entropy == pytest.approx(1.0)
    assert ci.minority_classes == ()

    ci = class_imbalance([0, 1, 1], n_classes=3)
    assert ci.imbalance_ratio == np.inf
    assert ci.minority_classes == (2,)  # class 0 holds exactly the uniform share 1/3: not below it
    assert ci.to_dict()["imbalance_ratio"] is None
    json.dumps(ci.to_dict(), allow_nan=False)


# ---------------------------------------------------------------------------------------------
# label_shift_distance
# ---------------------------------------------------------------------------------------------


def _direct_js_bits(p, q):
    p, q = np.asarray(p, float), np.asarray(q, float)
    m = (p + q) / 2

    def kl(a, b):
        nz = a > 0
        return np.sum(a[nz] * np.log2(a[nz] / b[nz]))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


@pytest.mark.parametrize(
    "p, q",
    [
        ([0.5, 0.5], [0.9, 0.1]),
        ([0.2, 0.3, 0.5], [0.6, 0.3, 0.1]),
        ([1.0, 0.0, 0.0], [0.0, 0.5, 0.5]),  # disjoint supports: TV = JS = 1
        ([0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]),
    ],
)
def test_label_shift_distance_against_direct_formula(p, q):
    d = label_shift_distance(p, q)
    assert isinstance(d, LabelShiftDistance)
    assert d.total_variation == pytest.approx(0.5 * np.abs(np.subtract(p, q)).sum())
    assert d.jensen_shannon == pytest.approx(_direct_js_bits(p, q), abs=1e-12)
    assert 0.0 <= d.jensen_shannon <= 1.0
    back = label_shift_distance(q, p)  # symmetric
    assert back.total_variation == pytest.approx(d.total_variation)
    assert back.jensen_shannon == pytest.approx(d.jensen_shannon)


def test_label_shift_distance_disjoint_is_one_and_identical_is_zero():
    d = label_shift_distance([1.0, 0.0], [0.0, 1.0])
    assert d.total_variation == pytest.approx(1.0) and d.jensen_shannon == pytest.approx(1.0)
    p = label_distribution([0, 1, 1, 2, 2, 2, 2])
    d = label_shift_distance(p, p)
    assert d.total_variation == 0.0 and d.jensen_shannon == 0.0


# ---------------------------------------------------------------------------------------------
# estimate_target_priors: a synthetic label shift with known target priors
# ---------------------------------------------------------------------------------------------


def _sharpen(p, factor):
    """Multiply the log-probabilities by `factor` and renormalise: an overconfident classifier."""
    z = factor * np.log(p + 1e-12)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=None)
def _scenario(seed, target_priors, separation, n_train=3000, n_val=3000, n_target=5000):
    """Gaussian class-conditionals in 5-D (unit covariance, overlapping), identical in both domains.

    Class means: class 0 at the origin, class c >= 1 at `separation` along axis c - 1. The source
    priors are near-uniform; the target priors are `target_priors`. A logistic regression trained
    on the source gives probabilities on a separate held-out source set and on the target.
    """
    rng = np.random.default_rng(seed)
    k = len(target_priors)
    means = np.zeros((k, 5))
    for c in range(1, k):
        means[c, c - 1] = separation
    source_priors = np.full(k, 1.0 / k) + np.linspace(0.02, -0.02, k)

    def draw(priors, n):
        y = rng.choice(k, size=n, p=priors)
        return means[y] + rng.normal(size=(n, 5)), y

    x_tr, y_tr = draw(source_priors, n_train)
    x_val, y_val = draw(source_priors, n_val)
    x_t, _ = draw(np.asarray(target_priors), n_target)
    clf = LogisticRegression().fit(x_tr, y_tr)
    accuracy = float((clf.predict(x_val) == y_val).mean())
    return clf.predict_proba(x_val), y_val, clf.predict_proba(x_t), accuracy


@pytest.mark.parametrize("method", ["bbse", "em"])
@pytest.mark.parametrize("seed", SEEDS)
def test_recovers_three_class_target_priors(method, seed):
    truth = (0.6, 0.3, 0.1)
    p_val, y_val, p_t, accuracy = _scenario(seed, truth, 3.0)
    assert 0.85 < accuracy < 0.95  # imperfect classifier: the estimators must undo its confusions
    est = estimate_target_priors(p_val, y_val, p_t, method=method)
    assert isinstance(est, PriorEstimate) and est.method == method and est.converged
    assert np.abs(est.priors - truth).sum() < 0.05
    # the source priors are near-uniform, so the naive "no shift" answer is far off
    assert np.abs(est.source_priors - truth).sum() > 0.4


@pytest.mark.parametrize("method", ["bbse", "em"])
@pytest.mark.parametrize("seed", SEEDS)
def test_recovers_binary_target_priors_from_sigmoid_outputs(method, seed):
    truth = (0.2, 0.8)
    p_val, y_val, p_t, _ = _scenario(seed, truth, 3.0)
    # a sigmoid model returns P(class 1) only: shapes (n,) and (n, 1) are both accepted
    est = estimate_target_priors(p_val[:, 1], y_val, p_t[:, 1:], method=method)
    assert est.priors.shape == (2,)
    assert np.abs(est.priors - truth).sum() < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_calibration_fixes_em_on_an_overconfident_classifier(seed):
    # Checked over 200 seeds: calibrated EM wins on every one (mean L1 0.021 vs 0.099).
    truth = np.array([0.6, 0.3, 0.1])
    p_val, y_val, p_t, _ = _scenario(seed, tuple(truth), 2.5)
    p_val, p_t = _sharpen(p_val, 3.0), _sharpen(p_t, 3.0)
    calibrated = estimate_target_priors(p_val, y_val, p_t, "em", calibrate=True)
    uncalibrated = estimate_target_priors(p_val, y_val, p_t, "em", calibrate=False)
    err_cal = np.abs(calibrated.priors - truth).sum()
    err_uncal = np.abs(uncalibrated.priors - truth).sum()
    assert err_cal < err_uncal
    assert err_cal < 0.05


def test_bias_corrected_temperature_scaling_finds_the_sharpening_factor():
    p_val, y_val, _, _ = _scenario(0, (0.6, 0.3, 0.1), 2.5)
    temperature, bias = fit_bcts(_sharpen(p_val, 3.0), y_val)
    assert temperature == pytest.approx(3.0, rel=0.15)
    assert bias.shape == (3,)


def test_weights_are_priors_over_source_priors_and_to_dict_is_json():
    p_val, y_val, p_t, _ = _scenario(0, (0.6, 0.3, 0.1), 3.0)
    for method in ("bbse", "em"):
        est = estimate_target_priors(p_val, _one_hot(y_val, 3), p_t, method=method)
        np.testing.assert_allclose(est.weights, est.priors / est.source_priors)
        np.testing.assert_allclose(est.source_priors, np.bincount(y_val) / len(y_val))
        assert est.priors.sum() == pytest.approx(1.0) and (est.priors >= 0).all()
        d = est.to_dict()
        text = json.dumps(d, allow_nan=False)
        assert json.loads(text)["method"] == method
        assert isinstance(d["priors"], list) and isinstance(d["n_iter"], int)
    with pytest.raises(ValueError, match="read-only"):
        est.priors[0] = 1.0  # frozen result, read-only arrays


def test_every_result_to_dict_is_strict_json():
    results = [
        label_ratios([0, 0, 1], [1, 2, 2]),  # NaN ratio -> None
        class_imbalance([0, 0, 1], n_classes=3),  # inf ratio -> None
        label_shift_distance([0.5, 0.5], [0.25, 0.75]),
    ]
    for result in results:
        json.dumps(result.to_dict(), allow_nan=False)
    assert results[0].to_dict()["ratios"][2] is None


def test_bbse_singular_confusion_matrix_warns_and_stays_on_simplex():
    rng = np.random.default_rng(0)
    y_val = np.repeat([0, 1, 2], 100)
    # the classifier cannot tell classes 1 and 2 apart and always predicts 1 for both
    p_val = np.where(y_val[:, None] == 0, [0.8, 0.15, 0.05], [0.1, 0.6, 0.3])
    p_t = np.array([[0.8, 0.15, 0.05]] * 50 + [[0.1, 0.6, 0.3]] * 150)
    with pytest.warns(UserWarning, match="confuses classes"):
        est = estimate_target_priors(p_val, y_val, rng.permutation(p_t), method="bbse")
    assert np.all(np.isfinite(est.priors)) and (est.priors >= 0).all()
    assert est.priors.sum() == pytest.approx(1.0)
    assert est.priors[0] == pytest.approx(0.25)


def test_em_reports_non_convergence():
    p_val, y_val, p_t, _ = _scenario(0, (0.6, 0.3, 0.1), 3.0)
    with pytest.warns(UserWarning, match="did not converge"):
        est = estimate_target_priors(p_val, y_val, p_t, "em", max_iter=2)
    assert not est.converged and est.n_iter == 2


def test_project_to_simplex():
    np.testing.assert_allclose(project_to_simplex(np.array([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(project_to_simplex(np.array([1.2, -0.4, 0.2])), [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(project_to_simplex(np.array([0.5, 0.5, 0.5])), [1 / 3] * 3)
    rng = np.random.default_rng(1)
    for _ in range(20):
        w = project_to_simplex(rng.normal(size=4) * 3)
        assert w.sum() == pytest.approx(1.0) and (w >= 0).all()


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

P_OK = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
Y_OK = np.array([0, 1, 2, 2])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"source_probs": np.where(P_OK == 0.8, np.nan, P_OK)}, ValueError, "source_probs contains 1 NaN"),
        ({"target_probs": np.where(P_OK == 0.8, np.nan, P_OK)}, ValueError, "target_probs contains 1 NaN"),
        ({"target_probs": P_OK * 0.5}, ValueError, "target_probs: 4 row.*do not sum to 1"),
        ({"target_probs": P_OK[:, :2] / P_OK[:, :2].sum(1, keepdims=True)}, ValueError, "target_probs has 2"),
        ({"source_labels": [0, 1, 2, -1]}, ValueError, "source_labels has 4 distinct value.*has 3 classes"),
        ({"source_labels": [0, 1, 2, 1.5]}, ValueError, "source_labels .*fractional"),
        ({"source_labels": [0, 1, 2, 3]}, ValueError, r"source_labels has 4 distinct value\(s\) \[0, 1, 2, 3\]"),
        ({"source_labels": _one_hot([0, 1, 2, 3], 4)}, ValueError, "source_labels is one-hot with 4"),
        ({"source_labels": [0, 1, 2]}, ValueError, "source_labels has 3 labels but source_probs has 4"),
        ({"source_labels": [0, 1, 1, 0]}, ValueError, r"source_labels has no sample of class\(es\) \[2\]"),
        ({"source_labels": ["a", "b", "b", "a"]}, ValueError, r"no sample of class\(es\) \['c'\]|2 distinct"),
        ({"source_probs": []}, ValueError, "source_probs is empty"),
        ({"target_probs": np.empty((0, 3))}, ValueError, "target_probs is empty"),
        ({"method": "kmm"}, ValueError, "Unknown method 'kmm'. Choose one of: bbse, em"),
        ({"max_iter": 0}, ValueError, "max_iter"),
        ({"tol": -1.0}, ValueError, "tol"),
        ({"calibrate": "yes"}, TypeError, "calibrate"),
    ],
)
def test_estimate_target_priors_rejects_bad_input(kwargs, error, match):
    args = {"source_probs": P_OK, "source_labels": Y_OK, "target_probs": P_OK, "method": "em"}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        estimate_target_priors(**args)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: label_distribution([]), ValueError, "y is empty"),
        (lambda: label_distribution([0, 0.5]), ValueError, "y must hold class labels; found fractional"),
        (lambda: label_distribution([0, 1, 5, 7], n_classes=3), ValueError, "do not fit n_classes=3"),
        (lambda: label_distribution(_one_hot([0, 1], 3), n_classes=4), ValueError, "y is one-hot with 3"),
        (lambda: label_distribution([0, np.nan]), ValueError, "y has NaN"),
        (lambda: label_distribution([0, 1], n_classes=0), ValueError, "n_classes"),
        (lambda: label_ratios([0, 1], []), ValueError, "y_target is empty"),
        (lambda: label_ratios([0, 1], np.ones((2, 2, 2))), ValueError, "y_target must be a 1-D"),
        (lambda: class_imbalance([1.5, 0]), ValueError, "y must hold class labels; found fractional"),
        (lambda: label_shift_distance([0.5, 0.5], [0.2, 0.3, 0.5]), ValueError, "p and q must have the same"),
        (lambda: label_shift_distance([0.5, 0.6], [0.5, 0.5]), ValueError, "p sums to 1.1.*Normalise"),
        (lambda: label_shift_distance([0.5, 0.5], [2.0, 3.0]), ValueError, "q sums to 5.*Normalise"),
        (lambda: label_shift_distance([0.5, 0.5], [1.5, -0.5]), ValueError, "q must be non-negative"),
        (lambda: label_shift_distance([np.nan, 1.0], [0.5, 0.5]), ValueError, "p contains 1 NaN"),
        (lambda: label_shift_distance([], [0.5, 0.5]), ValueError, "p is empty"),
        (lambda: label_shift_distance([[0.5, 0.5], [0.5, 0.5]], [0.5, 0.5]), ValueError, "p must be a 1-D"),
    ],
)
def test_label_functions_reject_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_calibration_does_not_overfit_a_small_separable_held_out_set():
    """Regression: unpenalised BCTS drove T -> 0.1 and |b| -> 29 on 40 nearly separable rows."""
    rng = np.random.default_rng(2)

    def draw(n, prior):
        y = (rng.random(n) < prior).astype(int)
        x = rng.normal(size=(n, 2)) + 4.0 * y[:, None]
        return x, y

    xtr, ytr = draw(300, 0.4)
    clf = LogisticRegression(C=100.0, max_iter=1000).fit(xtr, ytr)
    xval, yval = draw(40, 0.4)  # unpenalised BCTS fits T = 0.10, b = +-28.9 here (1 error in 40)
    xt, yt = draw(3000, 0.08)
    temperature, bias = fit_bcts(np.clip(clf.predict_proba(xval), 1e-12, 1), yval)
    assert temperature > 0.3 and np.abs(bias).max() < 3.0
    est = estimate_target_priors(clf.predict_proba(xval), yval, clf.predict_proba(xt), method="em")
    assert abs(est.priors[1] - yt.mean()) < 0.03


# ---------------------------------------------------------------------------------------------
# Issue 9 #2: any label values are classes (1..K, years, strings, bools), originals kept
# ---------------------------------------------------------------------------------------------


def test_labels_coded_1_and_2_are_two_balanced_classes():
    ci = class_imbalance([1, 2, 1, 2, 2, 1])
    assert ci.imbalance_ratio == 1.0 and ci.n_classes == 2 and ci.classes == (1, 2)
    np.testing.assert_allclose(label_distribution([1, 2, 2, 2]), [0.25, 0.75])
    r = label_ratios([1, 1, 2, 2], [1, 2, 2, 2])
    np.testing.assert_allclose(r.ratios, [0.5, 1.5])
    assert r.classes == (1, 2) and r.to_dict()["classes"] == [1, 2]


def test_year_labels_are_two_classes_not_2021():
    ci = class_imbalance([2019, 2020, 2020, 2019.0])
    assert ci.n_classes == 2 and ci.classes == (2019, 2020) and ci.counts.tolist() == [2, 2]
    r = label_ratios([2019, 2020], [2020, 2020, 2021])
    assert r.classes == (2019, 2020, 2021) and r.absent_in_source == (2,)
    assert "2021" in str(r)


def test_string_and_bool_labels():
    ci = class_imbalance(["benign", "malignant", "benign", "benign"])
    assert ci.classes == ("benign", "malignant") and ci.imbalance_ratio == 3.0
    assert ci.minority_classes == (1,) and "malignant" in str(ci)
    json.dumps(ci.to_dict(), allow_nan=False)
    np.testing.assert_allclose(label_distribution([True, False, True, True]), [0.25, 0.75])
    r = label_ratios(["a", "b"], ["b", "b", "b", "a"])
    np.testing.assert_allclose(r.ratios, [0.5, 1.5])


def test_n_classes_keeps_class_indices_as_they_are():
    np.testing.assert_allclose(label_distribution([1, 1, 2], n_classes=4), [0, 2 / 3, 1 / 3, 0])
    assert class_imbalance([0, 1, 1], n_classes=3).classes == (0, 1, 2)


def test_estimate_target_priors_reads_labels_coded_1_to_k():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=600)
    probs = np.full((600, 3), 0.1)
    probs[np.arange(600), y] = 0.8
    est = estimate_target_priors(probs, y + 1, probs, method="em")
    assert est.classes == (1, 2, 3)
    np.testing.assert_allclose(est.priors, np.bincount(y) / 600, atol=0.02)
    est = estimate_target_priors(probs, np.array(["a", "b", "c"])[y], probs, method="bbse")
    assert est.classes == ("a", "b", "c")


# ---------------------------------------------------------------------------------------------
# label_shift_test: exact permutation test of "same class distribution"
# ---------------------------------------------------------------------------------------------


def test_label_shift_test_matches_chi_square_on_large_samples():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.choice(3, 800, p=[0.5, 0.3, 0.2]), rng.choice(3, 900, p=[0.45, 0.33, 0.22])
    res = label_shift_test(a, b, n_permutations=4000, seed=0)
    table = np.stack([np.bincount(a), np.bincount(b)])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert res.statistic == pytest.approx(chi2)
    assert res.p_value == pytest.approx(p, abs=0.03)
    assert res.n_permutations == 4000 and res.source_counts.tolist() == np.bincount(a).tolist()
    json.dumps(res.to_dict(), allow_nan=False)


@pytest.mark.parametrize("k, n, m, concentrated", [(2, 30, 200, False), (4, 100, 40, True), (3, 12, 15, False)])
def test_label_shift_test_level_over_300_nulls(k, n, m, concentrated):
    rng = np.random.default_rng(k * 1000 + n)
    p = np.r_[0.85, np.full(k - 1, 0.15 / (k - 1))] if concentrated else np.full(k, 1.0 / k)
    rejections = sum(
        label_shift_test(rng.choice(k, n, p=p), rng.choice(k, m, p=p), n_permutations=199, seed=i).p_value <= 0.05
        for i in range(300)
    )
    assert rejections / 300 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300), rejections


def test_label_shift_test_detects_a_prior_change_and_keeps_class_values():
    rng = np.random.default_rng(2)
    a = rng.choice(["x", "y"], 200, p=[0.5, 0.5])
    b = rng.choice(["x", "y"], 200, p=[0.75, 0.25])
    res = label_shift_test(a, b, n_permutations=999, seed=0)
    assert res.p_value < 0.01 and res.classes == ("x", "y")
    assert res.p_value >= 1 / 1000


def test_label_shift_test_rejects_bad_input():
    with pytest.raises(ValueError, match="n_permutations"):
        label_shift_test([0, 1], [0, 1], n_permutations=0)
    with pytest.raises(ValueError, match="y_target is empty"):
        label_shift_test([0, 1], [])


def test_the_split_package_keeps_every_old_name():
    """shiftkit.shift.labels is a package now; the names other modules import stay where they were."""
    import shiftkit.shift.labels as labels
    from shiftkit.shift.labels import distributions, permutation, priors, results

    for name in labels.__all__:
        assert getattr(labels, name) is not None
    assert labels.label_shift_test is permutation.label_shift_test
    assert labels.estimate_target_priors is priors.estimate_target_priors
    assert labels.label_distribution is distributions.label_distribution
    assert labels.PriorEstimate is results.PriorEstimate
    # old private names, still imported by shiftkit.adapt.label_shift
    assert labels._fit_bcts is priors.fit_bcts and labels._apply_bcts is priors.apply_bcts
    assert labels._frozen is results.frozen_array and labels._LOG_EPS == priors.LOG_EPS
