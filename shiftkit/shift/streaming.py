"""Checks of tables bigger than memory: mergeable statistics and two streamed passes over a file.

`shiftkit check` against a snapshot measures a seeded subsample of the target
(`subsample_rows(n_rows, max_samples, seed + 1)`) and, for the label test and the label summary,
the class counts of every target row; nothing else of the target. So a target file of any size is
checked *exactly* as in memory in two passes over it, `chunk_rows` rows at a time:

1. validate every chunk as the in-memory loader validates the whole file (`TableValidator`), count
   the rows that remain, tally the labels, and accumulate `TableStats`: per-feature count, mean,
   M2, min and max (merged with Chan et al.'s parallel update), per-feature histograms on fixed
   bin edges (the reference subsample's deciles), optionally a random-feature mean embedding;
2. draw `rows = subsample_rows(n_rows, max_samples, seed + 1)` (the call the in-memory check
   makes) and collect exactly those rows and their labels.

`scan_target` returns a `StreamedTarget` (the rows, their codes, the class counts, the statistics)
and `shiftkit.check_shift(reference, streamed)` computes the same result as
`check_shift(reference, x, y)` on the file read at once (same p-values, same verdict).
`scan_reference` streams a snapshot's reference: the `Standardizer` from the merged moments and
min/max (equal to the in-memory fit to float round-off: the tests ask 1e-12 relative), the class
counts, and the subsample `subsample_rows(n, max_samples, seed)`. `scan_pair` streams a reference
file and a target file for a check without a snapshot (labels coded over both files, as in memory).

`engine="dask"` runs the same passes over the partitions of a Parquet dataset on a Dask cluster
(`shiftkit.shift.dask_engine`): counts, labels and the sample are exact; moments, histograms and
embeddings equal the local ones within float round-off (they are merged in another order).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from shiftkit.data import subsample_rows
from shiftkit.shift.scaling import DEFAULT_OVERALL_FLOOR, DEFAULT_RANGE_FLOOR, Standardizer

__all__ = [
    "FeatureMoments",
    "FeatureHistograms",
    "TableStats",
    "StreamedTarget",
    "scan_target",
    "scan_reference",
    "scan_pair",
    "histogram_edges",
    "ENGINES",
]

#: Where the passes run: "local" (chunks of one file, this process) or "dask" (partitions on a cluster).
ENGINES = ("local", "dask")
#: Bins of the per-feature histograms (between the reference's deciles, plus two open end bins).
N_HISTOGRAM_BINS = 10


@dataclasses.dataclass
class FeatureMoments:
    """Per-feature count, mean, sum of squared deviations (M2), min and max; mergeable.

    `update` adds a chunk (its own two-pass mean and M2, then Chan et al.'s merge), `merge` adds
    another `FeatureMoments`, so chunks and partitions merge in any order to the same figures up
    to float round-off.
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray

    @classmethod
    def empty(cls, d: int) -> "FeatureMoments":
        return cls(0, np.zeros(d), np.zeros(d), np.full(d, np.inf), np.full(d, -np.inf))

    @classmethod
    def of(cls, x: np.ndarray) -> "FeatureMoments":
        """The moments of one block of rows `(n, d)`."""
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return cls.empty(x.shape[1])
        mean = x.mean(axis=0)
        return cls(len(x), mean, ((x - mean) ** 2).sum(axis=0), x.min(axis=0), x.max(axis=0))

    def merge(self, other: "FeatureMoments") -> "FeatureMoments":
        """Add `other`'s rows (Chan et al.); returns self."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean.copy(), other.m2.copy()
            self.minimum, self.maximum = other.minimum.copy(), other.maximum.copy()
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        self.n = n
        self.minimum = np.minimum(self.minimum, other.minimum)
        self.maximum = np.maximum(self.maximum, other.maximum)
        return self

    def update(self, x: np.ndarray) -> "FeatureMoments":
        """Add a chunk of rows `(n, d)`; returns self."""
        return self.merge(FeatureMoments.of(x))

    @property
    def std(self) -> np.ndarray:
        """Per-feature standard deviation (ddof 0, as `numpy.std`)."""
        return np.sqrt(self.m2 / max(self.n, 1))

    def standardizer(self, floor: float = DEFAULT_RANGE_FLOOR,
                     overall_floor: float = DEFAULT_OVERALL_FLOOR) -> Standardizer:
        """The tabular `Standardizer` of the rows seen, as `Standardizer(floor, overall_floor).fit(x)` gives it.

        The same rule as `Standardizer.fit` for tables: std floored at `floor` x (max - min) (and
        `overall_floor` x the median std of the non-constant features), 1 for a constant feature.
        """
        return Standardizer(floor, overall_floor).fit_moments(self.mean, self.std, self.minimum, self.maximum)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean.tolist(), "std": self.std.tolist(), "min": self.minimum.tolist(),
                "max": self.maximum.tolist()}


def histogram_edges(x_reference: np.ndarray, n_bins: int = N_HISTOGRAM_BINS) -> np.ndarray:
    """Per-feature inner bin edges `(d, n_bins - 1)`: the reference sample's quantiles (deciles by default)."""
    q = np.linspace(0, 1, n_bins + 1)[1:-1]
    return np.quantile(np.asarray(x_reference, dtype=np.float64), q, axis=0).T.copy()


@dataclasses.dataclass
class FeatureHistograms:
    """Per-feature counts between fixed inner edges (`(d, B - 1)` edges, `(d, B)` counts; the first
    and last bins are open); mergeable by addition. With the reference's deciles as edges, each bin
    holds about a tenth of the rows of an unshifted target."""

    edges: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls, edges: np.ndarray) -> "FeatureHistograms":
        edges = np.asarray(edges, dtype=np.float64)
        return cls(edges, np.zeros((edges.shape[0], edges.shape[1] + 1), dtype=np.int64))

    def update(self, x: np.ndarray) -> "FeatureHistograms":
        x = np.asarray(x, dtype=np.float64)
        for j in range(self.edges.shape[0]):
            self.counts[j] += np.bincount(np.searchsorted(self.edges[j], x[:, j], side="right"),
                                          minlength=self.counts.shape[1])
        return self

    def merge(self, other: "FeatureHistograms") -> "FeatureHistograms":
        self.counts = self.counts + other.counts
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "counts": self.counts.tolist()}


@dataclasses.dataclass
class TableStats:
    """The mergeable statistics of a table's rows: moments, and optionally histograms and an RFF embedding."""

    moments: FeatureMoments
    histograms: FeatureHistograms | None = None
    embedding: Any = None

    @classmethod
    def empty(cls, d: int, edges: np.ndarray | None = None, embedding: Any = None) -> "TableStats":
        return cls(FeatureMoments.empty(d), None if edges is None else FeatureHistograms.empty(edges), embedding)

    def update(self, x: np.ndarray) -> "TableStats":
        self.moments.update(x)
        if self.histograms is not None:
            self.histograms.update(x)
        if self.embedding is not None:
            self.embedding.partial_fit(x)
        return self

    def merge(self, other: "TableStats") -> "TableStats":
        self.moments.merge(other.moments)
        if self.histograms is not None and other.histograms is not None:
            self.histograms.merge(other.histograms)
        if self.embedding is not None and other.embedding is not None:
            self.embedding = self.embedding.merge(other.embedding)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"moments": self.moments.to_dict(),
                "histograms": None if self.histograms is None else self.histograms.to_dict()}


@dataclasses.dataclass(frozen=True, eq=False)
class StreamedTarget:
    """A target table read in chunks: what a check against a reference needs of it, and statistics of every row.

    Attributes:
        x: the rows the check measures, `subsample_rows(n_rows, max_samples, seed + 1)` (float32).
        y: their class codes in the reference's coding (None without a label column).
        label_counts: class counts of every target row, per code (None without labels).
        n_rows: rows of the target (after `drop_na`). rows: the indices of `x` among them.
        dropped: rows dropped (`drop_na`).
        feature_names: the feature columns (the reference's order).
        stats: `TableStats` of every row (moments, histograms on the reference's deciles).
        max_samples, seed: the check's settings the sample was drawn with.
        source: the file or dataset. engine: "local" or "dask". partitions: files / chunks read.
    """

    x: np.ndarray
    y: np.ndarray | None
    label_counts: np.ndarray | None
    n_rows: int
    rows: np.ndarray
    dropped: int
    feature_names: tuple[str, ...] | None
    stats: TableStats
    max_samples: int
    seed: int | None
    source: str = ""
    engine: str = "local"
    partitions: int = 1


# -------------------------------------------------------------------------------- the two passes over a table


def _offset_seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else seed + offset


def _validator_factory(path: str, role: str, **options: Any) -> Callable[[], Any]:
    from shiftkit.files.stream import TableValidator

    name = os.path.basename(path)
    return lambda: TableValidator(name, role, **options)


def _tally_chunks(paths: Sequence[str], validator: Any, *, chunk_rows: int, role: str, max_bytes: int | None,
                  edges: np.ndarray | None, embedding: Callable[[], Any] | None) -> TableStats | None:
    """Feed every chunk of `paths` (in order) to `validator` and add its usable rows to the statistics.

    Returns the statistics, None when no chunk had usable rows (the validator says why at `finish`).
    One partition's pass 1 on a Dask worker, and the local pass 1 over a whole table.
    """
    from shiftkit.files.stream import table_chunks

    stats = None
    for path in paths:
        for frame in table_chunks(path, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes):
            x, _ = validator.chunk(frame, os.path.basename(path) if len(paths) > 1 else None)
            if x is None:
                continue
            if stats is None:
                stats = TableStats.empty(x.shape[1], edges, None if embedding is None else embedding())
            stats.update(x)
    return stats


def _pass1(paths: Sequence[str], make_validator: Callable[[], Any], *, chunk_rows: int, role: str,
           max_bytes: int | None, edges: np.ndarray | None, embedding: Callable[[], Any] | None) -> tuple[Any, TableStats]:
    """Validate every chunk of `paths` (one table, in order), count and tally; returns (validator, stats)."""
    validator = make_validator()
    stats = _tally_chunks(paths, validator, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes, edges=edges,
                          embedding=embedding)
    validator.finish()
    if stats is None:  # pragma: no cover - finish() refuses a table without usable rows
        stats = TableStats.empty(len(validator.feature_names), edges)
    return validator, stats


def _pass2(paths: Sequence[str], make_validator: Callable[[], Any], rows: np.ndarray, *, chunk_rows: int,
           role: str, max_bytes: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows `rows` (sorted indices among the kept rows) of `paths` and their label values."""
    from shiftkit.files.stream import table_chunks

    validator = make_validator()
    xs: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    start = 0
    i = 0
    for path in paths:
        for frame in table_chunks(path, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes):
            x, values = validator.chunk(frame, os.path.basename(path) if len(paths) > 1 else None)
            stop = start + (0 if x is None else len(x))
            j = int(np.searchsorted(rows, stop))
            if j > i:
                local = rows[i:j] - start
                xs.append(x[local])
                if values is not None:
                    labels.append(values[local])
            i, start = j, stop
            if i >= len(rows):
                break
        if i >= len(rows):
            break
    x_rows = np.concatenate(xs) if xs else np.zeros((0, len(validator.feature_names or ())), dtype=np.float32)
    return x_rows, (np.concatenate(labels) if labels else None)


def _check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}; got {engine!r}.")
    return engine


def _local_paths(path: Any, role: str) -> list[str]:
    from shiftkit.files.stream import dataset_files

    return dataset_files(path, role)


@dataclasses.dataclass
class _Scan:
    """One table after both passes: its validator (columns, tally), statistics and sampled rows."""

    validator: Any
    stats: TableStats
    rows: np.ndarray
    x: np.ndarray
    values: np.ndarray | None
    partitions: int = 1


def _scan(path: Any, make_validator: Callable[[], Any], row_seed: int | None, max_samples: int, *, engine: str,
          scheduler: Any, chunk_rows: int, role: str, max_bytes: int | None, edges: np.ndarray | None,
          embedding: Callable[[], Any] | None, between: Callable[[Any], None] | None = None) -> _Scan:
    """Pass 1, `between(validator)` (label coding), the seeded rows, pass 2, on the chosen engine."""
    if _check_engine(engine) == "dask":
        from shiftkit.shift.dask_engine import dask_scan

        return dask_scan(path, make_validator, row_seed, max_samples, scheduler=scheduler, chunk_rows=chunk_rows,
                         role=role, max_bytes=max_bytes, edges=edges, embedding=embedding, between=between)
    paths = _local_paths(path, role)
    validator, stats = _pass1(paths, make_validator, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes,
                              edges=edges, embedding=embedding)
    if between is not None:
        between(validator)
    rows = subsample_rows(validator.n_rows, max_samples, row_seed)
    x, values = _pass2(paths, make_validator, rows, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes)
    return _Scan(validator, stats, rows, x, values, len(paths))


def _options(chunk_rows: Any, max_samples: Any, seed: Any) -> tuple[int, int, int | None]:
    from shiftkit._validation import check_positive_int, check_seed
    from shiftkit.files.stream import DEFAULT_CHUNK_ROWS, _check_chunk_rows

    return (_check_chunk_rows(DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows),
            check_positive_int(max_samples, "max_samples", minimum=2), check_seed(seed))


def _target_coding(reference: Any, model: Any, name: str, role: str, label: str) -> Callable[[np.ndarray], np.ndarray]:
    """How the in-memory check codes a target's label values (`load_single` + `Reference.target_codes`)."""
    import pandas as pd

    from shiftkit.files.domains import codes_for_reference
    from shiftkit.files.tables import encode_label_columns

    def encode(values: np.ndarray) -> np.ndarray:
        if reference.class_names:
            codes = codes_for_reference(values, reference.class_names, name, role)
        else:
            codes, _, _ = encode_label_columns(pd.Series(values), None, name, name, label)
        return reference.target_codes(codes, len(codes), model)

    return encode


def scan_target(
    path: str | os.PathLike,
    reference: Any,
    *,
    label_column: str | None = None,
    model: Any = None,
    drop_na: bool = False,
    max_samples: int = 2000,
    seed: int | None = 0,
    chunk_rows: int | None = None,
    engine: str = "local",
    scheduler: Any = None,
    max_bytes: int | None = None,
    embedding: Callable[[], Any] | None = None,
    role: str = "target file",
) -> StreamedTarget:
    """Read a target table in chunks for a check against `reference` (see the module docstring).

    Args:
        path: a .csv or .parquet file, or a table stored in parts (a folder of .parquet files, a
            glob, a list of files: `shiftkit.files.stream.dataset_files`), read in order.
        reference: the `shiftkit.check.Reference` (snapshot) the target will be checked against:
            its feature columns and classes validate and code the target.
        label_column: the target's label column (absent from the file: no labels).
        model: the check's model (codes labels as its outputs when the reference has none).
        drop_na: drop rows with a missing or infinite value (counted) instead of refusing the file.
        max_samples, seed: the check's settings (the rows `subsample_rows(n, max_samples, seed + 1)`
            are collected).
        chunk_rows: rows per chunk (default `shiftkit.files.stream.DEFAULT_CHUNK_ROWS`).
        engine: "local" or "dask". scheduler: for "dask", a scheduler address
            ("tcp://host:8786"), a `distributed.Client`, or None (a local cluster).
        max_bytes: a chunk must fit in it (`shiftkit.files.max_bytes_limit`).
        embedding: optional factory of a mergeable embedding (e.g.
            `lambda: RFFEmbedding(256, bandwidth=..., seed=0)`) accumulated over every row.
        role: what the file is, for messages.

    Returns:
        A `StreamedTarget` for `shiftkit.check_shift(reference, streamed, ...)`.

    Raises:
        InputError (a ValueError): what the in-memory loader refuses (columns, values, labels),
            with its message; a missing, unreadable or empty file.
    """
    chunk_rows, max_samples, seed = _options(chunk_rows, max_samples, seed)
    path_text = os.fspath(path) if not isinstance(path, (list, tuple)) else str(path)
    name = os.path.basename(path_text.rstrip("/")) or path_text
    make = _validator_factory(path_text, role, label_column=label_column, feature_names=reference.feature_names,
                              drop_na=drop_na)
    edges = histogram_edges(reference.x) if reference.x.ndim == 2 else None
    state: dict[str, Any] = {}

    def code_labels(validator: Any) -> None:
        if validator.has_labels:
            k = None if reference.label_counts is None else len(reference.label_counts)
            state["counts"] = validator.labels.resolve(_target_coding(reference, model, name, role, validator.label), k)

    scan = _scan(path if isinstance(path, (list, tuple)) else path_text, make, _offset_seed(seed, 1), max_samples,
                 engine=engine, scheduler=scheduler, chunk_rows=chunk_rows, role=role, max_bytes=max_bytes,
                 edges=edges, embedding=embedding, between=code_labels)
    v = scan.validator
    if v.n_rows < 2:
        raise ValueError(f"The {role} {name!r} has {v.n_rows} row(s); a check needs at least 2.")
    y = None if scan.values is None or "counts" not in state else v.labels.codes(scan.values)
    return StreamedTarget(
        x=scan.x, y=y, label_counts=state.get("counts"), n_rows=v.n_rows, rows=scan.rows, dropped=v.dropped,
        feature_names=v.feature_names, stats=scan.stats, max_samples=max_samples, seed=seed, source=path_text,
        engine=engine, partitions=scan.partitions,
    )


def _reference_labels(tally: Any, sample_values: np.ndarray | None, class_names: Sequence[str] | None,
                      value_codes: Callable[[np.ndarray], np.ndarray]) -> Callable[[int | None], Any]:
    """`labels(n_outputs)` for `Reference._from_sample`: the file's label values coded as in memory
    (`value_codes`: the loader's codes; then `_encode_reference_labels` with the model's outputs)."""
    from shiftkit.check import _encode_reference_labels

    def labels(n_outputs: int | None) -> Any:
        state: dict[str, Any] = {}

        def encode(values: np.ndarray) -> np.ndarray:
            enc, codes, given = _encode_reference_labels(value_codes(values), n_outputs, class_names)
            state.update(enc=enc, given=given)
            return codes

        counts = tally.resolve(encode)
        enc = state["enc"]
        counts = np.pad(counts, (0, max(0, enc.n_classes - len(counts))))
        return enc, tally.codes(sample_values), counts, state["given"]

    return labels


def scan_reference(
    path: str | os.PathLike,
    *,
    label_column: str | None = None,
    model: Any = None,
    layer: str | int | None = None,
    drop_na: bool = False,
    max_samples: int = 2000,
    seed: int | None = 0,
    chunk_rows: int | None = None,
    engine: str = "local",
    scheduler: Any = None,
    max_bytes: int | None = None,
    role: str = "reference file",
    with_dropped: bool = False,
) -> Any:
    """A snapshot (`shiftkit.check.Reference`) of a reference table read in chunks.

    The same snapshot as `load_single` + `Reference.from_data` (what `shiftkit snapshot` does in
    memory): the subsample `subsample_rows(n, max_samples, seed)`, the whole table's class counts,
    and the `Standardizer` from the merged moments and min/max (equal to the in-memory fit up to
    float round-off). Labels are coded as `shiftkit snapshot` codes them (sorted values; with a
    model, as its outputs).

    Args:
        path: a .csv or .parquet file, or a table stored in parts (as for `scan_target`).
        label_column: the label column (absent: no labels). model, layer: as for `Reference.from_data`.
        drop_na: drop rows with missing values instead of refusing the file.
        max_samples, seed: the subsample's size and seed.
        chunk_rows, engine, scheduler, max_bytes, role: as for `scan_target`.
        with_dropped: also return the number of rows dropped (`drop_na`).

    Returns:
        A `shiftkit.check.Reference` (with `with_dropped`: `(reference, rows dropped)`).

    Raises:
        InputError (a ValueError): what the in-memory loader refuses, with its message.
    """
    reference, dropped = _scan_reference(path, label_column=label_column, model=model, layer=layer, drop_na=drop_na,
                                   max_samples=max_samples, seed=seed, chunk_rows=chunk_rows, engine=engine,
                                   scheduler=scheduler, max_bytes=max_bytes, role=role)
    return (reference, dropped) if with_dropped else reference


def _scan_reference(path: Any, *, label_column: str | None, model: Any, layer: Any, drop_na: bool, max_samples: int,
                    seed: int | None, chunk_rows: int | None, engine: str, scheduler: Any, max_bytes: int | None,
                    role: str) -> tuple[Any, int]:
    """`scan_reference` and the number of dropped rows."""
    import pandas as pd

    from shiftkit.check import Reference
    from shiftkit.files.common import encode_or_explain
    from shiftkit.files.models import model_n_classes
    from shiftkit.files.tables import encode_label_columns

    chunk_rows, max_samples, seed = _options(chunk_rows, max_samples, seed)
    path_text = os.fspath(path) if not isinstance(path, (list, tuple)) else str(path)
    name = os.path.basename(path_text.rstrip("/")) or path_text
    make = _validator_factory(path_text, role, label_column=label_column, drop_na=drop_na, label_required=True)
    scan = _scan(path if isinstance(path, (list, tuple)) else path_text, make, seed, max_samples, engine=engine, scheduler=scheduler, chunk_rows=chunk_rows,
                 role=role, max_bytes=max_bytes, edges=None, embedding=None)
    v = scan.validator
    if v.n_rows < 2:
        raise ValueError(f"The {role} {name!r} has {v.n_rows} row(s); a reference needs at least 2.")
    labels = names = None
    if v.has_labels:
        keys, _ = v.labels.values()
        _, _, names = encode_label_columns(pd.Series(keys), None, name, name, v.label)  # load_single's checks
        if model is not None:  # DataFile.for_model: the values coded as the model's outputs
            names = encode_or_explain((keys,), ("the labels",), n_outputs=model_n_classes(model))[0].names

        def value_codes(values: np.ndarray) -> np.ndarray:
            if model is not None:
                return encode_or_explain((values,), ("the labels",), n_outputs=model_n_classes(model))[1][0]
            return encode_label_columns(pd.Series(values), None, name, name, v.label)[0]

        labels = _reference_labels(v.labels, scan.values, names, value_codes)
    scaler = scan.stats.moments.standardizer()
    reference = Reference._from_sample(np.asarray(scan.x, dtype=np.float64), scaler, v.n_rows, labels, model=model,
                                       layer=layer, seed=seed, feature_names=v.feature_names, class_names=names)
    return reference, v.dropped


def scan_pair(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    label_column: str | None = None,
    model: Any = None,
    layer: str | int | None = None,
    drop_na: bool = False,
    max_samples: int = 2000,
    seed: int | None = 0,
    chunk_rows: int | None = None,
    max_bytes: int | None = None,
) -> tuple[Any, StreamedTarget, tuple[int, int]]:
    """A reference and a target table read in chunks, for `check_shift` without a snapshot.

    What `shiftkit check --reference SRC --target TGT` does in memory (`load_domains_path`, then
    `check_shift(x_source, x_target, y_target, y_reference=...)`): the same columns in both files
    (the label column may be absent from the target), labels coded over both files together.

    Returns:
        `(reference, streamed target, (rows dropped from the source, from the target))`.
    """
    import pandas as pd

    from shiftkit.check import Reference
    from shiftkit.files.common import encode_or_explain, listed
    from shiftkit.files.domains import MIN_SAMPLES
    from shiftkit.files.models import model_n_classes
    from shiftkit.files.tables import encode_label_columns

    chunk_rows, max_samples, seed = _options(chunk_rows, max_samples, seed)
    spath, tpath = os.fspath(source), os.fspath(target)
    sname, tname = os.path.basename(spath), os.path.basename(tpath)

    def columns_message(missing: list[str], extra: list[str]) -> str:
        # missing from the target = source columns the target lacks; extra = only in the target
        parts = ([f"missing from the target: {listed(missing)}"] if missing else []) + (
            [f"only in the target: {listed(extra)}"] if extra else [])
        return ("Source and target files must have the same feature columns; " + "; ".join(parts)
                + ". Select the same columns in both files (the label column may be absent from the target).")

    make_s = _validator_factory(spath, "source file", label_column=label_column, drop_na=drop_na, label_required=True)
    vs, stats_s = _pass1([spath], make_s, chunk_rows=chunk_rows, role="source file", max_bytes=max_bytes, edges=None,
                         embedding=None)
    make_t = _validator_factory(tpath, "target file", label_column=label_column, feature_names=vs.feature_names,
                                drop_na=drop_na, column_message=columns_message)
    vt, stats_t = _pass1([tpath], make_t, chunk_rows=chunk_rows, role="target file", max_bytes=max_bytes,
                         edges=None, embedding=None)
    for side, v in (("source", vs), ("target", vt)):
        if v.n_rows < MIN_SAMPLES:
            raise ValueError(f"The {side} file has {v.n_rows} sample(s); give at least {MIN_SAMPLES}.")
    labels = names = None
    code_of_t = None
    if vs.has_labels:
        ks, _ = vs.labels.values()
        kt = vt.labels.values()[0] if vt.has_labels else None
        ys, yt, names = encode_label_columns(pd.Series(ks), None if kt is None else pd.Series(kt), sname, tname,
                                             vs.label)
        if model is not None:  # Domains.for_model: the values of both files coded as the model's outputs
            enc, (ys, yt) = encode_or_explain((ks, kt), ("the source labels", "the target labels"),
                                              n_outputs=model_n_classes(model))
            names = enc.names
        if len(ks) < 2:
            raise ValueError("The source labels hold a single class; shift of labels needs at least 2 classes.")
        code_of_s = dict(zip(ks.tolist(), np.asarray(ys).tolist()))
        code_of_t = None if kt is None else dict(zip(kt.tolist(), np.asarray(yt).tolist()))

        def source_codes(values: np.ndarray) -> np.ndarray:
            return np.asarray([code_of_s[v] for v in values.tolist()], dtype=np.int64)

    rows_s = subsample_rows(vs.n_rows, max_samples, seed)
    xs, values_s = _pass2([spath], make_s, rows_s, chunk_rows=chunk_rows, role="source file", max_bytes=max_bytes)
    if vs.has_labels:
        labels = _reference_labels(vs.labels, values_s, names, source_codes)
    reference = Reference._from_sample(np.asarray(xs, dtype=np.float64), stats_s.moments.standardizer(), vs.n_rows,
                                       labels, model=model, layer=layer, seed=seed, feature_names=vs.feature_names,
                                       class_names=names)
    y_rows = target_counts = None
    rows_t = subsample_rows(vt.n_rows, max_samples, _offset_seed(seed, 1))
    xt, values_t = _pass2([tpath], make_t, rows_t, chunk_rows=chunk_rows, role="target file", max_bytes=max_bytes)
    if code_of_t is not None:
        def target_codes(values: np.ndarray) -> np.ndarray:
            codes = np.asarray([code_of_t[v] for v in values.tolist()], dtype=np.int64)
            return reference.target_codes(codes, len(codes), model)

        target_counts = vt.labels.resolve(target_codes, len(reference.label_counts))
        y_rows = vt.labels.codes(values_t)
    streamed = StreamedTarget(
        x=xt, y=y_rows, label_counts=target_counts, n_rows=vt.n_rows, rows=rows_t, dropped=vt.dropped,
        feature_names=vs.feature_names, stats=stats_t, max_samples=max_samples, seed=seed, source=tpath,
    )
    return reference, streamed, (vs.dropped, vt.dropped)


def merge_stats(parts: Iterable[TableStats]) -> TableStats | None:
    """Merge `TableStats` (of chunks or partitions) into one."""
    merged = None
    for part in parts:
        merged = part if merged is None else merged.merge(part)
    return merged
