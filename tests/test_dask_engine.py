"""The Dask engine (shiftkit.shift.dask_engine) on a LocalCluster of 2 worker processes equals the local engine."""

import json

import numpy as np
import pandas as pd
import pytest

from shiftkit.check import check_shift
from shiftkit.shift.streaming import scan_reference, scan_target

distributed = pytest.importorskip("distributed")

FAST = dict(n_permutations=100, diagnose_shift=False)


def _parts(folder, seed, sizes, shift=0.0):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i, n in enumerate(sizes):
        frame = pd.DataFrame(rng.normal(size=(n, 3)) + shift, columns=["u", "v", "w"])
        frame["y"] = rng.choice(["a", "b"], size=n, p=[0.6, 0.4] if shift else [0.5, 0.5])
        frame.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return str(folder)


@pytest.mark.slow
def test_dask_on_two_worker_processes_equals_local(tmp_path):
    ref_dir = _parts(tmp_path / "ref", 0, [180, 170, 150])
    tgt_dir = _parts(tmp_path / "tgt", 1, [130, 0, 160, 111], shift=0.2)  # an empty partition too
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        ref_d = scan_reference(ref_dir, label_column="y", max_samples=200, seed=0, chunk_rows=64, engine="dask",
                               scheduler=address)
        tgt_d = scan_target(tgt_dir, ref_d, label_column="y", max_samples=200, seed=0, chunk_rows=50, engine="dask",
                            scheduler=address)
    ref_l = scan_reference(ref_dir, label_column="y", max_samples=200, seed=0, chunk_rows=64)
    tgt_l = scan_target(tgt_dir, ref_l, label_column="y", max_samples=200, seed=0, chunk_rows=50)
    # exact: rows, sample, labels, counts
    np.testing.assert_array_equal(ref_d.x, ref_l.x)
    np.testing.assert_array_equal(ref_d.label_counts, ref_l.label_counts)
    np.testing.assert_array_equal(tgt_d.x, tgt_l.x)
    np.testing.assert_array_equal(tgt_d.y, tgt_l.y)
    np.testing.assert_array_equal(tgt_d.label_counts, tgt_l.label_counts)
    assert (tgt_d.n_rows, tgt_d.partitions, tgt_d.engine) == (401, 4, "dask")
    np.testing.assert_array_equal(tgt_d.stats.histograms.counts, tgt_l.stats.histograms.counts)
    # within float round-off: moments merged in another order
    np.testing.assert_allclose(ref_d.mean, ref_l.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ref_d.scale, ref_l.scale, rtol=1e-12)
    np.testing.assert_allclose(tgt_d.stats.moments.m2, tgt_l.stats.moments.m2, rtol=1e-12)
    # the check on the local snapshot: the same result from either engine's target
    a = check_shift(ref_l, tgt_d, max_samples=200, **FAST)
    b = check_shift(ref_l, tgt_l, max_samples=200, **FAST)
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    # a whole concatenated file, read by the local engine, is the same table
    whole = tmp_path / "whole.parquet"
    pd.concat([pd.read_parquet(p) for p in sorted((tmp_path / "tgt").iterdir())]).to_parquet(whole, index=False)
    one = scan_target(whole, ref_l, label_column="y", max_samples=200, seed=0, chunk_rows=77)
    np.testing.assert_array_equal(one.x, tgt_l.x)


def test_dask_errors_are_clear(tmp_path, monkeypatch):
    from shiftkit.shift import dask_engine

    ref_dir = _parts(tmp_path / "ref", 0, [60])
    reference = scan_reference(ref_dir, label_column="y", max_samples=50)
    with pytest.raises(ValueError, match="engine must be one of"):
        scan_target(ref_dir, reference, engine="spark")
    with pytest.raises(Exception, match="matches no file"):
        scan_target(str(tmp_path / "nothing" / "*.parquet"), reference, engine="dask")
    monkeypatch.setattr(dask_engine, "_distributed", lambda: (_ for _ in ()).throw(ImportError(dask_engine._INSTALL)))
    with pytest.raises(ImportError, match=r"pip install 'shiftkit\[dask\]'"):
        scan_target(ref_dir, reference, engine="dask")
