"""Benchmark of `shiftkit.shift.mmd_rff.rff_mmd_test`, the random-Fourier-feature MMD test (issue 12, "Large n").

What it measures:
    * `--section features` (how the default `n_features` was chosen): power at alpha = 0.05 of
      `rff_mmd_test` with D in {32, 64, 128, 256, 512} random frequencies, and of the exact
      `mmd_test` (same median-heuristic pooled bandwidth, same permutations), over `--draws`
      seeded draws, n = m = 300, d = 8, for four shift kinds: a mean shift (0.15 sd on two
      coordinates) and a variance change (sd 1.1 on all coordinates) CHOOSE D; a correlation
      change (equicorrelation 0.2, unit variances) and heavy tails (Student t, 3 df, rescaled to
      unit variance) CONFIRM it. Each is sized so that the exact test has power about 0.3 - 0.8
      (probed on 20 other draws). Plus the type-I error of every test on the null.
    * `--section large` (the issue's target): n = m = 1,000,000, d = 32, 1000 permutations, default
      settings: wall time, CPU time, peak RSS of the process (TensorFlow import and the 512 MiB of
      data included) and the peak extra RSS of the test call itself; p-values on `--large-draws`
      seeded null draws and shifted draws (mean shift `--shift` sd on the first coordinate). The
      comparison: the exact `mmd_test` (1000 permutations would take hours here; it uses
      `--exact-permutations`, default 200, which changes its p-value's resolution, not its power
      at alpha = 0.05 materially) on a seeded subsample of 20,000 rows PER SIDE of the same draws,
      and `rff_mmd_test` on that same subsample (the approximation's own cost in power).

How it measures: in this process, after importing shiftkit and generating the data; `Meter`
(benchmarks/_measure.py) brackets each timed call (wall, CPU, peak extra RSS via
/proc/self/clear_refs, other processes' CPU share). Run it niced on a shared machine.

Usage:
    nice -n 5 python benchmarks/bench_rff.py                      # both sections, writes RESULTS_rff.json
    python benchmarks/bench_rff.py --section features --draws 100
    python benchmarks/bench_rff.py --section large --large-draws 3
    python benchmarks/bench_rff.py --quick                        # smoke run: small sizes, seconds
    python benchmarks/bench_rff.py --section table                # the table of RESULTS_rff.json
Prints a markdown table; the JSON goes to benchmarks/RESULTS_rff.json (`--out`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _measure import Meter, rss_kib  # noqa: E402
from _results import machine_info  # noqa: E402

from shiftkit.shift import mmd_test  # noqa: E402
from shiftkit.shift.mmd_rff import DEFAULT_N_FEATURES, rff_mmd_test  # noqa: E402

HERE = Path(__file__).resolve().parent
ALPHA = 0.05


def _peak_rss_mib() -> float:
    """Peak RSS of this process since start (or since the last peak reset), MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------
# Section "features": power against D, and the exact test
# ------------------------------------------------------------------------------------------


def _draw(kind: str, n: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, d))
    if kind == "null":
        y = rng.standard_normal((n, d))
    elif kind == "mean":
        y = rng.standard_normal((n, d))
        y[:, :2] += 0.15
    elif kind == "variance":
        y = 1.1 * rng.standard_normal((n, d))
    elif kind == "correlation":  # equicorrelation 0.2, unit variances
        rho = 0.2
        y = np.sqrt(1 - rho) * rng.standard_normal((n, d)) + np.sqrt(rho) * rng.standard_normal((n, 1))
    elif kind == "heavy_tails":
        df = 3
        y = rng.standard_t(df, size=(n, d)) / np.sqrt(df / (df - 2))
    else:
        raise ValueError(kind)
    return x, y


def section_features(draws: int, n: int, d: int, features: list[int], permutations: int) -> dict:
    kinds = {"null": "type-I", "mean": "choose", "variance": "choose", "correlation": "confirm", "heavy_tails": "confirm"}
    rows = []
    for kind, role in kinds.items():
        hits = {f"rff_D{D}": 0 for D in features}
        hits["exact"] = 0
        seconds = {k: 0.0 for k in hits}
        for i in range(draws):
            x, y = _draw(kind, n, d, np.random.default_rng([17, i, len(kind)]))
            for D in features:
                t0 = time.perf_counter()
                hits[f"rff_D{D}"] += rff_mmd_test(x, y, n_features=D, n_permutations=permutations, seed=i).is_shift
                seconds[f"rff_D{D}"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            hits["exact"] += mmd_test(x, y, n_permutations=permutations, seed=i).is_shift
            seconds["exact"] += time.perf_counter() - t0
        row = {"kind": kind, "role": role, "draws": draws}
        row.update({k: v / draws for k, v in hits.items()})
        row["mean_seconds"] = {k: v / draws for k, v in seconds.items()}
        rows.append(row)
        print(f"  {kind:12s} ({role:7s}) " + "  ".join(f"{k}={row[k]:.2f}" for k in hits), flush=True)
    return {"n_per_side": n, "d": d, "permutations": permutations, "alpha": ALPHA, "rows": rows,
            "se_at_0.5": float(np.sqrt(0.25 / draws))}


# ------------------------------------------------------------------------------------------
# Section "large": 10^6 rows per side
# ------------------------------------------------------------------------------------------


def section_large(n: int, d: int, permutations: int, draws: int, shift: float, sub: int,
                  exact_permutations: int, skip_exact: bool) -> dict:
    out: dict = {"n_per_side": n, "d": d, "permutations": permutations, "shift_sd": shift,
                 "subsample_per_side": sub, "exact_permutations": exact_permutations, "draws": []}
    x = np.empty((n, d))
    y = np.empty((n, d))
    out["rss_after_import_and_data_mib"] = None
    for kind in ("null", "shift"):
        for i in range(draws):
            rng = np.random.default_rng([2026, i, kind == "shift"])
            rng.standard_normal(out=x)
            rng.standard_normal(out=y)
            if kind == "shift":
                y[:, 0] += shift
            if out["rss_after_import_and_data_mib"] is None:
                out["rss_after_import_and_data_mib"] = rss_kib() / 1024
            with Meter() as meter:
                res = rff_mmd_test(x, y, n_permutations=permutations, seed=i)
            rec = {"kind": kind, "seed": i, "seconds": meter.wall, **meter.as_dict(),
                   "process_peak_rss_mib": _peak_rss_mib(),
                   "p_value": res.p_value, "is_shift": res.is_shift, "z_score": res.z_score,
                   "statistic": res.statistic, "bandwidth": res.bandwidth, "n_features": res.n_features,
                   "block_size": res.block_size, "n_units": res.n_units}
            if i == 0 and kind == "null":
                out["approximation"] = res.approximation
                out["exactness"] = res.exactness
                out["computation"] = res.computation
            idx = np.sort(np.random.default_rng([7, i]).choice(n, size=min(sub, n), replace=False))
            xs, ys = x[idx], y[idx]
            sub_rff = rff_mmd_test(xs, ys, n_permutations=permutations, seed=i)
            rec["subsample_rff_p_value"] = sub_rff.p_value
            if not skip_exact and kind == "shift":  # the exact test's level is tested elsewhere
                t0 = time.perf_counter()
                ex = mmd_test(xs, ys, n_permutations=exact_permutations, seed=i)
                rec["subsample_exact_seconds"] = time.perf_counter() - t0
                rec["subsample_exact_p_value"] = ex.p_value
            out["draws"].append(rec)
            print(f"  {kind} draw {i}: {meter.wall:.1f} s, peak extra RSS {meter.peak_extra_mib:.0f} MiB, "
                  f"process peak {rec['process_peak_rss_mib']:.0f} MiB, others busy {meter.others_busy:.0%}, "
                  f"p={res.p_value:.4f} (z={res.z_score:.1f}); subsample: rff p={sub_rff.p_value:.4f}"
                  + ("" if "subsample_exact_p_value" not in rec else f", exact p={rec['subsample_exact_p_value']:.4f} "
                     f"({rec['subsample_exact_seconds']:.0f} s)"), flush=True)
    return out


def _rate(draws: list[dict], kind: str, key: str) -> str:
    sel = [r[key] for r in draws if r["kind"] == kind and key in r]
    if not sel:
        return "-"
    return f"{sum(p <= ALPHA for p in sel)}/{len(sel)}"


def markdown(results: dict) -> str:
    lines = []
    if "features" in results:
        f = results["features"]
        cols = [k for k in f["rows"][0] if k.startswith("rff_D")] + ["exact"]
        lines.append(f"Power at alpha = {ALPHA} (n = m = {f['n_per_side']}, d = {f['d']}, {f['permutations']} "
                     f"permutations, {f['rows'][0]['draws']} seeded draws; s.e. <= {f['se_at_0.5']:.2f}):")
        lines.append("")
        lines.append("| shift | role | " + " | ".join(c.replace("rff_D", "RFF D=") for c in cols) + " |")
        lines.append("|---|---|" + "---|" * len(cols))
        for r in f["rows"]:
            lines.append(f"| {r['kind']} | {r['role']} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")
        lines.append("")
    if "large" in results:
        g = results["large"]
        draws = g["draws"]
        secs = [r["seconds"] for r in draws]
        lines.append(f"n = m = {g['n_per_side']:,}, d = {g['d']}, {g['permutations']} permutations, default "
                     f"rff_mmd_test (D = {draws[0]['n_features']}, blocks of {draws[0]['block_size']} rows, "
                     f"{draws[0]['n_units']} units):")
        lines.append("")
        lines.append("| figure | value |")
        lines.append("|---|---|")
        lines.append(f"| wall time per test (s), min / max over {len(secs)} | {min(secs):.1f} / {max(secs):.1f} |")
        lines.append(f"| CPU time per test (s), max | {max(r['cpu_seconds'] for r in draws):.1f} |")
        lines.append(f"| other processes' CPU share during the tests, max | "
                     f"{max(r['others_busy'] for r in draws):.0%} |")
        lines.append(f"| peak extra RSS of the test call (MiB), max | "
                     f"{max(r['peak_extra_rss_mib'] for r in draws):.0f} |")
        lines.append(f"| RSS before the call: TF import + 2 x {g['n_per_side']:,} x {g['d']} float64 (MiB) | "
                     f"{g['rss_after_import_and_data_mib']:.0f} |")
        lines.append(f"| peak RSS of the whole process (MiB) | {max(r['process_peak_rss_mib'] for r in draws):.0f} |")
        lines.append(f"| rejections at {ALPHA}, null draws: RFF full n | {_rate(draws, 'null', 'p_value')} |")
        lines.append(f"| rejections, mean shift {g['shift_sd']} sd: RFF full n | {_rate(draws, 'shift', 'p_value')} |")
        lines.append(f"| rejections, mean shift: exact mmd_test on {g['subsample_per_side']:,}/side subsample | "
                     f"{_rate(draws, 'shift', 'subsample_exact_p_value')} |")
        lines.append(f"| rejections, mean shift: RFF on the same subsample | "
                     f"{_rate(draws, 'shift', 'subsample_rff_p_value')} |")
        lines.append(f"| rejections, null: RFF on the subsample | {_rate(draws, 'null', 'subsample_rff_p_value')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--section", choices=["features", "large", "all", "table"], default="all",
                    help="'table': print the markdown table of the JSON on disk, run nothing")
    ap.add_argument("--draws", type=int, default=100, help="draws per shift kind in 'features'")
    ap.add_argument("--large-n", type=int, default=1_000_000)
    ap.add_argument("--large-draws", type=int, default=3)
    ap.add_argument("--shift", type=float, default=0.03, help="mean shift (sd) in 'large'")
    ap.add_argument("--subsample", type=int, default=20_000)
    ap.add_argument("--exact-permutations", type=int, default=200)
    ap.add_argument("--skip-exact", action="store_true")
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS_rff.json")
    args = ap.parse_args()
    if args.quick:
        args.draws, args.large_n, args.large_draws, args.subsample = 5, 20_000, 1, 2_000
    results: dict = {"date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
                     "default_n_features": DEFAULT_N_FEATURES, "alpha": ALPHA, "quick": args.quick}
    if args.section in ("features", "all"):
        print("Section features: power vs number of random frequencies D")
        results["features"] = section_features(args.draws, 300, 8, [32, 64, 128, 256, 512], 200)
    if args.section in ("large", "all"):
        print(f"Section large: n = m = {args.large_n:,}")
        results["large"] = section_large(args.large_n, 32, 1000, args.large_draws, args.shift, args.subsample,
                                         args.exact_permutations, args.skip_exact)
    if args.section == "table":  # the table of the sections on disk
        results = json.loads(args.out.read_text())
    elif args.out and not args.quick:  # keep the other section's figures on disk
        previous = json.loads(args.out.read_text()) if args.out.exists() else {}
        previous.update(results)
        results = previous
    table = markdown(results)
    if args.section != "table" and args.out and not args.quick:
        results["markdown"] = table
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    print()
    print(table)


if __name__ == "__main__":
    main()
