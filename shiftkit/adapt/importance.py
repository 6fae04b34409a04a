"""ImportanceWeightingAdapter: source training reweighted by the density ratio p_target(x) / p_source(x).

Under covariate shift (`p(y | x)` shared, `p(x)` not), the target risk is an importance-weighted
source risk: `E_t[loss] = E_s[w(x) loss]` with `w = p_t / p_s` (Shimodaira 2000; Sugiyama, Krauledat
& Müller 2007). The adapter

1. estimates `w` on the source rows with `shiftkit.shift.density_ratio.DensityRatioEstimator`
   (cross-fitted, Platt-calibrated domain classifier, capped at a source quantile, mean 1), in the
   space given by `space`: "features" (the default) the source model's features (the input of its
   head layer, or `feature_layer`), "input" the flattened inputs;
2. refuses weights that collapse the effective sample size: when `ess_fraction_ = ESS / n_source`
   is below `min_ess_fraction` it raises a `ValueError` (before any training) with the figures and
   what to do instead;
3. continues training the source model (a copy built by `Adapter._build`, starting from the source
   weights, base in inference mode so BatchNorm keeps the source statistics and Dropout is off)
   with Keras's own `fit` on the labelled source data, each row's loss weighted by its `w`.

What to expect. Reweighting changes what the model is fitted to, not what it can represent: a model
that fits `p(y | x)` well everywhere the source covers gains nothing (and pays the weights' variance),
and no weight can teach it about regions the source does not cover. It helps where the model is
*misspecified* or short of capacity and must trade accuracy between regions (the weights move that
trade to the target's regions), or where source rows of the target's region are too few to shape the
fit. The measurements behind the defaults are in `benchmarks/importance_choice.md`.

Why features by default: a domain classifier on raw pixels (hundreds of correlated columns, a few
hundred rows) separates domains by noise and its ratios collapse the ESS; the model's own features
are low-dimensional and are where its decision is made. On tables the inputs are an option
(`space="input"`), measured in `benchmarks/importance_choice.md`.

Per-epoch cost: one weighted `model.fit` epoch is one plain epoch (the weight multiplies each
row's loss); the density ratio is estimated once, before training (`ratio_seconds_`).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from shiftkit._validation import check_option, check_positive_int, check_real, check_seed
from shiftkit.adapt.alignment import seed_new_head
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import head_config
from shiftkit.adapt.training import accuracy_metric, head_targets, loss_for_head
from shiftkit.shift.density_ratio import CLIP_QUANTILE, DensityRatioEstimator, _check_classifier

__all__ = ["ImportanceWeightingAdapter", "LEARNING_RATE", "EPOCHS", "MIN_ESS_FRACTION", "SPACES"]

#: Default Adam learning rate: training continues from the source weights, so a modest rate
#: (chosen on hospitals_covariate strength 1 and the synthetic parabola; benchmarks/importance_choice.md).
LEARNING_RATE = 1e-3
#: Training epochs of `fit(epochs=None)` (same choice).
EPOCHS = 10
#: Default least effective-sample-size fraction accepted (see the class docstring).
MIN_ESS_FRACTION = 0.1
#: Where the density ratio is estimated.
SPACES = ("features", "input")


def _check_learning_rate(value: Any) -> float:
    return check_real(value, "learning_rate", low=0, low_open=True, example=LEARNING_RATE)


def _check_min_ess(value: Any) -> float:
    return check_real(value, "min_ess_fraction", low=0, high=1, high_open=True,
                      example=f"{MIN_ESS_FRACTION} (0: accept any weights)")


def _check_clip(value: Any) -> float | None:
    if value is None:
        return None
    return check_real(value, "clip_quantile", low=0, high=1, low_open=True,
                      example=f"{CLIP_QUANTILE} (None or 1.0: no clipping)")


@register_adapter
class ImportanceWeightingAdapter(Adapter):
    """Importance weighting for covariate shift: source training with weights `w(x) = p_t(x) / p_s(x)`.

    The weights come from a cross-fitted, calibrated domain classifier
    (`shiftkit.shift.density_ratio.DensityRatioEstimator`), capped at the `clip_quantile` quantile
    of the source rows' ratios and normalised to mean 1; the model (a copy of the source model,
    base in inference mode) continues training on the labelled source data with those weights as
    sample weights. See the module docstring for the method and what to expect.

    Weights that collapse the effective sample size are refused: with `ESS / n_source` below
    `min_ess_fraction` (default 0.1: fewer than one row in ten effectively counts), the reweighted
    loss rests on a handful of rows and its gradient is mostly their noise; `fit` raises a
    `ValueError` saying so, before training. Lower the cap (`clip_quantile`, e.g. 0.9), or use an
    adapter that does not reweight (feature alignment: "mmd", "coral"). The domains may also overlap
    too little for any reweighting: a target region without source rows cannot be reached by
    weights.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: name or index of the layer whose output is the feature space (where the
            ratio is estimated with `space="features"`); default: the input of the source model's
            head layer.
        space: "features" (default) or "input" (the flattened inputs).
        classifier: the domain classifier: "logistic" (default), "gbm", or a scikit-learn
            classifier with `predict_proba`.
        clip_quantile: cap on the weights, a quantile of the source rows' ratios in (0, 1]; None
            or 1.0: no cap.
        min_ess_fraction: least `ESS / n_source` accepted, in [0, 1) (0: accept any weights).
        learning_rate: Adam learning rate (default 1e-3: training continues from the source weights).

    Attributes (after `fit`):
        weights_: the source rows' weights (mean 1), `(n_source,)`.
        ess_, ess_fraction_, domain_auc_, clip_value_: as in `DensityRatioEstimator`.
        density_ratio_: the fitted `DensityRatioEstimator` (its `weights(x)` weighs new rows in the
            chosen space; not saved).
        ratio_seconds_: time spent estimating the weights.

    Raises:
        TypeError / ValueError: a non-model `source_model`, an unknown `feature_layer` or `space`,
            a bad `classifier`, `clip_quantile`, `min_ess_fraction` or `learning_rate`.

    Example:
        >>> adapter = ImportanceWeightingAdapter(source_model).fit(  # doctest: +SKIP
        ...     x_source, y_source, x_target, seed=0)
        >>> adapter.ess_fraction_, adapter.domain_auc_  # doctest: +SKIP
        >>> adapter.save("adapted.keras")  # doctest: +SKIP
    """

    name = "importance"
    title = "Importance weighting: source training reweighted by the density ratio (covariate shift)"
    requires = ("x_source", "y_source", "x_target")

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        space: str = "features",
        classifier: Any = "logistic",
        clip_quantile: float | None = CLIP_QUANTILE,
        min_ess_fraction: float = MIN_ESS_FRACTION,
        learning_rate: float = LEARNING_RATE,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.space = check_option(space, "space", SPACES)
        self.classifier = _check_classifier(classifier)
        self.clip_quantile = _check_clip(clip_quantile)
        self.min_ess_fraction = _check_min_ess(min_ess_fraction)
        self.learning_rate = _check_learning_rate(learning_rate)

    # ------------------------------------------------------------------ weights
    def _ratio_inputs(self, xs: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows the domain classifier sees: the (copied) source features, or the flattened inputs."""
        if self.space == "input":
            return xs.reshape(len(xs), -1), xt.reshape(len(xt), -1)
        return self._source_features(xs), self._source_features(xt)

    def _source_features(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The base's outputs (still the source's weights), by direct calls in batches.

        Not `predict_on_batch`: on a model built under a 2-replica MirroredStrategy it returned 2n
        rows for n inputs (Keras 3.15), so the ratio would be estimated on the wrong rows.
        """
        parts = [keras.ops.convert_to_numpy(self.base_([x[i:i + batch_size]], training=False))
                 for i in range(0, len(x), batch_size)]
        return np.concatenate(parts).astype(np.float64).reshape(len(x), -1)

    def _estimate_weights(self, xs: np.ndarray, xt: np.ndarray, seed: int | None) -> None:
        start = time.perf_counter()
        zs, zt = self._ratio_inputs(xs, xt)
        est = DensityRatioEstimator(classifier=self.classifier, clip_quantile=self.clip_quantile, seed=seed)
        try:
            est.fit(zs, zt)
        except ValueError as exc:  # too few rows for the folds, said in the user's terms
            raise ValueError(f"Cannot estimate importance weights: {exc}") from None
        self.density_ratio_ = est
        self.weights_ = est.weights_.astype(np.float64)
        self.ess_, self.ess_fraction_ = float(est.ess_), float(est.ess_fraction_)
        self.domain_auc_, self.clip_value_ = float(est.domain_auc_), float(est.clip_value_)
        self.ratio_seconds_ = time.perf_counter() - start
        if self.ess_fraction_ < self.min_ess_fraction:
            cap = "no cap" if self.clip_quantile is None else f"clip_quantile={self.clip_quantile:g}"
            raise ValueError(
                f"Importance weights collapse the effective sample size: ESS = {self.ess_:.1f} of {len(xs)} "
                f"source rows ({self.ess_fraction_:.1%}, below min_ess_fraction={self.min_ess_fraction:g}; "
                f"domain classifier AUC {self.domain_auc_:.3f}, {cap}). A reweighted loss would rest on a "
                "few rows. Cap the weights harder (e.g. clip_quantile=0.9), or use an adapter that does not "
                "reweight (e.g. 'mmd' or 'coral'); with target labels, 'finetune'. To accept these weights "
                "anyway pass min_ess_fraction=0."
            )

    # ------------------------------------------------------------------ fitting
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
    ) -> ImportanceWeightingAdapter:
        """Estimate the weights (refusing a collapsed ESS), then train on the weighted source data.

        Args:
            x_source: labelled source inputs, with the source model's input shape.
            y_source: source labels (class indices, or one-hot rows).
            x_target: unlabelled target inputs, same input shape (only their distribution is used).
            y_target: accepted and ignored (the method uses no target labels).
            epochs: training epochs (None: `EPOCHS`, 10) over the source data.
            batch_size: rows per step.
            learning_rate: Adam learning rate for this fit; None (default): the adapter's `learning_rate`.
            validation_data: optional labelled `(x_val, y_val)`, e.g. held-out target data; logs
                `val_loss` and `val_accuracy` (unweighted).
            callbacks: Keras callbacks (they see `self.model_`).
            verbose: Keras verbosity ("auto" shows a progress bar; 0 is silent).
            seed: seed of the cross-fitting folds and of the shuffles (and of a new head's weights);
                None: unseeded.

        Returns:
            self, with `model_`, `history_` (Keras `History`: `loss`, `accuracy`), `weights_`,
            `ess_`, `ess_fraction_`, `domain_auc_`, `clip_value_`, `density_ratio_`.

        Raises:
            ValueError / TypeError: missing or invalid data (named), bad settings, too few rows for
                the cross-fitting (5 per domain), or weights whose `ess_fraction_` is below
                `min_ess_fraction` (the message gives the ESS and what to do).
        """
        self.check_fit_data(x_source=x_source, y_source=y_source, x_target=x_target)
        xs = self._check_x(x_source, "x_source")
        ys = self._check_y(y_source, len(xs), "y_source")
        xt = self._check_x(x_target, "x_target")
        epochs = EPOCHS if epochs is None else check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        learning_rate = self.learning_rate if learning_rate is None else _check_learning_rate(learning_rate)
        seed = check_seed(seed)
        validation_data = self._validation(validation_data)
        self.space = check_option(self.space, "space", SPACES)
        self.classifier = _check_classifier(self.classifier)
        self.clip_quantile = _check_clip(self.clip_quantile)
        self.min_ess_fraction = _check_min_ess(self.min_ess_fraction)

        n_out, activation = head_config(self.source_model)
        loss_fn, _ = loss_for_head(activation, n_out)
        as_target = partial(head_targets, n_outputs=n_out)

        self._build()  # a copy of the source model (base in inference mode), head from the source's
        try:
            self._estimate_weights(xs, xt, seed)  # may refuse: before any training
        except ValueError:
            self.model_ = self.base_ = self.head_ = None  # a refused fit leaves no (untrained) model behind
            raise
        seed_new_head(self, seed)
        self.base_.trainable = True
        self.head_.trainable = True

        dataset = (
            tf.data.Dataset.from_tensor_slices((xs, as_target(ys), self.weights_.astype("float32")))
            .cache()
            .shuffle(len(xs), seed=seed, reshuffle_each_iteration=True)
            .batch(min(batch_size, len(xs)))
            .prefetch(tf.data.AUTOTUNE)
        )
        val = None
        if validation_data is not None:
            val = (validation_data[0], as_target(validation_data[1]))
        with self._strategy().scope():
            accuracy = accuracy_metric(self.source_model)
            self.model_.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_fn, metrics=[accuracy])
        self.history_ = self.model_.fit(
            dataset,
            epochs=epochs,
            validation_data=val,
            validation_batch_size=batch_size,
            shuffle=False,  # the dataset is shuffled (seeded) above
            callbacks=callbacks,
            verbose=verbose,
        )
        return self

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        state.update({
            "space": self.space,
            "classifier": self.classifier if isinstance(self.classifier, str) else type(self.classifier).__name__,
            "clip_quantile": self.clip_quantile,
            "min_ess_fraction": self.min_ess_fraction,
            "learning_rate": self.learning_rate,
            "ess": getattr(self, "ess_", None),
            "ess_fraction": getattr(self, "ess_fraction_", None),
            "domain_auc": getattr(self, "domain_auc_", None),
            "clip_value": (None if not np.isfinite(getattr(self, "clip_value_", np.inf))
                           else float(self.clip_value_)),
        })
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.space = str(state.get("space", "features"))
        self.classifier = state.get("classifier", "logistic")
        self.clip_quantile = state.get("clip_quantile", CLIP_QUANTILE)
        self.min_ess_fraction = float(state.get("min_ess_fraction", MIN_ESS_FRACTION))
        self.learning_rate = float(state.get("learning_rate", LEARNING_RATE))
        self.ess_ = state.get("ess")
        self.ess_fraction_ = state.get("ess_fraction")
        self.domain_auc_ = state.get("domain_auc")
        clip = state.get("clip_value")
        self.clip_value_ = float("inf") if clip is None else float(clip)
