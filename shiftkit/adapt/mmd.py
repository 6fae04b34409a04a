"""MMDAdapter: train on labelled data while pulling source and target features together with MMD^2.

The objective of each training step, on a batch of `B` labelled source samples `(x_s, y_s)` and a
batch of `B` target samples `x_t` (labels optional), is

    loss = task_loss + mmd_weight * MMD^2_u(f(x_s), f(x_t))

where `f` is the adapted model's feature extractor (the `base`: the source layers up to
`feature_layer`, flattened) and MMD^2_u is the unbiased estimator of `shiftkit.shift.kernels.mmd2_tensor`
-- the very function `shiftkit.mmd2` and `shiftkit.mmd_test` use to *measure* shift ("one kernel, two
uses", DESIGN.md), so the `mmd2` logged during training and the before/after figures of a shift
report are the same statistic. This is the "deep domain confusion" / DAN recipe (Tzeng et al. 2014;
Long et al. 2015 for the multi-kernel sum).

Task loss: the loss matching the source model's output head (sparse categorical cross-entropy for
softmax / several logits, binary cross-entropy for a single sigmoid or logit unit). When target
labels are given (`y_target`), each step's target batch is *concatenated* with the source batch for
the task loss: the task loss is the mean over the `2B` labelled samples, so a labelled target sample
weighs as much as a source sample and target labels are seen at the same rate as source labels
however few there are (the target data are cycled). Without `y_target` the target batch enters only
the MMD term.

Bandwidth: `bandwidth=None` takes the median heuristic on each batch's pooled source + target
features (the definition of `shiftkit.shift.kernels.median_heuristic`: the median Euclidean distance
over all pairs, with its fallbacks for ties), computed under `ops.stop_gradient`. The bandwidth then
scales with the features, so the network cannot lower MMD^2 by merely blowing the features up (with
a fixed bandwidth, distances much larger than it make every cross-domain kernel value vanish and the
gradient with it) or shrinking them (all kernel values -> 1 and MMD^2 -> 0 without any alignment);
and because no gradient flows through the bandwidth, the optimiser cannot game the kernel itself.
A number or a list of numbers fixes the bandwidth(s) (a list sums the Gaussian kernels: a
multi-scale kernel).

Starting point and BatchNorm: the target model is built by `Adapter._build`: the source layers up to
`feature_layer` cloned with their weights copied (the source model stays bit-identical), and a head
`Dense(n_outputs)` with the source's output activation, whose weights are copied from the source
model's head layer (`shiftkit._keras.head_layer`: the last layer with weights, so the Dense of
`Dense(k) -> Activation("softmax")` or `Dense(k) -> Softmax()`) whenever they fit (always with the
default `feature_layer`, the head layer's input), so training starts from the source model itself.
Everything is trainable, but the base is called with `training=False`, so BatchNormalization layers
run in inference mode: their moving statistics are not updated (only gamma/beta learn), as in the
Keras fine-tuning recipe. Dropout inside the base is likewise off.

Training uses Keras's own `fit` (progress bar, callbacks, History): a small `keras.Model` subclass
wraps the target model and overrides `train_step` (TensorFlow backend, `tf.GradientTape`), fed by a
`tf.data.Dataset` that zips shuffled, repeated source batches with shuffled, repeated target batches
(seeded). An epoch is `ceil(n_source / batch_size)` steps. The optimizer, metrics and trainer are
created inside the active `tf.distribute` strategy's scope; under a multi-replica strategy each
replica computes the MMD^2 of its own share of the batch; the gradients are summed across replicas,
so each replica's objective is divided by the number of replicas. The task loss comes divided already
(a Keras `Loss` does it itself under `tf.distribute`), so only the MMD^2 term is divided here, and the
logged `task_loss` / `loss` are the undivided per-replica means (the same figures as on one device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from shiftkit._keras import decision_threshold
from shiftkit._validation import check_bandwidth, check_positive_int, check_real, check_seed
from shiftkit.adapt.alignment import alignment_trainer, seed_new_head
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import head_config
from shiftkit.adapt.training import loss_for_head
from shiftkit.shift import kernels

__all__ = ["MMDAdapter", "batch_mmd2", "LEARNING_RATE"]

#: Default Adam learning rate of MMDAdapter (the whole network trains, from the source weights).
LEARNING_RATE = 1e-3
#: Training epochs of `fit(epochs=None)` (what Experiment and the dashboard ran before the adapter contract).
EPOCHS = 20


# ---------------------------------------------------------------------------------- the loss term
def batch_mmd2(source_features: Any, target_features: Any, bandwidth: Any = None) -> Any:
    """The MMD^2 term of `MMDAdapter`'s loss on one batch (unbiased estimator).

    `kernels.mmd2_tensor` on the two feature batches, with `bandwidth=None` resolved by
    `median_bandwidth` on the pooled batch (no gradient through it). With the same bandwidth this is
    `shiftkit.mmd2(source_features, target_features)` computed in the model's float precision.

    Args:
        source_features: tensor `(n, d)`, `n >= 2`.
        target_features: tensor `(m, d)`, `m >= 2`.
        bandwidth: None (median heuristic), a positive number, or a 1-D array of them (kernel sum).

    Returns:
        A scalar tensor, differentiable with respect to the features.
    """

    fs = ops.convert_to_tensor(source_features)
    ft = ops.convert_to_tensor(target_features, dtype=fs.dtype)
    if bandwidth is None:
        bw = kernels.median_bandwidth(ops.concatenate([fs, ft], axis=0))
    else:
        bw = ops.cast(ops.convert_to_tensor(np.asarray(bandwidth, dtype=np.float64).reshape(-1)), fs.dtype)
    return kernels.mmd2_tensor(fs, ft, bw, "unbiased")


def _check_mmd_weight(value: Any) -> float:
    return check_real(value, "mmd_weight", low=0, example="1.0 (0 trains on the task loss alone)")


def _check_learning_rate(value: Any) -> float:
    return check_real(value, "learning_rate", low=0, low_open=True, example=LEARNING_RATE)


@register_adapter
class MMDAdapter(Adapter):
    """Unsupervised domain adaptation: task loss + `mmd_weight` * MMD^2 of source vs target features.

    The whole network (source layers up to `feature_layer`, copied, plus a head copied from the
    source head layer) is trained on labelled source data while the MMD^2 between each batch's source and
    target features is minimised with the same Gaussian-kernel estimator that measures shift
    (`shiftkit.shift.kernels.mmd2_tensor`). Needs no target labels; uses them when given. See the
    module docstring for the objective, the bandwidth and the BatchNorm policy.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: name or index of the layer whose output is the aligned feature space;
            default: the input of the source model's head layer (the features, not the logits).
        mmd_weight: weight of the MMD^2 term, a finite number >= 0 (0: plain task-loss training).
        bandwidth: None for the per-batch median heuristic (on pooled features, no gradient), or a
            positive number or list of numbers fixing the Gaussian bandwidth(s).
        learning_rate: Adam learning rate (default 1e-3).

    Raises:
        TypeError / ValueError: a non-model `source_model`, an unknown `feature_layer`, a negative
            or non-finite `mmd_weight`, a non-positive `bandwidth`.

    Example:
        >>> adapter = MMDAdapter(source_model, mmd_weight=1.0).fit(  # doctest: +SKIP
        ...     x_source, y_source, x_target, epochs=20, seed=0)
        >>> shiftkit.mmd_test(adapter.features(x_source), adapter.features(x_target))  # doctest: +SKIP
        >>> adapter.save("adapted.keras")  # doctest: +SKIP
    """

    name = "mmd"
    title = "MMD: source task loss + feature alignment with unlabelled target data"
    requires = ("x_source", "y_source", "x_target")
    uses = ("y_target",)

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        mmd_weight: float = 1.0,
        bandwidth: float | Sequence[float] | None = None,
        learning_rate: float = LEARNING_RATE,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.mmd_weight = _check_mmd_weight(mmd_weight)
        bw = check_bandwidth(bandwidth)
        self.bandwidth = None if bw is None else (float(bw[0]) if np.ndim(bandwidth) == 0 else bw.tolist())
        self.learning_rate = _check_learning_rate(learning_rate)

    def fit(
        self,
        x_source: Any = None,
        y_source: Any = None,
        x_target: Any = None,
        *,
        y_target: Any = None,
        epochs: int | None = None,
        batch_size: int = 64,
        learning_rate: float | None = None,
        validation_data: Any = None,
        callbacks: Any = None,
        verbose: Any = "auto",
        seed: int | None = None,
    ) -> MMDAdapter:
        """Train task loss + mmd_weight * MMD^2(source features, target features).

        Args:
            x_source: labelled source inputs, with the source model's input shape.
            y_source: source labels (class indices, or one-hot rows).
            x_target: target inputs (unlabelled unless `y_target` is given), same input shape.
            y_target: optional labels of `x_target`, one per row; their task loss is taken on each
                target batch concatenated with the source batch.
            epochs: training epochs (None: `EPOCHS`, 20); an epoch is `ceil(n_source / batch_size)` steps.
            batch_size: samples per domain per step (at least 2, for the unbiased MMD^2); capped at
                each domain's size.
            learning_rate: Adam learning rate for this fit; None (default): the adapter's `learning_rate`.
            validation_data: optional labelled `(x_val, y_val)`, e.g. held-out target data; logs
                `val_loss` (task loss), `val_task_loss` and `val_accuracy`.
            callbacks: Keras callbacks (they see the training wrapper; its `target_model` is
                `self.model_`, whose weights are the wrapper's).
            verbose: Keras verbosity ("auto" shows a progress bar; 0 is silent).
            seed: seed of the source and target shuffles (None: unseeded).

        Returns:
            self, with `model_` (the adapted functional model, also `.model`) and `history_` (the
            Keras `History`; `history_.history` has `loss`, `task_loss`, `mmd2`, `accuracy`).

        Raises:
            ValueError / TypeError: invalid data (wrong feature count, NaN or inf, empty, fewer
                than 2 samples in a domain, labels of the wrong length or range) or settings.
        """


        self.check_fit_data(x_source=x_source, y_source=y_source, x_target=x_target)
        xs = self._check_x(x_source, "x_source")
        ys = self._check_y(y_source, len(xs), "y_source")
        xt = self._check_x(x_target, "x_target")
        yt = None if y_target is None else self._check_y(y_target, len(xt), "y_target")
        for arr, name in ((xs, "x_source"), (xt, "x_target")):
            if len(arr) < 2:
                raise ValueError(
                    f"{name} has {len(arr)} sample; MMD^2 needs at least 2 samples per domain."
                )
        epochs = EPOCHS if epochs is None else check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size", minimum=2)
        learning_rate = self.learning_rate if learning_rate is None else _check_learning_rate(learning_rate)
        seed = check_seed(seed)
        validation_data = self._validation(validation_data)
        mmd_weight = _check_mmd_weight(self.mmd_weight)
        bandwidth = check_bandwidth(self.bandwidth)

        n_out, activation = head_config(self.source_model)
        loss_fn, _ = loss_for_head(activation, n_out)
        binary = n_out == 1

        def as_target(labels: np.ndarray) -> np.ndarray:
            return labels.reshape(-1, 1).astype("float32") if binary else labels.astype("int32")

        if validation_data is not None:
            validation_data = (validation_data[0], as_target(validation_data[1]))

        self._build()  # the head starts from the source head's weights when they fit
        seed_new_head(self, seed)
        self.base_.trainable = True
        self.head_.trainable = True

        bs_s, bs_t = min(batch_size, len(xs)), min(batch_size, len(xt))
        s_seed = None if seed is None else seed
        t_seed = None if seed is None else seed + 1
        source_ds = (
            tf.data.Dataset.from_tensor_slices((xs, as_target(ys)))
            .shuffle(len(xs), seed=s_seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(bs_s, drop_remainder=True)
        )
        target_items = xt if yt is None else (xt, as_target(yt))
        target_ds = (
            tf.data.Dataset.from_tensor_slices(target_items)
            .shuffle(len(xt), seed=t_seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(bs_t, drop_remainder=True)
        )
        dataset = tf.data.Dataset.zip((source_ds, target_ds)).prefetch(tf.data.AUTOTUNE)
        steps = math.ceil(len(xs) / bs_s)

        with self._strategy().scope():
            if binary:
                accuracy = keras.metrics.BinaryAccuracy(
                    name="accuracy", threshold=decision_threshold(self.source_model)
                )
            else:
                accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
            trainer = alignment_trainer(
                self.model_,
                self.base_,
                self.head_,
                loss_fn=loss_fn,
                accuracy=accuracy,
                alignment=lambda fs, ft: batch_mmd2(fs, ft, bandwidth),
                weight=mmd_weight,
                alignment_name="mmd2",
                target_labels=yt is not None,
                name="mmd_trainer",
            )
            trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
        self.history_ = trainer.fit(
            dataset,
            epochs=epochs,
            steps_per_epoch=steps,
            validation_data=validation_data,
            validation_batch_size=batch_size,
            shuffle=False,  # the dataset is shuffled (seeded) above
            callbacks=callbacks,
            verbose=verbose,
        )
        return self

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update({"mmd_weight": self.mmd_weight, "bandwidth": self.bandwidth, "learning_rate": self.learning_rate})
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.mmd_weight = float(state.get("mmd_weight", 1.0))
        self.bandwidth = state.get("bandwidth")
        self.learning_rate = float(state.get("learning_rate", LEARNING_RATE))
