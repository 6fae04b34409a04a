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

Training (`CopyAdapter`, `FineTuneAdapter`, via `shiftkit.adapt.training.StagedTraining._train`): with `epochs=None` (the default)
a stratified `VALIDATION_SPLIT` of the labels is held out, training stops once the held-out loss has
not improved by more than `MIN_DELTA` for `PATIENCE` epochs (at most `MAX_EPOCHS`), the best epoch
count is kept, *0 included* (the starting, source-equal model is a candidate, so the selection is
never worse than the start on the held-out part), and the model is trained again on all the labels
for that many epochs. With `validation_data` the same stopping runs on it; an int `epochs` without
it trains exactly that many epochs. The figures behind these defaults: `benchmarks/defaults_choice.md`.

The base runs in inference mode (wrapped in `shiftkit._keras.InferenceMode`: a nested model's
`training=False` alone does not hold in Keras 3), unless an adapter asks otherwise (e.g.
`FineTuneAdapter(batch_norm="train")`), so its BatchNormalization and Dropout layers stay in inference mode
even when their weights are unfrozen for fine-tuning (the recipe of the Keras transfer-learning
guide). `Adapter.features(x)` is the base's output: the embedding in which feature-space shift is
measured before and after adaptation.

Saving: `save(path)` writes one `.keras` file with a small `shiftkit.json` entry added to the zip
that records the adapter class and its fitted state; `shiftkit.load_adapter(path)` restores the
adapter. The model in it is made of plain Keras layers (`plain_model`), so
`keras.saving.load_model(path, safe_mode=True)` loads it without shiftkit, except a
`LabelShiftAdapter`'s, whose `PriorCorrection` layer is shiftkit's (`import shiftkit` first).
"""

from __future__ import annotations

import inspect
import json
import os
import zipfile
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from shiftkit._keras import InferenceMode, predict, producing_layer, to_classes, unwrap
from shiftkit._validation import check_labels, check_positive_int
from shiftkit.shift.features import check_model_input, head_of
from shiftkit.shift.report import compare, shift_report

from shiftkit.files import load_model_path
from shiftkit.adapt.registry import adapter_for_class_name, register_adapter  # noqa: F401 - register_adapter re-exported
from shiftkit.adapt.target_model import (  # noqa: F401 - build_target_model, copy_model, source_head_weights re-exported
    _build_target_model,
    _feature_tensor,
    _head_activation,
    _require_model,
    build_target_model,
    copy_model,
    head_config,
    source_head_chain,
    source_head_weights,
)
from shiftkit.adapt.training import holdout_split, loss_for_head  # noqa: F401 - holdout_split re-exported

__all__ = [
    "Adapter",
    "AdaptationReport",
    "build_target_model",
    "check_adapter_labels",
    "copy_model",
    "holdout_split",
    "load_adapter",
    "source_head_weights",
    "NotFittedError",
]

_META_NAME = "shiftkit.json"

class NotFittedError(ValueError, AttributeError):
    """Raised when an adapter is used before `fit`."""


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
        already = "target accuracy" in {row.figure for row in self.comparison.rows}  # compare() measured it
        if self.accuracy_before is not None and not already:
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
    #: Whether front ends list it by default (`Experiment(adapters=None)`); False for "auto".
    in_default_list: ClassVar[bool] = True
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
    def supports(cls, source_model: Any, feature_layer: str | int | None = None) -> bool:
        """Whether this adapter can adapt `source_model` at all (e.g. `BatchNormAdapter` needs BN layers).

        `Experiment`'s default list and the dashboard skip an adapter that does not, saying why.
        """
        return True

    @classmethod
    def reports_progress(cls) -> bool:
        """Whether `fit` takes a `progress(i, n, name)` callback (the automatic choice does, per candidate)."""
        return "progress" in inspect.signature(cls.fit).parameters

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every setting of the constructor (`source_model` aside) with its default, in signature order.

        Example:
            >>> from shiftkit.adapt import CopyAdapter
            >>> CopyAdapter.default_config()["learning_rate"]
            0.003
        """
        return {
            p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.name not in ("self", "source_model") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    @classmethod
    def _init_parameters(cls) -> list[str]:
        return list(cls.default_config())

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (without `source_model`), enough to re-create this adapter.

        A Keras layer given as `head` is included as its Keras config (`keras.saving.serialize_keras_object`).

        Raises:
            TypeError: a subclass does not store a constructor argument under its own name.
        """

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

        return tf.distribute.get_strategy()

    def _check_x(self, x: Any, name: str = "x") -> np.ndarray:
        return check_model_input(self.source_model, x, name)

    def _check_y(self, y: Any, n: int, name: str = "y", *, n_outputs: int | None = None,
                 activation: str | None = None) -> np.ndarray:
        """`y` as class indices of the model's outputs, one per sample (`check_adapter_labels`).

        Args:
            y: the labels. n: the number of samples they label. name: the argument's name.
            n_outputs, activation: the head they train (default: the fitted model's, else the
                source model's); `n_outputs=0`: a head not built yet, whose range is checked
                once it is (`StagedTraining._compile_and_fit`).
        """
        model = self.source_model if getattr(self, "model_", None) is None else self.model_
        n_out, act = head_config(model)
        if n_outputs is not None:
            n_out, act = int(n_outputs), (act if activation is None else activation)
        labels = check_adapter_labels(y, name, n_out or None, act)
        if len(labels) != n:
            raise ValueError(f"{name} has {len(labels)} labels but there are {n} samples; pass one label per sample.")
        return labels

    def _planned_head(self, head: Any, n_outputs: int | None) -> tuple[int, str | None]:
        """`(outputs, activation)` of the head `_build(head=head, n_outputs=n_outputs)` will make;
        `(0, None)` for a given `head` (known once built)."""
        if head is not None:
            return 0, None
        src_units, activation = head_config(self.source_model)
        units = src_units if n_outputs is None else check_positive_int(n_outputs, "n_outputs")
        return units, _head_activation(activation, units, src_units)

    def _build(self, *, head: Any = None, n_outputs: int | None = None, head_init: str = "source",
               base_training: bool | None = False) -> None:
        """Create `model_`, `base_`, `head_` under the active distribution strategy.

        Sets `head_initialised_from_source_`: True when the head starts from the source head's weights.
        """
        with self._strategy().scope():
            (self.model_, self.base_, self.head_, self.feature_name_,
             self.head_initialised_from_source_) = _build_target_model(
                self.source_model,
                feature_layer=self.feature_layer,
                head=head,
                n_outputs=n_outputs,
                head_init=head_init,
                name=f"{type(self).__name__.lower()}_model",
                base_training=base_training,
            )

    def _validation(self, validation_data: Any, n_outputs: int | None = None, activation: str | None = None) -> Any:
        """Checked `(x_val, y_val)`, or None; `n_outputs`, `activation`: the head (see `_check_y`)."""
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a tuple (x_val, y_val).")
        xv = self._check_x(validation_data[0], "validation_data[0]")
        return xv, self._check_y(validation_data[1], len(xv), "validation_data[1]", n_outputs=n_outputs,
                                 activation=activation)

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

        self._check_fitted()
        if getattr(self, "source_missing_", False):
            raise ValueError(
                "This adapter was loaded without its source model, so there is no 'before' to compare "
                "with. Load it with shiftkit.load_adapter(path, source_model=original_model)."
            )
        before = shift_report(
            x_source, x_target, y_source, y_target, model=self.source_model, layer=self._source_feature_layer(),
            **kwargs,
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

    def _source_feature_layer(self) -> str | int | None:
        """The source model's layer whose output is the adapter's feature space (None: the default one of
        `shiftkit.shift`), so "before" and "after" are measured in the same space when the head was
        copied as a chain (`source_head_chain`: the features are the input of its Dense layer)."""
        if self.feature_layer is not None or getattr(self, "source_missing_", False):
            return self.feature_layer
        if isinstance(head_of(self.source_model), keras.layers.Dense):
            return None
        chain = source_head_chain(self.source_model)
        if chain is None:
            return None
        layer = producing_layer(chain[1])
        return layer.name if any(known is layer for known in self.source_model.layers) else None

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        """JSON-ready fitted state beyond the weights; subclasses extend it."""
        return {"feature_layer": self.feature_layer}

    def _restore(self, state: dict[str, Any]) -> None:
        self.feature_layer = state.get("feature_layer")

    def save(self, path: str | os.PathLike) -> str:
        """Save the adapted model to a `.keras` file (with the adapter's state inside).

        The file holds the model as plain Keras layers (`plain_model`: the inference-mode wrappers
        left out, the weights the same), so `keras.saving.load_model(path, safe_mode=True)` opens it
        without shiftkit, except a `LabelShiftAdapter`'s, whose `PriorCorrection` layer needs
        `import shiftkit` first.

        Raises:
            ValueError: `path` does not end in ".keras", or its folder does not exist.
        """
        self._check_fitted()
        path = os.fspath(path)
        if not path.endswith(".keras"):
            raise ValueError(f"path must end with '.keras' (the Keras v3 format); got {path!r}.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(
                f"Cannot save to {path!r}: the folder {folder!r} does not exist. Create it first "
                "(os.makedirs(folder, exist_ok=True)) or pass a path in an existing folder."
            )
        plain_model(self.model_).save(path)
        meta = {"adapter": type(self).__name__, "state": self._state(), "shiftkit_format": 1}
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(_META_NAME, json.dumps(meta))
        return path


def _plain_layer(layer: Any) -> Any:
    """A new, unbuilt copy of `layer` with every `InferenceMode` wrapper replaced by the layer it wraps."""
    layer = unwrap(layer)
    if isinstance(layer, keras.Sequential) and any(isinstance(sub, InferenceMode) for sub in layer.layers):
        return keras.Sequential([_plain_layer(sub) for sub in layer.layers], name=layer.name)
    return type(layer).from_config(layer.get_config())


def plain_model(model: Any) -> Any:
    """A copy of an adapted model made of plain Keras layers only, computing the same outputs.

    `InferenceMode` (a shiftkit layer that keeps the base's BatchNormalization and Dropout in
    inference mode while the head trains) matters only in training; a saved model is used for
    inference, where Keras runs every layer in inference mode anyway. Leaving it out lets plain
    Keras, without `import shiftkit`, load the file with `safe_mode=True`. The copy is
    uncompiled; its weights are copies of `model`'s.
    """
    if not any(isinstance(layer, InferenceMode) or (isinstance(layer, keras.Sequential) and any(
            isinstance(sub, InferenceMode) for sub in layer.layers)) for layer in model.layers):
        return model
    plain = keras.models.clone_model(model, clone_function=_plain_layer)
    plain.set_weights(model.get_weights())
    return plain


def check_adapter_labels(y: Any, name: str, n_outputs: int | None, activation: str = "softmax") -> np.ndarray:
    """Labels as the indices of a head's outputs (`shiftkit._validation.check_labels`), with messages
    about labels and outputs: an adapter trains the model's outputs, so label k is output k.

    Args:
        y: class indices (or one-hot rows).
        name: the argument's name, for messages.
        n_outputs: the head's outputs (1: a single sigmoid/logit unit, classes 0 and 1); None: not
            known yet (no range check).
        activation: the head's output activation.

    Raises:
        TypeError: text or other non-numeric labels (with how to encode them).
        ValueError: a label the head has no output for (with the 1..K and n_outputs hints).
    """
    n_classes = None if n_outputs is None else loss_for_head(activation, int(n_outputs))[1]
    outputs = "0..K-1" if n_classes is None else f"0..{n_classes - 1}"
    arr = np.asarray(y) if not hasattr(y, "to_numpy") else y.to_numpy()
    if arr.dtype.kind in "USO" and arr.size and not all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in arr.reshape(-1)[:1000].tolist()):
        examples = sorted({str(v) for v in arr.reshape(-1)[:1000].tolist()})[:5]
        raise TypeError(
            f"{name} holds text labels {examples}; an adapter trains the model's outputs, so each label must be the "
            f"index of its class's output ({outputs}). Map the values to output indices in the order of "
            f"the model's outputs (e.g. codes = np.array([order.index(v) for v in {name}])), or with "
            f"shiftkit._validation.encode_labels({name}, n_outputs=K) when the model's K outputs follow "
            "the sorted label values."
        )
    try:
        labels = check_labels(y, name)
    except TypeError:
        raise TypeError(
            f"{name} must hold class labels: the index of each sample's class output ({outputs}), as integers; "
            f"got {type(y).__name__} of dtype {getattr(arr, 'dtype', '?')}."
        ) from None
    if n_classes is not None and arr.ndim == 2 and arr.shape[1] > 1 and arr.shape[1] != n_classes:
        raise ValueError(
            f"{name} is one-hot with {arr.shape[1]} columns, but the target model's head has {n_outputs} "
            f"output(s), for {n_classes} classes. Pass one column per output, or class indices 0..{n_classes - 1}."
        )
    if n_classes is not None and len(labels) and labels.max() >= n_classes:
        top, low = int(labels.max()), int(labels.min())
        hint = (f" Your labels look coded 1..{top}: subtract 1." if low >= 1 and top == n_classes else "")
        raise ValueError(
            f"{name} has label {top}, but the target model's head has {n_outputs} output(s), for classes "
            f"0..{n_classes - 1}: an adapter's labels are the indices of the model's outputs.{hint} Re-encode the "
            f"labels to 0..{n_classes - 1}, or give the target model a head with more outputs (n_outputs=, or "
            "head=) where the adapter builds one."
        )
    return labels


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
    # The one safe loader: size limits before decompressing (a bomb fails unread), safe_mode=True,
    # a message instead of a traceback for a corrupt or unsafe file.
    model = load_model_path(path, max_bytes=max_bytes)
    adapter = cls.__new__(cls)
    adapter.source_model = model if source_model is None else _require_model(source_model)
    adapter.source_missing_ = source_model is None
    adapter.model_ = model
    adapter.base_ = unwrap(model.get_layer("base"))  # saved before InferenceMode: the base itself
    adapter.head_ = model.layers[-1]
    adapter._restore(meta.get("state", {}))
    adapter.feature_layer = None  # the saved model's own head input
    return adapter
