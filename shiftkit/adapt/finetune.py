"""FineTuneAdapter: train a new head on the frozen base, then fine-tune the base at a low rate.

The two-stage recipe of the Keras guide "Transfer learning & fine-tuning":

1. **Head stage.** The copied base is frozen; only the new head learns (rate `learning_rate`).
   A randomly initialised head sends large gradients through the network, so the base must not
   move before the head has converged.
2. **Fine-tune stage.** All base layers, or the top `unfreeze=k` of them, are unfrozen and the
   whole model is trained again at the much lower `fine_tune_learning_rate`.

BatchNormalization is kept in inference mode throughout: the base is called with `training=False`
(see `build_target_model`), so its moving mean/variance never update, *and* its BatchNormalization
layers stay non-trainable, so gamma/beta don't change either. The normalisation the source model
learned is kept exactly; only the other layers adapt to the target data.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from shiftkit._validation import check_positive_int
from shiftkit.adapt.base import Adapter, _feature_tensor, register_adapter

__all__ = ["FineTuneAdapter"]

_MONITOR = "val_loss"


def _leaf_layers(model: Any) -> list[Any]:
    """The layers of `model` in topological order, nested models expanded into their own layers."""
    import keras

    out: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _is_batch_norm(layer: Any) -> bool:
    import keras

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
    import keras

    tensor, _ = _feature_tensor(source_model, feature_layer)
    inputs = source_model.inputs
    return keras.Model(inputs[0] if len(inputs) == 1 else inputs, tensor)


def _check_rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, e.g. 1e-4; got {value!r}.")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive, finite number, e.g. 1e-4; got {value}.")
    return value


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
class FineTuneAdapter(Adapter):
    """Fine-tuning in two stages: a new head on the frozen base, then the unfrozen base at a low rate.

    The target model is the source model's layers up to `feature_layer`, with the source weights
    *copied* (the source model stays bit-identical), topped by a new head.

    * Stage 1 trains only the head for `head_epochs` epochs at `learning_rate` (Adam).
    * Stage 2 unfreezes the base (all of it, or its top `unfreeze` layers) and trains base and
      head together for `fit(..., epochs=...)` epochs at `fine_tune_learning_rate`.

    BatchNormalization layers of the base stay in inference mode (the base is called with
    `training=False`) and stay frozen, so neither their moving statistics nor their gamma/beta
    change: the source normalisation is kept exactly. Dropout in the base is inactive for the
    same reason (`training=False`); the head trains normally.

    With `validation_data`, each stage stops early on `val_loss` (`patience` epochs without
    improvement) and restores its best weights; after stage 2 the stage-1 weights are restored
    if no fine-tuning epoch beat them, so the final model is the one with the lowest validation
    loss over both stages (`best_stage_`, `best_epoch_`).

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: layer name or index whose output feeds the head; default: the input of the
            source model's output head.
        head: optional Keras layer (or small model) to use as head; a fresh copy of it (same
            config, new weights) is trained in each `fit`. Default: `Dense(n_outputs,
            activation=<source head's activation>)`.
        n_outputs: outputs of the default head (default: the source model's).
        unfreeze: `"all"` to unfreeze every base layer in stage 2, or an int `k >= 1` to unfreeze
            only the top `k` base layers *with trainable weights* (Dense, Conv, RNN, Embedding,
            LayerNormalization...; BatchNormalization is not counted and stays frozen). Nested
            models in the base are counted layer by layer.
        head_epochs: stage-1 epochs (>= 1: never fine-tune under a random head).
        learning_rate: Adam learning rate of stage 1 (the Keras guide's 1e-3).
        fine_tune_learning_rate: Adam learning rate of stage 2. Default 1e-4, ten times the
            guide's 1e-5: the guide's rate suits a large pretrained network with thousands of
            steps; on the small models and few hundred target samples shiftkit targets it barely
            moves the base in tens of epochs. Pass 1e-5 for large pretrained bases.
        patience: early-stopping patience (epochs without `val_loss` improvement), per stage;
            used only when `fit` gets `validation_data`.

    Attributes (after `fit`):
        model_: the adapted `keras.Model` (also `.model`). base_, head_: its parts.
        history_: dict of per-epoch lists over both stages (also `.history`); see `fit`.
        unfrozen_layers_: names of the base layers trained in stage 2.
        best_stage_, best_epoch_: stage (1 or 2) and row of `history_` whose weights were kept
            (with `validation_data`; otherwise the last epoch).

    Raises:
        ValueError: a bad `unfreeze`, learning rate, `head_epochs` or `patience` (at construction).

    Example:
        >>> adapter = FineTuneAdapter(source_model, unfreeze=2, head_epochs=20)  # doctest: +SKIP
        >>> adapter.fit(x_target, y_target, validation_data=(x_val, y_val), epochs=10)  # doctest: +SKIP
        >>> adapter.evaluate(x_target_test, y_target_test)["accuracy"]  # doctest: +SKIP
        >>> import pandas as pd; pd.DataFrame(adapter.history).plot(x="epoch", y=["loss", "val_loss"])  # doctest: +SKIP
    """

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        head: Any = None,
        n_outputs: int | None = None,
        unfreeze: str | int = "all",
        head_epochs: int = 20,
        learning_rate: float = 1e-3,
        fine_tune_learning_rate: float = 1e-4,
        patience: int = 5,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.head = head
        self.n_outputs = n_outputs
        tunable = tunable_layers(_source_base(self.source_model, feature_layer))
        self.unfreeze = _check_unfreeze(unfreeze, len(tunable), [layer.name for layer in tunable])
        self.head_epochs = check_positive_int(head_epochs, "head_epochs")
        self.learning_rate = _check_rate(learning_rate, "learning_rate")
        self.fine_tune_learning_rate = _check_rate(fine_tune_learning_rate, "fine_tune_learning_rate")
        self.patience = check_positive_int(patience, "patience", minimum=0)

    # ------------------------------------------------------------------ fitted state
    # ------------------------------------------------------------------ helpers
    def _set_trainable(self, stage: int) -> list[str]:
        """Freeze (stage 1) or unfreeze (stage 2) the base; returns the names of trainable base layers."""
        if stage == 1:
            self.base_.trainable = False
            return []
        self.base_.trainable = True  # recursive: containers (nested models) must be trainable too
        tunable = tunable_layers(self.base_)
        chosen = tunable if self.unfreeze == "all" else tunable[-int(self.unfreeze):]
        chosen_ids = {id(layer) for layer in chosen}
        for layer in _leaf_layers(self.base_):
            # Layers with no trainable weights are frozen too: harmless, and it keeps
            # BatchNormalization (gamma/beta) fixed.
            layer.trainable = id(layer) in chosen_ids
        return [layer.name for layer in chosen]

    def _run_stage(
        self,
        stage: int,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int,
        learning_rate: float,
        validation_data: Any,
        callbacks: list[Any],
        **fit_kwargs: Any,
    ) -> dict[str, list]:
        import keras

        stage_callbacks = list(callbacks)
        if validation_data is not None:
            stage_callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor=_MONITOR, patience=self.patience, restore_best_weights=True
                )
            )
        hist = self._compile_and_fit(
            x,
            y,
            learning_rate=learning_rate,
            epochs=epochs,
            validation_data=validation_data,
            callbacks=stage_callbacks,
            **fit_kwargs,
        )
        record = {key: [float(v) for v in values] for key, values in hist.history.items()}
        n = len(hist.epoch)
        record["stage"] = [stage] * n
        record["learning_rate"] = [learning_rate] * n
        return record

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        x: Any,
        y: Any,
        *,
        validation_data: Any = None,
        epochs: int = 10,
        batch_size: int = 32,
        class_weight: Any = None,
        sample_weight: Any = None,
        callbacks: Any = None,
        verbose: Any = "auto",
    ) -> FineTuneAdapter:
        """Train the head (stage 1, base frozen), then fine-tune the unfrozen base (stage 2).

        Args:
            x: target inputs, shaped like the source model's inputs.
            y: target labels (class indices or one-hot).
            validation_data: optional `(x_val, y_val)`; enables early stopping on `val_loss`
                with best-weights restore in both stages (see the class docstring).
            epochs: stage-2 (fine-tuning) epochs; `0` runs stage 1 only (the base stays
                identical to the source's, like `CopyAdapter`). Stage 1 runs `head_epochs`.
            batch_size: batch size of both stages.
            class_weight: None, a dict, or "balanced" (weights from the training labels).
            sample_weight: optional per-sample weights, used in both stages.
            callbacks: Keras callbacks, passed to both stages' `model.fit` (they are reset at each
                stage's start, like any callback reused across `fit` calls).
            verbose: Keras verbosity ("auto" shows a progress bar).

        Returns:
            self. `history_` (also `.history`) is a dict of equal-length lists, one entry per
            epoch that ran: `"epoch"` (0, 1, ... over both stages), `"stage"` (1 or 2),
            `"learning_rate"`, `"loss"`, `"accuracy"` and, with validation data, `"val_loss"`
            and `"val_accuracy"`. `pandas.DataFrame(adapter.history)` plots directly.

        Raises:
            ValueError: `x` does not match the source model's input shape, labels are out of
                range or one per sample is missing, `epochs` is negative.
            TypeError: `validation_data` is not a pair.
        """
        import keras

        x = self._check_x(x)
        y = self._check_y(y, len(x))
        validation_data = self._validation(validation_data)
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, keras.callbacks.Callback):
            callbacks = [callbacks]
        else:
            callbacks = list(callbacks)
        fit_kwargs = {
            "batch_size": batch_size,
            "class_weight": class_weight,
            "sample_weight": sample_weight,
            "verbose": verbose,
        }

        self.model_ = None  # a failed fit leaves the adapter unfitted
        self._build(head=self.head, n_outputs=self.n_outputs)
        self._set_trainable(1)
        stage1 = self._run_stage(
            1, x, y, epochs=self.head_epochs, learning_rate=self.learning_rate,
            validation_data=validation_data, callbacks=callbacks, **fit_kwargs,
        )
        records = [stage1]
        self.unfrozen_layers_: list[str] = []
        self.best_stage_, self.best_epoch_ = 1, len(stage1["stage"]) - 1
        if validation_data is not None:
            self.best_epoch_ = int(np.argmin(stage1[_MONITOR]))

        if epochs > 0:
            stage1_weights = self.model_.get_weights() if validation_data is not None else None
            self.unfrozen_layers_ = self._set_trainable(2)
            stage2 = self._run_stage(
                2, x, y, epochs=epochs, learning_rate=self.fine_tune_learning_rate,
                validation_data=validation_data, callbacks=callbacks, **fit_kwargs,
            )
            records.append(stage2)
            offset = len(stage1["stage"])
            if validation_data is None:
                self.best_stage_, self.best_epoch_ = 2, offset + len(stage2["stage"]) - 1
            elif min(stage2[_MONITOR]) < min(stage1[_MONITOR]):
                self.best_stage_, self.best_epoch_ = 2, offset + int(np.argmin(stage2[_MONITOR]))
            else:  # fine-tuning never beat the head stage on validation data: keep stage 1
                self.model_.set_weights(stage1_weights)

        keys = list(dict.fromkeys(k for record in records for k in record))
        history: dict[str, list] = {"epoch": list(range(sum(len(r["stage"]) for r in records)))}
        for key in keys:
            history[key] = [v for r in records for v in r.get(key, [math.nan] * len(r["stage"]))]
        self.history_ = history
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
            n_outputs=self.n_outputs,
            history=self.history_,
            unfrozen_layers=self.unfrozen_layers_,
            best_stage=self.best_stage_,
            best_epoch=self.best_epoch_,
        )
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.head = None  # the trained head lives in the saved model (head_)
        self.unfreeze = state.get("unfreeze", "all")
        self.head_epochs = state.get("head_epochs", 20)
        self.learning_rate = state.get("learning_rate", 1e-3)
        self.fine_tune_learning_rate = state.get("fine_tune_learning_rate", 1e-4)
        self.patience = state.get("patience", 5)
        self.n_outputs = state.get("n_outputs")
        self.history_ = state.get("history", {})
        self.unfrozen_layers_ = state.get("unfrozen_layers", [])
        self.best_stage_ = state.get("best_stage")
        self.best_epoch_ = state.get("best_epoch")
