"""alignment_trainer's extensions: a trainable alignment layer trains with the model; class-weighted terms."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from shiftkit.adapt.alignment import alignment_trainer


def _parts(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((4,))
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="f")], name="base")
    head = keras.layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inp, head(base(inp)))
    return model, base, head


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 4)).astype("float32")
    ys = np.r_[np.zeros(n // 4), np.ones(n - n // 4)].astype("int32")  # 1:3 class mix
    xt = rng.normal(size=(n, 4)).astype("float32")
    return xs, ys, xt


class Probe(keras.layers.Layer):
    """A trainable 'alignment' term: mean of (features @ v)^2 on the target batch (v starts at 1)."""

    def build(self, input_shape):
        self.v = self.add_weight(shape=(3,), initializer="ones", name="v")

    def call(self, fs, ft):
        return ops.mean(ops.square(ops.matmul(ft, self.v[:, None])))


def _fit(trainer, xs, ys, xt, steps=3):
    ds = tf.data.Dataset.from_tensors(((xs, ys), xt)).repeat()
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    return trainer.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)


def test_a_layer_alignment_is_tracked_and_trained():
    model, base, head = _parts()
    probe = Probe()
    probe.build((None, 3))
    trainer = alignment_trainer(
        model, base, head, loss_fn=keras.losses.SparseCategoricalCrossentropy(),
        accuracy=keras.metrics.SparseCategoricalAccuracy(name="accuracy"), alignment=probe, weight=1.0,
        alignment_name="probe", target_labels=False,
    )
    assert any(v is probe.v for v in trainer.trainable_variables)
    before = np.array(probe.v)
    xs, ys, xt = _data()
    _fit(trainer, xs, ys, xt)
    assert not np.allclose(before, np.array(probe.v)), "the alignment layer's weights did not train"


def test_class_weights_reach_the_alignment_normalised_to_mean_one():
    model, base, head = _parts()
    seen = []

    def alignment(fs, ft, source_weights=None):
        seen.append(source_weights)
        return ops.sum(source_weights * ops.mean(ops.square(fs), axis=1)) * 0.0 + ops.mean(source_weights)

    xs, ys, xt = _data()
    trainer = alignment_trainer(
        model, base, head, loss_fn=keras.losses.SparseCategoricalCrossentropy(),
        accuracy=keras.metrics.SparseCategoricalAccuracy(name="accuracy"), alignment=alignment, weight=1.0,
        alignment_name="w", target_labels=False, class_weights=[3.0, 1.0],
    )
    history = _fit(trainer, xs, ys, xt)
    # Mean-1 normalisation: the logged term (mean of the weights) is exactly 1.
    np.testing.assert_allclose(history.history["w"], [1.0], rtol=1e-6)
    # Reference: weight 3 for class 0 (8 samples), 1 for class 1 (24): mean 1.5 -> 2.0 and 0.667.
    eager = trainer._source_weights(ops.convert_to_tensor(ys))
    np.testing.assert_allclose(np.array(eager), np.where(ys == 0, 2.0, 2.0 / 3.0), rtol=1e-6)
    assert seen, "the alignment was never called with source_weights"


def test_weight_task_weights_the_source_task_loss():
    """With weight_task the logged task loss equals the class-weighted cross-entropy at the start."""
    xs, ys, xt = _data()
    results = {}
    for weight_task in (False, True):
        model, base, head = _parts()
        p = model.predict(xs, verbose=0)
        ce = -np.log(p[np.arange(len(ys)), ys])
        w = np.where(ys == 0, 3.0, 1.0)
        w = w / w.mean()
        results[weight_task] = (float(ce.mean()), float((w * ce).mean()))
        trainer = alignment_trainer(
            model, base, head, loss_fn=keras.losses.SparseCategoricalCrossentropy(),
            accuracy=keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            alignment=lambda fs, ft, source_weights=None: ops.mean(source_weights) * 0.0, weight=1.0,
            alignment_name="zero", target_labels=False, class_weights=[3.0, 1.0], weight_task=weight_task,
        )
        trainer.compile(optimizer=keras.optimizers.SGD(0.0))  # no update: the loss of the start
        ds = tf.data.Dataset.from_tensors(((xs, ys), xt)).repeat()
        logged = trainer.fit(ds, epochs=1, steps_per_epoch=1, verbose=0).history["task_loss"][0]
        expected = results[weight_task][1] if weight_task else results[weight_task][0]
        np.testing.assert_allclose(logged, expected, rtol=1e-4)
    assert abs(results[True][1] - results[True][0]) > 1e-3  # the two figures differ: the test can tell them apart
