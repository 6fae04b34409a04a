"""Inputs a new user passes that the first tests did not: DataFrames, mixed label types, tiny samples, odd models.

Each test reproduces a defect found by trying the API on data none of the other tests use (session of
2026-12-01); each failed before its fix.
"""

import warnings

import keras
import numpy as np
import pandas as pd
import pytest

import shiftkit
from shiftkit.check import Reference, check_shift
from shiftkit.shift.mmd import min_attainable_p


def _frame(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.normal(50, 10, n) + shift, "bmi": rng.normal(25, 3, n)})


# ------------------------------------------------------------------------------ DataFrames by name


def test_dataframe_columns_are_matched_by_name_not_position():
    src, tgt = _frame(200, 0), _frame(200, 1)
    swapped = tgt[["bmi", "age"]]
    same = shiftkit.mmd_test(src, tgt, n_permutations=99, seed=0).p_value
    assert shiftkit.mmd_test(src, swapped, n_permutations=99, seed=0).p_value == same
    assert not shiftkit.analyze(src, swapped, n_permutations=99, seed=0).is_shift
    assert not shiftkit.shift_report(src, swapped, n_permutations=99, seed=0).is_shift
    assert check_shift(src, swapped, n_permutations=200, seed=0).passed
    assert check_shift(Reference.from_data(src), swapped, n_permutations=200, seed=0).passed
    # a real shift of one named column is still found, and reported under its name
    drift = shiftkit.feature_drift(src, _frame(200, 1, shift=10.0)[["bmi", "age"]])
    assert drift.shifted_features == ["age"]
    assert shiftkit.analyze(src, tgt, n_permutations=99, seed=0).feature_names == ("age", "bmi")


def test_dataframes_with_other_columns_are_refused_with_the_names():
    src, tgt = _frame(50, 0), _frame(50, 1).rename(columns={"bmi": "BMI"})
    with pytest.raises(ValueError, match=r"lacks \['bmi'\] and has \['BMI'\]"):
        shiftkit.mmd_test(src, tgt)
    with pytest.raises(ValueError, match="lacks"):
        check_shift(Reference.from_data(src), tgt)


def test_feature_names_of_the_wrong_length_are_refused():
    x = np.random.default_rng(0).normal(size=(30, 3))
    with pytest.raises(ValueError, match="feature_names has 1 name"):
        shiftkit.analyze(x, x + 1.0, feature_names=["a"], n_permutations=99)


# ------------------------------------------------------------------------------ labels


def test_text_labels_against_numeric_labels_are_refused_not_two_classes_each():
    rng = np.random.default_rng(0)
    ys, yt = rng.integers(0, 3, 200), rng.integers(0, 3, 200).astype(str)
    with pytest.raises(TypeError, match="look like numbers"):
        shiftkit.label_shift_test(ys, yt, n_permutations=99, seed=0)
    stray = yt.astype(object)
    stray[5] = "unknown"
    with pytest.raises(TypeError, match=r"\['unknown'\]"):
        shiftkit.label_ratios(ys, stray)


def test_target_accuracy_codes_labels_as_everywhere_else():
    rng = np.random.default_rng(0)
    ys, yt = rng.integers(0, 3, 300), rng.integers(0, 3, 300)

    def probs(y):
        z = np.eye(3)[y] * 3 + rng.normal(size=(len(y), 3))
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    ps, pt = probs(ys), probs(yt)
    want = shiftkit.target_accuracy(ps, ys, pt, yt).accuracy
    assert want > 0.8
    assert shiftkit.target_accuracy(ps, ys + 1, pt, yt + 1).accuracy == want
    names = np.array(["cat", "dog", "emu"])
    assert shiftkit.target_accuracy(ps, names[ys], pt, names[yt]).accuracy == want
    assert shiftkit.target_accuracy(ps, ys, pt, np.eye(3)[yt]).accuracy == want
    with pytest.raises(ValueError, match="cannot be matched"):
        shiftkit.target_accuracy(ps, ys, pt, np.r_[yt[:-1], 3])
    with pytest.raises(ValueError, match="y_target has 10 labels but target_probs has 300 rows"):
        shiftkit.target_accuracy(ps, ys, pt, yt[:10])


def test_ragged_labels_get_a_clear_error():
    with pytest.raises(TypeError, match="could not be read as an array of labels"):
        shiftkit.label_distribution([[0, 1], [1]])


def test_calibration_on_a_handful_of_rows_warns():
    rng = np.random.default_rng(0)
    ps = np.full((3, 3), 0.1) + 0.7 * np.eye(3)
    pt = rng.dirichlet(np.ones(3), size=100)
    with pytest.warns(UserWarning, match="only 1 held-out row"):
        shiftkit.estimate_target_priors(ps, [0, 1, 2], pt)
    big = np.repeat(ps, 5, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shiftkit.estimate_target_priors(big, np.repeat([0, 1, 2], 5), pt)


# ------------------------------------------------------------------------------ tests that cannot reject


def test_a_split_and_its_mirror_tie_so_the_p_value_is_never_below_the_attainable():
    # 4 rows a side: 70 splits, the observed one and its mirror share the largest statistic: p >= 2/70
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 2)), rng.normal(3, size=(4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = shiftkit.mmd_test(x, y, n_permutations=5000, seed=1, bandwidth=1.0)
    exact_ties = int(np.count_nonzero(res.null >= res.statistic))
    assert res.p_value == pytest.approx((1 + np.count_nonzero(np.isclose(res.null, res.statistic, rtol=1e-12, atol=0)
                                                              | (res.null >= res.statistic))) / 5001)
    assert res.p_value > (1 + exact_ties) / 5001  # the rounding-broken mirror ties are counted
    assert min_attainable_p(4, 4) == pytest.approx(2 / 70)


def test_untestable_sizes_warn_instead_of_a_silent_no_shift():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 2)), rng.normal(3, size=(3, 2))
    with pytest.warns(UserWarning, match="Not testable"):
        res = shiftkit.mmd_test(x, y, n_permutations=999, seed=0)
    assert not res.is_shift


def test_random_feature_test_refuses_blocks_too_few_to_reject():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 3)), rng.normal(3, size=(300, 3))
    assert shiftkit.rff_mmd_test(x, y, block_size=10, n_permutations=99, seed=0).is_shift
    with pytest.raises(ValueError, match="block_size=100 leaves 6 blocks"):
        shiftkit.rff_mmd_test(x, y, block_size=100, n_permutations=99, seed=0)


def test_features_that_change_the_number_of_rows_are_refused():
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="features returned 5 and 5 rows"):
        shiftkit.mmd_test(x, x + 1, features=lambda z: z[:5], n_permutations=99)


def test_analyze_on_three_rows_runs_and_says_what_it_could_not_do():
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="Not testable"):
        a = shiftkit.analyze(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), n_permutations=99)
    assert a.diagnosis.classifier_test is None
    assert "second opinion was not run" in a.diagnosis.reason


# ------------------------------------------------------------------------------ argument checks


def test_bools_and_negative_seeds_are_refused():
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(TypeError, match="n_permutations must be an integer"):
        shiftkit.mmd_test(x, x, n_permutations=True)
    with pytest.raises(ValueError, match="seed must be None or a non-negative integer; got -1"):
        shiftkit.mmd_test(x, x, seed=-1)


def test_diagnose_with_bbsd_needs_a_classifier():
    x = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match="bbsd=True tests a classifier"):
        shiftkit.diagnose(x, x + 1, bbsd=True)


# ------------------------------------------------------------------------------ models


def _model(outputs):
    inp = keras.Input((4,))
    h = keras.layers.Dense(8, activation="relu")(inp)
    return keras.Model(inp, outputs(h))


def test_models_without_one_class_output_are_refused_clearly():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)).astype("float32"), rng.integers(0, 2, 60)
    one_softmax = _model(lambda h: keras.layers.Dense(1, activation="softmax")(h))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about the size-1 softmax itself
        with pytest.raises(ValueError, match="single softmax unit"):
            shiftkit.shift_report(x, x + 0.1, y, model=one_softmax, n_permutations=99)
    two_outputs = _model(lambda h: [keras.layers.Dense(2, activation="softmax")(h), keras.layers.Dense(1)(h)])
    with pytest.raises(ValueError, match="has 2 outputs"):
        shiftkit.shift_report(x, x + 0.1, y, model=two_outputs, n_permutations=99)
    a, b = keras.Input((2,)), keras.Input((2,))
    two_inputs = keras.Model([a, b], keras.layers.Dense(2, activation="softmax")(keras.layers.Concatenate()([a, b])))
    with pytest.raises(ValueError, match="takes 2 inputs"):
        shiftkit.shift_report(x, x + 0.1, y, model=two_inputs, n_permutations=99)


def test_report_table_prints_the_edge_thresholds_in_words():
    rng = np.random.default_rng(0)
    text = str(shiftkit.shift_report(rng.normal(size=(50, 3)), rng.normal(1, size=(50, 3)), n_permutations=99, seed=0))
    assert "inf" not in text
    assert "threshold 'any'" in text


def test_a_class_only_in_the_target_is_not_sent_to_a_reweighting_adapter():
    """A label-shift correction cannot run without source rows of a class (and no reweighting teaches it)."""
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(120, 2)), rng.normal(size=(120, 2))
    ys = np.array(["A", "B"] * 60)
    yt = np.array(["A", "C"] * 60)
    d = shiftkit.diagnose(xs, xt, ys, yt, n_permutations=199, seed=0, second_opinion=False)
    assert "label" in d.kinds
    assert d.recommendation in ("FineTuneAdapter", "CopyAdapter")
    assert "['C'] that the source lacks" in d.reason
