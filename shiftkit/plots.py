"""Figures of shift reports: seaborn/matplotlib, rendered by the dashboard and the HTML report.

Every function takes result objects (or plain arrays) and returns a `matplotlib.figure.Figure`;
none computes a statistic. Figures are built with the object-oriented API on the Agg canvas
(`Figure()` + `FigureCanvasAgg`), never through `pyplot`: no global figure registry to leak into,
no GUI backend, safe in Streamlit's threads. `to_png` renders a figure to PNG bytes and releases it.

Text that comes from data (class and feature names, titles) passes through `plain_text` first, so
a `$` is drawn as a dollar sign and never starts matplotlib's TeX (mathtext) parser: a column named
`$alpha$ rate` or "price in $" is shown as written.

Example:
    >>> from shiftkit import plots                              # doctest: +SKIP
    >>> fig = plots.null_distribution(report.input_test)         # doctest: +SKIP
    >>> png = plots.to_png(fig)                                   # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "SOURCE_COLOR",
    "TARGET_COLOR",
    "close",
    "comparison_bars",
    "embedding_scatter",
    "feature_drift_bars",
    "monitor_timeline",
    "label_distributions",
    "label_ratios",
    "new_figure",
    "null_distribution",
    "null_distributions",
    "plain_text",
    "to_png",
]

#: Colour of the source domain in every figure.
SOURCE_COLOR = "#1f77b4"
#: Colour of the target domain in every figure.
TARGET_COLOR = "#ff7f0e"
_OBSERVED_COLOR = "#d62728"
_THRESHOLD_COLOR = "#444444"


def plain_text(value: Any) -> str:
    r"""`value` as text that matplotlib draws literally: every `$` escaped, so no mathtext parsing.

    Matplotlib reads a string with an even number of unescaped `$` as TeX (`$\foo$` then fails to
    render, and the whole figure with it); escaped as `\$`, each is drawn as a dollar sign.

    Args:
        value: any value; its `str()` is escaped.

    Returns:
        The escaped text.

    Example:
        >>> plain_text("$x$ rate")
        '\\$x\\$ rate'
    """
    return str(value).replace("$", r"\$")


def _sns():
    # seaborn imports matplotlib.pyplot, which this module avoids (figures on the Agg canvas, safe
    # in Streamlit's threads): imported only by the plots that draw with it.
    import seaborn as sns

    return sns


def new_figure(n_cols: int = 1, *, width: float = 5.5, height: float = 3.6, sharey: bool = False) -> tuple[Figure, Any]:
    """A figure on the Agg canvas with `n_cols` axes side by side (a list when `n_cols > 1`)."""
    fig = Figure(figsize=(width * n_cols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_cols, sharey=sharey, squeeze=True)
    return fig, axes


def to_png(fig: Figure, *, dpi: int = 90, close_figure: bool = True) -> bytes:
    """Render `fig` to PNG bytes; release its memory unless `close_figure=False`."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if close_figure:
        close(fig)
    return buf.getvalue()


def close(fig: Figure) -> None:
    """Release a figure's memory (axes and artists); also closes it in pyplot if it is registered there."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)
    fig.clear()


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def _draw_null(ax: Any, test: Any) -> None:
    sns = _sns()
    null = np.asarray(test.null, dtype=np.float64)
    if null.size:
        sns.histplot(x=null, ax=ax, bins=40, color="#9ecae1", edgecolor="white", stat="count", label="permutation null")
    if math.isfinite(test.threshold):
        ax.axvline(test.threshold, color=_THRESHOLD_COLOR, linestyle="--", linewidth=1.5,
                   label=f"threshold (critical value at alpha) = {test.threshold:.4g}")
    elif test.threshold < 0:  # aggregated test: another bandwidth rejects whatever this kernel's value
        ax.plot([], [], color=_THRESHOLD_COLOR, linestyle="--",
                label="threshold: none (another bandwidth of the aggregated test rejects)")
    else:  # too few permutations for alpha: no statistic could reject
        ax.plot([], [], color=_THRESHOLD_COLOR, linestyle="--", label="threshold: none (cannot reject at alpha)")
    ax.axvline(test.statistic, color=_OBSERVED_COLOR, linewidth=2.0, label=f"observed MMD^2 = {test.statistic:.4g}")
    verdict = "shift" if test.is_shift else "no shift"
    ax.set_title(plain_text(f"{test.space} space: p = {_fmt_p(test.p_value)} ({verdict} at alpha={test.alpha:g})"),
                 fontsize=10)
    ax.set_xlabel("MMD^2 (unbiased)")
    ax.set_ylabel("permutations")
    # An observed statistic far out in the tail would squash the null into one bar: keep the null
    # readable and point to the observed value at the right edge instead.
    if null.size:
        lo, hi = float(null.min()), float(null.max())
        span = max(hi - lo, 1e-12)
        if test.statistic > hi + span:
            ax.set_xlim(lo - 0.05 * span, hi + 0.6 * span)
            ax.annotate(f"observed {test.statistic:.3g} (off scale) →", xy=(0.99, 0.5), xycoords="axes fraction",
                        ha="right", va="center", color=_OBSERVED_COLOR, fontsize=9, fontweight="bold")
    ax.legend(fontsize=8, loc="best", frameon=False)


def null_distribution(test: Any) -> Figure:
    """Histogram of an MMD test's permutation null with the observed statistic and the threshold.

    Args:
        test: an `MMDTestResult` (its `null`, `statistic`, `threshold`, `p_value`).

    Returns:
        A Figure. With the linear-time test (no permutations) only the two lines are drawn.
    """
    fig, ax = new_figure()
    _draw_null(ax, test)
    return fig


def null_distributions(report: Any) -> Figure:
    """The null histograms of a `ShiftReport`: input space, and feature space when measured."""
    tests = [t for t in (report.input_test, report.feature_test) if t is not None]
    fig, axes = new_figure(len(tests))
    axes = np.atleast_1d(axes)
    for ax, test in zip(axes, tests):
        _draw_null(ax, test)
    return fig


def _class_labels(n: int, class_names: Sequence[str] | None) -> list[str]:
    """Class names as drawn (escaped with `plain_text`); the codes when names are missing."""
    if class_names is not None and len(class_names) == n:
        return [plain_text(c) for c in class_names]
    return [str(k) for k in range(n)]


def label_distributions(labels: Any, class_names: Sequence[str] | None = None) -> Figure:
    """Grouped bars of the class proportions, source vs target (true or estimated).

    Args:
        labels: a `LabelShiftSummary` (`ShiftReport.labels`).
        class_names: optional names of the classes.
    """
    sns = _sns()
    n = labels.n_classes
    names = _class_labels(n, class_names)
    rows = [{"class": names[k], "domain": "source", "proportion": float(labels.source_proportions[k])} for k in range(n)]
    target_name = "target" if labels.target_from == "labels" else plain_text(f"target ({labels.target_from})")
    if labels.target_proportions is not None:
        rows += [
            {"class": names[k], "domain": target_name, "proportion": float(labels.target_proportions[k])}
            for k in range(n)
        ]
    frame = pd.DataFrame(rows)
    fig, ax = new_figure(width=max(4.5, 0.6 * n + 3.0))
    palette = {"source": SOURCE_COLOR, target_name: TARGET_COLOR}
    sns.barplot(data=frame, x="class", y="proportion", hue="domain", ax=ax, palette=palette)
    ax.set_ylim(0, min(1.0, float(frame["proportion"].max()) * 1.25 + 0.02))
    title = "class proportions"
    if labels.distance is not None:
        title += f": total variation {labels.distance.total_variation:.3f}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


def label_ratios(labels: Any, class_names: Sequence[str] | None = None) -> Figure:
    """Bars of the label ratios q(y)/p(y) per class, with the no-shift line at 1.

    Args:
        labels: a `LabelShiftSummary` with a known target side (`labels.ratios` not None).
        class_names: optional names of the classes.

    Raises:
        ValueError: the target side is unknown (no target labels and no model).
    """
    if labels.ratios is None:
        raise ValueError("label_ratios needs target proportions (target labels, or a model to estimate them).")
    n = labels.n_classes
    names = _class_labels(n, class_names)
    ratios = np.asarray(labels.ratios.ratios, dtype=np.float64)
    fig, ax = new_figure(width=max(4.5, 0.5 * n + 3.0))
    finite = np.where(np.isfinite(ratios), ratios, 0.0)
    colors = [TARGET_COLOR if r > 1 else SOURCE_COLOR for r in finite]
    ax.bar(names, finite, color=colors)
    for k, r in enumerate(ratios):
        if not math.isfinite(r):
            ax.annotate("absent in source", (k, 0.02), rotation=90, ha="center", fontsize=8)
    ax.axhline(1.0, color=_THRESHOLD_COLOR, linestyle="--", linewidth=1.2, label="no label shift (ratio 1)")
    ax.set_xlabel("class")
    ax.set_ylabel("q(y) / p(y)")
    ax.set_title(plain_text(f"label ratios target/source (target from {labels.target_from})"), fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


def _draw_embedding(ax: Any, source: np.ndarray, target: np.ndarray, title: str) -> None:
    ax.scatter(source[:, 0], source[:, 1], s=10, alpha=0.55, color=SOURCE_COLOR, label=f"source (n={len(source)})",
               linewidths=0)
    ax.scatter(target[:, 0], target[:, 1], s=10, alpha=0.55, color=TARGET_COLOR, label=f"target (n={len(target)})",
               linewidths=0)
    ax.set_title(plain_text(title), fontsize=10)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.legend(fontsize=8, frameon=False, markerscale=2)


def embedding_scatter(
    before: tuple[np.ndarray, np.ndarray],
    after: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    titles: tuple[str, str] = ("before adaptation", "after adaptation"),
) -> Figure:
    """2-D embeddings of source and target, coloured by domain; before and after side by side.

    Args:
        before: `(source_2d, target_2d)`, arrays of shape `(n, 2)` and `(m, 2)`.
        after: the same after adaptation, or None for one panel.
        titles: the panel titles.
    """
    panels = [before] if after is None else [before, after]
    fig, axes = new_figure(len(panels), width=5.0, height=4.2)
    axes = np.atleast_1d(axes)
    for ax, (src, tgt), title in zip(axes, panels, titles):
        _draw_embedding(ax, np.asarray(src), np.asarray(tgt), title)
    return fig


def feature_drift_bars(drift: Any, *, top: int = 15) -> Figure:
    """Horizontal bars of the most shifted features: -log10(adjusted p-value), with the threshold.

    The scale is the same for KS (numeric) and chi-square (categorical) tests; a bar past the dashed
    line at -log10(alpha) is a shifted feature.

    Args:
        drift: a `FeatureDriftResult` (sorted most shifted first).
        top: how many features to show.
    """
    tests = list(drift.tests[:top])[::-1]
    fig, ax = new_figure(width=6.5, height=0.28 * max(len(tests), 3) + 1.3)
    names = [plain_text(t.feature) for t in tests]
    values = [-math.log10(max(t.p_adjusted, 1e-300)) for t in tests]
    colors = [TARGET_COLOR if t.is_shift else "#bbbbbb" for t in tests]
    ax.barh(names, values, color=colors)
    ax.axvline(-math.log10(drift.alpha), color=_THRESHOLD_COLOR, linestyle="--", linewidth=1.2,
               label=f"threshold -log10(alpha={drift.alpha:g})")
    ax.set_xlabel("-log10(adjusted p-value)  (higher = more shift)")
    ax.set_title(
        f"{drift.n_shifted} of {len(drift.tests)} features shifted ({drift.correction} corrected)",
        fontsize=10,
    )
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return fig


def comparison_bars(comparison: Any) -> Figure:
    """Scale-free figures before vs after adaptation (normalized MMD^2, p-values, label distance).

    Args:
        comparison: a `ShiftComparison` (`AdaptationReport.comparison`).
    """
    sns = _sns()
    rows = []
    for r in comparison.rows:
        if not r.comparable:
            continue
        if "z-score" in r.figure:
            continue  # z-scores are on another scale than the others; they stay in the table
        for when, value in (("before", r.before), ("after", r.after)):
            if value is not None:
                rows.append({"figure": plain_text(f"{r.figure}\n({r.better} = less shift)"), "when": when,
                             "value": value})
    fig, ax = new_figure(width=7.0, height=3.8)
    if rows:
        sns.barplot(data=pd.DataFrame(rows), y="figure", x="value", hue="when", ax=ax,
                    palette={"before": "#999999", "after": "#2ca02c"})
        ax.legend(fontsize=8, frameon=False)
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("before vs after adaptation", fontsize=10)
    return fig


def monitor_timeline(results: Sequence[Any], threshold: float, *, alarm_window: int | None = None,
                     change_point: int | None = None) -> Figure:
    """A stream monitor's run: each statistic's standardised value and its CUSUM over the windows.

    Args:
        results: `shiftkit.monitor.WindowResult`s in window order.
        threshold: the alarm's calibrated threshold (drawn on the CUSUM panel).
        alarm_window: the window where the alarm fired (a red line), if it did.
        change_point: the estimated first shifted window (a dashed line), if any.

    Returns:
        A figure with two panels: z per window, and CUSUM per window with the threshold.
    """
    fig, (ax_z, ax_c) = new_figure(2, width=6.0, height=3.4)
    windows = [r.window for r in results]
    names = list(results[0].z) if results else []
    for name in names:
        ax_z.plot(windows, [r.z[name] for r in results], marker=".", label=name)
        ax_c.plot(windows, [r.cusum[name] for r in results], marker=".", label=name)
    ax_c.axhline(threshold, color="black", linewidth=1, label=f"threshold {threshold:.3g}")
    for ax in (ax_z, ax_c):
        if alarm_window is not None:
            ax.axvline(alarm_window, color=TARGET_COLOR, linewidth=1.5, label=f"alarm (window {alarm_window})")
        if change_point is not None:
            ax.axvline(change_point, color="grey", linestyle="--", label=f"change point (window {change_point})")
        ax.set_xlabel("window")
    ax_z.set_ylabel("z (null s.d. from the null mean)")
    ax_z.set_title("each statistic, standardised")
    ax_c.set_ylabel("CUSUM")
    ax_c.set_title("CUSUM and the alarm threshold")
    ax_c.legend(fontsize=7)
    return fig

