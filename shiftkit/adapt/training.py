"""Supervised training of an adapter's target model in stages, with early stopping on held-out labels.

Used by `CopyAdapter` (one stage: the head) and `FineTuneAdapter` (the head, then the unfrozen
base) through `StagedTraining`. The defaults of `fit(epochs=None)` live here, chosen in
`benchmarks/choose_adapter_defaults.py` on scenarios other than those that confirm them
(`benchmarks/defaults_choice.md`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from shiftkit._keras import decision_threshold, predict
from shiftkit._validation import check_positive_int
from shiftkit.adapt.target_model import head_config

__all__ = [
    "MAX_EPOCHS", "VALIDATION_SPLIT", "PATIENCE", "FALLBACK_EPOCHS", "MONITOR", "MIN_DELTA", "REFIT",
    "EPOCH_SELECTIONS", "best_of_mean_curve",
    "StagedTraining", "accuracy_metric", "class_weights", "head_targets", "holdout_split", "loss_for_head",
    "one_se_gain",
]

# The defaults of `fit(epochs=None)`, chosen in benchmarks/choose_adapter_defaults.py on scenarios
# other than those that confirm them (figures and the rule: benchmarks/defaults_choice.md).
#: Most epochs `fit(epochs=None)` ("until the held-out loss stops improving") may run per stage.
MAX_EPOCHS = 100
#: Share of the labelled data held out (stratified) to choose the epochs when `epochs=None`. Half:
#: with 10 labels per class a 20% hold-out is 2 per class, too few to tell a better epoch from noise
#: (0.5 beat 0.3 and 0.2 in mean accuracy and never fell below the source model); the refit on all
#: labels gives the held-out half back to training.
VALIDATION_SPLIT = 0.5
#: Epochs without improvement of the held-out loss before training stops.
PATIENCE = 10
#: Epochs trained when `epochs=None` but the labelled data are too few to hold any out (not measured:
#: a small, cautious budget).
FALLBACK_EPOCHS = 20
#: What early stopping watches: the held-out loss (smoother than accuracy on a few dozen samples).
MONITOR = "val_loss"
#: An epoch counts as an improvement when it lowers the held-out loss by more than this.
MIN_DELTA = 1e-3
#: Train again on all the labels for the chosen epochs (`fit(refit=...)`).
REFIT = True
#: How `fit(epochs=None)` chooses each stage's epochs from the labels: "holdout" (train on one stratified
#: half, stop on the other) or "crossfit" (both ways round, the two held-out loss curves averaged).
EPOCH_SELECTIONS = ("holdout", "crossfit")


def loss_for_head(activation: str, n_outputs: int) -> tuple[Any, int]:
    """The training loss matching an output head, and the number of classes it implies."""

    if n_outputs == 1:
        if activation == "sigmoid":
            return keras.losses.BinaryCrossentropy(), 2
        return keras.losses.BinaryCrossentropy(from_logits=True), 2
    if activation == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(), n_outputs
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), n_outputs


def head_targets(labels: np.ndarray, n_outputs: int) -> np.ndarray:
    """Class codes in the form a head's loss takes: a float32 column for one output unit, else int32 indices."""
    return labels.reshape(-1, 1).astype("float32") if n_outputs == 1 else labels.astype("int32")


def accuracy_metric(model: Any) -> Any:
    """A fresh accuracy metric for `model`'s head (create it inside the strategy scope that trains).

    One output unit: `BinaryAccuracy` at the model's decision threshold (0.5 on a probability, 0 on a
    logit); several: `SparseCategoricalAccuracy`. Named "accuracy" either way.
    """
    if head_config(model)[0] == 1:
        return keras.metrics.BinaryAccuracy(name="accuracy", threshold=decision_threshold(model))
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


def class_weights(y: np.ndarray, class_weight: Any, n_classes: int) -> dict[int, float] | None:
    """Resolve `class_weight`: None, a dict, or "balanced" (scikit-learn's formula)."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, a dict or 'balanced'; got {class_weight!r}.")

        present = np.unique(y)
        weights = compute_class_weight("balanced", classes=present, y=y)
        out = {int(k): 1.0 for k in range(n_classes)}
        out.update({int(k): float(w) for k, w in zip(present, weights)})
        return out
    if isinstance(class_weight, dict):
        try:
            weights = {int(k): float(v) for k, v in class_weight.items()}
        except (TypeError, ValueError):
            raise TypeError(
                f"class_weight must map class indices (0..{n_classes - 1}) to numbers; got {class_weight!r}."
            ) from None
        unknown = sorted(k for k in weights if not 0 <= k < n_classes)
        if unknown:
            raise ValueError(
                f"class_weight has class(es) {unknown} that the head does not predict (classes "
                f"0..{n_classes - 1}). Pass weights for the model's output indices only."
            )
        bad = {k: v for k, v in weights.items() if not np.isfinite(v) or v < 0}
        if bad:
            raise ValueError(f"class_weight must hold finite, non-negative weights; got {bad}.")
        return weights
    raise TypeError(f"class_weight must be None, a dict or 'balanced'; got {type(class_weight).__name__}.")


def holdout_split(y: np.ndarray, fraction: float, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """A stratified hold-out: `(train_rows, held_out_rows)`, or None when too few labels.

    From each class with `n_k >= 2` samples, `max(1, round(fraction * n_k))` rows (at most `n_k - 1`)
    are held out at random (seeded); a class with one sample stays in training. None when fewer
    than 2 rows would be held out.

    Args:
        y: class indices.
        fraction: the share held out, in (0, 1).
        seed: seed of the draw.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"validation_split must be a fraction in (0, 1), e.g. 0.5; got {fraction!r}.")
    rng = np.random.default_rng(seed)
    held = []
    for k in np.unique(y):
        rows = np.flatnonzero(y == k)
        if len(rows) < 2:
            continue
        n = min(len(rows) - 1, max(1, int(np.floor(fraction * len(rows) + 0.5))))
        held.append(rng.choice(rows, size=n, replace=False))
    held_rows = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    if len(held_rows) < 2:
        return None
    train_rows = np.setdiff1d(np.arange(len(y)), held_rows)
    return train_rows, held_rows


def _dataset(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, *, batch_size: int = 256,
             shuffle: bool = False, seed: int | None = None) -> Any:
    """A cached `tf.data.Dataset` of `(x, y[, sample_weight])` batches, reshuffled every epoch.

    Keras's own array input rebuilds its pipeline every epoch: on the few hundred samples adapters
    train on, that overhead (about 0.1 s per epoch, more with validation data) dwarfs the training.
    The shuffle is seeded by `seed` when given, else by Keras's global seed (`keras.utils.set_random_seed`).
    """

    items = (x, y) if sample_weight is None else (x, y, np.asarray(sample_weight, dtype="float32"))
    ds = tf.data.Dataset.from_tensor_slices(items).cache()
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(min(batch_size, len(x))).prefetch(tf.data.AUTOTUNE)


def one_se_gain(start_losses: np.ndarray, end_losses: np.ndarray) -> tuple[float, float]:
    """Mean held-out loss gain of a training stage and its standard error, from paired per-sample losses.

    The one-standard-error rule (Breiman, Friedman, Olshen & Stone 1984; Hastie, Tibshirani &
    Friedman, *Elements of Statistical Learning*, section 7.10): prefer the simpler model unless
    the more complex one is better by more than one standard error of the estimated difference.
    Here the simpler model is the weights a stage started from; the difference is paired (the same
    held-out rows), so its standard error is `std(start - end, ddof=1) / sqrt(n)`.

    Returns:
        `(gain, standard_error)`: `mean(start - end)` (positive: the stage lowered the loss) and its
        standard error (`inf` with fewer than two rows: nothing can be shown).
    """
    d = np.asarray(start_losses, dtype="float64") - np.asarray(end_losses, dtype="float64")
    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("inf")
    return float(np.mean(d)), se


def best_of_mean_curve(curves: list[list[float]]) -> int:
    """The epoch count whose mean held-out loss over several runs is lowest (0: the start), by early
    stopping's rule: an epoch counts only when it lowers the best mean so far by more than `MIN_DELTA`.

    Args:
        curves: per run, `[loss at the start, after epoch 1, after epoch 2, ...]`; a run that stopped
            sooner is continued at its last value (it had stopped improving).

    Returns:
        The chosen number of epochs.
    """
    length = max(len(c) for c in curves)
    padded = np.array([list(c) + [c[-1]] * (length - len(c)) for c in curves], dtype=np.float64)
    mean = padded.mean(axis=0)
    best, best_value = 0, mean[0] if np.isfinite(mean[0]) else np.inf
    for epoch in range(1, length):
        if np.isfinite(mean[epoch]) and mean[epoch] < best_value - MIN_DELTA:
            best, best_value = epoch, mean[epoch]
    return best


def _keep_best(start_loss: float, start_weights: list, patience: int) -> Any:
    """A callback: stop after `patience` epochs without a lower `val_loss`; keep the best weights (start included)."""

    class KeepBest(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = start_loss if np.isfinite(start_loss) else np.inf
            self.best_weights = start_weights
            self.best_epoch = 0
            self.wait = 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            value = float((logs or {}).get(MONITOR, np.nan))
            if np.isfinite(value) and value < self.best - MIN_DELTA:
                self.best, self.best_epoch, self.wait = value, epoch + 1, 0
                self.best_weights = self.model.get_weights()
                return
            self.wait += 1
            if self.wait >= patience:
                self.model.stop_training = True

        def on_train_end(self, logs: dict | None = None) -> None:
            self.model.set_weights(self.best_weights)

    return KeepBest()


def _callback_list(callbacks: Any) -> list:

    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    return list(callbacks)


def _concat_records(records: list[dict[str, list]]) -> dict[str, list]:
    """Per-epoch records of several `fit` calls as one dict of equal-length lists (NaN where absent)."""
    keys = list(dict.fromkeys(k for r in records for k in r))
    sizes = [len(r.get("stage", [])) for r in records]
    out: dict[str, list] = {"epoch": list(range(sum(sizes)))}
    for key in keys:
        out[key] = [v for r, n in zip(records, sizes) for v in r.get(key, [math.nan] * n)]
    return out


class _KeepColumns:
    """A variable constraint: the entries of the classes in `mask` (last axis) stay at `values`.

    Keras applies a variable's `constraint` after every optimizer step, so those entries never move.
    """

    def __init__(self, mask: np.ndarray, values: np.ndarray):
        self.mask = np.asarray(mask, dtype=bool)
        self.values = np.asarray(values)

    def __call__(self, w: Any) -> Any:
        return keras.ops.where(self.mask, keras.ops.cast(self.values, w.dtype), w)


def _head_dense(head: Any) -> Any:
    """The Dense layer of a default head: the head itself, or the first layer of a copied head chain."""
    if isinstance(head, keras.layers.Dense):
        return head
    layers = getattr(head, "layers", None)
    return layers[0] if layers and isinstance(layers[0], keras.layers.Dense) else None


class StagedTraining:
    """Mixin of `Adapter` subclasses trained on labelled target data in stages (`_train`).

    Needs the adapter's `model_` (built by the `build` callback given to `_train`) and `_strategy()`.
    """

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """Labels in the form the model's loss expects (a float column for a single output unit)."""
        n_out = int(self.model_.outputs[0].shape[-1] or 1)
        return y.reshape(-1, 1).astype("float32") if n_out == 1 else y

    def _shuffle_seed(self) -> int | None:
        """The seed of the training batches' shuffle: `fit`'s seed, so two fits with one seed train on
        the same batches (None: Keras's global seed, `keras.utils.set_random_seed`)."""
        return getattr(self, "_fit_seed", None)

    def _unlabelled_classes(self, y: np.ndarray) -> list[int]:
        """The classes of `model_`'s head with no label in `y`."""
        n_out, act = head_config(self.model_)
        _, n_classes = loss_for_head(act, n_out)
        return sorted(set(range(n_classes)) - {int(k) for k in np.unique(y)})

    def _keep_unlabelled_classes(self, missing: list[int]) -> None:
        """Freeze the source head's kernel columns and bias entries of the `missing` classes.

        Without labels of a class, training only ever lowers its output (nothing in the loss asks
        for it), and the held-out labels cannot show the loss. Its row of the source head is the
        best guess left, so it is kept: only a head that starts from the source's and has one
        output per class (not a single sigmoid unit) is changed.
        """
        dense = _head_dense(self.head_) if getattr(self, "head_initialised_from_source_", False) else None
        n_out = head_config(self.model_)[0]
        if not missing or dense is None or n_out < 2 or int(dense.units) != n_out:
            return
        mask = np.zeros(n_out, dtype=bool)
        mask[missing] = True
        for var in (dense.kernel, getattr(dense, "bias", None)):
            if var is not None:
                var.constraint = _KeepColumns(mask, np.array(var.numpy(), copy=True))

    def _release_classes(self) -> None:
        """Remove the constraints of `_keep_unlabelled_classes` (a later Keras `fit` of the model is free)."""
        dense = _head_dense(getattr(self, "head_", None)) if getattr(self, "model_", None) is not None else None
        for var in (() if dense is None else (dense.kernel, getattr(dense, "bias", None))):
            if var is not None and isinstance(var.constraint, _KeepColumns):
                var.constraint = None

    def _check_labels_fit_head(self, y: np.ndarray, validation_data: Any = None) -> None:
        """Refuse labels the built head has no output for (a `head=` or `n_outputs=` narrower than the labels),
        before Keras would fail inside training; the adapter is left unfitted."""
        n_out, act = head_config(self.model_)
        _, n_classes = loss_for_head(act, n_out)
        for labels, name in ((y, "y_target"), (None if validation_data is None else validation_data[1],
                                                "validation_data[1]")):
            if labels is not None and len(labels) and int(np.max(labels)) >= n_classes:
                self.model_ = None
                raise ValueError(
                    f"{name} has label {int(np.max(labels))}, but the target model's head has {n_out} output(s), "
                    f"for classes 0..{n_classes - 1}. Pass a head (head= or n_outputs=) with an output for every "
                    f"class, or labels 0..{n_classes - 1}."
                )

    def _compile(self, learning_rate: float, loss: Any = None) -> None:
        """Compile `model_` with Adam (trainable flags take effect here), its loss and accuracy."""


        n_out, act = head_config(self.model_)
        default_loss, _ = loss_for_head(act, n_out)
        metric = (
            "accuracy" if n_out > 1
            else keras.metrics.BinaryAccuracy(name="accuracy", threshold=decision_threshold(self.model_))
        )
        with self._strategy().scope():
            self.model_.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss or default_loss,
                                metrics=[metric])

    def _compile_and_fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        learning_rate: float,
        epochs: int,
        batch_size: int,
        validation_data: Any = None,
        patience: int | None = None,
        class_weight: Any = None,
        sample_weight: Any = None,
        callbacks: Any = None,
        verbose: Any = "auto",
        loss: Any = None,
    ) -> tuple[dict[str, list], int]:
        """Compile `model_` and train it for at most `epochs` epochs.

        With `validation_data` and `patience`, training stops once the held-out loss has not improved
        for `patience` epochs, and the weights with the lowest held-out loss are kept, *the starting
        weights included* (epoch 0): a stage never ends worse on the held-out data than it began.

        Returns:
            `(record, best)`: per-epoch lists (Keras's history keys) and the number of epochs the
            kept weights were trained for (0: the starting weights; `len(record["loss"])` without
            early stopping).
        """
        self._check_labels_fit_head(y, validation_data)
        _, n_classes = loss_for_head(*reversed(head_config(self.model_)))
        try:
            weights = class_weights(y, class_weight, n_classes)
        except (TypeError, ValueError):
            self.model_ = None  # a refused fit leaves the adapter unfitted
            raise
        self._compile(learning_rate, loss)
        cbs = list(callbacks or [])
        keeper = None
        val = None if validation_data is None else _dataset(validation_data[0], self._targets(validation_data[1]))
        self._start_val_loss = float("nan")
        if val is not None and patience is not None:
            start = self.model_.evaluate(val, verbose=0, return_dict=True)
            self._start_val_loss = float(start["loss"])
            keeper = _keep_best(float(start["loss"]), self.model_.get_weights(), patience)
            cbs.append(keeper)
        if epochs == 0:
            return {}, 0
        if weights is not None:
            per_class = np.array([weights.get(int(k), 1.0) for k in y], dtype="float32")
            sample_weight = per_class if sample_weight is None else per_class * sample_weight
        hist = self.model_.fit(
            _dataset(x, self._targets(y), sample_weight, batch_size=batch_size, shuffle=True,
                     seed=self._shuffle_seed()),
            validation_data=val,
            epochs=epochs,
            shuffle=False,  # the dataset reshuffles itself
            callbacks=cbs,
            verbose=verbose,
        )
        record = {str(k): [float(v) for v in values] for k, values in hist.history.items()}
        return record, (keeper.best_epoch if keeper is not None else len(hist.epoch))

    def _train(
        self,
        stages: list[tuple[int, float, int | None, Any]],
        x: np.ndarray,
        y: np.ndarray,
        *,
        build: Any,
        validation_data: Any,
        validation_split: float,
        refit: bool,
        patience: int,
        seed: int | None,
        batch_size: int,
        class_weight: Any,
        sample_weight: Any,
        callbacks: Any,
        verbose: Any,
        guarded: tuple[int, ...] = (),
        selection: str = "holdout",
    ) -> None:
        """Build `model_` and train it in stages; sets `history_`, `epochs_`, `best_stage_`, `best_epoch_`.

        Each stage is `(stage, learning_rate, epochs, prepare)`; `prepare()` sets the trainable flags
        of `model_` for that stage, `epochs` is an int or None ("until it stops improving").
        `build(x_fit, validation)` creates `model_` for a training run on `x_fit`; `validation` is the
        `(x, y)` pair that run stops on, or None (a refit, or fixed epochs).

        A stage in `guarded` that stops early on validation data is kept only when it beats the
        weights it started from by more than one standard error (`one_se_gain`); otherwise its
        start is restored and it counts 0 epochs. `guard_` records each check.

        * `validation_data` given: every stage stops early on it (`patience`; an int `epochs` is the
          most it runs, None means `MAX_EPOCHS`) and keeps its best weights, the weights it started
          from included, so the model never ends worse on `validation_data` than the source-started
          one. Nothing is held out.
        * no `validation_data`, every `epochs` an int: exactly those epochs on all the labels.
        * no `validation_data`, some `epochs` None: a stratified `validation_split` of the labels is
          held out (`holdout_split`, seeded) and used as above to choose each stage's epochs; then,
          with `refit`, a fresh model is trained on *all* the labels for the chosen epochs (a stage
          that chose 0 epochs is skipped; when all chose 0 the result is the starting model itself).
          Too few labels to hold any out: `FALLBACK_EPOCHS` for each None, with a warning.
          With `selection="crossfit"` the same runs are made both ways round (train on one half, stop
          on the other, then swapped), each stage's epochs are chosen on the mean of the two held-out
          loss curves (`best_of_mean_curve`: every label scores the choice once), and the model is
          refitted on all the labels (`refit` must be True).
        """
        if selection not in EPOCH_SELECTIONS:
            raise ValueError(f"epoch selection must be one of {list(EPOCH_SELECTIONS)}; got {selection!r}.")
        if selection == "crossfit" and not refit:
            raise ValueError("epoch_selection='crossfit' chooses the epochs on two swapped halves and then trains on "
                             "all the labels: it needs refit=True (or use epoch_selection='holdout').")
        if selection == "crossfit" and guarded:
            raise ValueError("fine_tune_gain='one_se' decides on one held-out half: use it with "
                             "epoch_selection='holdout'.")
        callbacks = _callback_list(callbacks)
        self._fit_seed = seed
        batch_size = check_positive_int(batch_size, "batch_size")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype="float32").reshape(-1)
            if len(sample_weight) != len(x):
                raise ValueError(f"sample_weight has {len(sample_weight)} entries but x has {len(x)} samples.")
        common = {"batch_size": batch_size, "class_weight": class_weight, "callbacks": callbacks, "verbose": verbose}
        records: list[dict[str, list]] = []

        self.guard_: dict[int, dict[str, float | bool]] = {}

        self.unlabelled_classes_: list[int] = []
        user_build = build

        def build(x_fit: Any, validation: Any) -> None:
            user_build(x_fit, validation)
            if not self.unlabelled_classes_:
                self.unlabelled_classes_ = missing = self._unlabelled_classes(y)
                if missing:
                    n_out, act = head_config(self.model_)
                    kept = getattr(self, "head_initialised_from_source_", False) and n_out > 1
                    warnings.warn(
                        f"y_target has no label of class(es) {missing} (the head predicts classes "
                        f"0..{loss_for_head(act, n_out)[1] - 1}): "
                        "training on the other classes' labels would unlearn them (nothing in the loss asks for "
                        "them, so their outputs only lose probability), and the held-out labels, which lack them "
                        "too, cannot show it. "
                        + ("Their weights in the head are kept at the source head's (frozen); the features under "
                           "them may still move. " if kept else "")
                        + "Add target labels of every class the model predicts, or check the outputs of these "
                        "classes on target data after adapting.",
                        UserWarning,
                        stacklevel=4,
                    )
            self._keep_unlabelled_classes(self.unlabelled_classes_)

        def run(stage_list, xs, ys, sw, val, phase, stop, curves=None, fold=None):
            chosen = {}
            for stage, rate, n_epochs, prepare in stage_list:
                prepare()
                cap = MAX_EPOCHS if n_epochs is None else n_epochs
                check = stop and val is not None and stage in guarded and cap > 0
                if check:
                    start_weights = self.model_.get_weights()
                    start_losses = self.sample_losses(*val)
                record, best = self._compile_and_fit(
                    xs, ys, learning_rate=rate, epochs=cap, validation_data=val,
                    patience=patience if stop else None, sample_weight=sw, **common,
                )
                if check and best > 0:
                    gain, se = one_se_gain(start_losses, self.sample_losses(*val))
                    self.guard_[stage] = {"gain": gain, "standard_error": se, "kept": gain > se,
                                          "epochs": best}
                    if not gain > se:
                        self.model_.set_weights(start_weights)
                        best = 0
                n = len(record.get("loss", []))
                record.update(stage=[stage] * n, phase=[phase] * n, learning_rate=[float(rate)] * n)
                if fold is not None:
                    record["fold"] = [fold] * n
                if curves is not None:
                    curves.setdefault(stage, []).append([self._start_val_loss] + list(record.get("val_loss", [])))
                records.append(record)
                chosen[stage] = best
            return chosen

        auto = any(n is None for _, _, n, _ in stages)
        self.validation_mode_ = "fixed"
        if validation_data is not None:
            build(x, validation_data)
            self.validation_mode_ = "given"
            self.epochs_ = run(stages, x, y, sample_weight, validation_data, "fit", True)
        elif not auto:
            build(x, None)
            self.epochs_ = run(stages, x, y, sample_weight, None, "fit", False)
        else:
            split = holdout_split(y, validation_split, seed)
            if split is None:
                warnings.warn(
                    f"Too few labelled samples ({len(y)}) to hold out a validation part: training "
                    f"{FALLBACK_EPOCHS} epochs per stage instead of stopping early. Pass epochs=, or "
                    "validation_data=, or more labels.",
                    UserWarning,
                    stacklevel=3,
                )
                fixed = [(st, rate, FALLBACK_EPOCHS if n is None else n, prep) for st, rate, n, prep in stages]
                build(x, None)
                self.epochs_ = run(fixed, x, y, sample_weight, None, "fit", False)
            elif selection == "crossfit":
                tr, va = split
                self.validation_mode_ = "crossfit+refit"
                self.held_out_ = va
                curves: dict[int, list[list[float]]] = {}
                for fold, (a, b) in enumerate(((tr, va), (va, tr))):
                    build(x[a], (x[b], y[b]))
                    sw = None if sample_weight is None else sample_weight[a]
                    run(stages, x[a], y[a], sw, (x[b], y[b]), "select", True, curves=curves, fold=fold)
                chosen = {st: best_of_mean_curve(curves[st]) if st in curves else 0 for st, _, _, _ in stages}
                self.epochs_ = chosen
                build(x, None)
                again = [(st, rate, chosen[st], prep) for st, rate, _, prep in stages if chosen[st] > 0]
                run(again, x, y, sample_weight, None, "refit", False)
            else:
                tr, va = split
                self.validation_mode_ = "holdout"
                self.held_out_ = va
                build(x[tr], (x[va], y[va]))
                sw = None if sample_weight is None else sample_weight[tr]
                chosen = run(stages, x[tr], y[tr], sw, (x[va], y[va]), "select", True)
                self.epochs_ = chosen
                if refit:
                    self.validation_mode_ = "holdout+refit"
                    build(x, None)
                    again = [(st, rate, chosen[st], prep) for st, rate, _, prep in stages if chosen[st] > 0]
                    run(again, x, y, sample_weight, None, "refit", False)
        self._release_classes()
        self.history_ = _concat_records(records)
        self.best_stage_ = max((st for st, n in self.epochs_.items() if n > 0), default=None)
        stages_run, phases = self.history_.get("stage", []), self.history_.get("phase", [])
        self.best_epoch_ = None  # the row of history_ whose weights the model has (None: the start)
        if self.best_stage_ is not None:
            if self.validation_mode_ in ("fixed", "holdout+refit", "crossfit+refit"):
                self.best_epoch_ = len(stages_run) - 1
            else:
                first = next(i for i, (st, ph) in enumerate(zip(stages_run, phases))
                             if st == self.best_stage_ and ph in ("fit", "select"))
                self.best_epoch_ = first + self.epochs_[self.best_stage_] - 1

    # ------------------------------------------------------------------ public API
    def sample_losses(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Per-sample training loss of `model_` (the head's cross-entropy) on checked `x`, `y`."""

        n_out, act = head_config(self.model_)
        loss, _ = loss_for_head(act, n_out)
        out = predict(self.model_, x, batch_size=batch_size)
        values = loss.call(keras.ops.convert_to_tensor(self._targets(y)), keras.ops.convert_to_tensor(out))
        return np.asarray(keras.ops.convert_to_numpy(values), dtype="float64").reshape(len(x))
