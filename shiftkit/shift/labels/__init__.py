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
    label_shift_test (label_shift_test_from_counts, class_imbalance_from_counts: the same from class
        counts, for streamed or merged data): exact permutation test of "same class distribution" on the 2 x K table of
        two label samples (true labels, or a source classifier's predicted classes: BBSD).

Modules:
    results: the frozen result dataclasses.
    distributions: label_distribution, label_ratios, ratios_from_proportions, class_imbalance,
        label_shift_distance (and the shared label coding, `encode_class_labels`).
    priors: estimate_target_priors (BBSE, EM) and the calibration map `fit_bcts` / `apply_bcts`.
    permutation: label_shift_test.

Every public name is importable from `shiftkit.shift.labels` itself.
"""

from __future__ import annotations

from shiftkit.shift.labels.distributions import (
    class_imbalance,
    class_imbalance_from_counts,
    label_distribution,
    label_ratios,
    label_shift_distance,
    ratios_from_proportions,
)
from shiftkit.shift.labels.permutation import label_shift_test, label_shift_test_from_counts
from shiftkit.shift.labels.priors import (
    LOG_EPS,
    PRIOR_METHODS,
    apply_bcts,
    estimate_target_priors,
    fit_bcts,
    project_to_simplex,
)
from shiftkit.shift.labels.results import (
    ClassImbalance,
    LabelRatios,
    LabelShiftDistance,
    LabelShiftTestResult,
    PriorEstimate,
    frozen_array,
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
    "class_imbalance_from_counts",
    "label_shift_distance",
    "estimate_target_priors",
    "LabelShiftTestResult",
    "label_shift_test",
    "label_shift_test_from_counts",
    "PRIOR_METHODS",
    "fit_bcts",
    "apply_bcts",
]

# Old private names, kept while other modules import them (shiftkit.adapt.label_shift, tests).
_fit_bcts = fit_bcts
_apply_bcts = apply_bcts
_frozen = frozen_array
_project_to_simplex = project_to_simplex
_LOG_EPS = LOG_EPS
