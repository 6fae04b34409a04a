"""Loading the dashboard's inputs: built-in scenarios, uploaded CSV/NPZ files and `.keras` models.

Every loader takes plain bytes and a file name (what `st.file_uploader` gives, and what a test can
pass directly), validates once, and raises `DashboardError` with a message that says what to fix:
wrong or mismatched columns, NaNs, non-numeric columns (listed), object arrays in an NPZ, a corrupt
or non-Keras model file. Nothing here imports Streamlit.
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

from shiftkit.dashboard.errors import DashboardError

__all__ = [
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
        raise DashboardError(f"The {role} {filename!r} is empty. Upload a CSV with a header row and data rows.")
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except UnicodeDecodeError:
        raise DashboardError(
            f"The {role} {filename!r} is not a text CSV (it could not be decoded as UTF-8). "
            "Export it as CSV (UTF-8) or upload an .npz file."
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DashboardError(
            f"The {role} {filename!r} could not be read as CSV: {str(exc).splitlines()[0]}. "
            "Upload a comma-separated file with one header row."
        ) from None
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise DashboardError(f"The {role} {filename!r} has no data rows. Upload a CSV with a header row and data.")
    frame.columns = [str(c) for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise DashboardError(f"The {role} {filename!r} has duplicate column names: {_listed(dupes)}. Rename them.")
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
        raise DashboardError(
            f"The {role} {filename!r} has non-numeric feature column(s): {_listed(non_numeric)}. "
            "Encode them as numbers (e.g. one-hot or category codes), drop them, or choose one of "
            "them as the label column."
        )
    nan_cols = [f"{c} ({int(n)} missing)" for c, n in frame.isna().sum().items() if n > 0]
    if nan_cols:
        raise DashboardError(
            f"The {role} {filename!r} has missing values (NaN or empty cells) in: {_listed(nan_cols)}. "
            "Impute or drop those rows before uploading."
        )
    x = frame.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = [c for c in frame.columns if not np.all(np.isfinite(frame[c].to_numpy(dtype=np.float64)))]
        raise DashboardError(f"The {role} {filename!r} has infinite values in: {_listed(bad)}. Replace or drop them.")
    return x.astype(np.float32)


def _encode_labels(
    ys: Any, yt: Any, source_name: str, target_name: str, column: str
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Encode source/target label columns as class indices with one shared class list."""
    import pandas as pd

    for series, fname, role in ((ys, source_name, "source file"), (yt, target_name, "target file")):
        if series is not None and series.isna().any():
            raise DashboardError(
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
                raise DashboardError(f"The label column {column!r} of the source has a single class; need at least 2.")
            y_s = ys.to_numpy(dtype=np.int64)
            y_t = None if yt is None else yt.to_numpy(dtype=np.int64)
            return y_s, y_t, tuple(str(k) for k in range(n))
        if np.unique(arr).size > 50:
            raise DashboardError(
                f"The label column {column!r} holds {np.unique(arr).size} distinct non-integer values: it "
                "looks like a numeric feature, not class labels. Choose the class column as label column."
            )
    classes = sorted({str(v) for v in pooled})
    if len(classes) > 200:
        raise DashboardError(
            f"The label column {column!r} has {len(classes)} distinct values; that is not a class column. "
            "Choose the column that holds the class of each row."
        )
    index = {c: k for k, c in enumerate(classes)}
    y_s = np.array([index[str(v)] for v in ys], dtype=np.int64)
    y_t = None if yt is None else np.array([index[str(v)] for v in yt], dtype=np.int64)
    return y_s, y_t, tuple(classes)


def _csv_domains(
    source: tuple[str, bytes], target: tuple[str, bytes], label_column: str | None
) -> Domains:
    (sname, sdata), (tname, tdata) = source, target
    fs = read_csv(sdata, sname, role="source file")
    ft = read_csv(tdata, tname, role="target file")
    label = None if label_column in (None, "", NO_LABEL) else str(label_column)
    if label is not None and label not in fs.columns:
        raise DashboardError(
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
        raise DashboardError(
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
    )


# --------------------------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------------------------


def load_npz(data: bytes, filename: str = "data.npz", *, role: str = "file") -> tuple[np.ndarray, np.ndarray | None]:
    """Read `x` (and optional `y`) from NPZ bytes with `allow_pickle=False`.

    Raises:
        DashboardError: not an NPZ/zip, object (pickled) arrays, no `x`, non-numeric or
            non-finite `x`, or `y` that is not one integer label per sample.
    """
    if not data:
        raise DashboardError(f"The {role} {filename!r} is empty. Upload an .npz written by numpy.savez.")
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        # Anything else would make np.load try to unpickle it (refused, but with a misleading message).
        raise DashboardError(
            f"The {role} {filename!r} is not a valid .npz file (not a zip archive). "
            "Save it with numpy.savez(path, x=inputs, y=labels)."
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DashboardError(
                    f"The {role} {filename!r} is a single .npy array, not an .npz archive. "
                    "Save it with numpy.savez(path, x=inputs, y=labels)."
                )
            keys = list(npz.files)
            if "x" not in keys:
                raise DashboardError(
                    f"The {role} {filename!r} has no array named 'x' (it has: {_listed(keys) or 'none'}). "
                    "Save it with numpy.savez(path, x=inputs, y=labels)."
                )
            x = npz["x"]
            y = npz["y"] if "y" in keys else None
    except DashboardError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise DashboardError(
                f"The {role} {filename!r} holds object arrays (Python pickles), which are not loaded for "
                "safety. Save plain numeric arrays: numpy.savez(path, x=x.astype('float32'), y=y.astype('int64'))."
            ) from None
        raise DashboardError(f"The {role} {filename!r} is not a valid .npz file: {exc}.") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DashboardError(
            f"The {role} {filename!r} is not a valid .npz file ({type(exc).__name__}). "
            "Save it with numpy.savez(path, x=inputs, y=labels)."
        ) from None
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DashboardError(f"The array 'x' of the {role} {filename!r} has dtype {x.dtype}; it must be numeric.")
    if x.ndim < 2:
        raise DashboardError(
            f"The array 'x' of the {role} {filename!r} has shape {x.shape}; it needs one row per sample, "
            "shape (n_samples, n_features) or (n_samples, height, width, channels)."
        )
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DashboardError(
            f"The array 'x' of the {role} {filename!r} has {int(np.sum(~np.isfinite(x)))} NaN/inf value(s). "
            "Impute or drop those samples."
        )
    if y is not None:
        if y.dtype == object or not np.issubdtype(y.dtype, np.number):
            raise DashboardError(f"The array 'y' of the {role} {filename!r} has dtype {y.dtype}; labels must be integers.")
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1 or len(y) != len(x):
            raise DashboardError(
                f"The array 'y' of the {role} {filename!r} has shape {y.shape}, but 'x' has {len(x)} samples: "
                "pass one integer class label per sample."
            )
        yf = y.astype(np.float64)
        if not np.all(np.isfinite(yf)) or np.any(yf != np.round(yf)) or yf.min() < 0:
            raise DashboardError(
                f"The array 'y' of the {role} {filename!r} must hold class indices 0, 1, 2, ... "
                "(no NaN, negative or fractional values)."
            )
        y = y.astype(np.int64)
    return x, y


def _npz_domains(source: tuple[str, bytes], target: tuple[str, bytes]) -> Domains:
    (sname, sdata), (tname, tdata) = source, target
    xs, ys = load_npz(sdata, sname, role="source file")
    xt, yt = load_npz(tdata, tname, role="target file")
    if xs.shape[1:] != xt.shape[1:]:
        raise DashboardError(
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
    )


def load_uploaded_domains(
    source: tuple[str, bytes], target: tuple[str, bytes], label_column: str | None = None
) -> Domains:
    """Build `Domains` from two uploaded files (CSV or NPZ, both the same format).

    Args:
        source: `(filename, bytes)` of the source file.
        target: `(filename, bytes)` of the target file.
        label_column: for CSV, the label column name (or None / `NO_LABEL`); ignored for NPZ.

    Raises:
        DashboardError: with what to fix (see the module docstring).
    """
    exts = {_ext(source[0]), _ext(target[0])}
    bad = exts - {".csv", ".npz"}
    if bad:
        raise DashboardError(
            f"Unsupported file type {', '.join(sorted(bad))}: upload .csv tables (label column chosen in "
            "the sidebar) or .npz archives with arrays 'x' and optional 'y'."
        )
    if len(exts) != 1:
        raise DashboardError("Upload the source and the target in the same format (both .csv or both .npz).")
    domains = _csv_domains(source, target, label_column) if exts == {".csv"} else _npz_domains(source, target)
    for side, x in (("source", domains.x_source), ("target", domains.x_target)):
        if len(x) < MIN_SAMPLES:
            raise DashboardError(f"The {side} file has {len(x)} sample(s); upload at least {MIN_SAMPLES}.")
    if domains.y_source is not None and np.unique(domains.y_source).size < 2:
        raise DashboardError("The source labels hold a single class; shift of labels needs at least 2 classes.")
    return domains


# --------------------------------------------------------------------------------------------
# Keras models
# --------------------------------------------------------------------------------------------


def load_keras_model(data: bytes, filename: str = "model.keras") -> Any:
    """Load an uploaded `.keras` model with `keras.saving.load_model(path, safe_mode=True)`.

    The bytes are written to a temporary file (removed afterwards). Custom layers must be
    registered (`keras.saving.register_keras_serializable`) in the running process; lambdas are
    refused by safe mode.

    Raises:
        DashboardError: wrong extension, not a zip archive, a file Keras cannot load, or no model.
    """
    import keras

    if _ext(filename) != ".keras":
        raise DashboardError(
            f"{filename!r} is not a .keras file. Save the model with model.save('model.keras') "
            "(the Keras 3 format; .h5 and SavedModel folders are not accepted)."
        )
    if not data or not zipfile.is_zipfile(io.BytesIO(data)):
        raise DashboardError(
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
            raise DashboardError(
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
        raise DashboardError(f"{filename!r} holds a {type(model).__name__}, not a keras.Model.")
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        raise DashboardError(
            f"The model in {filename!r} has no defined inputs/outputs (an unbuilt Sequential model?). "
            "Start it with keras.Input(shape=...) and save it again."
        )
    return model
