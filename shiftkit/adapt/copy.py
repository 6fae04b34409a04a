"""CopyAdapter: the source model's layers copied and frozen as a feature extractor; a new head learns."""

from __future__ import annotations

from typing import Any

from shiftkit._validation import check_positive_int, check_real, check_seed
from shiftkit.adapt import training
from shiftkit.adapt.alignment import seed_new_head
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import _check_head_init
from shiftkit.adapt.training import StagedTraining

__all__ = ["CopyAdapter", "LEARNING_RATE"]

#: Default Adam learning rate of the head (chosen in benchmarks/choose_adapter_defaults.py: 3e-3 with
#: early stopping beat 1e-3, 1e-2 and 3e-2 on mean target accuracy over the choosing scenarios).
LEARNING_RATE = 3e-3


def _check_rate(value: Any, name: str) -> float:
    return check_real(value, name, low=0, low_open=True, example=LEARNING_RATE)


def _check_epochs(epochs: Any, name: str = "epochs") -> int | None:
    return None if epochs is None else check_positive_int(epochs, name, minimum=0)


@register_adapter
class CopyAdapter(StagedTraining, Adapter):
    """Feature copy ("transfer the features"): frozen source layers, a head trained on target data.

    The target model is the source model's layers up to `feature_layer`, with the source weights
    *copied* (never shared: the source model stays bit-identical) and frozen, topped by a head
    `Dense(n_outputs, activation=<the source's output activation>)`. Only the head's weights change
    in `fit`. Suited to few target labels.

    The head starts from the source head's weights when they fit (`head_init="source"`, the
    default: same features, same number of outputs), so training starts from the source model
    itself ("copy the parameters, then retrain") instead of from chance; otherwise it is new.

    Defaults that need no tuning (`fit(x, y)`): a stratified half of the labels is held out, the
    head trains on the other half at Adam 3e-3 until the held-out loss has not improved (by more
    than 1e-3) for 10 epochs (at most 100), the best epoch count is kept, *0 included* (the source
    model itself, if no epoch beat it: never worse than the start on the held-out half), and the
    head is trained again on all the labels for that many epochs. How these were chosen, on
    scenarios other than the ones they are checked on: `benchmarks/defaults_choice.md` (there,
    with 10 labels per class, never below the source model and 0.009 below an oracle-tuned recipe
    on average).

    Args:
        source_model: a built, trained `keras.Model`.
        feature_layer: layer name or index whose output feeds the head; default: the input of the
            source model's head layer (the last layer with weights).
        head: optional Keras layer (or small model) to use as head (a fresh copy of it is trained).
        n_outputs: outputs of the default head (default: the source model's).
        head_init: "source" (default): the default head starts from the source head's weights when
            they fit; "random": from Keras's initialisers, seeded by `fit(seed=...)`.
        patience: epochs without a lower held-out loss before training stops (when it stops early:
            `epochs=None`, or `validation_data` given).
        learning_rate: Adam learning rate of the head. Default 3e-3 (measured with the head
            started from the source's and early stopping: 1e-3 converges too slowly in 100 epochs,
            1e-2 and 3e-2 scored lower on average and in the worst case; `benchmarks/defaults_choice.md`).

    Attributes (after `fit`):
        model_ (also `.model`), base_, head_; history_ (also `.history`): per-epoch lists with
        "phase" ("select": on the training part while choosing the epochs, "refit": on all labels,
        "fit": otherwise); epochs_: `{1: epochs}` the final head was trained for; validation_mode_;
        head_initialised_from_source_.

    Example:
        >>> adapter = CopyAdapter(source_model).fit(x_target_few, y_target_few)  # doctest: +SKIP
        >>> adapter.evaluate(x_target_test, y_target_test)  # doctest: +SKIP
    """

    name = "copy"
    title = "Copy: source layers frozen as features, head trained on target labels"
    requires = ("x_target", "y_target")

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        head: Any = None,
        n_outputs: int | None = None,
        head_init: str = "source",
        patience: int = training.PATIENCE,
        learning_rate: float = LEARNING_RATE,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.head = head
        self.n_outputs = n_outputs
        self.head_init = _check_head_init(head_init)
        self.patience = check_positive_int(patience, "patience")
        self.learning_rate = _check_rate(learning_rate, "learning_rate")

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
        learning_rate: float | None = None,
        class_weight: Any = None,
        sample_weight: Any = None,
        callbacks: Any = None,
        verbose: Any = "auto",
        validation_split: float = training.VALIDATION_SPLIT,
        refit: bool = training.REFIT,
        seed: int | None = 0,
    ) -> "CopyAdapter":
        """Train the head on labelled target data; the copied base stays frozen.

        Args:
            x_target: target inputs. y_target: their labels (class indices or one-hot). Both required.
            x_source, y_source: accepted for the common adapter contract; not used.
            validation_data: optional `(x_val, y_val)`: training stops early on its loss and keeps
                the best weights (the starting ones included); nothing is held out of `x`.
            epochs: None (default): until the held-out loss stops improving (at most
                `shiftkit.adapt.training.MAX_EPOCHS`), see the class docstring. An int: that many
                epochs on all of `x` (0: the starting head, untrained), or at most that many with
                `validation_data`.
            batch_size: training batch size (capped at the number of samples).
            learning_rate: Adam learning rate of the head for this fit; None (default): the
                adapter's `learning_rate`.
            class_weight: None, a dict, or "balanced" (weights from the training labels).
            sample_weight: optional per-sample weights.
            callbacks: Keras callbacks, passed to every training run.
            verbose: Keras verbosity ("auto" shows a progress bar).
            validation_split: share of the labels held out (stratified) when `epochs=None` and no
                `validation_data` (default 0.5).
            refit: after choosing the epochs on the held-out part, train again on all labels
                (default True).
            seed: seed of the held-out draw and of a new head's initial weights (a head that does
                not start from the source's: `n_outputs`, `head=`, `head_init="random"`, another
                `feature_layer`); None: unseeded.

        Returns:
            self.
        """
        self.check_fit_data(x_target=x_target, y_target=y_target)
        x = self._check_x(x_target, "x_target")
        units, activation = self._planned_head(self.head, self.n_outputs)
        y = self._check_y(y_target, len(x), "y_target", n_outputs=units, activation=activation)
        validation_data = self._validation(validation_data, units, activation)
        epochs = _check_epochs(epochs)
        rate = self.learning_rate if learning_rate is None else _check_rate(learning_rate, "learning_rate")
        seed = check_seed(seed)
        self.model_ = None  # a failed fit leaves the adapter unfitted

        def build(x_fit: Any = None, validation: Any = None) -> None:
            self._build(head=self.head, n_outputs=self.n_outputs, head_init=self.head_init)
            self.base_.trainable = False
            seed_new_head(self, seed)  # a head not from the source's: seeded, so a fit with a seed repeats

        self._train(
            [(1, rate, epochs, lambda: None)], x, y, build=build, validation_data=validation_data,
            validation_split=validation_split, refit=refit, patience=self.patience, seed=seed,
            batch_size=batch_size, class_weight=class_weight, sample_weight=sample_weight,
            callbacks=callbacks, verbose=verbose,
        )
        return self

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update(head_init=self.head_init, patience=self.patience, n_outputs=self.n_outputs,
                     learning_rate=self.learning_rate,
                     history=self.history_, epochs=self.epochs_, validation_mode=self.validation_mode_)
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.head = None
        self.head_init = state.get("head_init", "source")
        self.patience = state.get("patience", training.PATIENCE)
        self.learning_rate = state.get("learning_rate", LEARNING_RATE)
        self.n_outputs = state.get("n_outputs")
        self.history_ = state.get("history", {})
        self.epochs_ = {int(k): v for k, v in (state.get("epochs") or {}).items()}
        self.validation_mode_ = state.get("validation_mode")
