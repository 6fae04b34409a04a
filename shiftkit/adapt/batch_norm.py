"""Target statistics for BatchNormalization layers (AdaBN).

A BatchNormalization layer normalises with the mean and variance it saw during source training.
When the target inputs are blurred, rescaled or recorded by another device, those statistics are
off, and every later layer sees inputs of the wrong scale. *AdaBN* (Li, Wang, Shi, Liu & Hou,
"Revisiting Batch Normalization For Practical Domain Adaptation", 2016) replaces them by the
target's own: no labels and no gradient step are needed, only a forward pass over target inputs.

How the statistics are computed here (the procedure of PyTorch's `swa_utils.update_bn`): the
model runs in training mode over the target inputs, in batches, and each BatchNormalization
layer's moving mean and variance become the *average over batches* of its batch mean and batch
variance (momentum set to `(b - 1) / b` at batch `b`, restored afterwards). With up to
`batch_size` rows this is one batch: the exact target mean and (biased) variance of the layer's
inputs, each layer seeing inputs normalised by the layers before it with their target statistics.
Other training-mode layers (Dropout, GaussianNoise) are active during the pass, as in
`update_bn`. Gamma and beta are not changed.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

__all__ = ["batch_norm_layers", "recalibrate_batch_norm", "BATCH_NORM_MODES"]

#: `FineTuneAdapter(batch_norm=...)` values: keep the source statistics, use the target's (AdaBN),
#: choose between the two on held-out labels, or train BN as a plain Keras fine-tune does.
BATCH_NORM_MODES = ("auto", "source", "target", "train")


def batch_norm_layers(model: Any) -> list[Any]:
    """The BatchNormalization layers of `model`, nested models included, in topological order."""
    out: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(batch_norm_layers(layer))
        elif isinstance(layer, keras.layers.BatchNormalization):
            out.append(layer)
    return out


def recalibrate_batch_norm(model: Any, x: Any, *, batch_size: int = 1024) -> int:
    """Set the moving mean and variance of `model`'s BatchNormalization layers to those of `x` (AdaBN).

    Args:
        model: a built `keras.Model` (changed in place: only the BN moving statistics).
        x: inputs the statistics are computed on (e.g. target inputs), shaped like the model's input.
        batch_size: rows per forward pass; up to this many rows give the exact statistics of `x`,
            more are averaged over batches (memory stays bounded by one batch's activations).

    Returns:
        The number of BatchNormalization layers updated (0: the model has none; nothing changed).

    Raises:
        ValueError: `x` is empty.

    Example:
        >>> recalibrate_batch_norm(target_model.get_layer("base"), x_target)  # doctest: +SKIP
        2
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    if len(x) == 0:
        raise ValueError("x is empty: BatchNormalization statistics need at least one target input row.")
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    try:
        for layer in layers:
            layer.trainable = True  # a frozen BN layer ignores training=True
        as_list = isinstance(model.input, list)  # a functional model built on a list of one input
        for b, start in enumerate(range(0, len(x), batch_size), 1):
            for layer in layers:
                layer.momentum = (b - 1) / b  # running average over batches; batch 1 replaces the source's
            batch = np.asarray(x[start : start + batch_size])
            model([batch] if as_list else batch, training=True)
    finally:
        for layer, (momentum, trainable) in zip(layers, saved):
            layer.momentum = momentum
            layer.trainable = trainable
    return len(layers)
