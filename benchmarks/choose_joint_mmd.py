"""Choose the representations of the joint aggregated MMD test (`shiftkit.shift.mmd_joint`, issue 12).

The joint test puts Gaussian kernels at the bandwidths (1/4, 1/2, 1, 2, 4) x the pooled median on
several representations of the same rows and calibrates their smallest p-value on shared
permutations. Which representations should go in when a classifier is given? Every candidate is a
subset of the same 15 kernels (5 bandwidths on each of: the standardised inputs, the model's
softmax, its features = the input of the softmax head), evaluated on the SAME permutations of the
same draws, so candidates differ only by which kernels enter the min-p:

    input                    the 5 input kernels (what `mmd_test` does without a model)
    softmax                  the 5 softmax kernels (BBSD-MMD with the aggregated bandwidths)
    input+softmax            10 kernels
    input+features           10 kernels
    input+softmax+features   15 kernels
    input+softmax@median     the 5 input kernels + the softmax kernel at the median only (6)
    input+softmax@3          the 5 input kernels + softmax at 1/2, 1, 2 x median (8)

CHOOSING kinds (none of them is a kind of bench_power.py, which confirms the choice afterwards):
    bc-label        breast cancer, a 30-16-2 MLP trained on a stratified third; the target's class
                    counts drawn multinomially with the malignant share raised from the pool's 0.37
                    to 0.7, rows of each class without replacement from the rows the source did not
                    take while they last (label shift, binary)
    bc-covariate    breast cancer, target drawn with probability ~ exp(0.8 z), z = standardised
                    'worst radius' (selection on one feature; as choose_mmd_bandwidth.py)
    digits-dropout  digits (bench_power's MLP and split), 10% of the target's pixels set to 0
    gmm-label       3 Gaussian classes in 5 dimensions (means 2 apart), a 5-16-3 MLP; source priors
                    (1/3, 1/3, 1/3), target (0.6, 0.2, 0.2) (multi-class label shift)
Nulls: disjoint draws of the clean breast-cancer pool, of the digits pool, of the mixture.

Two rounds (joint_mmd_choice.md has both). Round 1 (`--round 1`: bc-label 0.55 drawn by weighted
sampling without replacement, bc-covariate 0.4, gmm-label 0.5; rule: highest mean power, a candidate
within 0.01 with fewer kernels wins) had shifts so weak (most powers 0.1-0.4) that every candidate's
mean power was within 0.03 of the others, inside the noise; its rule named `input` by the tie-break.
Round 2 (the default) raised the label and covariate intensities (set once, from round 1's
input-only and softmax-only rates, before round 2 ran) and uses a rule that matches what a default
is asked (issue 12: power at least the best peer's at every size and shift, i.e. no cell lost
badly): among the candidates whose type-I error is within alpha + 3 s.e. on every null and size,
the smallest worst-cell regret (max over choosing kinds and sizes of the best candidate's power in
that cell minus the candidate's); candidates within 0.02 of the smallest are tied, and among them
the highest mean power wins, then the fewest kernels. This rule was written after round 1 was seen.

Round 3 (`--round 3 --trials 200`; issue 12's label-shift deficit on bench_power.py): round 2's kinds,
intensities and rule (written before round 3 ran), 200 draws (the first 100 are round 2's), and the
candidates of rounds 1-2 plus linear kernels (`mmd_joint`'s "linear" entry: k(a, b) = a . b) and
two combination rows (`COMBINATION_CANDIDATES`):
    softmax-lin              the linear kernel on the softmax alone (BBSE's mean-softmax statistic)
    input+softmax@3+lin      the default + the linear softmax kernel (9)
    input+softmax-lin        the 5 input kernels + the linear softmax kernel (6)
    input+softmax@3+loglin   the default + the linear kernel on log(max(softmax, 1e-6)) (9)
    input+lin+softmax@3+lin  the default + linear kernels on the inputs and on the softmax (10)
    fisher8                  Fisher's combination (-sum log p) of the default's 8 kernels' rank
                             p-values, calibrated on the same splits (instead of min-p)
    input+softmax@3+fisher   the default's 8 kernels + that Fisher row, min-p over the 9
    input+softmax@3+zsum     the default's 8 kernels + the sum of the standardised median-bandwidth
                             input and softmax statistics (a scale-free sum kernel), min-p over the 9

`--confirm` runs every candidate on bench_power.py's own draws (its data, classifier, `Draws` and
per-trial seeds: the default candidate reproduces bench_power's `joint_mmd` p-values exactly), for
`--shifts`, `--sizes`, `--trials`; it writes `--confirm-json` and nothing else (a confirmation, not a
choice).

Usage:
    nice -n 5 python benchmarks/choose_joint_mmd.py            # writes joint_mmd_choice.{md,json}
    nice -n 5 python benchmarks/choose_joint_mmd.py --round 3 --trials 200
    python benchmarks/choose_joint_mmd.py --confirm --shifts none label-0.3 noise-0.05 blur-0.5 \
        --sizes 10 50 100 --trials 200 --confirm-json benchmarks/joint_mmd_confirm.json
    python benchmarks/choose_joint_mmd.py --quick              # smoke run, nothing written
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

ALPHA = 0.05
CHOOSE = ("bc-label", "bc-covariate", "digits-dropout", "gmm-label")
NULLS = ("null-bc", "null-digits", "null-gmm")
INTENSITIES = {
    1: {"bc-label": 0.55, "bc-covariate": 0.4, "digits-dropout": 0.1, "gmm-label": 0.5},
    2: {"bc-label": 0.7, "bc-covariate": 0.8, "digits-dropout": 0.1, "gmm-label": 0.6},
    3: {"bc-label": 0.7, "bc-covariate": 0.8, "digits-dropout": 0.1, "gmm-label": 0.6},  # round 2's
}
INTENSITY = dict(INTENSITIES[2])
ROUND = {"round": 2}
REPS = ("input", "softmax", "features")
FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: Linear kernels (k(a, b) = a . b, round 3), after the 15 Gaussian ones: on the standardised inputs, on
#: the softmax (BBSE's mean-output statistic) and on the log of the softmax clipped at LOG_EPS.
LINEAR_REPS = ("input", "softmax", "logsoftmax")
LOG_EPS = 1e-6


def _rows(rep: str, factors=FACTORS) -> list[int]:
    base = REPS.index(rep) * len(FACTORS)
    return [base + FACTORS.index(f) for f in factors]


def _lin(rep: str) -> list[int]:
    return [len(REPS) * len(FACTORS) + LINEAR_REPS.index(rep)]


CANDIDATES = {
    "input": _rows("input"),
    "softmax": _rows("softmax"),
    "input+softmax": _rows("input") + _rows("softmax"),
    "input+features": _rows("input") + _rows("features"),
    "input+softmax+features": _rows("input") + _rows("softmax") + _rows("features"),
    "input+softmax@median": _rows("input") + _rows("softmax", (1.0,)),
    "input+softmax@3": _rows("input") + _rows("softmax", (0.5, 1.0, 2.0)),
}
#: Round 3's added candidates (linear kernels); rounds 1-2 report only the seven above.
LINEAR_CANDIDATES = {
    "softmax-lin": _lin("softmax"),
    "input+softmax@3+lin": _rows("input") + _rows("softmax", (0.5, 1.0, 2.0)) + _lin("softmax"),
    "input+softmax-lin": _rows("input") + _lin("softmax"),
    "input+softmax@3+loglin": _rows("input") + _rows("softmax", (0.5, 1.0, 2.0)) + _lin("logsoftmax"),
    "input+lin+softmax@3+lin": _rows("input") + _lin("input") + _rows("softmax", (0.5, 1.0, 2.0)) + _lin("softmax"),
}
#: Round 3's combination candidates: one more row computed from the kernels' rows on every split, then
#: calibrated like a kernel on the same splits (so still exact): "fisher" = -sum log(rank p-value) over
#: the 8 default kernels (Pesarin's nonparametric combination, Fisher's; min-p is Tippett's, best for
#: one strong signal, Fisher's for signals spread over several kernels, as a label shift that moves both
#: the inputs and the softmax); "zsum" = the sum of the median-bandwidth input and softmax statistics,
#: each standardised by its mean and s.d. over all the splits (a sum kernel with scale-free weights).
DEFAULT_ROWS = _rows("input") + _rows("softmax", (0.5, 1.0, 2.0))
DERIVED = {"fisher": ("fisher", DEFAULT_ROWS), "zsum": ("zsum", _rows("input", (1.0,)) + _rows("softmax", (1.0,)))}
N_BASE = len(REPS) * len(FACTORS) + len(LINEAR_REPS)
COMBINATION_CANDIDATES = {
    "fisher8": [N_BASE + 0],
    "input+softmax@3+fisher": DEFAULT_ROWS + [N_BASE + 0],
    "input+softmax@3+zsum": DEFAULT_ROWS + [N_BASE + 1],
}
ALL_CANDIDATES = {**CANDIDATES, **LINEAR_CANDIDATES, **COMBINATION_CANDIDATES}
ACTIVE = dict(CANDIDATES)


class Scenario:
    """A pool of rows with a trained classifier; source/target draws of indices or arrays."""

    def __init__(self, name: str, x: np.ndarray, y: np.ndarray, model, seed: int):
        from shiftkit._keras import predict, to_probabilities
        from shiftkit.shift.features import FeatureSpace

        self.name, self.x, self.y, self.model = name, x, y, model
        self.fs = FeatureSpace(model)
        self._softmax = lambda a: to_probabilities(model, predict(model, a, batch_size=2048))
        self.p_pool = self._softmax(x)
        self.f_pool = self.fs(x)
        self.accuracy = float(np.mean(self.p_pool.argmax(1) == y))

    def reps(self, x: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if idx is not None:
            return self.p_pool[idx], self.f_pool[idx]
        return self._softmax(x), self.fs(x)


def _mlp(d_in, n_classes, hidden, x_train, y_train, seed, epochs=60):
    import keras

    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization()
    norm.adapt(x_train)
    model = keras.Sequential([keras.Input((d_in,)), norm, keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(n_classes, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def _gmm(rng: np.random.Generator, n: int, priors) -> tuple[np.ndarray, np.ndarray]:
    means = np.zeros((3, 5))
    means[1, 0] = 2.0
    means[2, 1] = 2.0
    y = rng.choice(3, size=n, p=np.asarray(priors) / np.sum(priors))
    return rng.normal(size=(n, 5)) + means[y], y


def build(seed: int) -> dict:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    import bench_power

    d = bench_power.load_data(seed)
    digits_model = bench_power.train_model(d["x_train"], d["y_train"], seed)
    bc = load_breast_cancer()
    xb, yb = bc.data.astype(np.float32), bc.target.astype(np.int64)  # target 0 = malignant
    tr, pool = train_test_split(np.arange(len(xb)), train_size=190, stratify=yb, random_state=seed)
    bc_model = _mlp(30, 2, 16, xb[tr], yb[tr], seed)
    g_rng = np.random.default_rng([seed, 99])
    xg, yg = _gmm(g_rng, 600, (1, 1, 1))
    gmm_model = _mlp(5, 3, 16, xg.astype(np.float32), yg, seed)
    return {
        "digits": Scenario("digits", d["x_pool"], d["y_pool"], digits_model, seed),
        "bc": Scenario("bc", xb[pool], yb[pool], bc_model, seed),
        "gmm": gmm_model,
        "bc_col": list(bc.feature_names).index("worst radius"),
    }


def _take(rng, pool_n, n, weights=None, exclude=None):
    idx = np.arange(pool_n) if exclude is None else np.setdiff1d(np.arange(pool_n), exclude)
    p = None if weights is None else weights[idx] / weights[idx].sum()
    replace = n > len(idx) or (p is not None and n > 0.5 * len(idx))
    return idx[rng.choice(len(idx), size=n, replace=replace, p=p)]


def draw(kind: str, n: int, rng: np.random.Generator, env: dict) -> tuple[dict, dict]:
    """(source representations, target representations) of one draw: input (raw shape), softmax, features."""
    from shiftkit._keras import predict, to_probabilities
    from shiftkit.shift.features import FeatureSpace

    if kind in ("gmm-label", "null-gmm"):
        model = env["gmm"]
        xs, _ = _gmm(rng, n, (1, 1, 1))
        q = (1, 1, 1) if kind == "null-gmm" else (INTENSITY[kind], (1 - INTENSITY[kind]) / 2, (1 - INTENSITY[kind]) / 2)
        xt, _ = _gmm(rng, n, q)
        fs = FeatureSpace(model)
        out = []
        for x in (xs, xt):
            x = x.astype(np.float32)
            out.append({"input": x, "softmax": to_probabilities(model, predict(model, x, batch_size=2048)),
                        "features": fs(x)})
        return out[0], out[1]
    sc: Scenario = env["bc" if kind.startswith(("bc", "null-bc")) else "digits"]
    pool = len(sc.x)
    s = _take(rng, pool, n)
    excl = s if 2 * n <= pool else None
    if kind == "bc-label" and ROUND["round"] == 1:
        w = np.where(sc.y == 0, INTENSITY[kind] / np.mean(sc.y == 0), (1 - INTENSITY[kind]) / np.mean(sc.y == 1))
        t = _take(rng, pool, n, weights=w, exclude=excl)
    elif kind == "bc-label":  # class counts at the target shares, as bench_power.py draws its label shift
        rest = np.setdiff1d(np.arange(pool), s) if excl is not None else np.arange(pool)
        counts = rng.multinomial(n, [INTENSITY[kind], 1 - INTENSITY[kind]])
        parts = []
        for k, c in enumerate(counts):
            avail = rng.permutation(rest[sc.y[rest] == k])
            parts.append(avail[:c] if c <= len(avail) else np.r_[avail, rng.choice(avail, size=c - len(avail))])
        t = rng.permutation(np.concatenate(parts))
    elif kind == "bc-covariate":
        col = sc.x[:, env["bc_col"]].astype(np.float64)
        t = _take(rng, pool, n, weights=np.exp(INTENSITY[kind] * (col - col.mean()) / col.std()), exclude=excl)
    else:
        t = _take(rng, pool, n, exclude=excl)
    src = {"input": sc.x[s]}
    src["softmax"], src["features"] = sc.reps(None, s)
    if kind == "digits-dropout":
        xt = (sc.x[t] * (rng.uniform(size=sc.x[t].shape) >= INTENSITY[kind])).astype(np.float32)
        tgt = {"input": xt}
        tgt["softmax"], tgt["features"] = sc.reps(xt, None)
    else:
        tgt = {"input": sc.x[t]}
        tgt["softmax"], tgt["features"] = sc.reps(None, t)
    return src, tgt


def one_trial(src: dict, tgt: dict, n_perm: int, seed: int) -> dict[str, float]:
    from shiftkit.shift import mmd as mmd_mod
    from shiftkit.shift.mmd_joint import LINEAR, mmd_joint_from_representations
    from shiftkit.shift.scaling import standardize

    a, b = standardize(src["input"], tgt["input"])
    linear = any(c in LINEAR_CANDIDATES for c in ACTIVE)
    reps_s = {"input": a, "softmax": src["softmax"], "features": src["features"]}
    reps_t = {"input": b, "softmax": tgt["softmax"], "features": tgt["features"]}
    factors = {r: FACTORS for r in REPS}
    if linear:  # the linear kernels after the Gaussian ones (a representation's kernels stay together)
        reps_s["logsoftmax"] = np.log(np.clip(src["softmax"], LOG_EPS, None))
        reps_t["logsoftmax"] = np.log(np.clip(tgt["softmax"], LOG_EPS, None))
        factors = {"input": FACTORS + (LINEAR,), "softmax": FACTORS + (LINEAR,), "features": FACTORS,
                   "logsoftmax": (LINEAR,)}
    res = mmd_joint_from_representations(reps_s, reps_t, factors=factors, n_permutations=n_perm, alpha=ALPHA,
                                         seed=seed)
    all_stats = np.concatenate([np.asarray(res.statistics)[:, None], res.null_statistics], axis=1)
    if linear:  # reorder to the layout of _rows/_lin: 15 Gaussian rows, then the linear ones
        order = ([i for i, k in enumerate(res.kernels) if k != LINEAR]
                 + [next(i for i, (r, k) in enumerate(zip(res.representations, res.kernels)) if r == rep and k == LINEAR)
                    for rep in LINEAR_REPS])
        all_stats = all_stats[order]
    counts = mmd_mod._rank_counts(all_stats)
    if linear:  # the combination rows (round 3): functions of every split's kernel statistics
        extra = []
        for kind, rows in DERIVED.values():
            if kind == "fisher":
                extra.append(-np.log(counts[rows] / (1.0 + n_perm)).sum(axis=0))
            else:
                sub = all_stats[rows]
                sd = sub.std(axis=1, keepdims=True)
                extra.append(((sub - sub.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)).sum(axis=0))
        all_stats = np.vstack([all_stats, np.array(extra)])
        counts = mmd_mod._rank_counts(all_stats)
    out = {}
    for name, rows in ACTIVE.items():
        cmin = counts[rows].min(axis=0)
        out[name] = (1.0 + np.count_nonzero(cmin[1:] <= cmin[0])) / (1.0 + n_perm)
    cmin = counts[:N_BASE].min(axis=0) if linear else counts.min(axis=0)
    full = (1.0 + np.count_nonzero(cmin[1:] <= cmin[0])) / (1.0 + n_perm)
    assert abs(full - res.p_value) < 1e-12  # the subset machinery is the test itself
    return out


def _rounded(tree):
    """p-values rounded to 6 decimals (a permutation p-value is k / 201; the JSON stays small)."""
    if isinstance(tree, dict):
        return {k: _rounded(v) for k, v in tree.items()}
    return [round(float(v), 6) for v in tree]


DEFAULT_NAME = "input+softmax@3"
CONFIRM_SHOWN = (DEFAULT_NAME, "input+softmax@3+lin", "input+softmax@3+loglin", "fisher8", "softmax", "softmax-lin")


def confirm(args) -> None:
    """`--confirm`: every candidate's p-value on bench_power.py's own draws (paired, the same seeds).

    Uses bench_power's data, classifier, `Draws` and per-trial permutation seeds, so the candidate that
    is the default reproduces bench_power's `joint_mmd` p-values exactly; the softmax is cast to float32
    as bench_power saves it. Writes --confirm-json (per candidate, shift, n: p-values and rates).
    """
    import bench_power
    from shiftkit._keras import predict, to_probabilities
    from shiftkit.shift.features import FeatureSpace

    ACTIVE.clear()
    ACTIVE.update(ALL_CANDIDATES)
    t0 = time.perf_counter()
    data = bench_power.load_data(args.seed)
    model = bench_power.train_model(data["x_train"], data["y_train"], args.seed)
    fs = FeatureSpace(model)
    draws = bench_power.Draws(data["x_pool"], data["y_pool"], args.seed)

    def reps(x):
        p = to_probabilities(model, predict(model, x, batch_size=2048)).astype(np.float32).astype(np.float64)
        return {"input": x, "softmax": p, "features": fs(x)}

    pvals: dict = {}
    for shift in args.shifts:
        for n in args.sizes:
            t1 = time.perf_counter()
            for trial in range(args.trials):
                xs, xt = draws.draw(shift, n, trial)
                seed = int(draws.rng(shift, n, trial).integers(2**31 - 1))
                for c, pv in one_trial(reps(xs), reps(xt), args.n_permutations, seed).items():
                    pvals.setdefault(c, {}).setdefault(shift, {}).setdefault(str(n), []).append(pv)
            print(f"{shift:>12} n={n:<4} " + " ".join(
                f"{c}={np.mean(np.asarray(pvals[c][shift][str(n)]) <= ALPHA):.2f}" for c in ACTIVE)
                + f" ({time.perf_counter() - t1:.0f} s)", file=sys.stderr)
    rates = {c: {sh: {n: float(np.mean(np.asarray(v) <= ALPHA)) for n, v in per.items()} for sh, per in d.items()}
             for c, d in pvals.items()}
    peers, check = {}, None
    if args.alibi_json:  # bench_power.py's JSON on the same draws: alibi-detect's p-values, and a check
        bench = json.loads(Path(args.alibi_json).read_text())["p_values"]
        for det in ("alibi_mmd", "alibi_ks"):
            for sh in args.shifts:
                for n in args.sizes:
                    v = bench.get(sh, {}).get(det, {}).get(str(n))
                    if v is not None and len(v) >= args.trials:
                        peers.setdefault(det, {}).setdefault(sh, {})[str(n)] = v[: args.trials]
        mine = [(sh, str(n)) for sh in args.shifts for n in args.sizes if str(n) in bench.get(sh, {}).get("joint_mmd", {})]
        check = all(np.allclose(bench[sh]["joint_mmd"][n][: args.trials], pvals[DEFAULT_NAME][sh][n]) for sh, n in mine)
        print(f"bench_power's joint_mmd p-values reproduced by {DEFAULT_NAME} in {len(mine)} cells: {check}",
              file=sys.stderr)
    shown = [c for c in CONFIRM_SHOWN if c in pvals] + list(peers)
    table = ["| shift | n | " + " | ".join(shown) + " |", "|---|---:|" + "---|" * len(shown)]
    for sh in args.shifts:
        for n in map(str, args.sizes):
            base = np.asarray(pvals[DEFAULT_NAME][sh][n]) <= ALPHA
            cells = []
            for c in shown:
                v = pvals[c][sh][n] if c in pvals else peers[c].get(sh, {}).get(n)
                if v is None:
                    cells.append("-")
                    continue
                r = np.asarray(v) <= ALPHA
                rate = r.mean()
                cells.append(f"{rate:.3f} ± {np.sqrt(rate * (1 - rate) / len(r)):.3f}"
                             + ("" if c == DEFAULT_NAME else f" (+{np.sum(r & ~base)}/-{np.sum(~r & base)})"))
            table.append(f"| {sh} | {n} | " + " | ".join(cells) + " |")
    table = "\n".join(table)
    print(table)
    Path(args.confirm_json).write_text(json.dumps(
        {"settings": {k: v for k, v in vars(args).items()}, "candidates": ACTIVE, "alpha": ALPHA, "rates": rates,
         "table_markdown": table, "bench_power_reproduced": check, "p_values": _rounded(pvals),
         "peer_p_values": _rounded(peers), "seconds": time.perf_counter() - t0}, separators=(",", ":")) + "\n")
    print(f"written {args.confirm_json} ({(time.perf_counter() - t0) / 60:.1f} min)", file=sys.stderr)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 50, 100])
    parser.add_argument("--n-permutations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--round", type=int, default=2, choices=(1, 2, 3))
    parser.add_argument("--confirm", action="store_true",
                        help="run every candidate on bench_power.py's draws (--shifts, --sizes, --trials) instead")
    parser.add_argument("--shifts", nargs="+", default=["none", "label-0.3"])
    parser.add_argument("--confirm-json", default="/tmp/joint_mmd_confirm.json")
    parser.add_argument("--alibi-json", default=None,
                        help="with --confirm: a bench_power.py JSON of the same draws (alibi-detect's p-values)")
    args = parser.parse_args(argv)
    if args.confirm:
        confirm(args)
        return
    ROUND["round"] = args.round
    ACTIVE.clear()
    ACTIVE.update(ALL_CANDIDATES if args.round == 3 else CANDIDATES)
    INTENSITY.update(INTENSITIES[args.round])
    if args.quick:
        args.trials, args.sizes = 4, [10, 50]
    t0 = time.perf_counter()
    env = build(args.seed)
    print(f"models: digits accuracy {env['digits'].accuracy:.3f}, bc {env['bc'].accuracy:.3f} "
          f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    kinds = CHOOSE + NULLS
    results: dict = {}
    for kind in kinds:
        for n in args.sizes:
            t1 = time.perf_counter()
            rej = {c: 0 for c in ACTIVE}
            for trial in range(args.trials):
                rng = np.random.default_rng([args.seed, kinds.index(kind), n, trial])
                src, tgt = draw(kind, n, rng, env)
                ps = one_trial(src, tgt, args.n_permutations, int(rng.integers(2**31 - 1)))
                for c, p in ps.items():
                    rej[c] += int(p <= ALPHA)
            results.setdefault(kind, {})[str(n)] = {c: r / args.trials for c, r in rej.items()}
            print(f"{kind:>15} n={n:<4} " + " ".join(f"{c}={r / args.trials:.2f}" for c, r in rej.items())
                  + f" ({time.perf_counter() - t1:.0f} s)", file=sys.stderr)
    limit = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / args.trials)
    calibrated = {c: all(results[k][str(n)][c] <= limit for k in NULLS for n in args.sizes) for c in ACTIVE}
    mean_power = {c: float(np.mean([results[k][str(n)][c] for k in CHOOSE for n in args.sizes])) for c in ACTIVE}
    ok = [c for c in ACTIVE if calibrated[c]]
    best = max(ok, key=lambda c: mean_power[c])
    regret = {c: max(max(results[k][str(n)].values()) - results[k][str(n)][c] for k in CHOOSE for n in args.sizes)
              for c in ACTIVE}
    if args.round == 1:
        chosen = min((c for c in ok if mean_power[c] >= mean_power[best] - 0.01),
                     key=lambda c: (len(ACTIVE[c]), -mean_power[c]))
    else:
        least = min(regret[c] for c in ok)
        chosen = min((c for c in ok if regret[c] <= least + 0.02 + 1e-12),
                     key=lambda c: (-mean_power[c], len(ACTIVE[c])))
    elapsed = time.perf_counter() - t0
    lines = ["| kind | n | " + " | ".join(ACTIVE) + " |", "|---|---:|" + "---:|" * len(ACTIVE)]
    for kind in kinds:
        for n in args.sizes:
            row = results[kind][str(n)]
            top = max(row.values()) if kind in CHOOSE else None
            cells = [(f"**{row[c]:.2f}**" if top is not None and row[c] == top else f"{row[c]:.2f}")
                     + (" (!)" if kind in NULLS and row[c] > limit else "") for c in ACTIVE]
            lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    summary = ["| candidate | kernels | mean power, choosing kinds | worst-cell regret | type-I <= alpha + 3 s.e. "
               "everywhere |", "|---|---:|---:|---:|---|"]
    for c in ACTIVE:
        summary.append(f"| {c} | {len(ACTIVE[c])} | {mean_power[c]:.3f} | {regret[c]:.2f} | "
                       f"{'yes' if calibrated[c] else 'NO'} |")
    text = (
        f"## Round {args.round}: power and type-I error (choosing kinds and nulls)\n\n"
        f"Intensities: {INTENSITY}. "
        f"alpha = {ALPHA}, {args.trials} draws per cell, {args.n_permutations} permutations, seed {args.seed}; "
        f"limit alpha + 3 s.e. = {limit:.3f} ((!) above it). Models: digits MLP (bench_power.py's, pool accuracy "
        f"{env['digits'].accuracy:.3f}), breast-cancer MLP (pool accuracy {env['bc'].accuracy:.3f}), mixture MLP. "
        f"{elapsed / 60:.1f} min on 2 shared cores.\n\n" + "\n".join(lines) + f"\n\n### Round {args.round} summary\n\n" + "\n".join(summary)
        + f"\n\nRule's choice: **{chosen}** (best mean power: {best}, {mean_power[best]:.3f}).\n"
    )
    print(text)
    if args.quick:
        return
    payload = {"settings": vars(args), "intensity": INTENSITY, "candidates": ACTIVE, "results": results,
               "mean_power": mean_power, "worst_cell_regret": regret, "calibrated": calibrated, "chosen": chosen,
               "seconds": elapsed, "accuracy": {"digits": env["digits"].accuracy, "bc": env["bc"].accuracy}}
    out = HERE / "joint_mmd_choice.json"
    saved = json.loads(out.read_text()) if out.exists() else {}
    saved = saved if "rounds" in saved else {"rounds": {}}
    saved["rounds"][str(args.round)] = payload
    out.write_text(json.dumps(saved, indent=1) + "\n")
    # joint_mmd_choice.md: one section per round (replaced when that round is rerun), the decision kept.
    from _results import write_section

    md = HERE / "joint_mmd_choice.md"
    if not md.exists():
        md.write_text("# Choosing the joint MMD test's representations (issue 12)\n\n"
                      "Produced by `benchmarks/choose_joint_mmd.py` (see its docstring for the kinds, candidates, rounds "
                      "and rules).\n")
    title = f"## Round {args.round}: power and type-I error (choosing kinds and nulls)"
    write_section(md, title, text.replace(title, title, 1))


if __name__ == "__main__":
    main()
