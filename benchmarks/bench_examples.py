"""Run every example's core over several seeds and write each one's table (mean +- std) to RESULTS.md.

The examples (`examples/quickstart.py`, `medical_hospitals.py`, `wearable_to_home.py`,
`screening_prevalence.py`) each expose `run(seed, fast) -> pandas.DataFrame`, the very function
their `main()` prints; this script imports them and calls it, so the examples and these figures
cannot drift apart. For every example it reports, per cell, the mean and the sample standard
deviation over the seeds (each seed changes the data split or simulation, the weights and the
permutations), the wall time of one `run` (in this process, imports done), and, unless
`--no-script-timing`, the wall time of the script itself in `--fast` mode in a fresh interpreter
(what CI pays, imports included).

Usage:
    python benchmarks/bench_examples.py                 # full mode, seeds 0 1 2, writes its RESULTS.md section
    python benchmarks/bench_examples.py --quick --results /tmp/r.md    # smoke run: fast mode, seeds 0 1
    python benchmarks/bench_examples.py --examples screening_prevalence --seeds 0 1 2 3 4 --no-write
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EXAMPLES_DIR = REPO / "examples"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(EXAMPLES_DIR))

DEFAULT_RESULTS = HERE / "RESULTS.md"
from _results import machine_info, write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

SECTION = "## Examples over seeds (bench_examples.py)"
EXAMPLES: tuple[str, ...] = ("quickstart", "medical_hospitals", "wearable_to_home", "screening_prevalence")
TITLES = {
    "quickstart": "Quickstart: two breast-cancer hospitals, MMDAdapter without target labels",
    "medical_hospitals": "Medical hospitals: breast cancer, selection by tumour size, `Experiment` with every adapter",
    "wearable_to_home": "Wearable to home: simulated 6-axis activity windows, wristband -> home sensor tag, 1-D CNN",
    "screening_prevalence": "Screening prevalence: hospital (37% malignant) -> screening (8%), prior correction",
}
# Columns left out of the tables: constant by construction, or timing (reported separately).
SKIP_COLUMNS = {"target_labels", "fit_s"}


# --------------------------------------------------------------------------------------------- machine
def versions() -> dict[str, str]:
    out = {}
    for name in ("shiftkit", "keras", "tensorflow", "numpy", "scikit-learn", "pandas"):
        module = {"scikit-learn": "sklearn"}.get(name, name)
        try:
            out[name] = importlib.import_module(module).__version__
        except Exception:  # noqa: BLE001 - reporting only
            out[name] = "?"
    return out


# --------------------------------------------------------------------------------------------- running
def run_seeds(name: str, seeds: list[int], fast: bool, log=print) -> tuple[list[Any], list[float]]:
    """`module.run(seed, fast)` for every seed: the frames and the wall time of each run."""
    import keras

    module = importlib.import_module(name)
    frames, seconds = [], []
    for seed in seeds:
        keras.backend.clear_session()  # every run starts from the same Keras state, as the script does
        t0 = time.perf_counter()
        frame = module.run(seed, fast)
        seconds.append(time.perf_counter() - t0)
        frames.append(frame)
        log(f"  {name} seed {seed}: {seconds[-1]:.1f} s")
    return frames, seconds


def script_seconds(name: str, timeout: float = 600) -> float:
    """Wall time of `python examples/<name>.py --fast` in a fresh interpreter (imports included)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(EXAMPLES_DIR / f"{name}.py"), "--fast"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"examples/{name}.py --fast exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def aggregate(frames: list[Any]) -> tuple[Any, Any]:
    """Per-cell mean and sample std over the seeds, rows and columns in the examples' order."""
    import pandas as pd

    stacked = pd.concat([f.astype("float64") for f in frames], keys=range(len(frames)), names=["seed", "method"])
    grouped = stacked.groupby(level="method", sort=False)
    order = list(frames[0].index)
    return grouped.mean().loc[order], grouped.std(ddof=1).loc[order]


def _cell(mean: float, std: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "-"
    if not math.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(mean: Any, std: Any) -> list[str]:
    columns = [c for c in mean.columns if c not in SKIP_COLUMNS]
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for method in mean.index:
        cells = [_cell(float(mean.loc[method, c]), float(std.loc[method, c])) for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _mean_std(values: list[float]) -> str:
    import statistics

    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def notes_for(name: str, frames: list[Any], seeds: list[int]) -> list[str]:
    """One line of per-seed facts kept in each frame's `attrs` (diagnoses, prevalences...)."""
    if name == "medical_hospitals":
        per = ", ".join(f"seed {s}: {f.attrs.get('diagnosis')} -> {f.attrs.get('recommendation')}"
                        f" (class_weight={f.attrs.get('class_weight')})" for s, f in zip(seeds, frames))
        return [f"- `shiftkit.diagnose` per seed: {per}."]
    if name == "wearable_to_home":
        acc = ", ".join(f"{f.attrs.get('source_val_accuracy', float('nan')):.3f}" for f in frames)
        return [f"- Source CNN accuracy on held-out wristband windows, per seed: {acc}."]
    if name == "screening_prevalence":
        per = ", ".join(f"seed {s}: {f.attrs['n_target_malignant']}/{f.attrs['n_target']} malignant "
                        f"({f.attrs['true_prevalence']:.3f})" for s, f in zip(seeds, frames))
        hospital = frames[0].attrs["source_prevalence"]
        return [f"- Screening populations: {per}; hospital prevalence {hospital:.3f}."]
    return []


# --------------------------------------------------------------------------------------------- writing
def build_section(args: argparse.Namespace, seeds: list[int], results: dict[str, dict[str, Any]],
                  command: str) -> str:
    machine = machine_info()
    vers = versions()
    mode = "fast (`--quick`: smoke run, not figures to quote)" if args.quick else "full"
    lines = [SECTION, ""]
    lines.append(f"- Date: {_dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    lines.append(f"- Machine: {machine['nproc']} cores (os.cpu_count), {machine['cpu']}, {machine['mem']} RAM, "
                 f"{machine['os']}, CPU only (other processes may share the machine: times are indicative)")
    lines.append(f"- Versions: Python {machine['python']}, " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    lines.append(f"- Command: `{command}`")
    lines.append(f"- Mode: {mode}; seeds {', '.join(map(str, seeds))}. Each cell: mean ± sample std over the "
                 "seeds. Every figure comes from the example's own `run(seed, fast)`.")
    lines.append("")
    lines.append("Run times (seconds):")
    lines.append("")
    lines.append(f"| example | `run()` in {'fast' if args.quick else 'full'} mode, per seed | "
                 "script `--fast`, fresh interpreter |")
    lines.append("|---|---:|---:|")
    for name, res in results.items():
        fast_s = "-" if res.get("script_s") is None else f"{res['script_s']:.1f}"
        lines.append(f"| examples/{name}.py | {_mean_std(res['seconds'])} | {fast_s} |")
    lines.append("")
    for name, res in results.items():
        lines.append(f"### {TITLES.get(name, name)} (`examples/{name}.py`)")
        lines.append("")
        lines.extend(markdown_table(res["mean"], res["std"]))
        lines.append("")
        extra = notes_for(name, res["frames"], seeds)
        if extra:
            lines.extend(extra)
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the examples' cores over seeds; write mean ± std tables.")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; --quick: 0 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the examples' fast mode, 2 seeds, no script timing")
    parser.add_argument("--examples", nargs="+", choices=EXAMPLES, default=list(EXAMPLES),
                        help="which examples (default all)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help="results file whose section this run replaces (default benchmarks/RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    parser.add_argument("--no-script-timing", action="store_true",
                        help="skip timing each example script in --fast mode (always skipped with --quick)")
    args = parser.parse_args(argv)
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    if len(seeds) < 2:
        parser.error("give at least 2 seeds: a standard deviation needs two")
    command = "python benchmarks/bench_examples.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    import pandas as pd

    results: dict[str, dict[str, Any]] = {}
    t_start = time.perf_counter()
    for name in args.examples:
        print(f"{name} ({'fast' if args.quick else 'full'} mode, seeds {seeds})", flush=True)
        frames, seconds = run_seeds(name, seeds, fast=args.quick)
        mean, std = aggregate(frames)
        results[name] = {"frames": frames, "seconds": seconds, "mean": mean, "std": std, "script_s": None}
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(mean.round(4).to_string())
    if not (args.quick or args.no_script_timing):
        for name in args.examples:
            results[name]["script_s"] = script_seconds(name)
            print(f"examples/{name}.py --fast: {results[name]['script_s']:.1f} s", flush=True)
    section = build_section(args, seeds, results, command.strip())
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s\n")
    print(section)
    if not args.no_write:
        write_section(args.results, SECTION, section)
        print(f"wrote section '{SECTION}' to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
