"""Density ratio w(x) = p_target(x) / p_source(x) from a domain classifier, cross-fitted and calibrated.

Under covariate shift (`p(y | x)` the same in both domains, `p(x)` not), an expectation over the
target is an importance-weighted expectation over the source: `E_t[f(x)] = E_s[w(x) f(x)]` with
`w = p_t / p_s`. A probabilistic classifier that tells target rows (label 1) from source rows
(label 0) estimates it through Bayes' rule (Bickel, Brückner & Scheffer 2009; Sugiyama, Suzuki &
Kanamori, *Density Ratio Estimation in Machine Learning*, 2012, ch. 4):

    w(x) = p(target | x) / p(source | x) * n_source / n_target

(the factor undoes the classifier's prior odds `n_target / n_source`).

How `DensityRatioEstimator` estimates it:

* **Standardised inputs.** 2-D features `(n, d)` are standardised on the pooled sample with
  `shiftkit.shift.scaling.Standardizer` (the one input standardiser of shiftkit), so a linear
  classifier's regularisation treats every feature alike.
* **Cross-fitting.** The pooled sample is split into `n_splits` stratified folds (seeded); each
  fold is scored by a classifier trained on the other folds. Every source row's weight (`weights_`)
  thus comes from a classifier that never saw it: a weight estimated on a row the classifier was
  fitted to is biased towards the row's own label (source rows get too small weights, the more so
  the more flexible the classifier), which makes the weights look more even than they are.
  The same out-of-fold scores give the domain classifier's AUC (`domain_auc_`, 0.5: no shift).
* **Calibration** (`calibrate=True`). The odds of a classifier are the density ratio only when its
  probabilities are calibrated. A Platt map (a logistic regression of the domain label on the
  out-of-fold log-odds, Platt 1999) is fitted on all out-of-fold scores and applied to them and to
  every new row: `logit = a * mean_k(logit_k(x)) + b`, where `logit_k` is fold `k`'s classifier.
  Platt's two parameters, not isotonic regression: isotonic steps reach probabilities 0 and 1,
  i.e. weights 0 and infinity. The map is kept non-decreasing: when the out-of-fold scores rank
  target rows *below* source rows (a fitted slope <= 0, which happens under no shift: cross-fitted
  scores of pure noise are slightly anti-correlated with the held-out labels, out-of-fold AUC < 0.5)
  they carry no evidence of a ratio, so the slope is set to 0 and every weight is 1; a negative
  slope would invert the weights. A well-specified logistic model is calibrated already (a = 1, b = 0
  up to noise); gradient boosting and other flexible classifiers are not.
* **Clipping** (`clip_quantile`). A few huge weights carry an importance-weighted average and its
  variance (Cortes, Mansour & Mohri 2010): the raw ratios are capped at their `clip_quantile`
  quantile over the source rows (`clip_value_`, in the units of the returned weights). Then
  weights are rescaled so the source rows' weights average 1 (self-normalised importance
  weighting; the true ratio has `E_s[w] = 1`). `weights(x)` uses the same cap and the same scale.
* **Effective sample size.** `ess_ = (sum w)^2 / sum w^2` (Kong 1992): the number of equally
  weighted rows carrying as much information as the weighted sample; `ess_fraction_ = ess_ / n`.
  A fraction near 1: the weights are nearly even (little shift, or little to correct); near 0: a
  few rows carry the average and a reweighted estimate is mostly noise.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> xs, xt = rng.normal(size=(400, 2)), rng.normal([0.5, 0.0], size=(400, 2))
    >>> est = DensityRatioEstimator(seed=0).fit(xs, xt)
    >>> bool(0.55 < est.domain_auc_ < 0.75), bool(0.5 < est.ess_fraction_ < 1.0)
    (True, True)
    >>> w = est.weights(np.array([[-1.0, 0.0], [1.0, 0.0]]))
    >>> bool(w[1] > 1.0 > w[0])
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from shiftkit._validation import check_array, check_positive_int, check_real, check_seed
from shiftkit.shift.scaling import Standardizer

__all__ = ["DensityRatioEstimator", "effective_sample_size", "CLIP_QUANTILE", "N_SPLITS"]

#: Default quantile of the source rows' raw ratios at which weights are capped (see
#: `benchmarks/importance_choice.md`: 0.99 kept the weighted means' error lowest among 0.9, 0.95,
#: 0.99 and no cap on the choosing Gaussians, and the cap rarely binds when the shift is mild).
CLIP_QUANTILE = 0.99
#: Default number of cross-fitting folds.
N_SPLITS = 5
#: Probabilities are kept in [EPS, 1 - EPS] before taking log-odds (a classifier may output 0 or 1).
_EPS = 1e-6
_CLASSIFIERS = ("logistic", "gbm")


def _check_2d(x: Any, name: str, min_samples: int = 1) -> np.ndarray:
    """A finite float64 `(n, d)` array; 1-D and >2-D inputs refused with what to do."""
    arr = x if isinstance(x, np.ndarray) else None
    if arr is None and x is not None and not isinstance(x, (str, bytes)):
        try:
            arr = np.asarray(x)
        except Exception:  # ragged: check_array explains
            arr = None
    if arr is not None and arr.dtype != object and arr.ndim == 1:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_features); got a 1-D array of shape {arr.shape}. "
            f"Use {name}.reshape(-1, 1) for one feature, or {name}.reshape(1, -1) for one sample."
        )
    if arr is not None and arr.dtype != object and arr.ndim > 2:
        raise ValueError(
            f"{name} must be a 2-D array (n_samples, n_features); got shape {arr.shape}. Flatten each "
            f"sample ({name}.reshape(len({name}), -1)) or pass a model's features (embedding) instead."
        )
    return check_array(x, name, min_samples=min_samples)


def effective_sample_size(weights: Any) -> float:
    """Kish's effective sample size of importance weights: `(sum w)^2 / sum w^2`.

    Equal weights give `n`; one non-zero weight gives 1. Scale-free: `w` and `c * w` have the same ESS.

    Args:
        weights: 1-D array of finite, non-negative weights, not all zero.

    Returns:
        The effective sample size, a float in `[1, n]`.

    Raises:
        TypeError: non-numeric weights.
        ValueError: not 1-D, empty, NaN/inf, negative values, or all zero.

    Example:
        >>> effective_sample_size([1.0, 1.0, 1.0, 1.0])
        4.0
        >>> effective_sample_size([1.0, 0.0, 0.0, 0.0])
        1.0
        >>> round(effective_sample_size([3.0, 1.0]), 4)  # 16 / 10
        1.6
    """
    if weights is None or isinstance(weights, (str, bytes)):
        raise TypeError(f"weights must be a 1-D array of non-negative numbers; got {weights!r}.")
    arr = np.asarray(weights)
    if arr.ndim != 1:
        raise ValueError(f"weights must be a 1-D array (one weight per sample); got shape {arr.shape}.")
    w = check_array(arr, "weights", min_samples=1).reshape(-1)
    if np.any(w < 0):
        raise ValueError(f"weights must be non-negative; got {int(np.sum(w < 0))} negative value(s), min {w.min():g}.")
    total = float(np.sum(w))
    if total <= 0:
        raise ValueError("weights are all zero; an effective sample size needs at least one positive weight.")
    w = w / w.max()  # scale-free and safe from overflow
    return float(np.sum(w) ** 2 / np.sum(w**2))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _make_classifier(classifier: Any, seed: int | None) -> Any:
    if isinstance(classifier, str):
        if classifier == "logistic":
            return LogisticRegression(C=1.0, max_iter=1000)
        if classifier == "gbm":
            from sklearn.ensemble import HistGradientBoostingClassifier  # 0.2 s to import: only when used

            return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=seed)
    est = clone(classifier)
    if seed is not None and "random_state" in est.get_params(deep=False):
        est.set_params(random_state=seed)
    return est


def _check_classifier(classifier: Any) -> Any:
    if isinstance(classifier, str):
        if classifier.lower() not in _CLASSIFIERS:
            raise ValueError(
                f"classifier must be 'logistic', 'gbm' or a scikit-learn classifier with predict_proba; "
                f"got {classifier!r}."
            )
        return classifier.lower()
    if not (hasattr(classifier, "fit") and hasattr(classifier, "predict_proba") and hasattr(classifier, "get_params")):
        raise TypeError(
            "classifier must be 'logistic', 'gbm' or a scikit-learn classifier with fit and predict_proba "
            f"(e.g. sklearn.ensemble.RandomForestClassifier()); got {type(classifier).__name__}."
        )
    return classifier


class DensityRatioEstimator:
    """Estimate `w(x) = p_target(x) / p_source(x)` with a cross-fitted, calibrated domain classifier.

    See the module docstring for the method. Parameters are stored as given (scikit-learn's
    convention); `fit` validates the data and sets the attributes ending in `_`.

    Args:
        classifier: "logistic" (default: L2 logistic regression, C=1, on standardised features; the
            exact model of the log-ratio of two Gaussians with a shared covariance), "gbm"
            (scikit-learn's HistGradientBoostingClassifier: non-linear ratios, needs more rows), or
            any scikit-learn classifier with `predict_proba` (cloned per fold; its `random_state`
            set to `seed` when it has one).
        calibrate: Platt-calibrate the out-of-fold domain probabilities before taking odds.
        clip_quantile: cap the weights at this quantile of the source rows' raw ratios, in (0, 1];
            1.0 or None: no cap.
        n_splits: cross-fitting folds (>= 2); each domain needs at least `n_splits` rows.
        seed: seed of the fold split and of the classifier's randomness; None: unseeded.

    Attributes (after `fit`):
        weights_: the source rows' out-of-fold weights, `(n_source,)`, clipped, mean 1.
        ess_: effective sample size of `weights_`, `(sum w)^2 / sum w^2`.
        ess_fraction_: `ess_ / n_source`, in (0, 1].
        domain_auc_: out-of-fold ROC AUC of the domain classifier (0.5: the domains look alike).
        clip_value_: the cap, in the units of the weights (`inf` without clipping).
        normalizer_: the scale dividing the clipped raw ratios (their source mean).
        n_source_, n_target_, n_features_in_: the sizes seen in `fit`.
        calibration_: `(a, b)` of the Platt map on the log-odds (`(1, 0)` without calibration).
        fraction_clipped_: share of source rows whose raw ratio was capped.

    Raises:
        ValueError / TypeError: bad settings (at `fit`, naming the argument).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(1)
        >>> est = DensityRatioEstimator(seed=0).fit(rng.normal(size=(300, 3)), rng.normal(size=(300, 3)))
        >>> bool(est.ess_fraction_ > 0.9), bool(abs(est.domain_auc_ - 0.5) < 0.1)
        (True, True)
    """

    def __init__(
        self,
        *,
        classifier: Any = "logistic",
        calibrate: bool = True,
        clip_quantile: float | None = CLIP_QUANTILE,
        n_splits: int = N_SPLITS,
        seed: int | None = None,
    ):
        self.classifier = classifier
        self.calibrate = calibrate
        self.clip_quantile = clip_quantile
        self.n_splits = n_splits
        self.seed = seed

    # ------------------------------------------------------------------ settings
    def _settings(self) -> tuple[Any, bool, float | None, int, int | None]:
        classifier = _check_classifier(self.classifier)
        if not isinstance(self.calibrate, (bool, np.bool_)):
            raise TypeError(f"calibrate must be True or False; got {self.calibrate!r}.")
        q = self.clip_quantile
        if q is not None:
            q = check_real(q, "clip_quantile", low=0, high=1, low_open=True,
                           example=f"{CLIP_QUANTILE} (None or 1.0: no clipping)")
            if q == 1.0:
                q = None
        n_splits = check_positive_int(self.n_splits, "n_splits", minimum=2)
        seed = check_seed(self.seed)
        return classifier, bool(self.calibrate), q, n_splits, seed

    # ------------------------------------------------------------------ fitting
    def fit(self, x_source: Any, x_target: Any) -> DensityRatioEstimator:
        """Fit the domain classifier (cross-fitted), its calibration, the cap and the source weights.

        Args:
            x_source: source features `(n, d)` (flatten images or pass a model's embedding first).
            x_target: target features `(m, d)`, the same `d` columns in the same order.

        Returns:
            self, fitted (see the class's Attributes).

        Raises:
            TypeError: non-numeric input or a bad `classifier` / `calibrate` / `seed`.
            ValueError: 1-D or >2-D input, NaN/inf, too few rows (each domain needs `n_splits`),
                different feature counts, or a bad `clip_quantile` / `n_splits`.
        """
        classifier, calibrate, q, n_splits, seed = self._settings()
        xs = _check_2d(x_source, "x_source", min_samples=1)
        xt = _check_2d(x_target, "x_target", min_samples=1)
        if xs.shape[1] != xt.shape[1]:
            raise ValueError(
                f"x_source has {xs.shape[1]} features but x_target has {xt.shape[1]}. Pass the same columns "
                "(or the same model's features) for both domains, in the same order."
            )
        for arr, name in ((xs, "x_source"), (xt, "x_target")):
            if len(arr) < n_splits:
                raise ValueError(
                    f"{name} has {len(arr)} row(s); cross-fitting with n_splits={n_splits} needs at least "
                    f"{n_splits} per domain. Pass more rows or a smaller n_splits (>= 2)."
                )
        n_s, n_t = len(xs), len(xt)
        self.scaler_ = Standardizer().fit(np.concatenate([xs, xt]))
        z = self.scaler_.transform(np.concatenate([xs, xt]))
        d = np.r_[np.zeros(n_s, dtype=int), np.ones(n_t, dtype=int)]

        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        oof = np.empty(len(z))
        self.classifiers_ = []
        for k, (train, test) in enumerate(folds.split(z, d)):
            clf = _make_classifier(classifier, None if seed is None else seed + k)
            clf.fit(z[train], d[train])
            oof[test] = self._positive_logit(clf, z[test])
            self.classifiers_.append(clf)

        self.domain_auc_ = float(roc_auc_score(d, oof))
        if calibrate:
            platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof.reshape(-1, 1), d)
            slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
            if slope <= 0:  # out-of-fold scores no better than chance: no evidence of a ratio
                slope, intercept = 0.0, float(np.log(n_t / n_s))
            self.calibration_ = (slope, intercept)
        else:
            self.calibration_ = (1.0, 0.0)
        self.prior_log_ratio_ = float(np.log(n_s / n_t))
        raw = self._raw(oof[:n_s])
        self.clip_raw_ = float(np.quantile(raw, q)) if q is not None else float("inf")
        clipped = np.minimum(raw, self.clip_raw_)
        self.fraction_clipped_ = float(np.mean(raw > self.clip_raw_))
        self.normalizer_ = float(np.mean(clipped))
        self.weights_ = clipped / self.normalizer_
        self.clip_value_ = self.clip_raw_ / self.normalizer_
        self.ess_ = effective_sample_size(self.weights_)
        self.ess_fraction_ = self.ess_ / n_s
        self.n_source_, self.n_target_, self.n_features_in_ = n_s, n_t, xs.shape[1]
        return self

    @staticmethod
    def _positive_logit(clf: Any, z: np.ndarray) -> np.ndarray:
        """Log-odds of 'target' from a fitted classifier."""
        proba = np.asarray(clf.predict_proba(z))
        col = int(np.flatnonzero(np.asarray(clf.classes_) == 1)[0])
        return _logit(proba[:, col])

    def _raw(self, logit: np.ndarray) -> np.ndarray:
        """Unclipped, unnormalised ratios from (uncalibrated) log-odds: calibrated odds x n_s / n_t."""
        a, b = self.calibration_
        return np.exp(np.clip(a * logit + b + self.prior_log_ratio_, -700.0, 700.0))

    # ------------------------------------------------------------------ using it
    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise AttributeError(
                "This DensityRatioEstimator is not fitted yet. Call fit(x_source, x_target) before using it."
            )

    def _new_logits(self, x: Any, name: str) -> np.ndarray:
        self._check_fitted()
        arr = _check_2d(x, name, min_samples=1)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{name} has {arr.shape[1]} features, but the estimator was fitted on {self.n_features_in_}. "
                "Pass the same columns as in fit."
            )
        z = self.scaler_.transform(arr)
        return np.mean([self._positive_logit(clf, z) for clf in self.classifiers_], axis=0)

    def density_ratio(self, x: Any) -> np.ndarray:
        """The estimated ratio `p_t(x) / p_s(x)` of new rows, neither clipped nor normalised.

        Args:
            x: rows `(n, d)` with the columns seen in `fit`.

        Returns:
            Positive ratios, shape `(n,)` (the fold classifiers' mean log-odds, calibrated,
            times `n_source / n_target`).
        """
        return self._raw(self._new_logits(x, "x"))

    def weights(self, x: Any) -> np.ndarray:
        """Importance weights of new rows: the ratio capped at `clip_value_`, on the scale of `weights_`.

        `weights(x) = min(density_ratio(x) / normalizer_, clip_value_)`: the same cap and scale
        as the source rows' `weights_` (which average 1), so weights of held-out source rows are
        comparable with them. The fold classifiers are averaged (their mean log-odds), so rows seen
        in `fit` get weights close to, but not equal to, their out-of-fold `weights_`.

        Args:
            x: rows `(n, d)` with the columns seen in `fit`.

        Returns:
            Non-negative weights, shape `(n,)`.

        Raises:
            AttributeError: not fitted. ValueError / TypeError: bad rows (1-D, NaN, wrong width).

        Example:
            >>> import numpy as np
            >>> rng = np.random.default_rng(0)
            >>> est = DensityRatioEstimator(seed=0).fit(rng.normal(size=(200, 1)), rng.normal(1, size=(200, 1)))
            >>> bool(est.weights(np.array([[2.0]]))[0] > est.weights(np.array([[0.0]]))[0])
            True
        """
        raw = self._raw(self._new_logits(x, "x"))
        return np.minimum(raw, self.clip_raw_) / self.normalizer_

    def summary(self) -> dict[str, Any]:
        """The fitted figures as a JSON-ready dict (ESS, AUC, cap, calibration)."""
        self._check_fitted()
        return {
            "n_source": self.n_source_, "n_target": self.n_target_, "ess": self.ess_,
            "ess_fraction": self.ess_fraction_, "domain_auc": self.domain_auc_,
            "clip_value": self.clip_value_ if np.isfinite(self.clip_value_) else None,
            "fraction_clipped": self.fraction_clipped_, "calibration": list(self.calibration_),
            "max_weight": float(self.weights_.max()),
        }
