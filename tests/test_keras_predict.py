"""shiftkit._keras.predict: one output row per input row, also for a model built under 2 replicas."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np

from shiftkit._keras import predict


def test_predict_matches_model_predict_on_one_device():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(70, 3)).astype("float32")
    np.testing.assert_allclose(predict(model, x, batch_size=32), model.predict(x, verbose=0), rtol=1e-6)


def test_predict_of_a_model_built_under_two_replicas_has_one_row_per_input():
    """Regression: Keras's predict_on_batch returned each batch once per replica (128 rows for 64 inputs)."""
    code = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        import json, numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from shiftkit._keras import predict
        x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
            inside = predict(model, x, batch_size=32)
        outside = predict(model, x, batch_size=32)
        reference = np.asarray(model(x, training=False))
        print("JSON", json.dumps({"inside": list(inside.shape), "outside": list(outside.shape),
                                  "diff": float(max(np.abs(inside - reference).max(), np.abs(outside - reference).max()))}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("JSON", 1)[1].splitlines()[0])
    assert out["inside"] == [64, 3] and out["outside"] == [64, 3]
    assert out["diff"] < 1e-6
