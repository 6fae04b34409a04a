"""Check settings as a versioned file: named criteria, thresholds, pass / warn / fail, presets.

A team keeps its gate in the repository next to its CI workflow (`shiftkit check --config check.toml`):

```toml
version = 1
preset = "tabular"          # optional: start from a preset, then override
alpha = 0.01                # family-wise level of the check's tests (fail)
max_label_shift = 0.1       # total variation of class proportions (fail, with a significant test)
max_imbalance_ratio = 10    # target max/min class ratio (fail)
max_drifted_share = 0.3     # share of features whose own test (BH-corrected) found drift (fail)
min_estimated_accuracy = 0.8
bbsd = true
fail_on = "fail"            # or "warn": any warning fails the check too

[warn]                      # warn before failing (optional; same units as the criterion's value)
p_value = 0.05              # an MMD / BBSD test with p <= 0.05 (but above its failing level)
label_shift = 0.05
imbalance_ratio = 5
drifted_share = 0.1
estimated_accuracy = 0.9
```

Values given on the command line override the file; the file overrides the preset; the preset
overrides shiftkit's defaults (`check_shift`'s). Unknown keys are errors that list the known ones.

Presets (chosen as conventions, not tuned on any data): "default" (shiftkit's defaults), "tabular"
(per-feature drift share gated at 0.3, imbalance at 10), "images" (BBSD on, no per-feature rule),
"strict" (alpha 0.05, label shift 0.05, imbalance 5, drifted share 0.1, BBSD on, warnings fail).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import check_alpha, check_option, check_real

__all__ = ["CheckConfig", "PRESETS", "CONFIG_VERSION", "WARN_KEYS"]

#: Version of the config file format this shiftkit reads.
CONFIG_VERSION = 1
#: Warning thresholds a config may set, and what each one applies to.
WARN_KEYS = {
    "p_value": "MMD and BBSD tests: warn when p <= this (and the test did not fail)",
    "label_shift": "label shift: warn when the total variation > this",
    "imbalance_ratio": "class imbalance: warn when the max/min ratio > this",
    "drifted_share": "drifted features: warn when the share > this",
    "estimated_accuracy": "target accuracy: warn when < this",
}
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "tabular": {"max_imbalance_ratio": 10.0, "max_drifted_share": 0.3,
                "warn": {"p_value": 0.05, "drifted_share": 0.1}},
    "images": {"bbsd": True, "warn": {"p_value": 0.05}},
    "strict": {"alpha": 0.05, "max_label_shift": 0.05, "max_imbalance_ratio": 5.0, "max_drifted_share": 0.1,
               "bbsd": True, "fail_on": "warn", "warn": {"p_value": 0.1, "label_shift": 0.025}},
}


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    """The check's settings: thresholds that fail, thresholds that warn, and what fails the check.

    Attributes:
        alpha, max_label_shift, max_imbalance_ratio, bbsd, min_estimated_accuracy: as `check_shift`'s
            arguments (the same defaults).
        max_drifted_share: fail when more than this share of the features drifted by their own
            tests (tabular data; None: no such rule).
        warn: warning thresholds by `WARN_KEYS` name.
        fail_on: "fail" (only failed criteria fail the check) or "warn" (warnings fail it too).
        preset: the preset the settings started from (None: shiftkit's defaults).
        version: the config format version.
    """

    alpha: float = 0.01
    max_label_shift: float = 0.1
    max_imbalance_ratio: float | None = None
    bbsd: bool = False
    min_estimated_accuracy: float | None = None
    max_drifted_share: float | None = None
    warn: dict[str, float] = dataclasses.field(default_factory=dict)
    fail_on: str = "fail"
    preset: str | None = None
    version: int = CONFIG_VERSION

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        check_real(self.max_label_shift, "max_label_shift", low=0, high=1, example=0.1)
        if self.max_imbalance_ratio is not None:
            check_real(self.max_imbalance_ratio, "max_imbalance_ratio", low=1, allow_inf=True, example=10)
        if not isinstance(self.bbsd, bool):
            raise TypeError(f"bbsd must be true or false; got {self.bbsd!r}.")
        if self.min_estimated_accuracy is not None:
            check_real(self.min_estimated_accuracy, "min_estimated_accuracy", low=0, high=1, example=0.8)
        if self.max_drifted_share is not None:
            check_real(self.max_drifted_share, "max_drifted_share", low=0, high=1, example=0.3)
        check_option(self.fail_on, "fail_on", ("fail", "warn"))
        unknown = sorted(set(self.warn) - set(WARN_KEYS))
        if unknown:
            raise ValueError(f"[warn] has unknown key(s) {unknown}; known: {sorted(WARN_KEYS)}.")
        for key, value in self.warn.items():
            high = None if key == "imbalance_ratio" else 1
            check_real(value, f"warn.{key}", low=0, high=high, example=0.05)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "the config") -> CheckConfig:
        """Settings from a mapping (a parsed TOML file): preset first, then the mapping's values.

        Raises:
            ValueError: an unknown key, preset or version; a value out of range.
        """
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ValueError(f"{source} has version {version!r}; this shiftkit reads version {CONFIG_VERSION}.")
        preset = data.pop("preset", None)
        base: dict[str, Any] = {}
        if preset is not None:
            check_option(preset, "preset", tuple(PRESETS))
            base = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[preset].items()}
        fields = {f.name for f in dataclasses.fields(cls)} - {"preset", "version"}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"{source} has unknown key(s) {unknown}; known: {sorted(fields | {'preset', 'version'})}.")
        warn = dict(base.pop("warn", {}))
        given = data.pop("warn", {}) or {}
        if not isinstance(given, dict):
            raise ValueError(
                f"{source} sets warn = {given!r}, but warn is a [warn] table of warning thresholds by name "
                f"({', '.join(WARN_KEYS)}): write a line [warn] and under it p_value = {given!r} (a table goes after the "
                "top-level keys, at the end of the file).")
        warn.update(given)
        base.update(data)
        return cls(**base, warn=warn, preset=preset)

    @classmethod
    def load(cls, path: str | os.PathLike, *, preset: str | None = None) -> CheckConfig:
        """Read a TOML config file (`tomllib`; no code is executed).

        `preset`, when given, replaces the file's own `preset` (the file's values still override it).

        Raises:
            ValueError: the file is not valid TOML, or its settings are not valid (the message says which).
            OSError: the file cannot be read.
        """
        with open(path, "rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"The config {os.fspath(path)!r} is not valid TOML: {exc}.") from None
        if preset is not None:
            data["preset"] = preset
        return cls.from_dict(data, source=f"The config {os.fspath(path)!r}")

    def with_overrides(self, **values: Any) -> CheckConfig:
        """A copy with the values that are not None replaced (command-line flags over the file)."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})

    def check_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `check_shift` these settings fix."""
        return {"alpha": self.alpha, "max_label_shift": self.max_label_shift,
                "max_imbalance_ratio": self.max_imbalance_ratio, "bbsd": self.bbsd,
                "min_estimated_accuracy": self.min_estimated_accuracy,
                "max_drifted_share": self.max_drifted_share, "warn": dict(self.warn), "fail_on": self.fail_on}

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)
