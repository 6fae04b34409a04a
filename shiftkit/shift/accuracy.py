"""Target accuracy estimated without target labels, with an interval.

A model's accuracy on held-out *source* data says little about the target once the domains differ.
`AccuracyEstimator` turns what is measurable without target labels (the model's probabilities on
held-out labelled source rows and on unlabelled target rows; optionally density-ratio weights of the
source rows) into an estimate of the target accuracy of the model's own predictions (argmax).

Estimators (each is exact under its assumption and in expectation; none is under every shift):

- ``"source"``: the held-out source accuracy (the naive estimate; right when there is no shift).
- ``"atc"``: Average Thresholded Confidence (Garg et al. 2022), with the negative-entropy score of
  temperature-scaled probabilities by default: a threshold `t` is set on the source so that the share
  of source rows scoring above `t` equals the source accuracy; the estimate is the share of target rows
  above `t`. Needs no assumption that can be checked; known to be too high where the model stays
  confidently wrong (corrupted images, another device).
- ``"doc"``: difference of confidences (Guillory et al. 2021): source accuracy minus the drop of the mean
  top-class confidence from source to target.
- ``"cot"``: Confidence Optimal Transport (Lu et al. 2023): one minus the earth mover's distance (L1 cost
  halved) between the target rows' temperature-scaled probabilities and the one-hot vectors of the source
  class proportions (`shiftkit.shift.transport`). Assumes the class proportions did not change; unlike
  ATC and DoC it also counts errors the model makes confidently, when they move the predicted class
  proportions away from the label distribution (a sensor moved, rotated images).
- ``"label_shift"``: expected accuracy under label shift (`q(x|y) = p(x|y)`): `sum_k q_k * recall_k`,
  the per-class recalls measured on the source and the target class proportions `q` estimated by EM
  after bias-corrected temperature scaling (`estimate_target_priors`).
- ``"importance"``: source accuracy with each held-out source row weighted by the density ratio
  `p_target(x) / p_source(x)` (covariate shift; label shift too, as it also changes `p(x)`). The
  weights come from `DensityRatioEstimator` fitted on the source hold-out and the target.

`method="auto"` picks the estimator whose assumption matches the diagnosed kind of shift (`kinds`, e.g.
`Diagnosis.kinds`): no shift -> "source" ("label_shift" with `target_priors` given: q . recalls, equal to
the source accuracy where q is the source's priors); label shift alone -> "label_shift"; covariate shift (with or
without label shift) -> "importance" when weights are given and keep an effective sample size of at
least `min_ess_fraction` of the rows, else the fallback: "cot" under covariate shift alone, "doc" with
label shift also diagnosed; kinds unknown (None) or concept shift -> "doc" (`FALLBACK`). The fallbacks
and the ESS bar were chosen on a benchmark suite (benchmarks/accuracy_choice.md): no estimator is
consistent there; under covariate shift COT erred least (DoC stays far too high where the model is
confidently wrong), but COT assumes the class proportions did not change and errs badly under label
shift, where DoC does not; ATC is far off where the model turns underconfident.

The interval has two parts, because sampling error alone is not what makes these estimates wrong:
1. a percentile bootstrap of the chosen estimator (source rows and target rows resampled, every fitted
   piece - threshold, priors, confidences - refitted per resample; the density-ratio weights and COT's
   coupling are held fixed: COT's replicates resample the target rows' transport costs).
   The estimand is the accuracy of the given target rows, so each replicate's value is drawn through
   Binomial(m, .) / m; the source accuracy and the per-class recalls are drawn from their Jeffreys
   posteriors (a hold-out without errors would otherwise give a zero-width interval).
2. the estimator's *model error*, which sampling error does not show:
   - where the chosen estimator is consistent under the diagnosed shift (`consistent`: "source" with
     no shift, "label_shift" under label shift, "importance" with usable weights under covariate
     shift), the interval is extended to cover the point estimates of the other estimators whose
     assumption the diagnosed kind does not rule out (`plausible`);
   - where none is (covariate shift without usable weights, concept shift, kinds unknown), it is
     widened on both sides by a margin `MODEL_ERROR_FACTOR * max(0, 2 * AUC - 1)`, AUC that of a
     cross-fitted linear domain classifier on the model's log-probabilities (how far the model's
     outputs moved; 0.5, no margin, where they did not). The factor is a split-conformal quantile of
     the error over a benchmark's choosing scenarios (benchmarks/accuracy_choice.md): a model can stay
     confidently wrong (every confidence-based estimate too high, all agreeing) or turn underconfident,
     so neither the bootstrap nor the estimators' disagreement bounds the error there.

Example:
    >>> est = AccuracyEstimator(seed=0).fit(p_val, y_val)  # doctest: +SKIP
    >>> est.estimate(p_target, kinds=("label",)).accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import rankdata

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import (
    check_array,
    check_option,
    check_positive_int,
    check_probabilities,
    check_real,
    check_seed,
    encode_labels,
)
from shiftkit.shift.density_ratio import effective_sample_size
from shiftkit.shift.labels.priors import apply_bcts, fit_bcts
from shiftkit.shift.transport import label_transport_costs

__all__ = [
    "ACCURACY_METHODS",
    "AccuracyEstimate",
    "AccuracyEstimator",
    "estimate_accuracy",
]

#: Estimators of `AccuracyEstimator` ("auto" picks one of them from the kinds of shift).
ACCURACY_METHODS = ("source", "atc", "doc", "cot", "label_shift", "importance")
_SCORES = ("negative_entropy", "max_confidence")
#: Kinds of shift `kinds` may name (those of `Diagnosis.kinds`; "imbalance" is not a shift).
_KINDS = ("covariate", "label", "concept", "imbalance")
_ASSUMPTIONS = {
    "source": "no shift: the source accuracy carries over",
    "atc": "the model's confidence ranks its target errors as it ranks its source errors "
    "(no checkable assumption; too high where the model stays confidently wrong)",
    "doc": "the drop in mean confidence equals the drop in accuracy (no checkable assumption)",
    "cot": "the class proportions did not change and the cost of moving the target's probabilities onto the "
    "source label distribution is its error (no checkable assumption; too low under label shift)",
    "label_shift": "label shift: class proportions change, each class's inputs do not (q(x|y) = p(x|y))",
    "importance": "covariate shift with overlapping support: p(y|x) unchanged, every target input "
    "has source inputs like it (the weights' effective sample size says how well)",
}
#: The estimator of "auto" where none is consistent under the diagnosed shift, per situation (covariate
#: shift without usable importance weights, concept shift, unknown kinds). COT only where the diagnosis
#: leaves its assumption (unchanged class proportions) standing: with label shift diagnosed, or nothing
#: diagnosed (a monitor window, `shift_report` without `analyze`), DoC, which erred far less under label
#: shift (benchmarks/accuracy_choice.md, round 2).
FALLBACK = {"covariate": "cot", "covariate+label": "doc", "concept": "doc", "unknown": "doc"}
#: Default `min_ess_fraction` (benchmarks/accuracy_choice.md).
MIN_ESS_FRACTION = 0.3
#: Model-error margin of the interval where the chosen estimator is not consistent under the diagnosed
#: shift: the bootstrap interval is widened on both sides by `MODEL_ERROR_FACTOR * max(0, 2 * AUC - 1)`, AUC that of
#: a cross-fitted linear domain classifier on the model's log-probabilities (source hold-out vs target).
#: Calibrated as a split-conformal quantile on the choosing scenarios of
#: benchmarks/choose_accuracy_estimator.py (benchmarks/accuracy_choice.md; round 2, with the per-situation
#: fallbacks, gave the same factor and anchor), confirmed on the others.
MODEL_ERROR_FACTOR = 0.42
_NAMES = {"atc": "average thresholded confidence", "doc": "difference of confidences",
          "cot": "confidence optimal transport"}
# Estimators consistent (or not ruled out) under each diagnosed situation: the interval covers their
# point estimates. "unknown": no diagnosis given.
_PLAUSIBLE = {
    "none": ("source", "atc", "doc", "cot", "label_shift", "importance"),
    "label": ("label_shift", "importance"),
    "covariate": ("importance", "atc", "doc", "cot", "source"),
    "covariate+label": ("importance", "atc", "doc", "cot", "label_shift", "source"),
    "concept": ("atc", "doc", "cot"),
    "unknown": ("atc", "doc", "cot", "label_shift", "importance", "source"),
}
# EM of the bootstrap: warm-started at the point estimate, so few iterations suffice.
_EM_TOL = 1e-6
_EM_MAX_ITER = 500
# Most columns the output-space domain classifier of the model-error margin uses (classes beyond: summed).
_AUC_MAX_COLUMNS = 32
# Rows x resamples x classes held at once by the label-shift bootstrap (float64).
_BOOTSTRAP_BUDGET = 4_000_000
# Classes up to which COT's point estimate is always computed; beyond, only where it is picked or its estimate
# bounds the interval (its linear program grows with the classes: ~2 s for 200 rows x 1,000 classes).
_COT_EAGER_CLASSES = 64


@dataclass(frozen=True)
class AccuracyEstimate:
    """Estimated target accuracy of a model's predictions, without target labels.

    Attributes:
        accuracy: the chosen estimator's point estimate.
        lower, upper: the interval (bootstrap of the chosen estimator, extended to the plausible
            estimators' point estimates where it is `consistent`, else widened by `model_error`; see
            the module docstring).
        method: the chosen estimator.
        situation: what the estimate assumed about the shift ("none", "label", "covariate",
            "covariate+label", "concept" or "unknown").
        assumption: the chosen estimator's assumption, in words.
        confidence: the bootstrap interval's nominal level.
        sampling_lower, sampling_upper: the bootstrap interval alone.
        estimates: every estimator's point estimate that could be computed (method -> accuracy); with
            more than 64 classes "cot" only where it is picked or bounds the interval (its transport
            problem grows with the classes).
        plausible: the other estimators the diagnosed kind does not rule out (the interval covers their
            point estimates where the chosen estimator is `consistent`).
        source_accuracy: the held-out source accuracy (for comparison: the naive estimate).
        n_source, n_target: rows used.
        effective_sample_size: of the importance weights (None without weights).
        reason: why this estimator was chosen.
        consistent: whether the chosen estimator is consistent under the diagnosed shift ("source"
            with no shift, "label_shift" under label shift, "importance" with usable weights
            under covariate shift); when False the interval is the bootstrap widened by `model_error`.
        output_shift_auc: out-of-fold ROC AUC of a linear domain classifier on the model's
            log-probabilities, source hold-out vs target (0.5: the outputs look alike).
        model_error: the margin added on both sides of the interval for the estimator's model error
            (`MODEL_ERROR_FACTOR * max(0, 2 * output_shift_auc - 1)` when not `consistent`, else 0).
        target_priors: the target class proportions given to `estimate` (known from outside the
            model), None when they were not; "cot" and "label_shift" then use them.
    """

    accuracy: float
    lower: float
    upper: float
    method: str
    situation: str
    assumption: str
    confidence: float
    sampling_lower: float
    sampling_upper: float
    estimates: dict[str, float] = field(default_factory=dict)
    plausible: tuple[str, ...] = ()
    source_accuracy: float = float("nan")
    n_source: int = 0
    n_target: int = 0
    effective_sample_size: float | None = None
    reason: str = ""
    consistent: bool = False
    output_shift_auc: float = float("nan")
    model_error: float = 0.0
    target_priors: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)

    def __str__(self) -> str:
        return (
            f"estimated target accuracy {self.accuracy:.3f} [{self.lower:.3f}, {self.upper:.3f}] "
            f"({self.method}; source accuracy {self.source_accuracy:.3f})"
        )


# ------------------------------------------------------------------------------------ pieces
def _fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """Temperature `T` minimising the NLL of `softmax(log(p) / T)` on labelled rows (bounded search)."""
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    rows = np.arange(labels.size)

    def nll(log_t: float) -> float:
        s = logp / math.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[rows, labels]))

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(res.x))


def _scale(probs: np.ndarray, temperature: float) -> np.ndarray:
    s = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def _score(probs: np.ndarray, kind: str) -> np.ndarray:
    if kind == "max_confidence":
        return probs.max(axis=1)
    p = np.clip(probs, 1e-12, 1.0)
    return np.sum(p * np.log(p), axis=1)  # negative entropy: higher = more confident


#: Scores within this (relative, at least absolute) distance of ATC's threshold count as tied with it.
_ATC_TIE_TOL = 1e-9


def _atc_tol(threshold: Any) -> Any:
    return _ATC_TIE_TOL * np.maximum(1.0, np.abs(threshold))


def _atc_threshold(scores: np.ndarray, accuracy: float) -> tuple[float, float]:
    """ATC's threshold `t` and tie weight `w`: `mean(scores > t) + w * mean(scores tied with t) == accuracy`.

    `t` is the (1 - accuracy) quantile. Rows tied with it count as correct with weight `w` (a randomised
    threshold): a perfect or saturated model whose scores all tie at the top (one-hot outputs, or a small
    temperature) has `mean(scores > t) == 0`, and a strict threshold put its ATC estimate at 0.
    """
    t = float(np.quantile(scores, 1.0 - accuracy))
    return t, float(_atc_tie_weight(scores, t, accuracy))


def _atc_tie_weight(scores: np.ndarray, t: Any, accuracy: Any) -> Any:
    """The weight `w` of the scores tied with `t` that makes `mean(scores > t) + w * mean(tied) == accuracy`
    (clipped to [0, 1]; 0 without ties). `scores` is one row, or one row per (`t`, `accuracy`) pair."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    tol = _atc_tol(t)
    above = np.mean(scores > t + tol, axis=-1)
    tied = np.mean(np.abs(scores - t) <= tol, axis=-1)
    gap = np.asarray(accuracy, dtype=np.float64) - above
    return np.clip(np.divide(gap, tied, out=np.zeros_like(gap), where=tied > 0), 0.0, 1.0)


def _atc_share(sorted_scores: np.ndarray, t: Any, w: Any) -> Any:
    """Share of `sorted_scores` above ATC's threshold `t`, tied rows counted with weight `w` (`t`, `w`: arrays ok)."""
    tol = _atc_tol(t)
    m = sorted_scores.size
    above = m - np.searchsorted(sorted_scores, t + tol, side="right")
    tied = np.searchsorted(sorted_scores, t + tol, side="right") - np.searchsorted(sorted_scores, t - tol, side="left")
    return (above + w * tied) / m


def _row_quantiles(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantile `q[i]` of each sorted row `i` (numpy's default "linear" interpolation), vectorised."""
    pos = q * (sorted_rows.shape[1] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, sorted_rows.shape[1] - 1)
    rows = np.arange(sorted_rows.shape[0])
    return sorted_rows[rows, lo] + (pos - lo) * (sorted_rows[rows, hi] - sorted_rows[rows, lo])


def _em_batch(probs: np.ndarray, weights: np.ndarray, source_priors: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Saerens EM for several weighted copies of the target at once.

    Args:
        probs: calibrated target probabilities `(m, k)`.
        weights: `(b, m)` row weights of each copy (bootstrap counts), each row summing to `m`.
        source_priors: `(k,)`.
        start: `(k,)` warm start.

    Returns:
        `(b, k)` target priors.
    """
    b = weights.shape[0]
    q = np.tile(start, (b, 1))
    total = weights.sum(axis=1, keepdims=True)
    for _ in range(_EM_MAX_ITER):
        adjusted = probs[None, :, :] * (q / source_priors)[:, None, :]
        adjusted /= np.maximum(adjusted.sum(axis=2, keepdims=True), np.finfo(float).tiny)
        q_new = np.einsum("bm,bmk->bk", weights, adjusted) / total
        q_new /= q_new.sum(axis=1, keepdims=True)
        delta = float(np.max(np.abs(q_new - q)))
        q = q_new
        if delta < _EM_TOL:
            break
    return q


def _output_shift_auc(source_probs: np.ndarray, target_probs: np.ndarray, rng: np.random.Generator) -> float:
    """Out-of-fold ROC AUC of a linear domain classifier on log-probabilities (source 0, target 1).

    Two stratified folds (seeded by `rng`); on each, Fisher's linear discriminant (pooled class
    covariance, ridge 1e-3 of its mean variance) is fitted on the other fold and scores this one; the AUC
    is the Mann-Whitney statistic of the out-of-fold scores. Closed form: about a millisecond for a
    thousand rows, so a monitor can afford it per window. 0.5 when a domain has fewer than 4 rows. With
    more than `_AUC_MAX_COLUMNS` classes, the columns of the largest pooled mean probability are kept and
    the rest summed into one (the covariance stays small).
    """
    pooled = np.vstack([source_probs, target_probs])
    if pooled.shape[1] > _AUC_MAX_COLUMNS:
        keep = np.argsort(-pooled.mean(axis=0), kind="stable")[: _AUC_MAX_COLUMNS - 1]
        rest = np.ones(pooled.shape[1], bool)
        rest[keep] = False
        pooled = np.column_stack([pooled[:, keep], pooled[:, rest].sum(axis=1)])
    x = np.log(np.clip(pooled, 1e-6, 1.0))
    y = np.r_[np.zeros(len(source_probs), bool), np.ones(len(target_probs), bool)]
    if len(source_probs) < 4 or len(target_probs) < 4:
        return 0.5
    fold = np.empty(y.size, dtype=int)
    for cls in (False, True):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(idx.size) % 2
    scores = np.empty(y.size)
    for f in (0, 1):
        train = fold != f
        a, b = x[train & ~y], x[train & y]
        cov = np.atleast_2d(0.5 * (np.cov(a, rowvar=False) + np.cov(b, rowvar=False)))
        ridge = 1e-3 * float(np.trace(cov)) / len(cov) + 1e-9
        w = np.linalg.solve(cov + ridge * np.eye(len(cov)), b.mean(axis=0) - a.mean(axis=0))
        scores[fold == f] = x[fold == f] @ w
    ranks = rankdata(scores)
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n0 * n1))


def _situation(kinds: Sequence[str] | None) -> str:
    if kinds is None:
        return "unknown"
    found = set(kinds) - {"imbalance"}
    if "concept" in found:
        return "concept"
    if found == {"label"}:
        return "label"
    if found == {"covariate"}:
        return "covariate"
    if found == {"covariate", "label"}:
        return "covariate+label"
    return "none"


def _consistent(method: str, situation: str, usable_weights: bool, known: bool = False) -> bool:
    """Whether `method` is consistent under the diagnosed `situation` (see `AccuracyEstimate.consistent`);
    `known`: the target priors are given (label_shift is then exact without shift too)."""
    if situation == "none":
        return method == "source" or (known and method == "label_shift")
    if situation == "label":
        return method == "label_shift"
    if situation in ("covariate", "covariate+label"):
        return method == "importance" and usable_weights
    return False  # concept shift, unknown kinds


def check_target_priors(target_priors: Any, k: int) -> np.ndarray:
    """Known target class proportions: `k` finite values >= 0, not all zero; normalised to sum to 1."""
    q = check_array(target_priors, "target_priors", dtype=np.float64).reshape(-1)
    if q.size != k:
        raise ValueError(
            f"target_priors has {q.size} values but the model has {k} classes: pass one proportion per class, in "
            "the order of the model's outputs (e.g. [0.92, 0.08] for a 8 % prevalence of class 1)."
        )
    if np.any(q < 0) or not q.sum() > 0:
        raise ValueError(f"target_priors must be >= 0 and not all zero (class proportions or counts); got {q.tolist()}.")
    return q / q.sum()


def _check_kinds(kinds: Any) -> tuple[str, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = (kinds,) if kinds else ()
    try:
        values = tuple(kinds)
    except TypeError:
        raise TypeError(
            f"kinds must be a sequence of kinds of shift (e.g. Diagnosis.kinds, ('covariate',)) or None; got {kinds!r}."
        ) from None
    bad = [k for k in values if not isinstance(k, str) or k not in _KINDS]
    if bad:
        raise ValueError(f"kinds holds unknown kind(s) {bad}; use kinds from {list(_KINDS)} (or None: unknown).")
    return values


# ------------------------------------------------------------------------------------ estimator
class AccuracyEstimator:
    """Estimate a classifier's target accuracy from its probabilities, without target labels.

    scikit-learn style: configure in `__init__`, `fit` on the model's probabilities for held-out
    labelled source rows (never its training rows: it is overconfident there), then `estimate` on
    target probabilities, as often as needed (a monitor calls it once per window).

    Args:
        method: "auto" (default: chosen from `kinds` at `estimate`) or one of `ACCURACY_METHODS`.
        score: ATC's confidence score, "negative_entropy" (default, ATC-NE) or "max_confidence".
        calibrate: temperature-scale the probabilities on the source hold-out before ATC and DoC
            (default True; the model's predictions are not changed).
        confidence: nominal level of the bootstrap interval (default 0.95).
        n_bootstrap: bootstrap resamples (default 200).
        min_ess_fraction: "auto" uses importance weights only when their effective sample size is at
            least this share of the source rows (default 0.3: weights that keep fewer rows gave
            estimates worse than the fallback on the benchmark, benchmarks/accuracy_choice.md).
        seed: seed of the bootstrap.

    Attributes (after `fit`):
        source_accuracy_: held-out source accuracy.
        recalls_: per-class source recall, `(k,)`.
        source_priors_: source class proportions of the hold-out, `(k,)`.
        temperature_: the fitted temperature (1.0 when `calibrate=False`).
        threshold_: ATC's threshold on the source scores.
        tie_weight_: the weight of target rows tied with the threshold (`_atc_threshold`; 0 without ties).
        n_classes_: number of classes `k`.

    Example:
        >>> est = AccuracyEstimator(seed=0).fit(p_val, y_val)  # doctest: +SKIP
        >>> print(est.estimate(p_target, kinds=diagnosis.kinds))  # doctest: +SKIP
    """

    def __init__(
        self,
        method: str = "auto",
        *,
        score: str = "negative_entropy",
        calibrate: bool = True,
        confidence: float = 0.95,
        n_bootstrap: int = 200,
        min_ess_fraction: float = MIN_ESS_FRACTION,
        seed: int | None = None,
    ) -> None:
        self.method = method
        self.score = score
        self.calibrate = calibrate
        self.confidence = confidence
        self.n_bootstrap = n_bootstrap
        self.min_ess_fraction = min_ess_fraction
        self.seed = seed

    # -------------------------------------------------------------------------------- fit
    def _check_settings(self) -> None:
        check_option(self.method, "method", ("auto",) + ACCURACY_METHODS)
        check_option(self.score, "score", _SCORES)
        if not isinstance(self.calibrate, (bool, np.bool_)):
            raise TypeError(f"calibrate must be True or False; got {self.calibrate!r}.")
        check_real(self.confidence, "confidence", low=0, high=1, low_open=True, high_open=True, example=0.95)
        check_positive_int(self.n_bootstrap, "n_bootstrap", minimum=10)
        check_real(self.min_ess_fraction, "min_ess_fraction", low=0, high=1, example=0.1)
        check_seed(self.seed)

    def fit(self, source_probs: Any, source_labels: Any) -> AccuracyEstimator:
        """Learn how the model behaves on held-out labelled source rows.

        Args:
            source_probs: the model's probabilities on held-out source rows, `(n, k)` (a sigmoid's
                `(n,)` or `(n, 1)` is read as P(class 1)).
            source_labels: their labels: 0..k-1 (column indices) or k distinct values in column
                order, or one-hot.

        Returns:
            self.

        Raises:
            ValueError / TypeError: bad settings, probabilities or labels (see
                `check_probabilities`, `encode_labels`); labels and rows of different lengths; a
                class without held-out rows (its recall is unknown).
        """
        self._check_settings()
        probs = check_probabilities(source_probs, "source_probs", min_samples=2)
        k = probs.shape[1]
        _, (labels,) = encode_labels(source_labels, names=["source_labels"], n_outputs=k)
        if labels.size != probs.shape[0]:
            raise ValueError(
                f"source_labels has {labels.size} labels but source_probs has {probs.shape[0]} rows: pass one "
                "label per held-out source row."
            )
        counts = np.bincount(labels, minlength=k)
        if np.any(counts == 0):
            raise ValueError(
                f"source_labels has no row of class(es) {np.flatnonzero(counts == 0).tolist()}: every class needs "
                "held-out source rows (its recall is unknown otherwise). Hold out a stratified source split."
            )
        self.n_classes_ = k
        self.labels_ = labels
        self.probs_ = probs
        self.correct_ = (probs.argmax(axis=1) == labels).astype(np.float64)
        self.source_accuracy_ = float(self.correct_.mean())
        self.source_priors_ = counts / counts.sum()
        self.recalls_ = np.bincount(labels, weights=self.correct_, minlength=k) / counts
        self.temperature_ = _fit_temperature(probs, labels) if self.calibrate else 1.0
        scaled = _scale(probs, self.temperature_)
        self.confidence_ = scaled.max(axis=1)
        self.scores_ = _score(scaled, self.score)
        self.threshold_, self.tie_weight_ = _atc_threshold(self.scores_, self.source_accuracy_)
        self.bcts_ = fit_bcts(probs, labels)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise RuntimeError("This AccuracyEstimator is not fitted yet: call fit(source_probs, source_labels) first.")

    # -------------------------------------------------------------------------------- estimates
    def _label_shift_priors(self, target_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calibrated = apply_bcts(target_probs, *self.bcts_)
        q = _em_batch(calibrated, np.ones((1, len(calibrated))), self.source_priors_, self.source_priors_)[0]
        return q, calibrated

    def target_priors(self, target_probs: Any) -> np.ndarray:
        """Target class proportions estimated by EM after the calibration fitted in `fit` (label shift).

        The same estimate as `estimate_target_priors(source_probs, source_labels, target_probs)`
        (method "em"), without refitting the calibration on every call (a monitor calls it per window).
        """
        self._check_fitted()
        probs = check_probabilities(target_probs, "target_probs", n_classes=self.n_classes_)
        return self._label_shift_priors(probs)[0]

    def _point_estimates(
        self, target_probs: np.ndarray, weights: np.ndarray | None, known: np.ndarray | None = None,
        with_cot: bool = True,
    ) -> tuple[dict[str, float], dict[str, Any]]:
        t_scaled = _scale(target_probs, self.temperature_)
        t_scores = _score(t_scaled, self.score)
        if known is None:
            q, calibrated = self._label_shift_priors(target_probs)
        else:  # the target's class proportions, known from outside the model: no EM to run
            q, calibrated = known, None
        est = {
            "source": self.source_accuracy_,
            "atc": float(_atc_share(np.sort(t_scores), self.threshold_, self.tie_weight_)),
            "doc": float(self.source_accuracy_ - (self.confidence_.mean() - t_scaled.max(axis=1).mean())),
            "label_shift": float(q @ self.recalls_),
        }
        cot_costs = None
        if with_cot:
            cot_costs = label_transport_costs(t_scaled, self.source_priors_ if known is None else known, seed=self.seed)
            est["cot"] = float(1.0 - cot_costs.mean())
        if weights is not None:
            est["importance"] = float(np.sum(weights * self.correct_) / np.sum(weights))
        est = {k: float(np.clip(v, 0.0, 1.0)) for k, v in est.items()}
        return est, {"target_scores": t_scores, "target_conf": t_scaled.max(axis=1),
                     "calibrated": calibrated, "priors": q, "cot_costs": cot_costs, "known_priors": known is not None}

    def _bootstrap(
        self, method: str, extras: dict[str, Any], weights: np.ndarray | None, rng: np.random.Generator
    ) -> np.ndarray:
        """`n_bootstrap` resampled values of `method`'s estimate of the target rows' accuracy.

        Source and target rows resampled (the source accuracy and per-class recalls of "source" and
        "label_shift" drawn from their Jeffreys posteriors instead), then the realized accuracy of the
        `m` target rows drawn around each replicate (Binomial(m, replicate) / m).
        """
        b_total, n = int(self.n_bootstrap), self.correct_.size
        out = np.empty(b_total)
        m = extras["target_scores"].size
        sorted_target = np.sort(extras["target_scores"])
        per = max(1, min(b_total, _BOOTSTRAP_BUDGET // max(n, m * self.n_classes_)))
        for start in range(0, b_total, per):
            b = min(per, b_total - start)
            idx = rng.integers(0, n, size=(b, n))
            correct = self.correct_[idx]
            acc = correct.mean(axis=1)
            if method == "source":
                # Jeffreys posterior of the hold-out accuracy: a hold-out without errors (or without hits)
                # does not give a zero-width interval, as resampling it would.
                hits = float(self.correct_.sum())
                out[start:start + b] = rng.beta(hits + 0.5, n - hits + 0.5, size=b)
            elif method == "importance":
                w = weights[idx]
                out[start:start + b] = np.sum(w * correct, axis=1) / np.sum(w, axis=1)
            elif method == "atc":
                rows = np.sort(self.scores_[idx], axis=1)
                thresholds = _row_quantiles(rows, 1.0 - acc)
                # Target rows resampled: the count above a fixed threshold is Binomial(m, share).
                share = _atc_share(sorted_target, thresholds, _atc_tie_weight(rows, thresholds, acc))
                out[start:start + b] = rng.binomial(m, share) / m
            elif method == "doc":
                conf_s = self.confidence_[idx].mean(axis=1)
                t_idx = rng.integers(0, m, size=(b, m))
                conf_t = extras["target_conf"][t_idx].mean(axis=1)
                out[start:start + b] = acc - (conf_s - conf_t)
            elif method == "cot":
                # target rows resampled with their costs under the point estimate's coupling (held fixed,
                # as the importance weights are: re-solving the transport per replicate is second order)
                t_idx = rng.integers(0, m, size=(b, m))
                out[start:start + b] = 1.0 - extras["cot_costs"][t_idx].mean(axis=1)
            else:  # label_shift: recalls and source priors from the source resample, EM per target resample
                # recalls from their Jeffreys posteriors (a class without errors keeps a non-zero spread)
                k = self.n_classes_
                counts = np.bincount(self.labels_, minlength=k).astype(float)
                hits = self.recalls_ * counts
                recalls = rng.beta(hits + 0.5, counts - hits + 0.5, size=(b, k))
                if extras["known_priors"]:  # the given proportions: only the recalls vary
                    out[start:start + b] = recalls @ extras["priors"]
                    continue
                t_weights = rng.multinomial(m, np.full(m, 1.0 / m), size=b).astype(float)
                q = _em_batch(extras["calibrated"], t_weights, self.source_priors_, extras["priors"])
                out[start:start + b] = np.sum(q * recalls, axis=1)
        # The estimand is the accuracy of these m target rows, not its expectation: each replicate's
        # expected accuracy is drawn through Binomial(m, .) / m (conservative where the estimator already
        # resampled the target rows: the two errors are positively correlated).
        return rng.binomial(m, np.clip(out, 0.0, 1.0)) / m

    def _choose(self, situation: str, weights: np.ndarray | None, ess: float | None,
                known: bool = False) -> tuple[str, str]:
        if self.method != "auto":
            return self.method, f"method={self.method!r} was asked for"
        usable = weights is not None and ess is not None and ess >= self.min_ess_fraction * weights.size
        if situation == "none" and known:  # sum_k q_k recall_k: the source accuracy when q is the source's priors
            return "label_shift", ("no shift was diagnosed in the inputs; expected accuracy under the given target "
                                   "priors (the source accuracy where they equal the source's)")
        if situation == "none":
            return "source", "no shift was diagnosed: the held-out source accuracy carries over"
        if situation == "label":
            if known:
                return "label_shift", "label shift alone was diagnosed: expected accuracy under the given target priors"
            return "label_shift", "label shift alone was diagnosed: expected accuracy under the estimated target priors"
        if known and not (situation in ("covariate", "covariate+label") and usable):
            return "cot", (f"{situation} shift{'' if situation != 'unknown' else ' (kinds not given)'}, the target "
                           "class proportions given: confidence optimal transport onto them")
        if situation in ("covariate", "covariate+label"):
            if usable:
                return "importance", f"{situation} shift: source accuracy weighted by the density ratio (ESS {ess:.0f})"
            why = "no importance weights were given" if weights is None else (
                f"the importance weights' effective sample size ({ess:.0f} of {weights.size}) is below "
                f"min_ess_fraction={self.min_ess_fraction:g} of the rows")
            fallback = FALLBACK[situation]
            return fallback, f"{situation} shift, but {why}: {_NAMES[fallback]}"
        if situation == "concept":
            fallback = FALLBACK["concept"]
            return fallback, ("concept shift (p(y|x) changed): no label-free estimate is consistent; "
                              f"{_NAMES[fallback]}, with the interval over the confidence-based estimators")
        fallback = FALLBACK["unknown"]
        return fallback, f"the kind of shift is unknown (no kinds given): {_NAMES[fallback]}"

    def estimate(
        self,
        target_probs: Any,
        *,
        kinds: Sequence[str] | None = None,
        source_weights: Any = None,
        target_priors: Any = None,
    ) -> AccuracyEstimate:
        """Estimate the model's accuracy on the target rows whose probabilities are given.

        Args:
            target_probs: the same model's probabilities on unlabelled target rows, `(m, k)`.
            kinds: the kinds of shift found (e.g. `diagnose(...).kinds`; () = no shift found); None:
                unknown. Decides `method="auto"` and which estimators the interval covers.
            source_weights: density-ratio weights `p_target(x) / p_source(x)` of the held-out source
                rows, in `fit`'s order (e.g. `DensityRatioEstimator().fit(x_val, x_target).weights(x_val)`);
                needed by "importance".
            target_priors: the target's class proportions when they are known from outside the model
                (a registry's prevalence, a screening programme's rate), `(k,)` in the model's class
                order (counts are normalised). "cot" then transports onto them instead of the source
                proportions, and "label_shift" uses them instead of its EM estimate; "auto" picks
                "cot" wherever no estimator is consistent (with label shift diagnosed too: COT's
                assumption is then met by construction), "label_shift" under label shift alone.

        Returns:
            An `AccuracyEstimate`.

        Raises:
            RuntimeError: not fitted.
            ValueError / TypeError: bad probabilities (another number of classes), unknown kinds,
                weights that are negative, non-finite, all zero, or of the wrong length;
                `method="importance"` without weights; `target_priors` of the wrong length, negative,
                non-finite or all zero.
        """
        self._check_fitted()
        self._check_settings()
        probs = check_probabilities(target_probs, "target_probs", n_classes=self.n_classes_)
        kinds = _check_kinds(kinds)
        weights = None
        ess = None
        if source_weights is not None:
            weights = check_array(source_weights, "source_weights", dtype=np.float64).reshape(-1)
            if weights.size != self.correct_.size:
                raise ValueError(
                    f"source_weights has {weights.size} values but fit saw {self.correct_.size} held-out source rows: "
                    "pass one weight per held-out source row, in fit's order."
                )
            if np.any(weights < 0) or not np.any(weights > 0):
                raise ValueError("source_weights must be >= 0 and not all zero (density ratios of the source rows).")
            ess = effective_sample_size(weights)
        if self.method == "importance" and weights is None:
            raise ValueError(
                "method='importance' needs source_weights: pass the density-ratio weights of the held-out source rows "
                "(DensityRatioEstimator().fit(x_source_val, x_target).weights(x_source_val))."
            )
        known = None if target_priors is None else check_target_priors(target_priors, self.n_classes_)
        situation = _situation(kinds)
        method, reason = self._choose(situation, weights, ess, known is not None)
        usable = weights is not None and ess is not None and ess >= self.min_ess_fraction * weights.size
        consistent = _consistent(method, situation, usable, known is not None)
        with_cot = (method == "cot" or self.n_classes_ <= _COT_EAGER_CLASSES
                    or (consistent and ("cot" in _PLAUSIBLE[situation] or known is not None)))
        estimates, extras = self._point_estimates(probs, weights, known, with_cot)
        rng = np.random.default_rng(self.seed)
        boot = self._bootstrap(method, extras, weights, rng)
        tail = (1.0 - float(self.confidence)) / 2.0
        s_lo, s_hi = (float(v) for v in np.quantile(boot, [tail, 1.0 - tail]))
        plausible = tuple(m for m in _PLAUSIBLE[situation] if m in estimates and m != method)
        if known is not None and situation == "label" and "cot" in estimates and method != "cot":
            plausible += ("cot",)  # with the proportions given, COT's assumption holds under label shift
        if situation == "covariate" or situation == "covariate+label":
            if weights is not None and method != "importance":  # weights too few to trust: not plausible
                plausible = tuple(m for m in plausible if m != "importance")
        auc = _output_shift_auc(self.probs_, probs, np.random.default_rng(self.seed))
        values = [estimates[method], s_lo, s_hi]
        if consistent:  # model error = the disagreement with the other estimators the diagnosis allows
            values += [estimates[m] for m in plausible]
            margin = 0.0
        else:  # no consistent estimator: the calibrated margin (it replaces the estimators' span)
            margin = float(MODEL_ERROR_FACTOR) * max(0.0, 2.0 * auc - 1.0)
        return AccuracyEstimate(
            accuracy=estimates[method],
            lower=float(max(0.0, min(values) - margin)),
            upper=float(min(1.0, max(values) + margin)),
            method=method,
            situation=situation,
            assumption=_ASSUMPTIONS[method],
            confidence=float(self.confidence),
            sampling_lower=s_lo,
            sampling_upper=s_hi,
            estimates=estimates,
            plausible=plausible,
            source_accuracy=self.source_accuracy_,
            n_source=int(self.correct_.size),
            n_target=int(len(probs)),
            effective_sample_size=None if ess is None else float(ess),
            reason=reason,
            consistent=consistent,
            output_shift_auc=auc,
            model_error=margin,
            target_priors=None if known is None else tuple(float(v) for v in known),
        )


def estimate_accuracy(
    source_probs: Any,
    source_labels: Any,
    target_probs: Any,
    *,
    kinds: Sequence[str] | None = None,
    source_weights: Any = None,
    target_priors: Any = None,
    method: str = "auto",
    confidence: float = 0.95,
    n_bootstrap: int = 200,
    seed: int | None = None,
) -> AccuracyEstimate:
    """One-call form of `AccuracyEstimator(...).fit(source_probs, source_labels).estimate(target_probs, ...)`.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 400)
        >>> p1 = np.clip(0.5 + (2 * y - 1) * rng.uniform(0.1, 0.5, 400), 0, 1)
        >>> est = estimate_accuracy(p1, y, p1, kinds=(), seed=0)
        >>> est.method, round(est.accuracy, 3)
        ('source', 1.0)
    """
    return AccuracyEstimator(
        method, confidence=confidence, n_bootstrap=n_bootstrap, seed=seed
    ).fit(source_probs, source_labels).estimate(target_probs, kinds=kinds, source_weights=source_weights,
                                                target_priors=target_priors)
