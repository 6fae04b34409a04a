"""The seed's transfer-learning study as one object: train on the source, measure, adapt, measure, evaluate.

`Experiment(source_model, adapters=..., metrics=...).run(splits, seed=...)` takes `DomainSplits`
(`shiftkit.data.split_domains`) and, in order:

1. **Source model.** A *builder* (a zero-argument function returning a compiled `keras.Model`) is
   called, seeded, and its model trained on `source_train`. A *model instance* is taken as already
   trained and used as it is (never modified). `train_source=True`/`False` overrides either rule:
   True trains a copy of a given instance (its current weights, its compiled optimizer and loss);
   False takes a builder's model as trained (e.g. `lambda: keras.saving.load_model(path)`).
2. **Shift before.** `shiftkit.analyze(source_val, T, model=source model).report`, where `T` is `target_test`
   when the splits have target labels (held out from every adaptation, so no method is measured
   on data it trained on) and `target_unlabeled` otherwise.
3. **Baselines.** "source_only": the source model as it is. "target_only": the same architecture
   trained from scratch on `target_labeled` (a fresh model from the builder; for a model instance,
   `keras.models.clone_model`: same layers, new weights), skipped without target labels.
4. **Adapt.** Each adapter is fitted on its own data: CopyAdapter / FineTuneAdapter on
   `target_labeled`; MMDAdapter on `source_train` + `target_unlabeled`; LabelShiftAdapter on
   `source_val` + `target_unlabeled`.
5. **Shift after** (`adapter.shift_report`, same data and seed as step 2) and **evaluation** on
   `target_test`: accuracy, balanced accuracy, macro F1, AUROC (one-vs-rest macro average over the
   classes present for more than two classes) and expected calibration error (15 equal-width bins).

While each model trains, a `ShiftMonitor` (source_val vs `T`) logs the feature MMD^2 into its
history: `ExperimentResult.histories` and the right panel of `ExperimentResult.plot()`.

Seeds: `run(seed=s)` seeds every step separately (`keras.utils.set_random_seed(s + offset)`, a fixed
offset per method), so adding or removing an adapter does not change the others' results.
"""

from __future__ import annotations

import inspect
import json
import numbers
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from shiftkit._json import jsonable
from shiftkit._keras import require_model
from shiftkit._validation import check_alpha, check_positive_int, check_seed, encode_labels
from shiftkit._version import __version__
from shiftkit.adapt.base import Adapter
from shiftkit.adapt.registry import adapter_names, fit_data, get_adapter
from shiftkit.adapt.target_model import copy_model, head_config
from shiftkit.adapt.training import class_weights, loss_for_head
from shiftkit.analysis import analyze
from shiftkit.callbacks import ShiftMonitor
from shiftkit.check import Reference
from shiftkit.shift.features import check_model_input, predict_proba
from shiftkit.data import DomainSplits
from shiftkit.experiment_result import BASELINES, ExperimentResult
from shiftkit.metrics import METRICS, check_metrics, classification_metrics, expected_calibration_error

__all__ = [
    "ADAPTER_NAMES",
    "DEFAULT_EPOCHS",
    "METRICS",
    "Experiment",
    "ExperimentResult",
    "classification_metrics",
    "expected_calibration_error",
]

#: The adapters registered when shiftkit was imported (`Experiment` knows every adapter in
#: `shiftkit.adapt.adapter_names()`, also those registered later).
ADAPTER_NAMES: tuple[str, ...] = adapter_names()
#: Training epochs per step when `run(epochs=None)`; `epochs=` (an int or a dict) overrides them. None:
#: the adapter's own default (CopyAdapter, FineTuneAdapter: until the held-out loss stops improving;
#: MMDAdapter: its `EPOCHS`), defined once, on the adapter.
DEFAULT_EPOCHS: dict[str, int | None] = {"source": 30, "target_only": 50, "copy": None, "finetune": None, "mmd": None}
# Every registered method has its own offset (the later ones: 10 + their place in the default list, the seeds
# the default run has always given them); a method named otherwise (a dict key, a registered toy) gets one from
# its name (`_seed`), never from its position, so adding or removing a method changes no other's seed.
_SEED_OFFSETS = {"source": 0, "target_only": 1, "copy": 2, "finetune": 3, "mmd": 4, "label_shift": 5, "coral": 6,
                 "adabn": 7, "self_training": 16, "dann": 17, "importance": 18, "auto": 19}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")



# --------------------------------------------------------------------------------------------
# Adapters and models
# --------------------------------------------------------------------------------------------


class _AdapterSpec:
    """What to build for one method: kind, class and constructor parameters (None: defaults)."""

    def __init__(self, name: str, kind: str, cls: type, params: dict[str, Any] | None, default: bool = False):
        self.name, self.kind, self.cls, self.params = name, kind, cls, params
        self.default = default  # listed because adapters=None (every registered adapter), not by the user

    def build(self, source_model: Any, epochs: int | None) -> Any:
        if self.params is not None:
            return self.cls.from_config(self.params, source_model)
        if epochs is not None and "head_epochs" in self.cls._init_parameters():
            return self.cls(source_model, head_epochs=epochs)  # run(epochs=int): the head stage too
        return self.cls(source_model)

    def describe(self) -> dict[str, Any]:
        params = {} if self.params is None else {k: _plain(v) for k, v in self.params.items()}
        return {"kind": self.kind, "class": self.cls.__name__, "params": params, "defaults": self.params is None}


def _plain(value: Any) -> Any:
    value = jsonable(value)
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _check_adapters(adapters: Any) -> list[_AdapterSpec]:
    by_default = adapters is None
    if by_default:
        adapters = adapter_names(default_list=True)
    if isinstance(adapters, (str, Adapter)):
        adapters = (adapters,)
    if isinstance(adapters, Mapping):
        items = list(adapters.items())
    elif isinstance(adapters, Sequence):
        items = [(None, a) for a in adapters]
    else:
        raise TypeError(
            f"adapters must be a list of names ({', '.join(adapter_names())}) and/or Adapter instances, or a "
            f"dict name -> name/Adapter; got {type(adapters).__name__}."
        )
    specs: list[_AdapterSpec] = []
    used: set[str] = set()
    for name, item in items:
        if isinstance(item, str):
            cls, params = get_adapter(item), None
        elif isinstance(item, Adapter):
            cls, params = type(item), item.get_config()
            if not cls.name:
                raise TypeError(
                    f"{cls.__name__} has no registry name: set a class attribute `name` and decorate the "
                    "class with shiftkit.adapt.register_adapter, so Experiment knows which data it needs."
                )
        else:
            raise TypeError(
                f"Each adapter must be a name ({', '.join(adapter_names())}) or an Adapter instance; got "
                f"{type(item).__name__}."
            )
        kind = cls.name
        if name is None:
            name, i = kind, 2
            while name in used:
                name, i = f"{kind}_{i}", i + 1
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"Adapter names are used as file names: letters, digits, '_', '.', '-' only; got {name!r}."
            )
        if name in used or name in BASELINES:
            raise ValueError(
                f"Adapter name {name!r} is {'used twice' if name in used else 'reserved for a baseline'}; "
                "pass a dict name -> adapter with distinct names."
            )
        used.add(name)
        specs.append(_AdapterSpec(name, kind, cls, params, default=by_default))
    return specs


def _is_compiled(model: Any) -> bool:
    return bool(getattr(model, "compiled", False)) and getattr(model, "optimizer", None) is not None


def _check_built_model(model: Any, what: str) -> Any:
    return require_model(model, what)


def _compile_like(model: Any, template: Any) -> None:
    """Compile `model` with a fresh copy of `template`'s optimizer and its loss (defaults if uncompiled)."""


    if _is_compiled(template):
        opt = template.optimizer
        optimizer = type(opt).from_config(opt.get_config())
        loss = template.loss
    else:
        n_out, activation = head_config(template)
        loss, _ = loss_for_head(activation, n_out)
        optimizer = keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss=loss)


def _fit_targets(model: Any, y: np.ndarray) -> np.ndarray:
    """Labels in the form the model's loss expects (float column, one-hot, or class indices)."""

    n_out = int(model.outputs[0].shape[-1] or 1)
    if n_out == 1:
        return y.reshape(-1, 1).astype("float32")
    loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
    name = str(name).lower()
    if "categorical" in name and "sparse" not in name:
        return keras.utils.to_categorical(y, n_out).astype("float32")
    return y.astype("int32")


def _history(record: Any) -> dict[str, list]:
    hist = record.history if hasattr(record, "history") else record
    return {str(k): [float(v) if isinstance(v, numbers.Real) else v for v in vals] for k, vals in dict(hist).items()}


def _feature_figures(test: Any) -> tuple[float | None, float | None]:
    if test is None:
        return None, None
    return float(test.p_value), float(test.normalized)


def _seed(seed: int | None, step: str, index: int = 0) -> int | None:
    """`seed` plus the step's fixed offset (`_SEED_OFFSETS`, else 100 + a hash of its name), set as Keras's seed.
    `index` (the method's place in the list) is not used: kept for callers."""
    if seed is None:
        return None
    value = seed + _SEED_OFFSETS.get(step, 100 + zlib.crc32(step.encode()) % 100_000)
    keras.utils.set_random_seed(value)
    return value


# The experiment
# --------------------------------------------------------------------------------------------


class Experiment:
    """The seed's study in one object: source model, shift before, adapters, shift after, metrics.

    See the module docstring for the steps and which split feeds which method.

    Args:
        source_model: a compiled `keras.Model` (taken as trained), or a zero-argument function that
            builds and compiles one (its model is trained on `source_train`); see `train_source`.
        adapters: None (default: every registered adapter, `shiftkit.adapt.adapter_names()`: "copy",
            "finetune", "mmd", "label_shift" and any registered since), registry names and/or
            `Adapter` instances, or a dict method name -> name/instance. An instance is a
            *template*: its constructor arguments are re-applied to the experiment's source model at
            every run (scikit-learn's `clone`), so a run never refits the object you passed.
            Names get the adapters' defaults (with an int `epochs` for FineTune: `head_epochs=epochs`).
        metrics: names from `METRICS` and/or callables `f(y_true, proba) -> float`, or a dict.
        train_source: None (default): train a builder's model, use a given model as it is. True:
            always train (a copy of a given model). False: never train (a builder that loads a model).
        target_only: also train the target-only baseline (needs target labels).
        class_weight: None or "balanced" (or a dict) for the source, target-only, copy and finetune
            training: "balanced" counters class imbalance with scikit-learn's weights.
        fit_kwargs: optional dict method name (or kind) -> extra keyword arguments of that adapter's
            `fit`, e.g. `{"mmd": {"batch_size": 32, "learning_rate": 3e-4}}`.
        n_permutations, alpha, max_samples: of every shift measurement (`shift_report`).
        monitor: attach a `ShiftMonitor` to every training (curves in `histories` and `plot()`).

    Raises:
        TypeError: `source_model` is neither a Keras model nor a zero-argument callable; an adapter
            that is neither a known name nor a supported Adapter; bad metric entries.
        ValueError: an unknown adapter or metric name (the message lists the names); bad options.

    Example:
        >>> from shiftkit.data import split_domains                                  # doctest: +SKIP
        >>> splits = split_domains(s.x_source, s.y_source, s.x_target, s.y_target, seed=0)  # doctest: +SKIP
        >>> result = Experiment(build_model).run(splits, seed=0)                     # doctest: +SKIP
        >>> print(result); result.save("runs/hospitals")                            # doctest: +SKIP
    """

    def __init__(
        self,
        source_model: Any,
        *,
        adapters: Any = None,
        metrics: Any = METRICS,
        train_source: bool | None = None,
        target_only: bool = True,
        class_weight: Any = None,
        fit_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        n_permutations: int = 200,
        alpha: float = 0.05,
        max_samples: int | None = 1000,
        monitor: bool = True,
    ):

        if isinstance(source_model, keras.Model):
            self._builder = None
            self._model = _check_built_model(source_model, "source_model")
        elif callable(source_model):
            try:
                required = [
                    p for p in inspect.signature(source_model).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                ]
            except (TypeError, ValueError):
                required = []
            if required:
                raise TypeError(
                    "source_model must be a compiled keras.Model or a zero-argument function that builds one; "
                    f"the function given requires {[p.name for p in required]}. Wrap it: "
                    "lambda: build(...)."
                )
            self._builder = source_model
            self._model = None
        else:
            raise TypeError(
                "source_model must be a compiled keras.Model or a zero-argument function that builds and "
                f"compiles one; got {type(source_model).__name__}."
            )
        self.source_model = source_model
        self.adapters = adapters
        self._specs = _check_adapters(adapters)
        self.metrics = metrics
        self._metrics = check_metrics(metrics)
        if train_source is not None and not isinstance(train_source, (bool, np.bool_)):
            raise TypeError(f"train_source must be None, True or False; got {train_source!r}.")
        self.train_source = train_source
        if not isinstance(target_only, (bool, np.bool_)):
            raise TypeError(f"target_only must be True or False; got {target_only!r}.")
        self.target_only = bool(target_only)
        if class_weight is not None and not isinstance(class_weight, (str, Mapping)):
            raise TypeError(f"class_weight must be None, 'balanced' or a dict; got {type(class_weight).__name__}.")
        if isinstance(class_weight, str) and class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict; got {class_weight!r}.")
        self.class_weight = class_weight
        names = {s.name for s in self._specs} | {s.kind for s in self._specs}
        fit_kwargs = dict(fit_kwargs or {})
        for key, value in fit_kwargs.items():
            if key not in names:
                raise ValueError(
                    f"fit_kwargs has an entry for {key!r}, which is not an adapter of this experiment "
                    f"({', '.join(sorted(names)) or 'none'})."
                )
            if not isinstance(value, Mapping):
                raise TypeError(f"fit_kwargs[{key!r}] must be a dict of keyword arguments; got {type(value).__name__}.")
        self.fit_kwargs = fit_kwargs
        self.n_permutations = check_positive_int(n_permutations, "n_permutations")
        self.alpha = check_alpha(alpha)
        self.max_samples = None if max_samples is None else check_positive_int(max_samples, "max_samples", minimum=2)
        self.monitor = bool(monitor)

    # ------------------------------------------------------------------ helpers
    @property
    def method_names(self) -> tuple[str, ...]:
        """The adapter methods, in order (the baselines come first in a result)."""
        return tuple(s.name for s in self._specs)

    def _epochs(self, epochs: Any) -> dict[str, int | None]:
        out = dict(DEFAULT_EPOCHS)
        if epochs is None:
            return out
        if isinstance(epochs, Mapping):
            allowed = set(DEFAULT_EPOCHS) | set(self.method_names)
            # Copy and FineTune steps may be None: "until the held-out loss stops improving".
            auto = {s.kind for s in self._specs} | set(self.method_names)
            for key, value in epochs.items():
                if key not in allowed:
                    raise ValueError(f"epochs has an entry for {key!r}; known steps: {', '.join(sorted(allowed))}.")
                out[key] = None if value is None and key in auto else check_positive_int(value, f"epochs[{key!r}]")
            return out
        value = check_positive_int(epochs, "epochs")
        return {k: value for k in list(out) + list(self.method_names)}

    def _build_source(self) -> Any:
        model = self._builder()

        if not isinstance(model, keras.Model):
            raise TypeError(
                f"The source_model builder returned a {type(model).__name__}, not a keras.Model. It must "
                "build, compile and return the model (`model.compile(...); return model`)."
            )
        if not _is_compiled(model):
            raise TypeError(
                "The source_model builder returned an uncompiled keras.Model; call model.compile(optimizer, "
                "loss) inside the builder before returning it."
            )
        return _check_built_model(model, "the model returned by the source_model builder")

    def _train(self, model: Any, x: np.ndarray, y: np.ndarray, epochs: int, n_classes: int, class_weight: Any, *,
               batch_size: int, verbose: Any, callbacks: list) -> dict[str, list]:

        hist = model.fit(
            x, _fit_targets(model, y), epochs=epochs, batch_size=min(batch_size, len(x)), verbose=verbose,
            class_weight=class_weights(y, class_weight, n_classes), callbacks=callbacks, shuffle=True,
        )
        return _history(hist)

    def _metrics_of(self, model: Any, x: np.ndarray | None, y: np.ndarray | None) -> dict[str, float | None]:
        if y is None:
            return {name: None for name in self._metrics}

        return classification_metrics(y, predict_proba(model, x), self._metrics)

    # ------------------------------------------------------------------ run
    def run(
        self,
        splits: DomainSplits,
        *,
        seed: int | None = None,
        epochs: int | Mapping[str, int] | None = None,
        verbose: Any = 0,
        batch_size: int = 32,
    ) -> ExperimentResult:
        """Train (when needed), measure, adapt, measure again and evaluate every method.

        Args:
            splits: `DomainSplits` from `shiftkit.data.split_domains`.
            seed: seed of every step (None: unseeded; results then vary from run to run).
            epochs: training epochs: None for `DEFAULT_EPOCHS` (Copy and FineTune: until their
                held-out loss stops improving, the adapters' default), an int for every step, or a
                dict with keys among "source", "target_only", "copy", "finetune", "mmd" (or a method
                name). With an int, FineTune runs `epochs` head epochs then `epochs` fine-tuning epochs.
            verbose: Keras verbosity of every training (0: silent).
            batch_size: batch size of the source, target-only, copy and finetune training.

        Returns:
            An `ExperimentResult`.

        Raises:
            TypeError: `splits` is not a `DomainSplits`; the builder returns something else than a
                compiled Keras model.
            ValueError: data that do not fit the model, a model with fewer outputs than classes,
                adapters named in `adapters` that need target labels when the splits have none (from
                the default list, those are skipped with a note instead).
        """

        if not isinstance(splits, DomainSplits):
            raise TypeError(
                f"splits must be a DomainSplits from shiftkit.data.split_domains(...); got {type(splits).__name__}."
            )
        seed = check_seed(seed)
        epochs = self._epochs(epochs)
        batch_size = check_positive_int(batch_size, "batch_size")
        labelled = splits.has_target_labels
        need_labels = [s.name for s in self._specs if "y_target" in s.cls.requires and not s.default]
        if need_labels and not labelled:
            raise ValueError(
                f"Adapters {need_labels} train on labelled target samples, and these splits have none "
                "(split_domains was called without y_target). Pass y_target to split_domains, or use "
                "adapters=('mmd', 'label_shift')."
            )
        xs_tr, ys_tr = splits.source_train
        xs_val, ys_val = splits.source_val
        x_unl = splits.target_unlabeled
        if labelled:
            x_eval, y_eval = splits.target_test
            eval_name = "target_test"
        else:
            x_eval, y_eval = x_unl, None
            eval_name = "target_unlabeled"
        notes: list[str] = []
        if not labelled:
            notes.append(
                "No target labels: metrics are not computed, the target-only baseline is skipped, and shift "
                "is measured on target_unlabeled (the data the unsupervised adapters train on)."
            )

        # 1. The source model.
        histories: dict[str, dict[str, list]] = {}
        train = self.train_source if self.train_source is not None else self._builder is not None
        _seed(seed, "source")
        if self._builder is not None:
            source = self._build_source()
        else:
            source = self._model
            if train:
                source = copy_model(self._model)  # weights and derived state (an adapted Normalization)
                _compile_like(source, self._model)
        for x, what in ((xs_tr, "splits.source_train"), (x_eval, f"splits.{eval_name}")):
            check_model_input(source, x[:1], f"{what} inputs")
        n_out = int(source.outputs[0].shape[-1] or 1)
        if (n_out == 1 and splits.n_classes > 2) or (n_out > 1 and n_out < splits.n_classes):
            raise ValueError(
                f"The source model has {n_out} output(s) but the labels have {splits.n_classes} classes; its "
                f"output layer needs {splits.n_classes} units (softmax), or 1 sigmoid unit for 2 classes."
            )

        # One coding of the labels for every model trained and scored here: the model's outputs index
        # classes 0..n-1, so labels 1..K (or names) of a K-output model become 0..K-1 (labels already in
        # 0..n-1 stay as they are). `splits` keeps the user's values; `class_weight` keys follow them.
        n_codes = max(n_out, 2)
        target_labeled = splits.target_labeled if labelled else None
        enc, (ys_tr, ys_val, y_eval, yl_codes) = encode_labels(
            ys_tr, ys_val, y_eval, None if target_labeled is None else target_labeled[1],
            names=["splits.source_train labels", "splits.source_val labels", f"splits.{eval_name} labels",
                   "splits.target_labeled labels"], n_outputs=n_codes)
        if target_labeled is not None:
            target_labeled = (target_labeled[0], yl_codes)
        class_weight = self.class_weight
        if isinstance(class_weight, dict) and not enc.identity:
            code_of = {value: k for k, value in enumerate(enc.classes)}
            unknown = [key for key in class_weight if key not in code_of]
            if unknown:
                raise ValueError(f"class_weight has key(s) {unknown[:5]} that are not classes of the labels "
                                 f"{list(enc.classes)[:10]}; key it by the label values.")
            class_weight = {code_of[key]: w for key, w in class_weight.items()}

        def monitor() -> list:
            if not self.monitor:
                return []
            return [ShiftMonitor(xs_val, x_eval, max_samples=500, seed=0 if seed is None else seed)]

        if train:
            histories["source_only"] = self._train(
                source, xs_tr, ys_tr, epochs["source"], n_codes, class_weight,
                batch_size=batch_size, verbose=verbose, callbacks=monitor(),
            )

        shift_kwargs = {"n_permutations": self.n_permutations, "alpha": self.alpha, "seed": seed,
                        "max_samples": self.max_samples}
        # 2. Shift before, and the source-only row.
        def measure(model: Any) -> Any:  # the one analysis pipeline; the report is all a row needs
            return analyze(xs_val, x_eval, y_source=ys_val, y_target=y_eval, model=model, diagnose_shift=False,
                           per_feature=False, **shift_kwargs).report

        before = measure(source)
        p_before, n_before = _feature_figures(before.feature_test)
        rows: dict[str, dict[str, Any]] = {}
        reports: dict[str, Any] = {"source": before.to_dict(include_null=False)}
        live: dict[str, Any] = {"source": before}

        def row(model: Any, p_after: float | None, n_after: float | None) -> dict[str, Any]:
            out: dict[str, Any] = dict(self._metrics_of(model, x_eval, y_eval))
            out.update(shift_p_before=p_before, shift_p_after=p_after,
                       shift_mmd2_normalized_before=n_before, shift_mmd2_normalized_after=n_after)
            return out

        methods = ["source_only"]
        rows["source_only"] = row(source, p_before, n_before)

        # 3. The target-only baseline.
        target_model = None
        if self.target_only and labelled:
            _seed(seed, "target_only")
            if self._builder is not None and train:
                target_model = self._build_source()
            else:
                target_model = keras.models.clone_model(source)
                _compile_like(target_model, source)
            xl, yl = target_labeled
            histories["target_only"] = self._train(
                target_model, xl, yl, epochs["target_only"], n_codes, class_weight,
                batch_size=batch_size, verbose=verbose, callbacks=monitor(),
            )
            after = measure(target_model)
            reports["target_only"] = after.to_dict(include_null=False)
            live["target_only"] = after
            rows["target_only"] = row(target_model, *_feature_figures(after.feature_test))
            methods.append("target_only")
        elif self.target_only:
            notes.append("target_only skipped: it trains on target_labeled, which these splits do not have.")

        # 4-5. Adapters: fit, measure after, evaluate.
        adapters: dict[str, Any] = {}
        for index, spec in enumerate(self._specs):
            if spec.default and not labelled and "y_target" in spec.cls.requires:
                notes.append(f"{spec.name} skipped: {spec.cls.__name__} trains on target_labeled, which these "
                             "splits do not have (pass y_target to split_domains to run it).")
                continue
            if spec.default and not spec.cls.supports(source):
                notes.append(f"{spec.name} skipped: {spec.cls.__name__} cannot adapt this source model "
                             f"({spec.cls.title}).")
                continue
            step_epochs = epochs.get(spec.name, epochs.get(spec.kind, DEFAULT_EPOCHS.get(spec.kind)))
            step_seed = _seed(seed, spec.kind if spec.name == spec.kind else spec.name, index)
            adapter = spec.build(source, step_epochs)
            # The one adapter contract: the data each adapter declares it needs, the same options for all.
            data = fit_data(spec.cls, source_train=(xs_tr, ys_tr), source_held_out=(xs_val, ys_val),
                            target_labeled=target_labeled, target_unlabeled=x_unl)
            kwargs: dict[str, Any] = {"epochs": step_epochs, "verbose": verbose, "callbacks": monitor()}
            if step_seed is not None:
                kwargs["seed"] = step_seed
            if "y_target" in spec.cls.requires:  # trained on the labelled target samples, like the baselines
                kwargs.update(batch_size=batch_size, class_weight=class_weight)
            kwargs.update(self.fit_kwargs.get(spec.kind, {}))
            kwargs.update(self.fit_kwargs.get(spec.name, {}))
            adapter.fit(**data, **kwargs)
            report = adapter.shift_report(xs_val, x_eval, ys_val, y_eval, **shift_kwargs)
            reports[spec.name] = report.to_dict()
            live[spec.name] = report
            histories[spec.name] = _history(adapter.history)
            rows[spec.name] = row(adapter.model, *_feature_figures(report.after.feature_test))
            adapters[spec.name] = adapter
            methods.append(spec.name)

        reference = Reference.from_data(xs_val, ys_val, model=source, seed=0 if seed is None else seed)
        config = {
            "seed": seed,
            "split_seed": splits.seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "adapters": {s.name: s.describe() for s in self._specs},
            "fit_kwargs": _plain(self.fit_kwargs),
            "metrics": list(self._metrics),
            "source_model": "builder" if self._builder is not None else "model",
            "source_trained_by_experiment": bool(train),
            "target_only": self.target_only,
            "class_weight": _plain(self.class_weight),
            "shift": {"source": "source_val", "target": eval_name, "space": "feature",
                      "n_permutations": self.n_permutations, "alpha": self.alpha, "max_samples": self.max_samples},
            "versions": {"shiftkit": __version__, "keras": keras.__version__, "tensorflow": _tf_version()},
        }
        return ExperimentResult(
            methods=methods,
            metric_names=list(self._metrics),
            rows=rows,
            histories=histories,
            reports=jsonable(reports),
            splits=splits.to_dict(),
            config=config,
            notes=notes,
            adapters=adapters,
            source_model=source,
            target_only_model=target_model,
            reference=reference,
            shift_reports=live,
        )

    @staticmethod
    def load(directory: str | os.PathLike) -> ExperimentResult:
        """Load a result saved with `ExperimentResult.save` (models and adapters included)."""
        return ExperimentResult.load(directory)


def _tf_version() -> str | None:
    try:

        return tf.__version__
    except ImportError:  # pragma: no cover - another Keras backend
        return None
