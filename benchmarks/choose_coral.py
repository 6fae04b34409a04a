"""Choosing CORALAdapter's (and, section 5 of dann_choice.md, DANNAdapter's) defaults on the uda suite's data.

Scenarios are those of `bench_adapt.py uda` (`benchmarks/_uda.py`), with the same splits as its
cells (source 80/20 into the adapters' training data and a held-out source validation set; the
target 50/50 into an unlabelled adaptation pool and a scored test set; the user's model trained on
the source training part), but on seeds 0, 1, 2: disjoint from the benchmark's 200-204.

* CHOOSING (defaults may be tuned here): ``digits-blur`` (a CNN with BatchNormalization) and
  ``gru-placement`` (a GRU);
* CONFIRMING (run once with the chosen defaults, never tuned on): ``digits-rot-contrast-noise``,
  ``digits-noise``, ``hospitals-mlp``, ``digits-none`` (no shift).

A config is a dict of the adapter's constructor arguments plus ``"method"`` (coral, dann, mmd;
default coral) and ``"epochs"`` (None: the adapter's default). Each row logs target accuracy, fit
seconds, the first and last epoch's logged figures (task loss, the alignment term) and the
accuracy on the held-out source validation set (a label-free user can see that one).

Source models are cached under ``--cache`` (one ``.keras`` per scenario and seed), so a grid run
in several invocations trains each source model once.

Usage:
    python benchmarks/choose_coral.py --scenario digits-blur --grid weight --seeds 0 1 2 --out runs.jsonl
    python benchmarks/choose_coral.py --scenario digits-noise --configs '[{}]' --out runs.jsonl
    python benchmarks/choose_coral.py --summary runs.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (REPO, HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

CHOOSING = ("digits-blur", "gru-placement")
CONFIRMING = ("digits-rot-contrast-noise", "digits-noise", "hospitals-mlp", "digits-none")

GRIDS: dict[str, list[dict[str, Any]]] = {
    "weight": [{"coral_weight": w} for w in (0.0, 1.0, 100.0, 1e3, 1e4, 1e5)],
    "defaults": [{}],
    "confirm": [{}, {"coral_weight": 0.0}],
}


def case(name: str, seed: int, cache: Path) -> dict[str, Any]:
    """One seed's arrays of a uda scenario, split as `_uda.run_cell` does, and the (cached) source model."""
    import keras

    import _defaults_scenarios as ds
    from _uda import _split, scenarios

    sc = {s.name: s for s in scenarios()}[name]
    data = sc.make_data(seed)
    rng = np.random.default_rng([seed, 7])
    xs, ys, xv, yv = _split(data.x_source, data.y_source, 0.2, rng)
    xu, _, xtest, ytest = _split(data.x_test, data.y_test, 0.5, rng)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}-{seed}.keras"
    if path.exists():
        source = keras.saving.load_model(path)
    else:
        source = ds.train_source(sc, dataclasses.replace(data, x_source=xs, y_source=ys), seed)
        source.save(path)
    return {"source": source, "xs": xs, "ys": ys, "xv": xv, "yv": yv, "xt": xu, "x_eval": xtest, "y_eval": ytest}


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import _defaults_scenarios as ds

    return ds.accuracy(model, x, y)  # the benchmarks' one accuracy (softmax argmax, or one sigmoid unit > 0.5)


def run_config(c: dict[str, Any], config: dict[str, Any], seed: int) -> dict[str, Any]:
    """Fit one method/config on one seed's case; target and source-validation accuracy, time, logged figures."""
    import keras

    from shiftkit.adapt.coral import CORALAdapter
    from shiftkit.adapt.dann import DANNAdapter
    from shiftkit.adapt.mmd import MMDAdapter

    config = dict(config)
    method = config.pop("method", "coral")
    epochs = config.pop("epochs", None)
    cls = {"dann": DANNAdapter, "mmd": MMDAdapter, "coral": CORALAdapter}[method]
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    adapter = cls(c["source"], **config).fit(c["xs"], c["ys"], c["xt"], epochs=epochs, batch_size=64,
                                             verbose=0, seed=seed)
    seconds = time.perf_counter() - t0
    hist = adapter.history
    return {"accuracy": _accuracy(adapter.model, c["x_eval"], c["y_eval"]),
            "source_val": _accuracy(adapter.model, c["xv"], c["yv"]), "seconds": seconds,
            "first": {k: float(v[0]) for k, v in hist.items()}, "last": {k: float(v[-1]) for k, v in hist.items()}}


def key_of(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=CHOOSING + CONFIRMING)
    parser.add_argument("--grid", choices=sorted(GRIDS))
    parser.add_argument("--configs", help="a JSON list of configs instead of --grid")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="coral_runs.jsonl", help="JSON lines, appended")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/coral_dann/models"), help="source models")
    parser.add_argument("--summary", help="print the mean table of a JSON lines file and exit")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(args.summary))
        return 0
    configs = json.loads(args.configs) if args.configs else GRIDS[args.grid]
    for seed in args.seeds:
        t0 = time.perf_counter()
        c = case(args.scenario, seed, args.cache)
        src_acc = _accuracy(c["source"], c["x_eval"], c["y_eval"])
        with open(args.out, "a") as fh:
            fh.write(json.dumps({"scenario": args.scenario, "seed": seed, "config": "source only",
                                 "accuracy": src_acc, "source_val": _accuracy(c["source"], c["xv"], c["yv"]),
                                 "seconds": time.perf_counter() - t0}) + "\n")
        print(f"{args.scenario} seed {seed}: source only {src_acc:.3f}", flush=True)
        for config in configs:
            row = run_config(c, config, seed)
            with open(args.out, "a") as fh:
                fh.write(json.dumps({"scenario": args.scenario, "seed": seed, "config": key_of(config), **row}) + "\n")
            figs = {k: (round(row["first"][k], 4), round(v, 4)) for k, v in row["last"].items()}
            print(f"  {key_of(config)}: {row['accuracy']:.3f} (source val {row['source_val']:.3f}, "
                  f"{row['seconds']:.1f} s) first/last {figs}", flush=True)
    return 0


def summary(path: str) -> str:
    """Mean accuracy per scenario and config over the seeds present (latest run of each seed wins)."""
    rows: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    secs: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        rows[(r["scenario"], r["config"])][r["seed"]] = r["accuracy"]
        secs[(r["scenario"], r["config"])][r["seed"]] = r["seconds"]
    out = ["| scenario | config | mean | per seed | s | seeds |", "|---|---|---|---|---|---|"]
    for (scenario, config), by_seed in sorted(rows.items(), key=lambda kv: (kv[0][0], -np.mean(list(kv[1].values())))):
        vals = [by_seed[s] for s in sorted(by_seed)]
        out.append(f"| {scenario} | {config} | {np.mean(vals):.3f} | {' '.join(f'{v:.3f}' for v in vals)} | "
                   f"{np.mean(list(secs[(scenario, config)].values())):.1f} | {sorted(by_seed)} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
