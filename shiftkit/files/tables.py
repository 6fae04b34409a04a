"""Tables: CSV and Parquet files read into pandas, their feature columns and label columns checked.

Parquet needs pyarrow (installed with streamlit, one of shiftkit's dependencies); it is imported only
when a Parquet file is read.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from shiftkit.files.common import (
    InputError,
    InputNote,
    encode_or_explain,
    extension,
    fmt_bytes,
    listed,
    max_bytes_limit,
    too_big,
)

__all__ = [
    "INDEX_COLUMN",
    "NO_LABEL",
    "LABEL_COLUMN_GUESSES",
    "PARQUET_EXTENSIONS",
    "TABLE_EXTENSIONS",
    "read_csv",
    "read_parquet",
    "read_table",
    "csv_columns",
    "guess_label_column",
    "csv_features",
    "encode_label_columns",
    "column_values",
    "drop_missing",
    "index_column",
    "without_index_column",
    "check_separator",
    "stray_cells",
    "non_numeric_error",
    "overflow_error",
    "first_overflow",
    "FLOAT32_MAX",
]


#: Select-box entry meaning "this CSV has no label column".
NO_LABEL = "(no label column)"
#: Column names tried, in order, as the default label column of an uploaded CSV.
LABEL_COLUMN_GUESSES = ("label", "labels", "target", "y", "class", "diagnosis", "outcome")
#: The name pandas gives a CSV's first column when its header cell is empty: where `to_csv` writes the row index.
INDEX_COLUMN = "Unnamed: 0"
#: Extensions read as Parquet (`read_parquet`).
PARQUET_EXTENSIONS = (".parquet", ".pq")
#: Extensions read as tables (`read_table`): CSV and Parquet.
TABLE_EXTENSIONS = (".csv",) + PARQUET_EXTENSIONS


def read_csv(data: bytes, filename: str = "data.csv", *, role: str = "file"):
    """Parse CSV bytes into a DataFrame, with a readable error for empty or malformed files."""
    if not data:
        raise InputError(f"The {role} {filename!r} is empty. Upload a CSV with a header row and data rows.")
    check_separator(data[:65536].split(b"\n", 1)[0], filename, role)
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except UnicodeDecodeError:
        raise InputError(
            f"The {role} {filename!r} is not a text CSV (it could not be decoded as UTF-8). "
            "Export it as CSV (UTF-8) or upload an .npz file."
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(
            f"The {role} {filename!r} could not be read as CSV: {str(exc).splitlines()[0]}. "
            "Upload a comma-separated file with one header row."
        ) from None
    frame = _checked_frame(frame, filename, role, "Upload a CSV with a header row and data.")
    return without_index_column(frame, index_column(frame), filename, role)


def index_column(frame: pd.DataFrame) -> str | None:
    """`INDEX_COLUMN` when a CSV's first column is the row index pandas' `to_csv` writes by default (an empty
    header, integer values, and other columns beside it), else None. Decided on the first chunk of a
    streamed file, so that every chunk is read alike."""
    columns = list(frame.columns)
    if len(columns) > 1 and columns[0] == INDEX_COLUMN and pd.api.types.is_integer_dtype(frame[INDEX_COLUMN]):
        return INDEX_COLUMN
    return None


def without_index_column(frame: pd.DataFrame, column: str | None, filename: str, role: str) -> pd.DataFrame:
    """The table without its row-index column `column` (`index_column`; None: unchanged), with an `InputNote`."""
    if column is None or column not in frame.columns:
        return frame
    warnings.warn(
        f"the {role} {filename!r} starts with an unnamed column of integers, the row index that pandas' to_csv "
        "writes by default; it is dropped, not measured as a feature. Write tables with to_csv(path, index=False) "
        "to avoid this note.", InputNote, stacklevel=3)
    return frame.drop(columns=column)


def check_separator(header: bytes, filename: str, role: str) -> None:
    """Refuse a CSV whose header line (bytes) has no comma but a semicolon, tab or bar: another separator."""
    if b"," in header:
        return
    for sep in (";", "\t", "|"):
        if sep.encode() in header:
            shown = header.decode("utf-8", "replace").strip()[:80]
            raise InputError(
                f"The {role} {filename!r} has its columns separated by {sep!r}, not by commas (its header: "
                f"{shown!r}). Save it comma-separated: pandas.read_csv(path, sep={sep!r}).to_csv(new_path, "
                "index=False)."
            )


def _checked_frame(frame: pd.DataFrame, filename: str, role: str, how: str) -> pd.DataFrame:
    """A table with rows and columns, its column names as text and distinct (`how`: what to upload)."""
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise InputError(f"The {role} {filename!r} has no data rows. {how}")
    frame.columns = [str(c) for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise InputError(f"The {role} {filename!r} has duplicate column names: {listed(dupes)}. Rename them.")
    return frame


def _pyarrow() -> tuple[Any, Any]:
    """`(pyarrow, pyarrow.parquet)`, or an ImportError that says how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError("Reading Parquet files needs pyarrow: pip install pyarrow") from None
    return pyarrow, pyarrow.parquet


def read_parquet(
    data: bytes, filename: str = "data.parquet", *, role: str = "file", max_bytes: int | None = None
) -> pd.DataFrame:
    """Parse Parquet bytes into a DataFrame, after checking the sizes its footer declares.

    Parquet is compressed, so before anything is decompressed the larger of the row groups'
    declared uncompressed size and rows x columns x 8 bytes (the float64 table it becomes) must fit
    in the limit, as for NPZ files.

    Args:
        data, filename: the file's bytes and name.
        role: what the file is, for messages.
        max_bytes: the limit in bytes (`max_bytes_limit`).

    Returns:
        The table, column names as text.

    Raises:
        InputError: not a Parquet file, larger than the limit, no rows, or duplicate column names.
        ImportError: pyarrow is not installed.
    """
    pyarrow, parquet = _pyarrow()
    if not data:
        raise InputError(f"The {role} {filename!r} is empty. Save a table with DataFrame.to_parquet(path).")
    try:
        table_file = parquet.ParquetFile(io.BytesIO(data))
        meta = table_file.metadata
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"The {role} {filename!r} is not a valid Parquet file ({(str(exc).splitlines() or [''])[0][:200]}). "
            "Save it with DataFrame.to_parquet(path)."
        ) from None
    declared = sum(int(meta.row_group(i).total_byte_size) for i in range(meta.num_row_groups))
    need = max(declared, int(meta.num_rows) * int(meta.num_columns) * 8)
    limit = max_bytes_limit(max_bytes)
    if need > limit:
        raise too_big(role, filename, f"{meta.num_rows} rows x {meta.num_columns} columns, "
                      f"{fmt_bytes(declared)} uncompressed", need, limit)
    try:
        frame = table_file.read().to_pandas()
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"The {role} {filename!r} could not be read as Parquet: {(str(exc).splitlines() or [''])[0][:200]}. "
            "Save it with DataFrame.to_parquet(path)."
        ) from None
    return _checked_frame(frame, filename, role, "Save a table with rows and columns.")


def read_table(
    data: bytes, filename: str = "data.csv", *, role: str = "file", max_bytes: int | None = None
) -> pd.DataFrame:
    """A table file as a DataFrame: Parquet (`PARQUET_EXTENSIONS`) by `read_parquet`, else CSV by `read_csv`."""
    if extension(filename) in PARQUET_EXTENSIONS:
        return read_parquet(data, filename, role=role, max_bytes=max_bytes)
    return read_csv(data, filename, role=role)


def csv_columns(data: bytes, filename: str = "data.csv") -> list[str]:
    """The column names of a table, CSV or Parquet by its extension (for the label-column select box)."""
    return list(read_table(data, filename).columns)


def guess_label_column(columns: Sequence[str]) -> str:
    """The most likely label column (`LABEL_COLUMN_GUESSES`, case-insensitive), else `NO_LABEL`."""
    lower = {c.lower(): c for c in columns}
    for guess in LABEL_COLUMN_GUESSES:
        if guess in lower:
            return lower[guess]
    return NO_LABEL


#: The largest float32 value: larger inputs would overflow to infinity (shiftkit computes in float32).
FLOAT32_MAX = float(np.finfo(np.float32).max)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?")


def stray_cells(series: Any) -> tuple[int, int, str] | None:
    """A column of numbers with a few cells that are not numbers ('?', '12,345.6'), read as text by pandas:
    `(how many, position of the first, its text)`; None for a column of text (most cells not numbers)."""
    present = series.notna()
    parsed = pd.to_numeric(series.where(present), errors="coerce")
    bad = (present & parsed.isna()).to_numpy()
    n_bad, n = int(bad.sum()), int(present.sum())
    if n_bad == 0 or 2 * n_bad > n:
        return None
    first = int(np.flatnonzero(bad)[0])
    return n_bad, first, str(series.iloc[first])


def non_numeric_error(role: str, filename: str, columns: Sequence[str], stray: dict[str, tuple[int, int, str]]) -> InputError:
    """The error for non-numeric feature `columns`: those in `stray` are numbers with a few cells that are not
    (each named with its first such cell and row: the 1-based data row, after the header); the others are text."""
    parts = []
    for column in columns:
        if column not in stray:
            parts.append(repr(column))
            continue
        n, row, value = stray[column]
        why = ("a thousands separator? write numbers without them, e.g. 12345.6" if _THOUSANDS.fullmatch(value.strip())
               else "not a number")
        parts.append(f"{column!r} (data row {row + 1} holds {value!r}: {why}"
                     + (f"; {n - 1} more such cell(s))" if n > 1 else ")"))
    fixes = []
    if stray:
        fixes.append("Correct the cells named, or empty them and drop their rows (the CLI's --drop-na, or "
                     "drop_na=True).")
    if len(stray) < len(columns):
        fixes.append("Encode text columns as numbers (e.g. one-hot or category codes), drop them, or choose one of "
                     "them as the label column.")
    shown = ", ".join(parts[:12]) + (f" (and {len(parts) - 12} more)" if len(parts) > 12 else "")
    return InputError(f"The {role} {filename!r} has non-numeric feature column(s): {shown}. {' '.join(fixes)}")


def overflow_error(role: str, filename: str, column: str, row: int, value: float) -> InputError:
    """The error for a value beyond the float32 range (1-based data `row`)."""
    return InputError(
        f"The {role} {filename!r} has values beyond the float32 range (|x| > {FLOAT32_MAX:.3g}) in column {column!r} "
        f"(e.g. {value:.4g} in data row {row + 1}), which overflow to infinity: shiftkit computes in float32. "
        "Rescale that column (e.g. divide it by a power of ten) or drop those rows."
    )


def first_overflow(x: np.ndarray) -> tuple[int, int] | None:
    """`(row, column)` of the first finite value of a float64 table beyond the float32 range, or None."""
    with np.errstate(invalid="ignore"):
        big = np.isfinite(x) & (np.abs(x) > FLOAT32_MAX)
    if not big.any():
        return None
    row = int(np.flatnonzero(big.any(axis=1))[0])
    return row, int(np.flatnonzero(big[row])[0])


def csv_features(frame: Any, filename: str, role: str) -> np.ndarray:
    """The feature columns of a table as float32, refused with the columns named if not numeric or finite."""
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        stray = {c: found for c in non_numeric if (found := stray_cells(frame[c])) is not None}
        raise non_numeric_error(role, filename, non_numeric, stray)
    nan_cols = [f"{c} ({int(n)} missing)" for c, n in frame.isna().sum().items() if n > 0]
    if nan_cols:
        raise InputError(
            f"The {role} {filename!r} has missing values (NaN or empty cells) in: {listed(nan_cols)}. "
            "Impute or drop those rows first (the CLI's --drop-na, or drop_na=True, drops them)."
        )
    x = frame.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = [c for c in frame.columns if not np.all(np.isfinite(frame[c].to_numpy(dtype=np.float64)))]
        raise InputError(f"The {role} {filename!r} has infinite values in: {listed(bad)}. Replace or drop them.")
    over = first_overflow(x)
    if over is not None:
        raise overflow_error(role, filename, str(frame.columns[over[1]]), over[0], float(x[over]))
    return x.astype(np.float32)


def encode_label_columns(
    ys: Any, yt: Any, source_name: str, target_name: str, column: str
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Encode source/target label columns as codes 0..K-1 with one shared class list.

    Any label values (class names, 1..K, years, booleans) are accepted and encoded by
    `shiftkit._validation.encode_labels` (sorted distinct values); the class names are the original
    values as text.
    """
    for series, fname, role in ((ys, source_name, "source file"), (yt, target_name, "target file")):
        if series is not None and series.isna().any():
            raise InputError(
                f"The label column {column!r} of the {role} {fname!r} has {int(series.isna().sum())} "
                "missing value(s). Every labelled row needs a label; drop the unlabelled rows."
            )
    pooled = pd.concat([ys] if yt is None else [ys, yt], ignore_index=True)
    distinct = pooled.nunique()
    if pd.api.types.is_float_dtype(pooled):
        arr = pooled.to_numpy(dtype=np.float64)
        if np.any(arr != np.round(arr)) and distinct > 50:
            raise InputError(
                f"The label column {column!r} holds {distinct} distinct non-integer values: it looks like a "
                "numeric feature, not class labels. Choose the class column as label column."
            )
    if distinct > 200:
        raise InputError(
            f"The label column {column!r} has {distinct} distinct values; that is not a class column. "
            "Choose the column that holds the class of each row."
        )
    enc, (y_s, y_t) = encode_or_explain(
        (column_values(ys), None if yt is None else column_values(yt)),
        (f"the label column {column!r} of the source file {source_name!r}",
         f"the label column {column!r} of the target file {target_name!r}"),
        where="Cannot read the class labels: ",
    )
    return y_s, y_t, enc.names


def column_values(series: Any) -> np.ndarray:
    """A label column as a numpy array of plain values (numbers, booleans or strings)."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series):
        return series.to_numpy(dtype=np.float64)
    return np.asarray([str(v) for v in series], dtype=str)


def drop_missing(frame: Any) -> tuple[Any, int]:
    """Rows with a missing or infinite value in any column dropped; returns the frame and the count."""
    numeric = frame.select_dtypes(include="number")
    bad = frame.isna().any(axis=1) | ~np.isfinite(numeric.to_numpy(dtype=np.float64)).all(axis=1)
    return frame.loc[~bad].reset_index(drop=True) if bad.any() else frame, int(pd.Series(bad).sum())
