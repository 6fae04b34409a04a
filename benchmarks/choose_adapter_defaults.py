"""Choosing CopyAdapter's and FineTuneAdapter's defaults on scenarios *other* than those that confirm them.

The question: a user calls `CopyAdapter(m).fit(x_few, y_few)` or `FineTuneAdapter(m).fit(x_few,
y_few)` with 10 labels per class and changes nothing. Which learning rates, head start, early
stopping rule and refit policy give a model no worse than the source model and close to a tuned
recipe? This script measures the candidates; `benchmarks/defaults_choice.md` holds its figures and
the choice. The confirmation (other scenarios, 3 seeds) is `bench_adapt.py defaults` (RESULTS.md).

Choosing scenarios (none is a confirmation scenario: those are digits blur / rotation+contrast+noise
/ pixel noise, a GRU with a sensor-placement shift and breast-cancer hospitals by tumour size):

* ``digits-shear-occlusion``: scikit-learn digits; the target is sheared (x -> x + 0.35 y) and a
  random 3x3 patch of each image is blanked. A small CNN with BatchNormalization, softmax output.
* ``synthetic-concept``: `shiftkit.datasets.synthetic_shift(kind="concept", strength=0.5)`: the
  decision direction turns by 45 degrees. An MLP with one sigmoid unit.
* ``synthetic-covariate``: `synthetic_shift(kind="covariate", strength=3)` with a nonlinear twist:
  the target also rescales x0 by 0.5 and offsets x1. An MLP with two softmax units.
* ``conv1d-frequency-gain``: three kinds of 1-D signals (sine, square, sawtooth) at random phase; the
  target device samples them 30% faster, at half the gain, with an offset and more noise. A 1-D CNN
  with *logits* output (linear head).
* ``hospitals-label-shift``: `shiftkit.datasets.hospitals_label_shift` (p(y) changes only): the
  source model is already right about p(x|y); adapting must not make it worse. An MLP, softmax.

How it measures (every training run is the adapters' own code; nothing is re-implemented):

1. Copy, per (scenario, seed, learning rate, head start): one *selection run* trains the head on the
   80% training part of the labels for `EPOCHS` epochs with validation on the stratified 20% held out
   (`shiftkit.adapt.training.holdout_split`), recording the held-out loss and the target-test accuracy
   after every epoch (and before the first: epoch 0); one *all-labels run* trains on all labels,
   recording the test accuracy per epoch. An early-stopping rule (patience, min_delta) applied to the
   recorded held-out losses picks an epoch count E (0 = the start); without refit the result is the
   selection run's accuracy at E, with refit the all-labels run's at E. Fixed epoch budgets are read
   off the all-labels run.
2. FineTune, per (scenario, seed, fine-tuning rate, with / without stage 1): stage 1 as chosen in 1
   (early-stopped on the held-out part), then stage 2 recorded for `FT_EPOCHS` epochs, on the
   training part (selection) and, after stage 1 for the chosen epochs, on all labels (refit).
3. References: the *tuned recipe* is the best over the learning-rate grid and the fixed budgets
   (25/50/100 epochs) of the all-labels runs, per case, chosen on the *test* accuracy (an oracle no
   user has); the *by-hand fine-tune* is `keras.models.clone_model` + Adam + `model.fit` on all labels
   (BatchNormalization in training mode), at 1e-3 and 1e-4, after 20/50/100 epochs.

Usage:
    python benchmarks/choose_adapter_defaults.py                      # all scenarios, seeds 0 1
    python benchmarks/choose_adapter_defaults.py --quick --out /tmp/c.md --json /tmp/c.json  # smoke run
    python benchmarks/choose_adapter_defaults.py --report-only        # re-write the .md from the .json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from _results import machine_info  # noqa: E402

from shiftkit.adapt.target_model import copy_model  # noqa: E402
from shiftkit.adapt.training import MAX_EPOCHS  # noqa: E402

LABELS_PER_CLASS = 10
EPOCHS = MAX_EPOCHS  # recorded epochs of each Copy / stage-1 run: the most `epochs=None` runs
FT_EPOCHS = MAX_EPOCHS  # recorded epochs of each stage-2 run
COPY_RATES = (1e-3, 3e-3, 1e-2, 3e-2)
RANDOM_HEAD_RATES = (1e-2,)  # a new (random) head, at the rate its docstring recommended
FT_RATES = (3e-4, 1e-3, 3e-3)
HAND_RATES = (1e-3, 1e-4)
PATIENCES = (5, 10, 20)
MIN_DELTAS = (0.0, 1e-3)
BUDGETS = (25, 50, 100)  # fixed epoch budgets read off the all-labels runs
HAND_BUDGETS = (20, 50, 100)
VALIDATION_SPLIT = 0.2
EXTRA_SPLITS = (0.3, 0.5)  # larger held-out shares (refit restores the training data), measured at:
EXTRA_RATES = (3e-3, 1e-2)
QUICK = {"EPOCHS": 15, "FT_EPOCHS": 8, "EXTRA_RATES": (1e-2,), "EXTRA_SPLITS": (0.5,), "COPY_RATES": (1e-2,), "RANDOM_HEAD_RATES": (1e-2,), "FT_RATES": (1e-3,),
         "HAND_RATES": (1e-3,), "BUDGETS": (5, 10), "HAND_BUDGETS": (5,)}


# ----------------------------------------------------------------------------------------- scenarios
def _pick(y: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` random rows of every class (the labelled few) and the rest (the test set)."""
    picked = np.concatenate([rng.choice(np.flatnonzero(y == k), per_class, replace=False) for k in np.unique(y)])
    rest = np.setdiff1d(np.arange(len(y)), picked)
    return np.sort(picked), rest


def _split_target(xt: np.ndarray, yt: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    lab, test = _pick(yt, LABELS_PER_CLASS, rng)
    return {"x_labeled": xt[lab], "y_labeled": yt[lab], "x_test": xt[test], "y_test": yt[test]}


def digits_shear_occlusion(seed: int) -> dict[str, Any]:
    from scipy.ndimage import affine_transform
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    bunch = load_digits()
    x = (bunch.images / 16.0).astype("float32")
    y = bunch.target.astype(np.int64)
    order = rng.permutation(len(y))
    src, tgt = order[: len(y) // 2], order[len(y) // 2 :]
    xt = np.empty_like(x[tgt])
    for i, img in enumerate(x[tgt]):
        # shear: output (r, c) reads input (r, c - 0.35 (r - 3.5)); then a blank 3x3 patch
        sheared = affine_transform(img, np.array([[1.0, 0.0], [-0.35, 1.0]]), offset=(0.0, 0.35 * 3.5), order=1)
        r, c = rng.integers(1, 5, size=2)
        sheared[r : r + 3, c : c + 3] = 0.0
        xt[i] = sheared
    data = {"x_source": x[src][..., None], "y_source": y[src]}
    data.update(_split_target(xt[..., None], y[tgt], rng))
    return data


def build_digits_cnn(data: dict[str, Any]) -> Any:
    import keras

    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(32, 3, padding="same")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    return model


def _synthetic(kind: str, strength: float, twist: bool) -> Any:
    def make(seed: int) -> dict[str, Any]:
        from shiftkit.datasets import synthetic_shift

        s = synthetic_shift(seed=seed, kind=kind, n_source=600, n_target=600, n_features=6, strength=strength)
        xt = np.array(s.x_target, dtype="float32")
        if twist:
            xt[:, 0] *= 0.5
            xt[:, 1] += 0.75
        data = {"x_source": np.asarray(s.x_source, "float32"), "y_source": np.asarray(s.y_source)}
        data.update(_split_target(xt, np.asarray(s.y_target), np.random.default_rng(seed + 1000)))
        return data

    return make


def _mlp(n_in: int, n_out: int, activation: str, norm_data: np.ndarray | None = None) -> Any:
    import keras

    layers: list[Any] = [keras.Input((n_in,))]
    if norm_data is not None:
        norm = keras.layers.Normalization()
        norm.adapt(norm_data)
        layers.append(norm)
    layers += [keras.layers.Dense(32, activation="relu"), keras.layers.Dense(16, activation="relu"),
               keras.layers.Dense(n_out, activation=activation)]
    model = keras.Sequential(layers)
    loss = "binary_crossentropy" if n_out == 1 else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.Adam(3e-3), loss)
    return model


def conv1d_frequency_gain(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, 64, endpoint=False)

    def draw(n: int, speed: float, gain: float, offset: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        freq = rng.uniform(3.0, 5.0, n)[:, None] * speed
        phase = rng.uniform(0.0, 1.0, n)[:, None]
        cyc = (freq * t[None, :] + phase) % 1.0
        waves = np.stack([np.sin(2 * np.pi * cyc), np.sign(np.sin(2 * np.pi * cyc)), 2.0 * cyc - 1.0], axis=1)
        x = gain * waves[np.arange(n), y] + offset + rng.normal(0.0, noise, size=(n, 64))
        return x[..., None].astype("float32"), y.astype(np.int64)

    xs, ys = draw(900, 1.0, 1.0, 0.0, 0.3)
    xt, yt = draw(900, 1.3, 0.5, 0.3, 0.35)
    data = {"x_source": xs, "y_source": ys}
    data.update(_split_target(xt, yt, rng))
    return data


def build_conv1d(data: dict[str, Any]) -> Any:
    import keras

    model = keras.Sequential([
        keras.Input((64, 1)),
        keras.layers.Conv1D(16, 5, activation="relu", padding="same"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Conv1D(32, 5, activation="relu", padding="same"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(3),  # logits
    ])
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def hospitals_label(seed: int) -> dict[str, Any]:
    from shiftkit.datasets import hospitals_label_shift

    s = hospitals_label_shift(seed=seed)
    data = {"x_source": np.asarray(s.x_source, "float32"), "y_source": np.asarray(s.y_source)}
    data.update(_split_target(np.asarray(s.x_target, "float32"), np.asarray(s.y_target), np.random.default_rng(seed)))
    return data


SCENARIOS: dict[str, dict[str, Any]] = {
    "digits-shear-occlusion": {"data": digits_shear_occlusion, "build": build_digits_cnn, "epochs": 20},
    "synthetic-concept": {"data": _synthetic("concept", 0.5, False),
                          "build": lambda d: _mlp(d["x_source"].shape[1], 1, "sigmoid"), "epochs": 30},
    "synthetic-covariate": {"data": _synthetic("covariate", 3.0, True),
                            "build": lambda d: _mlp(d["x_source"].shape[1], 2, "softmax"), "epochs": 30},
    "conv1d-frequency-gain": {"data": conv1d_frequency_gain, "build": build_conv1d, "epochs": 15},
    "hospitals-label-shift": {"data": hospitals_label,
                              "build": lambda d: _mlp(d["x_source"].shape[1], 2, "softmax", d["x_source"]),
                              "epochs": 40},
}


# ----------------------------------------------------------------------------------------- recording
def recorder(x_val: np.ndarray | None, y_val: np.ndarray | None, x_test: np.ndarray, y_test: np.ndarray) -> Any:
    """A callback recording test accuracy (and held-out loss) before training and after every epoch.

    One `predict_on_batch` (the model's compiled predict function) over test + held-out rows per
    epoch; the held-out loss is the cross-entropy the adapters' early stopping watches.
    """
    import keras

    from shiftkit._keras import to_classes, to_probabilities

    x_all = x_test if x_val is None else np.concatenate([x_test, x_val])
    n_test = len(x_test)

    class Recorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.acc: list[float] = []
            self.val_loss: list[float] = []

        def _measure(self) -> None:
            model = self.model
            out = np.asarray(model.predict_on_batch(x_all))
            self.acc.append(float(np.mean(to_classes(model, out[:n_test]) == y_test)))
            if x_val is not None:
                p = to_probabilities(model, out[n_test:])[np.arange(len(y_val)), y_val]
                self.val_loss.append(float(-np.mean(np.log(np.clip(p, 1e-7, 1.0)))))

        def on_train_begin(self, logs: dict | None = None) -> None:
            if not self.acc:
                self._measure()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self._measure()

    return Recorder()


def stop_epoch(val_loss: list[float], patience: int, min_delta: float) -> int:
    """The epoch count `shiftkit.adapt.base`'s early stopping keeps on this held-out loss curve (0 = the start)."""
    best, best_e, wait = val_loss[0], 0, 0
    for e, v in enumerate(val_loss[1:], start=1):
        if v < best - min_delta:
            best, best_e, wait = v, e, 0
        else:
            wait += 1
            if wait >= patience:
                break
    return best_e


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from shiftkit._keras import to_classes

    return float(np.mean(to_classes(model, np.asarray(model(x, training=False))) == y))


# ----------------------------------------------------------------------------------------- one case
_SOURCES: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}


def prepare(name: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """The case's data and its source model (trained once per process, seeded)."""
    import keras

    if (name, seed) not in _SOURCES:
        spec = SCENARIOS[name]
        data = spec["data"](seed)
        keras.utils.set_random_seed(seed)
        source = spec["build"](data)
        source.fit(data["x_source"], data["y_source"], epochs=spec["epochs"], batch_size=32, verbose=0)
        _SOURCES[(name, seed)] = (source, data)
    return _SOURCES[(name, seed)]


HUGE = 10**6  # a patience that never stops: whole curves are recorded, the stopping rules applied after


def run_copy(name: str, seed: int, log: Any) -> dict[str, Any]:
    """Part 1: source-only, Copy curves (selection and all-labels) and the by-hand fine-tune curves."""
    import keras

    from shiftkit.adapt import CopyAdapter
    from shiftkit.adapt.training import holdout_split

    source, data = prepare(name, seed)
    xl, yl, xte, yte = data["x_labeled"], data["y_labeled"], data["x_test"], data["y_test"]
    tr, va = holdout_split(yl, VALIDATION_SPLIT, seed)
    case: dict[str, Any] = {"scenario": name, "seed": seed, "n_labeled": int(len(yl)), "n_test": int(len(yte)),
                            "source_acc": accuracy(source, xte, yte), "copy": {}, "hand": {}}
    log(f"{name} seed {seed}: source-only {case['source_acc']:.3f}")
    for head_init, rate in [("source", r) for r in COPY_RATES] + [("random", r) for r in RANDOM_HEAD_RATES]:
        t0 = time.perf_counter()
        keras.utils.set_random_seed(seed + 1)
        sel = recorder(xl[va], yl[va], xte, yte)
        CopyAdapter(source, head_init=head_init, patience=HUGE).fit(
            xl[tr], yl[tr], validation_data=(xl[va], yl[va]), epochs=EPOCHS, learning_rate=rate, verbose=0,
            callbacks=[sel])
        keras.utils.set_random_seed(seed + 1)
        full = recorder(None, None, xte, yte)
        CopyAdapter(source, head_init=head_init).fit(xl, yl, epochs=EPOCHS, learning_rate=rate, verbose=0,
                                                     callbacks=[full])
        case["copy"][f"{head_init}@{rate:g}"] = {"val_loss": sel.val_loss, "select_acc": sel.acc, "all_acc": full.acc}
        log(f"  copy {head_init}@{rate:g}: {time.perf_counter() - t0:.1f} s")
    run_copy_splits(case)
    # By-hand Keras fine-tune of the same model on all labels (BatchNormalization in training mode).
    for rate in HAND_RATES:
        keras.utils.set_random_seed(seed + 3)
        # copy_model, not clone_model + set_weights: that leaves an adapted Normalization layer on its
        # build-time state (the by-hand figures of scenarios with one were wrong before this fix).
        model = copy_model(source)
        model.compile(keras.optimizers.Adam(rate), source.loss)
        cb = recorder(None, None, xte, yte)
        target = yl.reshape(-1, 1).astype("float32") if model.outputs[0].shape[-1] == 1 else yl
        model.fit(xl, target, epochs=max(HAND_BUDGETS), batch_size=32, verbose=0, callbacks=[cb])
        case["hand"][f"{rate:g}"] = cb.acc
    return case


def run_copy_splits(case: dict[str, Any]) -> None:
    """Selection runs with larger held-out shares (`EXTRA_SPLITS`); the all-labels curve is the same run."""
    import keras

    from shiftkit.adapt import CopyAdapter
    from shiftkit.adapt.training import holdout_split

    name, seed = case["scenario"], case["seed"]
    source, data = prepare(name, seed)
    xl, yl, xte, yte = data["x_labeled"], data["y_labeled"], data["x_test"], data["y_test"]
    for split, rate in itertools.product(EXTRA_SPLITS, EXTRA_RATES):
        key = f"source@{rate:g}/v{split:g}"
        if key in case["copy"]:
            continue
        tr, va = holdout_split(yl, split, seed)
        keras.utils.set_random_seed(seed + 1)
        sel = recorder(xl[va], yl[va], xte, yte)
        CopyAdapter(source, patience=HUGE).fit(
            xl[tr], yl[tr], validation_data=(xl[va], yl[va]), epochs=EPOCHS, learning_rate=rate, verbose=0,
            callbacks=[sel])
        case["copy"][key] = {"val_loss": sel.val_loss, "select_acc": sel.acc,
                             "all_acc": case["copy"][f"source@{rate:g}"]["all_acc"]}


def run_finetune(case: dict[str, Any], stage1: dict[str, Any], log: Any) -> None:
    """Part 2: stage-2 curves after stage 1 as the user gets it by default (the chosen Copy rule), or without it.

    Stage 1 runs once per phase (early-stopped on the held-out part when selecting; for the chosen
    epochs on all labels when refitting); every stage-2 rate then starts from its weights (or, without
    stage 1, from the source-started model).
    """
    import keras

    from shiftkit.adapt import FineTuneAdapter, training
    from shiftkit.adapt.training import MAX_EPOCHS, holdout_split

    name, seed = case["scenario"], case["seed"]
    source, data = prepare(name, seed)
    xl, yl, xte, yte = data["x_labeled"], data["y_labeled"], data["x_test"], data["y_test"]
    tr, va = holdout_split(yl, stage1["validation_split"], seed)
    training.MIN_DELTA = stage1["min_delta"]  # the chosen rule, for stage 1's early stopping
    curves: dict[str, dict[str, Any]] = {}
    stage1_epochs = 0
    t0 = time.perf_counter()
    for phase in ("select", "refit"):
        select = phase == "select"
        xs_, ys_ = (xl[tr], yl[tr]) if select else (xl, yl)
        keras.utils.set_random_seed(seed + 2)
        a = FineTuneAdapter(source, learning_rate=stage1["rate"], patience=stage1["patience"],
                            head_init=stage1["head_init"])
        a._build(head_init=stage1["head_init"])
        a._set_trainable(1)
        start = a.model_.get_weights()
        if select:
            _, stage1_epochs = a._compile_and_fit(
                xs_, ys_, learning_rate=stage1["rate"], epochs=MAX_EPOCHS, batch_size=32,
                validation_data=(xl[va], yl[va]), patience=stage1["patience"], verbose=0)
        elif stage1_epochs:
            a._compile_and_fit(xs_, ys_, learning_rate=stage1["rate"], epochs=stage1_epochs, batch_size=32, verbose=0)
        after_stage1 = a.model_.get_weights()
        for with_stage1, rate in itertools.product((True, False), FT_RATES):
            key = f"{'stage1' if with_stage1 else 'no_stage1'}@{rate:g}"
            keras.utils.set_random_seed(seed + 3)
            a.model_.set_weights(after_stage1 if with_stage1 else start)
            a._set_trainable(2)
            cb = recorder(xl[va], yl[va], xte, yte) if select else recorder(None, None, xte, yte)
            a._compile_and_fit(xs_, ys_, learning_rate=rate, epochs=FT_EPOCHS, batch_size=32, verbose=0,
                               callbacks=[cb], validation_data=(xl[va], yl[va]) if select else None,
                               patience=HUGE if select else None)
            rec = curves.setdefault(key, {"stage1_epochs": stage1_epochs if with_stage1 else 0})
            if select:
                rec.update(val_loss=cb.val_loss, select_acc=cb.acc)
            else:
                rec["all_acc"] = cb.acc
            a._set_trainable(1)
    case["finetune"], case["stage1_rule"] = curves, dict(stage1)
    log(f"  {name} s{seed} finetune (stage 1: {stage1_epochs} epochs): {time.perf_counter() - t0:.1f} s")


# ----------------------------------------------------------------------------------------- analysis
def copy_policies(cases: list[dict]) -> list[dict[str, Any]]:
    """Every candidate Copy default, scored on every case."""
    rows = []
    keys = list(cases[0]["copy"])
    for key, patience, min_delta, refit in itertools.product(keys, PATIENCES, MIN_DELTAS, (False, True)):
        accs, epochs = [], []
        for c in cases:
            curve = c["copy"][key]
            e = stop_epoch(curve["val_loss"], patience, min_delta)
            accs.append((curve["all_acc"] if refit else curve["select_acc"])[e])
            epochs.append(e)
        rows.append({"config": key, "patience": patience, "min_delta": min_delta, "refit": refit,
                     "accs": accs, "epochs": epochs})
    return rows


def finetune_policies(cases: list[dict]) -> list[dict[str, Any]]:
    rows = []
    keys = list(cases[0]["finetune"])
    for key, patience, min_delta, refit in itertools.product(keys, PATIENCES, MIN_DELTAS, (False, True)):
        accs, epochs = [], []
        for c in cases:
            curve = c["finetune"][key]
            e = stop_epoch(curve["val_loss"], patience, min_delta)
            accs.append((curve["all_acc"] if refit else curve["select_acc"])[e])
            epochs.append((curve.get("stage1_epochs", 0), e))
        rows.append({"config": key, "patience": patience, "min_delta": min_delta, "refit": refit,
                     "accs": accs, "epochs": epochs})
    return rows


def tuned_copy(case: dict) -> float:
    """The oracle: best test accuracy over the rate grid and the fixed budgets (all labels, source head)."""
    return max(curve["all_acc"][b] for key, curve in case["copy"].items() for b in BUDGETS if b < len(curve["all_acc"]))


def tuned_finetune(case: dict) -> float:
    """The oracle for fine-tuning: the best of the tuned Copy, the by-hand grid and the stage-2 budgets (all labels)."""
    best = tuned_copy(case)
    for curve in case.get("finetune", {}).values():
        best = max([best] + [curve["all_acc"][b] for b in BUDGETS if b < len(curve["all_acc"])])
    for accs in case["hand"].values():
        best = max([best] + [accs[b] for b in HAND_BUDGETS if b < len(accs)])
    return best


def summarise(rows: list[dict], cases: list[dict], tuned: Any) -> list[dict]:
    for r in rows:
        accs = np.asarray(r["accs"])
        src = np.asarray([c["source_acc"] for c in cases])
        ref = np.asarray([tuned(c) for c in cases])
        r.update(mean=float(accs.mean()), worst_vs_source=float((accs - src).min()),
                 mean_vs_tuned=float((accs - ref).mean()), worst_vs_tuned=float((accs - ref).min()))
    return sorted(rows, key=lambda r: -r["mean"])


def choose(rows: list[dict], tolerance: float = 0.005) -> dict[str, Any]:
    """The rule to adopt: among those within `tolerance` of the best mean accuracy, the one whose worst
    case against the source model is best (then the higher mean)."""
    best = max(r["mean"] for r in rows)
    close = [r for r in rows if r["mean"] >= best - tolerance]
    r = max(close, key=lambda r: (round(r["worst_vs_source"], 6), r["mean"]))
    return {k: r[k] for k in ("config", "patience", "min_delta", "refit", "mean", "worst_vs_source", "mean_vs_tuned")}


def choose_finetune(cases: list[dict], chosen_copy: dict[str, Any]) -> dict[str, Any]:
    """FineTune's stage-2 rate (and stage 1 or not) under the held-out share, patience, min_delta and refit
    chosen for Copy: the adapters share those settings (one set of constants in shiftkit.adapt.base)."""
    rows = summarise(finetune_policies(cases), cases, tuned_finetune)
    same = [r for r in rows if r["patience"] == chosen_copy["patience"] and r["min_delta"] == chosen_copy["min_delta"]
            and r["refit"] == chosen_copy["refit"]]
    return choose(same)


def stage1_rule(chosen_copy: dict[str, Any]) -> dict[str, Any]:
    head_init, rest = chosen_copy["config"].split("@")
    rate, _, split = rest.partition("/v")
    return {"head_init": head_init, "rate": float(rate), "patience": chosen_copy["patience"],
            "min_delta": chosen_copy["min_delta"], "validation_split": float(split) if split else VALIDATION_SPLIT,
            "refit": chosen_copy["refit"]}


#: Reading of the figures, written after the run of 2026-11-30 (the tables above are regenerated from data).
NOTES = [
    "",
    "Reading of the figures (written after the run; the tables are regenerated from the recorded curves):",
    "",
    "* **Head from the source's weights** beats a random head clearly: with the same rule (0.2 held out, patience "
    "10, min_delta 1e-3, refit) 0.752 vs 0.704 mean, and a random head fell 0.23 below source-only in one case "
    "(synthetic-concept: 20 labels cannot re-learn what the source head knew).",
    "* **Held-out share.** At 0.2, 10 labels per class leave 2 per class (4 in all for a binary task) to choose "
    "the epochs: the rules then fell up to 0.05-0.10 below source-only. Holding out half and refitting on all "
    "labels was best in mean accuracy and never below source-only (the held-out half says \"keep the start\" "
    "where training hurts).",
    "* **Fixed budgets** (what a user who sets only `epochs` gets): Copy at the old default 1e-3 for 50 epochs "
    "averages 0.667; the chosen default 0.766.",
    "* **hospitals-label-shift**: the labelled sample is balanced (10 per class) while the target is 70% "
    "malignant, so any training on it pulls the prior towards 50/50. The held-out half shows no gain and the "
    "defaults keep the source model (0 epochs); a by-hand fine-tune falls to 0.31-0.74.",
    "* **FineTune**: running stage 1 before fine-tuning is worth about 0.01; the stage-2 rate matters little "
    "(3e-3, 1e-3 and 3e-4 within 0.006 under the shared rule). Patience, min_delta, held-out share and refit are "
    "one set of constants for both adapters, chosen on Copy; FineTune chose its stage-2 rate under them.",
    "* The differences among the top rules (<= 0.005) are within seed noise over 10 cases; the rule above, not "
    "the order, decided. `FALLBACK_EPOCHS` (too few labels to hold any out) was not measured.",
    "* What was decided after seeing figures (said plainly): the held-out shares 0.3 and 0.5 were added to the "
    "grid after the first pass showed 0.2 falling below source-only; FineTune's choice was restricted to the "
    "Copy-chosen patience / min_delta / refit (`choose_finetune`) after the run, because the library has one set "
    "of these constants (unrestricted, the rule picked stage-2 rate 3e-4 with patience 20: mean 0.789, vs 0.788).",
    "* This run took about 32 minutes on 2 shared, busy cores (load about 7), over the 15 minutes aimed at; "
    "`--scenarios`, `--seeds` and `--resume` run it in parts.",
]


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def report(results: dict[str, Any]) -> str:
    cases = results["cases"]
    names = [f"{c['scenario']} s{c['seed']}" for c in cases]
    lines = [
        "# How CopyAdapter's and FineTuneAdapter's defaults were chosen",
        "",
        f"Written by `benchmarks/choose_adapter_defaults.py` on {results['date']} "
        f"({results['machine']['nproc']} cores, {results['machine']['cpu']}; {results['wall_s']:.0f} s). "
        f"{LABELS_PER_CLASS} target labels per class; test accuracy on the remaining target samples. "
        "These are the *choosing* scenarios; the defaults are confirmed on five others in "
        "`benchmarks/RESULTS.md` (`bench_adapt.py defaults`).",
        "",
        "Scenarios and seeds: " + ", ".join(sorted({c["scenario"] for c in cases})) +
        f"; seeds {sorted({c['seed'] for c in cases})}.",
        "",
        "Grid: Copy head rate " + ", ".join(f"{r:g}" for r in COPY_RATES) + " (head from the source's weights) and "
        + ", ".join(f"{r:g}" for r in RANDOM_HEAD_RATES) + " (random head); held-out share "
        + f"{VALIDATION_SPLIT:g} (and " + ", ".join(f"{v:g}" for v in EXTRA_SPLITS) + " at rates "
        + ", ".join(f"{r:g}" for r in EXTRA_RATES) + ": configs `source@rate/v<share>`); early stopping patience "
        + ", ".join(map(str, PATIENCES)) + "; min_delta " + ", ".join(f"{d:g}" for d in MIN_DELTAS)
        + "; refit on all labels or not. FineTune stage-2 rate " + ", ".join(f"{r:g}" for r in FT_RATES)
        + f", with or without stage 1 (stage 1 = Copy's chosen rule: {cases[0].get('stage1_rule')}). At most "
        f"{EPOCHS} epochs per stage (`shiftkit.adapt.training.MAX_EPOCHS`): the curves are recorded that far, so the "
        "rules are applied exactly as the adapters apply them.",
        "",
        "Columns: mean test accuracy over the cases; worst (accuracy - source-only) over the cases (>= 0: "
        "never worse than the source model); mean and worst (accuracy - tuned), where *tuned* is the best "
        "of the rate grid x fixed budgets (25/50/100 epochs) on all labels, picked on the test set (an "
        "oracle).",
        "",
        "## Cases",
        "",
        "| case | source-only | tuned Copy (oracle) | tuned fine-tune (oracle) | by-hand FT 1e-3, 20 / 50 / 100 ep | by-hand FT 1e-4, 100 ep |",
        "|---|---|---|---|---|---|",
    ]
    for n, c in zip(names, cases):
        hand3 = c["hand"].get("0.001", [])
        hand4 = c["hand"].get("0.0001", [])
        pick = lambda a, b: _fmt(a[b]) if b < len(a) else "-"  # noqa: E731
        lines.append(f"| {n} | {_fmt(c['source_acc'])} | {_fmt(tuned_copy(c))} | {_fmt(tuned_finetune(c))} | "
                     + " / ".join(pick(hand3, b) for b in HAND_BUDGETS) + f" | {pick(hand4, max(HAND_BUDGETS))} |")

    def table(rows: list[dict], title: str, top: int) -> None:
        lines.extend(["", f"## {title}", "",
                      "| rank | config | patience | min_delta | refit | mean acc | worst vs source | mean vs tuned | worst vs tuned | epochs chosen (median) |",
                      "|---|---|---|---|---|---|---|---|---|---|"])
        for i, r in enumerate(rows[:top], start=1):
            ep = r["epochs"]
            med = np.median([e[-1] if isinstance(e, (list, tuple)) else e for e in ep])
            lines.append(f"| {i} | {r['config']} | {r['patience']} | {r['min_delta']:g} | {'yes' if r['refit'] else 'no'} | "
                         f"{_fmt(r['mean'])} | {r['worst_vs_source']:+.3f} | {r['mean_vs_tuned']:+.3f} | "
                         f"{r['worst_vs_tuned']:+.3f} | {med:g} |")

    copy_rows = summarise(copy_policies(cases), cases, tuned_copy)
    table(copy_rows, "Copy: the 25 best rules (of all, by mean accuracy)", 25)
    chosen = results.get("chosen", {})
    if chosen.get("copy"):
        sel = [r for r in copy_rows if r["config"] == chosen["copy"]["config"] and r["patience"] == chosen["copy"]["patience"]
               and r["min_delta"] == chosen["copy"]["min_delta"] and r["refit"] == chosen["copy"]["refit"]]
        table(sel, "Copy: the chosen default, per case below", 1)
        lines.extend(["", "| case | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
                      "| chosen Copy | " + " | ".join(_fmt(a) for a in sel[0]["accs"]) + " |",
                      "| epochs | " + " | ".join(str(e) for e in sel[0]["epochs"]) + " |",
                      "| source-only | " + " | ".join(_fmt(c["source_acc"]) for c in cases) + " |",
                      "| tuned (oracle) | " + " | ".join(_fmt(tuned_copy(c)) for c in cases) + " |"])
    # fixed-budget baselines (what a user setting only epochs gets), source head, all labels
    lines.extend(["", "## Copy with a fixed epoch budget on all labels (no early stopping), mean accuracy", "",
                  "| config | " + " | ".join(f"{b} epochs" for b in BUDGETS) + " |", "|---|" + "---|" * len(BUDGETS)])
    for key in [k for k in cases[0]["copy"] if "/v" not in k]:
        vals = [np.mean([c["copy"][key]["all_acc"][b] for c in cases]) for b in BUDGETS]
        lines.append(f"| {key} | " + " | ".join(_fmt(v) for v in vals) + " |")

    if not all(c.get("finetune") for c in cases):
        return "\n".join(lines) + "\n"
    ft_rows = summarise(finetune_policies(cases), cases, tuned_finetune)
    table(ft_rows, "FineTune: the 25 best rules (stage 2 rate; stage 1 as chosen for Copy)", 25)
    if chosen.get("finetune"):
        sel = [r for r in ft_rows if r["config"] == chosen["finetune"]["config"]
               and r["patience"] == chosen["finetune"]["patience"]
               and r["min_delta"] == chosen["finetune"]["min_delta"] and r["refit"] == chosen["finetune"]["refit"]]
        table(sel, "FineTune: the chosen default, per case below", 1)
        lines.extend(["", "| case | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
                      "| chosen FineTune | " + " | ".join(_fmt(a) for a in sel[0]["accs"]) + " |",
                      "| epochs (stage 1, stage 2) | " + " | ".join(f"{e[0]}, {e[1]}" for e in sel[0]["epochs"]) + " |",
                      "| by-hand FT 1e-3, 50 ep | " + " | ".join(
                          _fmt(c["hand"]["0.001"][50]) if len(c["hand"].get("0.001", [])) > 50 else "-" for c in cases) + " |",
                      "| tuned (oracle) | " + " | ".join(_fmt(tuned_finetune(c)) for c in cases) + " |"])
    if chosen.get("copy") and chosen.get("finetune"):
        cc, cf = chosen["copy"], chosen["finetune"]
        lines.extend([
            "", "## The choice", "",
            "Rule (fixed before the run, `choose()`): among the rules within 0.005 of the best mean accuracy, the one "
            "whose worst case against the source model is best, then the higher mean. It picked:",
            "",
            f"* Copy: `{cc['config']}`, patience {cc['patience']}, min_delta {cc['min_delta']:g}, refit "
            f"{'yes' if cc['refit'] else 'no'} (mean {cc['mean']:.3f}; worst vs source {cc['worst_vs_source']:+.3f}; "
            f"mean vs tuned {cc['mean_vs_tuned']:+.3f}).",
            f"* FineTune stage 2: `{cf['config']}`, patience {cf['patience']}, min_delta {cf['min_delta']:g}, refit "
            f"{'yes' if cf['refit'] else 'no'} (mean {cf['mean']:.3f}; worst vs source {cf['worst_vs_source']:+.3f}; "
            f"mean vs tuned {cf['mean_vs_tuned']:+.3f}).",
        ] + NOTES)
    return "\n".join(lines) + "\n"


def main() -> None:
    global EPOCHS, FT_EPOCHS, COPY_RATES, RANDOM_HEAD_RATES, FT_RATES, HAND_RATES, BUDGETS, HAND_BUDGETS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--out", default=str(HERE / "defaults_choice.md"), help="the report (Markdown)")
    parser.add_argument("--json", default=str(REPO / "build" / "choose_adapter_defaults.json"),
                        help="the recorded curves (build/ is not committed)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny grids and epochs")
    parser.add_argument("--report-only", action="store_true", help="re-write the .md from the saved .json")
    parser.add_argument("--resume", action="store_true", help="keep the cases already in the .json")
    args = parser.parse_args()
    out = Path(args.out)
    if args.quick:
        g = globals()
        for k, v in QUICK.items():
            g[k] = v
    json_path = Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads(json_path.read_text())
        cases = results["cases"]
        results["chosen"] = {"copy": choose(summarise(copy_policies(cases), cases, tuned_copy))}
        if all(c.get("finetune") for c in cases):
            results["chosen"]["finetune"] = choose_finetune(cases, results["chosen"]["copy"])
        out.write_text(report(results))
        return
    results: dict[str, Any] = {"cases": [], "date": _dt.date.today().isoformat(), "machine": machine_info(),
                               "wall_s": 0.0}
    if args.resume and json_path.exists():
        results = json.loads(json_path.read_text())
    start = time.perf_counter()
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    def save() -> None:
        nonlocal start
        results["wall_s"] = results.get("wall_s", 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        json_path.write_text(json.dumps(results))

    done = {(c["scenario"], c["seed"]) for c in results["cases"]}
    for name, seed in itertools.product(args.scenarios, args.seeds):  # part 1: Copy
        if (name, seed) not in done:
            results["cases"].append(run_copy(name, seed, log))
            save()
    for case in results["cases"]:  # (cases of an earlier run without the larger held-out shares)
        if not all(f"source@{r:g}/v{v:g}" in case["copy"] for r in EXTRA_RATES for v in EXTRA_SPLITS):
            t0 = time.perf_counter()
            run_copy_splits(case)
            log(f"  {case['scenario']} s{case['seed']} copy, larger held-out shares: {time.perf_counter() - t0:.1f} s")
            save()
    cases = results["cases"]
    results.setdefault("chosen", {})["copy"] = choose(summarise(copy_policies(cases), cases, tuned_copy))
    rule = stage1_rule(results["chosen"]["copy"])
    log(f"chosen Copy rule: {results['chosen']['copy']}")
    for case in cases:  # part 2: FineTune, with stage 1 as chosen
        if case.get("stage1_rule") != rule:
            run_finetune(case, rule, log)
            save()
    results["chosen"]["finetune"] = choose_finetune(cases, results["chosen"]["copy"])
    log(f"chosen FineTune rule: {results['chosen']['finetune']}")
    save()
    out.write_text(report(results))
    print(f"wrote {out.with_suffix('.md')} ({results['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
