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
    with pytest.raises(ValueError, match="seed"):
        mmd_joint_test(a, b, seed=-1)
    with pytest.raises(RuntimeError, match="call fit"):
        JointMMDDetector(model).predict(x[:10])
    with pytest.raises(ValueError, match="at least 2"):
        JointMMDDetector(model).fit(x[:10]).predict(x[:1])


# ------------------------------------------------------------------------------------------------
# The linear kernel k(a, b) = a . b (the mean-softmax statistic of BBSE / BBSD)
# ------------------------------------------------------------------------------------------------


def _linear_reference(zs, zt, n_perm, seed):
    """Unbiased linear-kernel MMD^2 by the definition (explicit Gram matrix), on the joint test's splits."""
    n, m = len(zs), len(zt)
    z = np.concatenate([zs, zt]).astype(np.float64)
    k = z @ z.T
    rng = np.random.default_rng(seed)
    out = []
    for perm in [np.arange(n + m)] + [rng.permutation(n + m) for _ in range(n_perm)]:
        a, b = perm[:n], perm[n:]
        kxx, kyy = k[np.ix_(a, a)], k[np.ix_(b, b)]
        out.append((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                   - 2 * k[np.ix_(a, b)].mean())
    return np.array(out)


def test_linear_kernel_agrees_with_a_direct_computation():
    """The linear kernel's statistic on every split equals the Gram-matrix definition, equals
    |mean_s - mean_t|^2 - tr(S_s)/n - tr(S_t)/m on the observed split, and enters the min-p family on
    the same permutations as the Gaussian kernels (the full p-value by the definition)."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 4))
    xs, xt = rng.normal(size=(14, 3)), rng.normal(0.4, 1.0, size=(11, 3)) + 50.0  # an offset: centring
    ps, pt = _softmax_of(xs - 0, w), _softmax_of(xt - 50.0, w)
    res = mmd_joint_from_representations({"input": xs, "softmax": ps}, {"input": xt, "softmax": pt},
                                         factors={"softmax": (0.5, 1.0, 2.0, "linear")}, n_permutations=60, seed=3)
    assert res.representations == ("input",) * 5 + ("softmax",) * 4
    assert res.kernels == ("gaussian",) * 8 + ("linear",)
    assert res.factors[-1] is None and res.bandwidths[-1] is None
    lin = _linear_reference(ps, pt, 60, 3)
    np.testing.assert_allclose(res.statistics[-1], lin[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.null_statistics[-1], lin[1:], rtol=1e-9, atol=1e-12)
    direct = (np.sum((ps.mean(0) - pt.mean(0)) ** 2) - np.trace(np.cov(ps.T)) / len(ps)
              - np.trace(np.cov(pt.T)) / len(pt))
    assert res.statistics[-1] == pytest.approx(direct, rel=1e-9, abs=1e-12)
    # the whole family by the definition: Gaussian rows as before, the linear row appended
    s, _, _ = _reference({"input": xs, "softmax": ps}, {"input": xt, "softmax": pt},
                         {"input": DEFAULT_AGG_FACTORS, "softmax": (0.5, 1.0, 2.0)}, 60, 3)
    s = np.vstack([s, lin])
    counts = np.array([[np.sum(r >= v) for v in r] for r in s])
    cmin = counts.min(axis=0)
    np.testing.assert_allclose(res.p_values, counts[:, 0] / 61)
    assert res.p_value == pytest.approx((1 + np.sum(cmin[1:] <= cmin[0])) / 61)
    # the Gaussian kernels are untouched by adding the linear one (Gaussian-only results reproduce)
    gauss = mmd_joint_from_representations({"input": xs, "softmax": ps}, {"input": xt, "softmax": pt},
                                           factors={"softmax": (0.5, 1.0, 2.0)}, n_permutations=60, seed=3)
    assert gauss.statistics == res.statistics[:8] and gauss.p_values == res.p_values[:8]
    np.testing.assert_array_equal(gauss.null_statistics, res.null_statistics[:8])
    # linear alone, and on an input: the same splits (a second call with a large budget, one batch)
    alone = mmd_joint_from_representations({"x": xs}, {"x": xt}, factors="linear", n_permutations=60, seed=3,
                                           memory_budget=1)
    np.testing.assert_allclose(alone.null_statistics[0], _linear_reference(xs, xt, 60, 3)[1:], rtol=1e-8)
    assert "softmax (3 bandwidths + linear)" in res.description and "x (linear)" in alone.description
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["kernels"][-1] == "linear" and d["factors"][-1] is None


def test_linear_kernel_level_over_many_seeded_nulls():
    """Exact level with the linear kernel in the family: 300 seeded nulls at alpha = 0.1, within 3 s.e."""
    alpha, trials = 0.1, 300
    w = np.random.default_rng(98).normal(size=(3, 4)) * 2
    rejections = 0
    for t in range(trials):
        rng = np.random.default_rng([13, t])
        xs, xt = rng.standard_t(3, size=(15, 3)), rng.standard_t(3, size=(12, 3))
        res = mmd_joint_from_representations({"input": xs, "softmax": _softmax_of(xs, w)},
                                             {"input": xt, "softmax": _softmax_of(xt, w)},
                                             factors={"softmax": (0.5, 1.0, 2.0, "linear")},
                                             n_permutations=99, alpha=alpha, seed=t)
        rejections += res.is_shift
    se = math.sqrt(alpha * (1 - alpha) / trials)
    assert alpha - 3 * se <= rejections / trials <= alpha + 3 * se, rejections


def test_on_one_hot_outputs_the_gaussian_softmax_kernels_are_the_linear_one():
    """Why the linear kernel adds no power to confident classifiers' softmax: on one-hot rows a Gaussian
    kernel is c + (1 - c) a . b (c = exp(-1 / h^2)), and a constant kernel adds nothing to the unbiased
    MMD^2, so every Gaussian softmax statistic is (1 - c) x the linear one on every split: the same
    per-kernel p-values, the same draws detected."""
    rng = np.random.default_rng(8)
    ys, yt = rng.choice(4, size=30), rng.choice(4, size=25, p=[0.55, 0.15, 0.15, 0.15])
    ps, pt = np.eye(4)[ys], np.eye(4)[yt]
    res = mmd_joint_from_representations({"softmax": ps}, {"softmax": pt}, factors=[0.5, 1.0, 2.0, "linear"],
                                         n_permutations=199, seed=2)
    lin = np.concatenate([[res.statistics[-1]], res.null_statistics[-1]])
    for k, h in enumerate(res.bandwidths[:3]):
        gauss = np.concatenate([[res.statistics[k]], res.null_statistics[k]])
        np.testing.assert_allclose(gauss, (1 - np.exp(-1.0 / h**2)) * lin, rtol=1e-8, atol=1e-12)
    assert len(set(res.p_values)) == 1 and res.p_value == res.p_values[0] < 0.05


def test_linear_softmax_kernel_detects_a_planted_label_shift():
    """Three overlapping classes (soft posteriors), class 0 from 1/3 to 0.6 of the target, n = 60, 40
    draws: the linear (mean-softmax) kernel alone detects most draws, as many as the Gaussian softmax
    kernels (within 3 draws), and adding it to the joint test loses no draw on the same permutations."""
    means = np.zeros((3, 12))
    means[[0, 1, 2], [0, 1, 2]] = 1.5

    def draw(rng, n, priors):
        y = rng.choice(3, size=n, p=priors)
        x = means[y] + rng.normal(size=(n, 12))
        ll = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(-1)
        p = np.exp(ll - ll.max(axis=1, keepdims=True))
        return x, p / p.sum(axis=1, keepdims=True)

    hits = {"gauss": 0, "linear": 0, "joint": 0, "joint+linear": 0}
    for t in range(40):
        rng = np.random.default_rng([34, t])
        (xs, ps), (xt, pt) = draw(rng, 60, [1 / 3] * 3), draw(rng, 60, [0.6, 0.2, 0.2])
        a, b = standardize(xs, xt)
        res = mmd_joint_from_representations({"input": a, "softmax": ps}, {"input": b, "softmax": pt},
                                             factors={"softmax": (0.5, 1.0, 2.0, "linear")}, n_permutations=199,
                                             seed=t)
        stats = np.concatenate([np.asarray(res.statistics)[:, None], res.null_statistics], axis=1)
        counts = np.array([[np.sum(r >= v) for v in r] for r in stats])

        def rejects(rows):
            cmin = counts[rows].min(axis=0)
            return (1 + np.sum(cmin[1:] <= cmin[0])) / 200 <= 0.05

        hits["gauss"] += rejects([5, 6, 7])
        hits["linear"] += rejects([8])
        hits["joint"] += rejects(list(range(8)))
        hits["joint+linear"] += res.is_shift
        assert res.is_shift == rejects(list(range(9)))
    assert hits["linear"] >= 18 and hits["linear"] >= hits["gauss"] - 3, hits
    assert hits["joint+linear"] >= hits["joint"], hits


def test_linear_kernel_entries_are_checked():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="at most one 'linear'"):
        mmd_joint_from_representations({"x": a}, {"x": b}, factors=[1.0, "linear", "linear"])
    with pytest.raises(ValueError, match="at most one 'linear'"):
        mmd_joint_from_representations({"x": a}, {"x": b}, factors={"x": [1.0, "laplace"]})
    with pytest.raises(ValueError, match="at least one kernel"):
        mmd_joint_from_representations({"x": a}, {"x": b}, factors={"x": []})
