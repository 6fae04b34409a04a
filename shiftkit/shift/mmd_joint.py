"""Joint aggregated MMD test: several representations and bandwidths tested at once, one exact level.

With a model at hand, a shift can show in the inputs (pixel noise, blur: what the model may ignore),
in the model's outputs (a label shift moves the softmax, while the inputs of each class stay as they
were), or in its features. Testing each representation on its own and correcting with Holm or
Bonferroni pays the full price of every test even though the tests are strongly correlated (they
look at the same rows). This module tests them together, as `mmd_agg_test` tests several
bandwidths:

    * For every representation r (the standardised inputs, the model's softmax, its features) and
      every bandwidth factor f, the Gaussian kernel with bandwidth f x (the median pairwise distance
      of the pooled rows in r) gives an unbiased MMD^2 (`shiftkit.shift.mmd`'s batched permutation
      core: one distance matrix per representation, one matrix product per kernel).
    * Optionally (a "linear" entry in a representation's factors), the linear kernel k(a, b) = a . b:
      its MMD^2 is the squared distance of the two samples' mean vectors (unbiased), on the softmax
      the mean-output statistic of BBSE/BBSD. O(N d) per permutation. Not in the default: on a
      confident classifier's (near one-hot) softmax a Gaussian kernel is c + (1 - c) a . b, the
      same statistic up to scale, and it added no detection on the choosing kinds or on
      bench_power's draws (benchmarks/joint_mmd_choice.md, round 3).
    * Every kernel is evaluated on the SAME permutations of the pooled rows (row i of the source is
      row i in every representation, and one seeded permutation moves all representations of a row
      together).
    * Each split's per-kernel p-value is its rank among the 1 + P splits; the joint statistic is the
      smallest of them, and it is calibrated against the permuted splits' smallest p-values (min-p,
      Westfall-Young). The 1 + P splits are exchangeable under H0 ("source and target rows come
      from one distribution", with the representations fixed functions of a row: the model, the
      layer and a pooled standardiser do not depend on which rows are called "source"), so the
      p-value (1 + #{permuted min-p <= observed min-p}) / (1 + P) is exact at any n and any
      number of kernels. Its cost in power is small when the kernels agree (a near-copy adds
      almost nothing to the min-p null) and is that of Bonferroni only when they are independent.

The default representations when a model is given were chosen by measured power on shift kinds
that did not include the benchmark's (benchmarks/joint_mmd_choice.md; confirmed on
benchmarks/bench_power.py's seven digits kinds).

Example:
    >>> det = JointMMDDetector(model, seed=0).fit(x_source)   # doctest: +SKIP
    >>> res = det.predict(x_target)                           # doctest: +SKIP
    >>> res.is_shift, res.p_value, res.selected_representation  # doctest: +SKIP
    >>> mmd_joint_test(x_source, x_target, model, seed=0).is_shift  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from shiftkit._json import dataclass_to_dict, jsonable
from shiftkit._validation import check_alpha, check_array, check_pair, check_positive_int, check_seed
from shiftkit.shift import mmd as _mmd
from shiftkit.shift.mmd import DEFAULT_AGG_FACTORS, DEFAULT_MEMORY_BUDGET

__all__ = [
    "JointMMDResult",
    "JointMMDDetector",
    "mmd_joint_test",
    "mmd_joint_from_representations",
    "REPRESENTATIONS",
    "DEFAULT_JOINT_REPRESENTATIONS",
    "DEFAULT_JOINT_FACTORS",
]

#: The representations `mmd_joint_test` can compute from inputs and a model.
REPRESENTATIONS = ("input", "softmax", "features")

#: The representations tested when a classifier is given (`representations="auto"`); without a
#: model only "input" is. Chosen in benchmarks/joint_mmd_choice.md.
DEFAULT_JOINT_REPRESENTATIONS = ("input", "softmax")

#: Default bandwidth factors (multiples of the pooled median distance) per representation; a
#: representation not named here gets `DEFAULT_AGG_FACTORS`. The softmax kernels at 1/2, 1, 2 x the
#: median were chosen with the representations (benchmarks/joint_mmd_choice.md): they cost the input
#: kernels less of the shared level than five softmax bandwidths, with the same power on label shifts.
DEFAULT_JOINT_FACTORS: dict[str, tuple[float, ...]] = {
    "input": tuple(DEFAULT_AGG_FACTORS),
    "softmax": (0.5, 1.0, 2.0),
    "features": tuple(DEFAULT_AGG_FACTORS),
}


@dataclasses.dataclass(frozen=True)
class JointMMDResult:
    """Outcome of the joint aggregated MMD test. Direction: a lower p-value means shift.

    Attributes:
        p_value: the min-p corrected p-value over every kernel,
            (1 + #{permuted min-p <= observed min-p}) / (1 + n_permutations).
        is_shift: `p_value <= alpha`.
        alpha: the level of the test.
        min_p_value: the smallest per-kernel p-value of the observed split (the joint statistic).
        adjusted_level: the multiplicity-corrected per-kernel level: the test rejects iff
            `min_p_value < adjusted_level` (0 when it cannot reject at `alpha`).
        selected: index of the kernel with the smallest p-value (on ties, the one whose statistic is
            the most null standard deviations out).
        statistic: the unbiased MMD^2 of the selected kernel.
        threshold: the critical value of the selected kernel's statistic at `alpha`, the other
            kernels' statistics held (`statistic > threshold` <=> `is_shift`; -inf when another
            kernel alone rejects, +inf when none can).
        representations: the representation of each kernel ("input", "softmax", "features" or a
            caller's name).
        factors: each kernel's bandwidth as a multiple of its representation's median heuristic
            (None for a linear kernel).
        bandwidths: each kernel's bandwidth (in its representation's units; None for a linear kernel).
        statistics: each kernel's unbiased MMD^2 on the observed split.
        p_values: each kernel's own permutation p-value (uncorrected).
        n_source, n_target: rows tested on each side.
        n_permutations: permutations shared by every kernel.
        standardized: whether the "input" representation was standardised
            (`shiftkit.shift.scaling.standardize`, fitted on the pooled rows).
        computation: how the kernels were computed, per representation.
        kernels: each kernel's kind: "gaussian" (exp(-|a - b|^2 / (2 h^2))) or "linear" (a . b: the
            squared distance of the two samples' mean vectors, unbiased).
        null_min_p: the permuted splits' smallest p-values, the null of `min_p_value`.
        null_statistics: `(kernels, n_permutations)` permuted statistics.
    """

    p_value: float
    is_shift: bool
    alpha: float
    min_p_value: float
    adjusted_level: float
    selected: int
    statistic: float
    threshold: float
    representations: tuple[str, ...]
    factors: tuple[float | None, ...]
    bandwidths: tuple[float | None, ...]
    statistics: tuple[float, ...]
    p_values: tuple[float, ...]
    n_source: int
    n_target: int
    n_permutations: int
    standardized: bool = False
    computation: str = ""
    kernels: tuple[str, ...] = ()
    null_min_p: np.ndarray = dataclasses.field(default=None, repr=False, compare=False)
    null_statistics: np.ndarray = dataclasses.field(default=None, repr=False, compare=False)

    #: The name of this test in a report's family of tests.
    space = "joint"

    @property
    def selected_representation(self) -> str:
        """The representation of the kernel with the smallest p-value: where the shift shows most."""
        return self.representations[self.selected]

    @property
    def representation_p_values(self) -> dict[str, float]:
        """The smallest uncorrected per-kernel p-value of each representation, in order."""
        out: dict[str, float] = {}
        for rep, p in zip(self.representations, self.p_values):
            out[rep] = min(out.get(rep, 1.0), float(p))
        return out

    @property
    def description(self) -> str:
        """What ran, in words (for reports)."""
        reps = list(dict.fromkeys(self.representations))
        kinds = self.kernels or ("gaussian",) * len(self.representations)

        def what(rep: str) -> str:
            g = sum(1 for r, k in zip(self.representations, kinds) if r == rep and k == "gaussian")
            lin = any(r == rep and k == LINEAR for r, k in zip(self.representations, kinds))
            words = [f"{g} bandwidth{'s' if g != 1 else ''}"] if g else []
            return f"{rep} ({' + '.join(words + (['linear'] if lin else []))})"

        return (f"joint aggregated MMD over {len(self.representations)} kernels: {', '.join(map(what, reps))}; "
                f"min-p corrected on {self.n_permutations} shared permutations")

    def at_level(self, level: float) -> "JointMMDResult":
        """The same test decided at another level (p-value and statistics unchanged).

        Args:
            level: the new level, in (0, 1).

        Returns:
            A new `JointMMDResult` with `alpha`, `is_shift`, `adjusted_level` and `threshold`
            recomputed.
        """
        level = check_alpha(level, "level")
        all_stats = np.concatenate([np.asarray(self.statistics)[:, None], self.null_statistics], axis=1)
        _, _, _, _, adjusted, threshold = _mmd._min_p_aggregate(all_stats, self.n_permutations, level)
        return dataclasses.replace(self, alpha=level, is_shift=bool(self.p_value <= level),
                                   adjusted_level=adjusted, threshold=threshold)

    def to_dict(self, *, include_null: bool = False) -> dict[str, Any]:
        """Plain JSON-ready dict (the null distributions only with `include_null=True`)."""
        out = dataclass_to_dict(self, exclude=("null_min_p", "null_statistics"))
        if include_null:
            out["null_min_p"] = jsonable(self.null_min_p)
            out["null_statistics"] = jsonable(self.null_statistics)
        out["selected_representation"] = self.selected_representation
        out["representation_p_values"] = self.representation_p_values
        out["description"] = self.description
        out["correction"] = ("min-p over every representation and bandwidth, calibrated on the same "
                             "permutations (exact level; reject iff min_p_value < adjusted_level)")
        out["direction"] = "p_value: lower means shift; statistics: higher means shift"
        return out

    def __str__(self) -> str:
        verdict = "shift" if self.is_shift else "no shift"
        return (f"{self.description}: p={self.p_value:.4g} (alpha {self.alpha:g}) -> {verdict}; strongest in "
                f"{self.selected_representation} (bandwidth x{self.factors[self.selected]:g}, raw p "
                f"{self.min_p_value:.4g}); n = {self.n_source} vs {self.n_target}")


# ------------------------------------------------------------------------------------------------
# The statistical core: representations already computed
# ------------------------------------------------------------------------------------------------


#: The kernel entry of a representation's factor list that adds the linear kernel k(a, b) = a . b.
LINEAR = "linear"

def _default_factors(name: str) -> tuple:
    return tuple(DEFAULT_JOINT_FACTORS.get(name, DEFAULT_AGG_FACTORS))


def _check_kernel_list(values: Any, name: str) -> tuple:
    """A representation's kernels: positive Gaussian bandwidth factors and at most one "linear"."""
    if isinstance(values, str):
        values = (values,)
    try:
        entries = list(values)
    except TypeError:
        entries = [values]
    linear = [v for v in entries if isinstance(v, str)]
    if any(v != LINEAR for v in linear) or len(linear) > 1:
        raise ValueError(
            f"{name} takes positive numbers (Gaussian bandwidths as multiples of the median distance) and at "
            f"most one {LINEAR!r} (the linear kernel a . b); got {values!r}."
        )
    numbers = [v for v in entries if not isinstance(v, str)]
    gauss = tuple(float(v) for v in _mmd._check_factors(numbers, name)) if numbers else ()
    if not gauss and not linear:
        raise ValueError(f"{name} must name at least one kernel; got {values!r}.")
    return gauss + ((LINEAR,) if linear else ())


def _check_factor_map(factors: Any, names: Sequence[str]) -> dict[str, tuple]:
    """Kernels per representation: None (defaults), one list for all, or a mapping.

    Returns, per name, the Gaussian bandwidth factors (floats, in the order given) followed by
    "linear" when the linear kernel is asked for.
    """
    if factors is None:
        return {r: _default_factors(r) for r in names}
    if isinstance(factors, Mapping):
        unknown = [k for k in factors if k not in names]
        if unknown:
            raise ValueError(
                f"factors names representation(s) {unknown} that are not tested; the representations are "
                f"{list(names)}. Pass factors for those only."
            )
        return {r: (_check_kernel_list(factors[r], f"factors[{r!r}]") if r in factors
                    else _default_factors(r)) for r in names}
    values = _check_kernel_list(factors, "factors")
    return {r: values for r in names}


def _linear_statistics(z: np.ndarray, n: int, n_permutations: int, seed: int, budget: int) -> np.ndarray:
    """Unbiased MMD^2 with the linear kernel k(a, b) = a . b on the observed split and the permutations.

    With s_x, s_y the sums of the rows on each side and q_x, q_y the sums of their squared norms,
    MMD^2_u = (|s_x|^2 - q_x) / (n (n - 1)) + (|s_y|^2 - q_y) / (m (m - 1)) - 2 s_x . s_y / (n m)
    = |mean_x - mean_y|^2 - tr(S_x) / n - tr(S_y) / m (S the sample covariances): the squared
    distance of the two mean vectors (for a softmax: BBSE's mean-output statistic), unbiased.
    The splits are `_mmd._draw_splits`'s from `default_rng(seed)`: the same permutations as the
    Gaussian kernels of `_mmd._permutation_statistics` with that seed. O(N d) per split.
    """
    big_n = len(z)
    m = big_n - n
    z = z - z.mean(axis=0)  # translation-invariant statistic; centring avoids cancellation
    sq = np.einsum("ij,ij->i", z, z)
    total, total_sq = z.sum(axis=0), float(sq.sum())
    n_splits = n_permutations + 1
    batch = int(max(1, min(n_splits, budget // (16 * big_n + 16 * z.shape[1] + 1))))
    rng = np.random.default_rng(seed)
    out = np.empty(n_splits)
    for first in range(0, n_splits, batch):
        count = min(batch, n_splits - first)
        at = _mmd._draw_splits(n, big_n, first, count, rng)
        sx = at @ z
        sy = total - sx
        qx = at @ sq
        qy = total_sq - qx
        out[first:first + count] = ((np.einsum("ij,ij->i", sx, sx) - qx) / (n * (n - 1))
                                    + (np.einsum("ij,ij->i", sy, sy) - qy) / (m * (m - 1))
                                    - 2.0 * np.einsum("ij,ij->i", sx, sy) / (n * m))
    return out


def _check_representations(source: Any, target: Any) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, Mapping) or not value:
            raise TypeError(
                f"{name} must be a non-empty mapping of representation name -> array (e.g. "
                f"{{'input': x, 'softmax': p}}); got {type(value).__name__}."
            )
    if list(source) != list(target):
        raise ValueError(
            f"source and target must hold the same representations in the same order; source has "
            f"{list(source)}, target has {list(target)}."
        )
    names = [str(k) for k in source]
    xs, xt = {}, {}
    for key, name in zip(source, names):
        xs[name], xt[name] = check_pair(source[key], target[key], (f"source[{name!r}]", f"target[{name!r}]"))
    for side, arrays in (("source", xs), ("target", xt)):
        first = names[0]
        for name in names[1:]:
            if len(arrays[name]) != len(arrays[first]):
                raise ValueError(
                    f"{side}[{name!r}] has {len(arrays[name])} rows but {side}[{first!r}] has "
                    f"{len(arrays[first])}: every representation must describe the same rows, in the same order "
                    "(e.g. the model's outputs on exactly the inputs given). Recompute them on the same rows."
                )
    return names, xs, xt


def _joint(
    names: Sequence[str],
    xs: Mapping[str, np.ndarray],
    xt: Mapping[str, np.ndarray],
    factors: Mapping[str, np.ndarray],
    n_permutations: int,
    alpha: float,
    seed: int | None,
    budget: int,
    standardized: bool,
) -> JointMMDResult:
    """The joint test on validated 2-D float64 representations (same rows, same order)."""
    n, m = len(xs[names[0]]), len(xt[names[0]])
    # One concrete permutation seed for every representation: `_permutation_statistics` draws its
    # splits as successive `rng.permutation(N)` of `default_rng(seed)`, so the same seed and N give the
    # same splits in each call (tests/test_mmd_joint.py checks it against single-representation tests).
    perm_seed = int(np.random.default_rng(seed).integers(2**63 - 1)) if seed is None else seed
    median_seed = 0 if seed is None else seed
    rows, reps, kinds, facs, bws, hows = [], [], [], [], [], []
    for name in names:
        gauss = [f for f in factors[name] if not isinstance(f, str)]
        linear = LINEAR in factors[name]
        a, b, scale = _mmd._rescale(xs[name], xt[name])
        parts = []
        if gauss:
            specs = [("gaussian", np.array([f])) for f in gauss]
            stats_, _, resolved, how = _mmd._permutation_statistics(
                _mmd._Pooled(a, b), n, specs, n_permutations, perm_seed, budget, median_seed=median_seed
            )
            for (_, bw), row in zip(resolved, stats_):
                _mmd._check_finite_statistic(row, bw, scale)
            rows.append(stats_)
            reps += [name] * len(specs)
            kinds += ["gaussian"] * len(specs)
            facs += [float(f) for f in gauss]
            bws += [float(bw[0]) * scale for _, bw in resolved]
            parts.append(how)
        if linear:
            row = _linear_statistics(np.concatenate([a, b]), n, n_permutations, perm_seed, budget) * scale**2
            if not np.all(np.isfinite(row)):
                raise ValueError(
                    f"The linear-kernel MMD^2 on {name!r} is not finite: the representation's values overflow. "
                    "Rescale it (or standardise the inputs)."
                )
            rows.append(row[None, :])
            reps.append(name)
            kinds.append(LINEAR)
            facs.append(None)
            bws.append(None)
            parts.append("linear kernel from the per-split sums of the rows (O(N d) per permutation)")
        hows.append(f"{name} (d = {a.shape[1]}): " + "; ".join(parts))
    all_stats = np.concatenate(rows, axis=0)
    p_value, per_kernel, sel, null_min_p, adjusted, threshold = _mmd._min_p_aggregate(
        all_stats, n_permutations, alpha
    )
    return JointMMDResult(
        p_value=p_value,
        is_shift=bool(p_value <= alpha),
        alpha=alpha,
        min_p_value=float(per_kernel[sel]),
        adjusted_level=adjusted,
        selected=sel,
        statistic=float(all_stats[sel, 0]),
        threshold=threshold,
        representations=tuple(reps),
        kernels=tuple(kinds),
        factors=tuple(facs),
        bandwidths=tuple(bws),
        statistics=tuple(float(v) for v in all_stats[:, 0]),
        p_values=tuple(float(v) for v in per_kernel),
        n_source=n,
        n_target=m,
        n_permutations=n_permutations,
        standardized=standardized,
        computation="; ".join(hows),
        null_min_p=null_min_p,
        null_statistics=all_stats[:, 1:],
    )


def _check_settings(n_permutations: Any, alpha: Any, seed: Any, memory_budget: Any) -> tuple[int, float, int | None, int]:
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    alpha = check_alpha(alpha)
    _mmd._check_attainable(alpha, n_permutations)
    return n_permutations, alpha, check_seed(seed), check_positive_int(memory_budget, "memory_budget")


def mmd_joint_from_representations(
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    *,
    factors: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    n_permutations: int = 1000,
    alpha: float = 0.05,
    seed: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> JointMMDResult:
    """The joint aggregated MMD test on representations already computed (the statistical core).

    Args:
        source: representation name -> source rows `(n, ...)`, e.g. `{"input": x_std, "softmax": p}`;
            every representation describes the same n rows in the same order.
        target: the same names, in the same order -> target rows `(m, ...)`.
        factors: the kernels of each representation: Gaussian bandwidths as multiples of its pooled
            median heuristic, plus optionally "linear" (the linear kernel a . b, the mean-vector
            statistic), e.g. `{"softmax": (0.5, 1, 2, "linear")}`; one list for every representation,
            or a mapping name -> list (others keep the default); default
            `DEFAULT_JOINT_FACTORS` ((1/4, 1/2, 1, 2, 4) for "input" and "features", (1/2, 1, 2) for
            "softmax"; `DEFAULT_AGG_FACTORS` for any other name).
        n_permutations: permutations shared by every kernel.
        alpha: level of the test.
        seed: seed of the permutations and of the median heuristic's subsample.
        memory_budget: bytes of working memory per representation (see `mmd_test`).

    Returns:
        A `JointMMDResult`.

    Raises:
        TypeError / ValueError: not mappings, different names, NaN/inf, a representation whose
            rows differ in number from another's (e.g. model outputs on other rows), different
            feature shapes between source and target, bad factors or settings.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> xs, xt = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
        >>> ps, pt = rng.dirichlet([1, 1], 60), rng.dirichlet([4, 1], 60)
        >>> res = mmd_joint_from_representations({"input": xs, "softmax": ps}, {"input": xt, "softmax": pt}, seed=0)
        >>> res.is_shift, res.selected_representation
        (True, 'softmax')
    """
    n_permutations, alpha, seed, budget = _check_settings(n_permutations, alpha, seed, memory_budget)
    names, xs, xt = _check_representations(source, target)
    return _joint(names, xs, xt, _check_factor_map(factors, names), n_permutations, alpha, seed, budget, False)


# ------------------------------------------------------------------------------------------------
# From inputs and a model
# ------------------------------------------------------------------------------------------------


def _resolve_representations(representations: Any, model: Any) -> tuple[str, ...]:
    if isinstance(representations, str) and representations == "auto":
        return ("input",) if model is None else DEFAULT_JOINT_REPRESENTATIONS
    names = (representations,) if isinstance(representations, str) else representations
    try:
        names = tuple(names)
    except TypeError:
        names = (representations,)
    if not names or any(not isinstance(r, str) or r not in REPRESENTATIONS for r in names) or len(set(names)) != len(names):
        raise ValueError(
            f"representations must be 'auto' or distinct names from {list(REPRESENTATIONS)}; got {representations!r}."
        )
    if model is None and any(r != "input" for r in names):
        raise ValueError(
            f"representations {[r for r in names if r != 'input']} need a model: pass model=... (a trained "
            "Keras classifier for 'softmax'), or representations=('input',)."
        )
    return names


def _model_representations(model: Any, x: np.ndarray, names: Sequence[str], name: str, layer: Any,
                           batch_size: int) -> dict[str, np.ndarray]:
    from shiftkit.shift.bbsd import model_probabilities
    from shiftkit.shift.features import FeatureSpace

    out: dict[str, np.ndarray] = {}
    if "softmax" in names:
        out["softmax"] = model_probabilities(model, x, name=name, batch_size=batch_size)
    if "features" in names:
        fs = FeatureSpace(model, layer, batch_size=batch_size)
        feats = fs(x)
        if not np.all(np.isfinite(feats)):
            raise ValueError(
                f"The model's features on {name} are not finite (NaN or inf): the joint test cannot compare "
                "them. Check the model's weights and the input's scale."
            )
        out["features"] = feats
    return out


class JointMMDDetector:
    """The joint aggregated MMD test as a detector (fit on a reference, then predict on targets).

    `fit` validates the reference (held-out source rows, not the model's training rows) and computes
    the model's representations of it once; each `predict` computes them on a target sample,
    standardises the pooled inputs (when `standardize`) and runs the joint test.

    Args:
        model: a trained Keras classifier, or None (then only the inputs are tested: the aggregated
            MMD test of `mmd_agg_test` on the standardised inputs).
        representations: "auto" (`DEFAULT_JOINT_REPRESENTATIONS` with a model, ("input",) without) or
            names from `REPRESENTATIONS`: "input" (the inputs, flattened), "softmax" (the model's class
            probabilities), "features" (the input of its head layer, or `layer`'s output).
        factors: bandwidth factors (and optionally "linear", the linear kernel a . b), one list for all
            representations or a mapping per name, e.g. `{"softmax": (0.5, 1, 2, "linear")}`; default
            `DEFAULT_JOINT_FACTORS`: (1/4, 1/2, 1, 2, 4) times the pooled median distance for the inputs
            and features, (1/2, 1, 2) for the softmax.
        standardize: standardise the inputs (`shiftkit.shift.scaling.standardize`, fitted on the pooled
            source and target rows; permutation-invariant) before the "input" kernels.
        n_permutations: permutations shared by every kernel.
        alpha: level of the test.
        seed: seed of the permutations (and of the median heuristic's subsample).
        layer: the layer whose output is "features" (default: the input of the head layer).
        batch_size: rows per forward pass.
        memory_budget: bytes of working memory per representation.

    Example:
        >>> det = JointMMDDetector(model, seed=0).fit(x_source)  # doctest: +SKIP
        >>> det.predict(x_target).is_shift                       # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any = None,
        *,
        representations: str | Sequence[str] = "auto",
        factors: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
        standardize: bool = True,
        n_permutations: int = 1000,
        alpha: float = 0.05,
        seed: int | None = None,
        layer: str | int | None = None,
        batch_size: int = 256,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
    ):
        self.n_permutations, self.alpha, self.seed, self.memory_budget = _check_settings(
            n_permutations, alpha, seed, memory_budget
        )
        self.representations = _resolve_representations(representations, model)
        if "softmax" in self.representations:
            from shiftkit.shift.bbsd import check_classifier

            model = check_classifier(model)
        elif model is not None:
            from shiftkit._keras import require_model

            model = require_model(model)
        self.model = model
        self.factors = _check_factor_map(factors, self.representations)
        if not isinstance(standardize, (bool, np.bool_)):
            raise TypeError(f"standardize must be True or False; got {standardize!r}.")
        self.standardize = bool(standardize)
        self.layer = layer
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if model is not None and "features" in self.representations:
            from shiftkit.shift.features import FeatureSpace

            FeatureSpace(model, layer)  # a bad layer fails here, at construction

    def _inputs(self, x: Any, name: str) -> np.ndarray:
        if self.model is None:
            return check_array(x, name)
        from shiftkit.shift.features import check_model_input

        return check_model_input(self.model, x, name).astype(np.float64)

    def fit(self, x_source: Any) -> "JointMMDDetector":
        """Validate the reference sample and compute the model's representations of it.

        Args:
            x_source: held-out source inputs `(n, ...)` (the model's input shape), n >= 2.

        Returns:
            self.
        """
        xs = self._inputs(x_source, "x_source")
        if len(xs) < 2:
            raise ValueError(f"x_source has {len(xs)} sample; at least 2 are needed. Pass more samples.")
        self.x_source_ = xs
        self.source_representations_ = _model_representations(
            self.model, xs, self.representations, "x_source", self.layer, self.batch_size
        ) if self.model is not None else {}
        return self

    def predict(self, x_target: Any) -> JointMMDResult:
        """Test `x_target` against the fitted reference.

        Args:
            x_target: target inputs `(m, ...)`, the reference's per-sample shape, m >= 2.

        Returns:
            A `JointMMDResult`.

        Raises:
            RuntimeError: `fit` was not called first.
            ValueError / TypeError: bad target input.
        """
        if not hasattr(self, "x_source_"):
            raise RuntimeError("This JointMMDDetector is not fitted yet: call fit(x_source) before predict(x_target).")
        xt = self._inputs(x_target, "x_target")
        if xt.shape[1:] != self.x_source_.shape[1:]:
            raise ValueError(
                f"x_source and x_target must have the same feature shape: x_source has "
                f"{self.x_source_.shape[1:]} per sample, x_target has {xt.shape[1:]}."
            )
        if len(xt) < 2:
            raise ValueError(f"x_target has {len(xt)} sample; at least 2 are needed. Pass more samples.")
        return self._test(self.x_source_, xt, self.source_representations_)

    def _test(self, xs: np.ndarray, xt: np.ndarray, source_reps: Mapping[str, np.ndarray]) -> JointMMDResult:
        target_reps = (_model_representations(self.model, xt, self.representations, "x_target", self.layer,
                                              self.batch_size) if self.model is not None else {})
        src, tgt = {}, {}
        for name in self.representations:
            if name == "input":
                if self.standardize:
                    from shiftkit.shift.scaling import standardize

                    a, b = standardize(xs, xt)
                else:
                    a, b = xs.reshape(len(xs), -1), xt.reshape(len(xt), -1)
                src[name], tgt[name] = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            else:
                src[name], tgt[name] = source_reps[name], target_reps[name]
        names = list(self.representations)
        return _joint(names, src, tgt, self.factors, self.n_permutations, self.alpha, self.seed,
                      self.memory_budget, self.standardize and "input" in names)

    def __repr__(self) -> str:
        model = None if self.model is None else self.model.name
        return (f"JointMMDDetector(model={model!r}, representations={self.representations}, alpha={self.alpha:g}"
                f"{', fitted' if hasattr(self, 'x_source_') else ''})")


def mmd_joint_test(
    x_source: Any,
    x_target: Any,
    model: Any = None,
    *,
    representations: str | Sequence[str] = "auto",
    factors: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    standardize: bool = True,
    n_permutations: int = 1000,
    alpha: float = 0.05,
    seed: int | None = None,
    layer: str | int | None = None,
    batch_size: int = 256,
    max_samples: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> JointMMDResult:
    """Joint aggregated MMD test of `x_target` against `x_source` over inputs and a model's outputs.

    See the module docstring: Gaussian kernels at several bandwidths on each representation (the
    standardised inputs; with a classifier, its softmax), every kernel on the same permutations, the
    smallest per-kernel p-value calibrated against the permuted smallest p-values (exact level). The
    default with a classifier: 5 bandwidths on the standardised inputs and 3 on the softmax (8 kernels).

    Args:
        x_source: held-out source inputs `(n, ...)` (not the model's training rows).
        x_target: target inputs `(m, ...)`, same per-sample shape.
        model: a trained Keras classifier, or None (inputs only).
        representations, factors, standardize, n_permutations, alpha, seed, layer, batch_size,
            memory_budget: see `JointMMDDetector`.
        max_samples: if set, each sample is first subsampled (seeded, the same rows for every
            representation) to at most this many rows.

    Returns:
        A `JointMMDResult`.

    Raises:
        TypeError / ValueError: NaN/inf, empty or single-row samples, different per-sample shapes, a
            shape the model does not take, a representation that needs a model without one, a model
            that is not a classifier for "softmax", non-finite model outputs, bad settings.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> mmd_joint_test(rng.normal(size=(80, 2)), rng.normal(0.8, size=(80, 2)), seed=0).is_shift
        True
    """
    det = JointMMDDetector(
        model, representations=representations, factors=factors, standardize=standardize,
        n_permutations=n_permutations, alpha=alpha, seed=seed, layer=layer, batch_size=batch_size,
        memory_budget=memory_budget,
    )
    xs = det._inputs(x_source, "x_source")
    xt = det._inputs(x_target, "x_target")
    if xs.shape[1:] != xt.shape[1:]:
        raise ValueError(
            f"x_source and x_target must have the same feature shape: x_source has {xs.shape[1:]} per sample, "
            f"x_target has {xt.shape[1:]}. Select the same columns in both, in the same order."
        )
    if max_samples is not None:
        max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
        rng = np.random.default_rng(det.seed)
        xs, xt = _mmd._subsample(xs, max_samples, rng), _mmd._subsample(xt, max_samples, rng)
    source_reps = (_model_representations(det.model, xs, det.representations, "x_source", det.layer, det.batch_size)
                   if det.model is not None else {})
    return det._test(xs, xt, source_reps)

