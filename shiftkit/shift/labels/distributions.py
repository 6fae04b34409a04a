"""Class proportions of label arrays, label ratios, class imbalance and label-shift distances.

Labels of one call share one coding (`encode_class_labels`, see the package docstring).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from shiftkit._validation import LabelEncoding, check_array, check_positive_int, encode_labels
from shiftkit.shift.labels.results import (
    ClassImbalance,
    LabelRatios,
    LabelShiftDistance,
    class_tuple,
    frozen_array,
)

__all__ = [
    "label_distribution",
    "label_ratios",
    "ratios_from_proportions",
    "class_imbalance",
    "class_imbalance_from_counts",
    "label_shift_distance",
    "encode_class_labels",
    "code_proportions",
    "is_one_hot",
]


_PROPORTION_ATOL = 1e-6


def is_one_hot(y: Any) -> bool:
    """Whether `y` is a 2-D array of one-hot rows (more than one column)."""
    try:
        shape = np.shape(y)
    except ValueError:  # ragged nested lists: not one-hot (the label check names the problem)
        return False
    return len(shape) == 2 and shape[1] > 1


def encode_class_labels(
    ys: list[tuple[Any, str]], n_classes: int | None
) -> tuple[LabelEncoding, list[np.ndarray], int]:
    """Encode one or more label arrays with one shared coding; return `(encoding, codes, K)`.

    One-hot rows fix the class count to their width (their column index is the class). With
    `n_classes`, labels that are integers 0..n_classes-1 are class indices as they are; otherwise
    exactly `n_classes` distinct values are needed (mapped in sorted order).
    """
    widths = {int(np.shape(y)[1]) for y, _ in ys if is_one_hot(y)}
    if n_classes is not None:
        n_classes = check_positive_int(n_classes, "n_classes")
        for y, name in ys:
            if is_one_hot(y) and np.shape(y)[1] != n_classes:
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


def code_proportions(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Proportion of each code 0..n_classes-1 in an array of class codes (zeros included)."""
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
    _, (labels,), n = encode_class_labels([(y, "y")], n_classes)
    return code_proportions(labels, n)


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
    enc, (ls, lt), n = encode_class_labels([(y_source, "y_source"), (y_target, "y_target")], n_classes)
    return ratios_from_proportions(code_proportions(ls, n), code_proportions(lt, n), classes=enc.classes)


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
        ratios=frozen_array(ratios),
        source_proportions=frozen_array(p),
        target_proportions=frozen_array(q),
        absent_in_source=tuple(int(c) for c in np.flatnonzero((p == 0) & (q > 0))),
        absent_in_target=tuple(int(c) for c in np.flatnonzero((q == 0) & (p > 0))),
        classes=class_tuple(classes, len(p)),
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
    enc, (labels,), n = encode_class_labels([(y, "y")], n_classes)
    return class_imbalance_from_counts(np.bincount(labels, minlength=n), classes=enc.classes)


def class_imbalance_from_counts(counts: Any, classes: Any = None) -> ClassImbalance:
    """`class_imbalance` of a label array given by its class counts (streamed or merged data).

    Args:
        counts: the number of samples of each class code 0..K-1 (non-negative integers, total > 0).
        classes: the class value of each code, for display (default 0..K-1).

    Returns:
        The `ClassImbalance` that `class_imbalance` returns for any array with these counts.

    Raises:
        ValueError: counts that are not non-negative integers, or all zero.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0 or counts.dtype.kind not in "iu" or np.any(counts < 0) or counts.sum() == 0:
        raise ValueError(f"counts must be non-negative integer class counts with a positive total; got {counts!r}.")
    n = int(counts.size)
    total = int(counts.sum())
    props = counts / total
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
        proportions=frozen_array(props),
        imbalance_ratio=ratio,
        normalized_entropy=min(max(entropy, 0.0), 1.0),
        minority_classes=tuple(int(c) for c in minority),
        n_samples=total,
        n_classes=n,
        classes=class_tuple(classes, n),
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
