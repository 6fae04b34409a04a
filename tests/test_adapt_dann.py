"""DANNAdapter: gradient reversal, the lambda schedule, the discriminator, a rotated shift, saving, strategies, errors."""

import json
import math
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from shiftkit.adapt import registry
from shiftkit.adapt.base import load_adapter
from shiftkit.adapt.dann import (
    DANNAdapter,
    DANNLearningRate,
    DomainDiscriminator,
    dann_lambda,
    gradient_reversal,
)

EPOCHS = 30
ANGLE = 60.0  # degrees: the target's class axis turned away from the source's


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _rotated(n, *, target, seed, angle=ANGLE):
    """2 classes in 10-D, means -2 / +2 on x0; the target's (x0, x2) plane is rotated by `angle` degrees.

    The source model's x0 direction carries less signal and more noise on the target (about 0.98 -> 0.84
    for a linear rule at 60 degrees); making target features look like source features turns it back.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 10))
    x[:, 0] += np.where(y == 1, 2.0, -2.0)
    if target:
        a = np.deg2rad(angle)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        x[:, [0, 2]] = x[:, [0, 2]] @ rot.T
    return x.astype("float32"), y


def _mlp(seed=0, n_in=10):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(16, activation="relu", name="h1"),
            keras.layers.Dense(8, activation="relu", name="h2"),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ],
        name="source_mlp",
    )


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(1) == y))


@pytest.fixture(scope="module")
def setting():
    xs, ys = _rotated(400, target=False, seed=0)
    xt, yt = _rotated(400, target=True, seed=1)
    xt_test, yt_test = _rotated(400, target=True, seed=2)
    src = _mlp()
    src.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    src.fit(xs, ys, epochs=20, batch_size=64, verbose=0)
    return {"src": src, "xs": xs, "ys": ys, "xt": xt, "yt": yt, "xt_test": xt_test, "yt_test": yt_test}


@pytest.fixture(scope="module")
def results(setting):
    """DANNAdapter vs its own training without the adversarial term (lambda_max=0, same budget and optimizer).

    The mechanism at lambda_max=1 with Adam and no annealing (this low-dimensional, overlapping shift
    takes a strong adversarial pull: over data/model seeds 0-2, +0.08 over source only at 1.0;
    benchmarks/dann_choice.md section 3), and the defaults (SGD with momentum, lambda_max 0.1, annealed:
    chosen on the uda digits-blur and gru-placement, section 5) against their own lambda 0.
    """
    s = setting
    src, xs, ys, xt = s["src"], s["xs"], s["ys"], s["xt"]
    before = _weights(src)
    adapted = DANNAdapter(src, lambda_max=1.0, anneal_learning_rate=False, optimizer="adam", learning_rate=1e-3).fit(
        xs, ys, xt, epochs=EPOCHS, verbose=0, seed=0)
    plain = DANNAdapter(src, lambda_max=0.0, anneal_learning_rate=False, optimizer="adam", learning_rate=1e-3).fit(
        xs, ys, xt, epochs=EPOCHS, verbose=0, seed=0)
    default = DANNAdapter(src).fit(xs, ys, xt, epochs=EPOCHS, verbose=0, seed=0)
    default_plain = DANNAdapter(src, lambda_max=0.0).fit(xs, ys, xt, epochs=EPOCHS, verbose=0, seed=0)
    out = {
        "source_weights_before": before,
        "adapted": adapted,
        "plain": plain,
        "acc": {
            "source_model": _accuracy(src, s["xt_test"], s["yt_test"]),
            "source_only": plain.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
            "dann": adapted.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
            "dann_default": default.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
            "default_lambda_0": default_plain.evaluate(s["xt_test"], s["yt_test"])["accuracy"],
        },
    }
    print("target accuracy:", out["acc"])
    return out


# ------------------------------------------------------------------------------------------- the pieces
def test_gradient_reversal_is_minus_lambda_times_the_identity_gradient():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(5, 3)).astype("float32"))
    w = tf.constant(rng.normal(size=(3, 2)).astype("float32"))

    def head(v):  # any downstream function: its gradient through the identity is the reference
        return tf.reduce_sum(tf.tanh(v @ w) ** 2)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        reference = head(tf.identity(x))
        reversed_ = {lam: head(gradient_reversal(x, lam)) for lam in (0.0, 0.37, 1.0, 2.5)}
        as_tensor = head(gradient_reversal(x, tf.constant(0.37)))
    g_ref = tape.gradient(reference, x).numpy()
    assert np.abs(g_ref).min() > 0
    for lam, value in reversed_.items():
        assert float(value) == float(reference)  # forward: the identity, exactly
        np.testing.assert_array_equal(tape.gradient(value, x).numpy(), (-np.float32(lam)) * g_ref)
    np.testing.assert_array_equal(tape.gradient(as_tensor, x).numpy(), (-np.float32(0.37)) * g_ref)

    @tf.function
    def compiled(v, lam):
        with tf.GradientTape() as t:
            t.watch(v)
            out = head(gradient_reversal(v, lam))
        return out, t.gradient(out, v)

    out, grad = compiled(x, tf.constant(0.5))
    assert float(out) == float(reference)
    np.testing.assert_array_equal(grad.numpy(), np.float32(-0.5) * g_ref)


def test_schedule_values_follow_the_paper():
    def formula(p, lam=1.0):
        return lam * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)

    for p in (0.0, 0.5, 1.0):
        assert float(dann_lambda(p)) == pytest.approx(formula(p), rel=1e-12, abs=0)
        assert float(dann_lambda(p, 0.3)) == pytest.approx(formula(p, 0.3), rel=1e-12, abs=0)
        assert float(dann_lambda(tf.constant(p), 0.3)) == pytest.approx(formula(p, 0.3), rel=1e-6)
    assert float(dann_lambda(0.0)) == 0.0
    assert float(dann_lambda(0.5)) == pytest.approx(0.9866142981514305, rel=1e-12)
    assert float(dann_lambda(1.0)) == pytest.approx(0.9999092042625951, rel=1e-12)
    assert float(dann_lambda(0.5, 1.0, gamma=1.0)) == pytest.approx(formula_gamma := 2 / (1 + math.exp(-0.5)) - 1)
    assert formula_gamma < 0.3
    # the learning-rate annealing mu_0 / (1 + 10 p)^0.75, p = step / total (held at 1 after the end)
    sched = DANNLearningRate(1e-3, total_steps=40)
    for step, p in ((0, 0.0), (20, 0.5), (40, 1.0), (80, 1.0)):
        assert float(sched(step)) == pytest.approx(1e-3 / (1 + 10 * p) ** 0.75, rel=1e-6)


def test_discriminator_minimises_its_loss_and_reverses_the_features_gradient():
    """The discriminator's weights get the plain gradient of L_d; the features get -lambda_p times theirs."""
    rng = np.random.default_rng(1)
    fs = tf.constant(rng.normal(size=(6, 4)).astype("float32"))
    ft = tf.constant((rng.normal(size=(5, 4)) + 1.0).astype("float32"))
    disc = DomainDiscriminator((8,), lambda_max=0.8, total_steps=10, seed=0)
    disc.build((None, 4))
    disc.step.assign(5.0)  # p = 0.5
    lam = 0.8 * (2.0 / (1.0 + math.exp(-5.0)) - 1.0)
    assert float(disc.current_lambda()) == pytest.approx(lam, rel=1e-6)

    def reference_loss(a, b):  # the same MLP without the reversal: BCE(0 | source), BCE(1 | target)
        la, lb = disc.logits(a), disc.logits(b)
        return 0.5 * (tf.reduce_mean(tf.nn.softplus(la)) + tf.reduce_mean(tf.nn.softplus(-lb)))

    with tf.GradientTape(persistent=True) as tape:
        tape.watch([fs, ft])
        loss = disc(fs, ft)
        ref = reference_loss(fs, ft)
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    assert float(disc.step.numpy()) == 6.0  # one call, one step
    w = disc.trainable_weights
    assert len(w) == 4
    for g, g_ref in zip(tape.gradient(loss, w), tape.gradient(ref, w)):
        np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=1e-5, atol=1e-7)
    for x in (fs, ft):
        g, g_ref = tape.gradient(loss, x).numpy(), tape.gradient(ref, x).numpy()
        assert np.abs(g_ref).max() > 1e-4
        np.testing.assert_allclose(g, -np.float32(lam) * g_ref, rtol=1e-5, atol=1e-7)
    # the domain-accuracy counts: logit <= 0 is "source", > 0 "target"
    ls, lt = disc.logits(fs).numpy(), disc.logits(ft).numpy()
    assert float(disc.correct.numpy()) == float((ls <= 0).sum() + (lt > 0).sum())
    assert float(disc.seen.numpy()) == 11.0


def test_discriminator_before_the_schedule_starts_leaves_the_features_alone():
    disc = DomainDiscriminator((), lambda_max=1.0, total_steps=100, seed=0)
    disc.build((None, 3))
    f = tf.constant(np.ones((4, 3), "float32"))
    with tf.GradientTape() as tape:
        tape.watch(f)
        loss = disc(f, 2.0 * f)
    assert float(disc.current_lambda()) > 0  # the next step's
    assert np.all(tape.gradient(loss, f).numpy() == 0.0)  # p = 0 at the first step: lambda_0 = 0


# ------------------------------------------------------------------------------------------- the adapter
def test_negligible_rate_keeps_the_source_model_and_logs_the_objective(setting):
    s = setting
    xs, ys, xt = s["xs"][:64], s["ys"][:64], s["xt"][:64]
    a = DANNAdapter(s["src"]).fit(xs, ys, xt, epochs=2, batch_size=32, learning_rate=1e-12, verbose=0, seed=0)
    assert a.head_initialised_from_source_
    np.testing.assert_allclose(a.predict(s["xt_test"]), s["src"].predict(s["xt_test"], verbose=0), atol=1e-6)
    hist = a.history_.history
    for key in ("loss", "task_loss", "domain_loss", "accuracy", "domain_accuracy"):
        assert len(hist[key]) == 2, key
    # loss = task + domain loss (the sum whose gradient is taken, the encoder's part reversed)
    np.testing.assert_allclose(hist["loss"], np.add(hist["task_loss"], hist["domain_loss"]), rtol=1e-5)
    # an untrained discriminator is near chance: L_d near log 2
    assert abs(hist["domain_loss"][0] - math.log(2.0)) < 0.3
    assert 0.0 <= min(hist["domain_accuracy"]) and max(hist["domain_accuracy"]) <= 1.0
    disc = a.discriminator_
    assert float(disc.step.numpy()) == 4.0 and disc.total_steps == 4  # 2 epochs x 2 steps: p reached 1


@pytest.mark.slow
def test_dann_improves_a_rotated_shift(results):
    acc = results["acc"]
    # the shift hurts the source model; more source training (the same budget, lambda 0) does not help
    assert acc["source_model"] < 0.9 and acc["source_only"] < 0.9, acc
    assert acc["dann"] >= acc["source_only"] + 0.04, acc
    assert acc["dann"] >= acc["source_model"] + 0.04, acc
    # the defaults (SGD with momentum, lambda_max 0.1, annealed: chosen on a CNN and a GRU) do no harm here
    assert acc["dann_default"] >= acc["source_model"] - 0.02, acc
    assert acc["dann_default"] >= acc["default_lambda_0"] - 0.02, acc
    hist = results["adapted"].history_.history
    for key in ("loss", "task_loss", "domain_loss", "accuracy", "domain_accuracy"):
        assert len(hist[key]) == EPOCHS, key
    # the discriminator is fooled more often with the reversal than without it
    plain = results["plain"].history_.history
    assert np.mean(hist["domain_accuracy"][-5:]) < np.mean(plain["domain_accuracy"][-5:]), (hist, plain)


@pytest.mark.slow
def test_source_untouched_and_fitted_model(results, setting):
    src = setting["src"]
    before, after = results["source_weights_before"], _weights(src)
    assert len(before) == len(after) and all(np.array_equal(u, v) for u, v in zip(before, after))
    a = results["adapted"]
    assert isinstance(a.model, keras.Model) and a.model is a.model_
    assert a.features(setting["xt"]).shape == (400, 8)
    assert a.predict(setting["xt"]).shape == (400, 2)
    assert a.base_model.get_layer("h1").kernel is not src.get_layer("h1").kernel
    # the discriminator is not part of the adapted model (nothing of it is saved)
    assert all("domain_discriminator" not in w.path for w in a.model.weights)


@pytest.mark.slow
def test_save_load_round_trip(results, setting, tmp_path):
    a = results["adapted"]
    path = a.save(tmp_path / "dann.keras")
    b = load_adapter(path)
    assert isinstance(b, DANNAdapter)
    assert b.get_config() == a.get_config() and b.lambda_max == 1.0 and not b.anneal_learning_rate
    assert b.optimizer == "adam" and b.learning_rate == 1e-3
    # a file saved before the optimizer was a setting was trained with Adam at its stored rate
    old = DANNAdapter(setting["src"])
    old._restore({"feature_layer": None, "lambda_max": 0.03, "discriminator_units": [64], "learning_rate": 1e-3,
                  "anneal_learning_rate": True})
    assert old.optimizer == "adam" and old.learning_rate == 1e-3
    x = setting["xt_test"]
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    np.testing.assert_array_equal(a.features(x), b.features(x))
    plain = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(plain.predict(x, verbose=0), a.predict(x))


@pytest.mark.slow
def test_seeded_fits_repeat(setting):
    s = setting
    kw = dict(epochs=2, batch_size=32, verbose=0, seed=3)
    a = DANNAdapter(s["src"], lambda_max=1.0).fit(s["xs"][:128], s["ys"][:128], s["xt"][:96], **kw)
    b = DANNAdapter(s["src"], lambda_max=1.0).fit(s["xs"][:128], s["ys"][:128], s["xt"][:96], **kw)
    np.testing.assert_array_equal(a.predict(s["xt_test"]), b.predict(s["xt_test"]))
    ha, hb = a.history_.history, b.history_.history
    assert set(ha) == set(hb)
    for key in ha:  # the logged means can differ in the last bit (the order of float sums)
        np.testing.assert_allclose(ha[key], hb[key], rtol=1e-6, err_msg=key)
    for u, v in zip(a.discriminator_.get_weights(), b.discriminator_.get_weights()):
        np.testing.assert_array_equal(u, v)


@pytest.mark.slow
def test_with_target_labels_validation_and_callbacks(setting):
    s = setting
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(dict(logs))

    a = DANNAdapter(s["src"], discriminator_units=16).fit(
        s["xs"][:128], s["ys"][:128], s["xt"][:24], y_target=s["yt"][:24], epochs=3, batch_size=32,
        validation_data=(s["xt_test"], s["yt_test"]), callbacks=Spy(), verbose=0, seed=1,
    )
    hist = a.history_.history
    for key in ("loss", "task_loss", "domain_loss", "accuracy", "domain_accuracy", "val_loss", "val_accuracy"):
        assert len(hist[key]) == 3, key
    assert [d["domain_accuracy"] for d in seen] == hist["domain_accuracy"]  # user callbacks see it too
    assert a.discriminator_units == (16,)
    assert a.discriminator_.total_steps == 12  # 3 epochs x ceil(128 / 32)


@pytest.mark.slow
def test_binary_head_batchnorm_and_feature_layer():
    """Sigmoid head, BatchNorm kept in inference mode, a narrower feature layer (a new, seeded head)."""
    keras.utils.set_random_seed(1)
    src = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(12, activation="relu", name="h1"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(6, activation="relu", name="h2"),
            keras.layers.Dense(1, activation="sigmoid", name="out"),
        ]
    )
    xs, ys = _rotated(96, target=False, seed=3)
    xt, _ = _rotated(64, target=True, seed=4)
    src.compile("adam", "binary_crossentropy")
    src.fit(xs, ys, epochs=2, verbose=0)
    a = DANNAdapter(src).fit(xs, ys, xt, epochs=2, batch_size=32, verbose=0, seed=0)
    assert a.head_initialised_from_source_
    np.testing.assert_array_equal(a.base_model.get_layer("bn").moving_mean, src.get_layer("bn").moving_mean)
    assert not np.array_equal(a.base_model.get_layer("bn").gamma, src.get_layer("bn").gamma)
    assert set(a.predict_classes(xt)) <= {0, 1}
    b = DANNAdapter(src, feature_layer="bn").fit(xs, ys, xt, epochs=1, batch_size=32, verbose=0, seed=0)
    assert not b.head_initialised_from_source_ and b.features(xt).shape == (64, 12)


def test_registry_and_config(setting):
    assert "dann" in registry.adapter_names()
    assert registry.get_adapter("dann") is DANNAdapter
    defaults = DANNAdapter.default_config()
    assert list(defaults) == ["feature_layer", "lambda_max", "discriminator_units", "learning_rate",
                              "anneal_learning_rate", "optimizer"]
    s = setting
    data = registry.fit_data(DANNAdapter, source_train=(s["xs"], s["ys"]), target_unlabeled=s["xt"])
    assert set(data) == {"x_source", "y_source", "x_target"}
    assert DANNAdapter(s["src"]).get_config() == defaults
    assert defaults == {"feature_layer": None, "lambda_max": 0.1, "discriminator_units": (64,),
                        "learning_rate": 0.01, "anneal_learning_rate": True, "optimizer": "sgd"}
    a = DANNAdapter(s["src"], lambda_max=0.5, discriminator_units=[32, 16], learning_rate=3e-4,
                    anneal_learning_rate=False, optimizer="Adam")
    config = a.get_config()
    assert config == {"feature_layer": None, "lambda_max": 0.5, "discriminator_units": (32, 16),
                      "learning_rate": 3e-4, "anneal_learning_rate": False, "optimizer": "adam"}
    b = DANNAdapter.from_config(json.loads(json.dumps(config)), s["src"])  # through JSON: lists
    assert b.get_config() == config


def test_bad_input(setting):
    s = setting
    src, xs, ys, xt = s["src"], s["xs"][:40], s["ys"][:40], s["xt"][:30]
    with pytest.raises(ValueError, match="lambda_max must be a non-negative number"):
        DANNAdapter(src, lambda_max=-0.1)
    with pytest.raises(ValueError, match="lambda_max"):
        DANNAdapter(src, lambda_max=float("nan"))
    with pytest.raises(ValueError, match="lambda_max"):
        DANNAdapter(src, lambda_max=float("inf"))
    with pytest.raises(TypeError, match="lambda_max"):
        DANNAdapter(src, lambda_max="1")
    for bad in (0, -3, [64, 0], (2.5,)):
        with pytest.raises(ValueError, match="discriminator_units must hold positive integers"):
            DANNAdapter(src, discriminator_units=bad)
    for bad in ("64", None, [64, "a"], True):
        with pytest.raises(TypeError, match="discriminator_units"):
            DANNAdapter(src, discriminator_units=bad)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        DANNAdapter(src, learning_rate=0)
    with pytest.raises(TypeError, match="anneal_learning_rate must be True or False"):
        DANNAdapter(src, anneal_learning_rate="yes")
    for bad in ("rmsprop", None, 1):
        with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'sgd'\]"):
            DANNAdapter(src, optimizer=bad)
    with pytest.raises(ValueError, match="must name a layer of the model.*nope"):
        DANNAdapter(src, feature_layer="nope")
    a = DANNAdapter(src)
    with pytest.raises(ValueError, match=r"missing: x_target \(target inputs\)\. Pass x_target=\.\.\."):
        a.fit(xs, ys, verbose=0)
    with pytest.raises(ValueError, match="missing: y_source"):
        a.fit(xs, None, xt, verbose=0)
    with pytest.raises(ValueError, match="x_target has 9 features, but the model expects 10"):
        a.fit(xs, ys, xt[:, :9], verbose=0)
    bad = xt.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="x_target contains 1 NaN"):
        a.fit(xs, ys, bad, verbose=0)
    bad_source = xs.copy()
    bad_source[0, 0] = np.inf
    with pytest.raises(ValueError, match="x_source contains 0 NaN and 1 infinite"):
        a.fit(bad_source, ys, xt, verbose=0)
    with pytest.raises(ValueError, match="y_target has 29 labels but there are 30 samples"):
        a.fit(xs, ys, xt, y_target=s["yt"][:29], verbose=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        a.fit(xs, ys, xt, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        a.fit(xs, ys, xt, epochs=0, verbose=0)
    with pytest.raises(ValueError, match="learning_rate"):
        a.fit(xs, ys, xt, learning_rate=-1e-3, verbose=0)
    with pytest.raises(ValueError, match="seed"):
        a.fit(xs, ys, xt, seed=-1, verbose=0)
    with pytest.raises(AttributeError, match="not fitted yet"):
        a.predict(xt)


@pytest.mark.slow
def test_runs_under_mirrored_strategy_with_the_same_losses():
    """One device vs 1- and 2-replica MirroredStrategy (logical CPUs, set up in a fresh process).

    Same seed and data: the same pre-update losses and domain accuracy (with two replicas each takes the
    domain loss of its half, whose mean is the whole batch's with equal halves); loss = task + domain loss;
    the schedule's step counter advances once per step, not once per replica; one SGD step on [A; A]
    over two replicas (at lambda_p > 0) moves the model and the discriminator exactly as one step on A on
    one device; a batch smaller than the replica count is a clear ValueError.
    """
    code = textwrap.dedent(
        """
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import json, keras
        from shiftkit.adapt.dann import DANNAdapter, DomainDiscriminator
        from shiftkit.adapt.alignment import alignment_trainer
        keras.utils.set_random_seed(0)
        src = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                                keras.layers.Dense(2, activation="softmax")])
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32"); y = (x[:, 0] > 0).astype(int)
        xt = (x @ rng.normal(size=(4, 4)) + 1.0).astype("float32")

        def run(strategy, **kw):
            with strategy.scope():
                a = DANNAdapter(src, lambda_max=2.0).fit(x, y, xt, verbose=0, seed=0, **kw)
            return a, {k: [float(v) for v in vals] for k, vals in a.history_.history.items()}

        kw = dict(epochs=1, batch_size=64, learning_rate=1e-12)
        _, one = run(tf.distribute.get_strategy(), **kw)
        _, mirrored_one = run(tf.distribute.MirroredStrategy(["/cpu:0"]), **kw)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        _, two = run(strategy, **kw)
        a, trained = run(strategy, epochs=2, batch_size=16)
        steps = float(a.discriminator_.step.numpy())
        try:
            run(strategy, epochs=1, batch_size=1)
            small_batch = "accepted"
        except ValueError as exc:
            small_batch = str(exc)

        def one_step(strategy, xs, ys, xt):
            with strategy.scope():
                b = DANNAdapter(src)
                b._build()
                disc = DomainDiscriminator((5,), lambda_max=2.0, total_steps=10, seed=3)
                disc.build((None, 6))
                disc.step.assign(5.0)  # lambda_p = 2 * 0.9866: the reversal is on
                trainer = alignment_trainer(
                    b.model_, b.base_, b.head_, loss_fn=keras.losses.SparseCategoricalCrossentropy(),
                    accuracy=keras.metrics.SparseCategoricalAccuracy(name="accuracy"), alignment=disc,
                    weight=1.0, alignment_name="domain_loss", target_labels=False)
                trainer.compile(optimizer=keras.optimizers.SGD(0.5))
            trainer.fit(tf.data.Dataset.from_tensors(((xs, ys), xt)), epochs=1, verbose=0)
            weights = [np.asarray(w) for w in b.model_.get_weights() + [v.numpy() for v in disc.trainable_weights]]
            start = [np.asarray(w) for w in src.get_weights()]
            return weights, start, float(disc.step.numpy())

        xa, ya, xta = x[:16], y[:16].astype("int32"), xt[:16]
        single, start, step_single = one_step(tf.distribute.get_strategy(), xa, ya, xta)
        double, _, step_double = one_step(strategy, np.concatenate([xa, xa]), np.concatenate([ya, ya]),
                                          np.concatenate([xta, xta]))
        step = {"moved": max(float(np.abs(u - v).max()) for u, v in zip(single, start)),
                "diff": max(float(np.abs(u - v).max()) for u, v in zip(single, double)),
                "counters": [step_single, step_double]}
        logs = {"one": one, "mirrored_one": mirrored_one, "two": two, "trained": trained, "step": step,
                "small_batch": small_batch, "steps": steps}
        print("JSON", json.dumps(logs))
        print("REPLICAS", strategy.num_replicas_in_sync, type(a.model.trainable_weights[0].value).__name__)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "REPLICAS 2" in done.stdout and "Mirrored" in done.stdout, done.stdout
    logs = json.loads(done.stdout.split("JSON", 1)[1].splitlines()[0])
    one, mirrored_one, two = logs["one"], logs["mirrored_one"], logs["two"]
    for key in ("loss", "task_loss", "domain_loss", "accuracy", "domain_accuracy"):
        assert mirrored_one[key][0] == pytest.approx(one[key][0], rel=1e-5), (key, one, mirrored_one)
        assert two[key][0] == pytest.approx(one[key][0], rel=1e-4), (key, one, two)
    for h in (one, mirrored_one, two, logs["trained"]):
        assert all(np.isfinite(h[k]).all() for k in ("loss", "task_loss", "domain_loss"))
        np.testing.assert_allclose(h["loss"], np.add(h["task_loss"], h["domain_loss"]), rtol=1e-4)
    assert logs["steps"] == 8.0  # 2 epochs x 4 steps, counted once per step over 2 replicas
    assert "at least 2 samples (1 per replica" in logs["small_batch"], logs["small_batch"]
    step = logs["step"]
    assert step["counters"] == [6.0, 6.0]
    assert step["moved"] > 1e-3, step
    assert step["diff"] < 1e-5 * max(1.0, step["moved"]) + 1e-6, step
