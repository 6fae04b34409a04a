"""StreamMonitor vs a per-window MMD permutation test, at the same false-alarm rate (issue 13).

A population with unlimited fresh draws (so that no-shift runs are truly unshifted: resampling a finite
held-out pool would itself be a small persistent shift): three Gaussian classes in 10 dimensions
(seeded means, unit covariance), an MLP (Dense 32 - softmax 3) trained on 4,000 source rows. For each
of `--references` references: a snapshot of 2,000 fresh labelled rows (`Reference.from_data`, with the
model) and, calibrated on it, two `StreamMonitor`s (window 200 rows, horizon 30 windows, alpha 0.05):

* ``cusum (all)``: the default monitor, every statistic (input and feature MMD, BBSD, predicted classes);
* ``cusum (input)``: the input-space MMD statistic alone (the monitor without the model): the same
  information as the baseline, so that the comparison is of the sequential rule alone.

The baseline, ``per-window MMD``: each window gets a real permutation test, `shiftkit.shift.mmd_test`
of the window's standardised rows against the snapshot rows the monitor compares with
(`StreamMonitor.reference_rows_`), with the monitor's fixed bandwidth (`Reference.bandwidth`, one
Gaussian kernel) and `permutations_for(alpha / 30)` permutations (in two stages for time: a window whose
p-value after 99 permutations is above 0.05 stops there, far above every level compared); nominally it
alarms at the first window with p <= alpha / 30 (Bonferroni over the windows of a run).

Streams of 30 windows of fresh rows; shifts start at window 10, abrupt or gradual (a linear ramp over
10 windows): a mean shift of every feature, a class-proportion (label) shift, a scale change.

**Equal false-alarm rates.** Each detector's nominal threshold gives its own false-alarm rate, and a
comparison of delays at unequal rates says little. So every detector is also *calibrated empirically*:
on `--null-calib` unshifted runs per reference (pooled over references), the CUSUM threshold is set to
the largest-score quantile and the per-window test's level to the smallest-p-value quantile such that at
most a share `alpha` of those runs alarm; the false-alarm rate is then measured on `--null-eval`
*other* unshifted runs, and the detection delays (alarm window - 10; a run without an alarm counts as
20, censored; runs that alarm before the change are counted apart) on the shifted runs, with standard
errors over runs. The table at the nominal thresholds is given too. Work per window (`update` of a
200-row window with a model, and with the label-proportion and accuracy estimates) is timed separately.

    python benchmarks/bench_monitor.py --results          # about 15 min of one core
    python benchmarks/bench_monitor.py --quick            # smoke run, about 2 min
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's shiftkit, also when the package is not installed
RESULTS_JSON = HERE / "RESULTS_monitor.json"
TITLE = "## Monitoring a stream (bench_monitor.py)"
D, K = 10, 3
WINDOW, HORIZON, ALPHA, CHANGE_AT = 200, 30, 0.05, 10
CENSORED = HORIZON - CHANGE_AT
SHIFTS = {  # name -> (kind, size)
    "mean 0.10": ("mean", 0.10),
    "mean 0.25": ("mean", 0.25),
    "label 0.15": ("label", 0.15),
    "label 0.30": ("label", 0.30),
    "scale 1.15": ("scale", 0.15),
}
MONITORS = ("cusum (all)", "cusum (input)")
SCREEN_PERMUTATIONS, SCREEN_P = 99, 0.05  # the baseline's first stage (Setup.baseline_p)
BASELINE = "per-window MMD"
DETECTORS = MONITORS + (BASELINE,)


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


class Setup:
    """One reference: population, model, snapshot, the two monitors and the baseline's reference rows."""

    def __init__(self, ref_seed: int, null_windows: int) -> None:
        from shiftkit.check import Reference
        from shiftkit.monitor import StreamMonitor

        self.seed = ref_seed
        self.pop = Population(ref_seed)
        self.model = _model(self.pop, ref_seed)
        x_ref, y_ref = self.pop.draw(np.random.default_rng([ref_seed, 2]), 2000)
        self.ref = Reference.from_data(x_ref, y_ref, model=self.model, max_samples=2000, seed=ref_seed)
        self.kwargs = dict(model=self.model, window=WINDOW, horizon=HORIZON, alpha=ALPHA,
                           n_null_windows=null_windows, estimate_accuracy=False, seed=ref_seed)
        t0 = time.perf_counter()
        self.monitors = {"cusum (all)": StreamMonitor(self.ref, **self.kwargs),
                         "cusum (input)": StreamMonitor(self.ref, **{**self.kwargs, "model": None})}
        self.calibration_s = (time.perf_counter() - t0) / 2
        rows = self.monitors["cusum (all)"].reference_rows_
        self.ref_in = self.ref.standardize(self.ref.x[rows]).reshape(len(rows), -1)
        self.bandwidth = float(self.ref.bandwidth)

    def windows(self, rng: np.random.Generator, kind: str | None = None, size: float = 0.0,
                gradual: bool = False) -> list[np.ndarray]:
        out = []
        for w in range(HORIZON):
            if kind is None or w < CHANGE_AT:
                strength = 0.0
            elif gradual:
                strength = size * min(1.0, (w - CHANGE_AT + 1) / 10)
            else:
                strength = size
            out.append(self.pop.draw(rng, WINDOW, kind if strength else None, strength)[0])
        return out

    def baseline_p(self, x: np.ndarray, seed: int) -> float:
        """p-value of the per-window permutation MMD test of `x` against the monitor's reference rows.

        Sequential in two stages (Besag and Clifford 1991), for time: 99 permutations first; a window
        with p > `SCREEN_P` there is not permuted further (its p-value is far above every level it is
        compared with: a true p of 0.005 passes the screen with probability 0.998), the others get the
        full `permutations_for(alpha / 30)` permutations, whose p-value is returned.
        """
        from shiftkit.shift.mmd import mmd_test, permutations_for

        level = ALPHA / HORIZON
        xt = self.ref.standardize(x).reshape(len(x), -1)
        kw = dict(bandwidth=self.bandwidth, seed=seed, check_input=False)
        first = mmd_test(self.ref_in, xt, alpha=SCREEN_P, n_permutations=SCREEN_PERMUTATIONS, **kw).p_value
        if first > SCREEN_P:
            return float(first)
        return float(mmd_test(self.ref_in, xt, alpha=level, n_permutations=permutations_for(level, 1000), **kw).p_value)


def _progress(what: str, t_start: float) -> None:
    print(f"[{(time.perf_counter() - t_start) / 60:5.1f} min] {what}", file=sys.stderr, flush=True)


def _cusum_trace(mon, windows: list[np.ndarray]) -> tuple[list[float], list[dict[str, float]], float]:
    """Scores and CUSUMs of one run (the monitor reset first) and the seconds per window."""
    mon.reset()
    t0 = time.perf_counter()
    for x in windows:
        mon.update(x)
    sec = (time.perf_counter() - t0) / len(windows)
    return [r.score for r in mon.results_], [r.cusum for r in mon.results_], sec


def _first_over(scores: list[float], h: float) -> int | None:
    return next((i for i, s in enumerate(scores) if s > h), None)


def _change_point(cusums: list[dict[str, float]], alarm: int) -> int:
    """The CUSUM's change-point estimate at an alarm: one after the alarming statistic's last zero."""
    stat = max(cusums[alarm], key=lambda s: cusums[alarm][s])
    last_zero = max((i for i in range(alarm + 1) if cusums[i][stat] == 0.0), default=-1)
    return last_zero + 1


def _p_trace(setup: Setup, windows: list[np.ndarray], seed: list[int], stop: float | None) -> list[float]:
    """Per-window p-values, up to the first one <= `stop` (None: every window)."""
    ps = []
    for w, x in enumerate(windows):
        ps.append(setup.baseline_p(x, int(np.random.default_rng(seed + [w]).integers(2**31 - 1))))
        if stop is not None and ps[-1] <= stop:
            break
    return ps


def _first_p(ps: list[float], level: float) -> int | None:
    return next((i for i, p in enumerate(ps) if p <= level), None)


def _calibrate(max_scores: dict[str, list[float]], min_ps: list[float], rate: float, n_perm: int) -> tuple[dict, int]:
    """Thresholds at which at most `floor(rate x runs)` calibration runs alarm."""
    n = len(min_ps)
    k = int(math.floor(rate * n))
    out = {}
    for det, scores in max_scores.items():
        out[det] = float(np.sort(scores)[::-1][k])  # alarm: score > h; the (k+1)-th largest max score
    # alarm: p <= level; just below the (k+1)-th smallest min p-value (p-values lie on a grid of 1 / (B + 1))
    out[BASELINE] = float(np.sort(min_ps)[k] - 0.5 / (n_perm + 1))
    return out, k


def run(args) -> dict[str, Any]:
    import keras

    from shiftkit.monitor import StreamMonitor
    from shiftkit.shift.mmd import permutations_for

    n_perm = permutations_for(ALPHA / HORIZON, 1000)
    nominal_level = ALPHA / HORIZON
    t_start = time.perf_counter()
    setups = [Setup(s, args.null_windows) for s in range(args.references)]
    # 1. calibration runs: every window of every run
    calib = {"max_score": {d: [] for d in MONITORS}, "min_p": []}
    per_window = []
    for st in setups:
        for i in range(args.null_calib):
            wins = st.windows(np.random.default_rng([st.seed, 3, i]))
            for det in MONITORS:
                scores, _, sec = _cusum_trace(st.monitors[det], wins)
                calib["max_score"][det].append(max(scores))
                if det == "cusum (all)":
                    per_window.append(sec)
            calib["min_p"].append(min(_p_trace(st, wins, [st.seed, 3, i], None)))
        _progress(f"calibration runs of reference {st.seed} done", t_start)
    thresholds, k = _calibrate(calib["max_score"], calib["min_p"], ALPHA, n_perm)
    stop = min(thresholds[BASELINE], nominal_level)

    def detect(st: Setup, wins: list[np.ndarray], seed: list[int]) -> dict[str, dict[str, Any]]:
        """First alarm window of each detector, calibrated and nominal (None: no alarm)."""
        out: dict[str, dict[str, Any]] = {}
        for det in MONITORS:
            scores, cusums, _ = _cusum_trace(st.monitors[det], wins)
            cal = _first_over(scores, thresholds[det])
            nom = _first_over(scores, st.monitors[det].threshold_)
            out[det] = {"calibrated": cal, "nominal": nom,
                        "change_point": None if cal is None else _change_point(cusums, cal)}
        ps = _p_trace(st, wins, seed, stop)
        out[BASELINE] = {"calibrated": _first_p(ps, thresholds[BASELINE]), "nominal": _first_p(ps, nominal_level),
                         "change_point": None}
        return out

    # 2. other null runs: the false-alarm rate at each operating point
    null_eval = []
    for st in setups:
        for i in range(args.null_eval):
            null_eval.append(detect(st, st.windows(np.random.default_rng([st.seed, 5, i])), [st.seed, 5, i]))
        _progress(f"null runs of reference {st.seed} done", t_start)
    # 3. shifted runs
    shifted: dict[str, list] = {}
    for st in setups:
        for j, (name, (kind, size)) in enumerate(SHIFTS.items()):
            for gradual in (False, True):
                key = f"{name} {'gradual' if gradual else 'abrupt'}"
                for i in range(args.shift_runs):
                    seed = [st.seed, 6, j, int(gradual), i]
                    wins = st.windows(np.random.default_rng(seed), kind, size, gradual)
                    shifted.setdefault(key, []).append(detect(st, wins, seed))
        _progress(f"shifted runs of reference {st.seed} done", t_start)
    # 4. the whole per-window work, with the label-proportion and accuracy estimates
    full_ms = []
    for st in setups:
        full = StreamMonitor(st.ref, **{**st.kwargs, "estimate_accuracy": True, "n_null_windows": 50})
        rng = np.random.default_rng([st.seed, 7])
        for _ in range(10):
            x = st.pop.draw(rng, WINDOW)[0]
            t0 = time.perf_counter()
            full.update(x)
            full_ms.append(1000 * (time.perf_counter() - t0))
    keras.backend.clear_session()
    return {
        "settings": {"references": args.references, "null_calib": args.null_calib, "null_eval": args.null_eval,
                     "shift_runs": args.shift_runs, "null_windows": args.null_windows, "window": WINDOW,
                     "horizon": HORIZON, "alpha": ALPHA, "change_at": CHANGE_AT, "baseline_permutations": n_perm,
                     "screen": [SCREEN_PERMUTATIONS, SCREEN_P]},
        "statistics": list(setups[0].monitors["cusum (all)"].statistics_),
        "calibration": {"thresholds": thresholds, "allowed_alarms": k, "runs": len(calib["min_p"]),
                        "max_score": calib["max_score"], "min_p": calib["min_p"],
                        "nominal_thresholds": {d: [st.monitors[d].threshold_ for st in setups] for d in MONITORS},
                        "nominal_level": nominal_level},
        "null_eval": null_eval, "shifted": shifted,
        "per_window_s": per_window, "monitor_calibration_s": [st.calibration_s for st in setups],
        "full_window_ms": full_ms, "seconds": time.perf_counter() - t_start,
    }


def _rate(runs: list[dict], det: str, point: str) -> tuple[float, float]:
    a = np.array([r[det][point] is not None for r in runs], float)
    return float(a.mean()), float(np.sqrt(max(a.mean() * (1 - a.mean()), 1e-12) / len(a)))


def _delays(runs: list[dict], det: str, point: str) -> dict[str, Any]:
    early = sum(1 for r in runs if r[det][point] is not None and r[det][point] < CHANGE_AT)
    d = np.array([CENSORED if r[det][point] is None else r[det][point] - CHANGE_AT
                  for r in runs if r[det][point] is None or r[det][point] >= CHANGE_AT], float)
    censored = sum(1 for r in runs if r[det][point] is None)
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()) if len(d) else float("nan"), "se": se, "censored": censored, "n": len(d),
            "early": early}


def report(out: dict[str, Any]) -> str:
    from shiftkit.monitor import DRIFT

    s = out["settings"]
    cal = out["calibration"]
    n_eval = len(out["null_eval"])
    lines = [
        TITLE, "",
        f"- Command: `python benchmarks/bench_monitor.py --references {s['references']} --null-calib {s['null_calib']} "
        f"--null-eval {s['null_eval']} --shift-runs {s['shift_runs']} --results` ({out['seconds'] / 60:.0f} min, "
        f"{platform.machine()}); window {WINDOW} rows, horizon {HORIZON} windows, alpha {ALPHA}, change at window "
        f"{CHANGE_AT}; `cusum (all)`: statistics {', '.join(out['statistics'])}; `cusum (input)`: input MMD alone; "
        f"`{BASELINE}`: `mmd_test` of each window against the monitor's "
        f"reference rows, the snapshot's bandwidth, {s['baseline_permutations']} permutations (after a {SCREEN_PERMUTATIONS}-permutation "
        f"screen at p > {SCREEN_P}).",
        f"- Equal false-alarm rates: thresholds calibrated on {cal['runs']} unshifted runs (at most {cal['allowed_alarms']} "
        f"alarming): CUSUM h = {cal['thresholds']['cusum (all)']:.2f} (all) / {cal['thresholds']['cusum (input)']:.2f} "
        f"(input) vs nominal {np.mean(cal['nominal_thresholds']['cusum (all)']):.2f} / "
        f"{np.mean(cal['nominal_thresholds']['cusum (input)']):.2f}; per-window level "
        f"{cal['thresholds'][BASELINE]:.4f} vs Bonferroni alpha/{HORIZON} = {cal['nominal_level']:.4f}.",
        "",
        f"False alarms per run of {HORIZON} unshifted windows, on {n_eval} runs not used to calibrate "
        f"(s.e. in brackets; target <= alpha + 3 s.e. = {ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n_eval):.3f}):",
        "",
        "| detector | calibrated | nominal |",
        "|---|---|---|",
    ]
    for det in DETECTORS:
        c, n = _rate(out["null_eval"], det, "calibrated"), _rate(out["null_eval"], det, "nominal")
        lines.append(f"| {det} | {c[0]:.3f} ({c[1]:.3f}) | {n[0]:.3f} ({n[1]:.3f}) |")
    summary: dict[str, Any] = {}
    for point, head in (("calibrated", "at the calibrated (equal) false-alarm rate"),
                        ("nominal", "at the nominal thresholds")):
        lines += ["", f"Detection delay in windows {head}: mean (s.e.) [censored/runs, alarms before the change]:", "",
                  "| shift | " + " | ".join(DETECTORS) + (" | change point error, cusum (all) |" if point ==
                                                            "calibrated" else " |"),
                  "|---" * (len(DETECTORS) + 1 + (point == "calibrated")) + "|"]
        wins = {d: 0 for d in MONITORS}
        sig = {d: 0 for d in MONITORS}
        for key, runs in out["shifted"].items():
            cells, dl = [], {}
            for det in DETECTORS:
                dl[det] = _delays(runs, det, point)
                v = dl[det]
                cells.append(f"{v['mean']:.2f} ({v['se']:.2f}) [{v['censored']}/{v['n'] + v['early']}, {v['early']}]")
            for det in MONITORS:
                wins[det] += dl[det]["mean"] < dl[BASELINE]["mean"]
                diff = dl[BASELINE]["mean"] - dl[det]["mean"]
                sig[det] += diff > 2 * math.hypot(dl[det]["se"], dl[BASELINE]["se"])
            row = f"| {key} | " + " | ".join(cells) + " |"
            if point == "calibrated":
                cp = [abs(r["cusum (all)"]["change_point"] - CHANGE_AT) for r in runs
                      if r["cusum (all)"]["change_point"] is not None and r["cusum (all)"]["calibrated"] >= CHANGE_AT]
                row += f" {np.mean(cp) if cp else float('nan'):.2f} |"
            lines.append(row)
        summary[point] = (wins, sig, [k for k, runs in out["shifted"].items()
                                      if _delays(runs, "cusum (all)", point)["mean"] >= _delays(runs, BASELINE, point)["mean"]])
        lines += ["", "- " + "; ".join(
            f"`{d}` shorter mean delay than `{BASELINE}` on {wins[d]} of {len(out['shifted'])} shifts "
            f"({sig[d]} by more than 2 s.e.)" for d in MONITORS) + f" ({point})."]
    pw = 1000 * np.median(out["per_window_s"])
    rates = {d: _rate(out["null_eval"], d, p)[0] for d in DETECTORS for p in ("calibrated",)}
    nominal = {d: _rate(out["null_eval"], d, "nominal")[0] for d in DETECTORS}
    not_shorter = summary["calibrated"][2]
    lines += [
        f"- Work per {WINDOW}-row window (`update` with a model: features, softmax, four statistics, CUSUM, and the "
        f"label-proportion (EM) and accuracy (bootstrap) estimates), timed window by window on {len(out['full_window_ms'])}"
        f" windows: median {np.median(out['full_window_ms']):.1f} ms, max {np.max(out['full_window_ms']):.1f} ms "
        f"(target <= 50 ms: {'PASS' if np.median(out['full_window_ms']) <= 50 else 'FAIL'}); the mean per window over "
        f"the runs above (without the estimates, on a machine shared with other jobs; median over runs) was {pw:.1f} "
        f"ms. Monitor calibration {np.mean(out['monitor_calibration_s']):.1f} s ({s['null_windows']} null windows).",
        f"- Read with care: each calibrated threshold is a {ALPHA:g} quantile of {cal['runs']} runs, so the held-out "
        "rates differ by sampling error (" + ", ".join(f"{d} {v:.3f}" for d, v in rates.items()) + "); a lower rate "
        f"means a more cautious threshold and longer delays. At the nominal thresholds the default monitor's rate is "
        f"{nominal['cusum (all)']:.3f} against the per-window test's {nominal[BASELINE]:.3f}, and the delays order "
        "the same way. Not shorter for `cusum (all)` (calibrated): "
        + (", ".join(f"{k} ({_delays(out['shifted'][k], 'cusum (all)', 'calibrated')['mean']:.2f} vs "
                     f"{_delays(out['shifted'][k], BASELINE, 'calibrated')['mean']:.2f} windows)" for k in not_shorter)
           or "none")
        + " (a shift that one window shows is caught by a per-window test at once; the CUSUM, with its drift of "
        f"{DRIFT:g} null s.d. per window, may need one more). Delays count a run without an alarm as "
        f"{CENSORED} windows (censored), so the per-window test's means on small shifts are lower bounds.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--references", type=int, default=4)
    parser.add_argument("--null-calib", type=int, default=40, help="unshifted runs per reference that calibrate")
    parser.add_argument("--null-eval", type=int, default=40, help="other unshifted runs per reference that measure")
    parser.add_argument("--shift-runs", type=int, default=6, help="runs per shift and reference")
    parser.add_argument("--null-windows", type=int, default=500, help="null windows per monitor")
    parser.add_argument("--quick", action="store_true", help="smoke run (1 reference, 4 + 4 null runs, 1 per shift)")
    parser.add_argument("--json", type=Path, default=RESULTS_JSON)
    parser.add_argument("--results", action="store_true", help="write the section into benchmarks/RESULTS.md")
    parser.add_argument("--from-json", type=Path, help="re-render the tables of a saved run (no new measurements)")
    args = parser.parse_args(argv)
    if args.quick:
        args.references, args.null_calib, args.null_eval, args.shift_runs, args.null_windows = 1, 4, 4, 1, 200
        if args.json == RESULTS_JSON:
            args.json = Path("/tmp/bench_monitor_quick.json")
    if args.from_json is not None:
        out = json.loads(args.from_json.read_text())
    else:
        out = run(args)
    text = report(out)
    print(text)
    if args.from_json is None or args.from_json.resolve() != args.json.resolve():
        args.json.write_text(json.dumps(out, indent=1, default=float))
    if args.results:
        sys.path.insert(0, str(HERE))
        from _results import write_section

        write_section(HERE / "RESULTS.md", TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
