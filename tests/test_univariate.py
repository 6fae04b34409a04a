"""Per-feature drift tests: against scipy directly, level under the null, BH correction, categorical columns."""

import numpy as np
import pytest
from scipy import stats

from shiftkit.shift.univariate import feature_drift


def test_matches_scipy_and_sorts_most_shifted_first():
    rng = np.random.default_rng(0)
    xs, xt = rng.normal(size=(200, 4)), rng.normal(size=(250, 4))
    xt[:, 2] += 0.6
    res = feature_drift(xs, xt, feature_names=list("abcd"), categorical=None)
    assert res.tests[0].feature == "c" and res.tests[0].is_shift
    for t in res.tests:
        ks = stats.ks_2samp(xs[:, t.index], xt[:, t.index])
        assert t.statistic == pytest.approx(ks.statistic) and t.p_value == pytest.approx(ks.pvalue)
    raw = np.array([t.p_value for t in sorted(res.tests, key=lambda t: t.index)])
    adj = np.array([t.p_adjusted for t in sorted(res.tests, key=lambda t: t.index)])
    np.testing.assert_allclose(adj, stats.false_discovery_control(raw))
    assert res.shifted_features == ["c"]
    frame = res.to_frame()
    assert list(frame["feature"])[0] == "c"


def test_family_wise_level_with_bonferroni():
    """With 20 null columns, Bonferroni keeps P(any false flag) near alpha."""
    rng = np.random.default_rng(1)
    any_flag = sum(
        feature_drift(rng.normal(size=(100, 20)), rng.normal(size=(100, 20)), categorical=None,
                      correction="bonferroni").n_shifted > 0
        for _ in range(200)
    )
    assert any_flag / 200 <= 0.09


def test_categorical_chi_square():
    rng = np.random.default_rng(2)
    xs = np.c_[rng.integers(0, 3, 400), rng.normal(size=400)]
    xt = np.c_[rng.choice(3, 400, p=[0.6, 0.3, 0.1]), rng.normal(size=400)]
    res = feature_drift(xs, xt, feature_names=["site", "age"])
    site = next(t for t in res.tests if t.feature == "site")
    assert site.kind == "categorical" and site.test == "chi2" and site.is_shift
    table = np.array([np.bincount(xs[:, 0].astype(int), minlength=3), np.bincount(xt[:, 0].astype(int), minlength=3)])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert site.statistic == pytest.approx(chi2) and site.p_value == pytest.approx(p)
    assert next(t for t in res.tests if t.feature == "age").kind == "numeric"
    forced = feature_drift(xs, xt, categorical=[1], max_categories=3)
    assert {t.index: t.kind for t in forced.tests} == {0: "numeric", 1: "categorical"}


def test_bad_input():
    rng = np.random.default_rng(3)
    xs, xt = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    with pytest.raises(ValueError, match="feature_names has 2 names but the data have 3 columns"):
        feature_drift(xs, xt, feature_names=["a", "b"])
    with pytest.raises(ValueError, match="Unknown correction 'holm'"):
        feature_drift(xs, xt, correction="holm")
    with pytest.raises(ValueError, match="unknown column 'z'"):
        feature_drift(xs, xt, feature_names=list("abc"), categorical=["z"])
    with pytest.raises(ValueError, match="same feature shape"):
        feature_drift(xs, xt[:, :2])


def test_categorical_level_with_rare_categories_and_unequal_sizes():
    """The asymptotic chi-square rejected 5% of these nulls at alpha = 0.01 (expected counts < 1)."""
    rng = np.random.default_rng(4)
    p = [0.97, 0.01, 0.01, 0.01]
    rejections = sum(
        feature_drift(rng.choice(4, 20, p=p)[:, None], rng.choice(4, 300, p=p)[:, None], categorical=[0],
                      correction="none", alpha=0.01, seed=i).tests[0].is_shift
        for i in range(400)
    )
    assert rejections / 400 <= 0.01 + 3 * np.sqrt(0.01 * 0.99 / 400), rejections


def test_small_expected_counts_use_an_exact_permutation_test():
    rng = np.random.default_rng(5)
    col_s = np.r_[[0] * 27, [1] * 2, [2] * 1]
    col_t = np.r_[[0] * 14, [1] * 9, [2] * 7]  # class 2: expected count 4 in each domain
    xs = np.c_[col_s, rng.permutation(col_s)]
    xt = np.c_[col_t, rng.permutation(col_t)]
    res = feature_drift(xs, xt, categorical=[0, 1], alpha=0.05, seed=0)
    for t in res.tests:
        assert t.kind == "categorical" and t.n_permutations >= 999 and t.is_shift
    again = feature_drift(xs, xt, categorical=[0, 1], alpha=0.05, seed=0)
    assert [t.p_value for t in again.tests] == [t.p_value for t in res.tests]  # seeded
    # large expected counts keep the asymptotic test (equal to scipy, see test_categorical_chi_square)
    big = feature_drift(rng.integers(0, 3, (400, 1)), rng.integers(0, 3, (400, 1)), categorical=[0])
    assert big.tests[0].n_permutations == 0
