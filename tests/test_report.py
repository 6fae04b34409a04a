"""shift_report and compare: the report object every front end renders."""

import json

import numpy as np
import pytest

from shiftkit.datasets import load_scenario
from shiftkit.shift import compare, shift_report
from shiftkit.shift.labels import label_distribution
from shiftkit.shift.report import ShiftComparison, ShiftReport, TargetAccuracy


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
    assert d["schema_version"] == "2.5" and d["is_shift"] is True and d["joint"] is None  # no model: Holm decides
    assert len(d["input_test"]["null"]) == 300


def test_no_shift_control_is_not_flagged():
    s = load_scenario("hospitals_no_shift", seed=0)
    rep = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=300, seed=0)
    assert not rep.is_shift
    assert "No shift detected" in rep.verdict
    assert rep.labels.distance.total_variation < 0.05


def test_standardize_puts_columns_on_one_scale():
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
    # the target accuracy: only the report with a classifier has it (measured: target labels were given)
    assert before.accuracy is None and after.accuracy.measured
    assert rows["target accuracy"].after == pytest.approx(after.accuracy.accuracy)
    assert rows["target accuracy"].before is None and rows["target accuracy"].better == "higher"
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
        # -1 is a valid label value since issue 9, item 2 (labels -1/1); NaN is not a label
        (dict(y_source=np.r_[np.zeros(39), np.nan]), ValueError, r"y_source has NaN"),
        (dict(y_source=np.zeros(40), y_target=np.zeros(29)), ValueError, r"y_target has 29 labels but x_target has 30"),
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


# ------------------------------------------------------------------ issue 9, item 12: family-wise verdict
def _fake(res, p_value, space):
    import dataclasses

    return dataclasses.replace(res, p_value=p_value, is_shift=p_value <= res.alpha, space=space)


@pytest.fixture(scope="module")
def two_results():
    from shiftkit.shift import mmd_test

    rng = np.random.default_rng(0)
    res = mmd_test(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), n_permutations=199, alpha=0.05, seed=0)
    return res


def _report(input_test, feature_test, alpha=0.05):
    return ShiftReport(input_test=input_test, feature_test=feature_test, labels=None, alpha=alpha,
                       n_source=30, n_target=30)


def test_verdict_is_holm_not_or(two_results):
    """Both p-values in (alpha/2, alpha]: each test alone rejects at alpha, the family does not."""
    rep = _report(_fake(two_results, 0.04, "input"), _fake(two_results, 0.045, "feature"))
    assert not rep.is_shift
    assert "Holm" in rep.verdict and "No shift detected" in rep.verdict
    d = rep.to_dict(include_null=False)
    assert d["correction"] == "holm" and d["is_shift"] is False
    assert d["adjusted_p_values"] == {"input": pytest.approx(0.08), "feature": pytest.approx(0.08)}
    # each stored test is decided at its Holm level, so its own threshold and flag agree with the verdict
    for t in (rep.input_test, rep.feature_test):
        assert t.alpha == pytest.approx(0.025) and not t.is_shift
        assert (t.statistic > t.threshold) == t.is_shift
    assert "Holm" in str(rep)


def test_holm_step_down(two_results):
    rep = _report(_fake(two_results, 0.02, "input"), _fake(two_results, 0.045, "feature"))
    assert rep.is_shift and rep.input_test.is_shift and rep.feature_test.is_shift  # 0.02 <= 0.025, then 0.045 <= 0.05
    assert rep.input_test.alpha == pytest.approx(0.025) and rep.feature_test.alpha == pytest.approx(0.05)
    assert "input and feature space" in rep.verdict
    rep = _report(_fake(two_results, 0.03, "input"), _fake(two_results, 0.001, "feature"))
    assert rep.is_shift and rep.feature_test.is_shift and rep.input_test.is_shift
    rep = _report(_fake(two_results, 0.2, "input"), _fake(two_results, 0.001, "feature"))
    assert rep.is_shift and rep.feature_test.is_shift and not rep.input_test.is_shift
    assert "feature space" in rep.verdict and "input and" not in rep.verdict
    # a single test is decided at alpha itself
    one = _report(_fake(two_results, 0.04, "input"), None)
    assert one.is_shift and one.input_test.alpha == pytest.approx(0.05)


def test_report_cannot_hide_an_untestable_share(two_results):
    """A test whose smallest p-value is above its Holm share would make the verdict a silent 'no'."""
    from shiftkit.shift import mmd_test

    rng = np.random.default_rng(1)
    coarse = mmd_test(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), n_permutations=30, alpha=0.05, seed=0)
    with pytest.raises(ValueError, match=r"n_permutations=30.*alpha/2 = 0.025.*>= 79"):
        _report(coarse, _fake(coarse, 0.5, "feature"))


def test_shift_report_raises_permutations_for_the_holm_share(small_model):
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(40, 5)), rng.normal(size=(30, 5))
    rep = shift_report(xs, xt, model=small_model, n_permutations=20, alpha=0.05, seed=0)
    # input MMD, feature MMD and BBSD (a classifier): the smallest Holm share is alpha / 3
    assert rep.input_test.n_permutations == rep.feature_test.n_permutations == 119
    two = shift_report(xs, xt, model=small_model, n_permutations=20, alpha=0.05, seed=0, bbsd=None)
    assert two.input_test.n_permutations == 79 and two.bbsd is None
    alone = shift_report(xs, xt, n_permutations=20, alpha=0.05, seed=0)
    assert alone.input_test.n_permutations == 39  # one test: enough to reject at alpha with 2 resolution
    assert "Holm" in alone.verdict


@pytest.mark.slow
def test_report_verdict_family_wise_level(small_model):
    """>= 200 seeded nulls with a model: the verdict's rejection rate (the joint test's decision since schema 2.4) is at
    most alpha + 3 s.e."""
    alpha, n_draws = 0.1, 200
    rng = np.random.default_rng(2024)
    flagged = 0
    for draw in range(n_draws):
        xs = rng.standard_t(3, size=(30, 5))  # heavy-tailed
        xt = rng.standard_t(3, size=(24, 5))  # unequal sizes
        flagged += shift_report(xs, xt, model=small_model, n_permutations=39, alpha=alpha, seed=draw).is_shift
    rate = flagged / n_draws
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / n_draws), rate
    assert rate > 0.01  # not a test that never rejects
    # and it detects a clear shift
    xs = rng.normal(size=(40, 5))
    assert shift_report(xs, rng.normal(1.0, size=(40, 5)), model=small_model, alpha=alpha, seed=0).is_shift


# ------------------------------------------------------------------ issue 9, item 2: any label values
@pytest.mark.parametrize(
    "coding",
    [
        {0: 1, 1: 2},  # 1/2: no phantom class 0
        {0: 2019, 1: 2020},  # years: not 2,021 classes
        {0: "benign", 1: "malignant"},
        {0: False, 1: True},
        {0: -1, 1: 1},
    ],
)
def test_any_label_values(coding):
    s = load_scenario("hospitals_covariate", seed=0)
    ys = np.array([coding[int(v)] for v in s.y_source], dtype=object if isinstance(coding[0], str) else None)
    yt = np.array([coding[int(v)] for v in s.y_target], dtype=ys.dtype)
    rep = shift_report(s.x_source, s.x_target, ys, yt, n_permutations=50, seed=0)
    ref = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=50, seed=0)
    lab = rep.labels
    assert lab.n_classes == 2 and lab.classes == (coding[0], coding[1])
    np.testing.assert_allclose(lab.source_proportions, ref.labels.source_proportions)
    np.testing.assert_allclose(lab.target_proportions, ref.labels.target_proportions)
    assert lab.source_imbalance.imbalance_ratio == pytest.approx(ref.labels.source_imbalance.imbalance_ratio)
    assert np.isfinite(lab.source_imbalance.imbalance_ratio)
    text = str(rep)
    assert all(str(coding[k]) in text for k in (0, 1))
    d = json.loads(rep.to_json())
    assert d["labels"]["classes"] == [coding[0], coding[1]]
    # source labels only: still two classes
    alone = shift_report(s.x_source, s.x_target, ys, n_permutations=50, seed=0)
    assert alone.labels.n_classes == 2 and alone.labels.classes == (coding[0], coding[1])


def test_labels_one_two_with_a_model(trained_model):
    """Labels 1/2 with a two-class model map to its outputs 0/1 (before: 'y_source has label 2')."""
    s = load_scenario("hospitals_label_shift", seed=0)
    rep = shift_report(s.x_source, s.x_target, s.y_source + 1, model=trained_model, n_permutations=50, seed=0)
    ref = shift_report(s.x_source, s.x_target, s.y_source, model=trained_model, n_permutations=50, seed=0)
    assert rep.labels.classes == (1, 2) and rep.labels.n_classes == 2
    np.testing.assert_allclose(rep.labels.target_proportions, ref.labels.target_proportions)
    with pytest.raises(ValueError, match="cannot be matched to the model's 2 output"):
        shift_report(s.x_source, s.x_target, np.arange(len(s.y_source)) % 3 + 5, model=trained_model,
                     n_permutations=50, seed=0)


# ------------------------------------------------------------------ issue 9, item 17: near-constant pixels
def _thicken(images):
    from scipy import ndimage

    # every pixel raised to at least 1% of the brightest pixel in its 3x3 neighbourhood (<= 0.16 of 16)
    return np.maximum(images, 0.01 * ndimage.grey_dilation(images, size=(1, 3, 3, 1)))


def test_digits_images_one_percent_thickening_is_not_a_shift():
    """Digits given as images (n, 8, 8, 1): pooled per-channel scale. Before, every pixel was divided
    by its own source std (border pixels ~0.003), and a 1% stroke thickening was flagged in most windows."""
    from scipy import ndimage
    from sklearn.datasets import load_digits

    images = load_digits().images[..., None].astype(float)
    flagged_thick = flagged_blur = 0
    n_windows = 20
    for seed in range(n_windows):
        order = np.random.default_rng(seed).permutation(len(images))
        src, tgt = images[order[:200]], images[order[200:400]]
        thick = shift_report(src, _thicken(tgt), n_permutations=99, seed=seed)
        flagged_thick += thick.is_shift
        blurred = ndimage.gaussian_filter(tgt, sigma=(0, 0.6, 0.6, 0))
        flagged_blur += shift_report(src, blurred, n_permutations=99, seed=seed).is_shift
    assert flagged_thick <= 4, flagged_thick  # P(>= 5 of 20 | rate 0.05) = 0.003
    assert flagged_blur >= 18, flagged_blur
    assert "pooled scale" in thick.scaling


def test_label_summary_keeps_the_class_values_in_every_part():
    """issue 10: one label_summary (shift_report and the check's reference): ratios and imbalance by class value."""
    from shiftkit.shift.report import label_summary

    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(60, 2)), rng.normal(size=(40, 2))
    ys, yt = np.resize(["no", "yes", "yes"], 60), np.resize(["no", "yes"], 40)
    lab = shift_report(xs, xt, ys, yt, n_permutations=50, seed=0).labels
    assert lab.classes == ("no", "yes") and lab.ratios.classes == ("no", "yes")
    assert lab.source_imbalance.classes == ("no", "yes") and lab.target_imbalance.classes == ("no", "yes")
    np.testing.assert_allclose(lab.ratios.ratios, [0.5 / (1 / 3), 0.5 / (2 / 3)])
    direct = label_summary(np.resize([0, 1, 1], 60), np.resize([0, 1], 40), 2, classes=("no", "yes"))
    assert direct.to_dict() == lab.to_dict()
    unknown = label_summary(np.array([0, 1, 1]), None, 3, classes=("a", "b"))  # classes padded to n_classes
    assert unknown.target_from == "unknown" and unknown.classes == ("a", "b", 2) and unknown.ratios is None


# ------------------------------------------------------------------ issue 12: BBSD in the report
def _fake_bbsd(p_value, alpha=0.05):
    from shiftkit.shift.bbsd import BBSDResult

    return BBSDResult(is_shift=p_value <= alpha, p_value=p_value, threshold=alpha / 3, alpha=alpha, test="ks",
                      statistics=(0.3, 0.2, 0.1), p_values=(p_value / 3, 0.5, 0.9), outputs=(0, 1, 2), n_outputs=3,
                      n_source=30, n_target=30, correction="bonferroni")


def test_bbsd_joins_the_holm_family(two_results):
    """Three tests: the smallest p is decided at alpha/3, the next at alpha/2, the last at alpha."""
    rep = ShiftReport(input_test=_fake(two_results, 0.04, "input"), feature_test=_fake(two_results, 0.5, "feature"),
                      labels=None, alpha=0.05, n_source=30, n_target=30, bbsd=_fake_bbsd(0.01))
    assert len(rep.family) == 3 and rep.tests == (rep.input_test, rep.feature_test)
    assert rep.bbsd.alpha == pytest.approx(0.05 / 3) and rep.bbsd.is_shift  # 0.01 <= alpha/3
    assert rep.input_test.alpha == pytest.approx(0.025) and not rep.input_test.is_shift  # 0.04 > alpha/2: stop
    assert rep.is_shift and "softmax outputs (BBSD)" in rep.verdict and "input and" not in rep.verdict
    assert rep.adjusted_p_values == {"input": pytest.approx(0.08), "feature": pytest.approx(0.5),
                                     "bbsd": pytest.approx(0.03)}
    assert "Holm correction over 3 tests" in rep.verdict and "bbsd (softmax)" in str(rep)
    d = rep.to_dict(include_null=False)
    assert d["bbsd"]["p_value"] == 0.01 and d["bbsd"]["alpha"] == pytest.approx(0.05 / 3)


def test_bbsd_alone_does_not_reject_above_its_holm_level(two_results):
    rep = ShiftReport(input_test=_fake(two_results, 0.5, "input"), feature_test=_fake(two_results, 0.6, "feature"),
                      labels=None, alpha=0.05, n_source=30, n_target=30, bbsd=_fake_bbsd(0.03))
    assert not rep.is_shift and not rep.bbsd.is_shift and rep.bbsd.alpha == pytest.approx(0.05 / 3)


def test_shift_report_runs_bbsd_with_a_classifier(small_model):
    import keras

    rng = np.random.default_rng(3)
    xs, xt = rng.normal(size=(60, 5)), rng.normal(size=(50, 5))
    rep = shift_report(xs, xt, model=small_model, n_permutations=200, seed=0)
    assert rep.bbsd is not None and rep.bbsd.test == "ks" and rep.bbsd.n_outputs == 3
    assert (rep.bbsd.n_source, rep.bbsd.n_target) == (60, 50)
    assert set(rep.adjusted_p_values) == {"input", "feature", "bbsd"}
    assert json.loads(rep.to_json())["bbsd"]["correction"] == "bonferroni"
    mmd = shift_report(xs, xt, model=small_model, n_permutations=200, seed=0, bbsd="mmd")
    assert mmd.bbsd.test == "mmd" and mmd.bbsd.mmd.n_permutations >= 119
    assert shift_report(xs, xt, n_permutations=200, seed=0).bbsd is None  # no model
    # a model that is not a classifier: skipped by "auto", refused when asked for
    inp = keras.Input((5,))
    regressor = keras.Model(inp, keras.layers.Dense(2, activation="relu")(inp))
    assert shift_report(xs, xt, model=regressor, n_permutations=200, seed=0).bbsd is None
    with pytest.raises(ValueError, match="not a classifier"):
        shift_report(xs, xt, model=regressor, n_permutations=200, seed=0, bbsd="ks")
    with pytest.raises(ValueError, match="bbsd must be"):
        shift_report(xs, xt, model=small_model, bbsd="chi2")


def test_compare_sets_bbsd_before_and_after(small_model):
    rng = np.random.default_rng(4)
    xs, xt = rng.normal(size=(40, 5)), rng.normal(0.5, size=(40, 5))
    a = shift_report(xs, xt, model=small_model, n_permutations=200, seed=0)
    b = shift_report(xs, xt, model=small_model, n_permutations=200, seed=1)
    rows = {r.figure: r for r in compare(a, b).rows}
    assert rows["BBSD p-value"].before == pytest.approx(a.bbsd.p_value) and rows["BBSD p-value"].better == "higher"
    assert rows["BBSD statistic"].comparable


# ------------------------------------------------------------------------------ issue 13: target accuracy


def test_measured_target_accuracy_is_the_models_accuracy_in_every_view(trained_model):
    from shiftkit.html_report import render_html

    s = load_scenario("hospitals_covariate", seed=0)
    rep = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, model=trained_model, n_permutations=100,
                       seed=0, max_samples=200)
    direct = float(np.mean(trained_model.predict(s.x_target, verbose=0).argmax(1) == s.y_target))
    source = float(np.mean(trained_model.predict(s.x_source, verbose=0).argmax(1) == s.y_source))
    acc = rep.accuracy
    assert isinstance(acc, TargetAccuracy) and acc.measured and acc.method == "measured"
    assert acc.accuracy == pytest.approx(direct) and acc.source_accuracy == pytest.approx(source)
    assert acc.n_target == len(s.x_target) and acc.lower is None
    d = json.loads(rep.to_json())["target_accuracy"]
    assert d["title"] == "measured target accuracy" and d["accuracy"] == pytest.approx(direct)
    assert f"measured target accuracy {direct:.3f}" in str(rep)
    page = render_html(rep)
    assert "<h2>Target accuracy</h2>" in page and f"<b>{direct:.3g}</b>" in page
    # no classifier, or no source labels: no accuracy
    assert shift_report(s.x_source, s.x_target, s.y_source, n_permutations=50, seed=0).accuracy is None
    assert shift_report(s.x_source, s.x_target, s.y_source, s.y_target, model=trained_model, n_permutations=50,
                        seed=0, max_samples=100, accuracy=False).accuracy is None


def _label_shifted(means, seed, n=1500, priors=(0.8, 0.1, 0.1)):
    rng = np.random.default_rng([seed, 9])
    ys = rng.integers(0, 3, n)
    yt = rng.choice(3, n, p=list(priors))
    draw = lambda y: (means[y] + rng.normal(size=(len(y), 3))).astype("float32")  # noqa: E731
    return draw(ys), draw(yt), ys, yt


def test_estimated_target_accuracy_recovers_a_label_shift(gaussian_classifier):
    """Label shift (class priors 1/3 each -> 0.8 / 0.1 / 0.1, towards the class the model gets wrong most)
    without target labels: the label-shift estimate is within 0.03 of the true accuracy (measured errors
    +0.015 and +0.023 on these two seeded draws of 1,500 + 1,500 rows), where the naive source accuracy is
    more than 0.03 off."""
    from shiftkit.html_report import render_html

    model, means, _, _ = gaussian_classifier
    for seed in (0, 1):
        xs, xt, ys, yt = _label_shifted(means, seed)
        rep = shift_report(xs, xt, ys, model=model, accuracy_kinds=("label",), seed=0, max_samples=200, bbsd=None,
                           n_permutations=50)
        true = float(np.mean(model.predict(xt, verbose=0).argmax(1) == yt))
        acc = rep.accuracy
        assert not acc.measured and acc.method == "label_shift" and acc.estimate.situation == "label"
        assert abs(acc.accuracy - true) <= 0.03, (acc.accuracy, true)
        assert abs(acc.source_accuracy - true) > 0.03  # the scenario needs the estimate
    # Without kinds shift_report cannot choose (no diagnosis): the unknown-kind estimator, the wide interval;
    # with_accuracy_kinds re-chooses from the same probabilities.
    unknown = shift_report(xs, xt, ys, model=model, seed=0, max_samples=200, bbsd=None, n_permutations=50)
    assert unknown.accuracy.estimate.situation == "unknown" and unknown.accuracy.method == "doc"
    again = unknown.with_accuracy_kinds(("label",))
    assert again.accuracy.accuracy == pytest.approx(acc.accuracy) and again.accuracy.method == "label_shift"
    assert again.input_test.p_value == unknown.input_test.p_value and again.is_shift == unknown.is_shift
    d = json.loads(again.to_json())["target_accuracy"]
    assert d["title"] == "estimated target accuracy" and d["method"] == "label_shift"
    assert d["lower"] == pytest.approx(again.accuracy.lower) and d["estimate"]["estimates"]["source"] is not None
    text = str(again)
    assert "estimated target accuracy" in text and "by label_shift" in text
    page = render_html(again)
    assert "Estimated without target labels" in page and "label_shift" in page


def test_known_target_priors_reach_the_accuracy_estimate(gaussian_classifier):
    """shift_report / analyze pass a known target prevalence to the accuracy estimate: with label shift
    diagnosed alongside a covariate shift, COT onto the given proportions (within 0.03 of the truth here)."""
    model, means, _, _ = gaussian_classifier
    xs, xt, ys, yt = _label_shifted(means, 0)
    true = float(np.mean(model.predict(xt, verbose=0).argmax(1) == yt))
    q = np.bincount(yt, minlength=3) / len(yt)
    rep = shift_report(xs, xt, ys, model=model, accuracy_kinds=("covariate", "label"), accuracy_target_priors=q,
                       seed=0, max_samples=200, bbsd=None, n_permutations=50)
    assert rep.accuracy.method == "cot" and rep.accuracy.estimate.target_priors == pytest.approx(tuple(q))
    assert abs(rep.accuracy.accuracy - true) < 0.03, (rep.accuracy.accuracy, true)
    plain = rep.with_accuracy_kinds(("covariate", "label"))
    assert plain.accuracy.method == "doc" and plain.accuracy.estimate.target_priors is None
    with pytest.raises(ValueError, match="target_priors has 2 values but the model has 3 classes"):
        shift_report(xs, xt, ys, model=model, accuracy_target_priors=[0.5, 0.5], seed=0, max_samples=200, bbsd=None,
                     n_permutations=50)
    with pytest.raises(ValueError, match="accuracy_target_priors is used by the estimated target accuracy"):
        shift_report(xs, xt, ys, accuracy_target_priors=q, seed=0, max_samples=200, n_permutations=50)
    from shiftkit import analyze

    analysis = analyze(xs, xt, y_source=ys, model=model, accuracy_target_priors=q, seed=0, max_samples=200,
                       n_permutations=50, per_feature=False, diagnose_shift=False)
    assert analysis.report.accuracy.method == "cot"  # kinds unknown, proportions given
    from shiftkit.html_report import render_html

    assert "target class proportions given" in render_html(rep)
