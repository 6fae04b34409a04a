"""SelfTrainingAdapter: class-balanced self-training on confident target pseudo-labels (+ optional MMD).

Self-training adapts a classifier to an unlabelled target domain by training it on its own most
confident target predictions ("pseudo-labels"), a little at a time, so that the decision boundary moves
into the target's low-density regions. shiftkit's version follows class-balanced self-training (CBST,
Zou et al., "Unsupervised Domain Adaptation for Semantic Segmentation via Class-Balanced
Self-Training", ECCV 2018):

* **Rounds.** Round `r = 1..R` first predicts every target input with the current model (round 1 with
  the source model itself), then trains `epochs` epochs on the labelled source data plus the
  pseudo-labelled target inputs. Training *resumes* from the current model every round (the same
  weights and the same Adam optimizer state), never from scratch.
* **Class balance.** Pseudo-labels are chosen per *predicted class*: of the target inputs predicted as
  class `k` (`n_k` of them), the `ceil(fraction * n_k)` most confident (highest predicted probability;
  ties: the earlier row) are kept, for every class (`select_pseudo_labels`). A single global confidence
  threshold would keep mostly the easy classes, whose predictions are confident, and the model would
  drift towards predicting them; a per-class share keeps the pseudo-labelled set's class mix that of the
  predictions (CBST's class-wise thresholds, each at the class's own confidence quantile).
* **Schedule.** The kept share grows linearly from `start_fraction` (round 1) to `end_fraction`
  (round R) (`fraction_schedule`): the first rounds train on the few predictions most likely right, and
  later rounds, on a model that has already moved towards the target, on more of them.
* **Optional alignment.** With `mmd_weight > 0` each step also minimises the MMD^2 between the source
  batch's features and the pseudo-labelled target batch's features (`shiftkit.adapt.mmd.batch_mmd2`, the
  statistic shiftkit measures shift with), as in `MMDAdapter`.

Each training step takes a batch of `B` labelled source samples and a batch of `B` pseudo-labelled
target samples (cycled; `shiftkit.adapt.alignment.paired_dataset`) and minimises

    loss = mean task loss over the 2B samples + mmd_weight * MMD^2(f(x_s), f(x_t))

through `shiftkit.adapt.alignment.alignment_trainer` with labelled target batches (one training wrapper
for every feature-alignment adapter: progress bars, callbacks and `tf.distribute` from Keras's `fit`).
The source labels keep the model anchored to the task while the target pseudo-labels move it. When real
target labels are given (`y_target`, one per target input) they are the target labels of every round
(nothing is pseudo-labelled).

Starting point and BatchNorm (as `MMDAdapter` and `CORALAdapter`): the target model is built by
`Adapter._build`: the source layers up to `feature_layer` cloned with their weights copied (the source
model stays bit-identical) and a head starting from the source head layer's weights whenever they fit
(always with the default `feature_layer`). The base runs in inference mode: BatchNormalization keeps the
source's moving statistics (gamma/beta learn) and Dropout is off.

Record: `rounds_` lists, per round, the fraction, the number of pseudo-labels, their class counts, the
predicted class counts of all target inputs, and the mean / lowest confidence of the kept
pseudo-labels; `history` is the per-epoch Keras history of all rounds concatenated, with a `round`
column. The defaults were chosen on examples/digits_shift.py (blur severity 5) and synthetic shifts and
confirmed on other scenarios: `benchmarks/self_training_choice.md`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import keras
import numpy as np

from shiftkit._keras import predict, to_probabilities
from shiftkit._validation import check_positive_int, check_real, check_seed
from shiftkit.adapt.alignment import alignment_trainer, check_batch_per_replica, paired_dataset, seed_new_head
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.mmd import batch_mmd2
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import head_config
from shiftkit.adapt.training import accuracy_metric, head_targets, loss_for_head

__all__ = [
    "SelfTrainingAdapter",
    "fraction_schedule",
    "select_pseudo_labels",
    "ROUNDS",
    "START_FRACTION",
    "END_FRACTION",
    "EPOCHS_PER_ROUND",
    "LEARNING_RATE",
]

# Defaults, chosen in benchmarks/choose_self_training.py on examples/digits_shift.py (blur 5) and a synthetic
# rotated-cluster shift, checked on a no-shift case, confirmed on two scenarios of benchmarks/_defaults_scenarios.py
# (figures and the rule: benchmarks/self_training_choice.md). Keeping every prediction (end 1.0) or all at once
# (1 round) was worse on digits; without class balance digits fell below the source model.
#: Self-training rounds (each: pseudo-label the target with the current model, then train).
ROUNDS = 5
#: Share of each predicted class's target inputs kept as pseudo-labels in the first round.
START_FRACTION = 0.2
#: Share kept in the last round (the schedule is linear in between).
END_FRACTION = 0.8
#: Training epochs per round of `fit(epochs=None)` (5 x 4 = 20 epochs, MMDAdapter's budget); an epoch is
#: `ceil(n_source / batch_size)` steps.
EPOCHS_PER_ROUND = 4
#: Default Adam learning rate (the whole network trains, from the source weights).
LEARNING_RATE = 1e-3

_EPS = 1e-9  # fraction * n_k that is an integer up to rounding (0.3 * 10) is that integer


# ------------------------------------------------------------------------------------ the selection
def fraction_schedule(rounds: int, start_fraction: float, end_fraction: float) -> np.ndarray:
    """The share of each predicted class kept as pseudo-labels, per round: linear from start to end.

    Args:
        rounds: number of rounds `R >= 1`.
        start_fraction: the first round's share, in (0, 1].
        end_fraction: the last round's share, in [start_fraction, 1].

    Returns:
        A float array of length `R`: `start + (end - start) * r / (R - 1)` for `r = 0..R-1`
        (`[start_fraction]` for a single round).

    Raises:
        ValueError / TypeError: a fraction outside (0, 1], `start_fraction > end_fraction`, `rounds < 1`.

    Example:
        >>> fraction_schedule(4, 0.2, 0.8).round(3).tolist()
        [0.2, 0.4, 0.6, 0.8]
    """
    rounds = check_positive_int(rounds, "rounds")
    start, end = _check_fractions(start_fraction, end_fraction)
    if rounds == 1:
        return np.array([start])
    return start + (end - start) * np.arange(rounds) / (rounds - 1)


def select_pseudo_labels(probabilities: Any, fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-balanced pseudo-labels: per predicted class, its most confident `fraction` of rows.

    Each row's pseudo-label is its most probable class (the first one on ties) and its confidence that
    class's probability. Of the `n_k` rows predicted as class `k`, the `ceil(fraction * n_k)` with the
    highest confidence are kept (ties: the earlier row), so every predicted class contributes the same
    share of its rows however confident the model is about it.

    Args:
        probabilities: array `(n, K)` of class probabilities (rows need not sum to 1 exactly).
        fraction: share kept per predicted class, in (0, 1].

    Returns:
        `(index, labels, confidence)`: the kept rows in increasing order, their pseudo-labels (int64)
        and their confidences.

    Raises:
        ValueError: `probabilities` is not a finite 2-D array, or `fraction` is outside (0, 1].

    Example:
        >>> p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
        >>> index, labels, _ = select_pseudo_labels(p, 0.5)
        >>> index.tolist(), labels.tolist()
        ([0, 2], [0, 1])
    """
    fraction = check_real(fraction, "fraction", low=0, high=1, low_open=True, example=0.5)
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 1 or not np.all(np.isfinite(probs)):
        raise ValueError(f"probabilities must be a finite 2-D array (n, n_classes); got shape {probs.shape}.")
    labels = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), labels]
    kept = []
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        n_keep = math.ceil(fraction * len(rows) - _EPS)
        order = np.argsort(-confidence[rows], kind="stable")  # most confident first; ties: earlier row
        kept.append(rows[order[:n_keep]])
    index = np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
    return index, labels[index].astype(np.int64), confidence[index]


# ------------------------------------------------------------------------------------ checks
def _check_fraction(value: Any, name: str) -> float:
    return check_real(value, name, low=0, high=1, low_open=True, example="0.2")


def _check_fractions(start: Any, end: Any) -> tuple[float, float]:
    start = _check_fraction(start, "start_fraction")
    end = _check_fraction(end, "end_fraction")
    if start > end:
        raise ValueError(
            f"start_fraction ({start:g}) must not exceed end_fraction ({end:g}): the share of pseudo-labels "
            "grows over the rounds. Swap them, or pass equal values for a constant share."
        )
    return start, end


def _check_mmd_weight(value: Any) -> float:
    return check_real(value, "mmd_weight", low=0, example="1.0 (0: self-training without alignment)")


def _check_learning_rate(value: Any) -> float:
    return check_real(value, "learning_rate", low=0, low_open=True, example=LEARNING_RATE)


# ------------------------------------------------------------------------------------ the adapter
@register_adapter
class SelfTrainingAdapter(Adapter):
    """Class-balanced self-training: source labels + the current model's most confident target predictions.

    Each of `rounds` rounds pseudo-labels the target inputs with the current model (the first with the
    source model), keeps per predicted class its most confident share (growing from `start_fraction` to
    `end_fraction` over the rounds) and trains the whole network on the labelled source data plus the
    pseudo-labelled target inputs, optionally with an MMD^2 alignment term. Needs no target labels; real
    target labels (`y_target`), when given, replace the pseudo-labels. See the module docstring for the
    method, and `benchmarks/self_training_choice.md` for the defaults.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: name or index of the layer whose output is the feature space (where the MMD^2 term
            aligns); default: the input of the source model's head layer.
        rounds: self-training rounds, an integer >= 1.
        start_fraction: share of each predicted class kept as pseudo-labels in the first round, in (0, 1].
        end_fraction: share kept in the last round, in [start_fraction, 1].
        mmd_weight: weight of the MMD^2 term between source and pseudo-labelled target features, a finite
            number >= 0 (0, the default: self-training alone).
        learning_rate: Adam learning rate (default 1e-3).

    Raises:
        TypeError / ValueError: a non-model `source_model`, an unknown `feature_layer`, `rounds < 1`, a
            fraction outside (0, 1], `start_fraction > end_fraction`, a negative or non-finite
            `mmd_weight`, a non-positive `learning_rate`.

    Example:
        >>> adapter = SelfTrainingAdapter(source_model).fit(  # doctest: +SKIP
        ...     x_source=x_source, y_source=y_source, x_target=x_target, seed=0)
        >>> [r["n_pseudo_labels"] for r in adapter.rounds_]  # doctest: +SKIP
        >>> adapter.save("adapted.keras")  # doctest: +SKIP
    """

    name = "self_training"
    title = "Self-training: source labels + class-balanced confident target pseudo-labels"
    requires = ("x_source", "y_source", "x_target")
    uses = ("y_target",)

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        rounds: int = ROUNDS,
        start_fraction: float = START_FRACTION,
        end_fraction: float = END_FRACTION,
        mmd_weight: float = 0.0,
        learning_rate: float = LEARNING_RATE,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.rounds = check_positive_int(rounds, "rounds")
        self.start_fraction, self.end_fraction = _check_fractions(start_fraction, end_fraction)
        self.mmd_weight = _check_mmd_weight(mmd_weight)
        self.learning_rate = _check_learning_rate(learning_rate)

    def schedule(self) -> np.ndarray:
        """The share of each predicted class kept per round (`fraction_schedule` of the settings)."""
        return fraction_schedule(self.rounds, self.start_fraction, self.end_fraction)

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
    ) -> SelfTrainingAdapter:
        """Self-train: per round, pseudo-label the target, then train on source + pseudo-labelled target.

        Args:
            x_source: labelled source inputs, with the source model's input shape.
            y_source: source labels (class indices, or one-hot rows).
            x_target: unlabelled target inputs, same input shape.
            y_target: optional labels of `x_target`, one per row: then they are the target labels of every
                round (no pseudo-labelling).
            epochs: training epochs *per round* (None: `EPOCHS_PER_ROUND`); an epoch is
                `ceil(n_source / batch_size)` steps.
            batch_size: samples per domain per step (at least 2 per replica when `mmd_weight > 0`, for
                the unbiased MMD^2); capped at each domain's size.
            learning_rate: Adam learning rate for this fit; None (default): the adapter's `learning_rate`.
            validation_data: optional labelled `(x_val, y_val)`, e.g. held-out target data; logs `val_loss`,
                `val_task_loss` and `val_accuracy` each epoch.
            callbacks: Keras callbacks, passed to every round's `fit` (epochs are numbered across rounds).
            verbose: Keras verbosity ("auto" shows a progress bar; 0 is silent).
            seed: seed of the shuffles (and of a new head's weights); None: unseeded.

        Returns:
            self, with `model_` (the adapted model, also `.model`), `rounds_` (one dict per round:
            `round`, `fraction`, `n_pseudo_labels`, `class_counts`, `predicted_counts`,
            `mean_confidence`, `min_confidence`, `labels` ("pseudo" or "y_target")), `pseudo_labels_`
            (per round, the `(index, labels)` arrays of the target rows trained on) and `history_` (the
            per-epoch Keras logs of all rounds concatenated, plus `round`; also `.history`).

        Raises:
            ValueError / TypeError: missing data (named), invalid data (wrong feature count, NaN or inf,
                empty, fewer than 2 samples in a domain, labels of the wrong length or range) or settings.
        """
        self.check_fit_data(x_source=x_source, y_source=y_source, x_target=x_target)
        xs = self._check_x(x_source, "x_source")
        ys = self._check_y(y_source, len(xs), "y_source")
        xt = self._check_x(x_target, "x_target")
        yt = None if y_target is None else self._check_y(y_target, len(xt), "y_target")
        for arr, name in ((xs, "x_source"), (xt, "x_target")):
            if len(arr) < 2:
                raise ValueError(f"{name} has {len(arr)} sample; self-training needs at least 2 per domain.")
        epochs = EPOCHS_PER_ROUND if epochs is None else check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size", minimum=2)
        learning_rate = self.learning_rate if learning_rate is None else _check_learning_rate(learning_rate)
        seed = check_seed(seed)
        validation_data = self._validation(validation_data)
        rounds = check_positive_int(self.rounds, "rounds")
        fractions = fraction_schedule(rounds, self.start_fraction, self.end_fraction)
        mmd_weight = _check_mmd_weight(self.mmd_weight)
        replicas = self._strategy().num_replicas_in_sync
        if mmd_weight > 0:  # each replica takes the MMD^2 of its share of a batch
            check_batch_per_replica(batch_size, len(xs), len(xt), per_replica=2,
                                    purpose="for the MMD^2 of mmd_weight > 0")

        # Fewest target rows a round trains on: 2 (a batch), 2 per replica for the MMD^2.
        minimum = min(len(xt), 2 * replicas if mmd_weight > 0 else 2)
        n_out, activation = head_config(self.source_model)
        loss_fn, n_classes = loss_for_head(activation, n_out)
        as_target = partial(head_targets, n_outputs=n_out)

        if validation_data is not None:
            validation_data = (validation_data[0], as_target(validation_data[1]))

        self._build()  # the head starts from the source head's weights when they fit
        seed_new_head(self, seed)
        self.base_.trainable = True
        self.head_.trainable = True

        with self._strategy().scope():
            accuracy = accuracy_metric(self.source_model)
            trainer = alignment_trainer(
                self.model_,
                self.base_,
                self.head_,
                loss_fn=loss_fn,
                accuracy=accuracy,
                alignment=batch_mmd2,
                weight=mmd_weight,
                alignment_name="mmd2",
                target_labels=True,
                name="self_training_trainer",
            )
            trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))

        self.rounds_: list[dict[str, Any]] = []
        self.pseudo_labels_: list[tuple[np.ndarray, np.ndarray]] = []
        history: dict[str, list] = {}
        for r, fraction in enumerate(fractions):
            # The first round's pseudo-labels are the source model's own predictions.
            labeller = self.source_model if r == 0 else self.model_
            probs = to_probabilities(labeller, predict(labeller, xt))  # one row per input, also under replicas
            predicted = probs.argmax(axis=1)
            if yt is None:
                index, labels, confidence = select_pseudo_labels(probs, fraction)
                kind = "pseudo"
            else:
                index, labels = np.arange(len(xt)), yt.astype(np.int64)
                confidence, fraction, kind = probs[index, labels], 1.0, "y_target"
            if len(index) < minimum:  # too few rows for a target batch: the most confident ones overall
                index = np.sort(np.argsort(-probs.max(axis=1), kind="stable")[:minimum])
                labels, confidence = predicted[index], probs[index, predicted[index]]
            self.rounds_.append({
                "round": r + 1,
                "fraction": float(fraction),
                "n_pseudo_labels": int(len(index)),
                "class_counts": np.bincount(labels, minlength=n_classes).astype(int).tolist(),
                "predicted_counts": np.bincount(predicted, minlength=n_classes).astype(int).tolist(),
                "mean_confidence": float(np.mean(confidence)),
                "min_confidence": float(np.min(confidence)),
                "labels": kind,
            })
            self.pseudo_labels_.append((index, labels))
            dataset, steps = paired_dataset(
                xs, as_target(ys), xt[index], as_target(labels), batch_size=batch_size,
                seed=None if seed is None else seed + 2 * r,
            )
            logs = trainer.fit(
                dataset,
                epochs=(r + 1) * epochs,
                initial_epoch=r * epochs,
                steps_per_epoch=steps,
                validation_data=validation_data,
                validation_batch_size=batch_size,
                shuffle=False,  # the dataset is shuffled (seeded)
                callbacks=callbacks,
                verbose=verbose,
            ).history
            for key, values in logs.items():
                history.setdefault(key, []).extend(float(v) for v in values)
            history.setdefault("round", []).extend([r + 1] * len(next(iter(logs.values()), [])))
            if getattr(trainer, "stop_training", False):  # a callback (e.g. EarlyStopping) ended training
                break
        self.history_ = history
        return self

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update({
            "rounds": self.rounds,
            "start_fraction": self.start_fraction,
            "end_fraction": self.end_fraction,
            "mmd_weight": self.mmd_weight,
            "learning_rate": self.learning_rate,
            "rounds_": getattr(self, "rounds_", []),
        })
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.rounds = int(state.get("rounds", ROUNDS))
        self.start_fraction = float(state.get("start_fraction", START_FRACTION))
        self.end_fraction = float(state.get("end_fraction", END_FRACTION))
        self.mmd_weight = float(state.get("mmd_weight", 0.0))
        self.learning_rate = float(state.get("learning_rate", LEARNING_RATE))
        self.rounds_ = list(state.get("rounds_", []))
