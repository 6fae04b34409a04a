"""shiftkit.plots figures and the self-contained HTML report (shiftkit.html_report)."""

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from matplotlib.figure import Figure

from shiftkit import plots
from shiftkit.datasets import load_scenario
from shiftkit.html_report import bundle_json, render_html, report_bundle, threshold_text
from shiftkit.shift import feature_drift, mmd_test, shift_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_VOID = {"meta", "img", "br", "hr", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("hospitals_covariate", seed=0)


@pytest.fixture(scope="module")
def report(scenario):
    s = scenario
    return shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=200, seed=0)


@pytest.fixture(scope="module")
def drift(scenario):
    return feature_drift(scenario.x_source, scenario.x_target, feature_names=scenario.feature_names)


@pytest.fixture(scope="module")
def adaptation(scenario, report):
    """An AdaptationReport built from two library reports (no training needed)."""
    from shiftkit.adapt.base import AdaptationReport

    s = load_scenario("hospitals_no_shift", seed=0)
    after = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=200, seed=0)
    return AdaptationReport(report, after, 0.81, 0.9)


def _check_png_figure(fig):
    assert isinstance(fig, Figure)
    assert fig.axes, "the figure has no axes"
    png = plots.to_png(fig)
    assert png.startswith(PNG_MAGIC) and len(png) > 2000


def test_null_distribution_draws_observed_and_threshold(report):
    fig = plots.null_distribution(report.input_test)
    ax = fig.axes[0]
    xs = sorted(float(line.get_xdata()[0]) for line in ax.get_lines() if len(line.get_xdata()))
    t = report.input_test
    # the threshold line where it is finite (the aggregated default may reject through another bandwidth: -inf)
    assert xs == sorted([t.threshold, t.statistic] if np.isfinite(t.threshold) else [t.statistic])
    labels = ax.get_legend_handles_labels()[1]
    assert any("threshold" in label for label in labels)

    single = mmd_test(np.zeros((30, 2)) + np.arange(30)[:, None] / 30, np.ones((30, 2)), bandwidth=None,
                      n_permutations=99, seed=0)
    ax = plots.null_distribution(single).axes[0]
    xs = sorted(float(line.get_xdata()[0]) for line in ax.get_lines() if len(line.get_xdata()))
    assert xs == sorted([single.threshold, single.statistic])
    assert "p = " in ax.get_title()
    _check_png_figure(fig)


def test_null_distributions_one_panel_per_test(report):
    fig = plots.null_distributions(report)
    assert len(fig.axes) == 1  # no model: input space only
    _check_png_figure(fig)


def test_null_distribution_without_permutations(rng):
    res = mmd_test(rng.normal(size=(60, 3)), rng.normal(size=(60, 3)), method="linear", seed=0)
    assert res.null.size == 0
    _check_png_figure(plots.null_distribution(res))


def test_label_figures(report, scenario):
    _check_png_figure(plots.label_distributions(report.labels, scenario.class_names))
    fig = plots.label_ratios(report.labels, scenario.class_names)
    assert any(np.allclose(line.get_ydata(), 1.0) for line in fig.axes[0].get_lines())  # no-shift line
    _check_png_figure(fig)


def test_label_ratios_needs_a_target_side(scenario):
    s = scenario
    rep = shift_report(s.x_source, s.x_target, s.y_source, n_permutations=50, seed=0)
    _check_png_figure(plots.label_distributions(rep.labels))  # source bars only
    with pytest.raises(ValueError, match="target proportions"):
        plots.label_ratios(rep.labels)


def test_embedding_scatter_before_and_after(rng):
    before = (rng.normal(size=(40, 2)), rng.normal(1, size=(30, 2)))
    after = (rng.normal(size=(40, 2)), rng.normal(size=(30, 2)))
    one = plots.embedding_scatter(before)
    two = plots.embedding_scatter(before, after, titles=("PCA before", "PCA after"))
    assert len(one.axes) == 1 and len(two.axes) == 2
    assert [ax.get_title() for ax in two.axes] == ["PCA before", "PCA after"]
    _check_png_figure(one)
    _check_png_figure(two)


def test_drift_and_comparison_figures(drift, adaptation):
    fig = plots.feature_drift_bars(drift, top=10)
    assert len(fig.axes[0].patches) == 10
    _check_png_figure(fig)
    _check_png_figure(plots.comparison_bars(adaptation.comparison))


def test_figures_stay_out_of_pyplot(report):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = plots.null_distributions(report)
    assert plt.get_fignums() == before
    plots.close(fig)
    assert not fig.axes


# ------------------------------------------------------------------------------ HTML report


class _Page(HTMLParser):
    """Collects images and JSON blocks, and checks that every tag is closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.images, self.json_blocks = [], [], [], {}
        self.external = []
        self._json_id = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href"):
            if name in attrs and not str(attrs[name]).startswith("data:"):
                self.external.append((tag, attrs[name]))
        if tag == "link":
            self.external.append((tag, attrs))
        if tag == "script" and attrs.get("type") == "application/json":
            self._json_id = attrs.get("id")
            self.json_blocks[self._json_id] = ""
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
            return
        self.stack.pop()
        if tag == "script":
            self._json_id = None

    def handle_data(self, data):
        if self._json_id is not None:
            self.json_blocks[self._json_id] += data
        else:
            self.text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    assert not parser.errors, parser.errors
    assert not parser.stack, f"unclosed tags: {parser.stack}"
    return parser


def test_html_report_is_valid_self_contained_html(report):
    page = render_html(report, title="hospital A vs hospital B")
    assert page.startswith("<!DOCTYPE html>")
    parsed = _parse(page)
    assert parsed.images and all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert base64.b64decode(parsed.images[0].split(",", 1)[1]).startswith(PNG_MAGIC)
    assert not parsed.external, parsed.external
    assert json.loads(parsed.json_blocks["shiftkit-report"]) == report.to_dict()
    text = " ".join(parsed.text)
    assert report.verdict in " ".join(text.split())
    assert threshold_text(report.input_test.threshold) in text  # -inf / inf in words
    assert len(page.encode()) < 1_000_000


def test_html_report_with_drift_adaptation_and_figures(report, drift, adaptation, scenario, rng):
    extra = {"Embedding (PCA)": plots.embedding_scatter((rng.normal(size=(20, 2)), rng.normal(size=(20, 2))))}
    page = render_html(report, drift=drift, adaptation=adaptation, class_names=scenario.class_names,
                       notes=[scenario.description], figures=extra, adaptation_title="After copy adaptation")
    parsed = _parse(page)
    assert len(parsed.images) >= 6  # null, labels, ratios, drift, embedding, comparison
    assert json.loads(parsed.json_blocks["shiftkit-report"]) == report.to_dict()
    assert json.loads(parsed.json_blocks["shiftkit-feature-drift"]) == drift.to_dict()
    assert json.loads(parsed.json_blocks["shiftkit-adaptation"]) == adaptation.to_dict()
    text = " ".join(parsed.text)
    assert drift.tests[0].feature in text and "After copy adaptation" in text and "0.81" in text
    assert len(page.encode()) < 1_000_000
    bundle = json.loads(bundle_json(report, drift, adaptation))
    assert bundle == json.loads(json.dumps(report_bundle(report, drift, adaptation)))
    assert set(bundle) == {"shift_report", "feature_drift", "adaptation"}


def test_html_report_escapes_user_strings(scenario):
    s = scenario
    names = ["</script><script>alert(1)</script>"] + [f"<b>f{j}</b>" for j in range(s.x_source.shape[1] - 1)]
    rep = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=50, seed=0)
    drift = feature_drift(s.x_source, s.x_target, feature_names=names)
    page = render_html(rep, drift=drift, title="<img src=x onerror=alert(1)>", class_names=["a&b", "<c>"],
                       notes=["<script>alert('note')</script>"])
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>f1</b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "a&amp;b" in page
    parsed = _parse(page)
    assert json.loads(parsed.json_blocks["shiftkit-feature-drift"]) == drift.to_dict()


def test_render_html_rejects_non_reports():
    with pytest.raises(TypeError, match="ShiftReport"):
        render_html({"verdict": "x"})


# ------------------------------------------------------------------------------ TeX in user names (issue 9, #14)

TEX = r"$\foo$ col"


def _shown(text) -> str:
    """The text matplotlib draws for a Text artist (after its own handling of `$` and `\\$`)."""
    s, math = text._preprocess_math(text.get_text())
    assert math is False, f"{text.get_text()!r} would be parsed as mathtext"
    return s


def test_dollar_signs_in_names_do_not_break_figures_or_the_html_report(scenario, rng):
    s = scenario
    features = [TEX, "price in $", r"a \$ b"] + [f"f{j}" for j in range(s.x_source.shape[1] - 3)]
    classes = [TEX, "$$"]
    rep = shift_report(s.x_source, s.x_target, s.y_source, s.y_target, n_permutations=50, seed=0)
    drift = feature_drift(s.x_source, s.x_target, feature_names=features)
    page = render_html(rep, drift=drift, class_names=classes, title=TEX, notes=[TEX],
                       figures={TEX: plots.embedding_scatter((rng.normal(size=(9, 2)), rng.normal(size=(9, 2))),
                                                             titles=(TEX, TEX))})
    parsed = _parse(page)
    assert len(parsed.images) >= 5 and TEX in " ".join(parsed.text)
    # The names are drawn as written, not read as TeX.
    fig = plots.label_distributions(rep.labels, classes)
    assert [_shown(t) for t in fig.axes[0].get_xticklabels()] == classes
    fig = plots.label_ratios(rep.labels, classes)
    assert [_shown(t) for t in fig.axes[0].get_xticklabels()] == classes
    fig = plots.feature_drift_bars(drift, top=len(features))
    assert sorted(_shown(t) for t in fig.axes[0].get_yticklabels()) == sorted(features)
    fig = plots.embedding_scatter((rng.normal(size=(5, 2)), rng.normal(size=(5, 2))), titles=(TEX, TEX))
    assert _shown(fig.axes[0].title) == TEX
    for fig in (plots.label_distributions(rep.labels, classes), plots.feature_drift_bars(drift)):
        _check_png_figure(fig)


def test_html_report_shows_bbsd_when_the_report_has_it(small_model):
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(60, 5)).astype("float32"), rng.normal(0.8, size=(60, 5)).astype("float32")
    rep = shift_report(xs, xt, model=small_model, n_permutations=50, seed=0)
    assert rep.bbsd is not None
    text = " ".join(_parse(render_html(rep)).text)
    assert "BBSD (softmax)" in text and f"{rep.bbsd.p_value:.4g}" in text
    plain = " ".join(_parse(render_html(shift_report(xs, xt, n_permutations=50, seed=0))).text)
    assert "BBSD" not in plain
