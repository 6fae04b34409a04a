"""The dashboard's computations as plain functions: split, default model, analyse, embed, adapt.

Each function calls the library (`shiftkit.analyze` for the page's one `Analysis`, the adapters)
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
from sklearn.model_selection import train_test_split

from shiftkit.analysis import Analysis, analyze
from shiftkit.dashboard.errors import DashboardError
from shiftkit.data import subsample_rows
from shiftkit.files import Domains, model_n_classes
from shiftkit.html_report import class_display_names, evidence_found
from shiftkit.shift.features import check_model_input, feature_space
from shiftkit.shift.mmd import permutations_for
from shiftkit.shift.scaling import Standardizer, standardize as standardize_pair

__all__ = [
    "ADAPTERS",
    "ADAPTER_DEFAULTS",
    "DEFAULT_MODEL_EPOCHS",
    "DEFAULT_SCENARIO",
    "MAX_SAMPLES",
    "SCENARIO_LABELS",
    "AdaptConfig",
    "AdaptationResult",
    "Card",
    "adapter_available",
    "build_default_model",
    "analysis_of",
    "check_model_fits",
    "comparison_frame",
    "diagnosis_frame",
    "permutations",
    "drift_frame",
    "embed_2d",
    "imbalance_table",
    "label_table",
    "model_features",
    "run_adaptation",
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
#: Adapter key -> (label, class name in shiftkit.adapt, module).
ADAPTERS = {
    "copy": ("Copy (frozen features, new head)", "CopyAdapter", "shiftkit.adapt.copy"),
    "finetune": ("Fine-tune (staged unfreezing)", "FineTuneAdapter", "shiftkit.adapt.finetune"),
    "mmd": ("MMD feature alignment", "MMDAdapter", "shiftkit.adapt.mmd"),
    "label_shift": ("Label-shift prior correction", "LabelShiftAdapter", "shiftkit.adapt.label_shift"),
}
#: Default (epochs, learning rate) per trainable adapter: enough steps for a new head on a few labels.
#: Sidebar starting values (epochs, learning rate) per adapter. None = the adapter's own default: for
#: copy / fine-tune "until the held-out loss stops improving" at the adapter's rate (issue 9: a user
#: who changes nothing gets a model no worse than the source), for MMD its rate.
ADAPTER_DEFAULTS = {"copy": (None, None), "finetune": (None, None), "mmd": (20, None)}
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
    measuring on the model's own training data would make it look overconfident. Stratified by
    class when every class has at least two samples.
    """
    idx = np.arange(n)
    stratify = None
    if y_source is not None:
        counts = np.bincount(y_source)
        if counts[counts > 0].min() >= 2:
            stratify = y_source
    fit_idx, eval_idx = train_test_split(idx, test_size=holdout, random_state=seed, stratify=stratify)
    return np.sort(fit_idx), np.sort(eval_idx)


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


def analysis_of(
    domains: Domains,
    model: Any,
    source_idx: np.ndarray,
    *,
    n_permutations: int,
    alpha: float,
    seed: int,
    use_target_labels: bool = True,
) -> Analysis:
    """The page's one `shiftkit.analyze`: the held-out source vs the target.

    Report (input space standardised for tables), per-feature drift and diagnosis, each domain
    subsampled (seeded) to at most `MAX_SAMPLES` rows for the MMD tests and the diagnosis; every
    test gets at least `n_permutations` permutations, more where its level needs them. Without
    `use_target_labels` the target labels are left out (target class proportions estimated).
    """
    ys = None if domains.y_source is None else domains.y_source[source_idx]
    yt = domains.y_target if ys is not None and use_target_labels else None
    return analyze(
        domains.x_source[source_idx], domains.x_target, y_source=ys, y_target=yt, model=model,
        n_permutations=int(n_permutations), alpha=alpha, seed=seed, max_samples=MAX_SAMPLES,
        standardize=domains.is_tabular, feature_names=domains.feature_names,
        class_names=domains.class_name_list(), notes=[domains.description],
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
# Adaptation
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """The adapter chosen in the sidebar and its key parameters.

    Attributes:
        adapter: a key of `ADAPTERS`.
        epochs: training epochs (copy / fine-tune / MMD); None: the adapter's default (copy /
            fine-tune: until the held-out loss stops improving).
        learning_rate: Adam learning rate (fine-tune: of both stages); None: the adapter's default.
        mmd_weight: weight of the MMD^2 term (MMD).
        labels_per_class: labelled target samples per class used to train (copy / fine-tune).
    """

    adapter: str = "copy"
    epochs: int | None = None
    learning_rate: float | None = None
    mmd_weight: float = 1.0
    labels_per_class: int = 10

    def describe(self) -> str:
        label = ADAPTERS[self.adapter][0]
        epochs = "epochs until the held-out loss stops improving" if self.epochs is None else f"{self.epochs} epochs"
        rate = "the adapter's default learning rate" if self.learning_rate is None else f"learning rate {self.learning_rate:g}"
        if self.adapter in ("copy", "finetune"):
            return f"{label}: {self.labels_per_class} labelled target samples per class, {epochs}, {rate}"
        if self.adapter == "mmd":
            return f"{label}: mmd_weight {self.mmd_weight:g}, {epochs}, {rate}"
        return f"{label}: target class proportions estimated by EM on the held-out source"


@dataclasses.dataclass(eq=False)
class AdaptationResult:
    """What one adaptation run produced.

    Attributes:
        config: the `AdaptConfig` used.
        report: the library's `AdaptationReport` (before/after/comparison/accuracies).
        adapter: the fitted adapter.
        n_target_labels_used: labelled target samples used for training (excluded from evaluation).
        n_target_eval: target samples the before/after report and accuracies are measured on.
        features_after: `(source, target)` features of the adapted model (held-out source, full target).
    """

    config: AdaptConfig
    report: Any
    adapter: Any
    n_target_labels_used: int
    n_target_eval: int
    features_after: tuple[np.ndarray, np.ndarray]


def _adapter_class(key: str) -> Any:
    """The adapter class, looked up lazily: adapters that are not installed yet give None."""
    import importlib

    if key not in ADAPTERS:
        raise DashboardError(f"Unknown adapter {key!r}. Choose one of: {', '.join(ADAPTERS)}.")
    _, cls_name, module = ADAPTERS[key]
    from shiftkit import adapt

    cls = getattr(adapt, cls_name, None)
    if cls is None:
        try:
            cls = getattr(importlib.import_module(module), cls_name, None)
        except ImportError:
            cls = None
    return cls


def adapter_available(key: str) -> bool:
    """True when this shiftkit has the adapter `key`."""
    return _adapter_class(key) is not None


def _few_labels_split(y: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick up to `per_class` target samples of each class (always leaving one to evaluate on)."""
    rng = np.random.default_rng(seed)
    train = []
    for k in np.unique(y):
        rows = np.flatnonzero(y == k)
        take = min(per_class, len(rows) - 1)
        if take > 0:
            train.append(rng.choice(rows, take, replace=False))
    train_idx = np.sort(np.concatenate(train)) if train else np.array([], dtype=np.int64)
    eval_idx = np.setdiff1d(np.arange(len(y)), train_idx)
    return train_idx, eval_idx


def run_adaptation(
    domains: Domains,
    model: Any,
    fit_idx: np.ndarray,
    eval_idx: np.ndarray,
    config: AdaptConfig,
    *,
    n_permutations: int,
    alpha: float,
    seed: int,
    use_target_labels: bool = True,
) -> AdaptationResult:
    """Fit the chosen adapter and measure shift before and after (`Adapter.shift_report`).

    Source data: `fit_idx` rows train the adapter where it needs source data (MMD), `eval_idx` rows
    are the held-out source of the reports and of the label-shift estimate. Copy / fine-tune train on
    `labels_per_class` labelled target samples per class, which are then left out of the target
    the before/after report and the accuracies are measured on.

    Raises:
        DashboardError: no model, missing labels the adapter needs, an adapter not installed, or a
            parameter the adapter rejects.
    """
    import keras

    if model is None:
        raise DashboardError("Adaptation needs a source model: choose the default model or upload one.")
    cls = _adapter_class(config.adapter)
    label = ADAPTERS[config.adapter][0]
    if cls is None:
        raise DashboardError(f"The {label} adapter is not available in this version of shiftkit yet.")
    xs_fit, xs_eval = domains.x_source[fit_idx], domains.x_source[eval_idx]
    ys = domains.y_source
    if ys is None:
        raise DashboardError(f"The {label} adapter needs source labels; choose a label column or add 'y'.")
    ys_fit, ys_eval = ys[fit_idx], ys[eval_idx]
    xt, yt = domains.x_target, domains.y_target
    target_eval = np.arange(len(xt))
    n_used = 0
    keras.utils.set_random_seed(seed)
    try:
        if config.adapter in ("copy", "finetune"):
            if yt is None:
                raise DashboardError(
                    f"The {label} adapter trains on a few labelled target samples, and the target has "
                    "no labels. Add target labels, or choose the MMD or label-shift adapter."
                )
            train_idx, target_eval = _few_labels_split(yt, config.labels_per_class, seed)
            if len(train_idx) == 0:
                raise DashboardError("No labelled target samples to train on: raise 'target labels per class'.")
            n_used = len(train_idx)
            # Only what the user set is passed: everything else is the adapter's own default.
            rate = {} if config.learning_rate is None else {"learning_rate": config.learning_rate}
            if config.adapter == "copy":
                adapter = cls(model).fit(xt[train_idx], yt[train_idx], epochs=config.epochs, verbose=0, **rate)
            else:
                if config.learning_rate is not None:
                    rate["fine_tune_learning_rate"] = config.learning_rate
                adapter = cls(model, **rate).fit(xt[train_idx], yt[train_idx], epochs=config.epochs, verbose=0)
        elif config.adapter == "mmd":
            given = {k: v for k, v in (("epochs", config.epochs), ("learning_rate", config.learning_rate))
                     if v is not None}
            adapter = cls(model, mmd_weight=config.mmd_weight).fit(xs_fit, ys_fit, xt, verbose=0, seed=seed, **given)
        else:
            adapter = cls(model, method="em").fit(xs_eval, ys_eval, xt)
        xt_eval = xt[target_eval]
        yt_eval = None if (yt is None or not use_target_labels) else yt[target_eval]
        report = adapter.shift_report(
            xs_eval, xt_eval, ys_eval, yt_eval,
            n_permutations=permutations(alpha, n_permutations), alpha=alpha, seed=seed,
            standardize=domains.is_tabular, max_samples=MAX_SAMPLES,
        )
        if yt is not None and not use_target_labels and report.accuracy_before is None:
            # Accuracy is judged on true labels whenever they exist, even when the shift report
            # estimates the target label proportions.
            from shiftkit._keras import predict, to_classes

            pred_b = to_classes(model, predict(model, xt_eval))  # 0 / 0.5 from the architecture
            report.accuracy_before = float(np.mean(pred_b == yt[target_eval]))
            report.accuracy_after = float(np.mean(adapter.predict_classes(xt_eval) == yt[target_eval]))
        feats = (adapter.features(xs_eval), adapter.features(xt))
    except DashboardError:
        raise
    except (ValueError, TypeError) as exc:
        from shiftkit.dashboard.errors import user_message

        raise DashboardError(f"{label} failed: {user_message(exc)}") from None
    return AdaptationResult(
        config=config, report=report, adapter=adapter, n_target_labels_used=n_used,
        n_target_eval=len(target_eval), features_after=feats,
    )


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


def verdict_cards(report: Any) -> list[Card]:
    """The four cards at the top of the page, from one `ShiftReport`."""
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
    return cards


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


def comparison_frame(result: AdaptationResult) -> Any:
    """Every figure before and after adaptation (the library's `comparison.to_frame()`), plus accuracy."""
    rep = result.report
    frame = rep.comparison.to_frame()
    if rep.accuracy_before is not None:
        acc = pd.DataFrame([{
            "figure": "target accuracy",
            "before": rep.accuracy_before,
            "after": rep.accuracy_after,
            "change": rep.accuracy_after - rep.accuracy_before,
            "better": "higher",
            "comparable": True,
        }])
        frame = pd.concat([frame, acc], ignore_index=True)
    return frame
