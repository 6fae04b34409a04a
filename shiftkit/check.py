"""The pre-deployment shift check: a reference snapshot, criteria with thresholds, one verdict.

A team validates a model on a *reference* set (the source), then, before the model goes live on a new
site, runs `shiftkit check` on the new site's data (the *target*). The check fails when the target
has moved beyond what the model was validated on. Each criterion carries its value, its threshold
and its direction, and the verdict is computed once here and rendered by the CLI, the JSON and the
HTML report alike.

Criteria (each can fail the check):
    * input-space MMD test: fails when p <= alpha;
    * feature-space MMD test (with a model): fails when p <= alpha;
    * label shift: total variation between the reference class proportions and the target's (true
      labels, or estimated from the model's probabilities with calibrated EM) above
      `max_label_shift`;
    * class imbalance (when `max_imbalance_ratio` is given): the target's max/min class ratio above it.

`Reference` (saved by `shiftkit snapshot`) holds what a later check needs, so CI needs neither the
whole source set nor its labels: a seeded subsample of the reference (at most `max_samples` rows), the
standardisation statistics and class counts of the *whole* reference, the kernel bandwidths, the
model's features and probabilities on the subsample (with the subsample's labels, for estimating
target priors), and the library version. A check against a snapshot computes exactly what a check
against the full reference computes, because the full-reference check draws the same subsample.

Choices written down: the MMD bandwidths are fixed on the reference alone (median heuristic over
the reference subsample; in feature space, over the reference features), as drift detectors
configure themselves on their reference, so every target is measured with the same kernel; inputs are
standardised with the whole reference's mean and standard deviation.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from shiftkit._json import dataclass_to_dict, jsonable
from shiftkit._validation import (
    check_alpha,
    check_array,
    check_labels,
    check_positive_int,
    check_seed,
)
from shiftkit._version import __version__
from shiftkit.shift.kernels import median_heuristic
from shiftkit.shift.labels import (
    class_imbalance,
    estimate_target_priors,
    label_shift_distance,
    ratios_from_proportions,
)
from shiftkit.shift.mmd import mmd_test
from shiftkit.shift.report import LabelShiftSummary, ShiftReport

__all__ = ["Reference", "Criterion", "CheckResult", "check_shift", "SNAPSHOT_FORMAT"]

#: Format version of snapshot files; bumped on any incompatible change.
SNAPSHOT_FORMAT = 1


def _subsample_rows(n: int, max_samples: int, seed: int | None) -> np.ndarray:
    if n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))


@dataclasses.dataclass(frozen=True, eq=False)
class Reference:
    """What a shift check needs to know about the reference (source) data.

    Attributes:
        x: seeded subsample of the reference inputs.
        y: labels of that subsample (None without labels).
        label_counts: class counts of the whole reference (None without labels).
        mean, std: per-feature statistics of the whole reference (std 0 replaced by 1).
        bandwidth: input-space kernel bandwidth (median heuristic on the standardised subsample).
        features: the model's features on the subsample (None without a model).
        feature_bandwidth: feature-space bandwidth (None without a model).
        probs: the model's class probabilities on the subsample (None without a model).
        layer: the feature layer used.
        feature_names: column names, when known. class_names: class names, when known.
        n_reference: size of the whole reference. seed: the subsampling seed.
        version: shiftkit version that made it.
    """

    x: np.ndarray
    y: np.ndarray | None
    label_counts: np.ndarray | None
    mean: np.ndarray
    std: np.ndarray
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

    @classmethod
    def from_data(
        cls,
        x: Any,
        y: Any = None,
        *,
        model: Any = None,
        layer: str | int | None = None,
        max_samples: int = 2000,
        seed: int | None = 0,
        feature_names: Any = None,
        class_names: Any = None,
    ) -> "Reference":
        """Summarise reference data (and a model's view of it) for later checks.

        Args:
            x: reference inputs `(n, ...)`. y: optional reference labels.
            model: optional Keras model (features and probabilities are stored).
            layer: feature layer of the model (default: the input of the output head).
            max_samples: size of the stored subsample.
            seed: subsampling seed.
            feature_names: optional column names. class_names: optional class names.
        """
        x = check_array(x, "reference x")
        max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
        seed = check_seed(seed)
        y_all = None
        if y is not None:
            y_all = check_labels(y, "reference y")
            if len(y_all) != len(x):
                raise ValueError(f"reference y has {len(y_all)} labels but reference x has {len(x)} rows.")
        flat = x.reshape(len(x), -1)
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        rows = _subsample_rows(len(x), max_samples, seed)
        xs = x[rows]
        bw = median_heuristic((xs.reshape(len(xs), -1) - mean) / std, seed=seed)
        feats = probs = None
        fbw = None
        layer_name = None
        if model is not None:
            from shiftkit.shift.features import FeatureSpace, predict_proba

            fs = FeatureSpace(model, layer)
            feats = fs(xs)
            fbw = median_heuristic(feats, seed=seed)
            layer_name = fs.layer_name
            probs = predict_proba(model, xs)
        counts = None
        if y_all is not None:
            n_classes = int(y_all.max()) + 1
            if probs is not None:
                n_classes = max(n_classes, probs.shape[1])
            counts = np.bincount(y_all, minlength=n_classes)
        return cls(
            x=xs,
            y=None if y_all is None else y_all[rows],
            label_counts=counts,
            mean=mean,
            std=std,
            bandwidth=float(bw),
            features=feats,
            feature_bandwidth=None if fbw is None else float(fbw),
            probs=probs,
            layer=layer_name,
            feature_names=None if feature_names is None else tuple(str(n) for n in feature_names),
            class_names=None if class_names is None else tuple(str(n) for n in class_names),
            n_reference=len(x),
            seed=seed,
        )

    @property
    def label_distribution(self) -> np.ndarray | None:
        return None if self.label_counts is None else self.label_counts / self.label_counts.sum()

    def save(self, path: str | os.PathLike) -> str:
        """Write the snapshot as an `.npz` file (plain arrays; loads with `allow_pickle=False`)."""
        path = os.fspath(path)
        arrays: dict[str, Any] = {"x": self.x, "mean": self.mean, "std": self.std}
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
        """Build from the arrays of a loaded snapshot `.npz` (an `NpzFile` or a dict)."""
        try:
            meta = json.loads(str(arrays["shiftkit_meta"][()]))
        except (KeyError, ValueError, TypeError):
            raise ValueError(f"{source} is not a shiftkit snapshot (no valid 'shiftkit_meta' entry).") from None
        if meta.get("shiftkit_snapshot") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"{source} is a snapshot of format {meta.get('shiftkit_snapshot')!r}; this shiftkit reads "
                f"format {SNAPSHOT_FORMAT}. Re-create it with `shiftkit snapshot`."
            )
        files = getattr(arrays, "files", list(arrays))

        def get(name: str) -> Any:
            return np.asarray(arrays[name]) if name in files else None

        return cls(
            x=get("x"),
            y=None if get("y") is None else get("y").astype(np.int64),
            label_counts=None if get("label_counts") is None else get("label_counts").astype(np.int64),
            mean=get("mean"),
            std=get("std"),
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
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Reference":
        """Read a snapshot written by `save` (never unpickles anything)."""
        path = os.fspath(path)
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
    """

    name: str
    value: float | None
    threshold: float
    passed: bool
    direction: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


@dataclasses.dataclass(frozen=True, eq=False)
class CheckResult:
    """The verdict of a pre-deployment shift check, with every criterion and the underlying report.

    Attributes:
        criteria: every gate, in a fixed order.
        report: the `ShiftReport` of reference vs target.
        diagnosis: `Diagnosis` of the kind of shift (None when it could not run).
        drift: per-feature tests for tabular data (None otherwise).
    """

    criteria: tuple[Criterion, ...]
    report: ShiftReport
    diagnosis: Any = None
    drift: Any = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def failed(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": "1.0",
            "shiftkit_version": __version__,
            "passed": self.passed,
            "failed_criteria": [c.name for c in self.failed],
            "criteria": [c.to_dict() for c in self.criteria],
            "report": self.report.to_dict(include_null=True),
            "diagnosis": jsonable(self.diagnosis),
            "feature_drift": jsonable(self.drift),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def summary(self) -> str:
        head = "PASS: the target is within what the model was validated on." if self.passed else (
            "FAIL: shift beyond the thresholds: " + ", ".join(c.name for c in self.failed) + "."
        )
        lines = [head, ""]
        for c in self.criteria:
            value = "-" if c.value is None else f"{c.value:.4g}"
            lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name:<22} {value:>10}  ({c.direction}; "
                         f"threshold {c.threshold:g}) {c.detail}")
        if self.diagnosis is not None:
            lines.append("")
            lines.append(f"  kind of shift: {', '.join(self.diagnosis.kinds) or 'none'}; "
                         f"recommended: {self.diagnosis.recommendation}. {self.diagnosis.reason}")
        return "\n".join(lines)


def _label_summary(ref: Reference, q: np.ndarray, target_from: str, yt: np.ndarray | None, estimate: Any) -> LabelShiftSummary:
    p = ref.label_distribution
    k = max(len(p), len(q))
    p = np.pad(p, (0, k - len(p)))
    q = np.pad(q, (0, k - len(q)))
    full_ref_labels = np.repeat(np.arange(len(ref.label_counts)), ref.label_counts)
    return LabelShiftSummary(
        source_proportions=p,
        target_proportions=q,
        target_from=target_from,
        ratios=ratios_from_proportions(p, q),
        distance=label_shift_distance(p, q),
        source_imbalance=class_imbalance(full_ref_labels, n_classes=k),
        target_imbalance=None if yt is None else class_imbalance(yt, n_classes=k),
        prior_estimate=estimate,
    )


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
) -> CheckResult:
    """Gate a target data set against a reference: pass, or fail with the criteria that failed.

    Args:
        reference: a `Reference` (snapshot), or the reference inputs themselves.
        x_target: target inputs. y_target: optional target labels.
        y_reference: reference labels when `reference` is raw inputs.
        model: optional Keras model (feature-space test, estimated target priors).
        layer: feature layer of the model.
        alpha: level of the MMD tests (fail when p <= alpha).
        max_label_shift: largest tolerated total variation between class proportions.
        max_imbalance_ratio: largest tolerated max/min class ratio in the target (None: no gate).
        n_permutations: permutations of each MMD test.
        max_samples: each domain is subsampled (seeded) to at most this many rows.
        seed: seed of every random step.
        diagnose_shift: also name the kind of shift and the adapter that fits (`diagnose`).
        feature_names: column names, for the per-feature table. class_names: class names.

    Returns:
        A `CheckResult`.
    """
    alpha = check_alpha(alpha)
    seed = check_seed(seed)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
    if not isinstance(max_label_shift, (int, float)) or not 0 <= max_label_shift <= 1:
        raise ValueError(f"max_label_shift must be a total variation in [0, 1]; got {max_label_shift!r}.")
    if max_imbalance_ratio is not None and (
        not isinstance(max_imbalance_ratio, (int, float)) or max_imbalance_ratio < 1
    ):
        raise ValueError(f"max_imbalance_ratio must be a number >= 1; got {max_imbalance_ratio!r}.")
    if not isinstance(reference, Reference):
        reference = Reference.from_data(reference, y_reference, model=model, layer=layer,
                                        max_samples=max_samples, seed=seed, feature_names=feature_names,
                                        class_names=class_names)
    elif model is not None and reference.features is None:
        raise ValueError(
            "A model was given but the snapshot holds no features. Re-create the snapshot with the "
            "same --model, or leave --model out."
        )
    ref = reference
    xt = check_array(x_target, "x_target")
    if xt.shape[1:] != ref.x.shape[1:]:
        raise ValueError(
            f"x_target has per-sample shape {xt.shape[1:]}, but the reference has {ref.x.shape[1:]}. "
            "Select the same columns, in the same order, as the reference."
        )
    yt = None
    if y_target is not None:
        yt = check_labels(y_target, "y_target")
        if len(yt) != len(xt):
            raise ValueError(f"y_target has {len(yt)} labels but x_target has {len(xt)} rows.")
    rows = _subsample_rows(len(xt), max_samples, None if seed is None else seed + 1)
    xt, yt_sub = xt[rows], (None if yt is None else yt[rows])

    a = (ref.x.reshape(len(ref.x), -1) - ref.mean) / ref.std
    b = (xt.reshape(len(xt), -1) - ref.mean) / ref.std
    input_test = mmd_test(a, b, n_permutations=n_permutations, alpha=alpha, bandwidth=ref.bandwidth, seed=seed,
                          space="input")
    criteria = [Criterion(
        "input-space MMD", input_test.p_value, alpha, not input_test.is_shift, "fail when p_value <= alpha",
        f"MMD^2 {input_test.statistic:.4g} (normalized {input_test.normalized:.3g}, threshold "
        f"{input_test.threshold:.4g}).",
    )]
    feature_test = None
    fs = None
    if model is not None:
        from shiftkit.shift.features import FeatureSpace

        fs = FeatureSpace(model, layer)
        if ref.layer is not None and fs.layer_name != ref.layer:
            raise ValueError(
                f"The snapshot's features come from layer {ref.layer!r}, not {fs.layer_name!r}. "
                "Pass the same --layer as for the snapshot."
            )
        ft = fs(xt)
        if ft.shape[1] != ref.features.shape[1]:
            raise ValueError(
                f"The model gives {ft.shape[1]} features but the snapshot holds {ref.features.shape[1]}: "
                "use the model the snapshot was made with."
            )
        feature_test = mmd_test(ref.features, ft, n_permutations=n_permutations, alpha=alpha,
                                bandwidth=ref.feature_bandwidth, seed=seed, space="feature")
        criteria.append(Criterion(
            "feature-space MMD", feature_test.p_value, alpha, not feature_test.is_shift,
            "fail when p_value <= alpha",
            f"MMD^2 {feature_test.statistic:.4g} in {fs.layer_name} (normalized {feature_test.normalized:.3g}).",
        ))

    labels = None
    if ref.label_counts is not None and (yt is not None or (model is not None and ref.probs is not None and ref.y is not None)):
        n_classes = len(ref.label_counts)
        if yt is not None:
            n_classes = max(n_classes, int(yt.max()) + 1)
            q = np.bincount(yt, minlength=n_classes) / len(yt)
            labels = _label_summary(ref, q, "labels", yt, None)
        else:
            from shiftkit.shift.features import predict_proba

            est = estimate_target_priors(ref.probs, ref.y, predict_proba(model, xt), method="em")
            labels = _label_summary(ref, np.asarray(est.priors), "estimated (em)", None, est)
        tv = labels.distance.total_variation
        criteria.append(Criterion(
            "label shift", tv, float(max_label_shift), tv <= max_label_shift,
            "fail when total variation > threshold",
            f"class proportions reference {np.round(labels.source_proportions, 3).tolist()} vs target "
            f"{np.round(labels.target_proportions, 3).tolist()} ({labels.target_from}).",
        ))
        if max_imbalance_ratio is not None:
            q = labels.target_proportions
            ratio = float(q.max() / q.min()) if q.min() > 0 else float("inf")
            criteria.append(Criterion(
                "class imbalance", ratio, float(max_imbalance_ratio), ratio <= max_imbalance_ratio,
                "fail when max/min class ratio > threshold", f"target imbalance ratio {ratio:.3g}.",
            ))
    elif max_imbalance_ratio is not None and yt is not None:
        ratio = class_imbalance(yt).imbalance_ratio
        criteria.append(Criterion(
            "class imbalance", ratio, float(max_imbalance_ratio), ratio <= max_imbalance_ratio,
            "fail when max/min class ratio > threshold", f"target imbalance ratio {ratio:.3g}.",
        ))

    report = ShiftReport(
        input_test=input_test,
        feature_test=feature_test,
        labels=labels,
        alpha=alpha,
        n_source=len(ref.x),
        n_target=len(xt),
        layer=None if fs is None else fs.layer_name,
        seed=seed,
        standardized=True,
    )
    diagnosis = drift = None
    if ref.x.ndim == 2:
        from shiftkit.shift.univariate import feature_drift

        names = ref.feature_names if ref.feature_names and len(ref.feature_names) == ref.x.shape[1] else None
        drift = feature_drift(ref.x, xt, feature_names=names, alpha=alpha)
    if diagnose_shift:
        from shiftkit.shift.diagnose import diagnose

        diagnosis = diagnose(ref.x, xt, ref.y, yt_sub if ref.y is not None else None, model=model, alpha=alpha,
                             n_permutations=min(n_permutations, 500), seed=seed, second_opinion=True)
    return CheckResult(criteria=tuple(criteria), report=report, diagnosis=diagnosis, drift=drift)
