"""Classification metrics of a model's probabilities: accuracy, balanced accuracy, macro F1, AUROC, ECE.

Used by `Experiment` for every method's row; callables `f(y_true, proba) -> float` can be added.
scikit-learn computes every metric except the expected calibration error (15 equal-width bins).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

from shiftkit._validation import check_labels, check_positive_int, check_probabilities

__all__ = ["METRICS", "SHIFT_COLUMNS", "check_metrics", "classification_metrics", "expected_calibration_error"]

#: Built-in metric names, in the order they are reported.
METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece")
#: Shift columns of the result (feature space, source model before vs each method's model after).
SHIFT_COLUMNS: tuple[str, ...] = (
    "shift_p_before",
    "shift_p_after",
    "shift_mmd2_normalized_before",
    "shift_mmd2_normalized_after",
)

# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _proba(proba: Any, name: str = "proba") -> np.ndarray:
    return check_probabilities(proba, name)


def expected_calibration_error(y_true: Any, proba: Any, *, n_bins: int = 15) -> float:
    """Expected calibration error of the predicted class, with equal-width confidence bins.

    The confidence of a sample is its largest class probability and its prediction that class.
    Bin `b` (of `n_bins`) holds the confidences in `((b - 1) / n_bins, b / n_bins]`; then

        ECE = sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|

    (Guo et al. 2017, "On calibration of modern neural networks"; empty bins add nothing).

    Args:
        y_true: class indices `(n,)`.
        proba: class probabilities `(n, k)`, or `(n,)` / `(n, 1)` positive-class probabilities.
        n_bins: number of equal-width bins (default 15).

    Returns:
        The ECE, a float in [0, 1]; lower is better calibrated.

    Raises:
        ValueError / TypeError: probabilities that do not sum to 1, labels of another length.

    Example:
        >>> # one right at confidence 0.9, one wrong at 0.8: (|1 - 0.9| + |0 - 0.8|) / 2
        >>> round(expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]]), 6)
        0.45
    """

    p = _proba(proba)
    y = check_labels(y_true, "y_true")
    n_bins = check_positive_int(n_bins, "n_bins")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} labels but proba has {len(p)} rows; pass one row per label.")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _one_vs_rest_scores(p: np.ndarray, c: int) -> np.ndarray:
    """log p_c - log(sum of the other classes): ranks like p_c, but keeps the order of samples whose
    float32 p_c saturated at exactly 1.0 (the other columns still hold it)."""
    rest = p.sum(axis=1) - p[:, c] if p.shape[1] > 2 else p[:, 1 - c]
    tiny = np.finfo(np.float64).tiny  # exact zeros tie at the end instead of becoming -inf
    return np.log(np.maximum(p[:, c], tiny)) - np.log(np.maximum(rest, tiny))


def _auroc(y: np.ndarray, p: np.ndarray) -> float:

    if p.shape[1] == 2:
        if len(np.unique(y)) < 2:
            return math.nan
        return float(roc_auc_score(y == 1, _one_vs_rest_scores(p, 1)))
    scores = [
        roc_auc_score(y == c, _one_vs_rest_scores(p, c))
        for c in range(p.shape[1])
        if 0 < np.count_nonzero(y == c) < len(y)
    ]
    return float(np.mean(scores)) if scores else math.nan


def _builtin_metric(name: str, y: np.ndarray, p: np.ndarray) -> float:

    pred = p.argmax(axis=1)
    if name == "accuracy":
        return float(np.mean(pred == y))
    if name == "balanced_accuracy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
            return float(balanced_accuracy_score(y, pred))
    if name == "macro_f1":
        return float(f1_score(y, pred, average="macro", zero_division=0))
    if name == "auroc":
        return _auroc(y, p)
    return expected_calibration_error(y, p)


def check_metrics(metrics: Any) -> dict[str, Callable[[np.ndarray, np.ndarray], float] | str]:
    """name -> built-in name or callable(y_true, proba)."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    elif isinstance(metrics, Sequence):
        items = []
        for m in metrics:
            if isinstance(m, str):
                items.append((m, m))
            elif callable(m):
                items.append((getattr(m, "__name__", type(m).__name__), m))
            else:
                raise TypeError(
                    f"metrics must hold metric names ({', '.join(METRICS)}) or callables f(y_true, proba); "
                    f"got {m!r}."
                )
    else:
        raise TypeError(
            f"metrics must be a list of names ({', '.join(METRICS)}) and/or callables f(y_true, proba), "
            f"or a dict name -> callable; got {type(metrics).__name__}."
        )
    out: dict[str, Any] = {}
    for name, fn in items:
        if not isinstance(name, str) or not name:
            raise TypeError(f"metric names must be non-empty strings; got {name!r}.")
        if isinstance(fn, str):
            if fn not in METRICS:
                raise ValueError(f"Unknown metric {fn!r}. Choose from: {', '.join(METRICS)}; or pass a callable.")
        elif not callable(fn):
            raise TypeError(f"metric {name!r} must be a built-in name or a callable f(y_true, proba); got {fn!r}.")
        if name in out:
            raise ValueError(f"metric {name!r} is listed twice.")
        if name in SHIFT_COLUMNS or name == "method":
            raise ValueError(f"metric name {name!r} is reserved for a result column; rename it.")
        out[name] = fn
    return out


def classification_metrics(y_true: Any, proba: Any, metrics: Any = METRICS) -> dict[str, float]:
    """Score class probabilities against labels.

    Args:
        y_true: class indices `(n,)`.
        proba: class probabilities `(n, k)` (or positive-class probabilities `(n,)`).
        metrics: names from `METRICS` ("accuracy", "balanced_accuracy", "macro_f1", "auroc" --
            binary, or one-vs-rest macro over the classes present; samples are ranked by
            `log p_c - log(1 - p_c)` computed from the other columns, which orders like `p_c` but
            survives float32 probabilities saturated at 1.0 --, "ece"), callables
            `f(y_true, proba) -> float`, or a dict name -> callable.

    Returns:
        Dict name -> float (NaN when undefined, e.g. AUROC with a single class in `y_true`).

    Example:
        >>> classification_metrics([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ["accuracy", "auroc"])
        {'accuracy': 0.6666666666666666, 'auroc': 1.0}
    """

    spec = check_metrics(metrics)
    p = _proba(proba)
    y = check_labels(y_true, "y_true")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} labels but proba has {len(p)} rows; pass one row per label.")
    if y.max() >= p.shape[1]:
        raise ValueError(f"y_true has label {int(y.max())} but proba has only {p.shape[1]} classes.")
    out = {}
    for name, fn in spec.items():
        value = _builtin_metric(fn, y, p) if isinstance(fn, str) else fn(y, p)
        out[name] = float(value)
    return out
