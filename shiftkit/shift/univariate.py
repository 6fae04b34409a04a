"""Per-feature shift tests with multiple-testing correction (tabular data).

Each column gets a two-sample test: Kolmogorov-Smirnov for numeric columns, chi-square on the
2 x k contingency table for categorical ones. p-values are corrected across columns with
Benjamini-Hochberg (false discovery rate, the default) or Bonferroni (family-wise error rate), and
the result says which. The dashboard's drift table and the CLI check render this same result.

Chi-square p-values: the asymptotic chi-square distribution is used when every expected count is at
least 5 (Cochran's rule); below that it is liberal (rare categories, unequal sizes: 4.5% of nulls
rejected at alpha = 0.01 with 20 vs 300 rows and three 1% categories), so the exact permutation
test of `shiftkit.shift.labels.label_shift_test` is used instead, with enough permutations for the
smallest level the correction can apply (alpha / number of columns; `permutations_for`).

Categorical columns: given by `categorical` (indices or names), or, when `categorical="auto"`,
every column whose pooled values are whole numbers with at most `max_categories` distinct values.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from shiftkit._json import dataclass_to_dict
from shiftkit._validation import check_alpha, check_option, check_pair, check_positive_int, check_seed, column_names
from shiftkit.shift.labels import label_shift_test
from shiftkit.shift.mmd import permutations_for

__all__ = ["FeatureTest", "FeatureDriftResult", "feature_drift"]

_CORRECTIONS = ("fdr_bh", "bonferroni", "none")
#: Cochran's rule: the asymptotic chi-square test is used when every expected count is at least this.
_MIN_EXPECTED = 5.0


@dataclasses.dataclass(frozen=True)
class FeatureTest:
    """One column's test. Direction: a lower p-value means more shift.

    Attributes:
        feature: column name. index: column index. kind: "numeric" or "categorical".
        test: "ks" or "chi2". statistic: the KS distance D (in [0, 1]) or the chi-square statistic.
        p_value: raw p-value. p_adjusted: corrected p-value. is_shift: `p_adjusted <= alpha`.
        source_mean, target_mean: column means, for reading the direction of a shift.
        n_permutations: permutations of an exact chi-square test (small expected counts); 0 when
            the p-value is the asymptotic (chi-square) or KS one.
    """

    feature: str
    index: int
    kind: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float
    is_shift: bool
    source_mean: float
    target_mean: float
    n_permutations: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


@dataclasses.dataclass(frozen=True)
class FeatureDriftResult:
    """Per-feature tests, most shifted first.

    Attributes:
        tests: one `FeatureTest` per column, sorted by adjusted p-value (then statistic, descending).
        alpha: level applied to the adjusted p-values. correction: "fdr_bh", "bonferroni" or "none".
        n_shifted: number of columns flagged.
    """

    tests: tuple[FeatureTest, ...]
    alpha: float
    correction: str

    @property
    def n_shifted(self) -> int:
        return sum(t.is_shift for t in self.tests)

    @property
    def shifted_features(self) -> list[str]:
        return [t.feature for t in self.tests if t.is_shift]

    def at_level(self, alpha: float) -> "FeatureDriftResult":
        """The same tests decided at another level: `is_shift = p_adjusted <= alpha` (the corrected
        p-values do not depend on the level; the order of `tests` is kept)."""
        tests = tuple(dataclasses.replace(t, is_shift=bool(t.p_adjusted <= alpha)) for t in self.tests)
        return dataclasses.replace(self, tests=tests, alpha=float(alpha))

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "correction": self.correction,
            "n_features": len(self.tests),
            "n_shifted": self.n_shifted,
            "direction": "p_value: lower means shift",
            "tests": [t.to_dict() for t in self.tests],
        }

    def to_frame(self):
        """A pandas DataFrame, one row per feature, most shifted first."""
        return pd.DataFrame([t.to_dict() for t in self.tests])


def _resolve_categorical(
    categorical: Any, pooled: np.ndarray, names: list[str], max_categories: int
) -> np.ndarray:
    n_features = pooled.shape[1]
    mask = np.zeros(n_features, dtype=bool)
    if categorical is None:
        return mask
    if isinstance(categorical, str):
        check_option(categorical, "categorical", ("auto",))
        for j in range(n_features):
            col = pooled[:, j]
            if np.all(col == np.round(col)) and np.unique(col).size <= max_categories:
                mask[j] = True
        return mask
    for item in categorical:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"categorical names an unknown column {item!r}. Columns: {names}.")
            mask[names.index(item)] = True
        else:
            j = int(item)
            if not 0 <= j < n_features:
                raise ValueError(f"categorical index {j} is out of range for {n_features} columns.")
            mask[j] = True
    return mask


def _chi2(a: np.ndarray, b: np.ndarray, n_permutations: int, seed: int | None) -> tuple[float, float, int]:
    """Chi-square statistic and p-value of one column; returns (statistic, p, permutations used)."""
    values = np.union1d(a, b)
    if values.size < 2:
        return 0.0, 1.0, 0
    counts_a = np.bincount(np.searchsorted(values, a), minlength=values.size)
    counts_b = np.bincount(np.searchsorted(values, b), minlength=values.size)
    table = np.stack([counts_a, counts_b])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    if expected.min() >= _MIN_EXPECTED:
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        return float(chi2), float(p), 0
    res = label_shift_test(np.searchsorted(values, a), np.searchsorted(values, b), n_classes=values.size,
                           n_permutations=n_permutations, seed=seed)
    return res.statistic, res.p_value, n_permutations


def feature_drift(
    x_source: Any,
    x_target: Any,
    *,
    feature_names: Sequence[str] | None = None,
    categorical: Any = "auto",
    max_categories: int = 10,
    alpha: float = 0.05,
    correction: str = "fdr_bh",
    n_permutations: int = 999,
    seed: int | None = 0,
    check_input: bool = True,
) -> FeatureDriftResult:
    """Test every column for a shift between source and target, with multiple-testing correction.

    Args:
        x_source: source table `(n, d)` (further axes are flattened into columns).
        x_target: target table `(m, d)`.
        feature_names: column names (default: a DataFrame's own column names, else "x0", "x1", ...).
        categorical: "auto" (whole-number columns with at most `max_categories` values), None (all
            numeric), or a list of column indices/names.
        max_categories: the most distinct values of an auto-detected categorical column.
        alpha: level applied to the corrected p-values.
        correction: "fdr_bh" (Benjamini-Hochberg), "bonferroni" or "none".
        n_permutations: the least number of permutations of an exact chi-square test (used for a
            categorical column with an expected count below 5); raised to what the smallest
            corrected level (alpha / number of columns) needs.
        seed: seed of those permutations.
        check_input: validate the arrays (the default). False skips that for callers that have
            validated them already (`shiftkit.analyze`; scikit-learn's `check_input` convention).

    Returns:
        A `FeatureDriftResult`, most shifted feature first.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> xs, xt = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
        >>> xt[:, 1] += 1.0
        >>> feature_drift(xs, xt).shifted_features
        ['x1']
    """
    if feature_names is None:  # a DataFrame's own column names
        cols = column_names(x_source)
        target_cols = column_names(x_target)
        feature_names = cols if cols is not None and (target_cols is None or set(target_cols) == set(cols)) else None
    if check_input:
        xs, xt = check_pair(x_source, x_target, ("x_source", "x_target"))
    else:  # validated by the caller
        xs = np.asarray(x_source, dtype=np.float64).reshape(len(x_source), -1)
        xt = np.asarray(x_target, dtype=np.float64).reshape(len(x_target), -1)
    alpha = check_alpha(alpha)
    correction = check_option(correction, "correction", _CORRECTIONS)
    max_categories = check_positive_int(max_categories, "max_categories", minimum=2)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    seed = check_seed(seed)
    d = xs.shape[1]
    if feature_names is None:
        names = [f"x{j}" for j in range(d)]
    else:
        names = [str(n) for n in feature_names]
        if len(names) != d:
            raise ValueError(f"feature_names has {len(names)} names but the data have {d} columns.")
    is_cat = _resolve_categorical(categorical, np.concatenate([xs, xt]), names, max_categories)

    stat = np.empty(d)
    p = np.empty(d)
    numeric = np.flatnonzero(~is_cat)
    if numeric.size:
        ks = stats.ks_2samp(xs[:, numeric], xt[:, numeric], axis=0)
        stat[numeric] = ks.statistic
        p[numeric] = ks.pvalue
    perms = np.zeros(d, dtype=int)
    smallest_level = alpha / d if correction != "none" else alpha
    n_perm = permutations_for(smallest_level, n_permutations)
    for j in np.flatnonzero(is_cat):
        stat[j], p[j], perms[j] = _chi2(xs[:, j], xt[:, j], n_perm, None if seed is None else seed + j)
    p = np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)
    if correction == "fdr_bh":
        p_adj = stats.false_discovery_control(p, method="bh")
    elif correction == "bonferroni":
        p_adj = np.minimum(p * d, 1.0)
    else:
        p_adj = p.copy()
    tests = [
        FeatureTest(
            feature=names[j],
            index=j,
            kind="categorical" if is_cat[j] else "numeric",
            test="chi2" if is_cat[j] else "ks",
            statistic=float(stat[j]),
            p_value=float(p[j]),
            p_adjusted=float(p_adj[j]),
            is_shift=bool(p_adj[j] <= alpha),
            source_mean=float(xs[:, j].mean()),
            target_mean=float(xt[:, j].mean()),
            n_permutations=int(perms[j]),
        )
        for j in range(d)
    ]
    tests.sort(key=lambda t: (t.p_adjusted, -t.statistic))
    return FeatureDriftResult(tests=tuple(tests), alpha=alpha, correction=correction)
