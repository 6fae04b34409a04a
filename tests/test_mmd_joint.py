"""The joint aggregated MMD test over representations and bandwidths (shiftkit.shift.mmd_joint, issue 12)."""

import json
import math

import numpy as np
import pytest

from shiftkit.shift.mmd import DEFAULT_AGG_FACTORS, mmd_agg_test
from shiftkit.shift.mmd_joint import (
    DEFAULT_JOINT_FACTORS,
    DEFAULT_JOINT_REPRESENTATIONS,
    JointMMDDetector,
    JointMMDResult,
    mmd_joint_from_representations,
    mmd_joint_test,
)
from shiftkit.shift.scaling import standardize


def _softmax_of(x, w):
    """A fixed 'model' output: softmax of a linear map (a function of the row alone)."""
    z = x @ w
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _reference(reps_s, reps_t, factors, n_perm, seed):
    """The joint p-value by the definition: explicit kernel matrices, explicit permuted splits."""
    n, m = len(next(iter(reps_s.values()))), len(next(iter(reps_t.values())))
    big_n = n + m
    rng = np.random.default_rng(seed)
    splits = [np.arange(big_n)] + [rng.permutation(big_n) for _ in range(n_perm)]
    rows = []
    for name in reps_s:
        z = np.concatenate([reps_s[name], reps_t[name]]).astype(np.float64)
        d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
        iu = np.triu_indices(big_n, 1)
        dist = np.sqrt(d2[iu])
        med = float(np.median(dist))
        for f in factors[name]:
            k = np.exp(-d2 / (2 * (f * med) ** 2))
            row = []
            for perm in splits:
                a, b = perm[:n], perm[n:]
                kxx, kyy, kxy = k[np.ix_(a, a)], k[np.ix_(b, b)], k[np.ix_(a, b)]
                row.append((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                           - 2 * kxy.mean())
            rows.append(row)
    s = np.array(rows)
    counts = np.array([[np.sum(r >= v) for v in r] for r in s])
    cmin = counts.min(axis=0)
    return s, counts[:, 0] / (1 + n_perm), (1 + np.sum(cmin[1:] <= cmin[0])) / (1 + n_perm)


def test_agrees_with_a_direct_computation_of_the_statistic_and_p_value():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4))
    xs, xt = rng.normal(size=(14, 3)), rng.normal(0.4, 1.0, size=(11, 3))
    ps, pt = _softmax_of(xs, w), _softmax_of(xt, w)
    res = mmd_joint_from_representations({"input": xs, "softmax": ps}, {"input": xt, "softmax": pt},
                                         n_permutations=60, seed=3)
    factors = {"input": DEFAULT_AGG_FACTORS, "softmax": (0.5, 1.0, 2.0)}  # the defaults, written out
    s, per_kernel, p_value = _reference({"input": xs, "softmax": ps}, {"input": xt, "softmax": pt}, factors, 60, 3)
    np.testing.assert_allclose(res.statistics, s[:, 0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.null_statistics, s[:, 1:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.p_values, per_kernel)
    assert res.p_value == pytest.approx(p_value)
    assert res.representations == ("input",) * 5 + ("softmax",) * 3
    assert res.factors == tuple(DEFAULT_AGG_FACTORS) + (0.5, 1.0, 2.0)
    assert res.min_p_value == min(res.p_values) == res.p_values[res.selected]
    assert res.statistic == res.statistics[res.selected]


def test_every_representation_sees_the_same_permutations():
    """Each representation's per-kernel p-values are those of mmd_agg_test on it alone with the same seed
    (which draws its own permutations from the seed): the joint test shares one set of splits."""
    rng = np.random.default_rng(1)
    xs, xt = rng.normal(size=(30, 4)), rng.normal(size=(25, 4))
    fs, ft = np.tanh(xs[:, :2] * 3), np.tanh(xt[:, :2] * 3)
    res = mmd_joint_from_representations({"input": xs, "features": fs}, {"input": xt, "features": ft},
                                         n_permutations=99, seed=7)
    for rep, (a, b) in (("input", (xs, xt)), ("features", (fs, ft))):
        single = mmd_agg_test(a, b, n_permutations=99, seed=7)
        idx = [i for i, r in enumerate(res.representations) if r == rep]
        assert [res.p_values[i] for i in idx] == list(single.aggregate.p_values)
        np.testing.assert_allclose([res.bandwidths[i] for i in idx], single.aggregate.bandwidths, rtol=1e-12)


def test_without_a_model_it_is_the_aggregated_test_on_standardised_inputs():
    rng = np.random.default_rng(2)
    xs, xt = rng.normal(size=(40, 3)) * [1, 10, 100], rng.normal(size=(40, 3)) * [1, 10, 100]
    res = mmd_joint_test(xs, xt, n_permutations=99, seed=5)
    a, b = standardize(xs, xt)
    agg = mmd_agg_test(a, b, n_permutations=99, seed=5)
    assert res.p_value == agg.p_value and res.p_values == agg.aggregate.p_values
    assert res.standardized and set(res.representations) == {"input"}
    raw = mmd_joint_test(xs, xt, n_permutations=99, seed=5, standardize=False)
    assert raw.p_values == mmd_agg_test(xs, xt, n_permutations=99, seed=5).aggregate.p_values


def test_level_over_many_seeded_nulls():
    """Exact level: over 300 seeded nulls (two correlated representations, 8 kernels) the rejection
    rate at alpha = 0.1 is within 3 standard errors of alpha (not above; and not far below, so the
    correction is not simply conservative)."""
    alpha, trials = 0.1, 300
    w = np.random.default_rng(99).normal(size=(3, 4)) * 2
    rejections = 0
    for t in range(trials):
        rng = np.random.default_rng([12, t])
        xs, xt = rng.standard_t(3, size=(15, 3)), rng.standard_t(3, size=(12, 3))
        res = mmd_joint_from_representations({"input": xs, "softmax": _softmax_of(xs, w)},
                                             {"input": xt, "softmax": _softmax_of(xt, w)},
                                             n_permutations=99, alpha=alpha, seed=t)
        rejections += res.is_shift
    se = math.sqrt(alpha * (1 - alpha) / trials)
    assert alpha - 3 * se <= rejections / trials <= alpha + 3 * se, rejections


_MEANS = np.zeros((3, 22))
_MEANS[1, 0] = _MEANS[2, 1] = 4.0


def _mixture(rng, n, priors):
    """Three Gaussian classes in 2 of 22 dimensions (20 nuisance ones) and the exact posterior (a 'softmax')."""
    y = rng.choice(3, size=n, p=priors)
    x = _MEANS[y] + rng.normal(size=(n, 22))
    ll = -0.5 * ((x[:, None, :2] - _MEANS[None, :, :2]) ** 2).sum(-1)
    p = np.exp(ll - ll.max(axis=1, keepdims=True))
    return x, p / p.sum(axis=1, keepdims=True)


def test_power_on_a_planted_label_shift():
    """Class 0 from 1/3 to 0.7 of the target, n = 60: the inputs alone (20 nuisance dimensions dilute
    the kernel) catch few draws; with the posterior as a second representation the joint test catches
    most, on the same draws and permutations."""
    joint = alone = 0
    for t in range(20):
        rng = np.random.default_rng([30, t])
        (xs, ps), (xt, pt) = _mixture(rng, 60, [1 / 3] * 3), _mixture(rng, 60, [0.7, 0.15, 0.15])
        a, b = standardize(xs, xt)
        joint += mmd_joint_from_representations({"input": a, "softmax": ps}, {"input": b, "softmax": pt},
                                                n_permutations=199, seed=t).is_shift
        alone += mmd_agg_test(a, b, n_permutations=199, seed=t).is_shift
    assert joint >= 16 and joint >= alone + 8, (joint, alone)


def test_label_shift_through_a_model(gaussian_classifier):
    """The whole path (model -> softmax, pooled standardisation) equals the core on the model's
    outputs, and detects a label shift (class 0 from 1/3 to 0.8) through a trained classifier."""
    from shiftkit.shift.bbsd import model_probabilities

    model, _, x, y = gaussian_classifier
    hits = 0
    for t in range(4):
        rng = np.random.default_rng([32, t])
        s = np.concatenate([rng.choice(np.flatnonzero(y == k), size=20) for k in range(3)])
        tg = np.concatenate([rng.choice(np.flatnonzero(y == k), size=c) for k, c in enumerate((48, 6, 6))])
        res = mmd_joint_test(x[s], x[tg], model, n_permutations=199, seed=t)
        hits += res.is_shift
    assert hits == 4
    a, b = standardize(x[s], x[tg])
    core = mmd_joint_from_representations(
        {"input": a, "softmax": model_probabilities(model, x[s])},
        {"input": b, "softmax": model_probabilities(model, x[tg])}, n_permutations=199, seed=3)
    assert core.p_value == res.p_value and core.p_values == res.p_values


def test_power_on_a_covariate_shift_and_which_representation_shows_it(gaussian_classifier):
    """A shift along the third axis, which the classifier ignores: only the inputs can show it, and the
    joint test still detects it (the softmax kernels cost little)."""
    model, _, x, y = gaussian_classifier
    hits = 0
    for t in range(10):
        rng = np.random.default_rng([31, t])
        s, tg = rng.choice(len(x), 60, replace=False), rng.choice(len(x), 60, replace=False)
        xt = x[tg].copy()
        xt[:, 2] += 1.0
        res = mmd_joint_test(x[s], xt, model, n_permutations=199, seed=t)
        hits += res.is_shift
        if res.is_shift:
            assert res.selected_representation == "input"
    assert hits >= 9


def test_detector_matches_the_function_and_results_are_reproducible(gaussian_classifier):
    model, _, x, _ = gaussian_classifier
    det = JointMMDDetector(model, n_permutations=99, seed=4).fit(x[:50])
    a, b = det.predict(x[50:90]), mmd_joint_test(x[:50], x[50:90], model, n_permutations=99, seed=4)
    assert a == b and a.representations == tuple(r for r in DEFAULT_JOINT_REPRESENTATIONS
                                                 for _ in DEFAULT_JOINT_FACTORS[r])
    assert "fitted" in repr(det)
    with_features = mmd_joint_test(x[:50], x[50:90], model, representations=("input", "softmax", "features"),
                                   n_permutations=99, seed=4)
    assert with_features.p_values[:8] == a.p_values and len(with_features.p_values) == 13


def test_result_serialises_and_decides_at_another_level():
    rng = np.random.default_rng(3)
    xs, xt = rng.normal(size=(40, 2)), rng.normal(0.5, size=(40, 2))
    res = mmd_joint_from_representations({"input": xs, "other": xs ** 2}, {"input": xt, "other": xt ** 2},
                                         factors={"other": [1.0]}, n_permutations=199, seed=0)
    assert isinstance(res, JointMMDResult) and len(res.p_values) == 6
    d = json.loads(json.dumps(res.to_dict(include_null=True), allow_nan=False))
    assert d["p_value"] == res.p_value and len(d["null_statistics"]) == 6
    assert d["representation_p_values"]["other"] == res.p_values[-1]
    for level in (0.01, 0.2):
        r = res.at_level(level)
        assert r.is_shift == (res.p_value <= level) and r.alpha == level
        assert (r.min_p_value < r.adjusted_level) == r.is_shift
    assert "joint aggregated MMD" in str(res)


def test_bad_inputs_raise_clear_errors(gaussian_classifier):
    model, _, x, _ = gaussian_classifier
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="same feature shape"):
        mmd_joint_test(a, rng.normal(size=(20, 4)))
    nan = b.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="x_target contains 1 NaN"):
        mmd_joint_test(a, nan)
    with pytest.raises(ValueError, match=r"source\['softmax'\] has 19 rows but source\['input'\] has 20"):
        mmd_joint_from_representations({"input": a, "softmax": a[:19]}, {"input": b, "softmax": b})
    with pytest.raises(ValueError, match=r"target\['softmax'\] contains"):
        mmd_joint_from_representations({"input": a, "softmax": a}, {"input": b, "softmax": nan})
    with pytest.raises(ValueError, match="same representations"):
        mmd_joint_from_representations({"input": a}, {"softmax": b})
    with pytest.raises(TypeError, match="mapping"):
        mmd_joint_from_representations(a, b)
    with pytest.raises(ValueError, match="model expects 3"):
        mmd_joint_test(rng.normal(size=(20, 5)), rng.normal(size=(20, 5)), model)
    with pytest.raises(ValueError, match="need a model"):
        mmd_joint_test(a, b, representations=("input", "softmax"))
    with pytest.raises(ValueError, match="representations must be"):
        mmd_joint_test(a, b, model, representations=("input", "logits"))
    with pytest.raises(ValueError, match="not tested"):
        mmd_joint_test(a, b, factors={"softmax": [1.0]})
    with pytest.raises(ValueError, match="positive"):
        mmd_joint_test(a, b, factors=[1.0, -2.0])
    with pytest.raises(ValueError, match="could never detect"):
        mmd_joint_test(a, b, n_permutations=10)
    with pytest.raises(TypeError, match="seed"):
        mmd_joint_test(a, b, seed=-1)
    with pytest.raises(RuntimeError, match="call fit"):
        JointMMDDetector(model).predict(x[:10])
    with pytest.raises(ValueError, match="at least 2"):
        JointMMDDetector(model).fit(x[:10]).predict(x[:1])
