"""Run ADAPT's DANN, DeepCORAL and FineTuning on the arrays `bench_adapt.py` saved (peer comparison).

Runs inside the ADAPT virtualenv (`benchmarks/.venv-adapt`, its own TensorFlow/Keras), never imports
shiftkit, and rebuilds the example's CNN (`examples/digits_shift.py: build_cnn`) layer for layer, loading
the source model's trained weights from the .npz, so every peer starts from the same source model and
sees the same data as the shiftkit adapters:

    python _adapt_peer_runner.py --data arrays.npz --out result.json

The .npz holds the splits of `make_data` (x_source, y_source, x_target_adapt, x_labeled, y_labeled,
x_target_test, y_target_test), the source weights as `w0, w1, ...` and a JSON `config` string
(epochs, learning rates, batch sizes, seed). The JSON written has, per method, the target-test
accuracy, the fit time and the per-epoch times; or an `error` entry with the exception text.

Settings (mirroring the shiftkit rows):
    * DANN and DeepCORAL (no target labels), like MMDAdapter: encoder = the source layers up to
      "features", task = the source output layer, both starting from the source weights; Adam at the
      MMD rate, the MMD epochs and batch size; ADAPT's default trade-off (DANN lambda_=0.1,
      DeepCORAL lambda_=1.0), and DANN again with lambda_=0.01; DANN's discriminator
      Dense(64, relu) -> Dense(1, sigmoid).
    * FineTuning (10 labels per class), like FineTuneAdapter: encoder from the source weights, a new
      Dense(10, softmax) task head trained alone on the frozen encoder (`training=False`) for the head
      epochs at the head rate, then encoder and head together (a second FineTuning on the first's
      networks, `training=True`) for the fine-tune epochs at the fine-tune rate (`optimizer` and
      `optimizer_enc`), batch 32.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_cnn(input_shape, n_classes):
    """Same layers, names and order as `examples/digits_shift.py: build_cnn`."""
    import keras

    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="features"),
            keras.layers.Dense(n_classes, activation="softmax", name="out"),
        ],
        name="digits_cnn",
    )


def split_networks(source, input_shape, n_classes, *, copy_head=True):
    """(encoder, task) Sequential models with the source weights (task: fresh when copy_head=False)."""
    import keras

    encoder = keras.Sequential([keras.Input(input_shape)] + [
        type(layer).from_config(layer.get_config()) for layer in source.layers[:-1]
    ], name="encoder")
    for new, old in zip(encoder.layers, source.layers[:-1]):
        new.set_weights(old.get_weights())
    head = source.layers[-1]
    task = keras.Sequential([keras.Input((int(encoder.outputs[0].shape[-1]),)),
                             keras.layers.Dense(n_classes, activation="softmax", name="task_out")], name="task")
    if copy_head:
        task.layers[-1].set_weights(head.get_weights())
    return encoder, task


def make_epoch_timer():
    """A Keras callback recording the wall time of every epoch in `.times`."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t0)

    return EpochTimer()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--methods", nargs="+", default=["DANN", "DANN lambda 0.01", "DeepCORAL", "FineTuning"])
    args = parser.parse_args(argv)

    out = {"python": sys.version.split()[0]}
    try:
        import adapt
        import keras
        import numpy as np
        import tensorflow as tf
        from adapt.feature_based import DANN, DeepCORAL
        from adapt.parameter_based import FineTuning
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which writes it to RESULTS.md
        out["error"] = f"import failed: {type(exc).__name__}: {exc}"
        with open(args.out, "w") as fh:
            json.dump(out, fh)
        return 0

    try:
        from importlib.metadata import version

        out["adapt_version"] = version("adapt")
    except Exception:  # noqa: BLE001
        out["adapt_version"] = getattr(adapt, "__version__", "?")
    out.update(tensorflow=tf.__version__, keras=keras.__version__, numpy=np.__version__)

    data = np.load(args.data)
    cfg = json.loads(str(data["config"]))
    seed = int(cfg["seed"])
    xs, ys = data["x_source"], data["y_source"]
    xt = data["x_target_adapt"]
    xl, yl = data["x_labeled"], data["y_labeled"]
    xtest, ytest = data["x_target_test"], data["y_target_test"]
    n_classes = int(cfg["n_classes"])
    input_shape = tuple(int(d) for d in xs.shape[1:])
    onehot = np.eye(n_classes, dtype="float32")

    source = build_cnn(input_shape, n_classes)
    n_weights = len([k for k in data.files if k.startswith("w") and k[1:].isdigit()])
    source.set_weights([data[f"w{i}"] for i in range(n_weights)])
    # Same backbone, same weights: the source-only accuracy must equal the shiftkit side's.
    out["source_only_accuracy"] = float(np.mean(source.predict(xtest, verbose=0).argmax(-1) == ytest))

    def accuracy(model):
        return float(np.mean(np.asarray(model.predict(xtest, verbose=0)).argmax(-1) == ytest))

    results = {}
    for method in args.methods:
        keras.utils.set_random_seed(seed)
        timer = make_epoch_timer()
        try:
            t0 = time.perf_counter()
            if method in ("DANN", "DANN lambda 0.01", "DeepCORAL"):
                encoder, task = split_networks(source, input_shape, n_classes, copy_head=True)
                common = {"encoder": encoder, "task": task, "Xt": xt, "loss": "categorical_crossentropy",
                          "optimizer": keras.optimizers.Adam(cfg["mmd_learning_rate"]),
                          "random_state": seed, "verbose": 0}
                if method.startswith("DANN"):
                    disc = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                                             keras.layers.Dense(1, activation="sigmoid")], name="disc")
                    model = DANN(discriminator=disc, lambda_=0.01 if method.endswith("0.01") else 0.1, **common)
                else:
                    model = DeepCORAL(lambda_=1.0, **common)
                model.fit(xs, onehot[ys], epochs=cfg["mmd_epochs"], batch_size=cfg["mmd_batch_size"],
                          callbacks=[timer], verbose=0)
            elif method == "FineTuning":
                # Two ADAPT FineTuning fits (ADAPT's own two-step recipe, as in its docstring): the head
                # alone on the frozen encoder (training=False), then encoder + head. Not `pretrain=True`:
                # with it, adapt 0.4.5 under Keras 3 trains the task head of the second stage with the
                # *pretraining* optimizer (Keras's compile overwrites the `optimizer` attribute ADAPT keeps
                # its parameter in), i.e. at the head rate instead of the fine-tune rate (measured; see
                # `notes` in the output).
                encoder, task = split_networks(source, input_shape, n_classes, copy_head=False)
                head_timer = make_epoch_timer()
                stage1 = FineTuning(encoder=encoder, task=task, training=False,
                                    optimizer=keras.optimizers.Adam(cfg["head_learning_rate"]),
                                    loss="categorical_crossentropy", random_state=seed, verbose=0)
                stage1.fit(xl, onehot[yl], epochs=cfg["head_epochs"], batch_size=cfg["labeled_batch_size"],
                           callbacks=[head_timer], verbose=0)
                model = FineTuning(encoder=stage1.encoder_, task=stage1.task_, training=True,
                                   optimizer=keras.optimizers.Adam(cfg["fine_tune_learning_rate"]),
                                   optimizer_enc=keras.optimizers.Adam(cfg["fine_tune_learning_rate"]),
                                   loss="categorical_crossentropy", random_state=seed, verbose=0)
                model.fit(xl, onehot[yl], epochs=cfg["fine_tune_epochs"], batch_size=cfg["labeled_batch_size"],
                          callbacks=[timer], verbose=0)
                out["head_epoch_times"] = head_timer.times
                out["head_stage_accuracy"] = accuracy(stage1)
                out.setdefault("notes", {})["FineTuning_learning_rates"] = {
                    "head_stage": float(stage1.optimizer.learning_rate.numpy()),
                    "fine_tune_task": float(model.optimizer.learning_rate.numpy()),
                    "fine_tune_encoder": float(model.optimizer_enc.learning_rate.numpy()),
                }
            else:
                raise ValueError(f"unknown method {method!r}")
            seconds = time.perf_counter() - t0
            results[method] = {"accuracy": accuracy(model), "seconds": seconds, "epoch_times": timer.times}
        except Exception as exc:  # noqa: BLE001 - one failing peer must not hide the others
            results[method] = {"error": f"{type(exc).__name__}: {exc}",
                               "traceback": traceback.format_exc()[-2000:]}
    out["results"] = results
    with open(args.out, "w") as fh:
        json.dump(out, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
