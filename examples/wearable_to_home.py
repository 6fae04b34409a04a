"""From a wristband to a smart-home sensor: human-activity recognition under a device shift.

The scenario (all data simulated here, seeded; nothing is downloaded):

* **Source domain: a wristband.** Windows of 2.56 s (128 samples at 50 Hz) of a 3-axis
  accelerometer (in g) and a 3-axis gyroscope (rad/s) for four activities: rest, walk, run and
  stairs (climbing). The signals are built from the mechanics of gait (`simulate_window`):
  the gravity vector (1 g) seen in the device frame, rotated by the arm swing (one swing per
  stride, i.e. at half the step frequency); a vertical bounce at the step frequency with 2nd and
  3rd harmonics (stairs: relatively stronger harmonics, a more asymmetric bounce); the tangential
  acceleration of the swinging forearm; the swing rate on the gyroscope; sensor noise. Step
  frequencies: walk 1.5-2.2 Hz, run 2.3-3.0 Hz, stairs 1.3-1.9 Hz (walk and stairs overlap, as
  they do in people); rest has only postural sway and an 8-12 Hz tremor. How the forearm is held
  (its pitch, hence where gravity falls) depends on the activity (bent arms when running) and
  varies per window, as do amplitudes, harmonics and phases (`GAIT`).
* **Target domain: the smart home's sensor tag.** The same activities, seen by another device
  worn another way (`HOME_DEVICE`): its axes are rotated against the wristband's (12 deg about z,
  6 deg about x: a clip-on tag sits slightly askew), its accelerometer has per-axis gains
  (0.90 / 1.10 / 0.95) and offsets (up to 0.1 g), its gyroscope a 0.9 gain and a bias, its noise
  is 2.5-3x higher, and its clock runs at 45-47 Hz with 4 ms timing jitter while the pipeline
  takes every window as 128 samples at 50 Hz (so every frequency looks 6-11% higher). Activity
  proportions are unchanged: a covariate shift, p(x) moved and p(y | x) did not. The mounting
  rotation matters most: gravity's direction is what tells a bent running arm from a hanging one,
  and without the rotation the source model keeps about 90% of its accuracy.

The pipeline: `split_domains` (source train / val; target labelled (a few per class) /
unlabelled / test), a 1-D CNN with a `Normalization` layer trained on the wristband, the shift
report before (`shiftkit.shift_report`), then `CopyAdapter` and `FineTuneAdapter` with the few
target labels and `MMDAdapter` with the unlabelled target windows only, each measured after
(`adapter.shift_report`) and scored on the held-out target test windows. A target-only CNN
(trained from scratch on the few labels) is the baseline of what those labels alone give. A
`ShiftMonitor` is attached to every training and its curve of the feature-space normalized MMD^2
(source val vs target test) is printed.

Usage:
    python examples/wearable_to_home.py            # full run, about a minute on 2 CPU cores
    python examples/wearable_to_home.py --fast     # smaller data, fewer epochs (CI, ~30 s)
    python examples/wearable_to_home.py --seed 3 --labels-per-class 10

`run(seed, fast)` returns the results table (a pandas DataFrame); `benchmarks/bench_examples.py`
calls it over several seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter

import numpy as np

ACTIVITIES: tuple[str, ...] = ("rest", "walk", "run", "stairs")
FS_HZ = 50.0  # the wristband's (and the pipeline's) sampling rate
WINDOW = 128  # samples per window: 2.56 s at 50 Hz
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
GRAVITY = 9.81  # m/s^2
FOREARM_M = 0.30  # radius of the wrist's swing about the elbow/shoulder, m

# Per activity: step frequency (Hz), vertical bounce amplitude (g), arm-swing amplitude (rad),
# 2nd / 3rd harmonic ratios of the bounce, forearm pitch (rad; 0 = hanging, ~1.1 = bent at 90 deg).
GAIT: dict[str, dict[str, tuple[float, float]]] = {
    "rest": {"step_hz": (0.0, 0.0), "bounce_g": (0.0, 0.0), "swing_rad": (0.0, 0.0),
             "harmonics": (0.0, 0.0), "pitch_rad": (-1.2, 1.2)},
    "walk": {"step_hz": (1.5, 2.2), "bounce_g": (0.2, 0.5), "swing_rad": (0.15, 0.5),
             "harmonics": (0.35, 0.15), "pitch_rad": (-0.4, 0.7)},
    "run": {"step_hz": (2.3, 3.0), "bounce_g": (0.6, 1.4), "swing_rad": (0.35, 0.75),
            "harmonics": (0.5, 0.25), "pitch_rad": (0.5, 1.4)},
    "stairs": {"step_hz": (1.3, 1.9), "bounce_g": (0.3, 0.6), "swing_rad": (0.1, 0.35),
               "harmonics": (0.6, 0.3), "pitch_rad": (-0.4, 0.8)},
}

WRISTBAND: dict[str, Any] = {
    "rate_hz": (50.0, 50.0), "jitter_s": 0.0005, "acc_noise_g": 0.015, "gyr_noise_rads": 0.02,
}
HOME_DEVICE: dict[str, Any] = {
    "rate_hz": (45.0, 47.0),  # true sampling rate; the pipeline assumes 50 Hz
    "jitter_s": 0.004,  # timing jitter of each sample, s
    "rotation_deg": (12.0, 6.0),  # mounting: about z, then about x
    "acc_gain": (0.90, 1.10, 0.95),
    "acc_offset_g": (0.08, -0.05, 0.10),
    "gyr_gain": 0.9,
    "gyr_bias_rads": (0.05, -0.03, 0.02),
    "acc_noise_g": 0.04,
    "gyr_noise_rads": 0.05,
}

# FineTuneAdapter's head stage trains as long as CopyAdapter does, so FineTune = Copy + a fine-tuning stage.
FULL: dict[str, Any] = {
    "source_per_class": 300, "target_per_class": 200, "source_epochs": 25, "target_only_epochs": 60,
    "copy_epochs": 60, "head_epochs": 60, "fine_tune_epochs": 30, "mmd_epochs": 20,
    "n_permutations": 500, "monitor_samples": 300,
}
FAST: dict[str, Any] = {
    "source_per_class": 120, "target_per_class": 80, "source_epochs": 12, "target_only_epochs": 30,
    "copy_epochs": 30, "head_epochs": 30, "fine_tune_epochs": 10, "mmd_epochs": 6,
    "n_permutations": 100, "monitor_samples": 120,
}
METHODS: tuple[str, ...] = ("source_only", "target_only", "CopyAdapter", "FineTuneAdapter", "MMDAdapter")


# ---------------------------------------------------------------------------------------- signals
def _rotation(axis: str, angle: np.ndarray | float) -> np.ndarray:
    """Rotation matrices about a device axis; `angle` of shape `(n,)` gives `(n, 3, 3)`."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {
        "x": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


def simulate_window(activity: str, rng: np.random.Generator, *, rate_hz: float = FS_HZ,
                    jitter_s: float = 0.0005, acc_noise_g: float = 0.015,
                    gyr_noise_rads: float = 0.02) -> np.ndarray:
    """One window `(WINDOW, 6)`: accelerometer (g) and gyroscope (rad/s) in the device frame.

    Args:
        activity: one of `ACTIVITIES`.
        rng: the random generator (every random choice of the window comes from it).
        rate_hz: the device's true sampling rate (the window always has `WINDOW` samples).
        jitter_s: standard deviation of each sample's timing error, s.
        acc_noise_g, gyr_noise_rads: white sensor noise.
    """
    p = GAIT[activity]
    t = np.arange(WINDOW) / rate_hz + rng.normal(0.0, jitter_s, WINDOW)
    phase = rng.uniform(0.0, 2 * np.pi, 4)
    if activity == "rest":
        sway_rad, sway_hz = rng.uniform(0.01, 0.04), rng.uniform(0.1, 0.4)
        theta = sway_rad * np.sin(2 * np.pi * sway_hz * t + phase[0])
        dtheta = sway_rad * 2 * np.pi * sway_hz * np.cos(2 * np.pi * sway_hz * t + phase[0])
        bounce = 0.004 * np.sin(2 * np.pi * rng.uniform(8.0, 12.0) * t + phase[1])  # tremor
        tangential = np.zeros(WINDOW)
    else:
        step_hz = rng.uniform(*p["step_hz"])
        swing = rng.uniform(*p["swing_rad"]) * rng.uniform(0.85, 1.15)
        h2, h3 = (h * rng.uniform(0.7, 1.3) for h in p["harmonics"])
        w = np.pi * step_hz  # arm swing: one cycle per stride = two steps
        theta = swing * (np.sin(w * t + phase[0]) + 0.1 * np.sin(2 * w * t + phase[3]))
        dtheta = swing * w * (np.cos(w * t + phase[0]) + 0.2 * np.cos(2 * w * t + phase[3]))
        ddtheta = -swing * w**2 * (np.sin(w * t + phase[0]) + 0.4 * np.sin(2 * w * t + phase[3]))
        ws = 2 * np.pi * step_hz
        bounce = rng.uniform(*p["bounce_g"]) * (
            np.sin(ws * t + phase[1]) + h2 * np.sin(2 * ws * t + phase[2]) + h3 * np.sin(3 * ws * t + phase[3])
        )
        tangential = FOREARM_M * ddtheta / GRAVITY  # in g
    # Device orientation: a per-window forearm pitch and wrist roll, then the swing about z.
    base = _rotation("y", rng.uniform(*p["pitch_rad"])) @ _rotation("x", rng.normal(0.0, 0.15))
    orient = _rotation("z", theta) @ base  # (WINDOW, 3, 3)
    up, forward, axis = orient[:, :, 0], orient[:, :, 1], orient[:, :, 2]
    acc = (1.0 + bounce)[:, None] * up + tangential[:, None] * forward  # specific force, g
    gyr = dtheta[:, None] * axis
    gyr[:, :2] += 0.15 * dtheta[:, None] * rng.normal(0.0, 1.0, 2)  # wrist pronation wobble
    acc += rng.normal(0.0, acc_noise_g, acc.shape)
    gyr += rng.normal(0.0, gyr_noise_rads, gyr.shape)
    return np.concatenate([acc, gyr], axis=1)


def _mounting(x: np.ndarray, device: dict[str, Any]) -> np.ndarray:
    """The target device's placement and calibration: rotation, gains, offsets and bias."""
    rz, rx = np.deg2rad(device["rotation_deg"])
    rot = _rotation("z", rz) @ _rotation("x", rx)
    out = x.copy()
    out[..., :3] = (x[..., :3] @ rot.T) * np.asarray(device["acc_gain"]) + np.asarray(device["acc_offset_g"])
    out[..., 3:] = (x[..., 3:] @ rot.T) * device["gyr_gain"] + np.asarray(device["gyr_bias_rads"])
    return out


def simulate_domain(per_class: int, rng: np.random.Generator, device: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` windows of each activity recorded with `device` (shuffled): `(x, y)`.

    `x` has shape `(4 * per_class, WINDOW, 6)` (float32), `y` the activity indices.
    """
    xs, ys = [], []
    for k, activity in enumerate(ACTIVITIES):
        for _ in range(per_class):
            xs.append(simulate_window(
                activity, rng, rate_hz=rng.uniform(*device["rate_hz"]), jitter_s=device["jitter_s"],
                acc_noise_g=device["acc_noise_g"], gyr_noise_rads=device["gyr_noise_rads"],
            ))
            ys.append(k)
    x, y = np.stack(xs), np.asarray(ys, dtype=np.int64)
    if "rotation_deg" in device:
        x = _mounting(x, device)
    order = rng.permutation(len(y))
    return x[order].astype(np.float32), y[order]


def make_data(seed: int = 0, *, source_per_class: int = 300, target_per_class: int = 200) -> tuple[np.ndarray, ...]:
    """`(x_source, y_source, x_target, y_target)`: wristband and home-device windows, seeded."""
    source_rng, target_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    xs, ys = simulate_domain(source_per_class, source_rng, WRISTBAND)
    xt, yt = simulate_domain(target_per_class, target_rng, HOME_DEVICE)
    return xs, ys, xt, yt


# ---------------------------------------------------------------------------------------- model
def build_cnn(x_train: np.ndarray, n_classes: int = len(ACTIVITIES)) -> Any:
    """A small 1-D CNN: per-channel Normalization (adapted on `x_train`) -> 3 Conv1D -> GAP -> Dense(32) -> softmax.

    The adapters' feature space is the 32-d "features" layer (the input of the output head).
    """
    import keras
    from keras import layers

    norm = layers.Normalization(axis=-1, name="normalize")
    norm.adapt(x_train)
    model = keras.Sequential(
        [
            keras.Input(x_train.shape[1:]),
            norm,
            layers.Conv1D(16, 7, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling1D(2, name="pool1"),
            layers.Conv1D(32, 5, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling1D(2, name="pool2"),
            layers.Conv1D(32, 3, padding="same", activation="relu", name="conv3"),
            layers.GlobalAveragePooling1D(name="gap"),
            layers.Dense(32, activation="relu", name="features"),
            layers.Dense(n_classes, activation="softmax", name="activity"),
        ],
        name="har_cnn",
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ---------------------------------------------------------------------------------------- the study
def run(seed: int = 0, fast: bool = False, *, labels_per_class: int = 5,
        log: Callable[..., None] | None = None) -> Any:
    """Simulate, train, measure, adapt, measure again and score, for one seed.

    Args:
        seed: seeds the simulation, the splits, the weights and the shuffles.
        fast: the `FAST` settings (smaller data, fewer epochs and permutations; same code path).
        labels_per_class: labelled target windows per activity for Copy / FineTune / target-only.
        log: called like `print` with the narrative (split sizes, reports, curves); None is silent.

    Returns:
        A pandas DataFrame, one row per method (`METHODS`), columns `target_labels`, `accuracy`,
        `balanced_accuracy`, `macro_f1`, `feature_mmd2_normalized` and `feature_p_value` (the
        feature-space MMD test of source val vs target test in that method's model), `fit_s`.
        `frame.attrs["curves"]`: method -> ShiftMonitor's normalized MMD^2 per epoch (lists);
        `frame.attrs["source_val_accuracy"]`.
    """
    import keras
    import pandas as pd

    import shiftkit

    say = log or (lambda *a, **k: None)
    cfg = dict(FAST if fast else FULL)
    xs_all, ys_all, xt_all, yt_all = make_data(seed, source_per_class=cfg["source_per_class"],
                                               target_per_class=cfg["target_per_class"])
    splits = shiftkit.split_domains(xs_all, ys_all, xt_all, yt_all, target_labeled=labels_per_class,
                                    test_size=0.5, seed=seed)
    xs, ys = splits.source_train
    xv, yv = splits.source_val
    xl, yl = splits.target_labeled
    xu = splits.target_unlabeled
    xt, yt = splits.target_test
    say(f"Wristband: {len(xs_all)} windows ({WINDOW} samples x {len(CHANNELS)} channels at {FS_HZ:g} Hz); "
        f"home device: {len(xt_all)} windows. Activities: {', '.join(ACTIVITIES)}.")
    say(splits.summary().to_string())

    def monitor() -> Any:
        # Held-out wristband windows vs the target test windows: what the results table measures too.
        return shiftkit.ShiftMonitor(xv, xt, max_samples=cfg["monitor_samples"], seed=seed)

    # 1. Source model (with a monitor: the feature gap while the wristband model learns).
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    source = build_cnn(xs)
    hist = source.fit(xs, ys, epochs=cfg["source_epochs"], batch_size=32, verbose=0, callbacks=[monitor()])
    fit_s = {"source_only": time.perf_counter() - t0}
    curves = {"source_only": hist.history["shift_mmd2_normalized"]}

    # 2. Measure before.
    report = shiftkit.shift_report(xv, xt, yv, yt, model=source, n_permutations=cfg["n_permutations"], seed=seed)
    say("\nShift before adaptation (held-out wristband vs home-device test windows, source CNN):")
    say(report)

    # 3. Baseline on the few target labels alone, and the adapters.
    models: dict[str, Any] = {"source_only": source}
    keras.utils.set_random_seed(seed + 1)
    t0 = time.perf_counter()
    target_only = build_cnn(xl)
    hist = target_only.fit(xl, yl, epochs=cfg["target_only_epochs"], batch_size=16, verbose=0, callbacks=[monitor()])
    fit_s["target_only"] = time.perf_counter() - t0
    curves["target_only"] = hist.history["shift_mmd2_normalized"]
    models["target_only"] = target_only

    adapters: dict[str, Any] = {}
    for offset, method in enumerate(METHODS[2:], start=2):
        keras.utils.set_random_seed(seed + offset)
        t0 = time.perf_counter()
        if method == "CopyAdapter":
            adapter = shiftkit.CopyAdapter(source).fit(
                xl, yl, epochs=cfg["copy_epochs"], batch_size=16, learning_rate=1e-2, verbose=0, callbacks=[monitor()])
        elif method == "FineTuneAdapter":
            adapter = shiftkit.FineTuneAdapter(source, head_epochs=cfg["head_epochs"], learning_rate=1e-2).fit(
                xl, yl, epochs=cfg["fine_tune_epochs"], batch_size=16, verbose=0, callbacks=[monitor()])
        else:  # unsupervised: labelled wristband windows + unlabelled home-device windows
            adapter = shiftkit.MMDAdapter(source, mmd_weight=1.0).fit(
                xs, ys, xu, epochs=cfg["mmd_epochs"], batch_size=64, seed=seed, verbose=0, callbacks=[monitor()])
        fit_s[method] = time.perf_counter() - t0
        curves[method] = adapter.history["shift_mmd2_normalized"]
        adapters[method] = adapter
        models[method] = adapter.model

    mmd_report = adapters["MMDAdapter"].shift_report(xv, xt, yv, yt, n_permutations=cfg["n_permutations"], seed=seed)
    say("\nMMDAdapter (no target labels), before | after:")
    say(mmd_report)

    # 4. Score every model on the target test windows; feature-space shift in each model's features.
    rows = {}
    labels_used = {"source_only": 0, "target_only": len(yl), "CopyAdapter": len(yl), "FineTuneAdapter": len(yl),
                   "MMDAdapter": 0}
    for method, model in models.items():
        proba = model.predict(xt, batch_size=256, verbose=0)
        scores = shiftkit.classification_metrics(yt, proba, ["accuracy", "balanced_accuracy", "macro_f1"])
        if method == "source_only":
            test = report.feature_test
        elif method == "MMDAdapter":
            test = mmd_report.after.feature_test
        else:
            test = shiftkit.shift_report(xv, xt, model=model, n_permutations=cfg["n_permutations"],
                                         seed=seed).feature_test
        rows[method] = {"target_labels": labels_used[method], **scores,
                        "feature_mmd2_normalized": test.normalized, "feature_p_value": test.p_value,
                        "fit_s": fit_s[method]}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "method"
    source_val_acc = float(np.mean(source.predict(xv, verbose=0).argmax(axis=1) == yv))
    frame.attrs["source_val_accuracy"] = source_val_acc
    frame.attrs["curves"] = {m: [float(v) for v in c] for m, c in curves.items()}

    say(f"\nSource CNN accuracy on held-out wristband windows: {source_val_acc:.3f}.")
    say("\nShiftMonitor: feature-space normalized MMD^2 (held-out wristband vs home-device test) per epoch:")
    say(curve_table(frame.attrs["curves"]))
    return frame


def curve_table(curves: dict[str, list[float]], points: int = 6) -> str:
    """The ShiftMonitor curves at `points` evenly spaced epochs (first and last included)."""
    head = f"{'model':<17}{'epochs':>7}  normalized MMD^2 at evenly spaced epochs (first ... last)"
    lines = [head, "-" * len(head)]
    for method, values in curves.items():
        values = [v for v in values if np.isfinite(v)]
        if not values:
            continue
        idx = sorted({round(float(i)) for i in np.linspace(0, len(values) - 1, min(points, len(values)))})
        lines.append(f"{method:<17}{len(values):>7}  " + "  ".join(f"e{i + 1}:{values[i]:.4f}" for i in idx))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Activity recognition, wristband -> smart-home device: "
                                     "shift report, Copy / FineTune / MMD adapters, ShiftMonitor curves.")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation, splits and weights")
    parser.add_argument("--fast", action="store_true", help="smaller data, fewer epochs, same code path (CI)")
    parser.add_argument("--labels-per-class", type=int, default=5,
                        help="labelled home-device windows per activity (default 5)")
    args = parser.parse_args(argv)

    import pandas as pd

    t0 = time.perf_counter()
    frame = run(args.seed, args.fast, labels_per_class=args.labels_per_class, log=print)
    print(f"\nResults on the home-device test windows (seed {args.seed}{', fast mode' if args.fast else ''}; "
          "feature_* = MMD test of held-out wristband vs home-device test windows in each model's features, "
          "lower normalized MMD^2 / higher p = less shift):")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(frame.round(4).to_string())
    print(f"\nTotal time {time.perf_counter() - t0:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
