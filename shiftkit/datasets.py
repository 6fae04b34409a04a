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

Example:
    >>> from shiftkit.datasets import load_scenario
    >>> scenario = load_scenario("hospitals_covariate", seed=0)
    >>> scenario.shift_kind
    'covariate'
    >>> scenario.x_source.shape[1]
    30
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from typing import Any, Callable

import numpy as np

from shiftkit._validation import check_option, check_positive_int, check_real, check_seed

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

CORRUPTIONS: tuple[str, ...] = ("noise", "blur", "contrast", "mixed")
"""Corruptions accepted by `digits_corrupted`."""

SHIFT_KINDS: tuple[str, ...] = ("none", "covariate", "label", "concept", "covariate+label")
"""Values of `Scenario.shift_kind`."""

# Corruption strength per severity level 1..5 (the ImageNet-C convention of five levels).
_NOISE_SIGMA = (0.05, 0.10, 0.15, 0.20, 0.30)  # std of additive Gaussian noise, pixels in [0, 1]
_BLUR_SIGMA = (0.4, 0.6, 0.8, 1.0, 1.3)  # Gaussian blur std, in pixels of the 8x8 image
_CONTRAST_FACTOR = (0.85, 0.70, 0.55, 0.45, 0.35)  # x -> factor * x + offset
_CONTRAST_OFFSET = (0.05, 0.10, 0.15, 0.20, 0.25)  # factor + offset <= 1: no clipping needed
_MALIGNANT = 0  # scikit-learn's breast-cancer encoding: 0 = malignant, 1 = benign


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


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def _breast_cancer() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)  # cached: scenarios get copies via fancy indexing
    y.setflags(write=False)
    return x, y, tuple(str(f) for f in bunch.feature_names), tuple(str(c) for c in bunch.target_names)


@functools.lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

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


def _stratified_halves(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into two halves with the same class proportions (up to one per class)."""
    first, second = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        half = (idx.size + int(rng.integers(2))) // 2  # odd classes: the extra one goes either way
        first.append(idx[:half])
        second.append(idx[half:])
    return rng.permutation(np.concatenate(first)), rng.permutation(np.concatenate(second))


def _proportions(y: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    counts = np.bincount(y, minlength=len(class_names))
    return {c: float(n) / max(len(y), 1) for c, n in zip(class_names, counts)}


def _hospitals(name: str, src: np.ndarray, tgt: np.ndarray, shift_kind: str, description: str,
               truth: dict[str, Any]) -> Scenario:
    x, y, feature_names, class_names = _breast_cancer()
    truth = {
        "dataset": "sklearn.datasets.load_breast_cancer (Wisconsin diagnostic, 569 patients)",
        "label_encoding": {c: i for i, c in enumerate(class_names)},
        "n_source": int(src.size),
        "n_target": int(tgt.size),
        "source_class_proportions": _proportions(y[src], class_names),
        "target_class_proportions": _proportions(y[tgt], class_names),
        "source_malignant_prevalence": float(np.mean(y[src] == _MALIGNANT)),
        "target_malignant_prevalence": float(np.mean(y[tgt] == _MALIGNANT)),
        **truth,
    }
    return Scenario(
        name=name,
        x_source=x[src],
        y_source=y[src],
        x_target=x[tgt],
        y_target=y[tgt],
        shift_kind=shift_kind,
        description=description,
        class_names=class_names,
        feature_names=feature_names,
        truth=truth,
        source_index=src.astype(np.int64),
        target_index=tgt.astype(np.int64),
    )


# --------------------------------------------------------------------------- scenarios


def hospitals_covariate(
    seed: int | None = 0, *, strength: float = 1.0, feature: str = "mean radius"
) -> Scenario:
    """Two hospitals that see different patients: covariate shift by selection on tumour size.

    Each of the 569 breast-cancer patients goes to the target hospital with probability
    `sigmoid(strength * z)`, where `z` is the standardised value of `feature` (by default the mean
    tumour radius), and to the source hospital otherwise. Every patient keeps their own diagnosis,
    so `p(y | x)` is the same in both hospitals while `p(x)` differs. Because tumour size is
    related to malignancy, the selection also moves the malignant prevalence; `truth` reports both.

    Args:
        seed: seed of the random selection; None for a fresh one each call.
        strength: slope of the selection on the standardised feature. 0 gives a random split (no
            shift); larger values give a stronger shift; negative values send smaller tumours to
            the target.
        feature: the breast-cancer column the selection acts on (a name of
            `sklearn.datasets.load_breast_cancer().feature_names`).

    Returns:
        A `Scenario` with 30 float64 features and classes ("malignant", "benign"), shift kind
        "covariate" (or "none" when `strength` is 0).

    Raises:
        TypeError: `seed` is not None or a non-negative integer; `strength` is not a number.
        ValueError: unknown `feature`, or a selection that leaves a hospital nearly empty.

    Example:
        >>> s = hospitals_covariate(seed=0, strength=1.0)
        >>> bool(s.x_target[:, 0].mean() > s.x_source[:, 0].mean())  # larger tumours in the target
        True
    """
    seed = check_seed(seed)
    strength = check_real(strength, "strength", example=1.0)
    x, y, feature_names, _ = _breast_cancer()
    feature = check_option(feature, "feature", feature_names)
    j = feature_names.index(feature)
    z = (x[:, j] - x[:, j].mean()) / x[:, j].std()
    prob = 1.0 / (1.0 + np.exp(-strength * z))
    rng = np.random.default_rng(seed)
    to_target = rng.random(x.shape[0]) < prob
    src, tgt = np.flatnonzero(~to_target), np.flatnonzero(to_target)
    if min(src.size, tgt.size) < 10:
        raise ValueError(
            f"strength={strength} leaves only {min(src.size, tgt.size)} patient(s) in one hospital. "
            "Pass a smaller |strength| (e.g. 1.0)."
        )
    mean_prob = float(prob.mean())
    prev_s = float(np.mean(y[src] == _MALIGNANT))
    prev_t = float(np.mean(y[tgt] == _MALIGNANT))
    if strength == 0:
        shift_kind = "none"
        description = (
            "Breast-cancer patients (569, 30 features) sent to a source or a target hospital by a "
            "fair coin, because strength=0. Nothing shifted: shiftkit should not flag a shift."
        )
    else:
        direction = "larger" if strength > 0 else "smaller"
        shift_kind = "covariate"
        description = (
            f"Breast-cancer patients (569, 30 features) split between two hospitals: a patient is "
            f"more likely to go to the target hospital the larger |strength| * their standardised "
            f"{feature!r}, so the target sees {direction} tumours. Each patient keeps their own "
            f"diagnosis, so p(y|x) is unchanged and p(x) shifted (covariate shift); because size "
            f"is related to malignancy, the malignant prevalence also moves "
            f"({prev_s:.0%} in the source, {prev_t:.0%} in the target). shiftkit should flag a "
            f"shift with MMD, with {feature!r} and the other size features (radius, perimeter, "
            f"area) the most shifted per feature, and point to importance weighting."
        )
    truth = {
        "seed": seed,
        "strength": strength,
        "selection_feature": feature,
        "selection_rule": (
            f"P(target | x) = sigmoid(strength * z), z = ({feature} - {x[:, j].mean():.6g}) / "
            f"{x[:, j].std():.6g}, drawn independently per patient"
        ),
        "mean_selection_probability": mean_prob,
        "density_ratio": (
            "p_target(x) / p_source(x) = exp(strength * z) * (1 - m) / m, "
            "m = mean_selection_probability"
        ),
        "p_y_given_x_unchanged": True,
        "label_prior_moved": bool(strength != 0),
        "source_feature_mean": float(x[src, j].mean()),
        "target_feature_mean": float(x[tgt, j].mean()),
    }
    return _hospitals("hospitals_covariate", src, tgt, shift_kind, description, truth)


def hospitals_label_shift(
    seed: int | None = 0, *, target_prevalence: float = 0.7, n_target: int | None = None
) -> Scenario:
    """Two hospitals with different malignant prevalence: label shift.

    The 569 breast-cancer patients are split at random, stratified by diagnosis, into two halves.
    The first half is the source hospital (about 37% malignant, the dataset's prevalence). The
    target hospital is drawn from the second half, per class, so that `target_prevalence` of its
    patients are malignant. Patients are drawn at random within each class, so `p(x | y)` is the
    same in both hospitals while `p(y)` differs.

    Args:
        seed: seed of the split and the resampling; None for a fresh one each call.
        target_prevalence: fraction of malignant patients in the target, strictly between 0 and 1.
        n_target: number of target patients. None takes the largest number that can be drawn
            without replacement from the second half at this prevalence (151 for 0.7). A larger
            number draws the short class with replacement (so some target patients repeat).

    Returns:
        A `Scenario` with 30 float64 features and classes ("malignant", "benign"), shift kind
        "label".

    Raises:
        TypeError: bad `seed`, `target_prevalence` or `n_target` type.
        ValueError: `target_prevalence` outside (0, 1), or a target with no patient of a class.

    Example:
        >>> s = hospitals_label_shift(seed=0, target_prevalence=0.7)
        >>> round(s.truth["target_malignant_prevalence"], 2)
        0.7
    """
    seed = check_seed(seed)
    target_prevalence = check_real(
        target_prevalence, "target_prevalence", low=0, high=1, low_open=True, high_open=True, example=0.7
    )
    if n_target is not None:
        n_target = check_positive_int(n_target, "n_target", minimum=2)
    x, y, _, class_names = _breast_cancer()
    rng = np.random.default_rng(seed)
    src, pool = _stratified_halves(y, rng)
    pool_mal = pool[y[pool] == _MALIGNANT]
    pool_ben = pool[y[pool] != _MALIGNANT]
    if n_target is None:
        # Largest n with round(p * n) <= #malignant and n - round(p * n) <= #benign.
        n_target = int(min(pool_mal.size / target_prevalence, pool_ben.size / (1 - target_prevalence)))
        while n_target > 2 and (
            round(target_prevalence * n_target) > pool_mal.size
            or n_target - round(target_prevalence * n_target) > pool_ben.size
        ):
            n_target -= 1
    n_mal = int(round(target_prevalence * n_target))
    n_ben = n_target - n_mal
    if n_mal < 1 or n_ben < 1:
        raise ValueError(
            f"target_prevalence={target_prevalence} with n_target={n_target} leaves no "
            f"{'malignant' if n_mal < 1 else 'benign'} patient in the target. Pass a prevalence "
            "further from 0 and 1, or a larger n_target."
        )
    with_replacement = n_mal > pool_mal.size or n_ben > pool_ben.size

    def draw(pool_k: np.ndarray, n: int) -> np.ndarray:
        if n <= pool_k.size:
            return rng.choice(pool_k, size=n, replace=False)
        return np.concatenate([rng.permutation(pool_k), rng.choice(pool_k, size=n - pool_k.size)])

    tgt = rng.permutation(np.concatenate([draw(pool_mal, n_mal), draw(pool_ben, n_ben)]))
    prev_s = float(np.mean(y[src] == _MALIGNANT))
    prev_t = n_mal / n_target
    p_s = np.bincount(y[src], minlength=2) / src.size
    p_t = np.bincount(y[tgt], minlength=2) / tgt.size
    description = (
        f"Breast-cancer patients (569, 30 features) split at random into two hospitals; the "
        f"target hospital is then resampled within each class to {prev_t:.0%} malignant, against "
        f"{prev_s:.0%} in the source. The class-conditional distributions p(x|y) are unchanged and "
        f"only the class prior p(y) shifted (label shift). shiftkit should estimate the target "
        f"prior near {prev_t:.2f} malignant (BBSE / EM) and recommend a prior correction; MMD on "
        f"the inputs may also flag a shift, since a changed mix of classes changes p(x)."
    )
    truth = {
        "seed": seed,
        "requested_target_prevalence": target_prevalence,
        "selection_rule": (
            "stratified random half -> source; target drawn per class from the other half "
            f"({n_mal} malignant, {n_ben} benign)"
        ),
        "with_replacement": bool(with_replacement),
        "p_x_given_y_unchanged": True,
        "label_weights": {c: float(p_t[k] / p_s[k]) for k, c in enumerate(class_names)},
    }
    return _hospitals("hospitals_label_shift", src, tgt, "label", description, truth)


def hospitals_no_shift(seed: int | None = 0) -> Scenario:
    """Two hospitals drawn from the same population: the no-shift control.

    The 569 breast-cancer patients are split at random into two halves with the same malignant
    prevalence (stratified by diagnosis). Nothing shifted, so a shift test at level alpha should
    flag this scenario only about alpha of the time.

    Args:
        seed: seed of the split; None for a fresh one each call.

    Returns:
        A `Scenario` with 30 float64 features, classes ("malignant", "benign") and shift kind
        "none"; the halves have 284 or 285 patients.

    Raises:
        TypeError: `seed` is not None or a non-negative integer.

    Example:
        >>> s = hospitals_no_shift(seed=0)
        >>> s.x_source.shape[0] + s.x_target.shape[0]
        569
    """
    seed = check_seed(seed)
    _, y, _, _ = _breast_cancer()
    src, tgt = _stratified_halves(y, np.random.default_rng(seed))
    description = (
        "Breast-cancer patients (569, 30 features) split at random into two hospitals of equal "
        "size and equal malignant prevalence (about 37%). Nothing shifted: this is the control, "
        "and shiftkit's MMD test should not flag it (except by chance, at the rate alpha)."
    )
    truth = {"seed": seed, "selection_rule": "stratified random half (by diagnosis)"}
    return _hospitals("hospitals_no_shift", src, tgt, "none", description, truth)


def _corrupt(x: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply one corruption to a batch of images in [0, 1] of shape (n, h, w, 1)."""
    if kind == "noise":
        sigma = _NOISE_SIGMA[severity - 1]
        return np.clip(x + rng.normal(0.0, sigma, size=x.shape), 0.0, 1.0)
    if kind == "blur":
        from scipy.ndimage import gaussian_filter

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
    src, tgt = _stratified_halves(y, rng)
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
    truth["source_class_proportions"] = _proportions(y[src], class_names)
    truth["target_class_proportions"] = _proportions(y[tgt], class_names)
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


SYNTHETIC_KINDS: tuple[str, ...] = ("none", "covariate", "label", "concept")
"""Values of `synthetic_shift(kind=...)`."""


def synthetic_shift(
    seed: int | None = 0,
    kind: str = "covariate",
    n_source: int = 500,
    n_target: int = 500,
    n_features: int = 5,
    strength: float = 1.0,
) -> Scenario:
    """A Gaussian tabular problem with exactly one kind of shift, for testing diagnoses.

    Source: x ~ N(0, I) in `n_features` dimensions, y ~ Bernoulli(sigmoid(3 * x0)), so p(y) = 0.5.

    - "none": the target is drawn the same way.
    - "covariate": target x2 is shifted by `strength` (x2 does not enter p(y|x), so p(y|x) and p(y)
      are unchanged; only p(x) moves).
    - "label": the target is drawn from the source joint, resampled per class to a prevalence of
      0.5 + 0.3 * min(strength, 1) (p(x|y) unchanged, p(y) moves).
    - "concept": target x as in the source, but y ~ Bernoulli(sigmoid(3 * (x0 cos a + x1 sin a)))
      with a = strength * pi / 2 (p(x) and p(y) unchanged; p(y|x) moves).

    Args:
        seed: random seed.
        kind: one of `SYNTHETIC_KINDS`.
        n_source, n_target: sample sizes.
        n_features: dimensions (>= 3).
        strength: size of the shift (0 gives no shift).

    Returns:
        A `Scenario` whose `shift_kind` names the kind built.

    Example:
        >>> s = synthetic_shift(seed=0, kind="concept")
        >>> s.shift_kind, s.x_source.shape
        ('concept', (500, 5))
    """
    kind = check_option(kind, "kind", SYNTHETIC_KINDS)
    seed = check_seed(seed)
    n_source = check_positive_int(n_source, "n_source", minimum=10)
    n_target = check_positive_int(n_target, "n_target", minimum=10)
    n_features = check_positive_int(n_features, "n_features", minimum=3)
    strength = check_real(strength, "strength", low=0, example=1.0)
    rng = np.random.default_rng(seed)

    def draw(n: int, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, n_features))
        logit = 3.0 * (x[:, 0] * math.cos(angle) + x[:, 1] * math.sin(angle))
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
        return x, y

    xs, ys = draw(n_source)
    prevalence = 0.5
    if kind == "label":
        prevalence = 0.5 + 0.3 * min(strength, 1.0)
        pool_x, pool_y = draw(8 * n_target)
        n_pos = int(round(prevalence * n_target))
        pos = rng.choice(np.flatnonzero(pool_y == 1), size=n_pos, replace=False)
        neg = rng.choice(np.flatnonzero(pool_y == 0), size=n_target - n_pos, replace=False)
        idx = rng.permutation(np.r_[pos, neg])
        xt, yt = pool_x[idx], pool_y[idx]
    elif kind == "concept":
        xt, yt = draw(n_target, angle=strength * math.pi / 2)
    else:
        xt, yt = draw(n_target)
        if kind == "covariate":
            xt[:, 2] += strength
    true_kind = kind if strength > 0 else "none"
    descriptions = {
        "none": "Source and target are drawn from the same distribution: no shift.",
        "covariate": f"Target feature x2 is shifted by {strength:g}; x2 does not affect the label, so "
        "p(y|x) and p(y) are unchanged: a pure covariate shift.",
        "label": f"The target's positive-class prevalence is {prevalence:.2f} instead of 0.50, with the "
        "class-conditional distributions unchanged: a pure label shift.",
        "concept": f"The labelling rule is rotated by {strength * 90:g} degrees in the (x0, x1) plane; p(x) and "
        "p(y) are unchanged: a pure concept shift.",
    }
    return Scenario(
        name="synthetic_shift",
        x_source=xs.astype(np.float64),
        y_source=ys,
        x_target=xt.astype(np.float64),
        y_target=yt,
        shift_kind=true_kind,
        description=descriptions[true_kind],
        class_names=("negative", "positive"),
        feature_names=tuple(f"x{j}" for j in range(n_features)),
        truth={"kind": true_kind, "strength": strength, "target_prevalence": prevalence},
    )


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
