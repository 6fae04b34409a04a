"""AutoAdapter ("auto"): `select_adapter` behind the adapter contract, so every front end offers it.

`fit` runs `shiftkit.adapt.selection.select_adapter`: it diagnoses the shift, fits the candidate
adapters that suit it (source only is always a candidate), scores them without target labels
(agreement with the candidates' ensemble on the target, "ensemble"; or the importance-weighted
held-out source loss, "dev"/"iwv") or with the few target
labels when there are some, and keeps the best one unless it is not better than doing nothing by
more than noise. The fitted `AutoAdapter` then predicts with the chosen adapter's model;
`selection_` holds every candidate's score and standard error (the dashboard's table).

It is registered like any adapter (`get_adapter("auto")`, `Experiment(adapters=["auto"])`, the
dashboard's list) but is not part of `Experiment`'s default list (`in_default_list = False`): it
fits the other adapters itself.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shiftkit._validation import check_option, check_positive_int, check_real
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.selection import CRITERIA, LOSSES, SOURCE_ONLY, select_adapter

__all__ = ["AutoAdapter"]


@register_adapter
class AutoAdapter(Adapter):
    """Choose and fit the adapter that suits the data, by estimated target risk (`select_adapter`).

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        candidates: "auto" (the candidates that suit the diagnosed shift) or a list of adapter names.
        criterion: label-free scoring criterion, "ensemble" (default), "dev", "iwv" or "source".
        loss: "cross_entropy" (default) or "error".
        margin: standard errors by which a candidate must beat source only (default 1.0).
        n_splits: folds of the target labels, when there are some.

    Attributes (after `fit`):
        selection_: the `Selection` (every candidate's score; `selection_.to_dict()` for reports).
        chosen_: the chosen candidate's name ("source_only": the source model, unchanged).
        adapter_: the chosen fitted adapter (None for source only).

    Example:
        >>> auto = AutoAdapter(model).fit(x_src, y_src, x_tgt, x_source_val=x_val, y_source_val=y_val)  # doctest: +SKIP
        >>> print(auto.selection_)  # doctest: +SKIP
    """

    name = "auto"
    title = "Automatic: fit the adapters that suit the diagnosed shift, keep the best by estimated target risk"
    requires = ("x_source", "y_source", "x_target")
    uses = ("x_source_val", "y_source_val", "x_target_labeled", "y_target_labeled")
    in_default_list: ClassVar[bool] = False

    def __init__(
        self,
        source_model: Any,
        *,
        candidates: Any = "auto",
        criterion: str = "ensemble",
        loss: str = "cross_entropy",
        margin: float = 1.0,
        n_splits: int = 3,
    ):
        super().__init__(source_model)
        if not (candidates == "auto" or (isinstance(candidates, (list, tuple))
                                         and all(isinstance(c, str) for c in candidates))):
            raise TypeError(f'candidates must be "auto" or a list of adapter names; got {candidates!r}.')
        self.candidates = candidates if candidates == "auto" else list(candidates)
        self.criterion = check_option(criterion, "criterion", CRITERIA)
        self.loss = check_option(loss, "loss", LOSSES)
        self.margin = check_real(margin, "margin", low=0, example=1.0)
        self.n_splits = check_positive_int(n_splits, "n_splits", minimum=2)

    def fit(
        self,
        x_source: Any = None,
        y_source: Any = None,
        x_target: Any = None,
        *,
        y_target: Any = None,
        x_source_val: Any = None,
        y_source_val: Any = None,
        x_target_labeled: Any = None,
        y_target_labeled: Any = None,
        epochs: int | None = None,
        verbose: Any = 0,
        callbacks: Any = None,
        progress: Any = None,
        seed: int | None = 0,
    ) -> AutoAdapter:
        """Diagnose, fit the candidates, score them, keep the best (see `select_adapter`).

        Args:
            x_source, y_source: labelled source data the candidates train on.
            x_target: unlabelled target inputs.
            y_target: accepted for the common contract and ignored (pass few target labels as
                `x_target_labeled`, `y_target_labeled`).
            x_source_val, y_source_val: labelled held-out source data to score on (None: a share of
                the source data is held out).
            x_target_labeled, y_target_labeled: optional few labelled target samples (then they
                score the candidates, cross-validated).
            epochs: None (each candidate's own default) or the epochs of every candidate that trains.
            verbose: Keras verbosity of each candidate's training (default 0).
            callbacks: not passed to the candidates (one callback object would see several
                trainings); accepted for the common contract.
            progress: optional `progress(i, n, name)` before each candidate (the dashboard's bar).
            seed: seed of every random step.

        Returns:
            self, with `selection_`, `chosen_`, `adapter_` and `model_` (the chosen model).
        """

        self.check_fit_data(x_source=x_source, y_source=y_source, x_target=x_target)
        fit_kwargs: dict[str, Any] = {"verbose": verbose}
        if epochs is not None:
            fit_kwargs["epochs"] = check_positive_int(epochs, "epochs")
        sel = select_adapter(
            self.source_model, x_source, y_source, x_target,
            x_source_val=x_source_val, y_source_val=y_source_val,
            x_target_labeled=x_target_labeled, y_target_labeled=y_target_labeled,
            candidates=self.candidates, criterion=self.criterion, loss=self.loss, margin=self.margin,
            n_splits=self.n_splits, fit_kwargs=fit_kwargs, progress=progress, seed=seed,
        )
        self.selection_ = sel
        self.chosen_ = sel.chosen
        self.adapter_ = sel.adapter
        if sel.adapter is None:  # source only: the source model itself, in the adapted-model layout
            self._build()
            self.history_ = None
        else:
            self.model_, self.base_, self.head_ = sel.adapter.model_, sel.adapter.base_, sel.adapter.head_
            self.history_ = getattr(sel.adapter, "history_", None)
        return self

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        sel = getattr(self, "selection_", None)
        state.update({"chosen": getattr(self, "chosen_", SOURCE_ONLY),
                      "selection": None if sel is None else sel.to_dict(),
                      "candidates": self.candidates, "criterion": self.criterion, "loss": self.loss,
                      "margin": self.margin, "n_splits": self.n_splits})
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.chosen_ = state.get("chosen", SOURCE_ONLY)
        self.selection_dict_ = state.get("selection")
        self.adapter_ = None
        for name, default in self.default_config().items():  # the settings, defaults from the signature
            setattr(self, name, state.get(name, default))
