"""The streamed check's two passes on a Dask cluster, one task per partition of a Parquet (or CSV) dataset.

`shiftkit.shift.streaming.scan_target(path, reference, engine="dask", scheduler=...)` (CLI:
`shiftkit check --engine dask [--scheduler tcp://host:8786]`) runs here:

1. one task per partition (file) validates its rows chunk by chunk (`TableValidator`), counts them,
   tallies the labels and accumulates its `TableStats`; the client merges the validators (row
   counts, label tallies, the problems found) and the statistics (Chan's merge of moments, sums of
   histograms and embeddings), raises what the in-memory loader would raise, and codes the labels;
2. the client draws the global rows `subsample_rows(n_rows, max_samples, seed + 1)`, splits them
   into each partition's local row indices (by the partitions' row counts, in file order), and
   one task per partition returns exactly its rows.

So the rows, labels, counts and sample are those of the local engine reading the partitions in
the same order (exact), and the check's result is the same; moments, histograms and embeddings are
merged in another order, so they agree within float round-off (the tests ask 1e-12 relative).
Workers read the files themselves: every worker needs the dataset's path (a shared file system
or the same path on each machine) and shiftkit installed.

Dask is optional: `pip install 'shiftkit[dask]'`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from shiftkit.data import subsample_rows

__all__ = ["dask_scan", "dask_client"]

_INSTALL = "The Dask engine needs dask and distributed: pip install 'shiftkit[dask]'"


def _distributed() -> Any:
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError:
        raise ImportError(_INSTALL) from None
    return distributed


@contextlib.contextmanager
def dask_client(scheduler: Any = None) -> Iterator[Any]:
    """A `distributed.Client`: `scheduler` itself (a Client), one connected to its address, or a local cluster.

    Args:
        scheduler: a `distributed.Client`, a scheduler address ("tcp://host:8786"), or None: a
            `LocalCluster` of worker processes on this machine, closed afterwards.

    Yields:
        The client (clients and clusters made here are closed on exit).

    Raises:
        ImportError: dask or distributed are not installed (the message says how to install them).
        ValueError: the scheduler cannot be reached.
    """
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler is None:
        with distributed.LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(str(scheduler), timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"Could not connect to the Dask scheduler {scheduler!r} ({exc}). Check the address "
                         "(tcp://host:8786) and that the scheduler runs.") from None
    with client:
        yield client


def _pass1_task(path: str, make_validator: Callable[[], Any], chunk_rows: int, role: str, max_bytes: int | None,
                edges: np.ndarray | None, embedding: Callable[[], Any] | None) -> tuple[Any, Any]:
    """Pass 1 over one partition: its validator (not finished) and its statistics (None without usable rows)."""
    from shiftkit.shift.streaming import _tally_chunks

    validator = make_validator()
    stats = _tally_chunks([path], validator, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes, edges=edges,
                          embedding=embedding)
    return validator, stats


def _pass2_task(path: str, make_validator: Callable[[], Any], local_rows: np.ndarray, chunk_rows: int, role: str,
                max_bytes: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Pass 2 over one partition: its rows `local_rows` and their label values."""
    from shiftkit.shift.streaming import _pass2

    return _pass2([path], make_validator, local_rows, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes)


def dask_scan(path: Any, make_validator: Callable[[], Any], row_seed: int | None, max_samples: int, *,
              scheduler: Any, chunk_rows: int, role: str, max_bytes: int | None, edges: np.ndarray | None,
              embedding: Callable[[], Any] | None, between: Callable[[Any], None] | None = None) -> Any:
    """The two passes of `shiftkit.shift.streaming` with one Dask task per partition (see the module docstring).

    Args:
        path: a folder of .parquet (or .csv) files, a glob, a list of files, or one file
            (`shiftkit.files.stream.dataset_files`); each file is one partition.
        make_validator: a factory of the `TableValidator` of the table.
        row_seed: seed of the global rows. max_samples: rows collected.
        scheduler: see `dask_client`. chunk_rows, role, max_bytes: as for `table_chunks`.
        edges: histogram edges (None: none). embedding: factory of a mergeable embedding (None: none).
        between: called with the merged validator after pass 1 (codes the labels).

    Returns:
        The `shiftkit.shift.streaming._Scan` of the whole table.
    """
    from shiftkit.files.stream import dataset_files
    from shiftkit.shift.streaming import TableStats, _Scan

    files = dataset_files(path, role)
    with dask_client(scheduler) as client:
        futures = client.map(_pass1_task, files, make_validator=make_validator, chunk_rows=chunk_rows, role=role,
                             max_bytes=max_bytes, edges=edges, embedding=embedding, pure=False)
        parts = client.gather(futures)
        part_rows = [v.n_rows for v, _ in parts]  # before the merge below adds into the first validator
        validator, stats = None, None
        for part_validator, part_stats in parts:
            validator = part_validator if validator is None else validator.merge(part_validator)
            if part_stats is not None:
                stats = part_stats if stats is None else stats.merge(part_stats)
        validator.finish()
        if between is not None:
            between(validator)
        rows = subsample_rows(validator.n_rows, max_samples, row_seed)
        bounds = np.cumsum([0] + part_rows)
        cut = np.searchsorted(rows, bounds)
        jobs = [(f, rows[cut[i]:cut[i + 1]] - bounds[i]) for i, f in enumerate(files) if cut[i + 1] > cut[i]]
        futures = [client.submit(_pass2_task, f, make_validator, local, chunk_rows, role, max_bytes, pure=False)
                   for f, local in jobs]
        pieces = client.gather(futures)
    x = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros((0, len(validator.feature_names)), np.float32)
    values = None if not pieces or pieces[0][1] is None else np.concatenate([p[1] for p in pieces])
    if stats is None:  # pragma: no cover - finish() refuses a table without usable rows
        stats = TableStats.empty(len(validator.feature_names), edges)
    return _Scan(validator, stats, rows, x, values, len(files))
