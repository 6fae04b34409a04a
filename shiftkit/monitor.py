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

**Windows by time period.** `period_windows(times, every)` cuts a time-ordered table into windows of
whole periods (`every`: a pandas offset alias such as "1D" for date times, a number for numeric times),
each labelled by its period's start; `StreamMonitor.update_periods` measures each on a seeded sample of
`window` rows (the size the alarm is calibrated for), so the false-alarm bound still holds. A period
with fewer than `window` rows is merged forward into the next (`small="merge"`, the default) or skipped
(`small="skip"`); the result says which periods were.

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
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy.stats import ks_2samp
from sklearn.metrics.pairwise import rbf_kernel
from threadpoolctl import ThreadpoolController

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import (check_alpha, check_array, check_positive_int, check_real, check_seed,
                                  select_columns)
from shiftkit.check import Reference, priors_in_class_order
from shiftkit.shift.accuracy import AccuracyEstimator, check_target_priors
from shiftkit.shift.features import FeatureSpace, predict_proba

__all__ = ["StreamMonitor", "WindowResult", "STATISTICS", "Period", "PeriodWindows", "period_windows"]

#: The per-window statistics, in the order they are reported.
STATISTICS = ("input", "feature", "bbsd", "labels")
#: CUSUM reference value in null standard deviations: tuned to shifts of about 2 s.d. per window (the
#: classic choice drift = half the shift to detect).
DRIFT = 1.0
#: Simulated unshifted runs that calibrate the threshold.
N_SIMULATIONS = 4000
#: The most periods `period_windows` lays out (a finer `every` over a long span is refused).
MAX_PERIODS = 1_000_000
_ORDER = "times must be in time order (non-decreasing): sort the rows by time first (load_single(time_column=...) does)."
_EVERY_EXAMPLES = ("a pandas offset alias for date times (e.g. every='1D' a day, '6h', '15min', 'W' weeks, "
                   "'MS' months) or a positive number for numeric times (e.g. every=3600)")
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
        label_proportions: the window's class proportions (true labels) or their EM estimate, in
            the snapshot's class order (`label_classes`).
        label_source: "labels", "estimated" or None.
        accuracy: the estimated accuracy (None when the snapshot has no probabilities and labels).
        accuracy_interval: `(lower, upper)` of that estimate.
        accuracy_method: the estimator used.
        time_start, time_end: the first and last time of the window's rows (`update(..., times=)`).
        extra: `update_periods`' {"period_rows", "periods"}.
        label_classes: the class of each entry of `label_proportions` (the snapshot's class names,
            else its codes as text).
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
    label_classes: tuple[str, ...] | None = None

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
        target_priors: the stream's class proportions when known from outside the model (a
            registry's prevalence): each window's accuracy estimate transports onto them
            (`AccuracyEstimator.estimate(target_priors=...)`); a sequence in the snapshot's class
            order or a mapping {class value: proportion}. Needs the accuracy estimate.
        seed: seed of the reference split, the null windows and the simulations.

    Attributes (after construction):
        threshold_: the calibrated CUSUM threshold `h`.
        statistics_: the statistics in the alarm.
        reference_rows_: the snapshot rows every window is compared with (the other half calibrates).
        null_mean_, null_std_: per statistic, over the null windows.
        results_: every `WindowResult` so far.
        dropped_: rows the last `update_table(drop_na=True)` dropped.
        alarm_window_, change_point_: set once the alarm fires (else None).

    Raises:
        TypeError / ValueError: a reference that is not a `Reference`; a window larger than a quarter of
            the reference's stored rows (half of them are compared with, the other half is a calibration
            pool of at least `2 * window` rows: `4 * window` in all); bad
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
        target_priors: Any = None,
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
        if model is not None and reference.features is not None:
            reference.check_model(model, layer)  # a retrained model against an old snapshot: a false alarm
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
        self.target_priors = None
        if target_priors is not None:
            if not (self.estimate_accuracy and self._accuracy is not None):
                raise ValueError(
                    "target_priors is used by each window's accuracy estimate, which needs the snapshot's model (a "
                    "classifier), a snapshot made with labels and estimate_accuracy=True; leave target_priors out.")
            self.target_priors = check_target_priors(priors_in_class_order(target_priors, reference.classes),
                                                     self._accuracy.n_classes_)
        self.reset()

    def reset(self) -> StreamMonitor:
        """Forget the stream (windows, CUSUMs, alarm, buffered rows); keep the calibration. Returns self."""
        self._buffer_x: list[np.ndarray] = []
        self._buffer_y: list[np.ndarray] = []
        self._buffer_t: list[np.ndarray] = []
        self._buffered = 0
        self._timed: bool | None = None  # times given with the stream's batches (set by the first)
        self._rows_seen = 0
        self._unmonitored = 0  # rows of periods skipped by update_periods
        self.periods_: PeriodWindows | None = None
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
        self.reference_rows_ = self._ref_rows
        x_std = ref.standardize(ref.x).reshape(len(ref.x), -1)
        self._x_std = x_std
        self._gamma_in = 1.0 / (2.0 * float(ref.bandwidth) ** 2)
        self._ref_in = x_std[self._ref_rows]
        self._ref_in_term = _within_term(self._ref_in, self._gamma_in)
        self._features = None
        if "feature" in self.statistics_:
            self._fs = FeatureSpace(self.model, self.layer)
            ref.check_layer(self._fs.layer_name)
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
    def _rows(self, x: Any) -> np.ndarray:
        """`x` as the reference's rows: a DataFrame's columns matched to the snapshot's by name."""
        x = check_array(select_columns(x, self.reference.feature_names, ("the reference snapshot", "x")), "x",
                        min_samples=1)
        if x.shape[1:] != self.reference.x.shape[1:]:
            raise ValueError(
                f"x has per-sample shape {x.shape[1:]}, but the reference has {self.reference.x.shape[1:]}: select the "
                "same columns, in the same order, as the reference."
            )
        return x

    def update_table(self, path: Any, *, label_column: str | None = None, drop_na: bool = False,
                     chunk_rows: int | None = None, max_bytes: int | None = None) -> list[WindowResult]:
        """Add the rows of a CSV/Parquet file (in file order), read in chunks, never whole.

        Each chunk is validated as `shiftkit.files.load_single` validates a whole file
        (`shiftkit.files.stream.TableBatches`: the reference's columns, numbers, no missing values
        unless `drop_na`); with `labeled=True` the labels come from `label_column`, coded to the
        reference's classes. The windows are those `update` gives on the whole file.

        Args:
            path: a .csv or .parquet file. label_column: its label column (None: none).
            drop_na: drop rows with missing values (`dropped_` counts them).
            chunk_rows: rows per chunk (default `shiftkit.files.stream.DEFAULT_CHUNK_ROWS`).
            max_bytes: the most one chunk may take (`shiftkit.files.max_bytes_limit`).

        Returns:
            The results of the windows the file completed.

        Raises:
            InputError (a ValueError): an unreadable file, other columns than the reference's, bad values.
        """
        from shiftkit.files.stream import DEFAULT_CHUNK_ROWS, TableBatches

        batches = TableBatches(path, feature_names=self.reference.feature_names,
                               class_names=self.reference.class_names, label_column=label_column,
                               labeled=self.labeled, drop_na=drop_na,
                               chunk_rows=DEFAULT_CHUNK_ROWS if chunk_rows is None else chunk_rows,
                               max_bytes=max_bytes)
        results = [res for x, y in batches for res in self.update(x, y)]
        self.dropped_ = batches.dropped
        return results

    def update(self, x: Any, y: Any = None, *, times: Any = None) -> list[WindowResult]:
        """Add rows (in time order); returns the results of the windows they completed (maybe none).

        Args:
            x: a batch of inputs `(n, ...)` with the reference's per-sample shape (a DataFrame's
                columns are matched to the snapshot's `feature_names` by name).
            y: optional labels of those rows (any class values the reference knows); give them for
                every batch or for none.
            times: optional time of each row (numbers or text), reported as each window's span; give
                them for every batch of the stream or for none (a batch that breaks this is refused
                and leaves the stream unchanged).

        Returns:
            One `WindowResult` per window completed by this batch (rows left over wait for the next).
        """
        x = self._rows(x)
        timed = times is not None
        if timed:
            times = np.asarray(times)
            if times.shape != (len(x),):
                raise ValueError(f"times has shape {times.shape}; pass one time per row of x ({len(x)},).")
        if self._timed is not None and timed != self._timed:
            raise ValueError(
                f"times were {'given' if self._timed else 'not given'} for the earlier batches of this stream but "
                f"{'not ' if not timed else ''}for this one: give them for every batch or none (reset() starts a new "
                "stream)."
            )
        codes = None
        if self.labeled:
            if y is None:
                raise ValueError("This monitor was made with labeled=True: pass the labels of every batch, update(x, y).")
            codes = self.reference.target_codes(y, len(x), self.model)
        # Every check passed: only now does the stream change (a refused batch leaves nothing behind).
        self._timed = timed
        if timed:
            self._buffer_t.append(times)
        self._buffer_x.append(x)
        if codes is not None:
            self._buffer_y.append(codes)
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
            a = self._accuracy.estimate(probs, target_priors=self.target_priors)
            acc, acc_int, acc_method = a.accuracy, (a.lower, a.upper), a.method
        start = self._rows_seen
        self._rows_seen += len(x)
        result = WindowResult(
            window=index, start=start, stop=self._rows_seen, statistics=stats, z=z, cusum=dict(self._cusum),
            score=float(score), threshold=self.threshold_, alarm=self.alarm_window_ is not None,
            alarm_window=self.alarm_window_, change_point=self.change_point_, alarm_statistic=self.alarm_statistic_,
            in_horizon=index < self.horizon, label_proportions=label_props, label_source=label_source,
            accuracy=acc, accuracy_interval=acc_int, accuracy_method=acc_method,
            label_classes=None if label_props is None else self._class_labels(len(label_props)),
        )
        self.results_.append(result)
        return result

    def _class_labels(self, k: int) -> tuple[str, ...]:
        names = self.reference.class_names
        return tuple(str(c) for c in names) if names is not None and len(names) == k else tuple(map(str, range(k)))

    def update_periods(self, x: Any, y: Any = None, *, times: Any, every: Any,
                       small: str = "merge") -> tuple[list[WindowResult], PeriodWindows]:
        """Monitor a time-ordered table window by time period (`period_windows`) instead of by row count.

        Each period (periods with fewer than `window` rows merged forward, or skipped: `small`) is
        measured on a seeded sample of `window` of its rows without replacement, the window size the
        alarm is calibrated for, so the false-alarm bound holds as for `update`; its `WindowResult` has
        `time_start` / `time_end` = the period's start / end, `start` / `stop` = its rows in `x`, and
        `extra` = {"period_rows", "periods"} (rows in the period, periods merged into it).

        Args:
            x: the rows `(n, ...)`, in time order.
            y: optional labels of those rows (as for `update`).
            times: the time of each row (numbers or date times; `load_single(time_column=...).times`).
            every: the period: a pandas offset alias for date times ("1D", "6h", "W", "MS") or a
                positive number for numeric times.
            small: "merge" (default) or "skip" for periods with fewer than `window` rows.

        Returns:
            `(results, windows)`: one `WindowResult` per window, and the `PeriodWindows` (which periods
            were merged, skipped or empty: `windows.summary`).

        Raises:
            ValueError / TypeError: a bad `every` or `times` (see `period_windows`); rows left waiting
                from `update` (periods and row windows do not mix in one stream: `reset()` first).
        """
        x = self._rows(x)
        if self._buffered:
            raise ValueError(f"{self._buffered} rows from update() wait for a window: periods and row windows do not mix "
                             "in one stream; call reset() first.")
        times = np.asarray(times)
        if times.shape != (len(x),):
            raise ValueError(f"times has shape {times.shape}; pass one time per row of x ({len(x)},).")
        codes = None
        if self.labeled:
            if y is None:
                raise ValueError("This monitor was made with labeled=True: pass the labels, update_periods(x, y, ...).")
            codes = self.reference.target_codes(y, len(x), self.model)
        cut = period_windows(times, every, min_rows=self.window, small=small)
        out = []
        for period in cut.windows:
            index = len(self.results_)
            rng = np.random.default_rng(None if self.seed is None else [self.seed, 2, index])
            rows = np.sort(rng.choice(period.rows, size=self.window, replace=False))
            result = self._process(x[rows], None if codes is None else codes[rows])
            result = dataclasses.replace(
                result, start=int(period.rows[0]), stop=int(period.rows[-1]) + 1, time_start=period.label,
                time_end=period.end, extra={"period_rows": period.n_rows, "periods": period.n_periods})
            self.results_[-1] = result
            out.append(result)
        self._rows_seen = max(self._rows_seen, len(x))
        self._unmonitored = sum(n for _, n in cut.skipped)
        self.periods_ = cut
        return out, cut

    def summary(self) -> dict[str, Any]:
        """The run so far: windows, the alarm and change point, the calibration, in plain numbers.

        `rows` counts the rows given; `rows_not_monitored` those in no window (a last partial window
        of `update`, periods `update_periods` skipped); `notes` says in sentences what a reader must
        know besides the verdict (rows in no window, merged or skipped periods, windows beyond the
        calibrated horizon).
        """
        notes = []
        if self._buffered:
            notes.append(f"{self._buffered} trailing rows not monitored (fewer than one window of {self.window} rows; "
                         "more rows would complete it).")
        if self.periods_ is not None and (self.periods_.merged or self.periods_.skipped or self.periods_.empty_periods):
            notes.append(f"Periods: {self.periods_.summary}")
        beyond = len(self.results_) - self.horizon
        if beyond > 0:
            notes.append(f"{beyond} window(s) beyond the horizon of {self.horizon}: the false-alarm bound covers the "
                         f"first {self.horizon} only; re-baseline (a new snapshot) or raise the horizon.")
        return {
            "windows": len(self.results_), "rows": self._rows_seen + self._buffered, "window": self.window,
            "alpha": self.alpha,
            "rows_not_monitored": self._buffered + self._unmonitored, "notes": notes,
            "horizon": self.horizon, "statistics": list(self.statistics_), "threshold": self.threshold_,
            "drift": self.drift, "alarm_window": self.alarm_window_, "change_point": self.change_point_,
            "alarm_statistic": self.alarm_statistic_,
            "false_alarm_bound": f"P(any false alarm within {self.horizon} windows) <= {self.alpha:g} (simulated "
                                 f"from {self.n_null_windows} null windows of the reference's calibration half)",
        }


# ---------------------------------------------------------------------------------- time periods
@dataclass(frozen=True, eq=False)
class Period:
    """One window of whole time periods (`period_windows`).

    Attributes:
        label: the start of its (first) period: ISO 8601 text for date times, a number for numeric times.
        end: the end (exclusive) of its last period, in the same form.
        rows: the indices of its rows in the times given (ascending).
        n_periods: the periods it covers (more than one when smaller periods were merged forward into it;
            empty periods between them included).
    """

    label: Any
    end: Any
    rows: np.ndarray
    n_periods: int = 1

    @property
    def n_rows(self) -> int:
        return int(len(self.rows))


@dataclass(frozen=True, eq=False)
class PeriodWindows:
    """Time-ordered rows cut into windows by period (`period_windows`), and what happened to small periods.

    Attributes:
        windows: the windows, in time order.
        every: the period (the offset alias, or the number, as given).
        min_rows: the fewest rows a window may hold.
        small: "merge" (a period with fewer rows was merged forward into the next) or "skip" (dropped).
        merged: labels of the periods merged forward into a later window.
        skipped: `(label, rows)` of each period dropped for too few rows ("skip"), and of the last
            periods still short when the rows ran out ("merge": nothing later to merge into).
        empty_periods: periods within the span that hold no row (no window).
    """

    windows: tuple[Period, ...]
    every: Any
    min_rows: int
    small: str
    merged: tuple[Any, ...] = ()
    skipped: tuple[tuple[Any, int], ...] = ()
    empty_periods: int = 0

    @property
    def summary(self) -> str:
        """One sentence: windows made, periods merged or skipped, empty periods."""
        text = f"{len(self.windows)} window(s) of every={self.every!r} periods, each with >= {self.min_rows} rows"
        if self.merged:
            text += f"; {len(self.merged)} period(s) with fewer rows merged forward into the next window"
        if self.skipped:
            rows = sum(n for _, n in self.skipped)
            why = "with fewer rows skipped" if self.small == "skip" else "at the end still short, skipped"
            text += f"; {len(self.skipped)} period(s) {why} ({rows} rows not monitored)"
        if self.empty_periods:
            text += f"; {self.empty_periods} empty period(s)"
        return text + "."

    def to_dict(self) -> dict[str, Any]:
        return {"every": _plain(self.every) if not isinstance(self.every, str) else self.every,
                "min_rows": self.min_rows, "small": self.small, "summary": self.summary,
                "windows": [{"label": w.label, "end": w.end, "rows": w.n_rows, "periods": w.n_periods}
                            for w in self.windows],
                "merged": list(self.merged), "skipped": [list(s) for s in self.skipped],
                "empty_periods": self.empty_periods}


def _period_grid(times: np.ndarray, every: Any) -> tuple[np.ndarray, list[Any], list[Any]]:
    """Each time's period index, and each period's start and end labels (dates: ISO text)."""
    import pandas as pd
    from pandas.tseries.frequencies import to_offset

    if times.dtype.kind in "iuf":
        if isinstance(every, str):
            try:
                every = float(every)
            except ValueError:
                raise ValueError(f"every={every!r} is not a number, but the times are numbers: give every as "
                                 f"{_EVERY_EXAMPLES}.") from None
        if isinstance(every, (bool, np.bool_)) or not isinstance(every, (int, float, np.integer, np.floating)):
            raise TypeError(f"every must be {_EVERY_EXAMPLES}; got {every!r} for numeric times.")
        step = float(every)
        if not math.isfinite(step) or step <= 0:
            raise ValueError(f"every must be > 0 for numeric times (e.g. every=3600); got {every!r}.")
        if not np.all(np.isfinite(times)):
            raise ValueError("times hold NaN or infinite values; give every row a finite time.")
        if np.any(np.diff(times) < 0):
            raise ValueError(_ORDER)
        index = np.floor(times / step).astype(np.int64)
        first, last = int(index[0]), int(index[-1])
        if last - first + 1 > MAX_PERIODS:
            raise ValueError(f"every={every!r} makes {last - first + 1} periods over the times' span (at most "
                             f"{MAX_PERIODS}): choose a longer period.")
        whole = float(step).is_integer() and times.dtype.kind in "iu"
        label = (lambda i: int(i * int(step))) if whole else (lambda i: float(i * step))
        return index - first, [label(i) for i in range(first, last + 1)], [label(i + 1) for i in range(first, last + 1)]
    if isinstance(every, (bool, np.bool_, int, float, np.integer, np.floating)):
        raise ValueError(f"every={every!r} is a number, but the times are dates: give every as {_EVERY_EXAMPLES}.")
    try:
        offset = to_offset(every)
    except (ValueError, TypeError) as exc:
        renamed = re.search(r"'[^']*' is no longer supported.*?instead\.", str(exc))
        detail = f" ({renamed.group(0)})" if renamed else ""
        raise ValueError(f"every={every!r} is not a period shiftkit can read{detail}: give {_EVERY_EXAMPLES}.") from None
    try:
        with warnings.catch_warnings():  # text in no known format: pandas warns, then fails below
            warnings.simplefilter("ignore", UserWarning)
            try:
                stamps = pd.to_datetime(pd.Series(times), utc=True)
            except (ValueError, TypeError):  # ISO 8601 with and without fractions of a second (batch files)
                stamps = pd.to_datetime(pd.Series(times), utc=True, format="ISO8601")
    except (ValueError, TypeError):
        raise ValueError(f"times must be numbers or date times pandas can parse (e.g. '2024-05-01T12:00:00Z'); got "
                         f"{str(times[0])[:40]!r}.") from None
    if stamps.isna().any():
        raise ValueError("times hold missing values; give every row a time.")
    if not stamps.is_monotonic_increasing:
        raise ValueError(_ORDER)
    first, last = stamps.iloc[0], stamps.iloc[-1]
    anchor = first.normalize()
    if not offset.is_on_offset(anchor):
        anchor = offset.rollback(anchor)
    step = (anchor + offset) - anchor
    if step <= pd.Timedelta(0):
        raise ValueError(f"every={every!r} must be a positive period; give {_EVERY_EXAMPLES}.")
    if (last - anchor) / step + 1 > MAX_PERIODS:
        raise ValueError(f"every={every!r} makes more than {MAX_PERIODS} periods over the times' span "
                         f"({first.isoformat()} .. {last.isoformat()}): choose a longer period.")
    starts = pd.date_range(anchor, last, freq=offset)
    ends = list(starts[1:]) + [starts[-1] + offset]
    index = np.asarray(starts.searchsorted(pd.DatetimeIndex(stamps), side="right")) - 1
    return index.astype(np.int64), [t.isoformat() for t in starts], [t.isoformat() for t in ends]


def period_windows(times: Any, every: Any, *, min_rows: int = 1, small: str = "merge") -> PeriodWindows:
    """Cut time-ordered rows into windows of whole periods, each labelled by its period's start.

    The grid of periods is anchored at 0 for numeric times (period `i` is `[i * every, (i + 1) * every)`)
    and, for date times (read in UTC), at midnight of the first row's day rolled back to the offset's
    anchor ("W": the Sunday before, "MS": the first of the month); every row falls in exactly one period.

    Args:
        times: the time of each row, in time order (numbers, `datetime64`, or text pandas parses as
            dates; `shiftkit.files.load_single(time_column=...)` gives them so, sorted).
        every: the period: a pandas offset alias for date times (e.g. "1D", "6h", "15min", "W",
            "MS") or a positive number for numeric times (e.g. 3600).
        min_rows: the fewest rows a window may hold (a monitor needs its `window`).
        small: what to do with a period of fewer than `min_rows` rows: "merge" (default) joins it
            to the following periods until the window holds `min_rows` rows (the window keeps the first
            period's label); "skip" drops it. Rows still short at the end are skipped in both cases.

    Returns:
        A `PeriodWindows`: the windows (row indices, labels) and the periods merged, skipped or empty.

    Raises:
        ValueError / TypeError: `every` that is not a period for these times (the message gives
            examples), times out of order, missing or unparseable, bad `min_rows` or `small`.

    Example:
        >>> w = period_windows([0, 10, 3600, 3700, 7300], 3600)
        >>> [(p.label, p.n_rows) for p in w.windows]
        [(0, 2), (3600, 2), (7200, 1)]
    """
    if every is None or (isinstance(every, str) and not every.strip()):
        raise ValueError(f"every must be {_EVERY_EXAMPLES}; got {every!r}.")
    min_rows = check_positive_int(min_rows, "min_rows")
    if small not in ("merge", "skip"):
        raise ValueError(f"small must be 'merge' (join a short period to the next) or 'skip'; got {small!r}.")
    times = np.asarray(times)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a 1-D sequence with one time per row; got shape {times.shape}.")
    if times.dtype.kind == "b":
        raise TypeError("times must be numbers or date times, not booleans.")
    if times.dtype.kind == "M":
        times = times.astype("datetime64[ns]").astype(str)
    index, starts, ends = _period_grid(times, every)
    counts = np.bincount(index, minlength=len(starts))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    windows, merged, skipped = [], [], []
    pending: list[int] = []  # non-empty periods waiting to reach min_rows ("merge")
    for p in np.flatnonzero(counts):
        if small == "skip":
            if counts[p] < min_rows:
                skipped.append((starts[p], int(counts[p])))
            else:
                windows.append(Period(starts[p], ends[p], np.arange(bounds[p], bounds[p + 1])))
            continue
        pending.append(int(p))
        rows = int(sum(counts[q] for q in pending))
        if rows >= min_rows:
            first = pending[0]
            windows.append(Period(starts[first], ends[p], np.arange(bounds[first], bounds[p + 1]), int(p - first + 1)))
            merged.extend(starts[q] for q in pending[:-1])
            pending = []
    skipped.extend((starts[q], int(counts[q])) for q in pending)
    return PeriodWindows(tuple(windows), every, min_rows, small, tuple(merged), tuple(skipped),
                         int(np.sum(counts == 0)))
