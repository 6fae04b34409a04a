"""LabelShiftAdapter: correct a source classifier's probabilities for estimated target class priors.

Under label shift (`q(x | y) = p(x | y)`, only the class proportions change) the target posterior is
the source posterior reweighted by the class importance weights `w(y) = q(y) / p(y)`:

    p_t(y | x) = w(y) * p_s(y | x) / sum_k w(k) * p_s(k | x)

(Saerens, Latinne & Decaestecker, 2002). No retraining is needed: the adapter estimates `q(y)` with
`shiftkit.shift.estimate_target_priors` from the model's probabilities on held-out labelled source
data and on unlabelled target data, and appends one small layer, `PriorCorrection`, after a copy of
the source model.

Adapted model layout:

    inputs -> base (copied source layers up to the head layer's input; `features(x)`)
           -> head (the copied source head layer, source weights, and the weightless layers after
              it: the Softmax / Activation of `Dense(k) -> Softmax()`)
           -> PriorCorrection (calibration map when EM calibrated, then `w * p` renormalised)

The result is a plain `keras.Model` that saves to one `.keras` file and loads with
`keras.saving.load_model(path, safe_mode=True)` once this module is imported (`PriorCorrection` is
registered as "shiftkit>PriorCorrection").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from shiftkit._keras import output_activation, predict, producing_layer, to_classes, to_probabilities
from shiftkit._validation import check_option, check_positive_int, check_probabilities, check_real
from shiftkit.adapt.base import AdaptationReport, Adapter
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import copy_model
from shiftkit.shift.accuracy import check_target_priors
from shiftkit.shift.features import head_input, head_of
from shiftkit.shift.report import shift_report
from shiftkit.shift.labels import (
    LOG_EPS,
    PRIOR_METHODS,
    PriorEstimate,
    apply_bcts,
    estimate_target_priors,
    fit_bcts,
    frozen_array,
)

__all__ = ["LabelShiftAdapter", "PriorCorrection"]



# --------------------------------------------------------------------------------------------
# The correction layer
# --------------------------------------------------------------------------------------------


def _vector(value: Any, name: str, size: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a list of numbers; got {value!r}.") from None
    if size is not None and arr.size != size:
        raise ValueError(f"{name} must have {size} entries (one per class); got {arr.size}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr.tolist()}.")
    return arr


@keras.saving.register_keras_serializable(package="shiftkit")
class PriorCorrection(keras.layers.Layer):
    """Reweight a classifier's probabilities by per-class weights: `normalize(w * p)`.

    Optionally applies bias-corrected temperature scaling first, `softmax(log(p) / T + b)` (the
    calibration map `estimate_target_priors(..., method="em")` fits), so that the output is
    `normalize(w * calibrated(p))`. With `temperature=1` and `bias=0` it is the plain prior
    correction.

    Input: probabilities of shape `(..., k)` (softmax rows, k >= 2) or `(..., 1)` (a sigmoid unit,
    `P(class 1)`), or logits of the same shapes with `from_logits=True`. Output: probabilities of the
    same shape. For one sigmoid unit the output is `w1 * p / (w1 * p + w0 * (1 - p))`.

    The weights are non-trainable weights of the layer (saved with the model) and are also written
    in `get_config()`, so a `.keras` file shows them in readable form. `activation` ("softmax" or
    "sigmoid", set when built) states what the output is, so code that reads a model's output
    activation (`shiftkit._keras.output_activation`) treats the corrected model as a probability model.
    The layer computes in float32 unless another `dtype` is passed.

    Args:
        prior_weights: per-class weights `w(y) = q(y) / p(y)`, non-negative, not all zero; `k`
            entries (2 for a single sigmoid unit). A zero weight sets that class's probability to 0.
        temperature: calibration temperature `T > 0`.
        bias: calibration bias `b`, `k` entries; default zeros.
        from_logits: read the input as logits (a linear output layer) instead of probabilities.
        **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
        >>> layer = PriorCorrection([2.0, 0.5])
        >>> np.asarray(layer(np.array([[0.5, 0.5]], "float32")), dtype="float64").round(3).tolist()
        [[0.8, 0.2]]
    """

    def __init__(
        self,
        prior_weights: Any,
        *,
        temperature: float = 1.0,
        bias: Any = None,
        from_logits: bool = False,
        **kwargs: Any,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        w = _vector(prior_weights, "prior_weights")
        if w.size < 2:
            raise ValueError(f"prior_weights needs one weight per class (at least 2); got {w.tolist()}.")
        if np.any(w < 0) or not np.any(w > 0):
            raise ValueError(f"prior_weights must be non-negative and not all zero; got {w.tolist()}.")
        temperature = check_real(temperature, "temperature", low=0, low_open=True, example=1.0)
        b = np.zeros(w.size) if bias is None else _vector(bias, "bias", w.size)
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be True or False; got {from_logits!r}.")
        self._init_weights = w
        self._init_temperature = float(temperature)
        self._init_bias = b
        self.from_logits = bool(from_logits)
        self.activation = None  # set in build(): softmax or sigmoid

    def build(self, input_shape: Any) -> None:
        units = input_shape[-1]
        if units is None:
            raise ValueError("PriorCorrection needs a known number of classes (last input axis).")
        self._binary = int(units) == 1
        k = 2 if self._binary else int(units)
        if k != self._init_weights.size:
            raise ValueError(
                f"PriorCorrection has {self._init_weights.size} prior_weights but its input has "
                f"{units} unit(s), i.e. {k} classes."
            )
        self.prior_weights = self.add_weight(shape=(k,), initializer="ones", trainable=False, name="prior_weights")
        self.temperature = self.add_weight(shape=(), initializer="ones", trainable=False, name="temperature")
        self.bias = self.add_weight(shape=(k,), initializer="zeros", trainable=False, name="bias")
        self.prior_weights.assign(self._init_weights)
        self.temperature.assign(self._init_temperature)
        self.bias.assign(self._init_bias)
        self.activation = keras.activations.sigmoid if self._binary else keras.activations.softmax

    def call(self, inputs: Any) -> Any:
        ops = keras.ops
        x = ops.cast(inputs, self.compute_dtype)
        if self._binary:
            if self.from_logits:
                log_p = ops.concatenate([ops.log_sigmoid(-x), ops.log_sigmoid(x)], axis=-1)
            else:
                log_p = ops.log(ops.concatenate([1.0 - x, x], axis=-1) + LOG_EPS)
        else:
            log_p = ops.log_softmax(x, axis=-1) if self.from_logits else ops.log(x + LOG_EPS)
        # log w = -inf for a zero weight: that class gets probability exactly 0.
        z = log_p / self.temperature + self.bias + ops.log(self.prior_weights)
        if self._binary:
            return ops.sigmoid(z[..., 1:2] - z[..., 0:1])
        return ops.softmax(z, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        if self.built:
            w = np.asarray(self.prior_weights, dtype=np.float64)
            t = float(np.asarray(self.temperature))
            b = np.asarray(self.bias, dtype=np.float64)
        else:
            w, t, b = self._init_weights, self._init_temperature, self._init_bias
        config.update(
            prior_weights=[float(v) for v in w],
            temperature=t,
            bias=[float(v) for v in b],
            from_logits=self.from_logits,
        )
        return config


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _strip_correction(model: Any) -> Any:
    """The model without a trailing `PriorCorrection` (refitting a loaded adapter starts from the
    uncorrected source outputs instead of correcting twice)."""
    layer = producing_layer(model.outputs[0])
    if isinstance(layer, PriorCorrection):
        return keras.Model(model.inputs, layer.input, name=model.name)
    return model


def _head_path(model: Any) -> list[Any]:
    """The layers from the head layer (`head_of`) to the output, in call order (a single-input chain)."""
    head = head_of(model)
    layer = producing_layer(model.outputs[0])
    path = [layer]
    while layer is not head and len(path) < 64:
        inp = layer.input
        layer = producing_layer(inp[0] if isinstance(inp, (list, tuple)) else inp)
        path.append(layer)
    return path[::-1]


def _output_kind(model: Any) -> bool:
    """Check that `model` is a single-output classifier; return True if it outputs logits."""
    if len(model.outputs) != 1:
        raise ValueError(
            f"LabelShiftAdapter needs a model with one output; this one has {len(model.outputs)}."
        )
    out = model.outputs[0]
    if len(out.shape) != 2 or out.shape[-1] is None:
        raise ValueError(
            f"LabelShiftAdapter needs a classifier with outputs of shape (n, n_classes); this "
            f"model's output has shape {tuple(out.shape)}."
        )
    n_out = int(out.shape[-1])
    layer = producing_layer(out)
    activation = output_activation(model)
    if activation == "linear":
        return True
    if (activation == "softmax" and n_out >= 2) or (activation == "sigmoid" and n_out == 1):
        return False
    raise ValueError(
        "LabelShiftAdapter needs a classifier whose output layer gives probabilities (softmax over "
        "n_classes >= 2 units, or one sigmoid unit) or logits (linear activation); this model's "
        f"output layer {layer.name!r} has activation {activation!r} and {n_out} unit(s)."
    )


def _priors_by_class(priors: Any, k: int) -> Any:
    """A mapping `{class index: proportion}` as the list in the model's class order (anything else as given).

    Raises:
        ValueError: a key that is not one of the model's classes 0..k-1, or a class left out.
    """
    if not isinstance(priors, Mapping):
        return priors
    keys = {}
    for key in priors:
        try:
            index = int(key)
        except (TypeError, ValueError):
            index = None
        if index is None or index != key or not 0 <= index < k:
            raise ValueError(
                f"target_priors has class {key!r}, but the model's classes are its output indices 0..{k - 1}. Key "
                f"the mapping by output index (e.g. {{0: 0.8, 1: 0.2}}), or pass a list in the model's class order."
            )
        keys[index] = priors[key]
    missing = [c for c in range(k) if c not in keys]
    if missing:
        raise ValueError(
            f"target_priors gives no proportion for class(es) {missing} of the model's classes 0..{k - 1}. Give "
            "every class (0 for a class absent from the target)."
        )
    return [keys[c] for c in range(k)]


def _given_priors(priors: np.ndarray, ys: np.ndarray, k: int) -> PriorEstimate:
    """A `PriorEstimate` of target proportions given from outside the model ("given": nothing estimated)."""
    counts = np.bincount(ys, minlength=k).astype(float)
    if np.any(counts == 0):
        raise ValueError(
            f"y_source has no row of class(es) {np.flatnonzero(counts == 0).tolist()}: the correction divides by "
            "each class's source proportion. Hold out a stratified source split with every class."
        )
    source = counts / counts.sum()
    return PriorEstimate(priors=frozen_array(priors), source_priors=frozen_array(source),
                         weights=frozen_array(priors / source), method="given", n_iter=0, converged=True)


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


@register_adapter
class LabelShiftAdapter(Adapter):
    """Prior correction for label shift: reweight the source model's probabilities by `q(y) / p(y)`.

    `fit` estimates the target class proportions `q(y)` from the model's probabilities on held-out
    labelled source data and on unlabelled target data (`shiftkit.shift.estimate_target_priors`), then
    builds `.model`: a copy of the source model (weights copied, never shared: the source stays
    bit-identical) followed by a `PriorCorrection` layer. No weights are trained.

    Calibration: with `method="em"` and `calibrate=True` (the default) the estimate recalibrates the
    probabilities by bias-corrected temperature scaling (BCTS) fitted on the held-out source; the
    fitted map is then part of `.model` too, so the correction is applied to the same calibrated
    probabilities the priors were estimated from: `predict(x) = normalize(w * bcts(p_s(y|x)))`
    (`temperature_`, `bias_`). With `method="bbse"`, or `calibrate=False`, no calibration is applied
    (`temperature_ = 1`, `bias_ = 0`) and `predict(x) = normalize(w * p_s(y|x))`.

    Args:
        source_model: a trained `keras.Model` classifier with one output: softmax over `k >= 2`
            units, one sigmoid unit (binary), or logits (linear activation). Never modified.
        method: "em" (default; maximum-likelihood EM, Saerens et al. 2002) or "bbse" (Black Box
            Shift Estimation, Lipton et al. 2018).
        calibrate: for "em", fit BCTS before EM and include it in `.model` (ignored for "bbse").
        max_iter: maximum EM iterations.
        tol: EM stopping tolerance.
        smoothing: shrink the estimate towards the source priors before applying it,
            `priors_ = (1 - smoothing) * estimate_.priors + smoothing * estimate_.source_priors`, so
            every weight is at least `smoothing`. BBSE's projection onto the simplex returns exact
            zeros for small classes, and a zero weight makes every target sample of that class a
            certain error (unbounded log-loss); the default 1e-3 prevents that and moves a weight by
            at most 0.1%. 0 applies the raw estimate.
        target_priors: the target's class proportions when known from outside the model (a
            screening programme's prevalence, a registry), in the model's class order, or a mapping
            `{output index: proportion}` with every class (counts are normalised): they replace the estimate (`estimate_.method == "given"`), so `fit` needs
            only the held-out labelled source rows (for the source proportions and the calibration);
            `x_target` is then not used. Default None: estimated from `x_target`.

    Attributes:
        priors_: the target class proportions applied by the model (the estimate after
            `smoothing`), shape `(k,)` (read-only).
        weights_: `priors_ / estimate_.source_priors`, the class weights applied by the model.
        estimate_: the full, unsmoothed `PriorEstimate` (`priors`, `source_priors`, `weights`,
            `method`, `n_iter`, `converged`).
        temperature_, bias_: the calibration map inside `.model` (1 and zeros when uncalibrated).
        model: the corrected `keras.Model`; its output is probabilities (shape of the source output:
            `(n, k)`, or `(n, 1)` for a sigmoid unit), also when the source model outputs logits.

    Raises:
        TypeError: `source_model` is not a Keras model; `calibrate` is not a bool.
        ValueError: unknown `method`; a model that is not a single-output classifier.

    Example:
        >>> adapter = LabelShiftAdapter(model, method="em").fit(x_val, y_val, x_target)  # doctest: +SKIP
        >>> adapter.priors_, adapter.weights_  # doctest: +SKIP
        >>> p_target = adapter.predict(x_target)  # doctest: +SKIP
        >>> adapter.save("corrected.keras")  # doctest: +SKIP
    """

    def __init__(
        self,
        source_model: Any,
        *,
        method: str = "em",
        calibrate: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-8,
        smoothing: float = 1e-3,
        target_priors: Any = None,
    ):
        super().__init__(source_model)
        self.method = check_option(method, "method", PRIOR_METHODS)
        if not isinstance(calibrate, (bool, np.bool_)):
            raise TypeError(f"calibrate must be True or False; got {calibrate!r}.")
        self.calibrate = bool(calibrate)
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = check_real(tol, "tol", low=0, low_open=True, example="1e-8")
        smoothing = check_real(smoothing, "smoothing", low=0, high=1, high_open=True, example="1e-3 (0 turns it off)")
        self.smoothing = float(smoothing)
        _output_kind(_strip_correction(self.source_model))  # fail at construction, not in fit
        self.target_priors = None
        if target_priors is not None:
            n_out = int(_strip_correction(self.source_model).outputs[0].shape[-1])
            target_priors = _priors_by_class(target_priors, max(n_out, 2))
            self.target_priors = [float(v) for v in check_target_priors(target_priors, max(n_out, 2))]

    name = "label_shift"
    title = "Label shift: source model reweighted by estimated target class priors"
    requires = ("x_source", "y_source", "x_target")
    source_data = "held_out"

    def fit(
        self,
        x_source: Any = None,
        y_source: Any = None,
        x_target: Any = None,
        *,
        y_target: Any = None,
        batch_size: int = 256,
        epochs: Any = None,
        verbose: Any = "auto",
        callbacks: Any = None,
        seed: int | None = None,
    ) -> LabelShiftAdapter:
        """Estimate the target class priors and build the prior-corrected model.

        Args:
            x_source: *held-out* labelled source inputs (not the model's training data, on which
                it is overconfident), shaped like the model's input.
            y_source: their labels, class indices `(n,)` or one-hot `(n, k)`; every class must
                occur.
            x_target: unlabelled target inputs.
            y_target: accepted for the common adapter contract; not used (the priors are
                estimated without target labels).
            batch_size: batch size of the forward passes.
            epochs, verbose, callbacks, seed: accepted for the common adapter contract; nothing is
                trained and nothing is random here, so they have no effect.

        Returns:
            self.

        Raises:
            TypeError: non-numeric inputs or labels.
            ValueError: missing data, inputs whose shape does not match the model, NaN/inf, labels
                out of range or of another length than `x_source`, a class absent from `y_source`
                (the message of `estimate_target_priors`).
        """
        if self.target_priors is None:
            self.check_fit_data(x_source=x_source, y_source=y_source, x_target=x_target)
        elif x_source is None or y_source is None:
            raise ValueError(
                "LabelShiftAdapter.fit with target_priors needs x_source and y_source (held-out labelled source rows: "
                "the source class proportions the correction divides by, and the calibration). Pass x_source=..., "
                "y_source=...; x_target is not needed."
            )
        xs = self._check_x(x_source, "x_source")
        ys = self._check_y(y_source, len(xs), "y_source")
        xt = None if self.target_priors is not None else self._check_x(x_target, "x_target")
        batch_size = check_positive_int(batch_size, "batch_size")
        source = _strip_correction(self.source_model)
        from_logits = _output_kind(source)

        with self._strategy().scope():
            clone = copy_model(source)
            base = keras.Model(clone.inputs, head_input(clone), name="base")
            # Fresh copies of the head layer and the weightless layers after it, called only in the
            # adapted model (the clone's own are bound to the clone's graph too, so their `.input`
            # would not be the adapted model's).
            inputs = [
                keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"input_{i}")
                for i, t in enumerate(clone.inputs)
            ]
            model_input = inputs[0] if len(inputs) == 1 else inputs
            head_out = base(model_input, training=False)
            fresh_path = []
            for cloned in _head_path(clone):
                fresh = type(cloned).from_config(cloned.get_config())
                head_out = fresh(head_out)
                fresh.set_weights(cloned.get_weights())
                fresh_path.append(fresh)
            head = fresh_path[0]
            uncorrected = keras.Model(model_input, head_out, name="uncorrected")

        if xt is None:  # target proportions given: the target rows are not needed
            out_source, out_target = predict(uncorrected, xs, batch_size=batch_size), None
        elif xs.shape[1:] == xt.shape[1:]:  # one forward pass for both sets
            out = predict(uncorrected, np.concatenate([xs, xt]), batch_size=batch_size)
            out_source, out_target = out[: len(xs)], out[len(xs) :]
        else:  # a model with variable-size axes (e.g. sequence length)
            out_source = predict(uncorrected, xs, batch_size=batch_size)
            out_target = predict(uncorrected, xt, batch_size=batch_size)
        p_source = to_probabilities(source, out_source)
        p_target = None if out_target is None else to_probabilities(source, out_target)
        temperature, bias = 1.0, np.zeros(p_source.shape[1])
        if self.method == "em" and self.calibrate:
            # Calibrate here, with the BCTS fit estimate_target_priors would run, and hand EM the
            # calibrated probabilities: the map built into the model is then by construction the one
            # the priors were estimated under (estimate_target_priors does not return T and b).
            temperature, bias = fit_bcts(check_probabilities(p_source, "source_probs"), ys)
            p_source = apply_bcts(p_source, temperature, bias)
            p_target = None if p_target is None else apply_bcts(p_target, temperature, bias)
        if self.target_priors is not None:
            estimate = _given_priors(np.asarray(self.target_priors), ys, p_source.shape[1])
        else:
            try:
                estimate = estimate_target_priors(
                    p_source,
                    ys,
                    p_target,
                    method=self.method,
                    max_iter=self.max_iter,
                    tol=self.tol,
                    calibrate=False,
                )
            except ValueError as exc:
                raise ValueError(
                    f"Cannot estimate the target priors from y_source (source_labels) and the model's "
                    f"probabilities on x_source / x_target: {exc}"
                ) from exc
        priors = (1.0 - self.smoothing) * estimate.priors + self.smoothing * estimate.source_priors
        priors = priors / priors.sum()
        with self._strategy().scope():
            correction = PriorCorrection(
                priors / estimate.source_priors,
                temperature=temperature,
                bias=bias,
                from_logits=from_logits,
                name="prior_correction",
            )
            self.model_ = keras.Model(
                model_input, correction(head_out), name=f"{type(self).__name__.lower()}_model"
            )
        self.base_ = base
        self.head_ = head
        self.feature_name_ = f"input of {head.name}"
        self._set_estimate(estimate, priors, temperature, bias)
        return self

    def shift_report(
        self,
        x_source: Any,
        x_target: Any,
        y_source: Any = None,
        y_target: Any = None,
        **kwargs: Any,
    ) -> AdaptationReport:
        """Shift before (source model) and after (corrected model), side by side.

        A prior correction leaves the features unchanged, so both feature-space tests are measured
        at the input of the source output head (`features(x)`), and agree; the gain shows in the
        target accuracy (with `y_target`). (The base class would measure "after" at the input of
        the model's last layer, which here is `PriorCorrection`: the source probabilities.)

        Args:
            x_source, x_target, y_source, y_target: as in `shiftkit.shift_report`.
            **kwargs: passed to `shiftkit.shift_report` (n_permutations, alpha, seed, ...).

        Returns:
            An `AdaptationReport`.
        """

        self._check_fitted()
        source = _strip_correction(self.source_model)
        before = shift_report(x_source, x_target, y_source, y_target, model=source, **kwargs)
        after = shift_report(x_source, x_target, y_source, y_target, model=_strip_correction(self.model_), **kwargs)
        acc_before = acc_after = None
        if y_target is not None:
            xt = self._check_x(x_target, "x_target")
            yt = self._check_y(y_target, len(xt), "y_target")
            acc_before = float(np.mean(to_classes(source, predict(source, xt)) == yt))
            acc_after = float(np.mean(self.predict_classes(xt) == yt))
        return AdaptationReport(before, after, acc_before, acc_after)

    # ------------------------------------------------------------------ fitted state
    def _set_estimate(self, estimate: PriorEstimate, priors: Any, temperature: float, bias: Any) -> None:
        self.estimate_ = estimate
        self.priors_ = frozen_array(priors)
        self.weights_ = frozen_array(self.priors_ / estimate.source_priors)
        self.temperature_ = float(temperature)
        self.bias_ = frozen_array(bias)

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update(
            method=self.method,
            calibrate=self.calibrate,
            max_iter=self.max_iter,
            tol=self.tol,
            smoothing=self.smoothing,
            target_priors=self.target_priors,
            priors=[float(v) for v in self.priors_],
            estimate=self.estimate_.to_dict(),
            temperature=self.temperature_,
            bias=[float(v) for v in self.bias_],
        )
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.method = state.get("method", "em")
        self.calibrate = bool(state.get("calibrate", True))
        self.max_iter = int(state.get("max_iter", 1000))
        self.tol = float(state.get("tol", 1e-8))
        self.smoothing = float(state.get("smoothing", 0.0))
        self.target_priors = state.get("target_priors")
        est = state["estimate"]
        estimate = PriorEstimate(
            priors=frozen_array(est["priors"]),
            source_priors=frozen_array(est["source_priors"]),
            weights=frozen_array(est["weights"]),
            method=est["method"],
            n_iter=int(est["n_iter"]),
            converged=bool(est["converged"]),
        )
        self._set_estimate(
            estimate,
            state.get("priors", estimate.priors),
            state.get("temperature", 1.0),
            state.get("bias", np.zeros(estimate.priors.size)),
        )
        layer = producing_layer(self.model_.outputs[0])
        self.head_ = head_of(_strip_correction(self.model_)) if isinstance(layer, PriorCorrection) else None
        self.feature_name_ = f"input of {self.head_.name}" if self.head_ is not None else None
