"""The five held-out scenarios of `bench_adapt.py defaults`: data, a user-style model, its source training.

Each scenario is what a new user brings to shiftkit: labelled source data, a model of their own
trained on it, a target domain with a few labels (`labels_per_class` per class) and a disjoint,
labelled target *test* set that only the benchmark scores on. None of them is a scenario the
adapters' defaults were chosen on (examples/digits_shift.py uses blur severity 5 with a CNN without
BatchNormalization; examples/wearable_to_home.py a 1-D CNN and the home device's mounting):

1. ``digits-blur``: scikit-learn digits, target through a Gaussian blur (severity 4 of 5);
2. ``digits-rot-contrast-noise``: target digits rotated (+-15..30 deg), lower contrast and noisy;
3. ``digits-noise``: target digits with strong pixel noise (severity 5 of 5);
   (1-3: a small CNN *with BatchNormalization*, trained on the clean source digits)
4. ``gru-placement``: simulated 6-axis activity windows (examples/wearable_to_home.py's generator)
   from a wristband (source) and from the same sensor moved to a trouser pocket (target: another
   orientation, nothing else changed); a GRU model;
5. ``hospitals-mlp``: breast-cancer patients split between two hospitals by tumour size
   (`shiftkit.datasets.hospitals_covariate`, strength 2), an MLP with a sigmoid output.

Every random step (split, corruption, labelled sample, initial weights, shuffles) is seeded by the
seed given to `make`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

LABELS_PER_CLASS = 10

# The wristband moved to a trouser pocket: the same device (rate, noise, calibration), worn at
# another place and orientation. Only the mounting changes (a pure placement shift).
POCKET_PLACEMENT: dict[str, Any] = {
    "rate_hz": (50.0, 50.0), "jitter_s": 0.0005, "acc_noise_g": 0.015, "gyr_noise_rads": 0.02,
    "rotation_deg": (-35.0, 25.0),  # about z, then about x
    "acc_gain": (1.0, 1.0, 1.0), "acc_offset_g": (0.0, 0.0, 0.0),
    "gyr_gain": 1.0, "gyr_bias_rads": (0.0, 0.0, 0.0),
}


@dataclasses.dataclass
class Data:
    """One seed's arrays of a scenario."""

    x_source: np.ndarray
    y_source: np.ndarray
    x_labeled: np.ndarray  # the few target labels the adapters (and the by-hand fine-tune) get
    y_labeled: np.ndarray
    x_test: np.ndarray  # disjoint target test set: scored, never trained on
    y_test: np.ndarray


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A held-out scenario: how to make its data and its user's model, and how the user trains it."""

    name: str
    description: str
    model_text: str
    make_data: Callable[[int], Data]
    build_model: Callable[[Data], Any]  # an uncompiled, freshly initialised model (set the seed first)
    source_epochs: int
    source_batch_size: int = 32
    loss: str = "sparse_categorical_crossentropy"


# ------------------------------------------------------------------------------------------- splits
def pick_labeled(x: np.ndarray, y: np.ndarray, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """`per_class` labelled rows per class drawn from `(x, y)`; the rest is the target test set.

    Returns:
        `(x_labeled, y_labeled, x_test, y_test)`, the labelled rows shuffled.
    """
    picked = []
    for k in np.unique(y):
        rows = np.flatnonzero(y == k)
        if len(rows) <= per_class:
            raise ValueError(f"class {k} has only {len(rows)} target rows; need more than {per_class}.")
        picked.append(rng.choice(rows, size=per_class, replace=False))
    chosen = rng.permutation(np.concatenate(picked))
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    return x[chosen], y[chosen], x[rest], y[rest]


# ------------------------------------------------------------------------------------------- digits
def rotate_contrast_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Digits scanned askew by a worse device: rotated, lower contrast, grey background, noisy.

    Each image is rotated by +-15..30 degrees (sign at random, bilinear, about its centre), then
    `0.6 * x + 0.15`, then Gaussian noise of std 0.12, clipped to [0, 1].
    """
    from scipy.ndimage import rotate

    out = np.empty_like(x)
    angles = rng.uniform(15.0, 30.0, len(x)) * rng.choice([-1.0, 1.0], len(x))
    for i, angle in enumerate(angles):
        out[i] = rotate(x[i], angle, axes=(0, 1), reshape=False, order=1, mode="constant", cval=0.0)
    out = 0.6 * np.clip(out, 0.0, 1.0) + 0.15
    return np.clip(out + rng.normal(0.0, 0.12, out.shape), 0.0, 1.0).astype(np.float32)


def _digits_data(corruption: str | None, severity: int) -> Callable[[int], Data]:
    def make(seed: int) -> Data:
        from shiftkit.datasets import digits_corrupted

        if corruption is None:  # rotation + contrast + noise (ours) on the clean target half
            from sklearn.datasets import load_digits

            sc = digits_corrupted(seed=seed, corruption="noise", severity=1)  # for its split only
            clean = (load_digits().images / 16.0).astype(np.float32)[..., None]
            x_target = rotate_contrast_noise(clean[sc.target_index], np.random.default_rng([seed, 2]))
            y_target = np.asarray(sc.y_target)
        else:
            sc = digits_corrupted(seed=seed, corruption=corruption, severity=severity)
            x_target, y_target = np.asarray(sc.x_target), np.asarray(sc.y_target)
        xl, yl, xt, yt = pick_labeled(x_target, y_target, LABELS_PER_CLASS, np.random.default_rng([seed, 1]))
        return Data(np.asarray(sc.x_source, np.float32), np.asarray(sc.y_source), xl, yl, xt, yt)

    return make


def build_bn_cnn(data: Data) -> Any:
    """A user's small CNN with BatchNormalization: (Conv-BN-ReLU) x 2, pool, Dense 64, softmax."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(data.x_source.shape[1:]),
            layers.Conv2D(16, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Conv2D(32, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(int(data.y_source.max()) + 1, activation="softmax"),
        ],
        name="digits_bn_cnn",
    )


# ------------------------------------------------------------------------------------------- GRU
def _wearable() -> Any:
    if str(REPO / "examples") not in sys.path:
        sys.path.insert(0, str(REPO / "examples"))
    import wearable_to_home

    return wearable_to_home


def _gru_data(source_per_class: int, target_per_class: int) -> Callable[[int], Data]:
    def make(seed: int) -> Data:
        w = _wearable()
        rng_s, rng_t, rng_l = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, 4]).spawn(3))
        xs, ys = w.simulate_domain(source_per_class, rng_s, w.WRISTBAND)
        xt, yt = w.simulate_domain(target_per_class, rng_t, POCKET_PLACEMENT)
        # 25 Hz (every other sample, 64 steps): what a user feeding a GRU on a small CPU would do.
        xs, xt = xs[:, ::2], xt[:, ::2]
        xl, yl, x_test, y_test = pick_labeled(xt, yt, LABELS_PER_CLASS, rng_l)
        return Data(xs, ys, xl, yl, x_test, y_test)

    return make


def build_gru(data: Data) -> Any:
    """A user's GRU classifier: per-channel Normalization (adapted on the source), GRU 32, Dense 32, softmax."""
    import keras
    from keras import layers

    norm = layers.Normalization(axis=-1)
    norm.adapt(data.x_source)
    return keras.Sequential(
        [
            keras.Input(data.x_source.shape[1:]),
            norm,
            layers.GRU(32),
            layers.Dense(32, activation="relu"),
            layers.Dense(int(data.y_source.max()) + 1, activation="softmax"),
        ],
        name="har_gru",
    )


# ------------------------------------------------------------------------------------------- tabular
def _hospitals_data(strength: float) -> Callable[[int], Data]:
    def make(seed: int) -> Data:
        from shiftkit.datasets import hospitals_covariate

        sc = hospitals_covariate(seed=seed, strength=strength)
        xl, yl, xt, yt = pick_labeled(np.asarray(sc.x_target, np.float32), np.asarray(sc.y_target),
                                      LABELS_PER_CLASS, np.random.default_rng([seed, 5]))
        return Data(np.asarray(sc.x_source, np.float32), np.asarray(sc.y_source), xl, yl, xt, yt)

    return make


def build_mlp(data: Data) -> Any:
    """A user's MLP for a binary outcome: Normalization (adapted on the source), Dense 32, Dense 16, sigmoid."""
    import keras
    from keras import layers

    norm = layers.Normalization(axis=-1)
    norm.adapt(data.x_source)
    return keras.Sequential(
        [
            keras.Input(data.x_source.shape[1:]),
            norm,
            layers.Dense(32, activation="relu"),
            layers.Dense(16, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="hospital_mlp",
    )


# ------------------------------------------------------------------------------------------- registry
def scenarios(fast: bool = False) -> list[Scenario]:
    """The five scenarios (`fast`: fewer source epochs and smaller simulated data; same code path)."""
    cnn = "CNN Conv16-BN-ReLU-Conv32-BN-ReLU-Pool-Dense64-softmax10"
    return [
        Scenario("digits-blur",
                 "scikit-learn digits; target half blurred (`digits_corrupted(corruption='blur', severity=4)`, "
                 "std 1.0 px)", cnn, _digits_data("blur", 4), build_bn_cnn, 3 if fast else 30),
        Scenario("digits-rot-contrast-noise",
                 "scikit-learn digits; target half rotated +-15..30 deg, contrast 0.6x + 0.15, noise std 0.12",
                 cnn, _digits_data(None, 0), build_bn_cnn, 3 if fast else 30),
        Scenario("digits-noise",
                 "scikit-learn digits; target half with pixel noise (`digits_corrupted(corruption='noise', "
                 "severity=5)`, std 0.3)", cnn, _digits_data("noise", 5), build_bn_cnn, 3 if fast else 30),
        Scenario("gru-placement",
                 "simulated activity windows (rest/walk/run/stairs; examples/wearable_to_home.py), wristband -> "
                 "the same sensor in a trouser pocket (rotated -35 deg about z, 25 deg about x), 64 steps x 6 "
                 "channels", "GRU: Normalization-GRU32-Dense32-softmax4",
                 _gru_data(40 if fast else 150, 30 if fast else 100), build_gru, 3 if fast else 25),
        Scenario("hospitals-mlp",
                 "breast-cancer hospitals by tumour size (`hospitals_covariate(strength=2.0)`)",
                 "MLP: Normalization-Dense32-Dense16-sigmoid", _hospitals_data(2.0), build_mlp,
                 3 if fast else 60, 32, "binary_crossentropy"),
    ]


def train_source(scenario: Scenario, data: Data, seed: int) -> Any:
    """Build the scenario's model and train it on the source data (Adam 1e-3), seeded."""
    import keras

    keras.utils.set_random_seed(seed)
    model = scenario.build_model(data)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=scenario.loss, metrics=["accuracy"])
    model.fit(data.x_source, data.y_source, epochs=scenario.source_epochs, batch_size=scenario.source_batch_size,
              verbose=0)
    return model


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a Keras classifier (softmax: argmax; one sigmoid unit: > 0.5)."""
    out = np.asarray(model.predict(x, batch_size=256, verbose=0))
    pred = (out.reshape(-1) > 0.5).astype(np.int64) if out.ndim == 1 or out.shape[-1] == 1 else out.argmax(-1)
    return float(np.mean(pred == np.asarray(y).reshape(-1)))
