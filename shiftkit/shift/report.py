"""ShiftReport: every shift figure of a source/target pair in one object, and before/after comparison.

`shift_report` runs, once, everything shiftkit measures about a pair of domains: the input-space
MMD test, with a model the feature-space MMD test and the joint aggregated MMD test (the verdict),
black-box shift detection (BBSD: KS tests on the model's softmax outputs, `shiftkit.shift.bbsd`)
when a classifier is given, and the label picture (distributions,
ratios target/source, distance, class imbalance; from true target labels when given, else from
target priors estimated with the model). `shiftkit.analyze` puts it in an `Analysis` (with the
per-feature drift and the diagnosis), which every front end (Python API, CLI, dashboard, HTML
report) renders, so two views never disagree.

Choices written down:
    * Input-space MMD is computed on inputs standardised by `shiftkit.shift.scaling.Standardizer`
      fitted on the pooled sample (source and target together, so the permutation test keeps its
      exact level): tabular features by their standard deviation floored at 0.1 x their range, so
      that one large-scale column (say, an area in mm^2 beside ratios in [0, 1]) does not decide
      the bandwidth alone; images `(n, h, w, c)` and sequences by one pooled scale per channel, so
      that a near-constant border pixel does not dominate. Pass images with their image shape
      (a flattened image is read as a table). `standardize=False` uses raw inputs.
    * With a model the verdict is the joint aggregated MMD test (`shiftkit.shift.mmd_joint`): the
      standardised inputs and the model's softmax (a classifier; its features otherwise), several
      bandwidths each, on one set of permutations, min-p corrected: one exact test at `alpha`. Its
      rows and its input standardisation are the input-space test's (the same seeded subsample,
      the same pooled `Standardizer`), and the softmax is the one BBSD uses (the model runs once).
      On bench_power's seven digits shift kinds (benchmarks/joint_mmd_choice.md) it matched or
      beat the best alibi-detect detector in 27 of 30 (shift, n) cells with its level held, where
      Holm over the three per-space tests pays for three tests and fell short in 9.
    * The per-space tests stay as evidence of where the shift shows: a family-wise decision at
      `alpha` by Holm's step-down correction over the tests that ran (input space; feature space
      and BBSD with a model). Without a model this is the verdict. Each test runs with enough
      permutations to reach its smallest Holm level, alpha / (number of tests), and is stored
      decided at its Holm level, so a test's own `is_shift` and `threshold` agree with the Holm
      decision.
    * BBSD (Rabanser et al. 2019 found it the most powerful detector across sample sizes) runs
      by default when the model is a classifier (`bbsd="auto"`): its KS p-value, already
      Bonferroni-corrected over the softmax outputs, enters Holm's family as one test. It uses every
      row (KS costs O(n log n)); the MMD tests use at most `max_samples` rows per domain.
    * Labels may hold any values (1..K, years, strings, bools); source and target are encoded
      together (`shiftkit._validation.encode_labels`; with a model, labels 0..K-1 index its
      outputs) and the original values are kept for display (`LabelShiftSummary.classes`).
    * Estimated target priors use the model's probabilities on `x_source` with `y_source` as the
      held-out labelled source sample: pass validation data, not the model's training data, as the
      source here, or the estimate inherits the model's overconfidence on its training set.
    * With a classifier and source labels the report holds the model's target accuracy
      (`TargetAccuracy`): measured on the target's labels when they are given, else estimated
      without them by `shiftkit.shift.accuracy.AccuracyEstimator` fitted on the model's
      probabilities on `x_source` (the same held-out source rows as the priors), with its interval.
      `shift_report` alone does not know the kind of shift, so its estimator is the one for an
      unknown kind (difference of confidences, the interval over every estimator); `shiftkit.analyze`
      re-chooses it for its diagnosis' kinds (`ShiftReport.with_accuracy_kinds`, from the same
      probabilities), which picks the estimator whose assumption matches and narrows the interval.
    * Raw MMD^2 from two different feature spaces (before/after adaptation) are not on one scale:
      `compare` sets p-values, `normalized` MMD^2 (divided by the mean within-domain kernel value)
      and z-scores beside them and marks raw values as not comparable.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftkit._keras import n_classes as n_classes_of
from shiftkit._json import dataclass_to_dict
from shiftkit._validation import (
    align_columns,
    check_alpha,
    check_array,
    check_pair,
    check_positive_int,
    check_probabilities,
    check_seed,
    encode_labels,
)
from shiftkit._version import __version__
from shiftkit.data import subsample_rows
from shiftkit.shift.accuracy import AccuracyEstimate, AccuracyEstimator, check_target_priors
from shiftkit.shift.bbsd import BBSD_TESTS, BBSDResult, bbsd_from_probabilities, check_classifier, is_classifier
from shiftkit.shift.features import FeatureSpace, predict_proba
from shiftkit.shift.labels import (
    ClassImbalance,
    LabelRatios,
    LabelShiftDistance,
    PriorEstimate,
    class_imbalance_from_counts,
    estimate_target_priors,
    label_distribution,
    label_shift_distance,
    ratios_from_proportions,
)
from shiftkit.shift import mmd as _mmd
from shiftkit.shift.mmd import DEFAULT_MEMORY_BUDGET, MMDTestResult, mmd_test, permutations_for
from shiftkit.shift.mmd_joint import DEFAULT_JOINT_REPRESENTATIONS, JointMMDResult, mmd_joint_from_representations
from shiftkit.shift.scaling import Standardizer

__all__ = [
    "LabelShiftSummary",
    "ShiftReport",
    "TargetAccuracy",
    "target_accuracy",
    "ShiftComparison",
    "ComparisonRow",
    "shift_report",
    "label_summary",
    "compare",
    "REPORT_SCHEMA_VERSION",
]

#: `ShiftReport.correction` when the joint test decides the verdict.
JOINT_CORRECTION = "joint min-p"

#: Version of the JSON layout of `ShiftReport.to_dict()`; bumped on any incompatible change.
REPORT_SCHEMA_VERSION = "2.5"  # 2.0: is_shift is Holm-corrected; correction, adjusted_p_values, scaling, classes added
# 2.1: "bbsd" (black-box shift detection on the model's softmax) added; it joins the Holm family
# 2.2: each MMD test carries "aggregate" (the default aggregated test: every bandwidth's statistic and p-value,
#      the min-p correction; null for a single kernel)
# 2.3: "target_accuracy" (the model's target accuracy: measured on the target's labels, else estimated without
#      them with its interval and estimator; null without a classifier and source labels)
# 2.4: "joint" (the joint aggregated MMD test over the inputs and the model's softmax / features, null without a
#      model); with a model it decides "is_shift" and "correction" is "joint min-p" (the Holm-decided per-space
#      tests and "adjusted_p_values" stay as evidence of where the shift shows)
# 2.5: "target_accuracy"."estimate" gains "target_priors" (the target class proportions given, else null) and its
#      "estimates" a "cot" entry (confidence optimal transport)


@dataclasses.dataclass(frozen=True, eq=False)
class LabelShiftSummary:
    """The label side of a shift report.

    Attributes:
        source_proportions: class proportions of the source labels.
        target_proportions: class proportions of the target, true or estimated (None when
            neither target labels nor a model were given).
        target_from: "labels" (true target labels), "estimated (<method>)" or "unknown".
        ratios: q(y) / p(y) per class (NaN for a class absent from the source); None if unknown.
        distance: total variation and Jensen-Shannon divergence between the two distributions;
            None if the target side is unknown.
        source_imbalance: class-imbalance figures of the source labels.
        target_imbalance: the same for the target labels (None when they were estimated).
        prior_estimate: the full estimate when target priors were estimated, else None.
        classes: the original class values, in code order (class k of every array above is
            `classes[k]`); empty when not known (then class k is shown as k).
    """

    source_proportions: np.ndarray
    target_proportions: np.ndarray | None
    target_from: str
    ratios: LabelRatios | None
    distance: LabelShiftDistance | None
    source_imbalance: ClassImbalance
    target_imbalance: ClassImbalance | None = None
    prior_estimate: PriorEstimate | None = None
    classes: tuple[Any, ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.source_proportions)

    def class_name(self, k: int) -> str:
        """The display name of class code `k` (its original value)."""
        return str(self.classes[k]) if k < len(self.classes) else str(k)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


@dataclasses.dataclass(frozen=True, eq=False)
class TargetAccuracy:
    """The model's accuracy on the target: measured on the target's labels, or estimated without them.

    Attributes:
        accuracy: the measured accuracy, or the estimate (NaN when no estimate could be made:
            `reason` says why).
        measured: True when measured on the target's labels.
        source_accuracy: the model's accuracy on the labelled source rows given (with held-out
            rows: the naive estimate of the target accuracy).
        n_source, n_target: rows used.
        method: "measured", the estimator chosen (`AccuracyEstimate.method`) or "unavailable".
        lower, upper: the estimate's interval (None when measured or unavailable).
        reason: why that estimator (its `AccuracyEstimate.reason`); why none, when unavailable.
        estimate: the whole `AccuracyEstimate` when estimated (every estimator's point estimate,
            the sampling interval, the plausible estimators), else None.
    """

    accuracy: float
    measured: bool
    source_accuracy: float
    n_source: int
    n_target: int
    method: str = "measured"
    lower: float | None = None
    upper: float | None = None
    reason: str = ""
    estimate: AccuracyEstimate | None = None

    def for_kinds(self, kinds: Sequence[str] | None, *, target_priors: Any = None) -> TargetAccuracy:
        """The estimate again for the kinds of shift diagnosed (`Diagnosis.kinds`) and, optionally, the
        target's known class proportions, from the same probabilities (kept from `target_accuracy`); a
        measured or unavailable accuracy as it is."""
        inputs = getattr(self, "_inputs", None)
        if self.measured or self.estimate is None or inputs is None:
            return self
        return target_accuracy(*inputs[:3], kinds=kinds, seed=inputs[3], target_priors=target_priors)

    @property
    def title(self) -> str:
        """"measured target accuracy" or "estimated target accuracy" (the label every view uses)."""
        return "measured target accuracy" if self.measured else "estimated target accuracy"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclass_to_dict(self), "title": self.title}

    def __str__(self) -> str:
        if self.measured:
            return (f"{self.title} {self.accuracy:.3f} (on the target's {self.n_target} labels; source accuracy "
                    f"{self.source_accuracy:.3f})")
        if self.method == "unavailable":
            return f"target accuracy: not estimated ({self.reason})"
        return (f"{self.title} {self.accuracy:.3f} [{self.lower:.3f}, {self.upper:.3f}] by {self.method} "
                f"({self.reason}); source accuracy {self.source_accuracy:.3f}")


def target_accuracy(
    source_probs: np.ndarray,
    y_source: np.ndarray,
    target_probs: np.ndarray,
    y_target: np.ndarray | None = None,
    *,
    kinds: Sequence[str] | None = None,
    seed: int | None = None,
    target_priors: Any = None,
) -> TargetAccuracy:
    """A model's target accuracy: measured with target labels, else estimated (`AccuracyEstimator`).

    Args:
        source_probs: the model's probabilities on labelled (held-out) source rows, `(n, k)` (a 1-D
            array: a sigmoid's positive-class probability).
        y_source: their labels: codes 0..k-1 (column indices), or any k class values (1..k, names),
            mapped to the columns in sorted order, as everywhere in shiftkit (`encode_labels`).
        target_probs: the model's probabilities on the target rows, `(m, k)`.
        y_target: the target's labels (coded as `y_source`), when known: the accuracy is then measured.
        kinds: the diagnosed kinds of shift (`Diagnosis.kinds`; None: unknown), which choose the
            estimator and the interval (`AccuracyEstimator.estimate`).
        seed: seed of the estimate's bootstrap.
        target_priors: the target's class proportions when known from outside the model (a
            registry's prevalence), in the model's output order (`AccuracyEstimator.estimate`).

    Returns:
        A `TargetAccuracy` ("unavailable", with the reason, when a class has no source rows).

    Raises:
        ValueError: `target_priors` of the wrong length, negative or all zero.
    """
    source_probs = check_probabilities(source_probs, "source_probs")
    target_probs = check_probabilities(target_probs, "target_probs", n_classes=source_probs.shape[1])
    _, (ys, yt) = encode_labels(y_source, y_target, names=("y_source", "y_target"), n_outputs=source_probs.shape[1])
    for codes, probs, name in ((ys, source_probs, "source"), (yt, target_probs, "target")):
        if codes is not None and len(codes) != len(probs):
            raise ValueError(f"y_{name} has {len(codes)} labels but {name}_probs has {len(probs)} rows: pass one "
                             "label per row.")
    if target_priors is not None:  # checked here: a bad argument is an error, not an "unavailable" estimate
        target_priors = check_target_priors(target_priors, target_probs.shape[1])
    source_acc = float(np.mean(source_probs.argmax(axis=1) == ys))
    if yt is not None:
        acc = float(np.mean(target_probs.argmax(axis=1) == yt))
        return TargetAccuracy(acc, True, source_acc, len(ys), len(target_probs))
    try:
        est = AccuracyEstimator(seed=seed).fit(source_probs, ys).estimate(target_probs, kinds=kinds,
                                                                          target_priors=target_priors)
    except ValueError as exc:  # e.g. a class without source rows: its recall is unknown
        return TargetAccuracy(float("nan"), False, source_acc, len(ys), len(target_probs), method="unavailable",
                              reason=" ".join(str(exc).split()))
    out = TargetAccuracy(est.accuracy, False, source_acc, len(ys), len(target_probs), method=est.method,
                         lower=est.lower, upper=est.upper, reason=est.reason, estimate=est)
    object.__setattr__(out, "_inputs", (source_probs, ys, target_probs, seed))  # for `for_kinds`, not serialised
    return out


def _threshold_text(threshold: float) -> str:
    """A critical value for the text table: the aggregated test's edge values in words (see `verdict`'s table)."""
    if math.isinf(threshold):
        return "any" if threshold < 0 else "none"
    return f"{threshold:.5f}"


def _holm(p_values: list[float], alpha: float) -> tuple[list[float], list[float]]:
    """Holm's step-down procedure: (the level each test is decided at, Holm-adjusted p-values).

    Tests sorted by p-value; the i-th smallest (0-based) is rejected at alpha / (k - i) if every
    smaller one was. A rejected test is given that level; the first test that fails, and every
    test after it, are given the level at which the procedure stopped, so `p <= level` reproduces
    the decision. Adjusted p-values: max over j <= i of min(1, (k - j) p_(j)).
    """
    k = len(p_values)
    order = sorted(range(k), key=lambda i: p_values[i])
    levels = [0.0] * k
    adjusted = [0.0] * k
    stopped = None
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * p_values[i]))
        adjusted[i] = running
        if stopped is None and p_values[i] > alpha / (k - rank):
            stopped = alpha / (k - rank)
        levels[i] = alpha / (k - rank) if stopped is None else stopped
    return levels, adjusted


@dataclasses.dataclass(frozen=True, eq=False)
class ShiftReport:
    """How far a target domain is from a source domain, and in what way.

    The verdict (`is_shift`) is the joint aggregated MMD test's decision at `alpha` when it ran (a
    model was given: `joint`); otherwise a family-wise decision at `alpha` by Holm's step-down
    correction over the per-space tests that ran. The per-space tests are Holm-decided in both
    cases (with a model, as evidence of where the shift shows). On construction each test is re-decided at its Holm level
    (`MMDTestResult.at_level`), so `input_test.is_shift`, `input_test.threshold` and
    `input_test.alpha` agree with the verdict; statistics, p-values and null distributions are the
    tests' own. Constructing a report whose permutation tests cannot reach their smallest Holm
    level (1 / (1 + n_permutations) > alpha / number of tests), or a joint test that cannot reach
    `alpha`, raises a ValueError: such a verdict could never say "shift". A joint test run at
    another level is re-decided at `alpha` (`JointMMDResult.at_level`).

    Attributes:
        input_test: the MMD test in input space (decided at its Holm level).
        feature_test: the MMD test in the model's feature space (None without a model).
        bbsd: black-box shift detection on the model's softmax (`BBSDResult`, decided at its
            Holm level; None without a classifier or with `bbsd=None`).
        labels: the label picture (None without source labels).
        alpha: the family-wise level of the verdict.
        n_source, n_target: sample sizes given.
        layer: the feature layer used (None without a model).
        seed: the seed used.
        standardized: whether input-space MMD ran on standardised inputs.
        correction: how the verdict corrects for multiplicity: "joint min-p" (the joint test's
            min-p over its kernels decides) when `joint` is given, else "holm".
        scaling: how the inputs were standardised (`Standardizer.how_`), "" when not.
        accuracy: the model's target accuracy, measured or estimated (`TargetAccuracy`; None
            without a classifier and source labels, or with `accuracy=False`).
        joint: the joint aggregated MMD test over the inputs and the model's softmax (its
            features for a model that is not a classifier), decided at `alpha`: the verdict when
            present (`JointMMDResult`; None without a model).
    """

    input_test: MMDTestResult
    feature_test: MMDTestResult | None
    labels: LabelShiftSummary | None
    alpha: float
    n_source: int
    n_target: int
    layer: str | None = None
    seed: int | None = None
    standardized: bool = True
    version: str = __version__
    correction: str = "holm"
    scaling: str = ""
    bbsd: BBSDResult | None = None
    accuracy: TargetAccuracy | None = None
    joint: JointMMDResult | None = None

    def __post_init__(self) -> None:
        if self.correction not in ("holm", JOINT_CORRECTION):
            raise ValueError(f"correction must be 'holm' or {JOINT_CORRECTION!r}; got {self.correction!r}.")
        if self.joint is not None:
            joint = self.joint
            if not isinstance(joint, JointMMDResult):
                raise TypeError(
                    f"joint must be a JointMMDResult from shiftkit.shift.mmd_joint_test; got {type(joint).__name__}."
                )
            if 1.0 / (1.0 + joint.n_permutations) > self.alpha:
                raise ValueError(
                    f"The joint test ran with n_permutations={joint.n_permutations}, so its smallest p-value "
                    f"{1 / (1 + joint.n_permutations):.4g} is above alpha = {self.alpha:g}: the report could never "
                    f"say 'shift'. Run it with n_permutations >= {permutations_for(self.alpha, joint.n_permutations)}."
                )
            if joint.alpha != self.alpha:
                object.__setattr__(self, "joint", joint.at_level(self.alpha))
            object.__setattr__(self, "correction", JOINT_CORRECTION)  # the joint test decides
        elif self.correction == JOINT_CORRECTION:
            raise ValueError(f"correction {JOINT_CORRECTION!r} needs the joint test: pass joint=... (a JointMMDResult).")
        family = self.family
        share = self.alpha / len(family)
        permuted = list(self.tests) + ([] if self.bbsd is None or self.bbsd.mmd is None else [self.bbsd.mmd])
        for t in permuted:
            if t.method == "permutation" and 1.0 / (1.0 + t.n_permutations) > share:
                needed = permutations_for(share, t.n_permutations)
                raise ValueError(
                    f"The {t.space}-space test ran with n_permutations={t.n_permutations}, so its "
                    f"smallest p-value 1 / (1 + n_permutations) = {1 / (1 + t.n_permutations):.4g} is "
                    f"above its Holm share alpha/{len(family)} = {share:g}: the report could never say "
                    f"'shift'. Run the tests with n_permutations >= {needed} "
                    "(shiftkit.shift.mmd.permutations_for(alpha / n_tests, n_permutations))."
                )
        levels, adjusted = _holm([t.p_value for t in family], self.alpha)
        decided = [t.at_level(level) for t, level in zip(family, levels)]
        object.__setattr__(self, "input_test", decided[0])
        if self.feature_test is not None:
            object.__setattr__(self, "feature_test", decided[1])
        if self.bbsd is not None:
            object.__setattr__(self, "bbsd", decided[-1])
        object.__setattr__(self, "_adjusted", tuple(adjusted))

    def with_accuracy_kinds(self, kinds: Sequence[str] | None, *, target_priors: Any = None) -> ShiftReport:
        """This report with its accuracy estimate chosen for the diagnosed kinds of shift and, optionally,
        the target's known class proportions (`TargetAccuracy.for_kinds`); itself when there is no estimate."""
        if self.accuracy is None or self.accuracy.measured:
            return self
        return dataclasses.replace(self, accuracy=self.accuracy.for_kinds(kinds, target_priors=target_priors))

    @property
    def tests(self) -> tuple[MMDTestResult, ...]:
        """The MMD tests that ran, input space first (`family` adds BBSD)."""
        return tuple(t for t in (self.input_test, self.feature_test) if t is not None)

    @property
    def family(self) -> tuple[MMDTestResult | BBSDResult, ...]:
        """Every test of the verdict's Holm family: the MMD tests, then BBSD when it ran."""
        return self.tests + (() if self.bbsd is None else (self.bbsd,))

    @property
    def adjusted_p_values(self) -> dict[str, float]:
        """Holm-adjusted p-value of each per-space test, by space ("input", "feature", "bbsd"):
        Holm's decision is `min(...) <= alpha` (the verdict without the joint test)."""
        return {t.space: float(p) for t, p in zip(self.family, self._adjusted)}

    @property
    def holm_shift(self) -> bool:
        """True when Holm's procedure over the per-space tests rejects at family-wise `alpha`."""
        return any(t.is_shift for t in self.family)

    @property
    def is_shift(self) -> bool:
        """The verdict: the joint test's decision at `alpha` when it ran (a model was given), else
        Holm's over the per-space tests (`holm_shift`)."""
        return self.joint.is_shift if self.joint is not None else self.holm_shift

    def _holm_text(self) -> str:
        n = len(self.family)
        return f"Holm correction over {n} test{'s' if n > 1 else ''}"

    def _correction_text(self) -> str:
        if self.joint is None:
            return self._holm_text()
        reps = " + ".join(dict.fromkeys(self.joint.representations))
        return f"joint MMD test over {reps}, {len(self.joint.representations)} kernels, min-p corrected"

    def _holm_places(self) -> list[str]:
        """Where the Holm-decided per-space tests find a shift, in words."""
        where = [t.space for t in self.tests if t.is_shift]
        places = [f"{' and '.join(where)} space"] if where else []
        if self.bbsd is not None and self.bbsd.is_shift:
            places.append("the model's softmax outputs (BBSD)")
        return places

    @staticmethod
    def _fmt_p(p: float) -> str:
        return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"

    @property
    def joint_summary(self) -> str:
        """The joint test's evidence in one line: its p-value, where the shift shows most (when it
        rejects), each representation's smallest uncorrected kernel p-value ("" without the joint test)."""
        j = self.joint
        if j is None:
            return ""
        per = ", ".join(f"{r} {self._fmt_p(p)}" for r, p in j.representation_p_values.items())
        most = f"; it shows most in the {j.selected_representation}" if j.is_shift else ""
        return f"p = {self._fmt_p(j.p_value)}{most} (smallest kernel p-value per representation: {per})"

    @property
    def verdict(self) -> str:
        """One sentence of what the tests say, computed once and reused by every view."""
        places = self._holm_places()
        if self.joint is not None:
            holm = (f"the per-space tests ({self._holm_text()}) find it in {' and in '.join(places)}" if places
                    else f"no per-space test rejects on its own ({self._holm_text()})")
            if self.joint.is_shift:
                return (f"Shift detected at alpha={self.alpha:g} by the {self._correction_text()}: "
                        f"{self.joint_summary}; {holm}. The target data do not look like the source data; "
                        "expect the source model's accuracy to differ.")
            holm = (f"; the per-space tests ({self._holm_text()}) find a shift in {' and in '.join(places)}, but the "
                    "verdict is the joint test's" if places else "")
            return (f"No shift detected at alpha={self.alpha:g} by the {self._correction_text()}: "
                    f"{self.joint_summary}{holm}. The target inputs are consistent with the source inputs at these "
                    "sample sizes (this is not proof that they are identical; class proportions are tested "
                    "separately).")
        if places:
            return (
                f"Shift detected at family-wise alpha={self.alpha:g} ({self._correction_text()}) in "
                f"{' and in '.join(places)}: the target data do not look like the source data; "
                "expect the source model's accuracy to differ."
            )
        return (
            f"No shift detected at family-wise alpha={self.alpha:g} ({self._correction_text()}): "
            "the target inputs are consistent with the source inputs at these sample sizes (this is "
            "not proof that they are identical; class proportions are tested separately)."
        )

    def to_dict(self, *, include_null: bool = True) -> dict[str, Any]:
        """JSON-ready dict (schema `REPORT_SCHEMA_VERSION`)."""
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "shiftkit_version": self.version,
            "is_shift": self.is_shift,
            "verdict": self.verdict,
            "alpha": self.alpha,
            "correction": self.correction,
            "adjusted_p_values": self.adjusted_p_values,
            "n_source": self.n_source,
            "n_target": self.n_target,
            "seed": self.seed,
            "layer": self.layer,
            "standardized": self.standardized,
            "scaling": self.scaling,
            "input_test": self.input_test.to_dict(include_null=include_null),
            "feature_test": None
            if self.feature_test is None
            else self.feature_test.to_dict(include_null=include_null),
            "bbsd": None if self.bbsd is None else self.bbsd.to_dict(),
            "labels": None if self.labels is None else self.labels.to_dict(),
            "target_accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "joint": None if self.joint is None else self.joint.to_dict(),
        }

    def to_json(self, *, indent: int | None = 2, include_null: bool = True) -> str:
        """The report as strict JSON (NaN and inf written as null)."""
        return json.dumps(self.to_dict(include_null=include_null), indent=indent, allow_nan=False)

    def __str__(self) -> str:
        lines = [
            f"shiftkit shift report (n_source={self.n_source}, n_target={self.n_target}, "
            f"{'' if self.joint is not None else 'family-wise '}alpha={self.alpha:g}, verdict: {self._correction_text()}"
            f"{'' if self.joint is None else '; per-space tests: ' + self._holm_text()})"
        ]
        lines.append("")
        header = (
            f"{'test':<16}{'MMD^2':>12}{'normalized':>12}{'z-score':>10}{'p-value':>10}"
            f"{'Holm p':>10}{'level':>9}{'threshold':>12}  shift"
        )
        lines.append(header)
        lines.append("-" * len(header))
        adjusted = self.adjusted_p_values
        for test in self.tests:
            lines.append(
                f"{test.space + ' space':<16}{test.statistic:>12.5f}{test.normalized:>12.4f}"
                f"{test.z_score:>10.2f}{test.p_value:>10.4f}{adjusted[test.space]:>10.4f}"
                f"{test.alpha:>9.4g}{_threshold_text(test.threshold):>12}  {'YES' if test.is_shift else 'no'}"
            )
        if self.bbsd is not None:
            b = self.bbsd
            lines.append(
                f"{'bbsd (softmax)':<16}{b.statistic:>12.5f}{'-':>12}{'-':>10}{b.p_value:>10.4f}"
                f"{adjusted['bbsd']:>10.4f}{b.alpha:>9.4g}{'-':>12}  {'YES' if b.is_shift else 'no'}"
            )
        if self.joint is not None:
            j = self.joint
            lines.append(
                f"{'joint (verdict)':<16}{j.statistic:>12.5f}{'-':>12}{'-':>10}{j.p_value:>10.4f}"
                f"{'-':>10}{j.alpha:>9.4g}{_threshold_text(j.threshold):>12}  {'YES' if j.is_shift else 'no'}"
            )
        shown = [t.threshold for t in self.tests] + ([] if self.joint is None else [self.joint.threshold])
        if any(math.isinf(t) for t in shown):
            lines.append("threshold 'any': another kernel of the aggregated test rejects whatever this one's MMD^2; "
                         "'none': no MMD^2 of this kernel could reject at this level")
        if self.scaling:
            lines.append(f"input space: {self.scaling}")
        if self.bbsd is not None:
            shifted = list(self.bbsd.shifted_outputs)
            lines.append(f"bbsd: {self.bbsd.description} (statistic: the largest KS D)"
                         if self.bbsd.test == "ks" else f"bbsd: {self.bbsd.description} (statistic: MMD^2)")
            if shifted:
                lines.append(f"bbsd: outputs with p <= {self.bbsd.threshold:.3g}: {shifted}")
        if self.joint is not None:
            lines.append(f"joint: {self.joint.description} (statistic, threshold: the MMD^2 of the kernel with the "
                         f"smallest p-value, {self.joint.selected_representation})")
            lines.append(f"joint: {self.joint_summary}")
        if self.labels is not None:
            lab = self.labels
            width = max([8] + [len(lab.class_name(k)) + 2 for k in range(lab.n_classes)])
            lines.append("")
            lines.append(f"labels (target from {lab.target_from})")
            head = f"{'class':<{width}}{'source':>10}{'target':>10}{'ratio t/s':>12}"
            lines.append(head)
            lines.append("-" * len(head))
            for k in range(lab.n_classes):
                name = lab.class_name(k)
                if lab.ratios is None:
                    lines.append(f"{name:<{width}}{lab.source_proportions[k]:>10.3f}{'?':>10}{'?':>12}")
                    continue
                ratio = lab.ratios.ratios[k]
                ratio_text = "absent" if not math.isfinite(ratio) else f"{ratio:.3f}"
                lines.append(
                    f"{name:<{width}}{lab.source_proportions[k]:>10.3f}{lab.target_proportions[k]:>10.3f}"
                    f"{ratio_text:>12}"
                )
            if lab.distance is not None:
                lines.append(
                    f"total variation {lab.distance.total_variation:.4f}, "
                    f"Jensen-Shannon {lab.distance.jensen_shannon:.4f} bits"
                )
            for side, imb in (("source", lab.source_imbalance), ("target", lab.target_imbalance)):
                if imb is None:
                    continue
                minority = [lab.class_name(int(k)) for k in imb.minority_classes]
                lines.append(
                    f"{side} imbalance ratio {imb.imbalance_ratio:.2f}, normalized entropy "
                    f"{imb.normalized_entropy:.3f}, minority classes {minority}"
                )
        if self.accuracy is not None:
            lines.append("")
            lines.append(str(self.accuracy))
        lines.append("")
        lines.append(self.verdict)
        return "\n".join(lines)


def label_summary(
    y_source: np.ndarray,
    y_target: np.ndarray | None,
    n_classes: int,
    estimate: PriorEstimate | None = None,
    classes: tuple[Any, ...] = (),
) -> LabelShiftSummary:
    """The label side of a report: source labels against target labels or estimated target priors.

    Args:
        y_source: source class codes 0..n_classes-1 (the whole labelled source).
        y_target: target class codes (None: the target side comes from `estimate`, if any).
        n_classes: number of classes.
        estimate: estimated target priors, used when `y_target` is None.
        classes: the original class value of each code (padded with codes up to `n_classes`).

    Returns:
        A `LabelShiftSummary` (target side "unknown" without target labels and estimate).
    """
    for y in (y_source, y_target):  # validates the codes (0..n_classes-1) as before
        if y is not None:
            label_distribution(y, n_classes=n_classes)
    counts = [None if y is None else np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
              for y in (y_source, y_target)]
    return label_summary_from_counts(counts[0], counts[1], n_classes, estimate, classes)


def label_summary_from_counts(
    source_counts: np.ndarray,
    target_counts: np.ndarray | None,
    n_classes: int,
    estimate: Any = None,
    classes: Sequence[Any] | None = (),
) -> LabelShiftSummary:
    """`label_summary` from class counts instead of label arrays.

    The summary depends on the labels only through their class counts, so this is the same
    summary (its tests compare the two) without a label array of the whole data, which a streamed
    target of 10^7 rows would need (1 GB and 10 s for `label_summary`).

    Args:
        source_counts: source class counts per code. target_counts: target class counts, or None
            (the target side is `estimate`, if any).
        n_classes: number of classes (counts are padded with zeros to it).
        estimate: estimated target priors (`PriorEstimate`), used without target counts.
        classes: the original class value of each code.

    Returns:
        A `LabelShiftSummary`.
    """
    classes = tuple(classes or ())
    names = classes + tuple(range(len(classes), n_classes)) if len(classes) else ()

    def padded(counts: np.ndarray) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.int64)
        return np.pad(counts, (0, n_classes - len(counts)))

    def imbalance(counts: np.ndarray) -> Any:
        ci = class_imbalance_from_counts(counts)
        return dataclasses.replace(ci, classes=names) if names else ci

    ps = padded(source_counts)
    p = ps.astype(np.float64) / int(ps.sum())
    qt = None
    if target_counts is not None:
        qt = padded(target_counts)
        q, target_from, estimate = qt.astype(np.float64) / int(qt.sum()), "labels", None
    elif estimate is not None:
        q, target_from = np.asarray(estimate.priors, dtype=np.float64), f"estimated ({estimate.method})"
    else:
        return LabelShiftSummary(p, None, "unknown", None, None, imbalance(ps), classes=names)
    return LabelShiftSummary(
        source_proportions=p, target_proportions=q, target_from=target_from,
        ratios=ratios_from_proportions(p, q, classes=names or None), distance=label_shift_distance(p, q),
        source_imbalance=imbalance(ps), target_imbalance=None if qt is None else imbalance(qt),
        prior_estimate=estimate, classes=names,
    )


def shift_report(
    x_source: Any,
    x_target: Any,
    y_source: Any = None,
    y_target: Any = None,
    *,
    model: Any = None,
    layer: str | int | None = None,
    n_permutations: int = 1000,
    alpha: float = 0.05,
    seed: int | None = None,
    standardize: bool = True,
    prior_method: str = "em",
    max_samples: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    bbsd: str | None = "auto",
    accuracy: bool = True,
    accuracy_kinds: Sequence[str] | None = None,
    accuracy_target_priors: Any = None,
) -> ShiftReport:
    """Measure the shift between a source and a target domain.

    Args:
        x_source: source inputs `(n, ...)` (held-out data when a model is given). Pass images
            with their image shape `(n, h, w, c)`, so that they are scaled as images.
        x_target: target inputs `(m, ...)`, same per-sample shape.
        y_source: optional source labels: any values (ints, whole floats, strings, bools, one-hot
            rows), encoded together with `y_target`; with a model, labels 0..K-1 index its outputs
            and other values are mapped to them in sorted order.
        y_target: optional target labels; without them and with a model, target class
            proportions are estimated from the model's probabilities (`prior_method`).
        model: optional `keras.Model`; adds the feature-space MMD test, prior estimation and the
            joint aggregated MMD test that then decides the verdict (`ShiftReport.joint`: the
            standardised inputs and, for a classifier, its softmax, else its features).
        layer: feature layer of `model` (name or index); default: the input of the output head.
        n_permutations: permutations of each MMD test; raised where needed so that each test can
            reach its smallest Holm level alpha / (number of tests), and the joint test alpha
            (`permutations_for`).
        alpha: level of the verdict (the joint test with a model; Holm over the tests that ran
            without one) and family-wise level of the per-space tests.
        seed: seed of the permutations and subsampling.
        standardize: standardise inputs (`shiftkit.shift.scaling.Standardizer`, fitted on the
            pooled sample) before input-space MMD.
        prior_method: "em" (calibrated EM) or "bbse" for estimated target priors.
        max_samples: subsample each domain to at most this many samples for the MMD tests (the
            joint test uses the input-space test's rows; BBSD's KS tests use every row; its "mmd"
            variant the same subsample size).
        memory_budget: bytes the kernel computations may use.
        bbsd: black-box shift detection on the model's softmax (`shiftkit.shift.bbsd`), one more
            test in the per-space Holm family: "auto" (default) runs the KS variant when `model`
            is a classifier (one output of probabilities or logits) and skips it otherwise; "ks"
            or "mmd" run that variant and refuse a model that is not a classifier; None: off.
        accuracy: report the model's target accuracy when `model` is a classifier and `y_source`
            is given (`ShiftReport.accuracy`, every row): measured on `y_target`, else estimated
            without target labels (`shiftkit.shift.accuracy.AccuracyEstimator`, seeded by `seed`).
        accuracy_kinds: the kinds of shift diagnosed (`Diagnosis.kinds`), which choose the
            accuracy estimator and its interval; None (default): unknown, as `shift_report` itself
            does not diagnose (`shiftkit.analyze` uses its diagnosis', `ShiftReport.with_accuracy_kinds`).
        accuracy_target_priors: the target's class proportions when known from outside the model (a
            registry's prevalence), in the model's output order: the accuracy estimate transports onto
            them (`AccuracyEstimator.estimate(target_priors=...)`).

    Returns:
        A `ShiftReport`.

    Raises:
        ValueError / TypeError: mismatched shapes or label counts, labels that are not class
            labels, labels that cannot be matched to the model's outputs, invalid settings.

    Example:
        >>> from shiftkit.datasets import load_scenario
        >>> s = load_scenario("hospitals_covariate", seed=0)
        >>> report = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, seed=0)  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
    """
    alpha = check_alpha(alpha)
    seed = check_seed(seed)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    x_source, x_target = align_columns(x_source, x_target, ("x_source", "x_target"))
    xs = check_array(x_source, "x_source")
    xt = check_array(x_target, "x_target")
    if xs.shape[1:] != xt.shape[1:]:
        raise ValueError(
            f"x_source and x_target must have the same feature shape: x_source has {xs.shape[1:]} "
            f"per sample, x_target has {xt.shape[1:]}. Select the same columns in both, in the same order."
        )
    if bbsd is not None and bbsd != "auto" and bbsd not in BBSD_TESTS:
        raise ValueError(f"bbsd must be 'auto', 'ks', 'mmd' or None; got {bbsd!r}.")
    fs = None
    bbsd_kind = None
    if model is not None:
        fs = FeatureSpace(model, layer)
        fs.check_input(xs, "x_source")
        fs.check_input(xt, "x_target")
        if bbsd == "auto":
            bbsd_kind = "ks" if is_classifier(model) else None
        elif bbsd is not None:
            check_classifier(model)  # an explicit variant refuses a model that is not a classifier
            bbsd_kind = bbsd
    if y_target is not None and y_source is None:
        raise ValueError("y_target was given without y_source; pass the source labels too to compare them.")
    encoding = ys = yt = None
    if y_source is not None:
        encoding, (ys, yt) = encode_labels(
            y_source,
            y_target,
            names=("y_source", "y_target"),
            n_outputs=None if model is None else n_classes_of(model),
        )
        for name, codes, x in (("y_source", ys, xs), ("y_target", yt, xt)):
            if codes is not None and len(codes) != len(x):
                sample = "x_source" if name == "y_source" else "x_target"
                raise ValueError(
                    f"{name} has {len(codes)} labels but {sample} has {len(x)} samples; pass one label per sample."
                )

    n_tests = (1 if fs is None else 2) + int(bbsd_kind is not None)
    mmd_kwargs = dict(
        # Each test must be able to reject at its smallest Holm level, alpha / n_tests.
        n_permutations=permutations_for(alpha / n_tests, n_permutations),
        alpha=alpha,
        seed=seed,
        max_samples=max_samples,
        memory_budget=memory_budget,
    )
    scaling = ""
    if standardize:
        scaler = Standardizer().fit(np.concatenate([xs, xt], axis=0))
        a, b = scaler.transform(xs), scaler.transform(xt)
        scaling = f"standardised, fitted on the pooled sample: {scaler.how_}"
    else:
        a, b = xs, xt
    input_test = mmd_test(a, b, space="input", check_input=False, **mmd_kwargs)  # validated above
    feature_test = None
    joint_reps: tuple[str, ...] = ()
    feats: tuple[np.ndarray, np.ndarray] | None = None
    if fs is not None:
        joint_reps = DEFAULT_JOINT_REPRESENTATIONS if is_classifier(model) else ("input", "features")
        # The model's features once, for the feature-space test and (without a classifier) the joint test.
        feats = check_pair(fs(xs), fs(xt), ("features(x_source)", "features(x_target)"))
        feature_test = mmd_test(*feats, space="feature", check_input=False, **mmd_kwargs)

    probs: tuple[np.ndarray, np.ndarray] | None = None
    if bbsd_kind is not None or "softmax" in joint_reps:
        probs = predict_proba(model, xs), predict_proba(model, xt)
    bbsd_result = None
    if bbsd_kind is not None:
        ps_b, pt_b = probs
        if bbsd_kind == "mmd" and max_samples is not None:
            ps_b = ps_b[subsample_rows(len(ps_b), max_samples, seed)]
            pt_b = pt_b[subsample_rows(len(pt_b), max_samples, None if seed is None else seed + 1)]
        bbsd_result = bbsd_from_probabilities(ps_b, pt_b, alpha=alpha, test=bbsd_kind, seed=seed,
                                              n_permutations=mmd_kwargs["n_permutations"])

    joint = None
    if joint_reps:
        joint = _joint_test(joint_reps, (a, b), probs, feats, standardize=standardize,
                            n_permutations=permutations_for(alpha, n_permutations), alpha=alpha, seed=seed,
                            max_samples=max_samples, memory_budget=memory_budget)

    summary = None
    target_acc = None
    if accuracy_target_priors is not None and (ys is None or model is None or not is_classifier(model) or not accuracy):
        raise ValueError(
            "accuracy_target_priors is used by the estimated target accuracy, which needs a classifier `model`, "
            "`y_source` and accuracy=True: pass them, or leave accuracy_target_priors out."
        )
    if ys is not None:
        n_classes = encoding.n_classes
        estimate = None
        with_accuracy = bool(accuracy) and model is not None and is_classifier(model)
        if model is not None and (yt is None or with_accuracy):
            probs = probs if probs is not None else (predict_proba(model, xs), predict_proba(model, xt))
        if yt is None and model is not None:
            ps, pt = probs
            n_classes = max(n_classes, ps.shape[1])
            estimate = estimate_target_priors(ps, ys, pt, method=prior_method)
        summary = label_summary(ys, yt, n_classes, estimate, encoding.classes)
        if with_accuracy:
            target_acc = target_accuracy(probs[0], ys, probs[1], yt, kinds=accuracy_kinds, seed=seed,
                                         target_priors=accuracy_target_priors)

    return ShiftReport(
        input_test=input_test,
        feature_test=feature_test,
        labels=summary,
        alpha=alpha,
        n_source=len(xs),
        n_target=len(xt),
        layer=None if fs is None else fs.layer_name,
        seed=seed,
        standardized=bool(standardize),
        scaling=scaling,
        bbsd=bbsd_result,
        accuracy=target_acc,
        joint=joint,
    )


def _joint_test(
    names: Sequence[str],
    inputs: tuple[np.ndarray, np.ndarray],
    probs: tuple[np.ndarray, np.ndarray] | None,
    feats: tuple[np.ndarray, np.ndarray] | None,
    *,
    standardize: bool,
    n_permutations: int,
    alpha: float,
    seed: int | None,
    max_samples: int | None,
    memory_budget: int,
) -> JointMMDResult:
    """The report's joint MMD test from what the report already computed.

    The rows are the input-space test's: `mmd_test` subsamples the source, then the target, with
    `default_rng(seed)` (`shiftkit.shift.mmd._subsample`); the same draws on row indices pick the
    same rows here, for every representation (with `seed=None` each draws its own rows). "input" is
    the report's standardised input (the `Standardizer` fitted on the whole pooled sample, as for the
    input-space test), "softmax" the probabilities BBSD used, "features" the feature-space test's
    features: the model is not run again.
    Kernels: `mmd_joint_from_representations`' defaults.

    Args:
        names: the representations, in order.
        inputs: the (standardised when `standardize`) source and target inputs, all rows.
        probs: the model's probabilities on every source and target row (for "softmax").
        feats: the model's features on every source and target row (for "features").
        standardize: whether `inputs` are standardised (recorded in the result).
        n_permutations, alpha, seed, max_samples, memory_budget: as in `shift_report`.

    Returns:
        The `JointMMDResult`, decided at `alpha`.
    """
    xs, xt = inputs
    rng = np.random.default_rng(seed)  # the draws of `mmd_test`'s `_prepared_pair`
    rows_s = _mmd._subsample(np.arange(len(xs)), max_samples, rng)
    rows_t = _mmd._subsample(np.arange(len(xt)), max_samples, rng)
    computed = {"input": (xs, xt), "softmax": probs, "features": feats}
    source: dict[str, np.ndarray] = {}
    target: dict[str, np.ndarray] = {}
    for name in names:  # every representation the report tests is one it has computed
        ps, pt = (np.asarray(v, dtype=np.float64) for v in computed[name])
        source[name] = ps[rows_s].reshape(len(rows_s), -1)
        target[name] = pt[rows_t].reshape(len(rows_t), -1)
    result = mmd_joint_from_representations(source, target, n_permutations=n_permutations, alpha=alpha, seed=seed,
                                            memory_budget=memory_budget)
    return dataclasses.replace(result, standardized=bool(standardize) and "input" in names)


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One figure before and after adaptation.

    Attributes:
        figure: the figure's name.
        before, after: its values (None when not measured).
        change: after - before (None when either is missing).
        better: "lower" or "higher": which direction means less shift.
        comparable: False for raw MMD^2 values from two different feature spaces.
    """

    figure: str
    before: float | None
    after: float | None
    change: float | None
    better: str
    comparable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


@dataclasses.dataclass(frozen=True)
class ShiftComparison:
    """Every figure of two shift reports side by side (`compare(before, after)`)."""

    rows: tuple[ComparisonRow, ...]
    before_shift: bool
    after_shift: bool

    @property
    def gap_closed(self) -> bool:
        """True when a shift was detected before and none is detected after."""
        return self.before_shift and not self.after_shift

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [r.to_dict() for r in self.rows],
            "before_shift": self.before_shift,
            "after_shift": self.after_shift,
            "gap_closed": self.gap_closed,
            "note": "Raw MMD^2 from different feature spaces is not on one scale; compare p-values, "
            "normalized MMD^2 and z-scores.",
        }

    def to_frame(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([r.to_dict() for r in self.rows])

    def __str__(self) -> str:
        head = f"{'figure':<34}{'before':>12}{'after':>12}{'change':>12}  better"
        out = [head, "-" * len(head)]

        def fmt(v: float | None) -> str:
            return "-" if v is None or not math.isfinite(v) else f"{v:.4g}"

        for r in self.rows:
            mark = "" if r.comparable else "  (not comparable)"
            out.append(f"{r.figure:<34}{fmt(r.before):>12}{fmt(r.after):>12}{fmt(r.change):>12}  {r.better}{mark}")
        return "\n".join(out)


def _row(figure: str, before: float | None, after: float | None, better: str, comparable: bool = True) -> ComparisonRow:
    def clean(v: Any) -> float | None:
        return None if v is None or not math.isfinite(float(v)) else float(v)

    b, a = clean(before), clean(after)
    change = None if a is None or b is None else a - b
    return ComparisonRow(figure, b, a, change, better, comparable)


def compare(before: ShiftReport, after: ShiftReport) -> ShiftComparison:
    """Set every figure of two reports side by side, with the change.

    Args:
        before: report measured with the source model (before adaptation).
        after: report measured with the adapted model, on the same data.

    Returns:
        A `ShiftComparison`; `str()` of it is a table, `to_frame()` a DataFrame.
    """
    for name, rep in (("before", before), ("after", after)):
        if not isinstance(rep, ShiftReport):
            raise TypeError(f"{name} must be a ShiftReport from shift_report(); got {type(rep).__name__}.")
    rows: list[ComparisonRow] = []
    for space in ("input", "feature"):
        tb = before.input_test if space == "input" else before.feature_test
        ta = after.input_test if space == "input" else after.feature_test
        if tb is None and ta is None:
            continue
        # Raw MMD^2 of two different models' feature spaces is not on one scale.
        same_space = space == "input"

        def get(t: MMDTestResult | None, attr: str) -> float | None:
            return None if t is None else getattr(t, attr)

        rows.append(_row(f"{space} MMD^2", get(tb, "statistic"), get(ta, "statistic"), "lower", comparable=same_space))
        rows.append(_row(f"{space} MMD^2 normalized", get(tb, "normalized"), get(ta, "normalized"), "lower"))
        rows.append(_row(f"{space} MMD z-score", get(tb, "z_score"), get(ta, "z_score"), "lower"))
        rows.append(_row(f"{space} MMD p-value", get(tb, "p_value"), get(ta, "p_value"), "higher"))
    bb, ba = before.bbsd, after.bbsd
    if bb is not None or ba is not None:

        def bget(t: BBSDResult | None, attr: str) -> float | None:
            return None if t is None else getattr(t, attr)

        # The KS statistic is scale-free (comparable across models); MMD^2 on two models' softmax is not.
        same_scale = all(t is None or t.test == "ks" for t in (bb, ba))
        rows.append(_row("BBSD statistic", bget(bb, "statistic"), bget(ba, "statistic"), "lower", comparable=same_scale))
        rows.append(_row("BBSD p-value", bget(bb, "p_value"), bget(ba, "p_value"), "higher"))
    jb, ja = before.joint, after.joint
    if jb is not None or ja is not None:  # the verdict's test (p-values: comparable across models)
        rows.append(_row("joint MMD p-value", None if jb is None else jb.p_value, None if ja is None else ja.p_value,
                         "higher"))
    lb, la = before.labels, after.labels
    if lb is not None or la is not None:

        def lget(s: LabelShiftSummary | None, fn) -> float | None:
            return None if s is None else fn(s)

        def dist(attr: str):
            return lambda s: None if s.distance is None else getattr(s.distance, attr)

        rows.append(_row("label total variation", lget(lb, dist("total_variation")), lget(la, dist("total_variation")), "lower"))
        rows.append(_row("label Jensen-Shannon (bits)", lget(lb, dist("jensen_shannon")), lget(la, dist("jensen_shannon")), "lower"))
    ab, aa = before.accuracy, after.accuracy
    if ab is not None or aa is not None:
        measured = all(a is None or a.measured for a in (ab, aa))
        rows.append(_row("target accuracy" if measured else "estimated target accuracy",
                         None if ab is None else ab.accuracy, None if aa is None else aa.accuracy, "higher"))
    return ShiftComparison(rows=tuple(rows), before_shift=before.is_shift, after_shift=after.is_shift)
