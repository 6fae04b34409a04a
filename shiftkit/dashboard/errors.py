"""Errors the dashboard shows to its user, and turning any exception into a short message."""

from __future__ import annotations

__all__ = ["DashboardError", "user_message"]


from shiftkit.files import InputError

#: The dashboard's name for `shiftkit.files.InputError` (one class: loaders and pages raise the same).
DashboardError = InputError


def user_message(exc: BaseException, *, limit: int = 600) -> str:
    """A short, readable message for `exc`: no traceback, no TensorFlow stack dump.

    Keeps the first paragraph of the message (TensorFlow errors append pages of graph context after
    a blank line), truncated to `limit` characters, prefixed with the exception type for errors that
    are not shiftkit's own validation errors.
    """
    text = str(exc).strip() or type(exc).__name__
    text = text.split("\n\n", 1)[0]
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("File \"", "Traceback"))]
    text = " ".join(ln.strip() for ln in lines[:6]).strip()
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    if not isinstance(exc, (DashboardError, ValueError, TypeError)):
        text = f"{type(exc).__name__}: {text}"
    return text
