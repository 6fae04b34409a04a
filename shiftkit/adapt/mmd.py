"""MMDAdapter: train on labelled data while pulling source and target features together with MMD^2.

The objective of each training step, on a batch of `B` labelled source samples `(x_s, y_s)` and a
batch of `B` target samples `x_t` (labels optional), is

    loss = task_loss + mmd_weight * MMD^2_u(f(x_s), f(x_t))        (class weights: see below)

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

Class weighting (covariate and label shift together): when the class proportions differ between
the domains, aligning the feature *marginals* pulls source features of one class onto target
features of another (the target's mix of classes is not the source's), and plain MMD can lose
accuracy. With `class_weights` each source sample of class `y` weighs `w(y)` (normalised to mean 1
over its batch by `alignment_trainer`) in the source mean embedding of the MMD^2 term
(`batch_mmd2(..., source_weights=...)`), so the source side is aligned *as if* it had the target's
class proportions; `weight_task=True` also weights the source task loss. `class_weights="auto"`
sets `w(y) = q(y) / p(y)`: `q` the target proportions estimated with the source model as
`LabelShiftAdapter` does (EM after bias-corrected temperature scaling, on held-out labelled source
data `x_source_val` / `y_source_val` -- never the model's training data -- and the unlabelled
target), `p` the proportions of `y_source`, clipped to `CLASS_WEIGHT_RANGE`. The estimate assumes
label shift for the *source* model, which a strong covariate shift breaks (on blurred digits it
collapses onto two classes and the weights then ruin the training); so the weights are applied
only when BBSE on the same predictions agrees with EM (total variation <= `MAX_PRIOR_DISAGREEMENT`),
and otherwise the fit warns and trains unweighted. The default is unweighted (`class_weights=None`):
the figures behind that choice are in `benchmarks/cw_mmd_choice.md`.

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

import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any

import keras
import numpy as np
from keras import ops

from shiftkit._keras import predict, to_probabilities
from shiftkit._validation import check_bandwidth, check_positive_int, check_real, check_seed
from shiftkit.adapt.alignment import alignment_trainer, check_batch_per_replica, paired_dataset, seed_new_head
from shiftkit.adapt.base import Adapter
from shiftkit.adapt import registry as _registry
from shiftkit.adapt.registry import register_adapter
from shiftkit.adapt.target_model import head_config
from shiftkit.adapt.training import accuracy_metric, head_targets, loss_for_head
from shiftkit.shift import kernels
from shiftkit.shift.labels import estimate_target_priors, frozen_array

__all__ = ["MMDAdapter", "batch_mmd2", "LEARNING_RATE", "CLASS_WEIGHT_RANGE"]

#: Default Adam learning rate of MMDAdapter (the whole network trains, from the source weights).
LEARNING_RATE = 1e-3
#: Training epochs of `fit(epochs=None)` (what Experiment and the dashboard ran before the adapter contract).
EPOCHS = 20
#: `class_weights="auto"`: the estimated target/source class ratios are clipped to this range, so
#: that a class the estimate (nearly) zeroes still pulls a little, and a rare source class does not
#: dominate a batch (a weight of 10 already makes one sample count as ten).
CLASS_WEIGHT_RANGE = (0.1, 10.0)
#: Shrinkage of the estimated target priors towards the source priors (as LabelShiftAdapter's `smoothing`).
PRIOR_SMOOTHING = 1e-3
#: `class_weights="auto"` applies its weights only when two estimators of the target priors that rest on
#: different parts of the source model agree: EM on its calibrated probabilities and BBSE on its hard
#: predictions (confusion matrix). Both assume label shift (p(x|y) unchanged); under a covariate shift
#: strong enough to break that assumption for this model they drift apart (blurred digits, 10 classes:
#: total variation 0.23-0.68) while on a label shift the model still reads they agree (0.00-0.07 on the
#: choosing scenarios, benchmarks/cw_mmd_choice.md). Above this total-variation distance the fit warns and
#: trains unweighted (plain MMD) rather than apply weights from an estimate that contradicts itself. With
#: two classes the two estimators are nearly the same function of the predictions and rarely disagree: the
#: check then guards little.
MAX_PRIOR_DISAGREEMENT = 0.1


# ---------------------------------------------------------------------------------- the loss term
def batch_mmd2(
    source_features: Any, target_features: Any, bandwidth: Any = None, source_weights: Any = None
) -> Any:
    """The MMD^2 term of `MMDAdapter`'s loss on one batch (unbiased; optionally class-weighted on the source side).

    `kernels.mmd2_tensor` on the two feature batches, with `bandwidth=None` resolved by
    `median_bandwidth` on the pooled batch (no gradient through it). With the same bandwidth and no
    weights this is `shiftkit.mmd2(source_features, target_features)` computed in the model's float
    precision.

    With `source_weights` `w` (one non-negative weight per source row, not all zero) the source mean
    embedding is the weighted one, `mu_s = sum_i w_i phi(s_i) / sum_i w_i`, and the estimator is

        sum_{i != j} w_i w_j k(s_i, s_j) / (W^2 - sum_i w_i^2)
        + sum_{a != b} k(t_a, t_b) / (m (m - 1))
        - 2 sum_{i, a} w_i k(s_i, t_a) / (W m),          W = sum_i w_i,

    i.e. the unbiased (U-statistic: diagonal left out) form on both sides, the source side
    self-normalised by its own pair weights. Scaling `w` changes nothing; with all weights equal it
    *is* the unbiased MMD^2_u above; a constant kernel gives exactly 0 (no spurious offset from
    unequal weights, which normalising the source pairs by `n (n - 1)` would leave). Like MMD^2_u it
    can be slightly negative. The median-heuristic bandwidth stays unweighted (pooled batch).

    Args:
        source_features: tensor `(n, d)`, `n >= 2`.
        target_features: tensor `(m, d)`, `m >= 2`.
        bandwidth: None (median heuristic), a positive number, or a 1-D array of them (kernel sum).
        source_weights: None, or a tensor `(n,)` of non-negative weights of the source rows (e.g.
            `alignment_trainer`'s class weights, mean 1 over the batch). Not validated here (a
            loss term inside a compiled step); `MMDAdapter` validates the class weights they come from.

    Returns:
        A scalar tensor, differentiable with respect to the features.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> fs, ft = rng.normal(size=(8, 3)), rng.normal(size=(6, 3)) + 1.0
        >>> plain = float(batch_mmd2(fs, ft, 1.0))
        >>> bool(abs(float(batch_mmd2(fs, ft, 1.0, np.ones(8))) - plain) < 1e-9)
        True
    """

    fs = ops.convert_to_tensor(source_features)
    ft = ops.convert_to_tensor(target_features, dtype=fs.dtype)
    if bandwidth is None:
        bw = kernels.median_bandwidth(ops.concatenate([fs, ft], axis=0))
    else:
        bw = ops.cast(ops.convert_to_tensor(np.asarray(bandwidth, dtype=np.float64).reshape(-1)), fs.dtype)
    if source_weights is None:
        return kernels.mmd2_tensor(fs, ft, bw, "unbiased")
    w = ops.stop_gradient(ops.reshape(ops.cast(ops.convert_to_tensor(source_weights), fs.dtype), (-1,)))
    kss = kernels.gaussian_kernel(fs, fs, bw)
    ktt = kernels.gaussian_kernel(ft, ft, bw)
    kst = kernels.gaussian_kernel(fs, ft, bw)
    total = ops.sum(w)
    pair_weight = ops.maximum(ops.square(total) - ops.sum(ops.square(w)), 1e-12)
    wk = ops.matmul(ops.expand_dims(w, 0), ops.matmul(kss, ops.expand_dims(w, 1)))[0, 0]
    ss = (wk - ops.sum(ops.square(w) * ops.diagonal(kss))) / pair_weight
    m = ops.cast(ops.shape(ft)[0], fs.dtype)
    tt = (ops.sum(ktt) - ops.trace(ktt)) / (m * (m - 1.0))
    st = ops.sum(ops.matmul(ops.expand_dims(w, 0), kst)) / (ops.maximum(total, 1e-12) * m)
    return ss + tt - 2.0 * st


def _check_mmd_weight(value: Any) -> float:
    return check_real(value, "mmd_weight", low=0, example="1.0 (0 trains on the task loss alone)")


def _check_learning_rate(value: Any) -> float:
    return check_real(value, "learning_rate", low=0, low_open=True, example=LEARNING_RATE)


def _check_weight_task(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"weight_task must be True or False; got {value!r}.")
    return bool(value)


def _check_class_weights(value: Any, n_classes: int) -> str | list[float] | None:
    """None, "auto", or one finite, non-negative weight per class (not all zero), as a list of floats."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.lower() == "auto":
            return "auto"
        raise ValueError(
            f"class_weights must be None, 'auto' or one non-negative weight per class ({n_classes} numbers); "
            f"got {value!r}."
        )
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"class_weights must be None, 'auto' or a list of {n_classes} numbers; got {value!r}.")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"class_weights must be None, 'auto' or a list of {n_classes} numbers (one per class); got {value!r}."
        ) from None
    if arr.ndim != 1 or arr.size != n_classes:
        raise ValueError(
            f"class_weights must have one weight per class of the source model ({n_classes}"
            f"{', a single sigmoid/logit unit counts as 2' if n_classes == 2 else ''}); got shape {arr.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"class_weights must be finite; got {arr.tolist()} (class(es) {bad.tolist()}).")
    if np.any(arr < 0) or not np.any(arr > 0):
        raise ValueError(
            f"class_weights must be non-negative and not all zero (a ratio target/source per class); got {arr.tolist()}."
        )
    return [float(v) for v in arr]


def _n_classes(model: Any) -> int:
    n_out, activation = head_config(model)
    return int(loss_for_head(activation, n_out)[1])


@register_adapter
class MMDAdapter(Adapter):
    """Unsupervised domain adaptation: task loss + `mmd_weight` * MMD^2 of source vs target features.

    The whole network (source layers up to `feature_layer`, copied, plus a head copied from the
    source head layer) is trained on labelled source data while the MMD^2 between each batch's source and
    target features is minimised with the same Gaussian-kernel estimator that measures shift
    (`shiftkit.shift.kernels.mmd2_tensor`). Needs no target labels; uses them when given. See the
    module docstring for the objective, the bandwidth, the class weighting and the BatchNorm policy.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: name or index of the layer whose output is the aligned feature space;
            default: the input of the source model's head layer (the features, not the logits).
        mmd_weight: weight of the MMD^2 term, a finite number >= 0 (0: plain task-loss training).
        bandwidth: None for the per-batch median heuristic (on pooled features, no gradient), or a
            positive number or list of numbers fixing the Gaussian bandwidth(s).
        learning_rate: Adam learning rate (default 1e-3).
        class_weights: how source samples are weighted in the MMD^2 term, per class: None
            (default: all alike, plain MMD), "auto" (estimated target / source class ratios,
            clipped to `CLASS_WEIGHT_RANGE`, applied only when the estimate passes its check; `fit`
            then needs `x_source_val` / `y_source_val`, see the module docstring), or one
            non-negative weight per class (2 for a single sigmoid/logit unit), e.g. known ratios
            `q(y) / p(y)`.
        weight_task: with class weights, weight the source samples' task loss by them too (default
            True: the importance-weighted source risk, measured >= unweighted task loss on average).

    Attributes (after `fit`):
        class_weights_: the per-class weights applied, `(k,)`, or None when training was unweighted.
        source_priors_: class proportions of `y_source`.
        target_priors_: with "auto", the estimated target class proportions (EM), else None.
        prior_disagreement_: with "auto", the total variation between the EM and BBSE estimates.

    Raises:
        TypeError / ValueError: a non-model `source_model`, an unknown `feature_layer`, a negative
            or non-finite `mmd_weight`, a non-positive `bandwidth`; `class_weights` that is not
            None / "auto" / one finite non-negative weight per class (not all zero); a non-bool
            `weight_task`.

    Example:
        >>> adapter = MMDAdapter(source_model, mmd_weight=1.0).fit(  # doctest: +SKIP
        ...     x_source, y_source, x_target, epochs=20, seed=0)
        >>> shiftkit.mmd_test(adapter.features(x_source), adapter.features(x_target))  # doctest: +SKIP
        >>> adapter.save("adapted.keras")  # doctest: +SKIP
        >>> weighted = MMDAdapter(source_model, class_weights="auto").fit(  # doctest: +SKIP
        ...     x_source, y_source, x_target, x_source_val=x_val, y_source_val=y_val, seed=0)
        >>> weighted.target_priors_, weighted.class_weights_  # doctest: +SKIP
    """

    name = "mmd"
    title = "MMD: source task loss + feature alignment with unlabelled target data"
    requires = ("x_source", "y_source", "x_target")
    # Held-out source data for class_weights="auto", passed by `fit_data` where the registry knows the
    # extra keys (`EXTRA_DATA_KEYS`).
    uses = ("y_target",) + tuple(k for k in ("x_source_val", "y_source_val")
                                 if k in getattr(_registry, "EXTRA_DATA_KEYS", ()))

    def __init__(
        self,
        source_model: Any,
        *,
        feature_layer: str | int | None = None,
        mmd_weight: float = 1.0,
        bandwidth: float | Sequence[float] | None = None,
        learning_rate: float = LEARNING_RATE,
        class_weights: str | Sequence[float] | None = None,
        weight_task: bool = True,
    ):
        super().__init__(source_model, feature_layer=feature_layer)
        self.mmd_weight = _check_mmd_weight(mmd_weight)
        bw = check_bandwidth(bandwidth)
        self.bandwidth = None if bw is None else (float(bw[0]) if np.ndim(bandwidth) == 0 else bw.tolist())
        self.learning_rate = _check_learning_rate(learning_rate)
        self.class_weights = _check_class_weights(class_weights, _n_classes(self.source_model))
        self.weight_task = _check_weight_task(weight_task)

    def fit(
        self,
        x_source: Any = None,
        y_source: Any = None,
        x_target: Any = None,
        *,
        y_target: Any = None,
        x_source_val: Any = None,
        y_source_val: Any = None,
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
            x_source_val: labelled source inputs *held out* from the source model's training (e.g.
                its validation split), used only by `class_weights="auto"`: the calibration and
                the per-class behaviour of the source model behind the target-prior estimate must
                not come from the data it was trained on (it is overconfident there). Ignored
                otherwise.
            y_source_val: their labels; every class must occur.
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
            Keras `History`; `history_.history` has `loss`, `task_loss`, `mmd2`, `accuracy`), and
            the class weighting: `class_weights_` (the weights applied, None when unweighted),
            `source_priors_` (class proportions of `y_source`), `target_priors_` (the estimated
            target proportions with "auto", else None).

        Raises:
            ValueError / TypeError: invalid data (wrong feature count, NaN or inf, empty, fewer
                than 2 samples in a domain, labels of the wrong length or range) or settings;
                `class_weights="auto"` without `x_source_val` / `y_source_val`, or with a class
                missing from `y_source_val`.
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
        check_batch_per_replica(batch_size, len(xs), len(xt), per_replica=2, purpose="for an unbiased MMD^2")
        learning_rate = self.learning_rate if learning_rate is None else _check_learning_rate(learning_rate)
        seed = check_seed(seed)
        validation_data = self._validation(validation_data)
        mmd_weight = _check_mmd_weight(self.mmd_weight)
        bandwidth = check_bandwidth(self.bandwidth)
        n_classes = _n_classes(self.source_model)
        setting = _check_class_weights(self.class_weights, n_classes)
        weight_task = _check_weight_task(self.weight_task)
        source_priors = np.bincount(ys, minlength=n_classes) / len(ys)
        target_priors = None
        self.prior_estimate_ = self.prior_check_ = self.prior_disagreement_ = None
        if setting == "auto":
            if x_source_val is None or y_source_val is None:
                raise ValueError(
                    "class_weights='auto' estimates the target class proportions from the source model's "
                    "calibrated probabilities, which must come from labelled source data the model did not "
                    "train on: pass x_source_val=..., y_source_val=... (e.g. the source validation split), "
                    "or class_weights=None (unweighted) or explicit weights."
                )
            xv = self._check_x(x_source_val, "x_source_val")
            yv = self._check_y(y_source_val, len(xv), "y_source_val")
            target_priors, disagreement = self._estimate_target_priors(xv, yv, xt, batch_size)
            if disagreement <= MAX_PRIOR_DISAGREEMENT:
                weights = _prior_ratio_weights(target_priors, source_priors)
            else:
                weights = None
                warnings.warn(
                    f"class_weights='auto': the target class proportions cannot be trusted here (EM on the source "
                    f"model's calibrated probabilities and BBSE on its predictions disagree by a total variation of "
                    f"{disagreement:.2f} > {MAX_PRIOR_DISAGREEMENT}: the label-shift assumption behind both fails "
                    "for this model on this target, e.g. under a strong covariate shift), so MMD trains unweighted. "
                    "Pass explicit class_weights if the class proportions are known.",
                    UserWarning,
                    stacklevel=2,
                )
        elif setting is None:
            weights = None
        else:
            weights = np.asarray(setting, dtype=np.float64)

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

        with self._strategy().scope():
            accuracy = accuracy_metric(self.source_model)
            trainer = alignment_trainer(
                self.model_,
                self.base_,
                self.head_,
                loss_fn=loss_fn,
                accuracy=accuracy,
                alignment=lambda fs, ft, source_weights=None: batch_mmd2(fs, ft, bandwidth, source_weights),
                weight=mmd_weight,
                alignment_name="mmd2",
                target_labels=yt is not None,
                class_weights=weights,
                weight_task=weight_task,
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
        self._set_weighting(weights, source_priors, target_priors)
        return self

    # ------------------------------------------------------------------ class weighting
    def _estimate_target_priors(
        self, xv: np.ndarray, yv: np.ndarray, xt: np.ndarray, batch_size: int
    ) -> tuple[np.ndarray, float]:
        """Target class proportions, and how far two estimators of them disagree.

        The estimate is `LabelShiftAdapter`'s: EM after bias-corrected temperature scaling
        (`estimate_target_priors(method="em", calibrate=True)`) on the source model's probabilities
        on the held-out source (calibration, per-class behaviour) and on the target, shrunk by
        `PRIOR_SMOOTHING` towards the held-out source proportions. The check is BBSE on the same
        predictions; the disagreement is the total-variation distance of the two estimates
        (`prior_estimate_`, `prior_check_`, `prior_disagreement_` on the adapter).

        Returns:
            `(priors, disagreement)`.
        """
        bs = max(batch_size, 256)
        p_val = to_probabilities(self.source_model, predict(self.source_model, xv, batch_size=bs))
        p_tgt = to_probabilities(self.source_model, predict(self.source_model, xt, batch_size=bs))
        try:
            estimate = estimate_target_priors(p_val, yv, p_tgt, method="em", calibrate=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a singular confusion matrix is what the check is for
                check = estimate_target_priors(p_val, yv, p_tgt, method="bbse")
        except ValueError as exc:
            raise ValueError(
                f"class_weights='auto' cannot estimate the target class proportions from y_source_val and the "
                f"source model's probabilities on x_source_val / x_target: {exc}"
            ) from exc
        self.prior_estimate_, self.prior_check_ = estimate, check
        self.prior_disagreement_ = float(0.5 * np.abs(estimate.priors - check.priors).sum())
        priors = (1.0 - PRIOR_SMOOTHING) * estimate.priors + PRIOR_SMOOTHING * estimate.source_priors
        return priors / priors.sum(), self.prior_disagreement_

    def _set_weighting(self, weights: Any, source_priors: Any, target_priors: Any) -> None:
        self.class_weights_ = None if weights is None else frozen_array(np.asarray(weights, dtype=np.float64))
        self.source_priors_ = None if source_priors is None else frozen_array(np.asarray(source_priors, np.float64))
        self.target_priors_ = None if target_priors is None else frozen_array(np.asarray(target_priors, np.float64))

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        state = super()._state()

        def plain(arr: Any) -> list[float] | None:
            return None if arr is None else [float(v) for v in arr]

        state.update({
            "mmd_weight": self.mmd_weight,
            "bandwidth": self.bandwidth,
            "learning_rate": self.learning_rate,
            "class_weights": self.class_weights,
            "weight_task": self.weight_task,
            "class_weights_": plain(getattr(self, "class_weights_", None)),
            "source_priors_": plain(getattr(self, "source_priors_", None)),
            "target_priors_": plain(getattr(self, "target_priors_", None)),
            "prior_disagreement_": getattr(self, "prior_disagreement_", None),
        })
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        self.mmd_weight = float(state.get("mmd_weight", 1.0))
        self.bandwidth = state.get("bandwidth")
        self.learning_rate = float(state.get("learning_rate", LEARNING_RATE))
        self.class_weights = state.get("class_weights")  # adapters saved before class weighting: None
        self.weight_task = bool(state.get("weight_task", True))
        self._set_weighting(state.get("class_weights_"), state.get("source_priors_"), state.get("target_priors_"))
        self.prior_disagreement_ = state.get("prior_disagreement_")


def _prior_ratio_weights(target_priors: np.ndarray, source_priors: np.ndarray) -> np.ndarray:
    """`target / source` proportion per class, clipped to `CLASS_WEIGHT_RANGE` (1 for a class absent from the source)."""
    ratio = np.divide(target_priors, source_priors, out=np.ones_like(target_priors), where=source_priors > 0)
    return np.clip(ratio, *CLASS_WEIGHT_RANGE)
