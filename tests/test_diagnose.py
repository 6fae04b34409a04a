"""diagnose: the right kind of shift named on seeded synthetic scenarios with known truth."""

import json

import numpy as np
import pytest

from shiftkit.datasets import synthetic_shift
from shiftkit.shift.diagnose import diagnose

EXPECTED = {"none": (), "covariate": ("covariate",), "label": ("label",), "concept": ("concept",)}
RECOMMENDED = {"none": "none", "covariate": "MMDAdapter", "label": "LabelShiftAdapter", "concept": "FineTuneAdapter"}


@pytest.mark.parametrize("kind", ["none", "covariate", "label", "concept"])
def test_right_kind_in_90_percent_of_trials(kind):
    trials = 20
    right = 0
    recommended = 0
    for i in range(trials):
        s = synthetic_shift(seed=1000 + i, kind=kind)
        d = diagnose(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=200,
                     second_opinion=False, seed=i)
        found = tuple(k for k in d.kinds if k != "imbalance")
        right += found == EXPECTED[kind]
        recommended += d.recommendation == RECOMMENDED[kind]
    assert right / trials >= 0.9, (kind, right)
    assert recommended / trials >= 0.9, (kind, recommended)


def test_label_shift_without_target_labels():
    hits = 0
    for i in range(10):
        s = synthetic_shift(seed=2000 + i, kind="label")
        d = diagnose(s.x_source, s.x_target, s.y_source, n_permutations=200, n_bootstrap=100,
                     second_opinion=False, seed=i)
        hits += d.kinds == ("label",)
        assert not d.evidence_for("concept").tested
    assert hits >= 9


def test_estimated_priors_do_not_flag_a_null():
    flags = 0
    for i in range(10):
        s = synthetic_shift(seed=3000 + i, kind="none")
        d = diagnose(s.x_source, s.x_target, s.y_source, n_permutations=100, n_bootstrap=100,
                     second_opinion=False, seed=i)
        flags += d.evidence_for("label").detected
    assert flags <= 1


def test_unlabelled_data_tests_covariate_only():
    s = synthetic_shift(seed=5, kind="covariate")
    d = diagnose(s.x_source, s.x_target, seed=0, n_permutations=200)
    assert d.kinds == ("covariate",) and d.recommendation == "MMDAdapter"
    assert not d.evidence_for("label").tested and not d.evidence_for("concept").tested
    assert d.classifier_test is not None and d.classifier_test.is_shift
    json.dumps(d.to_dict(), allow_nan=False)
    assert "recommendation: MMDAdapter" in str(d)


def test_concept_with_few_labels_recommends_copy():
    s = synthetic_shift(seed=6, kind="concept")
    rng = np.random.default_rng(0)
    few = np.r_[rng.choice(np.flatnonzero(s.y_target == 0), 5, replace=False),
                rng.choice(np.flatnonzero(s.y_target == 1), 200, replace=False)]
    d = diagnose(s.x_source, s.x_target[few], s.y_source, s.y_target[few], n_permutations=100,
                 second_opinion=False, seed=0)
    assert "concept" in d.kinds
    assert d.recommendation == "CopyAdapter" and "only 5 target label" in d.reason


def test_with_a_keras_model():
    import keras

    s = synthetic_shift(seed=7, kind="concept", n_source=600)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(s.x_source[:300], s.y_source[:300], epochs=30, verbose=0)
    d = diagnose(s.x_source[300:], s.x_target, s.y_source[300:], s.y_target, model=model,
                 n_permutations=100, second_opinion=False, seed=0)
    assert "concept" in d.kinds and "covariate" not in d.kinds


def test_bad_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    with pytest.raises(ValueError, match="y_target was given without y_source"):
        diagnose(x, x, y_target=np.zeros(30))
    with pytest.raises(ValueError, match="y_source has 10 labels but x_source has 30"):
        diagnose(x, x, np.zeros(10))
    with pytest.raises(ValueError, match="imbalance_threshold"):
        diagnose(x, x, imbalance_threshold=0.5)
    with pytest.raises(ValueError, match="same feature shape"):
        diagnose(x, x[:, :2])
