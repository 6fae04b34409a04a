"""Which kind of shift is this, and which adapter fits it.

`diagnose` names the kinds of shift present, each with its evidence, and recommends an adapter:

- **label** shift (p(y) moves, p(x|y) does not). With target labels: a chi-square test on the
  2 x K table of class counts. Without: target class proportions estimated from a classifier's
  probabilities (calibrated EM), with a bootstrap interval over target rows; label shift when a
  source proportion lies outside its interval (Bonferroni over classes).
- **covariate** shift (p(x) moves beyond what a label shift explains). An MMD permutation test on
  source-standardised inputs (and in the model's feature space when a model is given, Bonferroni
  over the two). A label shift moves p(x) too, so when a label shift is found the source is first
  subsampled per class, without replacement, to the target's class proportions ("label-matched");
  a shift that survives that is not explained by the labels.
- **concept** shift (p(y|x) moves; needs target labels). The source classifier's accuracy on the
  target is compared with what it *should* be if the shift were only covariate (held-out source
  accuracy reweighted by domain-classifier importance weights w(x)) and if it were only label
  shift (per-class held-out source accuracy weighted by the target's class proportions). Concept
  shift when the observed accuracy is significantly below both (an intersection-union test: each
  one-sided z-test must reject, so the level holds).
- **class imbalance**: max/min class count above `imbalance_threshold` in either domain.

The three tests share the level `alpha` with Bonferroni (alpha / 3 each), so on data with no shift
at all the diagnosis says "none" with probability of at least about 1 - alpha.

Without a model, the source classifier used for prior estimation and the concept test is a
scikit-learn logistic regression fitted on a stratified half of the source (the other half is the
held-out source). A domain-classifier test (`classifier_test`) is reported beside MMD as a
scale-free second opinion; it does not enter the decision.

Recommendation: concept with enough target labels -> FineTuneAdapter; concept with very few labels
per class -> CopyAdapter; label shift without covariate shift -> LabelShiftAdapter; covariate shift
-> MMDAdapter; none -> no adaptation. Class imbalance adds `class_weight="balanced"`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import stats

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import (
    check_alpha,
    check_labels,
    check_pair,
    check_positive_int,
    check_seed,
)
from shiftkit.shift.classifier import ClassifierTestResult, classifier_test
from shiftkit.shift.labels import class_imbalance, estimate_target_priors
from shiftkit.shift.mmd import mmd_test

__all__ = ["Evidence", "Diagnosis", "diagnose", "SHIFT_KINDS"]

SHIFT_KINDS = ("covariate", "label", "concept", "imbalance")


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The test behind one kind of shift.

    Attributes:
        kind: "covariate", "label", "concept" or "imbalance".
        detected: whether the kind is present at the diagnosis' level.
        tested: False when the data given cannot test it (e.g. concept without target labels).
        test: which test ran.
        statistic: its statistic (None if not tested). p_value: its p-value (None for imbalance).
        level: the level the p-value was compared with (alpha / 3), or the threshold for imbalance.
        detail: one or two sentences on what was found.
    """

    kind: str
    detected: bool
    tested: bool
    test: str
    statistic: float | None
    p_value: float | None
    level: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The kinds of shift found, with evidence, and the adapter that fits.

    Attributes:
        kinds: kinds detected, in the order covariate, label, concept, imbalance.
        evidence: one `Evidence` per kind.
        recommendation: an adapter class name, or "none".
        reason: why that adapter.
        classifier_test: the domain-classifier second opinion (None if not run).
        alpha: the family-wise level of the three tests.
    """

    kinds: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    recommendation: str
    reason: str
    classifier_test: ClassifierTestResult | None
    alpha: float

    @property
    def is_shift(self) -> bool:
        return any(k in self.kinds for k in ("covariate", "label", "concept"))

    def evidence_for(self, kind: str) -> Evidence:
        return next(e for e in self.evidence if e.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)

    def __str__(self) -> str:
        lines = [f"diagnosis: {', '.join(self.kinds) if self.kinds else 'no shift'}"]
        for e in self.evidence:
            mark = "YES" if e.detected else ("no" if e.tested else "not tested")
            p = "" if e.p_value is None else f" p={e.p_value:.3g}"
            lines.append(f"  {e.kind:<10} {mark:<11}{p:<12} {e.detail}")
        if self.classifier_test is not None:
            c = self.classifier_test
            lines.append(f"  domain classifier AUC {c.auc:.3f} (p={c.p_value:.3g}), second opinion")
        lines.append(f"recommendation: {self.recommendation}. {self.reason}")
        return "\n".join(lines)


def _standardize(xs: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = xs.mean(axis=0), xs.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (xs - mean) / std, (xt - mean) / std


def _label_matched(ys: np.ndarray, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Source row indices subsampled per class, without replacement, to proportions q."""
    counts = np.bincount(ys, minlength=len(q)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        caps = np.where(q > 0, counts / q, np.inf)
    total = float(np.min(caps))
    take = np.floor(q * total).astype(int)
    idx = [rng.choice(np.flatnonzero(ys == k), size=take[k], replace=False) for k in range(len(q)) if take[k] > 0]
    return np.sort(np.concatenate(idx)) if idx else np.arange(len(ys))


class _SourceClassifier:
    """Probabilities and predictions of the source classifier, with a held-out source half."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, model: Any, rng: np.random.Generator, seed: int | None):
        from sklearn.model_selection import train_test_split

        self.model = model
        if model is None:
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            fit_idx, held_idx = train_test_split(
                np.arange(len(xs)), test_size=0.5, stratify=ys if np.bincount(ys).min() >= 2 else None,
                random_state=seed,
            )
            self.clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            self.clf.fit(xs[fit_idx], ys[fit_idx])
            self.held = held_idx
        else:
            self.clf = None
            self.held = np.arange(len(xs))  # a given model is taken as trained elsewhere: all source is held out

    def proba(self, x: np.ndarray, n_classes: int) -> np.ndarray:
        if self.clf is not None:
            p = np.zeros((len(x), n_classes))
            p[:, self.clf.classes_] = self.clf.predict_proba(x)
            return p
        from shiftkit.shift.features import predict_proba

        return predict_proba(self.model, x)


def _agresti_coull(successes: float, n: float) -> tuple[float, float]:
    """Accuracy and its variance with the Agresti-Coull adjustment (2 successes and 2 failures added).

    The plain binomial variance p(1-p)/n is 0 when a held-out set is classified perfectly, which
    would make any target error look significant; the adjustment keeps it honest near 0 and 1.
    """
    p = (successes + 2.0) / (n + 4.0)
    return p, p * (1.0 - p) / (n + 4.0)


def _z_below(expected: float, var_expected: float, observed: float, var_observed: float) -> float:
    """One-sided p-value of 'observed accuracy is below expected'."""
    var = var_expected + var_observed
    return float(stats.norm.sf((expected - observed) / math.sqrt(var)))


def diagnose(
    x_source: Any,
    x_target: Any,
    y_source: Any = None,
    y_target: Any = None,
    *,
    model: Any = None,
    alpha: float = 0.05,
    n_permutations: int = 500,
    n_bootstrap: int = 200,
    imbalance_threshold: float = 3.0,
    few_labels_per_class: int = 10,
    second_opinion: bool = True,
    seed: int | None = None,
) -> Diagnosis:
    """Name the kinds of shift between source and target, with evidence, and recommend an adapter.

    Args:
        x_source, x_target: inputs `(n, ...)` and `(m, ...)` with the same per-sample shape.
        y_source: source labels (needed for label and concept shift).
        y_target: target labels, if any (needed for concept shift; makes label shift exact).
        model: optional Keras classifier trained on the source (treated as not trained on
            `x_source`: pass held-out source data). Without it a logistic regression is fitted.
        alpha: family-wise level of the covariate, label and concept tests (alpha / 3 each).
        n_permutations: permutations of the MMD tests.
        n_bootstrap: bootstrap resamples for estimated target priors (no target labels).
        imbalance_threshold: max/min class-count ratio above which imbalance is reported.
        few_labels_per_class: below this many target labels in some class, fine-tuning is not
            recommended (CopyAdapter instead).
        second_opinion: also run the domain-classifier test (reported, not decisive).
        seed: seed of every random step.

    Returns:
        A `Diagnosis`.

    Example:
        >>> from shiftkit.datasets import synthetic_shift
        >>> s = synthetic_shift(seed=0, kind="label")
        >>> diagnose(s.x_source, s.x_target, s.y_source, s.y_target, seed=0).kinds  # doctest: +SKIP
        ('label',)
    """
    alpha = check_alpha(alpha)
    seed = check_seed(seed)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    n_bootstrap = check_positive_int(n_bootstrap, "n_bootstrap", minimum=10)
    few_labels_per_class = check_positive_int(few_labels_per_class, "few_labels_per_class")
    if not (isinstance(imbalance_threshold, (int, float)) and imbalance_threshold >= 1):
        raise ValueError(f"imbalance_threshold must be a number >= 1; got {imbalance_threshold!r}.")
    xs_raw, xt_raw = check_pair(x_source, x_target, ("x_source", "x_target"), flatten=False)
    xs, xt = xs_raw.reshape(len(xs_raw), -1), xt_raw.reshape(len(xt_raw), -1)
    ys = yt = None
    if y_source is not None:
        ys = check_labels(y_source, "y_source")
        if len(ys) != len(xs):
            raise ValueError(f"y_source has {len(ys)} labels but x_source has {len(xs)} samples.")
    if y_target is not None:
        if ys is None:
            raise ValueError("y_target was given without y_source; pass the source labels too.")
        yt = check_labels(y_target, "y_target")
        if len(yt) != len(xt):
            raise ValueError(f"y_target has {len(yt)} labels but x_target has {len(xt)} samples.")
    level = alpha / 3.0
    rng = np.random.default_rng(seed)
    evidence: dict[str, Evidence] = {}
    n_classes = 0
    if ys is not None:
        n_classes = int(max(ys.max(), yt.max() if yt is not None else 0)) + 1
    source_clf = None
    if ys is not None:
        if model is not None:
            from shiftkit.shift.features import check_model_input

            check_model_input(model, xs_raw, "x_source")
            check_model_input(model, xt_raw, "x_target")
        source_clf = _SourceClassifier(xs if model is None else xs_raw, ys, model, rng, seed)
        if model is not None:
            n_classes = max(n_classes, source_clf.proba(xs_raw[:1], n_classes).shape[1])

    def classifier_input(x_flat: np.ndarray, x_full: np.ndarray) -> np.ndarray:
        return x_flat if model is None else x_full

    # ---------------------------------------------------------------- label shift
    q = None
    if ys is None:
        evidence["label"] = Evidence("label", False, False, "none", None, None, level,
                                     "Not tested: pass y_source (and y_target if you have them).")
    elif yt is not None:
        table = np.stack([np.bincount(ys, minlength=n_classes), np.bincount(yt, minlength=n_classes)])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            chi2, p = 0.0, 1.0
        else:
            chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        q = np.bincount(yt, minlength=n_classes) / len(yt)
        p_src = np.bincount(ys, minlength=n_classes) / len(ys)
        evidence["label"] = Evidence(
            "label", bool(p <= level), True, "chi-square on class counts", float(chi2), float(p), level,
            f"class proportions source {np.round(p_src, 3).tolist()} vs target {np.round(q, 3).tolist()}.",
        )
    else:
        held = source_clf.held
        ps = source_clf.proba(classifier_input(xs, xs_raw)[held], n_classes)
        pt = source_clf.proba(classifier_input(xt, xt_raw), n_classes)
        est = estimate_target_priors(ps, ys[held], pt, method="em")
        boots = np.empty((n_bootstrap, n_classes))
        for b in range(n_bootstrap):
            rows = rng.integers(0, len(pt), size=len(pt))
            boots[b] = estimate_target_priors(ps, ys[held], pt[rows], method="em").priors
        # two-sided percentile interval per class, Bonferroni over classes
        tail = level / (2 * n_classes)
        lo, hi = np.quantile(boots, tail, axis=0), np.quantile(boots, 1 - tail, axis=0)
        p_src = np.asarray(est.source_priors)
        outside = (p_src < lo) | (p_src > hi)
        # a bootstrap p-value for the reported figure: share of resamples on the far side of the source prior
        frac = np.minimum((boots <= p_src).mean(axis=0), (boots >= p_src).mean(axis=0))
        p_boot = float(min(1.0, 2 * n_classes * frac.min()))
        q = np.asarray(est.priors)
        evidence["label"] = Evidence(
            "label", bool(outside.any()), True, "bootstrap interval of estimated target priors (EM)",
            float(0.5 * np.abs(q - p_src).sum()), p_boot, level,
            f"estimated target proportions {np.round(q, 3).tolist()} vs source {np.round(p_src, 3).tolist()}.",
        )

    # ---------------------------------------------------------------- covariate shift
    a, b = _standardize(xs, xt)
    matched = ""
    src_rows = np.arange(len(xs))
    if q is not None and evidence["label"].detected:
        src_rows = _label_matched(ys, q, rng)
        matched = f" after label-matching the source ({len(src_rows)} rows at the target's class proportions)"
    mmd_in = mmd_test(a[src_rows], b, n_permutations=n_permutations, seed=seed)
    p_cov = mmd_in.p_value
    test_name = "MMD permutation test (standardised inputs)"
    if model is not None:
        from shiftkit.shift.features import feature_space

        mmd_feat = mmd_test(xs_raw[src_rows], xt_raw, features=feature_space(model), n_permutations=n_permutations, seed=seed)
        p_cov = min(1.0, 2 * min(mmd_in.p_value, mmd_feat.p_value))
        test_name = "MMD permutation tests (inputs and model features, Bonferroni)"
    evidence["covariate"] = Evidence(
        "covariate", bool(p_cov <= level), True, test_name, mmd_in.statistic, float(p_cov), level,
        f"input-space MMD^2 {mmd_in.statistic:.4g} (normalized {mmd_in.normalized:.3g}){matched}.",
    )

    # ---------------------------------------------------------------- concept shift
    if yt is None or source_clf is None:
        evidence["concept"] = Evidence("concept", False, False, "none", None, None, level,
                                       "Not tested: needs labels in both domains.")
    else:
        held = source_clf.held
        pred_held = source_clf.proba(classifier_input(xs, xs_raw)[held], n_classes).argmax(axis=1)
        correct_held = (pred_held == ys[held]).astype(float)
        pred_t = source_clf.proba(classifier_input(xt, xt_raw), n_classes).argmax(axis=1)
        observed = float(np.mean(pred_t == yt))
        obs_adj, var_obs = _agresti_coull(float(np.sum(pred_t == yt)), len(yt))
        # label-shift hypothesis: per-class held-out accuracy weighted by the target's class shares
        counts_k = np.array([np.sum(ys[held] == k) for k in range(n_classes)], dtype=float)
        right_k = np.array([correct_held[ys[held] == k].sum() for k in range(n_classes)])
        ok = counts_k > 0
        per_class, var_k = _agresti_coull(right_k[ok], counts_k[ok])
        qk = q[ok] / q[ok].sum()
        exp_label = float(np.sum(qk * per_class))
        var_label = float(np.sum(qk**2 * var_k))
        # covariate-shift hypothesis: importance weights from a domain classifier on (standardised) x
        from sklearn.linear_model import LogisticRegression

        dom = LogisticRegression(max_iter=2000).fit(np.r_[a, b], np.r_[np.zeros(len(a)), np.ones(len(b))])
        pt_held = np.clip(dom.predict_proba(a[held])[:, 1], 1e-6, 1 - 1e-6)
        w = pt_held / (1 - pt_held)
        w = np.minimum(w, 20 * w.mean())
        w = w / w.sum()
        ess = 1.0 / float(np.sum(w**2))
        exp_cov, var_cov = _agresti_coull(float(np.sum(w * correct_held)) * ess, ess)
        p_lab_h = _z_below(exp_label, var_label, obs_adj, var_obs)
        p_cov_h = _z_below(exp_cov, var_cov, obs_adj, var_obs)
        p_concept = max(p_lab_h, p_cov_h)
        evidence["concept"] = Evidence(
            "concept", bool(p_concept <= level), True,
            "source-classifier target accuracy vs covariate- and label-shift expectations",
            observed, float(p_concept), level,
            f"target accuracy {observed:.3f}; expected {exp_cov:.3f} under covariate shift and "
            f"{exp_label:.3f} under label shift.",
        )

    # ---------------------------------------------------------------- class imbalance
    if ys is None:
        evidence["imbalance"] = Evidence("imbalance", False, False, "none", None, None, imbalance_threshold,
                                         "Not tested: pass labels.")
    else:
        ratios = {"source": class_imbalance(ys, n_classes=n_classes).imbalance_ratio}
        if yt is not None:
            ratios["target"] = class_imbalance(yt, n_classes=n_classes).imbalance_ratio
        worst = max(ratios.values())
        evidence["imbalance"] = Evidence(
            "imbalance", bool(worst > imbalance_threshold), True, "max/min class count", float(worst), None,
            float(imbalance_threshold),
            "imbalance ratio " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + ".",
        )

    kinds = tuple(k for k in SHIFT_KINDS if evidence[k].detected)
    recommendation, reason = _recommend(kinds, yt, n_classes, few_labels_per_class)
    c2st = None
    if second_opinion:
        c2st = classifier_test(a, b, alpha=alpha, seed=seed)
    return Diagnosis(
        kinds=kinds,
        evidence=tuple(evidence[k] for k in SHIFT_KINDS),
        recommendation=recommendation,
        reason=reason,
        classifier_test=c2st,
        alpha=alpha,
    )


def _recommend(kinds: tuple[str, ...], yt: np.ndarray | None, n_classes: int, few: int) -> tuple[str, str]:
    balance = " Classes are imbalanced: train with class_weight='balanced'." if "imbalance" in kinds else ""
    if "concept" in kinds:
        min_labels = int(np.bincount(yt, minlength=n_classes).min()) if yt is not None else 0
        if min_labels >= few:
            return "FineTuneAdapter", (
                "p(y|x) changed, so the model itself must relearn on labelled target data; fine-tune it "
                f"(at least {min_labels} target labels per class are available)." + balance
            )
        return "CopyAdapter", (
            f"p(y|x) changed but some class has only {min_labels} target label(s): train a new head on the "
            "frozen copied features rather than fine-tune the whole network." + balance
        )
    if "label" in kinds and "covariate" not in kinds:
        return "LabelShiftAdapter", (
            "Only the class proportions moved: correct the model's priors with the estimated target "
            "proportions; no retraining needed." + balance
        )
    if "covariate" in kinds:
        extra = " The class proportions moved too: follow with LabelShiftAdapter." if "label" in kinds else ""
        return "MMDAdapter", (
            "The inputs moved while the labelling rule did not: align source and target features with "
            "MMD-regularised training on unlabelled target data." + extra + balance
        )
    if "imbalance" in kinds:
        return "none", "No shift detected; classes are imbalanced: train with class_weight='balanced'."
    return "none", "No shift detected at this level: the source model can be used as it is."
