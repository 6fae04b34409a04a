"""The training wrapper of feature-alignment adapters: task loss + weight * alignment(source, target features).

`MMDAdapter` (MMD^2) and `CORALAdapter` (CORAL) train through the same `alignment_trainer`: a
`keras.Model` wrapping the target model whose `train_step` adds the alignment term, so a Keras
`fit` gives them progress bars, callbacks and `tf.distribute` for free.

Two extensions serve adapters beyond a fixed distance:

* a *trainable* alignment term: when `alignment` is a `keras.layers.Layer` (e.g. DANN's domain
  discriminator behind a gradient-reversal layer) the wrapper tracks it, so its weights train with
  the same optimizer and the same gradient tape as the target model;
* *class-weighted* alignment: with `class_weights` (one weight per class, e.g. estimated target /
  source class ratios) each source sample gets the weight of its class, normalised to mean 1 over
  the batch, and the alignment is called as `alignment(fs, ft, source_weights=w)`; with
  `weight_task=True` the task loss of the source samples takes the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

__all__ = ["alignment_trainer", "check_batch_per_replica", "paired_dataset", "reseed_weights", "seed_new_head"]


def alignment_trainer(
    model: Any,
    base: Any,
    head: Any,
    *,
    loss_fn: Any,
    accuracy: Any,
    alignment: Callable[[Any, Any], Any],
    weight: float,
    alignment_name: str,
    target_labels: bool,
    class_weights: Any = None,
    weight_task: bool = False,
    name: str = "alignment_trainer",
) -> Any:
    """A `keras.Model` whose `fit` trains `model` on task loss + `weight` * alignment(source, target features).

    Generic over the alignment term: MMDAdapter (MMD^2) and CORALAdapter (CORAL) both train through
    it; any `(fs, ft) -> scalar` fits. It wraps the target model (`model = head(flatten(base(x)))`), calls `base` with
    `training=False` (BatchNorm in inference mode) and trains all of `model`'s trainable variables
    with the gradient of the whole objective. It is fed by `paired_dataset`: batches
    `((x_s, y_s), x_t)`, or `((x_s, y_s), (x_t, y_t))` when `target_labels`.

    Args:
        model, base, head: the target model and its parts (`Adapter._build`).
        loss_fn: the task loss (a Keras `Loss`, `loss_for_head`).
        accuracy: a Keras accuracy metric matching the head.
        alignment: `(source_features, target_features) -> scalar`, on flattened feature batches; a
            `keras.layers.Layer` is tracked and its trainable weights train with the model's. With
            `class_weights` it is called with a third keyword argument, `source_weights` (`(n,)`,
            mean 1 over the batch).
        weight: weight of the alignment term (0: the task loss alone; the term is still logged).
        alignment_name: the history key of the alignment term (e.g. "coral").
        target_labels: whether the target batches carry labels (they join the task loss).
        class_weights: None, or one non-negative weight per class (length = the number of classes;
            2 for a single sigmoid/logit unit): source samples are weighted by their class's weight.
        weight_task: with `class_weights`, weight the source samples' task loss as well (target
            samples, when labelled, keep weight 1).
        name: the wrapper's name.

    Returns:
        An uncompiled wrapper model (not meant to be saved); compile it inside the strategy scope.
    """

    class AlignmentTrainer(keras.Model):
        """Wraps the target model; `train_step` adds the alignment term. Not meant to be saved."""

        def __init__(self) -> None:
            super().__init__(name=name)
            self.target_model = model
            self.loss_fn = loss_fn
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.task_tracker = keras.metrics.Mean(name="task_loss")
            self.align_tracker = keras.metrics.Mean(name=alignment_name)
            self.accuracy = accuracy
            if isinstance(alignment, keras.layers.Layer):
                self.alignment_layer = alignment  # tracked: its weights train with the model's
            self.class_weights = (
                None if class_weights is None
                else tf.constant(np.asarray(class_weights, dtype="float32").reshape(-1))
            )
            self.built = True  # the wrapped model is built; skip Keras's symbolic build

        @property
        def metrics(self) -> list[Any]:
            return [self.loss_tracker, self.task_tracker, self.align_tracker, self.accuracy]

        def call(self, inputs: Any, training: bool = False) -> Any:
            return self.target_model(inputs, training=training)

        def _forward(self, x: Any) -> tuple[Any, Any]:
            features = base(x, training=False)  # BatchNorm in inference mode, as built
            features = ops.reshape(features, (ops.shape(features)[0], -1))
            return features, head(features, training=True)

        def _source_weights(self, ys: Any) -> Any:
            """Each source sample's class weight, normalised to mean 1 over the batch (float32, `(n,)`)."""
            labels = ops.reshape(ys, (ops.shape(ys)[0], -1))
            if labels.shape[-1] == 1:  # class indices, or a binary head's 0/1 targets
                codes = ops.cast(ops.round(ops.reshape(labels, (-1,))), "int32")
            else:  # one-hot rows
                codes = ops.cast(ops.argmax(labels, axis=-1), "int32")
            w = ops.take(self.class_weights, codes, axis=0)
            return w / ops.maximum(ops.mean(w), 1e-12)

        def train_step(self, data: Any) -> dict[str, Any]:
            (xs, ys), target = data
            xt, yt = target if target_labels else (target, None)
            n_s = ops.shape(xs)[0]
            with tf.GradientTape() as tape:
                features, preds = self._forward(ops.concatenate([xs, xt], axis=0))
                fs, ft = features[:n_s], features[n_s:]
                if target_labels:
                    y_task, p_task = ops.concatenate([ys, yt], axis=0), preds
                else:
                    y_task, p_task = ys, preds[:n_s]
                # A Keras Loss already divides its mean by the replica count (its share of the
                # gradients summed across replicas); the alignment term is divided here, once.
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                if self.class_weights is None:
                    scaled_task = ops.cast(self.loss_fn(y_task, p_task), "float32")
                    align = ops.cast(alignment(fs, ft), "float32")
                else:
                    sw = self._source_weights(ys)
                    if weight_task:
                        task_w = sw
                        if target_labels:  # labelled target samples keep weight 1
                            task_w = ops.concatenate([sw, ops.ones((ops.shape(yt)[0],), dtype=sw.dtype)], 0)
                        scaled_task = ops.cast(self.loss_fn(y_task, p_task, sample_weight=task_w), "float32")
                    else:
                        scaled_task = ops.cast(self.loss_fn(y_task, p_task), "float32")
                    align = ops.cast(alignment(fs, ft, source_weights=sw), "float32")
                scaled = scaled_task + weight * align / replicas if weight > 0 else scaled_task
                task = scaled_task * replicas if replicas > 1 else scaled_task  # this replica's mean
                loss = task + weight * align if weight > 0 else task
                scaled = self.optimizer.scale_loss(scaled)
            variables = self.trainable_variables
            grads = tape.gradient(scaled, variables)
            self.optimizer.apply(grads, variables)
            self.loss_tracker.update_state(loss)
            self.task_tracker.update_state(task)
            self.align_tracker.update_state(align)
            self.accuracy.update_state(y_task, p_task)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data: Any) -> dict[str, Any]:
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            _, preds = self._forward(x)
            task = self.loss_fn(y, preds)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            task = task * replicas if replicas > 1 else task  # undo the Loss's division, as Keras does
            self.loss_tracker.update_state(task)
            self.task_tracker.update_state(task)
            self.accuracy.update_state(y, preds)
            # No target batch in validation: no alignment term.
            return {m.name: m.result() for m in (self.loss_tracker, self.task_tracker, self.accuracy)}

    return AlignmentTrainer()


def seed_new_head(adapter: Any, seed: int | None) -> None:
    """A head that did not start from the source's (another feature layer, `n_outputs`, a `head=`,
    `head_init="random"`): seeded initial weights (`reseed_weights`), so a fit with a seed repeats."""
    if adapter.head_initialised_from_source_ or seed is None:
        return
    reseed_weights(adapter.head_, seed)


def reseed_weights(layer: Any, seed: int) -> None:
    """Re-draw every weight of `layer` (and its sublayers) from its own initializer, seeded.

    Each weight `w` with a `w_initializer` (kernel, bias, gamma, ...) is drawn again with that
    initializer's config and `seed + i` (i: the weight's rank in the layer order), so a Dense head
    gets `GlorotUniform(seed)` for its kernel and zeros for its bias, as Keras would, but the same
    values on every run.
    """
    layers = [layer] + list(layer._flatten_layers(include_self=False, recursive=True))
    i = 0
    for sub in layers:
        for attr, value in list(vars(sub).items()):
            if not attr.endswith("_initializer") or value is None:
                continue
            var = getattr(sub, attr[: -len("_initializer")], None)
            if not hasattr(var, "assign") or not hasattr(var, "shape"):
                continue
            config = keras.initializers.serialize(keras.initializers.get(value))
            if isinstance(config, dict) and "seed" in config.get("config", {}):
                config = {**config, "config": {**config["config"], "seed": seed + i}}
            init = keras.initializers.deserialize(config)
            var.assign(init(tuple(var.shape), dtype=var.dtype))
            i += 1


def paired_dataset(
    xs: np.ndarray,
    ys: np.ndarray,
    xt: np.ndarray,
    yt: np.ndarray | None,
    *,
    batch_size: int,
    seed: int | None,
) -> tuple[Any, int]:
    """Source batches zipped with target batches, each shuffled (seeded) and repeated.

    Args:
        xs, ys: source inputs and training targets (already in the loss's format).
        xt, yt: target inputs, and their targets or None.
        batch_size: samples per domain per step, capped at each domain's size (full batches only).
        seed: seed of the shuffles (the source's `seed`, the target's `seed + 1`); None: unseeded.

    Returns:
        `(dataset, steps)`: a `tf.data.Dataset` of `((x_s, y_s), x_t)` (or `((x_s, y_s), (x_t, y_t))`)
        and the steps of one epoch, `ceil(n_source / batch)`.
    """

    bs_s, bs_t = min(batch_size, len(xs)), min(batch_size, len(xt))

    def batches(items: Any, n: int, batch: int, shuffle_seed: int | None) -> Any:
        return (
            tf.data.Dataset.from_tensor_slices(items)
            .shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(batch, drop_remainder=True)
        )

    source = batches((xs, ys), len(xs), bs_s, seed)
    target = batches(xt if yt is None else (xt, yt), len(xt), bs_t, None if seed is None else seed + 1)
    return tf.data.Dataset.zip((source, target)).prefetch(tf.data.AUTOTUNE), math.ceil(len(xs) / bs_s)


def check_batch_per_replica(batch_size: int, n_source: int, n_target: int, *, per_replica: int,
                            purpose: str = "") -> None:
    """Raise a `ValueError` unless each domain's batch gives every replica `per_replica` samples.

    Under a multi-replica `tf.distribute` strategy each replica takes its alignment term on its own
    share of a batch (a covariance, an MMD^2 or a domain loss), so that share must not be empty or
    smaller than the term needs. The batch of a domain is `min(batch_size, its size)`.

    Args:
        batch_size: samples per domain per step.
        n_source, n_target: the domains' sizes.
        per_replica: samples each replica needs per domain.
        purpose: what they are needed for, for the message (e.g. "for a covariance").
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    smallest = min(batch_size, n_source, n_target)
    if smallest < per_replica * replicas:
        why = f", {purpose}" if purpose else ""
        raise ValueError(
            f"Under a {replicas}-replica strategy each domain's batch must hold at least {per_replica * replicas} "
            f"samples ({per_replica} per replica{why}); got {smallest} (batch_size={batch_size}, {n_source} source "
            f"and {n_target} target samples). Pass a larger batch_size or more data."
        )
