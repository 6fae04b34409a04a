"""Keras plumbing in one place: output layer, output activation, logits vs probabilities, model copies.

Everything in shiftkit that needs to know how a model's outputs are to be read asks here, so the
answer is decided once, from the model's *architecture* (its output activation), never guessed
from the values a batch happens to produce.

Definitions:
    output layer:  the layer that produces the model's first output (inside nested models too).
    head layer:    the last layer *with weights* on the way to the output, walking back through
                   weightless layers (Activation, Softmax, Dropout, Reshape, Flatten, ...). For
                   `Dense(k) -> Activation("softmax")` (the mixed-precision pattern) the head is the
                   Dense layer; its input is the model's default feature space.
    activation:    the activation applied after the head: the last Activation / Softmax layer on
                   the way, else the head layer's own `activation`, else "linear".
    probabilities: the outputs are probabilities when that activation is "softmax" or "sigmoid";
                   otherwise they are logits (softmax / logistic function applied to read them).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

__all__ = [
    "require_model",
    "producing_layer",
    "output_layer",
    "head_layer",
    "activation_name",
    "output_activation",
    "outputs_probabilities",
    "decision_threshold",
    "to_probabilities",
    "to_classes",
    "n_classes",
    "predict",
    "copy_model",
    "InferenceMode",
    "unwrap",
]

#: Activations whose outputs are already probabilities.
PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")
#: Weightless layers that pass their input's meaning through unchanged (walked over).
_PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Identity,
    keras.layers.ActivityRegularization,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


def require_model(model: Any, name: str = "model") -> Any:
    """Return `model` if it is a built `keras.Model` (defined inputs and outputs), else raise.

    Args:
        model: the user's model.
        name: the argument's name, used in messages ("source_model", ...).

    Returns:
        `model` itself.

    Raises:
        TypeError: `model` is not a `keras.Model`.
        ValueError: the model has no defined inputs/outputs yet (an unbuilt Sequential model).
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"{name} must be a keras.Model (Sequential or Functional); got {type(model).__name__}. "
            "Load a saved model with keras.saving.load_model(path, safe_mode=True)."
        )
    try:
        model.inputs  # noqa: B018 - raises for an unbuilt Sequential model
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        raise ValueError(
            f"{name} has no defined inputs/outputs yet (an unbuilt Sequential model?). Start it with "
            "keras.Input(shape=...) or call it once on data before measuring its feature space. A subclassed "
            "keras.Model has no graph shiftkit can read: rebuild it as a Functional model (keras.Input -> layers "
            "-> keras.Model(inputs, outputs)) with the same weights."
        )
    if len(model.inputs) != 1:
        raise ValueError(
            f"{name} takes {len(model.inputs)} inputs; shiftkit measures and adapts models with one input array. "
            "Combine the inputs into one array and one keras.Input (e.g. concatenate tabular parts), or measure "
            "each input's sub-model separately."
        )
    return model


def producing_layer(tensor: Any) -> Any:
    """The layer (operation) that produced a symbolic Keras tensor."""
    return tensor._keras_history[0]


def _first(tensor: Any) -> Any:
    return tensor[0] if isinstance(tensor, (list, tuple)) else tensor


def output_layer(model: Any) -> Any:
    """The layer producing the model's first output, looking inside nested models."""
    layer = producing_layer(model.outputs[0])
    while isinstance(layer, keras.Model):
        layer = producing_layer(layer.outputs[0]) if layer.outputs else layer.layers[-1]
    return layer


def activation_name(activation: Any) -> str:
    """The registered name of a Keras activation ("relu", "softmax", ...); "linear" for None."""
    if activation is None:
        return "linear"
    name = keras.activations.serialize(activation)
    if isinstance(name, dict):
        name = name.get("config", {}).get("name") or name.get("class_name") or "linear"
    return str(name)


def _walk_back(model: Any):
    """Yield the layers from the output backwards while they have a single input (nested models expanded)."""
    layer = output_layer(model)
    seen = 0
    while layer is not None and seen < 64:
        seen += 1
        yield layer
        try:
            inp = _first(layer.input)
            nxt = producing_layer(inp)
        except (AttributeError, ValueError, IndexError):
            return
        while isinstance(nxt, keras.Model):
            nxt = producing_layer(nxt.outputs[0]) if nxt.outputs else None
        if isinstance(nxt, keras.layers.InputLayer) or nxt is layer:
            return
        layer = nxt


def _is_activation_layer(layer: Any) -> bool:
    return isinstance(layer, (keras.layers.Activation, keras.layers.Softmax))


def head_layer(model: Any) -> Any:
    """The last layer with weights on the way to the output (see the module docstring).

    Falls back to the output layer when no weighted layer is found before an input.
    """
    for layer in _walk_back(model):
        if layer.weights:
            return layer
        if not (_is_activation_layer(layer) or isinstance(layer, _PASS_THROUGH)):
            break
    return output_layer(model)


def output_activation(model: Any) -> str:
    """Name of the activation that produces the model's outputs ("softmax", "sigmoid", "linear", ...)."""
    for layer in _walk_back(model):
        if isinstance(layer, keras.layers.Softmax):
            return "softmax"
        if isinstance(layer, keras.layers.Activation):
            name = activation_name(layer.activation)
            if name != "linear":
                return name
            continue
        if isinstance(layer, _PASS_THROUGH):
            continue
        return activation_name(getattr(layer, "activation", None))
    return "linear"


def outputs_probabilities(model: Any) -> bool:
    """True when the model outputs probabilities (softmax / sigmoid), False for logits."""
    return output_activation(model) in PROBABILITY_ACTIVATIONS


def decision_threshold(model: Any) -> float:
    """Threshold of a single-output binary classifier: 0.5 on a probability, 0.0 on a logit."""
    return 0.5 if outputs_probabilities(model) else 0.0


def to_probabilities(model: Any, outputs: Any) -> np.ndarray:
    """The model's raw outputs as class probabilities `(n, n_classes)` (a single unit becomes two).

    Args:
        model: the model that produced `outputs` (its activation decides how to read them).
        outputs: array `(n, k)` or `(n,)` of its outputs.
    """
    if isinstance(outputs, (list, tuple, dict)) or len(getattr(model, "outputs", None) or ()) > 1:
        raise ValueError(
            f"The model has {len(model.outputs)} outputs; class probabilities need a classifier with one output. "
            "Pass a single-output model, e.g. keras.Model(model.inputs, model.outputs[0])."
        )
    out = np.asarray(outputs, dtype=np.float64)
    out = out.reshape(len(out), -1)
    probs = outputs_probabilities(model)
    if out.shape[1] == 1 and output_activation(model) == "softmax":
        raise ValueError(
            "The model ends in a single softmax unit, whose output is always 1: it predicts one class whatever the "
            "input. A binary classifier needs one sigmoid unit (or a logit) or two softmax units."
        )
    if out.shape[1] == 1:
        p = out[:, 0] if probs else 1.0 / (1.0 + np.exp(-out[:, 0]))
        p = np.clip(p, 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    if not probs:
        out = np.exp(out - out.max(axis=1, keepdims=True))
    out = np.clip(out, 0.0, None)
    return out / out.sum(axis=1, keepdims=True)


def n_classes(model: Any) -> int | None:
    """The number of classes a classifier predicts: its output width, 2 for a single unit; None if unknown."""
    try:
        units = model.outputs[0].shape[-1]
    except (AttributeError, IndexError, TypeError):
        return None
    if units is None:
        return None
    return 2 if int(units) == 1 else int(units)


def to_classes(model: Any, outputs: Any) -> np.ndarray:
    """Predicted class indices from the model's raw outputs (threshold for a single unit, else argmax)."""
    out = np.asarray(outputs)
    if out.ndim == 1 or out.shape[-1] == 1:
        return (out.reshape(-1) > decision_threshold(model)).astype(np.int64)
    return out.reshape(len(out), -1).argmax(axis=-1).astype(np.int64)


def predict(model: Any, x: Any, *, batch_size: int = 256) -> Any:
    """`model`'s outputs on `x` as numpy, computed batch by batch with `predict_on_batch`.

    `model.predict` builds a data pipeline and a progress callback on every call: about 80 ms of
    CPU per call whatever the input size, which dominates shiftkit's many small feature and
    probability evaluations. `predict_on_batch` on slices of `batch_size` rows gives the same
    outputs in about 1.5 ms per call.

    A model built under a multi-replica `tf.distribute` strategy is called directly instead
    (`model(batch, training=False)`): Keras 3.15's `predict_on_batch` on such a model returns each
    batch's outputs once per replica (128 rows for 64 inputs under 2 replicas).

    Returns:
        An array `(n, ...)` (a list of arrays for a multi-output model).
    """
    import tensorflow as tf

    n = len(x)
    strategy = getattr(model, "distribute_strategy", None)
    replicas = max(getattr(strategy, "num_replicas_in_sync", 1), tf.distribute.get_strategy().num_replicas_in_sync)
    if replicas > 1:
        def run(batch: Any) -> Any:
            out = model(batch, training=False)
            return keras.tree.map_structure(np.asarray, out)
    else:
        run = model.predict_on_batch
    parts = [run(x[i : i + batch_size]) for i in range(0, max(n, 1), batch_size)]
    if isinstance(parts[0], (list, tuple)):
        return [np.concatenate([np.asarray(p[j]) for p in parts], axis=0) for j in range(len(parts[0]))]
    if isinstance(parts[0], dict):
        return {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=0) for k in parts[0]}
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


def _all_layers(model: Any) -> list[Any]:
    """Every layer of `model`, nested models' layers included (parents before children)."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
    return out


def copy_model(model: Any) -> Any:
    """An independent copy of a Keras model: new layers with the same config and copied weights.

    Layers whose state is derived from their weights (a `Normalization` set up with `adapt()`)
    are finalised after the copy, so the copy computes exactly what the original does.
    """

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in _all_layers(clone):
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):
            finalize()
    return clone


@keras.saving.register_keras_serializable(package="shiftkit")
class InferenceMode(keras.layers.Layer):
    """A wrapped model that always runs in inference mode, whatever the caller's `training`.

    Calling a nested functional model as `base(x, training=False)` inside another functional model
    does not hold in Keras 3: the outer model's `training` flag (True inside `fit`) is passed down
    to every layer of the graph (keras-team/keras#20285), so Dropout, GaussianNoise and any
    trainable BatchNormalization of the "frozen" base would run in training mode. This layer's
    `call` runs `inner(x, training=False)` explicitly. Its weights are `inner`'s (their `trainable`
    flags decide what trains); it serialises with `inner` in its config.

    Args:
        inner: the model (or layer) to run in inference mode.
    """

    def __init__(self, inner: Any, **kwargs: Any):
        kwargs.setdefault("dtype", inner.dtype_policy)
        super().__init__(**kwargs)
        self.inner = inner

    def call(self, inputs: Any) -> Any:
        return self.inner(inputs, training=False)

    def compute_output_spec(self, inputs: Any) -> Any:
        return self.inner.compute_output_spec(inputs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["inner"] = keras.saving.serialize_keras_object(self.inner)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> InferenceMode:
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(config.pop("inner"))
        return cls(inner, **config)


def unwrap(layer: Any) -> Any:
    """The model inside an `InferenceMode` wrapper (any other layer as it is)."""
    return layer.inner if isinstance(layer, InferenceMode) else layer
