"""shift_report with a model: the joint aggregated MMD test decides the verdict (schema 2.4)."""

import dataclasses
import json

import numpy as np
import pytest

from shiftkit.shift import compare, mmd_joint_test, mmd_test, shift_report
from shiftkit.shift.report import REPORT_SCHEMA_VERSION, ShiftReport


def _pair(seed, n=40, m=32, shift=0.0):
    rng = np.random.default_rng([seed, 12])
    return rng.normal(size=(n, 5)), rng.normal(shift, size=(m, 5))


def test_verdict_is_the_joint_tests_decision_with_a_model(small_model):
    decisions = set()
    for seed, shift in ((0, 0.0), (1, 0.0), (2, 0.6), (3, 1.0)):
        xs, xt = _pair(seed, shift=shift)
        rep = shift_report(xs, xt, model=small_model, n_permutations=99, seed=seed)
        assert rep.joint is not None and rep.is_shift == rep.joint.is_shift
        assert rep.correction == "joint min-p" and rep.joint.alpha == rep.alpha
        assert rep.joint.representations[0] == "input" and "softmax" in rep.joint.representations
        d = json.loads(rep.to_json())
        assert d["schema_version"] == REPORT_SCHEMA_VERSION == "2.5"
        assert d["is_shift"] == d["joint"]["is_shift"] and d["correction"] == "joint min-p"
        assert d["joint"]["p_value"] == pytest.approx(rep.joint.p_value)
        assert set(d["adjusted_p_values"]) == {"input", "feature", "bbsd"}  # the per-space evidence stays
        word = "Shift detected" if rep.is_shift else "No shift detected"
        assert rep.verdict.startswith(f"{word} at alpha=0.05 by the joint MMD test") and "joint (verdict)" in str(rep)
        if rep.is_shift:
            assert f"shows most in the {rep.joint.selected_representation}" in rep.verdict
        decisions.add(rep.is_shift)
    assert decisions == {True, False}  # both verdicts seen: the test can fail either way


def test_joint_test_uses_the_input_tests_rows_and_scaling(small_model):
    """Same rows and standardisation as the input-space test: its input kernels' statistics are the input
    test's aggregate statistics (also with a subsample), and without subsampling the report's joint test is
    `mmd_joint_test` with its defaults."""
    rng = np.random.default_rng(5)
    xs = rng.normal(size=(90, 5)) * [1, 10, 100, 1, 0.1]
    xt = rng.normal(0.2, size=(70, 5)) * [1, 10, 100, 1, 0.1]
    for max_samples in (None, 50):
        rep = shift_report(xs, xt, model=small_model, n_permutations=99, seed=4, max_samples=max_samples)
        j, agg = rep.joint, rep.input_test.aggregate
        assert (j.n_source, j.n_target) == (rep.input_test.n_source, rep.input_test.n_target)
        inputs = [s for r, s in zip(j.representations, j.statistics) if r == "input"]
        np.testing.assert_allclose(inputs, agg.statistics, rtol=1e-10)
        assert j.standardized
    direct = mmd_joint_test(xs, xt, small_model, n_permutations=99, seed=4)
    rep = shift_report(xs, xt, model=small_model, n_permutations=99, seed=4)
    assert rep.joint.p_value == direct.p_value and rep.joint.representations == direct.representations
    np.testing.assert_allclose(rep.joint.statistics, direct.statistics, rtol=1e-6)  # its inputs pass through float32
    raw = shift_report(xs, xt, model=small_model, n_permutations=99, seed=4, standardize=False)
    assert not raw.joint.standardized
    np.testing.assert_allclose(raw.joint.statistics, mmd_joint_test(xs, xt, small_model, n_permutations=99, seed=4,
                                                                    standardize=False).statistics, rtol=1e-6)


def test_the_model_runs_once_per_side(small_model, monkeypatch):
    """BBSD, the joint test and the label estimate share one pass of the model over each sample."""
    import shiftkit.shift.report as report_mod

    calls = []
    real = report_mod.predict_proba

    def counting(model, x, **kw):
        calls.append(len(x))
        return real(model, x, **kw)

    monkeypatch.setattr(report_mod, "predict_proba", counting)
    xs, xt = _pair(6)
    rep = shift_report(xs, xt, np.arange(40) % 3, model=small_model, n_permutations=99, seed=0)
    assert rep.joint is not None and rep.bbsd is not None and rep.labels.target_from.startswith("estimated")
    assert calls == [40, 32]
    calls.clear()
    shift_report(xs, xt, model=small_model, n_permutations=99, seed=0, bbsd=None)  # the joint test alone
    assert calls == [40, 32]


def test_a_model_that_is_not_a_classifier_tests_inputs_and_features():
    import keras

    inp = keras.Input((5,))
    regressor = keras.Model(inp, keras.layers.Dense(2, activation="relu", name="out")(keras.layers.Dense(
        4, activation="tanh", name="hidden")(inp)))
    xs, xt = _pair(7, shift=1.0)
    rep = shift_report(xs, xt, model=regressor, n_permutations=99, seed=0)
    assert rep.bbsd is None and set(rep.joint.representations) == {"input", "features"}
    assert rep.is_shift == rep.joint.is_shift and rep.is_shift
    feats = [s for r, s in zip(rep.joint.representations, rep.joint.statistics) if r == "features"]
    np.testing.assert_allclose(feats, rep.feature_test.aggregate.statistics, rtol=1e-10)  # the same features and rows


def test_joint_decides_where_holm_would_not_and_the_reverse(small_model):
    from shiftkit.shift.bbsd import BBSDResult

    xs, xt = _pair(8)
    base = shift_report(xs, xt, model=small_model, n_permutations=99, seed=0)

    def fake(p_value):
        return dataclasses.replace(base.joint, p_value=p_value, is_shift=p_value <= 0.05)

    def bbsd(p_value):
        return BBSDResult(is_shift=p_value <= 0.05, p_value=p_value, threshold=0.05 / 3, alpha=0.05, test="ks",
                          statistics=(0.3, 0.2, 0.1), p_values=(p_value / 3, 0.5, 0.9), outputs=(0, 1, 2),
                          n_outputs=3, n_source=40, n_target=32, correction="bonferroni")

    fields = dict(input_test=base.input_test, feature_test=base.feature_test, labels=None, alpha=0.05,
                  n_source=40, n_target=32)
    # Holm rejects (BBSD p = 0.001 <= alpha/3), the joint test does not: no shift, and the text says both
    rep = ShiftReport(**fields, bbsd=bbsd(0.001), joint=fake(0.3))
    assert rep.holm_shift and not rep.is_shift and rep.correction == "joint min-p"
    assert "No shift detected" in rep.verdict and "but the verdict is the joint test's" in rep.verdict
    # the joint test rejects, no per-space test does on its own
    rep = ShiftReport(**fields, bbsd=bbsd(0.5), joint=fake(0.01))
    assert not rep.holm_shift and rep.is_shift and "no per-space test rejects on its own" in rep.verdict
    # without the joint test, Holm decides as before
    rep = ShiftReport(**fields, bbsd=bbsd(0.001))
    assert rep.is_shift and rep.correction == "holm" and "Holm correction over 3 tests" in rep.verdict


def test_joint_field_is_checked(small_model):
    xs, xt = _pair(9)
    base = shift_report(xs, xt, model=small_model, n_permutations=99, seed=0)
    fields = dict(input_test=base.input_test, feature_test=base.feature_test, labels=None, alpha=0.05,
                  n_source=40, n_target=32, bbsd=base.bbsd)
    with pytest.raises(TypeError, match="joint must be a JointMMDResult"):
        ShiftReport(**fields, joint=base.input_test)
    with pytest.raises(ValueError, match="needs the joint test"):
        ShiftReport(**fields, correction="joint min-p")
    coarse = mmd_joint_test(xs, xt, small_model, n_permutations=10, alpha=0.1, seed=0)
    with pytest.raises(ValueError, match=r"n_permutations=10.*>= 39"):
        ShiftReport(**fields, joint=coarse)
    # a joint test run at another level is re-decided at the report's alpha
    loose = dataclasses.replace(base.joint.at_level(0.5), p_value=0.2, is_shift=True)
    rep = ShiftReport(**fields, joint=loose)
    assert rep.joint.alpha == 0.05 and not rep.joint.is_shift and not rep.is_shift
    # and a report round-trips through dataclasses.replace (with_accuracy_kinds) with its joint test
    again = dataclasses.replace(base)
    assert again.correction == "joint min-p" and again.joint.p_value == base.joint.p_value


def test_verdict_with_a_model_holds_its_level():
    """60 seeded nulls (heavy-tailed, unequal sizes) through shift_report with a classifier at alpha = 0.1: the
    verdict (the joint test) rejects at most alpha + 3 s.e. of the time, and is the joint decision every time."""
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    alpha, n_draws = 0.1, 60
    rng = np.random.default_rng(77)
    flagged = 0
    for draw in range(n_draws):
        xs, xt = rng.standard_t(3, size=(30, 4)), rng.standard_t(3, size=(22, 4))
        rep = shift_report(xs, xt, model=model, n_permutations=19, alpha=alpha, seed=draw, bbsd=None)
        assert rep.is_shift == rep.joint.is_shift
        flagged += rep.is_shift
    rate = flagged / n_draws
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / n_draws), rate
    assert rate > 0.0  # a test that never rejects would pass the bound too


def _label_shift(means, seed, n, priors):
    rng = np.random.default_rng([seed, 21])
    ys = rng.integers(0, 3, n)
    yt = rng.choice(3, n, p=list(priors))
    draw = lambda y: (means[y] + rng.normal(size=(len(y), 3))).astype("float32")  # noqa: E731
    return draw(ys), draw(yt), ys, yt


def test_planted_label_shift_is_caught_by_the_verdict(gaussian_classifier):
    """Class priors 1/3 each -> 0.8 / 0.1 / 0.1 (the inputs of each class unchanged), 100 rows a side, no target
    labels: the verdict says shift on every seeded draw, and the shift shows most in the softmax. Measured on
    seeds 0-19: 20 of 20 (Holm over the per-space tests also 20); at 0.7 / 0.15 / 0.15, 19 vs Holm's 17. The same
    draws' nulls (priors unchanged) do not all say shift."""
    model, means, _, _ = gaussian_classifier
    caught, softmax, nulls = 0, 0, 0
    for seed in range(5):
        xs, xt, ys, _ = _label_shift(means, seed, 100, (0.8, 0.1, 0.1))
        rep = shift_report(xs, xt, ys, model=model, n_permutations=199, seed=seed)
        caught += rep.is_shift
        softmax += rep.joint.selected_representation == "softmax"
        assert rep.labels.target_from == "estimated (em)"
        xs, xt, ys, _ = _label_shift(means, seed + 100, 100, (1 / 3, 1 / 3, 1 / 3))
        nulls += shift_report(xs, xt, ys, model=model, n_permutations=199, seed=seed).is_shift
    assert caught == 5, caught
    assert softmax >= 4, softmax
    assert nulls <= 2, nulls


def test_html_and_compare_show_the_joint_test(small_model):
    from shiftkit.html_report import render_html

    xs, xt = _pair(10, shift=1.0)
    rep = shift_report(xs, xt, model=small_model, n_permutations=99, seed=0)
    page = render_html(rep)
    assert "Verdict test: joint MMD, p = " in page and rep.joint.description in page
    assert "joint (min-p over every kernel)" in page
    assert f"shows most in the {rep.joint.selected_representation}" in page
    block = page.split('id="shiftkit-report">', 1)[1].split("</script>", 1)[0]
    assert json.loads(block)["joint"]["representations"] == list(rep.joint.representations)
    alone = render_html(shift_report(xs, xt, n_permutations=99, seed=0))
    assert "Verdict test" not in alone and "joint (min-p" not in alone  # no model: Holm, no joint line
    other = shift_report(xs, xt, model=small_model, n_permutations=99, seed=1)
    rows = {r.figure: r for r in compare(rep, other).rows}
    assert rows["joint MMD p-value"].before == pytest.approx(rep.joint.p_value)
    assert rows["joint MMD p-value"].better == "higher"
    assert "joint MMD p-value" not in {r.figure for r in compare(*(shift_report(xs, xt, n_permutations=99, seed=s)
                                                                    for s in (0, 1))).rows}


def test_report_without_a_model_has_no_joint_test():
    xs, xt = _pair(11, shift=1.0)
    rep = shift_report(xs, xt, n_permutations=99, seed=0)
    assert rep.joint is None and rep.correction == "holm" and rep.is_shift == rep.holm_shift
    assert json.loads(rep.to_json())["joint"] is None
    assert mmd_test is not None
