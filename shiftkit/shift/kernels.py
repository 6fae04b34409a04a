"""Gaussian kernels and the bandwidth heuristic, written with `keras.ops`.

The same functions serve two uses (DESIGN.md, "one kernel, two uses"): the shift module evaluates
them on numpy data to *measure* MMD, and the MMD adapter calls them on batches of features inside a
training step to *minimise* it. Everything here therefore takes and returns backend tensors and is
differentiable; nothing here validates user input (the public functions in `mmd.py` do).

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
    `max_samples` points. If that median is 0 (more than half the pairs are duplicates) the mean
    of the positive distances is used, and 1.0 if all points coincide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

__all__ = [
    "squared_distances",
    "gaussian_kernel",
    "median_heuristic",
    "median_bandwidth",
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


def median_heuristic(
    x: Any, y: Any | None = None, *, max_samples: int = 2000, seed: int | None = 0
) -> float:
    """Median pairwise Euclidean distance of the pooled sample (see the module docstring).

    Args:
        x: array `(n, d)`.
        y: optional array `(m, d)`, pooled with `x`.
        max_samples: the most points used; larger pooled samples are subsampled uniformly.
        seed: seed of that subsample.

    Returns:
        The bandwidth, a positive float.
    """
    z = ops.convert_to_numpy(x) if y is None else np.concatenate(
        [ops.convert_to_numpy(x), ops.convert_to_numpy(y)], axis=0
    )
    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
    if len(z) > max_samples:
        idx = np.random.default_rng(seed).choice(len(z), size=max_samples, replace=False)
        z = z[idx]
    d2 = ops.convert_to_numpy(squared_distances(z, z))
    iu = np.triu_indices(len(z), k=1)
    dist = np.sqrt(d2[iu])
    if dist.size == 0:
        return 1.0
    med = float(np.median(dist))
    if med > 0:
        return med
    positive = dist[dist > 0]
    return float(positive.mean()) if positive.size else 1.0


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
