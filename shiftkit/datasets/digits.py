"""Handwritten digits seen through a worse scanner: covariate shift on images."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_digits

from shiftkit._validation import check_option, check_positive_int, check_seed
from shiftkit.datasets.scenario import Scenario, class_proportions, stratified_halves

__all__ = [
    "CORRUPTIONS",
    "digits_corrupted",
]


CORRUPTIONS: tuple[str, ...] = ("noise", "blur", "contrast", "mixed")
"""Corruptions accepted by `digits_corrupted`."""


# Corruption strength per severity level 1..5 (the ImageNet-C convention of five levels).
_NOISE_SIGMA = (0.05, 0.10, 0.15, 0.20, 0.30)  # std of additive Gaussian noise, pixels in [0, 1]
_BLUR_SIGMA = (0.4, 0.6, 0.8, 1.0, 1.3)  # Gaussian blur std, in pixels of the 8x8 image
_CONTRAST_FACTOR = (0.85, 0.70, 0.55, 0.45, 0.35)  # x -> factor * x + offset
_CONTRAST_OFFSET = (0.05, 0.10, 0.15, 0.20, 0.25)  # factor + offset <= 1: no clipping needed


@functools.lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float64) / 16.0)[..., np.newaxis]
    y = np.asarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _check_severity(severity: Any) -> int:
    severity = check_positive_int(severity, "severity")
    if severity > 5:
        raise ValueError(f"severity must be an integer from 1 (mild) to 5 (strong); got {severity}.")
    return severity


def _corrupt(x: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply one corruption to a batch of images in [0, 1] of shape (n, h, w, 1)."""
    if kind == "noise":
        sigma = _NOISE_SIGMA[severity - 1]
        return np.clip(x + rng.normal(0.0, sigma, size=x.shape), 0.0, 1.0)
    if kind == "blur":
        sigma = _BLUR_SIGMA[severity - 1]
        return gaussian_filter(x, sigma=(0.0, sigma, sigma, 0.0), mode="constant", cval=0.0)
    if kind == "contrast":
        return _CONTRAST_FACTOR[severity - 1] * x + _CONTRAST_OFFSET[severity - 1]
    raise AssertionError(kind)  # pragma: no cover - validated at the boundary


_CORRUPTION_TEXT = {
    "noise": "additive Gaussian sensor noise (std {noise}, clipped to [0, 1]), as from a noisier scanner",
    "blur": "Gaussian blur (std {blur} px), as from a defocused scanner",
    "contrast": (
        "reduced contrast and a brightness offset (x -> {factor} * x + {offset}), as from a "
        "differently calibrated device"
    ),
}


def digits_corrupted(
    seed: int | None = 0, *, corruption: str = "noise", severity: int = 3
) -> Scenario:
    """Clean digits in the source, digits from a worse scanner in the target.

    scikit-learn's 1797 handwritten digits (8x8 pixels, 10 classes) become images of shape
    `(8, 8, 1)` scaled to [0, 1]. A random half, stratified by class, is the clean source; the
    other half is the target, corrupted as if read by another device:

    - "noise": additive Gaussian sensor noise, clipped to [0, 1] (a noisier sensor);
    - "blur": a Gaussian blur of each image (a defocused scanner);
    - "contrast": `factor * x + offset`, lower contrast and a grey background (a differently
      calibrated device);
    - "mixed": each target image gets one of the three at random (a fleet of devices).

    Labels are untouched, so the shift is a covariate shift.

    Args:
        seed: seed of the split and the corruption; None for a fresh one each call.
        corruption: one of `CORRUPTIONS`.
        severity: 1 (mild) to 5 (strong).

    Returns:
        A `Scenario` with float32 images of shape `(n, 8, 8, 1)`, classes "0".."9", shift kind
        "covariate"; the source has 897 to 900 images and the target the rest.

    Raises:
        TypeError: bad `seed` or `severity` type.
        ValueError: unknown `corruption`, or `severity` outside 1..5.

    Example:
        >>> s = digits_corrupted(seed=0, corruption="blur", severity=3)
        >>> s.x_target.shape[1:]
        (8, 8, 1)
    """
    seed = check_seed(seed)
    corruption = check_option(corruption, "corruption", CORRUPTIONS)
    severity = _check_severity(severity)
    x, y = _digits()
    rng = np.random.default_rng(seed)
    src, tgt = stratified_halves(y, rng)
    x_target = x[tgt]
    params = {
        "noise": {"noise_std": _NOISE_SIGMA[severity - 1]},
        "blur": {"blur_std_px": _BLUR_SIGMA[severity - 1]},
        "contrast": {
            "contrast_factor": _CONTRAST_FACTOR[severity - 1],
            "brightness_offset": _CONTRAST_OFFSET[severity - 1],
        },
    }
    truth: dict[str, Any] = {
        "seed": seed,
        "dataset": "sklearn.datasets.load_digits (1797 images, 8x8, 16 grey levels)",
        "corruption": corruption,
        "severity": severity,
    }
    if corruption == "mixed":
        kinds_used: tuple[str, ...] = ("noise", "blur", "contrast")
        which = rng.integers(len(kinds_used), size=tgt.size)
        for k, kind in enumerate(kinds_used):
            rows = which == k
            x_target[rows] = _corrupt(x_target[rows], kind, severity, rng)
        truth["mixed_counts"] = {kind: int(np.sum(which == k)) for k, kind in enumerate(kinds_used)}
    else:
        kinds_used = (corruption,)
        x_target = _corrupt(x_target, corruption, severity, rng)
    for kind in kinds_used:
        truth.update(params[kind])
    class_names = tuple(str(k) for k in range(10))
    truth["source_class_proportions"] = class_proportions(y[src], class_names)
    truth["target_class_proportions"] = class_proportions(y[tgt], class_names)
    truth["p_y_given_x_unchanged"] = True
    truth["labels_unchanged"] = True
    parts = [
        _CORRUPTION_TEXT[k].format(
            noise=_NOISE_SIGMA[severity - 1],
            blur=_BLUR_SIGMA[severity - 1],
            factor=_CONTRAST_FACTOR[severity - 1],
            offset=_CONTRAST_OFFSET[severity - 1],
        )
        for k in kinds_used
    ]
    what = parts[0] if len(parts) == 1 else "one of, at random per image: " + "; ".join(parts)
    description = (
        f"Handwritten digits (8x8 grey images, 10 classes): the source is a clean random half, the "
        f"target the other half with {what} (severity {severity} of 5). Labels and class "
        f"proportions are the same, only the images changed (covariate shift). shiftkit should "
        f"flag the shift with MMD, and a classifier trained on the source usually loses accuracy "
        f"on the target, more at higher severity, which adaptation should partly recover."
    )
    return Scenario(
        name="digits_corrupted",
        x_source=x[src].astype(np.float32),
        y_source=y[src],
        x_target=x_target.astype(np.float32),
        y_target=y[tgt],
        shift_kind="covariate",
        description=description,
        class_names=class_names,
        feature_names=None,
        truth=truth,
        source_index=src.astype(np.int64),
        target_index=tgt.astype(np.int64),
    )
