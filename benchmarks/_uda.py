"""`bench_adapt.py uda`: every adapter without target labels on a suite of shifts, and the automatic choice.

The suite (7 scenarios; `_defaults_scenarios.py` holds the data and the user's models):

1. ``digits-blur``, 2. ``digits-rot-contrast-noise``, 3. ``digits-noise``: scikit-learn digits, a CNN with
   BatchNormalization, three kinds of corruption of the target half;
4. ``gru-placement``: a GRU on simulated activity windows, the sensor moved from wrist to pocket;
5. ``hospitals-mlp``: breast-cancer hospitals split by tumour size (covariate shift), an MLP;
6. ``hospitals-prior``: the same selection at strength 1.0 *and* the target's malignant share raised to
   0.7 by resampling within each class (covariate + label shift);
7. ``digits-none``: clean digits in both domains (no shift).

Each cell (scenario x seed): the source data is split 80/20 (stratified) into the adapters' training
data and a held-out source validation set; the target data into 10 labels per class (for the
FineTune reference), an unlabelled adaptation pool and a disjoint labelled test set (half of the
rest each). The user's model is trained on the source training part. Then, all on the same arrays:

* source only; every registered adapter that needs no target labels, with its DEFAULT settings
  (`select_adapter(candidates=[...])` fits them and scores them without labels); FineTuneAdapter with
  the 10 labels per class; target only (oracle: the user's model trained from scratch on the
  labelled adaptation pool);
* the automatic choice: `select_adapter`'s choice among the candidates that `diagnose` finds suitable
  ("auto"), and, from the same fits, the choice under every criterion (dev / iwv / source) and loss;
* ADAPT 0.4.5 peers (DANN, DeepCORAL, IWC: an instance-weighting classifier) in their virtualenv,
  starting from the same source weights (`_uda_peer_runner.py`).

Criteria are compared on CHOOSING scenarios (digits-blur, gru-placement, hospitals-prior) and
confirmed on the others.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _defaults_scenarios as ds  # noqa: E402

UDA_SEEDS = (200, 201, 202, 203, 204)  # used nowhere else: not by the examples, tests, or defaults table
CHOOSING = ("digits-blur", "gru-placement", "hospitals-prior")
PEER_RUNNER = HERE / "_uda_peer_runner.py"
PEER_PYTHON = HERE / ".venv-adapt" / "bin" / "python"
PEER_TIMEOUT_S = 1200
PEERS = ("ADAPT DANN", "ADAPT DeepCORAL", "ADAPT IWC")
CELLS_DIR = HERE / "uda_cells"  # per-cell arrays (gitignored)


# ------------------------------------------------------------------------------------------- scenarios
def _hospitals_prior(strength: float, prevalence: float):
    def make(seed: int) -> ds.Data:
        from shiftkit.datasets import hospitals_covariate

        sc = hospitals_covariate(seed=seed, strength=strength)
        x, y = np.asarray(sc.x_target, np.float32), np.asarray(sc.y_target)
        rng = np.random.default_rng([seed, 6])
        mal, ben = np.flatnonzero(y == 0), np.flatnonzero(y == 1)  # classes ("malignant", "benign")
        # Keep every malignant patient; keep benign ones so that malignant / all = prevalence.
        n_ben = min(len(ben), int(round(len(mal) * (1 - prevalence) / prevalence)))
        keep = np.sort(np.concatenate([mal, rng.choice(ben, n_ben, replace=False)]))
        xl, yl, xt, yt = ds.pick_labeled(x[keep], y[keep], ds.LABELS_PER_CLASS, np.random.default_rng([seed, 5]))
        return ds.Data(np.asarray(sc.x_source, np.float32), np.asarray(sc.y_source), xl, yl, xt, yt)

    return make


def _clean_digits(seed: int) -> ds.Data:
    from sklearn.datasets import load_digits

    from shiftkit.datasets import digits_corrupted

    sc = digits_corrupted(seed=seed, corruption="noise", severity=1)  # for its split only
    clean = (load_digits().images / 16.0).astype(np.float32)[..., None]
    xl, yl, xt, yt = ds.pick_labeled(clean[sc.target_index], np.asarray(sc.y_target), ds.LABELS_PER_CLASS,
                                     np.random.default_rng([seed, 1]))
    return ds.Data(np.asarray(sc.x_source, np.float32), np.asarray(sc.y_source), xl, yl, xt, yt)


def scenarios(fast: bool = False) -> list[ds.Scenario]:
    base = ds.scenarios(fast)
    cnn = base[0]
    mlp = base[4]
    return base + [
        dataclasses.replace(mlp, name="hospitals-prior",
                            description="breast-cancer hospitals by tumour size (`hospitals_covariate(strength=1.0)`)"
                                        " and the target resampled to 70 % malignant (covariate + label shift)",
                            make_data=_hospitals_prior(1.0, 0.7)),
        dataclasses.replace(cnn, name="digits-none", description="scikit-learn digits, both halves clean (no shift)",
                            make_data=_clean_digits),
    ]


# ------------------------------------------------------------------------------------------- one cell
def _split(x: np.ndarray, y: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Stratified split: (x_a, y_a, x_b, y_b) with `share` of each class in b."""
    b = []
    for k in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == k))
        b.append(rows[: int(round(share * len(rows)))])
    b = np.sort(np.concatenate(b))
    a = np.setdiff1d(np.arange(len(y)), b)
    return x[a], y[a], x[b], y[b]


def unsupervised_names(model: Any) -> list[str]:
    """Registered adapters that need no target labels and can adapt `model`, in registry order."""
    from shiftkit.adapt import adapter_classes

    return [n for n, c in adapter_classes().items()
            if "y_target" not in c.requires and c.in_default_list and c.supports(model)]


def run_cell(scenario: ds.Scenario, seed: int, *, fast: bool, peers: bool, tmp: Path) -> dict[str, Any]:
    """All methods on one scenario and seed; returns accuracies, choices, scores and timings."""
    import keras

    from shiftkit import diagnose
    from shiftkit.adapt import FineTuneAdapter
    from shiftkit.adapt.selection import SOURCE_ONLY, auto_candidates, select_adapter

    t0 = time.perf_counter()
    data = scenario.make_data(seed)
    rng = np.random.default_rng([seed, 7])
    xs, ys, xv, yv = _split(data.x_source, data.y_source, 0.2, rng)
    xu, yu, xtest, ytest = _split(data.x_test, data.y_test, 0.5, rng)
    train = dataclasses.replace(data, x_source=xs, y_source=ys)
    source = ds.train_source(scenario, train, seed)
    acc: dict[str, float] = {SOURCE_ONLY: ds.accuracy(source, xtest, ytest)}
    seconds: dict[str, float] = {}

    names = unsupervised_names(source)
    candidates: dict[str, Any] = {n: n for n in names if n != "auto"}
    if "mmd" in candidates:  # class-weighted MMD: an option of MMDAdapter (off by default), measured too
        from shiftkit.adapt import MMDAdapter

        candidates["mmd_class_weighted"] = MMDAdapter(source, class_weights="auto")
    fit_kwargs: dict[str, Any] = {"verbose": 0}
    if fast:
        fit_kwargs["epochs"] = 2
    sel = select_adapter(source, xs, ys, xu, x_source_val=xv, y_source_val=yv, candidates=candidates,
                         fit_kwargs=fit_kwargs, seed=seed)
    for name, adapter in sel.fitted.items():
        if adapter is not None:
            acc[name] = ds.accuracy(adapter.model_, xtest, ytest)
            seconds[name] = sel.score_of(name).fit_seconds
    diag = diagnose(xv, xu, yv, model=source, seed=seed, second_opinion=False)
    auto_names, _ = auto_candidates(diag.kinds, has_target_labels=False, source_model=source)
    choices = {}
    for crit in ("dev", "iwv", "source", "ensemble"):
        for loss in ("cross_entropy", "error"):
            for among, pool in (("all", None), ("auto", [n for n in auto_names if n in sel.fitted])):
                r = sel.rescore(criterion=crit, loss=loss, among=pool)
                choices[f"{crit}/{loss}/{among}"] = r.chosen
    auto = sel.rescore(among=[n for n in auto_names if n in sel.fitted])
    acc["auto"] = acc[auto.chosen]
    # Everything a criterion needs, to evaluate new ones later without refitting (not committed).
    CELLS_DIR.mkdir(exist_ok=True)
    fitted_names = [n for n in sel.sample_losses]
    test_pred = {n: (source if sel.fitted[n] is None else sel.fitted[n].model_) for n in fitted_names}
    np.savez_compressed(
        CELLS_DIR / f"{scenario.name}-{seed}.npz", names=np.array(fitted_names), y_val=yv, y_test=ytest,
        weights=sel.weights, **{f"val_losses__{n}": sel.sample_losses[n] for n in fitted_names},
        **{f"target_probs__{n}": sel.target_probabilities[n] for n in fitted_names},
        **{f"test_out__{n}": np.asarray(m.predict(xtest, verbose=0)) for n, m in test_pred.items()})

    start = time.perf_counter()
    ft = FineTuneAdapter(source).fit(x_target=data.x_labeled, y_target=data.y_labeled, verbose=0, seed=seed,
                                     **({"epochs": 2} if fast else {}))
    acc["finetune (10/class)"] = ds.accuracy(ft.model_, xtest, ytest)
    seconds["finetune (10/class)"] = time.perf_counter() - start

    start = time.perf_counter()
    oracle_data = dataclasses.replace(data, x_source=np.concatenate([xu, data.x_labeled]),
                                      y_source=np.concatenate([yu, data.y_labeled]))
    oracle = ds.train_source(scenario, oracle_data, seed + 1000)
    acc["target only (oracle)"] = ds.accuracy(oracle, xtest, ytest)
    seconds["target only (oracle)"] = time.perf_counter() - start

    peer_out: dict[str, Any] = {}
    if peers:
        npz, out, model_path = tmp / f"{scenario.name}-{seed}.npz", tmp / f"{scenario.name}-{seed}.json", \
            tmp / f"{scenario.name}-{seed}.keras"
        source.save(model_path)
        np.savez(npz, x_source=xs, y_source=ys, x_target=xu, x_test=xtest, y_test=ytest,
                 config=json.dumps({"seed": seed, "epochs": 2 if fast else 20, "batch_size": 64,
                                    "learning_rate": 1e-3, "loss": scenario.loss}))
        try:
            proc = subprocess.run([str(PEER_PYTHON), str(PEER_RUNNER), "--data", str(npz), "--model", str(model_path),
                                   "--out", str(out)], capture_output=True, text=True, timeout=PEER_TIMEOUT_S,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=False)
            peer_out = json.loads(out.read_text()) if out.exists() else {
                "error": " ".join(proc.stderr.strip().splitlines()[-3:])}
        except subprocess.TimeoutExpired:
            peer_out = {"error": f"timed out after {PEER_TIMEOUT_S} s"}
        for name in PEERS:
            entry = peer_out.get(name, {})
            if "accuracy" in entry:
                acc[name] = entry["accuracy"]
                seconds[name] = entry.get("seconds", float("nan"))
            elif "error" in entry:
                peer_out.setdefault("errors", {})[name] = entry["error"]
        if abs(peer_out.get("source_accuracy", acc[SOURCE_ONLY]) - acc[SOURCE_ONLY]) > 1e-6:
            peer_out["mismatch"] = f"source-only accuracy in the peer venv {peer_out.get('source_accuracy')}"

    keras.backend.clear_session()
    return {
        "scenario": scenario.name, "seed": seed, "accuracy": acc, "seconds": seconds, "chosen": auto.chosen,
        "choices": choices, "kinds": list(diag.kinds), "auto_candidates": auto_names,
        "ess_fraction": sel.ess_fraction, "domain_auc": sel.domain_auc,
        "scores": [s.to_dict() for s in sel.scores], "peer_errors": {k: v for k, v in peer_out.items()
                                                                      if k in ("error", "errors", "mismatch")},
        "cell_seconds": time.perf_counter() - t0,
        "sizes": {"source_train": len(xs), "source_val": len(xv), "target_pool": len(xu),
                  "target_test": len(xtest), "labeled": len(data.x_labeled)},
    }


def run_cell_methods(scenario: ds.Scenario, seed: int, methods: list[str], *, fast: bool) -> dict[str, Any]:
    """Only source only and the named label-free adapters (defaults) on one cell, with `run_cell`'s arrays.

    The same splits, source model and `fit` call (`seed=seed`, verbose 0) as `run_cell`'s candidates,
    without the selection, FineTune, target only and the peers: for rerunning the rows of adapters
    whose defaults changed (`--methods`).
    """
    import keras

    from shiftkit.adapt import get_adapter
    from shiftkit.adapt.selection import SOURCE_ONLY

    t0 = time.perf_counter()
    data = scenario.make_data(seed)
    rng = np.random.default_rng([seed, 7])
    xs, ys, xv, yv = _split(data.x_source, data.y_source, 0.2, rng)
    xu, yu, xtest, ytest = _split(data.x_test, data.y_test, 0.5, rng)
    source = ds.train_source(scenario, dataclasses.replace(data, x_source=xs, y_source=ys), seed)
    acc: dict[str, float] = {SOURCE_ONLY: ds.accuracy(source, xtest, ytest)}
    seconds: dict[str, float] = {}
    for name in methods:
        start = time.perf_counter()
        adapter = get_adapter(name)(source).fit(x_source=xs, y_source=ys, x_target=xu, verbose=0, seed=seed,
                                                **({"epochs": 2} if fast else {}))
        seconds[name] = time.perf_counter() - start
        acc[name] = ds.accuracy(adapter.model_, xtest, ytest)
    keras.backend.clear_session()
    return {"scenario": scenario.name, "seed": seed, "accuracy": acc, "seconds": seconds, "methods": list(methods),
            "cell_seconds": time.perf_counter() - t0}


def methods_lines(cells: list[dict[str, Any]]) -> list[str]:
    """Per scenario: mean ± std of source only and each method, and each method's gain over source only."""
    by: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by.setdefault(c["scenario"], []).append(c)
    lines = ["| scenario | seeds | method | mean ± std | gain over source only |", "|---|---|---|---|---|"]
    for name, cs in by.items():
        src = float(np.mean([c["accuracy"]["source_only"] for c in cs]))
        for m in cs[0]["accuracy"]:
            vals = [c["accuracy"][m] for c in cs]
            lines.append(f"| {name} | {len(cs)} | {m} | {np.mean(vals):.3f} ± {np.std(vals):.3f} | "
                         f"{np.mean(vals) - src:+.3f} |")
    return lines


# ------------------------------------------------------------------------------------------- timing
def time_trainers(scenario: ds.Scenario, seed: int, epochs: int, rounds: int) -> list[dict[str, Any]]:
    """Per-epoch wall time of each label-free adapter's training vs a plain `model.fit` on the same source data.

    The plain fit: a copy of the source model, all layers trainable, Adam, batch 64, on the source
    training data (what the adapters' task term sees each step). Each configuration runs once per
    round, rounds interleaved; its figure is the lowest per-round median of the epochs after the
    first (the first traces the graph). Adapters that do not train (AdaBN, label shift) are absent.
    """
    import keras

    from bench_adapt import make_timer, median_after_first

    from shiftkit.adapt import get_adapter

    data = scenario.make_data(seed)
    rng = np.random.default_rng([seed, 7])
    xs, ys, _, _ = _split(data.x_source, data.y_source, 0.2, rng)
    xu, _, _, _ = _split(data.x_test, data.y_test, 0.5, rng)
    source = ds.train_source(scenario, dataclasses.replace(data, x_source=xs, y_source=ys), seed)

    def plain() -> list[float]:
        model = keras.models.clone_model(source)
        model.set_weights(source.get_weights())
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=scenario.loss)
        timer = make_timer()
        model.fit(xs, ys, epochs=epochs, batch_size=64, verbose=0, callbacks=[timer])
        return timer.runs[0]

    def adapter(name: str) -> list[float]:
        timer = make_timer()
        # importance refuses the collapsed weights of this shift; the timing accepts them (min_ess_fraction=0)
        settings = {"min_ess_fraction": 0.0} if name == "importance" else {}
        get_adapter(name)(source, **settings).fit(x_source=xs, y_source=ys, x_target=xu, epochs=epochs, batch_size=64,
                                      verbose=0, callbacks=[timer], seed=seed)
        return timer.runs[0]  # self-training: its first round's epochs

    trainers = [n for n in ("mmd", "coral", "dann", "self_training", "importance") if n in unsupervised_names(source)]
    medians: dict[str, list[float]] = {"plain model.fit": [], **{n: [] for n in trainers}}
    for _ in range(rounds):
        medians["plain model.fit"].append(median_after_first(plain()))
        for n in trainers:
            medians[n].append(median_after_first(adapter(n)))
    best = {k: min(v) for k, v in medians.items()}
    return [{"trainer": k, "median_s": best[k], "ratio": best[k] / best["plain model.fit"], "all": medians[k]}
            for k in medians]


# ------------------------------------------------------------------------------------------- summary
def auto_key() -> str:
    """The choices key of `select_adapter`'s defaults (criterion / loss) among the diagnosis's candidates."""
    import inspect

    from shiftkit.adapt.selection import select_adapter

    params = inspect.signature(select_adapter).parameters
    return f"{params['criterion'].default}/{params['loss'].default}/auto"


def with_default_choice(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each cell's "auto" row = the choice of `select_adapter`'s current defaults (cells store every criterion's)."""
    key = auto_key()
    out = []
    for c in cells:
        c = dict(c, accuracy=dict(c["accuracy"]))
        c["chosen"] = c["choices"][key]
        c["accuracy"]["auto"] = c["accuracy"][c["chosen"]]
        out.append(c)
    return out


def summarize(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario: mean and std of each method; the auto choice's gaps; each criterion's mean regret."""
    by: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by.setdefault(c["scenario"], []).append(c)
    out: dict[str, Any] = {}
    for name, cs in by.items():
        methods = sorted({m for c in cs for m in c["accuracy"]})
        stats = {m: (float(np.mean([c["accuracy"][m] for c in cs if m in c["accuracy"]])),
                     float(np.std([c["accuracy"][m] for c in cs if m in c["accuracy"]])),
                     sum(m in c["accuracy"] for c in cs)) for m in methods}
        unsup = [m for m in methods if m not in ("source_only", "auto", "finetune (10/class)", "target only (oracle)")
                 and not m.startswith("ADAPT")]
        best_unsup = max(unsup, key=lambda m: stats[m][0]) if unsup else None
        regrets = {}
        for key in cs[0]["choices"]:
            regrets[key] = float(np.mean([
                max(c["accuracy"][m] for m in c["accuracy"] if m in unsup or m == "source_only")
                - c["accuracy"][c["choices"][key]] for c in cs]))
        out[name] = {"stats": stats, "best_unsupervised": best_unsup, "regrets": regrets,
                     "chosen": [c["chosen"] for c in cs], "kinds": [c["kinds"] for c in cs], "n": len(cs)}
    return out


NOT_CANDIDATES = ("auto", "finetune (10/class)", "target only (oracle)")


def _choice_accuracy(c: dict[str, Any], key: str) -> float:
    return c["accuracy"][c["choices"][key]]


def criteria_lines(cells: list[dict[str, Any]]) -> list[str]:
    """Each criterion's choice against the issue's targets, on the choosing and the confirming scenarios.

    Per scenario: regret = mean accuracy of the scenario's best label-free method (best mean over the
    seeds) - mean accuracy of the criterion's choices; gain = mean(choice) - mean(source only).
    """
    by: dict[str, list[dict[str, Any]]] = {}
    for c in cells:
        by.setdefault(c["scenario"], []).append(c)
    keys = list(cells[0]["choices"])
    lines = ["| criterion / loss / candidates | mean regret, choosing | mean regret, confirming | mean regret, all | "
             "worst scenario: choice - source only | scenarios below source only - 0.01 |", "|---|---|---|---|---|---|"]
    rows = []
    for key in keys:
        regret, gain = {}, {}
        for name, cs in by.items():
            methods = [m for m in cs[0]["accuracy"] if m not in NOT_CANDIDATES and not m.startswith("ADAPT")]
            means = {m: float(np.mean([c["accuracy"][m] for c in cs if m in c["accuracy"]])) for m in methods}
            choice = float(np.mean([_choice_accuracy(c, key) for c in cs]))
            regret[name] = max(means.values()) - choice
            gain[name] = choice - means["source_only"]
        choosing = [regret[n] for n in regret if n in CHOOSING]
        confirming = [regret[n] for n in regret if n not in CHOOSING]
        worst = min(gain, key=gain.get)
        below = [n for n in gain if gain[n] < -0.01]
        rows.append((float(np.mean(choosing)) if choosing else float("nan"), key))
        lines.append(f"| {key} | {np.mean(choosing) if choosing else float('nan'):.3f} | "
                     f"{np.mean(confirming) if confirming else float('nan'):.3f} | {np.mean(list(regret.values())):.3f} | "
                     f"{gain[worst]:+.3f} ({worst}) | {', '.join(below) or 'none'} |")
    return lines


IMAGE_CORRUPTIONS = ("digits-blur", "digits-rot-contrast-noise", "digits-noise")


def targets_lines(summary: dict[str, Any]) -> list[str]:
    """The issue's targets, PASS/FAIL from the per-scenario means."""
    def mean(name: str, method: str) -> float:
        st = summary[name]["stats"].get(method)
        return float("nan") if st is None else st[0]

    out = []
    for ours, peer in (("dann", "ADAPT DANN"), ("coral", "ADAPT DeepCORAL")):
        for name in IMAGE_CORRUPTIONS:
            if name not in summary:
                continue
            gain = mean(name, ours) - mean(name, "source_only")
            vs_peer = mean(name, ours) - mean(name, peer)
            ok = gain >= 0.10 and not vs_peer < 0
            out.append(f"- {ours} on {name}: {gain:+.3f} vs source only (target >= +0.10), {vs_peer:+.3f} vs {peer}: "
                       f"{'PASS' if ok else 'FAIL'}")
    close = []
    for name, s in summary.items():
        methods = [m for m in s["stats"] if m not in NOT_CANDIDATES and not m.startswith("ADAPT") and m != "source_only"]
        best = max(methods, key=lambda m: s["stats"][m][0])
        gap = mean(name, best) - mean(name, "finetune (10/class)")
        close.append((name, best, gap))
    n_ok = sum(g >= -0.05 for _, _, g in close)
    out.append(f"- best label-free method within 0.05 of FineTune (10 labels/class) on at least half the scenarios: "
               f"{n_ok} of {len(close)} ({'PASS' if 2 * n_ok >= len(close) else 'FAIL'}): "
               + "; ".join(f"{n} {b} {g:+.3f}" for n, b, g in close))
    regrets, gains = [], []
    for name, s in summary.items():
        methods = [m for m in s["stats"] if m not in NOT_CANDIDATES and not m.startswith("ADAPT")]
        regrets.append(max(mean(name, m) for m in methods) - mean(name, "auto"))
        gains.append((name, mean(name, "auto") - mean(name, "source_only")))
    worst = min(gains, key=lambda g: g[1])
    out.append(f"- automatic choice within 0.03 of the per-scenario best label-free method on average: "
               f"{np.mean(regrets):.3f} ({'PASS' if np.mean(regrets) <= 0.03 else 'FAIL'}); never below source only "
               f"- 0.01: worst {worst[1]:+.3f} ({worst[0]}) ({'PASS' if worst[1] >= -0.01 else 'FAIL'})")
    return out


def tables(summary: dict[str, Any]) -> list[str]:
    methods: list[str] = []
    for s in summary.values():
        for m in s["stats"]:
            if m not in methods:
                methods.append(m)
    order = ["source_only"] + [m for m in methods if m not in ("source_only", "auto", "finetune (10/class)",
                                                                 "target only (oracle)")] + \
        ["auto", "finetune (10/class)", "target only (oracle)"]
    order = [m for m in order if m in methods]
    names = list(summary)
    lines = ["| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m in order:
        row = []
        for n in names:
            st = summary[n]["stats"].get(m)
            row.append("-" if st is None else f"{st[0]:.3f} ± {st[1]:.3f}")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return lines


def main(argv: list[str]) -> int:
    import argparse

    from _results import machine_info, write_section

    p = argparse.ArgumentParser(description="Adapters without target labels on a suite of shifts (issue 11).")
    p.add_argument("--seeds", type=int, nargs="+", default=list(UDA_SEEDS))
    p.add_argument("--scenarios", nargs="+", help="scenario names (default: all)")
    p.add_argument("--fast", action="store_true", help="smoke run: tiny epochs")
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--json", type=Path, default=HERE / "RESULTS_uda.json")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--no-results", action="store_true")
    p.add_argument("--methods", nargs="+",
                   help="only source only and these label-free adapters (registry names, defaults): no selection, "
                        "FineTune, target only or peers; the table goes to stdout and --json, never to RESULTS.md")
    p.add_argument("--timing", action="store_true", help="only the per-epoch timing of each trainer (digits-blur)")
    p.add_argument("--timing-epochs", type=int, default=8)
    p.add_argument("--timing-rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.timing:
        rows = time_trainers(scenarios(args.fast)[0], args.seeds[0], args.timing_epochs, args.timing_rounds)
        lines = ["| trainer | median s / epoch | ratio to plain model.fit | all rounds |", "|---|---|---|---|"]
        lines += [f"| {r['trainer']} | {r['median_s']:.4f} | {r['ratio']:.2f} | "
                  + " ".join(f"{v:.4f}" for v in r["all"]) + " |" for r in rows]
        print("\n".join(lines))
        if not args.no_results:
            title = "## Per-epoch time of the label-free trainers (bench_adapt.py uda --timing)"
            write_section(args.results, title, "\n".join([
                title, "", f"- Command: `python benchmarks/bench_adapt.py uda {' '.join(argv)}`; scenario digits-blur, "
                f"seed {args.seeds[0]}, {args.timing_epochs} epochs per fit, lowest of {args.timing_rounds} interleaved "
                "round(s) of the median of epochs 2..n; plain = a copy of the source CNN, Adam, batch 64, source data "
                "(an adapter step also runs 64 target images).", "", *lines, ""]))
        return 0
    scen = [s for s in scenarios(args.fast) if not args.scenarios or s.name in args.scenarios]
    if args.methods:
        from shiftkit.adapt import adapter_names

        unknown = [m for m in args.methods if m not in adapter_names()]
        if unknown:
            p.error(f"--methods: unknown adapter(s) {unknown}; registered: {adapter_names()}")
        if args.json.resolve() == (HERE / "RESULTS_uda.json").resolve():
            p.error("--methods writes its own cells: pass --json PATH (not the full suite's RESULTS_uda.json)")
        cells = []
        t0 = time.perf_counter()
        for s in scen:
            for seed in args.seeds:
                cell = run_cell_methods(s, seed, args.methods, fast=args.fast)
                cells.append(cell)
                print(f"[{time.perf_counter() - t0:7.0f}s] {s.name} seed {seed}: "
                      + " ".join(f"{k}={v:.3f}" for k, v in cell["accuracy"].items()), flush=True)
                args.json.write_text(json.dumps({"fast": args.fast, "methods": args.methods, "cells": cells}, indent=1))
        print("\n".join(methods_lines(cells)))
        return 0
    peers = not args.no_peers and PEER_PYTHON.exists()
    cells = []
    if args.json.exists() and not args.no_results:  # resume: keep cells already measured with these settings
        old = json.loads(args.json.read_text())
        if old.get("fast") == args.fast:
            cells = [c for c in old["cells"] if c["seed"] in args.seeds]
    done = {(c["scenario"], c["seed"]) for c in cells}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_uda_") as tmp:
        for s in scen:
            for seed in args.seeds:
                if (s.name, seed) in done:
                    continue
                cell = run_cell(s, seed, fast=args.fast, peers=peers, tmp=Path(tmp))
                cells.append(cell)
                acc = " ".join(f"{k}={v:.3f}" for k, v in cell["accuracy"].items())
                print(f"[{time.perf_counter() - t0:7.0f}s] {s.name} seed {seed}: chosen {cell['chosen']}; {acc}",
                      flush=True)
                if not args.no_results:
                    args.json.write_text(json.dumps({"fast": args.fast, "cells": cells}, indent=1))
    cells = with_default_choice(cells)
    summary = summarize(cells)
    lines = tables(summary)
    crit = criteria_lines(cells)
    targets = targets_lines(summary)
    print("\n".join(lines))
    print("\n".join(targets))
    print("\n".join(crit))
    if not args.no_results:
        m = machine_info()
        section = "\n".join([
            "## Adapters without target labels, and the automatic choice (bench_adapt.py uda)", "",
            f"- Command: `python benchmarks/bench_adapt.py uda {' '.join(argv)}`; seeds {args.seeds}; "
            f"{m['nproc']} cores {m['cpu']}; peers {'run' if peers else 'not run'}.",
            "", "Target-test accuracy, mean ± std over the seeds (rows: source only, each label-free candidate "
            f"with its defaults, `select_adapter`'s choice with its defaults ('auto': {auto_key()}, i.e. criterion / "
            "loss / among the candidates the diagnosis suits), FineTune with 10 target labels per class, target only; ADAPT peers from the "
            "same source weights):", "", *lines, "",
            f"Each criterion's choice from the same fits (choosing scenarios: {', '.join(CHOOSING)}; the others "
            "confirm). Regret: best label-free method's mean - the choice's mean, per scenario:", "", *crit, "",
            "The issue's targets (per-scenario means):", "", *targets, ""])
        write_section(args.results, "## Adapters without target labels, and the automatic choice (bench_adapt.py uda)",
                      section)
    return 0
