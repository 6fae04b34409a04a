"""Label distributions, label-shift figures and target-prior estimation.

Label shift (prior shift) means the class proportions change between domains while the
class-conditional inputs stay the same: `q(y) != p(y)` but `q(x | y) = p(x | y)`. Under that
assumption the importance weight of a sample is `w(y) = q(y) / p(y)`, and the target proportions
`q(y)` can be estimated from a source classifier's outputs on unlabelled target data.

This module is numpy / scipy only (no TensorFlow): every function takes arrays of labels or of
predicted probabilities and returns a small frozen dataclass of numbers with a `to_dict()`.

Functions:
    label_distribution: class proportions of a label array.
    label_ratios: per-class `q(y) / p(y)` between two labelled samples.
    class_imbalance: counts, imbalance ratio, normalised entropy, minority classes.
    label_shift_distance: total variation and Jensen-Shannon divergence between two proportion vectors.
    estimate_target_priors: target class proportions from a classifier's probabilities, by
        Black Box Shift Estimation ("bbse") or calibrated maximum-likelihood EM ("em").
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.spatial.distance import jensenshannon

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import (
    check_array,
    check_labels,
    check_option,
    check_positive_int,
    check_probabilities,
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
        absent_in_source: classes present in the target but absent from the source.
        absent_in_target: classes present in the source but absent from the target.
    """

    ratios: np.ndarray
    source_proportions: np.ndarray
    target_proportions: np.ndarray
    absent_in_source: tuple[int, ...]
    absent_in_target: tuple[int, ...]


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
        minority_classes: classes whose proportion is below the uniform share `1 / n_classes`.
        n_samples: number of labels.
        n_classes: number of classes counted (including empty ones).
    """

    counts: np.ndarray
    proportions: np.ndarray
    imbalance_ratio: float
    normalized_entropy: float
    minority_classes: tuple[int, ...]
    n_samples: int
    n_classes: int


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
    """

    priors: np.ndarray
    source_priors: np.ndarray
    weights: np.ndarray
    method: str
    n_iter: int
    converged: bool


# --------------------------------------------------------------------------------------------
# Private helpers
# --------------------------------------------------------------------------------------------


def _labels_and_width(y: Any, name: str) -> tuple[np.ndarray, int]:
    """Validate labels; return them as ints and the class count they imply.

    The implied count is the one-hot width for 2-D one-hot labels, else `max label + 1`.
    """
    labels = check_labels(y, name)
    shape = np.shape(y)
    if len(shape) == 2 and shape[1] > 1:
        return labels, int(shape[1])
    return labels, int(labels.max()) + 1


def _check_width(labels: np.ndarray, width: int, is_one_hot: bool, name: str, n_classes: int) -> None:
    if is_one_hot and width != n_classes:
        raise ValueError(
            f"{name} is one-hot with {width} columns but n_classes={n_classes}. "
            "Pass n_classes equal to the number of one-hot columns."
        )
    if labels.max() >= n_classes:
        raise ValueError(
            f"{name} has label {int(labels.max())}, but n_classes={n_classes} allows only "
            f"0..{n_classes - 1}. Pass a larger n_classes or re-encode the labels."
        )


def _is_one_hot(y: Any) -> bool:
    shape = np.shape(y)
    return len(shape) == 2 and shape[1] > 1


def _resolve_labels(
    ys: list[tuple[Any, str]], n_classes: int | None
) -> tuple[list[np.ndarray], int]:
    """Validate one or more label arrays and agree on one class count."""
    resolved = [(_labels_and_width(y, name), y, name) for y, name in ys]
    if n_classes is None:
        n_classes = max(width for (_, width), _, _ in resolved)
    else:
        n_classes = check_positive_int(n_classes, "n_classes")
    for (labels, width), y, name in resolved:
        _check_width(labels, width, _is_one_hot(y), name, n_classes)
    return [labels for (labels, _), _, _ in resolved], n_classes


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


def _check_positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, e.g. 1e-8; got {value!r}.")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, e.g. 1e-8; got {value}.")
    return value


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
        y: class indices of shape `(n,)` (or `(n, 1)`), or one-hot rows of shape `(n, k)`.
        n_classes: number of classes; defaults to `max(y) + 1`, or `k` for one-hot labels. Pass it
            to count classes that happen not to occur (their proportion is 0).

    Returns:
        A float array of shape `(n_classes,)` summing to 1.

    Raises:
        TypeError: `y` is not numeric, or `n_classes` is not an integer.
        ValueError: `y` is empty, holds NaN, negative, fractional or `>= n_classes` labels, or
            one-hot rows whose width differs from `n_classes`.

    Example:
        >>> label_distribution([0, 0, 1, 2], n_classes=4).tolist()
        [0.5, 0.25, 0.25, 0.0]
    """
    (labels,), n = _resolve_labels([(y, "y")], n_classes)
    return _proportions(labels, n)


def label_ratios(y_source: Any, y_target: Any, n_classes: int | None = None) -> LabelRatios:
    """Compare the class proportions of two labelled samples: `q(y) / p(y)` per class.

    Args:
        y_source: source labels (class indices `(n,)` or one-hot `(n, k)`).
        y_target: target labels, in the same encoding of classes.
        n_classes: number of classes; defaults to the largest implied by either array.

    Returns:
        A `LabelRatios`. A class absent from the source gets a NaN ratio (never a division by
        zero) and is listed in `absent_in_source`; one absent from the target gets ratio 0 and is
        listed in `absent_in_target`.

    Raises:
        TypeError: non-numeric labels.
        ValueError: empty or invalid labels (see `label_distribution`).

    Example:
        >>> r = label_ratios([0, 0, 1, 1], [0, 1, 1, 2])
        >>> r.ratios.tolist(), r.absent_in_source
        ([0.5, 1.0, nan], (2,))
    """
    (ls, lt), n = _resolve_labels([(y_source, "y_source"), (y_target, "y_target")], n_classes)
    return ratios_from_proportions(_proportions(ls, n), _proportions(lt, n))


def ratios_from_proportions(p: Any, q: Any) -> LabelRatios:
    """`LabelRatios` from two class-proportion vectors (e.g. source labels vs estimated target priors).

    Args:
        p: source class proportions. q: target class proportions, same length.

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
    )


def class_imbalance(y: Any, n_classes: int | None = None) -> ClassImbalance:
    """Summarise how unevenly a label array spreads over its classes.

    Args:
        y: class indices `(n,)` or one-hot `(n, k)`.
        n_classes: number of classes; defaults to `max(y) + 1` or the one-hot width. Classes
            with no sample count towards the imbalance.

    Returns:
        A `ClassImbalance`. `imbalance_ratio` is max count / min count, and `inf` when some class
        has zero samples; `normalized_entropy` is entropy / log(n_classes) (1 = balanced).

    Raises:
        TypeError: non-numeric labels.
        ValueError: empty or invalid labels (see `label_distribution`).

    Example:
        >>> ci = class_imbalance([0, 0, 0, 1])
        >>> ci.imbalance_ratio, ci.minority_classes
        (3.0, (1,))
    """
    (labels,), n = _resolve_labels([(y, "y")], n_classes)
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
        source_labels: true labels of those samples, class indices `(n_s,)` or one-hot `(n_s, k)`.
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
            1; different numbers of columns in `source_probs` and `target_probs`; labels that are
            negative, fractional or `>= k`; `source_labels` and `source_probs` of different
            lengths; a class absent from `source_labels`; fewer than 2 classes.

    Example:
        >>> est = estimate_target_priors(p_val, y_val, p_target, method="em")  # doctest: +SKIP
        >>> est.priors, est.weights  # doctest: +SKIP
    """
    method = check_option(method, "method", PRIOR_METHODS)
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = _check_positive_float(tol, "tol")
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
    labels, width = _labels_and_width(source_labels, "source_labels")
    if _is_one_hot(source_labels) and width != k:
        raise ValueError(
            f"source_labels is one-hot with {width} columns but source_probs has {k} classes. "
            "Encode the labels over the classifier's classes."
        )
    if labels.max() >= k:
        raise ValueError(
            f"source_labels has label {int(labels.max())}, but source_probs has {k} classes "
            f"(labels 0..{k - 1}). Re-encode the labels to the classifier's class order."
        )
    if labels.size != p_src.shape[0]:
        raise ValueError(
            f"source_labels has {labels.size} labels but source_probs has {p_src.shape[0]} rows: "
            "pass one label per held-out source sample."
        )
    source_priors = _proportions(labels, k)
    missing = np.flatnonzero(source_priors == 0)
    if missing.size:
        raise ValueError(
            f"source_labels has no sample of class(es) {missing.tolist()}, so their target/source "
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
    )
