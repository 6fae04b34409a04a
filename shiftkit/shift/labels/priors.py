"""Target class proportions under label shift: BBSE, and EM after bias-corrected temperature scaling.

`fit_bcts` / `apply_bcts` (the calibration map) are public: `shiftkit.adapt.label_shift` reuses them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import minimize

from shiftkit._validation import check_option, check_positive_int, check_probabilities, check_real, encode_labels
from shiftkit.shift.labels.distributions import code_proportions, is_one_hot
from shiftkit.shift.labels.results import PriorEstimate, class_tuple, frozen_array

__all__ = [
    "PRIOR_METHODS",
    "LOG_EPS",
    "estimate_target_priors",
    "fit_bcts",
    "apply_bcts",
    "project_to_simplex",
]

#: Methods of `estimate_target_priors`.
PRIOR_METHODS = ("bbse", "em")
#: Offset inside the logarithm of probabilities (`log(p + LOG_EPS)`) in the calibration map.
LOG_EPS = 1e-12


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex (Duchi et al. 2008, sort-based)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, v.size + 1)
    rho = np.flatnonzero(u - (css - 1.0) / k > 0)[-1]
    theta = (css[rho] - 1.0) / (rho + 1.0)
    return np.maximum(v - theta, 0.0)


def _log_softmax(s: np.ndarray) -> np.ndarray:
    s = s - s.max(axis=1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def fit_bcts(probs: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Fit bias-corrected temperature scaling `softmax(log(p) / T + b)` by penalised NLL.

    The parameters `(log T, b)` get a standard normal prior (MAP fit: NLL summed over samples plus
    `(log T)^2 / 2 + |b|^2 / 2`). On a large held-out set the prior is negligible; on a small, nearly
    separable one, plain NLL is minimised by T -> 0 and large biases (seen: T = 0.11, b = +-7.8 on
    86 held-out patients, which wrecked the target estimate), and the prior stops that.

    Args:
        probs: a classifier's probabilities on held-out labelled source rows, `(n, k)`, rows on the
            simplex (as `check_probabilities` returns them).
        labels: the class codes 0..k-1 of those rows.

    Returns:
        `(T, b)`: the temperature and the `(k,)` bias; the identity map `(1, 0)` if the fit does not
        lower the objective.
    """
    n, k = probs.shape
    z = np.log(probs + LOG_EPS)
    one_hot = np.zeros((n, k))
    one_hot[np.arange(n), labels] = 1.0

    def nll_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        inv_t = np.exp(-theta[0])
        log_p = _log_softmax(z * inv_t + theta[1:])
        nll = -float(np.sum(log_p * one_hot)) / n
        g = (np.exp(log_p) - one_hot) / n  # d NLL / d logits
        grad_t = -inv_t * float(np.sum(g * z))
        prior = 0.5 * float(theta @ theta) / n
        return nll + prior, np.concatenate([[grad_t], g.sum(axis=0)]) + theta / n

    theta0 = np.zeros(k + 1)
    # T in [e^-6, e^6]; |b| <= 50: keeps a perfectly separable source from running T to 0.
    bounds = [(-6.0, 6.0)] + [(-50.0, 50.0)] * k
    result = minimize(nll_and_grad, theta0, jac=True, method="L-BFGS-B", bounds=bounds)
    if not np.all(np.isfinite(result.x)) or result.fun > nll_and_grad(theta0)[0]:
        return 1.0, np.zeros(k)
    return float(np.exp(result.x[0])), result.x[1:].copy()


def apply_bcts(probs: np.ndarray, temperature: float, bias: np.ndarray) -> np.ndarray:
    """The calibration map fitted by `fit_bcts`: `softmax(log(probs + LOG_EPS) / temperature + bias)`.

    Args:
        probs: probabilities `(n, k)`. temperature, bias: the output of `fit_bcts`.

    Returns:
        The recalibrated probabilities, `(n, k)`.
    """
    return np.exp(_log_softmax(np.log(probs + LOG_EPS) / temperature + bias))


def _bbse(
    source_probs: np.ndarray,
    source_labels: np.ndarray,
    target_probs: np.ndarray,
    source_priors: np.ndarray,
) -> np.ndarray:
    k = source_probs.shape[1]
    yhat_s = source_probs.argmax(axis=1)
    confusion = np.zeros((k, k))
    np.add.at(confusion, (yhat_s, source_labels), 1.0)
    confusion /= source_labels.size  # C[i, j] = P_source(yhat = i, y = j)
    mu = np.bincount(target_probs.argmax(axis=1), minlength=k) / target_probs.shape[0]
    rank = np.linalg.matrix_rank(confusion)
    if rank < k:
        never = np.flatnonzero(confusion.sum(axis=1) == 0).tolist()
        hint = f" Classes never predicted on the source: {never}." if never else ""
        warnings.warn(
            f"BBSE: the confusion matrix of the held-out source is singular (rank {rank} < {k}): "
            f"the classifier confuses classes, so their target proportions are not identifiable.{hint} "
            "The estimate is a least-squares solution projected onto the simplex; treat it with "
            "care, or use method='em'.",
            UserWarning,
            stacklevel=3,
        )
    w, *_ = np.linalg.lstsq(confusion, mu, rcond=None)
    return project_to_simplex(w * source_priors)


def _em(
    probs: np.ndarray, source_priors: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, int, bool]:
    """Saerens et al. (2002) EM for the target priors; returns `(priors, n_iter, converged)`."""
    q = source_priors.copy()
    for it in range(1, max_iter + 1):
        adjusted = probs * (q / source_priors)
        adjusted /= np.maximum(adjusted.sum(axis=1, keepdims=True), np.finfo(float).tiny)
        q_new = adjusted.mean(axis=0)
        q_new /= q_new.sum()
        delta = float(np.max(np.abs(q_new - q)))
        q = q_new
        if delta < tol:
            return q, it, True
    return q, max_iter, False


#: Fewer held-out source rows than this in some class and the calibration before EM warns (it can overfit).
MIN_CALIBRATION_ROWS = 5


def estimate_target_priors(
    source_probs: Any,
    source_labels: Any,
    target_probs: Any,
    method: str = "em",
    *,
    max_iter: int = 1000,
    tol: float = 1e-8,
    calibrate: bool = True,
) -> PriorEstimate:
    """Estimate the target class proportions from a classifier's predicted probabilities.

    Assumes label shift: `q(x | y) = p(x | y)`. The classifier's probabilities on a *held-out*
    labelled source sample (not its training data, where it is overconfident) describe how it
    behaves per class; its probabilities on unlabelled target data then reveal `q(y)`.

    Methods:
        "bbse": Black Box Shift Estimation (Lipton, Wang & Smola, 2018). With hard argmax
            predictions, `C[i, j] = P_source(yhat=i, y=j)` and `mu[i] = P_target(yhat=i)`; solve
            `C w = mu` by least squares, set `q = w * p_source` and project `q` onto the
            probability simplex. Needs no calibration (`calibrate` is ignored). A singular `C`
            (the classifier confuses classes) still gives a valid vector, with a warning.
        "em": maximum-likelihood EM (Saerens, Latinne & Decaestecker, 2002). With
            `calibrate=True` the probabilities are first recalibrated by bias-corrected
            temperature scaling, `softmax(log(p) / T + b)`, fitted by NLL on the held-out source
            (Alexandari, Kundaje & Shrikumar, 2020); EM then rescales `p(y|x)` by `q / p_source`,
            renormalises each row and averages, until `max |q_new - q| < tol`.

    Args:
        source_probs: probabilities on held-out labelled source data, shape `(n_s, k)`; a binary
            sigmoid output of shape `(n_s,)` or `(n_s, 1)` is read as `P(class 1)`.
        source_labels: true labels of those samples: column indices 0..k-1, or exactly k distinct
            values (1..k, names, ...) mapped to the columns in sorted order, or one-hot `(n_s, k)`.
            Every class must occur.
        target_probs: the same classifier's probabilities on unlabelled target data, `(n_t, k)`.
        method: "em" (default) or "bbse".
        max_iter: maximum EM iterations.
        tol: EM stopping tolerance on the largest change of a prior.
        calibrate: fit bias-corrected temperature scaling before EM (recommended: EM is biased
            by miscalibrated, e.g. overconfident, probabilities).

    Returns:
        A `PriorEstimate` (`priors`, `source_priors`, `weights = priors / source_priors`,
        `method`, `n_iter`, `converged`). If EM does not converge a warning is issued.

    Raises:
        TypeError: non-numeric input, or `calibrate` not a bool.
        ValueError: unknown `method`; NaN/inf or out-of-range probabilities, rows not summing to
            1; different numbers of columns in `source_probs` and `target_probs`; fractional
            labels, or labels that cannot be matched to the k columns; `source_labels` and
            `source_probs` of different lengths; a class absent from `source_labels`; fewer than
            2 classes.

    Example:
        >>> est = estimate_target_priors(p_val, y_val, p_target, method="em")  # doctest: +SKIP
        >>> est.priors, est.weights  # doctest: +SKIP
    """
    method = check_option(method, "method", PRIOR_METHODS)
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_real(tol, "tol", low=0, low_open=True, example="1e-8")
    if not isinstance(calibrate, (bool, np.bool_)):
        raise TypeError(f"calibrate must be True or False; got {calibrate!r}.")

    p_src = check_probabilities(source_probs, "source_probs")
    p_tgt = check_probabilities(target_probs, "target_probs")
    k = p_src.shape[1]
    if k < 2:  # defensive: check_probabilities already expands a single column to two classes
        raise ValueError(
            f"source_probs has {k} class; label shift needs at least 2 classes."
        )
    if p_tgt.shape[1] != k:
        raise ValueError(
            f"source_probs has {k} columns but target_probs has {p_tgt.shape[1]}: both must be "
            "the same classifier's probabilities over the same classes."
        )
    if is_one_hot(source_labels) and np.shape(source_labels)[1] != k:
        raise ValueError(
            f"source_labels is one-hot with {np.shape(source_labels)[1]} columns but source_probs has "
            f"{k} classes. Encode the labels over the classifier's classes."
        )
    try:
        enc, (labels,) = encode_labels(source_labels, names=["source_labels"], n_outputs=k)
    except ValueError as exc:
        if "cannot be matched" not in str(exc):
            raise
        found = encode_labels(source_labels, names=["source_labels"])[0].classes
        raise ValueError(
            f"source_labels has {len(found)} distinct value(s) {list(found)[:10]}, but source_probs has "
            f"{k} classes: pass labels 0..{k - 1} (the column of each class) or exactly {k} distinct "
            "values (mapped to the columns in sorted order)."
        ) from None
    if labels.size != p_src.shape[0]:
        raise ValueError(
            f"source_labels has {labels.size} labels but source_probs has {p_src.shape[0]} rows: "
            "pass one label per held-out source sample."
        )
    source_priors = code_proportions(labels, k)
    missing = np.flatnonzero(source_priors == 0)
    if missing.size:
        raise ValueError(
            f"source_labels has no sample of class(es) {[enc.classes[c] for c in missing]}, so their target/source "
            "ratio cannot be estimated. Add held-out source samples of every class."
        )

    if method == "bbse":
        priors = _bbse(p_src, labels, p_tgt, source_priors)
        n_iter, converged = 0, True
    else:
        if calibrate:
            counts = np.bincount(labels, minlength=k)
            if counts.min() < MIN_CALIBRATION_ROWS:
                warnings.warn(
                    f"source_labels has only {int(counts.min())} held-out row(s) of class "
                    f"{enc.classes[int(counts.argmin())]!r}: bias-corrected temperature scaling fits {k + 1} "
                    f"parameters on {labels.size} rows and can overfit them, which makes the EM estimate "
                    f"extreme. Pass at least {MIN_CALIBRATION_ROWS} held-out source rows per class, or "
                    "calibrate=False.",
                    UserWarning,
                    stacklevel=2,
                )
            temperature, bias = fit_bcts(p_src, labels)
            p_tgt = apply_bcts(p_tgt, temperature, bias)
        priors, n_iter, converged = _em(p_tgt, source_priors, max_iter, tol)
        if not converged:
            warnings.warn(
                f"EM did not converge in max_iter={max_iter} iterations (tol={tol:g}); the "
                "estimate may be inaccurate. Raise max_iter or loosen tol.",
                UserWarning,
                stacklevel=2,
            )
    return PriorEstimate(
        priors=frozen_array(priors),
        source_priors=frozen_array(source_priors),
        weights=frozen_array(priors / source_priors),
        method=method,
        n_iter=int(n_iter),
        converged=bool(converged),
        classes=class_tuple(enc.classes, k),
    )
