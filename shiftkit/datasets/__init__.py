"""Built-in, offline demo scenarios with a known truth.

Each scenario is a source domain and a target domain built from a dataset that ships with
scikit-learn (no download), with a shift whose kind and size are known because we made it. They
exist so that shiftkit's measurements, adapters and reports can be tried, taught and tested against
an answer:

- `hospitals_covariate`: breast-cancer patients split between two hospitals by a selection on
  tumour size (covariate shift).
- `hospitals_label_shift`: the same patients, the target hospital resampled to a higher malignant
  prevalence with the class-conditional distributions unchanged (label shift).
- `hospitals_no_shift`: a stratified random split, the control in which no shift should be found.
- `digits_corrupted`: 8x8 handwritten digits, the target half seen through a noisy, defocused or
  miscalibrated scanner (covariate shift on images).

Every scenario is deterministic for a given seed, and different seeds give different splits.

Modules: `scenario` (the `Scenario` type), `hospitals`, `digits`, `synthetic` (the builders); every
name below is importable from `shiftkit.datasets` itself.

Example:
    >>> from shiftkit.datasets import load_scenario
    >>> scenario = load_scenario("hospitals_covariate", seed=0)
    >>> scenario.shift_kind
    'covariate'
    >>> scenario.x_source.shape[1]
    30
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from shiftkit._validation import check_option
from shiftkit.datasets.digits import CORRUPTIONS, digits_corrupted
from shiftkit.datasets.hospitals import hospitals_covariate, hospitals_label_shift, hospitals_no_shift
from shiftkit.datasets.scenario import SHIFT_KINDS, Scenario
from shiftkit.datasets.synthetic import SYNTHETIC_KINDS, synthetic_shift


__all__ = [
    "Scenario",
    "SCENARIOS",
    "CORRUPTIONS",
    "SHIFT_KINDS",
    "load_scenario",
    "hospitals_covariate",
    "hospitals_label_shift",
    "hospitals_no_shift",
    "digits_corrupted",
    "synthetic_shift",
    "SYNTHETIC_KINDS",
]


SCENARIOS: tuple[str, ...] = (
    "hospitals_covariate",
    "hospitals_label_shift",
    "hospitals_no_shift",
    "digits_corrupted",
)
"""Names accepted by `load_scenario`."""


_BUILDERS: dict[str, Callable[..., Scenario]] = {
    "hospitals_covariate": hospitals_covariate,
    "hospitals_label_shift": hospitals_label_shift,
    "hospitals_no_shift": hospitals_no_shift,
    "digits_corrupted": digits_corrupted,
}


def load_scenario(name: str, *, seed: int | None = 0, **kwargs: Any) -> Scenario:
    """Build a built-in scenario by name.

    Args:
        name: one of `SCENARIOS` (case-insensitive).
        seed: seed of every random step; None for a fresh one each call.
        **kwargs: options of that scenario's function, e.g. `strength` for
            "hospitals_covariate", `target_prevalence` for "hospitals_label_shift",
            `corruption` and `severity` for "digits_corrupted".

    Returns:
        The `Scenario`.

    Raises:
        ValueError: unknown `name` (the message lists the options), or a bad option value.
        TypeError: bad `seed`, or an option the scenario does not take (the message lists those
            it does).

    Example:
        >>> s = load_scenario("digits_corrupted", seed=1, corruption="contrast")
        >>> s.truth["corruption"]
        'contrast'
    """
    name = check_option(name, "scenario", SCENARIOS)
    builder = _BUILDERS[name]
    accepted = [p for p in inspect.signature(builder).parameters if p != "seed"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"Scenario {name!r} does not take {', '.join(map(repr, unknown))}. "
            f"Options it takes: {', '.join(accepted) if accepted else 'none besides seed'}."
        )
    return builder(seed=seed, **kwargs)
