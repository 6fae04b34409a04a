"""StreamMonitor: the sequential alarm's false-alarm rate, detection, change point, statistics, errors."""

from __future__ import annotations

import numpy as np
import pytest

from shiftkit.check import Reference
from shiftkit.monitor import StreamMonitor
from shiftkit.shift.mmd import mmd2


def _reference(seed: int, n: int = 400, d: int = 4) -> Reference:
    rng = np.random.default_rng([seed, 0])
    return Reference.from_data(rng.normal(size=(n, d)), max_samples=n, seed=seed)


@pytest.mark.slow
def test_false_alarms_over_seeded_null_runs_stay_at_alpha():
    """100 unshifted runs of `horizon` windows (10 references x 10 runs): any-alarm rate <= alpha + 3 s.e."""
    alpha, horizon, runs = 0.1, 10, 0
    alarms = 0
    for ref_seed in range(10):
        mon = StreamMonitor(_reference(ref_seed), window=50, horizon=horizon, alpha=alpha, n_null_windows=200,
                            seed=ref_seed)
        for run in range(10):
            rng = np.random.default_rng([ref_seed, 1, run])
            fresh = mon.reset()  # the same calibration, a new stream
            fresh.update(rng.normal(size=(50 * horizon, 4)))
            alarms += fresh.alarm_window_ is not None
            runs += 1
    assert alarms / runs <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / runs), alarms


def test_detects_an_abrupt_shift_and_locates_the_change():
    mon = StreamMonitor(_reference(1), window=50, horizon=20, alpha=0.05, n_null_windows=200, seed=1)
    rng = np.random.default_rng(5)
    before = mon.update(rng.normal(size=(50 * 6, 4)))
    assert len(before) == 6 and not any(r.alarm for r in before)
    after = mon.update(rng.normal(0.6, size=(50 * 6, 4)))
    assert mon.alarm_window_ is not None and 6 <= mon.alarm_window_ <= 8
    assert abs(mon.change_point_ - 6) <= 1  # the CUSUM estimate: last zero of the alarming CUSUM, + 1
    last = after[-1]
    assert last.alarm and last.alarm_statistic == "input" and last.score > last.threshold
    assert last.start == 50 * 11 and last.stop == 50 * 12 and last.in_horizon
    assert mon.summary()["change_point"] == mon.change_point_ and "false alarm" in mon.summary()["false_alarm_bound"]
    assert isinstance(last.to_dict()["statistics"]["input"], float)


def test_rows_are_buffered_across_batches():
    mon = StreamMonitor(_reference(2), window=50, horizon=5, n_null_windows=60, seed=2)
    rng = np.random.default_rng(0)
    assert mon.update(rng.normal(size=(30, 4))) == []
    out = mon.update(rng.normal(size=(80, 4)))
    assert [r.window for r in out] == [0, 1] and out[1].stop == 100


def test_update_table_reads_a_file_in_chunks_with_the_same_windows(tmp_path):
    import pandas as pd

    from shiftkit.files import InputError

    rng = np.random.default_rng(4)
    ref = Reference.from_data(rng.normal(size=(300, 3)), max_samples=300, seed=4, feature_names=["a", "b", "c"])
    rows = rng.normal(size=(260, 3)) + np.r_[[0.0] * 130 + [1.0] * 130][:, None]
    path = tmp_path / "day.csv"
    pd.DataFrame(rows[:, [2, 0, 1]], columns=["c", "a", "b"]).to_csv(path, index=False)  # columns in another order
    monitor = StreamMonitor(ref, window=50, horizon=5, n_null_windows=60, seed=4)
    expected = [r.to_dict() for r in monitor.update(rows.astype(np.float32))]
    chunked = monitor.reset()  # the same calibration, a new stream
    got = [r.to_dict() for r in chunked.update_table(path, chunk_rows=17)]
    assert got == expected and len(got) == 5 and chunked.dropped_ == 0
    pd.DataFrame(rows[:, :2], columns=["a", "b"]).to_csv(path, index=False)
    with pytest.raises(InputError, match="missing from the target batch: 'c'"):
        monitor.reset().update_table(path)


def test_window_statistic_is_the_unbiased_mmd2_with_the_snapshots_bandwidth():
    ref = _reference(3)
    mon = StreamMonitor(ref, window=50, horizon=5, n_null_windows=60, seed=3)
    x = np.random.default_rng(9).normal(0.3, size=(50, 4))
    res = mon.update(x)[0]
    expected = mmd2(ref.standardize(ref.x)[mon._ref_rows], ref.standardize(x), bandwidth=ref.bandwidth)
    assert res.statistics["input"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    z = (res.statistics["input"] - mon.null_mean_["input"]) / mon.null_std_["input"]
    assert res.z["input"] == pytest.approx(z)
    assert res.cusum["input"] == pytest.approx(max(0.0, z - mon.drift))


def test_with_a_model_every_statistic_runs_and_labels_and_accuracy_are_estimated(gaussian_classifier):
    model, means, x, y = gaussian_classifier
    rng = np.random.default_rng(1)
    ref = Reference.from_data(x, y, model=model, max_samples=900, seed=0)
    mon = StreamMonitor(ref, model=model, window=100, horizon=5, n_null_windows=60, seed=0)
    assert mon.statistics_ == ("input", "feature", "bbsd", "labels")
    yt = rng.choice(3, 100, p=[0.8, 0.1, 0.1])
    res = mon.update((means[yt] + rng.normal(size=(100, 3))).astype("float32"))[0]
    assert set(res.statistics) == {"input", "feature", "bbsd", "labels"}
    assert res.label_source == "estimated" and res.label_proportions[0] > 0.5
    assert res.accuracy is not None and res.accuracy_interval[0] <= res.accuracy <= res.accuracy_interval[1]
    labeled = StreamMonitor(ref, model=model, window=100, horizon=5, n_null_windows=60, labeled=True, seed=0)
    res = labeled.update(x[:100], y[:100])[0]
    assert res.label_source == "labels"
    with pytest.raises(ValueError, match="labels of every batch"):
        labeled.update(x[:10])
    # a known prevalence: each window's estimate transports onto it (COT, kinds unknown), by class value too
    known = StreamMonitor(ref, model=model, window=100, horizon=5, n_null_windows=60, seed=0,
                          target_priors={0: 0.8, 1: 0.1, 2: 0.1})
    res = known.update((means[yt] + rng.normal(size=(100, 3))).astype("float32"))[0]
    assert res.accuracy_method == "cot" and known.target_priors == pytest.approx([0.8, 0.1, 0.1])
    with pytest.raises(ValueError, match="target_priors has 2 values"):
        StreamMonitor(ref, model=model, window=100, horizon=5, n_null_windows=60, seed=0, target_priors=[0.5, 0.5])
    with pytest.raises(ValueError, match="needs the snapshot's model"):
        StreamMonitor(ref, window=100, horizon=5, n_null_windows=60, seed=0, target_priors=[0.8, 0.1, 0.1])


def test_bad_arguments():
    ref = _reference(4, n=200)
    with pytest.raises(TypeError, match="Reference"):
        StreamMonitor(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="too large"):
        StreamMonitor(ref, window=100)
    with pytest.raises(ValueError, match="cannot run"):
        StreamMonitor(ref, window=20, statistics=("feature",))
    with pytest.raises(ValueError, match="labeled=True needs"):
        StreamMonitor(ref, window=20, labeled=True)
    with pytest.raises(ValueError, match="alpha"):
        StreamMonitor(ref, window=20, alpha=1.5)
    mon = StreamMonitor(ref, window=20, horizon=3, n_null_windows=60, seed=0)
    with pytest.raises(ValueError, match="per-sample shape"):
        mon.update(np.zeros((20, 5)))
    with pytest.raises(ValueError, match="NaN|finite"):
        mon.update(np.full((20, 4), np.nan))


def test_times_label_the_windows_and_reset_forgets_the_stream():
    mon = StreamMonitor(_reference(5), window=50, horizon=5, n_null_windows=60, seed=5)
    rng = np.random.default_rng(0)
    out = mon.update(rng.normal(size=(120, 4)), times=np.arange(120) * 10)
    assert [(r.time_start, r.time_end) for r in out] == [(0, 490), (500, 990)]
    assert mon.results_[-1].time_end == 990
    with pytest.raises(ValueError, match="every batch or none"):
        mon.update(rng.normal(size=(10, 4)))
    with pytest.raises(ValueError, match="one time per row"):
        mon.update(rng.normal(size=(10, 4)), times=np.arange(3))
    mon.reset()
    assert mon.results_ == [] and mon.alarm_window_ is None
    assert mon.update(rng.normal(size=(50, 4)))[0].window == 0



def test_dataframe_batches_are_matched_to_the_snapshots_columns_by_name():
    """A DataFrame with the reference's columns in another order measures the same rows (no false alarm)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(100, 10, size=800)})
    ref = Reference.from_data(frame, seed=0)
    batch = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(100, 10, size=200)})
    by_name = StreamMonitor(ref, window=50, n_null_windows=100, seed=0).update(batch[["b", "a"]])
    in_order = StreamMonitor(ref, window=50, n_null_windows=100, seed=0).update(batch)
    assert [r.statistics for r in by_name] == [r.statistics for r in in_order]
    assert not any(r.alarm for r in by_name)
    mon = StreamMonitor(ref, window=50, n_null_windows=100, seed=0)
    with pytest.raises(ValueError, match=r"lacks \['b'\].*has \['c'\]"):
        mon.update(batch.rename(columns={"b": "c"}))
    times = np.arange(200)
    res, _ = StreamMonitor(ref, window=50, n_null_windows=100, seed=0).update_periods(
        batch[["b", "a"]], times=times, every=50)
    res2, _ = StreamMonitor(ref, window=50, n_null_windows=100, seed=0).update_periods(batch, times=times, every=50)
    assert [r.statistics for r in res] == [r.statistics for r in res2]


def test_times_for_some_batches_only_are_refused_before_the_stream_changes():
    mon = StreamMonitor(_reference(6), window=20, horizon=5, n_null_windows=60, seed=6)
    rng = np.random.default_rng(0)
    mon.update(rng.normal(size=(10, 4)))  # no times: the rows wait
    with pytest.raises(ValueError, match="every batch or none"):
        mon.update(rng.normal(size=(40, 4)), times=np.arange(10, 50))
    with pytest.raises(ValueError, match="every batch or none"):
        mon.update(rng.normal(size=(15, 4)), times=np.arange(15))
    assert mon.results_ == [] and mon._buffered == 10  # the refused batches left nothing behind
    out = mon.update(rng.normal(size=(30, 4)))
    assert [(r.start, r.stop, r.time_start) for r in out] == [(0, 20, None), (20, 40, None)]
    # A labelled monitor refusing a batch without labels keeps the stream as it was too.
    rng2 = np.random.default_rng(1)
    ref = Reference.from_data(rng2.normal(size=(400, 4)), rng2.integers(0, 2, 400), seed=0)
    lab = StreamMonitor(ref, window=20, horizon=5, n_null_windows=60, labeled=True, seed=0)
    with pytest.raises(ValueError, match="labeled=True"):
        lab.update(rng2.normal(size=(15, 4)))
    assert lab._buffered == 0
    assert len(lab.update(rng2.normal(size=(20, 4)), rng2.integers(0, 2, 20))) == 1
