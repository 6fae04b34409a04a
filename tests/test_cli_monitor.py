"""`shiftkit monitor`: windows of a stream against a snapshot, JSON lines, HTML, exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shiftkit.cli import main


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("monitor")
    rng = np.random.default_rng(0)
    ref = tmp / "ref.npz"
    np.savez(ref, x=rng.normal(size=(600, 4)))
    snap = tmp / "snap.npz"
    assert main(["snapshot", "--reference", str(ref), "--out", str(snap), "--max-samples", "600"]) == 0
    return snap


def test_stream_with_a_shift_alarms_and_writes_jsonl_and_html(snapshot, tmp_path, capsys):
    rng = np.random.default_rng(1)
    stream = np.concatenate([rng.normal(size=(300, 4)), rng.normal(0.8, size=(300, 4))])
    data = tmp_path / "stream.npz"
    np.savez(data, x=stream)
    lines, page = tmp_path / "w.jsonl", tmp_path / "m.html"
    code = main(["monitor", "--reference", str(snapshot), "--target", str(data), "--window", "50", "--horizon", "20",
                 "--jsonl", str(lines), "--html", str(page)])
    out = capsys.readouterr().out
    assert code == 1 and "ALARM at window" in out
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(rows) == 12 and rows[0]["window"] == 0 and not rows[0]["alarm"]
    first = next(r["window"] for r in rows if r["alarm"])
    assert 6 <= first <= 8 and rows[-1]["change_point"] in (5, 6, 7)
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "ALARM at window" in html and "data:image/png;base64," in html


def test_unshifted_folder_of_batches_passes(snapshot, tmp_path, capsys):
    folder = tmp_path / "batches"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):  # 3 x 70 rows: 4 windows of 50, 10 rows left waiting
        np.savez(folder / f"b{i}.npz", x=rng.normal(size=(70, 4)))
    code = main(["monitor", "--reference", str(snapshot), "--target", str(folder), "--window", "50", "--horizon", "10",
                 "--jsonl", "-"])
    captured = capsys.readouterr()
    assert code == 0
    assert len([line for line in captured.out.splitlines() if line.startswith("{")]) == 4
    assert "no alarm" in captured.err


def test_bad_inputs_exit_2(snapshot, tmp_path, capsys):
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros((100, 4)))
    assert main(["monitor", "--reference", str(plain), "--target", str(plain)]) == 2
    assert "not a shiftkit snapshot" in capsys.readouterr().err
    assert main(["monitor", "--reference", str(snapshot), "--target", str(plain), "--window", "500"]) == 2
    assert "too large" in capsys.readouterr().err
    small = tmp_path / "small.npz"
    np.savez(small, x=np.zeros((10, 4)))
    assert main(["monitor", "--reference", str(snapshot), "--target", str(small), "--window", "50"]) == 2
    assert "fewer rows than one window" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["monitor", "--reference", str(snapshot), "--target", str(empty), "--window", "50"]) == 2
    assert "no .csv" in capsys.readouterr().err
    wide = tmp_path / "wide.npz"
    np.savez(wide, x=np.zeros((100, 5)))
    assert main(["monitor", "--reference", str(snapshot), "--target", str(wide), "--window", "50"]) == 2
    # a known prevalence needs the accuracy estimate (a model and a labelled snapshot): a usage error here
    capsys.readouterr()
    assert main(["monitor", "--reference", str(snapshot), "--target", str(plain), "--window", "50",
                 "--target-priors", "0.5,0.5"]) == 2
    assert "target_priors is used by each window's accuracy estimate" in capsys.readouterr().err


def test_time_column_orders_rows_and_labels_windows(tmp_path, capsys):
    import pandas as pd

    rng = np.random.default_rng(3)
    ref = tmp_path / "ref.csv"
    pd.DataFrame(rng.normal(size=(400, 2)), columns=["a", "b"]).to_csv(ref, index=False)
    snap = tmp_path / "snap.npz"
    assert main(["snapshot", "--reference", str(ref), "--out", str(snap), "--max-samples", "400"]) == 0
    times = pd.date_range("2026-01-01", periods=100, freq="h")
    frame = pd.DataFrame(rng.normal(size=(100, 2)), columns=["a", "b"]).assign(ts=times.astype(str))
    data = tmp_path / "stream.csv"
    frame.sample(frac=1.0, random_state=0).to_csv(data, index=False)  # shuffled rows: --time-column sorts them
    lines = tmp_path / "w.jsonl"
    assert main(["monitor", "--reference", str(snap), "--target", str(data), "--window", "50", "--horizon", "5",
                 "--time-column", "ts", "--jsonl", str(lines)]) in (0, 1)
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert rows[0]["time_start"].startswith("2026-01-01T00:00:00") and rows[1]["time_end"].startswith("2026-01-05T03")
    assert main(["monitor", "--reference", str(snap), "--target", str(data), "--window", "50",
                 "--time-column", "when"]) == 2
    assert "no time column 'when'" in capsys.readouterr().err


def test_every_makes_one_window_per_period(tmp_path, capsys):
    import pandas as pd

    rng = np.random.default_rng(5)
    ref = tmp_path / "ref.csv"
    pd.DataFrame(rng.normal(size=(600, 2)), columns=["a", "b"]).to_csv(ref, index=False)
    snap = tmp_path / "snap.npz"
    assert main(["snapshot", "--reference", str(ref), "--out", str(snap), "--max-samples", "600"]) == 0
    days = []  # six days of 120 rows, but day 2 has only 40 (merged into day 3); a mean shift from day 4
    for day, n in enumerate([120, 40, 120, 120, 120, 120]):
        x = rng.normal(size=(n, 2)) + (1.5 if day >= 3 else 0.0)
        ts = pd.Timestamp("2026-03-01") + pd.Timedelta(days=day) + pd.to_timedelta(np.sort(rng.uniform(0, 86000, n)),
                                                                                   unit="s")
        days.append(pd.DataFrame(x, columns=["a", "b"]).assign(ts=ts.astype(str)))
    data = tmp_path / "days.csv"
    pd.concat(days).to_csv(data, index=False)
    lines = tmp_path / "d.jsonl"
    code = main(["monitor", "--reference", str(snap), "--target", str(data), "--window", "100", "--horizon", "6",
                 "--time-column", "ts", "--every", "1D", "--jsonl", str(lines)])
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert code == 1
    starts = [r["time_start"][:10] for r in rows]
    assert starts == ["2026-03-01", "2026-03-02", "2026-03-04", "2026-03-05", "2026-03-06"], starts
    assert rows[1]["extra"]["periods"] == 2  # day 2's 40 rows merged into day 3
    assert next(r["window"] for r in rows if r["alarm"]) >= 2  # not before the shift (windows are 0-based)
    out = capsys.readouterr()
    assert "--every 1D periods" in out.out
    assert main(["monitor", "--reference", str(snap), "--target", str(data), "--every", "1D"]) == 2
    assert "--every needs --time-column" in capsys.readouterr().err


def test_a_table_is_read_in_chunks_with_the_same_windows(tmp_path, capsys, monkeypatch):
    import pandas as pd

    import shiftkit.cli as cli
    import shiftkit.files.stream as streaming

    rng = np.random.default_rng(8)
    ref = tmp_path / "ref.csv"
    pd.DataFrame(rng.normal(size=(500, 3)), columns=["a", "b", "c"]).assign(y=rng.integers(0, 2, 500)).to_csv(
        ref, index=False)
    snap = tmp_path / "snap.npz"
    assert main(["snapshot", "--reference", str(ref), "--label-column", "y", "--out", str(snap),
                 "--max-samples", "500"]) == 0
    stream = pd.DataFrame(rng.normal(size=(700, 3)) + np.r_[[0.0] * 400 + [1.0] * 300][:, None],
                          columns=["a", "b", "c"]).assign(y=rng.integers(0, 2, 700))
    data = tmp_path / "stream.parquet"
    stream.to_parquet(data)
    seen = []
    real_chunks = streaming.table_chunks

    def counted(*args, **kwargs):
        for frame in real_chunks(*args, **kwargs):
            seen.append(len(frame))
            yield frame

    monkeypatch.setattr(streaming, "table_chunks", counted)
    outputs = []
    for how in ("chunks", "whole"):  # chunks that do not divide the windows, then the file read whole (load_single)
        if how == "whole":
            monkeypatch.setattr(cli, "_monitor_streams", lambda *a: False)
        lines = tmp_path / f"{how}.jsonl"
        code = main(["monitor", "--reference", str(snap), "--target", str(data), "--window", "100", "--horizon", "7",
                     "--label-column", "y", "--labeled", "--chunk-rows", "37", "--jsonl", str(lines)])
        outputs.append((code, lines.read_text()))
    monkeypatch.undo()
    assert seen == [37] * 18 + [34], (len(seen), sum(seen), seen[-3:])  # the first run read 19 chunks, the second none
    assert outputs[0] == outputs[1] and outputs[0][0] == 1 and len(outputs[0][1].splitlines()) == 7
    stream.loc[650, "b"] = np.nan  # a missing value in a late chunk: the loader's message, exit 2
    stream.to_parquet(data)
    capsys.readouterr()
    assert main(["monitor", "--reference", str(snap), "--target", str(data), "--window", "100",
                 "--label-column", "y", "--chunk-rows", "37"]) == 2
    assert "missing values" in capsys.readouterr().err


@pytest.fixture(scope="module")
def table_snapshot(tmp_path_factory):
    """A labelled CSV snapshot (columns a, b; label y in {0, 1}) of 800 rows."""
    import pandas as pd

    tmp = tmp_path_factory.mktemp("monitor_tables")
    rng = np.random.default_rng(11)
    ref = tmp / "ref.csv"
    pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(size=800), "y": rng.integers(0, 2, 800)}).to_csv(
        ref, index=False)
    snap = tmp / "snap.npz"
    assert main(["snapshot", "--reference", str(ref), "--out", str(snap), "--max-samples", "800",
                 "--label-column", "y"]) == 0
    return snap


def _table(path, n, *, start="2024-03-01", freq="h", seed=0, times=None, labels=False):
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    if labels:
        frame["y"] = rng.integers(0, 2, n)
    frame["ts"] = (pd.date_range(start, periods=n, freq=freq).strftime("%Y-%m-%d %H:%M:%S.%f")
                   if times is None else times)
    frame.to_csv(path, index=False)
    return path


def test_rows_left_out_of_every_window_are_said_in_the_summary(table_snapshot, tmp_path, capsys):
    """Skipped periods and trailing rows are in the printed summary (not only on a terminal) and the HTML."""
    import pandas as pd

    gap = pd.concat([pd.read_csv(_table(tmp_path / "p1.csv", 72)), pd.read_csv(_table(tmp_path / "p2.csv", 5,
                     start="2024-03-10", seed=1)), pd.read_csv(_table(tmp_path / "p3.csv", 8, start="2024-03-12",
                                                                      seed=2))])
    gap.to_csv(tmp_path / "gap.csv", index=False)
    html = tmp_path / "m.html"
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "gap.csv"), "--window",
                 "20", "--time-column", "ts", "--every", "1D", "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "13 rows not monitored" in out and "(85 rows read)" in out, out
    assert "13 rows not monitored" in html.read_text()
    # every period shorter than a window, skipped: the message names the periods, not "fewer rows than one window"
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "gap.csv"), "--window",
                 "30", "--time-column", "ts", "--every", "1D", "--small-periods", "skip"]) == 2
    err = capsys.readouterr().err
    assert "--small-periods merge" in err and "fewer rows than one window" not in err, err
    # row windows: the trailing rows are counted, and windows past --horizon are said
    _table(tmp_path / "t250.csv", 250)
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "t250.csv"), "--window",
                 "20", "--horizon", "5", "--time-column", "ts", "--jsonl", str(tmp_path / "r.jsonl")]) in (0, 1)
    out = capsys.readouterr().out
    assert "10 trailing rows not monitored" in out and "waits" not in out, out
    assert "7 window(s) beyond the horizon of 5" in out, out


def test_sub_second_times_keep_their_fractions(table_snapshot, tmp_path):
    _table(tmp_path / "ms.csv", 300, freq="10ms")
    lines = tmp_path / "ms.jsonl"
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "ms.csv"), "--window",
                 "10", "--time-column", "ts", "--every", "500ms", "--jsonl", str(lines)]) in (0, 1)
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["extra"]["period_rows"] for r in rows] == [50] * 6
    assert rows[1]["time_start"] == "2024-03-01T00:00:00.500000+00:00"
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "ms.csv"), "--window",
                 "50", "--time-column", "ts", "--jsonl", str(lines)]) in (0, 1)
    rows = [json.loads(line) for line in lines.read_text().splitlines()]
    assert (rows[0]["time_start"], rows[0]["time_end"]) == ("2024-03-01T00:00:00.000000+00:00",
                                                            "2024-03-01T00:00:00.490000+00:00")


def test_batch_files_out_of_time_order_are_refused_naming_them(table_snapshot, tmp_path, capsys):
    folder = tmp_path / "fts"
    folder.mkdir()
    _table(folder / "a.csv", 150, start="2024-01-07")
    _table(folder / "b.csv", 150, start="2024-01-01", seed=1)
    for extra in ([], ["--every", "1D"]):
        assert main(["monitor", "--reference", str(table_snapshot), "--target", str(folder), "--window", "50",
                     "--time-column", "ts", *extra]) == 2
        err = capsys.readouterr().err
        assert "'b.csv'" in err and "'a.csv'" in err and "name order" in err, err


def test_monitor_messages_point_at_the_fix(table_snapshot, tmp_path, capsys):
    _table(tmp_path / "lab.csv", 100, labels=True)
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "lab.csv"), "--window",
                 "20", "--labeled", "--time-column", "ts"]) == 2
    assert "--label-column" in capsys.readouterr().err
    import pandas as pd

    frame = pd.read_csv(tmp_path / "lab.csv")
    frame.loc[3, "ts"] = None
    frame.to_csv(tmp_path / "na.csv", index=False)
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "na.csv"), "--window",
                 "20", "--time-column", "ts", "--label-column", "y"]) == 2
    assert "--drop-na" in capsys.readouterr().err
    # an empty batch in a folder (no traffic in that hour) is skipped with a note, not the end of the run
    folder = tmp_path / "batches"
    folder.mkdir()
    _table(folder / "1.csv", 60)
    (folder / "2.csv").write_text("a,b,ts\n")
    _table(folder / "3.csv", 60, start="2024-03-04", seed=3)
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(folder), "--window", "20",
                 "--time-column", "ts"]) in (0, 1)
    captured = capsys.readouterr()
    assert "'2.csv'" in captured.err and "empty" in captured.err and "6 windows" in captured.out, captured


def test_jsonl_label_proportions_name_their_classes(table_snapshot, tmp_path):
    _table(tmp_path / "lab.csv", 60, labels=True)
    lines = tmp_path / "l.jsonl"
    assert main(["monitor", "--reference", str(table_snapshot), "--target", str(tmp_path / "lab.csv"), "--window",
                 "20", "--labeled", "--label-column", "y", "--time-column", "ts", "--jsonl", str(lines)]) in (0, 1)
    row = json.loads(lines.read_text().splitlines()[0])
    assert row["label_classes"] == ["0", "1"] and len(row["label_proportions"]) == 2
