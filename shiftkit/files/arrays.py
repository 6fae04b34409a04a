"""Arrays: `.npz` / `.npy` files, their sizes checked from the headers before numpy reads them."""

from __future__ import annotations

import io
import math
import os
import zipfile
from typing import Any

import numpy as np

from shiftkit.files.common import (
    InputError,
    encode_or_explain,
    extension,
    fmt_bytes,
    listed,
    max_bytes_limit,
    read_path,
    too_big,
)

#: The largest float32 value: larger inputs would overflow to infinity (shiftkit computes in float32).
FLOAT32_MAX = float(np.finfo(np.float32).max)

__all__ = [
    "check_array_file",
    "load_arrays",
    "load_npz",
]


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
                            raise too_big(role, filename, what, nbytes, limit)
                        if nbytes > info.file_size - header:
                            raise InputError(
                                f"The {role} {filename!r} is corrupt: the header of {what} announces "
                                f"{fmt_bytes(nbytes)} but the member holds {fmt_bytes(info.file_size - header)}. "
                                "Save it again with numpy.savez(path, x=inputs, y=labels)."
                            )
                if info.file_size > limit:
                    raise too_big(role, filename, f"member {info.filename!r} expands to {fmt_bytes(info.file_size)}",
                                   info.file_size, limit)
            total = sum(info.file_size for info in infos)
            if total > limit:
                raise too_big(role, filename, f"{len(infos)} members expand to {fmt_bytes(total)}", total, limit)
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
        raise too_big(role, filename, what, nbytes, limit)
    if nbytes > len(data) - fp.tell():
        raise InputError(
            f"The {role} {filename!r} is truncated: its header announces {what} ({fmt_bytes(nbytes)}) but "
            f"the file holds {fmt_bytes(len(data) - fp.tell())} of data. Save it again with numpy.save(path, x)."
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


_PICKLES = {
    ".npz": "holds object arrays (Python pickles), which are not loaded for safety. Save plain numeric arrays: "
            "numpy.savez(path, x=x.astype('float32'), y=y.astype('int64')).",
    ".npy": "holds an object array (a Python pickle), which is not loaded for safety. Save a plain numeric "
            "array: numpy.save(path, x.astype('float32')).",
}


def _load_error(exc: ValueError, filename: str, role: str, kind: str) -> InputError:
    """numpy's ValueError while loading a `kind` (".npz" / ".npy") file: object (pickled) arrays, or a bad file."""
    if "pickle" in str(exc).lower() or "object" in str(exc).lower():
        return InputError(f"The {role} {filename!r} {_PICKLES[kind]}")
    return InputError(f"The {role} {filename!r} is not a valid {kind} file: {exc}.")


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
                    f"The {role} {filename!r} has no array named 'x' (it has: {listed(keys) or 'none'}). "
                    "Save it with numpy.savez(path, x=inputs, y=labels)."
                )
            x = npz["x"]
            y = npz["y"] if "y" in keys else None
    except InputError:
        raise
    except ValueError as exc:
        raise _load_error(exc, filename, role, ".npz") from None
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
    if x.dtype.kind == "c":
        raise InputError(
            f"The array 'x' of the {role} {filename!r} has complex values ({x.dtype}); shiftkit measures real "
            "numbers. Save real features instead: np.concatenate([x.real, x.imag], axis=1), or np.abs(x)."
        )
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InputError(f"The array 'x' of the {role} {filename!r} has dtype {x.dtype}; it must be numeric.")
    if x.ndim < 2:
        raise InputError(
            f"The array 'x' of the {role} {filename!r} has shape {x.shape}; it needs one row per sample, "
            "shape (n_samples, n_features) or (n_samples, height, width, channels)."
        )
    if x.dtype.kind == "f" and x.dtype.itemsize > 4:
        flat = x.reshape(len(x), -1)
        with np.errstate(invalid="ignore"):
            big = np.isfinite(flat) & (np.abs(flat) > FLOAT32_MAX)  # inf and NaN are reported as such below
        if big.any():
            row = int(np.flatnonzero(big.any(axis=1))[0])
            raise InputError(
                f"The array 'x' of the {role} {filename!r} has {int(big.sum())} value(s) beyond the float32 range "
                f"(|x| > {FLOAT32_MAX:.3g}; e.g. {flat[row][big[row]][0]:.4g} in row {row}), which overflow to "
                "infinity: shiftkit computes in float32. Rescale those features (e.g. divide by a power of ten) "
                "or drop those samples."
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
        encode_or_explain((y,), (f"the array 'y' of the {role} {filename!r}",))  # validates the values
    return x, y, n_dropped


def _read_npy(data: bytes, filename: str, role: str, max_bytes: int | None = None) -> np.ndarray:
    """The raw array of `.npy` bytes, read with `allow_pickle=False` after a size check."""
    if not data or not data.startswith(b"\x93NUMPY"):
        raise InputError(f"The {role} {filename!r} is not a valid .npy file. Save it with numpy.save(path, x).")
    _check_npy_size(data, filename, role, max_bytes_limit(max_bytes))
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise _load_error(exc, filename, role, ".npy") from None


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
    if extension(filename) == ".npy":
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
