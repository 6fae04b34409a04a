"""shiftkit dashboard: `streamlit run app.py`.

Opens on a built-in demo (two breast-cancer "hospitals" with a covariate shift, a small model trained
on the spot), then takes your own source/target files and model from the sidebar. This file only
wires widgets to `shiftkit.dashboard` (loaders, cached pipeline, cards and tables) and renders one
`shiftkit.Analysis` (report, per-feature drift, diagnosis, and the adaptation when run); its
downloads are that analysis' `to_json()` / `to_html()`, so they hold what the page shows. Every
statistic comes from the library, every figure from `shiftkit.plots`.
"""

from __future__ import annotations

import math
import time

import streamlit as st

st.set_page_config(page_title="shiftkit: distribution shift", page_icon="📉", layout="wide")
st.title("shiftkit: distribution shift dashboard")

with st.spinner("Loading shiftkit and TensorFlow (first run only)..."):
    from shiftkit import dashboard as dash
    from shiftkit import plots
    from shiftkit.dashboard import cached
    from shiftkit.dashboard import monitoring
    from shiftkit.datasets import CORRUPTIONS, SCENARIOS

MODEL_MODES = {
    "none": "None (input space only)",
    "default": "Small default model, trained on the source",
    "upload": "Upload a .keras model",
}
DATA_MODES = {"scenario": "Built-in scenario", "upload": "Upload files"}


def _upload(role: str, widget_value) -> tuple[str, bytes] | None:
    """(filename, bytes) of an upload: the file widget's, or one injected by a test."""
    injected = st.session_state.get(dash.TEST_UPLOAD_KEYS[role])
    if injected is not None:
        return str(injected[0]), bytes(injected[1])
    if widget_value is None:
        return None
    return widget_value.name, widget_value.getvalue()


def _request_adaptation(signature: tuple) -> None:
    st.session_state["adapt_request"] = signature


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (bool,)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ------------------------------------------------------------------------------------ sidebar
with st.sidebar:
    st.header("Data")
    data_mode = st.radio("Data", list(DATA_MODES), format_func=DATA_MODES.get, key="data_mode",
                         label_visibility="collapsed")
    scenario, scenario_options = dash.DEFAULT_SCENARIO, ()
    source_upload = target_upload = None
    label_column = None
    if data_mode == "scenario":
        scenario = st.selectbox("Scenario", SCENARIOS, index=SCENARIOS.index(dash.DEFAULT_SCENARIO),
                                format_func=lambda s: dash.SCENARIO_LABELS.get(s, s), key="scenario")
        if scenario == "digits_corrupted":
            corruption = st.selectbox("Corruption", CORRUPTIONS, key="corruption")
            severity = st.slider("Severity", 1, 5, 3, key="severity")
            scenario_options = (("corruption", corruption), ("severity", int(severity)))
    else:
        source_upload = _upload("source", st.file_uploader(
            "Source data (.csv, .parquet or .npz)", type=list(dash.UPLOAD_TYPES), key="source_file",
            help="CSV / Parquet: one row per sample, numeric feature columns and a label column. NPZ: arrays "
                 "'x' (samples first) and optional 'y' (labels); loaded with allow_pickle=False. Labels "
                 "may be class names, 1..K, years or booleans: they are shown as they are. Files up to "
                 "200 MB; arrays are checked before decompression (at most 2 GiB in memory)."))
        target_upload = _upload("target", st.file_uploader(
            "Target data (same format and features)", type=list(dash.UPLOAD_TYPES), key="target_file"))
        if source_upload is not None and dash.is_table_file(source_upload[0]):
            try:
                columns = cached.csv_columns(*source_upload)
            except dash.DashboardError:
                columns = []  # the loader reports the problem in the main area
            choices = [dash.NO_LABEL] + columns
            label_column = st.selectbox("Label column", choices,
                                        index=choices.index(dash.guess_label_column(columns)),
                                        key="label_column",
                                        help="Any class values (names, 1..K, years, booleans); classes are "
                                             "shown by their values.")
    use_target_labels = st.checkbox(
        "Use the target's true labels", value=True, key="use_target_labels",
        help="Uncheck to estimate the target class proportions with the model (EM), as when target "
             "labels are unknown. Accuracy is still measured on true labels when they exist.")
    target_priors = st.text_input(
        "Known target class proportions (optional)", value="", key="target_priors",
        placeholder="e.g. benign=0.92, malignant=0.08",
        help="A prevalence known from outside the model (a registry, a screening programme): the estimated "
             "target accuracy transports onto it. Used when the accuracy is estimated (a model, target labels "
             "not used); by class name, or proportions in class order (0.92, 0.08).")

    st.header("Model")
    model_mode = st.radio("Source model", list(MODEL_MODES), index=1, format_func=MODEL_MODES.get,
                          key="model_mode", label_visibility="collapsed")
    model_upload = None
    if model_mode == "upload":
        model_upload = _upload("model", st.file_uploader(
            "Keras model (.keras)", type=["keras"], key="model_file",
            help="Saved with model.save('model.keras'); loaded with safe_mode=True. Upload held-out "
                 "source data (not the model's training set) as the source."))

    st.header("Adaptation")
    # Every registered adapter (shiftkit.adapt.registry), with the settings its class has; a widget left
    # at "adapter default" passes nothing, so the class's own default applies. Widgets are keyed per adapter.
    adapter_key = st.selectbox("Adapter", dash.adapter_names(), format_func=dash.adapter_label, key="adapter")
    epochs, settings, labels_per_class = None, {}, 10
    if dash.adapter_trains(adapter_key):
        auto = st.checkbox("Epochs: the adapter's default", value=True, key=f"auto_epochs_{adapter_key}",
                           help="Copy / fine-tune: half the labels held out to choose the epochs (the untrained, "
                                "source-equal model included), then a refit on all; others: their fixed default.")
        if not auto:
            epochs = int(st.slider("Epochs", 1, 100, 30, key=f"epochs_{adapter_key}"))
    for setting in dash.adapter_settings(adapter_key):
        widget_key = f"{setting.name}_{adapter_key}"
        if setting.kind == "choice":
            value = st.select_slider(
                setting.label, options=[None, *setting.choices], value=None, key=widget_key, help=setting.help,
                format_func=lambda v, d=setting.default: f"adapter default ({d:g})" if v is None else f"{v:g}")
            if value is not None:
                settings[setting.name] = float(value)
        elif setting.kind == "flag":
            value = st.checkbox(setting.label, value=setting.default, key=widget_key, help=setting.help)
            if value != setting.default:
                settings[setting.name] = bool(value)
        else:
            value = st.number_input(setting.label, min_value=setting.low, max_value=setting.high,
                                    value=float(setting.default), step=setting.step, key=widget_key,
                                    help=setting.help)
            if value != setting.default:
                settings[setting.name] = float(value)
    if dash.adapter_needs_target_labels(adapter_key):
        labels_per_class = st.slider("Target labels per class", 1, 50, 10, key="labels_per_class",
                                     help="Labelled target samples per class to train on; they are "
                                          "left out of the before/after evaluation.")
    config = dash.AdaptConfig(adapter=adapter_key, epochs=epochs, settings=settings,
                              labels_per_class=int(labels_per_class), target_priors=str(target_priors))

    st.header("Tests")
    n_permutations = st.select_slider("Permutations", options=[100, 200, 500, 1000, 2000, 5000], value=500,
                                      key="n_permutations")
    alpha = st.select_slider("alpha (level of every test)", options=[0.001, 0.01, 0.05, 0.1], value=0.05,
                             key="alpha")
    permutations_run = dash.pipeline.permutations(float(alpha), int(n_permutations))
    if permutations_run > n_permutations:
        st.caption(f"The tests run {permutations_run} permutations: with fewer, a permutation p-value cannot "
                   f"reach alpha={alpha:g} (its smallest value is 1/(1+permutations)).")
    seed = int(st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="seed"))


# ------------------------------------------------------------------------------------ pipeline
def run_pipeline(status) -> dict:
    """Load data and model, measure; every step cached on its parameters."""
    t0 = time.perf_counter()
    out: dict = {}
    if data_mode == "scenario":
        domains = cached.scenario_domains(scenario, seed, scenario_options)
        data_key = f"scenario:{scenario}:{seed}:{scenario_options}"
    else:
        if source_upload is None or target_upload is None:
            return {"waiting": True}
        domains = cached.uploaded_domains(source_upload[0], source_upload[1], target_upload[0],
                                          target_upload[1], label_column)
        data_key = f"upload:{cached.digest(source_upload[1])}:{cached.digest(target_upload[1])}:{label_column}"
    status.write(f"Data: {domains.name} ({len(domains.x_source)} source, {len(domains.x_target)} target samples).")

    fit_idx, eval_idx = cached.source_split(data_key, domains, seed, model_mode)
    model, model_key = None, "none"
    if model_mode == "default":
        status.update(label="Training the small default model on the source...")
        model = cached.default_model(data_key, domains, fit_idx, seed, dash.pipeline.DEFAULT_MODEL_EPOCHS)
        model_key = f"default:{data_key}:{seed}"
        status.write(f"Default model trained on {len(fit_idx)} source samples; {len(eval_idx)} held out for the report.")
    elif model_mode == "upload":
        if model_upload is None:
            return {"waiting_model": True}
        model = cached.uploaded_model(cached.digest(model_upload[1]), model_upload[0], model_upload[1])
        model_key = f"upload:{cached.digest(model_upload[1])}"
        status.write(f"Model {model_upload[0]!r} loaded (safe mode).")
    if model is not None:
        domains = dash.pipeline.check_model_fits(model, domains)  # labels coded as the model's outputs

    status.update(label=f"Measuring shift and diagnosing it (at least {permutations_run} permutations a test)...")
    analysis = cached.analysis(data_key, model_key, domains, model, eval_idx, n_permutations, float(alpha), seed,
                               bool(use_target_labels), str(target_priors))
    status.write("Analysis ready: shift report, per-feature drift, diagnosis.")

    signature = (data_key, model_key, config, n_permutations, float(alpha), seed, bool(use_target_labels))
    adaptation, adapt_error = None, None
    if model is not None and st.session_state.get("adapt_request") == signature:
        status.update(label=f"Adapting: {config.describe()}...")
        try:
            def progress(i: int, n: int, name: str) -> None:  # the automatic choice, per candidate
                status.update(label=f"Adapting: candidate {i + 1} of {n} ({name})...")

            adaptation = cached.adaptation(data_key, model_key, config, n_permutations, float(alpha), seed,
                                           bool(use_target_labels), domains, model, fit_idx, eval_idx, progress)
            status.write("Adaptation done; shift measured again.")
        except Exception as exc:  # noqa: BLE001 - shown in section 6; the rest of the page stays
            adapt_error = dash.user_message(exc)
    out.update(domains=domains, data_key=data_key, model=model, model_key=model_key, fit_idx=fit_idx,
               eval_idx=eval_idx, analysis=analysis, signature=signature, adaptation=adaptation,
               adapt_error=adapt_error, seconds=time.perf_counter() - t0)
    return out


error = None
with st.status("Preparing the analysis...", expanded=False) as status:
    try:
        ctx = run_pipeline(status)
        status.update(label=f"Analysis ready ({ctx.get('seconds', 0):.1f} s; cached results are reused)",
                      state="complete")
    except Exception as exc:  # noqa: BLE001 - bad files, bad settings, model errors: a message, never a traceback
        error = exc
        status.update(label="The analysis could not run", state="error")

if error is not None:
    st.error(f"**Cannot analyse these inputs.** {dash.user_message(error)}")
    st.caption("Fix the input in the sidebar; the dashboard keeps running.")
    st.stop()
if ctx.get("waiting"):
    st.info("Upload a **source** and a **target** file in the sidebar (CSV or Parquet with a label "
            "column, or NPZ with arrays 'x' and optional 'y'), or pick a built-in scenario.")
    st.stop()
if ctx.get("waiting_model"):
    st.info("Upload a .keras model in the sidebar, or choose the default model.")
    st.stop()

domains = ctx["domains"]
analysis = ctx["analysis"]  # the page's one analysis: every section below renders a part of it
report, drift, diagnosis = analysis.report, analysis.drift, analysis.diagnosis
adaptation = ctx["adaptation"]
model = ctx["model"]
class_names = None if analysis.class_names is None else list(analysis.class_names)
report_key = (ctx["data_key"], ctx["model_key"], n_permutations, float(alpha), seed, bool(use_target_labels),
              str(target_priors))
adapt_key = ctx["signature"]

st.caption(domains.description + (f"  Known truth: {domains.shift_kind} shift." if domains.shift_kind else ""))

# ------------------------------------------------------------------------------------ 1. verdict
st.subheader("1. Verdict")
cards = dash.verdict_cards(report)
for start in range(0, len(cards), 4):  # rows of four cards
    for col, card in zip(st.columns(4), cards[start:start + 4]):
        col.metric(card.label, card.value, card.delta, delta_color="off", help=card.help, border=True)
# st.warning / st.success: st.error is kept for problems with the inputs.
(st.warning if report.is_shift else st.success)(f"**Verdict: {dash.verdict_headline(report)}.** {report.verdict}")
if model is None:
    st.caption("No model: only the input-space test runs. Choose a model to test the feature space and its softmax "
               "outputs (BBSD), and to adapt.")

# ------------------------------------------------------------------------------------ 2. null distribution
st.subheader("2. Permutation test")
st.caption("The histogram is the MMD² of random source/target relabellings (the no-shift null); the red "
           "line is the observed MMD², the dashed line the threshold (the exact critical value at alpha). "
           "Observed past the threshold = shift.")
st.image(cached.png(("null",) + report_key, lambda: plots.null_distributions(report)))

# ------------------------------------------------------------------------------------ 3. labels
st.subheader("3. Labels")
if report.labels is None:
    st.info("No source labels: choose a label column (CSV) or add 'y' (NPZ) to compare label distributions.")
else:
    lab = report.labels
    left, right = st.columns(2)
    left.image(cached.png(("labels",) + report_key, lambda: plots.label_distributions(lab, class_names)))
    if lab.ratios is not None:
        right.image(cached.png(("ratios",) + report_key, lambda: plots.label_ratios(lab, class_names)))
    else:
        right.info("Target label proportions unknown: give target labels, or a model to estimate them.")
    st.caption(f"Target proportions from: {lab.target_from}.")
    st.dataframe(dash.label_table(report, class_names), hide_index=True)
    st.markdown("**Class imbalance**")
    st.dataframe(dash.imbalance_table(report, class_names), hide_index=True)

# ------------------------------------------------------------------------------------ 4. embeddings
st.subheader("4. Embeddings")
use_tsne = st.checkbox("t-SNE instead of PCA (slower)", key="tsne")
method = "tsne" if use_tsne else "pca"
xs_eval = domains.x_source[ctx["eval_idx"]]
if model is not None:
    fs, ft = cached.model_features(ctx["data_key"], ctx["model_key"], model, xs_eval, domains.x_target)
    space, std = "source model's feature space", False
else:
    fs, ft = xs_eval, domains.x_target
    space, std = "input space (standardised)", True
titles = (f"before: {space}", "after: adapted model's feature space")
before = after = None
try:
    before = cached.embedding(("before", method, ctx["data_key"], ctx["model_key"]), fs, ft, method, seed, std)
    if adaptation is not None:
        after = cached.embedding(("after", method) + adapt_key, *adaptation.features_after, method, seed, False)
    st.image(cached.png(("embedding", method, after is not None) + adapt_key,
                        lambda: plots.embedding_scatter(before, after, titles=titles)))
except Exception as exc:  # noqa: BLE001 - shown here; the rest of the page stays
    before = None
    st.error(f"**The embedding could not be drawn.** {dash.user_message(exc)}")
else:
    st.caption(f"{method.upper()} of the held-out source and the target, coloured by domain. Well-mixed "
               "colours = little shift." + ("" if after is not None else " Run an adaptation (section 6) for the after panel."))

# ------------------------------------------------------------------------------------ 5. per-feature drift
st.subheader("5. Per-feature drift")
if drift is None:
    st.info("Per-feature tests are for tabular data; images are compared as a whole by the MMD tests.")
else:
    st.caption(f"{drift.n_shifted} of {len(drift.tests)} features shifted at alpha={drift.alpha:g} "
               f"(KS / chi-square, {drift.correction} corrected; lower p = more shift). Click a header to sort.")
    frame = dash.drift_frame(drift)
    p_format = {c: st.column_config.NumberColumn(c, format="%.2e") 
                for c in frame.columns if c == "p-value" or c.startswith("adjusted p")}
    st.dataframe(frame, hide_index=True, height=min(420, 38 + 35 * len(drift.tests)), column_config=p_format)

# ------------------------------------------------------------------------------------ which kind of shift
st.subheader("Which kind of shift, and which adapter?")
st.caption("Covariate, label and concept shift tested separately (Bonferroni over the three), class "
           "imbalance measured; a domain classifier gives a second opinion. "
           + analysis.subsampling.summary)
st.dataframe(dash.pipeline.diagnosis_frame(diagnosis), hide_index=True)
if diagnosis.untestable:
    st.warning(f"**Not testable at this level on these data:** {', '.join(diagnosis.untestable)}. "
               "Such a kind of shift is neither detected nor ruled out; see the evidence column.")
found = ", ".join(diagnosis.kinds) if diagnosis.kinds else "no shift"
st.info(f"Found: {found}. Recommended: **{diagnosis.recommendation}**. {diagnosis.reason}")

# ------------------------------------------------------------------------------------ 6. adaptation
st.subheader("6. After adaptation")
st.caption(config.describe() + ".")
unavailable = dash.adapter_unavailable(config.adapter, domains)  # data its class requires and these lack
if unavailable is not None:
    st.warning(f"**{dash.adapter_label(config.adapter)}: unavailable on these data.** {unavailable}")
why_not = "Choose a model first: adapters adapt a source model." if model is None else unavailable
st.button("Run adaptation", type="primary", on_click=_request_adaptation, args=(adapt_key,),
          disabled=why_not is not None, key="run_adaptation", help=why_not)
if ctx["adapt_error"]:
    st.error(f"**Adaptation failed.** {ctx['adapt_error']}")
elif adaptation is not None:
    rep = adaptation.report
    cols = st.columns(3)
    if rep.accuracy_before is not None:
        cols[0].metric("Target accuracy before", f"{rep.accuracy_before:.3f}", border=True)
        cols[1].metric("Target accuracy after", f"{rep.accuracy_after:.3f}",
                       f"{rep.accuracy_after - rep.accuracy_before:+.3f}", border=True)
    cols[2].metric("Shift after adaptation", "Shift" if rep.after.is_shift else "No shift",
                   f"at alpha={rep.after.alpha:g}" + (" · gap closed" if rep.comparison.gap_closed else ""),
                   delta_color="off", border=True, help=rep.after.verdict)
    st.markdown(f"**Before / after adaptation** (measured on {adaptation.n_target_eval} target samples"
                + (f"; {adaptation.n_target_labels_used} labelled target samples used for training" if adaptation.n_target_labels_used else "")
                + ")")
    table = dash.comparison_frame(adaptation)
    st.table(table.map(_fmt) if hasattr(table, "map") else table.applymap(_fmt))
    st.caption("Raw MMD² of two different feature spaces is not on one scale (marked not comparable): "
               "compare p-values, normalized MMD² and z-scores.")
    scores = dash.selection_frame(adaptation)
    if scores is not None:
        sel = adaptation.adapter.selection_
        st.markdown(f"**Automatic choice: {sel.chosen}** ({sel.criterion}, {sel.loss}). {sel.reason}")
        st.dataframe(scores, hide_index=True)
        st.caption("Estimated target risk (lower is better): with the 'ensemble' criterion, the loss against the "
                   "candidates' ensemble on the target; with 'dev'/'iwv', the held-out source loss weighted towards "
                   "the target. A candidate replaces source only only when it is better by more than its standard "
                   "error.")
    b, a = st.columns(2)
    b.image(cached.png(("null-before",) + adapt_key, lambda: plots.null_distributions(rep.before)),
            caption="before adaptation")
    a.image(cached.png(("null-after",) + adapt_key, lambda: plots.null_distributions(rep.after)),
            caption="after adaptation")
    st.image(cached.png(("comparison",) + adapt_key, lambda: plots.comparison_bars(rep.comparison)))
elif st.session_state.get("adapt_request") is not None and why_not is None:
    st.info("Settings changed since the last adaptation: click **Run adaptation** to adapt with these.")

# ------------------------------------------------------------------------------------ monitor
st.subheader("Monitor: the target as a stream")
st.caption("The target rows, in their order, cut into windows and measured against the source rows the model did "
           "not train on (all source rows without a model): input MMD, and with a model feature MMD, BBSD and the "
           "predicted-class proportions. A CUSUM alarm whose false-alarm probability over the horizon is about "
           "alpha; the estimated change point is where the alarming statistic's CUSUM last left zero. The same as "
           "`shiftkit monitor` on a snapshot.")
cap = monitoring.max_window(len(domains.x_source), model, ctx["eval_idx"])
if cap < monitoring.MIN_WINDOW:
    st.info(f"The reference has too few rows for windows of {monitoring.MIN_WINDOW} (it needs 4 x window rows): "
            "upload more source data.")
else:
    m1, m2 = st.columns(2)
    if cap > monitoring.MIN_WINDOW:
        window = int(m1.slider("Rows per window", monitoring.MIN_WINDOW, cap, min(cap, 50), key="monitor_window"))
    else:  # a slider needs min < max: the one window size the reference allows
        window = monitoring.MIN_WINDOW
        m1.caption(f"Rows per window: {window} (the most this reference allows: it needs 4 x window rows).")
    horizon = int(m2.select_slider("Horizon (windows the alarm's level covers)", options=[10, 20, 50, 100], value=20,
                                   key="monitor_horizon"))
    monitor_key = (ctx["data_key"], ctx["model_key"], window, float(alpha), horizon, seed)
    st.button("Run the monitor", key="run_monitor",
              on_click=lambda k=monitor_key: st.session_state.__setitem__("monitor_request", k))
    if st.session_state.get("monitor_request") == monitor_key:
        try:
            with st.spinner("Calibrating the alarm and measuring each window..."):
                mon = cached.monitor(*monitor_key, domains, model, ctx["eval_idx"])
        except Exception as exc:  # noqa: BLE001 - a message; the rest of the page stays
            st.error(f"**The monitor could not run.** {dash.user_message(exc)}")
        else:
            summ = mon.summary()
            if summ["alarm_window"] is not None:
                st.warning(f"**Alarm at window {summ['alarm_window']}** ({summ['alarm_statistic']}); estimated change "
                           f"point: window {summ['change_point']}.")
            else:
                st.success(f"**No alarm** over {summ['windows']} windows of {window} rows.")
            st.image(cached.png(("monitor",) + monitor_key, lambda: plots.monitor_timeline(
                mon.results_, summ["threshold"], alarm_window=summ["alarm_window"],
                change_point=summ["change_point"])))
            st.dataframe(monitoring.window_frame(mon), hide_index=True)
            st.caption(" ".join([summ["false_alarm_bound"] + "."] + summ["notes"]))

# ------------------------------------------------------------------------------------ 7. downloads
st.subheader("7. Downloads")
shown = analysis if adaptation is None else analysis.with_adaptation(
    adaptation.report, title=f"After adaptation: {adaptation.config.describe()} (measured on "
                             f"{adaptation.n_target_eval} target samples)")


def _html() -> str:
    figures = {} if before is None else {
        f"Embedding ({method.upper()})": plots.embedding_scatter(before, after, titles=titles)}
    return shown.to_html(title=f"shiftkit report: {domains.name}", figures=figures)


c1, c2 = st.columns(2)
try:
    json_report = shown.to_json()
except Exception as exc:  # noqa: BLE001 - shown here; the rest of the page stays
    c1.error(f"**The JSON report could not be built.** {dash.user_message(exc)}")
else:
    c1.download_button("Download JSON report", data=json_report, file_name="shiftkit_report.json",
                       mime="application/json", key="download_json")
html_help = "One self-contained file: figures embedded, no external scripts."
try:  # built on click, in a thread (Streamlit versions that take a callable as data)
    c2.download_button("Download HTML report", data=_html, file_name="shiftkit_report.html", mime="text/html",
                       key="download_html", help=html_help)
except (TypeError, RuntimeError, st.errors.StreamlitAPIException):  # older Streamlit: build it now
    c2.download_button("Download HTML report", data=_html(), file_name="shiftkit_report.html", mime="text/html",
                       key="download_html", help=html_help)
