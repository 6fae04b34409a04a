"""The target model of an adapter: the source layers copied up to a feature layer, plus a head.

    inputs -> base (a nested keras.Model: the source layers up to `feature_layer`, weights copied)
           -> head (the one given, or Dense(n_outputs) with the source model's output activation)

The default head starts from the source *head layer*'s weights whenever they fit
(`source_head_weights`), so an untrained target model is the source model itself. Nothing here
changes the source model: layers are cloned and weights copied, never shared.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from shiftkit._keras import InferenceMode, activation_name, copy_model, output_activation, output_layer, require_model
from shiftkit._validation import check_positive_int
from shiftkit.shift.features import head_input, head_of, resolve_layer

__all__ = ["build_target_model", "copy_model", "head_config", "source_head_weights"]


def _require_model(model: Any, name: str = "source_model") -> Any:
    return require_model(model, name)


def _feature_tensor(model: Any, feature_layer: str | int | None) -> tuple[Any, str]:
    if feature_layer is None:
        return head_input(model), f"input of {head_of(model).name}"
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

    The default head is `Dense(n_outputs, activation=<the source's output activation>)`. With
    `head_init="source"` it starts from the source head's kernel and bias when they fit
    (`source_head_weights`), so the target model starts as the source model itself; otherwise (or
    with `head_init="random"`, or a `head` given) it starts from Keras's initialisers.

    Returns:
        `(model, base, head, feature_name)`: the target model, its nested base, its head layer, and
        a description of the feature layer.
    """


    source_model = _require_model(source_model)
    head_init = _check_head_init(head_init)
    _feature_tensor(source_model, feature_layer)  # validates the layer before cloning
    clone = copy_model(source_model)
    tensor, feature_name = _feature_tensor(clone, feature_layer)
    base = keras.Model(clone.inputs, tensor, name="base")
    src_outputs, activation = head_config(source_model)
    start = None
    if head is None:
        units = src_outputs if n_outputs is None else check_positive_int(n_outputs, "n_outputs")
        # The output layer's dtype policy: float32 after a mixed-precision body (Keras's advice).
        head = keras.layers.Dense(units, activation=activation, name="head", dtype=output_layer(source_model).dtype_policy)
        if head_init == "source":
            start = source_head_weights(source_model, feature_layer, units)
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
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=name)
    return model, base, head, feature_name


def _check_head_init(head_init: Any) -> str:
    if head_init not in ("source", "random"):
        raise ValueError(
            "head_init must be 'source' (start the new head from the source head's weights when they "
            f"fit) or 'random' (Keras's initialisers). Received: head_init={head_init!r}."
        )
    return head_init
