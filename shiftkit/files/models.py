"""Keras models: `.keras` archives checked for size, then loaded with `safe_mode=True`."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from typing import Any

import keras

from shiftkit._keras import n_classes as n_classes_of
from shiftkit._keras import require_model
from shiftkit.files.common import InputError, extension, fmt_bytes, max_bytes_limit, read_path, too_big

__all__ = [
    "check_keras_archive",
    "load_keras_model",
    "load_model_path",
    "model_n_classes",
]


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
            raise too_big("model file", name, f"the file is {fmt_bytes(size)}", size, limit)
        stream = path
    try:
        with zipfile.ZipFile(stream) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise _not_keras_zip(name) from None
    total = sum(int(i.file_size) for i in infos)
    if total > limit:
        biggest = max(infos, key=lambda i: i.file_size)
        raise too_big("model file", name, f"{len(infos)} archive members expand to {fmt_bytes(total)}, "
                       f"{biggest.filename!r} alone to {fmt_bytes(biggest.file_size)}", total, limit)
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
    if extension(filename) != ".keras":
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
    try:
        return require_model(model, f"The model in {filename!r}")
    except TypeError:
        raise InputError(f"{filename!r} holds a {type(model).__name__}, not a keras.Model.") from None
    except ValueError:
        raise InputError(
            f"The model in {filename!r} has no defined inputs/outputs (an unbuilt Sequential model?). "
            "Start it with keras.Input(shape=...) and save it again."
        ) from None


def load_model_path(path: str | os.PathLike, *, max_bytes: int | None = None) -> Any:
    """Load a `.keras` model file with `safe_mode=True` (see `load_keras_model`)."""
    name, data = read_path(path, "model file", max_bytes=max_bytes)
    return load_keras_model(data, name, max_bytes=max_bytes)


def model_n_classes(model: Any) -> int:
    """The number of classes a Keras classifier predicts: its output width (2 for a single unit)."""
    return n_classes_of(model) or 2
