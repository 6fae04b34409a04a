"""DANNAdapter: domain-adversarial training, a domain discriminator behind a gradient-reversal layer.

DANN (Ganin, Ustinova, Ajakan, Germain, Larochelle, Laviolette, Marchand & Lempitsky,
"Domain-Adversarial Training of Neural Networks", JMLR 17(59), 2016). A *domain discriminator* `D`
(a small MLP on the features, one logit) learns to tell source features from target features,
while the feature extractor `f` (the encoder) learns to make them indistinguishable. On a batch of
`B` labelled source samples `(x_s, y_s)` and `B` target samples `x_t` (labels optional), with
domain labels 0 for source and 1 for target,

    L_d = ( mean_i BCE(0, D(f(x_s,i))) + mean_j BCE(1, D(f(x_t,j))) ) / 2
    loss = task_loss + L_d                 (the sum whose gradient one optimizer step follows)

where the features reach `D` through a *gradient-reversal layer* (`gradient_reversal`): the
identity on the forward pass, `-lambda_p` times the gradient on the backward pass. So one
gradient of `task_loss + L_d` gives

    discriminator:  - d L_d / d theta_D                 (it minimises L_d: tells domains apart)
    encoder:        - d task / d theta_f + lambda_p d L_d / d theta_f   (it *maximises* L_d)
    head:           - d task / d theta_y

which is the saddle point of the paper's Eq. 9-10. `lambda_p` follows the paper's schedule
(`dann_lambda`, Section 5.2.2): `lambda_p = lambda_max * (2 / (1 + exp(-gamma p)) - 1)`, `gamma = 10`,
`p` the training progress from 0 (first step) towards 1 over the whole fit (the step counter of the
discriminator, a variable, over the fit's total steps: it holds under `tf.function` and
`tf.distribute`), so the encoder is left alone while the discriminator is still random and the
adversarial pull grows to `lambda_max`. Optionally (`anneal_learning_rate=True`, the default) the
learning rate follows the paper's `mu_p = mu_0 / (1 + 10 p)^0.75` (`DANNLearningRate`).

The optimizer is the paper's too by default: SGD with momentum 0.9 (`optimizer="sgd"`, `mu_0 = 0.01`).
With Adam (`optimizer="adam"`, e.g. `learning_rate=1e-3`) `lambda` barely scales the adversarial step once the
source task loss is saturated, as it is when training starts from a trained source model: Adam divides each parameter's
step by the running size of its own gradient, so the encoder moves at the full rate in the direction
the reversed gradient sets whatever `lambda` is. On the uda suite's blurred digits (a CNN with
BatchNorm) Adam at lambda 0.03, and every stabilised variant tried with it (gradient penalty,
discriminator dropout, scale-free discriminator input, CDAN+E, domain confusion; lambda 0.1-1), lost
target accuracy against the same training without the adversarial term, while SGD at lambda 0.1
gained +0.16 over it (`benchmarks/dann_choice.md`, section 5).

The discriminator (`DomainDiscriminator`, a Keras layer: `discriminator_units` hidden ReLU layers,
a linear logit) runs in float32 and is trained with the same optimizer and gradient tape as the
target model (`alignment_trainer` tracks a layer given as its alignment term). Its *domain
accuracy* (logit > 0 means target) over each epoch's batches, before each step's update, is logged
as `domain_accuracy` alongside `domain_loss` (L_d): near 0.5 means the domains look alike to it.

Everything else is as in `CORALAdapter` and `MMDAdapter`: the task loss matches the source model's
head (`loss_for_head`), target labels (`y_target`) join the task loss when given, the target model
starts from the source model itself (`Adapter._build`: layers cloned, weights copied, the source
model stays bit-identical; the base runs in inference mode: BatchNorm statistics are the source's,
Dropout is off), training is Keras's own `fit` on `paired_dataset` batches (seeded shuffles, an
epoch is `ceil(n_source / batch_size)` steps), and under a multi-replica `tf.distribute` strategy
each replica takes the domain loss of its own share of the batch (divided by the replica count in
`alignment_trainer`, so the summed gradients are those of one device).

The defaults (`OPTIMIZER`, `LAMBDA_MAX`, `LEARNING_RATE`) were chosen on the uda suite's digits-blur
and gru-placement (seeds 0-2; `DISCRIMINATOR_UNITS` and `EPOCHS` earlier on `examples/digits_shift.py`
and a synthetic shift), and checked on scenarios they were not chosen on: `benchmarks/dann_choice.md`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from functools import partial
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from shiftkit._validation import check_positive_int, check_real, check_seed
from shiftkit.adapt.alignment import alignment_trainer, check_batch_per_replica, paired_dataset, seed_new_head
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import head_config
from shiftkit.adapt.training import accuracy_metric, head_targets, loss_for_head

__all__ = [
    "DANNAdapter",
    "DANNLearningRate",
    "DomainDiscriminator",
    "dann_lambda",
    "gradient_reversal",
    "DISCRIMINATOR_UNITS",
    "EPOCHS",
    "GAMMA",
    "LAMBDA_MAX",
    "ANNEAL_LEARNING_RATE",
    "LEARNING_RATE",
    "MOMENTUM",
    "OPTIMIZER",
]

#: Default optimizer: "sgd" (momentum `MOMENTUM`, the paper's) or "adam".
OPTIMIZER = "sgd"
#: SGD's momentum (the paper's 0.9).
MOMENTUM = 0.9
#: Default initial learning rate `mu_0` (the paper's, for SGD; the whole network and the discriminator
#: train with it). With `optimizer="adam"` pass a rate of Adam's scale, e.g. 1e-3.
LEARNING_RATE = 0.01
#: The optimizers `optimizer` may name.
OPTIMIZERS = ("adam", "sgd")
#: Training epochs of `fit(epochs=None)`; the lambda schedule spans all of them.
EPOCHS = 20
#: The final weight of the reversed gradient (the schedule rises from 0 towards it).
LAMBDA_MAX = 0.1
#: Whether the learning rate follows the paper's annealing mu_0 / (1 + 10 p)^0.75 by default.
ANNEAL_LEARNING_RATE = True
#: Hidden layer sizes of the domain discriminator (ReLU), before its one logit.
DISCRIMINATOR_UNITS: tuple[int, ...] = (64,)
#: Steepness of the lambda schedule (the paper's gamma).
GAMMA = 10.0


# ---------------------------------------------------------------------------------- the pieces
def dann_lambda(progress: Any, lambda_max: float = 1.0, gamma: float = GAMMA) -> Any:
    """The paper's schedule of the reversed gradient's weight: `lambda_max * (2 / (1 + exp(-gamma p)) - 1)`.

    Args:
        progress: training progress `p` in [0, 1] (a number, array or tensor; values are not clipped).
        lambda_max: the weight reached as `p -> infinity` (at `p = 1` with `gamma = 10`: 0.99991 of it).
        gamma: steepness (10 in the paper).

    Returns:
        The weight, of the type `progress` has (a NumPy float for a number or array, a tensor for a tensor).

    Example:
        >>> float(dann_lambda(0.0)), round(float(dann_lambda(0.5)), 6)
        (0.0, 0.986614)
    """

    if tf.is_tensor(progress) or isinstance(progress, (tf.Variable, keras.Variable)):
        p = ops.cast(progress, "float32")
        return lambda_max * (2.0 / (1.0 + ops.exp(-gamma * p)) - 1.0)
    p = np.asarray(progress, dtype=np.float64)
    return lambda_max * (2.0 / (1.0 + np.exp(-gamma * p)) - 1.0)


def gradient_reversal(x: Any, scale: Any = 1.0) -> Any:
    """The gradient-reversal layer as a function: `x` itself forward, `-scale` times the gradient backward.

    Args:
        x: a float tensor (or array).
        scale: the reversed gradient's weight, `lambda` (a number or a scalar tensor, e.g. from
            `dann_lambda`); no gradient flows into it.

    Returns:
        A tensor equal to `x` (an identity op), whose gradient with respect to `x` is
        `-scale * upstream`.

    Example:
        >>> x = tf.constant([1.0, -2.0])
        >>> with tf.GradientTape() as tape:
        ...     tape.watch(x)
        ...     y = tf.reduce_sum(3.0 * gradient_reversal(x, 0.5))
        >>> tape.gradient(y, x).numpy().tolist()
        [-1.5, -1.5]
    """

    x = tf.convert_to_tensor(x)
    lam = tf.stop_gradient(tf.cast(scale, x.dtype))

    @tf.custom_gradient
    def _reverse(value: Any) -> Any:
        def grad(upstream: Any) -> Any:
            return -lam * upstream

        return tf.identity(value), grad

    return _reverse(x)


class DANNLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """The paper's learning-rate annealing: `initial / (1 + alpha p)^beta`, `p = step / total_steps`.

    Args:
        initial_learning_rate: `mu_0`, > 0.
        total_steps: the optimizer steps of the whole fit (`p` reaches 1 there and stays).
        alpha: 10 in the paper.
        beta: 0.75 in the paper.

    Example:
        >>> sched = DANNLearningRate(1e-3, total_steps=100)
        >>> round(float(sched(100)), 8)  # 1e-3 / 11 ** 0.75
        0.00016556
    """

    def __init__(self, initial_learning_rate: float, total_steps: int, alpha: float = 10.0, beta: float = 0.75):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def __call__(self, step: Any) -> Any:
        p = ops.minimum(ops.cast(step, "float32") / float(max(self.total_steps, 1)), 1.0)
        return self.initial_learning_rate / ops.power(1.0 + self.alpha * p, self.beta)

    def get_config(self) -> dict[str, Any]:
        return {"initial_learning_rate": self.initial_learning_rate, "total_steps": self.total_steps,
                "alpha": self.alpha, "beta": self.beta}


class DomainDiscriminator(keras.layers.Layer):
    """DANN's domain classifier behind a gradient-reversal layer; called as `(source, target) -> L_d`.

    An MLP (`units` hidden ReLU layers, then one logit) on the flattened features, in float32. On
    each call it reads its step counter, sets `lambda_p = dann_lambda(min(step / total_steps, 1),
    lambda_max, gamma)`, passes the features through `gradient_reversal(., lambda_p)`, returns the
    domain loss `L_d` (binary cross-entropy from the logits, source = 0, target = 1, the mean of
    the two domains' means) and adds one to the counter. Its own weights get the ordinary gradient
    of `L_d` (it learns to tell the domains apart); the features get `-lambda_p` times theirs. It
    also counts its correct domain guesses (`correct`, `seen`) for `domain_accuracy`.

    It is the trainable alignment term of `alignment_trainer` (which tracks it, so its weights train
    with the target model's optimizer); build it (`build((None, d))`) before the trainer's fit.

    Args:
        units: hidden layer sizes (each a positive int; empty: a linear discriminator).
        lambda_max: the schedule's final weight of the reversed gradient (>= 0; 0: the encoder
            ignores the discriminator).
        total_steps: the fit's training steps (the schedule's `p = 1`).
        gamma: the schedule's steepness.
        seed: seed of the initial weights (None: unseeded).
        name: the layer's name.

    Example:
        >>> disc = DomainDiscriminator((8,), lambda_max=1.0, total_steps=10, seed=0)
        >>> disc.build((None, 4))
        >>> loss = disc(np.zeros((3, 4), "float32"), np.ones((3, 4), "float32"))
        >>> int(disc.step.numpy())
        1
    """

    def __init__(
        self,
        units: Sequence[int] = DISCRIMINATOR_UNITS,
        *,
        lambda_max: float = LAMBDA_MAX,
        total_steps: int = 1,
        gamma: float = GAMMA,
        seed: int | None = None,
        name: str = "domain_discriminator",
    ):
        super().__init__(name=name, dtype="float32")
        self.units = tuple(int(u) for u in units)
        self.lambda_max = float(lambda_max)
        self.total_steps = int(total_steps)
        self.gamma = float(gamma)
        self.seed = seed
        self.hidden = [
            keras.layers.Dense(
                u, activation="relu", name=f"hidden_{i}", dtype="float32",
                kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + i),
            )
            for i, u in enumerate(self.units)
        ]
        self.logit = keras.layers.Dense(
            1, name="logit", dtype="float32",
            kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + len(self.units)),
        )
        # Mirrored under tf.distribute: every replica reads the same step; only the first replica's
        # increment counts (one per training step). The domain-accuracy counts sum over replicas.
        self.step = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False,
                                    aggregation="only_first_replica", name="step")
        self.correct = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False,
                                       aggregation="sum", name="correct")
        self.seen = self.add_weight(shape=(), initializer="zeros", dtype="float32", trainable=False,
                                    aggregation="sum", name="seen")

    def build(self, input_shape: Any) -> None:
        d = int(np.prod([s for s in tuple(input_shape)[1:]]))
        shape: tuple[Any, ...] = (None, d)
        for layer in self.hidden:
            layer.build(shape)
            shape = (None, layer.units)
        self.logit.build(shape)
        self.built = True

    def current_lambda(self) -> Any:
        """`lambda_p` of the next step (a float32 scalar tensor)."""
        progress = ops.minimum(ops.convert_to_tensor(self.step) / float(max(self.total_steps, 1)), 1.0)
        return dann_lambda(progress, self.lambda_max, self.gamma)

    def logits(self, features: Any) -> Any:
        """The discriminator's domain logits `(n,)` of a feature batch (no gradient reversal, no counting)."""
        h = ops.cast(ops.reshape(features, (ops.shape(features)[0], -1)), "float32")
        for layer in self.hidden:
            h = layer(h)
        return ops.reshape(self.logit(h), (-1,))

    def call(self, source_features: Any, target_features: Any) -> Any:
        lam = self.current_lambda()
        fs = ops.cast(ops.reshape(source_features, (ops.shape(source_features)[0], -1)), "float32")
        ft = ops.cast(ops.reshape(target_features, (ops.shape(target_features)[0], -1)), "float32")
        n_s = ops.shape(fs)[0]
        reversed_features = gradient_reversal(ops.concatenate([fs, ft], axis=0), lam)
        logits = self.logits(reversed_features)
        ls, lt = logits[:n_s], logits[n_s:]
        # BCE with logits: source (label 0) -> softplus(z), target (label 1) -> softplus(-z)
        loss = 0.5 * (ops.mean(ops.softplus(ls)) + ops.mean(ops.softplus(-lt)))
        right = ops.sum(ops.cast(ls <= 0.0, "float32")) + ops.sum(ops.cast(lt > 0.0, "float32"))
        self.correct.assign_add(ops.stop_gradient(right))
        self.seen.assign_add(ops.cast(ops.shape(logits)[0], "float32"))
        self.step.assign_add(1.0)
        return loss

    def compute_output_spec(self, source_features: Any, target_features: Any) -> Any:
        return keras.KerasTensor((), dtype="float32")


class _DomainAccuracy(keras.callbacks.Callback):
    """Resets the discriminator's counts at each epoch's start; logs `domain_accuracy` at its end."""

    def __init__(self, discriminator: DomainDiscriminator):
        super().__init__()
        self.discriminator = discriminator

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.discriminator.correct.assign(0.0)
        self.discriminator.seen.assign(0.0)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            seen = float(np.asarray(self.discriminator.seen.numpy()))
            logs["domain_accuracy"] = float(np.asarray(self.discriminator.correct.numpy())) / max(seen, 1.0)


# ---------------------------------------------------------------------------------- checks
def _check_lambda_max(value: Any) -> float:
    return check_real(value, "lambda_max", low=0, example=f"{LAMBDA_MAX} (0: no adversarial term)")


def _check_learning_rate(value: Any) -> float:
    return check_real(value, "learning_rate", low=0, low_open=True, example="0.01 (SGD) or 1e-3 (Adam)")


def _check_optimizer(value: Any) -> str:
    if not isinstance(value, str) or value.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}; got {value!r} (default {OPTIMIZER!r}: "
                         f"SGD with momentum {MOMENTUM}, the paper's).")
    return value.lower()


def _check_units(value: Any) -> tuple[int, ...]:
    """`discriminator_units` as a tuple of positive ints (an int is one hidden layer; `()` a linear discriminator)."""
    example = f"e.g. discriminator_units={DISCRIMINATOR_UNITS} or 64 (one hidden layer), () for a linear one"
    if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"discriminator_units must be a positive int or a sequence of them; got {value!r} ({example}).")
    items = list(value) if isinstance(value, (Sequence, np.ndarray)) else [value]
    for item in items:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (numbers.Real, np.number)):
            raise TypeError(f"discriminator_units must hold positive integers; got {value!r} ({example}).")
        if not float(item).is_integer() or item < 1:
            raise ValueError(
                f"discriminator_units must hold positive integers (hidden layer sizes); got {value!r} ({example})."
            )
    return tuple(int(item) for item in items)


# ---------------------------------------------------------------------------------- the adapter
@register_adapter
class DANNAdapter(Adapter):
    """DANN: source task loss + a domain discriminator the encoder learns to fool (gradient reversal).

    The whole network (source layers up to `feature_layer`, copied, plus a head copied from the
    source head layer) is trained on labelled source data while a domain discriminator on the
    features learns to tell source from target and the encoder receives its reversed gradient,
    weighted by the paper's schedule rising from 0 to `lambda_max` over the fit. Needs no target
    labels; uses them when given. See the module docstring for the objective and the schedule.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: name or index of the layer whose output is the aligned feature space;
            default: the input of the source model's head layer (the features, not the logits).
        lambda_max: final weight of the reversed gradient, a finite number >= 0 (0: the encoder
            ignores the discriminator: plain source training with the same budget).
        discriminator_units: hidden layer sizes of the discriminator (an int: one layer; `()`:
            a linear discriminator).
        learning_rate: the initial learning rate `mu_0` (default 0.01, the paper's for SGD; with
            `optimizer="adam"` pass one of Adam's scale, e.g. 1e-3).
        anneal_learning_rate: follow the paper's `mu_0 / (1 + 10 p)^0.75` over the fit.
        optimizer: "sgd" (default: momentum 0.9, the paper's; the adversarial step scales with
            lambda) or "adam" (its per-parameter step normalisation makes the adversarial step
            nearly independent of lambda once the task loss is saturated; see the module docstring).

    Raises:
        TypeError / ValueError: a non-model `source_model`, an unknown `feature_layer`, a negative
            or non-finite `lambda_max`, non-positive or non-integer `discriminator_units`, a
            non-positive `learning_rate`, an unknown `optimizer`.

    Example:
        >>> adapter = DANNAdapter(source_model).fit(x_source, y_source, x_target, seed=0)  # doctest: +SKIP
        >>> adapter.history["domain_accuracy"][-1]  # near 0.5: the domains look alike  # doctest: +SKIP
        >>> adapter.save("adapted.keras")  # doctest: +SKIP
    """

    name = "dann"
    title = "DANN: source task loss + a domain discriminator behind gradient reversal (unlabelled target data)"
    requires = ("x_source", "y_source", "x_target")
    uses = ("y_target",)

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        lambda_max: float = LAMBDA_MAX,
        discriminator_units: int | Sequence[int] = DISCRIMINATOR_UNITS,
        learning_rate: float = LEARNING_RATE,
        anneal_learning_rate: bool = ANNEAL_LEARNING_RATE,
        optimizer: str = OPTIMIZER,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.lambda_max = _check_lambda_max(lambda_max)
        self.discriminator_units = _check_units(discriminator_units)
        self.learning_rate = _check_learning_rate(learning_rate)
        if not isinstance(anneal_learning_rate, (bool, np.bool_)):
            raise TypeError(f"anneal_learning_rate must be True or False; got {anneal_learning_rate!r}.")
        self.anneal_learning_rate = bool(anneal_learning_rate)
        self.optimizer = _check_optimizer(optimizer)

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
    ) -> DANNAdapter:
        """Train task loss + domain loss, the encoder through the gradient reversal.

        Args:
            x_source: labelled source inputs, with the source model's input shape.
            y_source: source labels (class indices, or one-hot rows).
            x_target: target inputs (unlabelled unless `y_target` is given), same input shape.
            y_target: optional labels of `x_target`, one per row; their task loss is taken on each
                target batch concatenated with the source batch.
            epochs: training epochs (None: `EPOCHS`, 20); an epoch is `ceil(n_source / batch_size)`
                steps, and the lambda schedule (and the annealed rate) spans them all.
            batch_size: samples per domain per step (at least 1 per replica); capped at each domain's size.
            learning_rate: initial learning rate for this fit; None (default): the adapter's `learning_rate`.
            validation_data: optional labelled `(x_val, y_val)`, e.g. held-out target data; logs
                `val_loss` (task loss), `val_task_loss` and `val_accuracy`.
            callbacks: Keras callbacks (they see the training wrapper; its `target_model` is
                `self.model_`, its `alignment_layer` the discriminator).
            verbose: Keras verbosity ("auto" shows a progress bar; 0 is silent).
            seed: seed of the shuffles and of the discriminator's (and a new head's) initial weights;
                None: unseeded.

        Returns:
            self, with `model_` (the adapted functional model, also `.model`), `discriminator_`
            (the trained `DomainDiscriminator`) and `history_` (the Keras `History`;
            `history_.history` has `loss`, `task_loss`, `domain_loss`, `accuracy`, `domain_accuracy`).

        Raises:
            ValueError / TypeError: missing data (named), invalid data (wrong feature count, NaN or
                inf, empty, labels of the wrong length or range) or settings, a batch smaller than
                the replica count.
        """

        self.check_fit_data(x_source=x_source, y_source=y_source, x_target=x_target)
        xs = self._check_x(x_source, "x_source")
        ys = self._check_y(y_source, len(xs), "y_source")
        xt = self._check_x(x_target, "x_target")
        yt = None if y_target is None else self._check_y(y_target, len(xt), "y_target")
        epochs = EPOCHS if epochs is None else check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        optimizer = _check_optimizer(self.optimizer)
        learning_rate = self.learning_rate if learning_rate is None else _check_learning_rate(learning_rate)
        seed = check_seed(seed)
        validation_data = self._validation(validation_data)
        lambda_max = _check_lambda_max(self.lambda_max)
        units = _check_units(self.discriminator_units)
        # each replica needs source and target samples of its own
        check_batch_per_replica(batch_size, len(xs), len(xt), per_replica=1)

        n_out, activation = head_config(self.source_model)
        loss_fn, _ = loss_for_head(activation, n_out)
        as_target = partial(head_targets, n_outputs=n_out)

        if validation_data is not None:
            validation_data = (validation_data[0], as_target(validation_data[1]))

        self._build()  # the head starts from the source head's weights when they fit
        seed_new_head(self, seed)
        self.base_.trainable = True
        self.head_.trainable = True
        dataset, steps = paired_dataset(
            xs, as_target(ys), xt, None if yt is None else as_target(yt), batch_size=batch_size, seed=seed
        )
        total_steps = epochs * steps
        feature_dim = int(np.prod(self.base_.outputs[0].shape[1:]))

        with self._strategy().scope():
            disc = DomainDiscriminator(
                units, lambda_max=lambda_max, total_steps=total_steps, gamma=GAMMA,
                seed=None if seed is None else seed + 7,
            )
            disc.build((None, feature_dim))
            accuracy = accuracy_metric(self.source_model)
            trainer = alignment_trainer(
                self.model_,
                self.base_,
                self.head_,
                loss_fn=loss_fn,
                accuracy=accuracy,
                alignment=disc,
                weight=1.0,
                alignment_name="domain_loss",
                target_labels=yt is not None,
                name="dann_trainer",
            )
            rate: Any = DANNLearningRate(learning_rate, total_steps) if self.anneal_learning_rate else learning_rate
            opt = keras.optimizers.SGD(rate, momentum=MOMENTUM) if optimizer == "sgd" else keras.optimizers.Adam(rate)
            trainer.compile(optimizer=opt)
        self.discriminator_ = disc
        user_callbacks = [] if callbacks is None else list(callbacks) if isinstance(callbacks, (list, tuple)) \
            else [callbacks]
        self.history_ = trainer.fit(
            dataset,
            epochs=epochs,
            steps_per_epoch=steps,
            validation_data=validation_data,
            validation_batch_size=batch_size,
            shuffle=False,  # the dataset is shuffled (seeded) above
            callbacks=[_DomainAccuracy(disc), *user_callbacks],
            verbose=verbose,
        )
        return self

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update({
            "lambda_max": self.lambda_max,
            "discriminator_units": list(self.discriminator_units),
            "learning_rate": self.learning_rate,
            "anneal_learning_rate": self.anneal_learning_rate,
            "optimizer": self.optimizer,
        })
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.lambda_max = float(state.get("lambda_max", LAMBDA_MAX))
        self.discriminator_units = tuple(int(u) for u in state.get("discriminator_units", DISCRIMINATOR_UNITS))
        self.learning_rate = float(state.get("learning_rate", LEARNING_RATE))
        self.anneal_learning_rate = bool(state.get("anneal_learning_rate", ANNEAL_LEARNING_RATE))
        # files saved before the optimizer was a setting were trained with Adam
        self.optimizer = str(state.get("optimizer", "adam"))
