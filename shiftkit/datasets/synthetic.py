"""A Gaussian tabular problem with exactly one kind of shift (none, covariate, label or concept)."""

from __future__ import annotations

import math

import numpy as np

from shiftkit._validation import check_option, check_positive_int, check_real, check_seed
from shiftkit.datasets.scenario import Scenario

__all__ = [
    "SYNTHETIC_KINDS",
    "synthetic_shift",
]


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
