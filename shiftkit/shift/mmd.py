"""Maximum mean discrepancy: estimators and the batched permutation two-sample test.

`mmd2` estimates MMD^2 between two samples with a Gaussian kernel (see `shiftkit.shift.kernels`);
`mmd_test` tests H0: "source and target come from the same distribution" with a permutation null.

How the permutation test is computed (the speed and memory design):
    The pooled sample z = concat(x, y) has N = n + m points. A split of z into an "x" part of size n
    and a "y" part is an indicator vector a in {0, 1}^N (b = 1 - a). With the kernel matrix K, its row
    sums s = K 1 and its diagonal d, the unbiased statistic of that split is

        MMD^2_u = (a'Ka - a'd) / (n(n-1)) + (b'Kb - b'd) / (m(m-1)) - 2 a'Kb / (nm),
        a'Kb = a's - a'Ka,   b'Kb = 1'K1 - 2 a's + a'Ka,

    so every permutation needs only the product K a. Stacking the observed split and all permutations
    as rows of A' (P x N), one matrix product A' K gives every statistic at once: a'Ka is the row-wise
    dot product with A', a's = 1'Ka its row sum (K is symmetric), and one more row of ones gives
    1'K1; a'd comes from the diagonal. The pooled squared-distance matrix is computed exactly once
    (`kernels.pooled_squared_distances`: one matrix product of rows augmented with their squared
    norms, written straight into the N x N buffer; `kernels.squared_distance_block` otherwise), the
    median-heuristic bandwidth is read off it (`kernels.median_from_sqdist`: the same seeded
    subsample of pairs as `kernels.median_heuristic`, no second pass over the data), and the kernel
    is taken from it in place (`kernels.kernel_from_sqdist`). When the N x N matrix would exceed
    half of `memory_budget` it is never held whole: each row block is multiplied into A and
    dropped (the median then comes from `kernels.median_heuristic` first). Only when A itself would
    not fit are permutations taken in batches, and then kernel blocks are recomputed once per batch
    (the result's `computation` says which path ran). The permutations are drawn as before this
    design (`rng.permutation(N)` per permutation, seeded), so p-values for a given seed are unchanged.

    The aggregated test (`mmd_agg_test`, `mmd_test(bandwidth="agg")`) runs several kernels on the
    same distance matrix and the same permutations (one A'K product per kernel) and corrects for
    their number with a min-p statistic calibrated on those permutations (exact level).

Memory: the source and target samples are never concatenated or copied (unless they must be
rescaled, below); the squared norms of their rows are computed once, and a row block costs
`8 x (N + d)` bytes per row (three N-wide buffers with several bandwidths), so `memory_budget`
bounds the working memory for any feature count d.

Scale: the Gaussian kernel with the median-heuristic bandwidth does not change when the data are
multiplied by a constant (a given bandwidth is divided by the same constant). Data whose largest
absolute value is outside [2^-256, 2^256] are divided by a power of two first (exact in floating
point; `kernels.data_scale`), so samples scaled by 1e160 give the same, finite answer as unscaled
ones. A statistic that is still not finite (a bandwidth far off the data's scale) raises a
ValueError; it is never reported as a shift.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from keras import ops
from scipy import stats

from shiftkit._json import dataclass_to_dict, jsonable
from shiftkit._validation import (
    check_alpha,
    check_array,
    check_bandwidth,
    check_option,
    check_pair,
    check_positive_int,
    check_seed,
)
from shiftkit.shift import kernels

__all__ = [
    "mmd2",
    "mmd_test",
    "MMDTestResult",
    "DEFAULT_MEMORY_BUDGET",
    "permutations_for",
    "critical_value",
    "normalized_mmd2",
    "mmd_agg_test",
    "MMDAggregate",
    "DEFAULT_AGG_FACTORS",
]

#: Default working-memory budget (bytes) of `mmd2` and `mmd_test`: 1 GiB.
DEFAULT_MEMORY_BUDGET = 1 << 30

_ESTIMATORS = ("unbiased", "biased", "linear")
_METHODS = ("permutation", "linear")
_LARGE_PERMUTATION_N = 50_000


def permutations_for(level: float, n_permutations: int, *, resolution: int = 2) -> int:
    """The number of permutations a test at `level` needs: at least `n_permutations`.

    A permutation p-value is (1 + #{null >= statistic}) / (1 + P), so its smallest value is
    1 / (1 + P); a test with 1 / (1 + P) > level can never reject. Callers that test at a level
    they derive (a Bonferroni share alpha / k) raise P to `ceil(resolution / level) - 1`, so that
    the test can reject with up to `resolution - 1` permuted statistics at or above the observed one.

    Example:
        >>> permutations_for(0.05, 100)
        100
        >>> permutations_for(0.01 / 6, 500)
        1199
    """
    return max(int(n_permutations), int(math.ceil(resolution / level - 1e-9)) - 1)


def _max_rejectable_count(alpha: float, n_permutations: int) -> int:
    """The largest k with (1 + k) / (1 + P) <= alpha: a test rejects iff #{null >= statistic} <= k.

    Computed with the same floating-point expression as the p-value, so the two never disagree;
    -1 when even k = 0 gives a p-value above `alpha` (the test cannot reject).
    """
    k = int(math.floor(alpha * (1 + n_permutations))) - 1
    while k + 1 < n_permutations and (2.0 + k) / (1.0 + n_permutations) <= alpha:
        k += 1
    while k >= 0 and (1.0 + k) / (1.0 + n_permutations) > alpha:
        k -= 1
    return k


def critical_value(null: np.ndarray, alpha: float) -> float:
    """The exact critical value of a permutation test at level `alpha`.

    With the p-value (1 + #{null >= statistic}) / (1 + P), the test rejects iff at most
    k = floor(alpha (1 + P)) - 1 permuted statistics are >= the observed one, that is iff the
    statistic exceeds the (k + 1)-th largest permuted statistic. That order statistic is returned,
    so `statistic > critical_value(null, alpha)` <=> `p_value <= alpha`. It is +inf when k < 0
    (1 / (1 + P) > alpha: no statistic can reject).

    Args:
        null: the P permuted statistics.
        alpha: the level.

    Returns:
        The critical value (a float, +inf when the test cannot reject at `alpha`).

    Example:
        >>> critical_value(np.arange(19.0), 0.1)  # k = 1: the second largest
        17.0
    """
    null = np.asarray(null, dtype=np.float64).reshape(-1)
    k = _max_rejectable_count(alpha, null.size)
    if k < 0:
        return float("inf")
    # The (k + 1)-th largest = the (P - k)-th smallest (0-based index P - 1 - k).
    return float(np.partition(null, null.size - 1 - k)[null.size - 1 - k])


def min_attainable_p(n: int, m: int) -> float:
    """The smallest p-value a permutation test of `n` against `m` rows can give (however many permutations):
    one over the number of distinct splits, twice that with equal sizes (a split and its mirror tie)."""
    log_splits = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, (2.0 if n == m else 1.0) * math.exp(-log_splits))


def warn_if_untestable(n: int, m: int, alpha: float, what: str = "the MMD test") -> None:
    """Warn (loudly: a UserWarning) when no split of `n` + `m` rows is rare enough to reject at `alpha`."""
    min_p = min_attainable_p(n, m)
    if min_p > alpha:
        warnings.warn(
            f"Not testable: with {n} source and {m} target rows no split of the pooled rows is rarer than "
            f"{min_p:.3g}, so {what} can never detect a shift at alpha={alpha:g}; its 'no shift' means nothing. "
            "Pass more rows or a larger alpha.",
            UserWarning,
            stacklevel=3,
        )


def _check_attainable(alpha: float, n_permutations: int) -> None:
    if _max_rejectable_count(alpha, n_permutations) < 0:
        minimum = permutations_for(alpha, 1, resolution=1)
        while _max_rejectable_count(alpha, minimum) < 0:
            minimum += 1
        raise ValueError(
            f"n_permutations={n_permutations} cannot reach alpha={alpha:g}: the smallest permutation "
            f"p-value is 1 / (1 + n_permutations) = {1 / (1 + n_permutations):.4g} > alpha, so the test "
            f"could never detect a shift. Pass n_permutations >= {minimum} (at least "
            f"{permutations_for(alpha, 1)} to reject with one permuted statistic at or above the "
            "observed one), or a larger alpha."
        )


def _rescale(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Divide both samples by one power of two when their magnitude is extreme (see `data_scale`).

    The kernel with a median bandwidth is scale-invariant and a given bandwidth is divided by the
    same scale, so results are unchanged; data scaled by 1e160 no longer overflow to NaN. Data of
    ordinary magnitude are not copied (scale 1.0).
    """
    scale = kernels.data_scale(x, y)
    if scale != 1.0:
        x, y = x / scale, y / scale
    return x, y, scale


def _resolve_bandwidth(
    x: np.ndarray,
    y: np.ndarray,
    bandwidth: Any,
    seed: int | None = 0,
    scale: float = 1.0,
    budget: int = DEFAULT_MEMORY_BUDGET,
) -> np.ndarray:
    """The bandwidth(s) in the units of the (rescaled) data `x`, `y`."""
    bw = check_bandwidth(bandwidth)
    if bw is None:
        bw = np.array(
            [kernels.median_heuristic(x, y, seed=0 if seed is None else seed, memory_budget=max(budget // 2, 1 << 20))]
        )
    else:
        bw = bw / scale
    if not np.all(np.isfinite(bw**2)) or np.any(bw**2 == 0):
        raise ValueError(
            f"The MMD^2 statistic is not finite with bandwidth {_bandwidth_value(bw * scale)}: it is so far "
            f"from the data's scale (largest |value| about {scale * max(float(np.max(np.abs(x))), 1e-300):.3g}) "
            "that its square under- or overflows. Pass a bandwidth on the scale of the data, or "
            "bandwidth=None for the median heuristic."
        )
    return bw


def _check_finite_statistic(values: np.ndarray, bw: np.ndarray, scale: float) -> None:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = values[~np.isfinite(values)][0]
        raise ValueError(
            f"The MMD^2 statistic is not finite ({bad}) with bandwidth {_bandwidth_value(bw * scale)}: "
            "the kernel under- or overflowed. This is never reported as a shift. Pass a bandwidth on "
            "the scale of the data, or bandwidth=None for the median heuristic."
        )


def _bandwidth_value(bw: np.ndarray) -> float | tuple[float, ...]:
    return float(bw[0]) if bw.size == 1 else tuple(float(b) for b in bw)


class _Pooled:
    """A pooled sample given as parts (source, target) that are never concatenated or copied.

    The squared norms of the rows are computed once here and reused by every kernel block.
    """

    def __init__(self, *parts: np.ndarray):
        self.parts = parts
        self.sqnorms = [np.einsum("ij,ij->i", p, p) for p in parts]
        self.offsets = np.cumsum([0] + [len(p) for p in parts]).tolist()
        self.n = int(self.offsets[-1])
        self.n_features = int(parts[0].shape[1])

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows `[start, stop)` of the pooled sample and their squared norms (views unless a block
        straddles two parts)."""
        pieces, norms = [], []
        for part, sq, off in zip(self.parts, self.sqnorms, self.offsets):
            lo, hi = max(start, off), min(stop, off + len(part))
            if lo < hi:
                pieces.append(part[lo - off : hi - off])
                norms.append(sq[lo - off : hi - off])
        if len(pieces) == 1:
            return pieces[0], norms[0]
        return np.concatenate(pieces), np.concatenate(norms)


def _rows_per_block(n_cols: int, n_features: int, n_kernels: int, budget: int) -> int:
    # A block holds one float64 (rows, n_cols) buffer, built in place (`gaussian_kernel_block`);
    # several bandwidths add a running sum and a term of the same shape. A block straddling the
    # source/target boundary gathers its rows: (rows, n_features) more.
    per_row = 8 * (n_cols * (1 if n_kernels == 1 else 3) + n_features + 1)
    return int(max(1, min(n_cols, budget // per_row)))


def _kernel_blocks(rows: _Pooled, cols: _Pooled, bw: np.ndarray, n_rows: int):
    """Yield `(start, block)` with block = K[start:start+r, :] (float64). The block is one reused
    buffer: valid until the next one is yielded."""
    buf = np.empty((min(n_rows, rows.n), cols.n))
    for start in range(0, rows.n, n_rows):
        r, r_sq = rows.rows(start, min(rows.n, start + n_rows))
        yield start, kernels.gaussian_kernel_block(r, cols.parts, bw, r_sq, cols.sqnorms, out=buf)


def _kernel_sum(a: _Pooled, b: _Pooled, bw: np.ndarray, budget: int, exclude_diagonal: bool) -> float:
    total = 0.0
    for start, block in _kernel_blocks(a, b, bw, _rows_per_block(b.n, b.n_features, bw.size, budget)):
        total += float(block.sum())
        if exclude_diagonal:
            total -= float(np.trace(block, offset=start))
    return total


def mmd2(
    x: Any,
    y: Any,
    *,
    bandwidth: float | Sequence[float] | None = None,
    estimator: str = "unbiased",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> float:
    """Squared maximum mean discrepancy between two samples, with a Gaussian kernel.

    Args:
        x: source sample, shape `(n, ...)`; every axis after the first is flattened into features.
        y: target sample, shape `(m, ...)` with the same per-sample shape as `x`.
        bandwidth: kernel bandwidth; `None` uses the median heuristic on the pooled sample (the
            median Euclidean distance over all pairs, on a seeded subsample of 2,000 points when
            larger; see `shiftkit.shift.kernels`). A list of bandwidths sums those kernels.
        estimator: "unbiased" (MMD^2_u of Gretton et al. 2012, diagonal terms excluded; can be
            slightly negative), "biased" (the V-statistic, >= 0) or "linear" (the linear-time
            estimate on consecutive pairs, O(n) memory, for very large samples).
        memory_budget: bytes of working memory; kernel sums are taken in row blocks that fit.

    Returns:
        The MMD^2 estimate as a float.

    Raises:
        ValueError / TypeError: NaN or inf, empty input, a single sample, different feature
            shapes, non-numeric data, an unknown estimator or a non-positive bandwidth.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(200, 3)), rng.normal(0.5, size=(200, 3))
        >>> mmd2(x, y) > mmd2(x, rng.normal(size=(200, 3)))
        True
    """
    estimator = check_option(estimator, "estimator", _ESTIMATORS)
    x, y = check_pair(x, y, ("x", "y"))
    budget = check_positive_int(memory_budget, "memory_budget")
    x, y, scale = _rescale(x, y)
    bw = _resolve_bandwidth(x, y, bandwidth, scale=scale, budget=budget)
    n, m = len(x), len(y)
    if estimator == "linear":
        value = float(ops.convert_to_numpy(ops.mean(kernels.linear_mmd2_terms(x, y, bw))))
    else:
        px, py = _Pooled(x), _Pooled(y)
        sxx = _kernel_sum(px, px, bw, budget, exclude_diagonal=estimator == "unbiased")
        syy = _kernel_sum(py, py, bw, budget, exclude_diagonal=estimator == "unbiased")
        sxy = _kernel_sum(px, py, bw, budget, exclude_diagonal=False)
        if estimator == "biased":
            value = sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
        else:
            value = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)
    _check_finite_statistic(np.array([value]), bw, scale)
    return value


def normalized_mmd2(
    x: Any,
    y: Any,
    *,
    bandwidth: float | Sequence[float] | None = None,
    seed: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> float:
    """Scale-free MMD^2: the unbiased MMD^2 divided by the mean within-domain kernel value.

    The same figure as `mmd_test(x, y, bandwidth=bandwidth, seed=seed).normalized`, without the
    permutations (for monitoring a figure during training, where no test is wanted).

    Args:
        x: source sample `(n, ...)`; y: target sample `(m, ...)`, same per-sample shape.
        bandwidth: kernel bandwidth(s); `None`: the median heuristic (subsample seeded by `seed`).
        seed: seed of the median heuristic's subsample (as in `mmd_test`).
        memory_budget: bytes of working memory for the kernel sums.

    Returns:
        MMD^2_u / (mean of the off-diagonal means of Kxx and Kyy); NaN when that mean is 0.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> normalized_mmd2(rng.normal(size=(100, 2)), rng.normal(1, size=(100, 2)), seed=0) > 0.05
        True
    """
    x, y = check_pair(x, y, ("x", "y"))
    budget = check_positive_int(memory_budget, "memory_budget")
    seed = check_seed(seed)
    x, y, scale = _rescale(x, y)
    bw = _resolve_bandwidth(x, y, bandwidth, seed, scale=scale, budget=budget)
    n, m = len(x), len(y)
    px, py = _Pooled(x), _Pooled(y)
    mean_xx = _kernel_sum(px, px, bw, budget, exclude_diagonal=True) / (n * (n - 1))
    mean_yy = _kernel_sum(py, py, bw, budget, exclude_diagonal=True) / (m * (m - 1))
    mean_xy = _kernel_sum(px, py, bw, budget, exclude_diagonal=False) / (n * m)
    stat = mean_xx + mean_yy - 2.0 * mean_xy
    _check_finite_statistic(np.array([stat]), bw, scale)
    within = 0.5 * (mean_xx + mean_yy)
    return stat / within if within > 0 else float("nan")


@dataclasses.dataclass(frozen=True)
class MMDAggregate:
    """The per-kernel evidence of an aggregated MMD test (`mmd_agg_test`).

    Attributes:
        kernels: the kernel of each candidate ("gaussian" or "laplace").
        bandwidths: the bandwidth of each candidate (data units).
        factors: each bandwidth as a multiple of the median heuristic (None where given absolutely).
        statistics: the unbiased MMD^2 of the observed split under each kernel.
        p_values: each kernel's own (uncorrected) permutation p-value,
            (1 + #{null_k >= statistic_k}) / (1 + n_permutations).
        min_p_value: the smallest of `p_values`: the aggregated test's statistic.
        selected: the index of the kernel with the smallest p-value (on ties, the one whose
            statistic is the most null standard deviations out).
        adjusted_level: the multiplicity-corrected per-kernel level at `alpha`: the test rejects iff
            `min_p_value < adjusted_level` (the (k + 1)-th smallest permuted minimum p-value, with
            k = floor(alpha (1 + n_permutations)) - 1; 0 when the test cannot reject).
        null_min_p: the minimum p-value of each permutation (each permuted split's p-values ranked
            among all 1 + n_permutations splits), the permutation null of `min_p_value`.
    """

    kernels: tuple[str, ...]
    bandwidths: tuple[float, ...]
    factors: tuple[float, ...] | None
    statistics: tuple[float, ...]
    p_values: tuple[float, ...]
    min_p_value: float
    selected: int
    adjusted_level: float
    null_min_p: np.ndarray = dataclasses.field(repr=False, compare=False)
    null_statistics: np.ndarray = dataclasses.field(repr=False, compare=False, default=None)

    def to_dict(self, *, include_null: bool = False) -> dict[str, Any]:
        """Plain JSON-ready dict (`null_min_p` only with `include_null=True`)."""
        out = dataclass_to_dict(self, exclude=("null_min_p", "null_statistics"))
        if include_null:
            out["null_min_p"] = jsonable(self.null_min_p)
            out["null_statistics"] = jsonable(self.null_statistics)
        out["correction"] = (
            "min-p over kernels calibrated on the same permutations (exact level; "
            "reject iff min_p_value < adjusted_level)"
        )
        return out


@dataclasses.dataclass(frozen=True)
class MMDTestResult:
    """Outcome of an MMD two-sample test. Direction: a larger statistic / smaller p-value means shift.

    Attributes:
        statistic: the unbiased MMD^2 of the observed split ("permutation"), or the linear-time
            MMD^2 ("linear").
        p_value: permutation p-value (1 + #{null >= statistic}) / (1 + n_permutations), or the
            one-sided normal p-value of the linear-time statistic.
        threshold: the exact critical value at `alpha`: `statistic > threshold` <=> `is_shift`.
            For "permutation", the (k + 1)-th largest permuted statistic with
            k = floor(alpha (1 + n_permutations)) - 1 (see `critical_value`); for "linear",
            `norm.isf(alpha)` standard errors.
        is_shift: `p_value <= alpha`.
        alpha: the level of the test.
        bandwidth: the kernel bandwidth (a tuple when several kernels are summed).
        null: the permuted statistics (empty for "linear").
        n_source, n_target: the sample sizes tested (after any `max_samples` subsampling).
        method: "permutation" or "linear".
        n_permutations: the number of permutations (0 for "linear").
        normalized: scale-free MMD^2: the statistic divided by the mean within-domain kernel value
            (average of the off-diagonal means of Kxx and Kyy). Comparable across feature spaces.
        z_score: (statistic - mean(null)) / std(null): how many null standard deviations out.
        space: "input" or "feature" (or a user label).
        computation: how the kernel was computed (full matrix or row blocks) and the memory used.
        aggregate: for an aggregated test (`mmd_agg_test`, `bandwidth="agg"`) the per-kernel
            statistics and p-values (`MMDAggregate`); None for a single kernel. Then `p_value` is
            the multiplicity-corrected p-value, and `statistic`, `bandwidth`, `null`, `threshold`,
            `normalized` and `z_score` are those of the kernel with the smallest p-value (still
            `statistic > threshold` <=> `is_shift`).
    """

    statistic: float
    p_value: float
    threshold: float
    is_shift: bool
    alpha: float
    bandwidth: float | tuple[float, ...]
    null: np.ndarray = dataclasses.field(repr=False, compare=False)
    n_source: int
    n_target: int
    method: str
    n_permutations: int
    normalized: float
    z_score: float
    space: str = "input"
    computation: str = ""
    aggregate: MMDAggregate | None = dataclasses.field(default=None, compare=False)

    def at_level(self, level: float) -> "MMDTestResult":
        """The same test decided at another level (for a multiple-testing correction).

        Statistic, p-value and null are unchanged; `alpha`, `threshold` (the exact critical value
        at `level`) and `is_shift` (`p_value <= level`) are recomputed.

        Args:
            level: the new level, in (0, 1).

        Returns:
            A new `MMDTestResult`.
        """
        level = check_alpha(level, "level")
        if self.aggregate is not None:
            agg = self.aggregate
            all_stats = np.concatenate([np.asarray(agg.statistics)[:, None], agg.null_statistics], axis=1)
            adjusted, threshold = _aggregate_threshold(
                all_stats, _rank_counts(all_stats), agg.selected, self.n_permutations, level
            )
            aggregate = dataclasses.replace(self.aggregate, adjusted_level=adjusted)
            return dataclasses.replace(
                self, alpha=level, threshold=threshold, is_shift=bool(self.p_value <= level), aggregate=aggregate
            )
        if self.method == "permutation":
            threshold = critical_value(self.null, level)
        elif math.isfinite(self.z_score) and self.z_score != 0:
            se = self.statistic / self.z_score
            threshold = float(stats.norm.isf(level) * se)
        elif not math.isfinite(self.z_score):  # zero standard error
            threshold = 0.0
        else:  # statistic exactly 0: the standard error cannot be recovered
            threshold = float("nan")
        return dataclasses.replace(self, alpha=level, threshold=threshold, is_shift=bool(self.p_value <= level))

    def to_dict(self, *, include_null: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict (`null` as a list unless `include_null=False`)."""
        out = dataclass_to_dict(self, exclude=("null", "aggregate"))
        if include_null:
            out["null"] = jsonable(self.null)
        if self.aggregate is not None:
            out["aggregate"] = self.aggregate.to_dict(include_null=include_null)
        out["direction"] = "p_value: lower means shift; statistic: higher means shift"
        return out


def _split_statistics(
    aka: np.ndarray, a_s: np.ndarray, a_d: np.ndarray, total: float, trace: float, n: int, m: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unbiased MMD^2 and within-domain off-diagonal means for each split (vectorised)."""
    bkb = total - 2.0 * a_s + aka
    akb = a_s - aka
    b_d = trace - a_d
    mean_xx = (aka - a_d) / (n * (n - 1))
    mean_yy = (bkb - b_d) / (m * (m - 1))
    return mean_xx + mean_yy - 2.0 * akb / (n * m), mean_xx, mean_yy


def _draw_splits(n: int, big_n: int, first: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indicator rows (count, N), row j = split `first + j`: 1.0 at the n points assigned to x.

    Split 0 is the observed one (the first n points); every other split takes the first n entries of
    one `rng.permutation(N)` (the same stream as before the batched rewrite, so p-values for a given
    seed are unchanged). The only per-permutation Python step is that draw; the rows are filled in
    one scatter.
    """
    idx = np.empty((count, n), dtype=np.intp)
    for j in range(count):
        idx[j] = np.arange(n) if first + j == 0 else rng.permutation(big_n)[:n]
    at = np.zeros((count, big_n))
    np.put_along_axis(at, idx, 1.0, axis=1)
    return at


def _n_buffers(specs: Sequence[tuple[str, np.ndarray]]) -> int:
    """(N, N)-sized (or (rows, N)-sized) buffers the kernel evaluation holds: distances in place
    (one kernel, one bandwidth); distances + kernel (several kernels); + a term (summed bandwidths)."""
    if len(specs) == 1 and specs[0][1].size == 1:
        return 1
    return 2 if all(b.size == 1 for _, b in specs) else 3


def _permutation_statistics(
    z: _Pooled,
    n: int,
    specs: Sequence[tuple[str, np.ndarray]],
    n_permutations: int,
    seed: int | None,
    budget: int,
    *,
    median_seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray]], str]:
    """Unbiased MMD^2 of the observed split and `n_permutations` permutations, for several kernels.

    Every kernel sees the same permutations. With the indicator rows A' (P x N) of the splits, the
    products A' K give, per split, a'Ka (row-wise dot with A'), 1'Ka = a's (row sums; K symmetric)
    and, with one extra row of ones, 1'K1; a'd comes from the diagonal. The squared distances are
    computed once and shared by the kernels; when the (N, N) matrices fit in half the budget they
    are held whole (one matrix product per kernel and permutation batch), otherwise they are
    computed in row blocks, each block used for every kernel and dropped.

    Args:
        z: the pooled sample (x first, n rows, then y).
        n: the size of x.
        specs: (kernel kind, bandwidths) per kernel; bandwidths in data units, or multiples of the
            median heuristic when `median_seed` is given.
        n_permutations: P.
        seed: permutation seed.
        budget: bytes.
        median_seed: when not None, the bandwidths of `specs` are multiplied by the median
            heuristic (seeded subsample `median_seed`), read off the full distance matrix when it
            is held (`kernels.median_from_sqdist`), else from `kernels.median_heuristic`.

    Returns:
        `(stats (len(specs), P + 1), within (len(specs),), resolved specs, computation)`; column 0
        of `stats` is the observed split; `within` the mean within-domain kernel value there.
    """
    big_n, m = z.n, z.n - n
    n_specs = len(specs)
    n_buf = _n_buffers(specs)
    full_bytes = 8 * big_n * big_n
    keep_full = n_buf * full_bytes <= budget // 2
    a_budget = budget // 2 if not keep_full else max(budget - n_buf * full_bytes, budget // 4)
    n_splits = n_permutations + 1  # split 0 is the observed one
    # A batch holds the indicator rows, their indices and, with the full kernel, A'K: about
    # 2.5 x (batch, N) floats; in row blocks the product is only (rows, batch).
    per_column = (20 if keep_full else 12) * big_n
    perm_batch = int(max(1, min(n_splits, a_budget // per_column)))
    rows = _rows_per_block(big_n, z.n_features, 1 if n_buf == 1 else 2, budget // 2)
    batches = [(first, min(perm_batch, n_splits - first)) for first in range(0, n_splits, perm_batch)]

    aka = np.empty((n_specs, n_splits + 1))  # the last column: the row of ones (1'K1, trace)
    a_s = np.empty((n_specs, n_splits + 1))
    a_d = np.empty((n_specs, n_splits + 1))

    def batch_rows(first: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, slice]:
        at = _draw_splits(n, big_n, first, count, rng)
        if first == 0:  # one more row: ones, for 1'K1 and the trace
            at = np.concatenate([at, np.ones((1, big_n))])
        return at, slice(first, first + count)

    def store(k: int, at: np.ndarray, cols: slice, vals: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        count = cols.stop - cols.start
        for target, v in zip((aka, a_s, a_d), vals):
            target[k, cols] = v[:count]
            if len(v) > count:
                target[k, -1] = v[count]

    if keep_full:
        dist = np.empty((big_n, big_n))
        if 16 * big_n * (z.n_features + 2) <= budget // 4:  # augmented copies: one product, no passes
            kernels.pooled_squared_distances(z.parts, z.sqnorms, out=dist)
        else:
            for part, sq, off in zip(z.parts, z.sqnorms, z.offsets):
                kernels.squared_distance_block(part, z.parts, sq, z.sqnorms, out=dist[off : off + len(part)])
        if median_seed is not None:
            med, _ = kernels.median_from_sqdist(dist, seed=median_seed)
            specs = [(kind, bw * med) for kind, bw in specs]
        kbuf = dist if n_buf == 1 else np.empty_like(dist)
        cached = None
        for k, (kind, bw) in enumerate(specs):
            kmat = kernels.kernel_from_sqdist(dist, bw, kind, out=kbuf)
            diag = np.diagonal(kmat).copy()
            rng = np.random.default_rng(seed)  # the same permutations for every kernel
            for first, count in batches:
                if cached is not None:
                    at, cols = cached
                else:
                    at, cols = batch_rows(first, count, rng)
                    if len(batches) == 1:
                        cached = (at, cols)
                akt = at @ kmat  # (A'K) = (KA)': K is symmetric
                store(k, at, cols, (np.einsum("pi,pi->p", at, akt), akt.sum(axis=1), at @ diag))
                del akt
        del dist, kbuf
    else:
        if median_seed is not None:
            med = kernels.median_heuristic(
                *z.parts, seed=median_seed, memory_budget=max(budget // 2, 1 << 20)
            )
            specs = [(kind, bw * med) for kind, bw in specs]
        rng = np.random.default_rng(seed)
        dbuf = np.empty((min(rows, big_n), big_n))
        kbuf = dbuf if n_buf == 1 else np.empty_like(dbuf)
        for first, count in batches:
            at, cols = batch_rows(first, count, rng)
            acc = np.zeros((n_specs, 3, len(at)))
            for start in range(0, big_n, rows):
                stop = min(big_n, start + rows)
                r, r_sq = z.rows(start, stop)
                block = kernels.squared_distance_block(r, z.parts, r_sq, z.sqnorms, out=dbuf)
                a_rows = at[:, start:stop]
                for k, (kind, bw) in enumerate(specs):
                    kb = kernels.kernel_from_sqdist(block, bw, kind, out=kbuf[: stop - start])
                    prod = kb @ at.T  # rows of K A
                    acc[k, 0] += np.einsum("pi,ip->p", a_rows, prod)
                    acc[k, 1] += prod.sum(axis=0)
                    acc[k, 2] += a_rows @ np.diagonal(kb, offset=start)
            for k in range(n_specs):
                store(k, at, cols, (acc[k, 0], acc[k, 1], acc[k, 2]))
        del dbuf, kbuf

    stats_ = np.empty((n_specs, n_splits))
    within = np.empty(n_specs)
    for k in range(n_specs):
        values, mean_xx, mean_yy = _split_statistics(
            aka[k, :-1], a_s[k, :-1], a_d[k, :-1], aka[k, -1], a_d[k, -1], n, m
        )
        stats_[k] = values
        within[k] = 0.5 * (mean_xx[0] + mean_yy[0])
    n_batches = len(batches)
    mib = 1 / (1 << 20)
    what = "kernel matrix" if n_specs == 1 else f"{n_specs} kernel matrices (one distance matrix)"
    if keep_full:
        how = (
            f"full {big_n}x{big_n} {what} ({n_buf * full_bytes * mib:.0f} MiB) computed once; "
            f"permutations as matrix products in {n_batches} batch(es)"
        )
    else:
        how = (
            f"{what} ({n_buf * full_bytes * mib:.0f} MiB) exceeds half the memory_budget "
            f"({budget * mib:.0f} MiB): computed in row blocks of {rows} rows"
            + (
                ", each block used for all permutations at once"
                if n_batches == 1
                else f", recomputed for each of {n_batches} permutation batches"
            )
        )
    return stats_, within, list(specs), how


def _linear_test(x: np.ndarray, y: np.ndarray, bw: np.ndarray) -> tuple[float, float, float, float]:
    h = np.asarray(ops.convert_to_numpy(kernels.linear_mmd2_terms(x, y, bw)), dtype=np.float64)
    if h.size < 2:
        raise ValueError(
            "method='linear' needs at least 4 samples in each of x_source and x_target; "
            "use method='permutation' for small samples."
        )
    stat = float(h.mean())
    se = float(h.std(ddof=1) / math.sqrt(h.size))
    if se <= 0:
        return stat, (0.0 if stat > 0 else 1.0), 0.0, 0.0
    return stat, float(stats.norm.sf(stat / se)), se, float(h.size)


def _subsample(arr: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_samples is None or len(arr) <= max_samples:
        return arr
    return arr[np.sort(rng.choice(len(arr), size=max_samples, replace=False))]


def _prepared_pair(
    x: Any, y: Any, features: Callable[[Any], Any] | None, check_input: bool, max_samples: Any, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Validated 2-D float64 samples (features applied, seeded subsampling to `max_samples`)."""
    if max_samples is not None:
        max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
    if features is not None:
        if not callable(features):
            raise TypeError(
                "features must be a callable mapping inputs to features, e.g. "
                f"shiftkit.shift.feature_space(model); got {type(features).__name__}."
            )
        if check_input:
            x = check_array(x, "x_source")
            y = check_array(y, "x_target")
        rows = (len(x), len(y))
        x, y = features(x), features(y)
        x, y = check_pair(x, y, ("features(x_source)", "features(x_target)"))
        if (len(x), len(y)) != rows:
            raise ValueError(
                f"features returned {len(x)} and {len(y)} rows for inputs of {rows[0]} and {rows[1]} rows: it must "
                "map each input row to one feature row (e.g. shiftkit.shift.feature_space(model))."
            )
    elif check_input:
        x, y = check_pair(x, y, ("x_source", "x_target"))
    else:  # validated by the caller
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    rng = np.random.default_rng(seed)
    return _subsample(x, max_samples, rng), _subsample(y, max_samples, rng)


def mmd_test(
    x: Any,
    y: Any,
    *,
    n_permutations: int = 1000,
    alpha: float = 0.05,
    bandwidth: float | Sequence[float] | str | None = "auto",
    seed: int | None = None,
    features: Callable[[Any], Any] | None = None,
    method: str = "permutation",
    max_samples: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    space: str | None = None,
    check_input: bool = True,
) -> MMDTestResult:
    """Two-sample test of "x and y come from the same distribution" with MMD^2.

    Args:
        x: source sample `(n, ...)`; y: target sample `(m, ...)`, same per-sample shape.
        n_permutations: permutations of the pooled sample forming the null distribution; at
            least `1 / alpha - 1`, or the test could never reject (a ValueError says so).
        alpha: level of the test; `is_shift` is `p_value <= alpha`.
        bandwidth: "auto" (the default): "agg" for `method="permutation"`, the median heuristic
            for `method="linear"` (chosen by measured power over several shift kinds and sample
            sizes, see benchmarks/mmd_bandwidth_choice.md). "agg" runs the aggregated test over
            several bandwidths (the pooled median times 1/4 ... 4) with an exact multiplicity
            correction (`mmd_agg_test` with its defaults; the result's `aggregate` lists each
            bandwidth's statistic and p-value). `None` or "median": one Gaussian kernel with the
            median heuristic on the pooled sample, fixed once before permuting (read off the
            test's own distance matrix when it fits in memory). A number: that bandwidth; a list
            sums those kernels.
        seed: seed of the permutations (and of any subsampling) for reproducible p-values.
        features: optional callable mapping a batch of inputs to features, e.g.
            `feature_space(model)`, so the test runs in a model's feature space.
        method: "permutation" (unbiased MMD^2 with a permutation null; exact level) or "linear"
            (linear-time MMD^2 with its asymptotic normal null: O(n) time and memory, for samples
            too large to permute; less powerful at equal n).
        max_samples: if set, each sample is first subsampled (seeded) to at most this size.
        memory_budget: bytes the kernel computation may use (default 1 GiB); above it the kernel
            is computed in row blocks (`result.computation` says so).
        space: label stored in the result; default "feature" when `features` is given, else "input".
        check_input: validate `x` and `y` (finite numbers, same per-sample shape: the default).
            False skips that for callers that have validated them already (`shift_report`,
            `diagnose`: scikit-learn's `check_input` convention); the features a model returns
            are still checked.

    Returns:
        An `MMDTestResult`.

    Raises:
        ValueError / TypeError: invalid data (see `mmd2`), `n_permutations < 1`, `alpha` outside
            (0, 1), unknown method, a non-positive bandwidth; `n_permutations` too few to ever
            reach `alpha` (1 / (1 + n_permutations) > alpha: the message names the minimum, see
            `permutations_for`).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> res = mmd_test(rng.normal(size=(100, 2)), rng.normal(1, size=(100, 2)), seed=0)
        >>> res.is_shift
        True
    """
    method = check_option(method, "method", _METHODS)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    alpha = check_alpha(alpha)
    if method == "permutation":
        _check_attainable(alpha, n_permutations)
    seed = check_seed(seed)
    budget = check_positive_int(memory_budget, "memory_budget")
    if isinstance(bandwidth, str) and bandwidth == "auto":
        # The default, chosen by measured power (benchmarks/mmd_bandwidth_choice.md): the
        # aggregated test for permutation tests, the median heuristic for the linear-time test.
        bandwidth = "agg" if method == "permutation" else None
    elif isinstance(bandwidth, str) and bandwidth == "median":
        bandwidth = None
    if isinstance(bandwidth, str) and bandwidth == "agg":
        if method != "permutation":
            raise ValueError(
                "bandwidth='agg' (the aggregated test over several bandwidths) needs "
                f"method='permutation'; got method={method!r}. Pass a bandwidth (or None) with "
                "method='linear'."
            )
        return mmd_agg_test(
            x, y, n_permutations=n_permutations, alpha=alpha, seed=seed, features=features,
            max_samples=max_samples, memory_budget=budget, space=space, check_input=check_input,
        )
    if isinstance(bandwidth, str):
        raise TypeError(
            "bandwidth must be 'auto' (the default), 'agg' (the aggregated test over several "
            "bandwidths, see mmd_agg_test), None or 'median' (the median heuristic), a positive "
            f"number or a list of them; got {bandwidth!r}."
        )
    check_bandwidth(bandwidth)
    x, y = _prepared_pair(x, y, features, check_input, max_samples, seed)
    n, m = len(x), len(y)
    if method == "permutation":
        warn_if_untestable(n, m, alpha)
    x, y, scale = _rescale(x, y)
    space = space or ("feature" if features is not None else "input")
    if method == "permutation" and bandwidth is None:
        # The median heuristic is read off the pooled distance matrix the test computes anyway.
        return _permutation_result(
            x, y, [("gaussian", np.ones(1))], n_permutations, alpha, seed, budget, scale, space,
            median_seed=0 if seed is None else seed,
        )
    bw = _resolve_bandwidth(x, y, bandwidth, seed, scale=scale, budget=budget)

    if method == "linear":
        stat, p_value, se, _ = _linear_test(x, y, bw)
        _check_finite_statistic(np.array([stat, se]), bw, scale)
        threshold = float(stats.norm.isf(alpha) * se)
        # Mean within-domain kernel value on the same consecutive pairs, for `normalized`.
        half = min(n, m) // 2
        kxx = ops.convert_to_numpy(kernels.paired_kernel(x[: 2 * half : 2], x[1 : 2 * half : 2], bw))
        kyy = ops.convert_to_numpy(kernels.paired_kernel(y[: 2 * half : 2], y[1 : 2 * half : 2], bw))
        within = 0.5 * (float(np.mean(kxx)) + float(np.mean(kyy)))
        return MMDTestResult(
            statistic=stat,
            p_value=p_value,
            threshold=threshold,
            is_shift=bool(p_value <= alpha),
            alpha=alpha,
            bandwidth=_bandwidth_value(bw * scale),
            null=np.empty(0),
            n_source=n,
            n_target=m,
            method="linear",
            n_permutations=0,
            normalized=stat / within if within > 0 else float("nan"),
            z_score=stat / se if se > 0 else float("nan"),
            space=space,
            computation=f"linear-time MMD^2 on {half} pairs, O(n) memory, normal approximation",
        )

    return _permutation_result(x, y, [("gaussian", bw)], n_permutations, alpha, seed, budget, scale, space)


def _permutation_result(
    x: np.ndarray,
    y: np.ndarray,
    specs: list[tuple[str, np.ndarray]],
    n_permutations: int,
    alpha: float,
    seed: int | None,
    budget: int,
    scale: float,
    space: str,
    *,
    median_seed: int | None = None,
) -> MMDTestResult:
    """The permutation test with one kernel (`specs` of length 1) as an `MMDTestResult`."""
    n, m = len(x), len(y)
    if n + m > _LARGE_PERMUTATION_N:
        warnings.warn(
            f"mmd_test: {n + m} pooled samples make the permutation test slow (time grows as "
            "N^2 x n_permutations). Pass max_samples=... or method='linear' for large samples.",
            stacklevel=3,
        )
    all_stats, within, specs, how = _permutation_statistics(
        _Pooled(x, y), n, specs, n_permutations, seed, budget, median_seed=median_seed
    )
    bw = specs[0][1]
    stat, null, within = float(all_stats[0, 0]), all_stats[0, 1:], float(within[0])
    _check_finite_statistic(all_stats[0], bw, scale)
    p_value = (1.0 + np.count_nonzero(null >= stat - tie_tolerance(all_stats[0]))) / (1.0 + n_permutations)
    std = float(null.std())
    return MMDTestResult(
        statistic=stat,
        p_value=float(p_value),
        threshold=critical_value(null, alpha),
        is_shift=bool(p_value <= alpha),
        alpha=alpha,
        bandwidth=_bandwidth_value(bw * scale),
        null=null,
        n_source=n,
        n_target=m,
        method="permutation",
        n_permutations=n_permutations,
        normalized=stat / within if within > 0 else float("nan"),
        z_score=(stat - float(null.mean())) / std if std > 0 else float("nan"),
        space=space,
        computation=how,
    )


#: Default bandwidths of the aggregated test, as multiples of the median heuristic (see
#: benchmarks/mmd_bandwidth_choice.md for how they were chosen).
DEFAULT_AGG_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)

_AGG_KERNELS = ("gaussian", "laplace")


#: Statistics within this relative distance (of the row's largest magnitude) of another count as equal to it, as
#: in `scipy.stats.permutation_test`: a split and its mirror image (source and target swapped, equal sizes) have
#: the same statistic, and rounding must not break that tie in the observed split's favour (with 4 rows a side it
#: gave p = 0.0095 where the smallest attainable is 2/70).
TIE_RTOL = 1e-12


def tie_tolerance(stats_: np.ndarray) -> float:
    """The absolute tolerance under which two statistics of one kernel count as tied (`TIE_RTOL`)."""
    stats_ = np.asarray(stats_, dtype=np.float64)
    finite = stats_[np.isfinite(stats_)]
    return TIE_RTOL * float(np.max(np.abs(finite))) if finite.size else 0.0


def _rank_counts(stats_: np.ndarray) -> np.ndarray:
    """counts[k, j] = #{i : stats[k, i] >= stats[k, j] - tol_k} over all splits i (observed included); ties
    within `tie_tolerance` of the row."""
    counts = np.empty(stats_.shape, dtype=np.int64)
    total = stats_.shape[1]
    for k, row in enumerate(stats_):
        counts[k] = total - np.searchsorted(np.sort(row), row - tie_tolerance(row), side="left")
    return counts


def _aggregate_rejects(counts: np.ndarray, n_permutations: int, k: int) -> bool:
    cmin = counts.min(axis=0)
    return int(np.count_nonzero(cmin[1:] <= cmin[0])) <= k


def _aggregate_threshold(
    stats_: np.ndarray, counts: np.ndarray, selected: int, n_permutations: int, level: float
) -> tuple[float, float]:
    """(adjusted per-kernel level, critical value of the selected kernel's statistic) at `level`.

    The aggregated test rejects iff #{permuted min-p <= observed min-p} <= k, k =
    `_max_rejectable_count(level, P)` (its p-value (1 + that count) / (1 + P) <= level); that is
    iff the observed min-p is below the (k + 1)-th smallest permuted min-p: the adjusted level.

    The critical value: the decision only grows with the selected kernel's observed statistic s
    (a larger s ranks the observed split higher and every permuted split no higher), and changes
    only when s crosses one of that kernel's permuted statistics. So the threshold is the
    smallest permuted statistic u such that every s > u rejects (the other kernels' statistics
    held), found by bisection over the sorted permuted statistics; +inf when no s rejects, -inf when
    every s does (another kernel alone rejects). With one
    kernel it is `critical_value(null, level)`.
    """
    k = _max_rejectable_count(level, n_permutations)
    if k < 0:
        return 0.0, float("inf")
    cmin = counts.min(axis=0)
    adjusted = float(np.partition(cmin[1:], k)[k]) / (1.0 + n_permutations)
    null = stats_[selected, 1:]
    above_null = counts[selected, 1:] - (stats_[selected, 0] >= null - tie_tolerance(stats_[selected]))  # among the permuted
    desc = np.sort(null)[::-1]

    def rejects_above(r: int) -> bool:
        """Decision with the observed statistic just above desc[r] (r = P: below every one)."""
        u = desc[r] if r < len(desc) else -np.inf
        trial = counts.copy()
        trial[selected, 0] = 1 + int(np.count_nonzero(null > u))
        trial[selected, 1:] = above_null + (null <= u)
        return _aggregate_rejects(trial, n_permutations, k)

    if not rejects_above(0):
        return adjusted, float("inf")
    lo, hi = 0, len(desc)  # rejects_above(lo) is True; find the largest such r
    if rejects_above(hi):
        return adjusted, float("-inf")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if rejects_above(mid):
            lo = mid
        else:
            hi = mid
    return adjusted, float(desc[lo])


def _min_p_aggregate(
    all_stats: np.ndarray, n_permutations: int, alpha: float
) -> tuple[float, np.ndarray, int, np.ndarray, float, float]:
    """The min-p aggregation of several kernels' statistics on the same splits (exact level).

    Each split's per-kernel p-value is its rank among the 1 + P splits of that kernel; the
    aggregated statistic is the smallest per-kernel p-value, calibrated against the permuted
    splits' smallest p-values. Shared by `mmd_agg_test` (bandwidths) and
    `shiftkit.shift.mmd_joint` (representations and bandwidths).

    Args:
        all_stats: `(kernels, 1 + P)` statistics; column 0 is the observed split.
        n_permutations: P.
        alpha: the level (for the adjusted level and the threshold).

    Returns:
        `(p_value, per-kernel p-values, selected kernel, permuted min-p (P,), adjusted per-kernel
        level, critical value of the selected kernel's statistic)`. The selected kernel has the
        smallest p-value; among ties, the one furthest out in its null (z-score).
    """
    counts = _rank_counts(all_stats)
    cmin = counts.min(axis=0)
    total = 1.0 + n_permutations
    p_value = (1.0 + np.count_nonzero(cmin[1:] <= cmin[0])) / total
    per_kernel = counts[:, 0] / total
    nulls = all_stats[:, 1:]
    sd = nulls.std(axis=1)
    z = np.where(sd > 0, (all_stats[:, 0] - nulls.mean(axis=1)) / np.where(sd > 0, sd, 1.0), -np.inf)
    tied = np.flatnonzero(counts[:, 0] == counts[:, 0].min())
    sel = int(tied[np.argmax(z[tied])])
    adjusted, threshold = _aggregate_threshold(all_stats, counts, sel, n_permutations, alpha)
    return float(p_value), per_kernel, sel, cmin[1:] / total, adjusted, threshold


def _check_agg_kernels(kernel: Any) -> tuple[str, ...]:
    names = [kernel] if isinstance(kernel, str) else kernel
    if isinstance(kernel, str) and kernel == "both":
        names = list(_AGG_KERNELS)
    try:
        names = [str(k) if isinstance(k, str) else k for k in names]
    except TypeError:
        names = [kernel]
    if not names or any(not isinstance(k, str) or k not in _AGG_KERNELS for k in names):
        raise ValueError(
            f"kernel must be 'gaussian', 'laplace', 'both' or a list of those; got {kernel!r}."
        )
    return tuple(dict.fromkeys(names))


def _check_factors(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a list of positive numbers; got {values!r}.") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be a non-empty list of positive, finite numbers; got {values!r}.")
    return arr


def mmd_agg_test(
    x: Any,
    y: Any,
    *,
    n_permutations: int = 1000,
    alpha: float = 0.05,
    factors: Sequence[float] | None = None,
    bandwidths: Sequence[float] | None = None,
    kernel: str | Sequence[str] = "gaussian",
    seed: int | None = None,
    features: Callable[[Any], Any] | None = None,
    max_samples: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    space: str | None = None,
    check_input: bool = True,
) -> MMDTestResult:
    """Aggregated MMD test: several kernels (bandwidths) tested together, with an exact correction.

    An MMDAgg-style test (Schrab et al. 2023, JMLR; this implementation is shiftkit's own): the
    unbiased MMD^2 is computed for every candidate kernel on the SAME permutations (one distance
    matrix, one matrix product per kernel). Each split's per-kernel p-value is its rank among
    all 1 + P splits; the aggregated statistic is the smallest per-kernel p-value, and it is
    calibrated against the same splits' smallest p-values (a min-p / Westfall-Young correction).
    The 1 + P splits are exchangeable under H0 and the statistic treats them symmetrically, so the
    corrected p-value (1 + #{permuted min-p <= observed min-p}) / (1 + P) is exact: the test's
    level is at most `alpha` for any sample size and any number of kernels. A shift visible only
    at a scale far from the median distance is then detected without giving up the level.

    Args:
        x: source sample `(n, ...)`; y: target sample `(m, ...)`, same per-sample shape.
        n_permutations: permutations (shared by every kernel).
        alpha: level of the test.
        factors: bandwidths as multiples of the median heuristic (pooled sample, seeded
            subsample as in `mmd_test`); default `DEFAULT_AGG_FACTORS` = (1/4, 1/2, 1, 2, 4).
        bandwidths: absolute bandwidths instead of `factors` (not both).
        kernel: "gaussian" (exp(-d^2 / (2 h^2))), "laplace" (exp(-d / h), Euclidean d), "both"
            or a list: every kernel is paired with every bandwidth.
        seed: seed of the permutations, subsampling and the median's subsample.
        features, max_samples, memory_budget, space, check_input: as in `mmd_test`.

    Returns:
        An `MMDTestResult` whose `aggregate` holds each kernel's statistic and p-value; `p_value`
        is the corrected p-value, the other fields describe the kernel with the smallest p-value.

    Raises:
        ValueError / TypeError: as `mmd_test`; factors or bandwidths not positive, both given, an
            unknown kernel.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> res = mmd_agg_test(rng.normal(size=(100, 2)), rng.normal(1, size=(100, 2)), seed=0)
        >>> res.is_shift, len(res.aggregate.p_values)
        (True, 5)
    """
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    alpha = check_alpha(alpha)
    _check_attainable(alpha, n_permutations)
    seed = check_seed(seed)
    budget = check_positive_int(memory_budget, "memory_budget")
    kinds = _check_agg_kernels(kernel)
    if factors is not None and bandwidths is not None:
        raise ValueError(
            "Pass factors (multiples of the median heuristic) or bandwidths (absolute), not both."
        )
    relative = bandwidths is None
    values = _check_factors(DEFAULT_AGG_FACTORS if factors is None and relative else
                            (factors if relative else bandwidths), "factors" if relative else "bandwidths")
    x, y = _prepared_pair(x, y, features, check_input, max_samples, seed)
    n, m = len(x), len(y)
    warn_if_untestable(n, m, alpha, "the aggregated MMD test")
    x, y, scale = _rescale(x, y)
    space = space or ("feature" if features is not None else "input")
    specs = [(kind, np.array([v if relative else v / scale])) for kind in kinds for v in values]
    if not relative:
        _resolve_bandwidth(x, y, values, seed, scale=scale, budget=budget)  # finiteness check
    if n + m > _LARGE_PERMUTATION_N:
        warnings.warn(
            f"mmd_agg_test: {n + m} pooled samples make the permutation test slow (time grows as "
            "N^2 x n_permutations x kernels). Pass max_samples=... for large samples.",
            stacklevel=2,
        )
    all_stats, within, specs, how = _permutation_statistics(
        _Pooled(x, y), n, specs, n_permutations, seed, budget,
        median_seed=(0 if seed is None else seed) if relative else None,
    )
    for (_, bw), row in zip(specs, all_stats):
        _check_finite_statistic(row, bw, scale)
    p_value, per_kernel, sel, null_min_p, adjusted, threshold = _min_p_aggregate(all_stats, n_permutations, alpha)
    stat, null = float(all_stats[sel, 0]), all_stats[sel, 1:]
    std = float(null.std())
    aggregate = MMDAggregate(
        kernels=tuple(kind for kind, _ in specs),
        bandwidths=tuple(float(bw[0]) * scale for _, bw in specs),
        factors=tuple(float(v) for _ in kinds for v in values) if relative else None,
        statistics=tuple(float(v) for v in all_stats[:, 0]),
        p_values=tuple(float(v) for v in per_kernel),
        min_p_value=float(per_kernel[sel]),
        selected=sel,
        adjusted_level=adjusted,
        null_min_p=null_min_p,
        null_statistics=all_stats[:, 1:],
    )
    return MMDTestResult(
        statistic=stat,
        p_value=float(p_value),
        threshold=threshold,
        is_shift=bool(p_value <= alpha),
        alpha=alpha,
        bandwidth=float(specs[sel][1][0]) * scale,
        null=null,
        n_source=n,
        n_target=m,
        method="permutation",
        n_permutations=n_permutations,
        normalized=stat / within[sel] if within[sel] > 0 else float("nan"),
        z_score=(stat - float(null.mean())) / std if std > 0 else float("nan"),
        space=space,
        computation=f"aggregated over {len(specs)} kernels ({', '.join(kinds)}; min-p corrected on "
        f"shared permutations): {how}",
        aggregate=aggregate,
    )
