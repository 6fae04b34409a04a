"""Feature spaces of Keras models: where a model "looks" when shift is measured."""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np

from shiftkit._keras import head_layer, predict, producing_layer, require_model, to_probabilities
from shiftkit._validation import check_array, check_positive_int

_EXTRACTORS: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()

__all__ = [
    "FeatureSpace",
    "feature_space",
    "resolve_layer",
    "head_of",
    "head_input",
    "default_features",
    "source_head_chain",
    "check_model_input",
    "predict_proba",
]


#: Old private name of `shiftkit._keras.require_model`, kept while other modules still import it.
_require_model = require_model


def _layer_names(model: Any) -> list[str]:
    return [layer.name for layer in model.layers]


def head_of(model: Any) -> Any:
    """The model's head layer (`shiftkit._keras.head_layer`) when it is a layer of `model` itself.

    The head is the last layer *with weights* on the way to the output: for `Dense(k) ->
    Activation("softmax")` (the mixed-precision pattern) or `Dense(k) -> Softmax()` it is the Dense
    layer. When that layer lies inside a nested model, its input is a tensor of the nested graph,
    so the model's own output layer (the nested model itself) is returned instead.
    """
    model = require_model(model)
    head = head_layer(model)
    if any(layer is head for layer in model.layers):
        return head
    return producing_layer(model.outputs[0])


def head_input(model: Any) -> Any:
    """The tensor entering the model's head layer (`head_of`): its default feature space.

    For `Dense(k) -> Softmax()` this is the Dense layer's input (the features), not the logits.
    """
    tensor = head_of(model).input
    return tensor[0] if isinstance(tensor, (list, tuple)) else tensor


#: Layers a copied head may hold after its Dense layer (`source_head_chain`): one input, one output,
#: rebuilt from their config with their weights (activations, temperature, normalisation, noise).
_HEAD_TAIL = (
    keras.layers.Activation,
    keras.layers.Softmax,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.Rescaling,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.Dropout,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
    keras.layers.Flatten,
)



def _single_input(tensor: Any) -> Any:
    """The one input tensor of the node that produced `tensor`, or None (several inputs, no history)."""
    try:
        operation, node_index, _ = tensor._keras_history
        inputs = operation._inbound_nodes[node_index].input_tensors
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    return inputs[0] if len(inputs) == 1 else None


def source_head_chain(model: Any) -> tuple[list[Any], Any] | None:
    """The model's last Dense layer and the layers after it, when they form a simple chain to the output.

    Walking back from the output through layers of `_HEAD_TAIL` (activations, `Rescaling`,
    `BatchNormalization`, `LayerNormalization`, dropout and noise layers), each with one input, the
    first `Dense` layer reached (over a 2-D input) is the classifier's last weighted layer. Its
    input is the feature space (`default_features`); the adapters rebuild the Dense layer and the
    chain after it from their configs with the source weights, so a head copied from them computes
    what the source does.

    Returns:
        `(layers, features)`: the layers in call order (the Dense layer first) and the Dense
        layer's input tensor; None when the output is not reached that way (a nested model, a
        layer with several inputs, a layer outside `_HEAD_TAIL`).
    """

    tensor = model.outputs[0]
    tail: list[Any] = []
    for _ in range(64):
        try:
            layer = producing_layer(tensor)
        except (AttributeError, IndexError):
            return None
        inp = _single_input(tensor)
        if inp is None or isinstance(layer, keras.Model):
            return None
        if isinstance(layer, keras.layers.Dense):
            if len(inp.shape) != 2:
                return None
            return [layer] + tail[::-1], inp
        if not isinstance(layer, _HEAD_TAIL):
            return None
        tail.append(layer)
        tensor = inp
    return None


def default_features(model: Any) -> tuple[Any, str]:
    """The model's default feature space: `(tensor, name)`, the same for the reports and the adapters.

    The input of the head layer (`head_input`), except when the head layer is not a Dense layer but a
    Dense layer starts a simple chain to the output (`source_head_chain`: `Dense -> Rescaling ->
    Softmax` for a temperature-scaled classifier, `Dense -> BatchNormalization -> Softmax`): then the
    Dense layer's input, the features, rather than the logits the weighted tail layer reads.
    """
    head = head_of(model)
    if not isinstance(head, keras.layers.Dense):
        chain = source_head_chain(model)
        if chain is not None:
            return chain[1], f"input of {chain[0][0].name}"
    return head_input(model), f"input of {head.name}"


def resolve_layer(model: Any, layer: str | int) -> Any:
    """Return the layer named (or indexed) by `layer`, with an error that lists the options."""
    model = require_model(model)
    names = _layer_names(model)
    if isinstance(layer, bool) or not isinstance(layer, (str, int, np.integer)):
        raise TypeError(f"layer must be a layer name or index; got {type(layer).__name__}.")
    if isinstance(layer, str):
        if layer not in names:
            raise ValueError(
                f"layer must name a layer of the model. Received: layer={layer!r}. "
                f"Layers: {names}."
            )
        return model.get_layer(layer)
    if not -len(names) <= int(layer) < len(names):
        raise ValueError(
            f"layer index {int(layer)} is out of range for a model with {len(names)} layers "
            f"({names})."
        )
    return model.layers[int(layer)]


def check_model_input(model: Any, x: Any, name: str = "x") -> np.ndarray:
    """Return `x` as float32 after checking it against `model`'s input shape.

    Raises:
        ValueError: the per-sample shape differs from the model's (e.g. "x has 4 features, but
            the model expects 5"), besides the checks of `check_array`.
    """
    arr = check_array(x, name, min_samples=1, dtype=np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    got = arr.shape[1:]
    compatible = len(got) == len(expected) and all(e is None or e == g for e, g in zip(expected, got))
    if not compatible:
        if len(expected) == 1 and len(got) == 1:
            msg = f"{name} has {got[0]} features, but the model expects {expected[0]}."
        else:
            msg = f"{name} has per-sample shape {got}, but the model expects {expected}."
        raise ValueError(msg + " Pass data with the columns/shape the model was trained on.")
    return arr


class FeatureSpace:
    """A callable that maps inputs to a Keras model's features at one layer.

    Args:
        model: a built `keras.Model`.
        layer: a layer name or index whose *output* is the feature space; `None` (default) uses the
            model's default feature space (`default_features`: the input of its last Dense layer, so the
            features and not the logits when Softmax / Activation / a temperature or BatchNormalization
            of the logits ends the model).
        batch_size: batch size of the forward passes.

    Example:
        >>> fs = FeatureSpace(model)          # doctest: +SKIP
        >>> mmd_test(x_source, x_target, features=fs)  # doctest: +SKIP
    """

    def __init__(self, model: Any, layer: str | int | None = None, *, batch_size: int = 256):
        model = require_model(model)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if layer is None:
            tensor, self.layer_name = default_features(model)
        else:
            chosen = resolve_layer(model, layer)
            tensor = chosen.output
            self.layer_name = chosen.name
        if isinstance(tensor, (list, tuple)):
            tensor = tensor[0]
        self.model = model
        # One extractor per (model, layer), reused: a new keras.Model per call would retrace its
        # predict function every time (slow, and TensorFlow warns about it).
        per_model = _EXTRACTORS.setdefault(model, {})
        if self.layer_name not in per_model:
            per_model[self.layer_name] = keras.Model(model.inputs, tensor, name="shiftkit_feature_space")
        self.extractor = per_model[self.layer_name]

    def check_input(self, x: Any, name: str = "x") -> np.ndarray:
        """Validate `x` against the model's input shape (a clear error instead of a TF traceback)."""
        return check_model_input(self.model, x, name)

    def __call__(self, x: Any) -> np.ndarray:
        arr = self.check_input(x)
        out = predict(self.extractor, arr, batch_size=self.batch_size)
        return np.asarray(out, dtype=np.float64).reshape(len(arr), -1)

    def __repr__(self) -> str:
        return f"FeatureSpace(model={self.model.name!r}, layer={self.layer_name!r})"


def feature_space(model: Any, layer: str | int | None = None, *, batch_size: int = 256) -> FeatureSpace:
    """Return a callable mapping inputs to `model`'s features (see `FeatureSpace`).

    Args:
        model: a built `keras.Model`.
        layer: layer name or index whose output is used; default: the input of the output head.
        batch_size: forward-pass batch size.

    Returns:
        A `FeatureSpace`, usable as `mmd_test(..., features=feature_space(model))`.

    Raises:
        TypeError: `model` is not a Keras model.
        ValueError: `layer` names no layer of the model (the message lists them).
    """
    return FeatureSpace(model, layer, batch_size=batch_size)


def predict_proba(model: Any, x: Any, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of a Keras classifier, shape `(n, n_classes)`.

    Whether the outputs are probabilities or logits is decided from the model's *architecture*, by
    `shiftkit._keras.to_probabilities`: a softmax / sigmoid output activation (a Dense activation,
    or an `Activation` / `Softmax` layer after the head) gives probabilities, used as they are;
    anything else gives logits, passed through softmax (several columns) or the logistic function
    (one column). Never guessed from the values: logits that happen to lie in [0, 1] are logits. A
    single column becomes two, `[1 - p, p]`.
    """
    model = require_model(model)
    x = check_model_input(model, x, "x")
    return to_probabilities(model, predict(model, x, batch_size=batch_size))
