"""Adapter: the common shape of every shiftkit adapter.

An adapter wraps a *source* `keras.Model` and produces a *target* model. It never changes the source
model: layers are cloned and the source weights copied into the clones (not shared), so training the
target model leaves the source model bit-identical.

Target model layout (built by `build_target_model`):

    inputs -> base (a nested keras.Model: the source layers up to `feature_layer`, weights copied)
           -> head (new: the one given, or Dense(n_outputs) with the source head's activation)

The base is called with `training=False`, so its BatchNormalization layers stay in inference mode
even when their weights are unfrozen for fine-tuning (the recipe of the Keras transfer-learning
guide). `Adapter.features(x)` is the base's output: the embedding in which feature-space shift is
measured before and after adaptation.

Saving: `save(path)` writes one `.keras` file (loadable with `keras.saving.load_model(path,
safe_mode=True)` as a plain model) with a small `shiftkit.json` entry added to the zip that records
the adapter class and its fitted state; `shiftkit.load_adapter(path)` restores the adapter.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from shiftkit._validation import check_labels, check_positive_int
from shiftkit.shift.features import check_model_input, head_input, resolve_layer

__all__ = ["Adapter", "AdaptationReport", "build_target_model", "copy_model", "load_adapter", "NotFittedError"]

_META_NAME = "shiftkit.json"
_ADAPTERS: dict[str, type] = {}


class NotFittedError(ValueError, AttributeError):
    """Raised when an adapter is used before `fit`."""


def register_adapter(cls: type) -> type:
    """Class decorator: make an adapter class restorable by `load_adapter`."""
    _ADAPTERS[cls.__name__] = cls
    return cls


def _require_model(model: Any, name: str = "source_model") -> Any:
    from shiftkit.shift.features import _require_model as require

    return require(model, name)


def _feature_tensor(model: Any, feature_layer: str | int | None) -> tuple[Any, str]:
    if feature_layer is None:
        head = model.outputs[0]._keras_history[0]
        return head_input(model), f"input of {head.name}"
    layer = resolve_layer(model, feature_layer)
    out = layer.output
    return (out[0] if isinstance(out, (list, tuple)) else out), layer.name


def _output_layer(model: Any) -> Any:
    """The layer producing the model's first output, looking inside nested models."""
    import keras

    layer = model.outputs[0]._keras_history[0]
    while isinstance(layer, keras.Model):
        layer = layer.outputs[0]._keras_history[0] if layer.outputs else layer.layers[-1]
    return layer


def head_config(model: Any) -> tuple[int, str]:
    """(number of outputs, activation name) of the model's output layer (inside a nested head too)."""
    import keras

    out = model.outputs[0]
    n_outputs = int(out.shape[-1]) if out.shape[-1] is not None else 1
    layer = _output_layer(model)
    activation = getattr(layer, "activation", None)
    name = keras.activations.serialize(activation) if activation is not None else "linear"
    if isinstance(name, dict):
        name = name.get("config", {}).get("name", "linear") if "config" in name else "linear"
    return n_outputs, str(name)


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
    name: str = "target_model",
) -> tuple[Any, Any, Any, str]:
    """Clone the source layers up to `feature_layer`, copy their weights, and add a head.

    Returns:
        `(model, base, head, feature_name)`: the target model, its nested base, its head layer, and
        a description of the feature layer.
    """
    import keras

    source_model = _require_model(source_model)
    _feature_tensor(source_model, feature_layer)  # validates the layer before cloning
    clone = copy_model(source_model)
    tensor, feature_name = _feature_tensor(clone, feature_layer)
    base = keras.Model(clone.inputs, tensor, name="base")
    src_outputs, activation = head_config(source_model)
    if head is None:
        units = src_outputs if n_outputs is None else check_positive_int(n_outputs, "n_outputs")
        head = keras.layers.Dense(units, activation=activation, name="head")
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
    features = base(inputs[0] if len(inputs) == 1 else inputs, training=False)
    if len(features.shape) > 2:
        features = keras.layers.Flatten(name="flatten_features")(features)
    outputs = head(features)
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs, name=name)
    return model, base, head, feature_name


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
    """Base class of shiftkit adapters.

    Subclasses implement `fit`. After fitting, `model_` is the adapted `keras.Model`, exposed as
    `.model`.

    Args:
        source_model: a built, trained `keras.Model` (never modified).
        feature_layer: name or index of the layer whose output is the feature space; default: the
            input of the output head.
    """

    def __init__(self, source_model: Any, *, feature_layer: str | int | None = None):
        self.source_model = _require_model(source_model)
        self.feature_layer = feature_layer
        _feature_tensor(self.source_model, feature_layer)  # fail at construction on a bad layer

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

    def _build(self, *, head: Any = None, n_outputs: int | None = None) -> None:
        """Create `model_`, `base_`, `head_` under the active distribution strategy."""
        with self._strategy().scope():
            self.model_, self.base_, self.head_, self.feature_name_ = build_target_model(
                self.source_model,
                feature_layer=self.feature_layer,
                head=head,
                n_outputs=n_outputs,
                name=f"{type(self).__name__.lower()}_model",
            )

    def _validation(self, validation_data: Any) -> Any:
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (x_val, y_val).")
        xv = self._check_x(validation_data[0], "validation_data[0]")
        return xv, self._check_y(validation_data[1], len(xv), "validation_data[1]")

    def _compile_and_fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        learning_rate: float,
        epochs: int,
        batch_size: int,
        validation_data: Any = None,
        class_weight: Any = None,
        sample_weight: Any = None,
        callbacks: Any = None,
        verbose: Any = "auto",
        loss: Any = None,
    ) -> Any:
        """Compile `model_` (trainable flags take effect here) and train it. Returns the History."""
        import keras

        n_out, act = head_config(self.model_)
        default_loss, n_classes = loss_for_head(act, n_out)
        with self._strategy().scope():
            self.model_.compile(
                optimizer=keras.optimizers.Adam(learning_rate),
                loss=loss or default_loss,
                metrics=["accuracy" if n_out > 1 else keras.metrics.BinaryAccuracy(name="accuracy",
                                                                                   threshold=0.5 if act == "sigmoid" else 0.0)],
            )
        target = y.reshape(-1, 1).astype("float32") if n_out == 1 else y
        if validation_data is not None and n_out == 1:
            validation_data = (validation_data[0], validation_data[1].reshape(-1, 1).astype("float32"))
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype="float32").reshape(-1)
            if len(sample_weight) != len(x):
                raise ValueError(
                    f"sample_weight has {len(sample_weight)} entries but x has {len(x)} samples."
                )
        return self.model_.fit(
            x,
            target,
            validation_data=validation_data,
            epochs=check_positive_int(epochs, "epochs"),
            batch_size=check_positive_int(batch_size, "batch_size"),
            class_weight=class_weights(y, class_weight, n_classes),
            sample_weight=sample_weight,
            callbacks=callbacks,
            verbose=verbose,
        )

    # ------------------------------------------------------------------ public API
    def features(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """The embedding of `x` in the adapted model's feature space, shape `(n, d)`."""
        self._check_fitted()
        arr = self._check_x(x)
        out = self.base_.predict(arr, batch_size=batch_size, verbose=0)
        return np.asarray(out, dtype=np.float64).reshape(len(arr), -1)

    def predict(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """The adapted model's outputs (probabilities for a softmax/sigmoid head)."""
        self._check_fitted()
        return np.asarray(self.model_.predict(self._check_x(x), batch_size=batch_size, verbose=0))

    def predict_classes(self, x: Any, *, batch_size: int = 256) -> np.ndarray:
        """Predicted class indices."""
        return self._classes(self.predict(x, batch_size=batch_size))

    def _classes(self, out: np.ndarray) -> np.ndarray:
        """Class indices from the model's outputs (a threshold for a single sigmoid/logit unit)."""
        if out.ndim == 1 or out.shape[-1] == 1:
            n_out, act = head_config(self.model_)
            thr = 0.5 if act == "sigmoid" else 0.0
            return (out.reshape(-1) > thr).astype(np.int64)
        return out.argmax(axis=-1)

    def evaluate(self, x: Any, y: Any, *, batch_size: int = 256) -> dict[str, float]:
        """Accuracy and loss of the adapted model on labelled data."""
        self._check_fitted()
        arr = self._check_x(x)
        labels = self._check_y(y, len(arr))
        probs = self.predict(arr, batch_size=batch_size)
        pred = self._classes(probs)
        n_out, act = head_config(self.model_)
        loss_fn, _ = loss_for_head(act, n_out)
        target = labels.reshape(-1, 1).astype("float32") if n_out == 1 else labels
        loss = float(np.asarray(loss_fn(target, probs.astype("float32"))))
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
            src_pred = self.source_model.predict(xt, verbose=0)
            if src_pred.ndim == 1 or src_pred.shape[-1] == 1:
                _, act = head_config(self.source_model)
                src_cls = (src_pred.reshape(-1) > (0.5 if act == "sigmoid" else 0.0)).astype(np.int64)
            else:
                src_cls = src_pred.argmax(axis=-1)
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


def load_adapter(path: str | os.PathLike, *, source_model: Any = None) -> Adapter:
    """Load an adapter saved with `Adapter.save` (the model is loaded with `safe_mode=True`).

    The returned adapter predicts, evaluates and extracts features like the saved one. The original
    source model is not stored in the file: pass it as `source_model` to get "before" figures from
    `shift_report`; without it, `shift_report` refuses rather than compare the adapted model with itself.

    Raises:
        ValueError: the file is missing, not a `.keras` file, or not written by `Adapter.save`.
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
    cls = _ADAPTERS.get(meta.get("adapter"))
    if cls is None:
        raise ValueError(f"{path!r} holds an unknown adapter type {meta.get('adapter')!r}.")
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
