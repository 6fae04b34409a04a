"""shiftkit.shift.scaling: the one input-space standardiser (issue 9, item 17).

The floor's value was measured in benchmarks/bench_scaling.py (digits to choose, breast-cancer
hospitals to confirm); these tests check what the Standardizer does and that a permutation test
after it keeps its level.
"""

import numpy as np
import pytest

from shiftkit.shift import mmd_test
from shiftkit.shift.scaling import DEFAULT_RANGE_FLOOR, Standardizer, standardize


def test_tabular_std_floored_at_a_fraction_of_the_range():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)) * [1.0, 100.0, 0.01, 1.0]
    x[:, 3] = 0.0
    x[0, 3] = 5.0  # one rare value: std 0.22, range 5
    x = np.c_[x, np.full(500, 3.0)]  # a constant feature
    st = Standardizer().fit(x)
    np.testing.assert_allclose(st.scale_[:3], x[:, :3].std(axis=0))  # ordinary features keep their std
    assert st.scale_[3] == pytest.approx(DEFAULT_RANGE_FLOOR * 5.0)  # floored
    assert st.scale_[4] == 1.0  # constant: left as it is
    z = st.transform(x)
    assert z.shape == (500, 5) and np.allclose(z[:, 4], 0.0)
    assert "1 of 5 feature(s) floored" in st.how_
    # units do not matter: each column's own scale
    np.testing.assert_allclose(z[:, :3].std(axis=0), 1.0)


def test_overall_floor_option():
    x = np.random.default_rng(1).normal(size=(300, 3)) * [1.0, 1.0, 0.01]
    st = Standardizer(floor=0.0, overall_floor=0.5).fit(x)
    assert st.scale_[2] == pytest.approx(0.5 * np.median(x.std(axis=0)))
    assert "median feature std" in st.how_
    assert Standardizer().get_config() == {"floor": DEFAULT_RANGE_FLOOR, "overall_floor": 0.0}


@pytest.mark.parametrize("shape", [(8, 8, 1), (6, 5, 3), (20, 2)])
def test_images_and_sequences_share_one_scale_per_channel(shape):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50,) + shape) * np.linspace(1, 3, shape[-1])
    x[:, 0, ...] *= 1e-3  # a near-constant border row
    st = Standardizer().fit(x)
    scales = st.scale_.reshape(shape)
    for c in range(shape[-1]):
        assert np.all(scales[..., c] == scales.reshape(-1, shape[-1])[0, c])  # one scale per channel
    assert "pooled scale" in st.how_
    # the near-constant border is measured on the image's scale, not its own: it stays tiny
    z = st.transform(x).reshape((50,) + shape)
    assert np.abs(z[:, 0, ...]).max() < 0.05


def test_standardize_is_fitted_on_the_pooled_sample():
    rng = np.random.default_rng(3)
    xs, xt = rng.normal(size=(40, 3)), rng.normal(2.0, 3.0, size=(30, 3))
    a, b = standardize(xs, xt)
    st = Standardizer().fit(np.concatenate([xs, xt]))
    np.testing.assert_allclose(a, st.transform(xs))
    np.testing.assert_allclose(b, st.transform(xt))
    # a symmetric function of the pooled rows: swapping which rows are "source" changes nothing
    b2, a2 = standardize(xt, xs)
    np.testing.assert_allclose(a2, a)
    np.testing.assert_allclose(b2, b)


def test_permutation_test_after_pooled_standardisation_keeps_its_level():
    """200 seeded nulls (heavy tails, unequal sizes, wildly different units): rate <= alpha + 3 s.e."""
    rng = np.random.default_rng(4)
    alpha, n_draws = 0.1, 200
    units = np.array([1.0, 1000.0, 0.001, 1.0])
    flagged = 0
    for draw in range(n_draws):
        xs = rng.standard_t(3, size=(25, 4)) * units
        xt = rng.standard_t(3, size=(18, 4)) * units
        xs[:, 3] = (rng.random(25) < 0.05).astype(float)  # a rare binary feature
        xt[:, 3] = (rng.random(18) < 0.05).astype(float)
        a, b = standardize(xs, xt)
        flagged += mmd_test(a, b, n_permutations=39, alpha=alpha, seed=draw).is_shift
    rate = flagged / n_draws
    assert 0.02 < rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / n_draws), rate
