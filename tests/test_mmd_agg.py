"""The aggregated MMD test (mmd_agg_test / bandwidth="agg") and the batched permutation core (issue 12)."""

import json
import math

import numpy as np
import pytest

from shiftkit.shift import kernels
from shiftkit.shift.mmd import (
    DEFAULT_AGG_FACTORS,
    MMDTestResult,
    critical_value,
    mmd2,
    mmd_agg_test,
    mmd_test,
)


def _laplace_mmd2(x, y, h):
    """Unbiased MMD^2 with exp(-||a - b|| / h), by plain loops."""
    k = lambda a, b: math.exp(-math.sqrt(float(np.sum((a - b) ** 2))) / h)  # noqa: E731
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(a, b) for a in x for b in y)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)


def _perturbed_uniform(rng, n, freq=3, amp=1.0):
    """1-d density 1 + amp sin(2 pi freq u) on [0, 1]: a shift at a scale far below the median distance."""
    out = np.empty(0)
    while out.size < n:
        c = rng.uniform(size=4 * n)
        keep = rng.uniform(0, 1 + amp, size=c.size) < 1 + amp * np.sin(2 * np.pi * freq * c)
        out = np.concatenate([out, c[keep]])
    return out[:n, None]


def test_per_kernel_statistics_and_p_values_are_those_of_single_kernel_tests():
    """Exactness: every kernel's statistic and p-value equal mmd_test with that bandwidth and seed
    (the same permutations), and the corrected p-value equals a brute-force min-p recomputation."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.normal(0.3, size=(35, 3))
    res = mmd_agg_test(x, y, n_permutations=199, seed=4)
    agg = res.aggregate
    assert agg.factors == tuple(DEFAULT_AGG_FACTORS)
    med = kernels.median_heuristic(x, y, seed=4)
    np.testing.assert_allclose(agg.bandwidths, np.array(DEFAULT_AGG_FACTORS) * med, rtol=1e-12)
    nulls = []
    for h, stat, p in zip(agg.bandwidths, agg.statistics, agg.p_values):
        single = mmd_test(x, y, bandwidth=h, n_permutations=199, seed=4)
        assert stat == pytest.approx(mmd2(x, y, bandwidth=h), rel=1e-9)
        assert stat == pytest.approx(single.statistic, rel=1e-12)
        assert p == single.p_value
        nulls.append(np.concatenate([[single.statistic], single.null]))
    s = np.array(nulls)  # (kernels, 1 + P), column 0 observed
    counts = np.array([[np.sum(row >= v) for v in row] for row in s])
    cmin = counts.min(axis=0)
    assert res.p_value == pytest.approx((1 + np.sum(cmin[1:] <= cmin[0])) / 200)
    assert agg.min_p_value == min(agg.p_values) == agg.p_values[agg.selected]
    assert res.statistic == agg.statistics[agg.selected] and res.bandwidth == agg.bandwidths[agg.selected]


def test_null_statistics_are_real_permutations_for_every_kernel():
    """The fast statistics (one A'K product per kernel) against mmd2 on explicitly permuted splits,
    for Gaussian and Laplace kernels."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(8, 2))
    z = np.concatenate([x, y])
    res = mmd_agg_test(x, y, n_permutations=30, bandwidths=[0.6, 1.7], kernel="both", seed=3)
    assert res.aggregate.kernels == ("gaussian", "gaussian", "laplace", "laplace")
    assert res.aggregate.statistics[2] == pytest.approx(_laplace_mmd2(x, y, 0.6), rel=1e-9)
    perm_rng = np.random.default_rng(3)
    perms = [perm_rng.permutation(len(z)) for _ in range(4)]
    single = mmd_test(x, y, bandwidth=1.7, n_permutations=30, seed=3)
    for j, perm in enumerate(perms):
        assert single.null[j] == pytest.approx(mmd2(z[perm[:9]], z[perm[9:]], bandwidth=1.7), rel=1e-9)
    # The selected kernel's null is the permuted statistics of that kernel.
    sel = res.aggregate.selected
    kind, h = res.aggregate.kernels[sel], res.aggregate.bandwidths[sel]
    for j, perm in enumerate(perms):
        a, b = z[perm[:9]], z[perm[9:]]
        want = mmd2(a, b, bandwidth=h) if kind == "gaussian" else _laplace_mmd2(a, b, h)
        assert res.null[j] == pytest.approx(want, rel=1e-9)


def test_level_over_many_seeded_nulls():
    """At alpha = 0.1 the aggregated test rejects a true null at most alpha + 3 s.e. of the time."""
    rng = np.random.default_rng(2025)
    n_draws, alpha = 200, 0.1
    rejected, p_values = 0, []
    for draw in range(n_draws):
        x, y = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
        res = mmd_agg_test(x, y, n_permutations=99, alpha=alpha, seed=draw)
        rejected += res.is_shift
        p_values.append(res.p_value)
    rate = rejected / n_draws
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / n_draws), rate
    assert rate > 0.02, rate  # not a test that never rejects
    assert 0.35 < np.mean(p_values) < 0.65


@pytest.mark.slow
def test_detects_a_small_scale_shift_the_median_bandwidth_misses():
    """A density perturbation at a third of the unit interval: the median distance (~0.3) smooths it
    out; the aggregated test's small bandwidths see it."""
    agg_hits = median_hits = 0
    draws = 16
    for t in range(draws):
        rng = np.random.default_rng([3, t])
        x, y = rng.uniform(size=(200, 1)), _perturbed_uniform(rng, 200)
        agg_hits += mmd_agg_test(x, y, n_permutations=199, seed=t).is_shift
        median_hits += mmd_test(x, y, n_permutations=199, seed=t, bandwidth=None).is_shift
    assert agg_hits / draws >= 0.85, agg_hits
    assert median_hits / draws <= 0.6, median_hits
    assert agg_hits - median_hits >= 6


def test_bandwidth_agg_in_mmd_test_is_the_aggregated_test():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(50, 4)), rng.normal(0.4, size=(50, 4))
    a = mmd_test(x, y, bandwidth="agg", n_permutations=99, seed=2)
    b = mmd_agg_test(x, y, n_permutations=99, seed=2)
    assert isinstance(a, MMDTestResult) and a.aggregate is not None
    assert a.p_value == b.p_value and a.aggregate.p_values == b.aggregate.p_values
    assert a.is_shift and "aggregated over 5 kernels" in a.computation


def test_default_is_aggregated_for_permutations_and_median_for_linear():
    """The default bandwidth ("auto", benchmarks/mmd_bandwidth_choice.md): the aggregated test for
    the permutation test; the linear-time test keeps the single median-heuristic kernel."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(60, 3)), rng.normal(0.3, size=(60, 3))
    default = mmd_test(x, y, n_permutations=99, seed=1)
    assert default.aggregate is not None and default.p_value == mmd_agg_test(x, y, n_permutations=99, seed=1).p_value
    median = mmd_test(x, y, n_permutations=99, seed=1, bandwidth="median")
    assert median.aggregate is None
    assert median.p_value == mmd_test(x, y, n_permutations=99, seed=1, bandwidth=None).p_value
    lin = mmd_test(x, y, method="linear")
    assert lin.aggregate is None and lin.bandwidth == pytest.approx(kernels.median_heuristic(x, y, seed=0), rel=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.25, 1.0])
def test_threshold_and_adjusted_level_agree_with_the_decision(shift):
    """statistic > threshold <=> is_shift <=> min_p < adjusted_level, at many levels (at_level too)."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 2)), rng.normal(shift, size=(40, 2))
    res = mmd_agg_test(x, y, n_permutations=199, seed=1, alpha=0.05)
    for level in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9):
        r = res.at_level(level)
        assert r.is_shift == (r.p_value <= level)
        assert (r.statistic > r.threshold) == r.is_shift, (level, r.statistic, r.threshold)
        assert (r.aggregate.min_p_value < r.aggregate.adjusted_level) == r.is_shift


@pytest.mark.parametrize("seed", range(6))
def test_threshold_is_the_flip_point_of_the_decision(seed):
    """Replacing the selected kernel's observed statistic by a value just above the threshold
    rejects, just below does not (other kernels' statistics held): a real critical value."""
    from shiftkit.shift.mmd import _aggregate_rejects, _aggregate_threshold, _max_rejectable_count, _rank_counts

    rng = np.random.default_rng(seed)
    n_perm, level = 59, [0.05, 0.1, 0.2][seed % 3]
    stats_ = rng.normal(size=(3, 1 + n_perm))
    stats_[:, 0] += rng.uniform(0, 2.5)
    counts = _rank_counts(stats_)
    sel = int(np.argmin(counts[:, 0]))
    _, thr = _aggregate_threshold(stats_, counts, sel, n_perm, level)
    k = _max_rejectable_count(level, n_perm)

    def decide(s):
        trial = stats_.copy()
        trial[sel, 0] = s
        return _aggregate_rejects(_rank_counts(trial), n_perm, k)

    if thr == -np.inf:  # another kernel alone rejects: any value of this one does
        assert decide(-1e9) and decide(stats_[sel, 0])
    else:
        assert np.isfinite(thr)
        assert decide(thr + 1e-9) and not decide(thr - 1e-9)
    assert decide(stats_[sel, 0]) == (stats_[sel, 0] > thr)


def test_threshold_is_finite_when_only_the_selected_kernel_rejects():
    from shiftkit.shift.mmd import _aggregate_threshold, _rank_counts

    rng = np.random.default_rng(0)
    stats_ = rng.normal(size=(3, 100))
    stats_[1, 0] = 10.0  # only kernel 1 is far out
    counts = _rank_counts(stats_)
    _, thr = _aggregate_threshold(stats_, counts, 1, 99, 0.05)
    assert np.isfinite(thr) and thr < 10.0


def test_single_kernel_aggregate_is_the_plain_test():
    """With one kernel the min-p correction changes nothing: the corrected p-value is the kernel's own."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(30, 2)), rng.normal(0.3, size=(30, 2))
    agg = mmd_agg_test(x, y, bandwidths=[1.1], n_permutations=99, seed=0)
    plain = mmd_test(x, y, bandwidth=1.1, n_permutations=99, seed=0)
    assert agg.p_value == plain.p_value and agg.threshold == plain.threshold
    assert agg.threshold == critical_value(plain.null, 0.05)


def test_blocked_path_equals_full_path():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(90, 3)), rng.normal(0.2, size=(80, 3))
    full = mmd_agg_test(x, y, n_permutations=99, seed=5, kernel="both")
    blocked = mmd_agg_test(x, y, n_permutations=99, seed=5, kernel="both", memory_budget=150_000)
    assert "full" in full.computation and "row blocks" in blocked.computation
    assert blocked.p_value == full.p_value and blocked.aggregate.p_values == full.aggregate.p_values
    np.testing.assert_allclose(blocked.aggregate.statistics, full.aggregate.statistics, rtol=1e-9, atol=1e-15)


def test_to_dict_is_json_ready():
    rng = np.random.default_rng(9)
    res = mmd_agg_test(rng.normal(size=(20, 2)), rng.normal(size=(20, 2)), n_permutations=39, seed=0)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert len(d["aggregate"]["p_values"]) == 5 and "min-p" in d["aggregate"]["correction"]
    assert len(d["aggregate"]["null_min_p"]) == 39
    assert "null_min_p" not in res.to_dict(include_null=False)["aggregate"]


def test_seeded_and_scale_invariant():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(30, 2)), rng.normal(0.5, size=(30, 2))
    a = mmd_agg_test(x, y, n_permutations=99, seed=3)
    b = mmd_agg_test(x * 1e200, y * 1e200, n_permutations=99, seed=3)
    assert a.p_value == b.p_value and a.aggregate.p_values == b.aggregate.p_values
    assert b.bandwidth == pytest.approx(a.bandwidth * 1e200, rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(factors=[0.5, 1.0], bandwidths=[1.0]), ValueError, "not both"),
        (dict(factors=[0.5, -1.0]), ValueError, "factors must be"),
        (dict(factors=[]), ValueError, "factors must be"),
        (dict(bandwidths=[0.0]), ValueError, "bandwidths must be"),
        (dict(factors=["a"]), TypeError, "factors must be"),
        (dict(kernel="cosine"), ValueError, "kernel must be"),
        (dict(kernel=["gaussian", 3]), ValueError, "kernel must be"),
        (dict(n_permutations=5, alpha=0.05), ValueError, "cannot reach alpha"),
        (dict(alpha=1.5), ValueError, "alpha"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    rng = np.random.default_rng(0)
    with pytest.raises(error, match=match):
        mmd_agg_test(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), **kwargs)


def test_bad_bandwidth_strings_in_mmd_test():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="method='permutation'"):
        mmd_test(x, y, bandwidth="agg", method="linear")
    with pytest.raises(TypeError, match="'agg'"):
        mmd_test(x, y, bandwidth="medium")


def test_median_heuristic_read_off_the_test_s_distance_matrix(monkeypatch):
    """Speed (issue 12): with the full kernel in memory the median heuristic costs no second
    distance pass; the bandwidth is the same seeded-subsample median as `median_heuristic`."""
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(1200, 3)), rng.normal(size=(1100, 3))  # 2300 > 2000: subsampled median
    want = kernels.median_heuristic(x, y, seed=7)
    import shiftkit.shift.mmd as mmd_module

    def refuse(*args, **kwargs):
        raise AssertionError("second pass over the data for the median heuristic")

    monkeypatch.setattr(mmd_module.kernels, "median_heuristic", refuse)
    res = mmd_test(x, y, n_permutations=19, seed=7, bandwidth="median")
    assert res.bandwidth == pytest.approx(want, rel=1e-12)
    agg = mmd_test(x, y, n_permutations=19, seed=7)  # the default: aggregated, same median
    assert agg.aggregate.bandwidths[2] == pytest.approx(want, rel=1e-12)
    monkeypatch.undo()
    blocked = mmd_test(x, y, n_permutations=19, seed=7, memory_budget=8 << 20, bandwidth=None)  # row blocks: median_heuristic
    assert "row blocks" in blocked.computation and blocked.bandwidth == pytest.approx(want, rel=1e-12)
    assert blocked.p_value == res.p_value


def test_median_from_sqdist_matches_median_heuristic_with_quantiles():
    rng = np.random.default_rng(12)
    z = rng.normal(size=(300, 4))
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    med, (q10, q90) = kernels.median_from_sqdist(d2, quantiles=(0.1, 0.9))
    iu = np.triu_indices(len(z), 1)
    dist = np.sqrt(d2[iu])
    assert med == pytest.approx(np.median(dist), rel=1e-12)
    assert med == pytest.approx(kernels.median_heuristic(z), rel=1e-12)
    assert q10 == pytest.approx(np.quantile(dist, 0.1, method="nearest"), rel=1e-12)
    assert q90 == pytest.approx(np.quantile(dist, 0.9, method="nearest"), rel=1e-12)


def test_pooled_squared_distances_is_the_block_computation():
    """The full path's one-product distance matrix equals the row-block computation (round-off)."""
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(30, 5)), rng.normal(2.0, size=(20, 5))
    sq = [np.einsum("ij,ij->i", p, p) for p in (a, b)]
    got = kernels.pooled_squared_distances([a, b], sq)
    z = np.concatenate([a, b])
    want = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    block = kernels.squared_distance_block(z, [a, b], np.concatenate(sq), sq)
    np.testing.assert_allclose(got, block, rtol=1e-11, atol=1e-11)
    assert np.all(got >= 0)
