"""ExperimentResult: what `Experiment.run` returns: a table of methods x metrics, histories, reports, models.

It renders (`to_frame`, `to_dict`, `to_json`, `plot`) and persists (`save` / `load`: JSON + `.keras`
files + a reference snapshot); it computes nothing new.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shiftkit._json import jsonable
from shiftkit._version import __version__
from shiftkit.adapt.base import load_adapter
from shiftkit.check import Reference
from shiftkit.files import load_model_path
from shiftkit.metrics import SHIFT_COLUMNS
from shiftkit.shift.features import predict_proba

__all__ = ["BASELINES", "ExperimentResult"]

#: Methods of a result that are not adapters.
BASELINES: tuple[str, ...] = ("source_only", "target_only")
_RESULT_KIND = "shiftkit.ExperimentResult"
_RESULT_SCHEMA = "1.0"


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
        adapters = {m: load_adapter(need(m)) for m in methods if m not in BASELINES and m in files}
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
