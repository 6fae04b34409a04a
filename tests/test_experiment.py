"""Experiment end to end on the hospitals scenario: every method, every metric, JSON, save/load, errors."""

import json
import math

import keras
import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

import shiftkit
from shiftkit.adapt import LabelShiftAdapter, adapter_names
from shiftkit.check import Reference
from shiftkit.data import split_domains
from shiftkit.experiment import (
    ADAPTER_NAMES,
    METRICS,
    Experiment,
    ExperimentResult,
    classification_metrics,
    expected_calibration_error,
)

EPOCHS = 3
SHIFT_COLUMNS = ("shift_p_before", "shift_p_after", "shift_mmd2_normalized_before", "shift_mmd2_normalized_after")


def _direct_ece(y, proba, n_bins=15):
    """ECE written out plainly: loop over the 15 bins ((b-1)/15, b/15]."""
    conf = proba.max(axis=1)
    pred = proba.argmax(axis=1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(len(y)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if members:
            acc = np.mean([pred[i] == y[i] for i in members])
            total += len(members) / len(y) * abs(acc - np.mean(conf[members]))
    return total


@pytest.fixture(scope="module")
def splits():
    s = shiftkit.datasets.load_scenario("hospitals_covariate", seed=0)
    return split_domains(s.x_source, s.y_source, s.x_target, s.y_target, target_labeled=10, seed=0)


@pytest.fixture(scope="module")
def builder(splits):
    x = splits.source_train[0]
    mean, var = x.mean(axis=0).tolist(), x.var(axis=0).tolist()

    def build():
        model = keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                keras.layers.Normalization(mean=mean, variance=var, name="standardize"),
                keras.layers.Dense(16, activation="relu", name="hidden"),
                keras.layers.Dense(8, activation="relu", name="embedding"),
                keras.layers.Dense(2, activation="softmax", name="head"),
            ]
        )
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        return model

    return build


@pytest.fixture(scope="module")
def result(splits, builder):
    return Experiment(builder, n_permutations=50).run(splits, seed=0, epochs=EPOCHS)


def test_every_method_and_metric(result):
    # Every adapter of the default list but "adabn", which needs BatchNormalization layers this MLP does
    # not have ("auto", which fits the others itself, is not in the default list).
    defaults = adapter_names(default_list=True)
    assert "auto" not in defaults and set(ADAPTER_NAMES) <= set(adapter_names())
    assert result.methods == ("source_only", "target_only") + tuple(n for n in defaults if n != "adabn")
    assert any(note.startswith("adabn skipped") for note in result.notes)
    frame = result.to_frame()
    assert list(frame.index) == list(result.methods)
    assert list(frame.columns) == list(METRICS) + list(SHIFT_COLUMNS)
    assert np.isfinite(frame.to_numpy()).all()
    assert ((frame >= 0) & (frame <= 1)).loc[:, ["accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece"]].all().all()
    assert ((frame[["shift_p_before", "shift_p_after"]] > 0) & (frame[["shift_p_before", "shift_p_after"]] <= 1)).all().all()
    # "before" is the source model for every method; source_only did not move
    assert frame["shift_p_before"].nunique() == 1
    assert frame.loc["source_only", "shift_mmd2_normalized_after"] == frame.loc["source_only", "shift_mmd2_normalized_before"]
    # the trained source model is a reasonable classifier on this mild shift
    assert frame.loc["source_only", "accuracy"] > 0.8
    # the ShiftMonitor curves are in the histories of everything that trained
    for method in ("source_only", "target_only", "copy", "finetune", "mmd"):
        values = result.histories[method]["shift_mmd2_normalized"]
        assert len(values) >= EPOCHS and all(math.isfinite(v) for v in values)
    assert result.histories["label_shift"] == {}
    assert result.config["source_trained_by_experiment"] is True
    assert result.config["shift"]["target"] == "target_test"


def test_metrics_match_sklearn_and_direct_ece(result, splits):
    x_test, y_test = splits.target_test
    for method in result.methods:
        proba = result.predict(method, x_test)
        pred = proba.argmax(axis=1)
        row = result.rows[method]
        assert row["accuracy"] == pytest.approx(accuracy_score(y_test, pred))
        assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_test, pred))
        assert row["macro_f1"] == pytest.approx(f1_score(y_test, pred, average="macro", zero_division=0))
        # ranked by log-odds (from both columns): the order of p[:, 1], kept where float32 saturates at 1.0
        log_odds = np.log(np.maximum(proba[:, 1], 1e-307)) - np.log(np.maximum(proba[:, 0], 1e-307))
        assert row["auroc"] == pytest.approx(roc_auc_score(y_test, log_odds))
        assert row["ece"] == pytest.approx(_direct_ece(y_test, proba), abs=1e-6)  # rows renormalized in float64


def test_auroc_keeps_order_of_saturated_probabilities():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[1e-12, 1.0], [1e-20, 1.0], [0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    # p[:, 1] ties the first two at 1.0; the first column still orders them (sample 1 is more sure)
    assert classification_metrics(y, proba, ["auroc"])["auroc"] == pytest.approx(0.75)
    assert roc_auc_score(y, proba[:, 1]) == pytest.approx(0.625)
    three = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
    expected = np.mean([roc_auc_score(np.array([0, 1, 2, 2]) == c, three[:, c]) for c in range(3)])
    assert classification_metrics([0, 1, 2, 2], three, ["auroc"])["auroc"] == pytest.approx(expected)


def test_ece_hand_computation():
    # confidences 0.95 (right), 0.97 (wrong), 0.55 (wrong), 0.62 (right), 0.41 (right); 15 bins of 1/15:
    #   (14/15, 1]:     two samples, accuracy 1/2, mean confidence 0.96 -> 2/5 * 0.46 = 0.184
    #   (8/15, 9/15]:   0.55 wrong                                     -> 1/5 * 0.55 = 0.110
    #   (9/15, 10/15]:  0.62 right                                     -> 1/5 * 0.38 = 0.076
    #   (6/15, 7/15]:   0.41 right                                     -> 1/5 * 0.59 = 0.118
    y = np.array([0, 1, 1, 2, 0])
    proba = np.array(
        [
            [0.95, 0.03, 0.02],
            [0.97, 0.02, 0.01],
            [0.55, 0.25, 0.20],
            [0.20, 0.18, 0.62],
            [0.41, 0.30, 0.29],
        ]
    )
    assert expected_calibration_error(y, proba) == pytest.approx(0.488)
    assert expected_calibration_error(y, proba) == pytest.approx(_direct_ece(y, proba))
    # one bin: |accuracy - mean confidence|
    assert expected_calibration_error(y, proba, n_bins=1) == pytest.approx(abs(3 / 5 - proba.max(1).mean()))
    # a binary sigmoid column is read as P(class 1)
    assert expected_calibration_error([1, 0], [0.9, 0.3]) == pytest.approx(0.5 * 0.1 + 0.5 * 0.3)
    assert classification_metrics([1, 0], [0.9, 0.3], ["ece"])["ece"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="do not sum to 1"):
        expected_calibration_error([0, 1], [[0.5, 0.6], [0.2, 0.8]])
    with pytest.raises(ValueError, match="3 labels but proba has 2 rows"):
        expected_calibration_error([0, 1, 1], [[0.5, 0.5], [0.2, 0.8]])


def test_to_json_is_strict(result):
    text = result.to_json()

    def no_constants(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    data = json.loads(text, parse_constant=no_constants)
    assert [r["method"] for r in data["rows"]] == list(result.methods)
    assert set(data["reports"]) == {"source", *result.methods[1:]}
    assert data["splits"]["sizes"]["target_labeled"] == 20
    assert "shift_mmd2" in data["histories"]["mmd"]


def test_save_load_round_trip(result, splits, tmp_path):
    result.save(tmp_path)
    for name in ("results.json", "reference.npz", "source_model.keras", "target_only.keras", "mmd.keras"):
        assert (tmp_path / name).is_file()
    loaded = Experiment.load(tmp_path)
    assert isinstance(loaded, ExperimentResult)
    assert loaded.methods == result.methods
    x_test = splits.target_test[0]
    for method in result.methods:
        np.testing.assert_allclose(loaded.predict(method, x_test), result.predict(method, x_test), atol=1e-6)
    assert loaded.to_frame().equals(result.to_frame())
    assert set(loaded.adapters) == set(adapter_names(default_list=True)) - {"adabn"}
    assert isinstance(loaded.adapters["label_shift"], LabelShiftAdapter)
    ref = Reference.load(tmp_path / "reference.npz")
    assert ref.n_reference == len(splits.source_val[0]) and ref.features is not None
    with pytest.raises(ValueError, match="No results.json"):
        ExperimentResult.load(tmp_path / "missing")


def test_plot(result):
    fig = result.plot()
    assert len(fig.axes) == 2
    assert "metrics" in fig.axes[0].get_title()


def test_given_model_unlabelled_target_and_templates(result, splits):
    """A trained model instance is used as is; without target labels only unsupervised adapters run."""
    source = result.source_model
    weights = [w.copy() for w in source.get_weights()]
    x_all = np.concatenate([splits.target_labeled[0], splits.target_unlabeled, splits.target_test[0]])
    xs = np.concatenate([splits.source_train[0], splits.source_val[0]])
    ys = np.concatenate([splits.source_train[1], splits.source_val[1]])
    with pytest.warns(UserWarning, match="no target_labeled"):
        unlabeled = split_domains(xs, ys, x_all, seed=0)
    # named explicitly, an adapter that needs target labels is an error; from the default list it is
    # skipped with a note (it refused the whole run)
    with pytest.raises(ValueError, match=r"\['copy', 'finetune'\] train on labelled target samples"):
        Experiment(source, adapters=("copy", "finetune", "mmd")).run(unlabeled, seed=0)
    every = Experiment(source, n_permutations=20).run(unlabeled, seed=0, epochs=1)
    assert "copy" not in every.methods and "finetune" not in every.methods and "mmd" in every.methods
    assert any(n.startswith("copy skipped") and "target_labeled" in n for n in every.notes)
    assert any(n.startswith("finetune skipped") for n in every.notes)
    template = LabelShiftAdapter(source, method="bbse")
    res = Experiment(source, adapters={"bbse": template}, n_permutations=20).run(unlabeled, seed=0)
    assert res.methods == ("source_only", "bbse")
    assert all(res.rows["bbse"][m] is None for m in METRICS)
    assert res.rows["bbse"]["shift_p_after"] is not None
    assert res.config["adapters"]["bbse"]["params"]["method"] == "bbse"
    assert res.config["source_trained_by_experiment"] is False
    assert any("target_only skipped" in n or "No target labels" in n for n in res.notes)
    assert not hasattr(template, "model_")  # the template itself is never fitted
    assert all(np.array_equal(a, b) for a, b in zip(weights, source.get_weights()))
    json.loads(res.to_json())


def test_train_source_true_trains_a_copy(result, splits):
    source = result.source_model
    weights = [w.copy() for w in source.get_weights()]
    res = Experiment(source, adapters=(), train_source=True, target_only=False, monitor=False,
                     n_permutations=20).run(splits, seed=1, epochs=1)
    assert res.source_model is not source
    assert all(np.array_equal(a, b) for a, b in zip(weights, source.get_weights()))
    assert "source_only" in res.histories and res.config["source_trained_by_experiment"] is True


def test_bad_input(splits, builder):
    with pytest.raises(TypeError, match="returned a str, not a keras.Model"):
        Experiment(lambda: "not a model").run(splits, seed=0, epochs=1)

    def uncompiled():
        model = builder()
        return keras.Sequential(model.layers)

    with pytest.raises(TypeError, match="uncompiled keras.Model"):
        Experiment(uncompiled).run(splits, seed=0, epochs=1)
    with pytest.raises(TypeError, match="zero-argument function.*requires \\['n'\\]"):
        Experiment(lambda n: builder())
    with pytest.raises(TypeError, match="source_model must be a compiled keras.Model"):
        Experiment(42)
    with pytest.raises(ValueError, match="Unknown adapter 'magic'. Choose from: copy, finetune, mmd, label_shift"):
        Experiment(builder, adapters=("copy", "magic"))
    with pytest.raises(TypeError, match="Adapter instance"):
        Experiment(builder, adapters=(3,))
    with pytest.raises(ValueError, match="reserved for a baseline"):
        Experiment(builder, adapters={"source_only": "copy"})
    with pytest.raises(ValueError, match="Unknown metric 'f2'"):
        Experiment(builder, metrics=("accuracy", "f2"))
    with pytest.raises(ValueError, match="fit_kwargs has an entry for 'magic'"):
        Experiment(builder, fit_kwargs={"magic": {}})
    with pytest.raises(TypeError, match="splits must be a DomainSplits"):
        Experiment(builder).run((splits.source_train, splits.target_test))
    with pytest.raises(ValueError, match="epochs has an entry for 'sauce'"):
        Experiment(builder).run(splits, epochs={"sauce": 2})


def test_model_that_does_not_fit_the_data(splits):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="has 30 features, but the model expects 5"):
        Experiment(model, adapters=()).run(splits, seed=0)
    three = keras.Sequential([keras.Input((30,)), keras.layers.Dense(1, activation="sigmoid")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 30))
    y = np.repeat([0, 1, 2], 30)
    s3 = split_domains(x, y, x + 1, y, target_labeled=3, seed=0)
    with pytest.raises(ValueError, match="1 output\\(s\\) but the labels have 3 classes"):
        Experiment(three, adapters=()).run(s3, seed=0)


def _constant_model(units, bias, activation=None, softmax_layer=False):
    """Outputs `activation(bias)` for every input: a kernel of zeros (values chosen to fool a guess)."""
    inp = keras.Input((4,))
    out = keras.layers.Dense(units, activation=activation, kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(bias), name="head")(inp)
    if softmax_layer:
        out = keras.layers.Softmax()(out)
    return keras.Model(inp, out)


def test_logits_vs_probabilities_from_the_architecture(splits):
    """Regression (#16): outputs inside [0, 1] are not probabilities unless the activation says so."""
    from shiftkit.shift.features import predict_proba

    x = np.zeros((3, 4), "float32")
    logits = [0.2, 0.5, 0.3]  # linear outputs that look like a probability row (they sum to 1)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(predict_proba(_constant_model(3, logits), x)[0], expected, rtol=1e-6)
    np.testing.assert_allclose(predict_proba(_constant_model(3, logits, softmax_layer=True), x)[0], expected, rtol=1e-6)
    one_logit = predict_proba(_constant_model(1, 0.3), x)[0]  # a single logit of 0.3: P(1) = sigmoid(0.3)
    np.testing.assert_allclose(one_logit, [1 - 1 / (1 + np.exp(-0.3)), 1 / (1 + np.exp(-0.3))], rtol=1e-6)
    sigmoid = predict_proba(_constant_model(1, 0.3, activation="sigmoid"), x)[0]  # a sigmoid unit is read as is
    np.testing.assert_allclose(sigmoid, [1 - 1 / (1 + np.exp(-0.3)), 1 / (1 + np.exp(-0.3))], rtol=1e-6)
    # the experiment's metrics read them the same way
    result = ExperimentResult(methods=["source_only"], metric_names=["accuracy"], rows={}, histories={}, reports={},
                              splits={}, config={}, source_model=_constant_model(3, logits))
    np.testing.assert_allclose(result.predict("source_only", x)[0], expected, rtol=1e-6)


def test_adapter_evaluate_thresholds_a_single_logit_at_zero():
    """A single logit of -0.3 is class 0 (threshold 0), a sigmoid unit of 0.43 too (threshold 0.5)."""
    from shiftkit.adapt import CopyAdapter

    x = np.zeros((6, 4), "float32")
    y = np.zeros(6, int)
    for model in (_constant_model(1, -0.3), _constant_model(1, -0.3, activation="sigmoid")):
        adapter = CopyAdapter(model).fit(x, y, epochs=0, verbose=0)  # the source model, untrained
        assert adapter.evaluate(x, y)["accuracy"] == 1.0
        rep = adapter.shift_report(x, x + 1.0, y, y, n_permutations=20, seed=0)
        assert rep.accuracy_before == 1.0 and rep.accuracy_after == 1.0


def test_default_epochs_let_copy_and_finetune_stop_on_held_out_data(builder):
    from shiftkit.experiment import DEFAULT_EPOCHS

    exp = Experiment(builder, adapters={"copy": "copy", "ft": "finetune", "mmd": "mmd"})
    assert DEFAULT_EPOCHS["copy"] is None and DEFAULT_EPOCHS["finetune"] is None
    assert exp._epochs(None)["copy"] is None
    chosen = exp._epochs({"ft": None, "copy": 5})
    assert chosen["ft"] is None and chosen["copy"] == 5
    # The adapter contract: epochs=None is every adapter's own default (MMDAdapter: EPOCHS).
    assert exp._epochs({"mmd": None})["mmd"] is None
    with pytest.raises(TypeError, match="epochs"):
        exp._epochs({"source": None})  # the source model trains a fixed number of epochs


@pytest.mark.slow
def test_auto_runs_in_experiment_and_keeps_its_scores(splits, builder):
    """The automatic choice is one more method of an Experiment; its selection (every score) is kept.

    (A template with explicit candidates keeps this test short; `adapters=["auto"]` diagnoses first.)
    """
    from shiftkit.adapt import AutoAdapter

    template = AutoAdapter(builder(), candidates=["coral", "label_shift"])
    res = Experiment(builder, adapters={"auto": template}, n_permutations=20, target_only=False).run(
        splits, seed=0, epochs=2)
    assert res.methods == ("source_only", "auto")
    sel = res.adapters["auto"].selection_
    assert [s.name for s in sel.scores] == ["source_only", "coral", "label_shift"]
    assert sel.chosen in ("source_only", "coral", "label_shift")
    assert all(s.score is None or np.isfinite(s.score) for s in sel.scores)
    assert np.isfinite(res.to_frame().loc["auto", "accuracy"])


def test_each_method_seed_is_fixed_by_its_name_not_its_place_in_the_list():
    """The docs promise that adding or removing an adapter leaves the others' results unchanged; methods
    outside the first eight got 10 + their index (self_training moved when coral was added before it)."""
    from shiftkit.adapt import adapter_names
    from shiftkit.experiment import _seed

    for name in adapter_names() + ("my_mmd",):
        seeds = {_seed(0, name, index) for index in range(12)}
        assert len(seeds) == 1, (name, seeds)
    # the default list's seeds are the ones its runs always had (RESULTS figures stand)
    for index, name in enumerate(adapter_names(default_list=True)):
        if index >= 6:
            assert _seed(0, name, index) == 10 + index
    assert len({_seed(0, name) for name in adapter_names() + ("source", "target_only")}) == len(adapter_names()) + 2


@pytest.mark.parametrize("coding", ["one_to_k", "names"])
def test_labels_coded_1_to_k_or_named_are_classes_not_phantoms(coding, builder):
    """split_domains counted labels 1/2 as three classes (an empty class 0), and Experiment then trained
    on the raw values: labels 1..K must be K classes, the splits keep the user's values, and a
    K-output model is trained and scored on the same figures as with labels 0..K-1."""
    s = shiftkit.datasets.load_scenario("hospitals_covariate", seed=0)
    to = {"one_to_k": lambda y: y + 1, "names": lambda y: np.array(["benign", "malignant"])[y]}[coding]
    plain = split_domains(s.x_source, s.y_source, s.x_target, s.y_target, target_labeled=10, seed=0)
    coded = split_domains(s.x_source, to(s.y_source), s.x_target, to(s.y_target), target_labeled=10, seed=0)
    assert coded.n_classes == 2 and coded.counts == plain.counts
    assert list(coded.classes) == list(to(np.array([0, 1])))
    assert list(coded.summary().columns[2:]) == [f"class {c}" for c in coded.classes]
    np.testing.assert_array_equal(coded.target_labeled[1], to(plain.target_labeled[1]))  # values kept
    for split in (plain, coded):
        assert split.to_dict()["n_classes"] == 2
    run = dict(seed=0, epochs=2)
    exp = dict(adapters=("copy", "label_shift"), n_permutations=20, class_weight="balanced")
    a = Experiment(builder, **exp).run(plain, **run).to_frame()
    b = Experiment(builder, **exp).run(coded, **run).to_frame()
    np.testing.assert_allclose(b[list(METRICS)].to_numpy(), a[list(METRICS)].to_numpy(), atol=1e-6)


def test_class_weight_dict_is_keyed_by_the_label_values(builder):
    s = shiftkit.datasets.load_scenario("hospitals_covariate", seed=0)
    coded = split_domains(s.x_source, s.y_source + 1, s.x_target, s.y_target + 1, target_labeled=10, seed=0)
    with pytest.raises(ValueError, match=r"class_weight has key\(s\) \[0\]"):
        Experiment(builder, adapters=("copy",), n_permutations=20, class_weight={0: 1.0, 1: 2.0}).run(
            coded, seed=0, epochs=1)
