"""The random-Fourier-feature MMD test: statistic against a dense computation, kernel
approximation, exact level over seeded nulls (row and block permutations), power, chunking,
seeds, input errors, and the mergeable embedding."""

import json
import math

import numpy as np
import pytest

from shiftkit.shift import mmd_test
from shiftkit.shift.mmd_rff import (
    DEFAULT_MAX_UNITS,
    MIN_BLOCKS,
    RFFEmbedding,
    RFFTestResult,
    rff_mmd_test,
)


def _dense_features(z, n_features, bandwidth, seed):
    """phi(z) in float64 from the documented definition: frequencies are child 0 of SeedSequence(seed)."""
    child = np.random.SeedSequence(seed).spawn(1)[0]
    omega = np.random.default_rng(child).standard_normal((z.shape[1], n_features)) / bandwidth
    proj = z @ omega
    return np.hstack([np.cos(proj), np.sin(proj)]) / math.sqrt(n_features)


def _gaussian(a, b, h):
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * h * h))


@pytest.mark.parametrize("block_size", [1, 4])
def test_statistic_matches_dense_computation(block_size):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 3)), rng.normal(0.4, 1.1, size=(70, 3))
    res = rff_mmd_test(x, y, n_features=40, bandwidth=1.7, seed=5, n_permutations=99, block_size=block_size)
    px, py = _dense_features(x, 40, 1.7, 5), _dense_features(y, 40, 1.7, 5)
    diff = px.mean(0) - py.mean(0)
    assert res.statistic == pytest.approx(diff @ diff, rel=1e-4)
    kxx, kyy, kxy = px @ px.T, py @ py.T, px @ py.T
    n, m = len(x), len(y)
    unbiased = (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )
    assert res.unbiased == pytest.approx(unbiased, rel=1e-3, abs=1e-7)
    assert res.bandwidth == 1.7 and res.bandwidth_method == "given"
    assert res.n_features == 40 and res.feature_dim == 80 and (res.n_source, res.n_target) == (90, 70)


def test_kernel_approximation_error_shrinks_as_one_over_sqrt_d():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(120, 4))
    exact = _gaussian(z, z, 2.0)
    errors = {}
    for d in (64, 1024):
        phi = RFFEmbedding(d, bandwidth=2.0, seed=0).transform(z).astype(np.float64)
        errors[d] = np.abs(phi @ phi.T - exact).mean()
        assert np.allclose(np.diag(phi @ phi.T), 1.0, atol=1e-5)  # k~(z, z) = 1
    ratio = errors[64] / errors[1024]
    assert 2.5 < ratio < 6.5, errors  # sqrt(1024 / 64) = 4
    assert errors[1024] < 1 / math.sqrt(2 * 1024)


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(203, 5)), rng.normal(0.1, size=(181, 5))
    for block in (1, 3):
        whole = rff_mmd_test(x, y, seed=1, n_permutations=199, block_size=block, chunk_size=10_000)
        chunked = rff_mmd_test(x, y, seed=1, n_permutations=199, block_size=block, chunk_size=7)
        assert chunked.statistic == pytest.approx(whole.statistic, rel=1e-6)
        np.testing.assert_allclose(chunked.null, whole.null, rtol=1e-6)
        assert chunked.p_value == whole.p_value


def test_seed_reproducibility():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(150, 2)), rng.normal(size=(150, 2))
    a = rff_mmd_test(x, y, seed=7, n_permutations=99, n_features=32)
    b = rff_mmd_test(x, y, seed=7, n_permutations=99, n_features=32)
    c = rff_mmd_test(x, y, seed=8, n_permutations=99, n_features=32)
    assert a == b and np.array_equal(a.null, b.null)
    assert a.statistic != c.statistic  # other frequencies
    assert not np.array_equal(a.null, c.null)


def _rejection_rate(n_draws, alpha, **kwargs):
    rng = np.random.default_rng(10)
    rejections = 0
    for i in range(n_draws):
        z = rng.normal(size=(2 * kwargs["n"], 2)) * rng.uniform(0.5, 2.0)
        res = rff_mmd_test(
            z[: kwargs["n"]], z[kwargs["n"] :], n_features=16, n_permutations=99, alpha=alpha, seed=i,
            block_size=kwargs.get("block_size"),
        )
        rejections += res.is_shift
    return rejections / n_draws


@pytest.mark.parametrize("n,block_size", [(40, None), (120, 6)])
def test_level_over_seeded_nulls(n, block_size):
    alpha, draws = 0.1, 200
    rate = _rejection_rate(draws, alpha, n=n, block_size=block_size)
    se = math.sqrt(alpha * (1 - alpha) / draws)
    assert abs(rate - alpha) <= 3 * se, rate


@pytest.mark.parametrize("block_size", [1, 10])
def test_power_on_a_clear_shift(block_size):
    rng = np.random.default_rng(4)
    for i in range(5):
        x, y = rng.normal(size=(300, 5)), rng.normal(size=(300, 5))
        y[:, 0] += 0.5
        res = rff_mmd_test(x, y, seed=i, n_permutations=199, block_size=block_size)
        assert res.is_shift and res.p_value <= 0.01 and res.statistic > res.threshold


def test_power_close_to_the_exact_test():
    """A moderate shift: the random-feature test detects about as often as the exact kernel test."""
    rng = np.random.default_rng(5)
    rff_hits = exact_hits = 0
    for i in range(20):
        x, y = rng.normal(size=(150, 4)), rng.normal(size=(150, 4))
        y[:, :2] += 0.3
        rff_hits += rff_mmd_test(x, y, seed=i, n_permutations=199).is_shift
        exact_hits += mmd_test(x, y, seed=i, n_permutations=199, bandwidth=None).is_shift
    assert rff_hits >= exact_hits - 3, (rff_hits, exact_hits)
    assert rff_hits >= 10


def test_automatic_block_size():
    rng = np.random.default_rng(6)
    small = rff_mmd_test(rng.normal(size=(50, 2)), rng.normal(size=(60, 2)), n_permutations=19, alpha=0.1, seed=0)
    assert small.block_size == 1 and small.n_units == 110
    n = DEFAULT_MAX_UNITS  # 2n + 1 pooled rows: blocks of ceil((2n + 1) / DEFAULT_MAX_UNITS) = 3
    big = rff_mmd_test(rng.normal(size=(n, 2)), rng.normal(size=(n + 1, 2)), n_features=8, n_permutations=19,
                       alpha=0.1, seed=0)
    assert big.block_size == 3 and big.n_units == n // 3 + (n + 1) // 3 + n % 3 + (n + 1) % 3
    # A small sample keeps MIN_BLOCKS blocks: power comes from it.
    lop = rff_mmd_test(rng.normal(size=(MIN_BLOCKS, 2)), rng.normal(size=(30_000, 2)), n_features=8,
                       n_permutations=19, alpha=0.1, seed=0)
    assert lop.block_size == 1
    assert "blocks of 3 rows" in big.exactness and "permutations of the 110 pooled rows" in small.exactness


def test_extreme_scale_gives_the_same_answer():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(100, 3)), rng.normal(0.3, size=(100, 3))
    base = rff_mmd_test(x, y, seed=0, n_permutations=99)
    for factor in (1e160, 1e-160):
        scaled = rff_mmd_test(x * factor, y * factor, seed=0, n_permutations=99)
        assert scaled.statistic == pytest.approx(base.statistic, rel=1e-3)
        assert scaled.bandwidth == pytest.approx(base.bandwidth * factor, rel=1e-9)
        assert scaled.p_value == base.p_value


def test_offset_data_keep_precision():
    """Centring before the float32 projection: data far from 0 give the same statistic."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(100, 3)), rng.normal(0.3, size=(100, 3))
    base = rff_mmd_test(x, y, seed=0, bandwidth=1.5, n_permutations=99)
    moved = rff_mmd_test(x + 1e6, y + 1e6, seed=0, bandwidth=1.5, n_permutations=99)
    assert moved.statistic == pytest.approx(base.statistic, rel=1e-3)


def test_result_reporting():
    rng = np.random.default_rng(9)
    res = rff_mmd_test(rng.normal(size=(80, 2)), rng.normal(size=(80, 2)), seed=0, n_permutations=199)
    assert isinstance(res, RFFTestResult)
    assert "D=256" in res.approximation and "Gaussian kernel" in res.approximation
    assert "median heuristic" in res.bandwidth_method and "exact level" in res.exactness
    data = res.to_dict()
    json.dumps(data, allow_nan=False)
    assert len(data["null"]) == 199 and "null" not in res.to_dict(include_null=False)
    assert (res.statistic > res.threshold) == res.is_shift
    other = res.at_level(0.5)
    assert other.alpha == 0.5 and other.is_shift == (res.p_value <= 0.5) and other.statistic == res.statistic


@pytest.mark.parametrize(
    "kwargs,x,y,exc,match",
    [
        ({}, "nan", None, ValueError, "NaN"),
        ({}, "empty", None, ValueError, "empty"),
        ({}, None, "wide", ValueError, "same feature shape"),
        ({"n_features": 0}, None, None, ValueError, "n_features"),
        ({"alpha": 1.5}, None, None, ValueError, "alpha"),
        ({"alpha": 0.05, "n_permutations": 5}, None, None, ValueError, "n_permutations"),
        ({"bandwidth": -1.0}, None, None, ValueError, "bandwidth"),
        ({"bandwidth": [1.0, 2.0]}, None, None, ValueError, "one bandwidth"),
        ({"block_size": 0}, None, None, ValueError, "block_size"),
        ({"chunk_size": 0}, None, None, ValueError, "chunk_size"),
        ({"seed": -1}, None, None, ValueError, "seed"),
    ],
)
def test_bad_input(kwargs, x, y, exc, match):
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    if x == "nan":
        xs[3, 1] = np.nan
    if x == "empty":
        xs = np.empty((0, 3))
    if y == "wide":
        ys = rng.normal(size=(20, 4))
    with pytest.raises(exc, match=match):
        rff_mmd_test(xs, ys, **kwargs)


# ------------------------------------------------------------------------------------------
# RFFEmbedding
# ------------------------------------------------------------------------------------------


def test_embedding_merge_equals_whole_and_matches_the_test_statistic():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(400, 3)), rng.normal(0.2, size=(300, 3))
    res = rff_mmd_test(x, y, n_features=50, seed=4, n_permutations=99)
    make = lambda: RFFEmbedding(50, bandwidth=res.bandwidth, seed=4)  # noqa: E731
    ex = make().partial_fit(x, chunk_size=64)
    parts = [make().partial_fit(y[i : i + 70]) for i in range(0, 300, 70)]
    ey = parts[0]
    for p in parts[1:]:
        ey = ey.merge(p)
    whole = make().partial_fit(y)
    assert ey.n_samples_ == 300
    np.testing.assert_allclose(ey.mean_, whole.mean_, rtol=1e-10, atol=1e-12)
    assert ex.mmd2(ey) == pytest.approx(res.statistic, rel=1e-4)
    assert make().merge(ex).n_samples_ == 400  # an empty part merges as nothing


def test_embedding_errors():
    rng = np.random.default_rng(12)
    a = RFFEmbedding(16, bandwidth=1.0).partial_fit(rng.normal(size=(10, 2)))
    with pytest.raises(ValueError, match="different random features"):
        a.merge(RFFEmbedding(16, bandwidth=2.0).partial_fit(rng.normal(size=(10, 2))))
    with pytest.raises(ValueError, match="different random features"):
        a.mmd2(RFFEmbedding(16, bandwidth=1.0, seed=1).partial_fit(rng.normal(size=(10, 2))))
    with pytest.raises(ValueError, match="different random features"):  # an empty part is checked too
        RFFEmbedding(16, bandwidth=2.0).merge(a)
    with pytest.raises(ValueError, match="3 features per row"):
        a.partial_fit(rng.normal(size=(5, 3)))
    with pytest.raises(ValueError, match="empty"):
        a.mmd2(RFFEmbedding(16, bandwidth=1.0))
    with pytest.raises(ValueError, match="second_moments=True"):
        a.test(RFFEmbedding(16, bandwidth=1.0).partial_fit(rng.normal(size=(10, 2))))
    with pytest.raises(TypeError, match="seed"):
        RFFEmbedding(16, bandwidth=1.0, seed=None)
    with pytest.raises(ValueError, match="bandwidth"):
        RFFEmbedding(16, bandwidth=0.0)
    with pytest.raises(ValueError, match="n_features"):
        RFFEmbedding(0, bandwidth=1.0)
    with pytest.raises(ValueError, match="NaN"):
        RFFEmbedding(4, bandwidth=1.0).partial_fit(np.array([[np.nan, 1.0]]))


def test_embedding_asymptotic_test_level_and_power():
    rng = np.random.default_rng(13)
    alpha, draws, rejections = 0.1, 150, 0
    for i in range(draws):
        z = rng.normal(size=(800, 2))
        a = RFFEmbedding(32, bandwidth=1.2, seed=i, second_moments=True).partial_fit(z[:400])
        b = RFFEmbedding(32, bandwidth=1.2, seed=i, second_moments=True).partial_fit(z[400:])
        rejections += a.test(b, alpha=alpha, n_simulations=999, seed=i).is_shift
    se = math.sqrt(alpha * (1 - alpha) / draws)
    assert abs(rejections / draws - alpha) <= 3 * se, rejections / draws
    x, y = rng.normal(size=(400, 2)), rng.normal(0.4, size=(400, 2))
    a = RFFEmbedding(32, bandwidth=1.2, second_moments=True).partial_fit(x)
    b = RFFEmbedding(32, bandwidth=1.2, second_moments=True).partial_fit(y)
    res = a.test(b)
    assert res.is_shift and "asymptotic" in res.exactness
    json.dumps(res.to_dict(), allow_nan=False)


def test_sorted_rows_do_not_weaken_the_block_test():
    """Blocks are cut after a seeded shuffle within each sample: rows sorted by a feature (a common
    file order) give the same null spread as shuffled rows, not one inflated by homogeneous blocks."""
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3))
    y[:, 1] += 0.12
    shuffled = rff_mmd_test(x, y, seed=0, block_size=10, n_permutations=199, bandwidth=1.5)
    xs, ys = x[np.argsort(x[:, 0])], y[np.argsort(y[:, 0])]
    ordered = rff_mmd_test(xs, ys, seed=0, block_size=10, n_permutations=199, bandwidth=1.5)
    assert ordered.statistic == pytest.approx(shuffled.statistic, rel=1e-5)  # the statistic ignores order
    assert ordered.null.std() == pytest.approx(shuffled.null.std(), rel=0.3)
    assert ordered.is_shift and shuffled.is_shift
