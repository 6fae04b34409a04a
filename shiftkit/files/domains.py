"""Source/target pairs (`Domains`) and single files (`DataFile`) from tables, arrays or built-in scenarios."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftkit.datasets import load_scenario
from shiftkit.files.arrays import load_arrays
from shiftkit.files.common import InputError, encode_or_explain, extension, listed, read_path
from shiftkit.files.tables import (
    NO_LABEL,
    TABLE_EXTENSIONS,
    column_values,
    csv_features,
    drop_missing,
    encode_label_columns,
    read_table,
)

__all__ = [
    "MIN_SAMPLES",
    "Domains",
    "DataFile",
    "scenario_domains",
    "load_uploaded_domains",
    "load_domains_path",
    "load_single",
]


#: Fewest samples accepted per domain.
MIN_SAMPLES = 5
_TABLE = set(TABLE_EXTENSIONS)
_ARRAYS = {".npz", ".npy"}


@dataclasses.dataclass(frozen=True, eq=False)
class Domains:
    """A source and a target domain as the dashboard uses them.

    Attributes:
        name: what the data are (scenario name or file names).
        description: one paragraph shown above the results.
        x_source, x_target: inputs `(n, ...)`, float32, same per-sample shape.
        y_source, y_target: class codes 0..K-1 (int64) or None when unknown.
        class_names: the original label value of each code, as text (None without labels).
        feature_names: one name per column for tabular data, else None.
        shift_kind: the known truth for built-in scenarios, else None.
        dropped: rows dropped (`drop_na`) from the source and the target.
        y_source_values, y_target_values: the labels as they were in the files (None: the codes are
            the original values, as for built-in scenarios).
    """

    name: str
    description: str
    x_source: np.ndarray
    x_target: np.ndarray
    y_source: np.ndarray | None = None
    y_target: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    shift_kind: str | None = None
    dropped: tuple[int, int] = (0, 0)
    y_source_values: np.ndarray | None = None
    y_target_values: np.ndarray | None = None

    @property
    def is_tabular(self) -> bool:
        """True for `(n, d)` tables (per-feature drift applies, input space is standardised)."""
        return self.x_source.ndim == 2

    @property
    def n_classes(self) -> int | None:
        """Number of classes (codes 0..n-1), or None without labels."""
        if self.y_source is None:
            return None
        n = int(self.y_source.max()) + 1
        if self.y_target is not None:
            n = max(n, int(self.y_target.max()) + 1)
        if self.class_names is not None:
            n = max(n, len(self.class_names))
        return n

    def class_name_list(self) -> list[str] | None:
        """One display name per class code (the original label values), or None without labels."""
        n = self.n_classes
        if n is None:
            return None
        names = list(self.class_names or ())
        return names + [str(k) for k in range(len(names), n)]

    def for_model(self, n_outputs: int) -> "Domains":
        """The same domains with labels coded as a model's output indices.

        Labels that are integers 0..n_outputs-1 index the outputs as they are; otherwise the sorted
        distinct label values are mapped to the outputs in order, which needs exactly `n_outputs`
        of them (`shiftkit._validation.encode_labels` with `n_outputs`).

        Args:
            n_outputs: the number of classes the model predicts (2 for a single sigmoid/logit unit).

        Returns:
            A new `Domains` (or this one when it has no labels).

        Raises:
            InputError: the labels cannot be matched to the model's classes.
        """
        if self.y_source is None:
            return self
        if self.y_source_values is None:
            raw_s, raw_t = self.y_source, self.y_target
        else:
            raw_s, raw_t = self.y_source_values, self.y_target_values
        enc, (ys, yt) = encode_or_explain(
            (raw_s, raw_t), ("the source labels", "the target labels"), n_outputs=n_outputs
        )
        names = enc.names
        if self.y_source_values is None and self.class_names and enc.identity:
            names = tuple(self.class_name_list() or ())[: enc.n_classes]
            names = names + tuple(str(k) for k in range(len(names), enc.n_classes))
        return dataclasses.replace(self, y_source=ys, y_target=yt, class_names=names)


    def labels_by_name(self, codes: np.ndarray | None) -> tuple[Any, tuple[Any, ...] | None]:
        """Label codes as the original class names, with the class order, for `classes=` arguments.

        A library function given `(values, classes=order)` shows the names the user knows; the codes
        stay codes when the names are missing or not distinct.

        Returns:
            `(labels, classes)`: names (or codes) and the class order (None without labels).
        """
        names = self.class_name_list()
        if names is None:
            return codes, None
        if codes is None or len(set(names)) != len(names):
            return codes, tuple(range(len(names)))
        return np.asarray(names)[np.asarray(codes, dtype=np.int64)], tuple(names)


def scenario_domains(name: str, seed: int = 0, **options: Any) -> Domains:
    """A built-in scenario of `shiftkit.datasets` as `Domains` (options as in `load_scenario`)."""
    s = load_scenario(name, seed=seed, **options)
    return Domains(
        name=s.name,
        description=s.description,
        x_source=np.asarray(s.x_source, dtype=np.float32),
        x_target=np.asarray(s.x_target, dtype=np.float32),
        y_source=np.asarray(s.y_source, dtype=np.int64),
        y_target=np.asarray(s.y_target, dtype=np.int64),
        class_names=tuple(s.class_names),
        feature_names=None if s.feature_names is None else tuple(s.feature_names),
        shift_kind=s.shift_kind,
    )


def _table_domains(
    source: tuple[str, bytes], target: tuple[str, bytes], label_column: str | None, drop_na: bool = False,
    max_bytes: int | None = None,
) -> Domains:
    """`Domains` from two tables (CSV / Parquet) with the same feature columns (the label may miss in the target)."""
    (sname, sdata), (tname, tdata) = source, target
    fs = read_table(sdata, sname, role="source file", max_bytes=max_bytes)
    ft = read_table(tdata, tname, role="target file", max_bytes=max_bytes)
    dropped = (0, 0)
    if drop_na:
        (fs, ds), (ft, dt) = drop_missing(fs), drop_missing(ft)
        dropped = (ds, dt)
    label = None if label_column in (None, "", NO_LABEL) else str(label_column)
    if label is not None and label not in fs.columns:
        raise InputError(
            f"The label column {label!r} is not a column of the source file {sname!r}. "
            f"Columns: {listed(fs.columns)}."
        )
    ys = fs.pop(label) if label is not None else None
    yt = ft.pop(label) if label is not None and label in ft.columns else None
    missing = [c for c in fs.columns if c not in ft.columns]
    extra = [c for c in ft.columns if c not in fs.columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from the target: {listed(missing)}")
        if extra:
            parts.append(f"only in the target: {listed(extra)}")
        raise InputError(
            "Source and target files must have the same feature columns; " + "; ".join(parts)
            + ". Select the same columns in both files (the label column may be absent from the target)."
        )
    ft = ft[list(fs.columns)]  # same order as the source
    xs = csv_features(fs, sname, "source file")
    xt = csv_features(ft, tname, "target file")
    y_s = y_t = None
    classes = None
    if ys is not None:
        y_s, y_t, classes = encode_label_columns(ys, yt, sname, tname, label)
    return Domains(
        name=f"{sname} vs {tname}",
        description=(
            f"Uploaded tables: source {sname!r} ({xs.shape[0]} rows), target {tname!r} ({xt.shape[0]} rows), "
            f"{xs.shape[1]} feature columns; label column: "
            + (repr(label) + ("" if y_t is not None else " (not in the target: target labels unknown)")
               if label else "none")
            + "."
        ),
        x_source=xs,
        x_target=xt,
        y_source=y_s,
        y_target=y_t,
        class_names=classes,
        feature_names=tuple(fs.columns),
        dropped=dropped,
        y_source_values=None if ys is None else column_values(ys),
        y_target_values=None if yt is None else column_values(yt),
    )


def _npz_domains(
    source: tuple[str, bytes], target: tuple[str, bytes], drop_na: bool = False, max_bytes: int | None = None
) -> Domains:
    """`Domains` from two array files (NPZ with `x` and optional `y`, or NPY) of the same per-sample shape."""
    (sname, sdata), (tname, tdata) = source, target
    xs, ys_raw, ds = load_arrays(sdata, sname, role="source file", drop_na=drop_na, max_bytes=max_bytes)
    xt, yt_raw, dt = load_arrays(tdata, tname, role="target file", drop_na=drop_na, max_bytes=max_bytes)
    if xs.shape[1:] != xt.shape[1:]:
        raise InputError(
            f"Source and target have different per-sample shapes: {xs.shape[1:]} in {sname!r}, "
            f"{xt.shape[1:]} in {tname!r}. Both need the same features in the same order."
        )
    if ys_raw is None:
        yt_raw = None
    ys = yt = classes = None
    if ys_raw is not None:
        enc, (ys, yt) = encode_or_explain(
            (ys_raw, yt_raw), (f"the array 'y' of the source file {sname!r}", f"the array 'y' of the target file {tname!r}"),
            where="Cannot read the class labels: ",
        )
        classes = enc.names
    return Domains(
        name=f"{sname} vs {tname}",
        description=(
            f"Uploaded arrays: source {sname!r} ({xs.shape[0]} samples), target {tname!r} "
            f"({xt.shape[0]} samples), per-sample shape {xs.shape[1:]}; labels: "
            + ("none" if ys is None else ("source and target" if yt is not None else "source only"))
            + "."
        ),
        x_source=xs,
        x_target=xt,
        y_source=ys,
        y_target=yt,
        class_names=classes,
        feature_names=tuple(f"x{j}" for j in range(xs.shape[1])) if xs.ndim == 2 else None,
        dropped=(ds, dt),
        y_source_values=ys_raw,
        y_target_values=yt_raw,
    )


def load_uploaded_domains(
    source: tuple[str, bytes],
    target: tuple[str, bytes],
    label_column: str | None = None,
    *,
    drop_na: bool = False,
    max_bytes: int | None = None,
) -> Domains:
    """Build `Domains` from two files' bytes (both tables: CSV / Parquet, or both arrays: NPZ / NPY).

    Labels (a table's label column, NPZ `y`) may hold any class values; they are encoded to codes 0..K-1
    shared by both files, with the original values as `class_names`.

    Args:
        source: `(filename, bytes)` of the source file.
        target: `(filename, bytes)` of the target file.
        label_column: for tables, the label column name (or None / `NO_LABEL`); ignored for arrays.
        drop_na: drop rows with missing/non-finite values (counted in `Domains.dropped`) instead of
            refusing the file.
        max_bytes: limit on what an array or Parquet file may take once decompressed (`max_bytes_limit`).

    Raises:
        InputError: with what to fix (see the module docstring).
    """
    exts = {extension(source[0]), extension(target[0])}
    bad = exts - _TABLE - _ARRAYS
    if bad:
        raise InputError(
            f"Unsupported file type {', '.join(sorted(bad))}: use .csv or .parquet tables (with a label column) or "
            ".npz archives with arrays 'x' and optional 'y' (.npy for inputs without labels)."
        )
    if not (exts <= _TABLE or exts <= _ARRAYS):
        raise InputError(
            "Give the source and the target in the same format (both tables: .csv / .parquet, or both .npz/.npy)."
        )
    if exts <= _TABLE:
        domains = _table_domains(source, target, label_column, drop_na, max_bytes)
    else:
        domains = _npz_domains(source, target, drop_na, max_bytes)
    for side, x in (("source", domains.x_source), ("target", domains.x_target)):
        if len(x) < MIN_SAMPLES:
            raise InputError(f"The {side} file has {len(x)} sample(s); give at least {MIN_SAMPLES}.")
    if domains.y_source is not None and np.unique(domains.y_source).size < 2:
        raise InputError("The source labels hold a single class; shift of labels needs at least 2 classes.")
    return domains


@dataclasses.dataclass(frozen=True, eq=False)
class DataFile:
    """One data file read by `load_single`.

    Attributes:
        x: inputs, float32. y: class codes 0..K-1 or None. feature_names: column names (tables).
        class_names: the original label value of each code, as text (None without labels).
        dropped: rows dropped (drop_na). y_values: the labels as they were in the file.
        times: the time column's values, in row order (`load_single(time_column=...)`), else None.
    """

    x: np.ndarray
    y: np.ndarray | None
    feature_names: tuple[str, ...] | None
    class_names: tuple[str, ...] | None
    dropped: int = 0
    y_values: np.ndarray | None = None
    times: np.ndarray | None = None

    def for_model(self, n_outputs: int) -> "DataFile":
        """The same file with labels coded as a model's output indices (see `Domains.for_model`)."""
        if self.y is None or self.y_values is None:
            return self
        enc, (y,) = encode_or_explain((self.y_values,), ("the labels",), n_outputs=n_outputs)
        return dataclasses.replace(self, y=y, class_names=enc.names)


def _value_names(values: np.ndarray) -> np.ndarray:
    """Label values as the text `encode_labels` shows for them (whole floats as integers)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    return np.asarray([str(v) for v in arr.tolist()], dtype=str)


def codes_for_reference(
    values: np.ndarray, class_names: Sequence[str], filename: str, role: str
) -> np.ndarray:
    """Codes of a file's labels in a reference's classes (matched by name; integer codes as a fallback)."""
    names = [str(c) for c in class_names]
    text = _value_names(values)
    index = {c: k for k, c in enumerate(names)}
    if not any(t in index for t in text.tolist()) and np.asarray(values).dtype.kind in "iu":
        codes = np.asarray(values, dtype=np.int64)
        if codes.min() >= 0 and codes.max() < len(names):
            return codes  # labels given as the reference's class codes
    unknown = sorted({t for t in text.tolist() if t not in index})
    if unknown:
        raise InputError(
            f"The {role} {filename!r} has label(s) {listed(unknown)} that the reference does not know "
            f"(its classes: {listed(names)})."
        )
    return np.asarray([index[t] for t in text.tolist()], dtype=np.int64)


def load_single(
    data: bytes,
    filename: str,
    *,
    label_column: str | None = None,
    drop_na: bool = False,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    role: str = "target file",
    max_bytes: int | None = None,
    time_column: str | None = None,
) -> "DataFile":
    """Read one data file (alone, or to be compared with a known reference such as a snapshot).

    Args:
        data, filename: the file's bytes and name (.csv, .parquet, .npz or .npy).
        label_column: a table's label column; a table without it is read as unlabelled.
        drop_na: drop rows with missing values instead of refusing the file.
        feature_names: the reference's columns: a table must have the same ones (named if not), and
            is reordered to match.
        class_names: the reference's classes: labels are mapped to their codes by name.
        role: what the file is, for messages.
        max_bytes: limit on what an array or Parquet file may take once decompressed (`max_bytes_limit`).
        time_column: a table's time column (numbers, or dates/times pandas can parse): the rows are
            put in time order (stable) and the column is not a feature (`DataFile.times`).

    Returns:
        A `DataFile`; without `class_names`, labels are encoded to codes 0..K-1 (sorted values).
    """
    ext = extension(filename)
    if time_column is not None and ext not in _TABLE:
        raise InputError(f"time_column (--time-column) needs a CSV or Parquet {role}; {filename!r} is {ext or 'untyped'}: "
                         "put its rows in time order instead.")
    if ext in _ARRAYS:
        x, values, dropped = load_arrays(data, filename, role=role, drop_na=drop_na, max_bytes=max_bytes)
        names = tuple(f"x{j}" for j in range(x.shape[1])) if x.ndim == 2 else None
        names = names if feature_names is None else tuple(feature_names)
    elif ext in _TABLE:
        frame = read_table(data, filename, role=role, max_bytes=max_bytes)
        dropped = 0
        if drop_na:
            frame, dropped = drop_missing(frame)
        times = None
        if time_column is not None:
            frame, times = _in_time_order(frame, str(time_column), filename, role)
        label = None if label_column in (None, "", NO_LABEL) else str(label_column)
        labels = frame.pop(label) if label is not None and label in frame.columns else None
        if feature_names is not None:
            wanted = [str(c) for c in feature_names]
            missing = [c for c in wanted if c not in frame.columns]
            extra = [c for c in frame.columns if c not in wanted]
            if missing or extra:
                parts = ([f"missing from the {role}: {listed(missing)}"] if missing else []) + (
                    [f"not in the reference: {listed(extra)}"] if extra else []
                )
                raise InputError(
                    "The reference and the " + role + " must have the same feature columns; " + "; ".join(parts) + "."
                )
            frame = frame[wanted]
        x = csv_features(frame, filename, role)
        names = tuple(str(c) for c in frame.columns)
        values = None
        if labels is not None:
            if class_names:
                if labels.isna().any():
                    raise InputError(f"The label column {label!r} of the {role} {filename!r} has missing values.")
                values = column_values(labels)
            else:
                y, _, classes = encode_label_columns(labels, None, filename, filename, label)
                return DataFile(x, y, names, classes, dropped, column_values(labels), times)
    else:
        raise InputError(f"Unsupported file type {ext or '(none)'!r} for the {role} {filename!r}: use .csv, .parquet, .npz or .npy.")
    if ext in _ARRAYS:
        times = None
    if values is None:
        return DataFile(x, None, names, None if not class_names else tuple(str(c) for c in class_names), dropped,
                        times=times)
    if class_names:
        y = codes_for_reference(values, class_names, filename, role)
        return DataFile(x, y, names, tuple(str(c) for c in class_names), dropped, values, times)
    enc, (y,) = encode_or_explain((values,), (f"the array 'y' of the {role} {filename!r}",),
                                   where="Cannot read the class labels: ")
    return DataFile(x, y, names, enc.names, dropped, values, times)


def _in_time_order(frame: Any, column: str, filename: str, role: str) -> tuple[Any, np.ndarray]:
    """The table sorted by its time column (stable), without it; and the sorted times (text for dates)."""
    import pandas as pd

    if column not in frame.columns:
        raise InputError(f"The {role} {filename!r} has no time column {column!r}; its columns: "
                         f"{listed([str(c) for c in frame.columns])}.")
    raw = frame.pop(column)
    if raw.isna().any():
        raise InputError(f"The time column {column!r} of the {role} {filename!r} has missing values: give every row "
                         "a time, or drop the rows with missing values (--drop-na on the command line).")
    if pd.api.types.is_numeric_dtype(raw):
        key = raw.to_numpy()
        shown = key
    else:
        try:
            key = pd.to_datetime(raw, utc=True)
        except (ValueError, TypeError, OverflowError):
            raise _time_error(raw, column, filename, role) from None
        # ISO 8601 in UTC, as the period labels are; fractions of a second kept when any row has them.
        fraction = bool(((key.dt.microsecond != 0) | (key.dt.nanosecond != 0)).any())
        shown = key.dt.strftime("%Y-%m-%dT%H:%M:%S" + (".%f" if fraction else "") + "+00:00").to_numpy()
        key = key.to_numpy()
    order = np.argsort(key, kind="stable")
    return frame.iloc[order].reset_index(drop=True), np.asarray(shown)[order]


def _time_error(raw: Any, column: str, filename: str, role: str) -> InputError:
    """The error for a time column pandas cannot read as dates: the first value that is not a date, or not in
    the format of the first row (pandas reads a column in one format); rows are 1-based data rows."""
    import pandas as pd

    where = f"The time column {column!r} of the {role} {filename!r}"
    try:
        coerced = pd.to_datetime(raw, utc=True, errors="coerce")  # values not in the column's format: NaT
    except (ValueError, TypeError, OverflowError):
        coerced = None
    bad = [] if coerced is None else np.flatnonzero(coerced.isna().to_numpy())
    if len(bad) == 0:
        return InputError(f"{where} could not be read as dates. Write every time in one format, e.g. ISO 8601 "
                          "(2024-01-31 13:00:00).")
    i = int(bad[0])
    value = str(raw.iloc[i])[:60]
    try:
        pd.to_datetime(pd.Series([raw.iloc[i]]), utc=True)
    except (ValueError, TypeError, OverflowError):
        return InputError(f"{where} holds {value!r} in data row {i + 1}, which is neither a number nor a date. "
                          "Fix or drop that row.")
    return InputError(f"{where} mixes date formats: data row {i + 1} holds {value!r}, not in the format of data row 1 "
                      f"({str(raw.iloc[0])[:60]!r}). Write every time in one format, e.g. ISO 8601 "
                      "(2024-01-31 13:00:00).")


def load_domains_path(
    source_path: str | os.PathLike,
    target_path: str | os.PathLike,
    *,
    label_column: str | None = None,
    drop_na: bool = False,
    max_bytes: int | None = None,
) -> Domains:
    """`load_uploaded_domains` for two files on disk (CSV, Parquet, NPZ or NPY), each within `max_bytes`."""
    return load_uploaded_domains(
        read_path(source_path, "source file", max_bytes=max_bytes),
        read_path(target_path, "target file", max_bytes=max_bytes),
        label_column, drop_na=drop_na, max_bytes=max_bytes,
    )
