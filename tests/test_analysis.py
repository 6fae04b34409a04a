"""shiftkit.analyze: the one assembly of report, per-feature drift, diagnosis and adaptation (issue 10)."""

import dataclasses
import json
import re

import numpy as np
import pytest

import shiftkit
from shiftkit.analysis import Analysis, analyze
from shiftkit.check import Reference, check_shift
from shiftkit.data import subsample_rows
from shiftkit.shift.diagnose import diagnose
from shiftkit.shift.report import shift_report
from shiftkit.shift.univariate import feature_drift

FAST = dict(n_permutations=100, seed=0)


@pytest.fixture(scope="module")
def pair():
    """A small labelled covariate shift: 160 source and 140 target rows, 3 features."""
    rng = np.random.default_rng(7)
    xs = rng.normal(size=(160, 3))
    xt = rng.normal(size=(140, 3)) + [0.8, 0.0, 0.0]
    ys = (xs[:, 0] + 0.5 * rng.normal(size=160) > 0).astype(np.int64)
    yt = (xt[:, 0] + 0.5 * rng.normal(size=140) > 0).astype(np.int64)
    return xs, xt, ys, yt


def _blocks(page: str) -> dict:
    found = re.findall(r'<script type="application/json" id="([^"]+)">(.*?)</script>', page, flags=re.S)
    return {k: json.loads(v) for k, v in found}


def test_analyze_is_the_report_drift_and_diagnosis_the_library_computes(pair):
    xs, xt, ys, yt = pair
    a = analyze(xs, xt, y_source=ys, y_target=yt, max_samples=100, feature_names=["a", "b", "c"],
                class_names=["no", "yes"], **FAST)
    assert isinstance(a, Analysis) and shiftkit.analyze is analyze and shiftkit.Analysis is Analysis
    expected = shift_report(xs, xt, ys, yt, alpha=0.05, max_samples=100, **FAST).to_dict()
    expected["labels"]["classes"] = ["no", "yes"]  # codes given with class_names: the label table shows the names
    assert a.report.to_dict() == expected
    assert a.drift.to_dict() == feature_drift(xs, xt, feature_names=["a", "b", "c"], alpha=0.05).to_dict()
    rs, rt = subsample_rows(160, 100, 0), subsample_rows(140, 100, 1)  # the diagnosis' rows: seed, seed + 1
    names = np.array(["no", "yes"])
    expected_diag = diagnose(xs[rs], xt[rt], names[ys[rs]], names[yt[rt]], alpha=0.05, classes=("no", "yes"), **FAST)
    assert a.diagnosis.to_dict() == expected_diag.to_dict()
    assert a.diagnosis.classes == ("no", "yes")  # shown by name
    assert a.is_shift and a.scaling.startswith("standardised")


def test_subsampling_is_recorded(pair):
    xs, xt, ys, yt = pair
    a = analyze(xs, xt, max_samples=100, diagnose_shift=False, **FAST)
    sub = a.subsampling
    assert (sub.source_rows, sub.target_rows, sub.source_rows_used, sub.target_rows_used) == (160, 140, 100, 100)
    assert sub.subsampled == ("mmd_tests", "diagnosis") and sub.every_row == ("feature_drift", "label_proportions")
    assert "use 100 of 160 source and 100 of 140 target rows" in sub.summary
    assert a.report.input_test.n_source == 100
    whole = analyze(xs, xt, max_samples=500, diagnose_shift=False, **FAST).subsampling
    assert whole.subsampled == () and whole.summary.startswith("Every row used")
    unbounded = analyze(xs, xt, max_samples=None, diagnose_shift=False, **FAST)
    assert unbounded.subsampling.subsampled == () and unbounded.report.input_test.n_source == 160


def test_json_and_html_hold_exactly_the_analysis(pair):
    xs, xt, ys, yt = pair
    a = analyze(xs, xt, y_source=ys, y_target=yt, notes=["two <hospitals>"], **FAST)
    data = a.to_dict()
    assert json.loads(a.to_json()) == json.loads(json.dumps(data))
    assert set(data) >= {"shift_report", "feature_drift", "diagnosis", "adaptation", "subsampling", "class_names"}
    assert data["diagnosis"]["recommendation"] == a.diagnosis.recommendation
    page = a.to_html(title="t")
    blocks = _blocks(page)
    assert blocks["shiftkit-report"] == json.loads(json.dumps(data["shift_report"]))
    assert blocks["shiftkit-diagnosis"] == json.loads(json.dumps(data["diagnosis"]))
    assert blocks["shiftkit-feature-drift"] == json.loads(json.dumps(data["feature_drift"]))
    assert blocks["shiftkit-subsampling"] == data["subsampling"]
    assert "Diagnosis: which kind of shift" in page and "two &lt;hospitals&gt;" in page
    assert a.subsampling.summary in page


def test_with_adaptation_adds_the_before_after(pair):
    from shiftkit.adapt import AdaptationReport

    xs, xt, ys, yt = pair
    a = analyze(xs, xt, y_source=ys, y_target=yt, diagnose_shift=False, **FAST)
    after = shift_report(xs, xs[::-1], ys, ys[::-1], **FAST)
    b = a.with_adaptation(AdaptationReport(a.report, after, 0.7, 0.9), title="After MMD adaptation")
    assert a.adaptation is None and b.report is a.report
    assert b.to_dict()["adaptation"]["target_accuracy_after"] == 0.9
    page = b.to_html()
    assert "After MMD adaptation" in page and "shiftkit-adaptation" in _blocks(page)


def test_check_adds_criteria_on_top_of_the_analysis_of_its_reference(pair):
    xs, xt, ys, yt = pair
    ref = Reference.from_data(xs, ys, max_samples=120, seed=0)
    a = analyze(ref, xt, y_target=yt, alpha=0.01, max_samples=120, diagnosis_permutations=100, **FAST)
    res = check_shift(ref, xt, yt, alpha=0.01, max_samples=120, **FAST)
    # the same report, its Holm family (the input MMD test) decided at the gate's share of alpha (1 of 2 tests)
    assert res.analysis.report.to_dict() == dataclasses.replace(a.report, alpha=0.005).to_dict()
    assert res.diagnosis.to_dict() == a.diagnosis.to_dict() and res.drift.to_dict() == a.drift.to_dict()
    # two tests (input MMD, label shift): each decided at alpha / 2 (Bonferroni)
    assert a.label_test is not None and [c.threshold for c in res.criteria[:1]] == [0.005]
    assert res.criteria[0].passed == (a.report.input_test.p_value > 0.005)
    assert res.criteria[1].value == pytest.approx(a.report.labels.distance.total_variation)
    sub = a.subsampling
    assert (sub.source_rows, sub.source_rows_used, sub.target_rows, sub.target_rows_used) == (160, 120, 140, 120)
    assert json.loads(res.to_json())["subsampling"] == sub.to_dict()
    assert "Pre-deployment check" in res.to_html() and "shiftkit-check" in _blocks(res.to_html())


def test_bad_arguments_say_what_to_fix(pair):
    xs, xt, ys, yt = pair
    with pytest.raises(ValueError, match="class_names names the class codes 0..1"):
        analyze(xs, xt, y_source=ys + 5, class_names=["no", "yes"], diagnose_shift=False, **FAST)
    with pytest.raises(ValueError, match="max_samples"):
        analyze(xs, xt, max_samples=1, **FAST)
    ref = Reference.from_data(xs, ys, seed=0)
    with pytest.raises(ValueError, match="a reference holds its own labels"):
        analyze(ref, xt, y_source=ys, **FAST)
    with pytest.raises(ValueError, match="per-sample shape"):
        analyze(ref, xt[:, :2], **FAST)


def test_an_adapter_is_measured_before_and_after_on_the_same_data_and_settings(pair):
    from shiftkit.adapt import AdaptationReport

    xs, xt, ys, yt = pair
    seen = {}

    class Adapter:  # the one method analyze uses: Adapter.shift_report
        def shift_report(self, x_source, x_target, y_source=None, y_target=None, **kwargs):
            seen.update(n=(len(x_source), len(x_target)), labels=(y_source is ys, y_target is yt), **kwargs)
            before = shift_report(x_source, x_target, y_source, y_target, **kwargs)
            return AdaptationReport(before, before, 0.5, 0.5)

    a = analyze(xs, xt, y_source=ys, y_target=yt, adapter=Adapter(), alpha=0.1, max_samples=150,
                diagnose_shift=False, **FAST)
    assert seen == {"n": (160, 140), "labels": (True, True), "n_permutations": 100, "alpha": 0.1, "seed": 0,
                    "standardize": True, "max_samples": 150}
    assert a.adaptation.before.to_dict() == a.report.to_dict() and a.adaptation_title == "After adaptation: Adapter"
    with pytest.raises(ValueError, match="adapter needs the source data"):
        analyze(Reference.from_data(xs, ys, seed=0), xt, adapter=Adapter(), **FAST)


def test_analyze_validates_the_arrays_once(monkeypatch):
    """The per-feature drift and the diagnosis trust what analyze has validated (no second pass over the data)."""
    import importlib

    # importlib: `shiftkit.shift.diagnose` as an attribute is the function, not the module.
    diagnose_module = importlib.import_module("shiftkit.shift.diagnose")
    univariate_module = importlib.import_module("shiftkit.shift.univariate")

    def refuse(*args, **kwargs):
        raise AssertionError("re-validated what analyze had checked")

    monkeypatch.setattr(univariate_module, "check_pair", refuse)
    monkeypatch.setattr(diagnose_module, "check_pair", refuse)
    rng = np.random.default_rng(5)
    xs, xt = rng.normal(size=(120, 3)), rng.normal(0.3, size=(100, 3))
    ys, yt = rng.integers(0, 2, 120), rng.integers(0, 2, 100)
    analysis = shiftkit.analyze(xs, xt, y_source=ys, y_target=yt, n_permutations=99, seed=0)
    assert analysis.drift is not None and analysis.diagnosis is not None


def test_the_accuracy_estimate_is_chosen_for_the_diagnosed_kinds(gaussian_classifier):
    """Issue 13: analyze re-chooses the report's accuracy estimate for its diagnosis' kinds of shift."""
    from shiftkit.shift.report import target_accuracy
    from shiftkit.shift.features import predict_proba

    model, means, _, _ = gaussian_classifier
    rng = np.random.default_rng(3)
    ys, yt = rng.integers(0, 3, 300), rng.choice(3, 300, p=[0.7, 0.15, 0.15])
    xs = (means[ys] + rng.normal(size=(300, 3))).astype("float32")
    xt = (means[yt] + rng.normal(size=(300, 3))).astype("float32")
    a = analyze(xs, xt, y_source=ys, model=model, per_feature=False, **FAST)
    expected = target_accuracy(predict_proba(model, xs), ys, predict_proba(model, xt), kinds=a.diagnosis.kinds, seed=0)
    acc = a.report.accuracy
    assert acc.estimate.situation == expected.estimate.situation and acc.method == expected.method
    assert acc.accuracy == pytest.approx(expected.accuracy) and acc.upper == pytest.approx(expected.upper)
    assert a.to_dict()["shift_report"]["target_accuracy"]["method"] == acc.method
