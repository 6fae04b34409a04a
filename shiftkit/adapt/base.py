"""Adapter: the common shape of every shiftkit adapter.

An adapter wraps a *source* `keras.Model` and produces a *target* model. It never changes the source
model: layers are cloned and the source weights copied into the clones (not shared), so training the
target model leaves the source model bit-identical.

Target model layout (built by `build_target_model`):

    inputs -> base (a nested keras.Model: the source layers up to `feature_layer`, weights copied)
           -> head (the one given, or Dense(n_outputs) with the source model's output activation)

The default head starts from the source *head layer*'s weights whenever they fit
(`source_head_weights`): the head layer is the last layer with weights on the way to the output
(`shiftkit._keras.head_layer`), so for `Dense(k) -> Activation("softmax")` (the mixed-precision
pattern) or `Dense(k) -> Softmax()` it is the Dense layer, and the default feature layer is its
input (the features, not the logits). An untrained target model is then the source model itself.

Training (`CopyAdapter`, `FineTuneAdapter`, via `Adapter._train`): with `epochs=None` (the default)
a stratified `VALIDATION_SPLIT` of the labels is held out, training stops once the held-out loss has
not improved by more than `MIN_DELTA` for `PATIENCE` epochs (at most `MAX_EPOCHS`), the best epoch
count is kept, *0 included* (the starting, source-equal model is a candidate, so the selection is
never worse than the start on the held-out part), and the model is trained again on all the labels
for that many epochs. With `validation_data` the same stopping runs on it; an int `epochs` without
it trains exactly that many epochs. The figures behind these defaults: `benchmarks/defaults_choice.md`.

The base is called with `training=False` (unless an adapter asks otherwise, e.g.
`FineTuneAdapter(batch_norm="train")`), so its BatchNormalization layers stay in inference mode
even when their weights are unfrozen for fine-tuning (the recipe of the Keras transfer-learning
guide). `Adapter.features(x)` is the base's output: the embedding in which feature-space shift is
measured before and after adaptation.

Saving: `save(path)` writes one `.keras` file (loadable with `keras.saving.load_model(path,
safe_mode=True)` as a plain model) with a small `shiftkit.json` entry added to the zip that records
the adapter class and its fitted state; `shiftkit.load_adapter(path)` restores the adapter.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import warnings
import zipfile
from typing import Any, ClassVar

import numpy as np

from shiftkit._keras import activation_name, decision_threshold, output_activation, output_layer, predict, to_classes
from shiftkit._validation import check_labels, check_positive_int
from shiftkit.shift.features import check_model_input, head_input, head_of, resolve_layer

from shiftkit.files import check_keras_archive
from shiftkit.adapt.registry import DATA_KEYS, adapter_for_class_name, register_adapter  # noqa: F401 - re-exported

__all__ = [
    "Adapter",
    "AdaptationReport",
    "build_target_model",
    "copy_model",
    "holdout_split",
    "load_adapter",
    "source_head_weights",
    "NotFittedError",
]

_META_NAME = "shiftkit.json"

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


class NotFittedError(ValueError, AttributeError):
    """Raised when an adapter is used before `fit`."""


def _require_model(model: Any, name: str = "source_model") -> Any:
    from shiftkit.shift.features import _require_model as require

    return require(model, name)


def _feature_tensor(model: Any, feature_layer: str | int | None) -> tuple[Any, str]:
    if feature_layer is None:
        return head_input(model), f"input of {head_of(model).name}"
    layer = resolve_layer(model, feature_layer)
    out = layer.output
    return (out[0] if isinstance(out, (list, tuple)) else out), layer.name


def head_config(model: Any) -> tuple[int, str]:
    """(number of outputs, output activation) of a classifier (`shiftkit._keras.output_activation`).

    The activation is the one that produces the outputs: "softmax" for `Dense(k) -> Softmax()` or
    `Dense(k) -> Activation("softmax")` too, "linear" for logits.
    """

    out = model.outputs[0]
    n_outputs = int(out.shape[-1]) if out.shape[-1] is not None else 1
    return n_outputs, output_activation(model)


def source_head_weights(source_model: Any, feature_layer: str | int | None, units: int) -> list[np.ndarray] | None:
    """The source head's weights when a new `Dense(units)` head on `feature_layer` can start from them.

    The new head is `Dense(units, activation=<output activation>)` on the features. It reproduces the
    source model's last step exactly when the source head (`head_of`: the last layer with weights) is
    a Dense layer that (a) reads the same features (`feature_layer` None, or a layer whose output is
    the head's input), (b) has `units` outputs and (c) applies no activation of its own, or the output
    activation itself. Then its kernel and bias are returned (copies); otherwise None (a fresh head).
    """
    import keras


    head = head_of(source_model)
    if not isinstance(head, keras.layers.Dense) or int(head.units) != int(units):
        return None
    if len(head_input(source_model).shape) != 2:  # a Dense over a sequence / image axis: not one step
        return None
    if feature_layer is not None and _feature_tensor(source_model, feature_layer)[0] is not head_input(source_model):
        return None
    if activation_name(getattr(head, "activation", None)) not in ("linear", output_activation(source_model)):
        return None
    weights = head.get_weights()
    if not head.use_bias:
        weights = [weights[0], np.zeros(int(units), dtype=weights[0].dtype)]
    return [np.array(w, copy=True) for w in weights]


def _all_layers(model: Any) -> list[Any]:
    import keras

    out = []
    for layer in model.layers:
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_all_layers(layer))
    return out


def copy_model(model: Any) -> Any:
    """An independent copy of a Keras model: new layers with the same config and copied weights.

    Layers whose state is derived from their weights (a `Normalization` set up with `adapt()`)
    are finalised after the copy, so the copy computes exactly what the original does.
    """
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in _all_layers(clone):
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):
            finalize()
    return clone


def build_target_model(
    source_model: Any,
    *,
    feature_layer: str | int | None = None,
    head: Any = None,
    n_outputs: int | None = None,
    head_init: str = "source",
    name: str = "target_model",
    base_training: bool | None = False,
) -> tuple[Any, Any, Any, str]:
    """Clone the source layers up to `feature_layer`, copy their weights, and add a head.

    The default head is `Dense(n_outputs, activation=<the source's output activation>)`. With
    `head_init="source"` it starts from the source head's kernel and bias when they fit
    (`source_head_weights`), so the target model starts as the source model itself; otherwise (or
    with `head_init="random"`, or a `head` given) it starts from Keras's initialisers.

    Returns:
        `(model, base, head, feature_name)`: the target model, its nested base, its head layer, and
        a description of the feature layer.
    """
    import keras


    source_model = _require_model(source_model)
    head_init = _check_head_init(head_init)
    _feature_tensor(source_model, feature_layer)  # validates the layer before cloning
    clone = copy_model(source_model)
    tensor, feature_name = _feature_tensor(clone, feature_layer)
    base = keras.Model(clone.inputs, tensor, name="base")
    src_outputs, activation = head_config(source_model)
    start = None
    if head is None:
        units = src_outputs if n_outputs is None else check_positive_int(n_outputs, "n_outputs")
        # The output layer's dtype policy: float32 after a mixed-precision body (Keras's advice).
        head = keras.layers.Dense(units, activation=activation, name="head", dtype=output_layer(source_model).dtype_policy)
        if head_init == "source":
            start = source_head_weights(source_model, feature_layer, units)
    elif not isinstance(head, keras.layers.Layer):
        raise TypeError(
            f"head must be a keras layer (or a keras.Model/Sequential used as one); got {type(head).__name__}."
        )
    else:
        # A fresh copy from the config: a refit, or a second adapter given the same head object,
        # never starts from (or shares) already-trained head weights.
        try:
            head = type(head).from_config(head.get_config())
        except Exception:  # noqa: BLE001 - a layer that cannot round-trip its config is used as given
            pass
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"input_{i}") for i, t in enumerate(clone.inputs)]
    # training=False (default): BatchNormalization and Dropout of the base always run in inference mode;
    # None: they follow the caller (training mode inside `fit`, as in a plain Keras fine-tune).
    features = base(inputs[0] if len(inputs) == 1 else inputs, training=base_training)
    if len(features.shape) > 2:
        features = keras.layers.Flatten(name="flatten_features")(features)
    outputs = head(features)
    if start is not None:
        head.set_weights(start)
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=name)
    return model, base, head, feature_name


def _check_head_init(head_init: Any) -> str:
    if head_init not in ("source", "random"):
        raise ValueError(
            "head_init must be 'source' (start the new head from the source head's weights when they "
            f"fit) or 'random' (Keras's initialisers). Received: head_init={head_init!r}."
        )
    return head_init


def loss_for_head(activation: str, n_outputs: int) -> tuple[Any, int]:
    """The training loss matching an output head, and the number of classes it implies."""
    import keras

    if n_outputs == 1:
        if activation == "sigmoid":
            return keras.losses.BinaryCrossentropy(), 2
        return keras.losses.BinaryCrossentropy(from_logits=True), 2
    if activation == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(), n_outputs
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), n_outputs


def class_weights(y: np.ndarray, class_weight: Any, n_classes: int) -> dict[int, float] | None:
    """Resolve `class_weight`: None, a dict, or "balanced" (scikit-learn's formula)."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, a dict or 'balanced'; got {class_weight!r}.")
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        weights = compute_class_weight("balanced", classes=present, y=y)
        out = {int(k): 1.0 for k in range(n_classes)}
        out.update({int(k): float(w) for k, w in zip(present, weights)})
        return out
    if isinstance(class_weight, dict):
        return {int(k): float(v) for k, v in class_weight.items()}
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
             shuffle: bool = False) -> Any:
    """A cached `tf.data.Dataset` of `(x, y[, sample_weight])` batches, reshuffled every epoch.

    Keras's own array input rebuilds its pipeline every epoch: on the few hundred samples adapters
    train on, that overhead (about 0.1 s per epoch, more with validation data) dwarfs the training.
    The shuffle is seeded by Keras's global seed (`keras.utils.set_random_seed`).
    """
    import tensorflow as tf

    items = (x, y) if sample_weight is None else (x, y, np.asarray(sample_weight, dtype="float32"))
    ds = tf.data.Dataset.from_tensor_slices(items).cache()
    if shuffle:
        ds = ds.shuffle(len(x), reshuffle_each_iteration=True)
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


def _keep_best(start_loss: float, start_weights: list, patience: int) -> Any:
    """A callback: stop after `patience` epochs without a lower `val_loss`; keep the best weights (start included)."""
    import keras

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
    import keras

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


class AdaptationReport:
    """Shift before (source model's features) and after (adapted model's features), side by side.

    Attributes:
        before: `ShiftReport` measured with the source model.
        after: `ShiftReport` measured with the adapted model.
        comparison: `ShiftComparison` of the two.
        accuracy_before / accuracy_after: target accuracy of the source / adapted model when target
            labels were given, else None.
    """

    def __init__(self, before: Any, after: Any, accuracy_before: float | None, accuracy_after: float | None):
        from shiftkit.shift.report import compare

        self.before = before
        self.after = after
        self.comparison = compare(before, after)
        self.accuracy_before = accuracy_before
        self.accuracy_after = accuracy_after

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.to_dict(include_null=False),
            "after": self.after.to_dict(include_null=False),
            "comparison": self.comparison.to_dict(),
            "target_accuracy_before": self.accuracy_before,
            "target_accuracy_after": self.accuracy_after,
        }

    def __str__(self) -> str:
        text = str(self.comparison)
        if self.accuracy_before is not None:
            text += f"\n{'target accuracy':<34}{self.accuracy_before:>12.4g}{self.accuracy_after:>12.4g}" \
                    f"{self.accuracy_after - self.accuracy_before:>12.4g}  higher"
        return text


class Adapter:
    """Base class of shiftkit adapters: the contract every adapter keeps.

    * **Construction** holds every setting, with its default defined once, on the class
      (`__init__(source_model, *, ...)`, each argument stored under its own name):
      `get_config()` returns them and `cls.from_config(config, source_model)` rebuilds the adapter
      (scikit-learn's `get_params` / `clone`, Keras's `get_config` / `from_config`).
    * **`fit`** takes the same data keywords in every adapter, `x_source`, `y_source` (labelled
      source data), `x_target` and `y_target` (target inputs, and their labels where there are
      some), plus training options; data an adapter does not use is accepted and ignored. Each
      class declares what it needs: `requires` (a `ValueError` names what is missing, see
      `check_fit_data`), `uses` (optional data it uses when given) and `source_data` ("train", or
      "held_out": labelled source data the model did not train on).
    * **Registry**: `name` (short, e.g. "copy") and `title` (for menus);
      `shiftkit.adapt.registry.register_adapter` lists the class for `Experiment`, the dashboard
      and `load_adapter`.

    After fitting, `model_` is the adapted `keras.Model`, exposed as `.model`.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: name or index of the layer whose output is the feature space; default: the
            input of the output head.
    """

    #: Short registry name ("copy", "finetune", ...); set by every registered subclass.
    name: ClassVar[str] = ""
    #: One line for menus and reports.
    title: ClassVar[str] = ""
    #: Data keywords `fit` cannot do without (among `DATA_KEYS`).
    requires: ClassVar[tuple[str, ...]] = ()
    #: Data keywords `fit` uses when they are given.
    uses: ClassVar[tuple[str, ...]] = ()
    #: Which labelled source data `x_source`/`y_source` must be: "train" or "held_out".
    source_data: ClassVar[str] = "train"
    #: What each data keyword is, for the messages of `check_fit_data`.
    _DATA_HELP: ClassVar[dict[str, str]] = {
        "x_source": "labelled source inputs",
        "y_source": "their labels",
        "x_target": "target inputs",
        "y_target": "labels of the target inputs",
    }

    def __init__(self, source_model: Any, *, feature_layer: str | int | None = None):
        self.source_model = _require_model(source_model)
        self.feature_layer = feature_layer
        _feature_tensor(self.source_model, feature_layer)  # fail at construction on a bad layer

    # ------------------------------------------------------------------ the contract
    @classmethod
    def check_fit_data(cls, **data: Any) -> None:
        """Raise a `ValueError` naming every data keyword in `requires` that is missing (None) in `data`."""
        missing = [k for k in cls.requires if data.get(k) is None]
        if not missing:
            return
        what = ", ".join(f"{k} ({cls._DATA_HELP[k]})" for k in missing)
        held = (" The source data must be held out from the model's training (e.g. a validation split)."
                if cls.source_data == "held_out" and ("x_source" in missing or "y_source" in missing) else "")
        hint = ""
        if "y_target" in missing:
            hint = " Without target labels use an adapter that does not require them (e.g. 'mmd' or 'label_shift')."
        raise ValueError(
            f"{cls.__name__}.fit needs {', '.join(cls.requires)}; missing: {what}. "
            f"Pass {', '.join(f'{k}=...' for k in missing)}.{held}{hint}"
        )

    @classmethod
    def _init_parameters(cls) -> list[str]:
        return [
            p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in ("self", "source_model") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (without `source_model`), enough to re-create this adapter.

        A Keras layer given as `head` is included as its Keras config (`keras.saving.serialize_keras_object`).

        Raises:
            TypeError: a subclass does not store a constructor argument under its own name.
        """
        import keras

        config: dict[str, Any] = {}
        for name in self._init_parameters():
            if not hasattr(self, name):
                raise TypeError(
                    f"{type(self).__name__} does not store its constructor argument {name!r} as an attribute, "
                    "so it cannot be re-created from its config. Store every __init__ argument under its own name."
                )
            value = getattr(self, name)
            if isinstance(value, keras.layers.Layer):
                value = keras.saving.serialize_keras_object(value)
            config[name] = value
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], source_model: Any) -> Adapter:
        """A new, unfitted adapter on `source_model` with the settings of `config` (from `get_config`)."""
        import keras

        config = dict(config)
        if isinstance(config.get("head"), dict):
            config["head"] = keras.saving.deserialize_keras_object(config["head"])
        unknown = set(config) - set(cls._init_parameters())
        if unknown:
            raise ValueError(f"{cls.__name__} has no setting(s) {sorted(unknown)}; known: {cls._init_parameters()}.")
        return cls(source_model, **config)

    # ------------------------------------------------------------------ fitted state
    def _check_fitted(self) -> None:
        if getattr(self, "model_", None) is None:
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet. Call fit(...) before using it."
            )

    @property
    def model(self) -> Any:
        """The adapted model: a plain `keras.Model`."""
        self._check_fitted()
        return self.model_

    @property
    def history(self) -> dict[str, list]:
        """Per-epoch training record: a dict of equal-length lists (`pandas.DataFrame(history)` plots it)."""
        self._check_fitted()
        hist = getattr(self, "history_", None)
        if hist is None:
            return {}
        return dict(hist.history) if hasattr(hist, "history") else dict(hist)

    @property
    def base_model(self) -> Any:
        """The feature extractor of the adapted model."""
        self._check_fitted()
        return self.base_

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _strategy() -> Any:
        """The active `tf.distribute` strategy (the default one when none was entered)."""
        import tensorflow as tf

        return tf.distribute.get_strategy()

    def _check_x(self, x: Any, name: str = "x") -> np.ndarray:
        return check_model_input(self.source_model, x, name)

    def _check_y(self, y: Any, n: int, name: str = "y") -> np.ndarray:
        n_out, act = head_config(self.source_model if getattr(self, "model_", None) is None else self.model_)
        _, n_classes = loss_for_head(act, n_out)
        labels = check_labels(y, name, n_classes=n_classes)
        if len(labels) != n:
            raise ValueError(f"{name} has {len(labels)} labels but there are {n} samples; pass one label per sample.")
        return labels

    def _build(self, *, head: Any = None, n_outputs: int | None = None, head_init: str = "source",
               base_training: bool | None = False) -> None:
        """Create `model_`, `base_`, `head_` under the active distribution strategy.

        Sets `head_initialised_from_source_`: True when the head starts from the source head's weights.
        """
        with self._strategy().scope():
            self.model_, self.base_, self.head_, self.feature_name_ = build_target_model(
                self.source_model,
                feature_layer=self.feature_layer,
                head=head,
                n_outputs=n_outputs,
                head_init=head_init,
                name=f"{type(self).__name__.lower()}_model",
                base_training=base_training,
            )
        units = int(self.model_.outputs[0].shape[-1] or 1)
        self.head_initialised_from_source_ = bool(
            head is None
            and head_init == "source"
            and source_head_weights(self.source_model, self.feature_layer, units) is not None
        )

    def _validation(self, validation_data: Any) -> Any:
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (x_val, y_val).")
        xv = self._check_x(validation_data[0], "validation_data[0]")
        return xv, self._check_y(validation_data[1], len(xv), "validation_data[1]")

    def _targets(self, y: np.ndarray) -> np.ndarray:
        """Labels in the form the model's loss expects (a float column for a single output unit)."""
        n_out = int(self.model_.outputs[0].shape[-1] or 1)
        return y.reshape(-1, 1).astype("float32") if n_out == 1 else y

    def _compile(self, learning_rate: float, loss: Any = None) -> None:
        """Compile `model_` with Adam (trainable flags take effect here), its loss and accuracy."""
        import keras


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
        self._compile(learning_rate, loss)
        cbs = list(callbacks or [])
        keeper = None
        val = None if validation_data is None else _dataset(validation_data[0], self._targets(validation_data[1]))
        if val is not None and patience is not None:
            start = self.model_.evaluate(val, verbose=0, return_dict=True)
            keeper = _keep_best(float(start["loss"]), self.model_.get_weights(), patience)
            cbs.append(keeper)
        if epochs == 0:
            return {}, 0
        _, n_classes = loss_for_head(*reversed(head_config(self.model_)))
        weights = class_weights(y, class_weight, n_classes)
        if weights is not None:
            per_class = np.array([weights.get(int(k), 1.0) for k in y], dtype="float32")
            sample_weight = per_class if sample_weight is None else per_class * sample_weight
        hist = self.model_.fit(
            _dataset(x, self._targets(y), sample_weight, batch_size=batch_size, shuffle=True),
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
        """
        callbacks = _callback_list(callbacks)
        batch_size = check_positive_int(batch_size, "batch_size")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype="float32").reshape(-1)
            if len(sample_weight) != len(x):
                raise ValueError(f"sample_weight has {len(sample_weight)} entries but x has {len(x)} samples.")
        common = {"batch_size": batch_size, "class_weight": class_weight, "callbacks": callbacks, "verbose": verbose}
        records: list[dict[str, list]] = []

        self.guard_: dict[int, dict[str, float | bool]] = {}

        def run(stage_list, xs, ys, sw, val, phase, stop):
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
        self.history_ = _concat_records(records)
        self.best_stage_ = max((st for st, n in self.epochs_.items() if n > 0), default=None)
        stages_run, phases = self.history_.get("stage", []), self.history_.get("phase", [])
        self.best_epoch_ = None  # the row of history_ whose weights the model has (None: the start)
        if self.best_stage_ is not None:
            if self.validation_mode_ in ("fixed", "holdout+refit"):
                self.best_epoch_ = len(stages_run) - 1
            else:
                first = next(i for i, (st, ph) in enumerate(zip(stages_run, phases))
                             if st == self.best_stage_ and ph in ("fit", "select"))
                self.best_epoch_ = first + self.epochs_[self.best_stage_] - 1

    # ------------------------------------------------------------------ public API
    def sample_losses(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """Per-sample training loss of `model_` (the head's cross-entropy) on checked `x`, `y`."""
        import keras

        n_out, act = head_config(self.model_)
        loss, _ = loss_for_head(act, n_out)
        out = predict(self.model_, x, batch_size=batch_size)
        values = loss.call(keras.ops.convert_to_tensor(self._targets(y)), keras.ops.convert_to_tensor(out))
        return np.asarray(keras.ops.convert_to_numpy(values), dtype="float64").reshape(len(x))

    def features(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """The embedding of `x` in the adapted model's feature space, shape `(n, d)`."""
        self._check_fitted()
        arr = self._check_x(x)
        out = predict(self.base_, arr, batch_size=batch_size)
        return np.asarray(out, dtype=np.float64).reshape(len(arr), -1)

    def predict(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """The adapted model's outputs (probabilities for a softmax/sigmoid head)."""
        self._check_fitted()
        return np.asarray(predict(self.model_, self._check_x(x), batch_size=batch_size))

    def predict_classes(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """Predicted class indices."""
        return self._classes(self.predict(x, batch_size=batch_size))

    def _classes(self, out: np.ndarray) -> np.ndarray:
        """Class indices from the model's outputs (`shiftkit._keras.to_classes`: threshold or argmax)."""

        return to_classes(self.model_, out)

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 256) -> dict[str, float]:
        """Accuracy and loss of the adapted model on labelled data."""
        self._check_fitted()
        arr = self._check_x(x)
        labels = self._check_y(y, len(arr))
        out = self.predict(arr, batch_size=batch_size)
        pred = self._classes(out)
        n_out, act = head_config(self.model_)  # the loss reads logits or probabilities accordingly
        loss_fn, _ = loss_for_head(act, n_out)
        target = labels.reshape(-1, 1).astype("float32") if n_out == 1 else labels
        loss = float(np.asarray(loss_fn(target, out.astype("float32"))))
        return {"accuracy": float(np.mean(pred == labels)), "loss": loss}

    def shift_report(
        self,
        x_source: Any,
        x_target: Any,
        y_source: Any = None,
        y_target: Any = None,
        **kwargs: Any,
    ) -> AdaptationReport:
        """Shift before (source model) and after (adapted model), side by side.

        Args:
            x_source, x_target, y_source, y_target: as in `shiftkit.shift_report`.
            **kwargs: passed to `shiftkit.shift_report` (n_permutations, alpha, seed, ...).

        Returns:
            An `AdaptationReport`.
        """
        from shiftkit.shift.report import shift_report

        self._check_fitted()
        if getattr(self, "source_missing_", False):
            raise ValueError(
                "This adapter was loaded without its source model, so there is no 'before' to compare "
                "with. Load it with shiftkit.load_adapter(path, source_model=original_model)."
            )
        before = shift_report(
            x_source, x_target, y_source, y_target, model=self.source_model, layer=self.feature_layer, **kwargs
        )
        after = shift_report(x_source, x_target, y_source, y_target, model=self.model_, **kwargs)
        acc_before = acc_after = None
        if y_target is not None:
            xt = self._check_x(x_target, "x_target")
            yt = self._check_y(y_target, len(xt), "y_target")
            src_cls = to_classes(self.source_model, predict(self.source_model, xt))
            acc_before = float(np.mean(src_cls == yt))
            acc_after = float(np.mean(self.predict_classes(xt) == yt))
        return AdaptationReport(before, after, acc_before, acc_after)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        """JSON-ready fitted state beyond the weights; subclasses extend it."""
        return {"feature_layer": self.feature_layer}

    def _restore(self, state: dict[str, Any]) -> None:
        self.feature_layer = state.get("feature_layer")

    def save(self, path: str | os.PathLike) -> str:
        """Save the adapted model to a `.keras` file (with the adapter's state inside)."""
        self._check_fitted()
        path = os.fspath(path)
        if not path.endswith(".keras"):
            raise ValueError(f"path must end with '.keras' (the Keras v3 format); got {path!r}.")
        self.model_.save(path)
        meta = {"adapter": type(self).__name__, "state": self._state(), "shiftkit_format": 1}
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(_META_NAME, json.dumps(meta))
        return path


def load_adapter(path: str | os.PathLike, *, source_model: Any = None, max_bytes: int | None = None) -> Adapter:
    """Load an adapter saved with `Adapter.save` (the model is loaded with `safe_mode=True`).

    Before Keras opens the archive, its members' uncompressed sizes are checked against `max_bytes`
    (`shiftkit.files.check_keras_archive`; default limit: `shiftkit.files.max_bytes_limit()`), so
    a small crafted file cannot expand to gigabytes while loading.

    The returned adapter predicts, evaluates and extracts features like the saved one. The original
    source model is not stored in the file: pass it as `source_model` to get "before" figures from
    `shift_report`; without it, `shift_report` refuses rather than compare the adapted model with itself.

    Raises:
        ValueError: the file is missing, not a `.keras` file, not written by `Adapter.save`, or
            larger than `max_bytes` once decompressed.
    """
    import keras

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No adapter file at {path!r}. Pass the path given to Adapter.save().")
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(_META_NAME))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise ValueError(
            f"{path!r} is not a shiftkit adapter file (a .keras zip with a {_META_NAME} entry). "
            "For a plain Keras model use keras.saving.load_model(path, safe_mode=True)."
        ) from None
    cls = adapter_for_class_name(str(meta.get("adapter")))
    if cls is None:
        raise ValueError(f"{path!r} holds an unknown adapter type {meta.get('adapter')!r}.")
    check_keras_archive(path, max_bytes=max_bytes)  # a decompression bomb fails here, unread
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # corrupt or unsafe file: never a raw traceback
        raise ValueError(f"Could not load the Keras model in {path!r}: {exc}") from None
    adapter = cls.__new__(cls)
    adapter.source_model = model if source_model is None else _require_model(source_model)
    adapter.source_missing_ = source_model is None
    adapter.model_ = model
    adapter.base_ = model.get_layer("base")
    adapter.head_ = model.layers[-1]
    adapter._restore(meta.get("state", {}))
    adapter.feature_layer = None  # the saved model's own head input
    return adapter
