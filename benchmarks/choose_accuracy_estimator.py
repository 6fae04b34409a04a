"""How `AccuracyEstimator`'s fallback, ESS bar and interval sets were chosen (issue 13).

Reads the per-cell arrays `bench_accuracy_estimation.py` saves in `benchmarks/acc_cells/` (gitignored:
run the benchmark first) and re-estimates each cell under alternative rules, without retraining:

* the fallback where no estimator is consistent ("atc" vs "doc"),
* the ESS bar of the importance weights (`min_ess_fraction`), with input-space or feature-space weights,
* which estimators' point estimates the interval covers under covariate shift (with or without the
  source accuracy).

Rules are CHOSEN on the choosing scenarios and CONFIRMED on the others (printed separately).

    python benchmarks/choose_accuracy_estimator.py
"""

from __future__ import annotations

import collections
import glob
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHOOSING = ("digits-blur", "gru-placement", "hospitals-prior", "digits-label")


def load() -> list[tuple[str, dict]]:
    cells = []
    for f in sorted(glob.glob(str(HERE / "acc_cells" / "*.npz"))):
        d = np.load(f)
        cells.append((Path(f).stem.rsplit("-", 1)[0], {k: d[k] for k in d.files}))
    if not cells:
        sys.exit("no cells in benchmarks/acc_cells/: run benchmarks/bench_accuracy_estimation.py first")
    return cells


def evaluate(cells, *, fallback, plausible_patch, ess, weights_key):
    import shiftkit.shift.accuracy as acc

    saved = (acc.FALLBACK, dict(acc._PLAUSIBLE))
    acc.FALLBACK = fallback
    acc._PLAUSIBLE.update(plausible_patch)
    per = collections.defaultdict(list)
    try:
        for name, d in cells:
            kinds = tuple(k for k in d["kinds"] if k)
            truth = float(np.mean(d["p_t"].argmax(1) == d["y_t"]))
            r = acc.AccuracyEstimator(seed=0, n_bootstrap=100, min_ess_fraction=min(ess, 1.0)).fit(
                d["p_val"], d["y_val"]).estimate(d["p_t"], kinds=kinds,
                                                 source_weights=None if ess > 1 else d[weights_key])
            per[name].append((abs(r.accuracy - truth), r.lower <= truth <= r.upper, r.upper - r.lower,
                              abs(r.estimates["source"] - truth)))
    finally:
        acc.FALLBACK = saved[0]
        acc._PLAUSIBLE.clear()
        acc._PLAUSIBLE.update(saved[1])
    out = []
    for group, names in (("choosing", [n for n in per if n in CHOOSING]),
                         ("confirming", [n for n in per if n not in CHOOSING]), ("all", list(per))):
        mae = np.mean([np.mean([x[0] for x in per[n]]) for n in names])
        naive = np.mean([np.mean([x[3] for x in per[n]]) for n in names])
        cover = np.mean([x[1] for n in names for x in per[n]])
        width = np.mean([x[2] for n in names for x in per[n]])
        out.append(f"{mae:.3f} ({mae / naive:.2f}x naive), cover {cover:.2f}, width {width:.2f}")
    return out


def main() -> int:
    cells = load()
    with_source = {"covariate": ("importance", "atc", "doc", "source"),
                   "covariate+label": ("importance", "atc", "doc", "label_shift", "source"),
                   "unknown": ("atc", "doc", "label_shift", "importance", "source")}
    without_source = {"covariate": ("importance", "atc", "doc"),
                      "covariate+label": ("importance", "atc", "doc", "label_shift"),
                      "unknown": ("atc", "doc", "label_shift", "importance")}
    rows = []
    for fallback in ("atc", "doc"):
        for label, patch in (("+source", with_source), ("no source", without_source)):
            for wkey in ("w_input", "w_features"):
                for ess in (0.1, 0.2, 0.3, 0.5, 2.0):
                    rule = f"{fallback} | {label} | {wkey} | ess {'none' if ess > 1 else ess}"
                    rows.append((rule, evaluate(cells, fallback=fallback, plausible_patch=patch, ess=ess,
                                                weights_key=wkey)))
    print(f"{len(cells)} cells; choosing: {', '.join(CHOOSING)}\n")
    print("| fallback, interval covers, weights, ESS bar | choosing: MAE, coverage, width | confirming | all |")
    print("|---|---|---|---|")
    for rule, (a, b, c) in rows:
        print(f"| {rule} | {a} | {b} | {c} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
