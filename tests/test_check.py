"""The pre-deployment check: criteria, thresholds, snapshots."""

import json

import numpy as np
import pytest

from shiftkit.check import Reference, check_shift
from shiftkit.datasets import load_scenario
from shiftkit.shift.mmd import permutations_for


@pytest.fixture(scope="module")
def covariate():
    return load_scenario("hospitals_covariate", seed=0)


def test_no_shift_passes_and_shift_fails(covariate):
    s = load_scenario("hospitals_no_shift", seed=0)
    ok = check_shift(s.x_source, s.x_target, s.y_target, y_reference=s.y_source, seed=0, n_permutations=300)
    assert ok.passed and not ok.failed
    bad = check_shift(covariate.x_source, covariate.x_target, covariate.y_target, y_reference=covariate.y_source,
                      seed=0, n_permutations=300)
    assert not bad.passed
    assert {c.name for c in bad.failed} == {"input-space MMD", "label shift"}
    assert "FAIL" in bad.summary() and "input-space MMD" in bad.summary()
    d = json.loads(bad.to_json())
    assert d["passed"] is False and d["failed_criteria"] == ["input-space MMD", "label shift"]
    assert d["diagnosis"]["recommendation"]


def test_label_criterion_needs_a_significant_shift_beyond_the_tolerance():
    # issue 9 (the check's criteria at level alpha): the total variation of *sample* proportions
    # exceeds 0.1 by chance alone with few target rows; the criterion must not fail on that.
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(300, 3)), rng.integers(1, 4, size=300)  # labels 1..3, one distribution
    failed = 0
    for i in range(40):
        r = np.random.default_rng(100 + i)
        xt, yt = r.normal(size=(40, 3)), r.integers(1, 4, size=40)
        crit = check_shift(xs, xt, yt, y_reference=ys, seed=i, n_permutations=200, diagnose_shift=False,
                           alpha=0.05).criteria[1]
        assert crit.name == "label shift" and "p=" in crit.detail and "permutation chi-square" in crit.detail
        failed += not crit.passed
    assert failed <= 6  # at most ~alpha / 2 of 40 (+ 3 se); the TV alone failed about a third of them


def test_each_threshold_flips_the_verdict(covariate):
    kw = dict(y_reference=covariate.y_source, seed=0, n_permutations=200, diagnose_shift=False)
    xs, xt, yt = covariate.x_source, covariate.x_target, covariate.y_target
    # label shift: TV is 0.286 here
    assert check_shift(xs, xt, yt, max_label_shift=0.3, **kw).criteria[1].passed
    assert not check_shift(xs, xt, yt, max_label_shift=0.25, **kw).criteria[1].passed
    # imbalance: the target ratio is 1.14
    assert check_shift(xs, xt, yt, max_imbalance_ratio=1.2, **kw).criteria[-1].passed
    assert not check_shift(xs, xt, yt, max_imbalance_ratio=1.1, **kw).criteria[-1].passed
    # alpha: issue 9 #3 changed this: a tiny alpha gets the permutations it needs (it used to pass
    # because 200 permutations cannot give p <= 0.001); with labels the MMD and label-shift tests
    # share alpha (Bonferroni: 0.0005 each, so ceil(2 / 0.0005) - 1 = 3999 permutations)
    tiny = check_shift(xs, xt, yt, alpha=0.001, **kw).criteria[0]
    assert not tiny.passed and "3999 permutations" in tiny.detail
    assert not check_shift(xs, xt, yt, alpha=0.01, **kw).criteria[0].passed


def test_snapshot_check_equals_full_reference_check(covariate, tmp_path):
    xs, ys = covariate.x_source, covariate.y_source
    ref = Reference.from_data(xs, ys, max_samples=150, seed=3)
    path = ref.save(tmp_path / "ref.npz")
    with np.load(path, allow_pickle=False) as arrays:  # plain arrays only
        assert Reference.is_snapshot(arrays)
    loaded = Reference.load(path)
    assert loaded.x.shape == (150, 30) and loaded.n_reference == len(xs)
    via_snapshot = check_shift(loaded, covariate.x_target, covariate.y_target, max_samples=150, seed=3,
                               n_permutations=200, diagnose_shift=False)
    via_full = check_shift(xs, covariate.x_target, covariate.y_target, y_reference=ys, max_samples=150, seed=3,
                           n_permutations=200, diagnose_shift=False)
    assert via_snapshot.to_dict()["criteria"] == via_full.to_dict()["criteria"]


def test_snapshot_with_model_estimates_priors(tmp_path):
    import keras

    s = load_scenario("hospitals_label_shift", seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((30,)), keras.layers.Normalization(), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2, activation="softmax")])
    model.layers[0].adapt(s.x_source)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(s.x_source[:150], s.y_source[:150], epochs=30, verbose=0)
    ref = Reference.from_data(s.x_source[150:], s.y_source[150:], model=model, seed=0)
    Reference.load(ref.save(tmp_path / "m.npz"))
    res = check_shift(ref, s.x_target, model=model, seed=0, n_permutations=200, diagnose_shift=False)
    names = [c.name for c in res.criteria]
    assert names == ["input-space MMD", "feature-space MMD", "label shift"]
    label = res.criteria[2]
    assert not label.passed and "estimated" in label.detail
    assert res.report.labels.target_proportions[0] == pytest.approx(0.70, abs=0.1)


def test_bad_input(covariate, tmp_path):
    with pytest.raises(ValueError, match="per-sample shape"):
        check_shift(covariate.x_source, covariate.x_target[:, :5])
    with pytest.raises(ValueError, match="max_label_shift"):
        check_shift(covariate.x_source, covariate.x_target, max_label_shift=2)
    bad = tmp_path / "x.npz"
    np.savez(bad, x=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not a shiftkit snapshot"):
        Reference.load(bad)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="reference snapshot .junk.npz. is not a valid .npz"):
        Reference.load(tmp_path / "junk.npz")


# ---------------------------------------------------------------------------------------------
# Regressions of issue 9
# ---------------------------------------------------------------------------------------------


def test_labels_coded_1_and_2_pass_the_imbalance_gate():
    """Issue 9 #2: balanced labels 1/2 gave an infinite imbalance ratio and a FAIL."""
    s = load_scenario("hospitals_no_shift", seed=0)
    res = check_shift(s.x_source, s.x_target, s.y_target + 1, y_reference=s.y_source + 1, max_imbalance_ratio=3,
                      seed=0, n_permutations=100, diagnose_shift=False)
    imb = next(c for c in res.criteria if c.name == "class imbalance")
    assert imb.passed and imb.value < 3
    label = next(c for c in res.criteria if c.name == "label shift")
    assert "{1: " in label.detail and "2: " in label.detail
    assert res.report.labels.ratios.classes == (1, 2)


def test_snapshot_keeps_the_class_values_and_codes_targets_the_same(tmp_path):
    s = load_scenario("hospitals_label_shift", seed=0)
    years_s = np.where(s.y_source == 1, 2020, 2019)
    years_t = np.where(s.y_target == 1, 2020, 2019)
    ref = Reference.from_data(s.x_source, years_s, max_samples=200, seed=0)
    assert ref.classes == (2019, 2020) and ref.class_names == ("2019", "2020") and len(ref.label_counts) == 2
    loaded = Reference.load(ref.save(tmp_path / "years.npz"))
    assert loaded.classes == (2019, 2020)
    np.testing.assert_array_equal(loaded.scale, ref.scale)
    res = check_shift(loaded, s.x_target, years_t, seed=0, n_permutations=100, max_samples=200, diagnose_shift=False)
    label = next(c for c in res.criteria if c.name == "label shift")
    assert not label.passed and "2019: " in label.detail
    # only 2020 in the target: still coded as the reference's second class
    only = check_shift(loaded, s.x_target[:50], np.full(50, 2020), seed=0, n_permutations=100, diagnose_shift=False)
    assert only.report.labels.target_proportions.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"2021.*that the reference does not have"):
        check_shift(loaded, s.x_target[:4], [2019, 2020, 2021, 2019], diagnose_shift=False)
    names = np.where(s.y_source == 1, "malignant", "benign")
    ref = Reference.from_data(s.x_source, names, max_samples=200, seed=0)
    res = check_shift(Reference.load(ref.save(tmp_path / "names.npz")), s.x_target,
                      np.where(s.y_target == 1, "malignant", "benign"), seed=0, n_permutations=100, max_samples=200)
    assert res.diagnosis.classes == ("benign", "malignant") and "malignant" in str(res.diagnosis)


def _mlp(n_in, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(2, activation="softmax")])


def test_diagnosis_and_criteria_agree_on_a_clear_shift_with_a_model():
    """Issue 9 #3: both MMD criteria failed while the diagnosis (p >= 2/501 vs 0.0033) named no shift."""
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(150, 5))
    res = check_shift(xs, xs + 2.0, model=_mlp(5), n_permutations=1000, seed=0)
    assert {c.name for c in res.failed} == {"input-space MMD", "feature-space MMD"}
    assert "covariate" in res.diagnosis.kinds
    ev = res.diagnosis.evidence_for("covariate")
    assert ev.n_permutations >= permutations_for(0.01 / 6, 1)
    for c in res.criteria:
        assert c.threshold == pytest.approx(0.005) and "Bonferroni" in c.direction and "permutations" in c.detail


def test_too_few_rows_to_reach_alpha_is_an_error_not_a_pass():
    rng = np.random.default_rng(1)
    with pytest.raises(ValueError, match="Not testable"):
        check_shift(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)) + 9, alpha=0.01, diagnose_shift=False)


def test_bbsd_counts_in_the_testability_guard():
    """With --bbsd every test is decided at alpha / (k + 1): 4 + 4 rows reach alpha 0.08 / 2 (the smallest
    split probability is 2 / C(8, 4) = 0.029) but not 0.08 / 3, where the MMD criteria could never fail."""
    rng = np.random.default_rng(2)
    xs, xt = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)) + 3
    model = _mlp(5)
    res = check_shift(xs, xt, model=model, alpha=0.08, n_permutations=200, diagnose_shift=False, seed=0)
    assert {c.name for c in res.criteria} == {"input-space MMD", "feature-space MMD"}
    with pytest.raises(ValueError, match="Not testable"):
        check_shift(xs, xt, model=model, alpha=0.08, n_permutations=200, diagnose_shift=False, seed=0, bbsd=True)


def test_near_constant_pixels_do_not_fail_the_check(tmp_path):
    """Issue 9 #17: images standardised per channel by one pooled scale, stored in the snapshot."""
    rng = np.random.default_rng(5)

    def images(n, border_shift):
        x = rng.normal(0.0, 0.003, size=(n, 8, 8, 1)) + border_shift
        x[:, 2:6, 2:6, :] = rng.normal(size=(n, 4, 4, 1))
        return x

    ref = Reference.from_data(images(150, 0.0), max_samples=150, seed=0)
    assert ref.scale.shape == (64,) and np.unique(ref.scale).size == 1  # one pooled scale for the channel
    assert "pooled" in ref.scaling
    loaded = Reference.load(ref.save(tmp_path / "img.npz"))
    assert check_shift(loaded, images(150, 0.01), n_permutations=200, seed=0, diagnose_shift=False).passed
    assert not check_shift(loaded, images(150, 0.0) * 1.6, n_permutations=200, seed=0, diagnose_shift=False).passed


def test_format_1_snapshots_still_load(covariate, tmp_path):
    import json as _json

    xs = covariate.x_source
    mean, std = xs.mean(axis=0), xs.std(axis=0)
    meta = {"shiftkit_snapshot": 1, "version": "0.1", "bandwidth": 5.0, "feature_bandwidth": None, "layer": None,
            "feature_names": None, "class_names": None, "n_reference": len(xs), "seed": 0}
    path = tmp_path / "old.npz"
    np.savez_compressed(path, x=xs[:100], mean=mean, std=std, y=covariate.y_source[:100],
                        label_counts=np.bincount(covariate.y_source), shiftkit_meta=np.array(_json.dumps(meta)))
    with pytest.warns(UserWarning, match="format-1 snapshot"):
        old = Reference.load(path)
    np.testing.assert_array_equal(old.scale, std)
    assert old.classes == (0, 1)
    res = check_shift(old, covariate.x_target, covariate.y_target, n_permutations=100, diagnose_shift=False)
    assert [c.name for c in res.criteria] == ["input-space MMD", "label shift"]
    meta["shiftkit_snapshot"] = 99
    np.savez_compressed(tmp_path / "new.npz", x=xs[:10], shiftkit_meta=np.array(_json.dumps(meta)))
    with pytest.raises(ValueError, match="format 99"):
        Reference.load(tmp_path / "new.npz")


def test_a_snapshot_that_would_decompress_past_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    # A decompression bomb under the snapshot name: refused from its zip directory, before numpy inflates it.
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros((1_000_000, 4)))  # 32 MB inflated, a few KB on disk
    monkeypatch.setenv("SHIFTKIT_MAX_GIB", "0.01")
    with pytest.raises(ValueError, match="reference snapshot"):
        Reference.load(path)


# ------------------------------------------------------------------ issue 12: the BBSD criterion
def _trained_mlp(x, y, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Normalization(),
                              keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2, activation="softmax")])
    model.layers[0].adapt(x)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=20, verbose=0)
    return model


@pytest.fixture(scope="module")
def label_shift_model():
    s = load_scenario("hospitals_label_shift", seed=0)
    return s, _trained_mlp(s.x_source[:150], s.y_source[:150])


def test_bbsd_criterion_joins_the_split_and_fails_on_label_shift(label_shift_model, tmp_path):
    from shiftkit.shift.bbsd import bbsd_from_probabilities

    s, model = label_shift_model
    ref = Reference.from_data(s.x_source[150:], s.y_source[150:], model=model, seed=0)
    res = check_shift(Reference.load(ref.save(tmp_path / "r.npz")), s.x_target, model=model, seed=0,
                      n_permutations=200, diagnose_shift=False, bbsd=True)
    names = [c.name for c in res.criteria]
    assert names == ["input-space MMD", "feature-space MMD", "BBSD (softmax)", "label shift"]
    crit = res.criteria[2]
    # 4 tests: every criterion is decided at alpha / 4, and every permutation test can reach it
    assert all(c.threshold == pytest.approx(0.01 / 4) for c in res.criteria if c.name != "label shift")
    assert "split over 4 tests" in crit.direction
    assert res.report.input_test.n_permutations >= permutations_for(0.01 / 4, 200)
    direct = bbsd_from_probabilities(ref.probs, model.predict(s.x_target, verbose=0), alpha=0.01)
    assert crit.value == pytest.approx(direct.p_value, rel=1e-5)
    assert not crit.passed and "BBSD (softmax)" in [c.name for c in res.failed]
    assert res.report.bbsd is not None and "bbsd" in res.report.adjusted_p_values
    assert res.to_dict()["report"]["bbsd"]["test"] == "ks"
    # without the flag: no BBSD criterion and the split is unchanged
    plain = check_shift(ref, s.x_target, model=model, seed=0, n_permutations=200, diagnose_shift=False)
    assert "BBSD (softmax)" not in [c.name for c in plain.criteria] and plain.report.bbsd is None


def test_bbsd_criterion_passes_without_shift(label_shift_model):
    s, model = label_shift_model
    rest = s.x_source[150:]
    res = check_shift(rest[::2], rest[1::2], model=model, seed=0, n_permutations=200, diagnose_shift=False, bbsd=True)
    assert next(c for c in res.criteria if c.name == "BBSD (softmax)").passed


def test_bbsd_criterion_errors(label_shift_model, tmp_path):
    s, model = label_shift_model
    with pytest.raises(ValueError, match="pass the model"):
        check_shift(s.x_source, s.x_target, bbsd=True)
    no_probs = Reference.from_data(s.x_source, s.y_source, seed=0)
    with pytest.raises(ValueError, match="snapshot holds none"):
        check_shift(no_probs, s.x_target, model=model, bbsd=True)


# ------------------------------------------------------------------ issue 13: accuracy criterion
@pytest.mark.slow
def test_accuracy_criterion_measured_with_labels_and_estimated_without(gaussian_classifier):
    model, means, x, y = gaussian_classifier
    rng = np.random.default_rng(1)
    yt = rng.choice(3, 600, p=[0.1, 0.45, 0.45])
    xt = (means[yt] + rng.normal(size=(600, 3))).astype("float32")
    truth = float(np.mean(model.predict(xt, verbose=0).argmax(1) == yt))
    ref = Reference.from_data(x, y, model=model, max_samples=900, seed=0)
    measured = check_shift(ref, xt, yt, model=model, n_permutations=200, min_estimated_accuracy=0.5,
                           diagnose_shift=False)
    crit = next(c for c in measured.criteria if c.name == "target accuracy")
    assert crit.value == pytest.approx(truth) and crit.passed
    estimated = check_shift(ref, xt, model=model, n_permutations=200, min_estimated_accuracy=0.99)
    crit = next(c for c in estimated.criteria if c.name == "estimated accuracy")
    assert abs(crit.value - truth) < 0.08 and not crit.passed and not estimated.passed
    assert "interval" in crit.detail
    # the criterion is the report's figure (one estimate, chosen for the diagnosed kinds), in the JSON too
    acc = estimated.report.accuracy
    assert acc is not None and not acc.measured and crit.value == acc.accuracy
    assert measured.report.accuracy.measured and measured.report.accuracy.accuracy == pytest.approx(truth)
    assert estimated.to_dict()["report"]["target_accuracy"]["accuracy"] == pytest.approx(acc.accuracy)
    with pytest.raises(ValueError, match="needs the model"):
        check_shift(ref, xt, min_estimated_accuracy=0.5)
    with pytest.raises(ValueError, match="min_estimated_accuracy"):
        check_shift(ref, xt, model=model, min_estimated_accuracy=1.5)
    unlabelled = Reference.from_data(x, model=model, max_samples=900, seed=0)
    with pytest.raises(ValueError, match="labelled"):
        check_shift(unlabelled, xt, model=model, n_permutations=200, min_estimated_accuracy=0.5, diagnose_shift=False)


# ------------------------------------------------------------------ known target priors: proportions or counts
@pytest.mark.parametrize("text, message", [
    ("0.3,0.3", "sum to 0.6"),
    ("0=0.9,1=0.9", "sum to 1.8"),
    ("0.5,3", "mixes proportions"),
    ("0.5,-0.5", "negative"),
    ("0,0", "sum to 0"),
])
def test_target_priors_proportions_must_sum_to_one(text, message):
    from shiftkit.check import parse_target_priors

    with pytest.raises(ValueError, match=message):
        parse_target_priors(text, "--target-priors")


def test_target_priors_counts_are_normalised():
    from shiftkit.check import parse_target_priors

    assert parse_target_priors("920,80") == pytest.approx([0.92, 0.08])
    assert parse_target_priors("a=3,b=1") == pytest.approx({"a": 0.75, "b": 0.25})
    assert parse_target_priors("0.333,0.333,0.333") == pytest.approx([1 / 3] * 3)  # rounding tolerated
    with pytest.raises(ValueError, match="sum to 0.6"):
        check_shift(np.zeros((10, 2)), np.zeros((10, 2)), target_priors=[0.3, 0.3])


def test_aggregated_test_edge_thresholds_are_printed_in_words():
    """An aggregated MMD test's threshold is -inf (another kernel alone rejects) or +inf (cannot reject at this
    level): the summary and the HTML say so in words, never 'threshold inf'."""
    from shiftkit.html_report import threshold_text

    assert threshold_text(float("inf")) == "none: cannot reject at this level"
    assert threshold_text(float("-inf")) == "any value: another kernel rejects"
    assert threshold_text(0.0123456) == "0.01235"
    rng = np.random.default_rng(0)
    results = [check_shift(rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + shift, n_permutations=200,
                           diagnose_shift=False) for shift in (0.0, 0.6)]
    for result in results:
        text = result.summary() + result.to_html()
        assert "threshold inf" not in text and "threshold -inf" not in text and ">inf<" not in text
        assert ">-inf<" not in text


def test_fail_on_warn_heads_the_summary_with_the_warnings():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    result = check_shift(x[:100], x[100:], n_permutations=200, diagnose_shift=False, warn={"p_value": 0.99},
                         fail_on="warn")
    assert not result.passed and not [c for c in result.criteria if c.status == "fail"]
    head = result.summary().splitlines()[0]
    assert head.startswith("FAIL (--fail-on warn): warnings on input-space MMD") and "beyond the thresholds" not in head
    assert "FAIL (--fail-on warn): warnings on input-space MMD" in result.to_html()


def test_priors_in_class_order_names_the_argument_and_counts_the_classes():
    from shiftkit.check import priors_in_class_order

    box = "Known target class proportions"
    with pytest.raises(ValueError, match=r"Known target class proportions has 3 values but there are 2 classes"):
        priors_in_class_order([0.5, 0.3, 0.2], ("benign", "malignant"), box)
    with pytest.raises(ValueError, match=r"Known target class proportions names unknown class\(es\) \['other'\]"):
        priors_in_class_order({"benign": 0.9, "other": 0.1}, ("benign", "malignant"), box)
    assert priors_in_class_order({"malignant": 0.1, "benign": 0.9}, ("benign", "malignant")) == [0.9, 0.1]


def test_the_embedded_report_is_decided_at_the_gates_levels():
    """The check splits alpha over its tests (input MMD + label test here); the embedded shift report was
    decided at the full alpha, so an input p-value in (alpha/2, alpha] read "Shift detected" above a PASS.
    Its verdict must agree with the MMD criteria, on every draw."""
    alpha, gap_cases = 0.2, 0
    for seed in range(16):
        rng = np.random.default_rng(seed)
        xs, xt = rng.normal(size=(80, 3)), rng.normal(size=(80, 3))
        xt[:, 0] += 0.25
        ys, yt = rng.integers(0, 2, 80), rng.integers(0, 2, 80)
        res = check_shift(xs, xt, y_reference=ys, y_target=yt, alpha=alpha, n_permutations=200, seed=seed,
                          diagnose_shift=False)
        mmd = [c for c in res.criteria if c.name.endswith("MMD")]
        n_tests = len(mmd) + int(any(c.name == "label shift" for c in res.criteria))
        report = res.analysis.report
        assert report.alpha == pytest.approx(alpha * len(mmd) / n_tests)
        assert report.is_shift == any(not c.passed for c in mmd)
        assert json.loads(res.to_json())["report"]["is_shift"] == report.is_shift
        gap_cases += int(alpha / n_tests < mmd[0].value <= alpha)
    assert gap_cases >= 1  # the draws include the case that disagreed


def test_the_drifted_features_rule_is_decided_within_the_alpha_split():
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(100, 3)), rng.normal(size=(100, 3))
    res = check_shift(xs, xt, alpha=0.1, n_permutations=100, seed=0, diagnose_shift=False, max_drifted_share=0.3)
    drift = next(c for c in res.criteria if c.name == "drifted features")
    assert res.analysis.drift.alpha == pytest.approx(0.05)  # input MMD + the rule
    assert "split over 2 tests" in drift.detail and res.criteria[0].threshold == pytest.approx(0.05)
