"""Choosing an adapter without target labels: fit candidates, score them on source data weighted towards the target.

`select_adapter` answers "which adapter, for my data?" with evidence. It fits each candidate adapter
(plus *source only*, the model as it is, which is always a candidate), estimates each candidate's
target risk, and returns the best one, with every candidate's score and its standard error.

Scoring without target labels (the default). The target risk `E_t[loss]` is estimated on labelled
*held-out source* data, importance-weighted towards the target: under covariate shift
`E_t[loss(x, y)] = E_s[w(x) loss(x, y)]` with `w(x) = p_t(x) / p_s(x)`. The density ratio `w` is
estimated once, by a cross-fitted, calibrated domain classifier
(`shiftkit.shift.density_ratio.DensityRatioEstimator`) in the *source model's* feature space, and
shared by all candidates, so that their scores are paired (differences between two candidates are
taken on the same samples with the same weights and have small variance). Criteria:

* ``"dev"`` -- Deep Embedded Validation (You et al., ICML 2019): the importance-weighted
  loss with the weights as a control variate, `mean(w l) + eta * (mean(w) - 1)`, `eta = -Cov(w l, w)
  / Var(w)`; the control variate removes the part of the weighted mean's variance that comes from
  the weights' own sampling error.
* ``"iwv"`` -- importance-weighted validation (Sugiyama et al., JMLR 2007): `mean(w l)`.
* ``"source"`` -- the unweighted held-out source loss (no correction for the shift; a baseline).
* ``"ensemble"`` -- agreement with the candidates' ensemble on the unlabelled *target* (ensemble-based
  validation, EnsV, Hu et al. 2023): the candidates' target probabilities are averaged, the ensemble's
  predicted classes serve as pseudo-labels, and each candidate is scored by its loss against them.
  It needs no overlap between the domains, which importance weighting does: when no source sample
  looks like the target (a domain classifier with AUC near 1), the weights rest on a few samples
  and the weighted source risk says little about the target.

`loss` is the per-sample cross-entropy (``"cross_entropy"``, a proper score) or the 0-1 error
(``"error"``). Which criterion ranks the candidates best was measured, not assumed:
`benchmarks/bench_adapt.py uda` records every criterion's choice on every scenario. The default,
``"ensemble"`` with cross-entropy, was chosen on three choosing scenarios (digits blur, a GRU sensor
placement, hospitals covariate + prior shift; mean regret to the best label-free method 0.040, against
0.076 for "dev", 0.076 for "iwv" and 0.074 for "source") and confirmed on four others (regret 0.002;
never below source only): importance weighting needs overlapping domains, and on corrupted digits a
domain classifier separates them perfectly (AUC 1.0, ESS 2 %), where every weighted source estimate
said ~1.0 accuracy for every candidate.

With a few target labels (`x_target_labeled`, `y_target_labeled`) the labels score the candidates
instead: an adapter that learns from target labels is cross-validated over `n_splits` folds of them
(fitted on the other folds, scored on the held fold); one that does not use them is fitted once and
scored on all of them. The chosen adapter is then refitted on all the labels.

Never worse than doing nothing by more than noise: the candidate with the lowest score is chosen
only if its paired improvement over source only exceeds `margin` standard errors of the paired
difference (and the tie tolerance `TIE`); otherwise source only is returned
(`Selection.chosen == "source_only"`).

Candidates ``"auto"``: source only, and the registered adapters that suit the shift that
`shiftkit.diagnose` finds (feature-alignment, test-time, self-training and importance-weighting
adapters for covariate shift; prior correction for label shift alone, class-weighted MMD for label
and covariate shift together; the supervised adapters when target labels exist); with no shift
found, source only and nothing else. Adapters that cannot adapt the model
(`Adapter.supports`) are left out, with a note.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from shiftkit._json import dataclass_to_dict, jsonable
from shiftkit._keras import n_classes, predict, require_model, to_classes, to_probabilities
from shiftkit._validation import check_option, check_positive_int, check_real, check_seed, encode_labels
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import adapter_names, fit_data, get_adapter
from shiftkit.shift.density_ratio import DensityRatioEstimator
from shiftkit.shift.diagnose import diagnose
from shiftkit.shift.features import FeatureSpace, check_model_input

__all__ = ["select_adapter", "Selection", "CandidateScore", "CRITERIA", "SOURCE_ONLY", "auto_candidates"]

#: Name of the do-nothing candidate (the source model as it is).
SOURCE_ONLY = "source_only"
#: Scoring criteria without target labels.
CRITERIA = ("dev", "iwv", "source", "ensemble")
LOSSES = ("cross_entropy", "error")
#: Probabilities are clipped at this floor inside the cross-entropy (a confident mistake costs at most ~16 nats).
PROB_FLOOR = 1e-7
#: The least number of fitted candidates (source only included) for the "ensemble" criterion: with two,
#: their mean probabilities side with whichever model is more confident, not with a majority.
MIN_ENSEMBLE = 3
#: Paired improvements below this (in the loss's units: nats, or a share of errors) are ties, and a
#: tie goes to source only: a candidate must be better by more than noise *and* by more than nothing.
TIE = 1e-3

# Which registered adapters suit which diagnosed kind of shift ("auto"), in the order they are tried.
_UNSUPERVISED_COVARIATE = ("adabn", "coral", "mmd", "dann", "self_training", "importance")
_SUPERVISED = ("finetune", "copy")
#: Candidates that are a registered adapter with other settings: name -> (adapter name, settings).
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {"mmd_class_weighted": ("mmd", {"class_weights": "auto"})}


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """One candidate's estimated target risk.

    Attributes:
        name: the candidate (`SOURCE_ONLY` or an adapter's registry name).
        score: the estimated target risk (lower is better); None if the candidate failed.
        std_error: standard error of `score`.
        diff_vs_source_only: paired difference `score - score(source only)` (negative: better).
        diff_std_error: standard error of that paired difference.
        accuracy: the estimated target accuracy under the same weighting (1 - weighted 0-1 error).
        fit_seconds: wall time of fitting the candidate (all folds).
        error: why the candidate could not be fitted or scored, if it could not.
    """

    name: str
    score: float | None
    std_error: float | None
    diff_vs_source_only: float | None
    diff_std_error: float | None
    accuracy: float | None
    fit_seconds: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


@dataclasses.dataclass(frozen=True)
class Selection:
    """What `select_adapter` chose, and why.

    Attributes:
        chosen: the chosen candidate's name (`SOURCE_ONLY`: keep the source model).
        adapter: the chosen, fitted adapter (None for source only). Not part of `to_dict`.
        criterion: the scoring criterion ("ensemble", "dev", "iwv", "source", or "target_labels").
        loss: the per-sample loss ("cross_entropy" or "error").
        scores: every candidate's `CandidateScore`, source only first.
        reason: one sentence on the choice.
        kinds: the kinds of shift diagnosed (empty if candidates were given explicitly and no
            diagnosis was run).
        ess_fraction: effective sample size of the importance weights / held-out source samples
            (None when target labels scored the candidates).
        domain_auc: out-of-fold AUC of the domain classifier behind the weights (None likewise).
        notes: candidates left out and why.
        margin: the guard's margin in standard errors.
        fitted: every fitted candidate adapter by name (None for source only). Not part of `to_dict`.
        sample_losses: per candidate, the per-sample `[cross-entropy, error]` on the scoring set
            (`(n, 2)`), `weights` the importance weights `(n,)` (None when target labels scored)
            and `target_probabilities` each candidate's class probabilities on the unlabelled
            target (`(m, K)`): what `rescore` recomputes the scores from. Not part of `to_dict`.
    """

    chosen: str
    adapter: Any
    criterion: str
    loss: str
    scores: tuple[CandidateScore, ...]
    reason: str
    kinds: tuple[str, ...] = ()
    ess_fraction: float | None = None
    domain_auc: float | None = None
    notes: tuple[str, ...] = ()
    margin: float = 1.0
    fitted: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    sample_losses: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    weights: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    target_probabilities: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False,
                                                                    compare=False)

    def rescore(self, *, criterion: str | None = None, loss: str | None = None,
                among: Sequence[str] | None = None) -> Selection:
        """The same fitted candidates scored by another criterion or loss, or chosen among fewer of them.

        No candidate is refitted: the scores are recomputed from `sample_losses` and `weights`.
        (With target labels, the criterion stays "target_labels" and a cross-validated candidate's
        `adapter` is its last fold's fit.)

        Args:
            criterion: "dev", "iwv" or "source" (None: this selection's).
            loss: "cross_entropy" or "error" (None: this selection's).
            among: candidate names to choose from (source only is always among them); None: all.

        Returns:
            A new `Selection`.
        """

        labels = self.criterion == "target_labels"
        crit = self.criterion if criterion is None or labels else check_option(criterion, "criterion", CRITERIA)
        loss = self.loss if loss is None else check_option(loss, "loss", LOSSES)
        names = [s.name for s in self.scores]
        if among is not None:
            unknown = [a for a in among if a not in names]
            if unknown:
                raise ValueError(f"among names unknown candidates {unknown}; candidates: {', '.join(names)}.")
            names = [n for n in names if n == SOURCE_ONLY or n in among]
        seconds = {s.name: s.fit_seconds for s in self.scores}
        errors = {s.name: s.error for s in self.scores if s.error}
        weights = self.weights
        if weights is None:
            weights = np.ones(len(next(iter(self.sample_losses.values()))))
        crit, note = (crit, "") if labels else _effective_criterion(crit, names, self.sample_losses)
        scores = _score_all(names, self.sample_losses, weights, "source" if labels else crit,
                            LOSSES.index(loss), seconds, errors, self.target_probabilities)
        chosen, reason = _decide(scores, self.margin, None if labels else self.ess_fraction)
        reason += note
        return dataclasses.replace(self, chosen=chosen, adapter=self.fitted.get(chosen), criterion=crit, loss=loss,
                                   scores=tuple(scores), reason=reason)

    def score_of(self, name: str) -> CandidateScore:
        """The `CandidateScore` of candidate `name`."""
        for s in self.scores:
            if s.name == name:
                return s
        raise KeyError(f"No candidate {name!r}; candidates: {', '.join(s.name for s in self.scores)}.")

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if f.name not in ("adapter", "fitted", "sample_losses", "weights", "scores", "target_probabilities")
        }
        out = jsonable(out)
        out["scores"] = [s.to_dict() for s in self.scores]
        return out

    def __str__(self) -> str:
        lines = [f"chosen: {self.chosen} ({self.criterion}, {self.loss}). {self.reason}"]
        for s in self.scores:
            if s.score is None:
                lines.append(f"  {s.name:<14} failed: {s.error}")
                continue
            diff = "" if s.diff_vs_source_only is None else (
                f"  vs source only {s.diff_vs_source_only:+.4f} +- {s.diff_std_error:.4f}"
            )
            acc = "" if s.accuracy is None else f"  est. accuracy {s.accuracy:.3f}"
            lines.append(f"  {s.name:<14} {s.score:.4f} +- {s.std_error:.4f}{diff}{acc}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- estimators
def _weighted_risk(losses: np.ndarray, weights: np.ndarray, criterion: str) -> tuple[float, float]:
    """Estimated target risk and its standard error from per-sample losses and importance weights.

    Args:
        losses: `(n,)` per-sample losses on held-out source data (or paired loss differences).
        weights: `(n,)` importance weights, mean about 1.
        criterion: "dev" (control variate), "iwv" (weighted mean) or "source" (unweighted mean).

    Returns:
        `(estimate, standard error)`.
    """

    n = len(losses)
    if criterion == "source":
        terms = losses
    else:
        terms = weights * losses
        if criterion == "dev":
            var_w = float(np.var(weights, ddof=1)) if n > 1 else 0.0
            if var_w > 1e-12:
                eta = -float(np.cov(terms, weights, ddof=1)[0, 1]) / var_w
                # mean(w l) + eta * (mean(w) - 1): the terms w l + eta (w - 1) have that mean.
                terms = terms + eta * (weights - 1.0)
    est = float(np.mean(terms))
    se = float(np.std(terms, ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    return est, se


def _probability_scores(probs: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-sample `[cross-entropy, 0-1 error]` of class probabilities `(n, K)` against class codes."""
    ce = -np.log(np.clip(probs[np.arange(len(codes)), codes], PROB_FLOOR, 1.0))
    return np.stack([ce, (probs.argmax(axis=1) != codes).astype(np.float64)], axis=1)


def _sample_scores(model: Any, outputs: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Per-sample `[cross-entropy, 0-1 error]`, shape `(n, 2)`, of a model's outputs against class codes.

    The error follows the model's own decision rule (`to_classes`: the threshold of a single unit).
    """
    scores = _probability_scores(to_probabilities(model, outputs), codes)
    scores[:, 1] = to_classes(model, outputs) != codes
    return scores


# ----------------------------------------------------------------------------------- candidates
def auto_candidates(
    kinds: Sequence[str], *, has_target_labels: bool, source_model: Any = None
) -> tuple[list[str], list[str]]:
    """The candidates of ``candidates="auto"`` for the diagnosed kinds of shift.

    Args:
        kinds: the kinds `shiftkit.diagnose` found ("covariate", "label", "concept", "imbalance").
        has_target_labels: whether a few target labels exist (the supervised adapters join).
        source_model: when given, adapters that cannot adapt it (`Adapter.supports`) are left out.

    Returns:
        `(names, notes)`: registered adapter names in the order they are tried (source only is
        not listed; it is always a candidate), and notes on what was left out.
    """

    wanted: list[str] = []
    shift = any(k in kinds for k in ("covariate", "label", "concept"))
    covariate = "covariate" in kinds or "concept" in kinds
    if covariate:
        wanted += _UNSUPERVISED_COVARIATE
    if "label" in kinds:
        # Prior correction assumes p(x | y) unchanged: only for label shift alone. With covariate
        # shift too, class-weighted alignment (MMD with estimated class ratios) is the candidate.
        wanted += ["mmd_class_weighted"] if covariate else ["label_shift"]
    if shift and has_target_labels:
        wanted += _SUPERVISED
    registered = set(adapter_names())
    names, notes = [], []
    for name in dict.fromkeys(wanted):
        base = RECIPES[name][0] if name in RECIPES else name
        if base not in registered:
            continue
        if source_model is not None and not get_adapter(base).supports(source_model):
            notes.append(f"{name}: cannot adapt this model ({get_adapter(base).__name__}.supports is False)")
            continue
        names.append(name)
    return names, notes


@dataclasses.dataclass(frozen=True)
class _Named:
    """A candidate given under a name of the user's (`candidates={"mmd_weighted": MMDAdapter(...)}`)."""

    name: str
    item: Any


def _check_candidates(candidates: Any) -> list[Any]:
    if isinstance(candidates, (str, Adapter)):
        candidates = [candidates]
    if isinstance(candidates, Mapping):
        items = [(str(k), v) for k, v in candidates.items()]
    elif isinstance(candidates, Sequence):
        items = [(None, c) for c in candidates]
    else:
        raise TypeError(
            f'candidates must be "auto", a list of adapter names ({", ".join(adapter_names())}) and/or '
            f"Adapter instances, or a dict name -> name/instance; got {type(candidates).__name__}."
        )
    out: list[Any] = []
    for label, c in items:
        if isinstance(c, str):
            if c != SOURCE_ONLY:
                get_adapter(c)  # a clear error for an unknown name
        elif not isinstance(c, Adapter):
            raise TypeError(f"Each candidate must be an adapter name or an Adapter instance; got {type(c).__name__}.")
        out.append(c if label is None or c == SOURCE_ONLY else _Named(label, c))
    return out


def _unwrap(c: Any) -> Any:
    return c.item if isinstance(c, _Named) else c


def _candidate_name(c: Any) -> str:
    if isinstance(c, _Named):
        return c.name
    return c if isinstance(c, str) else type(c).name or type(c).__name__


def _candidate_class(c: Any) -> type | None:
    c = _unwrap(c)
    if isinstance(c, str):
        return None if c == SOURCE_ONLY else get_adapter(c)
    return type(c)


def _new_adapter(c: Any, source_model: Any) -> Adapter:
    c = _unwrap(c)
    if isinstance(c, str):
        return get_adapter(c)(source_model)
    return type(c).from_config(c.get_config(), source_model)


def _fit(
    adapter: Adapter,
    *,
    source_train: tuple[np.ndarray, np.ndarray],
    source_held_out: tuple[np.ndarray, np.ndarray],
    target_labeled: tuple[np.ndarray, np.ndarray] | None,
    target_unlabeled: np.ndarray,
    fit_kwargs: dict[str, Any],
) -> Adapter:
    data = fit_data(
        type(adapter),
        source_train=source_train,
        source_held_out=source_held_out,
        target_labeled=target_labeled,
        target_unlabeled=target_unlabeled,
    )
    return adapter.fit(**data, **fit_kwargs)


def _stratified_folds(codes: np.ndarray, n_splits: int, seed: int | None) -> list[np.ndarray]:
    """`n_splits` disjoint index sets covering `codes`, each class spread evenly (seeded)."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(n_splits)]
    offset = 0
    for k in np.unique(codes):
        idx = rng.permutation(np.flatnonzero(codes == k))
        for j, i in enumerate(idx):
            folds[(j + offset) % n_splits].append(int(i))
        offset += len(idx)
    return [np.sort(np.array(f, dtype=int)) for f in folds]


# ----------------------------------------------------------------------------------- the function
def select_adapter(
    source_model: Any,
    x_source: Any,
    y_source: Any,
    x_target: Any,
    *,
    x_source_val: Any = None,
    y_source_val: Any = None,
    x_target_labeled: Any = None,
    y_target_labeled: Any = None,
    candidates: Any = "auto",
    criterion: str = "ensemble",
    loss: str = "cross_entropy",
    margin: float = 1.0,
    n_splits: int = 3,
    validation_fraction: float = 0.25,
    diagnosis: Any = None,
    fit_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    seed: int | None = 0,
) -> Selection:
    """Fit candidate adapters and choose one by its estimated target risk, without target labels if need be.

    Args:
        source_model: the trained source `keras.Model` (never modified).
        x_source, y_source: labelled source data the adapters train on.
        x_target: unlabelled target inputs.
        x_source_val, y_source_val: labelled *held-out* source data (not seen by the source model
            in training) on which candidates are scored. None: a stratified `validation_fraction`
            of `(x_source, y_source)` is held out (the adapters then train on the rest; the source
            model may have seen those rows, which flatters source only a little).
        x_target_labeled, y_target_labeled: optional few labelled target samples; when given they
            score the candidates (cross-validated) instead of the importance-weighted source loss.
        candidates: "auto" (see the module docstring), or a list of adapter names and/or Adapter
            instances (their configuration is used; "source_only" is added if missing), or a dict
            name -> adapter name / instance (the names label the scores).
        criterion: "ensemble" (default), "dev", "iwv" or "source" (scoring without target labels; the
            default was chosen on the benchmark's choosing scenarios, see the module docstring).
        loss: "cross_entropy" (default) or "error" (0-1 loss).
        margin: a candidate replaces source only when its paired improvement exceeds `margin`
            standard errors of the paired difference (0: the lowest score always wins).
        n_splits: folds of the target labels for adapters that learn from them.
        validation_fraction: share of `(x_source, y_source)` held out when `x_source_val` is None.
        diagnosis: a `shiftkit.Diagnosis` of these data for "auto" (None: `shiftkit.diagnose` is run).
        fit_kwargs: extra keyword arguments of every candidate's `fit` (e.g. `{"verbose": 0,
            "epochs": 5}`); `seed` is passed unless given here.
        progress: optional `progress(i, n, name)` called before fitting the i-th of n candidates
            (the dashboard's progress bar).
        seed: seed of every random step (splits, density ratio, each candidate's fit).

    Returns:
        A `Selection`: the chosen name and fitted adapter, every candidate's score with its
        standard error and its paired difference from source only.

    Raises:
        ValueError / TypeError: invalid data or settings (named), an unknown candidate name.

    Example:
        >>> sel = select_adapter(model, x_src, y_src, x_tgt, x_source_val=x_val, y_source_val=y_val)  # doctest: +SKIP
        >>> print(sel)  # doctest: +SKIP
        >>> adapted = sel.adapter.model if sel.adapter is not None else model  # doctest: +SKIP
    """

    source_model = require_model(source_model, "source_model")
    criterion = check_option(criterion, "criterion", CRITERIA)
    loss = check_option(loss, "loss", LOSSES)
    margin = check_real(margin, "margin", low=0, example="1.0 (0: the lowest score always wins)")
    n_splits = check_positive_int(n_splits, "n_splits", minimum=2)
    validation_fraction = check_real(validation_fraction, "validation_fraction", low=0, high=1, low_open=True,
                                     high_open=True, example=0.25)
    seed = check_seed(seed)
    fit_kwargs = dict(fit_kwargs or {})
    fit_kwargs.setdefault("seed", seed)
    fit_kwargs.setdefault("verbose", 0)

    xs = check_model_input(source_model, x_source, "x_source")
    xt = check_model_input(source_model, x_target, "x_target")
    if (x_source_val is None) != (y_source_val is None):
        raise ValueError("Pass both x_source_val and y_source_val (labelled held-out source data), or neither.")
    if (x_target_labeled is None) != (y_target_labeled is None):
        raise ValueError("Pass both x_target_labeled and y_target_labeled, or neither.")
    xv = None if x_source_val is None else check_model_input(source_model, x_source_val, "x_source_val")
    xl = None if x_target_labeled is None else check_model_input(source_model, x_target_labeled, "x_target_labeled")
    n_out = n_classes(source_model)
    _, (cs, cv, cl) = encode_labels(
        y_source, y_source_val, y_target_labeled, names=["y_source", "y_source_val", "y_target_labeled"],
        n_outputs=n_out,
    )
    for arr, codes, name in ((xs, cs, "y_source"), (xv, cv, "y_source_val"), (xl, cl, "y_target_labeled")):
        if arr is not None and len(codes) != len(arr):
            raise ValueError(f"{name} has {len(codes)} labels for {len(arr)} samples; pass one label per row.")
    ys_raw = np.asarray(y_source)
    if xv is None:  # hold out a stratified share of the source data for scoring
        folds = _stratified_folds(cs, max(2, round(1.0 / validation_fraction)), seed)
        val_idx = folds[0]
        train_idx = np.setdiff1d(np.arange(len(xs)), val_idx)
        xv, cv, yv_raw = xs[val_idx], cs[val_idx], ys_raw[val_idx]
        xs, cs, ys_raw = xs[train_idx], cs[train_idx], ys_raw[train_idx]
    else:
        yv_raw = np.asarray(y_source_val)
    yl_raw = None if xl is None else np.asarray(y_target_labeled)
    labels = xl is not None

    # ---- candidates
    notes: list[str] = []
    kinds: tuple[str, ...] = ()
    if isinstance(candidates, str) and candidates == "auto":
        if diagnosis is None:
            diagnosis = diagnose(xv, xt, yv_raw, model=source_model, seed=seed, second_opinion=False)
        kinds = tuple(diagnosis.kinds)
        names, notes = auto_candidates(kinds, has_target_labels=labels, source_model=source_model)
        chosen_from: list[Any] = [SOURCE_ONLY] + [
            _Named(n, get_adapter(RECIPES[n][0])(source_model, **RECIPES[n][1])) if n in RECIPES else n for n in names
        ]
    else:
        chosen_from = _check_candidates(candidates)
        if SOURCE_ONLY not in chosen_from:
            chosen_from = [SOURCE_ONLY, *chosen_from]
        kept = []
        for c in chosen_from:
            cls = _candidate_class(c)
            if cls is not None and not cls.supports(source_model):
                notes.append(f"{_candidate_name(c)}: cannot adapt this model ({cls.__name__}.supports is False)")
                continue
            if cls is not None and "y_target" in cls.requires and not labels:
                notes.append(f"{_candidate_name(c)}: needs target labels (pass x_target_labeled, y_target_labeled)")
                continue
            kept.append(c)
        chosen_from = kept

    # ---- how candidates are scored
    weights = ess_fraction = auc = None
    if labels:
        score_codes, score_x = cl, xl
        crit = "target_labels"
    else:
        score_codes, score_x = cv, xv
        crit = criterion
        # The importance weights whatever the criterion, so that `rescore` can switch criteria.
        space = FeatureSpace(source_model)
        ratio = DensityRatioEstimator(seed=seed).fit(space(xv), space(xt))
        weights = np.asarray(ratio.weights_, dtype=np.float64)
        ess_fraction, auc = float(ratio.ess_fraction_), float(ratio.domain_auc_)

    source_train = (xs, ys_raw)
    source_held_out = (xv, yv_raw)
    fitted: dict[str, Adapter | None] = {}
    losses: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    names_in_order = []
    for i, c in enumerate(chosen_from):
        name = _candidate_name(c)
        base_name, j = name, 2
        while name in names_in_order:
            name, j = f"{base_name}_{j}", j + 1
        names_in_order.append(name)
        if progress is not None:
            progress(i, len(chosen_from), name)
        start = time.perf_counter()
        try:
            if c == SOURCE_ONLY:
                fitted[name] = None
                out = np.asarray(predict(source_model, score_x))
                losses[name] = _sample_scores(source_model, out, score_codes)
            else:
                losses[name], fitted[name] = _fit_and_score(
                    c, source_model, source_train=source_train, source_held_out=source_held_out,
                    xt=xt, xl=xl, yl_raw=yl_raw, score_x=score_x, score_codes=score_codes,
                    n_splits=n_splits, seed=seed, fit_kwargs=fit_kwargs, cl=cl,
                )
        except (ValueError, TypeError) as exc:  # a candidate that cannot run on these data
            errors[name] = str(exc)
        seconds[name] = time.perf_counter() - start

    # ---- every fitted candidate's class probabilities on the unlabelled target (the "ensemble" criterion)
    target_probs: dict[str, np.ndarray] = {}
    for name in names_in_order:
        if name in losses:
            model = source_model if fitted[name] is None else fitted[name].model_
            target_probs[name] = to_probabilities(model, np.asarray(predict(model, xt)))

    # ---- scores, paired differences from source only
    w = np.ones(len(score_codes)) if weights is None else weights
    crit, note = (crit, "") if labels else _effective_criterion(crit, names_in_order, losses)
    scores = _score_all(names_in_order, losses, w, "source" if labels else crit, LOSSES.index(loss), seconds, errors,
                        target_probs)
    chosen, reason = _decide(scores, margin, None if labels else ess_fraction)
    reason += note
    adapter = fitted.get(chosen)
    if adapter is not None and labels:
        cand = chosen_from[names_in_order.index(chosen)]
        cls = _candidate_class(cand)
        if "y_target" in cls.requires:  # cross-validated on the labels: refit on all of them
            adapter = _fit(
                _new_adapter(cand, source_model), source_train=source_train, source_held_out=source_held_out,
                target_labeled=(xl, yl_raw), target_unlabeled=xt, fit_kwargs=fit_kwargs,
            )
    return Selection(
        chosen=chosen,
        adapter=adapter,
        criterion=crit,
        loss=loss,
        scores=tuple(scores),
        reason=reason,
        kinds=kinds,
        ess_fraction=ess_fraction,
        domain_auc=auc,
        notes=tuple(notes) + tuple(f"{k}: {v}" for k, v in errors.items()),
        margin=margin,
        fitted=fitted,
        sample_losses=losses,
        weights=weights,
        target_probabilities=target_probs,
    )


def _effective_criterion(criterion: str, names: Sequence[str], losses: dict[str, np.ndarray]) -> tuple[str, str]:
    """"ensemble" with fewer than `MIN_ENSEMBLE` fitted candidates falls back to "dev" (and says so)."""
    if criterion != "ensemble":
        return criterion, ""
    n = sum(1 for name in names if name in losses)
    if n >= MIN_ENSEMBLE:
        return criterion, ""
    return "dev", (
        f" (The 'ensemble' criterion needs at least {MIN_ENSEMBLE} fitted candidates, source only included, for "
        f"its pseudo-labels to be a majority vote; there were {n}, so 'dev' scored them.)"
    )


def _score_all(
    names: Sequence[str],
    losses: dict[str, np.ndarray],
    weights: np.ndarray,
    criterion: str,
    col: int,
    seconds: dict[str, float],
    errors: dict[str, str],
    target_probs: dict[str, np.ndarray] | None = None,
) -> list[CandidateScore]:
    """Each candidate's estimated risk (column `col` of its per-sample losses) and its paired difference from source only.

    With `criterion="ensemble"` the per-sample losses are taken on the target instead, against the
    pseudo-labels of the ensemble (mean probabilities) of the candidates in `names`, unweighted.
    """
    if criterion == "ensemble":
        members = [n for n in names if n in losses and n in (target_probs or {})]
        pseudo = np.mean([target_probs[n] for n in members], axis=0).argmax(axis=1)
        losses = {n: _probability_scores(target_probs[n], pseudo) for n in members}
        weights = np.ones(len(pseudo))
        criterion = "source"  # an unweighted mean, over the target
    base = losses[SOURCE_ONLY][:, col]
    scores: list[CandidateScore] = []
    for name in names:
        if name not in losses:
            scores.append(CandidateScore(name, None, None, None, None, None, seconds.get(name, 0.0), errors.get(name)))
            continue
        est, se = _weighted_risk(losses[name][:, col], weights, criterion)
        if name == SOURCE_ONLY:
            diff = diff_se = None
        else:
            diff, diff_se = _weighted_risk(losses[name][:, col] - base, weights, criterion)
        acc = 1.0 - _weighted_risk(losses[name][:, 1], weights, criterion)[0]
        scores.append(CandidateScore(name, est, se, diff, diff_se, float(np.clip(acc, 0.0, 1.0)), seconds.get(name, 0.0)))
    return scores


def _decide(scores: Sequence[CandidateScore], margin: float, ess_fraction: float | None) -> tuple[str, str]:
    """The chosen candidate and why: the lowest score, if it beats source only by more than noise."""
    best = min((s for s in scores if s.score is not None), key=lambda s: s.score)
    if best.name == SOURCE_ONLY:
        chosen, reason = SOURCE_ONLY, "No candidate scored better than the source model as it is."
    elif -best.diff_vs_source_only > max(margin * best.diff_std_error, TIE):
        chosen = best.name
        reason = (
            f"{best.name} has the lowest estimated target risk, {-best.diff_vs_source_only:.4f} below source only "
            f"(more than {margin:g} standard errors, {best.diff_std_error:.4f})."
        )
    else:
        chosen = SOURCE_ONLY
        reason = (
            f"{best.name} scored lowest, but only {-best.diff_vs_source_only:.4f} below source only, within "
            f"{margin:g} standard errors ({best.diff_std_error:.4f}) or under the tie tolerance {TIE:g}: not "
            "distinguishable from doing nothing, so the source model is kept."
        )
    if ess_fraction is not None and ess_fraction < 0.1:
        reason += (
            f" The importance weights have an effective sample size of only {ess_fraction:.1%} of the held-out "
            "source data: the shift is large and the label-free scores are uncertain."
        )
    return chosen, reason


def _fit_and_score(
    c: Any,
    source_model: Any,
    *,
    source_train: tuple[np.ndarray, np.ndarray],
    source_held_out: tuple[np.ndarray, np.ndarray],
    xt: np.ndarray,
    xl: np.ndarray | None,
    yl_raw: np.ndarray | None,
    score_x: np.ndarray,
    score_codes: np.ndarray,
    n_splits: int,
    seed: int | None,
    fit_kwargs: dict[str, Any],
    cl: np.ndarray | None,
) -> tuple[np.ndarray, Adapter]:
    """Per-sample `[cross-entropy, error]` of candidate `c` on the scoring set, and a fitted adapter.

    Scoring on held-out source data: an adapter that calibrates on held-out source data
    (`source_data == "held_out"`) is cross-fitted (fitted on one half, scored on the other) so that it
    is never scored on the rows it was fitted on; the returned adapter is fitted on all of them.
    Scoring on target labels: an adapter that learns from them is cross-validated over `n_splits`
    folds; the returned adapter is one fold's (the caller refits the chosen one on all labels).
    """

    cls = _candidate_class(c)
    # As `fit_data`: only an adapter that requires target labels gets them (the others get the
    # unlabelled target inputs), so only those are cross-validated.
    learns_labels = xl is not None and "y_target" in cls.requires
    leaks_source = xl is None and cls.source_data == "held_out"

    def fit(source_held_out_: Any, target_labeled_: Any) -> Adapter:
        return _fit(
            _new_adapter(c, source_model), source_train=source_train, source_held_out=source_held_out_,
            target_labeled=target_labeled_, target_unlabeled=xt, fit_kwargs=fit_kwargs,
        )

    losses = np.empty((len(score_codes), 2))
    if learns_labels:
        adapter = None
        for idx in _stratified_folds(cl, n_splits, seed):
            rest = np.setdiff1d(np.arange(len(xl)), idx)
            adapter = fit(source_held_out, (xl[rest], yl_raw[rest]))
            out = adapter.predict(xl[idx])
            losses[idx] = _sample_scores(adapter.model_, out, score_codes[idx])
        return losses, adapter
    if leaks_source:
        xv, yv = source_held_out
        halves = _stratified_folds(score_codes, 2, seed)
        for a, b in ((0, 1), (1, 0)):
            part = fit((xv[halves[a]], yv[halves[a]]), None)
            out = part.predict(xv[halves[b]])
            losses[halves[b]] = _sample_scores(part.model_, out, score_codes[halves[b]])
        adapter = fit(source_held_out, None)
        return losses, adapter
    adapter = fit(source_held_out, None if xl is None else (xl, yl_raw))
    out = adapter.predict(score_x)
    return _sample_scores(adapter.model_, out, score_codes), adapter
