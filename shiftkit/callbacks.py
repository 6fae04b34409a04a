"""Keras callbacks that measure shift while a model trains.

`ShiftMonitor` logs, at the end of training epochs, the feature-space MMD^2 between a fixed source
sample and a fixed target sample into the epoch's logs, so it lands in `History.history` (and in
an adapter's `.history`) next to the loss: a user watches adaptation close the gap while it trains.

Two figures are logged, both with the library's Gaussian kernel (`shiftkit.shift.kernels`):

* `shift_mmd2`: `shiftkit.mmd2(f(x_source), f(x_target), bandwidth=bandwidth_)`, the unbiased
  MMD^2 with a bandwidth **fixed once**, at the start of the first training run (median heuristic on
  the pooled features of the model as it is then). Same samples, same kernel every epoch: only the
  features change, so epoch-to-epoch differences are differences of the features alone. Its
  limit: a network that shrinks all features lowers it without aligning anything (every kernel
  value tends to 1).
* `shift_mmd2_normalized`: `shiftkit.mmd_test(f(x_source), f(x_target), bandwidth=None).normalized` (computed by
  `shiftkit.shift.mmd.normalized_mmd2`, without the permutations): MMD^2 with the
  median-heuristic bandwidth of *that epoch's* features, divided by the mean within-domain kernel
  value. The median bandwidth scales with the features, so this figure does not change when the
  features are merely rescaled: it is comparable across epochs (and across models), and it is the
  "feature MMD^2 normalized" figure of `shift_report` / `compare` and of `Experiment` results.

Feature extractor: where features are taken is resolved at the start of training from the model
the callback is attached to (`self.model`), in this order:

1. `feature_model=` if given: a `keras.Model` (or any callable mapping a batch of inputs to
   features) that shares its weights with the model being trained. Use it for custom training
   wrappers.
2. A training wrapper is unwrapped: `MMDAdapter` trains a wrapper `keras.Model` whose
   `target_model` attribute is the adapted model; the monitor uses `self.model.target_model`.
3. With `layer=None`, a nested model named "base" (the layout of every shiftkit adapter's target
   model: `inputs -> base -> head`) is the extractor: the features are exactly `adapter.features(x)`.
4. Otherwise the output of `layer` (name or index; looked up in the model, then in its "base"), or,
   with `layer=None`, the input of the output layer: the default feature space of `shift_report`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from shiftkit._keras import unwrap
from shiftkit._validation import (
    check_bandwidth,
    check_pair,
    check_positive_int,
    check_seed,
)
from shiftkit.shift.features import check_model_input, default_features, resolve_layer
from shiftkit.shift.kernels import median_heuristic
from shiftkit.shift.mmd import mmd2, normalized_mmd2

__all__ = ["ShiftMonitor"]


def _subsample(x: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_samples is None or len(x) <= max_samples:
        return x
    return x[np.sort(rng.choice(len(x), size=max_samples, replace=False))]


class ShiftMonitor(keras.callbacks.Callback):
    """Log feature-space MMD^2 between source and target samples into the training history.

    At the end of every `every`-th epoch (epochs `every - 1`, `2 * every - 1`, ... counted from 0)
    and of the last epoch, the monitor computes the features of its source and target samples with
    the current weights and writes into the epoch's logs (hence `History.history`):

    * `"<name>_mmd2"`: unbiased MMD^2 with the bandwidth fixed at the start of training
      (`bandwidth_`); equals `shiftkit.mmd2(fs, ft, bandwidth=monitor.bandwidth_)`.
    * `"<name>_mmd2_normalized"`: `shiftkit.mmd_test(fs, ft, seed=seed, bandwidth=None).normalized`, scale-free.

    On the other epochs both keys hold NaN, so every history list keeps one entry per epoch
    (`pandas.DataFrame(history.history)` works, and FineTuneAdapter's two-stage history stays
    aligned). The module docstring says why each figure is comparable across epochs and how the
    feature extractor is found (pass `feature_model=` for custom training wrappers).

    One monitor may follow several `fit` calls (FineTuneAdapter's two stages): the bandwidth stays
    the one fixed at the first, so the curve continues on one scale; `reset()` forgets it.

    Args:
        x_source: source inputs (e.g. held-out source data), shaped like the model's inputs.
        x_target: target inputs, same per-sample shape.
        every: compute every this many epochs (>= 1).
        max_samples: each sample is subsampled (seeded, once, at construction) to at most this many
            rows; None keeps all. The kernel matrix is `(2 * max_samples)^2`.
        layer: name or index of the layer whose output is the feature space (default: see above).
        feature_model: a `keras.Model` or callable mapping inputs to features; overrides `layer`.
        bandwidth: fix the Gaussian bandwidth(s) of `"<name>_mmd2"` yourself (a positive number or a
            list); None chooses it at the start of training by the median heuristic.
        seed: seed of the subsampling and of the median-heuristic subsample.
        name: prefix of the logged keys (default "shift": `shift_mmd2`, `shift_mmd2_normalized`).
        batch_size: batch size of the feature forward passes.

    Attributes:
        bandwidth_: the fixed bandwidth (float) once training started.
        initial_: both figures measured at the start of the first training run, before any step.
        history: dict of lists with one entry per *measured* epoch: "fit" (0 for the first `fit`
            call the monitor saw, 1 for the next...), "epoch", "<name>_mmd2",
            "<name>_mmd2_normalized".
        source_sample_, target_sample_: the (subsampled) inputs measured, float32.

    Raises:
        TypeError / ValueError: invalid samples or options (at construction); inputs that do not
            fit the model, or a `layer` the model lacks (at the start of training).

    Example:
        >>> monitor = ShiftMonitor(x_source_val, x_target, every=1, max_samples=500, seed=0)  # doctest: +SKIP
        >>> hist = model.fit(x, y, epochs=10, callbacks=[monitor])                            # doctest: +SKIP
        >>> hist.history["shift_mmd2_normalized"]                                            # doctest: +SKIP
        >>> MMDAdapter(model).fit(xs, ys, xt, epochs=10, callbacks=[ShiftMonitor(xs_val, xt)])  # doctest: +SKIP
    """

    def __init__(
        self,
        x_source: Any,
        x_target: Any,
        *,
        every: int = 1,
        max_samples: int | None = 500,
        layer: str | int | None = None,
        feature_model: Any = None,
        bandwidth: float | list[float] | None = None,
        seed: int | None = 0,
        name: str = "shift",
        batch_size: int = 256,
    ):
        super().__init__()
        xs, xt = check_pair(x_source, x_target, ("x_source", "x_target"), flatten=False)
        self.every = check_positive_int(every, "every")
        if max_samples is not None:
            max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
        self.max_samples = max_samples
        self.seed = check_seed(seed)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (str, numbers.Integral))):
            raise TypeError(f"layer must be a layer name, an index or None; got {type(layer).__name__}.")
        if feature_model is not None:
            if layer is not None:
                raise ValueError(
                    "Pass either layer= or feature_model=, not both: feature_model already defines the "
                    f"feature space. Received: layer={layer!r}."
                )
            if not callable(feature_model):
                raise TypeError(
                    "feature_model must be a keras.Model or a callable mapping a batch of inputs to "
                    f"features; got {type(feature_model).__name__}."
                )
        self.layer = layer
        self.feature_model = feature_model
        fixed = check_bandwidth(bandwidth)
        self.bandwidth = None if fixed is None else fixed.tolist()
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, e.g. 'shift'; got {name!r}.")
        self.name = name
        self.key_mmd2 = f"{name}_mmd2"
        self.key_normalized = f"{name}_mmd2_normalized"
        rng = np.random.default_rng(self.seed)
        self.source_sample_ = _subsample(xs, max_samples, rng).astype(np.float32)
        self.target_sample_ = _subsample(xt, max_samples, rng).astype(np.float32)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget the fixed bandwidth, the initial figures and the recorded history."""
        self.bandwidth_: float | list[float] | None = None
        self.initial_: dict[str, float] | None = None
        self.history: dict[str, list] = {"fit": [], "epoch": [], self.key_mmd2: [], self.key_normalized: []}
        self._fits = -1
        self._extractor: Callable[[np.ndarray], np.ndarray] | None = None

    # ------------------------------------------------------------------ feature extractor
    def _resolve(self) -> Callable[[np.ndarray], np.ndarray]:
        if self.feature_model is not None:
            fm = self.feature_model
            if isinstance(fm, keras.Model) and fm.inputs:
                check_model_input(fm, self.source_sample_[:1], "x_source")
                check_model_input(fm, self.target_sample_[:1], "x_target")
            return self._wrap(fm)
        model = self.model
        # Training wrappers (MMDAdapter's trainer) hold the real model as `target_model`.
        seen = set()
        while hasattr(model, "target_model") and id(model) not in seen:
            seen.add(id(model))
            model = model.target_model
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"ShiftMonitor is attached to a {type(model).__name__}, not a keras.Model; pass "
                "feature_model= (a keras.Model mapping inputs to features) explicitly."
            )
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):
            inputs = None
        if not inputs:
            raise ValueError(
                "ShiftMonitor cannot find the inputs of the model being trained (an unbuilt Sequential "
                "model, or a subclassed model?). Start the model with keras.Input(shape=...) or pass "
                "feature_model= explicitly."
            )
        check_model_input(model, self.source_sample_[:1], "x_source")
        check_model_input(model, self.target_sample_[:1], "x_target")
        base = self._nested_base(model)
        if self.layer is None and base is not None:
            return self._wrap(base)
        if self.layer is None:
            tensor = default_features(model)[0]
        else:
            try:
                chosen = resolve_layer(model, self.layer)
            except ValueError:
                if base is None or not isinstance(self.layer, str):
                    raise
                chosen = resolve_layer(base, self.layer)
                inner = chosen.output[0] if isinstance(chosen.output, (list, tuple)) else chosen.output
                return self._wrap(keras.Model(base.inputs, inner, name="shift_monitor_features"))
            tensor = chosen.output
        if isinstance(tensor, (list, tuple)):
            tensor = tensor[0]
        return self._wrap(keras.Model(model.inputs, tensor, name="shift_monitor_features"))

    @staticmethod
    def _nested_base(model: Any) -> Any:
        for layer in model.layers:
            inner = unwrap(layer)  # the adapters wrap their base in InferenceMode, named "base"
            if isinstance(inner, keras.Model) and layer.name == "base":
                return inner
        return None

    def _wrap(self, fn: Any) -> Callable[[np.ndarray], np.ndarray]:
        is_model = isinstance(fn, keras.Model)

        def features(x: np.ndarray) -> np.ndarray:
            out = []
            with warnings.catch_warnings():
                # Functional models built from `model.inputs` (a list) warn when called on a bare
                # tensor; the call is correct, the warning is noise.
                warnings.filterwarnings("ignore", message="The structure of `inputs`")
                for start in range(0, len(x), self.batch_size):
                    chunk = x[start : start + self.batch_size]
                    value = fn(chunk, training=False) if is_model else fn(chunk)
                    out.append(np.asarray(ops.convert_to_numpy(value), dtype=np.float64).reshape(len(chunk), -1))
            return np.concatenate(out, axis=0)

        return features

    # ------------------------------------------------------------------ measuring
    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """Features `(f(source_sample_), f(target_sample_))` with the current weights, float64."""
        if self._extractor is None:
            self._extractor = self._resolve()
        return self._extractor(self.source_sample_), self._extractor(self.target_sample_)

    def measure(self) -> dict[str, float]:
        """Both figures now, with the current weights (fixes the bandwidth if not fixed yet)."""
        fs, ft = self.features()
        if self.bandwidth_ is None:
            if self.bandwidth is not None:
                self.bandwidth_ = self.bandwidth[0] if len(self.bandwidth) == 1 else list(self.bandwidth)
            else:
                self.bandwidth_ = float(median_heuristic(fs, ft, seed=0 if self.seed is None else self.seed))
        raw = mmd2(fs, ft, bandwidth=self.bandwidth_)
        normalized = normalized_mmd2(fs, ft, seed=self.seed)  # mmd_test(...).normalized, no permutations
        return {self.key_mmd2: float(raw), self.key_normalized: float(normalized)}

    def _due(self, epoch: int) -> bool:
        last = (self.params or {}).get("epochs")
        return (epoch + 1) % self.every == 0 or (last is not None and epoch == int(last) - 1)

    # ------------------------------------------------------------------ keras hooks
    def on_train_begin(self, logs: dict | None = None) -> None:
        self._fits += 1
        self._extractor = None  # a new fit may train another model (or another stage's layout)
        if self.initial_ is None:
            try:
                self.initial_ = self.measure()
            except ValueError as exc:
                if "cannot find the inputs" not in str(exc):
                    raise
                self._extractor = None  # an unbuilt model: measured from the first epoch end on

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        if not self._due(epoch):
            logs[self.key_mmd2] = math.nan
            logs[self.key_normalized] = math.nan
            return
        values = self.measure()
        logs.update(values)
        self.history["fit"].append(self._fits)
        self.history["epoch"].append(int(epoch))
        for key, value in values.items():
            self.history[key].append(value)

    def get_config(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "max_samples": self.max_samples,
            "layer": self.layer,
            "bandwidth": self.bandwidth,
            "seed": self.seed,
            "name": self.name,
            "batch_size": self.batch_size,
        }
