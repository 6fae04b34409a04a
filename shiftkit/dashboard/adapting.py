"""The dashboard's adaptation step, over the one adapter registry (`shiftkit.adapt.registry`).

The sidebar lists `adapter_names()` (every registered adapter, a test's toy included) by
`adapter_label` (the class's `title`), offers the settings each class has (`adapter_settings`,
with the class's own defaults) and the epochs of adapters that train (`adapter_trains`), and
`run_adaptation` fits any of them the same way: the data the class declares
(`shiftkit.adapt.registry.fit_data`), then one `fit(**data, **options)` call, options holding only
what the user set. No branch on the adapter's kind, no default of the dashboard's own. An adapter
whose required data the page's domains lack is named unavailable, with the reason
(`adapter_unavailable`). No Streamlit import.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import pandas as pd

from shiftkit._keras import predict, to_classes
from shiftkit.adapt.registry import adapter_names, fit_data, get_adapter
from shiftkit.check import parse_target_priors, priors_in_class_order
from shiftkit.dashboard.errors import DashboardError, user_message
from shiftkit.dashboard.pipeline import measure_settings
from shiftkit.files import Domains

__all__ = [
    "AdaptConfig",
    "AdaptationResult",
    "Setting",
    "adapter_label",
    "adapter_names",
    "adapter_needs_target_labels",
    "adapter_settings",
    "adapter_trains",
    "adapter_unavailable",
    "comparison_frame",
    "run_adaptation",
    "selection_frame",
]


@dataclasses.dataclass(frozen=True)
class Setting:
    """A constructor setting the sidebar offers for an adapter that has it.

    Attributes:
        name: the constructor keyword (e.g. "learning_rate").
        label: the widget's label.
        default: the adapter class's own default (from its signature).
        choices: values offered besides "the adapter's default" (a choice widget), or None for a
            checkbox (a True/False default) or a number widget over `[low, high]` in steps of `step`.
        help: the widget's tooltip.
    """

    name: str
    label: str
    default: Any
    choices: tuple[float, ...] | None = None
    low: float = 0.0
    high: float = 100.0
    step: float = 0.5
    help: str = ""

    @property
    def kind(self) -> str:
        """"choice" (of `choices` or the default), "flag" (a True/False setting) or "number"."""
        if self.choices is not None:
            return "choice"
        return "flag" if isinstance(self.default, bool) else "number"


_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
#: How the sidebar shows the constructor settings it knows; each is offered for the adapters that
#: have it, starting at the class's default. A setting of a new adapter needs no entry to be used
#: (`AdaptConfig.settings` takes any constructor keyword); an entry only gives it a widget.
SETTING_WIDGETS: dict[str, dict[str, Any]] = {
    "learning_rate": {"label": "Learning rate", "choices": _RATES,
                      "help": "Optimizer learning rate: Adam for most adapters, SGD with momentum for DANN (its default "
                              "0.01); for an adapter that trains in stages, the head's rate first."},
    "fine_tune_learning_rate": {"label": "Fine-tune learning rate", "choices": _RATES,
                                "help": "Adam learning rate of the unfrozen source layers (stage 2)."},
    "mmd_weight": {"label": "MMD weight", "low": 0.0, "high": 100.0, "step": 0.5,
                   "help": "Weight of the MMD² alignment term beside the source task loss."},
    "coral_weight": {"label": "CORAL weight", "low": 0.0, "high": 100.0, "step": 0.5,
                     "help": "Weight of the CORAL term beside the source task loss: the scale-free gap of the "
                             "source and target feature second moments (means and covariances)."},
    "tent": {"label": "TENT: also train the BatchNorm scales and offsets",
             "help": "Minimise the target predictions' entropy w.r.t. the BatchNorm scales and offsets, "
                     "after AdaBN's statistics."},
}
#: What a missing data keyword means on this page, and how the user supplies it.
_MISSING = {
    "x_source": "source inputs",
    "y_source": "the source has no labels: choose a label column (CSV / Parquet) or add 'y' to the source .npz",
    "x_target": "target inputs",
    "y_target": "the target has no labels: give the target file the label column (CSV / Parquet) or a 'y' "
                "array (.npz)",
}


def _adapter_class(name: str) -> type:
    try:
        return get_adapter(name)
    except ValueError as exc:
        raise DashboardError(str(exc)) from None


def _parameters(cls: type) -> dict[str, Any]:
    """The adapter's constructor settings and their defaults (`Adapter.default_config`)."""
    return cls.default_config()


def adapter_label(name: str) -> str:
    """The adapter's menu label: its class's `title` (its name when it has none)."""
    cls = _adapter_class(name)
    return cls.title or cls.name


def _short_label(cls: type) -> str:
    """'Copy' of 'Copy: source layers frozen ...' (the title up to its colon), for messages."""
    return (cls.title or cls.name).split(":", 1)[0].strip()


def adapter_settings(name: str) -> tuple[Setting, ...]:
    """The settings of adapter `name` the sidebar has widgets for, each with the class's default."""
    params = _parameters(_adapter_class(name))
    return tuple(Setting(name=key, default=params[key], **widget)
                 for key, widget in SETTING_WIDGETS.items() if key in params)


def adapter_trains(name: str) -> bool:
    """True when adapter `name` trains by gradient steps (it has a `learning_rate`): the sidebar offers epochs."""
    return "learning_rate" in _parameters(_adapter_class(name))


def _trains_on_target_labels(cls: type) -> bool:
    return "y_target" in cls.requires


def adapter_needs_target_labels(name: str) -> bool:
    """True when adapter `name` requires target labels: it trains on a few labelled target samples per class."""
    return _trains_on_target_labels(_adapter_class(name))


def _fit_error(cls: type, given: dict[str, Any]) -> ValueError | None:
    """The class's own verdict on the data (`Adapter.check_fit_data`): its ValueError, or None when they do."""
    try:
        cls.check_fit_data(**given)
    except ValueError as exc:
        return exc
    return None


def adapter_unavailable(name: str, domains: Domains) -> str | None:
    """Why adapter `name` cannot run on `domains` (the data it requires and they lack), or None.

    Decided by the class itself (`Adapter.check_fit_data` on the domains' data), so a new adapter's
    declaration is all it takes; the message says where the page's user adds what is missing, and
    which adapters run on the data as they are.
    """
    cls = _adapter_class(name)
    given = {"x_source": domains.x_source, "y_source": domains.y_source,
             "x_target": domains.x_target, "y_target": domains.y_target}
    error = _fit_error(cls, given)
    if error is None:
        return None
    missing = [k for k in cls.requires if given.get(k) is None]
    if not missing:
        return f"The {_short_label(cls)} adapter cannot run on these data: {user_message(error)}"
    others = [_short_label(get_adapter(n)) for n in adapter_names()
              if n != name and _fit_error(get_adapter(n), given) is None]
    hint = f" Or choose an adapter that runs without them: {', '.join(others)}." if others else ""
    return (f"The {_short_label(cls)} adapter needs {', '.join(missing)}, and "
            + "; ".join(_MISSING.get(k, k) for k in missing) + "." + hint)


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """The adapter chosen in the sidebar and what the user set; everything else is the adapter's default.

    Attributes:
        adapter: a registered adapter name (`adapter_names()`).
        epochs: training epochs passed to `fit`; None: the adapter's own default (copy / fine-tune:
            until the held-out loss stops improving).
        settings: constructor settings the user set, as `(keyword, value)` pairs (a dict is accepted
            and stored sorted); the others keep the class's defaults.
        labels_per_class: labelled target samples per class for adapters that train on target
            labels (those that require `y_target`).
        target_priors: the sidebar's known target class proportions (text, e.g. "benign=0.92,
            malignant=0.08"), for an adapter that takes `target_priors` (`LabelShiftAdapter`: the
            correction to that prevalence instead of an estimate); "" for the others.

    Raises:
        DashboardError: an unknown adapter, or a setting its class does not have.
    """

    adapter: str = "copy"
    epochs: int | None = None
    settings: tuple[tuple[str, Any], ...] = ()
    labels_per_class: int = 10
    target_priors: str = ""

    def __post_init__(self) -> None:
        settings = tuple(sorted(dict(self.settings).items()))
        object.__setattr__(self, "settings", settings)
        # "" for an adapter that does not use it: its cache key does not change with the text
        takes = "target_priors" in _parameters(_adapter_class(self.adapter))
        object.__setattr__(self, "target_priors", str(self.target_priors).strip() if takes else "")
        if settings:
            known = _parameters(_adapter_class(self.adapter))
            for key, _ in settings:
                if key not in known:
                    raise DashboardError(
                        f"The {self.adapter!r} adapter has no setting {key!r}; its settings: {', '.join(known)}."
                    )

    def describe(self) -> str:
        """One line for the page: the adapter's title and what it will be given."""
        cls = _adapter_class(self.adapter)
        parts = []
        if _trains_on_target_labels(cls):
            parts.append(f"{self.labels_per_class} labelled target samples per class")
        if cls.source_data == "held_out" and "x_source" in cls.requires:
            parts.append("fitted on the held-out source")
        if adapter_trains(self.adapter):
            parts.append("the adapter's default epochs" if self.epochs is None else f"{self.epochs} epochs")
        parts += [f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}" for key, value in self.settings]
        if not self.settings and adapter_settings(self.adapter):
            parts.append("its default settings")
        if self.target_priors:
            parts.append(f"the given target class proportions ({self.target_priors})")
        title = cls.title or cls.name
        return f"{title} ({', '.join(parts)})" if parts else title


@dataclasses.dataclass(eq=False)
class AdaptationResult:
    """What one adaptation run produced.

    Attributes:
        config: the `AdaptConfig` used.
        report: the library's `AdaptationReport` (before/after/comparison/accuracies).
        adapter: the fitted adapter.
        n_target_labels_used: labelled target samples used for training (excluded from evaluation).
        n_target_eval: target samples the before/after report and accuracies are measured on.
        features_after: `(source, target)` features of the adapted model (held-out source, full target).
    """

    config: AdaptConfig
    report: Any
    adapter: Any
    n_target_labels_used: int
    n_target_eval: int
    features_after: tuple[np.ndarray, np.ndarray]


def _few_labels_split(y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick up to `per_class` target samples of each class, at most half of the class's rows: the other half
    is what the adapted model is evaluated on (leaving one row, a slider at 50 per class on a 60-row target
    scored the adaptation on 2 rows)."""
    rng = np.random.default_rng(seed)
    train = []
    for k in np.unique(y):
        rows = np.flatnonzero(y == k)
        take = min(per_class, len(rows) // 2)
        if take > 0:
            train.append(rng.choice(rows, take, replace=False))
    train_idx = np.sort(np.concatenate(train)) if train else np.array([], dtype=np.int64)
    eval_idx = np.setdiff1d(np.arange(len(y)), train_idx)
    return train_idx, eval_idx


def _rows(x: np.ndarray, y: np.ndarray | None, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    return x[idx], None if y is None else y[idx]


def run_adaptation(
    domains: Domains,
    model: Any,
    fit_idx: np.ndarray,
    eval_idx: np.ndarray,
    config: AdaptConfig,
    *,
    n_permutations: int,
    alpha: float,
    seed: int,
    use_target_labels: bool = True,
    progress: Any = None,
) -> AdaptationResult:
    """Fit the chosen adapter on the data it declares and measure shift before and after.

    Data (`shiftkit.adapt.registry.fit_data`): the source's `fit_idx` rows are its training
    source, the `eval_idx` rows its held-out source (the source of the reports, and of an adapter
    with `source_data = "held_out"`, e.g. label-shift correction). An adapter that requires target
    labels trains on `labels_per_class` labelled target samples per class, which are then left out
    of the target the before/after report and the accuracies are measured on; any other gets the
    whole target's inputs. The adapter is built with `from_config(config.settings)` and fitted with
    `fit(**data, verbose=0, seed=seed)`, plus `epochs` when the user set them, and `progress`
    (`progress(i, n, name)`) for an adapter whose `fit` reports progress (the automatic choice, per
    candidate). Before and after are measured with the page's settings (`measure_settings`).

    Raises:
        DashboardError: no model; data the adapter requires is missing (named, with where to add
            it); an unknown adapter; or a parameter the adapter rejects.
    """
    if model is None:
        raise DashboardError("Adaptation needs a source model: choose the default model or upload one.")
    cls = _adapter_class(config.adapter)
    label = _short_label(cls)
    reason = adapter_unavailable(config.adapter, domains)
    if reason is not None:
        raise DashboardError(reason)
    xs, ys = domains.x_source, domains.y_source
    xs_eval, ys_eval = _rows(xs, ys, eval_idx)
    xt, yt = domains.x_target, domains.y_target
    target_eval, target_labeled = np.arange(len(xt)), None
    if _trains_on_target_labels(cls):
        train_idx, target_eval = _few_labels_split(yt, config.labels_per_class, seed)
        if len(train_idx) == 0:
            raise DashboardError("No labelled target samples to train on: raise 'target labels per class'.")
        target_labeled = (xt[train_idx], yt[train_idx])
    options: dict[str, Any] = {"verbose": 0, "seed": seed}
    if config.epochs is not None:
        options["epochs"] = config.epochs
    if progress is not None and cls.reports_progress():
        options["progress"] = progress
    keras.utils.set_random_seed(seed)
    try:
        data = fit_data(cls, source_train=_rows(xs, ys, fit_idx), source_held_out=(xs_eval, ys_eval),
                        target_labeled=target_labeled, target_unlabeled=xt)
        settings = dict(config.settings)
        if config.target_priors:
            settings["target_priors"] = priors_in_class_order(
                parse_target_priors(config.target_priors, "Known target class proportions"), domains.class_name_list(),
                "Known target class proportions")
        adapter = cls.from_config(settings, model)
        adapter.fit(**data, **options)
        xt_eval = xt[target_eval]
        yt_eval = None if (yt is None or not use_target_labels) else yt[target_eval]
        report = adapter.shift_report(xs_eval, xt_eval, ys_eval, yt_eval, **measure_settings(
            domains, n_permutations=n_permutations, alpha=alpha, seed=seed))
        if yt is not None and not use_target_labels and report.accuracy_before is None:
            # Accuracy is judged on true labels whenever they exist, even when the shift report
            # estimates the target label proportions.
            pred_b = to_classes(model, predict(model, xt_eval))  # 0 / 0.5 from the architecture
            report.accuracy_before = float(np.mean(pred_b == yt[target_eval]))
            report.accuracy_after = float(np.mean(adapter.predict_classes(xt_eval) == yt[target_eval]))
        feats = (adapter.features(xs_eval), adapter.features(xt))
    except DashboardError:
        raise
    except (ValueError, TypeError) as exc:
        raise DashboardError(f"{label} failed: {user_message(exc)}") from None
    return AdaptationResult(
        config=config, report=report, adapter=adapter,
        n_target_labels_used=0 if target_labeled is None else len(target_labeled[1]),
        n_target_eval=len(target_eval), features_after=feats,
    )


def comparison_frame(result: AdaptationResult) -> Any:
    """Every figure before and after adaptation (the library's `comparison.to_frame()`), plus the measured
    target accuracy when the comparison does not hold it already."""
    rep = result.report
    frame = rep.comparison.to_frame()
    shown = "figure" in frame.columns and "target accuracy" in set(frame["figure"])
    if rep.accuracy_before is not None and not shown:
        acc = pd.DataFrame([{
            "figure": "target accuracy",
            "before": rep.accuracy_before,
            "after": rep.accuracy_after,
            "change": rep.accuracy_after - rep.accuracy_before,
            "better": "higher",
            "comparable": True,
        }])
        frame = pd.concat([frame, acc], ignore_index=True)
    return frame


def selection_frame(result: AdaptationResult) -> Any:
    """The automatic choice's scores, one row per candidate (None unless the adapter chose among candidates).

    Columns: candidate, estimated target risk and its standard error, the paired difference from
    source only and its standard error, the estimated target accuracy, fit seconds, chosen (bool),
    and the error of a candidate that could not run.
    """
    sel = getattr(result.adapter, "selection_", None)
    if sel is None:
        return None
    return pd.DataFrame([{
        "candidate": s.name,
        "estimated risk": s.score,
        "± (s.e.)": s.std_error,
        "vs source only": s.diff_vs_source_only,
        "± (s.e.) ": s.diff_std_error,
        "estimated accuracy": s.accuracy,
        "fit seconds": s.fit_seconds,
        "chosen": s.name == sel.chosen,
        "error": s.error or "",
    } for s in sel.scores])
