"""BatchNormAdapter: test-time adaptation through BatchNormalization (AdaBN, optionally TENT).

Two label-free methods that need nothing but unlabelled target inputs and a source model with
BatchNormalization layers:

* **AdaBN** (Li, Wang, Shi, Liu & Hou, "Revisiting Batch Normalization For Practical Domain
  Adaptation", 2016), the default: the source model is copied (`Adapter._build`; the source model
  stays bit-identical) and every BatchNormalization layer's moving mean and variance are replaced by
  those of the target inputs (`shiftkit.adapt.batch_norm.recalibrate_batch_norm`: each layer sees
  inputs normalised by the layers before it with their target statistics). No gradient step; no
  weight other than the BN moving statistics changes.
* **TENT** (Wang, Shelhamer, Liu, Olshausen & Darrell, "Tent: Fully Test-Time Adaptation by Entropy
  Minimization", ICLR 2021), with `tent=True`: starting from the copy, the mean Shannon entropy of
  the model's predictions on target batches is minimised with respect to the BN affine parameters
  (gamma and beta) only; every other weight stays frozen. During these steps the BN layers normalise
  with each target batch's own statistics (as in the paper, where BN runs in training mode), while
  Dropout and the other training-only layers stay in inference mode (the forward pass is a view of
  the base in which only BN layers are called with `training=True`; the weights are shared). After
  the last step the moving statistics are set to the target's (the AdaBN pass above, on the adapted
  gammas/betas), so the adapted model is an ordinary inference-mode Keras model: its predictions do
  not depend on how a test set is batched.

The statistics pass is `recalibrate_batch_norm`'s, which runs the whole model in training mode:
Dropout placed *before* a BN layer is then active while that layer's statistics are taken (its
variance comes out larger than the inference-time one), unlike TENT's steps above. Dropout after the
last BN layer (the usual place, before the head) does not matter.

Why these defaults. AdaBN alone (`tent=False`) is the default because it carries the gain: on
`shiftkit.datasets.digits_corrupted` with a small CNN with three BN layers (2 seeds each; adapted
on half the target, tested on the other half), source-only -> AdaBN was 0.47 -> 0.94 (blur, severity
3), 0.11 -> 0.79 (blur 5), 0.42 -> 0.98 (contrast 5), 0.89 -> 0.99 (contrast 3), 0.85 -> 0.88 (noise
5), 0.978 -> 0.979 (noise 3) and 0.47 -> 0.73 (mixed devices, 5), while TENT on top changed target
accuracy by -0.01 to +0.02 on the single corruptions and *lowered* it on the mixed-device target
(-0.01 at 1e-3 for 3 epochs, -0.04 for 10, -0.09 at 1e-2): lower entropy is not higher accuracy when
one batch mixes several shifts. TENT's settings are therefore the cautious end: Adam at
`LEARNING_RATE = 1e-3` (the paper's rate with Adam on CIFAR-10/100-C), batches of 64 (BN's batch
statistics need enough rows to estimate the target's), `EPOCHS = 3` passes over the target data (the
paper adapts online in one pass over a large test stream; a small target set, e.g. 450 digits, is
only 8 steps per pass, so a few passes are taken: "offline" TENT, which the paper also reports).
Chosen on noise 3, blur 3, contrast 5 and noise 5; checked on blur 5, contrast 3 and mixed 5, where
1e-3 / 3 epochs stayed within 0.01 of AdaBN and the larger rate lost 0.09 on the mixed target.

Training uses Keras's own `fit` (progress bar, callbacks, a History with the per-epoch mean entropy):
a small `keras.Model` wrapper overrides `train_step` (TensorFlow backend, `tf.GradientTape`), fed by
a seeded, shuffled, repeated `tf.data.Dataset` of target batches. It is created inside the active
`tf.distribute` strategy's scope; under a multi-replica strategy each replica's BN layers use its own
share of the batch (no synchronised BN) and its entropy is divided by the number of replicas (the
gradients are summed across replicas); the logged `entropy` is the undivided per-replica mean.

A model without BatchNormalization layers in its feature extractor has nothing for these methods to
change: construction raises a `ValueError` that suggests another adapter (e.g. "mmd").
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from shiftkit._keras import InferenceMode, predict, unwrap
from shiftkit._validation import check_positive_int, check_real, check_seed
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.batch_norm import batch_norm_layers, recalibrate_batch_norm
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import _feature_tensor, head_config

__all__ = ["BatchNormAdapter", "prediction_entropy", "LEARNING_RATE", "EPOCHS", "MIN_TARGET_ROWS"]

#: Default Adam learning rate of TENT's gamma/beta updates (the paper's CIFAR setting).
LEARNING_RATE = 1e-3
#: TENT's passes over the target data of `fit(epochs=None)`.
EPOCHS = 3
#: Fewer target rows than this warn (AdaBN's statistics from them): the standard error of a variance
#: estimated from n rows is about sqrt(2 / (n - 1)) of it (normal data), 25% at 32 rows, 70% at 5.
#: On a 3-class, 8-feature scenario (source 0.945 on the target): AdaBN from 2 rows 0.775, 3 rows 0.85, 5 rows 0.975,
#: 200 rows 0.985; a refusal would also block the lucky 5-row case, hence a warning, not an error.
MIN_TARGET_ROWS = 32
#: Probabilities are clipped to [EPSILON, 1] inside the logarithm of the entropy.
EPSILON = 1e-7


# ---------------------------------------------------------------------------------- the loss
def prediction_entropy(outputs: Any, activation: str) -> Any:
    """Per-sample Shannon entropy (nats) of a classifier's outputs, differentiable.

    Args:
        outputs: tensor `(n, k)` of the model's outputs (`k = 1`: a binary classifier's single unit).
        activation: the output activation (`shiftkit.adapt.target_model.head_config`): "softmax" /
            "sigmoid" outputs are probabilities; anything else is read as logits (as
            `shiftkit._keras.to_probabilities` does).

    Returns:
        A tensor `(n,)` of entropies, in `[0, log k]` (`[0, log 2]` for a single unit).
    """

    out = ops.cast(ops.convert_to_tensor(outputs), "float32")
    out = ops.reshape(out, (ops.shape(out)[0], -1))
    probabilities = activation in ("softmax", "sigmoid")
    if out.shape[-1] == 1:
        if probabilities:
            p = out[:, 0]
            log_p = ops.log(ops.clip(p, EPSILON, 1.0))
            log_q = ops.log(ops.clip(1.0 - p, EPSILON, 1.0))
        else:
            z = out[:, 0]
            p = ops.sigmoid(z)
            log_p, log_q = ops.log_sigmoid(z), ops.log_sigmoid(-z)
        return -(p * log_p + (1.0 - p) * log_q)
    if probabilities:
        p = out
        log_p = ops.log(ops.clip(p, EPSILON, 1.0))
    else:
        log_p = ops.log_softmax(out, axis=-1)
        p = ops.exp(log_p)
    return -ops.sum(p * log_p, axis=-1)


# ---------------------------------------------------------------------------------- BN in batch mode
def _batch_statistics_view(base: Any) -> Any:
    """A functional view of `base`, sharing its layers, in which only BatchNormalization runs in training mode.

    Built with `keras.models.clone_model(..., clone_function=<the same layer>, call_function=...)`:
    every layer is reused (weights shared, nothing copied); BN layers are called with
    `training=True` (batch statistics) and every other layer that takes `training` with
    `training=False` (Dropout off). A nested functional or Sequential model with BN layers gets a
    view of its own; a nested subclassed model with BN layers, which cannot be viewed, runs wholly in
    training mode (its Dropout on, as in the TENT paper's `model.train()`). Call the view without
    `training` so these flags hold.
    """

    if isinstance(base, keras.Sequential):
        base = keras.Model(base.inputs, base.outputs)  # its functional graph, on the same layers
    views: set[int] = set()

    def same_layer(layer: Any) -> Any:
        if isinstance(layer, keras.Model) and batch_norm_layers(layer):
            try:
                view = _batch_statistics_view(layer)
            except ValueError:  # a subclassed model: no graph to view
                return layer
            views.add(id(view))
            return view
        return layer

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        if id(layer) in views:
            kwargs.pop("training", None)  # its own layers' flags hold
        elif isinstance(layer, keras.layers.BatchNormalization):
            kwargs["training"] = True
        elif isinstance(layer, keras.Model):
            kwargs["training"] = bool(batch_norm_layers(layer))
        elif "training" in inspect.signature(layer.call).parameters:
            kwargs["training"] = False
        return layer(*args, **kwargs)

    return keras.models.clone_model(base, clone_function=same_layer, call_function=call)


def _make_trainer(model: Any, forward: Any, activation: str) -> Any:
    """A `keras.Model` whose `fit` minimises the mean prediction entropy over target batches (TF backend)."""

    class TentTrainer(keras.Model):
        """Wraps the target model; `train_step` lowers the entropy. Not meant to be saved."""

        def __init__(self) -> None:
            super().__init__(name="tent_trainer")
            self.target_model = model
            self.forward = forward
            self.entropy_tracker = keras.metrics.Mean(name="entropy")
            self.built = True  # the wrapped model is built; skip Keras's symbolic build

        @property
        def metrics(self) -> list[Any]:
            return [self.entropy_tracker]

        def call(self, inputs: Any, training: bool = False) -> Any:
            return self.target_model(inputs, training=training)

        def train_step(self, data: Any) -> dict[str, Any]:
            with tf.GradientTape() as tape:
                entropy = ops.mean(prediction_entropy(self.forward(data), activation))
                # Gradients are summed across replicas: each replica's mean is divided once here.
                replicas = tf.distribute.get_strategy().num_replicas_in_sync
                scaled = self.optimizer.scale_loss(entropy / replicas if replicas > 1 else entropy)
            variables = self.trainable_variables
            grads = tape.gradient(scaled, variables)
            self.optimizer.apply(grads, variables)
            self.entropy_tracker.update_state(entropy)
            return {m.name: m.result() for m in self.metrics}

    return TentTrainer()


def _check_learning_rate(value: Any) -> float:
    return check_real(value, "learning_rate", low=0, low_open=True, example=LEARNING_RATE)


def _check_tent(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"tent must be True (entropy minimisation of the BN gamma/beta after AdaBN) or False (AdaBN "
            f"only); got {value!r} ({type(value).__name__})."
        )
    return bool(value)


def _base_batch_norm_names(model: Any, feature_layer: str | int | None) -> list[str]:
    """Names of the BN layers between the model's inputs and `feature_layer` (the part an adapter copies)."""

    tensor, _ = _feature_tensor(model, feature_layer)
    inputs = model.inputs
    view = keras.Model(inputs[0] if len(inputs) == 1 else inputs, tensor)  # shares the layers; copies nothing
    return [layer.name for layer in batch_norm_layers(view)]


@register_adapter
class BatchNormAdapter(Adapter):
    """Test-time BatchNorm adaptation: target BN statistics (AdaBN), optionally TENT entropy minimisation.

    Needs only unlabelled target inputs. The source model is copied (it stays bit-identical); by
    default (`tent=False`) the copy's BatchNormalization moving means and variances are recomputed
    on the target inputs and nothing else changes. With `tent=True`, the BN scales and offsets
    (gamma, beta) are then trained to lower the mean prediction entropy on target batches, with BN
    normalising by batch statistics during training and by the target's statistics afterwards. See
    the module docstring for the details and the choice of defaults.

    Args:
        source_model: a built, trained `keras.Model` with BatchNormalization layers (never modified).
        feature_layer: name or index of the layer whose output is the feature space; default: the
            input of the source model's head layer. The BN layers before it are adapted.
        tent: False (default): AdaBN only, no training. True: TENT after AdaBN.
        learning_rate: Adam learning rate of TENT's gamma/beta updates (default 1e-3).

    Attributes (after `fit`):
        model_ (also `.model`), base_, head_; batch_norm_layers_: names of the adapted BN layers;
        history_ (also `.history`): with `tent=True`, `{"entropy": [...]}`, the mean target entropy
        of each epoch's batches (BN on batch statistics); target_entropy_: the mean prediction
        entropy on `x_target` of the source model ("source"), after AdaBN ("adabn") and, with
        `tent=True`, after TENT ("tent").

    Raises:
        ValueError: the model has no BatchNormalization layer before `feature_layer` (the message
            suggests "mmd"); a bad `learning_rate`. TypeError: a non-boolean `tent`.

    Example:
        >>> adapter = BatchNormAdapter(source_model).fit(x_target=x_target)  # doctest: +SKIP
        >>> BatchNormAdapter(source_model, tent=True).fit(x_target=x_target, seed=0).history  # doctest: +SKIP
        {'entropy': [0.41, 0.33, 0.29]}
    """

    name = "adabn"
    title = "AdaBN / TENT: BatchNorm statistics (and gamma/beta by entropy) from unlabelled target data"
    requires = ("x_target",)

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        tent: bool = False,
        learning_rate: float = LEARNING_RATE,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.tent = _check_tent(tent)
        self.learning_rate = _check_learning_rate(learning_rate)
        if not _base_batch_norm_names(self.source_model, feature_layer):
            raise ValueError(
                f"{type(self).__name__} adapts BatchNormalization layers, and the source model "
                f"{self.source_model.name!r} has none before its feature layer, so there is nothing to adapt. "
                "Use an adapter that trains other weights, e.g. 'mmd' (MMDAdapter, unlabelled target data) "
                "or 'finetune' (a few target labels)."
            )

    @classmethod
    def supports(cls, source_model: Any, feature_layer: str | int | None = None) -> bool:
        """Whether `source_model` has BatchNormalization layers for this adapter to adapt."""
        return bool(_base_batch_norm_names(source_model, feature_layer))

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
        callbacks: Any = None,
        verbose: Any = "auto",
        seed: int | None = None,
    ) -> BatchNormAdapter:
        """Set the BN statistics to the target's (AdaBN); with `tent=True`, then minimise the entropy.

        Args:
            x_source, y_source, y_target: accepted for the common adapter contract; not used.
            x_target: unlabelled target inputs (at least 2 rows), with the source model's input shape.
            epochs: TENT's passes over `x_target` (None: `EPOCHS`, 3); an epoch is
                `ceil(n_target / batch_size)` steps. Not used without `tent`.
            batch_size: target rows per TENT step (at least 2: BN's batch statistics), capped at
                the number of rows. The final statistics are those of all of `x_target`.
            learning_rate: TENT's Adam rate for this fit; None (default): the adapter's `learning_rate`.
            callbacks: Keras callbacks of TENT's training (they see the training wrapper, whose
                `target_model` is `self.model_`).
            verbose: Keras verbosity of TENT's training ("auto": a progress bar; 0: silent).
            seed: seed of TENT's batch shuffles (None: unseeded). AdaBN is deterministic.

        Returns:
            self, with `model_`, `batch_norm_layers_`, `target_entropy_` and (TENT) `history_`.

        Raises:
            ValueError / TypeError: `x_target` missing, empty, with fewer than 2 rows, of the wrong
                shape or with NaN/inf; bad `epochs`, `batch_size` or `learning_rate`.
        """

        self.check_fit_data(x_target=x_target)
        xt = self._check_x(x_target, "x_target")
        if len(xt) < 2:
            raise ValueError(
                f"x_target has {len(xt)} row; BatchNormalization statistics need at least 2 target rows "
                "(a variance from one row is 0). Pass more target inputs."
            )
        if len(xt) < MIN_TARGET_ROWS:
            warnings.warn(
                f"AdaBN on {len(xt)} target rows: the BatchNormalization statistics (each layer's mean and "
                f"variance) are estimated from them, and a variance from n rows is uncertain by about "
                f"sqrt(2 / (n - 1)) of itself ({np.sqrt(2.0 / (len(xt) - 1)):.0%} here; 25% at "
                f"{MIN_TARGET_ROWS}): the adapted model can be worse than the source model. Pass at least "
                f"{MIN_TARGET_ROWS} target rows, ideally a few hundred.",
                UserWarning,
                stacklevel=2,
            )
        epochs = EPOCHS if epochs is None else check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size", minimum=2)
        learning_rate = self.learning_rate if learning_rate is None else _check_learning_rate(learning_rate)
        seed = check_seed(seed)
        self.model_ = None  # a failed fit leaves the adapter unfitted
        self.history_ = None

        self._build()  # the source model copied: the head starts from the source head's weights
        layers = batch_norm_layers(self.base_)
        if not layers:  # not reached with a model that passed __init__; kept for a changed feature_layer
            raise ValueError(
                f"{type(self).__name__} found no BatchNormalization layer in the copied feature extractor. "
                "Use another adapter, e.g. 'mmd'."
            )
        self.batch_norm_layers_ = [layer.name for layer in layers]
        _, activation = head_config(self.model_)
        entropy: dict[str, float] = {
            "source": self._mean_entropy(self.source_model, xt, activation, batch_size=256),
        }
        recalibrate_batch_norm(self.base_, xt)
        entropy["adabn"] = self._mean_entropy(self.model_, xt, activation)
        if self.tent:
            self._tent(xt, activation, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                       callbacks=callbacks, verbose=verbose, seed=seed)
            recalibrate_batch_norm(self.base_, xt)  # the moving statistics: the target's, on the new gamma/beta
            entropy["tent"] = self._mean_entropy(self.model_, xt, activation)
        self.target_entropy_ = entropy
        return self

    # ------------------------------------------------------------------ TENT
    def _tent(self, xt: np.ndarray, activation: str, *, epochs: int, batch_size: int, learning_rate: float,
              callbacks: Any, verbose: Any, seed: int | None) -> None:
        """Minimise the mean prediction entropy on target batches w.r.t. the BN gamma/beta only."""

        layers = batch_norm_layers(self.base_)
        if not any(layer.scale or layer.center for layer in layers):
            raise ValueError(
                "tent=True trains the BatchNormalization scales and offsets (gamma/beta), and every BN layer "
                "of this model has scale=False and center=False. Use tent=False (AdaBN only)."
            )
        containers = _containers(self.model_)
        saved = [(layer, layer.trainable) for layer in containers + _leaf_layers(self.model_)]
        try:
            for container in containers:
                container.trainable = True  # a frozen container would freeze its layers
            for layer in _leaf_layers(self.model_):  # only gamma/beta learn
                layer.trainable = isinstance(layer, keras.layers.BatchNormalization)
            bs = min(batch_size, len(xt))
            dataset = (
                tf.data.Dataset.from_tensor_slices(xt)
                .shuffle(len(xt), seed=seed, reshuffle_each_iteration=True)
                .repeat()
                .batch(bs, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE)
            )
            with self._strategy().scope():
                base_view = _batch_statistics_view(self.base_)
                head = self.head_
                as_list = isinstance(base_view.input, list)  # a functional model built on a list of one input

                def forward(x: Any) -> Any:
                    features = base_view([x] if as_list else x)
                    features = ops.reshape(features, (ops.shape(features)[0], -1))
                    return head(features, training=False)

                trainer = _make_trainer(self.model_, forward, activation)
                trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
            history = trainer.fit(
                dataset,
                epochs=epochs,
                steps_per_epoch=math.ceil(len(xt) / bs),
                shuffle=False,  # the dataset is shuffled (seeded) above
                callbacks=callbacks,
                verbose=verbose,
            )
        finally:  # the flags as copied from the source: containers first (their setter recurses)
            for layer, flag in saved:
                layer.trainable = flag
        self.history_ = {key: [float(v) for v in values] for key, values in history.history.items()}

    @staticmethod
    def _mean_entropy(model: Any, x: np.ndarray, activation: str, *, batch_size: int = 256) -> float:
        """Mean prediction entropy of `model` (inference mode) on `x`."""

        out = np.asarray(predict(model, x, batch_size=batch_size), dtype="float32")
        return float(np.mean(np.asarray(prediction_entropy(out, activation))))

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update(
            tent=self.tent,
            learning_rate=self.learning_rate,
            batch_norm_layers=self.batch_norm_layers_,
            history=self.history_,
            target_entropy=self.target_entropy_,
        )
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.tent = bool(state.get("tent", False))
        self.learning_rate = float(state.get("learning_rate", LEARNING_RATE))
        self.batch_norm_layers_ = list(state.get("batch_norm_layers") or [])
        self.history_ = state.get("history")
        self.target_entropy_ = dict(state.get("target_entropy") or {})


def _containers(model: Any) -> list[Any]:
    """`model` and every model nested in it, outermost first."""

    out = [model]
    for layer in model.layers:
        if isinstance(layer, InferenceMode):  # the adapters' base wrapper: a container too
            out.append(layer)
            layer = layer.inner
        if isinstance(layer, keras.Model):
            out.extend(_containers(layer))
    return out


def _leaf_layers(model: Any) -> list[Any]:
    """Every non-container layer of `model`, nested models expanded."""

    out: list[Any] = []
    for layer in model.layers:
        layer = unwrap(layer)  # the adapters' base wrapper (InferenceMode) holds a model
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out
