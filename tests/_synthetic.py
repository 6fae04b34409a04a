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


# ---------------------------------------------------------------------------------------------
# Null and shift generators for the calibration tests (tests/test_calibration.py)
# ---------------------------------------------------------------------------------------------

#: Per-column scales of the unlabelled samples: columns on very different scales, as in real tables.
PAIR_SCALES = np.array([1.0, 10.0, 0.1, 1000.0])

#: The unlabelled sample kinds of `sample_pair`.
PAIR_KINDS = ("gaussian", "student_t2", "mixed")


def _pair_rows(kind, n, rng):
    if kind == "gaussian":  # correlated Gaussian columns
        mixing = np.array([[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.5, 0.0], [0.0, 0.0, 1.0, 0.5], [0.0, 0.0, 0.0, 1.0]])
        return rng.normal(size=(n, 4)) @ mixing * PAIR_SCALES
    if kind == "student_t2":  # heavy tails: Student t with 2 df has no variance
        return rng.standard_t(2, size=(n, 4)) * PAIR_SCALES
    if kind == "mixed":  # three Student t (3 df) columns and one categorical column with rare levels
        x = rng.standard_t(3, size=(n, 4)) * PAIR_SCALES
        x[:, 3] = rng.choice(4, size=n, p=[0.55, 0.3, 0.1, 0.05])
        return x
    raise ValueError(f"unknown kind {kind!r}; one of {PAIR_KINDS}")


def sample_pair(kind, n_source, n_target, *, seed, shift=0.0):
    """A source and a target sample of 4 columns; the target's column 0 moved by `shift` x its scale.

    With `shift=0` both samples come from one distribution (a null draw). Kinds: "gaussian"
    (correlated), "student_t2" (heavy-tailed, no variance), "mixed" (Student t with 3 df and a
    categorical column with levels 0..3 of probabilities 0.55/0.3/0.1/0.05). Columns are on scales
    1, 10, 0.1 and 1000 (except the categorical one).

    Returns:
        `(x_source, x_target)` as float64 arrays `(n_source, 4)` and `(n_target, 4)`.
    """
    rng = np.random.default_rng(seed)
    xs = _pair_rows(kind, n_source, rng)
    xt = _pair_rows(kind, n_target, rng)
    xt[:, 0] += shift * PAIR_SCALES[0]
    return xs, xt


def _class_means(n_classes, radius):
    angles = 2.0 * np.pi * np.arange(n_classes) / n_classes
    means = np.zeros((n_classes, 4))
    means[:, 0], means[:, 1] = radius * np.cos(angles), radius * np.sin(angles)
    return means


def _labelled_rows(n, priors, means, df, rng):
    y = rng.choice(len(priors), size=n, p=priors)
    noise = rng.normal(size=(n, 4)) if df is None else rng.standard_t(df, size=(n, 4))
    return means[y] + noise, y


def _select(x, y, n, direction, strength, rng):
    """Keep rows with probability min(1, exp(strength * x @ direction - c)), c the score's 90% quantile.

    A covariate shift (selection on x alone leaves p(y|x) unchanged) whose density ratio is
    log-linear in x on the 90% of rows below the cap.
    """
    score = strength * (x @ direction)
    keep = rng.random(len(x)) < np.exp(np.minimum(score - np.quantile(score, 0.9), 0.0))
    if keep.sum() < n:
        raise ValueError("covariate selection kept too few rows; lower the strength")
    rows = np.flatnonzero(keep)[:n]
    return x[rows], y[rows]


#: Direction of the covariate shift of `labelled_domains`: mostly a noise axis, partly away from class 0.
COVARIATE_DIRECTION = np.array([-0.5, 0.0, 1.0, 0.0]) / np.sqrt(1.25)


def labelled_domains(
    n_source,
    n_target,
    *,
    seed,
    n_classes=3,
    first_label=1,
    df=None,
    source_priors=None,
    shift="none",
    radius=3.0,
):
    """A labelled source and target: classes in 4-D (means on a circle in dims 0-1, dims 2-3 noise).

    Labels are coded `first_label .. first_label + n_classes - 1` (default 1..K, not 0..K-1).

    Args:
        n_source, n_target: sample sizes.
        seed: seed of every random step.
        n_classes: K.
        first_label: code of the first class.
        df: None for Gaussian noise, else Student t noise with `df` degrees of freedom (heavy tails).
        source_priors: class proportions of the source (default: 0.4 / 0.35 / 0.25 for K = 3, else
            decreasing linearly from 1.5 / K to 0.5 / K).
        shift: "none" (one joint distribution: a null draw), "label" (target proportions proportional
            to the source's reversed and cubed, p(x|y) unchanged), "covariate" (target rows selected
            by a log-linear score in x, see `_select`: p(x) moves, p(y|x) does not) or
            "concept" (the target's classes 0 and 1 swap labels: p(y|x) moves, p(x) does not).
        radius: distance of the class means from the origin (separation of the classes).

    Returns:
        `(x_source, y_source, x_target, y_target)`.
    """
    rng = np.random.default_rng(seed)
    k = n_classes
    if source_priors is None:
        source_priors = np.array([0.4, 0.35, 0.25]) if k == 3 else np.linspace(1.5, 0.5, k) / k
    p = np.asarray(source_priors, dtype=float)
    p = p / p.sum()
    means = _class_means(k, radius)
    xs, ys = _labelled_rows(n_source, p, means, df, rng)
    if shift in ("none", "concept"):
        xt, yt = _labelled_rows(n_target, p, means, df, rng)
        if shift == "concept":
            yt = np.where(yt == 0, 1, np.where(yt == 1, 0, yt))
    elif shift == "label":
        q = p[::-1] ** 3
        xt, yt = _labelled_rows(n_target, q / q.sum(), means, df, rng)
    elif shift == "covariate":
        pool_x, pool_y = _labelled_rows(40 * n_target, p, means, df, rng)
        xt, yt = _select(pool_x, pool_y, n_target, COVARIATE_DIRECTION, 1.0, rng)
    else:
        raise ValueError(f"unknown shift {shift!r}")
    return xs, ys + first_label, xt, yt + first_label


def csv_bytes(frame) -> bytes:
    """A DataFrame as the bytes of a CSV upload."""
    return frame.to_csv(index=False).encode()


def npz_bytes(**arrays) -> bytes:
    """Arrays as the bytes of an (uncompressed) .npz upload."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
