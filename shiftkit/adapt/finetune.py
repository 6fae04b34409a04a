"""FineTuneAdapter: train the head on the frozen base, then fine-tune the base at a lower rate.

The two-stage recipe of the Keras guide "Transfer learning & fine-tuning":

1. **Head stage.** The copied base is frozen; only the head learns (rate `learning_rate`). A
   randomly initialised head sends large gradients through the network, so the base must not
   move before the head has converged. By default the head starts from the source head's
   weights (when they fit), so this stage starts from the source model itself.
2. **Fine-tune stage.** All base layers, or the top `unfreeze=k` of them, are unfrozen and the
   whole model is trained again at the lower `fine_tune_learning_rate`.

BatchNormalization, by default (`batch_norm="source"`), is kept in inference mode throughout: the
base is called with `training=False` (see `build_target_model`), so its moving mean/variance never
update, *and* its BatchNormalization layers stay non-trainable, so gamma/beta don't change either.
The normalisation the source model learned is kept exactly; only the other layers adapt. The other
policies: "target" (AdaBN: target statistics, `shiftkit.adapt.batch_norm`), "auto" (source or
target statistics, whichever gives the lower held-out loss before training) and "train" (BN
trainable and in training mode in stage 2, as in a plain Keras fine-tune).

Stage 2 is kept whenever it lowers the held-out loss (`fine_tune_gain="any"`, the default), or only
when it beats stage 1 by more than one standard error of the paired per-sample loss difference
(`"one_se"`, the one-standard-error rule). How the defaults were chosen (the alternatives scored
lower on the choosing scenarios): `benchmarks/finetune_guards_choice.md`.
"""

from __future__ import annotations

import numbers
from typing import Any
import keras


from shiftkit._validation import check_option, check_positive_int, check_real, check_seed
from shiftkit.adapt import training
from shiftkit.adapt.alignment import seed_new_head
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import _check_head_init, _feature_tensor
from shiftkit.adapt.training import StagedTraining
from shiftkit.adapt.batch_norm import BATCH_NORM_MODES, batch_norm_layers, recalibrate_batch_norm

__all__ = ["FineTuneAdapter", "HEAD_LEARNING_RATE", "FINE_TUNE_LEARNING_RATE", "FINE_TUNE_GAIN_RULES"]

#: Default Adam rates of the two stages (chosen in benchmarks/choose_adapter_defaults.py): stage 1 as
#: CopyAdapter's; stage 2 3e-3, which beat 1e-3 and 3e-4 there under early stopping.
HEAD_LEARNING_RATE = 3e-3
FINE_TUNE_LEARNING_RATE = 3e-3
#: `fine_tune_gain` values: keep stage 2 only when it beats stage 1 by more than one standard error
#: of the held-out loss difference ("one_se"), or whenever it lowers the held-out loss ("any").
FINE_TUNE_GAIN_RULES = ("one_se", "any")


def _leaf_layers(model: Any) -> list[Any]:
    """The layers of `model` in topological order, nested models expanded into their own layers."""

    out: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _is_batch_norm(layer: Any) -> bool:

    return isinstance(layer, keras.layers.BatchNormalization)


def tunable_layers(base: Any) -> list[Any]:
    """The base layers that `unfreeze` counts: layers with trainable weights, BatchNormalization excluded.

    A layer counts when it owns at least one variable created as trainable (kernels, biases,
    recurrent kernels, LayerNormalization's gamma/beta...), whatever its current `trainable`
    flag. Layers without weights (activations, pooling, dropout) and layers with only
    non-trainable state (`Normalization`) do not count; BatchNormalization layers never count
    because they always stay frozen.

    Args:
        base: a `keras.Model` (the adapter's feature extractor).

    Returns:
        The counted layers, lowest (closest to the input) first.
    """
    return [
        layer
        for layer in _leaf_layers(base)
        if not _is_batch_norm(layer) and any(getattr(v, "trainable", False) for v in layer.weights)
    ]


def _source_base(source_model: Any, feature_layer: str | int | None) -> Any:
    """A functional view of the source layers up to `feature_layer` (layers shared, nothing copied or changed)."""

    tensor, _ = _feature_tensor(source_model, feature_layer)
    inputs = source_model.inputs
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, tensor)


def _check_rate(value: Any, name: str) -> float:
    return check_real(value, name, low=0, low_open=True, example="1e-4")


def _check_unfreeze(unfreeze: Any, n_tunable: int, names: list[str]) -> str | int:
    hint = (
        f"The base has {n_tunable} layer(s) with trainable weights (BatchNormalization excluded, "
        f"lowest first): {names}."
    )
    if isinstance(unfreeze, str):
        if unfreeze != "all":
            raise ValueError(
                f"unfreeze must be 'all' or an integer k >= 1 (the top k base layers with weights). "
                f"Received: unfreeze={unfreeze!r}. {hint}"
            )
        return "all"
    if isinstance(unfreeze, bool) or not isinstance(unfreeze, numbers.Integral):
        raise ValueError(  # noqa: TRY004 - one error type for every bad unfreeze
            f"unfreeze must be 'all' or an integer k >= 1 (the top k base layers with weights). "
            f"Received: unfreeze={unfreeze!r} of type {type(unfreeze).__name__}. {hint}"
        )
    k = int(unfreeze)
    if k < 1:
        raise ValueError(
            f"unfreeze must be 'all' or an integer k >= 1; got unfreeze={k}. To train only the head, "
            f"use CopyAdapter or fit(..., epochs=0). {hint}"
        )
    if k > n_tunable:
        raise ValueError(
            f"unfreeze={k} is more than the base's {n_tunable} layer(s) with trainable weights. "
            f"Pass unfreeze='all' or an integer from 1 to {n_tunable}. {hint}"
        )
    return k


@register_adapter
class FineTuneAdapter(StagedTraining, Adapter):
    """Fine-tuning in two stages: the head on the frozen base, then the unfrozen base at a lower rate.

    The target model is the source model's layers up to `feature_layer`, with the source weights
    *copied* (the source model stays bit-identical), topped by a head `Dense(n_outputs,
    activation=<the source's output activation>)` that starts from the source head's weights when
    they fit (`head_init="source"`), else new.

    * Stage 1 trains only the head (`head_epochs` epochs, Adam `learning_rate`).
    * Stage 2 unfreezes the base (all of it, or its top `unfreeze` layers) and trains base and
      head together (`fit(..., epochs=...)` epochs, Adam `fine_tune_learning_rate`).

    Defaults that need no tuning (`fit(x, y)`): `head_epochs=None` and `epochs=None` mean "until
    it stops improving": a stratified half of the labels is held out, each stage trains on the
    other half until the held-out loss has not improved (by more than 1e-3) for `patience` epochs
    (at most 100) and keeps its best epoch count, *0 included* (a stage that does not beat its
    start leaves the model as it was, so the result is never worse on the held-out half than the
    source model), then the model is trained again on all the labels for the chosen epochs. Rates:
    3e-3 for both stages. How these were chosen, on scenarios other than the ones they are checked
    on: `benchmarks/defaults_choice.md` (there, with 10 labels per class, never below the source
    model, and above a by-hand Keras fine-tune at 1e-3 on average).

    BatchNormalization layers of the base stay in inference mode (the base is called with
    `training=False`) and stay frozen, so neither their moving statistics nor their gamma/beta
    change: the source normalisation is kept exactly (`batch_norm="source"`, the default; see
    `batch_norm` for the others). Dropout in the base is inactive for the same reason
    (`training=False`); the head trains normally.

    With `validation_data`, each stage stops early on its loss and keeps its best weights (the
    stage's starting weights included), so the final model is the one with the lowest validation
    loss over both stages (`best_stage_`, `best_epoch_`); nothing is held out of the training data.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: layer name or index whose output feeds the head; default: the input of the
            source model's head layer (the last layer with weights).
        head: optional Keras layer (or small model) to use as head; a fresh copy of it (same
            config, new weights) is trained in each `fit`.
        n_outputs: outputs of the default head (default: the source model's).
        unfreeze: `"all"` to unfreeze every base layer in stage 2, or an int `k >= 1` to unfreeze
            only the top `k` base layers *with trainable weights* (Dense, Conv, RNN, Embedding,
            LayerNormalization...; BatchNormalization is not counted and stays frozen). Nested
            models in the base are counted layer by layer.
        head_epochs: stage-1 epochs: None (default) until the held-out loss stops improving; an
            int `>= 1` otherwise (0 only when the head starts from the source's: skips stage 1).
        learning_rate: Adam learning rate of stage 1 (default 3e-3, as `CopyAdapter`).
        fine_tune_learning_rate: Adam learning rate of stage 2. Default 3e-3 (measured: 3e-3, 1e-3
            and 3e-4 came within 0.006 of each other, 3e-3 first and stopping soonest). The Keras
            guide's 1e-5 (and 1e-4) suit a large pretrained network with thousands of steps; on the
            small models and few labels shiftkit targets they barely move the base (a GRU
            especially) in tens of epochs. The head starts from the source's and early stopping
            keeps the start as a candidate, so a higher rate cannot end below the source on the
            held-out part. Pass 1e-5 for large pretrained bases.
        patience: epochs without a lower validation loss before a stage stops (when stopping early).
        head_init: "source" (default) or "random" (see `CopyAdapter`).
        batch_norm: BatchNormalization statistics of the base. "source" (default): the source's,
            frozen. "target": recomputed on the target inputs `fit` trains on (AdaBN, Li et al.
            2016). "auto": "target" if it gives a lower held-out loss than "source" before
            training (the refit reuses the choice; "source" when nothing is held out). "train":
            BN trainable and in training mode in stage 2, as in a plain Keras fine-tune.
            Measured on the choosing scenarios, none of the others beat "source" there
            (`benchmarks/finetune_guards_choice.md`, `benchmarks/finetune_bn_choice.md`).
        fine_tune_gain: when stage 2 is kept, if it stops early on held-out data: "any"
            (default) whenever its best held-out loss is lower than stage 1's by `MIN_DELTA`;
            "one_se" only when the paired per-sample loss gain exceeds one standard error
            (`shiftkit.adapt.training.one_se_gain`); measured: it dropped useful stage-2 runs more
            often than harmful ones.
        epoch_selection: how `fit(epochs=None)` chooses each stage's epochs: "holdout" (train on a
            stratified half of the labels, stop on the other) or "crossfit" (the same both ways
            round, the two held-out loss curves averaged, so every label scores the choice; about
            twice the selection time; needs `refit=True`). Measured on the choosing scenarios it did not
            beat "holdout" (`benchmarks/defaults_choice.md`, third round), which stays the default.

    Attributes (after `fit`):
        model_: the adapted `keras.Model` (also `.model`). base_, head_: its parts.
        history_: dict of per-epoch lists over both stages (also `.history`); see `fit`.
        epochs_: `{1: head epochs, 2: fine-tuning epochs}` the final model was trained for.
        unfrozen_layers_: names of the base layers trained in stage 2.
        best_stage_, best_epoch_: stage (1 or 2) and row of `history_` whose weights were kept
            (None, None: the starting model was kept).
        batch_norm_: the BN policy applied ("source", "target", "train"; None: no BN layer);
            batch_norm_losses_: the held-out losses "auto" compared.
        guard_: `{2: {"gain", "standard_error", "kept", "epochs"}}` when `fine_tune_gain="one_se"` decided.

    Raises:
        ValueError: a bad `unfreeze`, learning rate, `head_epochs` or `patience` (at construction).

    Example:
        >>> adapter = FineTuneAdapter(source_model).fit(x_target_few, y_target_few)  # doctest: +SKIP
        >>> adapter.evaluate(x_target_test, y_target_test)["accuracy"]  # doctest: +SKIP
        >>> import pandas as pd; pd.DataFrame(adapter.history).plot(x="epoch", y=["loss", "val_loss"])  # doctest: +SKIP
    """

    name = "finetune"
    title = "Fine-tune: head first, then the unfrozen source layers, on target labels"
    requires = ("x_target", "y_target")

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        head: Any = None,
        n_outputs: int | None = None,
        unfreeze: str | int = "all",
        head_epochs: int | None = None,
        learning_rate: float = HEAD_LEARNING_RATE,
        fine_tune_learning_rate: float = FINE_TUNE_LEARNING_RATE,
        patience: int = training.PATIENCE,
        head_init: str = "source",
        batch_norm: str = "source",
        fine_tune_gain: str = "any",
        epoch_selection: str = "holdout",
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.head = head
        self.n_outputs = n_outputs
        tunable = tunable_layers(_source_base(self.source_model, feature_layer))
        self.unfreeze = _check_unfreeze(unfreeze, len(tunable), [layer.name for layer in tunable])
        self.head_epochs = None if head_epochs is None else check_positive_int(head_epochs, "head_epochs", minimum=0)
        self.learning_rate = _check_rate(learning_rate, "learning_rate")
        self.fine_tune_learning_rate = _check_rate(fine_tune_learning_rate, "fine_tune_learning_rate")
        self.patience = check_positive_int(patience, "patience")
        self.head_init = _check_head_init(head_init)
        self.batch_norm = check_option(batch_norm, "batch_norm", BATCH_NORM_MODES)
        self.fine_tune_gain = check_option(fine_tune_gain, "fine_tune_gain", FINE_TUNE_GAIN_RULES)
        self.epoch_selection = check_option(epoch_selection, "epoch_selection", training.EPOCH_SELECTIONS)
        if self.epoch_selection == "crossfit" and self.fine_tune_gain == "one_se":
            raise ValueError("fine_tune_gain='one_se' decides on one held-out half: use it with "
                             "epoch_selection='holdout'.")

    # ------------------------------------------------------------------ helpers
    def _batch_norm_statistics(self, x_fit: Any, validation: Any) -> None:
        """Give the freshly built base the BatchNormalization statistics `batch_norm` asks for.

        "target" recomputes them on `x_fit` (AdaBN); "auto" does so when, on `validation`, the
        model with target statistics has a lower mean loss than with the source's (both with the
        starting head, before any training), and reuses that choice in a refit (no `validation`);
        without any validation data "auto" keeps the source statistics. Sets `batch_norm_`
        ("source", "target", or None: the base has no BatchNormalization layer).
        """
        if not batch_norm_layers(self.base_):
            self.batch_norm_ = None
            return
        mode = self.batch_norm
        if mode == "train":  # trained in stage 2 (see _set_trainable), from the source statistics
            self.batch_norm_ = "train"
            return
        if mode == "auto" and validation is not None:
            start = self.model_.get_weights()
            source_loss = float(self.sample_losses(*validation).mean())
            recalibrate_batch_norm(self.base_, x_fit)
            target_loss = float(self.sample_losses(*validation).mean())
            self.batch_norm_losses_ = {"source": source_loss, "target": target_loss}
            if target_loss < source_loss:
                self.batch_norm_ = "target"
            else:
                self.model_.set_weights(start)
                self.batch_norm_ = "source"
            return
        if mode == "auto":
            mode = self.batch_norm_ or "source"
        if mode == "target":
            recalibrate_batch_norm(self.base_, x_fit)
        self.batch_norm_ = mode

    def _set_trainable(self, stage: int) -> list[str]:
        """Freeze (stage 1) or unfreeze (stage 2) the base; returns the names of trainable base layers."""
        if stage == 1:
            self.base_.trainable = False
            return []
        self.base_.trainable = True  # recursive: containers (nested models) must be trainable too
        tunable = tunable_layers(self.base_)
        chosen = tunable if self.unfreeze == "all" else tunable[-int(self.unfreeze):]
        chosen_ids = {id(layer) for layer in chosen}
        train_bn = self.batch_norm == "train"
        for layer in _leaf_layers(self.base_):
            # Layers with no trainable weights are frozen too: harmless, and it keeps
            # BatchNormalization (gamma/beta) fixed, unless batch_norm="train".
            layer.trainable = id(layer) in chosen_ids or (train_bn and _is_batch_norm(layer))
        return [layer.name for layer in chosen]

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        x_target: Any = None,
        y_target: Any = None,
        *,
        x_source: Any = None,
        y_source: Any = None,
        validation_data: Any = None,
        epochs: int | None = None,
        batch_size: int = 32,
        class_weight: Any = None,
        sample_weight: Any = None,
        callbacks: Any = None,
        verbose: Any = "auto",
        validation_split: float = training.VALIDATION_SPLIT,
        refit: bool = training.REFIT,
        seed: int | None = 0,
    ) -> FineTuneAdapter:
        """Train the head (stage 1, base frozen), then fine-tune the unfrozen base (stage 2).

        Args:
            x_target: target inputs, shaped like the source model's inputs (required).
            y_target: their labels (class indices or one-hot; required).
            x_source, y_source: accepted for the common adapter contract; not used.
            validation_data: optional `(x_val, y_val)`: both stages stop early on its loss and
                keep their best weights (see the class docstring); nothing is held out of `x`.
            epochs: stage-2 (fine-tuning) epochs: None (default) until the held-out loss stops
                improving (at most `shiftkit.adapt.training.MAX_EPOCHS`); an int: that many (at most
                that many with validation data); `0` runs stage 1 only (the base stays identical
                to the source's, like `CopyAdapter`).
            batch_size: batch size of both stages.
            class_weight: None, a dict, or "balanced" (weights from the training labels).
            sample_weight: optional per-sample weights, used in both stages.
            callbacks: Keras callbacks, passed to every training run (they are reset at each
                run's start, like any callback reused across `fit` calls).
            verbose: Keras verbosity ("auto" shows a progress bar).
            validation_split: share of the labels held out (stratified) when some epochs are None
                and no `validation_data` is given (default 0.5).
            refit: after choosing the epochs on the held-out part, train again on all the labels
                (default True).
            seed: seed of the held-out draw and of a new head's initial weights (a head that does
                not start from the source's: `n_outputs`, `head=`, `head_init="random"`, another
                `feature_layer`); None: unseeded.

        Returns:
            self. `history_` (also `.history`) is a dict of equal-length lists, one entry per
            epoch that ran: `"epoch"` (0, 1, ... over all runs), `"stage"` (1 or 2), `"phase"`
            ("select" while choosing the epochs on the held-out part, "refit" on all labels,
            "fit" otherwise), `"learning_rate"`, `"loss"`, `"accuracy"` and, where validation
            data were used, `"val_loss"` and `"val_accuracy"`. `pandas.DataFrame(adapter.history)`
            plots directly.

        Raises:
            ValueError: `x` does not match the source model's input shape, labels are out of
                range or one per sample is missing, `epochs` is negative, `head_epochs=0` with a
                new (not source-started) head.
            TypeError: `validation_data` is not a pair.
        """
        self.check_fit_data(x_target=x_target, y_target=y_target)
        x = self._check_x(x_target, "x_target")
        units, activation = self._planned_head(self.head, self.n_outputs)
        y = self._check_y(y_target, len(x), "y_target", n_outputs=units, activation=activation)
        validation_data = self._validation(validation_data, units, activation)
        epochs = None if epochs is None else check_positive_int(epochs, "epochs", minimum=0)
        seed = check_seed(seed)
        self.model_ = None  # a failed fit leaves the adapter unfitted
        self.unfrozen_layers_: list[str] = []
        self.batch_norm_: str | None = None
        self.batch_norm_losses_: dict[str, float] = {}

        def build(x_fit: Any = None, validation: Any = None) -> None:
            self._build(head=self.head, n_outputs=self.n_outputs, head_init=self.head_init,
                        base_training=None if self.batch_norm == "train" else False)
            seed_new_head(self, seed)  # a head not from the source's: seeded, so a fit with a seed repeats
            self._set_trainable(1)
            self._batch_norm_statistics(x if x_fit is None else x_fit, validation)

        def unfreeze() -> None:
            self.unfrozen_layers_ = self._set_trainable(2)

        stages: list[tuple[int, float, int | None, Any]] = []
        if self.head_epochs != 0:
            stages.append((1, self.learning_rate, self.head_epochs, lambda: self._set_trainable(1)))
        if epochs != 0:
            stages.append((2, self.fine_tune_learning_rate, epochs, unfreeze))
        if self.head_epochs == 0:
            build(x, None)
            if not self.head_initialised_from_source_:
                self.model_ = None
                raise ValueError(
                    "head_epochs=0 would fine-tune the base under a new, untrained head (its weights do "
                    "not come from the source model here). Pass head_epochs=None or an integer >= 1."
                )
        self._train(
            stages, x, y, build=build, validation_data=validation_data, validation_split=validation_split,
            refit=refit, patience=self.patience, seed=seed, batch_size=batch_size, class_weight=class_weight,
            sample_weight=sample_weight, callbacks=callbacks, verbose=verbose,
            guarded=(2,) if self.fine_tune_gain == "one_se" else (), selection=self.epoch_selection,
        )
        if self.epochs_.get(2, 0) == 0:
            self.unfrozen_layers_ = []
        return self

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update(
            unfreeze=self.unfreeze,
            head_epochs=self.head_epochs,
            learning_rate=self.learning_rate,
            fine_tune_learning_rate=self.fine_tune_learning_rate,
            patience=self.patience,
            head_init=self.head_init,
            batch_norm=self.batch_norm,
            fine_tune_gain=self.fine_tune_gain,
            epoch_selection=self.epoch_selection,
            batch_norm_used=self.batch_norm_,
            guard=self.guard_,
            n_outputs=self.n_outputs,
            history=self.history_,
            epochs=self.epochs_,
            validation_mode=self.validation_mode_,
            unfrozen_layers=self.unfrozen_layers_,
            best_stage=self.best_stage_,
            best_epoch=self.best_epoch_,
        )
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.head = None  # the trained head lives in the saved model (head_)
        self.unfreeze = state.get("unfreeze", "all")
        self.head_epochs = state.get("head_epochs")
        self.learning_rate = state.get("learning_rate", HEAD_LEARNING_RATE)
        self.fine_tune_learning_rate = state.get("fine_tune_learning_rate", FINE_TUNE_LEARNING_RATE)
        self.patience = state.get("patience", training.PATIENCE)
        self.head_init = state.get("head_init", "source")
        # Saved before these options existed: the behaviour of that time (source statistics, any gain).
        self.batch_norm = state.get("batch_norm", "source")
        self.fine_tune_gain = state.get("fine_tune_gain", "any")
        self.epoch_selection = state.get("epoch_selection", "holdout")
        self.batch_norm_ = state.get("batch_norm_used")
        self.guard_ = {int(k): v for k, v in (state.get("guard") or {}).items()}
        self.n_outputs = state.get("n_outputs")
        self.history_ = state.get("history", {})
        self.epochs_ = {int(k): v for k, v in (state.get("epochs") or {}).items()}
        self.validation_mode_ = state.get("validation_mode")
        self.unfrozen_layers_ = state.get("unfrozen_layers", [])
        self.best_stage_ = state.get("best_stage")
        self.best_epoch_ = state.get("best_epoch")
