"""Choose SelfTrainingAdapter's defaults on choosing scenarios; confirm them on scenarios not tuned on.

Choosing scenarios (`--stage choose`):

* ``digits-blur5``: examples/digits_shift.py (blur severity 5, its CNN, its FAST source training:
  15 epochs); unlabelled target = its target-adapt split, scored on its target-test split;
* ``digits-noshift``: the same CNN, target = the held-out *clean* source digits (no shift): split in two
  halves (adapt / test), to check that self-training does not degrade the no-shift case;
* ``clusters-rot40``: the synthetic shift of tests/test_adapt_self_training.py (3 tight clusters in 2 of
  10 dims, the target's rotated by 40 degrees, dims 2-3 offset), an MLP.

Confirming scenarios (`--stage confirm`), never tuned on: ``digits-rot-contrast-noise`` and
``gru-placement`` of benchmarks/_defaults_scenarios.py (full source training); the unlabelled target is
a seeded half of the scenario's target test set, scored on the other half.

Every row: mean target-test accuracy over the seeds (and per seed). Writes JSON to `--out`.

Usage:
    python benchmarks/choose_self_training.py --stage choose --seeds 0 1 2 --out /tmp/st_choose.json
    python benchmarks/choose_self_training.py --stage confirm --seeds 0 1 2 --out /tmp/st_confirm.json
    python benchmarks/choose_self_training.py --stage timing --seeds 0 --out /tmp/st_timing.json

The second batch of candidates was run with `--candidates` naming the four added after the first batch.
Figures and the choice: benchmarks/self_training_choice.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (REPO, REPO / "examples", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

#: The candidate settings tried on the choosing scenarios: (label, constructor kwargs, epochs per round).
CANDIDATES: list[tuple[str, dict[str, Any], int | None]] = [
    ("R5 0.2->0.8 e2", {"rounds": 5, "start_fraction": 0.2, "end_fraction": 0.8}, 2),
    ("R5 0.2->1.0 e2", {"rounds": 5, "start_fraction": 0.2, "end_fraction": 1.0}, 2),
    ("R3 0.2->0.6 e3", {"rounds": 3, "start_fraction": 0.2, "end_fraction": 0.6}, 3),
    ("R10 0.1->0.9 e1", {"rounds": 10, "start_fraction": 0.1, "end_fraction": 0.9}, 1),
    ("R5 0.5 const e2", {"rounds": 5, "start_fraction": 0.5, "end_fraction": 0.5}, 2),
    ("R1 1.0 e10 (all at once)", {"rounds": 1, "start_fraction": 1.0, "end_fraction": 1.0}, 10),
    ("R5 0.2->0.8 e4", {"rounds": 5, "start_fraction": 0.2, "end_fraction": 0.8}, 4),
    # second batch, after the first: end 1.0 hurt on digits, a constant 0.5 did well there
    ("R5 0.3->0.7 e2", {"rounds": 5, "start_fraction": 0.3, "end_fraction": 0.7}, 2),
    ("R10 0.1->0.7 e2", {"rounds": 10, "start_fraction": 0.1, "end_fraction": 0.7}, 2),
    ("R10 0.1->0.9 e2", {"rounds": 10, "start_fraction": 0.1, "end_fraction": 0.9}, 2),
    ("R5 0.5 const e4", {"rounds": 5, "start_fraction": 0.5, "end_fraction": 0.5}, 4),
    ("R5 0.2->0.8 e2, no class balance", {"rounds": 5, "start_fraction": 0.2, "end_fraction": 0.8,
                                           "_global": True}, 2),
    ("R5 0.2->0.8 e2 + MMD 1.0", {"rounds": 5, "start_fraction": 0.2, "end_fraction": 0.8, "mmd_weight": 1.0}, 2),
    ("R5 0.2->0.8 e4 + MMD 1.0", {"rounds": 5, "start_fraction": 0.2, "end_fraction": 0.8, "mmd_weight": 1.0}, 4),
    ("R10 0.1->0.9 e2 + MMD 1.0", {"rounds": 10, "start_fraction": 0.1, "end_fraction": 0.9, "mmd_weight": 1.0}, 2),
    ("R5 0.2->0.8 e2 + MMD 0.3", {"rounds": 5, "start_fraction": 0.2, "end_fraction": 0.8, "mmd_weight": 0.3}, 2),
]


# ------------------------------------------------------------------------------------ scenarios
def clusters(n: int, *, target: bool, seed: int, angle: float = 40.0, std: float = 0.6) -> tuple[np.ndarray, ...]:
    """3 classes on a circle of radius 3 in dims 0-1 (std `std`), 8 noise dims; the target rotated, dims 2-3 +2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    a = 2 * np.pi * y / 3 + (np.deg2rad(angle) if target else 0.0)
    x = rng.normal(size=(n, 10))
    x[:, 0] = 3 * np.cos(a) + std * rng.normal(size=n)
    x[:, 1] = 3 * np.sin(a) + std * rng.normal(size=n)
    if target:
        x[:, 2:4] += 2.0
    return x.astype("float32"), y


def _halves(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng([seed, 77]).permutation(len(x))
    a, b = order[: len(x) // 2], order[len(x) // 2:]
    return x[a], y[a], x[b], y[b]


def choosing_scenario(name: str, seed: int) -> dict[str, Any]:
    """`{source_model, xs, ys, xt, yt, xt_test, yt_test}` of a choosing scenario (`yt`: for the docs only)."""
    import keras

    if name in ("digits-blur5", "digits-noshift"):
        import digits_shift as ds

        data = ds.make_data(seed)
        model = ds.train_source_model(data, epochs=ds.FAST["source_epochs"], seed=seed)
        if name == "digits-blur5":
            xt, yt = data["x_target_adapt"], data["y_target_adapt"]
            xtt, ytt = data["x_target_test"], data["y_target_test"]
        else:
            xt, yt, xtt, ytt = _halves(data["x_source_test"], data["y_source_test"], seed)
        return {"source_model": model, "xs": data["x_source"], "ys": data["y_source"], "xt": xt, "yt": yt,
                "xt_test": xtt, "yt_test": ytt}
    if name == "clusters-rot40":
        xs, ys = clusters(400, target=False, seed=10 * seed)
        xt, yt = clusters(400, target=True, seed=10 * seed + 1)
        xtt, ytt = clusters(400, target=True, seed=10 * seed + 2)
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        model.fit(xs, ys, epochs=20, batch_size=64, verbose=0)
        return {"source_model": model, "xs": xs, "ys": ys, "xt": xt, "yt": yt, "xt_test": xtt, "yt_test": ytt}
    raise ValueError(name)


def confirming_scenario(name: str, seed: int) -> dict[str, Any]:
    import _defaults_scenarios as sc

    scenario = {s.name: s for s in sc.scenarios()}[name]
    data = scenario.make_data(seed)
    model = sc.train_source(scenario, data, seed)
    xt, yt, xtt, ytt = _halves(data.x_test, data.y_test, seed)
    return {"source_model": model, "xs": data.x_source, "ys": data.y_source, "xt": xt, "yt": yt, "xt_test": xtt,
            "yt_test": ytt}


# ------------------------------------------------------------------------------------ methods
def _global_selection(probabilities: Any, fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ablation: the `fraction` most confident rows overall (one global threshold, no class balance)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    labels, conf = probs.argmax(1), probs.max(1)
    n_keep = max(2, int(np.ceil(fraction * len(probs) - 1e-9)))
    index = np.sort(np.argsort(-conf, kind="stable")[:n_keep])
    return index, labels[index], conf[index]


def run_method(label: str, kw: dict[str, Any], epochs: int | None, s: dict[str, Any], seed: int) -> dict[str, Any]:
    from shiftkit.adapt import self_training as st
    from shiftkit.adapt.mmd import MMDAdapter

    t0 = time.perf_counter()
    if label == "MMDAdapter (defaults)":
        a = MMDAdapter(s["source_model"]).fit(s["xs"], s["ys"], s["xt"], verbose=0, seed=seed)
        rounds = None
    else:
        kw = dict(kw)
        glob = kw.pop("_global", False)
        original = st.select_pseudo_labels
        if glob:
            st.select_pseudo_labels = _global_selection
        try:
            a = st.SelfTrainingAdapter(s["source_model"], **kw).fit(
                s["xs"], s["ys"], s["xt"], epochs=epochs, verbose=0, seed=seed)
        finally:
            st.select_pseudo_labels = original
        rounds = a.rounds_
    acc = a.evaluate(s["xt_test"], s["yt_test"])["accuracy"]
    out = {"accuracy": acc, "seconds": time.perf_counter() - t0}
    if rounds is not None:
        out["rounds"] = rounds
        # pseudo-label accuracy per round needs the target labels: only for the docs, never used in fit
        yt_all = s.get("yt")
        if yt_all is not None:
            out["pseudo_label_accuracy"] = [float(np.mean(yt_all[i] == lab)) for i, lab in a.pseudo_labels_]
    return out


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    from shiftkit._keras import predict, to_classes

    return float(np.mean(to_classes(model, predict(model, x)) == np.asarray(y).reshape(-1)))


def timing(seed: int, epochs: int, repeats: int) -> dict[str, Any]:
    """Per-epoch wall time on digits-blur5: plain `model.fit` (source, batch 64) vs SelfTrainingAdapter.

    Runs interleaved `repeats` times; each figure is the lowest over repeats of the median epoch time
    after the first epoch of each `fit` call (the first traces the graph). The adapter's round overhead
    (predicting the target and selecting pseudo-labels) is timed apart and spread over its round's epochs.
    """
    import keras

    from bench_adapt import make_timer
    from shiftkit._keras import predict
    from shiftkit.adapt.self_training import SelfTrainingAdapter

    s = choosing_scenario("digits-blur5", seed)
    src = s["source_model"]

    def plain() -> float:
        keras.utils.set_random_seed(seed)
        model = keras.models.clone_model(src)
        model.set_weights(src.get_weights())
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        timer = make_timer()
        model.fit(s["xs"], s["ys"], epochs=epochs, batch_size=64, verbose=0, callbacks=[timer])
        return float(np.median(timer.runs[0][1:]))

    def self_training(weight: float) -> tuple[float, float]:
        timer = make_timer()
        a = SelfTrainingAdapter(src, rounds=2, mmd_weight=weight).fit(
            s["xs"], s["ys"], s["xt"], epochs=epochs // 2, verbose=0, seed=seed, callbacks=[timer])
        per_epoch = float(np.median([t for run in timer.runs for t in run[1:]]))
        predict(a.model_, s["xt"])  # warm
        t0 = time.perf_counter()
        for _ in range(5):
            predict(a.model_, s["xt"])
        overhead = (time.perf_counter() - t0) / 5
        return per_epoch, overhead

    rows: dict[str, list[Any]] = {"plain": [], "st": [], "st_mmd": []}
    for _ in range(repeats):
        rows["plain"].append(plain())
        rows["st"].append(self_training(0.0))
        rows["st_mmd"].append(self_training(1.0))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=("choose", "confirm", "timing"), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scenarios", nargs="+")
    parser.add_argument("--candidates", nargs="+", help="labels of CANDIDATES to run (default: all / the chosen)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from shiftkit.adapt import self_training as st

    if args.stage == "timing":
        rows = timing(args.seeds[0], epochs=16, repeats=3)
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
        base = min(rows["plain"])
        print(f"plain model.fit (source, batch 64): {base:.4f} s/epoch")
        for key, text in (("st", "SelfTrainingAdapter"), ("st_mmd", "SelfTrainingAdapter + MMD 1.0")):
            epoch = min(r[0] for r in rows[key])
            over = min(r[1] for r in rows[key])
            per = epoch + over / st.EPOCHS_PER_ROUND
            print(f"{text}: {epoch:.4f} s/epoch ({epoch / base:.2f}x); with the round's target prediction "
                  f"({over:.4f} s per round / {st.EPOCHS_PER_ROUND} epochs) {per:.4f} ({per / base:.2f}x)")
        return 0
    if args.stage == "choose":
        names = args.scenarios or ["digits-blur5", "clusters-rot40", "digits-noshift"]
        make = choosing_scenario
        candidates = [c for c in CANDIDATES if not args.candidates or c[0] in args.candidates]
    else:
        names = args.scenarios or ["digits-rot-contrast-noise", "gru-placement"]
        make = confirming_scenario
        default = {"rounds": st.ROUNDS, "start_fraction": st.START_FRACTION, "end_fraction": st.END_FRACTION}
        candidates = [("defaults", {}, None), ("defaults + MMD 1.0", {"mmd_weight": 1.0}, None)]
        print("defaults:", default, "epochs per round", st.EPOCHS_PER_ROUND)
    candidates = candidates + [("MMDAdapter (defaults)", {}, None)]
    results: dict[str, Any] = {"stage": args.stage, "seeds": args.seeds, "scenarios": {}}
    start = time.perf_counter()
    for name in names:
        rows: dict[str, list[dict[str, Any]]] = {"source only": []}
        for seed in args.seeds:
            s = make(name, seed)
            rows["source only"].append({"accuracy": accuracy(s["source_model"], s["xt_test"], s["yt_test"])})
            for label, kw, epochs in candidates:
                rows.setdefault(label, []).append(run_method(label, kw, epochs, s, seed))
            line = " | ".join(f"{k} {v[-1]['accuracy']:.3f}" for k, v in rows.items())
            print(f"{name} seed {seed}: {line}  [{time.perf_counter() - start:.0f} s]", flush=True)
        results["scenarios"][name] = rows
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1, default=float)
    print("\n| method | " + " | ".join(names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    for label in results["scenarios"][names[0]]:
        means = [float(np.mean([r["accuracy"] for r in results["scenarios"][n][label]])) for n in names]
        print(f"| {label} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.3f} |")
    print(f"\n{time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
