"""shift_report and compare: the report object every front end renders."""

import json

import numpy as np
import pytest

from shiftkit.datasets import load_scenario
from shiftkit.shift import compare, shift_report
from shiftkit.shift.labels import label_distribution
from shiftkit.shift.report import ShiftComparison, ShiftReport


@pytest.fixture(scope="module")
def trained_model():
    import keras

    scen = load_scenario("hospitals_no_shift", seed=1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Normalization(name="norm"),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(2, activation="softmax", name="out"),
        ]
    )
    model.layers[0].adapt(scen.x_source)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(scen.x_source, scen.y_source, epochs=40, verbose=0)
    return model


def test_report_on_covariate_scenario_with_labels():
    s = load_scenario("hospitals_covariate", seed=0)
    rep = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=300, seed=0)
    assert isinstance(rep, ShiftReport)
    assert rep.input_test.is_shift and rep.is_shift
    assert rep.feature_test is None
    lab = rep.labels
    assert lab.target_from == "labels"
    np.testing.assert_allclose(lab.source_proportions, label_distribution(s.y_source, 2))
    np.testing.assert_allclose(lab.target_proportions, label_distribution(s.y_target, 2))
    np.testing.assert_allclose(lab.ratios.ratios, lab.target_proportions / lab.source_proportions)
    assert lab.distance.total_variation == pytest.approx(
        0.5 * np.abs(lab.target_proportions - lab.source_proportions).sum()
    )
    text = str(rep)
    assert "input space" in text and "YES" in text and "Shift detected" in text
    d = json.loads(rep.to_json())
    assert d["schema_version"] == "1.0" and d["is_shift"] is True
    assert len(d["input_test"]["null"]) == 300


def test_no_shift_control_is_not_flagged():
    s = load_scenario("hospitals_no_shift", seed=0)
    rep = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=300, seed=0)
    assert not rep.is_shift
    assert "No shift detected" in rep.verdict
    assert rep.labels.distance.total_variation < 0.05


def test_standardize_uses_source_statistics():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(80, 3)) * [1.0, 1000.0, 0.01]
    xt = rng.normal(size=(80, 3)) * [1.0, 1000.0, 0.01]
    xt[:, 2] += 0.02  # a 2-std shift in the smallest-scale column
    raw = shift_report(xs, xt, standardize=False, n_permutations=200, seed=0)
    std = shift_report(xs, xt, standardize=True, n_permutations=200, seed=0)
    assert std.input_test.is_shift
    assert not raw.input_test.is_shift  # the large column decides the raw bandwidth and hides it


def test_feature_space_and_estimated_priors(trained_model):
    s = load_scenario("hospitals_label_shift", seed=0)
    rep = shift_report(s.x_source, s.x_target, s.y_source, model=trained_model, n_permutations=200, seed=0)
    assert rep.feature_test is not None and rep.feature_test.space == "feature"
    assert rep.layer == "input of out"
    lab = rep.labels
    assert lab.target_from == "estimated (em)"
    true_q = label_distribution(s.y_target, 2)
    assert np.abs(lab.target_proportions - true_q).sum() < 0.15
    assert lab.target_imbalance is None and lab.prior_estimate is not None
    json.dumps(rep.to_dict(), allow_nan=False)
    named = shift_report(s.x_source, s.x_target, model=trained_model, layer="hidden", n_permutations=50, seed=0)
    assert named.layer == "hidden" and named.labels is None


def test_source_labels_only_give_imbalance():
    s = load_scenario("hospitals_covariate", seed=0)
    rep = shift_report(s.x_source, s.x_target, s.y_source, n_permutations=50, seed=0)
    assert rep.labels.target_from == "unknown" and rep.labels.ratios is None
    assert rep.labels.source_imbalance.imbalance_ratio > 1
    assert "?" in str(rep)


def test_compare_before_after(trained_model):
    s = load_scenario("hospitals_covariate", seed=0)
    before = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=100, seed=0)
    after = shift_report(
        s.x_source, s.x_target, s.y_source, s.y_target, model=trained_model, n_permutations=100, seed=0
    )
    cmp = compare(before, after)
    assert isinstance(cmp, ShiftComparison)
    rows = {r.figure: r for r in cmp.rows}
    assert rows["input MMD^2"].change == pytest.approx(0.0)
    assert rows["feature MMD^2"].before is None and rows["feature MMD^2"].after is not None
    assert rows["feature MMD^2"].comparable is False and rows["feature MMD p-value"].comparable
    assert rows["label total variation"].change == pytest.approx(0.0)
    frame = cmp.to_frame()
    assert list(frame.columns) == ["figure", "before", "after", "change", "better", "comparable"]
    assert "not comparable" in str(cmp)
    json.dumps(cmp.to_dict(), allow_nan=False)
    with pytest.raises(TypeError, match="before must be a ShiftReport"):
        compare({}, after)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(y_source=np.zeros(5)), ValueError, r"y_source has 5 labels but x_source has 40"),
        (dict(y_source=np.r_[np.zeros(39), -1]), ValueError, r"y_source must hold class indices.*negative"),
        (dict(y_source=np.r_[np.zeros(39), 0.5]), ValueError, r"fractional"),
        (dict(y_target=np.zeros(30)), ValueError, r"without y_source"),
        (dict(alpha=2), ValueError, r"alpha"),
        (dict(n_permutations=0), ValueError, r"n_permutations"),
    ],
)
def test_bad_input(kwargs, error, match):
    rng = np.random.default_rng(0)
    with pytest.raises(error, match=match):
        shift_report(rng.normal(size=(40, 5)), rng.normal(size=(30, 5)), **kwargs)


def test_bad_model_input(small_model):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="x_source has 4 features, but the model expects 5"):
        shift_report(rng.normal(size=(40, 4)), rng.normal(size=(30, 4)), model=small_model)
    with pytest.raises(ValueError, match="layer must name a layer"):
        shift_report(rng.normal(size=(40, 5)), rng.normal(size=(30, 5)), model=small_model, layer="nope")
    with pytest.raises(ValueError, match="same feature shape"):
        shift_report(rng.normal(size=(40, 5)), rng.normal(size=(30, 6)))
