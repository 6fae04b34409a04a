"""The exact permutation test of "same class distribution" on two label samples (true or predicted)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shiftkit._validation import check_positive_int, check_seed
from shiftkit.shift.labels.distributions import encode_class_labels
from shiftkit.shift.labels.results import LabelShiftTestResult, class_tuple

__all__ = [
    "label_shift_test",
    "label_shift_test_from_counts",
]


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
    enc, (ls, lt), k = encode_class_labels([(y_source, "y_source"), (y_target, "y_target")], n_classes)
    return _count_test(np.bincount(ls, minlength=k), np.bincount(lt, minlength=k), n_permutations, seed,
                       class_tuple(enc.classes, k))


def label_shift_test_from_counts(
    source_counts: Any,
    target_counts: Any,
    *,
    n_permutations: int = 1000,
    seed: int | None = None,
    classes: Any = None,
) -> LabelShiftTestResult:
    """`label_shift_test` of two label samples given by their class counts (streamed or merged data).

    The test needs only the 2 x K table, so this is the same test, with the same p-value for the
    same seed, as `label_shift_test` on any label arrays with these counts.

    Args:
        source_counts, target_counts: samples per class code 0..K-1 (non-negative integers, the
            same K, each with a positive total).
        n_permutations: random splits forming the null distribution.
        seed: seed of the splits.
        classes: the class value of each code (default 0..K-1).

    Returns:
        A `LabelShiftTestResult`.

    Raises:
        ValueError: counts that are not non-negative integers of one length with positive totals.
    """
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    seed = check_seed(seed)
    hs, ht = np.asarray(source_counts), np.asarray(target_counts)
    for arr, name in ((hs, "source_counts"), (ht, "target_counts")):
        if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu" or np.any(arr < 0) or arr.sum() == 0:
            raise ValueError(f"{name} must be non-negative integer class counts with a positive total; got {arr!r}.")
    if hs.size != ht.size:
        raise ValueError(f"source_counts has {hs.size} classes but target_counts has {ht.size}; count the same classes.")
    return _count_test(hs, ht, n_permutations, seed, class_tuple(classes, hs.size))


def _count_test(hs: np.ndarray, ht: np.ndarray, n_permutations: int, seed: int | None,
                classes: tuple[Any, ...]) -> LabelShiftTestResult:
    """The permutation chi-square test of the 2 x K table `(hs, ht)` (see `label_shift_test`)."""
    n, m = int(hs.sum()), int(ht.sum())
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
        classes=classes,
    )
