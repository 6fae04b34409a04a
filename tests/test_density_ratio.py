"""DensityRatioEstimator, effective_sample_size: reference values, known Gaussian ratios, no shift, clipping, errors."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from threadpoolctl import threadpool_limits

from shiftkit.shift.density_ratio import DensityRatioEstimator, effective_sample_size


def _gaussians(n, m, mu, seed):
    """Source N(0, I), target N(mu, I): the true ratio is exp(mu . x - |mu|^2 / 2)."""
    rng = np.random.default_rng(seed)
    mu = np.asarray(mu, dtype=float)
    return rng.normal(size=(n, len(mu))), rng.normal(size=(m, len(mu))) + mu


def _true_ratio(x, mu):
    mu = np.asarray(mu, dtype=float)
    return np.exp(x @ mu - mu @ mu / 2.0)


# ------------------------------------------------------------------------------- effective sample size
def test_effective_sample_size_reference_values():
    assert effective_sample_size([1.0] * 7) == pytest.approx(7.0)
    assert effective_sample_size([5.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_sample_size([3.0, 1.0]) == pytest.approx(16.0 / 10.0)
    # (1 + 2 + 3 + 4)^2 / (1 + 4 + 9 + 16) = 100 / 30
    assert effective_sample_size(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(10.0 / 3.0)
    # scale-free, and safe for huge weights
    w = np.random.default_rng(0).exponential(size=50)
    assert effective_sample_size(1e300 * w) == pytest.approx(effective_sample_size(w))
    # exponential weights: (sum w)^2 / sum w^2 -> E[w]^2 / E[w^2] = 1/2 of n
    big = np.random.default_rng(1).exponential(size=200_000)
    assert effective_sample_size(big) / 200_000 == pytest.approx(0.5, abs=0.01)


def test_effective_sample_size_bad_input():
    with pytest.raises(ValueError, match="non-negative"):
        effective_sample_size([1.0, -0.5])
    with pytest.raises(ValueError, match="all zero"):
        effective_sample_size([0.0, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        effective_sample_size([1.0, np.nan])
    with pytest.raises(ValueError, match="1-D"):
        effective_sample_size(np.ones((3, 2)))
    with pytest.raises(ValueError, match="empty"):
        effective_sample_size([])
    with pytest.raises(TypeError, match="weights"):
        effective_sample_size(None)
    with pytest.raises(TypeError, match="numbers"):
        effective_sample_size(["a", "b"])


# ------------------------------------------------------------------------------- known ratios
@pytest.mark.parametrize("d, shift", [(2, 0.5), (5, 0.3)])
def test_weights_follow_the_true_gaussian_ratio(d, shift):
    mu = np.full(d, shift)
    for seed in range(3):
        xs, xt = _gaussians(500, 500, mu, seed)
        est = DensityRatioEstimator(seed=seed).fit(xs, xt)
        true = _true_ratio(xs, mu)
        # log-weights vs the true log-ratio (linear in x): over 10 seeds the correlation was 0.98-0.99
        assert np.corrcoef(np.log(est.weights_), np.log(true))[0, 1] > 0.93
        # the importance-weighted source mean estimates the target mean (unweighted error: |mu|)
        weighted_mean = (est.weights_[:, None] * xs).mean(axis=0)
        err = np.sqrt(np.mean((weighted_mean - mu) ** 2))
        assert err < 0.45 * shift, (seed, weighted_mean)
        assert est.weights_.mean() == pytest.approx(1.0)
        assert 0.55 < est.domain_auc_ < 0.85
        # the ESS of the true ratio, exp(-|mu|^2) of n in expectation; the estimate is in its range
        true_fraction = effective_sample_size(true) / len(true)
        assert abs(est.ess_fraction_ - true_fraction) < 0.2, (est.ess_fraction_, true_fraction)
        # new rows: weights(x) increase along mu as the true ratio does
        line = np.outer(np.linspace(-2, 2, 9), mu / np.linalg.norm(mu))
        assert np.all(np.diff(est.weights(line)) > 0)


def test_no_shift_gives_even_weights_and_chance_auc():
    aucs, fractions = [], []
    for seed in range(10):
        xs, xt = _gaussians(300, 300, np.zeros(4), seed)
        est = DensityRatioEstimator(seed=seed).fit(xs, xt)
        aucs.append(est.domain_auc_)
        fractions.append(est.ess_fraction_)
        assert est.ess_fraction_ > 0.9
        assert np.all(np.abs(np.log(est.weights_)) < 0.5)
        assert est.calibration_[0] >= 0.0
        if est.calibration_[0] == 0.0:  # out-of-fold worse than chance: no ratio, every weight 1
            np.testing.assert_allclose(est.weights_, 1.0, rtol=1e-9)
    # chance: out-of-fold AUC near 0.5 on average (sd of one AUC at n = m = 300 is about 0.024)
    assert abs(np.mean(aucs) - 0.5) < 0.03, aucs
    assert np.mean(fractions) > 0.95


def test_scores_worse_than_chance_never_invert_the_weights():
    """Regression: a null draw whose cross-fitted scores are anti-correlated with the domain (AUC 0.42)
    got a negative Platt slope, i.e. inverted weights from 0.38 to 2.66; now all weights are 1."""
    xs, xt = _gaussians(300, 300, np.zeros(4), 8)
    est = DensityRatioEstimator(seed=8).fit(xs, xt)
    assert est.domain_auc_ < 0.45
    assert est.calibration_[0] == 0.0
    np.testing.assert_allclose(est.weights_, 1.0, rtol=1e-9)
    np.testing.assert_allclose(est.weights(xt), 1.0, rtol=1e-9)
    assert est.ess_fraction_ == pytest.approx(1.0)


def test_more_shift_means_lower_ess_and_higher_auc():
    fractions, aucs = [], []
    for shift in (0.0, 0.4, 0.8, 1.2):
        xs, xt = _gaussians(400, 400, [shift, 0.0, 0.0], 7)
        est = DensityRatioEstimator(seed=0).fit(xs, xt)
        fractions.append(est.ess_fraction_)
        aucs.append(est.domain_auc_)
    assert all(a > b for a, b in zip(fractions, fractions[1:])), fractions
    assert all(a < b for a, b in zip(aucs, aucs[1:])), aucs


def test_unequal_domain_sizes_keep_the_ratio_scale():
    """n_s / n_t undoes the classifier's prior odds: raw ratios average about 1 over the source."""
    mu = np.array([0.5, 0.0])
    xs, xt = _gaussians(800, 200, mu, 3)
    est = DensityRatioEstimator(seed=0, clip_quantile=None).fit(xs, xt)
    assert est.normalizer_ == pytest.approx(1.0, abs=0.15)
    assert np.mean(est.density_ratio(xs)) == pytest.approx(1.0, abs=0.15)
    xs2, xt2 = _gaussians(200, 800, mu, 3)
    est2 = DensityRatioEstimator(seed=0, clip_quantile=None).fit(xs2, xt2)
    assert est2.normalizer_ == pytest.approx(1.0, abs=0.15)


@pytest.mark.slow
def test_calibration_fixes_a_miscalibrated_classifier():
    """A random forest's probabilities are not calibrated; Platt scaling brings its weights closer to the truth."""
    mu = np.array([0.7, 0.0, 0.0])
    errs = {True: [], False: []}
    for seed in range(3):
        xs, xt = _gaussians(400, 400, mu, seed)
        for calibrate in (True, False):
            est = DensityRatioEstimator(
                classifier=RandomForestClassifier(n_estimators=50, min_samples_leaf=20), calibrate=calibrate,
                clip_quantile=None, seed=seed,
            ).fit(xs, xt)
            errs[calibrate].append(np.mean((np.log(est.weights_) - np.log(_true_ratio(xs, mu))) ** 2))
    assert np.mean(errs[True]) < np.mean(errs[False]), errs
    est = DensityRatioEstimator(calibrate=False, seed=0).fit(*_gaussians(100, 100, mu, 0))
    assert est.calibration_ == (1.0, 0.0)


@pytest.mark.slow
def test_gbm_classifier_runs():
    xs, xt = _gaussians(300, 300, [1.0, 0.0], 0)
    # one OpenMP thread: on a shared 2-core machine its threads oversubscribe (12 s vs 0.3 s a fit)
    with threadpool_limits(1):
        est = DensityRatioEstimator(classifier="gbm", seed=0).fit(xs, xt)
    assert est.domain_auc_ > 0.65 and est.weights(xt).shape == (300,)


# ------------------------------------------------------------------------------- clipping, seeds, new rows
def test_clipping_is_honoured():
    xs, xt = _gaussians(400, 400, [1.5, 0.0], 0)
    for q in (0.8, 0.95):
        est = DensityRatioEstimator(clip_quantile=q, seed=0).fit(xs, xt)
        assert est.weights_.max() == pytest.approx(est.clip_value_)
        assert est.weights_.max() <= est.clip_value_ + 1e-12
        assert est.fraction_clipped_ == pytest.approx(1 - q, abs=0.01)
        far = np.array([[10.0, 0.0], [-10.0, 0.0]])
        w = est.weights(far)
        assert w[0] == pytest.approx(est.clip_value_) and 0 <= w[1] < 1e-3
        assert np.all(est.weights(xt) <= est.clip_value_ + 1e-12)
    loose = DensityRatioEstimator(clip_quantile=None, seed=0).fit(xs, xt)
    tight = DensityRatioEstimator(clip_quantile=0.8, seed=0).fit(xs, xt)
    assert np.isinf(loose.clip_value_) and loose.fraction_clipped_ == 0.0
    assert tight.ess_fraction_ > loose.ess_fraction_  # capping evens the weights
    one = DensityRatioEstimator(clip_quantile=1.0, seed=0).fit(xs, xt)
    np.testing.assert_array_equal(one.weights_, loose.weights_)


def test_weights_of_new_rows_match_the_out_of_fold_weights_roughly():
    xs, xt = _gaussians(500, 500, [0.5, 0.5], 2)
    est = DensityRatioEstimator(seed=0).fit(xs, xt)
    # the fold models' average vs each row's out-of-fold model: close on a smooth (linear) ratio
    assert np.corrcoef(est.weights(xs), est.weights_)[0, 1] > 0.98
    held_out, _ = _gaussians(2000, 1, [0.5, 0.5], 99)
    assert est.weights(held_out).mean() == pytest.approx(1.0, abs=0.15)


def test_seeded_fits_repeat_and_seeds_matter():
    xs, xt = _gaussians(200, 150, [0.5, 0.0, 0.2], 5)
    a = DensityRatioEstimator(seed=1).fit(xs, xt)
    b = DensityRatioEstimator(seed=1).fit(xs, xt)
    c = DensityRatioEstimator(seed=2).fit(xs, xt)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.weights(xt), b.weights(xt))
    assert a.domain_auc_ == b.domain_auc_
    assert not np.array_equal(a.weights_, c.weights_)  # another fold split
    summary = a.summary()
    assert summary["ess"] == pytest.approx(a.ess_) and summary["n_source"] == 200


# ------------------------------------------------------------------------------- bad input
def test_bad_input():
    xs, xt = _gaussians(40, 30, [0.5, 0.0], 0)
    est = DensityRatioEstimator(seed=0)
    with pytest.raises(ValueError, match=r"x_source must be a 2-D array.*reshape\(-1, 1\)"):
        est.fit(xs[:, 0], xt)
    with pytest.raises(ValueError, match="x_target must be a 2-D array.*Flatten"):
        est.fit(xs, xt.reshape(30, 2, 1))
    with pytest.raises(ValueError, match="x_source has 2 features but x_target has 3"):
        est.fit(xs, np.c_[xt, xt[:, 0]])
    bad = xt.copy()
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match="x_target contains 0 NaN and 1 infinite"):
        est.fit(xs, bad)
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="x_target contains 1 NaN"):
        est.fit(xs, bad)
    with pytest.raises(ValueError, match="x_source is empty"):
        est.fit(np.empty((0, 2)), xt)
    with pytest.raises(ValueError, match="x_target has 3 row.*n_splits=5"):
        est.fit(xs, xt[:3])
    with pytest.raises(TypeError, match="numbers"):
        est.fit(np.array([["a", "b"]] * 10), xt)
    with pytest.raises(TypeError, match="x_source must be an array of numbers, got None"):
        est.fit(None, xt)
    with pytest.raises(ValueError, match=r"clip_quantile must be a number in \(0, 1\], e.g. 0.99"):
        DensityRatioEstimator(clip_quantile=1.5).fit(xs, xt)
    with pytest.raises(ValueError, match="clip_quantile"):
        DensityRatioEstimator(clip_quantile=0).fit(xs, xt)
    with pytest.raises(ValueError, match="n_splits must be an integer >= 2"):
        DensityRatioEstimator(n_splits=1).fit(xs, xt)
    with pytest.raises(ValueError, match="classifier must be 'logistic', 'gbm'"):
        DensityRatioEstimator(classifier="svm").fit(xs, xt)
    with pytest.raises(TypeError, match="classifier must be .*predict_proba"):
        DensityRatioEstimator(classifier=object()).fit(xs, xt)
    with pytest.raises(TypeError, match="calibrate must be True or False"):
        DensityRatioEstimator(calibrate="yes").fit(xs, xt)
    with pytest.raises(ValueError, match="seed"):
        DensityRatioEstimator(seed=-1).fit(xs, xt)
    with pytest.raises(AttributeError, match="not fitted yet.*fit\\(x_source, x_target\\)"):
        DensityRatioEstimator().weights(xs)
    est.fit(xs, xt)
    with pytest.raises(ValueError, match="x has 3 features, but the estimator was fitted on 2"):
        est.weights(np.ones((4, 3)))
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        est.weights(np.ones(2))
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        est.weights(np.array([[np.nan, 0.0]]))
