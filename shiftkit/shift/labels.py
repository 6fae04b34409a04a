"""Label distributions, label-shift figures and target-prior estimation.

Label shift (prior shift) means the class proportions change between domains while the
class-conditional inputs stay the same: `q(y) != p(y)` but `q(x | y) = p(x | y)`. Under that
assumption the importance weight of a sample is `w(y) = q(y) / p(y)`, and the target proportions
`q(y)` can be estimated from a source classifier's outputs on unlabelled target data.

This module is numpy / scipy only (no TensorFlow): every function takes arrays of labels or of
predicted probabilities and returns a small frozen dataclass of numbers with a `to_dict()`.

Labels: any class values are accepted (ints, whole-number floats, strings, bools, one-hot rows) and
coded 0..K-1 with `shiftkit._validation.encode_labels`, shared across the arrays of one call: labels
coded 1/2 are two classes, years 2019/2020 are two classes (not 2,021). Without `n_classes` the
classes are the sorted distinct values; with `n_classes`, labels that are integers 0..n_classes-1
are taken as class indices as they are (so empty classes are counted). Arrays and class indices in
the results follow the code order; the original values are kept in each result's `classes`.

Functions:
    label_distribution: class proportions of a label array.
    label_ratios: per-class `q(y) / p(y)` between two labelled samples.
    class_imbalance: counts, imbalance ratio, normalised entropy, minority classes.
    label_shift_distance: total variation and Jensen-Shannon divergence between two proportion vectors.
    estimate_target_priors: target class proportions from a classifier's probabilities, by
        Black Box Shift Estimation ("bbse") or calibrated maximum-likelihood EM ("em").
    label_shift_test: exact permutation test of "same class distribution" on the 2 x K table of
        two label samples (true labels, or a source classifier's predicted classes: BBSD).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.spatial.distance import jensenshannon

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import (
    LabelEncoding,
    check_array,
    check_option,
    check_positive_int,
    check_probabilities,
    check_real,
    check_seed,
    encode_labels,
)

__all__ = [
    "LabelRatios",
    "ClassImbalance",
    "LabelShiftDistance",
    "PriorEstimate",
    "label_distribution",
    "label_ratios",
    "ratios_from_proportions",
    "class_imbalance",
    "label_shift_distance",
    "estimate_target_priors",
    "LabelShiftTestResult",
    "label_shift_test",
]

PRIOR_METHODS = ("bbse", "em")
_PROPORTION_ATOL = 1e-6
_LOG_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


def _frozen(arr: np.ndarray) -> np.ndarray:
    """A read-only float copy, so that a frozen result cannot be changed through its arrays."""
    out = np.array(arr, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def _class_tuple(classes: Any, n: int) -> tuple[Any, ...]:
    """The class values of a result: `classes` when given, else the codes 0..n-1."""
    if classes is None or len(classes) == 0:
        return tuple(range(n))
    if len(classes) != n:
        raise ValueError(f"classes has {len(classes)} values but there are {n} classes.")
    return tuple(classes)


def _fmt_classes(classes: tuple[Any, ...], values: Any, digits: int = 3) -> str:
    """`{class: value, ...}` for display, keyed by the original class values."""
    vals = np.asarray(values, dtype=np.float64).tolist()
    return "{" + ", ".join(f"{c!s}: {round(v, digits):g}" for c, v in zip(classes, vals)) + "}"


class _Result:
    """Mixin: `to_dict()` for the frozen result dataclasses of this module."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain Python (lists, floats, ints, str, bool).

        NaN and infinite values become `None`, so `json.dumps(result.to_dict())` gives strict JSON.
        """
        return dataclass_to_dict(self)


@dataclass(frozen=True, eq=False)
class LabelRatios(_Result):
    """Per-class label-shift importance weights between a source and a target label sample.

    Attributes:
        ratios: `q(y) / p(y)` per class, shape `(n_classes,)`. NaN where the class is absent
            from the source (`p(y) = 0`): the ratio is undefined, never a division by zero.
            0 where the class is in the source but not in the target.
        source_proportions: `p(y)`, shape `(n_classes,)`.
        target_proportions: `q(y)`, shape `(n_classes,)`.
        absent_in_source: codes of the classes present in the target but absent from the source.
        absent_in_target: codes of the classes present in the source but absent from the target.
        classes: the original class value of each code (for display), e.g. `(2019, 2020)`.
    """

    ratios: np.ndarray
    source_proportions: np.ndarray
    target_proportions: np.ndarray
    absent_in_source: tuple[int, ...]
    absent_in_target: tuple[int, ...]
    classes: tuple[Any, ...] = ()

    def __str__(self) -> str:
        out = f"label ratios q/p {_fmt_classes(self.classes, self.ratios)}"
        if self.absent_in_source:
            out += f"; absent from the source: {[self.classes[c] for c in self.absent_in_source]}"
        if self.absent_in_target:
            out += f"; absent from the target: {[self.classes[c] for c in self.absent_in_target]}"
        return out


@dataclass(frozen=True, eq=False)
class ClassImbalance(_Result):
    """How unevenly the samples of one label array spread over the classes.

    Attributes:
        counts: samples per class, shape `(n_classes,)` (ints).
        proportions: `counts / n_samples`.
        imbalance_ratio: largest count / smallest count; 1 when balanced, `inf` when some class
            has no sample (then `to_dict()` writes `None`).
        normalized_entropy: Shannon entropy of `proportions` divided by `log(n_classes)`; 1 means
            balanced, 0 means every sample is in one class. 1.0 when `n_classes == 1`.
        minority_classes: codes of the classes whose proportion is below the uniform share
            `1 / n_classes`.
        n_samples: number of labels.
        n_classes: number of classes counted (including empty ones).
        classes: the original class value of each code (for display).
    """

    counts: np.ndarray
    proportions: np.ndarray
    imbalance_ratio: float
    normalized_entropy: float
    minority_classes: tuple[int, ...]
    n_samples: int
    n_classes: int
    classes: tuple[Any, ...] = ()

    def __str__(self) -> str:
        minority = [self.classes[c] for c in self.minority_classes] if self.classes else list(self.minority_classes)
        return (
            f"class counts {_fmt_classes(self.classes, self.counts)}, imbalance ratio "
            f"{self.imbalance_ratio:.3g}, normalized entropy {self.normalized_entropy:.3f}, "
            f"minority classes {minority}"
        )


@dataclass(frozen=True, eq=False)
class LabelShiftDistance(_Result):
    """Distances between two class-proportion vectors; higher means more label shift.

    Attributes:
        total_variation: `0.5 * sum(|p - q|)`, in [0, 1].
        jensen_shannon: Jensen-Shannon divergence in bits (base 2), in [0, 1]. This is the
            square of `scipy.spatial.distance.jensenshannon(p, q, base=2)`, which returns the
            Jensen-Shannon *distance* (the square root of the divergence).
    """

    total_variation: float
    jensen_shannon: float


@dataclass(frozen=True, eq=False)
class PriorEstimate(_Result):
    """Estimated target class proportions under label shift.

    Attributes:
        priors: estimated target proportions `q(y)`, shape `(n_classes,)`, on the simplex.
        source_priors: label frequencies `p(y)` of the held-out source labels.
        weights: `priors / source_priors`, the importance weight of each class.
        method: "bbse" or "em".
        n_iter: EM iterations run; 0 for BBSE (closed form).
        converged: whether EM met `tol` within `max_iter`; always True for BBSE.
        classes: the original class value of each column (for display).
    """

    priors: np.ndarray
    source_priors: np.ndarray
    weights: np.ndarray
    method: str
    n_iter: int
    converged: bool
    classes: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return (
            f"estimated target proportions ({self.method}) {_fmt_classes(self.classes, self.priors)} vs "
            f"source {_fmt_classes(self.classes, self.source_priors)}"
        )


@dataclass(frozen=True, eq=False)
class LabelShiftTestResult(_Result):
    """Permutation test of "both samples have the same class distribution". Lower p means shift.

    Attributes:
        statistic: Pearson's chi-square of the 2 x K table (classes seen in neither sample dropped).
        p_value: permutation p-value `(1 + #{null >= statistic}) / (1 + n_permutations)`; 1.0 when
            fewer than two classes occur (nothing to compare).
        n_permutations: permutations of the domain labels drawn.
        source_counts, target_counts: counts per class (code order).
        min_p_value: a lower bound of the smallest p-value any split of these rows could give
            (`1 / C(n + m, n)`, and `1 / (1 + n_permutations)`); a test at a level below it cannot
            reject.
        classes: the original class value of each code.
    """

    statistic: float
    p_value: float
    n_permutations: int
    source_counts: np.ndarray
    target_counts: np.ndarray
    min_p_value: float
    classes: tuple[Any, ...] = ()

    @property
    def source_proportions(self) -> np.ndarray:
        return self.source_counts / max(self.source_counts.sum(), 1)

    @property
    def target_proportions(self) -> np.ndarray:
        return self.target_counts / max(self.target_counts.sum(), 1)

    def __str__(self) -> str:
        return (
            f"chi-square {self.statistic:.4g}, permutation p={self.p_value:.3g} ({self.n_permutations} "
            f"permutations): proportions {_fmt_classes(self.classes, self.source_proportions)} vs "
            f"{_fmt_classes(self.classes, self.target_proportions)}"
        )


# --------------------------------------------------------------------------------------------
# Private helpers
# --------------------------------------------------------------------------------------------


def _is_one_hot(y: Any) -> bool:
    shape = np.shape(y)
    return len(shape) == 2 and shape[1] > 1


def _encode(
    ys: list[tuple[Any, str]], n_classes: int | None
) -> tuple[LabelEncoding, list[np.ndarray], int]:
    """Encode one or more label arrays with one shared coding; return `(encoding, codes, K)`.

    One-hot rows fix the class count to their width (their column index is the class). With
    `n_classes`, labels that are integers 0..n_classes-1 are class indices as they are; otherwise
    exactly `n_classes` distinct values are needed (mapped in sorted order).
    """
    widths = {int(np.shape(y)[1]) for y, _ in ys if _is_one_hot(y)}
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "n_classes")
        for y, name in ys:
            if _is_one_hot(y) and np.shape(y)[1] != n_classes:
                raise ValueError(
                    f"{name} is one-hot with {np.shape(y)[1]} columns but n_classes={n_classes}. "
                    "Pass n_classes equal to the number of one-hot columns."
                )
    elif widths:
        if len(widths) > 1:
            raise ValueError(
                f"The one-hot label arrays have different widths {sorted(widths)}: encode them over "
                "the same classes."
            )
        n_classes = widths.pop()
    arrays, names = [y for y, _ in ys], [name for _, name in ys]
    if n_classes is None:
        enc, codes = encode_labels(*arrays, names=names)
        return enc, codes, enc.n_classes
    try:
        enc, codes = encode_labels(*arrays, names=names, n_outputs=n_classes)
    except ValueError:
        found = encode_labels(*arrays, names=names)[0].classes
        raise ValueError(
            f"{' and '.join(names)} hold {len(found)} distinct label value(s) {list(found)[:10]}, "
            f"which do not fit n_classes={n_classes}: pass class indices 0..{n_classes - 1}, exactly "
            f"{n_classes} distinct values, or leave n_classes out to count the classes found."
        ) from None
    return enc, codes, n_classes


def _proportions(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=n_classes).astype(np.float64) / labels.size


def _check_proportion_vector(p: Any, name: str) -> np.ndarray:
    """Return `p` as a 1-D finite, non-negative float vector that sums to 1."""
    if np.ndim(p) > 1 and not (np.ndim(p) == 2 and 1 in np.shape(p)):
        raise ValueError(
            f"{name} must be a 1-D vector of class proportions, got shape {np.shape(p)}. "
            "Use label_distribution(y) to turn labels into proportions."
        )
    arr = check_array(p, name, min_samples=1).reshape(-1)
    if np.any(arr < 0):
        raise ValueError(
            f"{name} must be non-negative class proportions; found {arr.min():.4g}. "
            "Pass proportions (counts divided by their total)."
        )
    total = float(arr.sum())
    if abs(total - 1.0) > _PROPORTION_ATOL:
        raise ValueError(
            f"{name} sums to {total:.8g}, not 1 (tolerance {_PROPORTION_ATOL:g}). Normalise it "
            f"first: {name} / {name}.sum(), or use label_distribution(y)."
        )
    return arr


def _project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex (Duchi et al. 2008, sort-based)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, v.size + 1)
    rho = np.flatnonzero(u - (css - 1.0) / k > 0)[-1]
    theta = (css[rho] - 1.0) / (rho + 1.0)
    return np.maximum(v - theta, 0.0)


def _log_softmax(s: np.ndarray) -> np.ndarray:
    s = s - s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def _fit_bcts(probs: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Fit bias-corrected temperature scaling `softmax(log(p) / T + b)` by penalised NLL.

    The parameters `(log T, b)` get a standard normal prior (MAP fit: NLL summed over samples plus
    `(log T)^2 / 2 + |b|^2 / 2`). On a large held-out set the prior is negligible; on a small, nearly
    separable one, plain NLL is minimised by T -> 0 and large biases (seen: T = 0.11, b = +-7.8 on
    86 held-out patients, which wrecked the target estimate), and the prior stops that.

    Returns `(T, b)`. Falls back to the identity map `(1, 0)` if the fit does not lower the objective.
    """
    n, k = probs.shape
    z = np.log(probs + _LOG_EPS)
    one_hot = np.zeros((n, k))
    one_hot[np.arange(n), labels] = 1.0

    def nll_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        inv_t = np.exp(-theta[0])
        log_p = _log_softmax(z * inv_t + theta[1:])
        nll = -float(np.sum(log_p * one_hot)) / n
        g = (np.exp(log_p) - one_hot) / n  # d NLL / d logits
        grad_t = -inv_t * float(np.sum(g * z))
        prior = 0.5 * float(theta @ theta) / n
        return nll + prior, np.concatenate([[grad_t], g.sum(axis=0)]) + theta / n

    theta0 = np.zeros(k + 1)
    # T in [e^-6, e^6]; |b| <= 50: keeps a perfectly separable source from running T to 0.
    bounds = [(-6.0, 6.0)] + [(-50.0, 50.0)] * k
    result = minimize(nll_and_grad, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    if not np.all(np.isfinite(result.x)) or result.fun > nll_and_grad(theta0)[0]:
        return 1.0, np.zeros(k)
    return float(np.exp(result.x[0])), result.x[1:].copy()


def _apply_bcts(probs: np.ndarray, temperature: float, bias: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(np.log(probs + _LOG_EPS) / temperature + bias))


def _bbse(
    source_probs: np.ndarray,
    source_labels: np.ndarray,
    target_probs: np.ndarray,
    source_priors: np.ndarray,
) -> np.ndarray:
    k = source_probs.shape[1]
    yhat_s = source_probs.argmax(axis=1)
    confusion = np.zeros((k, k))
    np.add.at(confusion, (yhat_s, source_labels), 1.0)
    confusion /= source_labels.size  # C[i, j] = P_source(yhat = i, y = j)
    mu = np.bincount(target_probs.argmax(axis=1), minlength=k) / target_probs.shape[0]
    rank = np.linalg.matrix_rank(confusion)
    if rank < k:
        never = np.flatnonzero(confusion.sum(axis=1) == 0).tolist()
        hint = f" Classes never predicted on the source: {never}." if never else ""
        warnings.warn(
            f"BBSE: the confusion matrix of the held-out source is singular (rank {rank} < {k}): "
            f"the classifier confuses classes, so their target proportions are not identifiable.{hint} "
            "The estimate is a least-squares solution projected onto the simplex; treat it with "
            "care, or use method='em'.",
            UserWarning,
            stacklevel=3,
        )
    w, *_ = np.linalg.lstsq(confusion, mu, rcond=None)
    return _project_to_simplex(w * source_priors)


def _em(
    probs: np.ndarray, source_priors: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, int, bool]:
    """Saerens et al. (2002) EM for the target priors; returns `(priors, n_iter, converged)`."""
    q = source_priors.copy()
    for it in range(1, max_iter + 1):
        adjusted = probs * (q / source_priors)
        adjusted /= np.maximum(adjusted.sum(axis=1, keepdims=True), np.finfo(float).tiny)
        q_new = adjusted.mean(axis=0)
        q_new /= q_new.sum()
        delta = float(np.max(np.abs(q_new - q)))
        q = q_new
        if delta < tol:
            return q, it, True
    return q, max_iter, False


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def label_distribution(y: Any, n_classes: int | None = None) -> np.ndarray:
    """Return the proportion of each class in a label array.

    Args:
        y: class labels of shape `(n,)` (or `(n, 1)`): any values (ints, whole floats, strings,
            bools), or one-hot rows of shape `(n, k)`.
        n_classes: number of classes. Default: the distinct values of `y` (in sorted order), or
            `k` for one-hot labels. Pass it with labels 0..n_classes-1 to count classes that
            happen not to occur (their proportion is 0).

    Returns:
        A float array of shape `(n_classes,)` summing to 1, in sorted class order.

    Raises:
        TypeError: labels that are not numbers, strings or bools; `n_classes` not an integer.
        ValueError: `y` is empty, holds NaN or fractional values, labels that do not fit
            `n_classes`, or one-hot rows whose width differs from `n_classes`.

    Example:
        >>> label_distribution([0, 0, 1, 2], n_classes=4).tolist()
        [0.5, 0.25, 0.25, 0.0]
        >>> label_distribution([2019, 2020, 2020, 2020]).tolist()
        [0.25, 0.75]
    """
    _, (labels,), n = _encode([(y, "y")], n_classes)
    return _proportions(labels, n)


def label_ratios(y_source: Any, y_target: Any, n_classes: int | None = None) -> LabelRatios:
    """Compare the class proportions of two labelled samples: `q(y) / p(y)` per class.

    Args:
        y_source: source labels (any class values `(n,)`, or one-hot `(n, k)`).
        y_target: target labels, with the same class values.
        n_classes: number of classes; default: the distinct values of both arrays together (see
            `label_distribution`).

    Returns:
        A `LabelRatios` in sorted class order, with the class values in `classes`. A class absent
        from the source gets a NaN ratio (never a division by zero) and is listed in
        `absent_in_source`; one absent from the target gets ratio 0 and is listed in
        `absent_in_target`.

    Raises:
        TypeError: labels that are not numbers, strings or bools.
        ValueError: empty or invalid labels (see `label_distribution`).

    Example:
        >>> r = label_ratios([0, 0, 1, 1], [0, 1, 1, 2])
        >>> r.ratios.tolist(), r.absent_in_source
        ([0.5, 1.0, nan], (2,))
    """
    enc, (ls, lt), n = _encode([(y_source, "y_source"), (y_target, "y_target")], n_classes)
    return ratios_from_proportions(_proportions(ls, n), _proportions(lt, n), classes=enc.classes)


def ratios_from_proportions(p: Any, q: Any, classes: Any = None) -> LabelRatios:
    """`LabelRatios` from two class-proportion vectors (e.g. source labels vs estimated target priors).

    Args:
        p: source class proportions. q: target class proportions, same length.
        classes: the class value of each entry, for display (default 0..K-1).

    Returns:
        A `LabelRatios`: `q / p` per class, NaN (and listed in `absent_in_source`) where p is 0.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    ratios = np.full(len(p), np.nan)
    np.divide(q, p, out=ratios, where=p > 0)
    return LabelRatios(
        ratios=_frozen(ratios),
        source_proportions=_frozen(p),
        target_proportions=_frozen(q),
        absent_in_source=tuple(int(c) for c in np.flatnonzero((p == 0) & (q > 0))),
        absent_in_target=tuple(int(c) for c in np.flatnonzero((q == 0) & (p > 0))),
        classes=_class_tuple(classes, len(p)),
    )


def class_imbalance(y: Any, n_classes: int | None = None) -> ClassImbalance:
    """Summarise how unevenly a label array spreads over its classes.

    Args:
        y: class labels `(n,)` (any values: 1/2, years, strings, bools) or one-hot `(n, k)`.
        n_classes: number of classes; default: the distinct values of `y`, or the one-hot
            width. With labels 0..n_classes-1, classes with no sample count towards the imbalance.

    Returns:
        A `ClassImbalance` (class values in `classes`). `imbalance_ratio` is max count / min
        count, and `inf` when some class has zero samples; `normalized_entropy` is
        entropy / log(n_classes) (1 = balanced).

    Raises:
        TypeError: labels that are not numbers, strings or bools.
        ValueError: empty or invalid labels (see `label_distribution`).

    Example:
        >>> ci = class_imbalance([0, 0, 0, 1])
        >>> ci.imbalance_ratio, ci.minority_classes
        (3.0, (1,))
    """
    enc, (labels,), n = _encode([(y, "y")], n_classes)
    counts = np.bincount(labels, minlength=n)
    props = counts / labels.size
    ratio = float(counts.max() / counts.min()) if counts.min() > 0 else math.inf
    if n > 1:
        nz = props[props > 0]
        entropy = float(-np.sum(nz * np.log(nz)) / np.log(n))
    else:
        entropy = 1.0
    minority = np.flatnonzero(props < 1.0 / n - 1e-12)
    counts_ro = counts.astype(np.int64)
    counts_ro.setflags(write=False)
    return ClassImbalance(
        counts=counts_ro,
        proportions=_frozen(props),
        imbalance_ratio=ratio,
        normalized_entropy=min(max(entropy, 0.0), 1.0),
        minority_classes=tuple(int(c) for c in minority),
        n_samples=int(labels.size),
        n_classes=int(n),
        classes=_class_tuple(enc.classes, n),
    )


def label_shift_distance(p: Any, q: Any) -> LabelShiftDistance:
    """Distances between two class-proportion vectors (e.g. source and target label distributions).

    Args:
        p: proportions of shape `(n_classes,)`: finite, non-negative, summing to 1 (within 1e-6).
        q: proportions of the same length.

    Returns:
        A `LabelShiftDistance` with `total_variation = 0.5 * sum|p - q|` and `jensen_shannon`, the
        Jensen-Shannon *divergence* in bits, `0.5 * KL(p || m) + 0.5 * KL(q || m)` with
        `m = (p + q) / 2` and base-2 logs, in [0, 1]. It equals
        `scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2` (scipy returns the distance,
        the square root of the divergence). Both are symmetric and 0 for identical vectors.

    Raises:
        TypeError: non-numeric input.
        ValueError: empty, non-finite, negative or unnormalised vectors, or vectors of different
            lengths.

    Example:
        >>> d = label_shift_distance([0.5, 0.5], [0.9, 0.1])
        >>> round(d.total_variation, 3)
        0.4
    """
    p_arr = _check_proportion_vector(p, "p")
    q_arr = _check_proportion_vector(q, "q")
    if p_arr.size != q_arr.size:
        raise ValueError(
            f"p and q must have the same number of classes: p has {p_arr.size}, q has "
            f"{q_arr.size}. Compute both with label_distribution(..., n_classes=K)."
        )
    tv = 0.5 * float(np.abs(p_arr - q_arr).sum())
    distance = float(jensenshannon(p_arr, q_arr, base=2))
    # Rounding can make scipy's inner sum a hair below 0 (sqrt -> NaN) for identical vectors.
    js = distance**2 if math.isfinite(distance) else 0.0
    return LabelShiftDistance(
        total_variation=min(max(tv, 0.0), 1.0), jensen_shannon=min(max(js, 0.0), 1.0)
    )


def estimate_target_priors(
    source_probs: Any,
    source_labels: Any,
    target_probs: Any,
    method: str = "em",
    *,
    max_iter: int = 1000,
    tol: float = 1e-8,
    calibrate: bool = True,
) -> PriorEstimate:
    """Estimate the target class proportions from a classifier's predicted probabilities.

    Assumes label shift: `q(x | y) = p(x | y)`. The classifier's probabilities on a *held-out*
    labelled source sample (not its training data, where it is overconfident) describe how it
    behaves per class; its probabilities on unlabelled target data then reveal `q(y)`.

    Methods:
        "bbse": Black Box Shift Estimation (Lipton, Wang & Smola, 2018). With hard argmax
            predictions, `C[i, j] = P_source(yhat=i, y=j)` and `mu[i] = P_target(yhat=i)`; solve
            `C w = mu` by least squares, set `q = w * p_source` and project `q` onto the
            probability simplex. Needs no calibration (`calibrate` is ignored). A singular `C`
            (the classifier confuses classes) still gives a valid vector, with a warning.
        "em": maximum-likelihood EM (Saerens, Latinne & Decaestecker, 2002). With
            `calibrate=True` the probabilities are first recalibrated by bias-corrected
            temperature scaling, `softmax(log(p) / T + b)`, fitted by NLL on the held-out source
            (Alexandari, Kundaje & Shrikumar, 2020); EM then rescales `p(y|x)` by `q / p_source`,
            renormalises each row and averages, until `max |q_new - q| < tol`.

    Args:
        source_probs: probabilities on held-out labelled source data, shape `(n_s, k)`; a binary
            sigmoid output of shape `(n_s,)` or `(n_s, 1)` is read as `P(class 1)`.
        source_labels: true labels of those samples: column indices 0..k-1, or exactly k distinct
            values (1..k, names, ...) mapped to the columns in sorted order, or one-hot `(n_s, k)`.
            Every class must occur.
        target_probs: the same classifier's probabilities on unlabelled target data, `(n_t, k)`.
        method: "em" (default) or "bbse".
        max_iter: maximum EM iterations.
        tol: EM stopping tolerance on the largest change of a prior.
        calibrate: fit bias-corrected temperature scaling before EM (recommended: EM is biased
            by miscalibrated, e.g. overconfident, probabilities).

    Returns:
        A `PriorEstimate` (`priors`, `source_priors`, `weights = priors / source_priors`,
        `method`, `n_iter`, `converged`). If EM does not converge a warning is issued.

    Raises:
        TypeError: non-numeric input, or `calibrate` not a bool.
        ValueError: unknown `method`; NaN/inf or out-of-range probabilities, rows not summing to
            1; different numbers of columns in `source_probs` and `target_probs`; fractional
            labels, or labels that cannot be matched to the k columns; `source_labels` and
            `source_probs` of different lengths; a class absent from `source_labels`; fewer than
            2 classes.

    Example:
        >>> est = estimate_target_priors(p_val, y_val, p_target, method="em")  # doctest: +SKIP
        >>> est.priors, est.weights  # doctest: +SKIP
    """
    method = check_option(method, "method", PRIOR_METHODS)
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_real(tol, "tol", low=0, low_open=True, example="1e-8")
    if not isinstance(calibrate, (bool, np.bool_)):
        raise TypeError(f"calibrate must be True or False; got {calibrate!r}.")

    p_src = check_probabilities(source_probs, "source_probs")
    p_tgt = check_probabilities(target_probs, "target_probs")
    k = p_src.shape[1]
    if k < 2:  # defensive: check_probabilities already expands a single column to two classes
        raise ValueError(
            f"source_probs has {k} class; label shift needs at least 2 classes."
        )
    if p_tgt.shape[1] != k:
        raise ValueError(
            f"source_probs has {k} columns but target_probs has {p_tgt.shape[1]}: both must be "
            "the same classifier's probabilities over the same classes."
        )
    if _is_one_hot(source_labels) and np.shape(source_labels)[1] != k:
        raise ValueError(
            f"source_labels is one-hot with {np.shape(source_labels)[1]} columns but source_probs has "
            f"{k} classes. Encode the labels over the classifier's classes."
        )
    try:
        enc, (labels,) = encode_labels(source_labels, names=["source_labels"], n_outputs=k)
    except ValueError as exc:
        if "cannot be matched" not in str(exc):
            raise
        found = encode_labels(source_labels, names=["source_labels"])[0].classes
        raise ValueError(
            f"source_labels has {len(found)} distinct value(s) {list(found)[:10]}, but source_probs has "
            f"{k} classes: pass labels 0..{k - 1} (the column of each class) or exactly {k} distinct "
            "values (mapped to the columns in sorted order)."
        ) from None
    if labels.size != p_src.shape[0]:
        raise ValueError(
            f"source_labels has {labels.size} labels but source_probs has {p_src.shape[0]} rows: "
            "pass one label per held-out source sample."
        )
    source_priors = _proportions(labels, k)
    missing = np.flatnonzero(source_priors == 0)
    if missing.size:
        raise ValueError(
            f"source_labels has no sample of class(es) {[enc.classes[c] for c in missing]}, so their target/source "
            "ratio cannot be estimated. Add held-out source samples of every class."
        )

    if method == "bbse":
        priors = _bbse(p_src, labels, p_tgt, source_priors)
        n_iter, converged = 0, True
    else:
        if calibrate:
            temperature, bias = _fit_bcts(p_src, labels)
            p_tgt = _apply_bcts(p_tgt, temperature, bias)
        priors, n_iter, converged = _em(p_tgt, source_priors, max_iter, tol)
        if not converged:
            warnings.warn(
                f"EM did not converge in max_iter={max_iter} iterations (tol={tol:g}); the "
                "estimate may be inaccurate. Raise max_iter or loosen tol.",
                UserWarning,
                stacklevel=2,
            )
    return PriorEstimate(
        priors=_frozen(priors),
        source_priors=_frozen(source_priors),
        weights=_frozen(priors / source_priors),
        method=method,
        n_iter=int(n_iter),
        converged=bool(converged),
        classes=_class_tuple(enc.classes, k),
    )


def _chi_square_rows(h: np.ndarray, totals: np.ndarray, n: int, m: int) -> np.ndarray:
    """Pearson chi-square of the 2 x K tables whose first rows are `h` (rows of `h`), margins fixed."""
    big_n = n + m
    expected = n * totals / big_n
    # (t - Et) = -(h - Eh) because the column totals are fixed, so both rows add the same square.
    return np.sum((h - expected) ** 2 * (1.0 / expected + 1.0 / (m * totals / big_n)), axis=-1)


def _log_comb(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def label_shift_test(
    y_source: Any,
    y_target: Any,
    *,
    n_classes: int | None = None,
    n_permutations: int = 1000,
    seed: int | None = None,
) -> LabelShiftTestResult:
    """Test "source and target labels have the same class distribution" with an exact permutation test.

    The statistic is Pearson's chi-square of the 2 x K table of class counts. Its null distribution
    is that of the table when the pooled labels are split at random into groups of the two sizes:
    the source row of such a split is multivariate hypergeometric, so `n_permutations` splits are
    drawn directly as tables (no per-row shuffling). The p-value
    `(1 + #{null >= statistic}) / (1 + n_permutations)` is valid at any sample size (no expected
    count rule, unlike the asymptotic chi-square test).

    Used on true labels it tests label shift directly. Used on a source classifier's *predicted*
    classes on held-out source rows and on target rows (black-box shift detection, Lipton et al.
    2018; Rabanser et al. 2019) it tests label shift without target labels: under label shift the
    target's predicted-class distribution is `C q` (C the classifier's confusion matrix), equal to
    the source's exactly when `q = p` for an invertible C. That test is exact under "no shift"
    whenever the classifier was not fitted on either sample, but it also rejects for a covariate
    shift that moves the predictions: it cannot tell the two apart.

    Args:
        y_source: source labels (any class values), y_target: target labels (same values).
        n_classes: number of classes, as in `label_distribution` (only changes the zero columns).
        n_permutations: random splits forming the null distribution.
        seed: seed of the splits.

    Returns:
        A `LabelShiftTestResult`.

    Raises:
        TypeError / ValueError: invalid labels (see `label_distribution`), `n_permutations < 1`.

    Example:
        >>> res = label_shift_test([0] * 50 + [1] * 50, [0] * 80 + [1] * 20, n_permutations=999, seed=0)
        >>> res.p_value < 0.01
        True
    """
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    seed = check_seed(seed)
    enc, (ls, lt), k = _encode([(y_source, "y_source"), (y_target, "y_target")], n_classes)
    hs = np.bincount(ls, minlength=k)
    ht = np.bincount(lt, minlength=k)
    n, m = int(ls.size), int(lt.size)
    min_p = max(math.exp(-_log_comb(n + m, n)), 1.0 / (1 + n_permutations))
    seen = (hs + ht) > 0
    if seen.sum() < 2:
        statistic, p_value = 0.0, 1.0
    else:
        totals = (hs + ht)[seen].astype(np.int64)
        statistic = float(_chi_square_rows(hs[seen].astype(np.float64), totals, n, m))
        rng = np.random.default_rng(seed)
        null_tables = rng.multivariate_hypergeometric(totals, n, size=n_permutations)
        null = _chi_square_rows(null_tables.astype(np.float64), totals, n, m)
        tol = 1e-9 * max(1.0, abs(statistic))
        p_value = float((1 + np.sum(null >= statistic - tol)) / (1 + n_permutations))
    hs_ro, ht_ro = hs.astype(np.int64), ht.astype(np.int64)
    hs_ro.setflags(write=False)
    ht_ro.setflags(write=False)
    return LabelShiftTestResult(
        statistic=statistic,
        p_value=p_value,
        n_permutations=n_permutations,
        source_counts=hs_ro,
        target_counts=ht_ro,
        min_p_value=float(min_p),
        classes=_class_tuple(enc.classes, k),
    )
