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
        d = diagnose(s.x_source, s.x_target, s.y_source, n_permutations=200,
                     second_opinion=False, seed=i)
        hits += d.kinds == ("label",)
        assert not d.evidence_for("concept").tested
    assert hits >= 9


def test_n_bootstrap_is_deprecated():
    s = synthetic_shift(seed=1, kind="none", n_source=100, n_target=100)
    with pytest.warns(DeprecationWarning, match="n_bootstrap"):
        diagnose(s.x_source, s.x_target, s.y_source, n_bootstrap=100, n_permutations=20, second_opinion=False,
                 seed=0)


def test_estimated_priors_do_not_flag_a_null():
    flags = 0
    for i in range(10):
        s = synthetic_shift(seed=3000 + i, kind="none")
        d = diagnose(s.x_source, s.x_target, s.y_source, n_permutations=100,
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


# ---------------------------------------------------------------------------------------------
# Regressions of issue 9
# ---------------------------------------------------------------------------------------------


def _two_gaussians(rng, n, prior=0.5, d=2, k=2, heavy=False):
    """k classes in d dimensions, class means 1.5 apart on the first axis; labels 0..k-1."""
    y = rng.choice(k, size=n, p=np.full(k, 1.0 / k) if prior is None else _priors(prior, k))
    noise = rng.standard_t(3, size=(n, d)) if heavy else rng.normal(size=(n, d))
    x = noise + 1.5 * np.c_[y, np.zeros((n, d - 1))]
    return x, y


def _priors(first, k):
    return np.r_[first, np.full(k - 1, (1.0 - first) / (k - 1))]


@pytest.mark.slow
def test_no_label_shift_reported_on_data_without_shift():
    """Issue 9 #1: 200 labelled source rows, 3000 unlabelled target rows from the same distribution."""
    flags = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        xs, ys = _two_gaussians(rng, 200)
        xt, _ = _two_gaussians(rng, 3000)
        d = diagnose(xs, xt, ys, None, n_permutations=20, second_opinion=False, seed=seed)
        flags += d.evidence_for("label").detected
    assert flags <= 2, flags  # level alpha / 3 = 0.0167: 0.33 expected false flags in 20


@pytest.mark.slow
def test_label_test_without_target_labels_holds_its_level_over_200_nulls():
    """The unlabelled label test of diagnose over 200 seeded nulls: K = 2 and 3, unequal sizes, heavy tails."""
    flags = 0
    runs = 0
    for seed in range(200):
        rng = np.random.default_rng(10_000 + seed)
        k = 2 + seed % 2
        heavy = seed % 4 >= 2
        n_s, n_t = (60, 400) if seed % 3 else (150, 90)
        xs, ys = _two_gaussians(rng, n_s, prior=None, k=k, heavy=heavy)
        xt, _ = _two_gaussians(rng, n_t, prior=None, k=k, heavy=heavy)
        ys = ys + 1  # labels coded 1..K
        d = diagnose(xs, xt, ys, None, alpha=0.15, n_permutations=100, second_opinion=False, seed=seed)
        ev = d.evidence_for("label")
        assert ev.tested and ev.level == pytest.approx(0.05)
        flags += ev.detected
        runs += 1
    se = np.sqrt(0.05 * 0.95 / runs)
    assert flags / runs <= 0.05 + 3 * se, flags


def test_label_test_without_target_labels_detects_label_shift_with_three_classes():
    hits = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        xs, ys = _two_gaussians(rng, 300, prior=None, k=3)
        xt, _ = _two_gaussians(rng, 600, prior=0.7, k=3)
        d = diagnose(xs, xt, ys + 1, None, n_permutations=50, second_opinion=False, seed=seed)
        ev = d.evidence_for("label")
        hits += ev.detected
        assert "permutations" in ev.detail and "estimated target proportions" in ev.detail
    assert hits >= 9


def test_labels_coded_1_and_2_are_balanced_classes():
    """Issue 9 #2: labels 1/2 read as classes 1 and 2, not as an empty class 0."""
    s = synthetic_shift(seed=11, kind="none")
    d = diagnose(s.x_source, s.x_target, s.y_source + 1, s.y_target + 1, n_permutations=50,
                 second_opinion=False, seed=0)
    assert "imbalance" not in d.kinds
    assert d.evidence_for("imbalance").statistic < 1.5
    assert d.classes == (1, 2)
    # without target labels it used to raise "no sample of class(es) [0]"
    d = diagnose(s.x_source, s.x_target, s.y_source + 1, n_permutations=50, second_opinion=False, seed=0)
    assert d.evidence_for("label").tested and "imbalance" not in d.kinds
    years = np.where(s.y_source == 1, 2020, 2019)
    d = diagnose(s.x_source, s.x_target, years, np.where(s.y_target == 1, 2020, 2019), n_permutations=50,
                 second_opinion=False, seed=0)
    assert d.classes == (2019, 2020) and "2019" in d.evidence_for("label").detail
    names = np.where(s.y_source == 1, "malignant", "benign")
    d = diagnose(s.x_source, s.x_target, names, np.where(s.y_target == 1, "malignant", "benign"),
                 n_permutations=50, second_opinion=False, seed=0)
    assert d.classes == ("benign", "malignant")
    json.dumps(d.to_dict(), allow_nan=False)
    assert d.to_dict()["classes"] == ["benign", "malignant"]


def _mlp(n_in=5, n_out=2, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(n_out, activation="softmax")])


def test_covariate_test_with_a_model_can_reject_at_a_small_alpha():
    """Issue 9 #3: two tests at alpha/6 each need more than 500 permutations to ever reject."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(150, 5))
    ys = (xs[:, 0] > 0).astype(int)
    d = diagnose(xs, xs + 2.0, ys, model=_mlp(), alpha=0.01, n_permutations=500, second_opinion=False, seed=0)
    ev = d.evidence_for("covariate")
    assert ev.detected and "covariate" in d.kinds
    # inputs and features (the default: no BBSD): two tests at alpha / 3 / 2 each
    assert ev.n_permutations == 1199 and "BBSD" not in ev.test  # permutations_for(0.01 / 6, 500)
    # with BBSD on the softmax: three tests at alpha / 3 / 3 each
    three = diagnose(xs, xs + 2.0, ys, model=_mlp(), alpha=0.01, n_permutations=500, second_opinion=False, seed=0,
                     bbsd=True)
    ev3 = three.evidence_for("covariate")
    assert "1799 permutations" in ev3.detail and "BBSD" in ev3.test and ev3.n_permutations == 1799


def test_a_test_that_cannot_reach_its_level_says_so():
    rng = np.random.default_rng(1)
    xs, xt = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) + 5
    d = diagnose(xs, xt, alpha=0.01, n_permutations=50, second_opinion=False, seed=0)
    ev = d.evidence_for("covariate")
    assert not ev.detected and not ev.testable
    assert "NOT TESTABLE" in ev.detail and "NOT TESTABLE" in str(d)
    assert d.untestable == ("covariate",)


def test_target_class_absent_from_the_source_is_said():
    """Issue 9 #15: label-matching on the shared classes, and the evidence says so."""
    rng = np.random.default_rng(3)
    xs, ys = _two_gaussians(rng, 300, prior=None, k=2)
    xt, yt = _two_gaussians(rng, 300, prior=None, k=3)
    d = diagnose(xs, xt, ys, yt, n_permutations=50, second_opinion=False, seed=0)
    assert "label" in d.kinds
    cov = d.evidence_for("covariate").detail
    assert "shared classes" in cov and "absent from the source" in cov and "[2]" in cov
    assert "after label-matching the source (" not in cov  # the old wording, which hid the whole-source fallback
    assert "absent from the source" in d.evidence_for("concept").detail


def test_single_class_source_labels_fail_with_shiftkits_message():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 3))
    with pytest.raises(ValueError, match="y_source holds a single class"):
        diagnose(x, x, np.ones(40, dtype=int), n_permutations=20)
    with pytest.raises(ValueError, match="y_source holds a single class"):
        diagnose(x, x, np.full(40, "a"), np.full(40, "a"), n_permutations=20)


def test_near_constant_pixels_do_not_dominate_the_covariate_test():
    """Issue 9 #17: a 0.01 change of border pixels whose own std is 0.003 is no shift of the images."""
    rng = np.random.default_rng(5)

    def images(n, border_shift):
        x = rng.normal(0.0, 0.003, size=(n, 8, 8, 1)) + border_shift
        x[:, 2:6, 2:6, :] = rng.normal(size=(n, 4, 4, 1))
        return x

    d = diagnose(images(120, 0.0), images(120, 0.01), n_permutations=100, second_opinion=False, seed=0)
    assert "covariate" not in d.kinds
    d = diagnose(images(120, 0.0), images(120, 0.0) * 1.6, n_permutations=100, second_opinion=False, seed=0)
    assert "covariate" in d.kinds  # a real change of the images is still found


# ------------------------------------------------------------------ issue 12: BBSD in the covariate family
def test_bbsd_in_the_covariate_family_is_bonferroni_corrected():
    """With a classifier, the covariate p-value is 3 x the smallest of input MMD, feature MMD and BBSD."""
    from shiftkit.shift.bbsd import bbsd_from_probabilities
    from shiftkit.shift.features import predict_proba

    rng = np.random.default_rng(5)
    xs, xt = rng.normal(size=(80, 5)), rng.normal(size=(70, 5))
    xt[:, 0] += 0.4
    model = _mlp()
    d = diagnose(xs, xt, model=model, n_permutations=300, second_opinion=False, seed=0, bbsd=True)
    ev = d.evidence_for("covariate")
    bb = bbsd_from_probabilities(predict_proba(model, xs), predict_proba(model, xt))
    assert f"p={bb.p_value:.3g}" in ev.detail and "BBSD largest KS D" in ev.detail
    assert ev.p_value <= min(1.0, 3 * bb.p_value) + 1e-12  # Bonferroni: 3 x the smallest of the three
    assert ev.detected == (ev.p_value <= 0.05 / 3)
    # a model that is not a classifier keeps the two MMD tests
    import keras

    inp = keras.Input((5,))
    regressor = keras.Model(inp, keras.layers.Dense(3, activation="relu")(inp))
    ev2 = diagnose(xs, xt, model=regressor, n_permutations=300, second_opinion=False, seed=0,
                   bbsd=True).evidence_for("covariate")
    assert "BBSD" not in ev2.test
    # and the default leaves BBSD out of the covariate family
    assert "BBSD" not in diagnose(xs, xt, model=model, n_permutations=300, second_opinion=False,
                                  seed=0).evidence_for("covariate").test
