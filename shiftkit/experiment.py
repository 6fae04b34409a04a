"""The seed's transfer-learning study as one object: train on the source, measure, adapt, measure, evaluate.

`Experiment(source_model, adapters=..., metrics=...).run(splits, seed=...)` takes `DomainSplits`
(`shiftkit.data.split_domains`) and, in order:

1. **Source model.** A *builder* (a zero-argument function returning a compiled `keras.Model`) is
   called, seeded, and its model trained on `source_train`. A *model instance* is taken as already
   trained and used as it is (never modified). `train_source=True`/`False` overrides either rule:
   True trains a copy of a given instance (its current weights, its compiled optimizer and loss);
   False takes a builder's model as trained (e.g. `lambda: keras.saving.load_model(path)`).
2. **Shift before.** `shift_report(source_val, T, model=source model)`, where `T` is `target_test`
   when the splits have target labels (held out from every adaptation, so no method is measured
   on data it trained on) and `target_unlabeled` otherwise.
3. **Baselines.** "source_only": the source model as it is. "target_only": the same architecture
   trained from scratch on `target_labeled` (a fresh model from the builder; for a model instance,
   `keras.models.clone_model`: same layers, new weights), skipped without target labels.
4. **Adapt.** Each adapter is fitted on its own data: CopyAdapter / FineTuneAdapter on
   `target_labeled`; MMDAdapter on `source_train` + `target_unlabeled`; LabelShiftAdapter on
   `source_val` + `target_unlabeled`.
5. **Shift after** (`adapter.shift_report`, same data and seed as step 2) and **evaluation** on
   `target_test`: accuracy, balanced accuracy, macro F1, AUROC (one-vs-rest macro average over the
   classes present for more than two classes) and expected calibration error (15 equal-width bins).

While each model trains, a `ShiftMonitor` (source_val vs `T`) logs the feature MMD^2 into its
history: `ExperimentResult.histories` and the right panel of `ExperimentResult.plot()`.

Seeds: `run(seed=s)` seeds every step separately (`keras.utils.set_random_seed(s + offset)`, a fixed
offset per method), so adding or removing an adapter does not change the others' results.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shiftkit._json import jsonable
from shiftkit._validation import (
    check_alpha,
    check_positive_int,
    check_probabilities,
    check_seed,
)
from shiftkit._version import __version__
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import adapter_names, fit_data, get_adapter
from shiftkit.data import DomainSplits
from shiftkit.files import load_model_path

__all__ = [
    "ADAPTER_NAMES",
    "DEFAULT_EPOCHS",
    "METRICS",
    "Experiment",
    "ExperimentResult",
    "classification_metrics",
    "expected_calibration_error",
]

#: Built-in metric names, in the order they are reported.
METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece")
#: The built-in adapters (`Experiment` knows every adapter in `shiftkit.adapt.adapter_names()`).
ADAPTER_NAMES: tuple[str, ...] = ("copy", "finetune", "mmd", "label_shift")
_BASELINES: tuple[str, ...] = ("source_only", "target_only")
#: Training epochs per step when `run(epochs=None)`; `epochs=` (an int or a dict) overrides them. None:
#: the adapter's own default, "until the held-out loss stops improving" (CopyAdapter, FineTuneAdapter).
DEFAULT_EPOCHS: dict[str, int | None] = {"source": 30, "target_only": 50, "copy": None, "finetune": None, "mmd": 20}
#: Shift columns of the result (feature space, source model before vs each method's model after).
SHIFT_COLUMNS: tuple[str, ...] = (
    "shift_p_before",
    "shift_p_after",
    "shift_mmd2_normalized_before",
    "shift_mmd2_normalized_after",
)
_RESULT_KIND = "shiftkit.ExperimentResult"
_RESULT_SCHEMA = "1.0"
_SEED_OFFSETS = {"source": 0, "target_only": 1, "copy": 2, "finetune": 3, "mmd": 4, "label_shift": 5}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _proba(proba: Any, name: str = "proba") -> np.ndarray:
    return check_probabilities(proba, name)


def expected_calibration_error(y_true: Any, proba: Any, *, n_bins: int = 15) -> float:
    """Expected calibration error of the predicted class, with equal-width confidence bins.

    The confidence of a sample is its largest class probability and its prediction that class.
    Bin `b` (of `n_bins`) holds the confidences in `((b - 1) / n_bins, b / n_bins]`; then

        ECE = sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|

    (Guo et al. 2017, "On calibration of modern neural networks"; empty bins add nothing).

    Args:
        y_true: class indices `(n,)`.
        proba: class probabilities `(n, k)`, or `(n,)` / `(n, 1)` positive-class probabilities.
        n_bins: number of equal-width bins (default 15).

    Returns:
        The ECE, a float in [0, 1]; lower is better calibrated.

    Raises:
        ValueError / TypeError: probabilities that do not sum to 1, labels of another length.

    Example:
        >>> # one right at confidence 0.9, one wrong at 0.8: (|1 - 0.9| + |0 - 0.8|) / 2
        >>> round(expected_calibration_error([0, 1], [[0.9, 0.1], [0.8, 0.2]]), 6)
        0.45
    """
    from shiftkit._validation import check_labels

    p = _proba(proba)
    y = check_labels(y_true, "y_true")
    n_bins = check_positive_int(n_bins, "n_bins")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} labels but proba has {len(p)} rows; pass one row per label.")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def _one_vs_rest_scores(p: np.ndarray, c: int) -> np.ndarray:
    """log p_c - log(sum of the other classes): ranks like p_c, but keeps the order of samples whose
    float32 p_c saturated at exactly 1.0 (the other columns still hold it)."""
    rest = p.sum(axis=1) - p[:, c] if p.shape[1] > 2 else p[:, 1 - c]
    tiny = np.finfo(np.float64).tiny  # exact zeros tie at the end instead of becoming -inf
    return np.log(np.maximum(p[:, c], tiny)) - np.log(np.maximum(rest, tiny))


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if p.shape[1] == 2:
        if len(np.unique(y)) < 2:
            return math.nan
        return float(roc_auc_score(y == 1, _one_vs_rest_scores(p, 1)))
    scores = [
        roc_auc_score(y == c, _one_vs_rest_scores(p, c))
        for c in range(p.shape[1])
        if 0 < np.count_nonzero(y == c) < len(y)
    ]
    return float(np.mean(scores)) if scores else math.nan


def _builtin_metric(name: str, y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score, f1_score

    pred = p.argmax(axis=1)
    if name == "accuracy":
        return float(np.mean(pred == y))
    if name == "balanced_accuracy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
            return float(balanced_accuracy_score(y, pred))
    if name == "macro_f1":
        return float(f1_score(y, pred, average="macro", zero_division=0))
    if name == "auroc":
        return _auroc(y, p)
    return expected_calibration_error(y, p)


def _check_metrics(metrics: Any) -> dict[str, Callable[[np.ndarray, np.ndarray], float] | str]:
    """name -> built-in name or callable(y_true, proba)."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    if isinstance(metrics, Mapping):
        items = list(metrics.items())
    elif isinstance(metrics, Sequence):
        items = []
        for m in metrics:
            if isinstance(m, str):
                items.append((m, m))
            elif callable(m):
                items.append((getattr(m, "__name__", type(m).__name__), m))
            else:
                raise TypeError(
                    f"metrics must hold metric names ({', '.join(METRICS)}) or callables f(y_true, proba); "
                    f"got {m!r}."
                )
    else:
        raise TypeError(
            f"metrics must be a list of names ({', '.join(METRICS)}) and/or callables f(y_true, proba), "
            f"or a dict name -> callable; got {type(metrics).__name__}."
        )
    out: dict[str, Any] = {}
    for name, fn in items:
        if not isinstance(name, str) or not name:
            raise TypeError(f"metric names must be non-empty strings; got {name!r}.")
        if isinstance(fn, str):
            if fn not in METRICS:
                raise ValueError(f"Unknown metric {fn!r}. Choose from: {', '.join(METRICS)}; or pass a callable.")
        elif not callable(fn):
            raise TypeError(f"metric {name!r} must be a built-in name or a callable f(y_true, proba); got {fn!r}.")
        if name in out:
            raise ValueError(f"metric {name!r} is listed twice.")
        if name in SHIFT_COLUMNS or name == "method":
            raise ValueError(f"metric name {name!r} is reserved for a result column; rename it.")
        out[name] = fn
    return out


def classification_metrics(y_true: Any, proba: Any, metrics: Any = METRICS) -> dict[str, float]:
    """Score class probabilities against labels.

    Args:
        y_true: class indices `(n,)`.
        proba: class probabilities `(n, k)` (or positive-class probabilities `(n,)`).
        metrics: names from `METRICS` ("accuracy", "balanced_accuracy", "macro_f1", "auroc" --
            binary, or one-vs-rest macro over the classes present; samples are ranked by
            `log p_c - log(1 - p_c)` computed from the other columns, which orders like `p_c` but
            survives float32 probabilities saturated at 1.0 --, "ece"), callables
            `f(y_true, proba) -> float`, or a dict name -> callable.

    Returns:
        Dict name -> float (NaN when undefined, e.g. AUROC with a single class in `y_true`).

    Example:
        >>> classification_metrics([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ["accuracy", "auroc"])
        {'accuracy': 0.6666666666666666, 'auroc': 1.0}
    """
    from shiftkit._validation import check_labels

    spec = _check_metrics(metrics)
    p = _proba(proba)
    y = check_labels(y_true, "y_true")
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} labels but proba has {len(p)} rows; pass one row per label.")
    if y.max() >= p.shape[1]:
        raise ValueError(f"y_true has label {int(y.max())} but proba has only {p.shape[1]} classes.")
    out = {}
    for name, fn in spec.items():
        value = _builtin_metric(fn, y, p) if isinstance(fn, str) else fn(y, p)
        out[name] = float(value)
    return out


# --------------------------------------------------------------------------------------------
# Adapters and models
# --------------------------------------------------------------------------------------------


class _AdapterSpec:
    """What to build for one method: kind, class and constructor parameters (None: defaults)."""

    def __init__(self, name: str, kind: str, cls: type, params: dict[str, Any] | None):
        self.name, self.kind, self.cls, self.params = name, kind, cls, params

    def build(self, source_model: Any, epochs: int | None) -> Any:
        if self.params is not None:
            return self.cls.from_config(self.params, source_model)
        if epochs is not None and "head_epochs" in self.cls._init_parameters():
            return self.cls(source_model, head_epochs=epochs)  # run(epochs=int): the head stage too
        return self.cls(source_model)

    def describe(self) -> dict[str, Any]:
        params = {} if self.params is None else {k: _plain(v) for k, v in self.params.items()}
        return {"kind": self.kind, "class": self.cls.__name__, "params": params, "defaults": self.params is None}


def _plain(value: Any) -> Any:
    value = jsonable(value)
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _check_adapters(adapters: Any) -> list[_AdapterSpec]:
    if adapters is None:
        adapters = adapter_names()
    if isinstance(adapters, (str, Adapter)):
        adapters = (adapters,)
    if isinstance(adapters, Mapping):
        items = list(adapters.items())
    elif isinstance(adapters, Sequence):
        items = [(None, a) for a in adapters]
    else:
        raise TypeError(
            f"adapters must be a list of names ({', '.join(adapter_names())}) and/or Adapter instances, or a "
            f"dict name -> name/Adapter; got {type(adapters).__name__}."
        )
    specs: list[_AdapterSpec] = []
    used: set[str] = set()
    for name, item in items:
        if isinstance(item, str):
            cls, params = get_adapter(item), None
        elif isinstance(item, Adapter):
            cls, params = type(item), item.get_config()
            if not cls.name:
                raise TypeError(
                    f"{cls.__name__} has no registry name: set a class attribute `name` and decorate the "
                    "class with shiftkit.adapt.register_adapter, so Experiment knows which data it needs."
                )
        else:
            raise TypeError(
                f"Each adapter must be a name ({', '.join(adapter_names())}) or an Adapter instance; got "
                f"{type(item).__name__}."
            )
        kind = cls.name
        if name is None:
            name, i = kind, 2
            while name in used:
                name, i = f"{kind}_{i}", i + 1
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"Adapter names are used as file names: letters, digits, '_', '.', '-' only; got {name!r}."
            )
        if name in used or name in _BASELINES:
            raise ValueError(
                f"Adapter name {name!r} is {'used twice' if name in used else 'reserved for a baseline'}; "
                "pass a dict name -> adapter with distinct names."
            )
        used.add(name)
        specs.append(_AdapterSpec(name, kind, cls, params))
    return specs


def _is_compiled(model: Any) -> bool:
    return bool(getattr(model, "compiled", False)) and getattr(model, "optimizer", None) is not None


def _check_built_model(model: Any, what: str) -> Any:
    from shiftkit.shift.features import _require_model

    return _require_model(model, what)


def _compile_like(model: Any, template: Any) -> None:
    """Compile `model` with a fresh copy of `template`'s optimizer and its loss (defaults if uncompiled)."""
    import keras

    from shiftkit.adapt.base import head_config, loss_for_head

    if _is_compiled(template):
        opt = template.optimizer
        optimizer = type(opt).from_config(opt.get_config())
        loss = template.loss
    else:
        n_out, activation = head_config(template)
        loss, _ = loss_for_head(activation, n_out)
        optimizer = keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss=loss)


def _fit_targets(model: Any, y: np.ndarray) -> np.ndarray:
    """Labels in the form the model's loss expects (float column, one-hot, or class indices)."""
    import keras

    n_out = int(model.outputs[0].shape[-1] or 1)
    if n_out == 1:
        return y.reshape(-1, 1).astype("float32")
    loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
    name = str(name).lower()
    if "categorical" in name and "sparse" not in name:
        return keras.utils.to_categorical(y, n_out).astype("float32")
    return y.astype("int32")


def _seed(seed: int | None, step: str, index: int = 0) -> int | None:
    if seed is None:
        return None
    import keras

    value = seed + _SEED_OFFSETS.get(step, 10 + index)
    keras.utils.set_random_seed(value)
    return value


def _history(record: Any) -> dict[str, list]:
    hist = record.history if hasattr(record, "history") else record
    return {str(k): [float(v) if isinstance(v, numbers.Real) else v for v in vals] for k, vals in dict(hist).items()}


def _feature_figures(test: Any) -> tuple[float | None, float | None]:
    if test is None:
        return None, None
    return float(test.p_value), float(test.normalized)


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


class ExperimentResult:
    """Every method's target metrics and shift figures, with the fitted models.

    Attributes:
        methods: method names in order: "source_only", "target_only" (when it ran), then the adapters.
        metric_names: the metric columns.
        rows: method -> {metric: value, "shift_p_before": ..., "shift_p_after": ...,
            "shift_mmd2_normalized_before": ..., "shift_mmd2_normalized_after": ...}. Metrics are
            None when the splits have no target test set. Shift figures are feature-space MMD
            tests of source_val vs the evaluation target set: "before" with the source model, "after"
            with the method's model (p-value: higher means less shift; normalized MMD^2: lower means
            less shift).
        histories: method -> per-epoch training record (with the ShiftMonitor keys `shift_mmd2`,
            `shift_mmd2_normalized`); "source_only" holds the source training when the experiment
            trained it.
        reports: "source" -> the source `ShiftReport` as a dict; method -> its
            `AdaptationReport.to_dict()` (or, for target_only, the after report).
        shift_reports: the live report objects (empty after `load`).
        adapters: method -> fitted `Adapter`. source_model, target_only_model: `keras.Model`s.
        reference: `shiftkit.check.Reference` of source_val with the source model (for
            `shiftkit check`).
        splits: `DomainSplits.to_dict()` of the splits used. config: the experiment's settings,
            seeds and library versions. notes: what was skipped or assumed, in sentences.
    """

    def __init__(
        self,
        *,
        methods: Sequence[str],
        metric_names: Sequence[str],
        rows: dict[str, dict[str, float | None]],
        histories: dict[str, dict[str, list]],
        reports: dict[str, Any],
        splits: dict[str, Any],
        config: dict[str, Any],
        notes: Sequence[str] = (),
        adapters: dict[str, Any] | None = None,
        source_model: Any = None,
        target_only_model: Any = None,
        reference: Any = None,
        shift_reports: dict[str, Any] | None = None,
    ):
        self.methods = tuple(methods)
        self.metric_names = tuple(metric_names)
        self.rows = rows
        self.histories = histories
        self.reports = reports
        self.splits = splits
        self.config = config
        self.notes = list(notes)
        self.adapters = dict(adapters or {})
        self.source_model = source_model
        self.target_only_model = target_only_model
        self.reference = reference
        self.shift_reports = dict(shift_reports or {})

    # ------------------------------------------------------------------ models
    def model(self, method: str) -> Any:
        """The `keras.Model` behind a method."""
        if method == "source_only":
            return self.source_model
        if method == "target_only" and self.target_only_model is not None:
            return self.target_only_model
        if method in self.adapters:
            return self.adapters[method].model
        raise ValueError(f"Unknown method {method!r}. Methods of this result: {', '.join(self.methods)}.")

    def predict(self, method: str, x: Any) -> np.ndarray:
        """Class probabilities `(n, k)` of a method's model on `x`."""
        from shiftkit.shift.features import predict_proba

        return predict_proba(self.model(method), x)

    # ------------------------------------------------------------------ views
    def to_frame(self):
        """One row per method (index "method"): the metrics, then the four shift columns."""
        import pandas as pd

        columns = list(self.metric_names) + list(SHIFT_COLUMNS)
        frame = pd.DataFrame(
            [[self.rows[m].get(c) for c in columns] for m in self.methods], index=list(self.methods), columns=columns
        )
        frame.index.name = "method"
        return frame.astype("float64")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinity as None)."""
        return jsonable(
            {
                "kind": _RESULT_KIND,
                "schema_version": _RESULT_SCHEMA,
                "shiftkit_version": __version__,
                "methods": list(self.methods),
                "metric_names": list(self.metric_names),
                "shift_columns": list(SHIFT_COLUMNS),
                "rows": [{"method": m, **self.rows[m]} for m in self.methods],
                "directions": {
                    "accuracy, balanced_accuracy, macro_f1, auroc": "higher is better",
                    "ece": "lower is better",
                    "shift_p_*": "feature-space MMD test p-value: lower means shift",
                    "shift_mmd2_normalized_*": "feature-space normalized MMD^2: higher means shift",
                },
                "histories": self.histories,
                "reports": self.reports,
                "splits": self.splits,
                "config": self.config,
                "notes": self.notes,
            }
        )

    def to_json(self, *, indent: int | None = 2) -> str:
        """The result as strict JSON (`allow_nan=False`: NaN written as null)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def __str__(self) -> str:
        import pandas as pd

        with pd.option_context("display.width", 160, "display.max_columns", 20):
            text = self.to_frame().round(4).to_string()
        return text + ("\n" + "\n".join(f"note: {n}" for n in self.notes) if self.notes else "")

    def __repr__(self) -> str:
        return f"ExperimentResult(methods={list(self.methods)}, metrics={list(self.metric_names)})"

    def plot(self):
        """Seaborn figure: metrics per method (left) and the ShiftMonitor curves (right, when logged).

        Returns:
            A `matplotlib.figure.Figure` on the Agg canvas (no pyplot state; `fig.savefig(...)`).
        """
        import seaborn as sns
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        curves = {}
        for method, hist in self.histories.items():
            values = np.asarray([np.nan if v is None else v for v in hist.get("shift_mmd2_normalized", [])], dtype=float)
            if np.isfinite(values).any():
                curves[method] = values
        n_axes = 2 if curves else 1
        fig = Figure(figsize=(6.5 * n_axes, 4.2), layout="constrained")
        FigureCanvasAgg(fig)
        axes = np.atleast_1d(fig.subplots(1, n_axes, squeeze=False)[0])
        frame = self.to_frame()[list(self.metric_names)].reset_index()
        long = frame.melt(id_vars="method", var_name="metric", value_name="value").dropna()
        ax = axes[0]
        if len(long):
            sns.barplot(data=long, x="metric", y="value", hue="method", ax=ax)
            ax.legend(fontsize="small", title=None)
        else:
            ax.text(0.5, 0.5, "no target test set: no metrics", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("Target test metrics per method (ece: lower is better)")
        ax.set_xlabel("")
        if curves:
            ax = axes[1]
            for method, values in curves.items():
                epochs = np.arange(len(values))
                keep = np.isfinite(values)
                sns.lineplot(x=epochs[keep], y=values[keep], ax=ax, label=method, marker="o")
            ax.set_title("Feature MMD^2 (normalized) while training")
            ax.set_xlabel("epoch")
            ax.set_ylabel("normalized MMD^2 (lower: less shift)")
        return fig

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike) -> str:
        """Write the result to a directory (created if needed).

        Files: `results.json` (`to_json()` plus the file list), `source_model.keras`,
        `target_only.keras` (when it ran), `<method>.keras` per adapter (`Adapter.save`: loadable
        with `shiftkit.load_adapter`), and `reference.npz`, a `shiftkit.check.Reference` snapshot
        of source_val with the source model (`shiftkit check --reference reference.npz --model
        source_model.keras ...`).

        Returns:
            The directory path.
        """
        if self.source_model is None:
            raise ValueError("This result holds no models (nothing to save); save the result of Experiment.run.")
        out = Path(directory)
        if out.exists() and not out.is_dir():
            raise ValueError(f"{os.fspath(directory)!r} exists and is not a directory; pass a directory path.")
        out.mkdir(parents=True, exist_ok=True)
        files = {"source_only": "source_model.keras"}
        self.source_model.save(out / files["source_only"])
        if self.target_only_model is not None:
            files["target_only"] = "target_only.keras"
            self.target_only_model.save(out / files["target_only"])
        for name, adapter in self.adapters.items():
            files[name] = f"{name}.keras"
            adapter.save(out / files[name])
        data = self.to_dict()
        data["files"] = files
        if self.reference is not None:
            self.reference.save(out / "reference.npz")
            data["reference"] = "reference.npz"
        (out / "results.json").write_text(json.dumps(data, indent=2, allow_nan=False))
        return os.fspath(out)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ExperimentResult:
        """Read a result written by `save`, with its models and adapters (loaded with `safe_mode=True`).

        Raises:
            ValueError: no `results.json` there, a file of another kind, or a missing model file.
        """
        import keras

        from shiftkit.adapt.base import load_adapter
        from shiftkit.check import Reference

        root = Path(directory)
        path = root / "results.json"
        if not path.is_file():
            raise ValueError(
                f"No results.json in {os.fspath(directory)!r}. Pass the directory given to ExperimentResult.save()."
            )
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{os.fspath(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("kind") != _RESULT_KIND:
            raise ValueError(f"{os.fspath(path)!r} was not written by ExperimentResult.save().")
        files = data.get("files", {})

        def need(name: str) -> Path:
            file = root / files[name]
            if not file.is_file():
                raise ValueError(f"The result lists {files[name]!r} for {name!r}, but {os.fspath(file)!r} is missing.")
            return file

        methods = data["methods"]
        adapters = {m: load_adapter(need(m)) for m in methods if m not in _BASELINES and m in files}
        reference = Reference.load(root / data["reference"]) if data.get("reference") else None
        return cls(
            methods=methods,
            metric_names=data["metric_names"],
            rows={r["method"]: {k: v for k, v in r.items() if k != "method"} for r in data["rows"]},
            histories=data.get("histories", {}),
            reports=data.get("reports", {}),
            splits=data.get("splits", {}),
            config=data.get("config", {}),
            notes=data.get("notes", []),
            adapters=adapters,
            source_model=load_model_path(need("source_only")) if "source_only" in files else None,
            target_only_model=load_model_path(need("target_only")) if "target_only" in files else None,
            reference=reference,
        )


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


class Experiment:
    """The seed's study in one object: source model, shift before, adapters, shift after, metrics.

    See the module docstring for the steps and which split feeds which method.

    Args:
        source_model: a compiled `keras.Model` (taken as trained), or a zero-argument function that
            builds and compiles one (its model is trained on `source_train`); see `train_source`.
        adapters: None (default: every registered adapter, `shiftkit.adapt.adapter_names()`: "copy",
            "finetune", "mmd", "label_shift" and any registered since), registry names and/or
            `Adapter` instances, or a dict method name -> name/instance. An instance is a
            *template*: its constructor arguments are re-applied to the experiment's source model at
            every run (scikit-learn's `clone`), so a run never refits the object you passed.
            Names get the adapters' defaults (with an int `epochs` for FineTune: `head_epochs=epochs`).
        metrics: names from `METRICS` and/or callables `f(y_true, proba) -> float`, or a dict.
        train_source: None (default): train a builder's model, use a given model as it is. True:
            always train (a copy of a given model). False: never train (a builder that loads a model).
        target_only: also train the target-only baseline (needs target labels).
        class_weight: None or "balanced" (or a dict) for the source, target-only, copy and finetune
            training: "balanced" counters class imbalance with scikit-learn's weights.
        fit_kwargs: optional dict method name (or kind) -> extra keyword arguments of that adapter's
            `fit`, e.g. `{"mmd": {"batch_size": 32, "learning_rate": 3e-4}}`.
        n_permutations, alpha, max_samples: of every shift measurement (`shift_report`).
        monitor: attach a `ShiftMonitor` to every training (curves in `histories` and `plot()`).

    Raises:
        TypeError: `source_model` is neither a Keras model nor a zero-argument callable; an adapter
            that is neither a known name nor a supported Adapter; bad metric entries.
        ValueError: an unknown adapter or metric name (the message lists the names); bad options.

    Example:
        >>> from shiftkit.data import split_domains                                  # doctest: +SKIP
        >>> splits = split_domains(s.x_source, s.y_source, s.x_target, s.y_target, seed=0)  # doctest: +SKIP
        >>> result = Experiment(build_model).run(splits, seed=0)                     # doctest: +SKIP
        >>> print(result); result.save("runs/hospitals")                            # doctest: +SKIP
    """

    def __init__(
        self,
        source_model: Any,
        *,
        adapters: Any = None,
        metrics: Any = METRICS,
        train_source: bool | None = None,
        target_only: bool = True,
        class_weight: Any = None,
        fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        n_permutations: int = 200,
        alpha: float = 0.05,
        max_samples: int | None = 1000,
        monitor: bool = True,
    ):
        import keras

        if isinstance(source_model, keras.Model):
            self._builder = None
            self._model = _check_built_model(source_model, "source_model")
        elif callable(source_model):
            try:
                required = [
                    p for p in inspect.signature(source_model).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                ]
            except (TypeError, ValueError):
                required = []
            if required:
                raise TypeError(
                    "source_model must be a compiled keras.Model or a zero-argument function that builds one; "
                    f"the function given requires {[p.name for p in required]}. Wrap it: "
                    "lambda: build(...)."
                )
            self._builder = source_model
            self._model = None
        else:
            raise TypeError(
                "source_model must be a compiled keras.Model or a zero-argument function that builds and "
                f"compiles one; got {type(source_model).__name__}."
            )
        self.source_model = source_model
        self.adapters = adapters
        self._specs = _check_adapters(adapters)
        self.metrics = metrics
        self._metrics = _check_metrics(metrics)
        if train_source is not None and not isinstance(train_source, (bool, np.bool_)):
            raise TypeError(f"train_source must be None, True or False; got {train_source!r}.")
        self.train_source = train_source
        if not isinstance(target_only, (bool, np.bool_)):
            raise TypeError(f"target_only must be True or False; got {target_only!r}.")
        self.target_only = bool(target_only)
        if class_weight is not None and not isinstance(class_weight, (str, Mapping)):
            raise TypeError(f"class_weight must be None, 'balanced' or a dict; got {type(class_weight).__name__}.")
        if isinstance(class_weight, str) and class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict; got {class_weight!r}.")
        self.class_weight = class_weight
        names = {s.name for s in self._specs} | {s.kind for s in self._specs}
        fit_kwargs = dict(fit_kwargs or {})
        for key, value in fit_kwargs.items():
            if key not in names:
                raise ValueError(
                    f"fit_kwargs has an entry for {key!r}, which is not an adapter of this experiment "
                    f"({', '.join(sorted(names)) or 'none'})."
                )
            if not isinstance(value, Mapping):
                raise TypeError(f"fit_kwargs[{key!r}] must be a dict of keyword arguments; got {type(value).__name__}.")
        self.fit_kwargs = fit_kwargs
        self.n_permutations = check_positive_int(n_permutations, "n_permutations")
        self.alpha = check_alpha(alpha)
        self.max_samples = None if max_samples is None else check_positive_int(max_samples, "max_samples", minimum=2)
        self.monitor = bool(monitor)

    # ------------------------------------------------------------------ helpers
    @property
    def method_names(self) -> tuple[str, ...]:
        """The adapter methods, in order (the baselines come first in a result)."""
        return tuple(s.name for s in self._specs)

    def _epochs(self, epochs: Any) -> dict[str, int | None]:
        out = dict(DEFAULT_EPOCHS)
        if epochs is None:
            return out
        if isinstance(epochs, Mapping):
            allowed = set(DEFAULT_EPOCHS) | set(self.method_names)
            # Copy and FineTune steps may be None: "until the held-out loss stops improving".
            auto = {s.kind for s in self._specs} | set(self.method_names)
            for key, value in epochs.items():
                if key not in allowed:
                    raise ValueError(f"epochs has an entry for {key!r}; known steps: {', '.join(sorted(allowed))}.")
                out[key] = None if value is None and key in auto else check_positive_int(value, f"epochs[{key!r}]")
            return out
        value = check_positive_int(epochs, "epochs")
        return {k: value for k in list(out) + list(self.method_names)}

    def _build_source(self) -> Any:
        model = self._builder()
        import keras

        if not isinstance(model, keras.Model):
            raise TypeError(
                f"The source_model builder returned a {type(model).__name__}, not a keras.Model. It must "
                "build, compile and return the model (`model.compile(...); return model`)."
            )
        if not _is_compiled(model):
            raise TypeError(
                "The source_model builder returned an uncompiled keras.Model; call model.compile(optimizer, "
                "loss) inside the builder before returning it."
            )
        return _check_built_model(model, "the model returned by the source_model builder")

    def _train(self, model: Any, x: np.ndarray, y: np.ndarray, epochs: int, n_classes: int, *,
               batch_size: int, verbose: Any, callbacks: list) -> dict[str, list]:
        from shiftkit.adapt.base import class_weights

        hist = model.fit(
            x, _fit_targets(model, y), epochs=epochs, batch_size=min(batch_size, len(x)), verbose=verbose,
            class_weight=class_weights(y, self.class_weight, n_classes), callbacks=callbacks, shuffle=True,
        )
        return _history(hist)

    def _metrics_of(self, model: Any, x: np.ndarray | None, y: np.ndarray | None) -> dict[str, float | None]:
        if y is None:
            return {name: None for name in self._metrics}
        from shiftkit.shift.features import predict_proba

        return classification_metrics(y, predict_proba(model, x), self._metrics)

    # ------------------------------------------------------------------ run
    def run(
        self,
        splits: DomainSplits,
        *,
        seed: int | None = None,
        epochs: int | Mapping[str, int] | None = None,
        verbose: Any = 0,
        batch_size: int = 32,
    ) -> ExperimentResult:
        """Train (when needed), measure, adapt, measure again and evaluate every method.

        Args:
            splits: `DomainSplits` from `shiftkit.data.split_domains`.
            seed: seed of every step (None: unseeded; results then vary from run to run).
            epochs: training epochs: None for `DEFAULT_EPOCHS` (Copy and FineTune: until their
                held-out loss stops improving, the adapters' default), an int for every step, or a
                dict with keys among "source", "target_only", "copy", "finetune", "mmd" (or a method
                name). With an int, FineTune runs `epochs` head epochs then `epochs` fine-tuning epochs.
            verbose: Keras verbosity of every training (0: silent).
            batch_size: batch size of the source, target-only, copy and finetune training.

        Returns:
            An `ExperimentResult`.

        Raises:
            TypeError: `splits` is not a `DomainSplits`; the builder returns something else than a
                compiled Keras model.
            ValueError: data that do not fit the model, a model with fewer outputs than classes,
                adapters that need target labels when the splits have none.
        """
        import keras

        from shiftkit.callbacks import ShiftMonitor
        from shiftkit.check import Reference
        from shiftkit.shift.features import check_model_input
        from shiftkit.shift.report import shift_report

        if not isinstance(splits, DomainSplits):
            raise TypeError(
                f"splits must be a DomainSplits from shiftkit.data.split_domains(...); got {type(splits).__name__}."
            )
        seed = check_seed(seed)
        epochs = self._epochs(epochs)
        batch_size = check_positive_int(batch_size, "batch_size")
        labelled = splits.has_target_labels
        need_labels = [s.name for s in self._specs if "y_target" in s.cls.requires]
        if need_labels and not labelled:
            raise ValueError(
                f"Adapters {need_labels} train on labelled target samples, and these splits have none "
                "(split_domains was called without y_target). Pass y_target to split_domains, or use "
                "adapters=('mmd', 'label_shift')."
            )
        xs_tr, ys_tr = splits.source_train
        xs_val, ys_val = splits.source_val
        x_unl = splits.target_unlabeled
        if labelled:
            x_eval, y_eval = splits.target_test
            eval_name = "target_test"
        else:
            x_eval, y_eval = x_unl, None
            eval_name = "target_unlabeled"
        notes: list[str] = []
        if not labelled:
            notes.append(
                "No target labels: metrics are not computed, the target-only baseline is skipped, and shift "
                "is measured on target_unlabeled (the data the unsupervised adapters train on)."
            )

        # 1. The source model.
        histories: dict[str, dict[str, list]] = {}
        train = self.train_source if self.train_source is not None else self._builder is not None
        _seed(seed, "source")
        if self._builder is not None:
            source = self._build_source()
        else:
            source = self._model
            if train:
                source = keras.models.clone_model(self._model)
                source.set_weights(self._model.get_weights())
                _compile_like(source, self._model)
        for x, what in ((xs_tr, "splits.source_train"), (x_eval, f"splits.{eval_name}")):
            check_model_input(source, x[:1], f"{what} inputs")
        n_out = int(source.outputs[0].shape[-1] or 1)
        if (n_out == 1 and splits.n_classes > 2) or (n_out > 1 and n_out < splits.n_classes):
            raise ValueError(
                f"The source model has {n_out} output(s) but the labels have {splits.n_classes} classes; its "
                f"output layer needs {splits.n_classes} units (softmax), or 1 sigmoid unit for 2 classes."
            )

        def monitor() -> list:
            if not self.monitor:
                return []
            return [ShiftMonitor(xs_val, x_eval, max_samples=500, seed=0 if seed is None else seed)]

        if train:
            histories["source_only"] = self._train(
                source, xs_tr, ys_tr, epochs["source"], splits.n_classes,
                batch_size=batch_size, verbose=verbose, callbacks=monitor(),
            )

        shift_kwargs = {"n_permutations": self.n_permutations, "alpha": self.alpha, "seed": seed,
                        "max_samples": self.max_samples}
        # 2. Shift before, and the source-only row.
        before = shift_report(xs_val, x_eval, ys_val, y_eval, model=source, **shift_kwargs)
        p_before, n_before = _feature_figures(before.feature_test)
        rows: dict[str, dict[str, Any]] = {}
        reports: dict[str, Any] = {"source": before.to_dict(include_null=False)}
        live: dict[str, Any] = {"source": before}

        def row(model: Any, p_after: float | None, n_after: float | None) -> dict[str, Any]:
            out: dict[str, Any] = dict(self._metrics_of(model, x_eval, y_eval))
            out.update(shift_p_before=p_before, shift_p_after=p_after,
                       shift_mmd2_normalized_before=n_before, shift_mmd2_normalized_after=n_after)
            return out

        methods = ["source_only"]
        rows["source_only"] = row(source, p_before, n_before)

        # 3. The target-only baseline.
        target_model = None
        if self.target_only and labelled:
            _seed(seed, "target_only")
            if self._builder is not None and train:
                target_model = self._build_source()
            else:
                target_model = keras.models.clone_model(source)
                _compile_like(target_model, source)
            xl, yl = splits.target_labeled
            histories["target_only"] = self._train(
                target_model, xl, yl, epochs["target_only"], splits.n_classes,
                batch_size=batch_size, verbose=verbose, callbacks=monitor(),
            )
            after = shift_report(xs_val, x_eval, ys_val, y_eval, model=target_model, **shift_kwargs)
            reports["target_only"] = after.to_dict(include_null=False)
            live["target_only"] = after
            rows["target_only"] = row(target_model, *_feature_figures(after.feature_test))
            methods.append("target_only")
        elif self.target_only:
            notes.append("target_only skipped: it trains on target_labeled, which these splits do not have.")

        # 4-5. Adapters: fit, measure after, evaluate.
        adapters: dict[str, Any] = {}
        for index, spec in enumerate(self._specs):
            step_epochs = epochs.get(spec.name, epochs.get(spec.kind, DEFAULT_EPOCHS.get(spec.kind)))
            step_seed = _seed(seed, spec.kind if spec.name == spec.kind else spec.name, index)
            adapter = spec.build(source, step_epochs)
            # The one adapter contract: the data each adapter declares it needs, the same options for all.
            data = fit_data(spec.cls, source_train=(xs_tr, ys_tr), source_held_out=(xs_val, ys_val),
                            target_labeled=splits.target_labeled if labelled else None, target_unlabeled=x_unl)
            kwargs: dict[str, Any] = {"epochs": step_epochs, "verbose": verbose, "callbacks": monitor()}
            if step_seed is not None:
                kwargs["seed"] = step_seed
            if "y_target" in spec.cls.requires:  # trained on the labelled target samples, like the baselines
                kwargs.update(batch_size=batch_size, class_weight=self.class_weight)
            kwargs.update(self.fit_kwargs.get(spec.kind, {}))
            kwargs.update(self.fit_kwargs.get(spec.name, {}))
            adapter.fit(**data, **kwargs)
            report = adapter.shift_report(xs_val, x_eval, ys_val, y_eval, **shift_kwargs)
            reports[spec.name] = report.to_dict()
            live[spec.name] = report
            histories[spec.name] = _history(adapter.history)
            rows[spec.name] = row(adapter.model, *_feature_figures(report.after.feature_test))
            adapters[spec.name] = adapter
            methods.append(spec.name)

        reference = Reference.from_data(xs_val, ys_val, model=source, seed=0 if seed is None else seed)
        config = {
            "seed": seed,
            "split_seed": splits.seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "adapters": {s.name: s.describe() for s in self._specs},
            "fit_kwargs": _plain(self.fit_kwargs),
            "metrics": list(self._metrics),
            "source_model": "builder" if self._builder is not None else "model",
            "source_trained_by_experiment": bool(train),
            "target_only": self.target_only,
            "class_weight": _plain(self.class_weight),
            "shift": {"source": "source_val", "target": eval_name, "space": "feature",
                      "n_permutations": self.n_permutations, "alpha": self.alpha, "max_samples": self.max_samples},
            "versions": {"shiftkit": __version__, "keras": keras.__version__, "tensorflow": _tf_version()},
        }
        return ExperimentResult(
            methods=methods,
            metric_names=list(self._metrics),
            rows=rows,
            histories=histories,
            reports=jsonable(reports),
            splits=splits.to_dict(),
            config=config,
            notes=notes,
            adapters=adapters,
            source_model=source,
            target_only_model=target_model,
            reference=reference,
            shift_reports=live,
        )

    @staticmethod
    def load(directory: str | os.PathLike) -> ExperimentResult:
        """Load a result saved with `ExperimentResult.save` (models and adapters included)."""
        return ExperimentResult.load(directory)


def _tf_version() -> str | None:
    try:
        import tensorflow as tf

        return tf.__version__
    except ImportError:  # pragma: no cover - another Keras backend
        return None
