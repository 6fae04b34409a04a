"""Loading users' files safely: CSV/NPZ/NPY data, `.keras` models, and source/target pairs of them.

Used by the dashboard (uploads), the CLI (paths) and scripts alike. The byte-level loaders take plain
bytes and a file name (what `st.file_uploader` gives, and what a test can pass directly); the
`*_path` functions read files. Everything is validated once, here, and problems raise `InputError`
(a `ValueError`) with a message that says what to fix: wrong or mismatched columns (named),
non-numeric columns (listed), NaNs (reported; or dropped with `drop_na=True`, and counted), object
arrays in an NPZ (refused: `allow_pickle=False`), a corrupt or non-Keras model file (models load
with `safe_mode=True`). Nothing here imports Streamlit.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np


__all__ = [
    "InputError",
    "load_arrays",
    "load_single",
    "DataFile",
    "load_domains_path",
    "load_model_path",
    "read_path",
    "LABEL_COLUMN_GUESSES",
    "MIN_SAMPLES",
    "NO_LABEL",
    "Domains",
    "csv_columns",
    "guess_label_column",
    "load_keras_model",
    "load_npz",
    "load_uploaded_domains",
    "read_csv",
    "scenario_domains",
]

class InputError(ValueError):
    """A problem with the user's input (file, column, setting), with a message that says what to fix."""


#: Select-box entry meaning "this CSV has no label column".
NO_LABEL = "(no label column)"
#: Column names tried, in order, as the default label column of an uploaded CSV.
LABEL_COLUMN_GUESSES = ("label", "labels", "target", "y", "class", "diagnosis", "outcome")
#: Fewest samples accepted per domain.
MIN_SAMPLES = 5
_MAX_LISTED = 12


@dataclasses.dataclass(frozen=True, eq=False)
class Domains:
    """A source and a target domain as the dashboard uses them.

    Attributes:
        name: what the data are (scenario name or file names).
        description: one paragraph shown above the results.
        x_source, x_target: inputs `(n, ...)`, float32, same per-sample shape.
        y_source, y_target: class indices (int64) or None when unknown.
        class_names: one name per class index (None without labels).
        feature_names: one name per column for tabular data, else None.
        shift_kind: the known truth for built-in scenarios, else None.
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

    @property
    def is_tabular(self) -> bool:
        """True for `(n, d)` tables (per-feature drift applies, input space is standardised)."""
        return self.x_source.ndim == 2

    @property
    def n_classes(self) -> int | None:
        if self.y_source is None:
            return None
        n = int(self.y_source.max()) + 1
        if self.y_target is not None:
            n = max(n, int(self.y_target.max()) + 1)
        if self.class_names is not None:
            n = max(n, len(self.class_names))
        return n

    def class_name_list(self) -> list[str] | None:
        n = self.n_classes
        if n is None:
            return None
        names = list(self.class_names or ())
        return names + [str(k) for k in range(len(names), n)]


def _listed(items: Sequence[Any]) -> str:
    items = [str(i) for i in items]
    more = f" (and {len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(repr(i) for i in items[:_MAX_LISTED]) + more


def _ext(filename: str) -> str:
    return os.path.splitext(str(filename).lower())[1]


# --------------------------------------------------------------------------------------------
# Built-in scenarios
# --------------------------------------------------------------------------------------------


def scenario_domains(name: str, seed: int = 0, **options: Any) -> Domains:
    """A built-in scenario of `shiftkit.datasets` as `Domains` (options as in `load_scenario`)."""
    from shiftkit.datasets import load_scenario

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


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def read_csv(data: bytes, filename: str = "data.csv", *, role: str = "file"):
    """Parse CSV bytes into a DataFrame, with a readable error for empty or malformed files."""
    import pandas as pd

    if not data:
        raise InputError(f"The {role} {filename!r} is empty. Upload a CSV with a header row and data rows.")
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
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise InputError(f"The {role} {filename!r} has no data rows. Upload a CSV with a header row and data.")
    frame.columns = [str(c) for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise InputError(f"The {role} {filename!r} has duplicate column names: {_listed(dupes)}. Rename them.")
    return frame


def csv_columns(data: bytes, filename: str = "data.csv") -> list[str]:
    """The column names of a CSV (for the label-column select box)."""
    return list(read_csv(data, filename).columns)


def guess_label_column(columns: Sequence[str]) -> str:
    """The most likely label column (`LABEL_COLUMN_GUESSES`, case-insensitive), else `NO_LABEL`."""
    lower = {c.lower(): c for c in columns}
    for guess in LABEL_COLUMN_GUESSES:
        if guess in lower:
            return lower[guess]
    return NO_LABEL


def _csv_features(frame: Any, filename: str, role: str) -> np.ndarray:
    import pandas as pd

    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise InputError(
            f"The {role} {filename!r} has non-numeric feature column(s): {_listed(non_numeric)}. "
            "Encode them as numbers (e.g. one-hot or category codes), drop them, or choose one of "
            "them as the label column."
        )
    nan_cols = [f"{c} ({int(n)} missing)" for c, n in frame.isna().sum().items() if n > 0]
    if nan_cols:
        raise InputError(
            f"The {role} {filename!r} has missing values (NaN or empty cells) in: {_listed(nan_cols)}. "
            "Impute or drop those rows first (the CLI's --drop-na, or drop_na=True, drops them)."
        )
    x = frame.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = [c for c in frame.columns if not np.all(np.isfinite(frame[c].to_numpy(dtype=np.float64)))]
        raise InputError(f"The {role} {filename!r} has infinite values in: {_listed(bad)}. Replace or drop them.")
    return x.astype(np.float32)


def _encode_labels(
    ys: Any, yt: Any, source_name: str, target_name: str, column: str
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Encode source/target label columns as class indices with one shared class list."""
    import pandas as pd

    for series, fname, role in ((ys, source_name, "source file"), (yt, target_name, "target file")):
        if series is not None and series.isna().any():
            raise InputError(
                f"The label column {column!r} of the {role} {fname!r} has {int(series.isna().sum())} "
                "missing value(s). Every labelled row needs a label; drop the unlabelled rows."
            )
    values = [ys] if yt is None else [ys, yt]
    pooled = pd.concat(values, ignore_index=True)
    if pd.api.types.is_numeric_dtype(pooled) and not pd.api.types.is_bool_dtype(pooled):
        arr = pooled.to_numpy(dtype=np.float64)
        if np.all(arr == np.round(arr)) and arr.min() >= 0 and arr.max() < 10_000:
            n = int(arr.max()) + 1
            if np.unique(arr).size < 2 and yt is None:
                raise InputError(f"The label column {column!r} of the source has a single class; need at least 2.")
            y_s = ys.to_numpy(dtype=np.int64)
            y_t = None if yt is None else yt.to_numpy(dtype=np.int64)
            return y_s, y_t, tuple(str(k) for k in range(n))
        if np.unique(arr).size > 50:
            raise InputError(
                f"The label column {column!r} holds {np.unique(arr).size} distinct non-integer values: it "
                "looks like a numeric feature, not class labels. Choose the class column as label column."
            )
    classes = sorted({str(v) for v in pooled})
    if len(classes) > 200:
        raise InputError(
            f"The label column {column!r} has {len(classes)} distinct values; that is not a class column. "
            "Choose the column that holds the class of each row."
        )
    index = {c: k for k, c in enumerate(classes)}
    y_s = np.array([index[str(v)] for v in ys], dtype=np.int64)
    y_t = None if yt is None else np.array([index[str(v)] for v in yt], dtype=np.int64)
    return y_s, y_t, tuple(classes)


def _drop_missing(frame: Any) -> tuple[Any, int]:
    """Rows with a missing or infinite value in any column dropped; returns the frame and the count."""
    import pandas as pd

    numeric = frame.select_dtypes(include="number")
    bad = frame.isna().any(axis=1) | ~np.isfinite(numeric.to_numpy(dtype=np.float64)).all(axis=1)
    return frame.loc[~bad].reset_index(drop=True) if bad.any() else frame, int(pd.Series(bad).sum())


def _csv_domains(
    source: tuple[str, bytes], target: tuple[str, bytes], label_column: str | None, drop_na: bool = False
) -> Domains:
    (sname, sdata), (tname, tdata) = source, target
    fs = read_csv(sdata, sname, role="source file")
    ft = read_csv(tdata, tname, role="target file")
    dropped = (0, 0)
    if drop_na:
        (fs, ds), (ft, dt) = _drop_missing(fs), _drop_missing(ft)
        dropped = (ds, dt)
    label = None if label_column in (None, "", NO_LABEL) else str(label_column)
    if label is not None and label not in fs.columns:
        raise InputError(
            f"The label column {label!r} is not a column of the source file {sname!r}. "
            f"Columns: {_listed(fs.columns)}."
        )
    ys = fs.pop(label) if label is not None else None
    yt = ft.pop(label) if label is not None and label in ft.columns else None
    missing = [c for c in fs.columns if c not in ft.columns]
    extra = [c for c in ft.columns if c not in fs.columns]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing from the target: {_listed(missing)}")
        if extra:
            parts.append(f"only in the target: {_listed(extra)}")
        raise InputError(
            "Source and target files must have the same feature columns; " + "; ".join(parts)
            + ". Select the same columns in both files (the label column may be absent from the target)."
        )
    ft = ft[list(fs.columns)]  # same order as the source
    xs = _csv_features(fs, sname, "source file")
    xt = _csv_features(ft, tname, "target file")
    y_s = y_t = None
    classes = None
    if ys is not None:
        y_s, y_t, classes = _encode_labels(ys, yt, sname, tname, label)
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
    )


# --------------------------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------------------------


def _read_npz(data: bytes, filename: str, role: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw `x` and `y` arrays of NPZ bytes, read with `allow_pickle=False`."""
    if not data:
        raise InputError(f"The {role} {filename!r} is empty. Upload an .npz written by numpy.savez.")
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        # Anything else would make np.load try to unpickle it (refused, but with a misleading message).
        raise InputError(
            f"The {role} {filename!r} is not a valid .npz file (not a zip archive). "
            "Save it with numpy.savez(path, x=inputs, y=labels)."
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise InputError(
                    f"The {role} {filename!r} is a single .npy array, not an .npz archive. "
                    "Save it with numpy.savez(path, x=inputs, y=labels)."
                )
            keys = list(npz.files)
            if "x" not in keys:
                raise InputError(
                    f"The {role} {filename!r} has no array named 'x' (it has: {_listed(keys) or 'none'}). "
                    "Save it with numpy.savez(path, x=inputs, y=labels)."
                )
            x = npz["x"]
            y = npz["y"] if "y" in keys else None
    except InputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise InputError(
                f"The {role} {filename!r} holds object arrays (Python pickles), which are not loaded for "
                "safety. Save plain numeric arrays: numpy.savez(path, x=x.astype('float32'), y=y.astype('int64'))."
            ) from None
        raise InputError(f"The {role} {filename!r} is not a valid .npz file: {exc}.") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(
            f"The {role} {filename!r} is not a valid .npz file ({type(exc).__name__}). "
            "Save it with numpy.savez(path, x=inputs, y=labels)."
        ) from None
    return x, y


def _check_xy(
    x: np.ndarray, y: np.ndarray | None, filename: str, role: str, drop_na: bool
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Validate arrays read from a file: numeric, one row per sample, finite (or rows dropped)."""
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InputError(f"The array 'x' of the {role} {filename!r} has dtype {x.dtype}; it must be numeric.")
    if x.ndim < 2:
        raise InputError(
            f"The array 'x' of the {role} {filename!r} has shape {x.shape}; it needs one row per sample, "
            "shape (n_samples, n_features) or (n_samples, height, width, channels)."
        )
    x = x.astype(np.float32)
    n_dropped = 0
    if drop_na and not np.all(np.isfinite(x)):
        keep = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if y is not None and y.ndim >= 1 and len(y) == len(x):
            y = y[keep]
        n_dropped = int((~keep).sum())
        x = x[keep]
    if not np.all(np.isfinite(x)):
        raise InputError(
            f"The array 'x' of the {role} {filename!r} has {int(np.sum(~np.isfinite(x)))} NaN/inf value(s). "
            "Impute or drop those samples (the CLI's --drop-na, or drop_na=True, drops them)."
        )
    if y is not None:
        if y.dtype == object or not np.issubdtype(y.dtype, np.number):
            raise InputError(f"The array 'y' of the {role} {filename!r} has dtype {y.dtype}; labels must be integers.")
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1 or len(y) != len(x):
            raise InputError(
                f"The array 'y' of the {role} {filename!r} has shape {y.shape}, but 'x' has {len(x)} samples: "
                "pass one integer class label per sample."
            )
        yf = y.astype(np.float64)
        if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)) or yf.min() < 0:
            raise InputError(
                f"The array 'y' of the {role} {filename!r} must hold class indices 0, 1, 2, ... "
                "(no NaN, negative or fractional values)."
            )
        y = y.astype(np.int64)
    return x, y, n_dropped


def _read_npy(data: bytes, filename: str, role: str) -> np.ndarray:
    """The raw array of `.npy` bytes, read with `allow_pickle=False`."""
    if not data or not data.startswith(b"\x93NUMPY"):
        raise InputError(f"The {role} {filename!r} is not a valid .npy file. Save it with numpy.save(path, x).")
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise InputError(
                f"The {role} {filename!r} holds an object array (a Python pickle), which is not loaded for "
                "safety. Save a plain numeric array: numpy.save(path, x.astype('float32'))."
            ) from None
        raise InputError(f"The {role} {filename!r} is not a valid .npy file: {exc}.") from None


def load_arrays(
    data: bytes, filename: str = "data.npz", *, role: str = "file", drop_na: bool = False
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Read inputs (and labels) from `.npz` (`x`, optional `y`) or `.npy` (`x` only) bytes.

    Returns:
        `(x, y, n_dropped)`: float32 inputs, int64 labels or None, and the number of rows dropped
        for non-finite values (always 0 unless `drop_na`).

    Raises:
        InputError: not an NPZ/NPY file, object (pickled) arrays, no `x`, non-numeric or non-finite
            `x` (unless `drop_na`), or `y` that is not one integer label per sample.
    """
    raw = (_read_npy(data, filename, role), None) if _ext(filename) == ".npy" else _read_npz(data, filename, role)
    return _check_xy(*raw, filename, role, drop_na)


def load_npz(data: bytes, filename: str = "data.npz", *, role: str = "file") -> tuple[np.ndarray, np.ndarray | None]:
    """Read `x` (and optional `y`) from NPZ bytes with `allow_pickle=False` (see `load_arrays`)."""
    x, y, _ = _check_xy(*_read_npz(data, filename, role), filename, role, False)
    return x, y


def _npz_domains(source: tuple[str, bytes], target: tuple[str, bytes], drop_na: bool = False) -> Domains:
    (sname, sdata), (tname, tdata) = source, target
    xs, ys, ds = load_arrays(sdata, sname, role="source file", drop_na=drop_na)
    xt, yt, dt = load_arrays(tdata, tname, role="target file", drop_na=drop_na)
    if xs.shape[1:] != xt.shape[1:]:
        raise InputError(
            f"Source and target have different per-sample shapes: {xs.shape[1:]} in {sname!r}, "
            f"{xt.shape[1:]} in {tname!r}. Both need the same features in the same order."
        )
    if ys is None:
        yt = None
    n = None if ys is None else int(max(ys.max(), -1 if yt is None else yt.max())) + 1
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
        class_names=None if n is None else tuple(str(k) for k in range(n)),
        feature_names=tuple(f"x{j}" for j in range(xs.shape[1])) if xs.ndim == 2 else None,
        dropped=(ds, dt),
    )


_TABLE = {".csv"}
_ARRAYS = {".npz", ".npy"}


def load_uploaded_domains(
    source: tuple[str, bytes],
    target: tuple[str, bytes],
    label_column: str | None = None,
    *,
    drop_na: bool = False,
) -> Domains:
    """Build `Domains` from two files' bytes (both CSV, or both arrays: NPZ/NPY).

    Args:
        source: `(filename, bytes)` of the source file.
        target: `(filename, bytes)` of the target file.
        label_column: for CSV, the label column name (or None / `NO_LABEL`); ignored for arrays.
        drop_na: drop rows with missing/non-finite values (counted in `Domains.dropped`) instead of
            refusing the file.

    Raises:
        InputError: with what to fix (see the module docstring).
    """
    exts = {_ext(source[0]), _ext(target[0])}
    bad = exts - _TABLE - _ARRAYS
    if bad:
        raise InputError(
            f"Unsupported file type {', '.join(sorted(bad))}: use .csv tables (with a label column) or "
            ".npz archives with arrays 'x' and optional 'y' (.npy for inputs without labels)."
        )
    if not (exts <= _TABLE or exts <= _ARRAYS):
        raise InputError("Give the source and the target in the same format (both .csv, or both .npz/.npy).")
    if exts <= _TABLE:
        domains = _csv_domains(source, target, label_column, drop_na)
    else:
        domains = _npz_domains(source, target, drop_na)
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
        x: inputs, float32. y: class indices or None. feature_names: column names (tables).
        class_names: one name per class index (None without labels). dropped: rows dropped (drop_na).
    """

    x: np.ndarray
    y: np.ndarray | None
    feature_names: tuple[str, ...] | None
    class_names: tuple[str, ...] | None
    dropped: int = 0


def load_single(
    data: bytes,
    filename: str,
    *,
    label_column: str | None = None,
    drop_na: bool = False,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    role: str = "target file",
) -> "DataFile":
    """Read one data file (alone, or to be compared with a known reference such as a snapshot).

    Args:
        data, filename: the file's bytes and name (.csv, .npz or .npy).
        label_column: CSV label column; a CSV without it is read as unlabelled.
        drop_na: drop rows with missing values instead of refusing the file.
        feature_names: the reference's columns: a CSV must have the same ones (named if not), and
            is reordered to match.
        class_names: the reference's classes: CSV labels are mapped to their indices by name.

    Returns:
        A `DataFile`.
    """
    ext = _ext(filename)
    if ext in _ARRAYS:
        x, y, dropped = load_arrays(data, filename, role=role, drop_na=drop_na)
        names = tuple(f"x{j}" for j in range(x.shape[1])) if x.ndim == 2 else None
        n = None if y is None else int(y.max()) + 1
        classes = tuple(class_names) if class_names else (None if n is None else tuple(str(k) for k in range(n)))
        return DataFile(x, y, names if feature_names is None else tuple(feature_names), classes, dropped)
    if ext not in _TABLE:
        raise InputError(f"Unsupported file type {ext or '(none)'!r} for the {role} {filename!r}: use .csv, .npz or .npy.")
    frame = read_csv(data, filename, role=role)
    dropped = 0
    if drop_na:
        frame, dropped = _drop_missing(frame)
    label = None if label_column in (None, "", NO_LABEL) else str(label_column)
    labels = frame.pop(label) if label is not None and label in frame.columns else None
    if feature_names is not None:
        wanted = [str(c) for c in feature_names]
        missing = [c for c in wanted if c not in frame.columns]
        extra = [c for c in frame.columns if c not in wanted]
        if missing or extra:
            parts = ([f"missing from the {role}: {_listed(missing)}"] if missing else []) + (
                [f"not in the reference: {_listed(extra)}"] if extra else []
            )
            raise InputError(
                "The reference and the " + role + " must have the same feature columns; " + "; ".join(parts) + "."
            )
        frame = frame[wanted]
    x = _csv_features(frame, filename, role)
    y = None
    classes = None if not class_names else tuple(str(c) for c in class_names)
    if labels is not None:
        if labels.isna().any():
            raise InputError(f"The label column {label!r} of the {role} {filename!r} has missing values.")
        if class_names:
            index = {str(c): k for k, c in enumerate(class_names)}
            values = [str(v) for v in labels]
            if all(v not in index for v in values) and labels.dtype.kind in "iu":
                values = [str(class_names[int(v)]) if 0 <= int(v) < len(class_names) else str(v) for v in labels]
            unknown = sorted({v for v in values if v not in index})
            if unknown:
                raise InputError(
                    f"The {role} {filename!r} has label(s) {_listed(unknown)} that the reference does not know "
                    f"(its classes: {_listed(class_names)})."
                )
            y = np.array([index[v] for v in values], dtype=np.int64)
        else:
            y, _, classes = _encode_labels(labels, None, filename, filename, label)
    return DataFile(x, y, tuple(str(c) for c in frame.columns), classes, dropped)


def read_path(path: str | os.PathLike, role: str = "file") -> tuple[str, bytes]:
    """`(file name, bytes)` of a file on disk, with a clear error for a missing or unreadable file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"The {role} {path!r} does not exist (or is not a file). Check the path.")
    try:
        with open(path, "rb") as fh:
            return os.path.basename(path), fh.read()
    except OSError as exc:
        raise InputError(f"The {role} {path!r} could not be read: {exc.strerror or exc}.") from None


def load_domains_path(
    source_path: str | os.PathLike,
    target_path: str | os.PathLike,
    *,
    label_column: str | None = None,
    drop_na: bool = False,
) -> Domains:
    """`load_uploaded_domains` for two files on disk (CSV, NPZ or NPY)."""
    return load_uploaded_domains(
        read_path(source_path, "source file"), read_path(target_path, "target file"), label_column, drop_na=drop_na
    )


def load_model_path(path: str | os.PathLike) -> Any:
    """Load a `.keras` model file with `safe_mode=True` (see `load_keras_model`)."""
    name, data = read_path(path, "model file")
    return load_keras_model(data, name)


# --------------------------------------------------------------------------------------------
# Keras models
# --------------------------------------------------------------------------------------------


def load_keras_model(data: bytes, filename: str = "model.keras") -> Any:
    """Load an uploaded `.keras` model with `keras.saving.load_model(path, safe_mode=True)`.

    The bytes are written to a temporary file (removed afterwards). Custom layers must be
    registered (`keras.saving.register_keras_serializable`) in the running process; lambdas are
    refused by safe mode.

    Raises:
        InputError: wrong extension, not a zip archive, a file Keras cannot load, or no model.
    """
    import keras

    if _ext(filename) != ".keras":
        raise InputError(
            f"{filename!r} is not a .keras file. Save the model with model.save('model.keras') "
            "(the Keras 3 format; .h5 and SavedModel folders are not accepted)."
        )
    if not data or not zipfile.is_zipfile(io.BytesIO(data)):
        raise InputError(
            f"{filename!r} is not a valid .keras file (a .keras file is a zip archive; this one is "
            "empty or corrupt). Save the model again with model.save('model.keras')."
        )
    fd, path = tempfile.mkstemp(suffix=".keras", prefix="shiftkit_upload_")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        try:
            model = keras.saving.load_model(path, safe_mode=True)
        except Exception as exc:  # noqa: BLE001 - any Keras/TF failure: a message, never a traceback
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise InputError(
                f"Keras could not load {filename!r}: {first}. Upload a model saved with "
                "model.save('model.keras'); custom layers must be registered, and lambdas are "
                "refused by safe mode."
            ) from None
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
    if not isinstance(model, keras.Model):
        raise InputError(f"{filename!r} holds a {type(model).__name__}, not a keras.Model.")
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        raise InputError(
            f"The model in {filename!r} has no defined inputs/outputs (an unbuilt Sequential model?). "
            "Start it with keras.Input(shape=...) and save it again."
        )
    return model
