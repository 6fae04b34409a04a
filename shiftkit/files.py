"""Loading users' files safely: CSV/NPZ/NPY data, `.keras` models, and source/target pairs of them.

Used by the dashboard (uploads), the CLI (paths) and scripts alike. The byte-level loaders take plain
bytes and a file name (what `st.file_uploader` gives, and what a test can pass directly); the
`*_path` functions read files. Everything is validated once, here, and problems raise `InputError`
(a `ValueError`) with a message that says what to fix: wrong or mismatched columns (named),
non-numeric columns (listed), NaNs (reported; or dropped with `drop_na=True`, and counted), object
arrays in an NPZ (refused: `allow_pickle=False`), a corrupt or non-Keras model file (models load
with `safe_mode=True`). Nothing here imports Streamlit.

Size limits: compressed files can expand far beyond their size (an `.npz` of zeros 1,000-fold), so
before anything is decompressed the declared sizes are checked against a limit (`max_bytes`,
default `MAX_BYTES` = 2 GiB, or `SHIFTKIT_MAX_GIB` from the environment): every zip member's
uncompressed size and their total, each `.npy` header's shape x itemsize (an array that a lying
header would make numpy allocate), a `.keras` archive's total uncompressed size
(`check_keras_archive`), and a file's size on disk before it is read.

Labels: any label values (class names, 1..K, years, booleans) are encoded to codes 0..K-1 shared by
source and target with `shiftkit._validation.encode_labels`; the original values are kept as the
class names (`Domains.class_names`), and `Domains.for_model` re-encodes them against a model's
outputs (labels 0..K-1 then index the outputs as they are).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftkit._keras import n_classes as n_classes_of
from shiftkit._validation import check_real, encode_labels


__all__ = [
    "InputError",
    "MAX_BYTES",
    "MAX_BYTES_ENV",
    "check_array_file",
    "check_keras_archive",
    "max_bytes_limit",
    "bytes_from_gib",
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
    "model_n_classes",
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
#: Default limit, in bytes, on what one file may take in memory once read and decompressed (2 GiB).
MAX_BYTES = 2 * 1024**3
#: Environment variable that overrides `MAX_BYTES` for every entry point: a number of GiB, e.g. "8".
MAX_BYTES_ENV = "SHIFTKIT_MAX_GIB"
_HOW_TO_RAISE = (
    f"If the file is genuine, raise the limit: max_bytes=... in shiftkit.files, --max-gib on the "
    f"command line, or the environment variable {MAX_BYTES_ENV} (GiB) for any entry point; or "
    "subsample the data first."
)


def max_bytes_limit(max_bytes: int | None = None) -> int:
    """The size limit in force: `max_bytes` if given, else `SHIFTKIT_MAX_GIB` GiB, else `MAX_BYTES`.

    Args:
        max_bytes: an explicit limit in bytes (>= 1), or None for the default.

    Returns:
        The limit in bytes.

    Raises:
        ValueError: `max_bytes` or the environment variable is not a positive number.
    """
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive number of bytes; got {max_bytes!r}.")
        return int(max_bytes)
    env = os.environ.get(MAX_BYTES_ENV, "").strip()
    if env:
        try:
            gib = float(env)
        except ValueError:
            raise ValueError(
                f"The environment variable {MAX_BYTES_ENV} must be a positive number of GiB, e.g. 8; got {env!r}."
            ) from None
        return bytes_from_gib(gib, f"The environment variable {MAX_BYTES_ENV} (GiB)")
    return MAX_BYTES


def bytes_from_gib(gib: Any, name: str = "max_gib") -> int:
    """A size limit given in GiB (`--max-gib`, `SHIFTKIT_MAX_GIB`) in bytes, at least 1.

    Args:
        gib: a positive, finite number of GiB.
        name: what the value is, for messages.

    Returns:
        The limit in bytes.

    Raises:
        TypeError / ValueError: `gib` is not a positive finite number.
    """
    gib = check_real(gib, name, low=0, low_open=True, example=8)
    return max(1, int(gib * 1024**3))


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _too_big(role: str, filename: str, what: str, size: int, limit: int) -> InputError:
    return InputError(
        f"The {role} {filename!r} would take {_fmt_bytes(size)} in memory ({what}), more than the limit "
        f"of {_fmt_bytes(limit)}; it was not read. {_HOW_TO_RAISE}"
    )


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
        enc, (ys, yt) = _encode_or_explain(
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


def model_n_classes(model: Any) -> int:
    """The number of classes a Keras classifier predicts: its output width (2 for a single unit)."""
    return n_classes_of(model) or 2


def _encode_or_explain(
    labels: Sequence[Any], names: Sequence[str], *, n_outputs: int | None = None, where: str = ""
) -> Any:
    """`encode_labels` of several label arrays, its errors as `InputError` saying where they came from."""
    try:
        return encode_labels(*labels, names=list(names), n_outputs=n_outputs)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        raise InputError(where + (text[:1].upper() + text[1:] if not where else text)) from None


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
    """Encode source/target label columns as codes 0..K-1 with one shared class list.

    Any label values (class names, 1..K, years, booleans) are accepted and encoded by
    `shiftkit._validation.encode_labels` (sorted distinct values); the class names are the original
    values as text.
    """
    import pandas as pd

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
    enc, (y_s, y_t) = _encode_or_explain(
        (_column_values(ys), None if yt is None else _column_values(yt)),
        (f"the label column {column!r} of the source file {source_name!r}",
         f"the label column {column!r} of the target file {target_name!r}"),
        where="Cannot read the class labels: ",
    )
    return y_s, y_t, enc.names


def _column_values(series: Any) -> np.ndarray:
    """A label column as a numpy array of plain values (numbers, booleans or strings)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(series):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series):
        return series.to_numpy(dtype=np.float64)
    return np.asarray([str(v) for v in series], dtype=str)


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
        y_source_values=None if ys is None else _column_values(ys),
        y_target_values=None if yt is None else _column_values(yt),
    )


# --------------------------------------------------------------------------------------------
# NPZ
# --------------------------------------------------------------------------------------------


def _npy_header(fp: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a `.npy` stream (the stream is left after the header)."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(fp)
    else:
        reader = getattr(fmt, "_read_array_header", None)
        if reader is None:
            raise ValueError(f"unsupported .npy format version {version}")
        shape, _, dtype = reader(fp, version)
    return tuple(int(d) for d in shape), np.dtype(dtype)


def _array_nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _describe_array(name: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    return f"array {name!r}: shape {shape}, {dtype}"


def _check_npz_sizes(data: bytes, filename: str, role: str, limit: int) -> None:
    """Refuse an NPZ whose members would expand beyond `limit`, reading only headers.

    Checks each member's declared uncompressed size (which `zipfile` enforces while reading) and
    their total, and each `.npy` member's header: shape x itemsize within the limit, and no more than
    the member holds (a header that claims more would make numpy allocate it before failing).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            for info in infos:
                if info.filename.endswith(".npy"):
                    with zf.open(info) as fp:
                        shape, dtype = _npy_header(fp)
                        header = fp.tell()
                    if not dtype.hasobject:  # object arrays are refused as pickles when read
                        nbytes = _array_nbytes(shape, dtype)
                        what = _describe_array(info.filename[:-4], shape, dtype)
                        if nbytes > limit:
                            raise _too_big(role, filename, what, nbytes, limit)
                        if nbytes > info.file_size - header:
                            raise InputError(
                                f"The {role} {filename!r} is corrupt: the header of {what} announces "
                                f"{_fmt_bytes(nbytes)} but the member holds {_fmt_bytes(info.file_size - header)}. "
                                "Save it again with numpy.savez(path, x=inputs, y=labels)."
                            )
                if info.file_size > limit:
                    raise _too_big(role, filename, f"member {info.filename!r} expands to {_fmt_bytes(info.file_size)}",
                                   info.file_size, limit)
            total = sum(info.file_size for info in infos)
            if total > limit:
                raise _too_big(role, filename, f"{len(infos)} members expand to {_fmt_bytes(total)}", total, limit)
    except InputError:
        raise
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, KeyError, SyntaxError) as exc:
        raise InputError(
            f"The {role} {filename!r} is not a valid .npz file ({type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:200]}). Save it with numpy.savez(path, x=inputs, y=labels)."
        ) from None


def _check_npy_size(data: bytes, filename: str, role: str, limit: int) -> None:
    """Refuse `.npy` bytes whose header announces more than `limit` or more than the file holds."""
    fp = io.BytesIO(data)
    try:
        shape, dtype = _npy_header(fp)
    except (ValueError, EOFError, OSError, SyntaxError) as exc:
        raise InputError(
            f"The {role} {filename!r} is not a valid .npy file ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}). "
            "Save it with numpy.save(path, x)."
        ) from None
    if dtype.hasobject:
        return
    nbytes = _array_nbytes(shape, dtype)
    what = _describe_array("x", shape, dtype)
    if nbytes > limit:
        raise _too_big(role, filename, what, nbytes, limit)
    if nbytes > len(data) - fp.tell():
        raise InputError(
            f"The {role} {filename!r} is truncated: its header announces {what} ({_fmt_bytes(nbytes)}) but "
            f"the file holds {_fmt_bytes(len(data) - fp.tell())} of data. Save it again with numpy.save(path, x)."
        )


def check_array_file(
    source: bytes | str | os.PathLike, max_bytes: int | None = None, *, role: str = "file",
    filename: str | None = None,
) -> None:
    """Check an `.npz` / `.npy` file before numpy reads it: within `max_bytes` once decompressed.

    Reads only the zip directory and the `.npy` headers (see the module docstring); use it before
    `np.load` on any array file from a user (snapshots included).

    Args:
        source: the file's bytes, or its path.
        max_bytes: the limit in bytes (default: `max_bytes_limit()`).
        role: what the file is, for messages.
        filename: name used in messages (default: the path's base name).

    Raises:
        InputError: not an array file, corrupt, or larger than the limit.
    """
    limit = max_bytes_limit(max_bytes)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), filename or "data.npz"
    else:
        name, data = read_path(source, role, max_bytes=limit)
        name = filename or name
    if data.startswith(b"\x93NUMPY"):
        _check_npy_size(data, name, role, limit)
    elif data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        _check_npz_sizes(data, name, role, limit)
    else:
        raise InputError(f"The {role} {name!r} is not a valid .npz or .npy file. Save it with numpy.savez.")


def _read_npz(
    data: bytes, filename: str, role: str, max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw `x` and `y` arrays of NPZ bytes, read with `allow_pickle=False` after a size check."""
    if not data:
        raise InputError(f"The {role} {filename!r} is empty. Upload an .npz written by numpy.savez.")
    if not data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        # Anything else would make np.load try to unpickle it (refused, but with a misleading message).
        raise InputError(
            f"The {role} {filename!r} is not a valid .npz file (not a zip archive). "
            "Save it with numpy.savez(path, x=inputs, y=labels)."
        )
    limit = max_bytes_limit(max_bytes)
    if data.startswith(b"\x93NUMPY"):
        _check_npy_size(data, filename, role, limit)
    else:
        _check_npz_sizes(data, filename, role, limit)
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
        if y.dtype.kind not in "biufUS":
            raise InputError(
                f"The array 'y' of the {role} {filename!r} has dtype {y.dtype}; labels must be numbers, "
                "booleans or strings."
            )
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim not in (1, 2) or len(y) != len(x):
            raise InputError(
                f"The array 'y' of the {role} {filename!r} has shape {y.shape}, but 'x' has {len(x)} samples: "
                "pass one class label per sample."
            )
        _encode_or_explain((y,), (f"the array 'y' of the {role} {filename!r}",))  # validates the values
    return x, y, n_dropped


def _read_npy(data: bytes, filename: str, role: str, max_bytes: int | None = None) -> np.ndarray:
    """The raw array of `.npy` bytes, read with `allow_pickle=False` after a size check."""
    if not data or not data.startswith(b"\x93NUMPY"):
        raise InputError(f"The {role} {filename!r} is not a valid .npy file. Save it with numpy.save(path, x).")
    _check_npy_size(data, filename, role, max_bytes_limit(max_bytes))
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
    data: bytes,
    filename: str = "data.npz",
    *,
    role: str = "file",
    drop_na: bool = False,
    max_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Read inputs (and labels) from `.npz` (`x`, optional `y`) or `.npy` (`x` only) bytes.

    Args:
        data, filename: the file's bytes and name.
        role: what the file is, for messages ("source file", ...).
        drop_na: drop samples with non-finite inputs instead of refusing the file.
        max_bytes: limit on what the arrays may take once decompressed (see `max_bytes_limit`);
            checked from the zip directory and the `.npy` headers before anything is read.

    Returns:
        `(x, y, n_dropped)`: float32 inputs, the labels as stored (numbers, booleans or strings;
        encode them with `encode_labels`) or None, and the number of rows dropped for non-finite
        values (always 0 unless `drop_na`).

    Raises:
        InputError: not an NPZ/NPY file, too large once decompressed, object (pickled) arrays, no
            `x`, non-numeric or non-finite `x` (unless `drop_na`), or `y` that is not one class
            label per sample.
    """
    if _ext(filename) == ".npy":
        raw = (_read_npy(data, filename, role, max_bytes), None)
    else:
        raw = _read_npz(data, filename, role, max_bytes)
    return _check_xy(*raw, filename, role, drop_na)


def load_npz(
    data: bytes, filename: str = "data.npz", *, role: str = "file", max_bytes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read `x` (and optional `y`, as stored) from NPZ bytes with `allow_pickle=False` (see `load_arrays`)."""
    x, y, _ = _check_xy(*_read_npz(data, filename, role, max_bytes), filename, role, False)
    return x, y


def _npz_domains(
    source: tuple[str, bytes], target: tuple[str, bytes], drop_na: bool = False, max_bytes: int | None = None
) -> Domains:
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
        enc, (ys, yt) = _encode_or_explain(
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


_TABLE = {".csv"}
_ARRAYS = {".npz", ".npy"}


def load_uploaded_domains(
    source: tuple[str, bytes],
    target: tuple[str, bytes],
    label_column: str | None = None,
    *,
    drop_na: bool = False,
    max_bytes: int | None = None,
) -> Domains:
    """Build `Domains` from two files' bytes (both CSV, or both arrays: NPZ/NPY).

    Labels (CSV label column, NPZ `y`) may hold any class values; they are encoded to codes 0..K-1
    shared by both files, with the original values as `class_names`.

    Args:
        source: `(filename, bytes)` of the source file.
        target: `(filename, bytes)` of the target file.
        label_column: for CSV, the label column name (or None / `NO_LABEL`); ignored for arrays.
        drop_na: drop rows with missing/non-finite values (counted in `Domains.dropped`) instead of
            refusing the file.
        max_bytes: limit on what an array file may take once decompressed (`max_bytes_limit`).

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
    """

    x: np.ndarray
    y: np.ndarray | None
    feature_names: tuple[str, ...] | None
    class_names: tuple[str, ...] | None
    dropped: int = 0
    y_values: np.ndarray | None = None

    def for_model(self, n_outputs: int) -> "DataFile":
        """The same file with labels coded as a model's output indices (see `Domains.for_model`)."""
        if self.y is None or self.y_values is None:
            return self
        enc, (y,) = _encode_or_explain((self.y_values,), ("the labels",), n_outputs=n_outputs)
        return dataclasses.replace(self, y=y, class_names=enc.names)


def _value_names(values: np.ndarray) -> np.ndarray:
    """Label values as the text `encode_labels` shows for them (whole floats as integers)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    return np.asarray([str(v) for v in arr.tolist()], dtype=str)


def _codes_for_reference(
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
            f"The {role} {filename!r} has label(s) {_listed(unknown)} that the reference does not know "
            f"(its classes: {_listed(names)})."
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
) -> "DataFile":
    """Read one data file (alone, or to be compared with a known reference such as a snapshot).

    Args:
        data, filename: the file's bytes and name (.csv, .npz or .npy).
        label_column: CSV label column; a CSV without it is read as unlabelled.
        drop_na: drop rows with missing values instead of refusing the file.
        feature_names: the reference's columns: a CSV must have the same ones (named if not), and
            is reordered to match.
        class_names: the reference's classes: labels are mapped to their codes by name.
        role: what the file is, for messages.
        max_bytes: limit on what an array file may take once decompressed (`max_bytes_limit`).

    Returns:
        A `DataFile`; without `class_names`, labels are encoded to codes 0..K-1 (sorted values).
    """
    ext = _ext(filename)
    if ext in _ARRAYS:
        x, values, dropped = load_arrays(data, filename, role=role, drop_na=drop_na, max_bytes=max_bytes)
        names = tuple(f"x{j}" for j in range(x.shape[1])) if x.ndim == 2 else None
        names = names if feature_names is None else tuple(feature_names)
    elif ext in _TABLE:
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
        names = tuple(str(c) for c in frame.columns)
        values = None
        if labels is not None:
            if class_names:
                if labels.isna().any():
                    raise InputError(f"The label column {label!r} of the {role} {filename!r} has missing values.")
                values = _column_values(labels)
            else:
                y, _, classes = _encode_labels(labels, None, filename, filename, label)
                return DataFile(x, y, names, classes, dropped, _column_values(labels))
    else:
        raise InputError(f"Unsupported file type {ext or '(none)'!r} for the {role} {filename!r}: use .csv, .npz or .npy.")
    if values is None:
        return DataFile(x, None, names, None if not class_names else tuple(str(c) for c in class_names), dropped)
    if class_names:
        y = _codes_for_reference(values, class_names, filename, role)
        return DataFile(x, y, names, tuple(str(c) for c in class_names), dropped, values)
    enc, (y,) = _encode_or_explain((values,), (f"the array 'y' of the {role} {filename!r}",),
                                   where="Cannot read the class labels: ")
    return DataFile(x, y, names, enc.names, dropped, values)


def read_path(path: str | os.PathLike, role: str = "file", *, max_bytes: int | None = None) -> tuple[str, bytes]:
    """`(file name, bytes)` of a file on disk, with a clear error for a missing, unreadable or too large file.

    Args:
        path: the file.
        role: what the file is, for messages.
        max_bytes: largest file read (`max_bytes_limit`); checked before reading.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"The {role} {path!r} does not exist (or is not a file). Check the path.")
    limit = max_bytes_limit(max_bytes)
    size = os.path.getsize(path)
    if size > limit:
        raise _too_big(role, path, f"the file is {_fmt_bytes(size)}", size, limit)
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
    max_bytes: int | None = None,
) -> Domains:
    """`load_uploaded_domains` for two files on disk (CSV, NPZ or NPY), each within `max_bytes`."""
    return load_uploaded_domains(
        read_path(source_path, "source file", max_bytes=max_bytes),
        read_path(target_path, "target file", max_bytes=max_bytes),
        label_column, drop_na=drop_na, max_bytes=max_bytes,
    )


def load_model_path(path: str | os.PathLike, *, max_bytes: int | None = None) -> Any:
    """Load a `.keras` model file with `safe_mode=True` (see `load_keras_model`)."""
    name, data = read_path(path, "model file", max_bytes=max_bytes)
    return load_keras_model(data, name, max_bytes=max_bytes)


# --------------------------------------------------------------------------------------------
# Keras models
# --------------------------------------------------------------------------------------------


def _not_keras_zip(filename: str) -> InputError:
    return InputError(
        f"{filename!r} is not a valid .keras file (a .keras file is a zip archive; this one is "
        "empty or corrupt). Save the model again with model.save('model.keras')."
    )


def check_keras_archive(
    source: bytes | str | os.PathLike, max_bytes: int | None = None, *, filename: str | None = None
) -> int:
    """Check a `.keras` archive before Keras opens it: a zip whose members fit in `max_bytes`.

    A `.keras` file is a zip archive (`config.json`, `metadata.json`, `model.weights.h5`); Keras
    decompresses its members while loading, so a small crafted file could expand to any size. This
    reads only the zip directory: the members' declared uncompressed sizes (which `zipfile` enforces
    while decompressing) must add up to at most the limit.

    Args:
        source: the archive's bytes, or its path.
        max_bytes: the limit in bytes (default: `max_bytes_limit()`, 2 GiB or `SHIFTKIT_MAX_GIB`).
        filename: name used in messages (default: the path's base name, or "model.keras").

    Returns:
        The total uncompressed size of the members, in bytes.

    Raises:
        InputError: not a zip archive, or larger than the limit once decompressed.

    Example:
        >>> check_keras_archive("model.keras")                      # doctest: +SKIP
        20931
    """
    limit = max_bytes_limit(max_bytes)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = filename or "model.keras"
        stream: Any = io.BytesIO(source)
        if not source:
            raise _not_keras_zip(name)
    else:
        path = os.fspath(source)
        name = filename or os.path.basename(path)
        if not os.path.isfile(path):
            raise InputError(f"The model file {path!r} does not exist (or is not a file). Check the path.")
        size = os.path.getsize(path)
        if size > limit:
            raise _too_big("model file", name, f"the file is {_fmt_bytes(size)}", size, limit)
        stream = path
    try:
        with zipfile.ZipFile(stream) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise _not_keras_zip(name) from None
    total = sum(int(i.file_size) for i in infos)
    if total > limit:
        biggest = max(infos, key=lambda i: i.file_size)
        raise _too_big("model file", name, f"{len(infos)} archive members expand to {_fmt_bytes(total)}, "
                       f"{biggest.filename!r} alone to {_fmt_bytes(biggest.file_size)}", total, limit)
    return total


def load_keras_model(data: bytes, filename: str = "model.keras", *, max_bytes: int | None = None) -> Any:
    """Load an uploaded `.keras` model with `keras.saving.load_model(path, safe_mode=True)`.

    The archive is checked first (`check_keras_archive`: a zip within `max_bytes` once
    decompressed); the bytes are then written to a temporary file (removed afterwards). Custom
    layers must be registered (`keras.saving.register_keras_serializable`) in the running process;
    lambdas are refused by safe mode.

    Args:
        data: the file's bytes.
        filename: its name (must end in .keras).
        max_bytes: limit on the archive's decompressed size (`max_bytes_limit`).

    Raises:
        InputError: wrong extension, not a zip archive, too large once decompressed, a file Keras
            cannot load, or no model.
    """
    import keras

    if _ext(filename) != ".keras":
        raise InputError(
            f"{filename!r} is not a .keras file. Save the model with model.save('model.keras') "
            "(the Keras 3 format; .h5 and SavedModel folders are not accepted)."
        )
    check_keras_archive(data, max_bytes, filename=filename)
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
