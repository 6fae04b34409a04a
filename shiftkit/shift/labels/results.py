"""Result types of `shiftkit.shift.labels`: frozen dataclasses of numbers with a `to_dict()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftkit._json import dataclass_to_dict

__all__ = [
    "LabelRatios",
    "ClassImbalance",
    "LabelShiftDistance",
    "PriorEstimate",
    "LabelShiftTestResult",
    "frozen_array",
    "class_tuple",
]


def frozen_array(arr: np.ndarray) -> np.ndarray:
    """A read-only float copy, so that a frozen result cannot be changed through its arrays."""
    out = np.array(arr, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def class_tuple(classes: Any, n: int) -> tuple[Any, ...]:
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
