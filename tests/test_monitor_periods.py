"""Time-period windows of the monitor (issue 13: `shiftkit monitor --time-column ts --every 1D`)."""

from __future__ import annotations

import numpy as np
import pytest

from shiftkit.check import Reference
from shiftkit.monitor import StreamMonitor, period_windows


def _rows(w):
    return [(p.label, p.n_rows, p.n_periods) for p in w.windows]


def test_numeric_periods_are_anchored_at_zero_and_end_exclusive():
    times = [0, 10, 3599, 3600, 3700, 7300, 7300]
    w = period_windows(times, 3600)
    assert _rows(w) == [(0, 3, 1), (3600, 2, 1), (7200, 2, 1)]
    assert [p.end for p in w.windows] == [3600, 7200, 10800]
    assert [list(p.rows) for p in w.windows] == [[0, 1, 2], [3, 4], [5, 6]]
    assert w.merged == () and w.skipped == () and w.empty_periods == 0
    # float periods and times, and a numeric string from a command line
    f = period_windows([0.0, 0.25, 0.5, 1.75], "0.5")
    assert _rows(f) == [(0.0, 2, 1), (0.5, 1, 1), (1.5, 1, 1)] and f.empty_periods == 1


def test_date_periods_start_at_midnight_utc_and_follow_the_offset():
    times = ["2024-03-01T23:59:59+0000", "2024-03-02T00:00:00+0000", "2024-03-02T13:00:00+0000",
             "2024-03-04T08:00:00+0000"]  # load_single's text form; the 3rd of March is empty
    w = period_windows(times, "1D")
    assert _rows(w) == [("2024-03-01T00:00:00+00:00", 1, 1), ("2024-03-02T00:00:00+00:00", 2, 1),
                        ("2024-03-04T00:00:00+00:00", 1, 1)]
    assert w.windows[0].end == "2024-03-02T00:00:00+00:00" and w.empty_periods == 1
    six = period_windows(np.array(["2024-03-02T05:59", "2024-03-02T06:00"], dtype="datetime64[m]"), "6h")
    assert [p.label for p in six.windows] == ["2024-03-02T00:00:00+00:00", "2024-03-02T06:00:00+00:00"]
    weeks = period_windows(times, "W")  # weeks ending on Sunday: the period starts on the Sunday before
    assert [p.label for p in weeks.windows] == ["2024-02-25T00:00:00+00:00", "2024-03-03T00:00:00+00:00"]
    months = period_windows(times, "MS")
    assert _rows(months) == [("2024-03-01T00:00:00+00:00", 4, 1)]


def test_small_periods_are_merged_forward_or_skipped_and_the_result_says_so():
    times = [0] * 5 + [1] * 2 + [3] * 1 + [4] * 6 + [5] * 2  # periods of 1: 5, 2, (empty), 1, 6, 2 rows
    merged = period_windows(times, 1, min_rows=4)
    assert _rows(merged) == [(0, 5, 1), (1, 9, 4)]  # periods 1, 2 (empty), 3 and 4 in one window, labelled 1
    assert merged.windows[1].end == 5 and merged.merged == (1, 3)
    assert merged.skipped == ((5, 2),)  # nothing after the last short period to merge it into
    assert "2 period(s) with fewer rows merged forward" in merged.summary and "2 rows not monitored" in merged.summary
    skipped = period_windows(times, 1, min_rows=4, small="skip")
    assert _rows(skipped) == [(0, 5, 1), (4, 6, 1)]
    assert skipped.skipped == ((1, 2), (3, 1), (5, 2)) and skipped.merged == () and skipped.empty_periods == 1
    assert "3 period(s) with fewer rows skipped (5 rows not monitored)" in skipped.summary
    assert skipped.to_dict()["windows"][1] == {"label": 4, "end": 5, "rows": 6, "periods": 1}


@pytest.mark.parametrize("times, every, match", [
    ([0, 1], "1D", r"every='1D' is not a number, but the times are numbers.*every=3600"),
    ([0, 1], 0, r"every must be > 0 for numeric times \(e.g. every=3600\)"),
    ([0, 1], None, r"every must be a pandas offset alias.*e.g. every='1D'"),
    (["2024-01-01", "2024-01-02"], "1X", r"every='1X' is not a period.*every='1D'"),
    (["2024-01-01", "2024-01-02"], "M", r"every='M'.*Please use 'ME' instead.*every='1D'"),
    (["2024-01-01", "2024-01-02"], 3600, r"every=3600 is a number, but the times are dates.*every='1D'"),
    (["2024-01-01", "2024-01-02"], "1ns", r"every='1ns' makes more than"),
    ([3, 1], 1, r"times must be in time order"),
    (["2024-01-02", "2024-01-01"], "1D", r"times must be in time order"),
    (["soon", "later"], "1D", r"times must be numbers or date times"),
])
def test_bad_periods_and_times_say_what_to_give(times, every, match):
    with pytest.raises(ValueError, match=match):
        period_windows(times, every)


def test_the_monitor_runs_over_period_windows_unchanged():
    rng = np.random.default_rng(0)
    ref = Reference.from_data(rng.normal(size=(400, 3)), max_samples=400, seed=0)
    mon = StreamMonitor(ref, window=40, horizon=10, n_null_windows=60, seed=0)
    # 6 days, 30..90 rows a day, a mean shift from day 4; day 2 has 20 rows (merged into day 3)
    counts = [60, 20, 45, 90, 70, 30]
    times = np.concatenate([np.full(n, d * 86400.0) + rng.uniform(0, 86000, n) for d, n in enumerate(counts)])
    times = np.sort(times).astype("datetime64[s]")
    x = np.concatenate([rng.normal(0.0 if d < 3 else 1.5, size=(n, 3)) for d, n in enumerate(counts)])
    results, cut = mon.update_periods(x, times=times, every="1D")
    assert [r.time_start[:10] for r in results] == ["1970-01-01", "1970-01-02", "1970-01-04", "1970-01-05"]
    assert cut.merged == ("1970-01-02T00:00:00+00:00",) and cut.skipped == (("1970-01-06T00:00:00+00:00", 30),)
    assert [r.extra["period_rows"] for r in results] == [60, 65, 90, 70] and results[1].extra["periods"] == 2
    assert [(r.start, r.stop) for r in results] == [(0, 60), (60, 125), (125, 215), (215, 285)]
    assert results[1].time_end == "1970-01-04T00:00:00+00:00"
    # each window is a seeded sample of `window` rows: the statistic equals the monitor's on those rows
    assert not results[0].alarm and mon.alarm_window_ in (2, 3) and mon.change_point_ == 2
    with pytest.raises(ValueError, match="every='1X' is not a period"):
        mon.reset().update_periods(x, times=times, every="1X")
    mon.reset().update(x[:10])
    with pytest.raises(ValueError, match="call reset"):
        mon.update_periods(x, times=times, every="1D")


def test_the_monitor_page_shows_each_windows_period():
    from shiftkit.html_report import render_monitor_html

    rng = np.random.default_rng(1)
    ref = Reference.from_data(rng.normal(size=(200, 2)), max_samples=200, seed=1)
    mon = StreamMonitor(ref, window=20, horizon=5, n_null_windows=50, seed=1)
    times = np.repeat([0, 100, 200], 25)
    results, _ = mon.update_periods(rng.normal(size=(75, 2)), times=times, every=100)
    page = render_monitor_html(mon)
    assert "period (start - end)" in page and "<td class=\"l\">100 - 200</td>" in page and len(results) == 3
