"""Large-n MMD: a random-Fourier-feature permutation test and mergeable mean embeddings.

`rff_mmd_test` tests H0: "x and y come from the same distribution" on millions of rows, in time
linear in the number of rows and memory independent of it (beyond the data themselves).

The approximation (Rahimi & Recht 2007):
    The Gaussian kernel k(a, b) = exp(-||a - b||^2 / (2 h^2)) is the expectation of
    cos(w'(a - b)) over frequencies w ~ N(0, I / h^2). With D frequencies w_1..w_D (drawn once,
    seeded) the feature map

        phi(z) = [cos(w_1'z), ..., cos(w_D'z), sin(w_1'z), ..., sin(w_D'z)] / sqrt(D)

    (2D features) gives k~(a, b) = phi(a)'phi(b) = mean_j cos(w_j'(a - b)), an unbiased estimate
    of k(a, b) with error of order 1 / sqrt(D) (`result.approximation` states D, h and how h was
    chosen). k~ is itself a positive-definite, shift-invariant kernel with k~(z, z) = 1, and

        statistic = MMD^2_b(k~) = || mean phi(x) - mean phi(y) ||^2

    is the V-statistic MMD^2 of that kernel (`result.unbiased` gives its U-statistic too). The
    data are centred on a subsample mean before projecting (k~ is shift-invariant, so nothing
    changes but round-off in float32).

The permutation null (exact level):
    The statistic is a function of the sums of phi over the rows assigned to x. The rows of each
    sample are first put in a seeded random order and cut into *blocks* of `block_size`
    consecutive rows (rows left over, fewer than one block per sample, are single-row units);
    only the block sums (units x 2D) are kept. A permutation reassigns whole blocks between x and y
    (and leftover rows among leftover rows), so a permuted statistic costs (number of units) x 2D
    operations instead of N x 2D. Under H0 the pooled rows are i.i.d., so their distribution is
    invariant under these block permutations (a subgroup of all permutations); with the observed
    split counted in, P(p_value <= alpha) <= alpha exactly, for the approximate kernel k~ and for
    any block size. Blocks cost almost no power while there are many of them: a mean difference
    delta inflates the block-permutation null by about ||delta||^2 / (number of blocks). The
    default block size keeps about `DEFAULT_MAX_UNITS` units; `block_size=1` is the classical
    row permutation test. The frequencies do not depend on the data and the blocks do not depend
    on the data's values, so neither touches the level. The median-heuristic bandwidth is fixed
    before permuting; up to `BANDWIDTH_SAMPLES` pooled rows it uses them all (invariant under
    permutations: exact), beyond that a seeded subsample whose indices are uniform and independent
    of the data (exact over the draw of that subsample, as in `mmd_test`; for one fixed seed the
    bandwidth is a median of 2000 fixed positions, which favours no split by more than a
    negligible amount). A given `bandwidth` keeps the level exact for every seed.

Cost: the feature map is N x d x D multiply-adds plus 2 N D cos/sin (float32, in chunks of
`chunk_size` rows, memory chunk_size x 2D); the permutations are units x 2D x n_permutations
(float64 matrix products, in batches of permutations). Nothing of size N x D is ever held.

Mergeable embeddings (`RFFEmbedding`):
    The statistic needs only the per-sample feature sums, which merge by addition: an
    `RFFEmbedding` accumulates count and sum of phi over chunks (`partial_fit`) and merges with
    others built with the same frequencies (same input dimension, D, bandwidth, seed and centre),
    so a stream or a Dask partition can each contribute their part. `RFFEmbedding.mmd2` gives the
    statistic; `RFFEmbedding.test` an asymptotic test (no rows needed) when second moments were
    kept. A permutation test needs the rows (or at least block sums), so it is `rff_mmd_test`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from shiftkit._json import dataclass_to_dict, jsonable
from shiftkit._validation import (
    check_alpha,
    check_array,
    check_bandwidth,
    check_pair,
    check_positive_int,
    check_real,
    check_seed,
)
from shiftkit.shift import kernels
from shiftkit.shift.mmd import _check_attainable, critical_value, tie_tolerance

__all__ = [
    "rff_mmd_test",
    "RFFTestResult",
    "RFFEmbedding",
    "EmbeddingTestResult",
    "DEFAULT_N_FEATURES",
    "DEFAULT_MAX_UNITS",
]

#: Default number of random frequencies (each gives a cos and a sin feature). Chosen on
#: benchmarks/bench_rff.py (section features): from D = 128 the power matched the exact test's
#: within noise on mean and variance shifts, confirmed on correlation and heavy-tail shifts;
#: 256 leaves a margin (kernel error about 0.044) at about 8 s of CPU for 2 x 10^6 rows, d = 32.
DEFAULT_N_FEATURES = 256
#: Default chunk of rows mapped to features at once.
DEFAULT_CHUNK_SIZE = 16_384
#: The automatic block size keeps at most about this many permutation units.
DEFAULT_MAX_UNITS = 10_000
#: The automatic block size keeps at least this many blocks in the smaller sample (power first:
#: with very unequal samples that means more units and slower permutations).
MIN_BLOCKS = 200
#: Rows of the seeded pooled subsample for the median-heuristic bandwidth and the centre.
BANDWIDTH_SAMPLES = 2000
#: Bytes of one batch of permutation indicators (units x batch, float64).
_PERMUTATION_BATCH_BYTES = 32 << 20


def _frequency_seed(seed: int | None) -> np.random.SeedSequence:
    """The seed sequence of the frequencies: child 0 of `SeedSequence(seed)`.

    `rff_mmd_test(..., seed=s)` and `RFFEmbedding(..., seed=s)` draw the same frequencies.
    """
    return np.random.SeedSequence(seed).spawn(1)[0]


def _base_frequencies(n_inputs: int, n_features: int, seed: np.random.SeedSequence) -> np.ndarray:
    """Standard-normal frequencies `(n_inputs, n_features)`; divide by the bandwidth to use."""
    return np.random.default_rng(seed).standard_normal((n_inputs, n_features))


def _features(rows: np.ndarray, omega: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """phi(rows) as float32 `(len(rows), 2D)`: [cos, sin] of the projections, divided by sqrt(D).

    `omega` (float32, in the units of `rows / scale`) and `center` (float64, same units).
    """
    z = rows / scale if scale != 1.0 else rows
    z = (z - center).astype(np.float32, copy=False)
    proj = z @ omega
    n_freq = omega.shape[1]
    out = np.empty((len(rows), 2 * n_freq), dtype=np.float32)
    np.cos(proj, out=out[:, :n_freq])
    np.sin(proj, out=out[:, n_freq:])
    out *= np.float32(1.0 / math.sqrt(n_freq))
    return out


def _scaled_frequencies(base: np.ndarray, bandwidth: float, scale: float) -> np.ndarray:
    """Frequencies for data divided by `scale`: base / (bandwidth / scale), as float32."""
    h = bandwidth / scale
    omega = base / h
    if not (np.isfinite(h) and h > 0 and np.all(np.isfinite(omega.astype(np.float32)))):
        raise ValueError(
            f"bandwidth={bandwidth:g} is so far from the data's scale (about {scale:g}) that the random "
            "frequencies under- or overflow. Pass a bandwidth on the scale of the data, or "
            "bandwidth=None for the median heuristic."
        )
    return omega.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The permutation test
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RFFTestResult:
    """Outcome of `rff_mmd_test`. Direction: a larger statistic / smaller p-value means shift.

    Attributes:
        statistic: MMD^2_b of the random-feature kernel, ||mean phi(x) - mean phi(y)||^2 (the
            statistic that is permuted).
        unbiased: the U-statistic MMD^2_u of the same kernel (an unbiased estimate of its MMD^2;
            may be negative).
        p_value: (1 + #{null >= statistic}) / (1 + n_permutations).
        threshold: the exact critical value at `alpha` (`statistic > threshold` <=> `is_shift`;
            see `shiftkit.shift.mmd.critical_value`).
        is_shift: `p_value <= alpha`.
        alpha: the level.
        null: the permuted statistics.
        n_source, n_target: the sample sizes.
        n_permutations: the number of permutations.
        n_features: the number of random frequencies D (the embedding has 2D features).
        feature_dim: 2D.
        bandwidth: the Gaussian bandwidth h the features approximate.
        bandwidth_method: how `bandwidth` was set ("given", or the median heuristic on a seeded
            pooled subsample).
        block_size: rows per permutation block (1: classical row permutations).
        n_units: the number of units permuted (blocks plus leftover rows).
        z_score: (statistic - mean(null)) / std(null).
        approximation: the approximation in words (kernel, D, h, expected kernel error).
        exactness: why the level is exact, in words.
        computation: how it was computed (chunks, blocks, batches).
    """

    statistic: float
    unbiased: float
    p_value: float
    threshold: float
    is_shift: bool
    alpha: float
    null: np.ndarray = dataclasses.field(repr=False, compare=False)
    n_source: int
    n_target: int
    n_permutations: int
    n_features: int
    feature_dim: int
    bandwidth: float
    bandwidth_method: str
    block_size: int
    n_units: int
    z_score: float
    approximation: str
    exactness: str
    computation: str
    method: str = "rff-permutation"

    def at_level(self, level: float) -> "RFFTestResult":
        """The same test decided at another level (statistic, p-value and null unchanged).

        Args:
            level: the new level, in (0, 1).

        Returns:
            A new `RFFTestResult` with `alpha`, `threshold` and `is_shift` recomputed.
        """
        level = check_alpha(level, "level")
        return dataclasses.replace(
            self, alpha=level, threshold=critical_value(self.null, level), is_shift=bool(self.p_value <= level)
        )

    def to_dict(self, *, include_null: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict (`null` as a list unless `include_null=False`)."""
        out = dataclass_to_dict(self, exclude=("null",))
        if include_null:
            out["null"] = jsonable(self.null)
        out["direction"] = "p_value: lower means shift; statistic: higher means shift"
        return out


def _check_enough_units(n_blocks: int, n_bx: int, n_singles: int, n_lx: int, alpha: float, block: int) -> None:
    """Refuse block sizes that leave too few distinct splits for any to be rarer than `alpha`."""
    log_splits = (math.lgamma(n_blocks + 1) - math.lgamma(n_bx + 1) - math.lgamma(n_blocks - n_bx + 1)
                  + math.lgamma(n_singles + 1) - math.lgamma(n_lx + 1) - math.lgamma(n_singles - n_lx + 1))
    mirror = 2.0 if 2 * n_bx == n_blocks and 2 * n_lx == n_singles else 1.0
    min_p = min(1.0, mirror * math.exp(-log_splits))
    if min_p > alpha:
        raise ValueError(
            f"block_size={block} leaves {n_blocks} blocks and {n_singles} single rows to permute: no split of them "
            f"is rarer than {min_p:.3g}, so the test could never detect a shift at alpha={alpha:g}. Pass a smaller "
            "block_size (or None for the default), or more rows."
        )


def _auto_block_size(n: int, m: int, max_units: int = DEFAULT_MAX_UNITS) -> int:
    """About `max_units` units in all, but at least `MIN_BLOCKS` blocks in the smaller sample."""
    return max(1, min(math.ceil((n + m) / max_units), min(n, m) // MIN_BLOCKS))


def _unit_sums(
    data: np.ndarray,
    order: np.ndarray | None,
    block: int,
    omega: np.ndarray,
    center: np.ndarray,
    scale: float,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature sums of the blocks of `data` (in `order`), then of its leftover rows.

    Returns:
        `(block_sums (n // block, 2D), leftover_rows (n % block, 2D))`, float64.
    """
    n = len(data)
    n_blocks = n // block
    dim = 2 * omega.shape[1]
    sums = np.empty((n_blocks, dim))
    step = max(block, (chunk // block) * block)
    covered = n_blocks * block
    for start in range(0, covered, step):
        stop = min(start + step, covered)
        rows = data[start:stop] if order is None else data[order[start:stop]]
        phi = _features(rows, omega, center, scale)
        # float32 sums of `block` rows (a few ulps), kept in float64 from here on.
        sums[start // block : stop // block] = phi.reshape(-1, block, dim).sum(axis=1)
    rest = data[covered:] if order is None else data[order[covered:]]
    leftover = _features(rest, omega, center, scale).astype(np.float64) if len(rest) else np.empty((0, dim))
    return sums, leftover


def _center(x: np.ndarray, y: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Mean of a seeded pooled subsample (in the units of data / scale): the projection origin."""
    big_n = len(x) + len(y)
    k = min(big_n, BANDWIDTH_SAMPLES)
    idx = np.sort(rng.choice(big_n, size=k, replace=False)) if k < big_n else np.arange(big_n)
    cut = int(np.searchsorted(idx, len(x)))
    rows = np.concatenate([x[idx[:cut]], y[idx[cut:] - len(x)]])
    return (rows / scale).mean(axis=0)


def rff_mmd_test(
    x: Any,
    y: Any,
    *,
    n_features: int = DEFAULT_N_FEATURES,
    bandwidth: float | None = None,
    n_permutations: int = 1000,
    alpha: float = 0.05,
    seed: int | None = None,
    block_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    check_input: bool = True,
) -> RFFTestResult:
    """Random-Fourier-feature MMD permutation test for large samples (linear in the rows).

    See the module docstring for the approximation and why the level is exact.

    Args:
        x: source sample `(n, ...)`; y: target sample `(m, ...)`, same per-sample shape.
        n_features: random frequencies D (2D features). Kernel values are approximated to about
            1 / sqrt(D); time grows linearly in D.
        bandwidth: the Gaussian bandwidth h; None: the median heuristic
            (`kernels.median_heuristic`) on a seeded subsample of `BANDWIDTH_SAMPLES` pooled rows
            (the full pairwise median is O(N^2)).
        n_permutations: permutations forming the null; at least enough to reach `alpha`.
        alpha: the level; `is_shift` is `p_value <= alpha`.
        seed: seeds the frequencies (child 0 of `SeedSequence(seed)`, as in `RFFEmbedding`), the
            subsample, the blocks and the permutations.
        block_size: rows per permutation block; None: `ceil(N / DEFAULT_MAX_UNITS)` (1, the
            row permutation test, up to 10,000 pooled rows).
        chunk_size: rows mapped to features at once (memory about chunk_size x 2D x 12 bytes);
            the results do not depend on it.
        check_input: validate x and y (finite numbers, same per-sample shape); False for callers
            that did (then they must be float arrays of shape `(n, d)`).

    Returns:
        An `RFFTestResult`.

    Raises:
        ValueError / TypeError: invalid data (NaN, empty, mismatched shapes), `n_features`,
            `n_permutations`, `block_size` or `chunk_size` below 1, `alpha` outside (0, 1),
            `n_permutations` too few to ever reach `alpha`, a non-positive bandwidth.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> res = rff_mmd_test(rng.normal(size=(500, 3)), rng.normal(0.5, size=(500, 3)), seed=0)
        >>> res.is_shift, res.n_features
        (True, 256)
    """
    n_freq = check_positive_int(n_features, "n_features")
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    alpha = check_alpha(alpha)
    _check_attainable(alpha, n_permutations)
    seed = check_seed(seed)
    chunk = check_positive_int(chunk_size, "chunk_size")
    if block_size is not None:
        block_size = check_positive_int(block_size, "block_size")
    bw_given = check_bandwidth(bandwidth)
    if bw_given is not None and bw_given.size != 1:
        raise ValueError(
            f"rff_mmd_test approximates one Gaussian kernel: pass one bandwidth, got {bw_given.tolist()}. "
            "Use shiftkit.shift.mmd_test for a sum of kernels."
        )
    if check_input:
        x, y = check_pair(x, y, ("x_source", "x_target"))
    else:
        x = np.asarray(x).reshape(len(x), -1)
        y = np.asarray(y).reshape(len(y), -1)
    n, m = len(x), len(y)
    big_n, d = n + m, x.shape[1]

    seq_freq, seq_sub, seq_blocks, seq_perm = np.random.SeedSequence(seed).spawn(4)
    scale = kernels.data_scale(x, y)
    if bw_given is None:
        sub_seed = int(seq_sub.generate_state(1)[0])
        h = kernels.median_heuristic(x, y, max_samples=BANDWIDTH_SAMPLES, seed=sub_seed)
        how_bw = (
            f"median heuristic: median pairwise distance of a seeded subsample of "
            f"{min(big_n, BANDWIDTH_SAMPLES)} pooled rows"
        )
    else:
        h = float(bw_given[0])
        how_bw = "given"
    omega = _scaled_frequencies(_base_frequencies(d, n_freq, seq_freq), h, scale)
    center = _center(x, y, scale, np.random.default_rng(seq_sub))

    block = _auto_block_size(n, m) if block_size is None else min(block_size, max(n, m))
    rng_blocks = np.random.default_rng(seq_blocks)
    order_x = rng_blocks.permutation(n) if block > 1 else None
    order_y = rng_blocks.permutation(m) if block > 1 else None
    bx, lx = _unit_sums(x, order_x, block, omega, center, scale, chunk)
    by, ly = _unit_sums(y, order_y, block, omega, center, scale, chunk)
    del order_x, order_y
    blocks = np.concatenate([bx, by])  # (Bx + By, 2D): blocks of x first
    singles = np.concatenate([lx, ly])
    n_bx, n_lx = len(bx), len(lx)
    total = blocks.sum(axis=0) + singles.sum(axis=0)
    mean_phi = total / big_n
    # Centred unit sums: S_c'a = (sum of phi over x) - n mean_phi, and for any split a with n rows
    # in x, mean phi(x) - mean phi(y) = (N / (n m)) S_c'a.
    blocks -= block * mean_phi
    singles -= mean_phi
    coef = big_n / (n * m)

    def split_stats(a_blocks: np.ndarray, a_singles: np.ndarray) -> np.ndarray:
        diff = a_blocks @ blocks
        if singles.size:
            diff += a_singles @ singles
        diff *= coef
        return np.einsum("pj,pj->p", diff, diff)

    obs_b = np.zeros((1, len(blocks)))
    obs_b[0, :n_bx] = 1.0
    obs_s = np.zeros((1, len(singles)))
    obs_s[0, :n_lx] = 1.0
    statistic = float(split_stats(obs_b, obs_s)[0])

    n_units = len(blocks) + len(singles)
    _check_enough_units(len(blocks), n_bx, len(singles), n_lx, alpha, block)
    rng_perm = np.random.default_rng(seq_perm)
    batch = int(max(1, min(n_permutations, _PERMUTATION_BATCH_BYTES // (8 * max(n_units, 1)))))
    null = np.empty(n_permutations)
    n_batches = 0
    for first in range(0, n_permutations, batch):
        count = min(batch, n_permutations - first)
        a_b = rng_perm.permuted(np.repeat(obs_b, count, axis=0), axis=1)
        a_s = rng_perm.permuted(np.repeat(obs_s, count, axis=0), axis=1)
        null[first : first + count] = split_stats(a_b, a_s)
        n_batches += 1

    # U-statistic of the same kernel: k~(z, z) = 1 for every row.
    sx = obs_b[0] @ blocks + obs_s[0] @ singles + n * mean_phi
    sy = total - sx
    unbiased = (
        (sx @ sx - n) / (n * (n - 1)) + (sy @ sy - m) / (m * (m - 1)) - 2.0 * (sx @ sy) / (n * m)
        if n > 1 and m > 1
        else float("nan")
    )
    if not (math.isfinite(statistic) and np.all(np.isfinite(null))):
        raise ValueError(
            f"The random-feature statistic is not finite with bandwidth {h:g}. Pass a bandwidth on the "
            "scale of the data, or bandwidth=None for the median heuristic."
        )
    p_value = (1.0 + np.count_nonzero(null >= statistic - tie_tolerance(np.append(null, statistic)))) / (
        1.0 + n_permutations)
    std = float(null.std())
    n_b = len(blocks)
    approximation = (
        f"random Fourier features: D={n_freq} Gaussian frequencies (cos/sin pairs, {2 * n_freq} features) "
        f"approximating the Gaussian kernel exp(-||a-b||^2 / (2 h^2)) with h={h:.6g} ({how_bw}); kernel "
        f"values are estimated with standard error about {1 / math.sqrt(2 * n_freq):.3g} (<= 1/sqrt(2D)); "
        "the statistic is the V-statistic MMD^2 of the approximate kernel"
    )
    if block == 1:
        exactness = (
            f"exact level for the approximate kernel: {n_permutations} uniformly random permutations of "
            f"the {big_n} pooled rows, the observed split counted in the p-value"
        )
    else:
        exactness = (
            f"exact level for the approximate kernel: rows put in a seeded random order within each sample "
            f"and cut into blocks of {block} rows ({n_b} blocks, {len(singles)} leftover rows); "
            f"{n_permutations} random permutations of whole blocks (and of leftover rows among "
            "themselves), a subgroup of the row permutations under which i.i.d. pooled rows are "
            "invariant; the observed split counted in the p-value"
        )
    computation = (
        f"features in float32 chunks of {max(block, (chunk // block) * block)} rows; {n_units} unit sums "
        f"x {2 * n_freq} features (float64) kept; permutations as matrix products in {n_batches} batch(es)"
    )
    return RFFTestResult(
        statistic=statistic,
        unbiased=float(unbiased),
        p_value=float(p_value),
        threshold=critical_value(null, alpha),
        is_shift=bool(p_value <= alpha),
        alpha=alpha,
        null=null,
        n_source=n,
        n_target=m,
        n_permutations=n_permutations,
        n_features=n_freq,
        feature_dim=2 * n_freq,
        bandwidth=float(h),
        bandwidth_method=how_bw,
        block_size=block,
        n_units=n_units,
        z_score=(statistic - float(null.mean())) / std if std > 0 else float("nan"),
        approximation=approximation,
        exactness=exactness,
        computation=computation,
    )


# --------------------------------------------------------------------------------------------
# Mergeable mean embeddings
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EmbeddingTestResult:
    """Outcome of `RFFEmbedding.test`: an asymptotic test from two mean embeddings, no rows.

    Attributes:
        statistic: ||mean phi(x) - mean phi(y)||^2 (as `RFFTestResult.statistic`).
        p_value: P(Q >= statistic) for the asymptotic null Q = sum_i l_i chi^2_1, with l_i the
            eigenvalues of (1/n + 1/m) x the pooled covariance of phi, estimated by simulating
            `n_simulations` draws of Q: (1 + #{Q >= statistic}) / (1 + n_simulations).
        is_shift: `p_value <= alpha`.
        alpha: the level.
        n_source, n_target: the sample sizes.
        n_features: random frequencies D; bandwidth: the Gaussian bandwidth.
        n_simulations: draws of the asymptotic null.
        exactness: the level is asymptotic (large n and m), not exact.
    """

    statistic: float
    p_value: float
    is_shift: bool
    alpha: float
    n_source: int
    n_target: int
    n_features: int
    bandwidth: float
    n_simulations: int
    exactness: str = (
        "asymptotic: the null of n m / (n + m) x statistic tends to a weighted sum of chi-square(1) "
        "variables; valid for large samples only (use rff_mmd_test, which has an exact level, when "
        "the rows are at hand)"
    )
    method: str = "rff-asymptotic"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        out = dataclass_to_dict(self)
        out["direction"] = "p_value: lower means shift; statistic: higher means shift"
        return out


class RFFEmbedding:
    """Random-Fourier-feature mean embedding of a sample, accumulated in chunks and mergeable.

    Holds the count and the sum of phi(z) (see the module docstring) over every row passed to
    `partial_fit`, and optionally the sum of phi(z) phi(z)' (`second_moments=True`, needed by
    `test`). Two embeddings with the same configuration (input dimension, `n_features`,
    `bandwidth`, `seed`, `center`) use the same frequencies and merge by addition (`merge`), so
    a file streamed in chunks, or each partition of a Dask dataset, gives the same embedding as
    the whole sample at once (to float round-off). With the same seed and bandwidth the
    frequencies are those of `rff_mmd_test(..., seed=seed)`.

    The bandwidth must be given (a median over all partitions is not mergeable): take it from a
    reference sample, e.g. `shiftkit.shift.median_heuristic(x_reference, seed=0)`.

    Args:
        n_features: random frequencies D (2D features).
        bandwidth: the Gaussian bandwidth h, positive.
        seed: seed of the frequencies (the same seed gives the same frequencies everywhere).
        center: the origin of the projections, shape `(d,)` (default 0). The kernel does not
            depend on it; data far from 0 relative to the bandwidth lose float32 precision, so
            pass a reference mean for such data (the same in every partition).
        second_moments: also accumulate the (2D x 2D) sum of outer products, for `test`
            (costs rows x (2D)^2 operations).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = RFFEmbedding(64, bandwidth=1.0).partial_fit(rng.normal(size=(300, 2)))
        >>> b1 = RFFEmbedding(64, bandwidth=1.0).partial_fit(rng.normal(1, size=(150, 2)))
        >>> b2 = RFFEmbedding(64, bandwidth=1.0).partial_fit(rng.normal(1, size=(150, 2)))
        >>> a.mmd2(b1.merge(b2)) > 0.01
        True
    """

    def __init__(
        self,
        n_features: int = DEFAULT_N_FEATURES,
        *,
        bandwidth: float,
        seed: int = 0,
        center: Any = None,
        second_moments: bool = False,
    ):
        self.n_features = check_positive_int(n_features, "n_features")
        self.bandwidth = check_real(bandwidth, "bandwidth", low=0, low_open=True, example="1.0")
        if seed is None:
            raise TypeError(
                "RFFEmbedding needs an integer seed: embeddings merge only when their frequencies are "
                "the same, so every part must be built with the same seed (e.g. seed=0)."
            )
        self.seed = check_seed(seed)
        self.center = None if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
        if self.center is not None and not np.all(np.isfinite(self.center)):
            raise ValueError("center must hold finite numbers (e.g. the mean of a reference sample).")
        self.second_moments = bool(second_moments)
        self.n_inputs_: int | None = None
        self.n_samples_ = 0
        self.sum_: np.ndarray | None = None
        self.outer_: np.ndarray | None = None
        self._omega: np.ndarray | None = None

    def _config(self) -> tuple:
        center = None if self.center is None else tuple(self.center.tolist())
        return (self.n_inputs_, self.n_features, self.bandwidth, self.seed, center)

    def _setup(self, n_inputs: int) -> None:
        if self.center is not None and self.center.size != n_inputs:
            raise ValueError(
                f"center has {self.center.size} values but the data have {n_inputs} features per row. "
                "Pass one value per feature."
            )
        base = _base_frequencies(n_inputs, self.n_features, _frequency_seed(self.seed))
        self._omega = _scaled_frequencies(base, self.bandwidth, 1.0)
        self.n_inputs_ = n_inputs
        dim = 2 * self.n_features
        self.sum_ = np.zeros(dim)
        if self.second_moments:
            self.outer_ = np.zeros((dim, dim))

    def _rows(self, x: Any, name: str) -> np.ndarray:
        arr = check_array(x, name, min_samples=1, flatten=True)
        if self.n_inputs_ is not None and arr.shape[1] != self.n_inputs_:
            raise ValueError(
                f"{name} has {arr.shape[1]} features per row but this embedding was built on "
                f"{self.n_inputs_}. Select the same columns, in the same order, in every part."
            )
        return arr

    def transform(self, x: Any) -> np.ndarray:
        """phi(x): the random features of the rows of `x`, float32 `(n, 2D)`.

        Args:
            x: rows `(n, d)` (d fixed by the first call of `partial_fit` or `transform`).

        Returns:
            The features; `phi(a) @ phi(b).T` approximates the Gaussian kernel matrix.
        """
        x = self._rows(x, "x")
        if self._omega is None:
            self._setup(x.shape[1])
        center = np.zeros(self.n_inputs_) if self.center is None else self.center
        return _features(x, self._omega, center, 1.0)

    def partial_fit(self, x: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> "RFFEmbedding":
        """Add the rows of `x` to the embedding.

        Args:
            x: rows `(n, d)`, finite.
            chunk_size: rows mapped to features at once.

        Returns:
            self.
        """
        x = self._rows(x, "x")
        chunk = check_positive_int(chunk_size, "chunk_size")
        for start in range(0, len(x), chunk):
            phi = self.transform(x[start : start + chunk])
            self.sum_ += phi.sum(axis=0, dtype=np.float64)
            if self.outer_ is not None:
                self.outer_ += (phi.T @ phi).astype(np.float64)
        self.n_samples_ += len(x)
        return self

    def _check_fitted(self, name: str = "embedding") -> None:
        if self.n_samples_ == 0:
            raise ValueError(f"The {name} is empty: call partial_fit(rows) on it first.")

    def _check_compatible(self, other: "RFFEmbedding") -> None:
        if not isinstance(other, RFFEmbedding):
            raise TypeError(f"Expected an RFFEmbedding, got {type(other).__name__}.")
        mine, theirs = self._config(), other._config()
        if None in (self.n_inputs_, other.n_inputs_):  # not fitted yet: the input dimension is open
            mine, theirs = mine[1:], theirs[1:]
        if mine != theirs:
            raise ValueError(
                "The embeddings use different random features (input dimension, n_features, bandwidth, "
                f"seed, center): {self._config()[:4]} vs {other._config()[:4]}. Build every part with the "
                "same settings."
            )

    def merge(self, other: "RFFEmbedding") -> "RFFEmbedding":
        """The embedding of both samples together (a new object; neither input changes).

        Args:
            other: an embedding with the same configuration and the same `second_moments`.

        Returns:
            A new `RFFEmbedding`.
        """
        self._check_compatible(other)
        if self.second_moments != other.second_moments:
            raise ValueError("Both embeddings must have the same second_moments setting to merge.")
        out = RFFEmbedding(
            self.n_features, bandwidth=self.bandwidth, seed=self.seed, center=self.center,
            second_moments=self.second_moments,
        )
        for part in (self, other):
            if part.n_samples_ == 0:
                continue
            if out._omega is None:
                out._setup(part.n_inputs_)
            out.sum_ += part.sum_
            if out.outer_ is not None:
                out.outer_ += part.outer_
            out.n_samples_ += part.n_samples_
        return out

    @property
    def mean_(self) -> np.ndarray:
        """The mean embedding, mean of phi over the rows seen, `(2D,)`."""
        self._check_fitted()
        return self.sum_ / self.n_samples_

    def mmd2(self, other: "RFFEmbedding") -> float:
        """||mean phi(self) - mean phi(other)||^2: the statistic of `rff_mmd_test`.

        Args:
            other: a compatible embedding.

        Returns:
            The V-statistic MMD^2 of the random-feature kernel (>= 0).
        """
        self._check_compatible(other)
        self._check_fitted()
        other._check_fitted("other embedding")
        diff = self.mean_ - other.mean_
        return float(diff @ diff)

    def test(
        self, other: "RFFEmbedding", *, alpha: float = 0.05, n_simulations: int = 10_000, seed: int | None = 0
    ) -> EmbeddingTestResult:
        """Asymptotic two-sample test from two embeddings (no rows): see `EmbeddingTestResult`.

        Args:
            other: a compatible embedding; both need `second_moments=True`.
            alpha: the level.
            n_simulations: draws of the weighted chi-square null.
            seed: seed of those draws.

        Returns:
            An `EmbeddingTestResult` (asymptotic level).
        """
        self._check_compatible(other)
        self._check_fitted()
        other._check_fitted("other embedding")
        alpha = check_alpha(alpha)
        n_sim = check_positive_int(n_simulations, "n_simulations")
        _check_attainable(alpha, n_sim)
        if self.outer_ is None or other.outer_ is None:
            raise ValueError("test needs second moments: build both embeddings with second_moments=True.")
        n, m = self.n_samples_, other.n_samples_
        pooled = self.merge(other)
        mu = pooled.mean_
        cov = pooled.outer_ / pooled.n_samples_ - np.outer(mu, mu)
        weights = np.clip(np.linalg.eigvalsh(cov), 0.0, None) * (1.0 / n + 1.0 / m)
        weights = weights[weights > weights.max() * 1e-12] if weights.max() > 0 else weights[:0]
        statistic = self.mmd2(other)
        rng = np.random.default_rng(seed)
        null = np.zeros(n_sim)
        step = max(1, (8 << 20) // (8 * max(weights.size, 1)))
        for first in range(0, n_sim, step):
            count = min(step, n_sim - first)
            null[first : first + count] = np.square(rng.standard_normal((count, weights.size))) @ weights
        p_value = (1.0 + np.count_nonzero(null >= statistic)) / (1.0 + n_sim)
        return EmbeddingTestResult(
            statistic=statistic,
            p_value=float(p_value),
            is_shift=bool(p_value <= alpha),
            alpha=alpha,
            n_source=n,
            n_target=m,
            n_features=self.n_features,
            bandwidth=self.bandwidth,
            n_simulations=n_sim,
        )
