import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def small_model():
    """A tiny built MLP classifier: 5 inputs -> 8 (relu, 'hidden') -> 3 (softmax, 'out')."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="softmax", name="out"),
        ],
        name="small_mlp",
    )
    return model


@pytest.fixture(scope="session")
def gaussian_classifier():
    """A trained 3-class MLP on three unit Gaussians in 3-D (means 0, 3 e_1, 3 e_2): (model, means, x, y), 900 rows."""
    import keras

    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    y = rng.integers(0, 3, 900)
    x = (means[y] + rng.normal(size=(900, 3))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=40, verbose=0)
    return model, means, x, y
