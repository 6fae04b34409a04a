"""LabelShiftAdapter: prior correction under Dirichlet label shift, exactness, binary, persistence, errors."""

import warnings

import keras
import numpy as np
import pytest
from sklearn.metrics import log_loss

from shiftkit._validation import check_probabilities
from shiftkit.adapt import NotFittedError, load_adapter
from shiftkit.adapt.label_shift import LabelShiftAdapter, PriorCorrection
from shiftkit.shift.labels import PriorEstimate, apply_bcts, fit_bcts

K, D = 4, 5
N_TARGET = 3000
SEEDS = (0, 1, 2, 3, 4)  # every Dirichlet draw is used; none is skipped
CENTERS = np.random.default_rng(99).normal(scale=1.0, size=(K, D))  # overlapping classes (~75% acc)


def _sample(counts, rng, centers=CENTERS):
    y = np.repeat(np.arange(len(counts)), counts)
    rng.shuffle(y)
    x = centers[y] + rng.normal(size=(len(y), centers.shape[1]))
    return x.astype("float32"), y


def _target(seed):
    """A target sample whose class proportions are drawn from Dirichlet(1, ..., 1)."""
    pi = np.random.default_rng(seed).dirichlet([1.0] * K)
    counts = np.random.default_rng(1000 + seed).multinomial(N_TARGET, pi)
    x, y = _sample(counts, np.random.default_rng(2000 + seed))
    return x, y, counts / N_TARGET


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _normalize(p):
    return p / p.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def scenario():
    """A softmax MLP trained on a balanced source, and a balanced held-out source validation set."""
    rng = np.random.default_rng(0)
    x_train, y_train = _sample([600] * K, rng)
    x_val, y_val = _sample([300] * K, rng)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((D,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(K, activation="softmax", name="out"),
        ],
        name="source_mlp",
    )
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=15, batch_size=64, verbose=0)
    return model, x_val, y_val


@pytest.fixture(scope="module")
def runs(scenario):
    """Adapters fitted on each seed's target, both methods; with the source model's predictions."""
    model, x_val, y_val = scenario
    before = _weights(model)
    out = []
    for seed in SEEDS:
        xt, yt, props = _target(seed)
        p_src = model.predict(xt, verbose=0)
        adapters = {m: LabelShiftAdapter(model, method=m).fit(x_val, y_val, xt) for m in ("em", "bbse")}
        out.append({"seed": seed, "x": xt, "y": yt, "props": props, "p_src": p_src, "adapters": adapters})
    out[0]["source_weights_before_fit"] = before
    return out


# ------------------------------------------------------------------------------ acceptance


@pytest.mark.parametrize("method", ["em", "bbse"])
def test_improves_target_log_loss_and_accuracy(runs, method):
    rows = []
    for run in runs:
        p_adapted = run["adapters"][method].predict(run["x"])
        rows.append(
            (
                log_loss(run["y"], run["p_src"], labels=range(K)),
                log_loss(run["y"], p_adapted, labels=range(K)),
                np.mean(run["p_src"].argmax(1) == run["y"]),
                np.mean(p_adapted.argmax(1) == run["y"]),
            )
        )
    rows = np.array(rows)
    assert np.all(rows[:, 1] < rows[:, 0]), f"log-loss must improve on every seed: {rows.round(4)}"
    assert rows[:, 3].mean() > rows[:, 2].mean() + 0.02, rows.round(4)


def test_priors_close_to_true_proportions(runs):
    for run in runs:
        for method, adapter in run["adapters"].items():
            l1 = np.abs(adapter.priors_ - run["props"]).sum()
            assert l1 < (0.1 if method == "em" else 0.15), (run["seed"], method, l1)
            est = adapter.estimate_
            assert isinstance(est, PriorEstimate) and est.method == method
            np.testing.assert_allclose(est.source_priors, np.full(K, 1 / K))
            np.testing.assert_allclose(adapter.weights_, adapter.priors_ / est.source_priors, rtol=1e-12)
            assert adapter.priors_.sum() == pytest.approx(1.0)
            # default smoothing=1e-3 moves the raw estimate by at most 0.1% per class
            np.testing.assert_allclose(adapter.priors_, est.priors, atol=1e-3)
            assert np.all(adapter.weights_ >= 1e-3)


def test_smoothing_shrinks_towards_source_priors(scenario, runs):
    model, x_val, y_val = scenario
    run = runs[3]
    a = LabelShiftAdapter(model, method="bbse", smoothing=0.2).fit(x_val, y_val, run["x"])
    est = a.estimate_
    np.testing.assert_allclose(est.priors, run["adapters"]["bbse"].estimate_.priors)  # same raw estimate
    np.testing.assert_allclose(a.priors_, 0.8 * est.priors + 0.2 * est.source_priors, rtol=1e-12)
    assert np.all(a.weights_ >= 0.2)
    raw = LabelShiftAdapter(model, method="bbse", smoothing=0.0).fit(x_val, y_val, run["x"])
    np.testing.assert_array_equal(raw.priors_, est.priors)
    # why the default is not 0: BBSE's simplex projection can return an exact 0, and a zero weight
    # gives its class probability exactly 0 (an unbounded log-loss for any target sample of it)
    zero = np.asarray(PriorCorrection([0.0, 2.0, 1.0])(np.array([[0.5, 0.3, 0.2]], "float32")))
    assert zero[0, 0] == 0.0 and zero.sum() == pytest.approx(1.0)


# ------------------------------------------------------------------------------ exactness


def test_predictions_equal_direct_numpy_computation(runs, scenario):
    model, x_val, y_val = scenario
    run = runs[0]
    p = run["p_src"].astype(np.float64)
    bbse = run["adapters"]["bbse"]
    assert bbse.temperature_ == 1.0 and not np.any(bbse.bias_)
    np.testing.assert_allclose(bbse.predict(run["x"]), _normalize(bbse.weights_ * p), atol=1e-5)

    # EM with calibration: the model applies the BCTS map fitted on the held-out source, then w
    em = run["adapters"]["em"]
    p_val = check_probabilities(model.predict(x_val, verbose=0), "p_val")
    temperature, bias = fit_bcts(p_val, y_val)
    # (the adapter reads the outputs through shiftkit._keras.to_probabilities, renormalised: equal to rounding)
    assert em.temperature_ == pytest.approx(temperature, rel=1e-6)
    np.testing.assert_allclose(em.bias_, bias, rtol=1e-5, atol=1e-8)
    assert temperature != 1.0 or np.any(bias)  # calibration is really on
    expected = _normalize(em.weights_ * apply_bcts(p, temperature, bias))
    np.testing.assert_allclose(em.predict(run["x"]), expected, atol=1e-5)
    assert np.abs(em.predict(run["x"]) - _normalize(em.weights_ * p)).max() > 1e-3

    plain = LabelShiftAdapter(model, method="em", calibrate=False).fit(x_val, y_val, run["x"])
    assert plain.temperature_ == 1.0
    np.testing.assert_allclose(plain.predict(run["x"]), _normalize(plain.weights_ * p), atol=1e-5)


def test_em_posteriors_average_to_the_priors(scenario, runs):
    """EM's fixed point: the corrected (calibrated) posteriors on the target average to q."""
    model, x_val, y_val = scenario
    xt = runs[1]["x"]
    adapter = LabelShiftAdapter(model, method="em", smoothing=0.0).fit(x_val, y_val, xt)
    assert adapter.estimate_.converged
    np.testing.assert_allclose(adapter.predict(xt).mean(axis=0), adapter.priors_, atol=1e-4)


def test_logits_head_gives_the_same_correction(scenario, runs):
    model, x_val, y_val = scenario
    logits = keras.Sequential(
        [keras.Input((D,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(K, name="logits")]
    )
    logits.set_weights(model.get_weights())
    run = runs[2]
    a = LabelShiftAdapter(logits, method="bbse").fit(x_val, y_val, run["x"])
    b = run["adapters"]["bbse"]
    np.testing.assert_allclose(a.priors_, b.priors_, atol=1e-6)
    np.testing.assert_allclose(a.predict(run["x"]), b.predict(run["x"]), atol=1e-5)
    assert a.evaluate(run["x"], run["y"])["loss"] == pytest.approx(
        log_loss(run["y"], a.predict(run["x"]), labels=range(K)), rel=1e-4
    )


@pytest.mark.parametrize("pattern", ["softmax_layer", "activation"])
def test_weightless_softmax_after_the_head(scenario, runs, pattern, tmp_path):
    """Dense(k) -> Softmax / Activation('softmax') (#7): the head path is copied whole, the features are
    the Dense's input (16 units, not the logits), and the correction equals the softmax model's."""
    model, x_val, y_val = scenario
    inp = keras.Input((D,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inp)
    logits = keras.layers.Dense(K, name="logits")(h)
    out = keras.layers.Softmax()(logits) if pattern == "softmax_layer" else keras.layers.Activation("softmax")(logits)
    split = keras.Model(inp, out)
    split.set_weights(model.get_weights())
    run = runs[2]
    a = LabelShiftAdapter(split, method="bbse").fit(x_val, y_val, run["x"])
    b = run["adapters"]["bbse"]
    np.testing.assert_allclose(a.priors_, b.priors_, atol=1e-6)
    np.testing.assert_allclose(a.predict(run["x"]), b.predict(run["x"]), atol=1e-5)
    assert a.features(run["x"]).shape == (len(run["x"]), 16) and a.head_.name == "logits"
    loaded = load_adapter(a.save(tmp_path / "ls.keras"))
    assert loaded.head_.name == "logits"
    np.testing.assert_allclose(loaded.predict(run["x"]), a.predict(run["x"]), atol=1e-6)


def test_binary_sigmoid_model():
    centers = np.array([[0.0, 0.0, 0.0], [1.2, 0.8, 0.0]])
    rng = np.random.default_rng(5)
    x_train, y_train = _sample([800, 800], rng, centers)
    x_val, y_val = _sample([400, 400], rng, centers)
    x_t, y_t = _sample([2400, 600], rng, centers)  # target: 80% class 0
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(keras.optimizers.Adam(2e-2), "binary_crossentropy")
    model.fit(x_train, y_train.astype("float32"), epochs=5, batch_size=64, verbose=0)
    p = model.predict(x_t, verbose=0).astype(np.float64)[:, 0]
    p2 = np.stack([1 - p, p], axis=1)
    for method in ("bbse", "em"):
        a = LabelShiftAdapter(model, method=method).fit(x_val, y_val, x_t)
        out = a.predict(x_t)
        assert out.shape == (len(x_t), 1)
        assert np.abs(a.priors_ - [0.8, 0.2]).sum() < 0.1, a.priors_
        w0, w1 = a.weights_
        if method == "bbse":
            expected = w1 * p / (w1 * p + w0 * (1 - p))
        else:
            expected = _normalize(a.weights_ * apply_bcts(p2, a.temperature_, a.bias_))[:, 1]
        np.testing.assert_allclose(out[:, 0], expected, atol=1e-5)
        assert log_loss(y_t, out[:, 0]) < log_loss(y_t, p)
        assert a.evaluate(x_t, y_t)["accuracy"] == pytest.approx(np.mean((out[:, 0] > 0.5) == y_t))


# ------------------------------------------------------------------------------ model & persistence


def test_source_untouched_and_model_independent(scenario, runs):
    model, x_val, _ = scenario
    before = runs[0]["source_weights_before_fit"]  # taken before the ten fits of the fixture
    assert len(before) == len(model.weights)
    assert all(np.array_equal(u, v) for u, v in zip(before, _weights(model)))
    adapter = runs[0]["adapters"]["em"]
    source_vars = {id(v) for v in model.weights}
    assert not any(id(v) in source_vars for v in adapter.model.weights), "variables are shared"
    assert [layer.name for layer in adapter.model.layers[1:]] == ["base", "out", "prior_correction"]
    assert isinstance(adapter.model.layers[-1], PriorCorrection)
    assert adapter.model.trainable_weights and not adapter.model.layers[-1].trainable_weights
    # features: the penultimate representation, equal to the source model's
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    np.testing.assert_allclose(adapter.features(x_val), hidden.predict(x_val, verbose=0), atol=1e-6)


def test_before_after_shift_report(scenario, runs):
    _, x_val, y_val = scenario
    run = runs[0]
    rep = run["adapters"]["em"].shift_report(x_val[:300], run["x"][:300], y_val[:300], run["y"][:300],
                                             n_permutations=50, seed=0)
    # the correction leaves the features alone: the feature-space figures agree; accuracy rises
    assert rep.after.feature_test.statistic == pytest.approx(rep.before.feature_test.statistic, rel=1e-5)
    assert rep.accuracy_before == pytest.approx(np.mean(run["p_src"][:300].argmax(1) == run["y"][:300]))
    assert rep.accuracy_after > rep.accuracy_before


def test_save_load_round_trip(runs, tmp_path):
    run = runs[0]
    a = run["adapters"]["em"]
    path = a.save(tmp_path / "label_shift.keras")
    b = load_adapter(path)
    assert isinstance(b, LabelShiftAdapter)
    np.testing.assert_array_equal(a.predict(run["x"]), b.predict(run["x"]))
    np.testing.assert_array_equal(a.features(run["x"]), b.features(run["x"]))
    np.testing.assert_array_equal(a.priors_, b.priors_)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert (b.method, b.temperature_, b.estimate_.n_iter) == (a.method, a.temperature_, a.estimate_.n_iter)
    np.testing.assert_array_equal(a.estimate_.priors, b.estimate_.priors)
    assert b.evaluate(run["x"], run["y"]) == a.evaluate(run["x"], run["y"])
    plain = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(plain.predict(run["x"], verbose=0), a.predict(run["x"]))
    config = plain.get_layer("prior_correction").get_config()
    np.testing.assert_allclose(config["prior_weights"], a.weights_, rtol=1e-6)


def test_refit_from_loaded_adapter_does_not_correct_twice(scenario, runs, tmp_path):
    _, x_val, y_val = scenario
    run = runs[1]
    a = run["adapters"]["em"]
    b = load_adapter(a.save(tmp_path / "a.keras"))
    again = LabelShiftAdapter(b.model).fit(x_val, y_val, run["x"])
    np.testing.assert_allclose(again.predict(run["x"]), a.predict(run["x"]), atol=1e-6)
    np.testing.assert_allclose(again.priors_, a.priors_, atol=1e-6)


def test_prior_correction_layer_config_round_trip():
    layer = PriorCorrection([2.0, 0.5, 1.0], temperature=1.5, bias=[0.1, 0.0, -0.1], name="pc")
    p = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]], "float32")
    out = np.asarray(layer(p))
    expected = _normalize(np.array([2.0, 0.5, 1.0]) * apply_bcts(p.astype(float), 1.5, np.array([0.1, 0, -0.1])))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    clone = PriorCorrection.from_config(layer.get_config())
    np.testing.assert_allclose(np.asarray(clone(p)), out, atol=1e-7)
    assert keras.saving.get_registered_name(PriorCorrection) == "shiftkit>PriorCorrection"
    with pytest.raises(ValueError, match="prior_weights must be non-negative"):
        PriorCorrection([1.0, -1.0])
    with pytest.raises(ValueError, match="temperature must be a positive"):
        PriorCorrection([1.0, 1.0], temperature=0.0)
    with pytest.raises(ValueError, match="bias must have 2 entries"):
        PriorCorrection([1.0, 1.0], bias=[0.0])


# ------------------------------------------------------------------------------ errors


def test_errors(scenario, runs):
    model, x_val, y_val = scenario
    xt = runs[0]["x"][:200]
    with pytest.raises(ValueError, match=r"Unknown method 'mle'. Choose one of: bbse, em"):
        LabelShiftAdapter(model, method="mle")
    with pytest.raises(TypeError, match="source_model must be a keras.Model"):
        LabelShiftAdapter("model.keras")
    with pytest.raises(TypeError, match="calibrate must be True or False"):
        LabelShiftAdapter(model, calibrate="yes")
    with pytest.raises(ValueError, match=r"smoothing must be a number in \[0, 1\)"):
        LabelShiftAdapter(model, smoothing=1.0)
    regressor = keras.Sequential([keras.Input((D,)), keras.layers.Dense(3, activation="relu")])
    with pytest.raises(ValueError, match="softmax.*activation 'relu'"):
        LabelShiftAdapter(regressor)
    a = LabelShiftAdapter(model)
    with pytest.raises(NotFittedError, match="not fitted yet. Call fit"):
        a.predict(xt)
    with pytest.raises(ValueError, match="x_target has 4 features, but the model expects 5"):
        a.fit(x_val, y_val, xt[:, :4])
    with pytest.raises(ValueError, match="x_source has 6 features"):
        a.fit(np.zeros((len(y_val), 6)), y_val, xt)
    with pytest.raises(ValueError, match=r"y_source has label 4, but the target model's head has 4 output"):
        a.fit(x_val, np.where(y_val == 3, 4, y_val), xt)
    with pytest.raises(ValueError, match="y_source has 10 labels but there are"):
        a.fit(x_val, y_val[:10], xt)
    with pytest.raises(ValueError, match="x_target contains 1 NaN"):
        bad = xt.copy()
        bad[3, 1] = np.nan
        a.fit(x_val, y_val, bad)
    with pytest.raises(TypeError, match=r"y_source holds text labels \['a'\].*index of its class's output"):
        a.fit(x_val, np.array(["a"] * len(y_val)), xt)
    no_class_3 = y_val != 3
    with pytest.raises(ValueError, match=r"y_source.*no sample of class\(es\) \[3\]"):
        a.fit(x_val[no_class_3], y_val[no_class_3], xt)


def test_functional_cnn_backbone():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(3, activation="softmax", name="out")(h)
    cnn = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8, 8, 1)).astype("float32")
    y = np.arange(60) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an untrained model: EM may stop early
        a = LabelShiftAdapter(cnn).fit(x, y, x[:30])
    assert a.predict(x).shape == (60, 3) and a.features(x).shape == (60, 4)
    np.testing.assert_allclose(a.predict(x).sum(axis=1), 1.0, atol=1e-5)


def test_known_target_priors_replace_the_estimate(scenario, tmp_path):
    """A prevalence known from outside the model: no target rows needed, the correction is exactly
    normalize(q / p_source * bcts(p)) with the given q (smoothing 0), and it survives save / load."""
    model, x_val, y_val = scenario
    x_t, y_t, true_props = _target(0)
    adapter = LabelShiftAdapter(model, target_priors=true_props * 100, smoothing=0.0).fit(x_val, y_val)
    assert adapter.estimate_.method == "given" and adapter.estimate_.n_iter == 0
    np.testing.assert_allclose(adapter.priors_, true_props, atol=1e-12)
    source = np.bincount(y_val, minlength=K) / len(y_val)
    np.testing.assert_allclose(adapter.weights_, true_props / source, rtol=1e-10)
    p = check_probabilities(model.predict(x_t, verbose=0), "p")
    t, b = fit_bcts(check_probabilities(model.predict(x_val, verbose=0), "p"), y_val)
    expected = _normalize(apply_bcts(p, t, b) * (true_props / source))
    np.testing.assert_allclose(adapter.predict(x_t), expected, atol=1e-5)
    # with the true proportions the corrected model beats the source model on the target's log-loss
    assert log_loss(y_t, adapter.predict(x_t), labels=range(K)) < log_loss(y_t, p, labels=range(K))
    loaded = load_adapter(adapter.save(tmp_path / "given.keras"))
    assert loaded.target_priors == pytest.approx(list(true_props))
    np.testing.assert_allclose(loaded.predict(x_t), adapter.predict(x_t), atol=1e-6)
    assert adapter.get_config()["target_priors"] == pytest.approx(list(true_props))


def test_known_target_priors_errors(scenario):
    model, x_val, y_val = scenario
    with pytest.raises(ValueError, match="target_priors has 3 values but the model has 4 classes"):
        LabelShiftAdapter(model, target_priors=[0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="needs x_source and y_source"):
        LabelShiftAdapter(model, target_priors=[0.25] * 4).fit(x_target=x_val)
    with pytest.raises(ValueError, match="no row of class"):
        LabelShiftAdapter(model, target_priors=[0.25] * 4).fit(x_val[y_val < 3], y_val[y_val < 3])
