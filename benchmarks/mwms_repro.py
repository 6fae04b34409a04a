"""Does Keras 3 train under `tf.distribute.MultiWorkerMirroredStrategy`? Two workers on localhost (issue 12).

Starts two worker processes with a `TF_CONFIG` on localhost ports; each builds the same small model under
the strategy and calls plain `model.fit` (no shiftkit), then `MMDAdapter.fit`. Prints one line per worker
and attempt. On TensorFlow 2.21 / Keras 3.15 (this repository's pins) every `fit` fails with
"Attempt to convert a value (PerReplica:...) with an unsupported type": Keras 3's TensorFlow trainer does
not support the multi-worker strategy (keras-team/keras#20585, tensorflow/tensorflow#72388), so
neither can shiftkit's adapters, which train through `model.fit`. See docs/distributed.md.

    python benchmarks/mwms_repro.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def worker(index: int, ports: list[int]) -> None:
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                                          "task": {"type": "worker", "index": index}})
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import keras
    import numpy as np
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(256, 4)).astype("float32")
    ys = (xs[:, 0] > 0).astype("int64")
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
    for name, call in (("keras model.fit", lambda: model.fit(xs, ys, epochs=1, batch_size=64, verbose=0)),
                       ("shiftkit MMDAdapter.fit", lambda: _adapter_fit(strategy, model, xs, ys))):
        try:
            call()
            print(f"worker {index}: {name}: OK ({strategy.num_replicas_in_sync} replicas)", flush=True)
        except Exception as exc:  # noqa: BLE001 - the point is to report it
            print(f"worker {index}: {name}: FAILED {type(exc).__name__}: {' '.join(str(exc).split())[:120]}",
                  flush=True)


def _adapter_fit(strategy, model, xs, ys):
    from shiftkit.adapt import MMDAdapter

    with strategy.scope():
        MMDAdapter(model).fit(xs, ys, xs + 0.5, epochs=1, batch_size=64, verbose=0, seed=0)


def main() -> int:
    if len(sys.argv) == 3:
        worker(int(sys.argv[1]), [int(p) for p in sys.argv[2].split(",")])
        return 0
    ports = [_free_port(), _free_port()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, __file__, str(i), ",".join(map(str, ports))], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        print(out.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
