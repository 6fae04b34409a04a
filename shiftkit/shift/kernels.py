"""Gaussian kernels and the bandwidth heuristic, written with `keras.ops`.

The same functions serve two uses (DESIGN.md, "one kernel, two uses"): the shift module evaluates
them on numpy data to *measure* MMD, and the MMD adapter calls them on batches of features inside a
training step to *minimise* it. The kernel functions therefore take and return backend tensors and
are differentiable; nothing here validates user input (the public functions in `mmd.py` do).
Numpy helpers serve the measuring path only: `gaussian_kernel_block`, the same kernel evaluated
in place on row blocks (memory-bounded, tested equal to `gaussian_kernel`), built from
`squared_distance_block` and `kernel_from_sqdist` (Gaussian or Laplace, from squared distances, so
several kernels share one distance matrix); `pooled_squared_distances` (the whole pooled matrix as
one product of norm-augmented rows); `median_from_sqdist` (the median heuristic read off a distance
matrix already computed); and `data_scale`.

Kernel:
    k(a, b) = sum_j exp(-||a - b||^2 / (2 * bandwidth_j^2))

With a single bandwidth this is the usual Gaussian (RBF) kernel; several bandwidths give the sum of
those kernels (a multi-scale kernel, as in Gretton et al. 2012's "kernel combination" and the MK-MMD
of Long et al. 2015). Each kernel has k(a, a) = 1, so the diagonal of a kernel matrix equals the
number of bandwidths.

Median heuristic (`median_heuristic`):
    bandwidth = median of the Euclidean distances ||z_i - z_j|| over all pairs i < j of the pooled
    sample z = concat(x, y) (Gretton et al. 2012, section 8). When the pooled sample has more than
    `max_samples` points, the median is taken over a uniformly drawn, seeded subsample of
    `max_samples` points (computed block-wise, without concatenating x and y). If that median is
    0 (more than half the pairs are duplicates) the mean of the positive distances is used, and
    1.0 if all points coincide.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from keras import ops

__all__ = [
    "squared_distances",
    "gaussian_kernel",
    "median_heuristic",
    "median_bandwidth",
    "data_scale",
    "gaussian_kernel_block",
    "squared_distance_block",
    "pooled_squared_distances",
    "kernel_from_sqdist",
    "median_from_sqdist",
    "mmd2_from_kernels",
    "mmd2_tensor",
    "linear_mmd2_terms",
    "paired_kernel",
]


def squared_distances(x: Any, y: Any) -> Any:
    """Pairwise squared Euclidean distances between the rows of `x` and `y`.

    Args:
        x: tensor of shape `(n, d)`.
        y: tensor of shape `(m, d)`.

    Returns:
        Tensor of shape `(n, m)`, clipped at 0 against round-off.
    """
    xx = ops.sum(ops.square(x), axis=1, keepdims=True)
    yy = ops.sum(ops.square(y), axis=1, keepdims=True)
    cross = ops.matmul(x, ops.transpose(y))
    return ops.maximum(xx + ops.transpose(yy) - 2.0 * cross, 0.0)


def gaussian_kernel(x: Any, y: Any, bandwidth: Any) -> Any:
    """Gaussian kernel matrix, summed over one or more bandwidths.

    Args:
        x: tensor `(n, d)`.
        y: tensor `(m, d)`.
        bandwidth: a positive scalar or a 1-D tensor/array of positive bandwidths.

    Returns:
        Tensor `(n, m)` with entries `sum_j exp(-||x_i - y_k||^2 / (2 * bandwidth_j^2))`.

    Example:
        >>> import numpy as np
        >>> k = gaussian_kernel(np.zeros((2, 3)), np.ones((1, 3)), 1.0)
        >>> round(float(k[0, 0]), 6) == round(float(np.exp(-1.5)), 6)
        True
    """
    x = ops.convert_to_tensor(x)
    y = ops.convert_to_tensor(y, dtype=x.dtype)
    d2 = squared_distances(x, y)
    bw = ops.reshape(ops.cast(ops.convert_to_tensor(bandwidth), d2.dtype), (-1, 1, 1))
    return ops.sum(ops.exp(-ops.expand_dims(d2, 0) / (2.0 * ops.square(bw))), axis=0)


def data_scale(*arrays: np.ndarray) -> float:
    """A power of two by which to divide data so that squared distances cannot overflow or underflow.

    The Gaussian kernel with a median-heuristic bandwidth is invariant to scaling the data, and a
    fixed bandwidth scales along: k(x / s, y / s; h / s) = k(x, y; h). Dividing by a power of two
    is exact in floating point, so data whose largest absolute value lies in [2^-256, 2^256]
    (squared distances then stay far from float64's limits for any realistic feature count) are
    left alone (scale 1.0, bitwise the same results), and other data are brought to a largest
    absolute value in [1, 2).

    Args:
        *arrays: numpy arrays (any shapes), finite.

    Returns:
        The scale `s` (1.0 when no rescaling is needed or all values are 0).

    Example:
        >>> data_scale(np.array([1e160, -3.0])) == 2.0**531
        True
        >>> data_scale(np.array([0.5, 1e6]))
        1.0
    """
    top = 0.0
    for a in arrays:
        if a.size:  # max and -min: no temporary |a| array
            top = max(top, float(a.max()), -float(a.min()))
    if top == 0.0 or 2.0**-256 <= top <= 2.0**256:
        return 1.0
    _, exponent = math.frexp(top)  # top = mantissa * 2^exponent, mantissa in [0.5, 1)
    return math.ldexp(1.0, exponent - 1)


def squared_distance_block(
    rows: np.ndarray,
    cols: Sequence[np.ndarray],
    rows_sqnorm: np.ndarray,
    cols_sqnorm: Sequence[np.ndarray],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Squared Euclidean distances from `rows` to the rows of `concat(cols)`, in numpy, in place.

    Args:
        rows: float64 array `(r, d)`.
        cols: float64 arrays `(n_i, d)`; the block's columns are their rows, in order (never
            concatenated or copied).
        rows_sqnorm: `(r,)` squared norms of `rows`.
        cols_sqnorm: `(n_i,)` squared norms of each part of `cols`.
        out: optional float64 buffer with at least `r` rows and `sum(n_i)` columns, reused.

    Returns:
        The `(r, sum(n_i))` block, clipped at 0 against round-off (a view of `out` when given).
    """
    r = len(rows)
    n_cols = sum(len(c) for c in cols)
    buf = np.empty((r, n_cols)) if out is None else out[:r, :n_cols]
    offset = 0
    for part, sq in zip(cols, cols_sqnorm):
        view = buf[:, offset : offset + len(part)]
        np.matmul(rows, part.T, out=view)
        view *= -2.0
        view += sq[None, :]
        offset += len(part)
    buf += rows_sqnorm[:, None]
    np.maximum(buf, 0.0, out=buf)
    return buf


def pooled_squared_distances(
    parts: Sequence[np.ndarray], sqnorms: Sequence[np.ndarray], out: np.ndarray | None = None
) -> np.ndarray:
    """All squared Euclidean distances of the pooled sample `concat(parts)`, in one matrix product.

    With augmented rows u_i = (z_i, |z_i|^2, 1) and v_j = (-2 z_j, 1, |z_j|^2), u_i . v_j =
    |z_i - z_j|^2, so the (N, N) matrix is one (N, d + 2) @ (d + 2, N) product written straight
    into `out` (no further passes over it but the clip at 0); the augmented copies cost
    2 N (d + 2) floats. The same values as `squared_distance_block` up to round-off.

    Args:
        parts: float64 arrays `(n_i, d)` (source, target), pooled in order.
        sqnorms: their rows' squared norms.
        out: optional float64 `(N, N)` buffer.

    Returns:
        The `(N, N)` squared distances, clipped at 0 (`out` when given).
    """
    big_n = sum(len(p) for p in parts)
    d = parts[0].shape[1]
    u = np.empty((big_n, d + 2))
    v = np.empty((big_n, d + 2))
    off = 0
    for part, sq in zip(parts, sqnorms):
        rows = slice(off, off + len(part))
        u[rows, :d] = part
        u[rows, d] = sq
        u[rows, d + 1] = 1.0
        np.multiply(part, -2.0, out=v[rows, :d])
        v[rows, d] = 1.0
        v[rows, d + 1] = sq
        off += len(part)
    out = np.matmul(u, v.T, out=out)
    del u, v
    return np.maximum(out, 0.0, out=out)


#: Kernels of the measuring path (`kernel_from_sqdist`): name -> k(distance^2; bandwidth).
KERNELS = ("gaussian", "laplace")


def kernel_from_sqdist(
    d2: np.ndarray,
    bandwidth: np.ndarray,
    kind: str = "gaussian",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Kernel values from squared distances, summed over one or more bandwidths (numpy).

    "gaussian": `exp(-d2 / (2 h^2))` (the kernel of `gaussian_kernel`); "laplace": the exponential
    (Laplace) kernel of the Euclidean distance, `exp(-sqrt(d2) / h)`. Both are characteristic and
    equal 1 at distance 0.

    Args:
        d2: float64 squared distances (any shape).
        bandwidth: 1-D array of positive bandwidths (kernels summed).
        kind: "gaussian" or "laplace".
        out: optional float64 buffer of `d2`'s shape; may be `d2` itself (computed in place, when
            a single bandwidth is given).

    Returns:
        The kernel values (`out` when given).
    """
    bw = np.asarray(bandwidth, dtype=np.float64).reshape(-1)
    if out is None:
        out = np.empty_like(d2)
    # A bandwidth far off the data's scale gives inf / NaN here; callers check their statistic.
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if kind == "laplace":
            src = np.sqrt(d2, out=out)
            coefficients = -1.0 / bw
        else:
            src = d2
            coefficients = -1.0 / (2.0 * bw**2)
        if bw.size == 1:
            np.multiply(src, coefficients[0], out=out)
            return np.exp(out, out=out)
        if src is out or out is d2:  # keep the distances while the kernels are summed
            src = src.copy()
        np.multiply(src, coefficients[0], out=out)
        np.exp(out, out=out)
        term = np.empty_like(src)
        for c in coefficients[1:]:
            np.multiply(src, c, out=term)
            out += np.exp(term, out=term)
    return out


def gaussian_kernel_block(
    rows: np.ndarray,
    cols: Sequence[np.ndarray],
    bandwidth: np.ndarray,
    rows_sqnorm: np.ndarray,
    cols_sqnorm: Sequence[np.ndarray],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """`gaussian_kernel(rows, concat(cols), bandwidth)` in numpy, in place, from precomputed norms.

    The measuring path (`shiftkit.shift.mmd`) evaluates the kernel matrix in row blocks against
    every column; this is the same kernel as `gaussian_kernel` (a test checks they agree to
    round-off), written so that a block costs only its own memory: the columns are given as
    parts (source, target) that are never concatenated or copied, their squared norms are
    computed once by the caller, and the block is built in one `(r, N)` buffer (two more with
    several bandwidths). `squared_distance_block` followed by `kernel_from_sqdist`.

    Args:
        rows: float64 array `(r, d)`.
        cols: float64 arrays `(n_i, d)`; the block's columns are their rows, in order.
        bandwidth: 1-D array of positive bandwidths (kernels summed).
        rows_sqnorm: `(r,)` squared norms of `rows`.
        cols_sqnorm: `(n_i,)` squared norms of each part of `cols`.
        out: optional float64 buffer with at least `r` rows and `sum(n_i)` columns, reused.

    Returns:
        The `(r, sum(n_i))` kernel block (a view of `out` when given).
    """
    buf = squared_distance_block(rows, cols, rows_sqnorm, cols_sqnorm, out=out)
    return kernel_from_sqdist(buf, bandwidth, "gaussian", out=buf)


def median_from_sqdist(
    d2: np.ndarray, *, max_samples: int = 2000, seed: int | None = 0, quantiles: Sequence[float] = ()
) -> tuple[float, tuple[float, ...]]:
    """`median_heuristic` read off a full pooled squared-distance matrix (no second distance pass).

    The same definition and the same seeded subsample as `median_heuristic(x, y,
    max_samples=max_samples, seed=seed)` on the pooled sample whose `(N, N)` squared distances are
    `d2`: the median Euclidean distance over the pairs i < j of the subsample (all N points when
    N <= max_samples); the mean positive distance when that median is 0; 1.0 when all coincide.
    Equal to `median_heuristic` up to floating-point round-off of the distances.

    Args:
        d2: `(N, N)` symmetric squared distances of the pooled sample.
        max_samples: the most points used (seeded uniform subsample above it).
        seed: seed of the subsample.
        quantiles: further quantiles (in [0, 1]) of the same pairwise distances to return.

    Returns:
        `(median, (quantile values...))`, in the units of the distances.
    """
    total = len(d2)
    if total > max_samples:
        idx = np.random.default_rng(seed).choice(total, size=max_samples, replace=False)
        idx.sort()
    else:
        idx = np.arange(total)
    big_m = len(idx)
    if big_m < 2:
        return 1.0, tuple(1.0 for _ in quantiles)
    dist2 = np.empty(big_m * (big_m - 1) // 2)
    filled = 0
    full = big_m == total
    for r in range(big_m - 1):
        seg = d2[r, r + 1 :] if full else d2[idx[r], idx[r + 1 :]]
        dist2[filled : filled + len(seg)] = seg
        filled += len(seg)
    lo, hi = (dist2.size - 1) // 2, dist2.size // 2
    qpos = [min(dist2.size - 1, max(0, int(round(q * (dist2.size - 1))))) for q in quantiles]
    dist2.partition(sorted({lo, hi, *qpos}))
    med = 0.5 * (math.sqrt(dist2[lo]) + math.sqrt(dist2[hi]))
    extra = tuple(math.sqrt(dist2[p]) for p in qpos)
    if med > 0:
        return med, extra
    positive = dist2[dist2 > 0]
    return (float(np.sqrt(positive).mean()) if positive.size else 1.0), extra


def _as_2d(a: Any) -> np.ndarray:
    a = np.asarray(ops.convert_to_numpy(a) if not isinstance(a, np.ndarray) else a, dtype=np.float64)
    return a.reshape(len(a), -1)


def median_heuristic(
    x: Any,
    y: Any | None = None,
    *,
    max_samples: int = 2000,
    seed: int | None = 0,
    memory_budget: int = 64 << 20,
) -> float:
    """Median pairwise Euclidean distance of the pooled sample (see the module docstring).

    Computed without concatenating or copying `x` and `y` whole: the seeded subsample's rows are
    gathered block by block, scaled by a power of two (`data_scale`, so data of any magnitude give
    a finite, correct median) and centred (distances are unchanged, round-off is smaller); the
    distances are taken between pairs of blocks sized to `memory_budget`.

    Args:
        x: array `(n, d)`.
        y: optional array `(m, d)`, pooled with `x`.
        max_samples: the most points used; larger pooled samples are subsampled uniformly.
        seed: seed of that subsample.
        memory_budget: bytes for two gathered blocks and their distances (blocks of at least 256
            rows, so that the matrix products stay efficient). The pairwise distances themselves
            (`min(N, max_samples)^2 / 2` floats) are held besides.

    Returns:
        The bandwidth, a positive float.
    """
    parts = [_as_2d(x)] + ([] if y is None else [_as_2d(y)])
    n_first = len(parts[0])
    total = sum(len(p) for p in parts)
    if total > max_samples:
        idx = np.random.default_rng(seed).choice(total, size=max_samples, replace=False)
        idx.sort()
    else:
        idx = np.arange(total)
    big_m, d = len(idx), parts[0].shape[1]
    if big_m < 2:
        return 1.0
    scale = data_scale(*parts)

    def gather(sel: np.ndarray) -> np.ndarray:
        out = np.empty((len(sel), d))
        cut = int(np.searchsorted(sel, n_first))
        np.take(parts[0], sel[:cut], axis=0, out=out[:cut], mode="clip")  # clip: unbuffered
        if cut < len(sel):
            np.take(parts[1], sel[cut:] - n_first, axis=0, out=out[cut:], mode="clip")
        if scale != 1.0:
            out /= scale
        return out

    # Square blocks of b rows: two gathered (b, d) blocks and their (b, b) distances (+ a copy):
    # 16 b d + 16 b^2 bytes.
    b = int((-d + math.sqrt(d * d + max(memory_budget, 1) / 4.0)) / 2.0)
    b = max(min(256, big_m), min(big_m, b))
    starts = list(range(0, big_m, b))
    mean = np.zeros(d)
    for s in starts:
        mean += gather(idx[s : s + b]).sum(axis=0)
    mean /= big_m

    def block(s: int) -> tuple[np.ndarray, np.ndarray]:
        g = gather(idx[s : s + b])
        g -= mean
        return g, np.einsum("ij,ij->i", g, g)

    dist2 = np.empty(big_m * (big_m - 1) // 2)
    filled = 0
    for i, si in enumerate(starts):
        rows, rows_sq = block(si)
        for sj in starts[i:]:
            cols, cols_sq = (rows, rows_sq) if sj == si else block(sj)
            dd = rows @ cols.T
            dd *= -2.0
            dd += rows_sq[:, None]
            dd += cols_sq[None, :]
            if sj == si:  # the upper triangle of a diagonal block: pairs i < j
                for r in range(len(rows) - 1):
                    seg = dd[r, r + 1 :]
                    dist2[filled : filled + len(seg)] = seg
                    filled += len(seg)
            else:
                dist2[filled : filled + dd.size] = dd.reshape(-1)
                filled += dd.size
            del cols, cols_sq, dd  # freed before the next block is gathered
        del rows, rows_sq
    np.maximum(dist2, 0.0, out=dist2)
    lo, hi = (dist2.size - 1) // 2, dist2.size // 2
    dist2.partition([lo, hi] if lo != hi else lo)
    med = 0.5 * (math.sqrt(dist2[lo]) + math.sqrt(dist2[hi]))
    if med > 0:
        return med * scale
    positive = dist2[dist2 > 0]
    return float(np.sqrt(positive).mean()) * scale if positive.size else 1.0


def median_bandwidth(z: Any) -> Any:
    """Median heuristic bandwidth of a batch, as a differentiable-graph-safe `keras.ops` tensor.

    The same definition as `median_heuristic` (which works in numpy, with subsampling, and so
    cannot run inside a compiled training step): the median Euclidean distance over all pairs
    `i < j` of the rows of `z`; if that median is 0, the mean of the positive distances; 1.0 if all
    rows coincide. No subsampling (a batch is small). The result carries no gradient.

    Args:
        z: tensor `(N, d)` of pooled features, `N >= 2`.

    Returns:
        A scalar tensor of `z`'s dtype.
    """
    z = ops.stop_gradient(ops.convert_to_tensor(z))
    d2 = squared_distances(z, z)
    n = ops.shape(d2)[0]
    eye = ops.eye(n, dtype=d2.dtype)
    # Self-distances set to -1 so that, once sorted, they are the first n entries; the median over
    # all ordered pairs i != j equals the median over pairs i < j (every value appears twice).
    flat = ops.reshape(d2 * (1.0 - eye) - eye, (-1,))
    ordered = ops.sort(flat)
    n_pairs = n * (n - 1)  # even
    lo = ops.take(ordered, n + n_pairs // 2 - 1)
    hi = ops.take(ordered, n + n_pairs // 2)
    median = 0.5 * (ops.sqrt(ops.maximum(lo, 0.0)) + ops.sqrt(ops.maximum(hi, 0.0)))
    positive = flat > 0
    count = ops.sum(ops.cast(positive, d2.dtype))
    total_positive = ops.sum(ops.where(positive, ops.sqrt(ops.maximum(flat, 0.0)), 0.0))
    mean_positive = total_positive / ops.maximum(count, 1.0)
    one = ops.ones_like(median)
    return ops.where(median > 0, median, ops.where(count > 0, mean_positive, one))


def mmd2_from_kernels(kxx: Any, kyy: Any, kxy: Any, estimator: str = "unbiased") -> Any:
    """MMD^2 from the three kernel matrices of samples x `(n)` and y `(m)`.

    "unbiased" is Gretton et al. (2012)'s MMD^2_u (Lemma 6): within-sample means exclude the
    diagonal. "biased" is the V-statistic MMD^2_b: plain means of all entries, which is >= 0 and
    >= MMD^2_u when the kernel's diagonal is its maximum (true of Gaussian kernels).

    Returns:
        A scalar tensor (differentiable).
    """
    n = ops.cast(ops.shape(kxx)[0], kxx.dtype)
    m = ops.cast(ops.shape(kyy)[0], kyy.dtype)
    if estimator == "biased":
        return ops.mean(kxx) + ops.mean(kyy) - 2.0 * ops.mean(kxy)
    sum_xx = ops.sum(kxx) - ops.trace(kxx)
    sum_yy = ops.sum(kyy) - ops.trace(kyy)
    return sum_xx / (n * (n - 1.0)) + sum_yy / (m * (m - 1.0)) - 2.0 * ops.mean(kxy)


def linear_mmd2_terms(x: Any, y: Any, bandwidth: Any) -> Any:
    """The h-terms of the linear-time MMD^2 (Gretton et al. 2012, Lemma 14).

    Uses the first `2 * (min(n, m) // 2)` samples of each set, paired consecutively:
    h_i = k(x_{2i}, x_{2i+1}) + k(y_{2i}, y_{2i+1}) - k(x_{2i}, y_{2i+1}) - k(x_{2i+1}, y_{2i}).
    Their mean is an unbiased estimate of MMD^2 computed in O(n) time and memory.

    Returns:
        Tensor of shape `(min(n, m) // 2,)`.
    """
    x = ops.convert_to_tensor(x)
    y = ops.convert_to_tensor(y, dtype=x.dtype)
    half = min(int(ops.shape(x)[0]), int(ops.shape(y)[0])) // 2
    x1, x2 = x[0 : 2 * half : 2], x[1 : 2 * half : 2]
    y1, y2 = y[0 : 2 * half : 2], y[1 : 2 * half : 2]
    return (
        paired_kernel(x1, x2, bandwidth)
        + paired_kernel(y1, y2, bandwidth)
        - paired_kernel(x1, y2, bandwidth)
        - paired_kernel(x2, y1, bandwidth)
    )


def paired_kernel(a: Any, b: Any, bandwidth: Any) -> Any:
    """Kernel values of row pairs, `k(a_i, b_i)`: shape `(n,)`, O(n) memory (no kernel matrix).

    Args:
        a, b: tensors `(n, d)`.
        bandwidth: scalar or 1-D tensor of bandwidths (kernels summed).
    """
    a = ops.convert_to_tensor(a)
    b = ops.convert_to_tensor(b, dtype=a.dtype)
    bw = ops.reshape(ops.cast(ops.convert_to_tensor(bandwidth), a.dtype), (-1, 1))
    d2 = ops.sum(ops.square(a - b), axis=1)
    return ops.sum(ops.exp(-ops.expand_dims(d2, 0) / (2.0 * ops.square(bw))), axis=0)


def mmd2_tensor(x: Any, y: Any, bandwidth: Any, estimator: str = "unbiased") -> Any:
    """Differentiable MMD^2 between two batches of features (the adapters' loss term).

    Args:
        x: tensor `(n, d)`; y: tensor `(m, d)`.
        bandwidth: scalar or 1-D tensor of bandwidths (use `ops.stop_gradient` on a data-driven one).
        estimator: "unbiased", "biased" or "linear".

    Returns:
        A scalar tensor.
    """
    if estimator == "linear":
        return ops.mean(linear_mmd2_terms(x, y, bandwidth))
    kxx = gaussian_kernel(x, x, bandwidth)
    kyy = gaussian_kernel(y, y, bandwidth)
    kxy = gaussian_kernel(x, y, bandwidth)
    return mmd2_from_kernels(kxx, kyy, kxy, estimator)
