"""Synthetic data shared by the adapter and callback tests."""

import numpy as np


def covariate_shift_data(n, *, target, seed):
    """2 classes in 10-D; the target is the source shifted and scaled in dims 0-4 (same labels)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 10))
    x[:, :3] += np.where(y[:, None] == 1, 1.2, -1.2)
    if target:
        x[:, :3] = 1.5 * x[:, :3] + 1.5
        x[:, 3:5] = 2.0 * x[:, 3:5] - 1.0
    return x.astype("float32"), y
