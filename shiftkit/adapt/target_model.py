"""The target model of an adapter: the source layers copied up to a feature layer, plus a head.

    inputs -> base (a nested keras.Model: the source layers up to `feature_layer`, weights copied)
           -> head (the one given, or Dense(n_outputs) with the source model's output activation)

The default head starts from the source *head layer*'s weights whenever they fit
(`source_head_weights`), so an untrained target model is the source model itself. When the source
model ends in a Dense layer followed by a short chain of layers that are not a plain activation
(`Dense(k) -> Rescaling(1/T) -> Softmax()`, `Dense(k) -> BatchNormalization() -> Softmax()`,
`Dense(k, activation="relu") -> Softmax()`), the head is that chain, copied with its weights
(`source_head_chain`), and the features are the Dense layer's input, not the logits. A default head
that can start from neither is new, and `build_target_model` warns (`UncopiedHeadWarning`) unless
a new head was asked for. Nothing here changes the source model: layers are cloned and weights
copied, never shared.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from shiftkit._keras import (
    InferenceMode,
    activation_name,
    copy_model,
    output_activation,
    output_layer,
    producing_layer,
    require_model,
)
from shiftkit._validation import check_positive_int
from shiftkit.shift.features import (
    default_features,
    head_input,
    head_of,
    resolve_layer,
    source_head_chain,
)

__all__ = [
    "UncopiedHeadWarning",
    "build_target_model",
    "copy_model",
    "head_config",
    "source_head_chain",
    "source_head_weights",
]

class UncopiedHeadWarning(UserWarning):
    """The source model's head could not be copied: the adapter's default head starts from random weights."""


def _require_model(model: Any, name: str = "source_model") -> Any:
    """`shiftkit._keras.require_model`, with a message of its own for a subclassed `keras.Model`."""
    try:
        return require_model(model, name)
    except ValueError:
        try:
            outputs = model.outputs
        except (AttributeError, ValueError):
            outputs = None
        # A Functional model always has outputs: one without is an unbuilt Sequential or subclassed.
        if not outputs and not isinstance(model, keras.Sequential):
            raise ValueError(
                f"{name} is a subclassed keras.Model ({type(model).__name__}); subclassed models are not "
                "supported: their layers form no graph that shiftkit can copy up to a feature layer. Build the "
                "same layers as a Functional model (inputs = keras.Input(shape=...); outputs = the layers applied "
                "to inputs; keras.Model(inputs, outputs)) or a keras.Sequential, copy the weights over "
                "(set_weights), and pass that."
            ) from None
        raise


def _output_path(model: Any, limit: int = 6) -> list[str]:
    """The last layers on the way to the output, in call order, as 'name (Class)' (for messages)."""
    names: list[str] = []
    tensor = model.outputs[0]
    for _ in range(limit):
        try:
            layer = producing_layer(tensor)
        except (AttributeError, IndexError):
            break
        if isinstance(layer, keras.layers.InputLayer):
            break
        names.append(f"{layer.name} ({type(layer).__name__})")
        if isinstance(layer, keras.layers.Dense):
            break
        try:
            inputs = layer._inbound_nodes[tensor._keras_history[1]].input_tensors
        except (AttributeError, IndexError):
            break
        tensor = inputs[0]
    return names[::-1]


def _feature_tensor(model: Any, feature_layer: str | int | None) -> tuple[Any, str]:
    if feature_layer is None:
        return default_features(model)
    layer = resolve_layer(model, feature_layer)
    out = layer.output
    return (out[0] if isinstance(out, (list, tuple)) else out), layer.name


def head_config(model: Any) -> tuple[int, str]:
    """(number of outputs, output activation) of a classifier (`shiftkit._keras.output_activation`).

    The activation is the one that produces the outputs: "softmax" for `Dense(k) -> Softmax()` or
    `Dense(k) -> Activation("softmax")` too, "linear" for logits.
    """

    out = model.outputs[0]
    n_outputs = int(out.shape[-1]) if out.shape[-1] is not None else 1
    return n_outputs, output_activation(model)


def source_head_weights(source_model: Any, feature_layer: str | int | None, units: int) -> list[np.ndarray] | None:
    """The source head's weights when a new `Dense(units)` head on `feature_layer` can start from them.

    The new head is `Dense(units, activation=<output activation>)` on the features. It reproduces the
    source model's last step exactly when the source head (`head_of`: the last layer with weights) is
    a Dense layer that (a) reads the same features (`feature_layer` None, or a layer whose output is
    the head's input), (b) has `units` outputs and (c) applies no activation of its own, or the output
    activation itself. Then its kernel and bias are returned (copies); otherwise None (a fresh head).
    """


    head = head_of(source_model)
    if not isinstance(head, keras.layers.Dense) or int(head.units) != int(units):
        return None
    if len(head_input(source_model).shape) != 2:  # a Dense over a sequence / image axis: not one step
        return None
    if feature_layer is not None and _feature_tensor(source_model, feature_layer)[0] is not head_input(source_model):
        return None
    if activation_name(getattr(head, "activation", None)) not in ("linear", output_activation(source_model)):
        return None
    weights = head.get_weights()
    if not head.use_bias:
        weights = [weights[0], np.zeros(int(units), dtype=weights[0].dtype)]
    return [np.array(w, copy=True) for w in weights]


def _copied_head_chain(source_model: Any, feature_layer: str | int | None, units: int) -> list[Any] | None:
    """Fresh, unbuilt copies of the source's head chain (`source_head_chain`) when a head made of them
    reads the features of `feature_layer` and has `units` outputs; None otherwise."""
    chain = source_head_chain(source_model)
    if chain is None:
        return None
    layers, features = chain
    if int(source_model.outputs[0].shape[-1] or 0) != int(units):
        return None
    if feature_layer is not None and _feature_tensor(source_model, feature_layer)[0] is not features:
        return None
    return [type(layer).from_config(layer.get_config()) for layer in layers]


def _head_activation(activation: str, units: int, source_units: int) -> str:
    """The activation of a new default head of `units` outputs on a source whose output activation is
    `activation`: one unit after a softmax source is a sigmoid unit (a softmax over one unit is always 1),
    several after a single sigmoid unit are a softmax (one class per row, as the loss reads them)."""
    if units == source_units:
        return activation
    if units == 1 and activation == "softmax":
        return "sigmoid"
    if units > 1 and activation == "sigmoid":
        return "softmax"
    return activation


def _warn_uncopied_head(source_model: Any, feature_name: str, units: int, activation: str) -> None:
    path = " -> ".join(_output_path(source_model)) or producing_layer(source_model.outputs[0]).name
    warnings.warn(
        f"The source model's head cannot be copied into the target model: its output is computed by "
        f"{path}, which is not a Dense layer followed only by activation, Rescaling, normalisation or "
        f"dropout layers. The new head Dense({units}, activation={activation!r}) on the features "
        f"({feature_name}) starts from random weights, so the untrained target model is not the source "
        "model, and adapters that only align features can end far below it. To start from the source "
        "head, end the model in such a chain (e.g. Dense(k) -> Rescaling(1/T) -> Softmax()), or pass "
        "feature_layer= naming the layer whose output feeds the model's last Dense layer; pass "
        "head_init='random' to use a new head knowingly (no warning).",
        UncopiedHeadWarning,
        stacklevel=4,
    )


def build_target_model(
    source_model: Any,
    *,
    feature_layer: str | int | None = None,
    head: Any = None,
    n_outputs: int | None = None,
    head_init: str = "source",
    name: str = "target_model",
    base_training: bool | None = False,
) -> tuple[Any, Any, Any, str]:
    """Clone the source layers up to `feature_layer`, copy their weights, and add a head.

    The default head is `Dense(n_outputs, activation=<the source's output activation>)` (a sigmoid
    unit for `n_outputs=1` on a softmax source, a softmax for `n_outputs > 1` on a sigmoid unit).
    With `head_init="source"` it starts from the source head's kernel and bias when they fit
    (`source_head_weights`), so the target model starts as the source model itself; when the
    source ends in a Dense layer and a chain of other layers (`source_head_chain`), the head is a
    copy of that chain with its weights (a `keras.Sequential` named "head"; its BatchNormalization
    runs in inference mode, as the base's does). Otherwise (or with `head_init="random"`, or a `head` given) it starts from
    Keras's initialisers; a default head that could not be copied, with `feature_layer`,
    `n_outputs` and `head_init` left as they are, warns (`UncopiedHeadWarning`).

    Returns:
        `(model, base, head, feature_name)`: the target model, its nested base, its head layer, and
        a description of the feature layer.

    Raises:
        ValueError: the head ends in a single softmax unit (its output is always 1).
    """

    return _build_target_model(
        source_model, feature_layer=feature_layer, head=head, n_outputs=n_outputs, head_init=head_init,
        name=name, base_training=base_training,
    )[:4]


def _build_target_model(
    source_model: Any,
    *,
    feature_layer: str | int | None = None,
    head: Any = None,
    n_outputs: int | None = None,
    head_init: str = "source",
    name: str = "target_model",
    base_training: bool | None = False,
) -> tuple[Any, Any, Any, str, bool]:
    """`build_target_model`, plus whether the head starts from the source head's weights."""

    source_model = _require_model(source_model)
    head_init = _check_head_init(head_init)
    _feature_tensor(source_model, feature_layer)  # validates the layer before cloning
    clone = copy_model(source_model)
    tensor, feature_name = _feature_tensor(clone, feature_layer)
    base = keras.Model(clone.inputs, tensor, name="base")
    src_outputs, activation = head_config(source_model)
    start = chain = None
    if head is None:
        units = src_outputs if n_outputs is None else check_positive_int(n_outputs, "n_outputs")
        activation = _head_activation(activation, units, src_outputs)
        if head_init == "source":
            start = source_head_weights(source_model, feature_layer, units)
            if start is None:
                chain = _copied_head_chain(source_model, feature_layer, units)
        if chain is not None:
            # BatchNormalization of the copied head runs in inference mode, as the base's does.
            head = keras.Sequential(
                [InferenceMode(layer, name=layer.name) if isinstance(layer, keras.layers.BatchNormalization)
                 else layer for layer in chain],
                name="head",
            )
        else:
            # The output layer's dtype policy: float32 after a mixed-precision body (Keras's advice).
            head = keras.layers.Dense(units, activation=activation, name="head",
                                      dtype=output_layer(source_model).dtype_policy)
            if start is None and head_init == "source" and feature_layer is None and units == src_outputs:
                _warn_uncopied_head(source_model, feature_name, units, activation)
    elif not isinstance(head, keras.layers.Layer):
        raise TypeError(
            f"head must be a keras layer (or a keras.Model/Sequential used as one); got {type(head).__name__}."
        )
    else:
        # A fresh copy from the config: a refit, or a second adapter given the same head object,
        # never starts from (or shares) already-trained head weights.
        try:
            head = type(head).from_config(head.get_config())
        except Exception:  # noqa: BLE001 - a layer that cannot round-trip its config is used as given
            pass
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"input_{i}") for i, t in enumerate(clone.inputs)]
    # training=False (default): BatchNormalization and Dropout of the base always run in inference mode
    # (through InferenceMode: a nested model's training=False does not hold in Keras 3); None: they
    # follow the caller (training mode inside `fit`, as in a plain Keras fine-tune).
    x_in = inputs[0] if len(inputs) == 1 else inputs
    if base_training is False:
        features = InferenceMode(base, name="base")(x_in)
    else:
        features = base(x_in, training=base_training)
    if len(features.shape) > 2:
        features = keras.layers.Flatten(name="flatten_features")(features)
    outputs = head(features)
    if start is not None:
        head.set_weights(start)
    if chain is not None:
        for copied, original in zip(chain, source_head_chain(source_model)[0]):
            copied.set_weights([np.array(w, copy=True) for w in original.get_weights()])
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=name)
    n_out, out_activation = head_config(model)
    if n_out == 1 and out_activation == "softmax":
        raise ValueError(
            "The target model's head ends in a single softmax unit, whose output is always 1 (one class "
            "whatever the input). For two classes use one sigmoid unit, e.g. head=keras.layers.Dense(1, "
            "activation='sigmoid') or n_outputs=1 with the default head, or two softmax units."
        )
    return model, base, head, feature_name, start is not None or chain is not None


def _check_head_init(head_init: Any) -> str:
    if head_init not in ("source", "random"):
        raise ValueError(
            "head_init must be 'source' (start the new head from the source head's weights when they "
            f"fit) or 'random' (Keras's initialisers). Received: head_init={head_init!r}."
        )
    return head_init
