"""Benchmark of `shiftkit.shift.mmd_test` (the permutation MMD test), with alibi-detect as the peer.

What it measures:
    * `mmd_test(x, y, n_permutations=1000, seed=0, bandwidth=None)` (one Gaussian kernel with the
      median heuristic; `--bandwidth agg` times mmd_test's aggregated default instead) for
      n = m in {500, 2000, 5000, 20000}, d = 32, on
      seeded Gaussian data where y's mean is shifted by `--shift` (default 0.1 standard deviations)
      along the first coordinate, so p-values are informative. Default memory_budget (1 GiB).
      Reported: wall time, p-value, `result.computation` and the peak extra memory (RSS) of the run.
    * alibi-detect's `MMDDrift(x, backend="tensorflow", p_val=0.05, n_permutations=1000)` with its
      default kernel (GaussianRBF, median-heuristic bandwidth on x_ref) on the SAME arrays, run in its
      own virtualenv (it pins numpy < 2 and tensorflow < 2.19): at n = m = 500 and 2000 always; at
      larger n only when a timed probe extrapolates to under `--alibi-max-seconds` (default 300 s).
    * `mmd_test(..., method="linear")` at n = m = 20000 and 200000 (the large-sample path), and the
      full-kernel path vs forced row blocks (small memory_budget) at n = m = 2000.

How it measures:
    Every configuration runs in a fresh subprocess (`--one N`): import TensorFlow/shiftkit, load the
    arrays, warm up once on tiny data, reset the kernel's peak-RSS counter (/proc/self/clear_refs),
    record the current RSS, then time `mmd_test` (bandwidth, kernel, permutations: everything it
    does). Peak extra RSS = peak RSS during the timed run(s) - RSS before them. The TensorFlow
    import is excluded from the timing. alibi-detect is timed the same way (detector construction,
    which sets its bandwidth, plus `predict`).

Setting up the alibi-detect virtualenv (once; `.venv*/` is gitignored):
    python -m venv benchmarks/.venv-alibi
    benchmarks/.venv-alibi/bin/pip install "alibi-detect[tensorflow]==0.13.0"

Usage:
    python benchmarks/bench_mmd.py              # full run; writes its section of benchmarks/RESULTS.md
    python benchmarks/bench_mmd.py --quick      # smoke run (n=200, 100 permutations, no alibi), < 30 s
    python benchmarks/bench_mmd.py --sizes 500 2000 --no-alibi --no-extras
    python benchmarks/bench_mmd.py --memory     # peak memory, two 46 MiB inputs, 8 MiB budget
    python benchmarks/bench_mmd.py --floor      # issue 12: time / numpy floor at P = 100 and 1000
    python benchmarks/bench_mmd.py --rff        # issue 12: the 10^6-row random-feature test (runs bench_rff.py)
    python benchmarks/bench_mmd.py --stream     # issue 12: `shiftkit check` on a 10^7 x 20 target (time, peak RSS)
    python benchmarks/bench_mmd.py --stream --stream-rows 1000000 --stream-formats parquet   # smaller
    python benchmarks/bench_mmd.py --memory --code /path/to/old/checkout   # the same, other code
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _measure import Meter, wait_quiet

REPO = HERE.parent
DEFAULT_ALIBI_PYTHON = HERE / ".venv-alibi" / "bin" / "python"
ALIBI_RUNNER = HERE / "_alibi_runner.py"
from _results import write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

SECTION = "## MMD permutation test (bench_mmd.py)"
MIB = 1 << 20
DEFAULT_BUDGET = (
    1 << 30
)  # shiftkit.shift.DEFAULT_MEMORY_BUDGET (not imported: the driver stays TF-free)


# --------------------------------------------------------------------------------------------------
# Measurement helpers (used in the child processes)
# --------------------------------------------------------------------------------------------------


class _Mmd2Result:
    """`mmd2`'s value in the fields the report reads from an `MMDTestResult`."""

    def __init__(self, value: float):
        self.statistic = value
        self.p_value = float("nan")
        self.n_permutations = 0
        self.bandwidth = float("nan")
        self.computation = "mmd2 (three kernel sums in row blocks)"
        self.is_shift = None


def _numpy_floor(x, y, w, np) -> None:
    """The floor of issue 12: the pooled kernel (squared distances + exp) and one K @ W product."""
    z = np.concatenate([x, y])
    sq = np.einsum("ij,ij->i", z, z)
    k = z @ z.T
    k *= -2.0
    k += sq[:, None]
    k += sq[None, :]
    np.maximum(k, 0.0, out=k)
    k *= -1.0 / (2.0 * 5.0**2)  # the exp costs the same for any bandwidth
    np.exp(k, out=k)
    k @ w


def _floor_pairs(args, x, y, busy_before, np, mmd_test) -> None:
    """Alternate the numpy floor and `mmd_test` (default bandwidth) `repeats` times; print JSON."""
    n_perm = args.n_permutations
    rng = np.random.default_rng(1)
    big_n = len(x) + len(y)
    w = np.where(rng.random((big_n, n_perm)) < 0.5, 1.0 / len(x), -1.0 / len(y))  # built untimed
    _numpy_floor(x, y, w, np)  # warm-up of all three
    res = mmd_test(x, y, n_permutations=n_perm, seed=args.seed, bandwidth=None)
    agg = mmd_test(x, y, n_permutations=n_perm, seed=args.seed)
    floor, sk, default, busy = [], [], [], []
    for _ in range(args.repeats):
        with Meter() as m1:
            _numpy_floor(x, y, w, np)
        with Meter() as m2:  # the single-kernel test: what the 1.5x target is about
            res = mmd_test(x, y, n_permutations=n_perm, seed=args.seed, bandwidth=None)
        with Meter() as m3:  # mmd_test's default (the aggregated test, 5 kernels), for information
            agg = mmd_test(x, y, n_permutations=n_perm, seed=args.seed)
        floor.append(m1.wall)
        sk.append(m2.wall)
        default.append(m3.wall)
        busy.append(max(m1.others_busy, m2.others_busy))
    ratios = sorted(b / a for a, b in zip(floor, sk))
    out = {
        "n": len(x),
        "d": int(x.shape[1]),
        "n_permutations": n_perm,
        "floor_seconds": statistics.median(floor),
        "shiftkit_seconds": statistics.median(sk),
        "all_floor": floor,
        "all_shiftkit": sk,
        "ratio_median": statistics.median(ratios),
        "ratio_of_minima": min(sk) / min(floor),
        "default_seconds": statistics.median(default),
        "default_ratio_median": statistics.median(sorted(c / a for a, c in zip(floor, default))),
        "default_p_value": agg.p_value,
        "default_computation": agg.computation,
        "others_busy": max(busy),
        "busy_before": busy_before,
        "p_value": res.p_value,
        "computation": res.computation,
    }
    sys.stdout.write("BENCH_JSON " + json.dumps(out) + "\n")


def _child(args: argparse.Namespace) -> None:
    """Time one `mmd_test` configuration; print `BENCH_JSON {...}`."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, args.src or str(REPO))
    import hashlib

    import keras
    import numpy as np
    import scipy
    import tensorflow as tf

    import shiftkit
    from shiftkit.shift import kernels as sk_kernels
    from shiftkit.shift import mmd as sk_mmd
    from shiftkit.shift import mmd_test

    code = {
        Path(mod.__file__).name: hashlib.sha256(
            Path(mod.__file__).read_bytes()
        ).hexdigest()[:12]
        for mod in (sk_mmd, sk_kernels)
    }

    data = np.load(args.data)
    x, y = data["x"], data["y"]
    budget = args.memory_budget or DEFAULT_BUDGET

    rng = np.random.default_rng(123)  # warm-up on tiny data, same method
    mmd_test(
        rng.normal(size=(50, x.shape[1])),
        rng.normal(size=(50, x.shape[1])),
        n_permutations=19,  # the fewest that can reach alpha = 0.05
        seed=0,
        method=args.method,
    )

    busy_before = wait_quiet(
        args.quiet_threshold, args.max_wait, log=lambda m: print(m, file=sys.stderr)
    )
    if args.function == "floor":
        _floor_pairs(args, x, y, busy_before, np, mmd_test)
        return
    meters = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(args.repeats):
            with Meter() as meter:
                if args.function == "mmd2":
                    value = sk_mmd.mmd2(x, y, memory_budget=budget)
                else:
                    res = mmd_test(
                        x,
                        y,
                        n_permutations=args.n_permutations,
                        seed=args.seed,
                        method=args.method,
                        memory_budget=budget,
                        # None: one median-heuristic kernel (what this section measures, and what
                        # alibi-detect runs); "agg": the aggregated test (mmd_test's default since
                        # issue 12). None also works with older checkouts (--memory --code).
                        bandwidth=None if args.bandwidth == "median" else args.bandwidth,
                    )
            meters.append(meter)
    if args.function == "mmd2":
        res = _Mmd2Result(value)
    times = [mt.wall for mt in meters]

    try:
        from threadpoolctl import threadpool_info

        blas = [
            f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
            f"{i.get('num_threads')} threads)"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
    except (
        ImportError,
        AttributeError,
        KeyError,
        OSError,
    ):  # threadpoolctl is optional
        blas = []
    out = {
        "n": len(x),
        "m": len(y),
        "d": int(x.shape[1]),
        "method": args.method,
        "function": args.function,
        "n_permutations": res.n_permutations,
        "memory_budget": budget,
        "seconds": statistics.median(times),
        "all_seconds": times,
        "p_value": res.p_value,
        "statistic": res.statistic,
        "bandwidth": res.bandwidth,
        "computation": res.computation,
        "is_shift": res.is_shift,
        "cpu_seconds": statistics.median(mt.cpu for mt in meters),
        "others_busy": max(mt.others_busy for mt in meters),
        "busy_before": busy_before,
        "peak_extra_rss_mib": max(mt.peak_extra_mib for mt in meters),
        "peak_rss_exact": all(mt.exact_peak for mt in meters),
        "warnings": sorted({str(w.message) for w in caught}),
        "versions": {
            "shiftkit": shiftkit.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
        "blas": blas,
        "code": code,
        "shiftkit_file": shiftkit.__file__,
    }
    sys.stdout.write("BENCH_JSON " + json.dumps(out) + "\n")


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _make_data(n: int, d: int, shift: float, seed: int, tmp: Path) -> Path:
    import numpy as np

    path = tmp / f"mmd_n{n}_d{d}_s{seed}.npz"
    if not path.exists():
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, d))
        y = rng.standard_normal((n, d))
        y[:, 0] += shift
        np.savez(path, x=x, y=y)
    return path


def _ok(res: dict | None) -> bool:
    return bool(res) and "error" not in res


def _failure(stderr: str, returncode: int) -> str:
    """The exception line of a child's traceback (or its exit status)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line.split(":", 1)[0] or "Exception" in line.split(":", 1)[0]:
            return line[:300]
    return f"exit status {returncode}"


def _run_json(cmd: list[str], label: str, timeout: float) -> dict:
    """Run a child; its BENCH_JSON dict, or {"error": why}."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"  running {label} ...", flush=True)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"  {label}: timed out after {timeout:.0f} s", flush=True)
        return {"error": f"timed out after {timeout:.0f} s", "timed_out": True}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    print(
        f"  {label} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", flush=True
    )
    return {"error": _failure(proc.stderr, proc.returncode)}


def _shiftkit(
    args,
    data: Path,
    n: int,
    method: str = "permutation",
    budget: int | None = None,
    repeats: int | None = None,
) -> dict:
    if repeats is None:
        repeats = args.repeats if n <= 5000 else 1
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        str(n),
        "--data",
        str(data),
        "--method",
        method,
        "--n-permutations",
        str(args.n_permutations),
        "--seed",
        str(args.seed),
        "--repeats",
        str(repeats),
    ] + _quiet_args(args)
    if args.src:
        cmd += ["--src", args.src]
    if budget:
        cmd += ["--memory-budget", str(budget)]
    if getattr(args, "function", "mmd_test") != "mmd_test":
        cmd += ["--function", args.function]
    if getattr(args, "bandwidth", "median") != "median":
        cmd += ["--bandwidth", args.bandwidth]
    label = f"shiftkit n=m={n} {method}" + (
        f" budget={budget // MIB} MiB" if budget else ""
    )
    res = _run_json(cmd, label, args.timeout)
    if _ok(res):
        print(
            f"    {res['seconds']:.2f} s (cpu {res['cpu_seconds']:.2f} s, others {res['others_busy']:.0%} "
            f"busy), p={res['p_value']:.4g}, peak +{res['peak_extra_rss_mib']:.0f} MiB; "
            f"{res['computation']}",
            flush=True,
        )
    return res


def _alibi(args, data: Path, n: int) -> dict:
    base = [
        str(args.alibi_python),
        str(ALIBI_RUNNER),
        "--data",
        str(data),
        "--n-permutations",
        str(args.n_permutations),
        "--seed",
        str(args.seed),
    ] + _quiet_args(args)
    timeout = args.timeout
    probe = None
    if n > args.alibi_always_up_to:  # measure before deciding: probe, extrapolate
        probe = _run_json(
            base + ["--probe", "20", "80"], f"alibi-detect probe n=m={n}", args.timeout
        )
        if not _ok(probe):
            return {"skipped": f"probe failed: {probe['error']}"}
        est = probe["estimated_seconds"]
        print(
            f"    probe: {probe['seconds_per_permutation']:.3f} s/permutation -> "
            f"~{est / 60:.1f} min for {args.n_permutations}",
            flush=True,
        )
        if est >= args.alibi_max_seconds:
            probe["skipped"] = (
                f"not run: would take ~{est / 60:.0f} min (extrapolated from timed runs "
                f"with 20 and 80 permutations: {probe['fixed_seconds']:.1f} s + "
                f"{probe['seconds_per_permutation']:.2f} s/permutation)"
            )
            return probe
        # Hard stop at the limit (+ import, warm-up and the wait for a quiet machine).
        timeout = args.alibi_max_seconds + args.max_wait + 120
    res = _run_json(base, f"alibi-detect n=m={n}", timeout)
    if not _ok(res):
        out = dict(probe or {})
        out["skipped"] = (
            f"did not finish within the {args.alibi_max_seconds / 60:.0f} min limit (stopped)"
            if probe and res.get("timed_out")
            else f"run failed: {res['error']}"
        )
        return out
    print(
        f"    {res['seconds']:.2f} s (cpu {res['cpu_seconds']:.1f} s, others {res['others_busy']:.0%} "
        f"busy), p={res['p_value']:.4g}, sigma={res['sigma']:.3f}",
        flush=True,
    )
    return res


def _quiet_args(args) -> list[str]:
    return [
        "--quiet-threshold",
        str(args.quiet_threshold),
        "--max-wait",
        str(args.max_wait),
    ]


def _machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    nproc = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    return {
        "nproc": nproc,
        "cpu": cpu,
        "mem": mem,
        "os": platform.platform(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }


def _fmt_t(res: dict | None) -> str:
    if not res or "seconds" not in res:
        return "-"
    times = res.get("all_seconds", [res["seconds"]])
    if len(times) > 1:
        return f"{res['seconds']:.2f} ({min(times):.2f}-{max(times):.2f})"
    return f"{res['seconds']:.2f}"


def _short_comp(comp: str) -> str:
    if comp.startswith("full"):
        return "full kernel"
    if comp.startswith("linear"):
        return "linear"
    if "row blocks" in comp:
        return "row blocks, " + (
            "1 batch"
            if "all permutations at once" in comp
            else comp.rsplit("each of ", 1)[-1].replace(
                " permutation batches", " batches"
            )
        )
    return comp


def _report(args, machine, rows, extras, alibi_note) -> str:
    sk_versions = next((r["sk"]["versions"] for r in rows if _ok(r.get("sk"))), {})
    blas = next((r["sk"]["blas"] for r in rows if _ok(r.get("sk"))), [])
    al_versions = next(
        (r["al"]["versions"] for r in rows if r.get("al") and "versions" in r["al"]),
        None,
    )
    reps = args.repeats
    lines = [SECTION, ""]
    lines.append(
        f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
    )
    lines.append(
        f"- Machine: {machine['nproc']} cores (nproc), {machine['cpu']}, {machine['mem']} RAM, "
        f"{machine['os']}"
    )
    lines.append(
        f"- BLAS (numpy): {', '.join(blas) or 'unknown'}; OPENBLAS_CORETYPE="
        f"{machine['OPENBLAS_CORETYPE'] if machine['OPENBLAS_CORETYPE'] is not None else '(unset)'}"
    )
    lines.append(
        "- shiftkit env: " + ", ".join(f"{k} {v}" for k, v in sk_versions.items())
    )
    lines.append(
        "- alibi-detect env: "
        + (
            ", ".join(f"{k} {v}" for k, v in al_versions.items())
            if al_versions
            else alibi_note or "not run"
        )
    )
    cmd = "python benchmarks/bench_mmd.py" + (
        " " + shlex.join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    lines.append(f"- Command: `cd {REPO} && {cmd}`")
    codes = {
        json.dumps(res["code"], sort_keys=True)
        for res in [r["sk"] for r in rows] + [res for _, res in extras]
        if _ok(res) and "code" in res
    }
    if codes:
        lines.append(
            f"- Code measured: snapshot of shiftkit/ taken at {getattr(args, 'snapshot_time', '?')}, "
            "sha256 prefixes: "
            + " | ".join(
                ", ".join(f"shiftkit/shift/{k} {v}" for k, v in json.loads(c).items())
                for c in sorted(codes)
            )
            + (
                " -- WARNING: the files changed while the benchmark ran"
                if len(codes) > 1
                else ""
            )
        )
    lines.append(
        f"- Data: x ~ N(0, I_{args.dim}), y ~ N(delta, I_{args.dim}) with delta = {args.shift} "
        f"on the first coordinate; numpy seed {args.seed}; float64; the same arrays (.npz) "
        f"for both libraries. {args.n_permutations} permutations each; shiftkit seed={args.seed}, "
        f"default memory_budget (1 GiB)."
    )
    lines.append(
        f"- Time: wall time of `mmd_test` (bandwidth + kernel + permutations) after a warm-up, "
        f"TF import excluded; median of {reps} runs (min-max) for n <= 5000, one run above. "
        "alibi: one run of `MMDDrift(...)` construction + `predict`, after a warm-up."
    )
    lines.append(
        "- Peak extra RSS: peak resident memory during the timed run minus the resident memory "
        "just before it, in a fresh process per row (peak counter reset via /proc/self/clear_refs)."
    )
    lines.append(
        f"- CPU (s): the process's CPU time (all threads) in the timed run; 'others busy': share of "
        f"the machine's CPUs used by OTHER processes meanwhile (this machine is shared; each run "
        f"first waits up to {args.max_wait:.0f} s for the CPUs to be < {args.quiet_threshold:.0%} "
        "busy). Wall times with others busy > ~10% are inflated."
    )
    lines.append("")
    lines.append(
        "| n = m | shiftkit time (s) | CPU (s) | others busy | shiftkit p | peak extra RSS (MiB) "
        "| path | alibi-detect time (s) | others busy | alibi p | alibi / shiftkit |"
    )
    lines.append("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        sk, al = r.get("sk"), r.get("al")
        if not _ok(sk):
            sk = None
        if sk:
            sk_cells = [
                _fmt_t(sk),
                f"{sk['cpu_seconds']:.2f}",
                f"{sk['others_busy']:.0%}",
                f"{sk['p_value']:.4f}",
                f"{sk['peak_extra_rss_mib']:.0f}",
                _short_comp(sk["computation"]),
            ]
        else:
            sk_cells = ["failed (below)", "-", "-", "-", "-", "-"]
        if al and "seconds" in al:
            al_cells = [
                f"{al['seconds']:.2f}",
                f"{al['others_busy']:.0%}",
                f"{al['p_value']:.4f}",
                f"{al['seconds'] / sk['seconds']:.0f}x" if sk else "-",
            ]
        elif al and "skipped" in al:
            est = al.get("estimated_seconds")
            busy = al.get("probe_others_busy")
            al_cells = [
                f"not run (~{est / 60:.0f} min est.)" if est else "not run",
                f"{max(busy):.0%} (probe)" if busy else "-",
                "-",
                f"~{est / sk['seconds']:.0f}x (est.)" if est and sk else "-",
            ]
        else:
            al_cells = ["-", "-", "-", "-"]
        lines.append(f"| {r['n']} | " + " | ".join(sk_cells + al_cells) + " |")
    lines.append("")
    lines.append("`result.computation` per size:")
    for r in rows:
        if _ok(r.get("sk")):
            lines.append(
                f"- n = m = {r['n']}: {r['sk']['computation']} "
                f"(bandwidth {r['sk']['bandwidth']:.3f})"
            )
            for w in r["sk"]["warnings"]:
                lines.append(f"  - warning: {w}")
        elif r.get("sk"):
            lines.append(f"- n = m = {r['n']}: FAILED: `{r['sk']['error']}`")
    notes = [r for r in rows if r.get("al") and "skipped" in r["al"]]
    for r in notes:
        lines.append(f"- alibi-detect at n = m = {r['n']}: {r['al']['skipped']}")
    if extras:
        lines.append("")
        lines.append("Large-sample and blocked paths (same data generator, same seed):")
        lines.append("")
        lines.append(
            "| configuration | time (s) | CPU (s) | others busy | p | peak extra RSS (MiB) "
            "| computation |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---|")
        for label, res in extras:
            if _ok(res):
                lines.append(
                    f"| {label} | {_fmt_t(res)} | {res['cpu_seconds']:.2f} | "
                    f"{res['others_busy']:.0%} | {res['p_value']:.4g} | "
                    f"{res['peak_extra_rss_mib']:.0f} | {res['computation']} |"
                )
            else:
                lines.append(f"| {label} | FAILED | - | - | - | - | `{res['error']}` |")
    lines.append("")
    lines.append("Targets (from the issue):")
    lines.extend(_targets(rows))
    lines.append("")
    lines.append("Notes:")
    al_rows = [
        r for r in rows if r.get("al") and "sigma" in r["al"] and _ok(r.get("sk"))
    ]
    if al_rows:
        r = al_rows[0]
        lines.append(
            f"- Bandwidths differ by design, so p-values differ: shiftkit's median heuristic uses the "
            f"median pairwise distance of the pooled sample, k = exp(-d^2 / (2 med^2)) "
            f"(bandwidth {r['sk']['bandwidth']:.3f} at n = m = {r['n']}); alibi-detect's `sigma_median` "
            f"uses sqrt(median(d^2) / 2) on x_ref only, i.e. k = exp(-d^2 / median(d^2)) "
            f"(sigma {r['al']['sigma']:.3f}, about 1/sqrt(2) of shiftkit's). Permutations are also "
            "random and differently seeded, and alibi's p-value is #{null >= stat} / P (no +1), "
            "shiftkit's (1 + #{null >= stat}) / (1 + P)."
        )
        lines.append(
            "- Same statistic otherwise: both use the unbiased MMD^2 with the diagonal excluded. "
            "alibi-detect permutes by gathering the full N x N kernel matrix once per "
            "permutation in a Python loop (O(N^2) memory traffic each); shiftkit gets all "
            "permutations from one matrix product K @ A."
        )
    over = [
        r
        for r in rows
        if _ok(r.get("sk"))
        and r["sk"]["peak_extra_rss_mib"] > r["sk"]["memory_budget"] / MIB
    ]
    if over:
        lines.append(
            "- Peak extra RSS exceeds memory_budget at n = m = "
            + ", ".join(str(r["n"]) for r in over)
            + " (mmd.py splits the budget into kernel row blocks and the indicator matrix A). From "
            "reading the measured shiftkit/shift/mmd.py: the int64 permutation array `perms` "
            "(batch x N, as large as A) and its copy `perms[:, :n]` are not counted in the budget."
        )
    lin = [
        (label, res)
        for label, res in extras
        if "linear" in label and (not _ok(res) or res["peak_extra_rss_mib"] > 1024)
    ]
    if lin:
        lines.append(
            '- method="linear" is not O(n) in memory here: '
            + "; ".join(
                f"{label}: "
                + (
                    f"failed (`{res['error']}`)"
                    if not _ok(res)
                    else f"peak extra RSS {res['peak_extra_rss_mib']:.0f} MiB"
                )
                for label, res in lin
            )
            + ". From reading mmd.py: for `normalized` it builds the full (n/2) x (n/2) matrices "
            "`gaussian_kernel(x[0::2], x[1::2])` (and for y) and keeps only their diagonals."
        )
    lines.append(
        "- OPENBLAS_CORETYPE is "
        + (
            f"set to `{machine['OPENBLAS_CORETYPE']}` (it forces OpenBLAS's kernel choice and can "
            "slow numpy's matrix products)"
            if machine["OPENBLAS_CORETYPE"] is not None
            else "not set (OpenBLAS picks its kernels from the CPU)"
        )
        + "."
    )
    return "\n".join(lines) + "\n"


def _targets(rows) -> list[str]:
    by_n = {r["n"]: r for r in rows}
    out = []
    r = by_n.get(2000)
    if r and _ok(r.get("sk")) and r.get("al") and "seconds" in r["al"]:
        ratio = r["al"]["seconds"] / r["sk"]["seconds"]
        cpu_ratio = r["al"]["cpu_seconds"] / max(r["sk"]["cpu_seconds"], 1e-9)
        out.append(
            f"- shiftkit >= 20x faster than alibi-detect at n = m = 2000: {ratio:.0f}x wall time "
            f"({cpu_ratio:.0f}x CPU time; others busy {r['sk']['others_busy']:.0%} / "
            f"{r['al']['others_busy']:.0%}) -> " + ("met" if ratio >= 20 else "NOT met")
        )
    else:
        out.append(
            "- shiftkit >= 20x faster than alibi-detect at n = m = 2000: not measured"
        )
    r = by_n.get(5000)
    if r and _ok(r.get("sk")):
        t = r["sk"]["seconds"]
        out.append(
            f"- n = m = 5000 under 10 s: {t:.2f} s -> "
            + ("met" if t < 10 else "NOT met")
        )
    else:
        out.append("- n = m = 5000 under 10 s: not measured")
    r = by_n.get(20000)
    if r and _ok(r.get("sk")):
        peak = r["sk"]["peak_extra_rss_mib"]
        budget = r["sk"]["memory_budget"] / MIB
        out.append(
            f"- n = m = 20000 completes within the memory budget ({budget:.0f} MiB): completed in "
            f"{r['sk']['seconds']:.1f} s, peak extra RSS {peak:.0f} MiB -> "
            + (
                "met"
                if peak <= budget
                else "NOT met (peak extra RSS exceeds the budget)"
            )
        )
    elif r:
        out.append(
            f"- n = m = 20000 completes within the memory budget: FAILED: {r['sk'].get('error')}"
        )
    else:
        out.append("- n = m = 20000 completes within the memory budget: not measured")
    return out


MEMORY_SECTION = "## MMD memory budget with wide inputs (bench_mmd.py --memory)"


def _memory_check(args: argparse.Namespace) -> None:
    """Peak extra RSS of `mmd_test` and `mmd2` on two 46 MiB inputs under an 8 MiB budget."""
    n, d, budget = 2000, 3000, 8 * MIB
    args.dim, args.n_permutations = d, 100
    if args.max_wait is None:
        args.max_wait = 60.0
    results_path = args.results or HERE / "RESULTS.md"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_mmd_mem_") as tmpdir:
        tmp = Path(tmpdir)
        shutil.copytree(
            Path(args.code or REPO) / "shiftkit",
            tmp / "src" / "shiftkit",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        args.src = str(tmp / "src")
        data = _make_data(n, d, args.shift, args.seed, tmp)
        for function in ("mmd_test", "mmd2"):
            args.function = function
            res = _shiftkit(args, data, n, budget=budget, repeats=1)
            rows.append((function, res))
    input_mib = 2 * n * d * 8 / MIB
    lines = [MEMORY_SECTION, ""]
    lines.append(f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    machine = _machine()
    lines.append(f"- Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['mem']} RAM")
    lines.append(
        f"- Data: x, y ~ N(0, I_{d}) (y shifted by {args.shift} on its first coordinate), n = m = {n}, "
        f"float64: {input_mib / 2:.1f} MiB each, {input_mib:.1f} MiB together; memory_budget = "
        f"{budget // MIB} MiB; mmd_test with {args.n_permutations} permutations, seed {args.seed}."
    )
    lines.append(
        "- Peak extra RSS: peak resident memory during the call minus the resident memory just before "
        "it, in a fresh process per row (peak counter reset via /proc/self/clear_refs)."
    )
    lines.append(
        "- Target (issue 9, item 11): growth below the inputs' size plus a few budgets "
        f"({input_mib:.0f} + 4 x {budget // MIB} = {input_mib + 4 * budget / MIB:.0f} MiB). Before the fix "
        "(commit 9d9d80e, measured with `--memory --code <that checkout>` on this machine): mmd_test "
        "439 MiB in 94 s, mmd2 297 MiB in 28 s (the issue measured 314 MiB)."
    )
    lines.append("")
    lines.append("| function | time (s) | peak extra RSS (MiB) | target met | computation |")
    lines.append("|---|---:|---:|---|---|")
    for function, res in rows:
        if _ok(res):
            peak = res["peak_extra_rss_mib"]
            met = "yes" if peak < input_mib + 4 * budget / MIB else "NO"
            lines.append(f"| {function} | {res['seconds']:.1f} | {peak:.0f} | {met} | {res['computation']} |")
        else:
            lines.append(f"| {function} | FAILED | - | - | `{res['error']}` |")
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    if args.code is None:
        write_section(results_path, MEMORY_SECTION, report)
        print(f"wrote section '{MEMORY_SECTION}' to {results_path}")


FLOOR_SECTION = "## MMD speed against the numpy floor (bench_mmd.py --floor)"


def _floor_check(args: argparse.Namespace) -> None:
    """Issue 12: `mmd_test` at n = m = 2000, d = 32 within 1.5x of the numpy floor at P = 100 and 1000."""
    n = 2000
    args.dim = 32
    if args.max_wait is None:
        args.max_wait = 60.0
    results_path = args.results or HERE / "RESULTS.md"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_mmd_floor_") as tmpdir:
        tmp = Path(tmpdir)
        shutil.copytree(
            REPO / "shiftkit",
            tmp / "src" / "shiftkit",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        data = _make_data(n, args.dim, args.shift, args.seed, tmp)
        for n_perm in (100, 1000):
            cmd = [
                sys.executable, str(Path(__file__).resolve()), "--one", str(n), "--data", str(data),
                "--function", "floor", "--n-permutations", str(n_perm), "--seed", str(args.seed),
                "--repeats", str(args.floor_repeats), "--src", str(tmp / "src"),
            ] + _quiet_args(args)
            res = _run_json(cmd, f"floor vs mmd_test, P={n_perm}", args.timeout)
            if _ok(res):
                print(
                    f"    floor {res['floor_seconds']:.3f} s, mmd_test {res['shiftkit_seconds']:.3f} s, "
                    f"ratio {res['ratio_median']:.2f} (others busy {res['others_busy']:.0%})",
                    flush=True,
                )
            rows.append((n_perm, res))
    machine = _machine()
    lines = [FLOOR_SECTION, ""]
    lines.append(f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    lines.append(f"- Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['mem']} RAM (shared)")
    lines.append(
        f"- Data: x, y ~ N(0, I_{args.dim}), y shifted by {args.shift} on its first coordinate, n = m = {n}, "
        f"float64, seed {args.seed}. Target row: `mmd_test(x, y, n_permutations=P, seed={args.seed}, "
        "bandwidth=None)`, one Gaussian kernel with the median heuristic, 1 GiB budget. For information: "
        "mmd_test's default since issue 12 (`bandwidth='auto'`: the aggregated test over 5 bandwidths), "
        "timed in the same alternation."
    )
    lines.append(
        "- Floor (issue 12): numpy alone, the pooled 4000 x 4000 kernel (squared distances from one "
        "matrix product and the norms, then exp) plus one (4000 x 4000) @ (4000 x P) product with a "
        "+-1/n matrix built beforehand (untimed). No median, no permutation draws."
    )
    lines.append(
        f"- Method: one process per P; after a warm-up, floor and mmd_test alternate {args.floor_repeats} "
        "times (so both see the same machine load); the ratio is the median of the per-pair ratios. "
        "'others busy': the largest share of the CPUs other processes used during a timed run."
    )
    lines.append("")
    lines.append(
        "| P | floor (s, median) | mmd_test, median kernel (s) | ratio (median of pairs) | ratio of minima "
        "| others busy | target <= 1.5x | default (aggregated, 5 kernels) (s) | its ratio |"
    )
    lines.append("|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for n_perm, res in rows:
        if _ok(res):
            met = "met" if res["ratio_median"] <= 1.5 else "NOT met"
            lines.append(
                f"| {n_perm} | {res['floor_seconds']:.3f} | {res['shiftkit_seconds']:.3f} | "
                f"{res['ratio_median']:.2f} | {res['ratio_of_minima']:.2f} | {res['others_busy']:.0%} | {met} | "
                f"{res['default_seconds']:.3f} | {res['default_ratio_median']:.2f} |"
            )
        else:
            lines.append(f"| {n_perm} | FAILED | - | - | - | - | `{res['error']}` | - | - |")
    lines.append("")
    lines.append(
        "- Before issue 12 the issue measured 0.69 s against a 0.18 s floor at P = 100 (3.9x): the median "
        "heuristic took a second pass over the data and the row sums of K a separate one. Now the "
        "distance matrix is one product of norm-augmented rows written in place (the floor's "
        "formula needs three more passes over it), the median is read off it (same seeded "
        "2000-point subsample, same value), 1'K1 and the row sums come from the A'K product (a row "
        "of ones added), and the indicator rows are filled in one scatter; p-values for a given seed "
        "are unchanged. That is why the ratio can be below 1."
    )
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    write_section(results_path, FLOOR_SECTION, report)
    print(f"wrote section '{FLOOR_SECTION}' to {results_path}")


STREAM_SECTION = "## Streamed check of a 10-million-row target (bench_mmd.py --stream)"
STREAM_JSON = HERE / "RESULTS_stream.json"


def _write_table(path: Path, n_rows: int, n_cols: int, seed: int, shift: float, chunk: int = 500_000) -> float:
    """Write a seeded (n_rows x n_cols) float32 table with a 3-class label, in chunks; returns seconds."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    names = [f"f{j}" for j in range(n_cols)]
    schema = pa.schema([(c, pa.float32()) for c in names] + [("label", pa.string())])
    classes = np.array(["a", "b", "c"])
    p = [0.5, 0.3, 0.2] if shift == 0 else [0.45, 0.3, 0.25]
    writer = pq.ParquetWriter(path, schema) if path.suffix == ".parquet" else pacsv.CSVWriter(path, schema)
    with writer:
        for start in range(0, n_rows, chunk):
            m = min(chunk, n_rows - start)
            x = rng.normal(size=(m, n_cols)).astype(np.float32)
            x[:, 0] += np.float32(shift)
            cols = [pa.array(x[:, j]) for j in range(n_cols)] + [pa.array(classes[rng.choice(3, size=m, p=p)])]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
    return time.perf_counter() - started


def _measured_child(args: argparse.Namespace) -> None:
    """Internal (--measure-cmd): run a command, print its wall time and peak RSS (RUSAGE_CHILDREN) as JSON."""
    import resource

    cmd = json.loads(args.measure_cmd)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    print("BENCH_JSON " + json.dumps({"seconds": wall, "peak_rss_bytes": peak, "returncode": proc.returncode,
                                      "stdout_tail": proc.stdout[-2000:], "stderr_tail": proc.stderr[-2000:]}))


def _measured(cmd: list[str], label: str, timeout: float) -> dict:
    """`cmd` in a fresh measuring process (its own RUSAGE_CHILDREN): seconds, peak RSS, exit code."""
    return _run_json([sys.executable, str(Path(__file__).resolve()), "--measure-cmd", json.dumps(cmd)], label, timeout)


_IN_MEMORY = """
import json, sys
from shiftkit.check import Reference, check_shift
from shiftkit.files import load_single, read_path
snap, target, out = sys.argv[1], sys.argv[2], sys.argv[3]
reference = Reference.load(snap)
name, data = read_path(target, max_bytes=8 << 30)
t = load_single(data, name, label_column="label", feature_names=reference.feature_names,
                class_names=reference.class_names, max_bytes=8 << 30)
open(out, "w").write(check_shift(reference, t.x, t.y).to_json())
"""


def _stream_check(args: argparse.Namespace) -> None:
    """Issue 12: `shiftkit check` streaming a 10^7 x 20 target (CSV and Parquet): wall time and peak RSS."""
    results_path = args.results or HERE / "RESULTS.md"
    machine = _machine()
    n, d = args.stream_rows, args.stream_cols
    out: dict = {"rows": n, "columns": d, "chunk_rows": args.chunk_rows, "machine": machine, "runs": {}}
    env_cli = [sys.executable, "-m", "shiftkit"]
    with tempfile.TemporaryDirectory(prefix="bench_stream_", dir=args.stream_dir) as tmpdir:
        tmp = Path(tmpdir)
        ref = tmp / "reference.parquet"
        _write_table(ref, args.stream_reference_rows, d, seed=1, shift=0.0)
        snap = tmp / "snapshot.npz"
        res = _measured(env_cli + ["snapshot", "--reference", str(ref), "--label-column", "label", "--out", str(snap)],
                        f"snapshot of {args.stream_reference_rows} rows", args.timeout)
        out["snapshot"] = res
        # same verdict as in memory on a file that fits
        small = tmp / "fits.csv"
        _write_table(small, args.stream_check_rows, d, seed=2, shift=args.stream_shift)
        streamed = _measured(env_cli + ["check", "--reference", str(snap), "--target", str(small), "--label-column",
                                        "label", "--json", str(tmp / "streamed.json")], "streamed check (fits)",
                             args.timeout)
        memory = _measured([sys.executable, "-c", _IN_MEMORY, str(snap), str(small), str(tmp / "memory.json")],
                           "in-memory check (fits)", args.timeout)
        same = None
        if (tmp / "streamed.json").exists() and (tmp / "memory.json").exists():
            a = json.loads((tmp / "streamed.json").read_text())
            b = json.loads((tmp / "memory.json").read_text())
            a.pop("shiftkit_version"), b.pop("shiftkit_version")
            same = a == b
        out["fits"] = {"rows": args.stream_check_rows, "streamed": streamed, "in_memory": memory, "same_result": same}
        for fmt in args.stream_formats:
            target = tmp / f"target.{fmt}"
            gen = _write_table(target, n, d, seed=3, shift=args.stream_shift)
            size = target.stat().st_size
            print(f"  wrote {target.name}: {size / 2**30:.2f} GiB in {gen:.0f} s", flush=True)
            res = _measured(env_cli + ["check", "--reference", str(snap), "--target", str(target), "--label-column",
                                       "label", "--chunk-rows", str(args.chunk_rows), "--json", str(tmp / f"{fmt}.json")],
                            f"streamed check of {n} rows ({fmt})", args.timeout)
            if (tmp / f"{fmt}.json").exists():
                data = json.loads((tmp / f"{fmt}.json").read_text())
                res["passed"] = data["passed"]
                res["failed_criteria"] = data["failed_criteria"]
                res["target_rows"] = data["subsampling"]["target_rows"]
            res["file_bytes"] = size
            res["generation_seconds"] = gen
            out["runs"][fmt] = res
            target.unlink()
    STREAM_JSON.write_text(json.dumps(out, indent=1, default=str) + "\n")
    lines = [STREAM_SECTION, ""]
    lines.append(f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    lines.append(f"- Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['mem']} RAM (shared with other jobs)")
    lines.append(
        f"- Data: target {n:,} rows x {d} float32 features + a 3-class label, seeded, the first feature shifted by "
        f"{args.stream_shift} and the class proportions moved (0.5/0.3/0.2 -> 0.45/0.3/0.25); written in chunks "
        f"(pyarrow). Snapshot of a {args.stream_reference_rows:,}-row unshifted reference (`shiftkit snapshot`, "
        "itself streamed).")
    lines.append(
        f"- Command: `shiftkit check --reference snapshot.npz --target target.{{csv,parquet}} --label-column label "
        f"--chunk-rows {args.chunk_rows} --json out.json` (defaults otherwise: 1000 permutations, max_samples 2000, "
        "diagnosis on), in a fresh process; wall time of the whole process (Python and TensorFlow start "
        "included) and its peak RSS (`getrusage(RUSAGE_CHILDREN).ru_maxrss` of a parent that ran only it).")
    lines.append("")
    lines.append("| target | file size | wall time (s) | peak RSS (MiB) | target <= 2 GiB | rows checked | verdict |")
    lines.append("|---|---:|---:|---:|---|---:|---|")
    for fmt, res in out["runs"].items():
        if _ok(res) and res.get("returncode") in (0, 1):
            peak = res["peak_rss_bytes"] / MIB
            verdict = "PASS" if res.get("passed") else "FAIL: " + ", ".join(res.get("failed_criteria", []))
            lines.append(f"| {fmt} | {res['file_bytes'] / 2**30:.2f} GiB | {res['seconds']:.0f} | {peak:.0f} | "
                         f"{'met' if peak < 2048 else 'NOT met'} | {res.get('target_rows', '?'):,} | {verdict} |")
        else:
            lines.append(f"| {fmt} | - | FAILED | - | - | - | `{res.get('error') or res.get('stderr_tail', '')[-200:]}` |")
    fits = out["fits"]
    lines.append("")
    if fits["same_result"] is None:
        lines.append(f"- Same result as in memory on a {fits['rows']:,}-row CSV: not compared (a run failed).")
    else:
        lines.append(
            f"- Same result as in memory on a {fits['rows']:,}-row CSV (the same snapshot; the in-memory path is "
            "`load_single` + `check_shift`): criteria (values, p-values, verdict) "
            + ("identical." if fits["same_result"] else "DIFFERENT.")
            + f" Streamed {fits['streamed'].get('seconds', float('nan')):.0f} s / "
            f"{fits['streamed'].get('peak_rss_bytes', 0) / MIB:.0f} MiB, in memory "
            f"{fits['in_memory'].get('seconds', float('nan')):.0f} s / {fits['in_memory'].get('peak_rss_bytes', 0) / MIB:.0f} MiB.")
    lines.append(f"- Figures: {STREAM_JSON.name}.")
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    write_section(results_path, STREAM_SECTION, report)
    print(f"wrote section '{STREAM_SECTION}' to {results_path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Benchmark shiftkit.shift.mmd_test (and alibi-detect)."
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[500, 2000, 5000, 20000],
        help="n = m values for the permutation test (default: 500 2000 5000 20000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: n = 200, 100 permutations, no alibi, no extras, no results file",
    )
    parser.add_argument("--n-permutations", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument(
        "--shift",
        type=float,
        default=0.1,
        help="mean shift of y on its first coordinate",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs per size for n <= 5000 (median)",
    )
    parser.add_argument(
        "--alibi-python",
        type=Path,
        default=None,
        help=f"python of the alibi-detect venv (default: {DEFAULT_ALIBI_PYTHON} if present)",
    )
    parser.add_argument("--alibi-sizes", type=int, nargs="+", default=[500, 2000, 5000])
    parser.add_argument(
        "--alibi-always-up-to",
        type=int,
        default=2000,
        help="larger alibi sizes are probed first and run only if estimated under "
        "--alibi-max-seconds",
    )
    parser.add_argument("--alibi-max-seconds", type=float, default=300.0)
    parser.add_argument("--no-alibi", action="store_true")
    parser.add_argument(
        "--no-extras", action="store_true", help="skip the linear / row-block runs"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results file to update (default benchmarks/RESULTS.md; not written with "
        "--quick unless given)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per subprocess"
    )
    parser.add_argument(
        "--quiet-threshold",
        type=float,
        default=0.25,
        help="before each timed run, wait until the CPUs are less busy than this",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="longest wait (s) for a quiet machine before timing anyway "
        "(default 300; 0 with --quick)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="only the memory-budget check (issue 9, item 11): two 46 MiB inputs (n = m = 2000, "
        "d = 3000), memory_budget = 8 MiB, mmd_test (100 permutations) and mmd2; writes its own "
        "section of RESULTS.md",
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=None,
        help="with --memory: a directory holding the shiftkit package to measure (e.g. an older "
        "checkout, for a before/after figure); default this checkout. Nothing is written then.",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="only the speed check of issue 12: mmd_test at n = m = 2000, d = 32 against the numpy "
        "floor (kernel + one K @ W product) at 100 and 1000 permutations; writes its own section",
    )
    parser.add_argument("--floor-repeats", type=int, default=7, help="alternating timed pairs per P")
    parser.add_argument(
        "--bandwidth",
        choices=("median", "agg"),
        default="median",
        help="mmd_test's bandwidth in the timed rows: 'median' (one median-heuristic kernel, "
        "bandwidth=None; the default here, comparable with alibi-detect) or 'agg' (the aggregated "
        "test, mmd_test's own default since issue 12)",
    )
    parser.add_argument(
        "--rff",
        action="store_true",
        help="only the 10^6-row random-feature MMD row of issue 12: runs benchmarks/bench_rff.py (its own "
        "section of RESULTS.md and RESULTS_rff.json); extra arguments after -- go to it",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="only the streamed-check row of issue 12: `shiftkit check` on a 10^7 x 20 target, CSV and "
        "Parquet, wall time and peak RSS; writes its own section and RESULTS_stream.json",
    )
    parser.add_argument("--stream-rows", type=int, default=10_000_000)
    parser.add_argument("--stream-cols", type=int, default=20)
    parser.add_argument("--stream-reference-rows", type=int, default=100_000)
    parser.add_argument("--stream-check-rows", type=int, default=200_000,
                        help="rows of the target that fits in memory (streamed vs in-memory result)")
    parser.add_argument("--stream-shift", type=float, default=0.05)
    parser.add_argument("--stream-formats", nargs="+", default=["parquet", "csv"], choices=["parquet", "csv"])
    parser.add_argument("--stream-dir", default=None, help="where the generated files go (default: the temp dir)")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--measure-cmd", default=None, help=argparse.SUPPRESS)
    # Internal: one configuration in a fresh process.
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=str, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="permutation", help=argparse.SUPPRESS)
    parser.add_argument(
        "--memory-budget", type=int, default=None, help=argparse.SUPPRESS
    )
    parser.add_argument("--src", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--function", default="mmd_test", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if rest and not args.rff:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.measure_cmd is not None:
        _measured_child(args)
        return
    if args.rff:
        sys.exit(subprocess.call([sys.executable, str(HERE / "bench_rff.py")] + [a for a in rest if a != "--"]))
    if args.stream:
        _stream_check(args)
        return
    if args.one is not None:
        if args.data is None:  # standalone use: generate the data here
            args.data = str(
                _make_data(
                    args.one, args.dim, args.shift, args.seed, Path(tempfile.mkdtemp())
                )
            )
        _child(args)
        return

    if args.memory:
        _memory_check(args)
        return
    if args.floor:
        _floor_check(args)
        return
    if args.quick:
        args.sizes, args.n_permutations, args.no_alibi, args.no_extras = (
            [200],
            100,
            True,
            True,
        )
    if args.max_wait is None:
        args.max_wait = 0.0 if args.quick else 300.0
    results_path = args.results or (None if args.quick else HERE / "RESULTS.md")
    alibi_note = None
    if not args.no_alibi:
        if args.alibi_python is None and DEFAULT_ALIBI_PYTHON.exists():
            args.alibi_python = DEFAULT_ALIBI_PYTHON
        if args.alibi_python is None or not Path(args.alibi_python).exists():
            alibi_note = (
                f"skipped: no alibi-detect python at {args.alibi_python or DEFAULT_ALIBI_PYTHON} "
                "(see this script's docstring to create benchmarks/.venv-alibi)"
            )
            print(f"note: alibi-detect comparison {alibi_note}", flush=True)
            args.no_alibi = True
    else:
        alibi_note = "not run (--no-alibi/--quick)"

    machine = _machine()
    print(f"machine: {machine}", flush=True)
    started = time.perf_counter()
    rows, extras = [], []
    with tempfile.TemporaryDirectory(prefix="bench_mmd_") as tmpdir:
        tmp = Path(tmpdir)
        # Every child imports this snapshot of shiftkit/, so all rows measure the same code even
        # while the working tree is being edited.
        shutil.copytree(
            REPO / "shiftkit",
            tmp / "src" / "shiftkit",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        args.src = str(tmp / "src")
        args.snapshot_time = _dt.datetime.now(_dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
        for n in args.sizes:
            data = _make_data(n, args.dim, args.shift, args.seed, tmp)
            row = {"n": n, "sk": _shiftkit(args, data, n)}
            if not args.no_alibi and n in args.alibi_sizes:
                row["al"] = _alibi(args, data, n)
            rows.append(row)
        if not args.no_extras:
            for n in (20000, 200000):
                data = _make_data(n, args.dim, args.shift, args.seed, tmp)
                extras.append(
                    (
                        f'n = m = {n}, method="linear"',
                        _shiftkit(args, data, n, method="linear", repeats=3),
                    )
                )
            data = _make_data(2000, args.dim, args.shift, args.seed, tmp)
            for budget, what in (
                (None, "default budget (1 GiB): full kernel"),
                (192 * MIB, "memory_budget=192 MiB: row blocks, 1 permutation batch"),
                (32 * MIB, "memory_budget=32 MiB: row blocks, several batches"),
            ):
                extras.append(
                    (
                        f"n = m = 2000, {what}",
                        _shiftkit(args, data, 2000, budget=budget),
                    )
                )

    report = _report(args, machine, rows, extras, alibi_note)
    print()
    print(report)
    print(f"(total benchmark wall time {time.perf_counter() - started:.0f} s)")
    if results_path is not None:
        write_section(results_path, SECTION, report)
        print(f"wrote section '{SECTION}' to {results_path}")
        if not args.no_extras:  # the full run also refreshes the floor rows
            _floor_check(args)


if __name__ == "__main__":
    main()
