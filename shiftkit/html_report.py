"""One self-contained HTML file of a shift report: verdict, figures, tables and the JSON data.

`render_html` renders the parts of one `shiftkit.Analysis` (a `ShiftReport`, optionally a
`FeatureDriftResult`, a `Diagnosis`, an `AdaptationReport` and a check's criteria; use
`Analysis.to_html`, which passes them all) into a single page: plots embedded as base64 PNG,
inline CSS, no scripts or stylesheets fetched from anywhere, so the file opens offline and can be
attached to a ticket. Every user-supplied string (titles, notes, feature and class names) is escaped.

The machine-readable data travel in the page as `<script type="application/json">` blocks, one per
part: `id="shiftkit-report"` holds exactly `report.to_dict()`, `id="shiftkit-feature-drift"` the
drift result, `id="shiftkit-diagnosis"` the diagnosis, `id="shiftkit-adaptation"` the adaptation
report, and so on for every part of the `data` given (`Analysis.to_dict()`: the page then holds
exactly the analysis' JSON); `report_bundle` gives the parts of a bare report as one dict.

Example:
    >>> from shiftkit.html_report import render_html                     # doctest: +SKIP
    >>> page = render_html(report, drift=drift, title="hospital A vs B")  # doctest: +SKIP
    >>> open("shift.html", "w").write(page)                               # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from shiftkit.plots import (
    comparison_bars,
    feature_drift_bars,
    label_distributions,
    label_ratios,
    null_distributions,
    to_png,
)
from shiftkit.shift.report import ShiftReport

__all__ = ["bundle_json", "class_display_names", "evidence_found", "render_html", "render_monitor_html", "report_bundle"]

#: The id of each part's JSON block in the page (`render_html(data=...)`).
_BLOCK_IDS = {
    "shift_report": "shiftkit-report",
    "feature_drift": "shiftkit-feature-drift",
    "adaptation": "shiftkit-adaptation",
    "diagnosis": "shiftkit-diagnosis",
    "check": "shiftkit-check",
    "subsampling": "shiftkit-subsampling",
    "label_test": "shiftkit-label-test",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666;font-size:.9em}
.verdict{padding:.8em 1em;border-radius:6px;margin:1em 0;font-size:1.05em}
.shift{background:#fdecea;border-left:6px solid #d62728}.noshift{background:#e8f5e9;border-left:6px solid #2ca02c}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}th{background:#f5f5f5}
td.l,th.l{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.6em 0}
.note{color:#555;font-size:.9em}
pre{background:#f7f7f7;padding:.8em;overflow:auto;max-height:30em;font-size:.8em}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "-")
    return f"{v:.{digits}g}"


def threshold_text(value: Any, digits: int = 4) -> str:
    """A test's threshold for people: the aggregated MMD test's edge values in words (-inf: another kernel
    alone rejects, so any statistic of this one is beyond it; +inf: the test cannot reject at this level)."""
    v = float(value)
    if v == math.inf:
        return "none: cannot reject at this level"
    if v == -math.inf:
        return "any value: another kernel rejects"
    return _num(v, digits)


def check_headline(check: Any) -> str:
    """The verdict line of a `CheckResult`: PASS, PASS with warnings, FAIL (criteria beyond their thresholds),
    or with `fail_on="warn"` and only warnings, FAIL (--fail-on warn)."""
    warned = list(getattr(check, "warnings", []))
    if check.passed:
        return "PASS with warnings: " + ", ".join(c.name for c in warned) + "." if warned else (
            "PASS: the target is within what the model was validated on.")
    failed = ", ".join(c.name for c in check.failed if getattr(c, "status", "fail") == "fail")
    warn_fails = ", ".join(c.name for c in warned) if getattr(check, "fail_on", "fail") == "warn" else ""
    if not warn_fails:
        return f"FAIL: shift beyond the thresholds: {failed}."
    if not failed:
        return f"FAIL (--fail-on warn): warnings on {warn_fails}."
    return f"FAIL: shift beyond the thresholds: {failed}; and (--fail-on warn) warnings on {warn_fails}."


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned text, the rest numbers."""
    head = "".join(f'<th class="{"l" if j < left else ""}">{_e(h)}</th>' for j, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for j, v in enumerate(row):
            text = _e(v) if j < left or isinstance(v, str) else _num(v)
            cells.append(f'<td class="{"l" if j < left else ""}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(fig: Any, alt: str) -> str:
    data = base64.b64encode(to_png(fig)).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, body: Sequence[str]) -> str:
    """A self-contained HTML page: the shared head and style, then the body's parts."""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _json_block(element_id: str, data: Any) -> str:
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    # Inside <script>, "</script>" or "<!--" in a string would end the block: escape < > & as JSON
    # unicode escapes (json.loads reads them back unchanged).
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{_e(element_id)}">{text}</script>'


def report_bundle(report: Any, drift: Any = None, adaptation: Any = None) -> dict[str, Any]:
    """Every result of one dashboard/HTML view as one JSON-ready dict.

    Returns:
        `{"shift_report": report.to_dict(), "feature_drift": drift.to_dict() or None,
        "adaptation": adaptation.to_dict() or None}`.
    """
    return {
        "shift_report": report.to_dict(),
        "feature_drift": None if drift is None else drift.to_dict(),
        "adaptation": None if adaptation is None else adaptation.to_dict(),
    }


def bundle_json(report: Any, drift: Any = None, adaptation: Any = None, *, indent: int | None = 2) -> str:
    """`report_bundle` as strict JSON text."""
    return json.dumps(report_bundle(report, drift, adaptation), indent=indent, allow_nan=False)


def _check_section(check: Any) -> str:
    """The gate: every criterion with its value, threshold and direction."""
    status = {"pass": "pass", "warn": "WARN", "fail": "FAIL"}
    rows = [[c.name, c.value, c.threshold, getattr(c, "warn_threshold", None), c.direction,
             status[getattr(c, "status", "pass" if c.passed else "fail")], c.detail] for c in check.criteria]
    head = check_headline(check)
    kind = "noshift" if check.passed else "shift"
    notes = "".join(f"<li>{_e(n)}</li>" for n in getattr(check, "notes", ()))
    return (
        f"<h2>Pre-deployment check</h2><div class='verdict {kind}'><b>{_e(head)}</b></div>"
        + _table(["criterion", "value", "threshold", "warn at", "direction", "result", "detail"], rows, left=1)
        + (f"<p>Notes:</p><ul>{notes}</ul>" if notes else "")
    )


def evidence_found(evidence: Any) -> str:
    """What the diagnosis found for one kind of shift: "yes", "no", "not tested" or "NOT TESTABLE"."""
    if not getattr(evidence, "testable", True):
        return "NOT TESTABLE"
    return "yes" if evidence.detected else ("no" if evidence.tested else "not tested")


def class_display_names(n_classes: int, class_names: Sequence[str] | None) -> list[str]:
    """One display name per class code: `class_names` when it names every class, else the codes."""
    if class_names is not None and len(class_names) == n_classes:
        return [str(c) for c in class_names]
    return [str(k) for k in range(n_classes)]


def _diagnosis_section(diagnosis: Any) -> str:
    """The kinds of shift found, with evidence, and the recommended adapter."""
    rows = []
    for e in diagnosis.evidence:
        found = evidence_found(e)
        found = "YES" if found == "yes" else found
        rows.append([e.kind, found, e.test, "-" if e.p_value is None else e.p_value, e.level, e.detail])
    html_ = "<h2>Diagnosis: which kind of shift</h2>" + _table(
        ["kind", "found", "test", "p-value", "level / threshold", "evidence"], rows, left=3
    )
    c = diagnosis.classifier_test
    if c is not None:
        html_ += (
            f"<p class='note'>Second opinion, domain classifier ({_e(c.classifier)}): held-out AUC "
            f"{_num(c.auc)} (threshold {_num(c.threshold)}), p = {_num(c.p_value)}. Higher AUC means shift.</p>"
        )
    html_ += (
        f"<div class='verdict {'shift' if diagnosis.is_shift else 'noshift'}'><b>Recommended: "
        f"{_e(diagnosis.recommendation)}.</b> {_e(diagnosis.reason)}</div>"
    )
    return html_


def _tests_section(report: Any) -> str:
    rows = []
    for t in (report.input_test, report.feature_test):
        if t is None:
            continue
        bw = t.bandwidth if isinstance(t.bandwidth, (int, float)) else ", ".join(f"{b:.3g}" for b in t.bandwidth)
        rows.append([
            f"{t.space} space", t.statistic, threshold_text(t.threshold), t.p_value,
            f"{'SHIFT' if t.is_shift else 'no shift'} (level {t.alpha:.3g})",
            t.normalized, t.z_score, t.n_permutations, t.n_source, t.n_target, bw,
        ])
    table = _table(
        ["test", "MMD^2", "threshold", "p-value", "decision (its Holm level)", "normalized", "z-score",
         "permutations", "n source", "n target", "bandwidth"],
        rows,
    )
    bbsd = getattr(report, "bbsd", None)
    if bbsd is not None:  # black-box shift detection: KS (or MMD) on the model's softmax
        table += (
            "<p class='note'>Black-box shift detection on the model's softmax: "
            f"{_e(bbsd.description)}; decided at its Holm level among the per-space tests"
            + (".</p>" if getattr(report, "joint", None) is not None else " (the verdict's family).</p>")
            + _table(["test", "statistic", "p-value", "level", "decision", "outputs tested"],
                     [["BBSD (softmax)", bbsd.statistic, bbsd.p_value, bbsd.alpha,
                       "SHIFT" if bbsd.is_shift else "no shift", len(bbsd.outputs)]])
        )
    joint = getattr(report, "joint", None)
    if joint is not None:  # the verdict's test: one row per representation, then the joint decision
        per = joint.representation_p_values
        rows = [[f"{rep} ({sum(1 for r in joint.representations if r == rep)} kernels)", p,
                 "shows most" if rep == joint.selected_representation else ""] for rep, p in per.items()]
        rows.append(["joint (min-p over every kernel)", joint.p_value,
                     ("SHIFT" if joint.is_shift else "no shift") + f" at alpha={joint.alpha:g}"])
        table = (
            f"<p class='note'>The verdict's test: {_e(joint.description)}. Each representation's smallest "
            "uncorrected kernel p-value shows where the shift shows most; the joint p-value is corrected over "
            "every kernel (exact level). The per-space tests below are Holm-corrected evidence.</p>"
            + _table(["representation", "p-value", "decision"], rows) + table
        )
    where = "" if report.layer is None else f" Feature space: layer {_e(report.layer)}."
    how = getattr(report, "scaling", None)
    std = (f" Input space standardised: {_e(how)}." if how else
           " Input space standardised (shiftkit.shift.scaling: per-feature std floored at a tenth of the "
           "feature's range; images and sequences: one pooled scale per channel).") if report.standardized else ""
    return (
        "<h2>MMD two-sample tests</h2>"
        "<p class='note'>Direction: a higher MMD^2 / a lower p-value means more shift; shift when the "
        f"observed MMD^2 exceeds the threshold (the exact critical value of the permutation test at "
        f"alpha), i.e. p &lt;= alpha.{where}{std}</p>"
        + table
        + _img(null_distributions(report), "permutation null distribution with observed statistic and threshold")
    )


def _labels_section(report: Any, class_names: Sequence[str] | None) -> str:
    lab = report.labels
    if lab is None:
        return "<h2>Labels</h2><p class='note'>No source labels were given.</p>"
    n = lab.n_classes
    names = class_display_names(n, class_names)
    rows = []
    for k in range(n):
        tgt = None if lab.target_proportions is None else lab.target_proportions[k]
        ratio = None if lab.ratios is None else lab.ratios.ratios[k]
        rows.append([names[k], lab.source_proportions[k], tgt, ratio])
    parts = [
        "<h2>Labels</h2>",
        (f"<p class='note'>Target proportions from: {_e(lab.target_from)}. Ratio = q(y)/p(y); 1 means "
         "no label shift for that class.</p>"),
        _table(["class", "source", "target", "ratio target/source"], rows),
    ]
    if lab.distance is not None:
        parts.append(
            f"<p>Label-shift distance: total variation <b>{_num(lab.distance.total_variation)}</b>, "
            f"Jensen-Shannon divergence {_num(lab.distance.jensen_shannon)} bits (0 = same "
            "distribution; higher = more label shift).</p>"
        )
    imb_rows = []
    for side, imb in (("source", lab.source_imbalance), ("target", lab.target_imbalance)):
        if imb is None:
            continue
        minority = ", ".join(names[c] for c in imb.minority_classes) or "none"
        imb_rows.append([side, imb.n_samples, imb.imbalance_ratio, imb.normalized_entropy, minority])
    parts.append(
        _table(["domain", "samples", "imbalance ratio (max/min)", "normalized entropy (1 = balanced)",
                "minority classes"], imb_rows)
    )
    parts.append(_img(label_distributions(lab, names), "class proportions, source vs target"))
    if lab.ratios is not None:
        parts.append(_img(label_ratios(lab, names), "label ratios target/source"))
    return "".join(parts)


def _accuracy_section(report: Any) -> str:
    """The model's target accuracy: measured on the target's labels, or estimated with its interval."""
    acc = getattr(report, "accuracy", None)
    if acc is None:
        return ""
    head = "<h2>Target accuracy</h2>"
    if acc.measured:
        return head + (f"<p>Measured target accuracy <b>{_num(acc.accuracy, 3)}</b> on the target's {acc.n_target} "
                       f"labels (source accuracy {_num(acc.source_accuracy, 3)} on {acc.n_source} labelled source "
                       "rows).</p>")
    if acc.method == "unavailable":
        return head + f"<p class='note'>Not estimated: {_e(acc.reason)}</p>"
    rows = [["estimated target accuracy", acc.accuracy], ["interval", f"[{_num(acc.lower, 3)}, {_num(acc.upper, 3)}]"],
            ["estimator", acc.method], ["source accuracy (the naive estimate)", acc.source_accuracy]]
    est = acc.estimate
    if est is not None:
        rows += [[f"{m} (point estimate)", v] for m, v in est.estimates.items() if m != acc.method]
        if est.target_priors is not None:
            rows.append(["target class proportions given", ", ".join(f"{v:.3f}" for v in est.target_priors)])
    return head + "".join([
        f"<p>Estimated without target labels: <b>{_num(acc.accuracy, 3)}</b> [{_num(acc.lower, 3)}, "
        f"{_num(acc.upper, 3)}] by {_e(acc.method)}. {_e(acc.reason)}.</p>",
        _table(["figure", "value"], rows),
        "<p class='note'>An estimate, not a measurement: the interval is a bootstrap of the chosen estimator, "
        + ("widened to the point estimates of the other estimators the diagnosed kind of shift does not rule out"
           if est is None or est.consistent else
           f"widened on both sides by a model-error margin of {_num(est.model_error, 3)} (no estimator is "
           "consistent under the diagnosed shift; the margin grows with how far the model's outputs moved)")
        + " (shiftkit.shift.accuracy).</p>",
    ])


def _drift_section(drift: Any) -> str:
    rows = [
        [t.feature, t.test, t.statistic, t.p_value, t.p_adjusted, "SHIFT" if t.is_shift else "no",
         t.source_mean, t.target_mean]
        for t in drift.tests
    ]
    return (
        "<h2>Per-feature drift</h2>"
        f"<p class='note'>{drift.n_shifted} of {len(drift.tests)} features shifted at alpha={drift.alpha:g} "
        f"after {_e(drift.correction)} multiple-testing correction. KS for numeric, chi-square for "
        "categorical columns; a lower adjusted p-value means more shift. Most shifted first.</p>"
        + _img(feature_drift_bars(drift), "most shifted features")
        + _table(["feature", "test", "statistic", "p-value", "adjusted p", "shift", "source mean",
                  "target mean"], rows, left=2)
    )


def _adaptation_section(adaptation: Any, title: str | None) -> str:
    comp = adaptation.comparison
    rows = [
        [r.figure, r.before, r.after, r.change, r.better + (" (not comparable)" if not r.comparable else "")]
        for r in comp.rows
    ]
    parts = ["<h2>" + _e(title or "After adaptation") + "</h2>"]
    if adaptation.accuracy_before is not None:
        parts.append(
            f"<p>Target accuracy: <b>{_num(adaptation.accuracy_before)}</b> before, "
            f"<b>{_num(adaptation.accuracy_after)}</b> after adaptation.</p>"
        )
    gap = "closed" if comp.gap_closed else ("still open" if comp.after_shift else "not present before")
    parts.append(f"<p>Shift before: {'yes' if comp.before_shift else 'no'}; after: "
                 f"{'yes' if comp.after_shift else 'no'} (gap {gap}).</p>")
    parts.append(
        "<p class='note'>Raw MMD^2 from two different feature spaces is not on one scale; compare "
        "p-values, normalized MMD^2 and z-scores.</p>"
    )
    parts.append(_table(["figure", "before", "after", "change", "better"], rows))
    parts.append(_img(comparison_bars(comp), "figures before and after adaptation"))
    return "".join(parts)


def render_html(
    report: Any,
    *,
    drift: Any = None,
    adaptation: Any = None,
    title: str = "shiftkit shift report",
    class_names: Sequence[str] | None = None,
    notes: Sequence[str] = (),
    figures: Mapping[str, Any] | None = None,
    adaptation_title: str | None = None,
    diagnosis: Any = None,
    check: Any = None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """Render a shift report as one self-contained HTML page.

    Args:
        report: a `ShiftReport`.
        drift: optional `FeatureDriftResult` (tabular data).
        adaptation: optional `AdaptationReport` (before/after adaptation).
        title: page title (escaped).
        class_names: optional class names for the label tables and figures (escaped).
        notes: optional paragraphs shown under the title, e.g. a scenario description (escaped).
        figures: optional extra figures, `{caption: matplotlib Figure}` (e.g. an embedding), shown
            in their own section; they are rendered to PNG and released.
        adaptation_title: heading of the adaptation section, e.g. "After MMD adaptation".
        diagnosis: optional `Diagnosis` (kind of shift, evidence, recommended adapter).
        check: optional `CheckResult` of `shiftkit check` (criteria, thresholds, pass/fail).
        data: the JSON data the page carries, one block per part (`Analysis.to_dict()`, which
            `Analysis.to_html` passes); default: the parts given here.

    Returns:
        The HTML page as a string (no external resources).

    Raises:
        TypeError: `report` is not a `ShiftReport`.
    """
    if not isinstance(report, ShiftReport):
        raise TypeError(f"report must be a ShiftReport from shift_report(); got {type(report).__name__}.")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kind = "shift" if report.is_shift else "noshift"
    headline = "Shift detected" if report.is_shift else "No shift detected"
    body = [
        f"<h1>{_e(title)}</h1>",
        (f"<p class='meta'>shiftkit {_e(report.version)} · {stamp} · n_source={report.n_source}, "
         f"n_target={report.n_target}, alpha={report.alpha:g}, seed={_e(report.seed)}</p>"),
    ]
    body += [f"<p class='note'>{_e(n)}</p>" for n in notes]
    body.append(f"<div class='verdict {kind}'><b>{headline}.</b> {_e(report.verdict)}</div>")
    joint = getattr(report, "joint", None)
    if joint is not None:  # the verdict's own test, in one line beside the verdict
        body.append(
            f"<p class='note'><b>Verdict test: joint MMD, p = {_num(joint.p_value)} "
            f"({'shift' if joint.is_shift else 'no shift'} at alpha={joint.alpha:g})</b>"
            + (f"; the shift shows most in the {_e(joint.selected_representation)}" if joint.is_shift else "")
            + ". Smallest kernel p-value per representation: "
            + ", ".join(f"{_e(r)} {_num(p)}" for r, p in joint.representation_p_values.items())
            + f". {_e(joint.description)}.</p>"
        )
    if check is not None:
        body.append(_check_section(check))
    if diagnosis is not None:
        body.append(_diagnosis_section(diagnosis))
    body.append(_tests_section(report))
    body.append(_labels_section(report, class_names))
    body.append(_accuracy_section(report))
    if drift is not None:
        body.append(_drift_section(drift))
    for caption, fig in (figures or {}).items():
        body.append(f"<h2>{_e(caption)}</h2>" + _img(fig, caption))
    if adaptation is not None:
        body.append(_adaptation_section(adaptation, adaptation_title))
    if data is None:
        data = report_bundle(report, drift, adaptation)
        if diagnosis is not None:
            data["diagnosis"] = diagnosis.to_dict()
        if check is not None:
            data["check"] = {k: v for k, v in check.to_dict().items() if k not in ("report", "diagnosis", "feature_drift")}
    for key, element_id in _BLOCK_IDS.items():
        if data.get(key) is not None:
            body.append(_json_block(element_id, data[key]))
    summary = {k: v for k, v in data.items() if v is not None}
    body.append(
        "<h2>Data</h2><details><summary>The same data as the JSON report (click to expand)</summary>"
        f"<pre>{_e(json.dumps(summary, indent=1, allow_nan=False))}</pre></details>"
    )
    return _page(title, body)


def render_monitor_html(monitor: Any, *, title: str = "shiftkit stream monitor") -> str:
    """One self-contained HTML page for a `shiftkit.monitor.StreamMonitor` run.

    Args:
        monitor: the monitor after its `update` calls.
        title: page title (escaped).

    Returns:
        The page: the verdict (alarm window, change point, the false-alarm bound), the time series
        figure (`plots.monitor_timeline`), a table of every window and the run's JSON.
    """
    from shiftkit.plots import monitor_timeline

    summary = monitor.summary()
    results = monitor.results_
    fired = summary["alarm_window"] is not None
    headline = (f"ALARM at window {summary['alarm_window']} ({_e(summary['alarm_statistic'])}); estimated change "
                f"point: window {summary['change_point']}") if fired else "No alarm"
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = list(monitor.statistics_)
    rows = [[r.window, f"{r.start}-{r.stop}"] + [r.statistics[n] for n in names] + [r.score, "ALARM" if r.alarm else "",
            "-" if r.accuracy is None else f"{r.accuracy:.3f} [{r.accuracy_interval[0]:.3f}, {r.accuracy_interval[1]:.3f}]"]
            for r in results]
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>{stamp} · {summary['windows']} windows of {summary['window']} rows · statistics "
        f"{_e(', '.join(names))}</p>",
        f"<div class='verdict {'shift' if fired else 'noshift'}'>{headline}</div>",
        f"<p class='note'>{_e(summary['false_alarm_bound'])}. CUSUM drift {summary['drift']:g} null s.d., "
        f"threshold {summary['threshold']:.4g}.</p>",
    ]
    body += [f"<p class='note'>{_e(note)}</p>" for note in summary.get("notes", ())]
    if results:
        body.append(_img(monitor_timeline(results, summary["threshold"], alarm_window=summary["alarm_window"],
                                          change_point=summary["change_point"]), "statistics and CUSUM over windows"))
    header = ["window", "rows"] + names + ["CUSUM max", "alarm", "estimated accuracy"]
    timed = any(r.time_start is not None for r in results)
    if timed:  # windows with times (--time-column): the span of their rows, or their periods (--every)
        header.insert(2, "period (start - end)" if any("periods" in r.extra for r in results) else "time span")
        for row, r in zip(rows, results):
            row.insert(2, "-" if r.time_start is None else f"{r.time_start} - {r.time_end}")
    body.append("<h2>Windows</h2>" + _table(header, rows, left=3 if timed else 1))
    data = {"summary": summary, "windows": [r.to_dict() for r in results]}
    body.append(_json_block("shiftkit-monitor", data))
    return _page(title, body)

