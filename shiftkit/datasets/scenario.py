"""The `Scenario` type of the built-in scenarios, and helpers the scenario builders share."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = [
    "Scenario",
    "SHIFT_KINDS",
    "stratified_halves",
    "class_proportions",
]


SHIFT_KINDS: tuple[str, ...] = ("none", "covariate", "label", "concept", "covariate+label")
"""Values of `Scenario.shift_kind`."""


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Scenario:
    """A source and a target domain with a known shift.

    The arrays are plain numpy arrays; the dataclass is frozen (fields cannot be reassigned) but
    the arrays themselves are not copied on access, so copy them before changing them in place.

    Attributes:
        name: the scenario's name, one of `SCENARIOS`.
        x_source: source inputs, shape `(n_source, ...)`, float.
        y_source: source class indices, shape `(n_source,)`, int64.
        x_target: target inputs, shape `(n_target, ...)`, same feature shape as `x_source`.
        y_target: target class indices, shape `(n_target,)`, int64.
        shift_kind: the kind of shift truly present, one of `SHIFT_KINDS`.
        description: what the domains are, what shifted and how, and what shiftkit should find.
        class_names: one name per class index.
        feature_names: one name per column for tabular data, None for images.
        truth: known facts of the construction (class proportions, the selection rule, parameters),
            plain Python numbers and strings only, so that it serialises to JSON.
        source_index: row of the original dataset behind each source sample.
        target_index: row of the original dataset behind each target sample.

    Example:
        >>> s = hospitals_no_shift(seed=1)
        >>> sorted(s.to_dict())[:3]
        ['class_names', 'description', 'feature_names']
    """

    name: str
    x_source: np.ndarray
    y_source: np.ndarray
    x_target: np.ndarray
    y_target: np.ndarray
    shift_kind: str
    description: str
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] | None = None
    truth: dict[str, Any] = dataclasses.field(default_factory=dict)
    source_index: np.ndarray | None = None
    target_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.shift_kind not in SHIFT_KINDS:
            raise ValueError(
                f"shift_kind must be one of: {', '.join(SHIFT_KINDS)}. "
                f"Received: shift_kind={self.shift_kind!r}."
            )
        if self.x_source.shape[1:] != self.x_target.shape[1:]:
            raise ValueError(
                "x_source and x_target must have the same feature shape; got "
                f"{self.x_source.shape[1:]} and {self.x_target.shape[1:]}."
            )
        for x, y, side in ((self.x_source, self.y_source, "source"), (self.x_target, self.y_target, "target")):
            if y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y_{side} must have shape ({x.shape[0]},) to match x_{side}; got {y.shape}."
                )

    @property
    def n_classes(self) -> int:
        """The number of classes, `len(class_names)`."""
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        """Describe the scenario without its arrays.

        Returns:
            A JSON-serialisable dict with the name, shift kind, description, shapes, dtypes,
            class and feature names, and the truth.

        Example:
            >>> import json
            >>> _ = json.dumps(hospitals_no_shift().to_dict())
        """
        return {
            "name": self.name,
            "shift_kind": self.shift_kind,
            "description": self.description,
            "n_source": int(self.x_source.shape[0]),
            "n_target": int(self.x_target.shape[0]),
            "input_shape": [int(d) for d in self.x_source.shape[1:]],
            "x_source_shape": [int(d) for d in self.x_source.shape],
            "x_target_shape": [int(d) for d in self.x_target.shape],
            "x_dtype": str(self.x_source.dtype),
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
            "feature_names": None if self.feature_names is None else list(self.feature_names),
            "truth": dict(self.truth),
        }

    def summary(self) -> str:
        """Return a short multi-line text summary (shapes, kind, class proportions, description).

        Example:
            >>> print(hospitals_no_shift().summary().splitlines()[0])
            Scenario 'hospitals_no_shift' (shift: none)
        """

        def proportions(y: np.ndarray) -> str:
            counts = np.bincount(y, minlength=self.n_classes) / max(len(y), 1)
            return ", ".join(f"{c} {p:.1%}" for c, p in zip(self.class_names, counts))

        return "\n".join(
            [
                f"Scenario {self.name!r} (shift: {self.shift_kind})",
                f"  source: x {self.x_source.shape}, classes: {proportions(self.y_source)}",
                f"  target: x {self.x_target.shape}, classes: {proportions(self.y_target)}",
                f"  {self.description}",
            ]
        )

    def __repr__(self) -> str:
        return (
            f"Scenario(name={self.name!r}, shift_kind={self.shift_kind!r}, "
            f"x_source={self.x_source.shape}, x_target={self.x_target.shape}, "
            f"n_classes={self.n_classes})"
        )


def stratified_halves(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into two halves with the same class proportions (up to one per class)."""
    first, second = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        half = (idx.size + int(rng.integers(2))) // 2  # odd classes: the extra one goes either way
        first.append(idx[:half])
        second.append(idx[half:])
    return rng.permutation(np.concatenate(first)), rng.permutation(np.concatenate(second))


def class_proportions(y: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    """The proportion of each class (by name) among the class codes `y`."""
    counts = np.bincount(y, minlength=len(class_names))
    return {c: float(n) / max(len(y), 1) for c, n in zip(class_names, counts)}
