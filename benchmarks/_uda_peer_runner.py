"""ADAPT's DANN, DeepCORAL and IWC on the arrays and source model `bench_adapt.py uda` saved (peer rows).

Runs inside the ADAPT virtualenv (`benchmarks/.venv-adapt`, created with `--system-site-packages` so it
shares this machine's TensorFlow and Keras) and never imports shiftkit:

    python _uda_peer_runner.py --data cell.npz --model source.keras --out result.json

The source model (a Keras Sequential saved by the benchmark) is split into an encoder (every layer but
the last, with its trained weights) and a task network (the last layer, with its weights), so every
peer starts from the same source model as shiftkit's adapters:

* DANN (ADAPT's default lambda_=0.1, gamma=10; discriminator Dense(64, relu) -> Dense(1, sigmoid)) and
  DeepCORAL (its default lambda_=1.0): no target labels; `epochs`, `batch_size`, Adam(`learning_rate`).
* IWC: importance weights from a domain classifier (standardised inputs, logistic regression), then the
  source model (a copy, with its weights) trained further on the weighted source data, same epochs,
  batch size and rate. Images are flattened for the domain classifier and reshaped back by a Reshape
  layer in front of the copied model (ADAPT's instance-based methods take 2-D inputs).

The JSON written has the source-only accuracy recomputed here (a check that both sides score the same
model) and, per method, the target-test accuracy and the fit time, or an `error` entry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    from adapt.feature_based import DANN, DeepCORAL
    from adapt.instance_based import IWC
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = np.load(args.data)
    cfg = json.loads(str(data["config"]))
    seed = int(cfg["seed"])
    xs, ys, xt = data["x_source"], data["y_source"], data["x_target"]
    xtest, ytest = data["x_test"], data["y_test"]
    source = keras.models.load_model(args.model, safe_mode=True)
    n_out = int(source.outputs[0].shape[-1])
    binary = n_out == 1
    y_fit = ys.reshape(-1, 1).astype("float32") if binary else np.eye(n_out, dtype="float32")[ys]
    loss = "binary_crossentropy" if binary else "categorical_crossentropy"

    def accuracy(model, x=xtest):
        out = np.asarray(model.predict(x, verbose=0))
        pred = (out.reshape(-1) > 0.5).astype(int) if binary else out.argmax(-1)
        return float(np.mean(pred == ytest))

    result = {"source_accuracy": accuracy(source), "python": sys.version.split()[0]}

    def networks():
        layers = source.layers
        encoder = keras.Sequential([keras.Input(xs.shape[1:])] + [
            type(layer).from_config(layer.get_config()) for layer in layers[:-1]], name="encoder")
        for new, old in zip(encoder.layers, layers[:-1]):
            new.set_weights(old.get_weights())
        head = type(layers[-1]).from_config(layers[-1].get_config())
        task = keras.Sequential([keras.Input((int(encoder.outputs[0].shape[-1]),)), head], name="task")
        head.set_weights(layers[-1].get_weights())
        return encoder, task

    for method in ("ADAPT DANN", "ADAPT DeepCORAL", "ADAPT IWC"):
        keras.utils.set_random_seed(seed)
        try:
            t0 = time.perf_counter()
            fit = {"epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "verbose": 0}
            if method == "ADAPT IWC":
                flat = int(np.prod(xs.shape[1:]))
                model = keras.Sequential([keras.Input((flat,)), keras.layers.Reshape(xs.shape[1:])] + [
                    type(layer).from_config(layer.get_config()) for layer in source.layers], name="weighted")
                for new, old in zip(model.layers[1:], source.layers):
                    new.set_weights(old.get_weights())
                model.compile(optimizer=keras.optimizers.Adam(cfg["learning_rate"]), loss=loss)
                clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
                iwc = IWC(estimator=model, classifier=clf, Xt=xt.reshape(len(xt), -1), copy=False,
                          random_state=seed, verbose=0)
                iwc.fit(xs.reshape(len(xs), -1), y_fit, **fit)
                acc = accuracy(model, xtest.reshape(len(xtest), -1))
            else:
                encoder, task = networks()
                common = {"encoder": encoder, "task": task, "Xt": xt, "loss": loss,
                          "optimizer": keras.optimizers.Adam(cfg["learning_rate"]), "random_state": seed, "verbose": 0}
                if method == "ADAPT DANN":
                    d = int(encoder.outputs[0].shape[-1])
                    disc = keras.Sequential([keras.Input((d,)), keras.layers.Dense(64, activation="relu"),
                                             keras.layers.Dense(1, activation="sigmoid")], name="disc")
                    model = DANN(discriminator=disc, lambda_=0.1, **common)
                else:
                    model = DeepCORAL(lambda_=1.0, **common)
                model.fit(xs, y_fit, **fit)
                acc = accuracy(model)
            result[method] = {"accuracy": acc, "seconds": time.perf_counter() - t0}
        except Exception as exc:  # noqa: BLE001 - one failing peer must not hide the others
            result[method] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-1500:]}
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
