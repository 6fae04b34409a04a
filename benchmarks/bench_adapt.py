"""Benchmark of shiftkit's adapters on corrupted digits, over seeds, with ADAPT's methods as peers.

What it measures:
    * Target-test accuracy of the scenario of `examples/digits_shift.py` (source: clean scikit-learn
      digits; target: the same digits through a defocused scanner, blur severity 5) for source-only,
      `CopyAdapter` and `FineTuneAdapter` (10 target labels per class), `MMDAdapter` (no target
      labels), and a control: MMDAdapter's training with `mmd_weight=0` (more source training, no
      alignment). Mean +- std over several seeds; each seed changes the split, the corruption noise,
      the labelled sample and the initial weights. The pipeline is the example's own
      (`digits_shift.run_experiment`), so the example and the benchmark cannot drift apart.
    * Peers: ADAPT ("Awesome Domain Adaptation Python Toolbox", PyPI `adapt`) DANN and DeepCORAL (no
      target labels, like MMDAdapter) and FineTuning (the same 10 labels per class, like
      FineTuneAdapter), on the same arrays (saved to a temporary .npz), the same CNN rebuilt in the
      ADAPT virtualenv with the same trained source weights, the same epochs, batch sizes and rates.
      They run in a subprocess with the virtualenv's python (`benchmarks/_adapt_peer_runner.py`).
    * Per-epoch wall time of each adapter's training against a plain `model.fit` of the same CNN (all
      layers trainable, Adam) on the same arrays with the same batch size: the median over the epochs
      after the first (the first one traces the graph). Ratio = adapter / plain.

Setting up the ADAPT virtualenv (once; `.venv*/` is gitignored):
    python -m venv benchmarks/.venv-adapt
    benchmarks/.venv-adapt/bin/pip install adapt

Usage:
    python benchmarks/bench_adapt.py                      # full run, writes its section of RESULTS.md
    python benchmarks/bench_adapt.py --quick --no-peers --results /tmp/r.md   # smoke run, < 1 min
    python benchmarks/bench_adapt.py --seeds 0 1 2 --no-timing
    python benchmarks/bench_adapt.py defaults            # adapter defaults on 5 held-out scenarios x 3 seeds
    python benchmarks/bench_adapt.py defaults --fast --no-results   # smoke run of that table, ~1-2 min
    python benchmarks/bench_adapt.py uda                 # every label-free adapter + the automatic choice, 7 shifts x 5 seeds
    python benchmarks/bench_adapt.py uda --fast --no-results --seeds 0   # smoke run of that suite

The "defaults" table (issue 9): CopyAdapter and FineTuneAdapter called with their DEFAULT arguments
(`CopyAdapter(m).fit(x_few, y_few)`), 10 target labels per class, on five scenarios none of which chose
the defaults (`_defaults_scenarios.py`: digits blur / rotation+contrast+noise / pixel noise with a
BatchNorm CNN, a GRU with a sensor-placement shift, breast-cancer hospitals with an MLP), against
source only, the best of a learning-rate grid (only the rate changed) and a plain by-hand Keras
fine-tune with the same labels and epoch budget; PASS/FAIL per scenario for the issue's criteria.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "examples"))
if str(HERE) not in sys.path:  # _results, _defaults_scenarios (also when imported, not run as a script)
    sys.path.insert(0, str(HERE))

import digits_shift as ex  # examples/digits_shift.py: the pipeline under test

DEFAULT_PEER_PYTHON = HERE / ".venv-adapt" / "bin" / "python"
PEER_RUNNER = HERE / "_adapt_peer_runner.py"
DEFAULT_RESULTS = HERE / "RESULTS.md"
from _results import machine_info, write_section  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

SECTION = "## Adapters on corrupted digits (bench_adapt.py)"
SHIFTKIT_METHODS = ex.METHODS + (ex.MMD_CONTROL,)
PEER_METHODS = ("DANN", "DANN lambda 0.01", "DeepCORAL", "FineTuning")
PEER_LABEL = {m: f"ADAPT {m}" for m in PEER_METHODS}
PEER_LABEL["DANN lambda 0.01"] = "ADAPT DANN (λ=0.01)"
PEER_LABEL["DANN"] = "ADAPT DANN (λ=0.1)"
PEER_TIMEOUT_S = 900

# Quick (smoke) settings: the same code path with tiny epochs.
QUICK = {**ex.FAST, "source_epochs": 4, "head_epochs": 6, "fine_tune_epochs": 3, "mmd_epochs": 2,
         "n_permutations": 50}


# --------------------------------------------------------------------------------------------- helpers
def make_timer() -> Any:
    """A Keras callback recording each epoch's wall time in `.times` (one list per `fit` call)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.runs: list[list[float]] = []

        def on_train_begin(self, logs: Any = None) -> None:
            self.runs.append([])

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.runs[-1].append(time.perf_counter() - self._t0)

    return EpochTimer()


def median_after_first(times: list[float]) -> float:
    return statistics.median(times[1:]) if len(times) > 1 else float("nan")


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def wait_for_quiet(threshold: float = 0.3, max_wait: float = 120.0) -> None:
    """Wait (bounded) until other processes use < `threshold` of the CPUs, when `_measure` is there."""
    try:
        sys.path.insert(0, str(HERE))
        from _measure import wait_quiet

        wait_quiet(threshold, max_wait)
    except Exception as exc:  # noqa: BLE001 - best effort: the footnote reports the load anyway
        print(f"  (could not check the machine's load: {exc})")


def others_busy_meter() -> Any:
    """`_measure.Meter` (CPU share of other processes during a region) when available."""
    try:
        sys.path.insert(0, str(HERE))
        from _measure import Meter

        return Meter()
    except Exception:  # noqa: BLE001 - the share is a footnote; the timing does not depend on it
        return None


# --------------------------------------------------------------------------------------------- peers
def check_peer_python(python: Path) -> tuple[bool, str]:
    """Whether `python` exists and imports adapt; the reason (stderr tail) when not."""
    if not python.exists():
        return False, (f"no ADAPT virtualenv at {python.relative_to(REPO) if python.is_relative_to(REPO) else python} "
                       "(create it: `python -m venv benchmarks/.venv-adapt && "
                       "benchmarks/.venv-adapt/bin/pip install adapt`)")
    code = ("import importlib.metadata as m, adapt, tensorflow as tf, keras, numpy as np; "
            "print(m.version('adapt'), tf.__version__, keras.__version__, np.__version__)")
    try:
        proc = subprocess.run([str(python), "-c", code], check=False, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        return False, f"`{python} -c 'import adapt'` did not finish in 300 s"
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-3:])
        return False, f"`import adapt` failed in {python}: {tail}"
    versions = proc.stdout.strip().splitlines()[-1].split()
    return True, f"adapt {versions[0]}, TensorFlow {versions[1]}, Keras {versions[2]}, numpy {versions[3]}"


def run_peers(python: Path, result: dict[str, Any], cfg: dict[str, Any], seed: int, tmp: Path) -> dict[str, Any]:
    """Save the seed's arrays and source weights, run the ADAPT runner on them, return its JSON."""
    import numpy as np

    data = result["data"]
    config = {
        "seed": seed,
        "n_classes": int(data["y_source"].max()) + 1,
        "head_epochs": cfg["head_epochs"], "head_learning_rate": cfg["head_learning_rate"],
        "fine_tune_epochs": cfg["fine_tune_epochs"], "fine_tune_learning_rate": cfg["fine_tune_learning_rate"],
        "labeled_batch_size": 32,
        "mmd_epochs": cfg["mmd_epochs"], "mmd_learning_rate": cfg["mmd_learning_rate"], "mmd_batch_size": 64,
    }
    arrays = {k: data[k] for k in ("x_source", "y_source", "x_target_adapt", "x_labeled", "y_labeled",
                                   "x_target_test", "y_target_test")}
    weights = {f"w{i}": w for i, w in enumerate(result["source_model"].get_weights())}
    npz = tmp / f"seed{seed}.npz"
    out = tmp / f"seed{seed}.json"
    np.savez(npz, config=json.dumps(config), **arrays, **weights)
    try:
        proc = subprocess.run([str(python), str(PEER_RUNNER), "--data", str(npz), "--out", str(out)],
                              check=False, capture_output=True, text=True, timeout=PEER_TIMEOUT_S,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        return {"error": f"peer runner did not finish in {PEER_TIMEOUT_S} s"}
    if proc.returncode != 0 or not out.exists():
        return {"error": f"peer runner exited {proc.returncode}: " + " ".join(proc.stderr.strip().splitlines()[-3:])}
    return json.loads(out.read_text())


# --------------------------------------------------------------------------------------------- timing
def time_epochs(result: dict[str, Any], cfg: dict[str, Any], seed: int, epochs: int, rounds: int) -> list[dict[str, Any]]:
    """Per-epoch wall time of each adapter vs a plain `model.fit` of the same CNN on the same arrays.

    Each configuration runs once per round, rounds interleaved; a configuration's figure is its lowest
    per-round median of the epochs after the first (the least disturbed by other processes).
    """
    import keras

    data, source = result["data"], result["source_model"]
    tcfg = {**cfg, "head_epochs": epochs, "fine_tune_epochs": epochs, "mmd_epochs": epochs}

    def plain(x: Any, y: Any, batch_size: int) -> list[list[float]]:
        keras.utils.set_random_seed(seed)
        model = keras.models.clone_model(source)
        model.set_weights(source.get_weights())
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        timer = make_timer()
        model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[timer])
        return timer.runs

    def adapter(method: str) -> list[list[float]]:
        timer = make_timer()
        ex.fit_adapter(method, source, data, tcfg, seed=seed, callbacks=[timer])
        return timer.runs

    n_l, n_s, n_t = len(data["x_labeled"]), len(data["x_source"]), len(data["x_target_adapt"])
    configs = [  # (label, data text, run, which fit call of the run, baseline label)
        ("plain model.fit (labelled target, batch 32)", f"{n_l} labelled",
         lambda: plain(data["x_labeled"], data["y_labeled"], 32), 0, "L"),
        ("CopyAdapter.fit (base frozen)", f"{n_l} labelled", lambda: adapter("CopyAdapter"), 0, "L"),
        ("FineTuneAdapter stage 1 (head)", f"{n_l} labelled", lambda: adapter("FineTuneAdapter"), 0, "L"),
        ("FineTuneAdapter stage 2 (all layers)", f"{n_l} labelled", None, 1, "L"),  # same run as stage 1
        ("plain model.fit (source, batch 64)", f"{n_s} source",
         lambda: plain(data["x_source"], data["y_source"], 64), 0, "S"),
        ("MMDAdapter.fit (+64 target images/step, MMD^2)", f"{n_s} source + {n_t} target",
         lambda: adapter("MMDAdapter"), 0, "S"),
    ]
    medians: dict[str, list[float]] = {c[0]: [] for c in configs}
    for _ in range(rounds):
        runs = None
        for label, _, run, call, _ in configs:
            if run is not None:
                runs = run()
            medians[label].append(median_after_first(runs[call]) if len(runs) > call else float("nan"))
    best = {label: min(values) for label, values in medians.items()}
    baseline = {"L": best[configs[0][0]], "S": best[configs[4][0]]}
    return [{"what": label, "data": text, "median": best[label], "baseline": baseline[base],
             "all": medians[label]} for label, text, _, _, base in configs]


# --------------------------------------------------------------------------------------------- report
def versions() -> dict[str, str]:
    import keras
    import numpy as np
    import sklearn
    import tensorflow as tf

    import shiftkit

    return {"shiftkit": shiftkit.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def _fmt(mean: float, std: float) -> str:
    return "n/a" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"


def build_section(args: argparse.Namespace, cfg: dict[str, Any], seeds: list[int], acc: dict[str, dict[int, float]],
                  fit_s: dict[str, list[float]], feat: dict[str, list[float]], src_acc: list[float],
                  labels: dict[str, str], peer_status: dict[str, Any], timing: list[dict[str, Any]] | None,
                  timing_busy: float | None, wall: float, n_source: int) -> str:
    machine = machine_info()
    vers = versions()
    lines = [SECTION, ""]
    lines.append(f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    lines.append(f"- Machine: {machine['nproc']} cores (os.cpu_count), {machine['cpu']}, {machine['mem']} RAM, "
                 f"{machine['os']}, CPU only")
    lines.append(f"- Versions: Python {machine['python']}, " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    lines.append(f"- Command: `{args.command}` ({wall / 60:.1f} min)")
    lines.append(f"- Scenario: `examples/digits_shift.py`: source = clean scikit-learn digits "
                 f"({n_source} training images for seed {seeds[0]}, CNN Conv16-Conv32-Pool-Dense64-"
                 f"Dense10); target = the other half through {ex.SCANNER} "
                 f"(`digits_corrupted(corruption={ex.CORRUPTION!r}, severity={ex.SEVERITY})`), "
                 "split into target-adapt (what adapters see) and a disjoint target-test split (scored).")
    lines.append(f"- Settings: source {cfg['source_epochs']} epochs; Copy / FineTune head {cfg['head_epochs']} epochs "
                 f"at {cfg['head_learning_rate']:g}, FineTune stage 2 {cfg['fine_tune_epochs']} epochs at "
                 f"{cfg['fine_tune_learning_rate']:g} (batch 32, {cfg['labels_per_class']} labels/class); MMD "
                 f"{cfg['mmd_epochs']} epochs at {cfg['mmd_learning_rate']:g}, weight {cfg['mmd_weight']:g}, batch "
                 f"64 per domain. Seeds {', '.join(map(str, seeds))} (the example's head rate and epochs were "
                 "chosen on seeds 0-2, so the benchmark's default seeds are 10-14).")
    lines.append("")
    lines.append(f"### Target-test accuracy, mean ± std over {len(seeds)} seeds")
    lines.append("")
    lines.append(f"Held-out source accuracy of the source CNN: {_fmt(*mean_std(src_acc))}.")
    lines.append("")
    lines.append("| method | target labels | target-test accuracy | vs source only | feature MMD² normalized "
                 "(after) | fit time (s) | per seed |")
    lines.append("|---|---|---|---|---|---|---|")
    base = acc["source only"]
    for method, per_seed in acc.items():
        vals = [per_seed[s] for s in seeds if s in per_seed]
        if not vals:
            continue
        diffs = [per_seed[s] - base[s] for s in seeds if s in per_seed and s in base]
        delta = "" if method == "source only" else f"{statistics.fmean(diffs):+.3f}"
        f_vals = feat.get(method, [])
        f_txt = _fmt(*mean_std(f_vals)) if f_vals else "-"
        t_txt = f"{statistics.fmean(fit_s[method]):.1f}" if fit_s.get(method) else "-"
        per = " ".join(f"{per_seed[s]:.3f}" for s in seeds if s in per_seed)
        lines.append(f"| {method} | {labels.get(method, '')} | {_fmt(*mean_std(vals))} | {delta} | {f_txt} | "
                     f"{t_txt} | {per} |")
    lines.append("")
    lines.append("- Feature MMD² normalized: `adapter.shift_report(...)` on held-out source vs target-test "
                 "images, in the adapted model's feature space (source only: the source CNN's); lower = less "
                 "feature-space shift. CopyAdapter's base is the frozen source base, so its figure equals source "
                 "only's by construction; not measured for the ADAPT rows (their models live in the other "
                 "virtualenv).")
    lines.append("- Fit time: wall time of the training only (source only: training the source CNN; FineTune: "
                 "both stages; ADAPT: inside its virtualenv, TensorFlow import excluded).")
    lines.append(f"- `{ex.MMD_CONTROL}`: MMDAdapter with `mmd_weight=0`, the same training without the MMD term "
                 "(the source CNN trained further on source data): what MMDAdapter gains over it is alignment.")
    lines.append("")
    lines.append("### ADAPT peers")
    lines.append("")
    for line in peer_status["lines"]:
        lines.append(f"- {line}")
    lines.append("")
    if timing is not None:
        lines.append(f"### Per-epoch training time (seed {seeds[0]}, {args.timing_epochs} epochs per fit, median "
                     f"of epochs 2..{args.timing_epochs}, lowest of {args.timing_rounds} interleaved round(s))")
        lines.append("")
        lines.append("| training | data | median s / epoch | ratio to plain model.fit | all rounds |")
        lines.append("|---|---|---|---|---|")
        for row in timing:
            ratio = row["median"] / row["baseline"] if row["baseline"] > 0 else float("nan")
            rounds = " ".join(f"{v:.4f}" for v in row["all"])
            lines.append(f"| {row['what']} | {row['data']} | {row['median']:.4f} | {ratio:.2f} | {rounds} |")
        lines.append("")
        lines.append("- Plain `model.fit`: a fresh copy of the source CNN, all layers trainable, Adam, on the "
                     "same arrays and batch size as the adapter rows below it. An epoch on 100 labelled images "
                     "is 4 steps, so those rows mostly measure Keras's per-epoch overhead; an MMDAdapter step "
                     "runs 64 source + 64 target images through the network (plain: 64) plus the MMD^2 kernel.")
        if peer_status.get("epoch_rows"):
            for row in peer_status["epoch_rows"]:
                lines.append(f"- {row}")
        if timing_busy is not None:
            lines.append(f"- Other processes used {timing_busy:.0%} of the machine's CPU during the timing "
                         "(a shared 2-core machine; the ratios are more reliable than the absolute times).")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------- defaults
# `python benchmarks/bench_adapt.py defaults`: do the adapters' DEFAULT arguments work on scenarios
# that did not choose them? (issue 9, "Adapter defaults that work without tuning").
DEFAULTS_SECTION = "## Adapter defaults (bench_adapt.py defaults)"
DEFAULTS_JSON = HERE / "RESULTS_adapter_defaults.json"
DEFAULT_SEEDS = (100, 101, 102)  # none of them used by the examples or by the adapters' own tests
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
FAST_LR_GRID = (1e-3, 1e-2)
# The rate each adapter's grid varies (first name its signature has); everything else stays default.
GRID_RATE = {"CopyAdapter": ("learning_rate",), "FineTuneAdapter": ("fine_tune_learning_rate", "learning_rate")}
# --fast only (a smoke run of the harness, not a measurement): cap the epoch arguments that exist.
FAST_CAPS = {"epochs": 2, "head_epochs": 1, "max_epochs": 2}
TOL_GRID = 0.03  # default within this of the best grid point
TOL_BY_HAND = 0.02  # FineTune default within this of the by-hand Keras fine-tune (or better)


def _params(cls: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword parameters (name -> default) of `cls.__init__` and `cls.fit` (data keywords left out)."""
    from shiftkit.adapt.registry import DATA_KEYS

    def kw(fn: Any) -> dict[str, Any]:
        return {p.name: p.default for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("self", "x", "y",
                                                                                      "source_model", *DATA_KEYS)}

    return kw(cls.__init__), kw(cls.fit)


def grid_rate(cls: Any) -> str:
    """The learning-rate argument the grid varies for `cls` (looked up in its signature, not assumed)."""
    init, fit = _params(cls)
    for name in GRID_RATE[cls.__name__]:
        if name in init or name in fit:
            return name
    raise RuntimeError(f"{cls.__name__} has none of {GRID_RATE[cls.__name__]} in __init__ or fit")


def describe_defaults(cls: Any) -> str:
    """`Cls(__init__ defaults).fit(fit defaults)` as text: what 'pure defaults' meant in this run."""
    init, fit = _params(cls)
    skip = {"feature_layer", "head", "n_outputs", "validation_data", "class_weight", "sample_weight", "callbacks",
            "verbose"}

    def txt(d: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in d.items() if k not in skip and v is not inspect.Parameter.empty)

    return f"{cls.__name__}({txt(init)}).fit({txt(fit)})"


def defaults_in_effect() -> str:
    """The adapters' defaults as imported by this process: signatures and `shiftkit.adapt.base`'s constants.

    Recorded at the start, by every cell (worker processes import shiftkit on their own) and at the end:
    a run whose cells saw different defaults (the code changed meanwhile) is refused.
    """
    from shiftkit.adapt import CopyAdapter, FineTuneAdapter
    from shiftkit.adapt import training as adapt_base

    constants = ", ".join(f"{k}={getattr(adapt_base, k)!r}" for k in ("MAX_EPOCHS", "PATIENCE", "MIN_DELTA",
                                                                      "VALIDATION_SPLIT", "FALLBACK_EPOCHS")
                          if hasattr(adapt_base, k))
    return (f"`{describe_defaults(CopyAdapter)}`; `{describe_defaults(FineTuneAdapter)}`"
            + (f"; `shiftkit.adapt.training`: {constants}" if constants else ""))


def fit_adapter_with(cls: Any, source: Any, data: Any, seed: int, overrides: dict[str, Any] | None = None,
                     fast: bool = False) -> dict[str, Any]:
    """`cls(source, **init).fit(x_labeled, y_labeled, verbose=0, **fit)`; only `overrides` are not defaults.

    Each override goes to `__init__` or `fit`, wherever the adapter's signature has it. `fast` caps the
    epoch arguments (`FAST_CAPS`) for a smoke run. Returns the target-test accuracy, the epochs the
    adapter trained (rows of its history), its fit time and the arguments passed.
    """
    import keras
    import _defaults_scenarios as ds

    init_p, fit_p = _params(cls)
    overrides = dict(overrides or {})
    if fast:
        overrides.update({k: v for k, v in FAST_CAPS.items() if k in init_p or k in fit_p})
    init_kw = {k: v for k, v in overrides.items() if k in init_p}
    fit_kw = {k: v for k, v in overrides.items() if k not in init_p}
    unknown = set(fit_kw) - set(fit_p)
    if unknown:
        raise RuntimeError(f"{cls.__name__} takes none of {sorted(unknown)}")
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    adapter = cls(source, **init_kw).fit(data.x_labeled, data.y_labeled, verbose=0, **fit_kw)
    seconds = time.perf_counter() - t0
    total = len(adapter.history.get("loss", []))
    by_stage = getattr(adapter, "epochs_", None)  # epochs the final weights were trained for, per stage
    final = int(sum(by_stage.values())) if isinstance(by_stage, dict) else total
    return {"accuracy": ds.accuracy(adapter.model, data.x_test, data.y_test),
            "epochs": final, "epochs_total": total,
            "epochs_by_stage": {str(k): int(v) for k, v in by_stage.items()} if isinstance(by_stage, dict) else None,
            "seconds": seconds, "args": dict(overrides)}


def copy_by_hand(source: Any) -> Any:
    """The source model copied with plain Keras: `clone_model` + `set_weights`, then `finalize_state()`.

    `set_weights` alone is not enough in Keras 3 for a `Normalization` layer set up with `adapt()`:
    it restores the adapted mean/variance variables but the layer keeps normalising with the
    tensors it derived from them at build time, so the copy computes something else (measured on the
    hospitals MLP: 0.34 target accuracy for the copy vs 0.96 for the source). `finalize_state()` on
    every layer that has it rebuilds that derived state, as `keras.models.load_model` does.
    """
    import keras

    model = keras.models.clone_model(source)
    model.set_weights(source.get_weights())
    for layer in model.layers:
        finalize = getattr(layer, "finalize_state", None)
        if callable(finalize):
            finalize()
    return model


def fit_by_hand(scenario: Any, source: Any, data: Any, epochs: int, seed: int,
                freeze_batch_norm: bool = False) -> dict[str, Any]:
    """A plain Keras fine-tune: what a user writes without shiftkit.

    `copy_by_hand(source)` (clone, every weight copied: the Normalization / BatchNormalization state
    included), `compile(optimizer="adam", loss=<the source model's loss>)` (Adam at Keras's default
    1e-3), `fit(x_labeled, y_labeled, epochs=epochs, batch_size=32)`: all layers trainable,
    BatchNormalization in training mode (Keras's default in fit), no validation split, no early
    stopping, the last epoch's weights kept. `freeze_batch_norm` (a diagnostic, not the baseline):
    BatchNormalization layers set `trainable=False` first, so they run in inference mode with the
    source statistics, as inside FineTuneAdapter.

    Raises:
        RuntimeError: the copy does not predict what the source does (checked before training).
    """
    import keras
    import numpy as np

    import _defaults_scenarios as ds

    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    model = copy_by_hand(source)
    gap = float(np.max(np.abs(np.asarray(model.predict(data.x_test, batch_size=256, verbose=0))
                              - np.asarray(source.predict(data.x_test, batch_size=256, verbose=0)))))
    if gap > 1e-5:
        raise RuntimeError(f"the by-hand copy of the source model differs from it by {gap:.3g} on the test set")
    if freeze_batch_norm:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    model.compile(optimizer="adam", loss=scenario.loss, metrics=["accuracy"])
    if epochs > 0:  # 0 epochs: the source model itself (what a fit that chose 0 epochs returns too)
        model.fit(data.x_labeled, data.y_labeled, epochs=epochs, batch_size=32, verbose=0)
    return {"accuracy": ds.accuracy(model, data.x_test, data.y_test), "epochs": epochs,
            "seconds": time.perf_counter() - t0}


def run_defaults_cell(scenario: Any, seed: int, grid: tuple[float, ...], fast: bool,
                      progress: bool = False) -> dict[str, Any]:
    """One scenario x seed: source model, both adapters with defaults, the rate grids, the by-hand fine-tune.

    A grid point equal to the rate's default value is the very call already made with defaults (same
    arguments, same seed): its result is reused, not recomputed.
    """
    import _defaults_scenarios as ds
    from shiftkit.adapt import CopyAdapter, FineTuneAdapter

    data = scenario.make_data(seed)
    t0 = time.perf_counter()
    source = ds.train_source(scenario, data, seed)
    out: dict[str, Any] = {
        "seed": seed, "defaults": defaults_in_effect(), "n_source": len(data.y_source), "n_labeled": len(data.y_labeled), "n_test": len(data.y_test),
        "source_train_accuracy": ds.accuracy(source, data.x_source, data.y_source),
        "source_only": ds.accuracy(source, data.x_test, data.y_test),
        "source_seconds": time.perf_counter() - t0,
    }
    fit_seed = seed + 1  # the same random state for every fit of this cell: only the arguments differ

    def say(what: str, res: dict[str, Any]) -> None:
        if progress:
            print(f"    {scenario.name} seed {seed} {what}: {res['accuracy']:.3f}, {res.get('epochs')} epochs "
                  f"({res.get('epochs_total', res.get('epochs'))} run), {res['seconds']:.0f} s", flush=True)

    for cls in (CopyAdapter, FineTuneAdapter):
        name = cls.__name__
        default = fit_adapter_with(cls, source, data, fit_seed, fast=fast)
        say(f"{name} default", default)
        out[name] = {"default": default, "grid": {}}
        rate = grid_rate(cls)
        out[name]["grid_rate"] = rate
        init_p, fit_p = _params(cls)
        default_rate = {**fit_p, **init_p}[rate]
        for lr in grid:
            if not fast and isinstance(default_rate, float) and math.isclose(lr, default_rate, rel_tol=1e-12):
                out[name]["grid"][repr(lr)] = {**default, "reused_default": True}
                continue
            out[name]["grid"][repr(lr)] = fit_adapter_with(cls, source, data, fit_seed, {rate: lr}, fast=fast)
            say(f"{name} {rate}={lr:g}", out[name]["grid"][repr(lr)])
    ft = out["FineTuneAdapter"]["default"]
    out["by_hand"] = fit_by_hand(scenario, source, data, ft["epochs"], fit_seed)
    out["by_hand_all_epochs"] = (out["by_hand"] if ft["epochs_total"] == ft["epochs"] else
                                 fit_by_hand(scenario, source, data, ft["epochs_total"], fit_seed))
    import keras

    has_bn = any(isinstance(layer, keras.layers.BatchNormalization) for layer in source.layers)
    out["by_hand_bn_frozen"] = (fit_by_hand(scenario, source, data, ft["epochs"], fit_seed, freeze_batch_norm=True)
                                if has_bn else None)
    return out


def _defaults_cell_job(name: str, seed: int, grid: tuple[float, ...], fast: bool, progress: bool) -> dict[str, Any]:
    """`run_defaults_cell` for the scenario named `name` (a top-level function: runs in a worker process too)."""
    import _defaults_scenarios as ds

    try:
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # retracing warnings: many small models compiled in a row
    except Exception:  # noqa: BLE001 - cosmetic
        pass
    scenario = next(s for s in ds.scenarios(fast=fast) if s.name == name)
    t0 = time.perf_counter()
    cell = run_defaults_cell(scenario, seed, grid, fast, progress=progress)
    cell["cell_seconds"] = time.perf_counter() - t0
    return cell


def summarize_defaults(cells: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per scenario: mean/sd of every column, the best grid point (by mean over seeds) and the criteria."""
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in cells.items():
        row: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
        row["source_only"] = mean_std([r["source_only"] for r in runs])
        row["source_only_per_seed"] = [r["source_only"] for r in runs]
        for ad in ("CopyAdapter", "FineTuneAdapter"):
            vals = [r[ad]["default"]["accuracy"] for r in runs]
            row[ad] = mean_std(vals)
            row[ad + "_per_seed"] = vals
            row[ad + "_epochs"] = [r[ad]["default"]["epochs"] for r in runs]
            row[ad + "_epochs_total"] = [r[ad]["default"].get("epochs_total", r[ad]["default"]["epochs"])
                                         for r in runs]
            row[ad + "_seconds"] = statistics.fmean(r[ad]["default"]["seconds"] for r in runs)
            lrs = list(runs[0][ad]["grid"])
            grid_means = {lr: mean_std([r[ad]["grid"][lr]["accuracy"] for r in runs]) for lr in lrs}
            row[ad + "_grid"] = grid_means
            row[ad + "_grid_rate"] = runs[0][ad]["grid_rate"]
            best = max(lrs, key=lambda lr: grid_means[lr][0])
            row[ad + "_best_lr"] = best
            row[ad + "_best"] = grid_means[best]
        row["has_batch_norm"] = all(r.get("by_hand_bn_frozen") is not None for r in runs)
        for key in ("by_hand", "by_hand_all_epochs", "by_hand_bn_frozen"):
            hand = [(r.get(key) or r["by_hand"])["accuracy"] for r in runs]
            row[key] = mean_std(hand)
            row[key + "_per_seed"] = hand
            row[key + "_epochs"] = [(r.get(key) or r["by_hand"])["epochs"] for r in runs]
        src = row["source_only"][0]
        crit = {
            "Copy > source": row["CopyAdapter"][0] > src,
            "FineTune > source": row["FineTuneAdapter"][0] > src,
            f"Copy within {TOL_GRID} of grid": row["CopyAdapter"][0] >= row["CopyAdapter_best"][0] - TOL_GRID,
            f"FineTune within {TOL_GRID} of grid":
                row["FineTuneAdapter"][0] >= row["FineTuneAdapter_best"][0] - TOL_GRID,
            f"FineTune within {TOL_BY_HAND} of by-hand": row["FineTuneAdapter"][0] >= row["by_hand"][0] - TOL_BY_HAND,
        }
        row["criteria"] = crit
        row["pass"] = all(crit.values())
        summary[name] = row
    return summary


def _pm(ms: tuple[float, float]) -> str:
    return _fmt(*ms)


def _delta(a: float, b: float) -> str:
    return f"{a - b:+.3f}"


def _epochs_text(row: dict[str, Any], adapter: str) -> str:
    return " ".join(f"{a} ({b})" for a, b in zip(row[adapter + "_epochs"], row[adapter + "_epochs_total"]))


def defaults_tables(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The accuracy table, the criteria table and the grids, as Markdown lines."""
    lines = ["| scenario | source only | Copy default | Copy best of grid | FineTune default | "
             "FineTune best of grid | by-hand Keras fine-tune (E = FineTune's final epochs) | by hand, E = all "
             "FineTune's epochs | by hand, BatchNormalization frozen (diagnostic) | epochs per seed: Copy final (all) ; "
             "FineTune final (all) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary.items():
        lines.append(
            f"| {name} | {_pm(r['source_only'])} | {_pm(r['CopyAdapter'])} | {_pm(r['CopyAdapter_best'])} "
            f"({r['CopyAdapter_grid_rate']}={float(r['CopyAdapter_best_lr']):g}) | {_pm(r['FineTuneAdapter'])} | "
            f"{_pm(r['FineTuneAdapter_best'])} ({r['FineTuneAdapter_grid_rate']}="
            f"{float(r['FineTuneAdapter_best_lr']):g}) | {_pm(r['by_hand'])} | {_pm(r['by_hand_all_epochs'])} | "
            f"{_pm(r['by_hand_bn_frozen']) if r.get('has_batch_norm') else 'no BN'} | "
            f"{_epochs_text(r, 'CopyAdapter')} ; {_epochs_text(r, 'FineTuneAdapter')} |")
    lines += ["", "Criteria (on the means over seeds; differences in brackets):", ""]
    names = list(next(iter(summary.values()))["criteria"])
    lines.append("| scenario | " + " | ".join(names) + " | all |")
    lines.append("|---|" + "---|" * (len(names) + 1))
    for name, r in summary.items():
        src, copy, ft = r["source_only"][0], r["CopyAdapter"][0], r["FineTuneAdapter"][0]
        diffs = [_delta(copy, src), _delta(ft, src), _delta(copy, r["CopyAdapter_best"][0]),
                 _delta(ft, r["FineTuneAdapter_best"][0]), _delta(ft, r["by_hand"][0])]
        cells = [f"{'PASS' if ok else 'FAIL'} ({d})" for ok, d in zip(r["criteria"].values(), diffs)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'PASS' if r['pass'] else 'FAIL'} |")
    lines += ["", "Learning-rate grids (target-test accuracy, mean ± sd over seeds; every other argument default):",
              ""]
    lrs = sorted({lr for r in summary.values() for ad in ("CopyAdapter", "FineTuneAdapter") for lr in r[ad + "_grid"]},
                 key=float)
    lines.append("| scenario | adapter (rate varied) | " + " | ".join(f"{float(lr):g}" for lr in lrs) + " |")
    lines.append("|---|---|" + "---|" * len(lrs))
    for name, r in summary.items():
        for ad in ("CopyAdapter", "FineTuneAdapter"):
            lines.append(f"| {name} | {ad} ({r[ad + '_grid_rate']}) | "
                         + " | ".join(_pm(r[ad + "_grid"][lr]) if lr in r[ad + "_grid"] else "-" for lr in lrs)
                         + " |")
    lines += ["", "Per seed (source only / Copy default / FineTune default / by hand / by hand, all epochs):", ""]
    for name, r in summary.items():
        per = "; ".join(f"seed {s}: {a:.3f} / {b:.3f} / {c:.3f} / {d:.3f} / {e:.3f}" for s, a, b, c, d, e in zip(
            r["seeds"], r["source_only_per_seed"], r["CopyAdapter_per_seed"], r["FineTuneAdapter_per_seed"],
            r["by_hand_per_seed"], r["by_hand_all_epochs_per_seed"]))
        lines.append(f"- {name}: {per}")
    return lines


def _adapt_commits() -> list[str]:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), "log", "--format=%h %ad %s", "--date=short", "-3", "--",
                               "shiftkit/adapt"], check=False, capture_output=True, text=True, timeout=30)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "shiftkit/adapt"],
                               check=False, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    lines = proc.stdout.strip().splitlines()
    if dirty:
        lines.append("uncommitted changes in shiftkit/adapt at run time: " + ", ".join(
            line.split()[-1] for line in dirty.splitlines()))
    return lines


def build_defaults_section(args: argparse.Namespace, scen: list[Any], summary: dict[str, dict[str, Any]],
                           wall: float, grid: tuple[float, ...], measured: dict[str, Any]) -> str:
    from shiftkit.adapt import CopyAdapter, FineTuneAdapter

    machine = machine_info()
    vers = versions()
    seeds = next(iter(summary.values()))["seeds"]
    lines = [DEFAULTS_SECTION, ""]
    if args.fast:
        lines += ["**Smoke run (`--fast`): tiny epochs, not a measurement; the criteria below mean nothing.**", ""]
    lines.append(f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    lines.append(f"- Machine: {machine['nproc']} cores (os.cpu_count), {machine['cpu']}, {machine['mem']} RAM, "
                 f"{machine['os']}, CPU only (shared with other processes: times are indicative)")
    lines.append(f"- Versions: Python {machine['python']}, " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    lines.append(f"- Command: `{args.command}` ({wall / 60:.1f} min); seeds {', '.join(map(str, seeds))}; "
                 f"{len(seeds)} seed(s) x {len(scen)} scenario(s).")
    lines.append("- Adapters measured (latest commits of shiftkit/adapt when the run started): "
                 + "; ".join(measured["commits"]) + ".")
    lines.append(f"- Defaults in effect (recorded by every cell, all identical): {measured['defaults']}.")
    choice = HERE / "defaults_choice.md"
    chooser = HERE / "choose_adapter_defaults.py"
    if choice.exists() or chooser.exists():
        lines.append("- How the defaults were chosen: "
                     + (f"`benchmarks/{chooser.name}` measured the candidates on scenarios of its own " if
                        chooser.exists() else "")
                     + (f"(figures and the choice: `benchmarks/{choice.name}`)" if choice.exists() else "")
                     + "; none of its scenarios is one of the five below, which only confirm.")
    lines.append("")
    lines.append("What is run, per scenario and seed (every random step seeded by the seed):")
    lines.append("")
    for s in scen:
        lines.append(f"- **{s.name}**: {s.description}. Model: {s.model_text}, trained on the source for "
                     f"{s.source_epochs} epochs (Adam 1e-3, batch {s.source_batch_size}).")
    lines.append(f"- Target: {10} labels per class drawn from the target domain (`x_few, y_few`); every other "
                 "target row is the target test set, the only data scored.")
    lines.append("- *Copy default* / *FineTune default*: `CopyAdapter(m).fit(x_few, y_few)` and "
                 "`FineTuneAdapter(m).fit(x_few, y_few)`, nothing else passed but `verbose=0`.")
    lines.append(f"- *Best of grid*: the same calls with only the rate changed "
                 f"({', '.join(f'{g:g}' for g in grid)}): CopyAdapter's `{grid_rate(CopyAdapter)}`, "
                 f"FineTuneAdapter's `{grid_rate(FineTuneAdapter)}`, every other argument (epochs, early "
                 "stopping, the other rate) at its default, so the epoch budget is the default's. The best grid "
                 "point is chosen per scenario by its mean target-test accuracy over the seeds (an oracle: "
                 "it is tuned on the test set).")
    lines.append("- *By-hand Keras fine-tune*: `m2 = keras.models.clone_model(m); m2.set_weights(m.get_weights()); "
                 "m2.compile(optimizer='adam', loss=<the source loss>); m2.fit(x_few, y_few, epochs=E, "
                 "batch_size=32)`: all layers trainable, BatchNormalization in training mode, no validation, "
                 "last-epoch weights. E = the epochs FineTuneAdapter's default fit trained its final weights for on "
                 "that seed (`adapter.epochs_`, both stages; with the default `refit=True` the epochs of the "
                 "refit on all labels): the same labels and epoch budget. The next column gives it every "
                 "epoch FineTune ran (the rows of its history: the epoch-selection runs on the labels not held "
                 "out + the refit) "
                 "instead; the criterion uses the first. *BatchNormalization frozen* (models with BN only, a "
                 "diagnostic): the same by-hand fine-tune with the BN layers `trainable=False` (inference mode, "
                 "source statistics), as FineTuneAdapter keeps them.")
    lines.append(f"- Criteria (issue 9), on the means over seeds: Copy and FineTune defaults > source only; each "
                 f"default >= its best grid point - {TOL_GRID}; FineTune default >= by-hand - {TOL_BY_HAND}.")
    lines.append("")
    lines += defaults_tables(summary)
    lines.append("")
    times = "; ".join(f"{n}: Copy {r['CopyAdapter_seconds']:.1f} s, FineTune {r['FineTuneAdapter_seconds']:.1f} s"
                      for n, r in summary.items())
    lines.append(f"- Mean fit time of the defaults (compile and tracing included): {times}.")
    lines.append(f"- Raw per-seed results: `benchmarks/{DEFAULTS_JSON.name}`.")
    return "\n".join(lines).rstrip("\n") + "\n"


def print_defaults(summary: dict[str, dict[str, Any]]) -> None:
    print()
    print("\n".join(defaults_tables(summary)))


def defaults_main(argv: list[str]) -> int:
    """`bench_adapt.py defaults [--fast] [--seeds ...] [--scenarios ...]`: the adapter-defaults table."""
    import _defaults_scenarios as ds

    parser = argparse.ArgumentParser(
        prog="bench_adapt.py defaults",
        description="Adapters with DEFAULT arguments vs source only, a learning-rate grid and a by-hand Keras "
                    "fine-tune, on five held-out scenarios (issue 9).")
    parser.add_argument("--fast", action="store_true",
                        help="smoke run of the harness: 1 seed, tiny epochs (adapter epochs capped), 2 grid rates")
    parser.add_argument("--seeds", type=int, nargs="+", help=f"seeds (default {' '.join(map(str, DEFAULT_SEEDS))}; "
                        "fast: 100)")
    names = [s.name for s in ds.scenarios()]
    parser.add_argument("--scenarios", nargs="+", choices=names, help="a subset of the scenarios (default all)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help="results file whose 'Adapter defaults' section this run replaces")
    parser.add_argument("--json", type=Path, default=None,
                        help=f"raw results (default {DEFAULTS_JSON.name} next to --results)")
    parser.add_argument("--no-results", action="store_true", help="print only; write no results file")
    parser.add_argument("--progress", action="store_true", help="print every fit as it finishes")
    parser.add_argument("--jobs", type=int, default=1,
                        help="scenario x seed cells run in this many processes at once (default 1)")
    args = parser.parse_args(argv)
    args.command = "python benchmarks/bench_adapt.py defaults" + (" " + shlex.join(argv) if argv else "")
    seeds = args.seeds or ([DEFAULT_SEEDS[0]] if args.fast else list(DEFAULT_SEEDS))
    grid = FAST_LR_GRID if args.fast else LR_GRID
    scen = [s for s in ds.scenarios(fast=args.fast) if not args.scenarios or s.name in args.scenarios]
    measured = {"defaults": defaults_in_effect(), "commits": _adapt_commits()}
    print(f"Defaults in effect: {measured['defaults']}", flush=True)
    t_start = time.perf_counter()
    tasks = [(s.name, seed) for s in scen for seed in seeds]
    done: dict[tuple[str, int], dict[str, Any]] = {}

    def report(name: str, seed: int, cell: dict[str, Any]) -> None:
        done[(name, seed)] = cell
        print(f"{name} seed {seed}: source only {cell['source_only']:.3f}  "
                  f"Copy {cell['CopyAdapter']['default']['accuracy']:.3f} ({cell['CopyAdapter']['default']['epochs']} ep)  "
                  f"FineTune {cell['FineTuneAdapter']['default']['accuracy']:.3f} "
                  f"({cell['FineTuneAdapter']['default']['epochs']} ep)  by hand {cell['by_hand']['accuracy']:.3f}  "
                  "grid Copy " + " ".join(f"{v['accuracy']:.3f}" for v in cell["CopyAdapter"]["grid"].values())
                  + " FT " + " ".join(f"{v['accuracy']:.3f}" for v in cell["FineTuneAdapter"]["grid"].values())
                  + f"  ({cell['cell_seconds']:.0f} s)", flush=True)

    if args.jobs <= 1:
        for name, seed in tasks:
            report(name, seed, _defaults_cell_job(name, seed, grid, args.fast, args.progress))
    else:  # independent, seeded cells in separate processes (spawned: a clean TensorFlow each)
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_defaults_cell_job, name, seed, grid, args.fast, args.progress): (name, seed)
                       for name, seed in tasks}
            for future in as_completed(futures):
                report(*futures[future], future.result())
    cells = {s.name: [done[(s.name, seed)] for seed in seeds] for s in scen}
    wall = time.perf_counter() - t_start
    seen = {c["defaults"] for runs in cells.values() for c in runs} | {measured["defaults"], defaults_in_effect()}
    consistent = len(seen) == 1
    summary = summarize_defaults(cells)
    print_defaults(summary)
    print(f"\n{len(seeds)} seed(s) x {len(scen)} scenario(s), {wall / 60:.1f} min")
    if not consistent:
        print("\nThe adapters' defaults changed during the run (shiftkit/adapt was edited): the cells measured "
              "different code, so no results are written. Seen:\n  " + "\n  ".join(sorted(seen)), flush=True)
        return 1
    if not args.no_results:
        section = build_defaults_section(args, scen, summary, wall, grid, measured)
        write_section(args.results, DEFAULTS_SECTION, section)
        json_path = args.json or args.results.parent / DEFAULTS_JSON.name
        json_path.write_text(json.dumps({"command": args.command, "fast": args.fast, "seeds": seeds,
                                         "defaults": measured["defaults"], "adapt_commits": measured["commits"],
                                         "grid": list(grid), "cells": cells,
                                         "criteria": {n: r["criteria"] for n, r in summary.items()}},
                                        indent=1, default=float) + "\n")
        print(f"wrote section '{DEFAULTS_SECTION}' to {args.results} and {json_path}")
    return 0


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["defaults"]:
        return defaults_main(list(sys.argv[2:] if argv is None else argv[1:]))
    if (sys.argv[1:] if argv is None else argv)[:1] == ["uda"]:
        import _uda  # the suite of shifts without target labels (issue 11)

        return _uda.main(list(sys.argv[2:] if argv is None else argv[1:]))
    parser = argparse.ArgumentParser(description="Benchmark shiftkit's adapters on corrupted digits (+ ADAPT peers). "
                                     "`bench_adapt.py defaults --help`: the adapter-defaults table.")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 10 11 12 13 14; quick: 0 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, tiny epochs, 3 timing epochs")
    parser.add_argument("--no-peers", action="store_true", help="skip the ADAPT peers")
    parser.add_argument("--no-timing", action="store_true", help="skip the per-epoch timing")
    parser.add_argument("--timing-epochs", type=int, help="epochs per timed fit (default 15; quick: 3)")
    parser.add_argument("--timing-rounds", type=int, help="interleaved rounds of the timed fits; the lowest "
                        "per-round median counts (default 3; quick: 1)")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON,
                        help="python of the ADAPT virtualenv (default benchmarks/.venv-adapt/bin/python)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help="results file whose section this run replaces (default benchmarks/RESULTS.md)")
    parser.add_argument("--no-results", action="store_true", help="print only; write no results file")
    args = parser.parse_args(argv)
    args.command = "python benchmarks/bench_adapt.py" + ("" if argv is None and len(sys.argv) == 1 else
                                                         " " + shlex.join(sys.argv[1:] if argv is None else argv))
    seeds = args.seeds or ([0, 1] if args.quick else [10, 11, 12, 13, 14])
    if args.timing_epochs is None:
        args.timing_epochs = 3 if args.quick else 15
    if args.timing_rounds is None:
        args.timing_rounds = 1 if args.quick else 3
    cfg = {**(QUICK if args.quick else ex.FULL), "labels_per_class": 10}
    t_start = time.perf_counter()

    peers_on = not args.no_peers
    peer_status: dict[str, Any] = {"lines": []}
    if peers_on:
        ok, why = check_peer_python(args.peer_python)
        print(f"ADAPT peers: {'available, ' if ok else 'NOT available: '}{why}", flush=True)
        if ok:
            peer_status["lines"].append(f"ADAPT virtualenv `benchmarks/.venv-adapt`: {why} "
                                        "(`pip install adapt` resolved these; Python "
                                        f"{machine_info()['python']}).")
        else:
            peer_status["lines"].append(f"ADAPT not run: {why}.")
            peers_on = False
    else:
        peer_status["lines"].append("ADAPT peers not run in this invocation (`--no-peers`).")

    acc: dict[str, dict[int, float]] = {m: {} for m in SHIFTKIT_METHODS}
    acc.update({PEER_LABEL[m]: {} for m in PEER_METHODS} if peers_on else {})
    fit_s: dict[str, list[float]] = {m: [] for m in acc}
    feat: dict[str, list[float]] = {}
    src_acc: list[float] = []
    labels: dict[str, str] = {}
    peer_errors: dict[str, str] = {}
    peer_epoch: dict[str, list[float]] = {}
    sanity: list[str] = []
    timing = None
    timing_busy = None
    n_source = 0
    with tempfile.TemporaryDirectory(prefix="bench_adapt_") as tmp_dir:
        for seed in seeds:
            t0 = time.perf_counter()
            result = ex.run_experiment(seed, cfg, methods=SHIFTKIT_METHODS, shift_reports=True)
            src_acc.append(result["source_test_accuracy"])
            for method, value in result["accuracy"].items():
                acc[method][seed] = value
                fit_s[method].append(result["seconds"][method])
                labels[method] = ex._labels_text(method, result["data"])
            for method, rep in result["reports"].items():
                feat.setdefault(method, []).append(rep.after.feature_test.normalized)
            # Every report's "before" is the source CNN on the same data: take it once per seed.
            first = next(iter(result["reports"].values()), None)
            if first is not None:
                feat.setdefault("source only", []).append(first.before.feature_test.normalized)
            n_source = n_source or len(result["data"]["x_source"])
            line = "  ".join(f"{m} {a:.3f}" for m, a in result["accuracy"].items())
            print(f"seed {seed}: {line}  ({time.perf_counter() - t0:.0f} s)", flush=True)
            if peers_on:
                t0 = time.perf_counter()
                peer = run_peers(args.peer_python, result, cfg, seed, Path(tmp_dir))
                if "error" in peer:
                    peer_errors["runner"] = peer["error"]
                else:
                    same = abs(peer["source_only_accuracy"] - result["accuracy"]["source only"]) < 1e-9
                    sanity.append(f"seed {seed}: {peer['source_only_accuracy']:.4f} vs "
                                  f"{result['accuracy']['source only']:.4f}{'' if same else ' (DIFFERENT)'}")
                    for method, res in peer["results"].items():
                        label = PEER_LABEL[method]
                        if "error" in res:
                            peer_errors[label] = res["error"]
                            continue
                        acc[label][seed] = res["accuracy"]
                        fit_s[label].append(res["seconds"])
                        peer_epoch.setdefault(label, []).append(median_after_first(res["epoch_times"]))
                        labels[label] = labels["FineTuneAdapter" if method == "FineTuning" else "MMDAdapter"]
                    peer_status["notes"] = peer.get("notes")
                    peer_status["adapt_version"] = peer.get("adapt_version")
                print("  ADAPT: " + ("  ".join(f"{PEER_LABEL[m]} {acc[PEER_LABEL[m]].get(seed, float('nan')):.3f}"
                                                for m in PEER_METHODS)) + f"  ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
            if not args.no_timing and seed == seeds[0]:
                if not args.quick:
                    wait_for_quiet()
                meter = others_busy_meter()
                if meter is not None:
                    with meter:
                        timing = time_epochs(result, cfg, seed, args.timing_epochs, args.timing_rounds)
                    timing_busy = meter.others_busy
                else:
                    timing = time_epochs(result, cfg, seed, args.timing_epochs, args.timing_rounds)
                for row in timing:
                    print(f"  timing: {row['what']:<50}{row['median']:.4f} s/epoch  "
                          f"x{row['median'] / row['baseline']:.2f}", flush=True)

    if peers_on:
        peer_status["lines"].append(
            "Same arrays (saved to a temporary .npz), the same CNN rebuilt in the virtualenv with the trained source "
            "weights; the source-only target-test accuracy recomputed there matches: " + "; ".join(sanity) + "."
            if sanity else "The peer runner produced no result.")
        peer_status["lines"].append(
            "DANN (ADAPT's default lambda_=0.1, and 0.01; discriminator Dense64-Dense1) and DeepCORAL (its default "
            "lambda_=1.0): encoder + task from the "
            "source weights, no target labels, MMDAdapter's epochs, batch size and rate. FineTuning: encoder from "
            "the source weights, a new softmax head trained alone (`FineTuning(training=False)`) for the head epochs "
            "at the head rate, then all layers (a second `FineTuning(training=True)` on its networks) for the "
            "fine-tune epochs at the fine-tune rate, on the same labelled images and batch size.")
        if peer_status.get("notes"):
            peer_status["lines"].append(f"FineTuning's optimizers after fit: {json.dumps(peer_status['notes'])}.")
        if peer_status.get("adapt_version") == "0.4.5":
            peer_status["lines"].append(
                "adapt 0.4.5's `DeepCORAL.train_step` updates the encoder with the gradient of the CORAL term only "
                "(`enc_tape.gradient(disc_loss, ...)`); the task loss trains the task head alone. Its encoder is thus "
                "pulled towards matching covariances with nothing keeping the features discriminative, which is "
                "consistent with its accuracy falling below source only here.")
            peer_status["lines"].append(
                "Not `FineTuning(pretrain=True)`: with it, adapt 0.4.5 under Keras 3 trains the head in the second "
                "stage with the pretraining optimizer (Keras's `compile` overwrites the `optimizer` attribute that "
                "ADAPT keeps its parameter in): measured, the task optimizer's rate after fit was the head rate "
                "(1e-2), not the given fine-tune rate (1e-4). Two FineTuning fits do the recipe as intended.")
        for label, err in peer_errors.items():
            peer_status["lines"].append(f"{label} FAILED: {err}")
        peer_status["epoch_rows"] = [
            f"{label}, in the ADAPT venv during the accuracy runs (not interleaved with the rows above): "
            f"{statistics.fmean(v):.4f} s/epoch ({'fine-tune stage, ' if 'FineTuning' in label else ''}"
            "mean over seeds of the per-seed medians of epochs 2..n)"
            for label, v in peer_epoch.items()
        ]
    wall = time.perf_counter() - t_start

    print()
    print(f"{'method':<22}{'target labels':>22}{'target-test accuracy':>24}")
    for method, per_seed in acc.items():
        vals = list(per_seed.values())
        if vals:
            print(f"{method:<22}{labels.get(method, ''):>22}{_fmt(*mean_std(vals)):>24}")
    print(f"\n{len(seeds)} seeds, {wall:.0f} s")

    if not args.no_results:
        section = build_section(args, cfg, seeds, acc, fit_s, feat, src_acc, labels, peer_status, timing,
                                timing_busy, wall, n_source)
        write_section(args.results, SECTION, section)
        print(f"wrote section '{SECTION}' to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
