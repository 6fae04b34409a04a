"""mmd2 against a direct computation, and the permutation test's level and power."""

import itertools

import numpy as np
import pytest

from shiftkit.shift import feature_space, median_heuristic, mmd2, mmd_test
from shiftkit.shift.mmd import MMDTestResult, critical_value, permutations_for


def _k(a, b, bandwidths):
    return sum(np.exp(-np.sum((a - b) ** 2) / (2 * h**2)) for h in bandwidths)


def _direct_mmd2(x, y, bandwidths, estimator):
    """Plain double loops over samples: the textbook formulas."""
    n, m = len(x), len(y)
    if estimator == "unbiased":
        sxx = sum(_k(x[i], x[j], bandwidths) for i in range(n) for j in range(n) if i != j)
        syy = sum(_k(y[i], y[j], bandwidths) for i in range(m) for j in range(m) if i != j)
        sxy = sum(_k(x[i], y[j], bandwidths) for i in range(n) for j in range(m))
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)
    if estimator == "biased":
        sxx = sum(_k(a, b, bandwidths) for a in x for b in x)
        syy = sum(_k(a, b, bandwidths) for a in y for b in y)
        sxy = sum(_k(a, b, bandwidths) for a in x for b in y)
        return sxx / n**2 + syy / m**2 - 2 * sxy / (n * m)
    half = min(n, m) // 2
    h = [
        _k(x[2 * i], x[2 * i + 1], bandwidths)
        + _k(y[2 * i], y[2 * i + 1], bandwidths)
        - _k(x[2 * i], y[2 * i + 1], bandwidths)
        - _k(x[2 * i + 1], y[2 * i], bandwidths)
        for i in range(half)
    ]
    return float(np.mean(h))


@pytest.mark.parametrize("estimator", ["unbiased", "biased", "linear"])
@pytest.mark.parametrize("bandwidth", [0.7, 2.5, [0.5, 1.0, 4.0]])
def test_mmd2_matches_double_loop(estimator, bandwidth):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(23, 4))
    y = rng.normal(0.3, 1.2, size=(17, 4))
    bws = [bandwidth] if np.isscalar(bandwidth) else bandwidth
    expected = _direct_mmd2(x, y, bws, estimator)
    got = mmd2(x, y, bandwidth=bandwidth, estimator=estimator)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_mmd2_blocked_equals_unblocked():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(150, 6)), rng.normal(0.2, size=(130, 6))
    full = mmd2(x, y, bandwidth=1.5)
    blocked = mmd2(x, y, bandwidth=1.5, memory_budget=20_000)  # a few rows per block
    assert blocked == pytest.approx(full, rel=1e-10)


def test_median_heuristic_is_median_pairwise_distance():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3))
    z = np.concatenate([x, y])
    dists = [np.linalg.norm(a - b) for a, b in itertools.combinations(z, 2)]
    assert median_heuristic(x, y) == pytest.approx(np.median(dists), rel=1e-9)
    # default bandwidth of mmd2 is that median
    assert mmd2(x, y) == pytest.approx(mmd2(x, y, bandwidth=np.median(dists)), rel=1e-9)


def test_mmd2_properties(rng):
    x, y = rng.normal(size=(80, 5)), rng.normal(0.4, size=(60, 5))
    assert mmd2(x, y, estimator="biased") >= mmd2(x, y)
    assert mmd2(x, y) == pytest.approx(mmd2(y, x), rel=1e-12)
    assert mmd2(x, y, estimator="biased") == pytest.approx(mmd2(y, x, estimator="biased"), rel=1e-12)
    same_a, same_b = rng.normal(size=(500, 5)), rng.normal(size=(500, 5))
    shifted = rng.normal(1.0, size=(500, 5))
    near_zero = mmd2(same_a, same_b)
    assert abs(near_zero) < 0.005
    assert mmd2(same_a, shifted) > 20 * abs(near_zero)
    assert mmd2(x, x, estimator="biased") == pytest.approx(0.0, abs=1e-12)


def test_any_rank_is_flattened(rng):
    x, y = rng.normal(size=(20, 3, 2, 2)), rng.normal(size=(25, 3, 2, 2))
    assert mmd2(x, y, bandwidth=2.0) == pytest.approx(
        mmd2(x.reshape(20, -1), y.reshape(25, -1), bandwidth=2.0), rel=1e-12
    )


def test_permutation_statistic_and_pvalue_definition(rng):
    x, y = rng.normal(size=(40, 3)), rng.normal(0.3, size=(50, 3))
    res = mmd_test(x, y, n_permutations=199, alpha=0.1, bandwidth=1.3, seed=7)
    assert isinstance(res, MMDTestResult)
    assert res.statistic == pytest.approx(mmd2(x, y, bandwidth=1.3), rel=1e-9)
    assert res.null.shape == (199,)
    assert res.p_value == pytest.approx((1 + np.sum(res.null >= res.statistic)) / 200)
    # The exact critical value (issue 9, item 10), no longer an interpolated quantile.
    assert res.threshold == np.sort(res.null)[::-1][int(0.1 * 200) - 1]
    assert res.is_shift == (res.p_value <= 0.1)
    assert (res.n_source, res.n_target, res.n_permutations) == (40, 50, 199)
    assert res.bandwidth == 1.3


def test_null_statistics_are_real_permutations(rng):
    """Each null value equals MMD^2_u of some split of the pooled sample: recompute a few by brute force."""
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(9, 2))
    z = np.concatenate([x, y])
    res = mmd_test(x, y, n_permutations=50, bandwidth=1.0, seed=3)
    perm_rng = np.random.default_rng(3)
    for value in res.null[:5]:
        perm = perm_rng.permutation(len(z))
        assert value == pytest.approx(mmd2(z[perm[:12]], z[perm[12:]], bandwidth=1.0), rel=1e-9)


def test_seeded_reproducible_and_blocked_path_identical(rng):
    x, y = rng.normal(size=(120, 4)), rng.normal(0.1, size=(100, 4))
    # The single-kernel path (bandwidth=None); the aggregated default: tests/test_mmd_agg.py.
    a = mmd_test(x, y, n_permutations=300, seed=11, bandwidth=None)
    b = mmd_test(x, y, n_permutations=300, seed=11, bandwidth=None)
    c = mmd_test(x, y, n_permutations=300, seed=11, memory_budget=60_000, bandwidth=None)
    assert a.p_value == b.p_value and np.array_equal(a.null, b.null)
    assert "full" in a.computation and "row blocks" in c.computation
    assert c.p_value == a.p_value
    np.testing.assert_allclose(c.null, a.null, rtol=1e-9, atol=1e-15)


def test_calibration_under_the_null():
    """At alpha = 0.05 a true null is rejected at most about 5% of the time (issue: <= 0.09 over >= 100 draws)."""
    rng = np.random.default_rng(2024)
    rejections = 0
    n_draws = 200
    p_values = []
    for draw in range(n_draws):
        x = rng.normal(size=(100, 10))
        y = rng.normal(size=(100, 10))
        res = mmd_test(x, y, n_permutations=200, alpha=0.05, seed=draw)
        rejections += res.is_shift
        p_values.append(res.p_value)
    rate = rejections / n_draws
    assert rate <= 0.09, rate
    # and the p-values are roughly uniform, not all near 1 (a test that never rejects would pass above)
    assert 0.35 < np.mean(p_values) < 0.65
    assert rate > 0.0


def test_power_half_std_shift_in_two_of_ten_dims():
    rng = np.random.default_rng(7)
    detected = 0
    n_draws = 100
    for draw in range(n_draws):
        x = rng.normal(size=(200, 10))
        y = rng.normal(size=(200, 10))
        y[:, :2] += 0.5
        detected += mmd_test(x, y, n_permutations=500, alpha=0.05, seed=draw).is_shift
    assert detected / n_draws >= 0.95, detected


@pytest.mark.slow
def test_linear_method_level_and_power():
    rng = np.random.default_rng(5)
    null_rej = sum(
        mmd_test(rng.normal(size=(2000, 5)), rng.normal(size=(2000, 5)), method="linear", seed=i).is_shift
        for i in range(100)
    )
    assert null_rej / 100 <= 0.10
    y = rng.normal(size=(4000, 5))
    y[:, 0] += 0.5
    res = mmd_test(rng.normal(size=(4000, 5)), y, method="linear", seed=0)
    assert res.is_shift and res.method == "linear" and res.null.size == 0


def test_normalized_and_z_score_are_scale_free(rng):
    x, y = rng.normal(size=(100, 3)), rng.normal(0.5, size=(100, 3))
    a = mmd_test(x, y, seed=0, n_permutations=200)
    b = mmd_test(10 * x, 10 * y, seed=0, n_permutations=200)  # median bandwidth scales along
    assert b.normalized == pytest.approx(a.normalized, rel=1e-6)
    assert b.z_score == pytest.approx(a.z_score, rel=1e-6)
    assert a.z_score > 3


def test_max_samples_subsamples_with_seed(rng):
    x, y = rng.normal(size=(500, 3)), rng.normal(size=(400, 3))
    res = mmd_test(x, y, max_samples=100, seed=1, n_permutations=50)
    assert (res.n_source, res.n_target) == (100, 100)
    again = mmd_test(x, y, max_samples=100, seed=1, n_permutations=50)
    assert res.statistic == again.statistic


def test_to_dict_is_json_ready(rng):
    import json

    res = mmd_test(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), n_permutations=20, seed=0)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert len(d["null"]) == 20 and "null" not in res.to_dict(include_null=False)
    assert "lower means shift" in d["direction"]


def test_feature_space_test(small_model, rng):
    x = rng.normal(size=(60, 5)).astype("float32")
    y = rng.normal(size=(60, 5)).astype("float32") + 2.0
    fs = feature_space(small_model)
    feats = fs(x)
    assert feats.shape == (60, 8)
    res = mmd_test(x, y, features=fs, seed=0, n_permutations=100)
    assert res.space == "feature"
    assert res.statistic == pytest.approx(mmd2(fs(x), fs(y)), rel=1e-9)
    assert feature_space(small_model, "out")(x).shape == (60, 3)
    assert feature_space(small_model, 0)(x).shape == (60, 8)


def test_feature_space_errors(small_model, rng):
    with pytest.raises(ValueError, match=r"layer must name a layer.*dense_9.*hidden"):
        feature_space(small_model, "dense_9")
    with pytest.raises(ValueError, match="out of range"):
        feature_space(small_model, 7)
    with pytest.raises(TypeError, match="keras.Model"):
        feature_space("not a model")
    with pytest.raises(ValueError, match="has 4 features, but the model expects 5"):
        mmd_test(rng.normal(size=(10, 4)), rng.normal(size=(10, 4)), features=feature_space(small_model))
    with pytest.raises(TypeError, match="features must be a callable"):
        mmd_test(rng.normal(size=(10, 4)), rng.normal(size=(10, 4)), features=3)


GOOD = np.random.default_rng(0).normal(size=(10, 3))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(x=np.full((10, 3), np.nan), y=GOOD), ValueError, r"x_source contains 30 NaN"),
        (dict(x=GOOD, y=np.where(GOOD > 1, np.inf, GOOD)), ValueError, r"x_target contains 0 NaN and \d+ infinite"),
        (dict(x=np.empty((0, 3)), y=GOOD), ValueError, r"x_source is empty"),
        (dict(x=GOOD[:1], y=GOOD), ValueError, r"x_source has 1 sample"),
        (dict(x=GOOD, y=np.ones((10, 4))), ValueError, r"same feature shape.*\(3,\).*\(4,\)"),
        (dict(x=np.array([["a", "b"], ["c", "d"]]), y=GOOD), TypeError, r"x_source must hold numbers"),
        (dict(x=None, y=GOOD), TypeError, r"x_source must be an array"),
        (dict(x=GOOD, y=GOOD, bandwidth=0.0), ValueError, r"bandwidth must be positive"),
        (dict(x=GOOD, y=GOOD, bandwidth=[1.0, -2.0]), ValueError, r"bandwidth must be positive"),
        (dict(x=GOOD, y=GOOD, n_permutations=0), ValueError, r"n_permutations must be an integer >= 1"),
        (dict(x=GOOD, y=GOOD, n_permutations=2.5), TypeError, r"n_permutations"),
        (dict(x=GOOD, y=GOOD, alpha=1.0), ValueError, r"alpha must be strictly between 0 and 1"),
        (dict(x=GOOD, y=GOOD, alpha=0), ValueError, r"alpha"),
        (dict(x=GOOD, y=GOOD, method="bootstrap"), ValueError, r"Unknown method 'bootstrap'.*permutation"),
        (dict(x=GOOD, y=GOOD, seed=-1), ValueError, r"seed"),
    ],
)
def test_mmd_test_bad_input(kwargs, error, match):
    x, y = kwargs.pop("x"), kwargs.pop("y")
    with pytest.raises(error, match=match):
        mmd_test(x, y, **kwargs)


def test_mmd2_bad_input():
    with pytest.raises(ValueError, match=r"Unknown estimator 'quadratic'.*unbiased, biased, linear"):
        mmd2(GOOD, GOOD, estimator="quadratic")
    with pytest.raises(ValueError, match=r"y contains"):
        mmd2(GOOD, np.full((4, 3), np.nan))


# ------------------------------------------------------------------ issue 9, item 10: threshold
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_threshold_is_the_exact_critical_value(alpha):
    """statistic > threshold <=> p_value <= alpha, on many small draws where an interpolated quantile disagrees."""
    rng = np.random.default_rng(10)
    disagree = 0
    rejected = 0
    for draw in range(300):
        x = rng.normal(size=(12, 2))
        y = rng.normal(0.6 * (draw % 2), size=(12, 2))
        res = mmd_test(x, y, n_permutations=19, alpha=alpha, seed=draw)
        rejected += res.is_shift
        disagree += (res.statistic > res.threshold) != (res.p_value <= res.alpha)
        assert res.is_shift == (res.p_value <= res.alpha)
    assert disagree == 0
    assert 0 < rejected < 300  # both outcomes occur, so the equivalence was exercised


@pytest.mark.parametrize("alpha, n_permutations", [(0.05, 19), (0.05, 99), (0.1, 29), (0.01, 199), (0.3, 50), (0.07, 100)])
def test_threshold_is_order_statistic(alpha, n_permutations):
    rng = np.random.default_rng(n_permutations)
    res = mmd_test(
        rng.normal(size=(15, 3)), rng.normal(size=(14, 3)), n_permutations=n_permutations, alpha=alpha, seed=1,
        bandwidth=None,  # one kernel: the plain order statistic (aggregated: tests/test_mmd_agg.py)
    )
    k = int(np.floor(alpha * (1 + n_permutations) + 1e-9)) - 1
    assert res.threshold == np.sort(res.null)[::-1][k]
    # The threshold itself is not beyond it: a statistic equal to it has k + 1 null values >= it.
    assert (1 + np.count_nonzero(res.null >= res.threshold)) / (1 + n_permutations) > alpha


def test_linear_threshold_matches_its_p_value():
    rng = np.random.default_rng(11)
    seen = set()
    for draw in range(60):
        x = rng.normal(size=(300, 3))
        y = rng.normal(0.25 * (draw % 3), size=(300, 3))
        res = mmd_test(x, y, method="linear", alpha=0.05, seed=draw)
        assert (res.statistic > res.threshold) == res.is_shift == (res.p_value <= 0.05)
        seen.add(res.is_shift)
    assert seen == {True, False}


# ------------------------------------------------------------------ issue 9, item 3: untestable levels
@pytest.mark.parametrize("alpha, n_permutations, minimum", [(0.05, 10, 19), (0.01, 50, 99), (0.003, 200, 333)])
def test_too_few_permutations_for_alpha_is_an_error(alpha, n_permutations, minimum):
    x, y = GOOD, GOOD + 5.0
    with pytest.raises(ValueError, match=rf"n_permutations={n_permutations} cannot reach alpha={alpha:g}.*>= {minimum}\b"):
        mmd_test(x, y, n_permutations=n_permutations, alpha=alpha, seed=0)
    # the minimum it names is enough: a huge shift is then detected
    res = mmd_test(np.random.default_rng(0).normal(size=(30, 3)), np.random.default_rng(1).normal(5, size=(30, 3)),
                   n_permutations=minimum, alpha=alpha, seed=0)
    assert res.p_value == pytest.approx(1 / (1 + minimum)) and res.is_shift
    # the linear method has no permutations: any alpha is testable
    mmd_test(np.random.default_rng(0).normal(size=(30, 3)), np.random.default_rng(1).normal(size=(30, 3)),
             method="linear", n_permutations=n_permutations, alpha=alpha)


def test_critical_value_helper():
    null = np.arange(19.0)
    assert critical_value(null, 0.1) == 17.0  # k = 1: second largest
    assert critical_value(null, 0.05) == 18.0  # k = 0: the largest
    assert critical_value(null, 0.049) == np.inf  # cannot reject
    assert permutations_for(0.05, 10) == 39 and permutations_for(0.05, 500) == 500


# ------------------------------------------------------------------ issue 9, item 13: non-finite statistics
@pytest.mark.parametrize("scale", [1e160, 1e-170, 1e300])
def test_extreme_scales_give_the_same_answer(scale):
    """The median-bandwidth kernel is scale-invariant: data scaled by 1e160 must not give NaN (it gave
    statistic nan, bandwidth inf, p = 0.01, is_shift=True)."""
    rng = np.random.default_rng(13)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    plain = mmd_test(x, y, n_permutations=99, seed=0)
    big = mmd_test(x * scale, y * scale, n_permutations=99, seed=0)
    assert np.isfinite(big.statistic) and np.isfinite(big.bandwidth) and np.all(np.isfinite(big.null))
    assert big.bandwidth == pytest.approx(plain.bandwidth * scale, rel=1e-9)
    assert big.statistic == pytest.approx(plain.statistic, rel=1e-6, abs=1e-12)
    assert big.p_value == plain.p_value and big.is_shift == plain.is_shift
    assert mmd2(x * scale, y * scale) == pytest.approx(mmd2(x, y), rel=1e-6, abs=1e-12)
    assert median_heuristic(x * scale, y * scale) == pytest.approx(median_heuristic(x, y) * scale, rel=1e-9)
    lin = mmd_test(x * scale, y * scale, method="linear")
    assert lin.statistic == pytest.approx(mmd_test(x, y, method="linear").statistic, rel=1e-6, abs=1e-12)
    # a real shift at that scale is still found
    assert mmd_test(x * scale, (y + 1.5) * scale, n_permutations=99, seed=0).is_shift


def test_extreme_scale_null_is_calibrated():
    rng = np.random.default_rng(131)
    rejections = sum(
        mmd_test(rng.normal(size=(20, 2)) * 1e160, rng.normal(size=(20, 2)) * 1e160, n_permutations=39, seed=i).is_shift
        for i in range(100)
    )
    assert rejections <= 5 + 3 * np.sqrt(100 * 0.05 * 0.95)


def test_non_finite_statistic_is_an_error_not_a_shift():
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    # a bandwidth whose square underflows to 0 makes every kernel value 0/0 or exp(-inf)
    with pytest.raises(ValueError, match=r"not finite.*bandwidth"):
        mmd_test(x, y, bandwidth=1e-200, n_permutations=19, seed=0)
    with pytest.raises(ValueError, match=r"not finite.*bandwidth"):
        mmd2(x, y, bandwidth=1e-200)
    # its square is subnormal: the kernel's diagonal becomes 0 * inf = NaN, caught on the statistic
    with pytest.raises(ValueError, match=r"not finite \(nan\) with bandwidth 1e-160.*never reported as a shift"):
        mmd_test(x, y, bandwidth=1e-160, n_permutations=19, seed=0)
    with pytest.raises(ValueError, match=r"not finite \(nan\)"):
        mmd2(x, y, bandwidth=1e-160)


# ------------------------------------------------------------------ issue 9, item 11: memory budget
def _peak_resettable() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _peak_growth_mib(fn) -> float:
    _peak_resettable()
    before = _kib("VmRSS")
    fn()
    return (_kib("VmHWM") - before) / 1024


@pytest.mark.skipif(not _peak_resettable(), reason="needs Linux /proc/self/clear_refs to reset the peak RSS")
def test_memory_budget_accounts_for_the_feature_count():
    """Wide inputs (d = 1500) under a 2 MiB budget: no copy of the column set per block, norms once.

    Before: every row block copied the full (N, d) column tensor to square it (and the bandwidth
    concatenated and converted the inputs), so peak memory grew by several times the inputs' size.
    The big figure (two 46 MiB inputs, 8 MiB budget) is in benchmarks/bench_mmd.py --memory.
    """
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(300, 1500)), rng.normal(size=(300, 1500))
    inputs_mib = (x.nbytes + y.nbytes) / 2**20  # 6.9 MiB
    budget = 2 << 20
    mmd_test(x[:20, :50], y[:20, :50], n_permutations=19, seed=0, memory_budget=budget)  # warm-up
    holder = {}
    growth = _peak_growth_mib(lambda: holder.update(res=mmd_test(x, y, n_permutations=19, seed=0, memory_budget=budget)))
    assert "row blocks" in holder["res"].computation
    assert growth < inputs_mib + 4 * budget / 2**20, growth
    growth2 = _peak_growth_mib(lambda: mmd2(x, y, memory_budget=budget))
    assert growth2 < inputs_mib + 4 * budget / 2**20, growth2


def test_rows_per_block_counts_features():
    from shiftkit.shift.mmd import _rows_per_block

    narrow = _rows_per_block(1000, 2, 1, 8 << 20)
    wide = _rows_per_block(1000, 100_000, 1, 8 << 20)
    assert wide < narrow / 10


@pytest.mark.parametrize("bandwidth", [0.8, [0.5, 2.0, 4.0]])
def test_numpy_kernel_block_is_the_keras_kernel(bandwidth):
    """The measuring path's in-place numpy block is `kernels.gaussian_kernel` (the adapter's kernel)."""
    from keras import ops

    from shiftkit.shift.kernels import gaussian_kernel, gaussian_kernel_block

    rng = np.random.default_rng(3)
    rows, a, b = rng.normal(size=(7, 4)), rng.normal(size=(5, 4)), rng.normal(size=(6, 4))
    bw = np.atleast_1d(np.asarray(bandwidth, dtype=float))
    sq = lambda v: np.einsum("ij,ij->i", v, v)  # noqa: E731
    got = gaussian_kernel_block(rows, [a, b], bw, sq(rows), [sq(a), sq(b)])
    want = ops.convert_to_numpy(gaussian_kernel(rows, np.concatenate([a, b]), bw))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_normalized_mmd2_without_permutations(rng):
    """The figure a training monitor needs, without a test (mmd_test now refuses n_permutations=1)."""
    from shiftkit.shift.mmd import normalized_mmd2

    x, y = rng.normal(size=(60, 4)), rng.normal(0.4, size=(50, 4))
    for bw in (None, 1.7, [0.5, 2.0]):
        want = mmd_test(x, y, bandwidth=bw, seed=3, n_permutations=19).normalized
        assert normalized_mmd2(x, y, bandwidth=bw, seed=3) == pytest.approx(want, rel=1e-9)
    assert normalized_mmd2(x * 1e200, y * 1e200, seed=3) == pytest.approx(normalized_mmd2(x, y, seed=3), rel=1e-6)


def test_check_input_false_gives_the_same_result_without_revalidating(monkeypatch):
    """Validated once at the boundary: a caller that has checked its arrays skips mmd_test's checks."""
    import shiftkit.shift.mmd as mmd_module

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 2, 2)), rng.normal(0.4, size=(50, 2, 2))
    checked = mmd_test(x, y, n_permutations=99, seed=1)

    def refuse(*args, **kwargs):
        raise AssertionError("re-validated")

    monkeypatch.setattr(mmd_module, "check_pair", refuse)
    monkeypatch.setattr(mmd_module, "check_array", refuse)
    trusted = mmd_test(x, y, n_permutations=99, seed=1, check_input=False)
    assert trusted.p_value == checked.p_value and trusted.statistic == checked.statistic
    assert trusted.threshold == checked.threshold and trusted.bandwidth == checked.bandwidth


def test_shift_report_validates_its_arrays_once(monkeypatch):
    import shiftkit.shift.mmd as mmd_module
    from shiftkit import shift_report

    def refuse(*args, **kwargs):
        raise AssertionError("mmd_test re-validated what shift_report had checked")

    monkeypatch.setattr(mmd_module, "check_pair", refuse)
    rng = np.random.default_rng(4)
    report = shift_report(rng.normal(size=(80, 3)), rng.normal(size=(70, 3)), n_permutations=99, seed=0)
    assert 0 < report.input_test.p_value <= 1
