"""Watching a deployed model's inputs over time: windows, a sequential alarm, a change point.

A `Reference` snapshot (`shiftkit snapshot`) describes the data the model was validated on.
`StreamMonitor` takes production rows as they come (`update(batch)`), cuts them into windows of
`window` rows, and for each window measures against the snapshot (with the snapshot's fixed
bandwidths, so every window is on one scale):

* ``input``: MMD^2 of the standardised inputs, window vs the reference;
* ``feature``: MMD^2 of the model's features (with a model and a snapshot that holds features);
* ``bbsd``: the largest Kolmogorov-Smirnov distance over the model's softmax outputs (black-box shift
  detection; with a model and a snapshot that holds probabilities);
* ``labels``: total variation between the window's class proportions and the reference's: the true
  labels when the window comes with them, else the model's predicted classes (vs the reference's).

Each window also reports the estimated label proportions (EM on the model's probabilities) and the
estimated accuracy with its interval (`shiftkit.shift.accuracy.AccuracyEstimator`, fitted on the
snapshot's probabilities and labels), when the snapshot allows.

**The alarm.** Each statistic is standardised by its null mean and standard deviation and fed to a
one-sided CUSUM (`S_t = max(0, S_{t-1} + z_t - drift)`); the alarm fires when the largest CUSUM passes
the threshold `h`. `h` is calibrated by simulation so that the probability of *any* false alarm within
`horizon` windows of unshifted data is at most `alpha` (all statistics together): the snapshot's
rows are split (seeded) in two halves, one the statistics compare against, the other a pool from which
`n_null_windows` null windows are drawn (rows without replacement within a window); the null statistics
of many simulated runs of `horizon` windows are resampled from those windows, widened for what a finite
pool cannot show (fresh windows vary more than windows of one pool; the pool's mean is an estimate whose
error every window shares): the bound is approximate, and the closer the larger the snapshot is
compared with the window (`benchmarks/bench_monitor.py` measures it). Beyond `horizon` windows
the stated false-alarm bound no longer holds (`WindowResult.in_horizon` is False; re-baseline).
The change point is the CUSUM's estimate: the window after the last time the alarming statistic's
CUSUM was zero.

Evidence accumulates across windows, so a gradual shift that no single window shows clearly is
caught sooner than by per-window tests at a Bonferroni-corrected level (`benchmarks/bench_monitor.py`).

Example:
    >>> ref = Reference.load("ref.npz")                                      # doctest: +SKIP
    >>> mon = StreamMonitor(ref, model=model, window=500, seed=0)           # doctest: +SKIP
    >>> for batch in batches:                                                # doctest: +SKIP
    ...     for res in mon.update(batch):
    ...         print(res.window, res.alarm, res.statistics)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.stats import ks_2samp
from sklearn.metrics.pairwise import rbf_kernel
from threadpoolctl import ThreadpoolController

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import check_alpha, check_array, check_positive_int, check_real, check_seed
from shiftkit.check import Reference
from shiftkit.shift.accuracy import AccuracyEstimator
from shiftkit.shift.features import FeatureSpace, predict_proba

__all__ = ["StreamMonitor", "WindowResult", "STATISTICS"]

#: The per-window statistics, in the order they are reported.
STATISTICS = ("input", "feature", "bbsd", "labels")
#: CUSUM reference value in null standard deviations: tuned to shifts of about 2 s.d. per window (the
#: classic choice drift = half the shift to detect).
DRIFT = 1.0
#: Simulated unshifted runs that calibrate the threshold.
N_SIMULATIONS = 4000
_THREADPOOLS: list[ThreadpoolController] = []


def _one_blas_thread():
    """Context limiting BLAS to one thread: window-sized products are faster so, and do not contend."""
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class WindowResult:
    """One window's measurements and the alarm's state after it.

    Attributes:
        window: index of the window (0 first).
        start, stop: rows of the stream it covers (`stop` exclusive).
        statistics: each statistic's raw value (see the module docstring).
        z: each statistic standardised by its null mean and standard deviation.
        cusum: each statistic's CUSUM after this window.
        score: the largest CUSUM (what the threshold is compared with).
        threshold: the calibrated threshold `h`.
        alarm: True once the alarm has fired (at this window or before).
        alarm_window: the window at which it fired (None before).
        change_point: the estimated first shifted window (None before the alarm).
        alarm_statistic: the statistic whose CUSUM fired.
        in_horizon: whether this window is within the calibrated `horizon`.
        label_proportions: the window's class proportions (true labels) or their EM estimate.
        label_source: "labels", "estimated" or None.
        accuracy: the estimated accuracy (None when the snapshot has no probabilities and labels).
        accuracy_interval: `(lower, upper)` of that estimate.
        accuracy_method: the estimator used.
        time_start, time_end: the first and last time of the window's rows (`update(..., times=)`).
    """

    window: int
    start: int
    stop: int
    statistics: dict[str, float]
    z: dict[str, float]
    cusum: dict[str, float]
    score: float
    threshold: float
    alarm: bool
    alarm_window: int | None
    change_point: int | None
    alarm_statistic: str | None
    in_horizon: bool
    label_proportions: tuple[float, ...] | None = None
    label_source: str | None = None
    accuracy: float | None = None
    accuracy_interval: tuple[float, float] | None = None
    accuracy_method: str | None = None
    time_start: Any = None
    time_end: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


def _mmd2_against(window: np.ndarray, ref: np.ndarray, gamma: float, ref_term: float) -> float:
    """Unbiased MMD^2 of `window` vs `ref` with the Gaussian kernel `exp(-gamma d^2)`; `ref_term` precomputed."""
    w = len(window)
    kww = rbf_kernel(window, window, gamma=gamma)
    within = (kww.sum() - np.trace(kww)) / (w * (w - 1))
    return float(within + ref_term - 2.0 * rbf_kernel(window, ref, gamma=gamma).mean())


def _within_term(ref: np.ndarray, gamma: float) -> float:
    k = rbf_kernel(ref, ref, gamma=gamma)
    n = len(ref)
    return float((k.sum() - np.trace(k)) / (n * (n - 1)))


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for JSON); other values as they are."""
    return value.item() if isinstance(value, np.generic) else value


def _tv(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(p - q).sum())


class StreamMonitor:
    """Sequential shift monitor over windows of a stream, against a reference snapshot.

    Args:
        reference: a `shiftkit.check.Reference` (`Reference.load(path)` or `Reference.from_data(...)`).
        model: the Keras model the snapshot was made with (optional: without it only the input and
            label statistics run).
        layer: the feature layer, as given to `shiftkit snapshot --layer` (default: the head's input).
        window: rows per window (>= 10).
        alpha: probability of any false alarm within `horizon` windows of unshifted data.
        horizon: windows over which `alpha` is guaranteed (default 100).
        statistics: which statistics join the alarm (default: every one the snapshot and model allow).
        n_null_windows: null windows drawn from the reference's calibration half (default 500).
        drift: the CUSUM reference value `k`, in null standard deviations (default `DRIFT`).
        labeled: the windows come with true labels (`update(x, y)` every time): the labels statistic
            then compares true class proportions (needs a labelled snapshot); default False: the
            model's predicted classes (needs a model).
        estimate_accuracy: estimate each window's accuracy when the snapshot holds probabilities and
            labels (default True).
        seed: seed of the reference split, the null windows and the simulations.

    Attributes (after construction):
        threshold_: the calibrated CUSUM threshold `h`.
        statistics_: the statistics in the alarm.
        null_mean_, null_std_: per statistic, over the null windows.
        results_: every `WindowResult` so far.
        alarm_window_, change_point_: set once the alarm fires (else None).

    Raises:
        TypeError / ValueError: a reference that is not a `Reference`; a window larger than half the
            reference's stored rows allows (it needs `2 * window` rows for a calibration pool); bad
            alpha/horizon/window; a model other than the snapshot's (feature width, number of classes).
    """

    def __init__(
        self,
        reference: Reference,
        *,
        model: Any = None,
        layer: str | int | None = None,
        window: int = 500,
        alpha: float = 0.05,
        horizon: int = 100,
        statistics: Sequence[str] | None = None,
        n_null_windows: int = 500,
        drift: float = DRIFT,
        labeled: bool = False,
        estimate_accuracy: bool = True,
        seed: int | None = 0,
    ) -> None:
        if not isinstance(reference, Reference):
            raise TypeError(
                f"reference must be a shiftkit Reference (Reference.load('ref.npz') or Reference.from_data(x, y, "
                f"model=...)); got {type(reference).__name__}."
            )
        self.reference = reference
        self.model = model
        self.layer = layer
        self.window = check_positive_int(window, "window", minimum=10)
        self.alpha = check_alpha(alpha)
        self.horizon = check_positive_int(horizon, "horizon")
        self.n_null_windows = check_positive_int(n_null_windows, "n_null_windows", minimum=50)
        self.drift = check_real(drift, "drift", low=0, example=DRIFT)
        self.seed = check_seed(seed)
        self.estimate_accuracy = bool(estimate_accuracy)
        self.labeled = bool(labeled)
        if self.labeled and reference.label_counts is None:
            raise ValueError("labeled=True needs a snapshot made with labels (shiftkit snapshot --label-column).")
        available = ["input"]
        if model is not None:
            if reference.features is not None:
                available.append("feature")
            if reference.probs is not None:
                available.append("bbsd")
        if self.labeled or (model is not None and reference.probs is not None):
            available.append("labels")
        if statistics is None:
            statistics = available
        statistics = tuple(statistics)
        bad = [s for s in statistics if s not in available]
        if bad or not statistics:
            raise ValueError(
                f"statistics {list(bad) or list(statistics)} cannot run here; available with this snapshot and model: "
                f"{available} (feature and bbsd need a model and a snapshot made with it)."
            )
        self.statistics_ = statistics
        n_ref = len(reference.x)
        if n_ref < 4 * self.window:
            raise ValueError(
                f"window={self.window} is too large for a snapshot of {n_ref} rows: the monitor compares each window "
                f"with half of them and calibrates its alarm on windows drawn from the other half, so it needs at "
                f"least 4 x window = {4 * self.window} rows. Use window <= {n_ref // 4}, or a snapshot with more rows "
                "(shiftkit snapshot --max-samples)."
            )
        with _one_blas_thread():
            self._prepare()
            self._calibrate()
        self.reset()

    def reset(self) -> StreamMonitor:
        """Forget the stream (windows, CUSUMs, alarm, buffered rows); keep the calibration. Returns self."""
        self._buffer_x: list[np.ndarray] = []
        self._buffer_y: list[np.ndarray] = []
        self._buffer_t: list[np.ndarray] = []
        self._buffered = 0
        self._rows_seen = 0
        self._cusum = {s: 0.0 for s in self.statistics_}
        self._last_zero = {s: -1 for s in self.statistics_}
        self.results_: list[WindowResult] = []
        self.alarm_window_: int | None = None
        self.change_point_: int | None = None
        self.alarm_statistic_: str | None = None
        return self

    # ------------------------------------------------------------------------------ preparation
    def _prepare(self) -> None:
        ref = self.reference
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(ref.x))
        half = len(order) // 2
        self._ref_rows, self._pool_rows = np.sort(order[:half]), np.sort(order[half:])
        x_std = ref.standardize(ref.x).reshape(len(ref.x), -1)
        self._x_std = x_std
        self._gamma_in = 1.0 / (2.0 * float(ref.bandwidth) ** 2)
        self._ref_in = x_std[self._ref_rows]
        self._ref_in_term = _within_term(self._ref_in, self._gamma_in)
        self._features = None
        if "feature" in self.statistics_:
            self._fs = FeatureSpace(self.model, self.layer)
            if ref.layer is not None and self._fs.layer_name != ref.layer:
                raise ValueError(
                    f"The snapshot's features come from layer {ref.layer!r}, not {self._fs.layer_name!r}: pass the "
                    "same layer as for the snapshot."
                )
            feats = np.asarray(ref.features, np.float64).reshape(len(ref.x), -1)
            self._features = feats
            self._gamma_f = 1.0 / (2.0 * float(ref.feature_bandwidth) ** 2)
            self._ref_f = feats[self._ref_rows]
            self._ref_f_term = _within_term(self._ref_f, self._gamma_f)
        self._probs = None if ref.probs is None else np.asarray(ref.probs, np.float64)
        self._ref_probs = None if self._probs is None else self._probs[self._ref_rows]
        # Label proportions the windows are compared with: the reference's labels (true-label windows) and
        # the reference half's predicted classes (windows without labels).
        self._k = None
        if ref.label_counts is not None:
            self._k = len(ref.label_counts)
            self._ref_label_props = np.asarray(ref.label_counts, np.float64) / np.sum(ref.label_counts)
        if self._probs is not None:
            self._k = self._probs.shape[1]
            self._ref_pred_props = np.bincount(self._ref_probs.argmax(1), minlength=self._k) / len(self._ref_rows)
        self._accuracy = None  # also estimates the label proportions of unlabelled windows
        if self._probs is not None and ref.y is not None and self.model is not None:
            try:
                self._accuracy = AccuracyEstimator(n_bootstrap=100, seed=self.seed).fit(self._probs, ref.y)
            except ValueError:  # a class without reference rows: no accuracy estimate
                self._accuracy = None

    def _window_statistics(self, x_std: np.ndarray, feats: np.ndarray | None, probs: np.ndarray | None,
                           labels: np.ndarray | None) -> dict[str, float]:
        out: dict[str, float] = {}
        if "input" in self.statistics_:
            out["input"] = _mmd2_against(x_std, self._ref_in, self._gamma_in, self._ref_in_term)
        if "feature" in self.statistics_:
            out["feature"] = _mmd2_against(feats, self._ref_f, self._gamma_f, self._ref_f_term)
        if "bbsd" in self.statistics_:
            cols = probs.shape[1] if probs.shape[1] > 2 else 1
            out["bbsd"] = float(np.max(ks_2samp(self._ref_probs[:, -cols:], probs[:, -cols:], axis=0).statistic))
        if "labels" in self.statistics_:
            if self.labeled:
                out["labels"] = _tv(np.bincount(labels, minlength=self._k) / len(labels), self._ref_label_props)
            else:
                out["labels"] = _tv(np.bincount(probs.argmax(1), minlength=self._k) / len(probs), self._ref_pred_props)
        return out

    def _calibrate(self) -> None:
        """Null windows from the pool half; threshold from simulated runs of `horizon` windows."""
        rng = np.random.default_rng(None if self.seed is None else [self.seed, 1])
        pool = self._pool_rows
        null = []
        for _ in range(self.n_null_windows):
            rows = rng.choice(pool, size=self.window, replace=False)
            feats = None if self._features is None else self._features[rows]
            probs = None if self._probs is None else self._probs[rows]
            labels = self.reference.y[rows] if self.labeled else None
            stats = self._window_statistics(self._x_std[rows], feats, probs, labels)
            null.append([stats[s] for s in self.statistics_])
        null = np.asarray(null, np.float64)
        self.null_mean_ = dict(zip(self.statistics_, null.mean(axis=0)))
        std = null.std(axis=0, ddof=1)
        self.null_std_ = dict(zip(self.statistics_, np.where(std > 0, std, 1.0)))
        z = (null - null.mean(axis=0)) / np.where(std > 0, std, 1.0)
        self._null_z = z
        # Simulated unshifted runs: windows resampled from the null windows, CUSUM per statistic. The null
        # windows come from a finite pool, so (1) they vary less than fresh windows (finite-population
        # correction: variance x (1 - window / pool)) and (2) their mean, the standardisation's centre, is
        # itself an estimate whose error (about sqrt(window / pool) null s.d.) every later window shares and
        # the CUSUM accumulates. Each simulated run gets both: z scaled up by the FPC and one offset per
        # statistic drawn with that error (a predictive calibration of a CUSUM with estimated parameters).
        frac = self.window / len(self._pool_rows)
        self.pool_fraction_ = frac
        draws = rng.integers(0, len(z), size=(N_SIMULATIONS, self.horizon))
        offsets = rng.normal(0.0, math.sqrt(frac), size=(N_SIMULATIONS, z.shape[1]))
        inflate = 1.0 / math.sqrt(1.0 - frac)
        s = np.zeros((N_SIMULATIONS, z.shape[1]))
        run_max = np.zeros(N_SIMULATIONS)
        for t in range(self.horizon):
            s = np.maximum(0.0, s + inflate * z[draws[:, t]] + offsets - self.drift)
            run_max = np.maximum(run_max, s.max(axis=1))
        self.threshold_ = float(np.quantile(run_max, 1.0 - self.alpha, method="higher"))
        # Smallest threshold that a window could pass: guard against a degenerate (all-zero) null.
        self.threshold_ = max(self.threshold_, 1e-9)

    # ------------------------------------------------------------------------------ streaming
    def update(self, x: Any, y: Any = None, *, times: Any = None) -> list[WindowResult]:
        """Add rows (in time order); returns the results of the windows they completed (maybe none).

        Args:
            x: a batch of inputs `(n, ...)` with the reference's per-sample shape.
            y: optional labels of those rows (any class values the reference knows); give them for
                every batch or for none.
            times: optional time of each row (numbers or text), reported as each window's span.

        Returns:
            One `WindowResult` per window completed by this batch (rows left over wait for the next).
        """
        x = check_array(x, "x", min_samples=1)
        if x.shape[1:] != self.reference.x.shape[1:]:
            raise ValueError(
                f"x has per-sample shape {x.shape[1:]}, but the reference has {self.reference.x.shape[1:]}: select the "
                "same columns, in the same order, as the reference."
            )
        if times is not None:
            times = np.asarray(times)
            if times.shape != (len(x),):
                raise ValueError(f"times has shape {times.shape}; pass one time per row of x ({len(x)},).")
            self._buffer_t.append(times)
        elif self._buffer_t:
            raise ValueError("times were given for earlier batches but not for this one: give them for every batch or none.")
        self._buffer_x.append(x)
        if self.labeled:
            if y is None:
                raise ValueError("This monitor was made with labeled=True: pass the labels of every batch, update(x, y).")
            self._buffer_y.append(self.reference.target_codes(y, len(x), self.model))
        self._buffered += len(x)
        out = []
        while self._buffered >= self.window:
            xs = np.concatenate(self._buffer_x)
            ys = np.concatenate(self._buffer_y) if self._buffer_y else None
            ts = np.concatenate(self._buffer_t) if self._buffer_t else None
            result = self._process(xs[: self.window], None if ys is None else ys[: self.window])
            if ts is not None:
                result = dataclasses.replace(result, time_start=_plain(ts[0]), time_end=_plain(ts[self.window - 1]))
                self.results_[-1] = result
            out.append(result)
            self._buffer_x = [xs[self.window:]]
            self._buffer_y = [ys[self.window:]] if ys is not None else []
            self._buffer_t = [ts[self.window:]] if ts is not None else []
            self._buffered -= self.window
        return out

    def _process(self, x: np.ndarray, y: np.ndarray | None) -> WindowResult:
        # Window-sized products are faster on one BLAS thread (and do not contend with the model's threads).
        with _one_blas_thread():
            return self._process_window(x, y)

    def _process_window(self, x: np.ndarray, y: np.ndarray | None) -> WindowResult:
        index = len(self.results_)
        x_std = self.reference.standardize(x).reshape(len(x), -1)
        feats = probs = None
        if self.model is not None and ("feature" in self.statistics_):
            feats = np.asarray(self._fs(x), np.float64).reshape(len(x), -1)
        if self.model is not None and self._probs is not None:
            probs = predict_proba(self.model, x)
        stats = self._window_statistics(x_std, feats, probs, y)
        z = {s: float((stats[s] - self.null_mean_[s]) / self.null_std_[s]) for s in self.statistics_}
        for s in self.statistics_:
            self._cusum[s] = max(0.0, self._cusum[s] + z[s] - self.drift)
            if self._cusum[s] == 0.0:
                self._last_zero[s] = index
        score_stat = max(self.statistics_, key=lambda s: self._cusum[s])
        score = self._cusum[score_stat]
        if self.alarm_window_ is None and score > self.threshold_:
            self.alarm_window_ = index
            self.alarm_statistic_ = score_stat
            self.change_point_ = self._last_zero[score_stat] + 1
        label_props = label_source = None
        acc = acc_int = acc_method = None
        if y is not None and self._k is not None:
            label_props, label_source = tuple(np.bincount(y, minlength=self._k) / len(y)), "labels"
        elif probs is not None and self._accuracy is not None:
            label_props, label_source = tuple(float(v) for v in self._accuracy.target_priors(probs)), "estimated"
        if self.estimate_accuracy and self._accuracy is not None and probs is not None:
            a = self._accuracy.estimate(probs)
            acc, acc_int, acc_method = a.accuracy, (a.lower, a.upper), a.method
        start = self._rows_seen
        self._rows_seen += len(x)
        result = WindowResult(
            window=index, start=start, stop=self._rows_seen, statistics=stats, z=z, cusum=dict(self._cusum),
            score=float(score), threshold=self.threshold_, alarm=self.alarm_window_ is not None,
            alarm_window=self.alarm_window_, change_point=self.change_point_, alarm_statistic=self.alarm_statistic_,
            in_horizon=index < self.horizon, label_proportions=label_props, label_source=label_source,
            accuracy=acc, accuracy_interval=acc_int, accuracy_method=acc_method,
        )
        self.results_.append(result)
        return result

    def summary(self) -> dict[str, Any]:
        """The run so far: windows, the alarm and change point, the calibration, in plain numbers."""
        return {
            "windows": len(self.results_), "rows": self._rows_seen, "window": self.window, "alpha": self.alpha,
            "horizon": self.horizon, "statistics": list(self.statistics_), "threshold": self.threshold_,
            "drift": self.drift, "alarm_window": self.alarm_window_, "change_point": self.change_point_,
            "alarm_statistic": self.alarm_statistic_,
            "false_alarm_bound": f"P(any false alarm within {self.horizon} windows) <= {self.alpha:g} (simulated "
                                 f"from {self.n_null_windows} null windows of the reference's calibration half)",
        }
