"""CSV and Parquet tables read in chunks, each chunk validated as the in-memory loaders validate a file.

`load_single` and the pair loader (`load_domains_path`) read a whole table into memory; a table
larger than memory is read here instead, `chunk_rows` rows at a time (`table_chunks`), and
`TableValidator` applies to every chunk exactly the checks those loaders apply to the whole table,
so that a streamed file is accepted or refused as the same file read at once, with the same
message:

- the feature columns: the same as the reference's (named when not), reordered to its order;
- numeric values: non-numeric columns, then missing values (with their count over the whole
  file), then infinite values are refused in that order, after the whole file was read (so a NaN
  in the last chunk gives the same message, counts included, as in memory); or, with `drop_na`,
  rows with a missing or infinite value in any column are dropped and counted;
- labels: missing labels are refused; the label values are tallied (`LabelTally`: value ->
  count, never one entry per row) and coded once the whole file was seen, by the same functions
  the in-memory loaders call on the distinct values (the codes depend only on the set of values).

Size limits: a streamed file is never held in memory, so its size on disk is not limited; what a
chunk takes (`chunk_rows` x columns x 8 bytes) must fit in `max_bytes` (`max_bytes_limit`).

A CSV's column types are inferred per chunk by pandas: a label column whose chunks hold numbers
in one and text in another is compared as text (a file read at once would be text throughout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shiftkit.files.common import InputError, extension, folder_message, listed, max_bytes_limit, too_big
from shiftkit.files.tables import (
    NO_LABEL,
    PARQUET_EXTENSIONS,
    _pyarrow,
    check_separator,
    column_values,
    drop_missing,
    first_overflow,
    index_column,
    non_numeric_error,
    overflow_error,
    stray_cells,
    without_index_column,
)

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "STREAM_EXTENSIONS",
    "table_chunks",
    "table_columns",
    "TableValidator",
    "TableBatches",
    "LabelTally",
    "is_streamable",
    "dataset_files",
]

#: Rows per chunk of a streamed table (`shiftkit check --chunk-rows`).
DEFAULT_CHUNK_ROWS = 100_000
#: Extensions that are streamed: CSV and Parquet.
STREAM_EXTENSIONS = (".csv",) + PARQUET_EXTENSIONS


def is_streamable(path: str | os.PathLike) -> bool:
    """Whether a file is a table that `table_chunks` streams (by its extension)."""
    return extension(os.fspath(path)) in STREAM_EXTENSIONS


def dataset_files(path: str | os.PathLike | Sequence[str], role: str = "target") -> list[str]:
    """The files of a table stored in parts, in the order their rows are read.

    Args:
        path: one .csv / .parquet file; a folder (its .parquet files, or else its .csv files, in
            name order, as Dask and Spark write partitioned datasets); a glob pattern ("data/*.parquet",
            matches in name order); or a list of files (in the given order).
        role: what the data are, for messages.

    Returns:
        The file paths.

    Raises:
        InputError: nothing to read.
    """
    import glob

    if isinstance(path, (list, tuple)):
        files = [os.fspath(p) for p in path]
    else:
        path = os.fspath(path)
        if os.path.isdir(path):
            names = sorted(os.listdir(path))
            files = [os.path.join(path, f) for f in names if extension(f) in PARQUET_EXTENSIONS] or [
                os.path.join(path, f) for f in names if extension(f) == ".csv"]
            if not files:
                raise InputError(f"The {role} folder {path!r} holds no .parquet or .csv files.")
        elif any(ch in path for ch in "*?["):
            files = sorted(glob.glob(path))
            if not files:
                raise InputError(f"The {role} pattern {path!r} matches no file.")
        else:
            files = [path]
    if not files:
        raise InputError(f"No {role} files were given.")
    return files


def _check_chunk_rows(chunk_rows: Any) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows (--chunk-rows) must be a positive number of rows, e.g. 100000; got {chunk_rows!r}.")
    return int(chunk_rows)


def _check_file(path: str, role: str) -> None:
    if os.path.isdir(path):
        raise InputError(folder_message(role, path))
    if not os.path.isfile(path):
        raise InputError(f"The {role} {path!r} does not exist (or is not a file). Check the path.")
    if not os.access(path, os.R_OK):
        raise InputError(f"The {role} {path!r} could not be read: permission denied.")
    ext = extension(path)
    if ext not in STREAM_EXTENSIONS:
        raise InputError(f"The {role} {path!r} is not a table that can be streamed: use .csv or .parquet "
                         f"(got {ext or 'no extension'}).")


def _named_columns(frame: pd.DataFrame, filename: str, role: str) -> pd.DataFrame:
    frame.columns = [str(c) for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise InputError(f"The {role} {filename!r} has duplicate column names: {listed(dupes)}. Rename them.")
    return frame


def table_chunks(
    path: str | os.PathLike,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    role: str = "file",
    max_bytes: int | None = None,
) -> Iterator[pd.DataFrame]:
    """The rows of a CSV or Parquet file, `chunk_rows` at a time, as DataFrames (column names as text).

    Args:
        path: a .csv or .parquet file.
        chunk_rows: rows per chunk (the last may be shorter).
        role: what the file is, for messages.
        max_bytes: a chunk of `chunk_rows` rows x columns x 8 bytes must fit in it (`max_bytes_limit`).

    Yields:
        DataFrames of at most `chunk_rows` rows, in file order.

    Raises:
        InputError: a missing, unreadable, empty or malformed file, or a chunk over the limit.
        ImportError: pyarrow is not installed (Parquet).
    """
    chunk_rows = _check_chunk_rows(chunk_rows)
    path = os.fspath(path)
    _check_file(path, role)
    name = os.path.basename(path)
    limit = max_bytes_limit(max_bytes)
    if extension(path) in PARQUET_EXTENSIONS:
        yield from _parquet_chunks(path, name, chunk_rows, role, limit)
    else:
        yield from _csv_chunks(path, name, chunk_rows, role, limit)


def _chunk_limit(role: str, name: str, rows: int, columns: int, limit: int) -> None:
    need = rows * columns * 8
    if need > limit:
        raise too_big(role, name, f"a chunk of {rows} rows x {columns} columns; lower --chunk-rows", need, limit)


def _csv_chunks(path: str, name: str, chunk_rows: int, role: str, limit: int) -> Iterator[pd.DataFrame]:
    if os.path.getsize(path) == 0:
        raise InputError(f"The {role} {name!r} is empty. Give a CSV with a header row and data rows.")
    how = "Give a comma-separated file with one header row."
    with open(path, "rb") as fh:
        check_separator(fh.readline(65536), name, role)
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows)
        with reader:
            first = True
            index = None  # the row-index column pandas writes by default, dropped from every chunk as in memory
            for frame in reader:
                frame = _named_columns(frame, name, role)
                if first:  # the first chunk holds min(chunk_rows, rows of the file) rows
                    _chunk_limit(role, name, len(frame), frame.shape[1], limit)
                    index = index_column(frame)
                    first = False
                yield without_index_column(frame, index, name, role)
    except UnicodeDecodeError:
        raise InputError(f"The {role} {name!r} is not a text CSV (it could not be decoded as UTF-8). "
                         "Export it as CSV (UTF-8).") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"The {role} {name!r} could not be read as CSV: {(str(exc).splitlines() or [''])[0]}. "
                         f"{how}") from None
    except OSError as exc:
        raise InputError(f"The {role} {name!r} could not be read: {exc.strerror or exc}.") from None


def _parquet_chunks(path: str, name: str, chunk_rows: int, role: str, limit: int) -> Iterator[pd.DataFrame]:
    pyarrow, parquet = _pyarrow()
    if os.path.getsize(path) == 0:
        raise InputError(f"The {role} {name!r} is empty. Save a table with DataFrame.to_parquet(path).")

    def bad(exc: Exception, what: str) -> InputError:
        return InputError(f"The {role} {name!r} {what} ({(str(exc).splitlines() or [''])[0][:200]}). "
                          "Save it with DataFrame.to_parquet(path).")

    try:
        # pre_buffer=False: with it (pyarrow's default) iter_batches reads ahead over the whole file, and a
        # 10^7 x 21 file peaked at 2.1 GiB RSS; without it the peak stays at a row group (measured flat)
        table_file = parquet.ParquetFile(path, pre_buffer=False)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise bad(exc, "is not a valid Parquet file") from None
    _chunk_limit(role, name, min(chunk_rows, max(1, table_file.metadata.num_rows)), table_file.metadata.num_columns,
                 limit)
    try:
        for batch in table_file.iter_batches(batch_size=chunk_rows):
            yield _named_columns(batch.to_pandas(), name, role)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise bad(exc, "could not be read as Parquet") from None


def table_columns(path: str | os.PathLike, role: str = "file") -> list[str]:
    """The column names of a CSV or Parquet file, from its header or schema (nothing else is read)."""
    path = os.fspath(path)
    _check_file(path, role)
    if extension(path) in PARQUET_EXTENSIONS:
        pyarrow, parquet = _pyarrow()
        try:
            return [str(c) for c in parquet.ParquetFile(path).schema_arrow.names]
        except (pyarrow.ArrowException, OSError, ValueError) as exc:
            raise InputError(f"The {role} {os.path.basename(path)!r} is not a valid Parquet file "
                             f"({(str(exc).splitlines() or [''])[0][:200]}).") from None
    for frame in table_chunks(path, chunk_rows=1, role=role):
        return list(frame.columns)
    return []


class LabelTally:
    """Class counts of a label column seen in chunks: value -> count, missing labels counted apart.

    Mergeable (`merge`), so partitions can be tallied apart. `values()` gives the distinct values
    as one array typed as the whole column would be (ints, floats, bools, else text); `resolve`
    codes them with the in-memory loaders' own functions and `codes` maps rows to those codes.
    """

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}
        self.kinds: set[str] = set()
        self.missing = 0
        self._keys: np.ndarray | None = None
        self._codes: np.ndarray | None = None

    def update(self, series: pd.Series) -> None:
        """Count the labels of one chunk (missing ones into `missing`)."""
        na = series.isna()
        self.missing += int(na.sum())
        values = column_values(series[~na]) if na.any() else column_values(series)
        if values.size == 0:
            return
        self.kinds.add(values.dtype.kind)
        uniq, counts = np.unique(values, return_counts=True)
        for v, c in zip(uniq.tolist(), counts.tolist()):
            self.counts[v] = self.counts.get(v, 0) + int(c)

    def merge(self, other: "LabelTally") -> "LabelTally":
        """Add another tally's counts into this one; returns self."""
        for v, c in other.counts.items():
            self.counts[v] = self.counts.get(v, 0) + c
        self.kinds |= other.kinds
        self.missing += other.missing
        return self

    @property
    def _kind(self) -> str:
        if self.kinds <= {"i", "u"}:
            return "i"
        if self.kinds <= {"i", "u", "f"}:
            return "f"
        if self.kinds == {"b"}:
            return "b"
        return "U"

    def _typed(self, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        kind = self._kind
        if kind == "i":
            return np.asarray(values, dtype=np.int64)
        if kind == "f":
            return np.asarray(values, dtype=np.float64)
        if kind == "b":
            return np.asarray(values, dtype=bool)
        return np.asarray([str(v) for v in (values.tolist() if isinstance(values, np.ndarray) else values)], dtype=str)

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """`(distinct values, their counts)`, the values typed as the whole column would be, sorted."""
        merged: dict[Any, int] = {}
        typed = self._typed(list(self.counts))
        for v, c in zip(typed.tolist(), self.counts.values()):
            merged[v] = merged.get(v, 0) + c
        keys = self._typed(list(merged))
        order = np.argsort(keys, kind="stable")
        return keys[order], np.asarray([merged[k] for k in keys[order].tolist()], dtype=np.int64)

    def resolve(self, encode: Callable[[np.ndarray], np.ndarray], n_classes: int | None = None) -> np.ndarray:
        """Code the distinct values with `encode` (values -> codes); returns the counts per code.

        Args:
            encode: the in-memory coding applied to the distinct values (it must depend only on
                the set of values, as `encode_labels` does).
            n_classes: length of the returned counts (default: the largest code + 1).

        Returns:
            Class counts per code, int64.
        """
        keys, counts = self.values()
        codes = np.asarray(encode(keys), dtype=np.int64)
        self._keys, self._codes = keys, codes
        k = int(codes.max()) + 1 if n_classes is None else int(n_classes)
        return np.bincount(codes, weights=counts, minlength=k).astype(np.int64)

    def codes(self, values: np.ndarray) -> np.ndarray:
        """The codes (after `resolve`) of label values of rows of the tallied file."""
        if self._keys is None:
            raise RuntimeError("LabelTally.codes needs resolve() first.")
        typed = self._typed(values)
        idx = np.searchsorted(self._keys, typed)
        return self._codes[np.minimum(idx, len(self._keys) - 1)]


#: Builds the message of a column mismatch from (missing, extra) column names.
ColumnMessage = Callable[[list[str], list[str]], str]


class TableValidator:
    """Validate the chunks of one table as the in-memory loaders validate the whole table.

    Call `chunk(frame)` on every chunk in file order, then `finish()`, which raises the errors the
    in-memory loader raises (in its order: non-numeric columns, missing values with their counts
    over the whole file, infinite values, missing labels). Until `finish` has run without error,
    the values returned for a chunk may be None (a chunk whose values cannot be used).

    Args:
        filename: the file's name, for messages. role: what it is ("target file", ...).
        label_column: the label column (None / "" / `NO_LABEL`: none).
        feature_names: the expected feature columns (a reference's), or None: the file's own.
        drop_na: drop rows with a missing or infinite value in any column (counted in `dropped`).
        label_required: the label column must be a column of the file (a pair's source).
        column_message: the message of a column mismatch, from (missing, extra) names.

    Attributes:
        feature_names: the feature columns (after the first chunk). has_labels: whether the file
        has the label column. n_rows: rows kept. dropped: rows dropped. labels: a `LabelTally`.
    """

    def __init__(
        self,
        filename: str,
        role: str,
        *,
        label_column: str | None = None,
        feature_names: Sequence[str] | None = None,
        drop_na: bool = False,
        label_required: bool = False,
        column_message: ColumnMessage | None = None,
    ) -> None:
        self.filename, self.role = filename, role
        self.label = None if label_column in (None, "", NO_LABEL) else str(label_column)
        self.wanted = None if feature_names is None else [str(c) for c in feature_names]
        self.drop_na = bool(drop_na)
        self.label_required = bool(label_required)
        self.column_message = column_message
        self.feature_names: tuple[str, ...] | None = None
        self.has_labels = False
        self.n_rows = 0
        self.dropped = 0
        self.labels = LabelTally()
        self._non_numeric: list[str] = []
        self._text: set[str] = set()  # columns of text (not numbers with a few stray cells)
        self._stray: dict[str, tuple[int, int, str]] = {}  # column -> (stray cells, first row, its text)
        self._nan: dict[str, int] = {}
        self._inf: list[str] = []
        self._overflow: tuple[str, int, float] | None = None  # the first value beyond float32: column, row, value
        self._seen = False

    def merge(self, other: "TableValidator") -> "TableValidator":
        """Add what `other` saw of the next part of the same table (a partition read apart); returns self.

        Raises:
            InputError: the parts have different columns.
        """
        if other._seen:
            if not self._seen:
                self.feature_names, self.has_labels, self._seen = other.feature_names, other.has_labels, True
            elif (self.feature_names, self.has_labels) != (other.feature_names, other.has_labels):
                raise InputError(
                    f"The parts of the {self.role} have different columns: {listed(self.feature_names or ())}"
                    f"{' + label' if self.has_labels else ''} and {listed(other.feature_names or ())}"
                    f"{' + label' if other.has_labels else ''}. Every part needs the same columns.")
        self.n_rows += other.n_rows
        self.dropped += other.dropped
        self.labels.merge(other.labels)
        self._non_numeric += [c for c in other._non_numeric if c not in self._non_numeric]
        self._text |= other._text
        for c, (k, row, value) in other._stray.items():  # rows of a later part count after this part's rows
            n, first, text = self._stray.get(c, (0, row + self.n_rows - other.n_rows, value))
            self._stray[c] = (n + k, first, text)
        if self._overflow is None and other._overflow is not None:
            c, row, value = other._overflow
            self._overflow = (c, row + self.n_rows - other.n_rows, value)
        for c, k in other._nan.items():
            self._nan[c] = self._nan.get(c, 0) + k
        self._inf += [c for c in other._inf if c not in self._inf]
        return self

    @property
    def ok(self) -> bool:
        """No problem found so far (the values of every chunk so far were usable)."""
        return not (self._non_numeric or self._nan or self._inf or self._overflow)

    def _columns(self, frame: pd.DataFrame) -> None:
        """First chunk: the label and feature columns, checked against what is expected."""
        if self.label is not None and self.label_required and self.label not in frame.columns:
            raise InputError(f"The label column {self.label!r} is not a column of the {self.role} {self.filename!r}. "
                             f"Columns: {listed(frame.columns)}.")
        self.has_labels = self.label is not None and self.label in frame.columns
        columns = [c for c in frame.columns if not (self.has_labels and c == self.label)]
        if self.wanted is not None:
            missing = [c for c in self.wanted if c not in columns]
            extra = [c for c in columns if c not in self.wanted]
            if missing or extra:
                if self.column_message is not None:
                    raise InputError(self.column_message(missing, extra))
                parts = ([f"missing from the {self.role}: {listed(missing)}"] if missing else []) + (
                    [f"not in the reference: {listed(extra)}"] if extra else [])
                raise InputError("The reference and the " + self.role + " must have the same feature columns; "
                                 + "; ".join(parts) + ".")
            columns = self.wanted
        self.feature_names = tuple(columns)

    def _same_columns(self, frame: pd.DataFrame, part: str | None) -> None:
        """A later chunk (or a later file of a multi-part table) has the first chunk's columns, in any order."""
        has_labels = self.label is not None and self.label in frame.columns
        columns = [c for c in frame.columns if not (has_labels and c == self.label)]
        if has_labels == self.has_labels and set(columns) == set(self.feature_names or ()):
            return
        missing = [c for c in (self.feature_names or ()) if c not in columns]
        extra = [c for c in columns if c not in (self.feature_names or ())]
        problems = ([f"lacks the column(s) {listed(missing)}"] if missing else []) + (
            [f"has the extra column(s) {listed(extra)}"] if extra else [])
        if has_labels != self.has_labels:
            problems.append(f"{'has' if has_labels else 'lacks'} the label column {self.label!r}, which the first "
                            f"part {'lacks' if has_labels else 'has'}")
        where = f"part {part!r}" if part else f"the rows after row {self.n_rows + self.dropped}"
        raise InputError(f"The parts of the {self.role} {self.filename!r} have different columns: {where} "
                         + "; ".join(problems) + f" (the first part: {listed(self.feature_names or ())}"
                         + (f" + label {self.label!r}" if self.has_labels else "") + "). Every part needs the "
                         "same columns.")

    def chunk(self, frame: pd.DataFrame, part: str | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Validate one chunk (`part`: the file it comes from, for messages); returns `(x float32 or None,
        label values or None)` of its kept rows. Every chunk must have the first chunk's columns."""
        if self.drop_na:
            frame, n = drop_missing(frame)
            self.dropped += n
        if not self._seen:
            self._columns(frame)
            self._seen = True
        else:
            self._same_columns(frame, part)
        labels = frame[self.label] if self.has_labels else None
        feats = frame[list(self.feature_names)]
        offset = self.n_rows  # data rows (kept) before this chunk
        self.n_rows += len(feats)
        non_numeric = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
        for c in non_numeric:
            if c not in self._non_numeric:
                self._non_numeric.append(c)
            found = stray_cells(feats[c])
            if found is None:
                self._text.add(c)
            else:
                n, first, text = self._stray.get(c, (0, offset + found[1], found[2]))
                self._stray[c] = (n + found[0], first, text)
        x = None
        if not non_numeric:
            for c, k in feats.isna().sum().items():
                if k:
                    self._nan[c] = self._nan.get(c, 0) + int(k)
            x = feats.to_numpy(dtype=np.float64)
            for j in np.flatnonzero(np.isinf(x).any(axis=0)):
                if self.feature_names[j] not in self._inf:
                    self._inf.append(self.feature_names[j])
            over = first_overflow(x) if self._overflow is None else None
            if over is not None:
                self._overflow = (self.feature_names[over[1]], offset + over[0], float(x[over]))
        values = None
        if labels is not None:
            self.labels.update(labels)
            if not labels.isna().any():
                values = column_values(labels)
        if not self.ok or (labels is not None and self.labels.missing):
            return None, None
        return x.astype(np.float32), values

    def finish(self) -> None:
        """Raise the in-memory loader's error for what the chunks held, if anything (see the class)."""
        if not self._seen or self.n_rows == 0:
            raise InputError(f"The {self.role} {self.filename!r} has no data rows"
                             + (" left after dropping the rows with missing values (--drop-na)." if self.dropped else ".")
                             + " Give a table with a header row and data rows.")
        if self._non_numeric:
            stray = {c: self._stray[c] for c in self._non_numeric if c in self._stray and c not in self._text}
            raise non_numeric_error(self.role, self.filename, self._non_numeric, stray)
        if self._nan:
            cols = [f"{c} ({n} missing)" for c, n in ((c, self._nan[c]) for c in self.feature_names if c in self._nan)]
            raise InputError(
                f"The {self.role} {self.filename!r} has missing values (NaN or empty cells) in: {listed(cols)}. "
                "Impute or drop those rows first (the CLI's --drop-na, or drop_na=True, drops them)."
            )
        if self._inf:
            bad = [c for c in self.feature_names if c in self._inf]
            raise InputError(f"The {self.role} {self.filename!r} has infinite values in: {listed(bad)}. "
                             "Replace or drop them.")
        if self._overflow is not None:
            raise overflow_error(self.role, self.filename, *self._overflow)
        if self.labels.missing:
            raise InputError(
                f"The label column {self.label!r} of the {self.role} {self.filename!r} has {self.labels.missing} "
                "missing value(s). Every labelled row needs a label; drop the unlabelled rows."
            )


class TableBatches:
    """The rows of one CSV/Parquet file, `chunk_rows` at a time, as `(x, label codes or None)` batches.

    For consumers that need rows in file order rather than a sample (the monitor): every chunk is
    validated by a `TableValidator` as `load_single` validates a whole file, and a problem stops the
    iteration with that file's message (counts over the rows read so far). Labels are coded to the
    reference's classes (`codes_for_reference`) chunk by chunk, which needs the reference's class names.

    Args:
        path: a .csv or .parquet file.
        feature_names: the reference's feature columns (the file's are checked and reordered), or None.
        class_names: the reference's classes (needed with `labeled`).
        label_column: the label column (None: none).
        labeled: yield the label codes (else None, and a label column is only dropped from the features).
        drop_na: drop rows with missing or infinite values (counted in `dropped`).
        chunk_rows: rows per chunk. max_bytes: limit on one chunk (`max_bytes_limit`).
        role: what the file is, for messages.

    Attributes:
        dropped: rows dropped so far (`drop_na`). n_rows: rows yielded so far.

    Example:
        >>> for x, y in TableBatches("day.parquet", feature_names=ref.feature_names):  # doctest: +SKIP
        ...     monitor.update(x, y)
    """

    def __init__(self, path: str | os.PathLike, *, feature_names: Sequence[str] | None = None,
                 class_names: Sequence[str] | None = None, label_column: str | None = None, labeled: bool = False,
                 drop_na: bool = False, chunk_rows: int = DEFAULT_CHUNK_ROWS, max_bytes: int | None = None,
                 role: str = "target batch") -> None:
        if labeled and not class_names:
            raise ValueError("labeled=True reads labels chunk by chunk, which needs the reference's class names "
                             "(a snapshot made with --label-column); read the file whole instead.")
        self.path, self.name = os.fspath(path), os.path.basename(os.fspath(path))
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.labeled, self.role = bool(labeled), role
        self.chunk_rows, self.max_bytes = _check_chunk_rows(chunk_rows), max_bytes
        self.validator = TableValidator(self.name, role, label_column=label_column, feature_names=feature_names,
                                        drop_na=drop_na)
        self.n_rows = 0

    @property
    def dropped(self) -> int:
        return self.validator.dropped

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        from shiftkit.files.domains import codes_for_reference

        for frame in table_chunks(self.path, chunk_rows=self.chunk_rows, role=self.role, max_bytes=self.max_bytes):
            x, values = self.validator.chunk(frame)
            if x is None:
                self.validator.finish()  # raises the loader's message for what was read so far
                continue
            codes = None
            if self.labeled:
                if values is None:
                    raise InputError(f"The {self.role} {self.name!r} has no labels: give its label column "
                                     "(--label-column), or leave --labeled out.")
                codes = codes_for_reference(values, self.class_names, self.name, self.role)
            self.n_rows += len(x)
            yield x, codes
        self.validator.finish()

