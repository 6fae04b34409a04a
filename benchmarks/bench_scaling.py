"""Choosing and confirming the input-space scale floor of `shiftkit.shift.scaling` (issue 9, item 17).

Input-space MMD runs on standardised features. Dividing each feature by its own standard deviation
lets a near-constant feature (an image's border pixel) dominate the kernel, so a change nobody
cares about becomes a "shift". `Standardizer` floors each tabular feature's scale at
`floor x (max - min)` of that feature and scales images by one pooled scale per channel. This
script measures how often `mmd_test` (alpha = 0.05, 199 permutations) flags a shift after each
scaling, to choose `floor` on one data set and confirm it on another:

Choose (digits, `sklearn.datasets.load_digits`, 1797 8x8 images, intensities 0..16):
    per seed, a seeded shuffle; source = rows 0-199, target = rows 200-399 (two disjoint 200-row
    windows), the target then transformed:
      none           nothing (calibration: should be flagged about alpha of the time)
      thicken 1%     a 1% stroke thickening: every pixel raised to at least 1% of the brightest
                     pixel in its 3x3 neighbourhood (stroke-neighbour pixels gain at most 0.16 =
                     1% of the maximum intensity) -- a change that must NOT be flagged much more
                     often than alpha
      blur           Gaussian blur, sigma 0.6 px                                 -- real shifts,
      noise          additive Gaussian noise, sigma 0.2 x 16 = 3.2                  should still be
      rotation       rotated by 10 degrees (bilinear, same frame)                   flagged
    Images are given flattened, (n, 64): the tabular path, where the floor acts. The image path
    ((n, 8, 8, 1): one pooled scale) is measured beside it.

Confirm (breast-cancer hospitals, `shiftkit.datasets`; not used to choose):
      hospitals_no_shift                calibration (stratified random halves)
      hospitals_covariate strength 0.3  a weak covariate shift (power)
      hospitals_covariate strength 1.0  the default covariate shift (power)
      hospitals_label_shift             a label shift, visible in p(x)
    compared with the scaling shift_report used before (source mean / std, no floor).

Every scaling is fitted on the pooled sample (source and target together), except the old one.

Usage:
    python benchmarks/bench_scaling.py            # 100 seeds per cell; writes its RESULTS.md section
    python benchmarks/bench_scaling.py --quick    # 10 seeds, nothing written
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from _results import machine_info, write_section  # noqa: E402
from scipy import ndimage  # noqa: E402

SECTION = "## Input-space scale floor (bench_scaling.py)"
RANGE_FLOORS = (0.0, 0.05, 0.1, 0.3, 1.0)
OVERALL_FLOORS = (0.1, 0.3)
ALPHA = 0.05
#: The image path of `Standardizer` (more than one feature axis): one pooled scale per last axis.
IMAGE_SHAPES = {
    "images (n,8,8,1): one pooled scale": lambda im: im[..., None],
    "images (n,8,8): last axis read as 8 channels": lambda im: im,
}
N_PERMUTATIONS = 199


def _old_standardize(xs: np.ndarray, xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """shift_report's scaling before issue 9: source mean / std, no floor."""
    xs = xs.reshape(len(xs), -1)
    xt = xt.reshape(len(xt), -1)
    mean, std = xs.mean(axis=0), xs.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (xs - mean) / std, (xt - mean) / std


def _variants() -> dict:
    from shiftkit.shift.scaling import standardize

    def flat(a: np.ndarray) -> np.ndarray:
        return a.reshape(len(a), -1)

    out = {"source std (old)": _old_standardize}
    for f in RANGE_FLOORS:
        out[f"pooled, range {f:g}" if f else "pooled std, no floor"] = (
            lambda a, b, f=f: standardize(flat(a), flat(b), floor=f, overall_floor=0.0)
        )
    for g in OVERALL_FLOORS:
        out[f"pooled, range 0.1, overall {g:g}"] = (
            lambda a, b, g=g: standardize(flat(a), flat(b), floor=0.1, overall_floor=g)
        )
    return out


# ------------------------------------------------------------------ digits transforms
def thicken(img: np.ndarray, amount: float = 0.01) -> np.ndarray:
    """Every pixel raised to at least `amount` x the brightest pixel of its 3x3 neighbourhood."""
    return np.maximum(img, amount * ndimage.grey_dilation(img, size=(1, 3, 3)))


def _transforms(rng: np.random.Generator) -> dict:
    return {
        "none": lambda im: im,
        "thicken 1%": thicken,
        "blur": lambda im: ndimage.gaussian_filter(im, sigma=(0, 0.6, 0.6)),
        "noise": lambda im: im + rng.normal(0.0, 0.2 * 16.0, size=im.shape),
        "rotation": lambda im: ndimage.rotate(im, 10.0, axes=(1, 2), reshape=False, order=1),
    }


def _rate(flags: list[bool]) -> str:
    k, n = int(np.sum(flags)), len(flags)
    return f"{k / n:.2f}"


def run(n_seeds: int) -> tuple[dict, dict, float]:
    from sklearn.datasets import load_digits

    from shiftkit.datasets import hospitals_covariate, hospitals_label_shift, hospitals_no_shift
    from shiftkit.shift import mmd_test
    from shiftkit.shift.scaling import Standardizer

    t0 = time.perf_counter()
    variants = _variants()
    images = load_digits().images.astype(np.float64)  # (1797, 8, 8), 0..16
    digits: dict = {}
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(images))
        src, tgt = images[order[:200]], images[order[200:400]]
        for cond, fn in _transforms(rng).items():
            target = fn(tgt)
            for name, scale in variants.items():
                a, b = scale(src, target)
                res = mmd_test(a, b, n_permutations=N_PERMUTATIONS, alpha=ALPHA, seed=seed)
                digits.setdefault((cond, name), []).append(res.is_shift)
            for label, shaped in IMAGE_SHAPES.items():
                xs_img, xt_img = shaped(src), shaped(target)
                st = Standardizer().fit(np.concatenate([xs_img, xt_img]))
                res = mmd_test(st.transform(xs_img), st.transform(xt_img), n_permutations=N_PERMUTATIONS,
                               alpha=ALPHA, seed=seed)
                digits.setdefault((cond, label), []).append(res.is_shift)
    hospitals: dict = {}
    scenarios = {
        "hospitals_no_shift": hospitals_no_shift,
        "hospitals_covariate strength 0.3": lambda seed: hospitals_covariate(seed, strength=0.3),
        "hospitals_covariate strength 1.0": lambda seed: hospitals_covariate(seed, strength=1.0),
        "hospitals_label_shift": hospitals_label_shift,
        # Selection on features in small units (std well under the median feature std), where a
        # floor relative to the data's overall scale would cost power.
        "covariate on 'smoothness error' (strength 0.4)": lambda seed: hospitals_covariate(
            seed, strength=0.4, feature="smoothness error"
        ),
        "covariate on 'fractal dimension error' (strength 0.4)": lambda seed: hospitals_covariate(
            seed, strength=0.4, feature="fractal dimension error"
        ),
        "covariate on 'mean smoothness' (strength 0.4)": lambda seed: hospitals_covariate(
            seed, strength=0.4, feature="mean smoothness"
        ),
    }
    for seed in range(n_seeds):
        for scen, load in scenarios.items():
            s = load(seed)
            for name, scale in variants.items():
                a, b = scale(s.x_source, s.x_target)
                res = mmd_test(a, b, n_permutations=N_PERMUTATIONS, alpha=ALPHA, seed=seed)
                hospitals.setdefault((scen, name), []).append(res.is_shift)
    return digits, hospitals, time.perf_counter() - t0


def _table(results: dict, rows: list[str], cols: list[str], first: str) -> list[str]:
    lines = [f"| {first} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for r in rows:
        cells = [_rate(results[(c, r)]) if (c, r) in results else "-" for c in cols]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return lines


def report(digits: dict, hospitals: dict, n_seeds: int, seconds: float) -> str:
    from shiftkit.shift.scaling import DEFAULT_RANGE_FLOOR

    m = machine_info()
    se = np.sqrt(ALPHA * (1 - ALPHA) / n_seeds)
    lines = [SECTION, ""]
    lines.append(f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; "
                 f"machine: {m['nproc']} cores, {m['cpu']}; {seconds:.0f} s")
    lines.append(f"- Command: `python benchmarks/bench_scaling.py` ({n_seeds} seeds per cell; "
                 f"`mmd_test`, alpha = {ALPHA}, {N_PERMUTATIONS} permutations, median bandwidth).")
    lines.append("- Cells: the fraction of seeds flagged as a shift. Calibration cells should be "
                 f"near {ALPHA} (3 standard errors: <= {ALPHA + 3 * se:.2f}).")
    lines.append(f"- Default now: `DEFAULT_RANGE_FLOOR = {DEFAULT_RANGE_FLOOR:g}`.")
    lines.append("")
    lines.append("Choose: digits, two disjoint 200-row windows, target transformed (tabular path: (n, 64)).")
    lines.append("")
    conds = ["none", "thicken 1%", "blur", "noise", "rotation"]
    rows = list(_variants()) + list(IMAGE_SHAPES)
    lines += _table(digits, rows, conds, "scaling")
    lines.append("")
    lines.append("Confirm: breast-cancer hospitals (not used to choose).")
    lines.append("")
    scen = list(dict.fromkeys(k[0] for k in hospitals))
    lines += _table(hospitals, list(_variants()), scen, "scaling")
    lines.append("")
    lines += _conclusions(digits, hospitals)
    return "\n".join(lines) + "\n"


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.0%}" if round(lo, 2) == round(hi, 2) else f"{lo:.0%}-{hi:.0%}"


def _conclusions(digits: dict, hospitals: dict) -> list[str]:
    """What the tables say, written from the measured rates (so a rerun stays truthful)."""

    def r(d: dict, cond: str, name: str) -> float:
        return float(np.mean(d[(cond, name)]))

    small = [k for k in dict.fromkeys(c for c, _ in hospitals) if k.startswith("covariate on")]
    range_names = [n for n in _variants() if n.startswith("pooled, range") and "overall" not in n]
    range_rates = [r(digits, "thicken 1%", n) for n in range_names + ["pooled std, no floor"]]
    default = "pooled, range 0.1"
    out = ["Conclusions (from the rates above):"]
    out.append(
        f"- No range floor helps flattened digits: with every floor from 0 to 1 x range the 1% "
        f"thickening is flagged in {_span(range_rates)} of windows (source std, the old "
        f"scaling: {r(digits, 'thicken 1%', 'source std (old)'):.0%}). In the pooled sample a pixel "
        "whose only variation is the thickening has a range of at most 0.16, so any floor relative "
        "to its own range still makes that variation unit-sized."
    )
    for g in OVERALL_FLOORS:
        name = f"pooled, range 0.1, overall {g:g}"
        out.append(
            f"- A floor of {g:g} x the median feature std (the data's overall scale) brings the "
            f"thickening to {r(digits, 'thicken 1%', name):.0%}, but costs power on covariate shifts "
            "in small-unit breast-cancer features: "
            + ", ".join(f"{k.split(chr(39))[1]} {r(hospitals, k, default):.2f} -> {r(hospitals, k, name):.2f}"
                        for k in small)
            + " (range 0.1 -> with it)."
        )
    names = ["pooled std, no floor", "pooled, range 0.05", "pooled, range 0.1", "pooled, range 0.3", "pooled, range 1"]
    out.append(
        "- Power on the small-unit covariate shifts by range floor (none / 0.05 / 0.1 / 0.3 / 1): "
        + "; ".join(
            f"{k.split(chr(39))[1]} " + " / ".join(f"{r(hospitals, k, n):.2f}" for n in names) for k in small
        )
        + ". The floor costs power once it exceeds the std / range of those features (0.076-0.23 on "
        "breast cancer); at 0.1 it touches only the few features below that ratio, so "
        "DEFAULT_RANGE_FLOOR stays 0.1 (it guards features whose spread sits in a few rare values)."
    )
    img = "images (n,8,8,1): one pooled scale"
    out.append(
        f"- Images with their channel axis take the pooled path: thickening "
        f"{r(digits, 'thicken 1%', img):.0%} (no shift: {r(digits, 'none', img):.0%}), blur / noise / "
        f"rotation {r(digits, 'blur', img):.0%} / {r(digits, 'noise', img):.0%} / "
        f"{r(digits, 'rotation', img):.0%}. This is the fix for images; a 3-D array (n, 8, 8) is read "
        f"as a sequence with 8 channels (thickening "
        f"{r(digits, 'thicken 1%', 'images (n,8,8): last axis read as 8 channels'):.0%}): pass "
        "grayscale images as (n, h, w, 1)."
    )
    out.append(
        f"- Calibration: digits without a transform {r(digits, 'none', default):.0%}; hospitals_no_shift "
        f"{r(hospitals, 'hospitals_no_shift', default):.0%} (stratified halves of one population: the "
        "permutation test is conservative there) with every scaling."
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="10 seeds, nothing written")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--save", type=Path, default=None, help="also save the per-seed flags (JSON)")
    parser.add_argument("--load", type=Path, default=None, help="render saved flags instead of running")
    args = parser.parse_args(argv)
    n_seeds = 10 if args.quick else args.seeds
    if args.load:
        raw = json.loads(Path(args.load).read_text())
        digits = {tuple(k.split(" || ")): v for k, v in raw["digits"].items()}
        hospitals = {tuple(k.split(" || ")): v for k, v in raw["hospitals"].items()}
        n_seeds, seconds = raw["n_seeds"], raw["seconds"]
    else:
        digits, hospitals, seconds = run(n_seeds)
        if args.save:
            Path(args.save).write_text(json.dumps({
                "n_seeds": n_seeds, "seconds": seconds,
                "digits": {" || ".join(k): [bool(v) for v in vs] for k, vs in digits.items()},
                "hospitals": {" || ".join(k): [bool(v) for v in vs] for k, vs in hospitals.items()},
            }))
    text = report(digits, hospitals, n_seeds, seconds)
    print(text)
    if not args.quick:
        write_section(args.results, SECTION, text)
        print(f"wrote section '{SECTION}' to {args.results}")


if __name__ == "__main__":
    main()
