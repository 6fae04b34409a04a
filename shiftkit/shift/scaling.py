"""Input-space scaling before kernel tests: one standardiser for every input-space MMD in shiftkit.

A Gaussian kernel on raw inputs is dominated by whichever feature has the largest units, so input
space is standardised first. Dividing by each feature's standard deviation, however, turns a
near-constant feature (an image's border pixel, std 0.003 on digits) into one that dominates the
kernel: a change no user would care about (a 1% thickening of the strokes) becomes a "shift".

What `Standardizer` does:
    - **Tabular inputs** `(n, d)`: each feature is centred and divided by its standard deviation,
      floored at `floor` times the feature's range (max - min). A feature whose spread sits in a
      few rare values (std well under a tenth of its range) is scaled by its range instead, so it
      cannot dominate; ordinary features (std is about a sixth to a tenth of the range for
      n <= 10^6 normal draws) keep their std. Features of very different units (millimetres next
      to square millimetres) stay comparable, which a floor relative to one overall scale would
      not allow. A constant feature gets scale 1 (it contributes nothing).
    - **Images and sequences** `(n, ..., c)` (more than one feature axis): every position is
      centred, and each channel (last axis) is divided by one scale pooled over all positions of
      that channel, as image models normalise inputs: pixels of one channel share their units, so
      a border pixel is measured on the image's scale, not its own.

`fit` on the pooled sample (source and target together) makes the transform a symmetric function of
the pooled data, so a permutation test run after it keeps its exact level; `check` fits it on the
reference alone so that every later target is measured on the same scale.

How the floor was chosen (benchmarks/bench_scaling.py, figures in benchmarks/RESULTS.md; chosen on
digits, confirmed on the breast-cancer hospitals):
    - On digits given as images `(n, 8, 8, 1)` (the pooled path) a 1% stroke thickening is flagged
      about as often as nothing at all (7% vs 7% of 200-row windows at alpha = 0.05) while blur,
      pixel noise and a 10 degree rotation are flagged in every window. Pass grayscale images with
      their channel axis: a 3-D array `(n, h, w)` is read as a sequence with `w` channels.
    - On digits flattened to a table `(n, 64)`, no floor relative to a feature's own range helps
      (the thickening is flagged in 100% of windows for every floor from 0 to 1 x range): in the
      pooled sample a pixel whose only variation is the thickening has a range of 0.16, so its
      variation is unit-sized under any such floor.
    - A floor relative to the data's overall scale (`overall_floor` x the median feature std) does
      fix flattened digits (0.3: 7%), but costs power on tabular data whose features have different
      units: a covariate shift selected on a small-unit breast-cancer feature ("smoothness error")
      is detected in 29% instead of 63% of draws. It is therefore off by default
      (`DEFAULT_OVERALL_FLOOR = 0`); use it for tables whose columns share one unit (flattened
      images, spectra).
    - Range floors of 0.05 and 0.1 detect the hospitals' covariate shifts as often as no floor
      does (0.3 and above lose power on the small-unit shifts: 0.63 -> 0.42), and every scaling is
      calibrated on hospitals_no_shift: `DEFAULT_RANGE_FLOOR` stays 0.1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Standardizer", "standardize", "DEFAULT_RANGE_FLOOR", "DEFAULT_OVERALL_FLOOR"]

#: Floor of a tabular feature's scale, as a fraction of its range (max - min).
DEFAULT_RANGE_FLOOR = 0.1
#: Floor of a tabular feature's scale, as a fraction of the median standard deviation of the
#: non-constant features (the data's overall scale). Off: it costs power on mixed-unit tables
#: (see the module docstring); for tables whose columns share one unit, 0.3 was measured to work.
DEFAULT_OVERALL_FLOOR = 0.0


class Standardizer:
    """Centre and scale inputs for input-space kernel tests (see the module docstring).

    Args:
        floor: a tabular feature's scale is at least `floor * (max - min)` of that feature.
        overall_floor: and at least `overall_floor` x the median std of the non-constant features
            (0: off; for tables whose columns share one unit, such as flattened images).

    Attributes (after `fit`):
        mean_: per-feature mean, shape `(d,)` of the flattened input.
        scale_: per-feature divisor, shape `(d,)`, all > 0.
        shape_: per-sample shape seen in `fit`.
        how_: one sentence on what was done (for reports).

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(100, 3))
        >>> Standardizer().fit(x).transform(x).std(axis=0).round(2).tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, floor: float = DEFAULT_RANGE_FLOOR, overall_floor: float = DEFAULT_OVERALL_FLOOR):
        self.floor = float(floor)
        self.overall_floor = float(overall_floor)

    def fit(self, x: np.ndarray) -> "Standardizer":
        x = np.asarray(x, dtype=np.float64)
        self.shape_ = tuple(x.shape[1:])
        flat = x.reshape(len(x), -1)
        self.mean_ = flat.mean(axis=0)
        if len(self.shape_) >= 2:
            channels = self.shape_[-1]
            centred = (flat - self.mean_).reshape(len(x), -1, channels)
            per_channel = np.sqrt(np.mean(centred**2, axis=(0, 1)))
            per_channel = np.where(per_channel > 0, per_channel, 1.0)
            self.scale_ = np.broadcast_to(per_channel, centred.shape[1:]).reshape(-1).copy()
            self.how_ = (
                f"centred per position, scaled per channel by one pooled scale ({channels} channel(s))"
            )
        else:
            self.fit_moments(flat.mean(axis=0), flat.std(axis=0), flat.min(axis=0), flat.max(axis=0))
        return self

    def fit_moments(self, mean: np.ndarray, std: np.ndarray, minimum: np.ndarray,
                    maximum: np.ndarray) -> "Standardizer":
        """Fit the tabular rule from per-feature summaries: what `fit` gives on rows with these figures.

        For statistics merged over chunks or partitions (`shiftkit.shift.streaming`), which never
        hold every row at once.

        Args:
            mean, std: per-feature mean and standard deviation (ddof 0, as `numpy.std`).
            minimum, maximum: per-feature minimum and maximum.

        Returns:
            self, fitted for tables (`shape_ == (d,)`).
        """
        mean, std, minimum, maximum = (np.asarray(a, dtype=np.float64).reshape(-1)
                                       for a in (mean, std, minimum, maximum))
        self.shape_ = (len(mean),)
        self.mean_ = mean.copy()
        span = maximum - minimum
        positive = std[std > 0]
        overall = float(np.median(positive)) if positive.size else 0.0
        floor = np.maximum(self.floor * span, self.overall_floor * overall)
        scale = np.maximum(std, floor)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        n_floored = int(np.sum(std < floor))
        self.how_ = (
            f"centred and scaled per feature by its std, floored at {self.floor:g} x its range"
            + (f" and {self.overall_floor:g} x the median feature std" if self.overall_floor else "")
            + f" ({n_floored} of {len(mean)} feature(s) floored)"
        )
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Flattened, standardised copy `(n, d)` of `x`."""
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return (flat - self.mean_) / self.scale_

    def get_config(self) -> dict[str, Any]:
        return {"floor": self.floor, "overall_floor": self.overall_floor}


def standardize(
    x_source: np.ndarray,
    x_target: np.ndarray,
    *,
    floor: float = DEFAULT_RANGE_FLOOR,
    overall_floor: float = DEFAULT_OVERALL_FLOOR,
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise two samples with a `Standardizer` fitted on both pooled (permutation-invariant).

    Args:
        x_source, x_target: the two samples, same per-sample shape.
        floor: see `Standardizer`.
        overall_floor: see `Standardizer`.

    Returns:
        `(a, b)`: flattened, standardised source and target, shapes `(n, d)` and `(m, d)`.
    """
    pooled = np.concatenate([np.asarray(x_source), np.asarray(x_target)], axis=0)
    scaler = Standardizer(floor, overall_floor).fit(pooled)
    return scaler.transform(x_source), scaler.transform(x_target)
