"""What every loader of `shiftkit.files` shares: `InputError`, the size limit, reading a path, messages."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from shiftkit._validation import check_real, encode_labels

__all__ = [
    "InputError",
    "InputNote",
    "MAX_BYTES",
    "MAX_BYTES_ENV",
    "max_bytes_limit",
    "bytes_from_gib",
    "read_path",
    "folder_message",
    "fmt_bytes",
    "too_big",
    "listed",
    "extension",
    "encode_or_explain",
]


class InputError(ValueError):
    """A problem with the user's input (file, column, setting), with a message that says what to fix."""


class InputNote(UserWarning):
    """Something done to the user's input that they should know of (e.g. a row-index column dropped).

    Issued with `warnings.warn`; the CLI prints each one once on stderr as "shiftkit: note: ...".
    """


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


def fmt_bytes(n: float) -> str:
    """A size in bytes for messages: "1.5 GiB", "20 MiB", "512 bytes"."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def too_big(role: str, filename: str, what: str, size: int, limit: int) -> InputError:
    """The error for a file that would take `size` bytes (`what` says why) over the `limit`."""
    return InputError(
        f"The {role} {filename!r} would take {fmt_bytes(size)} in memory ({what}), more than the limit "
        f"of {fmt_bytes(limit)}; it was not read. {_HOW_TO_RAISE}"
    )


def read_path(path: str | os.PathLike, role: str = "file", *, max_bytes: int | None = None) -> tuple[str, bytes]:
    """`(file name, bytes)` of a file on disk, with a clear error for a missing, unreadable or too large file.

    Args:
        path: the file.
        role: what the file is, for messages.
        max_bytes: largest file read (`max_bytes_limit`); checked before reading.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(folder_message(role, path))
    if not os.path.isfile(path):
        raise InputError(f"The {role} {path!r} does not exist (or is not a file). Check the path.")
    limit = max_bytes_limit(max_bytes)
    size = os.path.getsize(path)
    if size > limit:
        raise too_big(role, path, f"the file is {fmt_bytes(size)}", size, limit)
    try:
        with open(path, "rb") as fh:
            return os.path.basename(path), fh.read()
    except OSError as exc:
        raise InputError(f"The {role} {path!r} could not be read: {exc.strerror or exc}.") from None


def folder_message(role: str, path: str) -> str:
    """The error for a folder given where one file is read: what reads folders instead."""
    return (f"The {role} {path!r} is a folder, not a file. Give one file; a folder of Parquet (or CSV) parts is read "
            "by `shiftkit check` / `shiftkit snapshot` with --engine dask (check: against a snapshot as --reference), "
            "and a folder of batch files by `shiftkit monitor`.")


def listed(items: Sequence[Any]) -> str:
    """Items quoted and comma-separated for a message, the first dozen and a count of the rest."""
    items = [str(i) for i in items]
    more = f" (and {len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(repr(i) for i in items[:_MAX_LISTED]) + more


def extension(filename: str) -> str:
    """A file name's extension in lower case, with its dot (".csv"), or "" without one."""
    return os.path.splitext(str(filename).lower())[1]


def encode_or_explain(
    labels: Sequence[Any], names: Sequence[str], *, n_outputs: int | None = None, where: str = ""
) -> Any:
    """`encode_labels` of several label arrays, its errors as `InputError` saying where they came from."""
    try:
        return encode_labels(*labels, names=list(names), n_outputs=n_outputs)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        raise InputError(where + (text[:1].upper() + text[1:] if not where else text)) from None
