"""The dashboard's "monitor" section: the target rows, in their order, as a stream (no Streamlit import).

The reference is the source rows the model never trained on (the held-out split) when there is a
model, so that its statistics on the reference are those of fresh data; without a model, every source
row. `shiftkit.monitor.StreamMonitor` needs at least 4 x window reference rows (half to compare with,
half to calibrate the alarm on), which bounds the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftkit.check import Reference
from shiftkit.monitor import StreamMonitor

__all__ = ["MIN_WINDOW", "reference_rows", "max_window", "monitor_target", "window_frame"]

#: Smallest window the dashboard offers.
MIN_WINDOW = 10


def reference_rows(n_source: int, model: Any, eval_idx: np.ndarray) -> np.ndarray:
    """The source rows the monitor's reference holds: held out from the model's training, or all."""
    return np.asarray(eval_idx) if model is not None else np.arange(n_source)


def max_window(n_source: int, model: Any, eval_idx: np.ndarray) -> int:
    """The largest window the reference allows (`StreamMonitor` needs 4 x window reference rows)."""
    return len(reference_rows(n_source, model, eval_idx)) // 4


def monitor_target(domains: Any, model: Any, eval_idx: np.ndarray, *, window: int, alpha: float, horizon: int,
                   seed: int) -> StreamMonitor:
    """Run a `StreamMonitor` over the target rows in their order against the (held-out) source rows.

    Returns:
        The monitor after the last complete window (`results_`, `summary()`); `render_monitor_html`
        and `plots.monitor_timeline` draw it.

    Raises:
        ValueError: a window the reference is too small for, or fewer target rows than one window.
    """
    rows = reference_rows(len(domains.x_source), model, eval_idx)
    y = None if domains.y_source is None else np.asarray(domains.y_source)[rows]
    ref = Reference.from_data(np.asarray(domains.x_source)[rows], y, model=model, max_samples=len(rows), seed=seed)
    mon = StreamMonitor(ref, model=model, window=window, alpha=alpha, horizon=horizon, seed=seed,
                        n_null_windows=300)
    mon.update(np.asarray(domains.x_target))
    if not mon.results_:
        raise ValueError(f"The target has {len(domains.x_target)} rows, fewer than one window of {window}: choose a "
                         "smaller window.")
    return mon


def window_frame(monitor: StreamMonitor) -> Any:
    """One row per window: rows, each statistic, the CUSUM maximum, the alarm, estimated accuracy."""
    import pandas as pd

    rows = []
    for r in monitor.results_:
        row = {"window": r.window, "rows": f"{r.start}-{r.stop}"}
        row.update({name: round(value, 5) for name, value in r.statistics.items()})
        row["CUSUM max"] = round(r.score, 3)
        row["alarm"] = "ALARM" if r.alarm else ""
        row["estimated accuracy"] = None if r.accuracy is None else round(r.accuracy, 3)
        rows.append(row)
    return pd.DataFrame(rows)
