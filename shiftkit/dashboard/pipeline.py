"""The dashboard's computations as plain functions: split, default model, analyse, embed, page tables.

Each function calls the library (`shiftkit.analyze` for the page's one `Analysis`; adapting: `adapting.py`)
and returns its result objects or small DataFrames for display; none computes a statistic itself
and none imports Streamlit (`shiftkit.dashboard.cached` adds the caching). Errors that the user can
fix come out as `DashboardError`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from shiftkit.analysis import Analysis, analyze
from shiftkit.check import parse_target_priors, priors_in_class_order
from shiftkit.dashboard.errors import DashboardError
from shiftkit.data import check_held_out_classes, source_holdout, subsample_rows
from shiftkit.files import TABLE_EXTENSIONS, Domains, model_n_classes
from shiftkit.files.common import extension
from shiftkit.html_report import class_display_names, evidence_found
from shiftkit.shift.bbsd import is_classifier
from shiftkit.shift.features import check_model_input, feature_space
from shiftkit.shift.mmd import permutations_for
from shiftkit.shift.scaling import Standardizer, standardize as standardize_pair

__all__ = [
    "DEFAULT_MODEL_EPOCHS",
    "DEFAULT_SCENARIO",
    "MAX_SAMPLES",
    "SCENARIO_LABELS",
    "UPLOAD_TYPES",
    "Card",
    "build_default_model",
    "analysis_of",
    "check_model_fits",
    "diagnosis_frame",
    "permutations",
    "drift_frame",
    "embed_2d",
    "imbalance_table",
    "is_table_file",
    "label_table",
    "measure_settings",
    "model_features",
    "source_split",
    "train_default_model",
    "verdict_cards",
    "verdict_headline",
]

DEFAULT_SCENARIO = "hospitals_covariate"
SCENARIO_LABELS = {
    "hospitals_covariate": "Hospitals: covariate shift (tabular, medical)",
    "hospitals_label_shift": "Hospitals: label shift (tabular, medical)",
    "hospitals_no_shift": "Hospitals: no shift (control)",
    "digits_corrupted": "Digits: corrupted scanner (8x8 images)",
}
#: File types the uploaders take (`shiftkit.files` loads them): tables (CSV, Parquet) and arrays (NPZ, NPY).
UPLOAD_TYPES: tuple[str, ...] = tuple(e.lstrip(".") for e in TABLE_EXTENSIONS) + ("npz", "npy")
#: Each domain is subsampled (seeded) to at most this many samples for the MMD tests and the diagnosis.
MAX_SAMPLES = 2000
#: Epochs of the small default model (about 2-3 s on 2 CPU cores for the demo scenarios).
DEFAULT_MODEL_EPOCHS = 15
_HOLDOUT = 0.4


# --------------------------------------------------------------------------------------------
# Source split and the default model
# --------------------------------------------------------------------------------------------


def source_split(y_source: np.ndarray | None, n: int, seed: int, holdout: float = _HOLDOUT) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of the source into a training part (for the model) and a held-out part.

    The held-out part is the "source" of every shift report when the dashboard trains the model:
    measuring on the model's own training data would make it look overconfident. The library's
    `shiftkit.data.source_holdout` with the dashboard's share (`_HOLDOUT`).
    """
    return source_holdout(y_source, n, seed, holdout)


def _standardizer(x: np.ndarray) -> Any:
    """A Normalization layer holding `shiftkit.shift.scaling.Standardizer` statistics of `x`.

    The library's one input-space standardiser decides the scale (tables: per-feature std floored at
    a tenth of the feature's range; images: one pooled scale per channel), so the default model sees
    its inputs on the same scale as the input-space tests. The statistics are given explicitly (not
    `adapt()`-ed), so they live in the layer's config and survive `keras.models.clone_model` (used
    by every adapter) and a `safe_mode` save/load. The layer works on the flattened input.
    """
    scaler = Standardizer().fit(x)
    return keras.layers.Normalization(mean=scaler.mean_.tolist(), variance=(scaler.scale_**2).tolist(),
                                      name="standardize")


def build_default_model(x: np.ndarray, n_classes: int, seed: int = 0) -> Any:
    """The small default classifier: Flatten -> standardize -> Dense(32) -> Dense(16) -> softmax.

    Args:
        x: the source training inputs (their shape and standardisation statistics are used).
        n_classes: number of classes.
        seed: seed of the initial weights.

    The feature space of the shift report is the 16-unit "embedding" layer (the input of the head).
    """
    keras.utils.set_random_seed(seed)
    layers = [keras.Input(tuple(x.shape[1:]), name="inputs")]
    if x.ndim > 2:
        layers.append(keras.layers.Flatten(name="flatten"))  # the standardiser works on flat inputs
    layers += [
        _standardizer(x),
        keras.layers.Dense(32, activation="relu", name="hidden"),
        keras.layers.Dense(16, activation="relu", name="embedding"),
        keras.layers.Dense(n_classes, activation="softmax", name="head"),
    ]
    return keras.Sequential(layers, name="default_source_model")


def train_default_model(
    x: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int = 0, epochs: int = DEFAULT_MODEL_EPOCHS
) -> Any:
    """Build and train the default model on source data (seeded; a few seconds on a CPU)."""
    if y is None:
        raise DashboardError(
            "The default model is trained on the source labels, and the source has none. Choose a "
            "label column (CSV) or add 'y' to the source .npz, or pick 'None' as model."
        )
    if n_classes < 2:
        raise DashboardError("The source labels hold a single class; a classifier needs at least 2.")
    model = build_default_model(x, n_classes, seed)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=8,
    )
    keras.utils.set_random_seed(seed)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    return model


def is_table_file(filename: str) -> bool:
    """True for a table (CSV or Parquet, by extension): the page then asks for its label column."""
    return extension(filename) in TABLE_EXTENSIONS


def check_model_fits(model: Any, domains: Domains) -> Domains:
    """The domains with labels coded as `model`'s output indices; `DashboardError` when they cannot be.

    Checks that the model takes the data's per-sample shape, then re-codes the labels for its
    outputs (`Domains.for_model`: labels 0..K-1 index the outputs, other values are mapped in sorted
    order), so that accuracies and label-shift estimates compare the right classes.

    Returns:
        The (re-coded) `Domains`.
    """
    try:
        check_model_input(model, domains.x_source[:2], "the source data")
    except (ValueError, TypeError) as exc:
        raise DashboardError(f"The model does not fit the data: {exc}") from None
    try:
        return domains.for_model(model_n_classes(model))
    except DashboardError as exc:
        raise DashboardError(f"The labels do not fit the model's outputs: {exc}") from None


def permutations(alpha: float, n_permutations: int) -> int:
    """The permutations every dashboard test runs: the user's choice, raised so a test at `alpha` can reject.

    `shiftkit.shift.mmd.permutations_for(alpha, n)`: a permutation p-value is at least
    1 / (1 + n), so at alpha = 0.001 a 500-permutation test could never detect anything.
    """
    return permutations_for(alpha, int(n_permutations))


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def measure_settings(domains: Domains, *, n_permutations: int, alpha: float, seed: int) -> dict[str, Any]:
    """The settings of every measurement on the page, before and after adaptation alike.

    Keywords of `shiftkit.analyze` and `shift_report` (`Adapter.shift_report`): at least
    `n_permutations` permutations a test (the library raises them to what each test's level
    needs), each domain subsampled (seeded) to at most `MAX_SAMPLES` rows for the MMD tests, the
    input space standardised for tables.
    """
    return {"n_permutations": int(n_permutations), "alpha": alpha, "seed": seed, "max_samples": MAX_SAMPLES,
            "standardize": domains.is_tabular}


def analysis_of(
    domains: Domains,
    model: Any,
    source_idx: np.ndarray,
    *,
    n_permutations: int,
    alpha: float,
    seed: int,
    use_target_labels: bool = True,
    target_priors: str = "",
) -> Analysis:
    """The page's one `shiftkit.analyze`: the held-out source vs the target.

    Report (input space standardised for tables), per-feature drift and diagnosis, each domain
    subsampled (seeded) to at most `MAX_SAMPLES` rows for the MMD tests and the diagnosis; every
    test gets at least `n_permutations` permutations, more where its level needs them. Without
    `use_target_labels` the target labels are left out (target class proportions estimated).
    `target_priors` (text, e.g. "benign=0.92, malignant=0.08" or "0.92, 0.08"): the target's class
    proportions when known from outside the model, for the estimated accuracy; used only where the
    accuracy is estimated (a classifier, source labels, no target labels), ignored otherwise.
    """
    ys = None if domains.y_source is None else domains.y_source[source_idx]
    if ys is not None:  # the held-out part of a trained model must keep every class
        try:
            check_held_out_classes(
                domains.y_source, source_idx, class_names=domains.class_name_list(),
                why="the dashboard trains the model on the rest",
                fix="Add source rows of those classes, or upload a model trained on the source (then every "
                    "source row is measured).")
        except ValueError as exc:
            raise DashboardError(str(exc)) from None
    yt = domains.y_target if ys is not None and use_target_labels else None
    priors = None
    if target_priors.strip() and model is not None and ys is not None and yt is None and is_classifier(model):
        priors = priors_in_class_order(parse_target_priors(target_priors, "Known target class proportions"),
                                       domains.class_name_list(), "Known target class proportions")
    return analyze(
        domains.x_source[source_idx], domains.x_target, y_source=ys, y_target=yt, model=model,
        feature_names=domains.feature_names, class_names=domains.class_name_list(), notes=[domains.description],
        accuracy_target_priors=priors,
        **measure_settings(domains, n_permutations=n_permutations, alpha=alpha, seed=seed),
    )


def diagnosis_frame(diagnosis: Any) -> Any:
    """The diagnosis' evidence as a table (one row per kind of shift)."""
    return pd.DataFrame([{
        "kind": e.kind,
        "found": evidence_found(e),
        "test": e.test,
        "p-value": e.p_value,
        "level": e.level,
        "permutations": getattr(e, "n_permutations", None),
        "evidence": e.detail,
    } for e in diagnosis.evidence])


def model_features(model: Any, x: np.ndarray) -> np.ndarray:
    """Features of `x` at the model's default feature layer (the input of its output head)."""
    return feature_space(model)(x)


def embed_2d(
    xs: np.ndarray, xt: np.ndarray, *, method: str = "pca", seed: int = 0, standardize: bool = True, max_points: int = 1500
) -> tuple[np.ndarray, np.ndarray]:
    """2-D embedding of source and target together: PCA (default) or t-SNE (slower).

    Both domains are embedded by one map (fitted on the pooled sample), so their positions are
    comparable; at most `max_points` per domain are drawn (`shiftkit.data.subsample_rows`: the
    source with `seed`, the target with `seed + 1`). With `standardize`, inputs are scaled by the
    library's standardiser (`shiftkit.shift.scaling.standardize`, fitted on both domains), as the
    input-space tests see them.
    """
    a = xs.reshape(len(xs), -1)[subsample_rows(len(xs), max_points, seed)]
    b = xt.reshape(len(xt), -1)[subsample_rows(len(xt), max_points, seed + 1)]
    if standardize:
        a, b = standardize_pair(a, b)
    z = np.concatenate([a, b]).astype(np.float64)
    if method == "tsne":
        if z.shape[1] > 50:
            z = PCA(n_components=50, random_state=seed).fit_transform(z)
        perplexity = float(min(30.0, max(5.0, (len(z) - 1) / 4)))
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)
    elif method == "pca":
        n_comp = min(2, z.shape[1])
        emb = PCA(n_components=n_comp, random_state=seed).fit_transform(z)
        if n_comp < 2:
            emb = np.column_stack([emb, np.zeros(len(emb))])
    else:
        raise DashboardError(f"Unknown embedding method {method!r}; use 'pca' or 'tsne'.")
    return emb[: len(a)], emb[len(a):]


# --------------------------------------------------------------------------------------------
# What the page shows
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Card:
    """One verdict card (`st.metric`): label, value, delta line and the help tooltip."""

    label: str
    value: str
    delta: str | None
    help: str


def _fmt_p(p: float) -> str:
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def verdict_headline(report: Any) -> str:
    """'Shift at alpha=0.05' / 'No shift at alpha=0.05' (the same decision as `report.is_shift`)."""
    return f"{'Shift' if report.is_shift else 'No shift'} at alpha={report.alpha:g}"


def _mmd_card(test: Any, title: str, alpha: float) -> Card:
    if test is None:
        return Card(title, "—", None, "Not measured: choose a model (default or uploaded) to test the "
                                       "shift where the model looks, in its feature space.")
    decision = "shift" if test.is_shift else "no shift"
    return Card(
        title,
        f"{test.statistic:.4g}",
        f"p = {_fmt_p(test.p_value)} · {decision}",
        f"Unbiased MMD^2 in {test.space} space; higher means more shift. Threshold (the exact critical "
        f"value of {test.n_permutations} permutations at this test's level) = {test.threshold:.4g}: shift "
        f"when the statistic exceeds it, i.e. p <= {test.alpha:g}"
        + ("" if test.alpha == alpha else f" (its Holm level within the family-wise alpha = {alpha:g})")
        + f". Normalized {test.normalized:.3g}, z-score {test.z_score:.3g}, n = {test.n_source} vs {test.n_target}.",
    )


def _bbsd_card(report: Any) -> Card:
    title = "BBSD (softmax)"
    b = getattr(report, "bbsd", None)
    if b is None:
        return Card(title, "—", None, "Not measured: choose a classifier (default or uploaded) to test its softmax "
                                      "outputs (black-box shift detection).")
    decision = "shift" if b.is_shift else "no shift"
    adjusted = report.adjusted_p_values.get("bbsd")
    return Card(
        title,
        f"{b.statistic:.3g}",
        f"p = {_fmt_p(b.p_value)} · {decision}",
        f"{b.description}; the value is the largest KS statistic (0 = same distribution, 1 = disjoint), "
        f"higher means more shift. p is corrected over the outputs; shift when p <= {b.alpha:g}"
        + ("" if b.alpha == report.alpha else f" (its Holm level within the family-wise alpha = {report.alpha:g}"
           + ("" if adjusted is None else f"; Holm-adjusted p = {_fmt_p(adjusted)}") + ")")
        + (f". Outputs shifted on their own: {list(b.shifted_outputs)}" if b.shifted_outputs else "")
        + f". n = {b.n_source} vs {b.n_target}.",
    )


def accuracy_card(report: Any) -> Card:
    """The model's target accuracy (`ShiftReport.accuracy`): measured on the target's labels, else
    "Estimated target accuracy" with its interval and estimator."""
    acc = getattr(report, "accuracy", None)
    if acc is None:
        return Card("Target accuracy", "—", None, "Not measured: needs a classifier (default or uploaded) and "
                                                  "source labels.")
    if acc.measured:
        return Card("Target accuracy", f"{acc.accuracy:.3f}", f"measured · source {acc.source_accuracy:.3f}",
                    f"The model's accuracy on the target's {acc.n_target} labels; its accuracy on the "
                    f"{acc.n_source} held-out source rows beside it.")
    if acc.method == "unavailable":
        return Card("Estimated target accuracy", "—", None, f"Not estimated: {acc.reason}")
    return Card(
        "Estimated target accuracy",
        f"{acc.accuracy:.3f}",
        f"[{acc.lower:.3f}, {acc.upper:.3f}] · {acc.method}",
        f"Estimated without target labels by {acc.method}: {acc.reason}. The interval is a bootstrap of that "
        + ("estimator widened to the other estimators the diagnosed kind of shift does not rule out. "
           if acc.estimate is None or acc.estimate.consistent else
           "estimator widened by a model-error margin (no estimator is consistent under the diagnosed shift). ")
        + f"Source accuracy (the naive estimate) {acc.source_accuracy:.3f}. An estimate, not a measurement.",
    )


def verdict_cards(report: Any) -> list[Card]:
    """The cards at the top of the page, from one `ShiftReport`: the two MMD tests, the label-shift
    distance, the imbalance ratio, black-box shift detection (BBSD) and the target accuracy."""
    cards = [
        _mmd_card(report.input_test, "Input-space MMD²", report.alpha),
        _mmd_card(report.feature_test, "Feature-space MMD²", report.alpha),
    ]
    lab = report.labels
    if lab is None or lab.distance is None:
        why = ("no source labels" if lab is None else
               "target labels unknown and no model to estimate them")
        cards.append(Card("Label-shift distance", "—", None, f"Not measured: {why}."))
    else:
        cards.append(Card(
            "Label-shift distance",
            f"{lab.distance.total_variation:.3f}",
            f"JS {lab.distance.jensen_shannon:.3f} bits · {'true' if lab.target_from == 'labels' else 'estimated'}",
            "Total variation between the source and target class proportions (0 = same, 1 = disjoint); "
            f"Jensen-Shannon divergence in bits beside it. Target proportions from {lab.target_from}.",
        ))
    if lab is None:
        cards.append(Card("Imbalance ratio", "—", None, "Not measured: no source labels."))
    else:
        src = lab.source_imbalance
        tgt = lab.target_imbalance

        def ratio(v: float) -> str:
            return "∞" if not math.isfinite(v) else f"{v:.2f}"

        value = ratio(src.imbalance_ratio) if tgt is None else f"{ratio(src.imbalance_ratio)} → {ratio(tgt.imbalance_ratio)}"
        cards.append(Card(
            "Imbalance ratio",
            value,
            "source" if tgt is None else "source → target",
            "Largest over smallest class count (1 = balanced; ∞ when a class has no sample). "
            f"Source normalized entropy {src.normalized_entropy:.3f}"
            + ("" if tgt is None else f", target {tgt.normalized_entropy:.3f}") + ".",
        ))
    cards.append(_bbsd_card(report))
    cards.append(accuracy_card(report))
    cards.append(_joint_card(report))
    return cards


def _joint_card(report: Any) -> Card:
    """The joint MMD test, the verdict's test with a model (`ShiftReport.joint`)."""
    title = "Joint MMD (verdict)"
    j = getattr(report, "joint", None)
    if j is None:
        return Card(title, "—", None, "Not run: without a model the verdict is Holm's over the tests that ran. Choose a "
                                      "model to test the inputs and its outputs together.")
    shows = f" · most in {j.selected_representation}" if j.is_shift else ""
    return Card(
        title, "shift" if j.is_shift else "no shift", f"p = {_fmt_p(j.p_value)}{shows}",
        "The verdict's test with a model: Gaussian kernels on the standardised inputs and on the model's "
        f"{' and '.join(r for r in j.representation_p_values if r != 'input') or 'outputs'} tested together on the same "
        f"permutations, the smallest kernel p-value calibrated on the permuted ones; shift when p <= {j.alpha:g}. "
        "The cards beside it are the per-space tests, each at its Holm level: the joint test can see a shift that "
        "none of them shows alone.",
    )


def label_table(report: Any, class_names: list[str] | None = None) -> Any:
    """Class proportions, source vs target, and the ratio target/source, one row per class."""
    lab = report.labels
    if lab is None:
        return None
    n, names = lab.n_classes, class_display_names(lab.n_classes, class_names)
    return pd.DataFrame({
        "class": names,
        "source proportion": np.asarray(lab.source_proportions, dtype=float),
        f"target proportion ({lab.target_from})": (
            np.full(n, np.nan) if lab.target_proportions is None else np.asarray(lab.target_proportions, dtype=float)
        ),
        "ratio target/source": np.full(n, np.nan) if lab.ratios is None else np.asarray(lab.ratios.ratios, dtype=float),
    })


def imbalance_table(report: Any, class_names: list[str] | None = None) -> Any:
    """Class-imbalance figures of the source and (when labelled) the target."""
    if report.labels is None:
        return None
    lab = report.labels
    names = class_display_names(lab.n_classes, class_names)
    sides = [(side, imb) for side, imb in (("source", lab.source_imbalance), ("target", lab.target_imbalance))
             if imb is not None]
    return pd.DataFrame([{
        "domain": side,
        "samples": imb.n_samples,
        "imbalance ratio (max/min)": imb.imbalance_ratio,
        "normalized entropy (1 = balanced)": imb.normalized_entropy,
        "minority classes": ", ".join(names[c] for c in imb.minority_classes) or "none",
        **{f"count {names[k]}": int(imb.counts[k]) for k in range(lab.n_classes)},
    } for side, imb in sides])


def drift_frame(drift: Any) -> Any:
    """The per-feature drift table for display, most shifted first."""
    frame = drift.to_frame()
    frame = frame[["feature", "kind", "test", "statistic", "p_value", "p_adjusted", "is_shift",
                   "source_mean", "target_mean"]]
    return frame.rename(columns={"p_value": "p-value", "p_adjusted": f"adjusted p ({drift.correction})",
                                 "is_shift": "shift", "source_mean": "source mean", "target_mean": "target mean"})
