"""StreamMonitor on streams with a known change (issue 13): false alarms, detection delay, time per window.

A population with unlimited fresh draws (so that no-shift runs are truly unshifted: resampling a finite
held-out pool would itself be a small persistent shift): three Gaussian classes in 10 dimensions
(seeded means, unit covariance), an MLP (Dense 32 - softmax 3) trained on 4,000 source rows. For each
of `--references` references: a snapshot of 2,000 fresh labelled rows (`Reference.from_data`, with the
model), a `StreamMonitor(window=200, horizon=30, alpha=0.05)` calibrated on it, then streams of 30
windows of fresh rows:

* no shift: `--null-runs` runs per reference: false alarms per run (target: <= alpha + 3 s.e.);
* shifts starting at window 10, abrupt or gradual (a linear ramp over 10 windows), several kinds and
  sizes: a mean shift of every feature, a class-proportion (label) shift, a scale change (noise);
  `--shift-runs` runs each: detection delay in windows (alarm window - 10; runs without an alarm
  count as 30 - 10 = 20, "censored"), and runs that alarmed before the change.

The baseline is the plain per-window test: each statistic's p-value among the monitor's own null
windows, at alpha / (horizon x statistics) (Bonferroni over windows and statistics); it uses the same
null windows, so the comparison is of the sequential rule alone. Work per window (`update` of a
200-row window with a model: features, softmax, four statistics, CUSUM; and the label-proportion and
accuracy estimates) is timed separately.

    python benchmarks/bench_monitor.py --results
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "RESULTS_monitor.json"
D, K = 10, 3
WINDOW, HORIZON, ALPHA, CHANGE_AT = 200, 30, 0.05, 10
SHIFTS = {  # name -> (kind, size)
    "mean 0.10": ("mean", 0.10),
    "mean 0.25": ("mean", 0.25),
    "label 0.15": ("label", 0.15),
    "label 0.30": ("label", 0.30),
    "scale 1.15": ("scale", 0.15),
}


class Population:
    """Three Gaussian classes in D dimensions; draws with a shift of a given kind and strength."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        self.means = rng.normal(0, 1.2, size=(K, D))

    def draw(self, rng: np.random.Generator, n: int, kind: str | None = None, size: float = 0.0):
        priors = np.full(K, 1 / K)
        if kind == "label":
            priors = priors + size * np.array([1.0, -0.5, -0.5])
        y = rng.choice(K, size=n, p=priors)
        x = self.means[y] + rng.normal(size=(n, D))
        if kind == "mean":
            x = x + size
        elif kind == "scale":
            x = self.means[y] + (1 + size) * (x - self.means[y])
        return x.astype(np.float32), y


def _model(pop: Population, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng([seed, 1])
    x, y = pop.draw(rng, 4000)
    model = keras.Sequential([keras.Input((D,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(K, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=10, batch_size=64, verbose=0)
    return model


def _stream(monitor, pop, rng, kind=None, size=0.0, gradual=False) -> tuple[list[Any], float]:
    results, seconds = [], 0.0
    for w in range(HORIZON):
        if kind is None or w < CHANGE_AT:
            strength = 0.0
        elif gradual:
            strength = size * min(1.0, (w - CHANGE_AT + 1) / 10)
        else:
            strength = size
        x, y = pop.draw(rng, WINDOW, kind if strength else None, strength)
        t0 = time.perf_counter()
        results.extend(monitor.update(x))
        seconds += time.perf_counter() - t0
    return results, seconds / HORIZON


def _bonferroni_first(monitor, results) -> int | None:
    null = np.sort(monitor._null_z, axis=0)
    n, m = null.shape
    level = monitor.alpha / (monitor.horizon * m)
    for r in results:
        z = np.array([r.z[s] for s in monitor.statistics_])
        p = (1 + n - np.array([np.searchsorted(null[:, j], z[j], side="left") for j in range(m)])) / (n + 1)
        if np.any(p <= level):
            return r.window
    return None


def run(args) -> dict[str, Any]:
    import keras

    from shiftkit.check import Reference
    from shiftkit.monitor import StreamMonitor

    null_cusum, null_bonf, delays, early, per_window, calib_s, full_ms = [], [], {}, {}, [], [], []
    for ref_seed in range(args.references):
        pop = Population(ref_seed)
        model = _model(pop, ref_seed)
        rng = np.random.default_rng([ref_seed, 2])
        x_ref, y_ref = pop.draw(rng, 2000)
        ref = Reference.from_data(x_ref, y_ref, model=model, max_samples=2000, seed=ref_seed)
        t0 = time.perf_counter()
        mon_kwargs = dict(model=model, window=WINDOW, horizon=HORIZON, alpha=ALPHA, n_null_windows=args.null_windows,
                          estimate_accuracy=False, seed=ref_seed)
        proto = StreamMonitor(ref, **mon_kwargs)
        calib_s.append(time.perf_counter() - t0)

        def fresh():
            return proto.reset()  # the same calibration, a new stream

        for run_i in range(args.null_runs):
            mon = fresh()
            res, sec = _stream(mon, pop, np.random.default_rng([ref_seed, 3, run_i]))
            per_window.append(sec)
            null_cusum.append(mon.alarm_window_ is not None)
            null_bonf.append(_bonferroni_first(mon, res) is not None)
        for name, (kind, size) in SHIFTS.items():
            for gradual in (False, True):
                key = f"{name} {'gradual' if gradual else 'abrupt'}"
                for run_i in range(args.shift_runs):
                    mon = fresh()
                    res, _ = _stream(mon, pop, np.random.default_rng([ref_seed, 4, run_i, hash(key) % 1000]),
                                     kind, size, gradual)
                    for method, first in (("cusum", mon.alarm_window_), ("bonferroni", _bonferroni_first(mon, res))):
                        if first is not None and first < CHANGE_AT:
                            early.setdefault(key, {}).setdefault(method, []).append(1)
                            continue
                        early.setdefault(key, {}).setdefault(method, []).append(0)
                        delay = (HORIZON - CHANGE_AT) if first is None else first - CHANGE_AT
                        delays.setdefault(key, {}).setdefault(method, []).append(
                            (delay, first is None, mon.change_point_ if method == "cusum" else None))
        # the whole per-window work, with label-proportion and accuracy estimates
        full = StreamMonitor(ref, **{**mon_kwargs, "estimate_accuracy": True, "n_null_windows": 50})
        rng = np.random.default_rng([ref_seed, 5])
        xs = [pop.draw(rng, WINDOW)[0] for _ in range(10)]
        for x in xs:
            t0 = time.perf_counter()
            full.update(x)
            full_ms.append(1000 * (time.perf_counter() - t0))
        keras.backend.clear_session()
    return {"null_cusum": null_cusum, "null_bonferroni": null_bonf, "delays": delays, "early": early,
            "per_window_s": per_window, "calibration_s": calib_s, "full_window_ms": full_ms,
            "statistics": list(proto.statistics_), "threshold_example": proto.threshold_}


def report(out: dict[str, Any], args) -> str:
    n = len(out["null_cusum"])
    se = np.sqrt(ALPHA * (1 - ALPHA) / n)
    fa_c, fa_b = np.mean(out["null_cusum"]), np.mean(out["null_bonferroni"])
    lines = [
        "## Monitoring a stream (bench_monitor.py)", "",
        f"- Command: `python benchmarks/bench_monitor.py --references {args.references} --null-runs {args.null_runs} "
        f"--shift-runs {args.shift_runs} --results`; {platform.machine()}; window {WINDOW} rows, horizon {HORIZON} "
        f"windows, alpha {ALPHA}, change at window {CHANGE_AT}; statistics {', '.join(out['statistics'])}; "
        f"{args.null_windows} null windows per monitor.",
        f"- False alarms per run of {HORIZON} windows without shift ({n} runs over {args.references} references): "
        f"CUSUM monitor {fa_c:.3f}, per-window Bonferroni {fa_b:.3f} (target <= alpha + 3 s.e. = "
        f"{ALPHA + 3 * se:.3f}: {'PASS' if fa_c <= ALPHA + 3 * se else 'FAIL'}).", "",
        "| shift | CUSUM: mean delay (windows) | censored | alarms before the change | change point error (mean abs) "
        "| Bonferroni: mean delay | censored | before the change |",
        "|---|---|---|---|---|---|---|---|",
    ]
    wins = 0
    for key, by in out["delays"].items():
        c, b = by.get("cusum", []), by.get("bonferroni", [])
        dc = np.mean([d for d, _, _ in c]) if c else float("nan")
        db = np.mean([d for d, _, _ in b]) if b else float("nan")
        cp = [abs(p - CHANGE_AT) for _, cens, p in c if not cens and p is not None]
        wins += dc < db
        lines.append(
            f"| {key} | {dc:.2f} | {sum(x for _, x, _ in c)}/{len(c)} | {sum(out['early'][key]['cusum'])} | "
            f"{np.mean(cp) if cp else float('nan'):.2f} | {db:.2f} | {sum(x for _, x, _ in b)}/{len(b)} | "
            f"{sum(out['early'][key]['bonferroni'])} |")
    pw = 1000 * np.median(out["per_window_s"])
    lines += [
        "",
        f"- Shorter mean delay than the per-window Bonferroni test on {wins} of {len(out['delays'])} shifts.",
        f"- Work per {WINDOW}-row window: median {pw:.1f} ms (four statistics, CUSUM); with the label-proportion "
        f"(EM) and accuracy (bootstrap) estimates median {np.median(out['full_window_ms']):.1f} ms, max "
        f"{np.max(out['full_window_ms']):.1f} ms (target <= 50 ms: "
        f"{'PASS' if np.median(out['full_window_ms']) <= 50 else 'FAIL'}). Calibration per monitor: "
        f"{np.mean(out['calibration_s']):.1f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--null-runs", type=int, default=50)
    parser.add_argument("--shift-runs", type=int, default=10)
    parser.add_argument("--null-windows", type=int, default=3000,
                        help="null windows per monitor (>= horizon x statistics / alpha, for the Bonferroni baseline)")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON)
    parser.add_argument("--results", action="store_true", help="write the section into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.references, args.null_runs, args.shift_runs, args.null_windows = 1, 3, 1, 200
    out = run(args)
    text = report(out, args)
    print(text)
    args.json.write_text(json.dumps(out, indent=1, default=float))
    if args.results:
        sys.path.insert(0, str(HERE))
        from _results import write_section

        write_section(HERE / "RESULTS.md", "## Monitoring a stream (bench_monitor.py)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
