"""Breast-cancer patients in two hospitals: covariate shift, label shift and the no-shift control."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

from shiftkit._validation import check_option, check_positive_int, check_real, check_seed
from shiftkit.datasets.scenario import Scenario, class_proportions, stratified_halves

__all__ = [
    "hospitals_covariate",
    "hospitals_label_shift",
    "hospitals_no_shift",
]


_MALIGNANT = 0  # scikit-learn's breast-cancer encoding: 0 = malignant, 1 = benign


@functools.lru_cache(maxsize=None)
def _breast_cancer() -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x.setflags(write=False)  # cached: scenarios get copies via fancy indexing
    y.setflags(write=False)
    return x, y, tuple(str(f) for f in bunch.feature_names), tuple(str(c) for c in bunch.target_names)


def _hospitals(name: str, src: np.ndarray, tgt: np.ndarray, shift_kind: str, description: str,
               truth: dict[str, Any]) -> Scenario:
    x, y, feature_names, class_names = _breast_cancer()
    truth = {
        "dataset": "sklearn.datasets.load_breast_cancer (Wisconsin diagnostic, 569 patients)",
        "label_encoding": {c: i for i, c in enumerate(class_names)},
        "n_source": int(src.size),
        "n_target": int(tgt.size),
        "source_class_proportions": class_proportions(y[src], class_names),
        "target_class_proportions": class_proportions(y[tgt], class_names),
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
    src, pool = stratified_halves(y, rng)
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
    src, tgt = stratified_halves(y, np.random.default_rng(seed))
    description = (
        "Breast-cancer patients (569, 30 features) split at random into two hospitals of equal "
        "size and equal malignant prevalence (about 37%). Nothing shifted: this is the control, "
        "and shiftkit's MMD test should not flag it (except by chance, at the rate alpha)."
    )
    truth = {"seed": seed, "selection_rule": "stratified random half (by diagnosis)"}
    return _hospitals("hospitals_no_shift", src, tgt, "none", description, truth)
