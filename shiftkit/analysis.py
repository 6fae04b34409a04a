"""One analysis of a source/target pair: the shift report, per-feature drift, diagnosis (+ adaptation).

`analyze` is the one place where shiftkit assembles what it knows about two domains; every front
end is a view over the `Analysis` it returns:

- `shiftkit.check.check_shift` adds its pass/fail criteria on top of one;
- `shiftkit report` prints it and writes `to_json()` / `to_html()`;
- the dashboard shows it, and its downloads are its `to_json()` / `to_html()`, so they hold
  exactly what the page shows (the diagnosis included);
- `Analysis.to_html` renders it with `shiftkit.html_report` (rendering only).

What is measured on which rows (recorded in `Analysis.subsampling`, in words and as numbers):

- two arrays: the MMD tests subsample each domain to at most `max_samples` rows inside
  `shift_report` (seeded); the diagnosis runs on `shiftkit.data.subsample_rows` of each domain
  (the source drawn with `seed`, the target with `seed + 1`); the per-feature tests and the label
  proportions use every row;
- a `SourceSummary` (a `shiftkit.check.Reference` snapshot): the reference's stored subsample and
  the target subsampled as above; the label proportions use the whole reference's class counts
  and every target label.

Defaults and decisions are those of the library functions it calls: the verdict is the joint MMD
test with a model, else Holm's over the MMD tests (`ShiftReport.is_shift`); every test gets the permutations its level needs (`permutations_for`);
a test that cannot reach its level is NOT TESTABLE (`diagnose`) or refused with a ValueError that
says so (`ShiftReport`, a reference's check); inputs are standardised only by
`shiftkit.shift.scaling` (`ShiftReport.scaling` says how); labels are coded once
(`shiftkit._validation.encode_labels`).

Example:
    >>> import shiftkit
    >>> s = shiftkit.datasets.load_scenario("hospitals_covariate", seed=0)          # doctest: +SKIP
    >>> a = shiftkit.analyze(s.x_source, s.x_target, y_source=s.y_source, y_target=s.y_target,
    ...                      feature_names=s.feature_names, class_names=s.class_names)  # doctest: +SKIP
    >>> print(a)                                                                      # doctest: +SKIP
    >>> open("shift.html", "w").write(a.to_html())                                    # doctest: +SKIP
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shiftkit._validation import (
    align_columns,
    check_alpha,
    check_array,
    check_positive_int,
    check_seed,
    column_names,
    select_columns,
)
from shiftkit._version import __version__
from shiftkit.data import subsample_rows
from shiftkit.html_report import render_html
from shiftkit.shift.diagnose import Diagnosis, diagnose
from shiftkit.shift.report import REPORT_SCHEMA_VERSION, ShiftReport, shift_report
from shiftkit.shift.univariate import FeatureDriftResult, feature_drift

__all__ = ["Analysis", "Measurement", "SourceSummary", "Subsampling", "analyze"]


#: The parts of an analysis, in words (`Subsampling.summary`).
_PARTS = {"mmd_tests": "MMD tests", "diagnosis": "diagnosis", "feature_drift": "per-feature tests",
          "label_proportions": "label proportions"}


@dataclasses.dataclass(frozen=True)
class Subsampling:
    """What an analysis measured on which rows.

    Attributes:
        max_samples: the most rows per domain the subsampled parts use (None: no limit).
        seed: the seed of the draws (source: `seed`, target: `seed + 1`).
        source_rows, target_rows: rows given (for a reference: the whole reference's size).
        source_rows_used, target_rows_used: rows the subsampled parts used.
        subsampled: the parts measured on the subsample ("mmd_tests", "diagnosis", ...).
        every_row: the parts measured on every row.
    """

    max_samples: int | None
    seed: int | None
    source_rows: int
    target_rows: int
    source_rows_used: int
    target_rows_used: int
    subsampled: tuple[str, ...]
    every_row: tuple[str, ...]

    @property
    def summary(self) -> str:
        """One sentence for people: every row, or what used how many rows."""
        if not self.subsampled:
            within = "no max_samples" if self.max_samples is None else f"within max_samples={self.max_samples}"
            return f"Every row used: {self.source_rows} source and {self.target_rows} target rows ({within})."
        what = " and the ".join(_PARTS.get(p, p) for p in self.subsampled)
        rest = f"; the {' and the '.join(_PARTS.get(p, p) for p in self.every_row)} use every row" if self.every_row else ""
        return (f"Subsampled (seeded: max_samples={self.max_samples}, seed={self.seed}): the {what} use "
                f"{self.source_rows_used} of {self.source_rows} source and {self.target_rows_used} of "
                f"{self.target_rows} target rows{rest}.")

    def to_dict(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "subsampled": list(self.subsampled), "every_row": list(self.every_row), "summary": self.summary}


@dataclasses.dataclass(frozen=True, eq=False)
class Measurement:
    """A source summary's measurement of a target, which `analyze` completes into an `Analysis`.

    Attributes:
        report: the `ShiftReport`.
        x_source, x_target: the rows the per-feature drift tests use.
        y_source, y_target: their labels as the diagnosis takes them (original values), or None.
        diagnosis_rows: `(source rows, target rows)` of the above that the diagnosis uses.
        classes: the class order of those labels (None: sorted values).
        subsampling: what was measured on which rows.
        label_test: a label-shift test the summary ran with its report (None when none).
        feature_names, class_names: for display (None when unknown).
    """

    report: ShiftReport
    x_source: np.ndarray
    x_target: np.ndarray
    y_source: np.ndarray | None
    y_target: np.ndarray | None
    diagnosis_rows: tuple[np.ndarray, np.ndarray]
    classes: tuple[Any, ...] | None
    subsampling: Subsampling
    label_test: Any = None
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None


class SourceSummary(abc.ABC):
    """A source domain summarised once, so that later targets are measured without the source data.

    `shiftkit.check.Reference` (a snapshot) is one. `analyze(summary, x_target, ...)` calls
    `measure` for the shift report, then adds the per-feature drift and the diagnosis.
    """

    @abc.abstractmethod
    def measure(
        self,
        x_target: np.ndarray,
        y_target: Any,
        *,
        model: Any,
        layer: str | int | None,
        alpha: float,
        n_permutations: int,
        seed: int | None,
        max_samples: int,
    ) -> Measurement:
        """Measure `x_target` (validated inputs) against this source. Returns a `Measurement`."""


@dataclasses.dataclass(frozen=True, eq=False)
class Analysis:
    """Everything shiftkit measured about a source/target pair, rendered by every front end.

    Attributes:
        report: the `ShiftReport` (MMD tests and the verdict, labels, the model's target
            accuracy: with the diagnosis, its estimate is chosen for the diagnosed kinds of shift).
        drift: per-feature tests for tabular data (`FeatureDriftResult`; None for images or
            when not run).
        diagnosis: the kind of shift and the adapter that fits (`Diagnosis`; None when not run).
        adaptation: before/after of an adaptation (`shiftkit.adapt.AdaptationReport`; None when
            none ran).
        subsampling: what was measured on which rows (`Subsampling`).
        label_test: the label-shift test of a reference's check (None otherwise).
        class_names: display name of each class code (None: the report's class values).
        feature_names: column names of tabular data (None when unknown).
        notes: sentences shown above the results (e.g. what the data are).
        adaptation_title: heading of the adaptation (which adapter, on which rows).
    """

    report: ShiftReport
    drift: FeatureDriftResult | None = None
    diagnosis: Diagnosis | None = None
    adaptation: Any = None
    subsampling: Subsampling | None = None
    label_test: Any = None
    class_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    adaptation_title: str | None = None

    @property
    def is_shift(self) -> bool:
        """The report's verdict on the inputs at `report.alpha` (`ShiftReport.is_shift`: the joint MMD test with a
        model, else Holm). Class proportions are tested apart (`label_test`, `diagnosis`); a gate on both is
        `shiftkit.check.check_shift`."""
        return self.report.is_shift

    @property
    def scaling(self) -> str:
        """How the inputs were standardised for the input-space test ("" when they were not)."""
        return self.report.scaling if self.report.standardized else ""

    def with_adaptation(self, adaptation: Any, title: str | None = None) -> "Analysis":
        """The same analysis with an adaptation's before/after (an `AdaptationReport`) added."""
        return dataclasses.replace(self, adaptation=adaptation, adaptation_title=title)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: every part, under the keys the HTML page's data blocks use."""
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "shiftkit_version": __version__,
            "shift_report": self.report.to_dict(),
            "feature_drift": None if self.drift is None else self.drift.to_dict(),
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_dict(),
            "adaptation": None if self.adaptation is None else self.adaptation.to_dict(),
            "adaptation_title": self.adaptation_title,
            "label_test": None if self.label_test is None else self.label_test.to_dict(),
            "subsampling": None if self.subsampling is None else self.subsampling.to_dict(),
            "class_names": None if self.class_names is None else list(self.class_names),
            "notes": list(self.notes),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """`to_dict()` as strict JSON (NaN and inf written as null)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_html(
        self,
        *,
        title: str = "shiftkit shift report",
        figures: Mapping[str, Any] | None = None,
        check: Any = None,
    ) -> str:
        """One self-contained HTML page of this analysis (`shiftkit.html_report.render_html`).

        Args:
            title: page title.
            figures: extra figures `{caption: matplotlib Figure}` (e.g. an embedding).
            check: a `CheckResult` whose criteria head the page (`shiftkit check`).

        Returns:
            The page; its JSON blocks hold `to_dict()` (and the check's criteria).
        """
        data = self.to_dict()
        if check is not None:
            data["check"] = {k: v for k, v in check.to_dict().items() if k not in ("report", "diagnosis", "feature_drift")}
        notes = list(self.notes) + ([] if self.subsampling is None else [self.subsampling.summary])
        return render_html(
            self.report, drift=self.drift, adaptation=self.adaptation, diagnosis=self.diagnosis, check=check,
            title=title, class_names=self.class_names, notes=notes, figures=figures,
            adaptation_title=self.adaptation_title, data=data,
        )

    def __str__(self) -> str:
        parts = [str(self.report)]
        if self.diagnosis is not None:
            parts.append(str(self.diagnosis))
        if self.adaptation is not None:
            parts.append(f"{self.adaptation_title or 'after adaptation'}\n{self.adaptation}")
        if self.subsampling is not None:
            parts.append(self.subsampling.summary)
        return "\n\n".join(parts)


def _named(labels: Any, class_names: Sequence[str] | None, name: str) -> tuple[Any, tuple[Any, ...] | None]:
    """Label codes 0..K-1 as their class names, with the class order (for the diagnosis).

    Without `class_names` the labels are returned as they are (any class values). Names that
    are not distinct leave the codes as codes.
    """
    if labels is None or class_names is None:
        return labels, None
    codes = np.asarray(labels)
    if codes.dtype.kind not in "iu" or codes.size == 0 or codes.min() < 0 or codes.max() >= len(class_names):
        raise ValueError(
            f"class_names names the class codes 0..{len(class_names) - 1}, but {name} is not such codes. "
            "Pass codes with their class_names, or the labels themselves without class_names."
        )
    names = [str(c) for c in class_names]
    if len(set(names)) != len(names):
        return codes, tuple(range(len(names)))
    return np.asarray(names)[codes], tuple(names)


def _measure_arrays(
    xs: np.ndarray, xt: np.ndarray, ys: Any, yt: Any, *, model: Any, layer: Any, alpha: float, n_permutations: int,
    seed: int | None, max_samples: int | None, standardize: bool, class_names: tuple[str, ...] | None,
    feature_names: tuple[str, ...] | None,
) -> Measurement:
    report = shift_report(xs, xt, ys, yt, model=model, layer=layer, n_permutations=n_permutations, alpha=alpha,
                          seed=seed, standardize=standardize, max_samples=max_samples)
    lab = report.labels
    if lab is not None and class_names is not None and len(class_names) >= lab.n_classes \
            and tuple(lab.classes) == tuple(range(len(lab.classes))):  # codes with their names: show the names
        report = dataclasses.replace(report, labels=dataclasses.replace(lab, classes=tuple(class_names[:lab.n_classes])))
    rows = (subsample_rows(len(xs), max_samples, seed), subsample_rows(len(xt), max_samples, None if seed is None else seed + 1))
    used = (len(rows[0]), len(rows[1]))
    subsampled = () if used == (len(xs), len(xt)) else ("mmd_tests", "diagnosis")
    ys_named, classes = _named(ys, class_names, "y_source")
    yt_named, _ = _named(yt, class_names, "y_target")
    return Measurement(
        report=report, x_source=xs, x_target=xt, y_source=ys_named, y_target=yt_named, diagnosis_rows=rows,
        classes=classes,
        subsampling=Subsampling(max_samples, seed, len(xs), len(xt), *used, subsampled,
                                ("feature_drift", "label_proportions")),
        feature_names=feature_names, class_names=class_names,
    )


def analyze(
    x_source: Any,
    x_target: Any,
    *,
    y_source: Any = None,
    y_target: Any = None,
    model: Any = None,
    layer: str | int | None = None,
    alpha: float = 0.05,
    n_permutations: int = 1000,
    seed: int | None = 0,
    max_samples: int | None = 2000,
    standardize: bool = True,
    diagnose_shift: bool = True,
    diagnosis_permutations: int | None = None,
    per_feature: bool = True,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    adapter: Any = None,
    notes: Sequence[str] = (),
    accuracy_target_priors: Any = None,
) -> Analysis:
    """Measure a target against a source, once: shift report, per-feature drift, diagnosis (+ adaptation).

    Args:
        x_source: source inputs `(n, ...)` (held-out data when a model is given), or a
            `SourceSummary` such as a `shiftkit.check.Reference` snapshot.
        x_target: target inputs `(m, ...)`, same per-sample shape.
        y_source: optional source labels (any class values; with `class_names`, codes 0..K-1).
            Not with a `SourceSummary`, which holds its own.
        y_target: optional target labels, coded as `y_source`.
        model: optional Keras classifier trained on the source (feature-space test, estimated
            target priors, the diagnosis' classifier).
        layer: the model's feature layer (default: the input of its output head).
        alpha: level of the verdict (`ShiftReport.is_shift`) and of the diagnosis.
        n_permutations: the least number of permutations of each permutation test (each is raised
            to what its level needs).
        seed: seed of every random step.
        max_samples: each domain is subsampled (seeded) to at most this many rows for the MMD
            tests and the diagnosis (None: every row; a reference needs a number).
        standardize: standardise inputs for the input-space test (`shiftkit.shift.scaling`).
        diagnose_shift: also name the kind of shift and the adapter that fits (`diagnose`).
        diagnosis_permutations: the least permutations of the diagnosis' tests (default:
            `n_permutations`).
        per_feature: run the per-feature drift tests (tabular data only).
        feature_names: column names, for the per-feature table.
        class_names: display name of each class code 0..K-1 (labels are then codes).
        adapter: an optional fitted `shiftkit` adapter: its before/after (`Adapter.shift_report`)
            is measured on the same data with the same settings.
        notes: sentences shown above the results.
        accuracy_target_priors: the target's class proportions when known from outside the model (a
            registry's prevalence), in the model's output order: the estimated target accuracy
            transports onto them (`AccuracyEstimator.estimate(target_priors=...)`).

    Returns:
        An `Analysis`.

    Raises:
        ValueError / TypeError: invalid inputs, labels or settings (the message names the
            argument and the fix), data too small for a test to reach its level.
    """
    alpha = check_alpha(alpha)
    seed = check_seed(seed)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    max_samples = None if max_samples is None else check_positive_int(max_samples, "max_samples", minimum=2)
    diag_perm = n_permutations if diagnosis_permutations is None else check_positive_int(
        diagnosis_permutations, "diagnosis_permutations")
    names = None if class_names is None else tuple(str(c) for c in class_names)
    if isinstance(x_source, SourceSummary):  # a DataFrame target's columns matched to the reference's names
        x_target = select_columns(x_target, getattr(x_source, "feature_names", None), ("the reference", "x_target"))
    else:
        x_source, x_target = align_columns(x_source, x_target, ("x_source", "x_target"))
        if feature_names is None:  # a DataFrame's own column names
            feature_names = column_names(x_source)
    fnames = None if feature_names is None else tuple(str(c) for c in feature_names)
    xt = check_array(x_target, "x_target")
    if fnames is not None and len(fnames) != int(np.prod(xt.shape[1:])):
        raise ValueError(f"feature_names has {len(fnames)} name(s) but the data have {int(np.prod(xt.shape[1:]))} "
                         "column(s): pass one name per column (or leave feature_names out).")
    if isinstance(x_source, SourceSummary):
        if y_source is not None:
            raise ValueError("y_source was given with a reference: a reference holds its own labels; leave y_source out.")
        if adapter is not None:
            raise ValueError("adapter needs the source data; pass the source arrays instead of a reference.")
        if max_samples is None:
            raise ValueError("max_samples must be a number of rows with a reference (its check subsamples the target).")
        m = x_source.measure(xt, y_target, model=model, layer=layer, alpha=alpha, n_permutations=n_permutations,
                             seed=seed, max_samples=max_samples)
    else:
        xs = check_array(x_source, "x_source")
        m = _measure_arrays(xs, xt, y_source, y_target, model=model, layer=layer, alpha=alpha,
                            n_permutations=n_permutations, seed=seed, max_samples=max_samples,
                            standardize=bool(standardize), class_names=names, feature_names=fnames)
    drift = None
    if per_feature and m.x_source.ndim == 2:
        fn = m.feature_names if m.feature_names and len(m.feature_names) == m.x_source.shape[1] else None
        drift = feature_drift(m.x_source, m.x_target, feature_names=fn, alpha=alpha, check_input=False)
    diagnosis = None
    if diagnose_shift:
        rs, rt = m.diagnosis_rows
        ys = None if m.y_source is None else np.asarray(m.y_source)[rs]
        yt = None if m.y_target is None or ys is None else np.asarray(m.y_target)[rt]
        diagnosis = diagnose(m.x_source[rs], m.x_target[rt], ys, yt, model=model, alpha=alpha,
                             n_permutations=diag_perm, seed=seed, classes=None if ys is None else m.classes,
                             check_input=False)  # validated once, above
        # The report's accuracy estimate, re-chosen for the kinds of shift found (same probabilities, no new pass).
        m = dataclasses.replace(m, report=m.report.with_accuracy_kinds(diagnosis.kinds,
                                                                      target_priors=accuracy_target_priors))
    elif accuracy_target_priors is not None:
        m = dataclasses.replace(m, report=m.report.with_accuracy_kinds(None, target_priors=accuracy_target_priors))
    if accuracy_target_priors is not None and m.report.accuracy is None:
        raise ValueError(
            "accuracy_target_priors is used by the estimated target accuracy, which needs a classifier `model` and "
            "source labels: pass them, or leave accuracy_target_priors out."
        )
    adaptation = None
    if adapter is not None:
        adaptation = adapter.shift_report(m.x_source, m.x_target, y_source, y_target, n_permutations=n_permutations,
                                          alpha=alpha, seed=seed, standardize=bool(standardize),
                                          max_samples=max_samples)
    return Analysis(
        report=m.report, drift=drift, diagnosis=diagnosis, adaptation=adaptation, subsampling=m.subsampling,
        label_test=m.label_test, class_names=m.class_names, feature_names=m.feature_names,
        notes=tuple(str(n) for n in notes),
        adaptation_title=None if adapter is None else f"After adaptation: {type(adapter).__name__}",
    )
