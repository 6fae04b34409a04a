"""Power and type-I error of shift detectors: the "Failing Loudly" protocol on offline digits.

Rabanser, Guennemann & Lipton (2019), "Failing Loudly: An Empirical Study of Methods for Detecting
Dataset Shift", compare detectors by how often they flag a shift (power) and a non-shift (type-I
error) over many random draws, as a function of the number of target samples. This benchmark runs
that protocol on scikit-learn's digits (1797 images, 8x8, offline), for every shiftkit detector and
for alibi-detect's MMDDrift and KSDrift on the model's softmax.

Protocol:
    * Data: `load_digits`, pixels / 16 (in [0, 1]), shape (8, 8). A stratified third (599 images,
      seeded) trains the source classifier; the other 1198 images are the *pool* the draws come from.
    * Source classifier: an MLP 64 -> 64 (relu) -> dropout 0.2 -> 10 (softmax), Adam, 60 epochs,
      seeded (`keras.utils.set_random_seed`); its accuracy on the pool is printed and saved.
    * Draws, n per side (`--sizes`, default 10 50 100 500 1000): when 2n <= pool size, the source
      and target rows are disjoint rows of the pool drawn without replacement (one random
      permutation, first n / next n); for n = 1000 (2n > 1198) both samples are drawn i.i.d. WITH
      replacement from the whole pool, so both come from the pool's empirical distribution (an exact
      null; duplicates occur within and across samples alike). The target rows are then shifted.
      Label shift draws the target's rows class by class (a multinomial count per class at the
      target proportions), without replacement from the rows the source did not take while they
      last, with replacement beyond that (so at n = 500 the over-represented class repeats rows).
    * Null ("none"): the target is the clean second draw: the type-I error of every detector.
    * Shifts (the target only; `--shifts`): Gaussian pixel noise (sigma 0.05 and 0.2 on the [0, 1]
      scale, clipped to [0, 1]; fresh noise per trial), Gaussian blur (sigma 0.5 px), a small
      affine change (rotation by 10 degrees; translation by 1 px to the right), and label shift (class
      0 at 30% of the target, the other classes sharing the rest equally; 10% in the pool).
    * `--trials` (default 50) seeded draws per shift and size; every detector sees the SAME draws.
      A draw's seed is derived from (seed, shift, n, trial), so any cell can be re-run alone.

Detectors (all at `--alpha`, default 0.05):
    * `mmd_input`: `shiftkit.shift.mmd_test` on the flattened pixels, its default bandwidth,
      `--n-permutations` (default 200) permutations.
    * `mmd_feature`: `mmd_test` on the classifier's features (the input of its softmax head).
    * `bbsd_ks`: `shiftkit.shift.bbsd` KS tests on the 10 softmax outputs, Bonferroni.
    * `bbsd_mmd`: `shiftkit.shift.bbsd` with test="mmd", i.e. `mmd_test` on the softmax vector (the
      same test as "mmd_test on the softmax"; it is run once).
    * `report`: the verdict of `shift_report` with a model: Holm over input MMD, feature MMD and
      BBSD-KS at family-wise alpha, computed from the three p-values above (what `shift_report`
      decides; it does not re-run them).
    * `classifier`: `shiftkit.shift.classifier_test` (domain classifier, its defaults: gradient
      boosting, one held-out half) on the flattened pixels.
    * `joint_mmd`: `shiftkit.shift.mmd_joint` (the proposed default when a model is given): the
      aggregated MMD over the representations `DEFAULT_JOINT_REPRESENTATIONS` (the inputs, standardised
      as `shift_report` does, in their (8, 8) shape; the model's softmax) at the bandwidths of
      `DEFAULT_JOINT_FACTORS` (5 on the inputs, 3 on the softmax), every kernel on the same
      `--n-permutations` permutations, min-p corrected (one test, exact level). Computed from the same softmax arrays as BBSD (`mmd_joint_from_representations`; tested
      equal to `mmd_joint_test(x_s, x_t, model)` in tests/test_mmd_joint.py).
    * Pluggable, when present in this checkout (detected by import, skipped otherwise):
      `mmd_agg` (aggregated-bandwidth MMD) and `mmd_rff` (`shiftkit.shift.mmd_rff.rff_mmd_test`).
      Add more in `OPTIONAL_DETECTORS`.
    * Peers, in their own virtualenv (alibi-detect 0.13 pins numpy < 2 and tensorflow < 2.19):
      `alibi_mmd` (MMDDrift, tensorflow backend, its default kernel and bandwidth,
      `--alibi-permutations`, default 100 = its default; at n <= `--alibi-max-n`, default 500, as
      its TensorFlow permutations take about 6.5 s per test at n = 1000) and `alibi_ks` (KSDrift, Bonferroni) on
      the SAME softmax arrays at the same alpha: saved to a temporary .npz, run by
      `_alibi_power_runner.py` in `benchmarks/.venv-alibi` while shiftkit's detectors run.

Output: the power / type-I table (markdown, printed), issue 12's target for each of `TARGET_DETECTORS`
(power >= the best alibi-detect detector's in every (shift, n) cell; misses listed with both rates),
its section of `benchmarks/RESULTS.md`, `benchmarks/RESULTS_power.json` and the plot
`benchmarks/power_vs_n.png` (power against n per shift, type-I against n with alpha and the
alpha + 3 s.e. line). Standard errors are binomial, sqrt(r (1 - r) / trials); a detector's type-I
error is flagged when above alpha + 3 sqrt(alpha (1 - alpha) / trials).

Setting up the alibi-detect virtualenv (once; `.venv*/` is gitignored):
    python -m venv benchmarks/.venv-alibi
    benchmarks/.venv-alibi/bin/pip install "alibi-detect[tensorflow]==0.13.0"

The committed RESULTS_power.json / power_vs_n.png and the RESULTS.md section (written by the run; `--no-results`
skips it) are from the full run (all seven shifts, five sizes, 50 trials, alibi MMDDrift up to n = 500): 29 min on
the 2 shared cores (the domain classifier 402 s, the joint test 363 s, each MMD test about 200 s; alibi ran in
parallel).

Usage:
    nice -n 5 python benchmarks/bench_power.py                 # full run, writes its RESULTS.md section
    python benchmarks/bench_power.py --replot benchmarks/RESULTS_power.json   # redraw the plot only
    python benchmarks/bench_power.py --quick                   # smoke run: 3 trials, n 10 and 50
    python benchmarks/bench_power.py --shifts none noise-0.2 --sizes 50 --trials 20 --no-alibi
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One thread per process: shiftkit's detectors and the alibi-detect runner run side by side (one core each
# on 2 cores), and OpenMP's spinning threads on an oversubscribed machine made the gradient-boosting domain
# classifier 20-90x slower (8.8 s instead of 0.1 s per test at n = 10 when the machine was loaded).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
from _results import machine_info  # noqa: E402

DEFAULT_ALIBI_PYTHON = HERE / ".venv-alibi" / "bin" / "python"
ALIBI_RUNNER = HERE / "_alibi_power_runner.py"
SIZES = (10, 50, 100, 500, 1000)

#: Shift name -> (kind, parameter). The target only is shifted.
SHIFTS: dict[str, tuple[str, float]] = {
    "none": ("none", 0.0),
    "noise-0.05": ("noise", 0.05),
    "noise-0.2": ("noise", 0.2),
    "blur-0.5": ("blur", 0.5),
    "rotate-10": ("rotate", 10.0),
    "translate-1": ("translate", 1.0),
    "label-0.3": ("label", 0.3),
}

#: Optional detectors: name -> (module, candidate function names). Each is called as
#: f(x_source, x_target, alpha=, seed=, n_permutations=) on flattened inputs and must return an
#: object with `p_value`. Absent modules/functions are skipped (and listed as skipped).
OPTIONAL_DETECTORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mmd_agg": ("shiftkit.shift.mmd", ("mmd_agg_test", "mmdagg_test", "aggregated_mmd_test", "mmd_test_agg")),
    "mmd_rff": ("shiftkit.shift.mmd_rff", ("rff_mmd_test",)),
}

LABELS = {
    "mmd_input": "MMD input (mmd_test)",
    "mmd_feature": "MMD features (mmd_test)",
    "bbsd_ks": "BBSD-KS (softmax)",
    "bbsd_mmd": "BBSD-MMD (mmd_test on softmax)",
    "report": "shift_report verdict (Holm)",
    "classifier": "domain classifier (classifier_test)",
    "joint_mmd": "joint MMD input+softmax (mmd_joint_test)",
    "mmd_agg": "aggregated MMD input",
    "mmd_rff": "RFF MMD input",
    "alibi_mmd": "alibi MMDDrift (softmax)",
    "alibi_ks": "alibi KSDrift (softmax)",
}


# --------------------------------------------------------------------------------------------------
# Data, model, draws
# --------------------------------------------------------------------------------------------------


def load_data(seed: int) -> dict[str, np.ndarray]:
    """Digits in [0, 1], split (stratified, seeded) into the classifier's training third and the pool."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    tr, pool = train_test_split(np.arange(len(x)), train_size=599, stratify=y, random_state=seed)
    return {"x_train": x[tr], "y_train": y[tr], "x_pool": x[pool], "y_pool": y[pool]}


def train_model(x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8)),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="hidden"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ], name="digits_mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    return model


def _shift_images(kind: str, param: float, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The target images after the shift (label shift and none leave them as they are)."""
    from scipy import ndimage

    if kind == "noise":
        return np.clip(x + rng.normal(0.0, param, size=x.shape), 0.0, 1.0).astype(np.float32)
    if kind == "blur":
        return np.stack([ndimage.gaussian_filter(img, param, mode="constant") for img in x]).astype(np.float32)
    if kind == "rotate":
        return np.stack([ndimage.rotate(img, param, reshape=False, order=1, mode="constant") for img in x]).astype(
            np.float32)
    if kind == "translate":
        return np.stack([ndimage.shift(img, (0.0, param), order=1, mode="constant") for img in x]).astype(np.float32)
    return x


class Draws:
    """The seeded source/target draws of the protocol (see the module docstring)."""

    def __init__(self, x_pool: np.ndarray, y_pool: np.ndarray, seed: int):
        self.x, self.y, self.seed = x_pool, y_pool, seed
        self.n_pool = len(x_pool)
        self.n_classes = int(y_pool.max()) + 1
        # deterministic shifts: transform the pool once
        self._pools = {name: _shift_images(kind, p, x_pool, np.random.default_rng(0))
                       for name, (kind, p) in SHIFTS.items() if kind in ("blur", "rotate", "translate")}

    def rng(self, shift: str, n: int, trial: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, list(SHIFTS).index(shift), n, trial])

    def indices(self, shift: str, n: int, trial: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
        rng = self.rng(shift, n, trial)
        kind, param = SHIFTS[shift]
        disjoint = 2 * n <= self.n_pool
        if disjoint:
            perm = rng.permutation(self.n_pool)
            src, rest = perm[:n], perm[n:]
        else:
            src, rest = rng.integers(0, self.n_pool, size=n), None
        if kind != "label":
            tgt = rest[:n] if disjoint else rng.integers(0, self.n_pool, size=n)
            return src, tgt, rng
        q = np.full(self.n_classes, (1.0 - param) / (self.n_classes - 1))
        q[0] = param
        counts = rng.multinomial(n, q)
        parts = []
        for k, c in enumerate(counts):
            if c == 0:
                continue
            if disjoint:
                avail = rest[self.y[rest] == k]
                take = avail[:c] if c <= len(avail) else np.r_[avail, rng.choice(avail, size=c - len(avail))]
            else:
                take = rng.choice(np.flatnonzero(self.y == k), size=c)
            parts.append(take)
        tgt = rng.permutation(np.concatenate(parts))
        return src, tgt, rng

    def draw(self, shift: str, n: int, trial: int) -> tuple[np.ndarray, np.ndarray]:
        """(source images, target images) of one trial; the same arrays on every call."""
        src, tgt, rng = self.indices(shift, n, trial)
        kind, param = SHIFTS[shift]
        if shift in self._pools:
            xt = self._pools[shift][tgt]
        elif kind == "noise":
            xt = _shift_images(kind, param, self.x[tgt], rng)
        else:
            xt = self.x[tgt]
        return self.x[src], xt


# --------------------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------------------


def _optional_detectors() -> tuple[dict[str, Callable], dict[str, str]]:
    found, skipped = {}, {}
    for name, (module, candidates) in OPTIONAL_DETECTORS.items():
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            skipped[name] = f"{module} not importable ({exc})"
            continue
        fn = next((getattr(mod, c) for c in candidates if callable(getattr(mod, c, None))), None)
        if fn is None:
            skipped[name] = f"none of {list(candidates)} in {module}"
        else:
            found[name] = fn
    return found, skipped


class Detectors:
    """shiftkit's detectors on one draw; returns {name: p_value} (a rejection is p <= alpha)."""

    def __init__(self, model: Any, alpha: float, n_permutations: int, include: list[str] | None):
        from shiftkit.shift import classifier_test, mmd_test
        from shiftkit.shift.bbsd import bbsd_from_probabilities
        from shiftkit.shift.features import FeatureSpace
        from shiftkit.shift.mmd_joint import DEFAULT_JOINT_REPRESENTATIONS, mmd_joint_from_representations
        from shiftkit.shift.scaling import standardize

        self.model, self.alpha, self.n_perm = model, alpha, n_permutations
        self.features = FeatureSpace(model)
        self.joint, self.joint_reps, self.standardize = (mmd_joint_from_representations, DEFAULT_JOINT_REPRESENTATIONS,
                                                         standardize)
        self.mmd_test, self.classifier_test, self.bbsd = mmd_test, classifier_test, bbsd_from_probabilities
        self.optional, self.skipped = _optional_detectors()
        names = ["mmd_input", "mmd_feature", "bbsd_ks", "bbsd_mmd", "report", "classifier", "joint_mmd",
                 *self.optional]
        self.names = [n for n in names if include is None or n in include]
        # the report's verdict is computed from its three tests' p-values
        if "report" in self.names:
            for need in ("mmd_input", "mmd_feature", "bbsd_ks"):
                if need not in self.names:
                    self.names.insert(0, need)

    def run(self, xs: np.ndarray, xt: np.ndarray, ps: np.ndarray, pt: np.ndarray, seed: int,
            timings: dict[str, float]) -> dict[str, float]:
        a, b = xs.reshape(len(xs), -1).astype(np.float64), xt.reshape(len(xt), -1).astype(np.float64)
        out: dict[str, float] = {}

        def timed(name: str, fn: Callable[[], float]) -> None:
            if name not in self.names:
                return
            t0 = time.perf_counter()
            out[name] = float(fn())
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

        perm = dict(n_permutations=self.n_perm, alpha=self.alpha, seed=seed)
        timed("mmd_input", lambda: self.mmd_test(a, b, **perm).p_value)
        timed("mmd_feature", lambda: self.mmd_test(self.features(xs), self.features(xt), **perm).p_value)
        timed("bbsd_ks", lambda: self.bbsd(ps, pt, alpha=self.alpha).p_value)
        timed("bbsd_mmd", lambda: self.bbsd(ps, pt, alpha=self.alpha, test="mmd", n_permutations=self.n_perm,
                                            seed=seed).p_value)
        if "report" in self.names:
            from shiftkit.shift.report import _holm

            p = [out["mmd_input"], out["mmd_feature"], out["bbsd_ks"]]
            levels, _ = _holm(p, self.alpha)
            # p-value-like: 0 when Holm rejects anywhere, 1 otherwise (a rejection is "<= alpha")
            out["report"] = 0.0 if any(pi <= lv for pi, lv in zip(p, levels)) else 1.0
        timed("classifier", lambda: self.classifier_test(a, b, alpha=self.alpha, seed=seed).p_value)
        timed("joint_mmd", lambda: self._joint(xs, xt, ps, pt, perm))
        for name, fn in self.optional.items():
            timed(name, lambda fn=fn: fn(a, b, **perm).p_value)
        return out

    def _joint(self, xs: np.ndarray, xt: np.ndarray, ps: np.ndarray, pt: np.ndarray, perm: dict) -> float:
        """The joint test as `mmd_joint_test(xs, xt, model)` computes it, on the softmax already computed."""
        src, tgt = {}, {}
        for rep in self.joint_reps:
            if rep == "input":
                src[rep], tgt[rep] = self.standardize(xs, xt)  # pooled Standardizer, (8, 8) images
            elif rep == "softmax":
                src[rep], tgt[rep] = ps, pt
            else:
                src[rep], tgt[rep] = self.features(xs), self.features(xt)
        return self.joint(src, tgt, **perm).p_value


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _rate(rejections: int, trials: int) -> dict[str, float]:
    r = rejections / trials if trials else float("nan")
    return {"rejections": int(rejections), "trials": int(trials), "rate": r,
            "se": math.sqrt(r * (1 - r) / trials) if trials else float("nan")}


def _start_alibi(args: argparse.Namespace, npz: Path, out: Path) -> subprocess.Popen | None:
    python = Path(args.alibi_python)
    if args.no_alibi:
        return None
    if not python.exists():
        print(f"[alibi] {python} not found: peers skipped (see the module docstring to set it up)", file=sys.stderr)
        return None
    cmd = [str(python), str(ALIBI_RUNNER), "--data", str(npz), "--out", str(out), "--alpha", str(args.alpha),
           "--n-permutations", str(args.alibi_permutations), "--mmd-max-n", str(args.alibi_max_n)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", TF_NUM_INTRAOP_THREADS="1",
               TF_NUM_INTEROP_THREADS="1")
    print("[alibi] started in the background: " + " ".join(cmd), file=sys.stderr)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(str(out) + ".log", "w"))


#: The detectors whose power is held against the best alibi-detect detector (issue 12's target).
TARGET_DETECTORS = ("joint_mmd", "mmd_input", "report")
RESULTS_SECTION = "## Detection power: the Failing Loudly protocol (bench_power.py)"


def target_lines(results: dict, detectors: list[str], sizes: list[int], shifts: list[str]) -> list[str]:
    """Issue 12's target per detector: power >= the best alibi-detect detector's at every n and shift.

    A cell without any alibi detector (none ran) is not counted. A miss is listed with both rates,
    the difference and its binomial standard error (independent-rate approximation; the draws are
    shared, so the true paired s.e. is smaller).
    """
    peers = [d for d in ("alibi_mmd", "alibi_ks") if d in detectors]
    if not peers:
        return ["- Target (power >= the best alibi-detect detector's): not evaluated, alibi-detect did not run."]
    out = []
    for det in [d for d in TARGET_DETECTORS if d in detectors]:
        misses, cells = [], 0
        for shift in [s for s in shifts if s != "none"]:
            for n in sizes:
                mine = results.get(shift, {}).get(det, {}).get(str(n))
                theirs = [(results[shift][p][str(n)], p) for p in peers if str(n) in results.get(shift, {}).get(p, {})]
                if mine is None or not theirs:
                    continue
                cells += 1
                best, peer = max(theirs, key=lambda t: t[0]["rate"])
                if mine["rate"] < best["rate"]:
                    se = math.sqrt(mine["se"] ** 2 + best["se"] ** 2)
                    misses.append(f"{shift} n={n}: {mine['rate']:.2f} vs {LABELS[peer]} {best['rate']:.2f} "
                                  f"(-{best['rate'] - mine['rate']:.2f}, s.e. {se:.2f})")
        verdict = "MET at every one" if not misses else f"NOT met at {len(misses)}: " + "; ".join(misses)
        out.append(f"- Target for {LABELS.get(det, det)} (power >= the best alibi-detect detector's), {cells} "
                   f"(shift, n) cells: {verdict}.")
    return out


def markdown_table(results: dict, detectors: list[str], sizes: list[int], shifts: list[str], alpha: float,
                   trials: int) -> str:
    lines = []
    limit = alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials)
    head = "| shift | detector | " + " | ".join(f"n={n}" for n in sizes) + " |"
    lines += [head, "|" + "---|" * (2 + len(sizes))]
    for shift in shifts:
        for det in detectors:
            cells = []
            for n in sizes:
                cell = results.get(shift, {}).get(det, {}).get(str(n))
                if cell is None:
                    cells.append("-")
                    continue
                text = f"{cell['rate']:.2f}"
                if shift == "none" and cell["rate"] > limit:
                    text += " (!)"
                cells.append(text)
            lines.append(f"| {shift} | {LABELS.get(det, det)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Rejection rates over {trials} seeded draws per cell at alpha = {alpha:g}: power for the shifts, "
                 f"type-I error for 'none' ((!) = above alpha + 3 s.e. = {limit:.3f}).")
    return "\n".join(lines)


def plot(results: dict, detectors: list[str], sizes: list[int], shifts: list[str], alpha: float, trials: int,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = math.ceil(len(shifts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.2 * rows), squeeze=False, sharex=True)
    styles = {d: ("--" if d.startswith("alibi") else "-") for d in detectors}
    for ax, shift in zip(axes.ravel(), shifts):
        for det in detectors:
            cells = results.get(shift, {}).get(det, {})
            xs = [n for n in sizes if str(n) in cells]
            if not xs:
                continue
            ax.plot(xs, [cells[str(n)]["rate"] for n in xs], styles[det], marker="o", ms=3, label=LABELS.get(det, det),
                    lw=2.4 if det == "joint_mmd" else 1.2, color="k" if det == "joint_mmd" else None)
        ax.set_xscale("log")
        ax.set_title(shift if shift != "none" else "none (type-I error)", fontsize=10)
        ax.set_ylim(-0.02, 1.02 if shift != "none" else max(0.25, alpha * 3))
        if shift == "none":
            ax.axhline(alpha, color="k", lw=0.8)
            ax.axhline(alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials), color="k", lw=0.8, ls=":")
        ax.set_xlabel("n per side")
        ax.set_ylabel("rejection rate")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(shifts):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    spare = axes.ravel()[len(shifts):]
    if len(spare):  # the legend in the first unused panel
        spare[0].legend(handles, labels, loc="center", fontsize=8)
    else:
        fig.legend(handles, labels, loc="lower center", fontsize=8, ncol=4, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Power vs n on digits (alpha={alpha:g}, {trials} trials per point)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 trials, n 10 and 50, two shifts")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--shifts", nargs="+", default=list(SHIFTS), choices=list(SHIFTS))
    parser.add_argument("--detectors", nargs="+", default=None, help="shiftkit detectors to run (default: all)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--n-permutations", type=int, default=200)
    parser.add_argument("--alibi-permutations", type=int, default=100)
    parser.add_argument("--alibi-max-n", type=int, default=500,
                        help="largest n at which MMDDrift runs (KSDrift runs at every n); MMDDrift's permutations "
                             "regather the 2n x 2n kernel matrix: about 6.5 s per test at n = 1000 with 100 "
                             "permutations on the benchmark machine, 50 trials x 7 shifts = 38 min")
    parser.add_argument("--alibi-python", default=str(DEFAULT_ALIBI_PYTHON))
    parser.add_argument("--no-alibi", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(HERE / "RESULTS_power.json"))
    parser.add_argument("--png", default=str(HERE / "power_vs_n.png"))
    parser.add_argument("--results", default=str(HERE / "RESULTS.md"),
                        help="results file whose bench_power section this run replaces (not with --quick)")
    parser.add_argument("--no-results", action="store_true", help="do not write the RESULTS.md section")
    parser.add_argument("--replot", metavar="JSON", help="only redraw --png from a results JSON written before")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        st = saved["settings"]
        plot(saved["results"], list(saved["detectors"]), st["sizes"], st["shifts"], st["alpha"], st["trials"],
             Path(args.png))
        return
    if args.quick:
        args.trials, args.sizes, args.shifts = 3, [10, 50], ["none", "noise-0.2"]
        if args.json == str(HERE / "RESULTS_power.json"):
            args.json = os.path.join(tempfile.gettempdir(), "RESULTS_power_quick.json")
        if args.png == str(HERE / "power_vs_n.png"):
            args.png = os.path.join(tempfile.gettempdir(), "power_vs_n_quick.png")

    import keras  # noqa: F401  (TensorFlow import before timing)

    from shiftkit._keras import predict, to_probabilities

    t_start = time.perf_counter()
    data = load_data(args.seed)
    model = train_model(data["x_train"], data["y_train"], args.seed)
    probs_pool = to_probabilities(model, predict(model, data["x_pool"], batch_size=2048))
    accuracy = float(np.mean(probs_pool.argmax(1) == data["y_pool"]))
    print(f"source classifier: accuracy {accuracy:.3f} on the {len(data['x_pool'])}-image pool "
          f"({time.perf_counter() - t_start:.1f} s)", file=sys.stderr)
    draws = Draws(data["x_pool"], data["y_pool"], args.seed)

    def softmax(x: np.ndarray) -> np.ndarray:
        return to_probabilities(model, predict(model, x, batch_size=2048))

    # pass 1: the softmax of every draw (saved for alibi-detect; the same arrays feed shiftkit's BBSD)
    t0 = time.perf_counter()
    probs: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for shift in args.shifts:
        for n in args.sizes:
            ps, pt = [], []
            for trial in range(args.trials):
                xs, xt = draws.draw(shift, n, trial)
                ps.append(softmax(xs))
                pt.append(softmax(xt))
            probs[(shift, n)] = (np.stack(ps).astype(np.float32), np.stack(pt).astype(np.float32))
    print(f"draws: softmax of {len(probs) * args.trials} trials in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="bench_power_"))
    npz = tmp / "draws.npz"
    np.savez(npz, **{f"{s}|{n}|{side}": arr for (s, n), pair in probs.items() for side, arr in zip(("ps", "pt"), pair)})
    alibi_out = tmp / "alibi.json"
    alibi = _start_alibi(args, npz, alibi_out)

    # pass 2: shiftkit's detectors on the same draws
    dets = Detectors(model, args.alpha, args.n_permutations, args.detectors)
    for name, why in dets.skipped.items():
        print(f"[skip] {name}: {why}", file=sys.stderr)
    pvals: dict[str, dict[str, dict[str, list[float]]]] = {}
    timings: dict[str, float] = {}
    for shift in args.shifts:
        for n in args.sizes:
            t_cell = time.perf_counter()
            ps_all, pt_all = probs[(shift, n)]
            cell: dict[str, list[float]] = {}
            for trial in range(args.trials):
                xs, xt = draws.draw(shift, n, trial)
                seed = int(draws.rng(shift, n, trial).integers(2**31 - 1))
                out = dets.run(xs, xt, ps_all[trial].astype(np.float64), pt_all[trial].astype(np.float64), seed, timings)
                for k, v in out.items():
                    cell.setdefault(k, []).append(v)
            for k, v in cell.items():
                pvals.setdefault(shift, {}).setdefault(k, {})[str(n)] = v
            partial = Path(args.json).with_suffix(".partial.json")
            partial.write_text(json.dumps({"alpha": args.alpha, "p_values": pvals}, default=float))
            rates = {k: np.mean(np.asarray(v) <= args.alpha) for k, v in cell.items()}
            print(f"{shift:>12} n={n:<5} " + " ".join(f"{k}={r:.2f}" for k, r in rates.items())
                  + f"  ({time.perf_counter() - t_cell:.1f} s)", file=sys.stderr)

    alibi_info: dict[str, Any] = {"ran": False}
    if alibi is not None:
        t_wait = time.perf_counter()
        code = alibi.wait()
        if code == 0 and alibi_out.exists():
            res = json.loads(alibi_out.read_text())
            alibi_info = {"ran": True, **res["info"]}
            for key, vals in res["p_values"].items():
                shift, n, det = key.split("|")
                pvals.setdefault(shift, {}).setdefault(det, {})[n] = vals
            print(f"[alibi] done (waited {time.perf_counter() - t_wait:.1f} s after shiftkit)", file=sys.stderr)
        else:
            print(f"[alibi] failed with exit code {code}; see {alibi_out}.log", file=sys.stderr)
            alibi_info = {"ran": False, "error": f"exit code {code}"}

    detectors = [d for d in dets.names] + [d for d in ("alibi_mmd", "alibi_ks") if alibi_info.get("ran")]
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for shift, per_det in pvals.items():
        for det, per_n in per_det.items():
            for n, vals in per_n.items():
                v = np.asarray(vals, dtype=np.float64)
                results.setdefault(shift, {}).setdefault(det, {})[n] = _rate(int(np.sum(v <= args.alpha)), len(v))
    limit = args.alpha + 3 * math.sqrt(args.alpha * (1 - args.alpha) / args.trials)
    type_i = {det: {n: c for n, c in results.get("none", {}).get(det, {}).items()} for det in detectors}
    above = {det: [int(n) for n, c in per.items() if c["rate"] > limit] for det, per in type_i.items()}
    above = {d: v for d, v in above.items() if v}
    # pooled over sizes: the type-I error with trials x sizes draws (e.g. the domain classifier's)
    pooled = {}
    for det, per in type_i.items():
        rej = sum(c["rejections"] for c in per.values())
        tot = sum(c["trials"] for c in per.values())
        if tot:
            pooled[det] = {**_rate(rej, tot),
                           "limit_alpha_plus_3se": args.alpha + 3 * math.sqrt(args.alpha * (1 - args.alpha) / tot)}
    elapsed = time.perf_counter() - t_start
    table = markdown_table(results, detectors, args.sizes, args.shifts, args.alpha, args.trials)
    payload = {
        "benchmark": "bench_power.py (Failing Loudly protocol on sklearn digits)",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "settings": {"alpha": args.alpha, "trials": args.trials, "sizes": args.sizes, "shifts": args.shifts,
                     "n_permutations": args.n_permutations, "alibi_permutations": args.alibi_permutations,
                     "seed": args.seed, "quick": args.quick},
        "shift_definitions": {k: {"kind": v[0], "parameter": v[1]} for k, v in SHIFTS.items() if k in args.shifts},
        "source_classifier": {"architecture": "MLP 64-64(relu)-dropout 0.2-10(softmax), Adam 1e-3, 60 epochs",
                              "train_rows": int(len(data["x_train"])), "pool_rows": int(len(data["x_pool"])),
                              "pool_accuracy": accuracy},
        "detectors": {d: LABELS.get(d, d) for d in detectors},
        "skipped_detectors": dets.skipped,
        "alibi": alibi_info,
        "results": results,
        "type_i_limit_alpha_plus_3se": limit,
        "type_i_above_limit": above,
        "type_i_pooled_over_sizes": pooled,
        "seconds": {"total": elapsed, **{f"shiftkit_{k}": v for k, v in timings.items()}},
        "table_markdown": table,
        "p_values": pvals,  # per shift, detector, n: one p-value per trial (the report's: 0 = reject, 1 = not)
    }
    Path(args.json).write_text(json.dumps(payload, indent=1, allow_nan=False, default=float) + "\n")
    Path(args.json).with_suffix(".partial.json").unlink(missing_ok=True)
    plot(results, detectors, args.sizes, args.shifts, args.alpha, args.trials, Path(args.png))
    print(table)
    print()
    print("type-I error pooled over sizes: " + ", ".join(
        f"{LABELS.get(d, d)} {c['rejections']}/{c['trials']} = {c['rate']:.3f} (limit {c['limit_alpha_plus_3se']:.3f})"
        for d, c in pooled.items()))
    if above:
        print(f"type-I above alpha + 3 s.e. ({limit:.3f}): {above}")
    targets = target_lines(results, detectors, args.sizes, args.shifts)
    print("\n".join(targets))
    if not (args.quick or args.no_results):
        from _results import write_section

        alibi_text = (f"alibi-detect {alibi_info.get('versions', {}).get('alibi-detect', '?')} MMDDrift / KSDrift on the "
                      f"same softmax draws in `benchmarks/.venv-alibi` (MMDDrift only up to n = {args.alibi_max_n}: "
                      "about 6.5 s a test at n = 1000)" if alibi_info.get("ran") else "alibi-detect did not run")
        pooled_text = ", ".join(f"{LABELS.get(d, d)} {c['rejections']}/{c['trials']} = {c['rate']:.3f} (limit "
                                f"{c['limit_alpha_plus_3se']:.3f})" for d, c in pooled.items())
        section = "\n".join([
            RESULTS_SECTION, "",
            f"- Command: `python benchmarks/bench_power.py` ({elapsed / 60:.0f} min on {machine_info()['nproc']} shared "
            f"cores); {args.trials} seeded draws per cell at alpha {args.alpha:g}, {args.n_permutations} permutations, "
            "scikit-learn digits (null: disjoint draws of clean digits; n = 1000 i.i.d. with replacement from the "
            f"pool), source classifier an MLP 64-64-10 (pool accuracy {accuracy:.3f}); {alibi_text}. `mmd_test`'s "
            "default is the aggregated test (\"MMD input\" and \"aggregated MMD input\" are one detector, on the raw "
            "pixels). \"joint MMD input+softmax\" is `shiftkit.shift.mmd_joint` with its default representations when "
            "a model is given (the standardised (8, 8) inputs and the softmax, 5 bandwidths each, min-p on shared "
            "permutations; chosen in `benchmarks/joint_mmd_choice.md`). \"shift_report verdict (Holm)\" is Holm over "
            "the input MMD (raw pixels here), feature MMD and BBSD-KS p-values. Plot: `benchmarks/power_vs_n.png`; "
            "data: `RESULTS_power.json`.",
            "", table, "",
            f"- type-I error pooled over sizes: {pooled_text}"
            + (f"; above alpha + 3 s.e. ({limit:.3f}) in a cell: {above}" if above else
               f"; no detector above alpha + 3 s.e. ({limit:.3f}) in any cell"),
            *targets, "",
        ])
        write_section(Path(args.results), RESULTS_SECTION, section)
        print(f"section written to {args.results}")
    print(f"\nwritten {args.json} and {args.png} in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
