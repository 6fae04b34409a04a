"""Run alibi-detect's MMDDrift and KSDrift on the softmax draws saved by `bench_power.py` (helper).

alibi-detect 0.13 pins numpy < 2 and tensorflow < 2.19, so it lives in its own virtualenv
(`benchmarks/.venv-alibi`) and `bench_power.py` starts this file with that venv's python:

    benchmarks/.venv-alibi/bin/python benchmarks/_alibi_power_runner.py --data DRAWS.npz --out OUT.json

`DRAWS.npz` holds, per cell, arrays "SHIFT|N|ps" and "SHIFT|N|pt" of shape (trials, N, K): the
source classifier's softmax on each trial's source and target sample. Both detectors are used as
their documentation shows, with their defaults apart from the level and the permutations:
`MMDDrift(ps, backend="tensorflow", p_val=alpha, n_permutations=P).predict(pt)` (GaussianRBF kernel,
bandwidth by its median heuristic on the reference) and `KSDrift(ps, p_val=alpha).predict(pt)`
(feature-wise KS, Bonferroni). numpy and tensorflow are seeded per trial (alibi's permutations).

Writes OUT.json: {"p_values": {"SHIFT|N|alibi_mmd": [...], "SHIFT|N|alibi_ks": [...]}, "info": {...}}.
MMDDrift's p-value is stored as the exact permutation p-value (P p_val + 1) / (P + 1) (alibi's p_val
has no +1), so that "p <= alpha" reproduces alibi's own decision `is_drift` (p_val < alpha).
KSDrift's dataset-level decision is `is_drift` (min p <= alpha / K); its p-value here is the
Bonferroni-corrected minimum min(1, K min_j p_j), so that "p <= alpha" reproduces the decision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--n-permutations", type=int, default=100)
    parser.add_argument("--mmd-max-n", type=int, default=10**9, help="MMDDrift only at n <= this (KSDrift at every n)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import alibi_detect
    import numpy as np
    import tensorflow as tf
    from alibi_detect.cd import KSDrift, MMDDrift

    data = np.load(args.data)
    cells = sorted({k.rsplit("|", 1)[0] for k in data.files})
    out: dict[str, list[float]] = {}
    seconds = {"alibi_mmd": 0.0, "alibi_ks": 0.0}
    disagreements = mmd_disagreements = 0
    for cell in cells:
        ps_all, pt_all = data[cell + "|ps"], data[cell + "|pt"]
        mmd_p, ks_p = [], []
        run_mmd = int(cell.rsplit("|", 1)[1]) <= args.mmd_max_n
        for trial in range(len(ps_all)):
            ps, pt = ps_all[trial], pt_all[trial]
            np.random.seed(trial)
            tf.random.set_seed(trial)
            if run_mmd:
                t0 = time.perf_counter()
                res = MMDDrift(ps, backend="tensorflow", p_val=args.alpha,
                               n_permutations=args.n_permutations).predict(pt)
                seconds["alibi_mmd"] += time.perf_counter() - t0
                # alibi's p_val is #{permuted >= observed} / P and its decision `p_val < alpha`; stored as the
                # exact permutation p-value (P p + 1) / (P + 1), "p <= alpha" reproduces that decision at alpha 0.05
                # (the raw p_val counted with "<=" gave MMDDrift extra rejections at exactly p = alpha)
                p_exact = (args.n_permutations * float(res["data"]["p_val"]) + 1) / (args.n_permutations + 1)
                mmd_disagreements += int((p_exact <= args.alpha) != bool(res["data"]["is_drift"]))
                mmd_p.append(p_exact)
            t0 = time.perf_counter()
            ks = KSDrift(ps, p_val=args.alpha).predict(pt)
            seconds["alibi_ks"] += time.perf_counter() - t0
            pk = np.asarray(ks["data"]["p_val"], dtype=np.float64)
            p_corr = float(min(1.0, len(pk) * pk.min()))
            disagreements += int((p_corr <= args.alpha) != bool(ks["data"]["is_drift"]))
            ks_p.append(p_corr)
        if run_mmd:
            out[cell + "|alibi_mmd"] = mmd_p
        out[cell + "|alibi_ks"] = ks_p
    info = {
        "versions": {"alibi-detect": alibi_detect.__version__, "tensorflow": tf.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "n_permutations": args.n_permutations,
        "mmd_max_n": args.mmd_max_n,
        "seconds": seconds,
        "ks_decision_disagreements": disagreements,
        "mmd_decision_disagreements": mmd_disagreements,
    }
    with open(args.out, "w") as fh:
        json.dump({"p_values": out, "info": info}, fh)


if __name__ == "__main__":
    main()
