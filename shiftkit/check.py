"""The pre-deployment shift check: a reference snapshot, criteria with thresholds, one verdict.

A team validates a model on a *reference* set (the source), then, before the model goes live on a new
site, runs `shiftkit check` on the new site's data (the *target*). The check fails when the target
has moved beyond what the model was validated on. The measurement is one `shiftkit.Analysis`
(`analyze(reference, x_target)`, which calls `Reference.measure`); the criteria are added on top of
it here, each with its value, threshold and direction, and the CLI, JSON and HTML render the result.

Criteria (each can fail the check):
    * input-space MMD test, and feature-space MMD test with a model: fails when p <= its level;
    * label shift: fails when the class proportions moved *significantly* and by more than
      `max_label_shift`: an exact permutation chi-square test (`label_shift_test`) on the
      reference's and the target's labels (without target labels: on the model's predicted
      classes, black-box shift detection) rejects at its level, and the total variation between
      the reference proportions and the target's (true, or estimated with calibrated EM) is above
      the tolerance. The total variation alone is no test: with 60 target rows and no shift its
      sampling noise passed 0.1 in 38% of draws;
    * class imbalance (when `max_imbalance_ratio` is given): the target's max/min class ratio above it;
    * black-box shift detection (when `bbsd=True`, CLI `--bbsd`; needs a classifier as the model):
      KS tests on each of the model's softmax outputs, reference (the snapshot's stored
      probabilities) vs target, Bonferroni over the outputs (`shiftkit.shift.bbsd`): fails when
      its corrected p-value is at or below its level. It is also one of the report's per-space tests.

`Reference` (saved by `shiftkit snapshot`) holds what a later check needs, so CI needs neither the
whole source set nor its labels: a seeded subsample of at most `max_samples` rows
(`shiftkit.data.subsample_rows`), the `Standardizer` fitted on the *whole* reference (`mean_`,
`scale_`), the whole reference's class counts and class values (`LabelEncoding`: every later target
is coded the same way), the kernel bandwidths (median heuristic on the reference alone, so every
target is measured with kernels of the same widths: the input and feature tests are aggregated MMD tests,
`mmd_agg_test`, over that bandwidth times 1/4 ... 4, shiftkit's default test around a fixed centre),
the model's features and probabilities on the subsample,
and the library version. The input test standardises the reference subsample and the measured target
rows together (`Reference.pooled_standardizer`): a standardisation fitted on the reference alone breaks
the permutation test's exchangeability when there are many columns for the rows (0.30 false alarms at
alpha 0.05 with 40 rows x 300 columns); the snapshot's whole-reference `mean_` / `scale_` serve the monitor. A check against a snapshot computes exactly what a check against the full
reference computes, because the full-reference check draws the same subsample.

Levels: each of the k tests that run (input MMD; feature MMD with a model; the label test with
labels, or a model and reference labels; BBSD when asked for) is decided at alpha / k (Bonferroni), so a target without
shift fails with probability at most alpha (`max_imbalance_ratio` gates the target's own class
balance; it is no shift test), with enough permutations for its level (`permutations_for`). Data
too small for any split to reach the level raise a ValueError that says so, rather than pass.

Labels may be any class values (1/2, years, strings, bools), coded 0..K-1 once, on the reference
(with a model: 0..K-1 index its outputs; other values are mapped to them in sorted order); a target
class the reference does not know is an error. Snapshot format 2 stores `scale` (the floored
scale) and the class values; format 1 snapshots (per-feature std, labels 0..K-1) still load, with a
warning (their bandwidths were chosen on the per-feature std scaling). A snapshot's stored probabilities
and features are its model's fingerprint: a check (or monitor) with another model is refused
(`Reference.check_model`), since its features compared with the stored ones would be a false shift.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Any, Sequence

import numpy as np

from shiftkit._json import dataclass_to_dict, jsonable
from shiftkit._keras import n_classes as n_classes_of
from shiftkit._validation import (
    LabelEncoding,
    align_columns,
    check_alpha,
    check_array,
    check_positive_int,
    check_real,
    check_seed,
    column_names,
    encode_labels,
    select_columns,
)
from shiftkit._version import __version__
from shiftkit.analysis import Analysis, Measurement, SourceSummary, Subsampling, analyze
from shiftkit.data import subsample_rows
from shiftkit.files import check_array_file
from shiftkit.html_report import check_headline, threshold_text
from shiftkit.shift.bbsd import bbsd_from_probabilities, check_classifier
from shiftkit.shift.features import FeatureSpace, predict_proba
from shiftkit.shift.kernels import median_heuristic
from shiftkit.shift.labels import (
    LabelShiftTestResult,
    class_imbalance_from_counts,
    estimate_target_priors,
    label_shift_test,
    label_shift_test_from_counts,
)
from shiftkit.shift.mmd import DEFAULT_AGG_FACTORS, min_attainable_p, mmd_agg_test, permutations_for
from shiftkit.shift.report import (
    REPORT_SCHEMA_VERSION,
    LabelShiftSummary,
    ShiftReport,
    TargetAccuracy,
    label_summary_from_counts,
    target_accuracy,
)
from shiftkit.shift.scaling import Standardizer
from shiftkit.shift.streaming import StreamedTarget

__all__ = ["Reference", "Criterion", "CheckResult", "check_shift", "SNAPSHOT_FORMAT", "TargetRows"]

#: Format version of snapshot files; bumped on any incompatible change.
SNAPSHOT_FORMAT = 2
_READABLE_FORMATS = (1, 2)


def _encode_reference_labels(
    y: Any, n_outputs: int | None, class_names: Sequence[Any] | None
) -> tuple[LabelEncoding, np.ndarray, tuple[str, ...] | None]:
    """Code the reference labels; returns (encoding, codes, display names).

    With `class_names`: labels that are codes 0..K-1 keep them (K = the model's outputs, else the
    number of names), or labels that are the names themselves are coded in the names' order.
    Without: `encode_labels` (sorted distinct values, or a model's output indices).
    """
    name = "reference y"
    if class_names is None:
        enc, (codes,) = encode_labels(y, names=[name], n_outputs=n_outputs)
        return enc, codes, None
    names = tuple(str(c) for c in class_names)
    k = len(names) if n_outputs is None else int(n_outputs)
    if len(names) != k:
        raise ValueError(
            f"class_names has {len(names)} names but the model predicts {k} classes: pass one name per "
            "model output, in output order."
        )
    try:
        enc, (codes,) = encode_labels(y, names=[name], classes=range(k))
        return LabelEncoding(range(k), identity=True), codes, names
    except (ValueError, TypeError):
        pass
    try:
        enc, (codes,) = encode_labels(y, names=[name], classes=list(class_names))
    except ValueError:
        raise ValueError(
            f"reference y holds values that are neither class codes 0..{k - 1} nor the class_names "
            f"{list(names)[:10]}. Pass codes with their class_names, or the labels without class_names."
        ) from None
    return enc, codes, names


@dataclasses.dataclass(frozen=True, eq=False)
class TargetRows:
    """What a check reads of a target: the rows it measures and the class counts of every row.

    Attributes:
        x: the measured rows (`subsample_rows(n_rows, max_samples, seed + 1)` of the target).
        y: their class codes (None without target labels).
        counts: class counts of the whole target, per code (None without target labels).
        n_rows: rows of the whole target.
    """

    x: np.ndarray
    y: np.ndarray | None
    counts: np.ndarray | None
    n_rows: int


@dataclasses.dataclass(frozen=True, eq=False)
class Reference(SourceSummary):
    """What a shift check needs to know about the reference (source) data.

    A `shiftkit.analysis.SourceSummary`: `shiftkit.analyze(reference, x_target)` measures a
    target against it (`measure`), as `check_shift` does before adding its criteria.

    Attributes:
        x: seeded subsample of the reference inputs.
        y: labels of that subsample, as codes 0..K-1 (None without labels).
        label_counts: class counts of the whole reference, per code (None without labels).
        mean, scale: the input standardisation, a `Standardizer` fitted on the whole reference
            (`mean_`, `scale_`), over the flattened features.
        bandwidth: input-space kernel bandwidth (median heuristic on the standardised subsample).
        features: the model's features on the subsample (None without a model).
        feature_bandwidth: feature-space bandwidth (None without a model).
        probs: the model's class probabilities on the subsample (None without a model).
        layer: the feature layer used.
        feature_names: column names, when known. class_names: the classes as text, for display
            (given, or the class values).
        n_reference: size of the whole reference. seed: the subsampling seed.
        version: shiftkit version that made it.
        classes: the class value of each code (e.g. `(2019, 2020)`), so that targets are coded
            the same way (None without labels).
        scaling: how the inputs were standardised, in words.
    """

    x: np.ndarray
    y: np.ndarray | None
    label_counts: np.ndarray | None
    mean: np.ndarray
    scale: np.ndarray
    bandwidth: float
    features: np.ndarray | None = None
    feature_bandwidth: float | None = None
    probs: np.ndarray | None = None
    layer: str | None = None
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    n_reference: int = 0
    seed: int | None = 0
    version: str = __version__
    classes: tuple[Any, ...] | None = None
    scaling: str = ""

    @classmethod
    def from_data(cls, x: Any, y: Any = None, *, model: Any = None, layer: str | int | None = None,
                  max_samples: int = 2000, seed: int | None = 0, feature_names: Any = None,
                  class_names: Any = None) -> "Reference":
        """Summarise reference data (and a model's view of it) for later checks.

        Args:
            x: reference inputs `(n, ...)`.
            y: optional reference labels, any class values (1/2, years, strings, bools); with a
                model, labels 0..K-1 index its outputs and other values are mapped to them in
                sorted order.
            model: optional Keras model (features and probabilities are stored).
            layer: feature layer of the model (default: the input of the output head).
            max_samples: size of the stored subsample.
            seed: subsampling seed.
            feature_names: optional column names.
            class_names: optional class names: one per class code 0..K-1 when `y` holds codes
                (as `shiftkit.files` produces), or the class values themselves in the order to use.

        Returns:
            A `Reference`.

        Raises:
            ValueError / TypeError: invalid inputs or labels, mismatched lengths, class names that
                do not fit the labels or the model.
        """
        if feature_names is None:  # a DataFrame's own column names (later DataFrame targets are matched to them)
            feature_names = column_names(x)
        x = check_array(x, "reference x")
        max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
        seed = check_seed(seed)
        if y is not None and len(np.asarray(y)) != len(x):
            raise ValueError(f"reference y has {len(np.asarray(y))} labels but reference x has {len(x)} rows.")
        scaler = Standardizer().fit(x)
        rows = subsample_rows(len(x), max_samples, seed)
        labels = None
        if y is not None:
            def labels(n_outputs: int | None) -> tuple[Any, np.ndarray, np.ndarray, tuple[str, ...] | None]:
                enc, codes, given = _encode_reference_labels(y, n_outputs, class_names)
                return enc, codes[rows], np.bincount(codes, minlength=enc.n_classes), given
        return cls._from_sample(x[rows], scaler, len(x), labels, model=model, layer=layer, seed=seed,
                                feature_names=feature_names, class_names=class_names)

    @classmethod
    def _from_sample(cls, xs: np.ndarray, scaler: Standardizer, n_reference: int, labels: Any, *, model: Any,
                     layer: str | int | None, seed: int | None, feature_names: Any, class_names: Any) -> "Reference":
        """A `Reference` from its subsample `xs` (float64), the scaler fitted on the whole reference, and
        `labels(n_outputs) -> (LabelEncoding, codes of xs, class counts, display names or None)` (None: no
        labels). `from_data` and the streamed snapshot (`shiftkit.shift.streaming.scan_reference`) share it."""
        bw = median_heuristic(scaler.transform(xs), seed=seed)
        feats = probs = None
        fbw = None
        layer_name = None
        if model is not None:
            fs = FeatureSpace(model, layer)
            feats = fs(xs)
            fbw = median_heuristic(feats, seed=seed)
            layer_name = fs.layer_name
            probs = predict_proba(model, xs)
        counts = codes = classes = None
        names = None if class_names is None else tuple(str(n) for n in class_names)
        if labels is not None:
            enc, codes, counts, given = labels(None if probs is None else probs.shape[1])
            classes = enc.classes
            names = given if given is not None else enc.names
        return cls(
            x=xs, y=codes, label_counts=counts, mean=scaler.mean_,
            scale=scaler.scale_, bandwidth=float(bw), features=feats,
            feature_bandwidth=None if fbw is None else float(fbw), probs=probs, layer=layer_name,
            feature_names=None if feature_names is None else tuple(str(n) for n in feature_names),
            class_names=names, n_reference=int(n_reference), seed=seed, classes=classes, scaling=scaler.how_,
        )

    @property
    def std(self) -> np.ndarray:
        """The per-feature divisor (kept for code written before `scale`; same array)."""
        return self.scale

    @property
    def encoding(self) -> LabelEncoding | None:
        """The reference's `LabelEncoding` (None without labels)."""
        return None if self.classes is None else LabelEncoding(self.classes)

    @property
    def label_distribution(self) -> np.ndarray | None:
        return None if self.label_counts is None else self.label_counts / self.label_counts.sum()

    def pooled_standardizer(self, x_target: np.ndarray) -> Standardizer:
        """The input test's `Standardizer`: fitted on the reference rows and the tested target rows together.

        A symmetric function of the tested rows, so the permutation test stays exact; fitted on the
        reference alone it would not be (measured: 0.30 false alarms at alpha 0.05 with 40 rows x 300
        columns per side). The snapshot's own `mean` / `scale` serve the monitor, whose null windows
        come from the reference rows themselves."""
        return Standardizer().fit(np.concatenate([self.x, np.asarray(x_target, dtype=np.float64)]))

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """Flattened inputs standardised as the reference was (its fitted `Standardizer`)."""
        scaler = Standardizer()
        scaler.mean_, scaler.scale_ = self.mean, self.scale
        return scaler.transform(x)

    def encode_target_labels(self, y: Any, name: str = "y_target") -> np.ndarray:
        """Code target labels as the reference's; a class the reference does not have is an error."""
        try:
            return self.encoding.encode(y, name)
        except ValueError as exc:
            if "not among the classes" not in str(exc):
                raise
            raise ValueError(
                f"{str(exc).split(' that are not among')[0]} that the reference does not have (its classes: "
                f"{list(self.classes)[:20]}). A check compares class proportions over the reference's "
                "classes: drop those target rows, or re-create the reference with labelled rows of "
                "every class."
            ) from None

    def _check_target_classes(self, target_counts: np.ndarray) -> None:
        """A target class the reference has no rows of is an error, however the labels were coded (labels of
        a pair of files are coded over both, a model's outputs 0..K-1 may include classes the reference lacks)."""
        ref = np.zeros(max(len(self.label_counts), len(target_counts)), dtype=np.int64)
        ref[: len(self.label_counts)] = self.label_counts
        unseen = np.flatnonzero((np.asarray(target_counts) > 0) & (ref[: len(target_counts)] == 0))
        if unseen.size:
            display = self.class_names or self.classes or tuple(range(len(ref)))
            shown = [display[k] if k < len(display) else int(k) for k in unseen]
            known = [c for c, n in zip(display, ref) if n > 0]
            raise ValueError(
                f"The target has label(s) {shown[:10]} that the reference has no rows of (its classes: {known[:20]}). "
                "A check compares class proportions over the reference's classes: drop those target rows, or "
                "re-create the reference with labelled rows of every class."
            )

    def target_codes(self, y_target: Any, n_rows: int, model: Any = None) -> np.ndarray | None:
        """Target labels coded as the reference's (without reference labels: as the model's outputs)."""
        if y_target is None:
            return None
        if len(np.asarray(y_target)) != n_rows:
            raise ValueError(f"y_target has {len(np.asarray(y_target))} labels but x_target has {n_rows} rows.")
        if self.classes is not None:
            return self.encode_target_labels(y_target, "y_target")
        n_out = None
        if model is not None:
            n_out = n_classes_of(model) or predict_proba(model, self.x[:1]).shape[1]
        return encode_labels(y_target, names=["y_target"], n_outputs=n_out)[1][0]

    def _label_side(
        self, yt_counts: np.ndarray | None, pt: np.ndarray | None, n_perm: int, seed: int | None
    ) -> tuple[LabelShiftSummary, LabelShiftTestResult]:
        """Label summary and exact label-shift test: the whole reference's counts vs the whole target's
        class counts, or without target labels EM-estimated priors and the test on the model's predicted
        classes (BBSD) on the subsamples. Only counts are needed: no label array of the whole data."""
        n_classes = len(self.label_counts)
        if yt_counts is not None:
            labels = label_summary_from_counts(self.label_counts, yt_counts, n_classes, None, self.classes)
            test = label_shift_test_from_counts(self.label_counts, yt_counts, n_permutations=n_perm, seed=seed)
            return labels, test
        est = estimate_target_priors(self.probs, self.y, pt, method="em")
        labels = label_summary_from_counts(self.label_counts, None, max(n_classes, pt.shape[1]), est, self.classes)
        test = label_shift_test(np.asarray(self.probs).argmax(axis=1), pt.argmax(axis=1),
                                n_classes=n_classes, n_permutations=n_perm, seed=seed)
        return labels, test

    def _target_accuracy(self, model: Any, pt: np.ndarray | None, yt: np.ndarray | None,
                         seed: int | None) -> TargetAccuracy | None:
        """The classifier's accuracy on the measured target rows (measured with their labels, else estimated
        from the snapshot's labelled probabilities); None without a classifier or reference labels."""
        if pt is None or self.y is None:
            return None
        try:
            check_classifier(model)
        except (TypeError, ValueError):
            return None
        return target_accuracy(self.probs, self.y, pt, yt, seed=seed)

    def measure(self, x_target: np.ndarray, y_target: Any, *, model: Any, layer: str | int | None, alpha: float,
                n_permutations: int, seed: int | None, max_samples: int) -> Measurement:
        """The check's tests of a target against this reference (see the module docstring).

        The target is subsampled (`seed + 1`) to at most `max_samples` rows; each of the k tests
        that run is decided at alpha / k (Bonferroni; the criteria, not the report's verdict, gate the check).
        Returns a `Measurement` whose `label_test` is the label-shift test (None when not run).
        Raises ValueError for a model or layer other than the snapshot's, another per-sample
        shape, bad labels, or too few rows for any test to reach its level.
        """
        self._check_target(x_target.shape[1:], model, layer)
        yt = self.target_codes(y_target, len(x_target), model)
        rows = subsample_rows(len(x_target), max_samples, None if seed is None else seed + 1)
        counts = None if yt is None else np.bincount(
            yt, minlength=0 if self.label_counts is None else len(self.label_counts))
        target = TargetRows(x_target[rows], None if yt is None else yt[rows], counts, len(x_target))
        return self._measure_rows(target, model=model, layer=layer, alpha=alpha, n_permutations=n_permutations,
                                  seed=seed, max_samples=max_samples)

    def _check_target(self, shape: tuple[int, ...], model: Any, layer: str | int | None = None) -> None:
        """A target's per-sample shape and the model against what the snapshot holds (`check_model`)."""
        if tuple(shape) != self.x.shape[1:]:
            raise ValueError(
                f"x_target has per-sample shape {tuple(shape)}, but the reference has {self.x.shape[1:]}. "
                "Select the same columns, in the same order, as the reference."
            )
        self.check_model(model, layer)

    def check_model(self, model: Any, layer: str | int | None = None) -> None:
        """Refuse a model other than the one the snapshot was made with.

        The snapshot's stored probabilities and features of its reference rows are the model's
        fingerprint: the model's outputs (and features at `layer`) on the first `FINGERPRINT_ROWS`
        stored rows must equal them (up to float round-off). A retrained model (other weights) gives
        other outputs, and its features would be compared with another model's: a false shift.
        Snapshots of every format carry the fingerprint (nothing new is stored).

        Raises:
            ValueError: the snapshot holds no features, the model differs, or `layer` is not the
                snapshot's layer.
        """
        if model is None:
            return
        if self.features is None:
            raise ValueError(
                "A model was given but the snapshot holds no features. Re-create the snapshot with the "
                "same --model, or leave --model out."
            )
        rows = self.x[:FINGERPRINT_ROWS]
        remake = ("Re-create the snapshot with the new model (`shiftkit snapshot --reference REF --model NEW.keras "
                  "--out ref.npz`), or pass the model the snapshot was made with.")
        if self.probs is not None:
            probs = predict_proba(model, rows)
            stored = np.asarray(self.probs[:FINGERPRINT_ROWS])
            if probs.shape != stored.shape or not _same_outputs(probs, stored):
                gap = "" if probs.shape != stored.shape else f" by up to {float(np.abs(probs - stored).max()):.3g}"
                raise ValueError(
                    f"The snapshot was made with a different model: this model's class probabilities on the "
                    f"snapshot's reference rows differ from the stored ones{gap}"
                    + (f" (shape {probs.shape[1:]} vs {stored.shape[1:]})" if probs.shape != stored.shape else "")
                    + f". {remake}")
        fs = FeatureSpace(model, layer)
        self.check_layer(fs.layer_name)
        feats = fs(rows)
        stored = np.asarray(self.features[:FINGERPRINT_ROWS])
        if feats.shape != stored.shape or not _same_outputs(feats, stored):
            raise ValueError(f"The snapshot was made with a different model: this model's features ({fs.layer_name}) "
                             f"on the snapshot's reference rows differ from the stored ones. {remake}")

    def check_layer(self, layer_name: str) -> None:
        """Refuse features read at another layer than the snapshot's (`layer_name`: `FeatureSpace.layer_name`).

        Raises:
            ValueError: the names differ; the message says which layer each is and what to do.
        """
        if self.layer is None or layer_name == self.layer:
            return
        raise ValueError(
            f"The snapshot's features come from layer {self.layer!r}, not {layer_name!r}. Pass the same --layer "
            "(layer=) as for the snapshot, or re-create the snapshot with `shiftkit snapshot` (snapshots made "
            "before shiftkit read a temperature-scaled or BatchNormalization-of-logits classifier at its last "
            "Dense layer's input hold that model's logits).")

    def _label_test_runs(self, has_target_labels: bool, model: Any) -> bool:
        """Whether `measure` runs the label-shift test: reference labels, and target labels or a model to
        predict them (with the snapshot's labelled probabilities)."""
        return self.label_counts is not None and (
            has_target_labels or (model is not None and self.probs is not None and self.y is not None))

    def _measure_rows(self, target: "TargetRows", *, model: Any, layer: str | int | None, alpha: float,
                      n_permutations: int, seed: int | None, max_samples: int) -> Measurement:
        """`measure` on the target's measured rows and class counts (in memory, or streamed)."""
        xt, yt_sub, yt_counts, n_target = target.x, target.y, target.counts, target.n_rows
        has_labels = yt_counts is not None
        if has_labels and self.label_counts is not None:
            self._check_target_classes(yt_counts)
        label_test_runs = self._label_test_runs(has_labels, model)
        test_alpha = alpha / _n_measured_tests(self, has_labels, model)
        n_perm = permutations_for(test_alpha, n_permutations)
        _check_testable(len(self.x), len(xt), test_alpha)
        # the aggregated test (shiftkit's default) around the snapshot's fixed bandwidths, on inputs standardised
        # on the tested rows together: a standardisation fitted on the reference alone is a function of which
        # rows are the reference, which breaks the permutation test's exchangeability (with many columns and
        # few rows it raised the false-alarm rate from 0.07 to 0.30 at alpha 0.05: 40 rows x 300 columns)
        pooled = self.pooled_standardizer(xt)
        input_test = mmd_agg_test(pooled.transform(self.x), pooled.transform(xt), n_permutations=n_perm,
                                  alpha=test_alpha, bandwidths=_around(self.bandwidth), seed=seed, space="input")
        feature_test = layer_name = None
        if model is not None:
            fs = FeatureSpace(model, layer)
            self.check_layer(fs.layer_name)
            ft = fs(xt)
            if ft.shape[1] != self.features.shape[1]:
                raise ValueError(
                    f"The model gives {ft.shape[1]} features but the snapshot holds {self.features.shape[1]}: "
                    "use the model the snapshot was made with."
                )
            feature_test = mmd_agg_test(self.features, ft, n_permutations=n_perm, alpha=test_alpha,
                                        bandwidths=_around(self.feature_bandwidth), seed=seed, space="feature")
            layer_name = fs.layer_name
        # the model's softmax on the measured target rows, once: estimated priors, the label test, the accuracy
        pt = None if model is None or self.probs is None else predict_proba(model, xt)
        labels = label_test = None
        if label_test_runs:
            labels, label_test = self._label_side(yt_counts, pt, n_perm, seed)
        report = ShiftReport(input_test=input_test, feature_test=feature_test, labels=labels, alpha=alpha,
                             n_source=len(self.x), n_target=len(xt), layer=layer_name, seed=seed,
                             standardized=True, scaling=f"{pooled.how_}, on the reference and target rows together",
                             accuracy=self._target_accuracy(model, pt, yt_sub, seed))
        n_reference = self.n_reference or len(self.x)
        subsampled = () if (len(self.x), len(xt)) == (n_reference, n_target) else (
            "mmd_tests", "feature_drift", "diagnosis") + (() if has_labels or labels is None else ("label_proportions",))
        decode = None if self.y is None else self.encoding.decode
        return Measurement(
            report=report, x_source=self.x, x_target=xt,
            y_source=None if decode is None else decode(self.y),
            y_target=None if decode is None or yt_sub is None else decode(yt_sub),
            diagnosis_rows=(np.arange(len(self.x)), np.arange(len(xt))),
            classes=self.classes,
            subsampling=Subsampling(max_samples, seed, n_reference, n_target, len(self.x), len(xt), subsampled,
                                    ("label_proportions",) if has_labels and labels is not None else ()),
            label_test=label_test, feature_names=self.feature_names, class_names=self.class_names,
        )

    def save(self, path: str | os.PathLike) -> str:
        """Write the snapshot as an `.npz` file (plain arrays; loads with `allow_pickle=False`)."""
        path = os.fspath(path)
        arrays: dict[str, Any] = {"x": self.x, "mean": self.mean, "scale": self.scale}
        for name in ("y", "label_counts", "features", "probs"):
            value = getattr(self, name)
            if value is not None:
                arrays[name] = value
        meta = {
            "shiftkit_snapshot": SNAPSHOT_FORMAT,
            "version": self.version,
            "bandwidth": self.bandwidth,
            "feature_bandwidth": self.feature_bandwidth,
            "layer": self.layer,
            "feature_names": list(self.feature_names) if self.feature_names else None,
            "class_names": list(self.class_names) if self.class_names else None,
            "classes": None if self.classes is None else LabelEncoding(self.classes).to_dict()["classes"],
            "scaling": self.scaling,
            "n_reference": self.n_reference,
            "seed": self.seed,
        }
        arrays["shiftkit_meta"] = np.array(json.dumps(meta))
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @staticmethod
    def is_snapshot(arrays: Any) -> bool:
        return "shiftkit_meta" in getattr(arrays, "files", arrays)

    @classmethod
    def from_arrays(cls, arrays: Any, source: str = "snapshot") -> "Reference":
        """Build from the arrays of a loaded snapshot `.npz` (an `NpzFile` or a dict).

        Format 1 snapshots (shiftkit before the floored standardisation) load with a warning: their
        per-feature std is used as the scale, and their labels are codes 0..K-1.
        """
        try:
            meta = json.loads(str(arrays["shiftkit_meta"][()]))
        except (KeyError, ValueError, TypeError):
            raise ValueError(f"{source} is not a shiftkit snapshot (no valid 'shiftkit_meta' entry).") from None
        fmt = meta.get("shiftkit_snapshot")
        if fmt not in _READABLE_FORMATS:
            raise ValueError(
                f"{source} is a snapshot of format {fmt!r}; this shiftkit reads formats "
                f"{list(_READABLE_FORMATS)}. Re-create it with `shiftkit snapshot`."
            )
        files = getattr(arrays, "files", list(arrays))

        def get(name: str) -> Any:
            return np.asarray(arrays[name]) if name in files else None

        counts = None if get("label_counts") is None else get("label_counts").astype(np.int64)
        if fmt == 1:
            warnings.warn(
                f"{source} is a format-1 snapshot: its inputs are standardised by the per-feature std "
                "(no floor for near-constant features; its bandwidth was chosen on them) and its labels are codes "
                "0..K-1. Re-create it with `shiftkit snapshot` for the current standardisation.",
                UserWarning,
                stacklevel=3,
            )
            scale, classes, scaling = get("std"), (None if counts is None else tuple(range(len(counts)))), (
                "centred and scaled per feature by its std (format-1 snapshot)")
        else:
            scale = get("scale")
            classes = None if meta.get("classes") is None else tuple(meta["classes"])
            scaling = str(meta.get("scaling", ""))
        if get("mean") is None or scale is None or get("x") is None:
            raise ValueError(f"{source} is an incomplete shiftkit snapshot (x, mean or scale missing).")
        if counts is not None and (classes is None or len(classes) != len(counts)):
            raise ValueError(f"{source} is an inconsistent snapshot: its class values do not match its class counts.")
        return cls(
            x=get("x"),
            y=None if get("y") is None else get("y").astype(np.int64),
            label_counts=counts,
            mean=get("mean"),
            scale=scale,
            bandwidth=float(meta["bandwidth"]),
            features=get("features"),
            feature_bandwidth=meta.get("feature_bandwidth"),
            probs=get("probs"),
            layer=meta.get("layer"),
            feature_names=tuple(meta["feature_names"]) if meta.get("feature_names") else None,
            class_names=tuple(meta["class_names"]) if meta.get("class_names") else None,
            n_reference=int(meta.get("n_reference", 0)),
            seed=meta.get("seed"),
            version=str(meta.get("version", "?")),
            classes=classes,
            scaling=scaling,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Reference":
        """Read a snapshot written by `save` (never unpickles anything)."""
        path = os.fspath(path)
        check_array_file(path, role="reference snapshot")  # size limits before numpy decompresses
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return cls.from_arrays(arrays, source=repr(path))
        except (OSError, ValueError) as exc:
            if "snapshot" in str(exc):
                raise
            raise ValueError(f"Could not read the snapshot {path!r}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class Criterion:
    """One gate of the check.

    Attributes:
        name: what is measured. value: the measured figure. threshold: the limit.
        passed: whether the target is within the limit.
        direction: how to read it, e.g. "fail when p_value <= alpha".
        detail: one sentence for people.
        warned: within the limit but beyond `warn_threshold` (a config's `[warn]` table).
        warn_threshold: the warning threshold (None: no warning level).
    """

    name: str
    value: float | None
    threshold: float
    passed: bool
    direction: str
    detail: str
    warned: bool = False
    warn_threshold: float | None = None

    @property
    def status(self) -> str:
        """"fail" (beyond the threshold), "warn" (within it, beyond the warning threshold) or "pass"."""
        return "fail" if not self.passed else ("warn" if self.warned else "pass")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclass_to_dict(self), "status": self.status}


@dataclasses.dataclass(frozen=True, eq=False)
class CheckResult:
    """The verdict of a pre-deployment shift check: its criteria on top of one `Analysis`.

    Attributes:
        criteria: every gate, in a fixed order.
        analysis: the `shiftkit.Analysis` of reference vs target the criteria read.
        fail_on: "fail" (only failed criteria fail the check) or "warn" (warnings too).
        notes: sentences on what the check could not do or left out (a gate asked for that these data
            cannot evaluate, rows dropped, the settings' source): in the summary, the JSON and the HTML.
    """

    criteria: tuple[Criterion, ...]
    analysis: Analysis
    fail_on: str = "fail"
    notes: tuple[str, ...] = ()

    @property
    def report(self) -> ShiftReport:
        """The `ShiftReport` of reference vs target."""
        return self.analysis.report

    @property
    def diagnosis(self) -> Any:
        """The `Diagnosis` of the kind of shift (None when it did not run)."""
        return self.analysis.diagnosis

    @property
    def drift(self) -> Any:
        """Per-feature tests for tabular data (None otherwise)."""
        return self.analysis.drift

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[Criterion]:
        """The criteria that fail the check (with `fail_on="warn"`, the warned ones too)."""
        bad = ("fail", "warn") if self.fail_on == "warn" else ("fail",)
        return [c for c in self.criteria if c.status in bad]

    @property
    def warnings(self) -> list[Criterion]:
        return [c for c in self.criteria if c.status == "warn"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "shiftkit_version": __version__,
            "passed": self.passed,
            "fail_on": self.fail_on,
            "failed_criteria": [c.name for c in self.failed],
            "warned_criteria": [c.name for c in self.warnings],
            "criteria": [c.to_dict() for c in self.criteria],
            "notes": list(self.notes),
            "report": self.report.to_dict(include_null=True),
            "diagnosis": jsonable(self.diagnosis),
            "feature_drift": jsonable(self.drift),
            "subsampling": None if self.analysis.subsampling is None else self.analysis.subsampling.to_dict(),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_html(self, *, title: str = "shiftkit pre-deployment check") -> str:
        """The analysis' HTML page with the criteria at its head (`Analysis.to_html`)."""
        return self.analysis.to_html(title=title, check=self)

    def summary(self) -> str:
        lines = [check_headline(self), ""]
        for c in self.criteria:
            value = "-" if c.value is None else f"{c.value:.4g}"
            warn = "" if c.warn_threshold is None else f", warn at {c.warn_threshold:g}"
            lines.append(f"  [{ {'pass': 'ok', 'warn': 'WARN', 'fail': 'FAIL'}[c.status]}] {c.name:<22} {value:>10}  "
                         f"({c.direction}; threshold {c.threshold:g}{warn}) {c.detail}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.diagnosis is not None:
            lines.append("")
            kinds = ", ".join(self.diagnosis.kinds) or "none"
            untestable = getattr(self.diagnosis, "untestable", ())
            if untestable:
                kinds += f" (NOT TESTABLE on these data: {', '.join(untestable)})"
            lines.append(f"  kind of shift: {kinds}; "
                         f"recommended: {self.diagnosis.recommendation}. {self.diagnosis.reason}")
        return "\n".join(lines)


def parse_target_priors(text: str, name: str = "target_priors") -> list[float] | dict[str, float]:
    """Known target class proportions typed as text: 'CLASS=P,...' (a mapping by class) or 'P,...' (in class order).

    Example:
        >>> parse_target_priors("benign=0.92, malignant=0.08")
        {'benign': 0.92, 'malignant': 0.08}
        >>> parse_target_priors("0.92,0.08")
        [0.92, 0.08]
    """
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    try:
        if items and all("=" in t for t in items):
            return checked_priors({k.strip(): float(v) for k, v in (t.split("=", 1) for t in items)}, name)
        if items:
            return checked_priors([float(t) for t in items], name)
    except ValueError as exc:
        if str(exc).startswith(name):
            raise
    raise ValueError(f"{name} {text!r} is not a list of proportions. Give e.g. benign=0.92,malignant=0.08 "
                     "(by class) or 0.92,0.08 (in class order).")


#: How far proportions may sum from 1 (rounding, e.g. 0.333 x 3).
PRIORS_TOLERANCE = 0.01


def checked_priors(priors: Any, name: str = "target_priors") -> Any:
    """Known class proportions checked, as given (a sequence or a mapping {class: value}).

    Values at most 1 are proportions and must sum to 1 within `PRIORS_TOLERANCE`; whole numbers (some
    above 1) are counts, normalised to proportions. Anything else (negative, not finite, a mix, all zero)
    is refused.

    Raises:
        ValueError: the message names the values, their sum and the fix.
    """
    keys = list(priors) if isinstance(priors, dict) else None
    try:
        values = np.asarray(list(priors.values()) if keys is not None else list(priors), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers (proportions or counts); got {priors!r}.") from None
    shown = priors if keys is not None else values.tolist()
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite numbers, one per class; got {shown}.")
    if np.any(values < 0):
        raise ValueError(f"{name} has negative values ({shown}); give proportions that sum to 1 or class counts.")
    total = float(values.sum())
    if np.all(values <= 1):
        if abs(total - 1) > PRIORS_TOLERANCE:
            raise ValueError(
                f"{name} {shown} are proportions that sum to {total:.4g}, not 1: give proportions that sum to 1 "
                "(e.g. 0.92,0.08), or class counts as whole numbers (e.g. 920,80), which are normalised.")
    elif not np.all(values == np.round(values)):
        raise ValueError(f"{name} {shown} mixes proportions (<= 1) and counts (> 1): give proportions that sum to 1 "
                         "(e.g. 0.92,0.08), or class counts as whole numbers (e.g. 920,80).")
    normalised = (values / total).tolist()
    return dict(zip(keys, normalised)) if keys is not None else normalised


def priors_in_class_order(priors: Any, classes: Sequence[Any] | None, name: str = "target_priors") -> Any:
    """Known target class proportions as a vector in the order of `classes` (a mapping is keyed by class
    value, compared as text: what a command line or a text box gives); a sequence is returned as given,
    checked for one value per class when `classes` are known. `name`: the argument's name in messages."""
    if not isinstance(priors, dict):
        if classes is not None and len(priors) != len(classes):
            raise ValueError(
                f"{name} has {len(priors)} values but there are {len(classes)} classes "
                f"{[str(c) for c in classes][:10]}: give one proportion per class, in that order (or name them, "
                f"e.g. {classes[0]}=0.9).")
        return priors
    if classes is None:
        raise ValueError(f"{name} by class needs a labelled reference (its classes name the proportions); "
                         "pass a list in the model's output order instead.")
    names = [str(c) for c in classes]
    given = {str(k): v for k, v in priors.items()}
    unknown = sorted(set(given) - set(names))
    missing = [n for n in names if n not in given]
    if unknown or missing:
        raise ValueError(
            f"{name} names {'unknown class(es) ' + str(unknown) if unknown else ''}"
            f"{' and ' if unknown and missing else ''}{'no proportion for ' + str(missing) if missing else ''}; "
            f"give one proportion per reference class: {names}, e.g. {names[0]}=0.9.")
    return [given[n] for n in names]


def check_shift(
    reference: Reference | Any,
    x_target: Any,
    y_target: Any = None,
    *,
    y_reference: Any = None,
    model: Any = None,
    layer: str | int | None = None,
    alpha: float = 0.01,
    max_label_shift: float = 0.1,
    max_imbalance_ratio: float | None = None,
    n_permutations: int = 1000,
    max_samples: int = 2000,
    seed: int | None = 0,
    diagnose_shift: bool = True,
    feature_names: Any = None,
    class_names: Any = None,
    bbsd: bool = False,
    min_estimated_accuracy: float | None = None,
    max_drifted_share: float | None = None,
    warn: dict[str, float] | None = None,
    fail_on: str = "fail",
    target_priors: Any = None,
) -> CheckResult:
    """Gate a target data set against a reference: pass, or fail with the criteria that failed.

    The measurement is `shiftkit.analyze(reference, x_target, ...)` (`Reference.measure`: the
    check's tests, per-feature drift, diagnosis); this function adds the criteria on top of it.

    Args:
        reference: a `Reference` (snapshot), or the reference inputs themselves.
        x_target: target inputs. y_target: optional target labels, with the reference's class
            values (a class the reference does not have is an error).
        y_reference: reference labels when `reference` is raw inputs (any class values).
        model: optional Keras model (feature-space test, estimated target priors).
        layer: feature layer of the model.
        alpha: family-wise level of the check's tests (each of the k that run is decided at
            alpha / k, Bonferroni).
        max_label_shift: largest tolerated total variation between class proportions.
        max_imbalance_ratio: largest tolerated max/min class ratio in the target (None: no gate).
        n_permutations: the least number of permutations of each test (raised to what its level
            needs).
        max_samples: each domain is subsampled (seeded) to at most this many rows.
        seed: seed of every random step.
        diagnose_shift: also name the kind of shift and the adapter that fits (`diagnose`).
        feature_names: column names, for the per-feature table. class_names: class names.
        bbsd: add the black-box shift detection criterion (KS tests on the model's softmax
            outputs, Bonferroni over them; one more test in the alpha / k split). Needs `model`
            (a classifier) and, with a snapshot, one made with that model.
        min_estimated_accuracy: fail when the model's accuracy on the target is below this: measured
            with `y_target`, else estimated without labels (`AccuracyEstimator`, fitted on the
            reference's stored probabilities and labels, the estimator chosen from the diagnosed kind
            of shift; its interval is in the detail). Needs `model` and labelled reference rows.
        max_drifted_share: fail when more than this share of the features drifted by their own
            tests (`feature_drift`, Benjamini-Hochberg at alpha; tabular data only: no criterion for
            images or sequences).
        warn: warning thresholds by name (`shiftkit.check_config.WARN_KEYS`): a criterion within its
            limit but beyond its warning threshold is "warn".
        fail_on: "fail" (default) or "warn": warnings fail the check too.
        target_priors: the target's class proportions when known from outside the model (a
            registry's prevalence), for the estimated accuracy (`AccuracyEstimator.estimate`): a
            sequence in the reference's class order, or a mapping {class value: proportion} over
            every class: proportions summing to 1 (within `PRIORS_TOLERANCE`), or whole-number class
            counts (normalised; `checked_priors`). Needs `model` and labelled reference rows.
        A `shiftkit.check_config.CheckConfig` (a TOML file, presets) holds these settings:
        `check_shift(ref, x, **config.check_kwargs())`.

    Returns:
        A `CheckResult`.

    Raises:
        ValueError / TypeError: invalid inputs, labels or settings; a target class the reference
            lacks; too few rows for the MMD tests to ever reach their level.
    """
    alpha = check_alpha(alpha)
    seed = check_seed(seed)
    if target_priors is not None:
        target_priors = checked_priors(target_priors, "target_priors (--target-priors)")
        if model is None:
            raise ValueError("target_priors (--target-priors) gives the target's class proportions for the model's "
                             "estimated accuracy: pass the model (--model) and a labelled reference, or leave it out.")
    if fail_on not in ("fail", "warn"):
        raise ValueError(f"fail_on must be 'fail' or 'warn'; got {fail_on!r}.")
    if max_drifted_share is not None:
        max_drifted_share = check_real(max_drifted_share, "max_drifted_share", low=0.0, high=1.0, example=0.3)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
    max_label_shift = check_real(max_label_shift, "max_label_shift", low=0.0, high=1.0, example=0.1)
    if max_imbalance_ratio is not None:
        max_imbalance_ratio = check_real(max_imbalance_ratio, "max_imbalance_ratio", low=1.0, allow_inf=True,
                                         example=3)
    if bbsd:
        if model is None:
            raise ValueError("The BBSD criterion (bbsd=True, --bbsd) tests the model's softmax outputs: pass the "
                             "model (--model).")
        check_classifier(model)
    if min_estimated_accuracy is not None:
        min_estimated_accuracy = check_real(min_estimated_accuracy, "min_estimated_accuracy", low=0.0, high=1.0,
                                            example=0.8)
        if model is None:
            raise ValueError("The accuracy criterion (min_estimated_accuracy, --min-estimated-accuracy) needs the "
                             "model (--model).")
        check_classifier(model)
    if not isinstance(reference, Reference):
        reference, x_target = align_columns(reference, x_target, ("reference", "x_target"))
        if feature_names is None:  # a DataFrame's own column names
            feature_names = column_names(reference)
        reference = Reference.from_data(reference, y_reference, model=model, layer=layer,
                                        max_samples=max_samples, seed=seed, feature_names=feature_names,
                                        class_names=class_names)
    elif not isinstance(x_target, StreamedTarget):
        x_target = select_columns(x_target, reference.feature_names, ("the reference", "x_target"))
    if target_priors is not None:
        target_priors = priors_in_class_order(target_priors, reference.classes)
    elif bbsd and reference.probs is None:
        raise ValueError("The BBSD criterion needs the reference's softmax, but the snapshot holds none: re-create "
                         "it with `shiftkit snapshot --model` (the same model), or leave --bbsd out.")
    if isinstance(x_target, StreamedTarget):
        target = _streamed_rows(reference, x_target, y_target, model, layer, max_samples, seed)
        source: SourceSummary = _StreamedSource(reference, target)
        has_target_labels = target.counts is not None
    else:
        xt = check_array(x_target, "x_target")
        source, target, has_target_labels = reference, None, y_target is not None
    warn = dict(warn or {})
    unknown = sorted(set(warn) - {key for key, _ in _WARN_RULES.values()})
    if unknown:
        raise ValueError(f"warn has unknown key(s) {unknown}; known: {sorted({k for k, _ in _WARN_RULES.values()})}.")
    drift_wanted = max_drifted_share is not None or "drifted_share" in warn
    analysis_perm = n_permutations
    extra = int(bool(bbsd)) + int(drift_wanted)
    if extra:  # more tests in the split (BBSD, the drifted-features rule): every test must reach alpha / (k + extra)
        level = alpha / (_n_measured_tests(reference, has_target_labels, model) + extra)
        n_measured = len(target.x) if target is not None else min(len(xt), max_samples)
        _check_testable(len(reference.x), n_measured, level)
        analysis_perm = permutations_for(level, n_permutations)
    analysis = analyze(source, xt if target is None else target.x, y_target=y_target if target is None else None,
                       model=model, layer=layer, alpha=alpha, n_permutations=analysis_perm, seed=seed,
                       max_samples=max_samples, diagnose_shift=diagnose_shift,
                       diagnosis_permutations=min(n_permutations, 500), accuracy_target_priors=target_priors)
    if target is None:  # the target rows `Reference.measure` tested (seed + 1), their codes and every row's counts
        rows = subsample_rows(len(xt), max_samples, None if seed is None else seed + 1)
        codes = None
        if y_target is not None and max_imbalance_ratio is not None and analysis.label_test is None:
            codes = reference.target_codes(y_target, len(xt), model)
        target = TargetRows(xt[rows], None if codes is None else codes[rows],
                            None if codes is None else np.bincount(codes), len(xt))
    if bbsd:  # on the model's softmax on the measured target rows
        result = bbsd_from_probabilities(reference.probs, predict_proba(model, target.x), alpha=alpha)
        analysis = dataclasses.replace(analysis, report=dataclasses.replace(analysis.report, bbsd=result))
    # Every test the gate decides shares alpha (Bonferroni): the MMD tests, the label test, BBSD, and the
    # drifted-features rule (decided at alpha / k on its Benjamini-Hochberg-adjusted p-values), so a target
    # without shift fails with probability at most alpha. The embedded report is decided at the same levels.
    report = analysis.report
    drift_rule = drift_wanted and analysis.drift is not None
    n_tests = len(report.family) + int(analysis.label_test is not None) + int(drift_rule)
    notes: list[str] = []
    # A warning threshold alone asks for its criterion, with a fail threshold that never fails (as for the
    # drifted features): the criterion is shown, and warns.
    imbalance_limit = max_imbalance_ratio
    if imbalance_limit is None and "imbalance_ratio" in warn:
        imbalance_limit = float(np.finfo(np.float64).max)
    criteria = _criteria(analysis, target.counts, max_label_shift, imbalance_limit, alpha, n_tests)
    names = {c.name for c in criteria}
    if analysis.label_test is None and reference.label_counts is not None:
        notes.append("label shift: not evaluated: the target has no labels and no model was given to estimate its "
                     "class proportions (give the target's label column, or --model).")
    if imbalance_limit is not None and "class imbalance" not in names:
        notes.append("class imbalance: not evaluated: the target has no labels and no model was given to estimate "
                     "its class proportions (give the target's label column, or --model).")
    if drift_wanted and analysis.drift is None:
        notes.append("drifted features: not evaluated: the per-feature tests run on tabular data (one value per "
                     "column), and these inputs have more dimensions.")
    accuracy_minimum = min_estimated_accuracy
    if accuracy_minimum is None and "estimated_accuracy" in warn:
        if model is None:
            raise ValueError("warn estimated_accuracy asks for the accuracy criterion, which needs the model "
                             "(--model).")
        accuracy_minimum = 0.0
    if accuracy_minimum is not None:
        criteria.append(_accuracy_criterion(reference, analysis, accuracy_minimum))
    if drift_rule:
        drift = analysis.drift.at_level(alpha / n_tests)
        share = drift.n_shifted / max(1, len(drift.tests))
        limit = 1.0 if max_drifted_share is None else float(max_drifted_share)
        criteria.append(Criterion(
            "drifted features", share, limit, share <= limit, "fail when the share of drifted features > threshold",
            f"{drift.n_shifted} of {len(drift.tests)} features drifted by their own tests ({drift.correction} at "
            f"{drift.alpha:g}{_split_text(alpha, n_tests)})"
            + (f": {drift.shifted_features[:10]}" if drift.n_shifted else "") + ".",
        ))
        analysis = dataclasses.replace(analysis, drift=drift)
    if n_tests > len(report.family):  # the report's Holm family gets the family's share of alpha
        analysis = dataclasses.replace(analysis, report=dataclasses.replace(
            report, alpha=alpha * len(report.family) / n_tests))
    criteria = [_with_warning(c, warn) for c in criteria]
    if "label_shift" in warn and not any(c.name == "label shift" for c in criteria):
        notes.append("warn label_shift: no label-shift criterion to warn on (see above).")
    return CheckResult(criteria=tuple(criteria), analysis=analysis, fail_on=fail_on, notes=tuple(notes))


#: Which warning threshold applies to which criterion, and on which side the value warns.
_WARN_RULES = {
    "input-space MMD": ("p_value", "below"), "feature-space MMD": ("p_value", "below"),
    "BBSD (softmax)": ("p_value", "below"), "label shift": ("label_shift", "above"),
    "class imbalance": ("imbalance_ratio", "above"), "drifted features": ("drifted_share", "above"),
    "target accuracy": ("estimated_accuracy", "below"), "estimated accuracy": ("estimated_accuracy", "below"),
}


def _with_warning(c: Criterion, warn: dict[str, float]) -> Criterion:
    key, side = _WARN_RULES.get(c.name, (None, None))
    if key is None or key not in warn or c.value is None:
        return c
    limit = float(warn[key])
    beyond = c.value <= limit if side == "below" else c.value > limit
    return dataclasses.replace(c, warned=bool(c.passed and beyond), warn_threshold=limit)


#: Stored reference rows on which a model's outputs are compared with a snapshot's (`Reference.check_model`).
FINGERPRINT_ROWS = 32


def _same_outputs(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two models' outputs on the same rows agree up to float32 round-off (batching, kernels; a
    snapshot made on a GPU with TF32 matrix products and checked on a CPU differs by ~1e-3 relative, a
    retrained model by orders of magnitude more)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(b).max(initial=0.0)))
    return bool(np.allclose(a, b, rtol=1e-2, atol=1e-3 * scale))


def _check_testable(n_reference: int, n_target: int, level: float) -> None:
    """Refuse sizes at which an MMD permutation test at `level` can never reject (no split is that rare)."""
    min_p = min_attainable_p(n_reference, n_target)
    if min_p > level:
        raise ValueError(
            f"Not testable: with {n_reference} reference and {n_target} target rows no split of the pooled rows "
            f"is rarer than {min_p:.3g}, so an MMD test at level {level:.3g} can never fail. Pass more rows "
            "or a larger alpha."
        )


def _around(bandwidth: float) -> list[float]:
    """The aggregated test's bandwidths around a snapshot's median bandwidth (`DEFAULT_AGG_FACTORS` times it)."""
    return [float(bandwidth) * f for f in DEFAULT_AGG_FACTORS]


def _accuracy_criterion(reference: Reference, analysis: Analysis, minimum: float) -> Criterion:
    """The model's target accuracy (measured with target labels, else estimated) against `minimum`.

    The figure is the report's (`Reference.measure` computes it on the measured target rows; `analyze`
    re-chooses the estimator for the diagnosed kinds of shift).
    """
    direction = "fail when accuracy < threshold"
    acc = analysis.report.accuracy
    if acc is None:
        raise ValueError("The accuracy criterion estimates the target accuracy from the reference's labelled "
                         "probabilities: re-create the snapshot with --model and --label-column, or give the target's "
                         "labels.")
    if acc.measured:
        return Criterion("target accuracy", acc.accuracy, minimum, acc.accuracy >= minimum, direction,
                         f"measured on the target's labels ({acc.n_target} rows).")
    if acc.estimate is None:
        raise ValueError(f"The target accuracy could not be estimated: {acc.reason}")
    est = acc.estimate
    return Criterion(
        "estimated accuracy", est.accuracy, minimum, est.accuracy >= minimum, direction,
        f"estimated without target labels by {est.method} ({est.reason}); interval [{est.lower:.3f}, "
        f"{est.upper:.3f}] (bootstrap widened to the plausible estimators {list(est.plausible)}); reference "
        f"accuracy {est.source_accuracy:.3f}. An estimate, not a measurement: see shiftkit.shift.accuracy.",
    )


def _n_measured_tests(reference: Reference, has_target_labels: bool, model: Any) -> int:
    """The number of tests `Reference.measure` runs (the same rule as there)."""
    return (1 if model is None else 2) + int(reference._label_test_runs(has_target_labels, model))


class _StreamedSource(SourceSummary):
    """A reference whose `measure` reads a streamed target's rows and counts (not the array `analyze` passes,
    which is the same measured rows)."""

    def __init__(self, reference: Reference, target: TargetRows) -> None:
        self.reference, self.target = reference, target

    def measure(self, x_target: np.ndarray, y_target: Any, *, model: Any, layer: str | int | None, alpha: float,
                n_permutations: int, seed: int | None, max_samples: int) -> Measurement:
        return self.reference._measure_rows(self.target, model=model, layer=layer, alpha=alpha,
                                            n_permutations=n_permutations, seed=seed, max_samples=max_samples)


def _streamed_rows(reference: Reference, streamed: StreamedTarget, y_target: Any, model: Any, layer: str | int | None,
                   max_samples: int, seed: int | None) -> TargetRows:
    """A streamed target as the rows a check measures, after checking it was scanned for this check."""
    if y_target is not None:
        raise ValueError("y_target was given with a streamed target: its labels come from its label column "
                         "(scan_target(label_column=...)); leave y_target out.")
    if (streamed.max_samples, streamed.seed) != (max_samples, seed):
        raise ValueError(
            f"The streamed target was sampled with max_samples={streamed.max_samples}, seed={streamed.seed}, but "
            f"the check runs with max_samples={max_samples}, seed={seed}: scan it with the check's settings.")
    if streamed.feature_names is not None and reference.feature_names is not None and \
            tuple(streamed.feature_names) != tuple(reference.feature_names):
        raise ValueError("The streamed target's columns are not the reference's: scan it against this reference.")
    reference._check_target(streamed.x.shape[1:], model, layer)
    if streamed.label_counts is not None and reference.label_counts is not None and \
            len(streamed.label_counts) != len(reference.label_counts):
        raise ValueError("The streamed target's classes are not the reference's: scan it against this reference.")
    return TargetRows(np.asarray(streamed.x, dtype=np.float64), streamed.y, streamed.label_counts, streamed.n_rows)


def _split_text(alpha: float, n_tests: int) -> str:
    return "" if n_tests == 1 else f", Bonferroni: alpha={alpha:g} split over {n_tests} tests"


def _criteria(
    analysis: Analysis, yt_counts: np.ndarray | None, max_label_shift: float, max_imbalance_ratio: float | None,
    alpha: float, n_tests: int,
) -> list[Criterion]:
    """The check's gates over an analysis of the reference (its tests decided at alpha / n_tests)."""
    report = analysis.report
    test_alpha = alpha / n_tests
    bonferroni = _split_text(alpha, n_tests)
    direction = f"fail when p_value <= {test_alpha:g}{bonferroni}"
    test = report.input_test.at_level(test_alpha)
    n_perm = test.n_permutations
    criteria = [Criterion(
        "input-space MMD", test.p_value, test_alpha, not test.is_shift, direction,
        f"MMD^2 {test.statistic:.4g} (normalized {test.normalized:.3g}, threshold "
        f"{threshold_text(test.threshold)}); {n_perm} permutations; inputs {report.scaling or 'standardised on the reference'}.",
    )]
    if report.feature_test is not None:
        test = report.feature_test.at_level(test_alpha)
        criteria.append(Criterion(
            "feature-space MMD", test.p_value, test_alpha, not test.is_shift, direction,
            f"MMD^2 {test.statistic:.4g} in {report.layer} (normalized {test.normalized:.3g}); "
            f"{n_perm} permutations.",
        ))
    if report.bbsd is not None:
        b = report.bbsd.at_level(test_alpha)
        shifted = list(b.shifted_outputs)
        criteria.append(Criterion(
            "BBSD (softmax)", b.p_value, test_alpha, not b.is_shift, direction,
            f"{b.description}: largest KS statistic {b.statistic:.3g} (p-values corrected over the outputs); "
            + (f"outputs with p <= {b.threshold:.3g}: {shifted}; " if shifted else "")
            + f"{b.n_source} reference vs {b.n_target} target rows.",
        ))
    names = analysis.class_names
    labels, label_test = report.labels, analysis.label_test
    if label_test is not None:
        tv = labels.distance.total_variation
        significant = label_test.p_value <= test_alpha
        tested_on = "class labels" if labels.target_from == "labels" else "the model's predicted classes"
        if label_test.min_p_value > test_alpha:
            tested_on += f" (NOT TESTABLE at {test_alpha:g}: too few rows; this criterion cannot fail)"
        criteria.append(Criterion(
            "label shift", tv, float(max_label_shift), not (significant and tv > max_label_shift),
            f"fail when total variation > threshold and the label-shift test's p_value <= {test_alpha:g}{bonferroni}",
            f"class proportions reference {_fmt_props(names, labels.source_proportions)} vs target "
            f"{_fmt_props(names, labels.target_proportions)} ({labels.target_from}); permutation chi-square "
            f"test on {tested_on}: p={label_test.p_value:.3g} ({label_test.n_permutations} permutations).",
        ))
    if max_imbalance_ratio is None or (label_test is None and yt_counts is None):
        return criteria
    if label_test is not None:
        q = labels.target_proportions
        ratio = float(q.max() / q.min()) if q.min() > 0 else float("inf")
        over = f"the reference's classes {list(names or ())[:20]}"
    else:
        present = np.asarray(yt_counts)[np.asarray(yt_counts) > 0]  # class_imbalance of the codes: the classes seen
        ratio, over = class_imbalance_from_counts(present).imbalance_ratio, "the target's classes"
    criteria.append(Criterion("class imbalance", ratio, float(max_imbalance_ratio), ratio <= max_imbalance_ratio,
                              "fail when max/min class ratio > threshold",
                              f"target imbalance ratio {ratio:.3g} over {over}."))
    return criteria


def _fmt_props(names: Sequence[str] | None, values: np.ndarray) -> str:
    vals = np.asarray(values, dtype=np.float64).tolist()
    keys = list(names) if names is not None and len(names) == len(vals) else [str(k) for k in range(len(vals))]
    return "{" + ", ".join(f"{k}: {v:.3f}" for k, v in zip(keys, vals)) + "}"
