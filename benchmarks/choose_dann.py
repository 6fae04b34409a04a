"""Choosing DANNAdapter's defaults: choose on some scenarios, confirm on others (benchmarks/dann_choice.md).

This script is sections 1-4 of dann_choice.md, the first choice. It measured DANNAdapter with the
defaults of that time (Adam, `learning_rate=1e-3`, `lambda_max=0.03`), and a DANN config here still
starts from them (`FIRST_CHOICE_DEFAULTS`), so its grids reproduce those sections; `{}` is that first
choice, not today's defaults. Section 5 (today's defaults: SGD with momentum, lambda_max 0.1, chosen on
the uda suite) is `benchmarks/choose_coral.py` with `"method": "dann"` configs. (The CORAL column of
section 4 was CORALAdapter's term of that time, the paper's: `{"method": "coral", "centred": true,
"relative": false}` today.)

Choosing scenarios (the defaults may be tuned on these):

* ``digits-blur5``: `examples/digits_shift.py` as it is (blur severity 5, its CNN without
  BatchNormalization, `FULL` source training: 40 epochs), DANN on the labelled source training
  split and the unlabelled target-adapt split, scored on the disjoint target-test split;
* ``synthetic-rotated``: the rotated 10-D two-class shift of `tests/test_adapt_dann.py` (a Dense
  16-8-2 MLP), 400 source / 400 target-adapt / 400 target-test samples.

Confirming scenarios (never tuned on; `benchmarks/_defaults_scenarios.py`): ``digits-noise`` (pixel
noise severity 5, a CNN with BatchNormalization) and ``gru-placement`` (a GRU on simulated activity
windows, the sensor moved from wrist to pocket). Their target test sets are split in two, seeded:
one half (with the labelled rows' inputs, labels dropped) is the unlabelled target-adapt data, the
other half is scored.

Every row: mean (and per-seed values) of target accuracy over the seeds, next to source only,
DANN with `lambda_max=0` (the same training without the adversarial term), and `MMDAdapter` /
`CORALAdapter` with their defaults.

Usage:
    python benchmarks/choose_dann.py --scenario digits-blur5 --grid lambda --seeds 0 1 2 --out runs.jsonl
    python benchmarks/choose_dann.py --scenario digits-noise --grid confirm --seeds 0 1 2 --out runs.jsonl
    python benchmarks/choose_dann.py --summary runs.jsonl
"""

from __future__ import annotations

import argparse
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
for p in (REPO, REPO / "examples", REPO / "tests", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

CHOOSING = ("digits-blur5", "synthetic-rotated")
CONFIRMING = ("digits-noise", "gru-placement")

#: DANNAdapter settings of the first choice; a DANN config of this script starts from them.
FIRST_CHOICE_DEFAULTS = {"optimizer": "adam", "learning_rate": 1e-3, "lambda_max": 0.03}

# The grids. A config is a dict of DANNAdapter constructor arguments plus "epochs" (None: the default).
GRIDS: dict[str, list[dict[str, Any]]] = {
    "lambda": [
        {"lambda_max": lam, "discriminator_units": units}
        for units in ((64,), (256,), (64, 64))
        for lam in (0.1, 0.3, 1.0)
    ] + [{"lambda_max": 0.0}],
    "schedule": [
        {"lambda_max": lam, "epochs": ep, "anneal_learning_rate": anneal}
        for lam in (0.3, 1.0)
        for ep in (10, 20, 40)
        for anneal in (False, True)
    ],
    "rate": [
        {"lambda_max": lam, "learning_rate": lr}
        for lam in (0.3, 1.0, 3.0)
        for lr in (3e-4, 1e-3, 3e-3)
    ],
    "defaults": [{}],
    "confirm": [{}, {"lambda_max": 0.0}, {"method": "mmd"}, {"method": "coral"}],
}


# ------------------------------------------------------------------------------------------- scenarios
def _digits_blur5(seed: int) -> dict[str, Any]:
    import digits_shift as ex

    data = ex.make_data(seed)
    model = ex.train_source_model(data, epochs=ex.FULL["source_epochs"], seed=seed)
    return {"source": model, "xs": data["x_source"], "ys": data["y_source"], "xt": data["x_target_adapt"],
            "x_eval": data["x_target_test"], "y_eval": data["y_target_test"]}


def _synthetic_rotated(seed: int) -> dict[str, Any]:
    import keras
    from test_adapt_dann import _mlp, _rotated

    xs, ys = _rotated(400, target=False, seed=3 * seed)
    xt, _ = _rotated(400, target=True, seed=3 * seed + 1)
    xe, ye = _rotated(400, target=True, seed=3 * seed + 2)
    src = _mlp(seed)
    src.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    src.fit(xs, ys, epochs=20, batch_size=64, verbose=0)
    return {"source": src, "xs": xs, "ys": ys, "xt": xt, "x_eval": xe, "y_eval": ye}


def _held_out(name: str) -> Any:
    def make(seed: int) -> dict[str, Any]:
        import _defaults_scenarios as ds

        sc = {s.name: s for s in ds.scenarios()}[name]
        data = sc.make_data(seed)
        model = ds.train_source(sc, data, seed)
        perm = np.random.default_rng([seed, 99]).permutation(len(data.x_test))
        adapt, scored = perm[: len(perm) // 2], perm[len(perm) // 2:]
        xt = np.concatenate([data.x_labeled, data.x_test[adapt]])
        return {"source": model, "xs": data.x_source, "ys": data.y_source, "xt": xt,
                "x_eval": data.x_test[scored], "y_eval": data.y_test[scored]}

    return make


SCENARIOS = {
    "digits-blur5": _digits_blur5,
    "synthetic-rotated": _synthetic_rotated,
    "digits-noise": _held_out("digits-noise"),
    "gru-placement": _held_out("gru-placement"),
}


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import _defaults_scenarios as ds

    return ds.accuracy(model, x, y)  # the benchmarks' one accuracy (softmax argmax, or one sigmoid unit > 0.5)


def run_config(case: dict[str, Any], config: dict[str, Any], seed: int) -> dict[str, Any]:
    """Fit one method/config on one seed's case; target accuracy, fit time and the last logged figures."""
    import keras

    from shiftkit.adapt.coral import CORALAdapter
    from shiftkit.adapt.dann import DANNAdapter
    from shiftkit.adapt.mmd import MMDAdapter

    config = dict(config)
    method = config.pop("method", "dann")
    epochs = config.pop("epochs", None)
    cls = {"dann": DANNAdapter, "mmd": MMDAdapter, "coral": CORALAdapter}[method]
    if method == "dann":
        config = {**FIRST_CHOICE_DEFAULTS, **config}
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    adapter = cls(case["source"], **config).fit(case["xs"], case["ys"], case["xt"], epochs=epochs, batch_size=64,
                                                verbose=0, seed=seed)
    seconds = time.perf_counter() - t0
    hist = adapter.history
    return {"accuracy": _accuracy(adapter.model, case["x_eval"], case["y_eval"]), "seconds": seconds,
            "last": {k: float(v[-1]) for k, v in hist.items()}}


def key_of(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--grid", choices=sorted(GRIDS))
    parser.add_argument("--configs", help="a JSON list of configs instead of --grid")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="dann_runs.jsonl", help="JSON lines, appended")
    parser.add_argument("--summary", help="print the mean table of a JSON lines file and exit")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(args.summary))
        return 0
    configs = json.loads(args.configs) if args.configs else GRIDS[args.grid]
    for seed in args.seeds:
        t0 = time.perf_counter()
        case = SCENARIOS[args.scenario](seed)
        src_acc = _accuracy(case["source"], case["x_eval"], case["y_eval"])
        with open(args.out, "a") as fh:
            fh.write(json.dumps({"scenario": args.scenario, "seed": seed, "config": "source only",
                                 "accuracy": src_acc, "seconds": time.perf_counter() - t0}) + "\n")
        print(f"{args.scenario} seed {seed}: source only {src_acc:.3f}", flush=True)
        for config in configs:
            row = run_config(case, config, seed)
            with open(args.out, "a") as fh:
                fh.write(json.dumps({"scenario": args.scenario, "seed": seed, "config": key_of(config), **row}) + "\n")
            print(f"  {key_of(config)}: {row['accuracy']:.3f} ({row['seconds']:.1f} s) "
                  f"{ {k: round(v, 3) for k, v in row['last'].items()} }", flush=True)
    return 0


def summary(path: str) -> str:
    """Mean accuracy per scenario and config over the seeds present (latest run of each seed wins)."""
    rows: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    secs: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        rows[(r["scenario"], r["config"])][r["seed"]] = r["accuracy"]
        secs[(r["scenario"], r["config"])][r["seed"]] = r["seconds"]
    out = []
    for (scenario, config), by_seed in sorted(rows.items(), key=lambda kv: (kv[0][0], -np.mean(list(kv[1].values())))):
        vals = [by_seed[s] for s in sorted(by_seed)]
        out.append(f"| {scenario} | {config} | {np.mean(vals):.3f} | {' '.join(f'{v:.3f}' for v in vals)} | "
                   f"{np.mean(list(secs[(scenario, config)].values())):.1f} | seeds {sorted(by_seed)} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
