"""Turning result objects into strict-JSON-ready plain Python, in one place."""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

__all__ = ["jsonable", "dataclass_to_dict"]


def jsonable(value: Any) -> Any:
    """Convert numpy values, tuples, nested results and non-finite floats to plain Python.

    Objects with a `to_dict()` method are converted with it; NaN and infinity become `None`, so
    `json.dumps(jsonable(x), allow_nan=False)` always works.
    """
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def dataclass_to_dict(obj: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """`jsonable` applied to each field of a dataclass instance."""
    return {
        f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in exclude
    }
