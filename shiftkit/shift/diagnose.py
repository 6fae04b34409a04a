"""Which kind of shift is this, and which adapter fits it.

`diagnose` names the kinds of shift present, each with its evidence, and recommends an adapter:

- **label** shift (p(y) moves, p(x|y) does not). With target labels: an exact permutation
  chi-square test on the 2 x K table of class counts (`label_shift_test`). Without target labels:
  black-box shift detection (Lipton et al. 2018; Rabanser et al. 2019): the same permutation test
  on the 2 x K table of the source classifier's *predicted* classes on held-out source rows vs
  target rows. Under label shift the target's predicted-class distribution is `C q` (C the
  classifier's confusion matrix), so "q = p" is "the predicted-class distributions are equal";
  under no shift at all the held-out source and target predictions are i.i.d. from one
  distribution, so the test is exact (the classifier is fitted on the other source half, or is the
  given model, which is taken as not trained on `x_source`). The effect size reported is the
  calibrated-EM estimate of the target class proportions. What it cannot tell apart: a covariate
  shift that moves the classifier's predictions also changes the predicted-class distribution,
  and is then reported as "label" too (the covariate test, run after label-matching, says
  whether p(x) moved beyond that).
- **covariate** shift (p(x) moves beyond what a label shift explains). An MMD permutation test on
  inputs standardised by `shiftkit.shift.scaling.standardize` (fitted on the pooled sample, so
  the permutation test stays exact; near-constant features cannot dominate: see that module), and,
  when a model is given, in the model's feature space, and with `bbsd=True` on its softmax outputs
  (black-box shift detection: KS per output, Bonferroni over the outputs, `shiftkit.shift.bbsd`;
  skipped for a model that is not a classifier), Bonferroni over the two or three tests. BBSD is off
  by default: on a covariate shift along an axis the model ignores it adds nothing and its share of
  the level cost the covariate test its calibrated power (tests/test_calibration.py: 0.53 vs >= 0.8). A label shift
  moves p(x) too, so when a label shift is found the source is first subsampled per class,
  without replacement, to the target's class proportions ("label-matched"); a shift that survives
  that is not explained by the labels. Target classes absent from the source cannot be matched:
  their target rows are left out and the evidence says so.
- **concept** shift (p(y|x) moves; needs target labels). The source classifier's accuracy on the
  target is compared with what it *should* be if the shift were only covariate (held-out source
  accuracy reweighted by domain-classifier importance weights w(x)) and if it were only label
  shift (per-class held-out source accuracy weighted by the target's class proportions). Concept
  shift when the observed accuracy is significantly below both (an intersection-union test: each
  one-sided z-test must reject, so the level holds). Only target rows of classes the source has
  enter it.
- **class imbalance**: max/min class count above `imbalance_threshold` in either domain (over
  the classes seen in the labels).

The three tests share the level `alpha` with Bonferroni (alpha / 3 each), so on data with no shift
at all the diagnosis says "none" with probability of at least about 1 - alpha. Every permutation
test gets enough permutations for its own level (`shiftkit.shift.mmd.permutations_for`: at
least `n_permutations`, and at least `2 / level - 1`), and its evidence says how many it used. A
test that cannot reach its level on the data given (too few rows for any split to be that
unlikely, or a classifier that predicts one class for every row) is reported as "NOT TESTABLE",
never as "no".

Labels may be any class values (1/2, years, strings, bools): source and target are coded 0..K-1
together with `shiftkit._validation.encode_labels` (with a model: labels 0..K-1 index its outputs,
other values are mapped to its K outputs in sorted order); the original values are kept in
`Diagnosis.classes` and shown in the evidence.

Without a model, the source classifier used for the label test without target labels and the
concept test is a scikit-learn logistic regression fitted on a stratified half of the source (the
other half is the held-out source). A domain-classifier test (`classifier_test`) is reported beside
MMD as a scale-free second opinion; it does not enter the decision.

Recommendation: concept with enough target labels -> FineTuneAdapter; concept with very few labels
per class -> CopyAdapter; label shift without covariate shift -> LabelShiftAdapter; covariate shift
-> MMDAdapter; none -> no adaptation. Class imbalance adds `class_weight="balanced"`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shiftkit._keras import n_classes as n_classes_of
from shiftkit._json import dataclass_to_dict
from shiftkit._validation import (
    check_alpha,
    check_pair,
    check_positive_int,
    check_real,
    check_seed,
    encode_labels,
)
from shiftkit.shift.bbsd import bbsd_from_probabilities, is_classifier
from shiftkit.shift.classifier import ClassifierTestResult, classifier_test
from shiftkit.shift.features import check_model_input, feature_space, predict_proba
from shiftkit.shift.labels import estimate_target_priors, label_shift_test
from shiftkit.shift.mmd import mmd_test, permutations_for
from shiftkit.shift.scaling import Standardizer

__all__ = ["Evidence", "Diagnosis", "diagnose", "SHIFT_KINDS"]

SHIFT_KINDS = ("covariate", "label", "concept", "imbalance")


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The test behind one kind of shift.

    Attributes:
        kind: "covariate", "label", "concept" or "imbalance".
        detected: whether the kind is present at the diagnosis' level.
        tested: False when it was not tested (e.g. concept without target labels, or not testable).
        test: which test ran.
        statistic: its statistic (None if not tested). p_value: its p-value (None for imbalance).
        level: the level the p-value was compared with (alpha / 3), or the threshold for imbalance.
        detail: one or two sentences on what was found.
        n_permutations: permutations each permutation test behind it used (None for other tests).
        testable: False when the data given cannot reach the test's level at all (too few rows,
            or a classifier that predicts a single class): the detail then starts "NOT TESTABLE",
            and the kind is neither detected nor ruled out.
    """

    kind: str
    detected: bool
    tested: bool
    test: str
    statistic: float | None
    p_value: float | None
    level: float | None
    detail: str
    n_permutations: int | None = None
    testable: bool = True

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
        classes: the original class values, in code order (empty without labels).
    """

    kinds: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    recommendation: str
    reason: str
    classifier_test: ClassifierTestResult | None
    alpha: float
    classes: tuple[Any, ...] = ()

    @property
    def is_shift(self) -> bool:
        return any(k in self.kinds for k in ("covariate", "label", "concept"))

    @property
    def untestable(self) -> tuple[str, ...]:
        """Kinds whose test could not reach its level on these data (neither found nor ruled out)."""
        return tuple(e.kind for e in self.evidence if not e.testable)

    def evidence_for(self, kind: str) -> Evidence:
        return next(e for e in self.evidence if e.kind == kind)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)

    def __str__(self) -> str:
        head = ", ".join(self.kinds) if self.kinds else ("no shift found" if self.untestable else "no shift")
        if self.untestable:
            head += f" (NOT TESTABLE: {', '.join(self.untestable)})"
        lines = [f"diagnosis: {head}"]
        for e in self.evidence:
            mark = "YES" if e.detected else ("NOT TESTABLE" if not e.testable else ("no" if e.tested else "not tested"))
            p = "" if e.p_value is None else f" p={e.p_value:.3g}"
            lines.append(f"  {e.kind:<10} {mark:<12}{p:<12} {e.detail}")
        if self.untestable:
            lines.append(f"  WARNING: {', '.join(self.untestable)} could not be tested at this level on these data.")
        if self.classifier_test is not None:
            c = self.classifier_test
            lines.append(f"  domain classifier AUC {c.auc:.3f} (p={c.p_value:.3g}), second opinion")
        lines.append(f"recommendation: {self.recommendation}. {self.reason}")
        return "\n".join(lines)


def _fmt(classes: Sequence[Any], values: Any) -> str:
    """`{class: proportion, ...}` keyed by the original class values."""
    return "{" + ", ".join(f"{c!s}: {float(v):.3f}" for c, v in zip(classes, np.asarray(values).tolist())) + "}"


def _min_split_p(n: int, m: int) -> float:
    """Smallest p-value any permutation test of an n vs m split can reach (a lower bound).

    There are C(n + m, n) splits; with n == m a two-sample statistic symmetric in the samples takes
    the observed value on at least two of them.
    """
    log_c = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    return min(1.0, (2.0 if n == m else 1.0) * math.exp(-log_c))


def _not_testable(kind: str, test: str, level: float, why: str, n_perm: int | None = None) -> Evidence:
    return Evidence(kind, False, False, test, None, None, level, f"NOT TESTABLE at level {level:.3g}: {why}",
                    n_permutations=n_perm, testable=False)


def _label_test_evidence(res: Any, test: str, level: float, sample: str, more: str, detail: str) -> Evidence:
    """The label evidence of a `label_shift_test` result: its decision, or not testable at `level`.

    Args:
        res: the `LabelShiftTestResult`. test: the test's name. level: its (Bonferroni) level.
        sample: the rows it compared, for the not-testable message. more: what to pass more of.
        detail: the evidence's text when it can be tested.
    """
    if res.min_p_value > level:
        return _not_testable("label", test, level, (
            f"with {sample} no split is rarer than {res.min_p_value:.3g}. Pass more {more} or a larger alpha."),
            res.n_permutations)
    return Evidence("label", bool(res.p_value <= level), True, test, res.statistic, res.p_value, level, detail,
                    n_permutations=res.n_permutations)


def _label_matched(ys: np.ndarray, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Source row indices subsampled per class, without replacement, to proportions q.

    Every class with q > 0 must have source rows (the caller restricts q to the shared classes).
    """
    counts = np.bincount(ys, minlength=len(q)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        caps = np.where(q > 0, counts / q, np.inf)
    total = float(np.min(caps))
    take = np.floor(q * total + 1e-9).astype(int)
    idx = [rng.choice(np.flatnonzero(ys == k), size=take[k], replace=False) for k in range(len(q)) if take[k] > 0]
    return np.sort(np.concatenate(idx)) if idx else np.empty(0, dtype=int)


def _stratified_halves(ys: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per class, half the rows (rounded up) to fit on and the rest held out; a class of 1 row is fitted on."""
    fit, held = [], []
    for k in np.unique(ys):
        rows = rng.permutation(np.flatnonzero(ys == k))
        cut = (len(rows) + 1) // 2
        fit.append(rows[:cut])
        held.append(rows[cut:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(held))


class _SourceClassifier:
    """Probabilities of the source classifier, with the held-out source rows it was not fitted on."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, model: Any, n_classes: int, rng: np.random.Generator):
        self.model = model
        self.n_classes = n_classes
        if model is None:
            fit_idx, held_idx = _stratified_halves(ys, rng)
            self.clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            self.clf.fit(xs[fit_idx], ys[fit_idx])
            self.held = held_idx
        else:
            self.clf = None
            self.held = np.arange(len(xs))  # a given model is taken as trained elsewhere: all source is held out

    def proba(self, x: np.ndarray) -> np.ndarray:
        if self.clf is not None:
            p = np.zeros((len(x), self.n_classes))
            p[:, self.clf.classes_] = self.clf.predict_proba(x)
            return p
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


def _encode(
    y_source: Any, y_target: Any, n: int, m: int, n_outputs: int | None, classes: Sequence[Any] | None
) -> tuple[tuple[Any, ...], np.ndarray | None, np.ndarray | None, int]:
    """Source and target labels coded together; returns (classes, ys, yt, n_classes)."""
    if y_source is None:
        if y_target is not None:
            raise ValueError("y_target was given without y_source; pass the source labels too.")
        return (), None, None, 0
    enc, (ys, yt) = encode_labels(y_source, y_target, names=["y_source", "y_target"], n_outputs=n_outputs,
                                  classes=classes)
    if len(ys) != n:
        raise ValueError(f"y_source has {len(ys)} labels but x_source has {n} samples.")
    if yt is not None and len(yt) != m:
        raise ValueError(f"y_target has {len(yt)} labels but x_target has {m} samples.")
    present = np.unique(ys)
    if present.size < 2:
        raise ValueError(
            f"y_source holds a single class ({enc.classes[int(present[0])]!r}): diagnose needs labelled "
            "source rows of at least 2 classes to fit and check a source classifier. Pass source labels "
            "of every class, or leave y_source (and y_target) out to test covariate shift only."
        )
    if n_outputs is not None and classes is not None and enc.n_classes != n_outputs:
        raise ValueError(
            f"classes lists {enc.n_classes} classes but the model predicts {n_outputs}: pass one class per "
            "model output, in output order."
        )
    if n_outputs is not None and enc.n_classes > n_outputs:
        raise ValueError(
            f"The labels have {enc.n_classes} classes {list(enc.classes)[:10]} but the model predicts "
            f"{n_outputs}: pass labels of the model's classes (0..{n_outputs - 1}), or the model they belong to."
        )
    n_classes = enc.n_classes if n_outputs is None else int(n_outputs)
    return enc.classes, ys, yt, n_classes


def diagnose(
    x_source: Any,
    x_target: Any,
    y_source: Any = None,
    y_target: Any = None,
    *,
    model: Any = None,
    alpha: float = 0.05,
    n_permutations: int = 500,
    n_bootstrap: int | None = None,
    imbalance_threshold: float = 3.0,
    few_labels_per_class: int = 10,
    second_opinion: bool = True,
    classes: Sequence[Any] | None = None,
    seed: int | None = None,
    check_input: bool = True,
    bbsd: bool = False,
) -> Diagnosis:
    """Name the kinds of shift between source and target, with evidence, and recommend an adapter.

    Args:
        x_source, x_target: inputs `(n, ...)` and `(m, ...)` with the same per-sample shape.
        y_source: source labels, any class values (needed for label and concept shift).
        y_target: target labels with the same class values, if any (needed for concept shift;
            makes the label test one on true labels).
        model: optional Keras classifier trained on the source (treated as not trained on
            `x_source`: pass held-out source data). Without it a logistic regression is fitted.
            Its K outputs are the classes: labels 0..K-1 index them, other values (exactly K of
            them) are mapped to them in sorted order.
        alpha: family-wise level of the covariate, label and concept tests (alpha / 3 each).
        n_permutations: the least number of permutations of each permutation test; each is raised
            to what its own level needs (`permutations_for`).
        n_bootstrap: no longer used (the label test without target labels is a permutation test,
            not a bootstrap); kept so that old calls work, with a DeprecationWarning.
        imbalance_threshold: max/min class-count ratio above which imbalance is reported.
        few_labels_per_class: below this many target labels in some class, fine-tuning is not
            recommended (CopyAdapter instead).
        second_opinion: also run the domain-classifier test (reported, not decisive).
        classes: an explicit class order for the labels (code k is `classes[k]`); default: the
            sorted distinct values (or the model's outputs).
        seed: seed of every random step.
        check_input: validate the arrays (the default). False skips that for callers that have
            validated them already (`shiftkit.analyze`; scikit-learn's `check_input` convention).
        bbsd: with a classifier as `model`, add black-box shift detection (KS tests on its softmax
            outputs, on the label-matched rows) to the covariate test's Bonferroni family (inputs,
            features, softmax: alpha / 9 each at the default alpha split). Default False (see above).

    Returns:
        A `Diagnosis`.

    Raises:
        ValueError / TypeError: mismatched shapes or lengths, labels that are not class labels,
            y_target without y_source, a single-class y_source, bad settings.

    Example:
        >>> from shiftkit.datasets import synthetic_shift
        >>> s = synthetic_shift(seed=0, kind="label")
        >>> diagnose(s.x_source, s.x_target, s.y_source, s.y_target, seed=0).kinds  # doctest: +SKIP
        ('label',)
    """
    alpha = check_alpha(alpha)
    seed = check_seed(seed)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    few_labels_per_class = check_positive_int(few_labels_per_class, "few_labels_per_class")
    if n_bootstrap is not None:
        warnings.warn(
            "diagnose(n_bootstrap=...) is no longer used: the label test without target labels is an "
            "exact permutation test on predicted classes. Leave n_bootstrap out.",
            DeprecationWarning,
            stacklevel=2,
        )
    imbalance_threshold = check_real(imbalance_threshold, "imbalance_threshold", low=1, allow_inf=True, example=3.0)
    if check_input:
        xs_raw, xt_raw = check_pair(x_source, x_target, ("x_source", "x_target"), flatten=False)
    else:  # validated by the caller
        xs_raw, xt_raw = np.asarray(x_source, dtype=np.float64), np.asarray(x_target, dtype=np.float64)
    xs, xt = xs_raw.reshape(len(xs_raw), -1), xt_raw.reshape(len(xt_raw), -1)
    n_outputs = None
    if model is not None:
        check_model_input(model, xs_raw, "x_source")
        check_model_input(model, xt_raw, "x_target")
        if y_source is not None:
            n_outputs = n_classes_of(model) or predict_proba(model, xs_raw[:1]).shape[1]
    class_values, ys, yt, n_classes = _encode(y_source, y_target, len(xs), len(xt), n_outputs, classes)
    level = alpha / 3.0
    rng = np.random.default_rng(seed)
    evidence: dict[str, Evidence] = {}
    source_clf = None
    if ys is not None:
        source_clf = _SourceClassifier(xs if model is None else xs_raw, ys, model, n_classes, rng)

    def classifier_input(x_flat: np.ndarray, x_full: np.ndarray) -> np.ndarray:
        return x_flat if model is None else x_full

    # ---------------------------------------------------------------- label shift
    q = None
    label_perm = permutations_for(level, n_permutations)
    if ys is None:
        evidence["label"] = Evidence("label", False, False, "none", None, None, level,
                                     "Not tested: pass y_source (and y_target if you have them).")
    elif yt is not None:
        res = label_shift_test(ys, yt, n_classes=n_classes, n_permutations=label_perm, seed=seed)
        q = np.asarray(res.target_proportions)
        test = "permutation chi-square test on class counts"
        evidence["label"] = _label_test_evidence(
            res, test, level, f"{len(ys)} source and {len(yt)} target labels", "labelled rows",
            f"class proportions source {_fmt(class_values, res.source_proportions)} vs target "
            f"{_fmt(class_values, q)}; chi-square {res.statistic:.4g}, {label_perm} permutations.",
        )
    else:
        held = source_clf.held
        ps = source_clf.proba(classifier_input(xs, xs_raw)[held])
        pt = source_clf.proba(classifier_input(xt, xt_raw))
        pred_s, pred_t = ps.argmax(axis=1), pt.argmax(axis=1)
        res = label_shift_test(pred_s, pred_t, n_classes=n_classes, n_permutations=label_perm, seed=seed)
        test = "permutation chi-square test on the source classifier's predicted classes (BBSD)"
        p_src = np.bincount(ys[held], minlength=n_classes) / len(held)
        effect = ""
        if np.all(p_src > 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # non-convergence is said in the detail
                est = estimate_target_priors(ps, ys[held], pt, method="em")
            q = np.asarray(est.priors)
            effect = (f" estimated target proportions (calibrated EM) {_fmt(class_values, q)} vs source "
                      f"{_fmt(class_values, p_src)}, total variation {0.5 * np.abs(q - p_src).sum():.3f}"
                      + ("." if est.converged else f" (EM stopped after {est.n_iter} iterations unconverged)."))
        else:
            missing = [class_values[k] for k in np.flatnonzero(p_src == 0)]
            effect = f" No estimate of the target proportions: class(es) {missing} absent from the held-out source."
        n_pred = int(np.sum((res.source_counts + res.target_counts) > 0))
        if n_pred < 2:
            evidence["label"] = _not_testable("label", test, level, (
                "the source classifier predicts a single class for every source and target row, so its "
                "predictions cannot show a label shift. Pass y_target, or a better classifier." + effect),
                label_perm)
        else:
            evidence["label"] = _label_test_evidence(
                res, test, level, f"{len(held)} held-out source and {len(xt)} target rows", "rows",
                f"predicted-class proportions on {len(held)} held-out source rows "
                f"{_fmt(class_values, res.source_proportions)} vs target {_fmt(class_values, res.target_proportions)}"
                f" (chi-square {res.statistic:.4g}, {label_perm} permutations);{effect} A covariate shift that "
                "moves the predictions shows here too.",
            )

    # ---------------------------------------------------------------- covariate shift
    src_rows, tgt_rows = np.arange(len(xs)), np.arange(len(xt))
    matched = ""
    if q is not None and evidence["label"].detected:
        src_counts = np.bincount(ys, minlength=n_classes)
        absent = np.flatnonzero((q > 0) & (src_counts == 0))
        q_shared = np.where(src_counts > 0, q, 0.0)
        if q_shared.sum() > 0:
            q_shared = q_shared / q_shared.sum()
            rows = _label_matched(ys, q_shared, rng)
        else:
            rows = np.empty(0, dtype=int)
        keep_t = np.ones(len(xt), dtype=bool) if yt is None else np.isin(yt, np.flatnonzero(src_counts > 0))
        if len(rows) >= 2 and keep_t.sum() >= 2:
            src_rows, tgt_rows = rows, np.flatnonzero(keep_t)
            if absent.size:
                matched = (
                    f" after label-matching on the shared classes: the source subsampled to {len(src_rows)} rows at "
                    f"the target's proportions of those classes; {int((~keep_t).sum())} target rows of class(es) "
                    f"{[class_values[k] for k in absent]} absent from the source left out"
                )
            else:
                matched = (f" after label-matching the source ({len(src_rows)} rows at the target's class "
                           "proportions)")
        else:
            matched = (" on all rows: label-matching was impossible (no class with rows in both domains to match "
                       f"on; class(es) {[class_values[k] for k in absent]} absent from the source)")
    if bbsd and model is None:  # (a model that is not a classifier keeps its two MMD tests, as documented)
        raise ValueError("bbsd=True tests a classifier's softmax outputs: pass the classifier as model, or leave "
                         "bbsd out.")
    use_bbsd = bool(bbsd) and model is not None and is_classifier(model)
    n_tests = (2 if model is not None else 1) + int(use_bbsd)
    test_level = level / n_tests
    cov_perm = permutations_for(test_level, n_permutations)
    test_name = "MMD permutation test (standardised inputs)"
    if model is not None:
        test_name = "MMD permutation tests (inputs and model features, Bonferroni)"
    if use_bbsd:
        test_name = "MMD permutation tests (inputs, model features) and BBSD (KS on the softmax), Bonferroni"
    min_p = _min_split_p(len(src_rows), len(tgt_rows))
    if min_p > test_level:
        evidence["covariate"] = _not_testable("covariate", test_name, level, (
            f"with {len(src_rows)} source and {len(tgt_rows)} target rows{matched}, no split of the pooled rows is "
            f"rarer than {min_p:.3g}, above the level {test_level:.3g} of each test. Pass more rows or a larger "
            "alpha."), cov_perm)
    else:
        xs_cov, xt_cov = xs_raw[src_rows], xt_raw[tgt_rows]
        scaler = Standardizer().fit(np.concatenate([xs_cov, xt_cov]))
        mmd_in = mmd_test(scaler.transform(xs_cov), scaler.transform(xt_cov), n_permutations=cov_perm, seed=seed,
                          check_input=False)
        p_cov = mmd_in.p_value
        feat = ""
        if model is not None:
            mmd_feat = mmd_test(xs_cov, xt_cov, features=feature_space(model), n_permutations=cov_perm, seed=seed,
                                check_input=False)
            p_each = [mmd_in.p_value, mmd_feat.p_value]
            feat = f"; feature-space MMD^2 {mmd_feat.statistic:.4g} (p={mmd_feat.p_value:.3g})"
            if use_bbsd:
                bb = bbsd_from_probabilities(predict_proba(model, xs_cov), predict_proba(model, xt_cov),
                                             alpha=test_level)
                p_each.append(bb.p_value)
                feat += (f"; BBSD largest KS D {bb.statistic:.3g} over {len(bb.outputs)} softmax output(s) "
                         f"(p={bb.p_value:.3g}, Bonferroni over the outputs)")
            p_cov = min(1.0, n_tests * min(p_each))
        each = " per test" if n_tests > 1 else ""
        evidence["covariate"] = Evidence(
            "covariate", bool(p_cov <= level), True, test_name, mmd_in.statistic, float(p_cov), level,
            f"input-space MMD^2 {mmd_in.statistic:.4g} (normalized {mmd_in.normalized:.3g}, p={mmd_in.p_value:.3g})"
            f"{feat}{matched}; {cov_perm} permutations{each}; inputs {scaler.how_}, fitted on both samples pooled.",
            n_permutations=cov_perm,
        )

    # pooled standardisation of all rows, for the domain classifiers
    scaler_all = Standardizer().fit(np.concatenate([xs_raw, xt_raw]))
    a, b = scaler_all.transform(xs_raw), scaler_all.transform(xt_raw)

    # ---------------------------------------------------------------- concept shift
    if yt is None or source_clf is None:
        evidence["concept"] = Evidence("concept", False, False, "none", None, None, level,
                                       "Not tested: needs labels in both domains.")
    else:
        evidence["concept"] = _concept_evidence(
            source_clf, classifier_input(xs, xs_raw), classifier_input(xt, xt_raw), ys, yt, a, b, n_classes,
            class_values, level,
        )

    # ---------------------------------------------------------------- class imbalance
    if ys is None:
        evidence["imbalance"] = Evidence("imbalance", False, False, "none", None, None, imbalance_threshold,
                                         "Not tested: pass labels.")
    else:
        seen = np.bincount(ys, minlength=n_classes) > 0
        if yt is not None:
            seen |= np.bincount(yt, minlength=n_classes) > 0
        ratios = {"source": _imbalance_ratio(ys, n_classes, seen)}
        if yt is not None:
            ratios["target"] = _imbalance_ratio(yt, n_classes, seen)
        worst = max(ratios.values())
        evidence["imbalance"] = Evidence(
            "imbalance", bool(worst > imbalance_threshold), True, "max/min class count", float(worst), None,
            float(imbalance_threshold),
            "imbalance ratio " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
            + f" over the classes {[class_values[k] for k in np.flatnonzero(seen)]}.",
        )

    kinds = tuple(k for k in SHIFT_KINDS if evidence[k].detected)
    min_labels = None
    if yt is not None:
        shared = np.bincount(ys, minlength=n_classes) > 0
        min_labels = int(np.bincount(yt, minlength=n_classes)[shared].min())
    recommendation, reason = _recommend(kinds, min_labels, few_labels_per_class)
    if yt is not None:
        new_classes = np.flatnonzero((np.bincount(yt, minlength=n_classes) > 0) & (np.bincount(ys, minlength=n_classes) == 0))
        if new_classes.size:
            # reweighting (LabelShiftAdapter) or aligning (MMDAdapter) cannot teach the model a class the source
            # lacks (a label-shift correction would even fail: no source rows to estimate its ratio from)
            fewest = int(np.bincount(yt, minlength=n_classes)[new_classes].min())
            recommendation = "FineTuneAdapter" if fewest >= few_labels_per_class else "CopyAdapter"
            reason = (f"The target has class(es) {[class_values[k] for k in new_classes]} that the source lacks: "
                      "reweighting or aligning cannot teach the model those; train on the labelled target rows "
                      f"({recommendation}; the rarest new class has {fewest} target label(s)). " + reason)
    untestable = [k for k in SHIFT_KINDS if not evidence[k].testable]
    if untestable:
        reason += (f" NOT TESTABLE on these data: {', '.join(untestable)}; nothing is concluded about "
                   f"{'it' if len(untestable) == 1 else 'them'}.")
    c2st = None
    if second_opinion and min(len(a), len(b)) >= 4:  # the domain classifier needs 2 training + 2 held-out rows a side
        c2st = classifier_test(a, b, alpha=alpha, seed=seed)
    elif second_opinion:
        reason += " The domain-classifier second opinion was not run: it needs at least 4 rows per domain."
    return Diagnosis(
        kinds=kinds,
        evidence=tuple(evidence[k] for k in SHIFT_KINDS),
        recommendation=recommendation,
        reason=reason,
        classifier_test=c2st,
        alpha=alpha,
        classes=tuple(class_values),
    )


def _imbalance_ratio(y: np.ndarray, n_classes: int, seen: np.ndarray) -> float:
    counts = np.bincount(y, minlength=n_classes)[seen]
    return float(counts.max() / counts.min()) if counts.min() > 0 else math.inf


def _concept_evidence(
    source_clf: _SourceClassifier,
    xs_in: np.ndarray,
    xt_in: np.ndarray,
    ys: np.ndarray,
    yt: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    n_classes: int,
    class_values: Sequence[Any],
    level: float,
) -> Evidence:
    """Target accuracy vs what covariate shift or label shift alone would give (intersection-union test)."""
    test = "source-classifier target accuracy vs covariate- and label-shift expectations"
    held = source_clf.held
    source_has = np.bincount(ys[held], minlength=n_classes) > 0
    keep = source_has[yt]
    note = ""
    absent = np.flatnonzero(~source_has & (np.bincount(yt, minlength=n_classes) > 0))
    if absent.size:
        note = (f" Only the {int(keep.sum())} target rows of classes the (held-out) source has enter; "
                f"{int((~keep).sum())} rows of class(es) {[class_values[k] for k in absent]} absent from the "
                "source were left out.")
    if keep.sum() < 2:
        return Evidence("concept", False, False, test, None, None, level,
                        "Not tested: no target label of a class the source has." + note)
    yt_k = yt[keep]
    pred_held = source_clf.proba(xs_in[held]).argmax(axis=1)
    correct_held = (pred_held == ys[held]).astype(float)
    pred_t = source_clf.proba(xt_in[keep]).argmax(axis=1)
    observed = float(np.mean(pred_t == yt_k))
    obs_adj, var_obs = _agresti_coull(float(np.sum(pred_t == yt_k)), len(yt_k))
    # label-shift hypothesis: per-class held-out accuracy weighted by the target's class shares
    counts_k = np.bincount(ys[held], minlength=n_classes).astype(float)
    right_k = np.bincount(ys[held], weights=correct_held, minlength=n_classes)
    q = np.bincount(yt_k, minlength=n_classes) / len(yt_k)
    ok = counts_k > 0
    per_class, var_k = _agresti_coull(right_k[ok], counts_k[ok])
    qk = q[ok] / q[ok].sum()
    exp_label = float(np.sum(qk * per_class))
    var_label = float(np.sum(qk**2 * var_k))
    # covariate-shift hypothesis: importance weights from a domain classifier on (standardised) x
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
    return Evidence(
        "concept", bool(p_concept <= level), True, test, observed, float(p_concept), level,
        f"target accuracy {observed:.3f}; expected {exp_cov:.3f} under covariate shift and "
        f"{exp_label:.3f} under label shift (one-sided z-tests, both must reject)." + note,
    )


def _recommend(kinds: tuple[str, ...], min_labels: int | None, few: int) -> tuple[str, str]:
    balance = " Classes are imbalanced: train with class_weight='balanced'." if "imbalance" in kinds else ""
    if "concept" in kinds:
        min_labels = 0 if min_labels is None else min_labels
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
