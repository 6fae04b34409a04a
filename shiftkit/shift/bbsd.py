"""Black-box shift detection (BBSD): two-sample tests on a source classifier's softmax outputs.

Lipton et al. (2018) and Rabanser et al. (2019, "Failing Loudly") detect shift through any trained
classifier, used as a black box: its probability outputs on the source and on the target are
compared instead of the raw inputs. A shift that changes what the model predicts (a label shift,
or a covariate shift the model is sensitive to) moves the distribution of its outputs, and that
distribution lives in only K dimensions. "Failing Loudly" found BBSD with univariate KS tests on
the softmax outputs (Bonferroni-corrected) the best of their detectors across sample sizes.

Two tests, one result type (`BBSDResult`):

- `test="ks"` (default): a two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`, exact
  p-values for small samples, asymptotic for large ones: `method="auto"`) on each output column,
  vectorised over columns; the dataset p-value is the Bonferroni-corrected minimum,
  `min(1, k * min_j p_j)` over the k columns tested, so the test is at level `alpha` whatever the
  dependence between outputs (the columns of a softmax are dependent: they sum to 1). Ties (a
  saturated softmax puts many values at exactly 1.0) make the KS test conservative, never liberal.
- `test="mmd"`: `shiftkit.shift.mmd_test` (Gaussian kernel, its default bandwidth, permutation
  null) on the K-dimensional probability vectors.

How the outputs are read: `shiftkit._keras.to_probabilities` decides from the model's architecture
whether it outputs probabilities (softmax / sigmoid) or logits (softmax / logistic function applied
here). A binary classifier (one sigmoid or logit unit, or two softmax units) gives two columns
`[1 - p, p]` whose KS statistics and p-values are identical (one is a monotone function of the
other), so only the positive-class column `p` is tested, without a correction (k = 1); the MMD test
uses both columns (the same distances up to a factor sqrt(2)).

Use held-out source data (not the model's training rows): the softmax on training rows is more
confident than on fresh rows from the same distribution, which BBSD would report as a shift.

Example:
    >>> det = BBSDDetector(model, alpha=0.05).fit(x_source)   # doctest: +SKIP
    >>> det.predict(x_target).is_shift                         # doctest: +SKIP
    >>> bbsd_test(model, x_source, x_target, test="mmd", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy import stats

from shiftkit._json import dataclass_to_dict
from shiftkit._keras import output_activation, predict, require_model, to_probabilities
from shiftkit._validation import check_alpha, check_option, check_positive_int, check_probabilities, check_seed
from shiftkit.shift.features import check_model_input
from shiftkit.shift.mmd import MMDTestResult, mmd_test, permutations_for

__all__ = [
    "BBSDResult",
    "BBSDDetector",
    "bbsd_test",
    "bbsd_from_probabilities",
    "model_probabilities",
    "is_classifier",
    "check_classifier",
    "BBSD_TESTS",
]

#: The tests BBSD runs on the model's outputs.
BBSD_TESTS = ("ks", "mmd")
_CLASSIFIER_ACTIVATIONS = ("softmax", "sigmoid", "linear")


@dataclasses.dataclass(frozen=True)
class BBSDResult:
    """Outcome of black-box shift detection. Direction: a lower p-value / larger statistic means shift.

    Attributes:
        is_shift: `p_value <= alpha`.
        p_value: the test's p-value: for "ks" the Bonferroni-corrected minimum over the outputs
            tested, `min(1, k * min_j p_values[j])`; for "mmd" the permutation p-value.
        threshold: the level each raw per-output p-value is compared with: `alpha / k` for "ks"
            (Bonferroni; an output with `p_values[j] <= threshold` is shifted), `alpha` for "mmd".
        alpha: the level of the test.
        test: "ks" or "mmd".
        statistics: the KS statistic D of each output tested ("ks"), or `(MMD^2,)` ("mmd").
        p_values: the raw p-value of each output tested ("ks"), or `(p_value,)` ("mmd").
        outputs: the probability columns tested (all K; only the positive class for a binary model
            under "ks").
        n_outputs: the number of probability columns of the model (2 for a binary model).
        n_source, n_target: the sample sizes compared.
        correction: "bonferroni" (k > 1 outputs under "ks") or "none".
        mmd: the full `MMDTestResult` for "mmd" (None for "ks").
    """

    is_shift: bool
    p_value: float
    threshold: float
    alpha: float
    test: str
    statistics: tuple[float, ...]
    p_values: tuple[float, ...]
    outputs: tuple[int, ...]
    n_outputs: int
    n_source: int
    n_target: int
    correction: str
    mmd: MMDTestResult | None = dataclasses.field(default=None, repr=False)

    #: The name of this test in a report's family of tests (`ShiftReport.adjusted_p_values`).
    space = "bbsd"

    @property
    def statistic(self) -> float:
        """The largest KS statistic over the outputs ("ks"), or the MMD^2 ("mmd")."""
        return float(max(self.statistics))

    @property
    def shifted_outputs(self) -> tuple[int, ...]:
        """The outputs whose own p-value is at or below `threshold` (empty for "mmd")."""
        if self.test != "ks":
            return ()
        return tuple(o for o, p in zip(self.outputs, self.p_values) if p <= self.threshold)

    @property
    def description(self) -> str:
        """What ran, in words (for reports)."""
        if self.test == "ks":
            k = len(self.outputs)
            which = "the positive-class probability" if self.n_outputs == 2 and k == 1 else f"each of {k} softmax outputs"
            corr = f", Bonferroni over {k}" if k > 1 else ""
            return f"BBSD: two-sample KS test on {which}{corr}"
        return f"BBSD: MMD permutation test on the {self.n_outputs}-dimensional softmax vector"

    def at_level(self, level: float) -> "BBSDResult":
        """The same test decided at another level (for a multiple-testing correction).

        Statistics and p-values are unchanged; `alpha`, `threshold` and `is_shift` are recomputed.
        """
        level = check_alpha(level, "level")
        mmd = None if self.mmd is None else self.mmd.at_level(level)
        threshold = level / len(self.outputs) if self.test == "ks" else level
        return dataclasses.replace(self, alpha=level, threshold=threshold, is_shift=bool(self.p_value <= level),
                                   mmd=mmd)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the MMD null distribution left out)."""
        out = dataclass_to_dict(self, exclude=("mmd",))
        out["mmd"] = None if self.mmd is None else self.mmd.to_dict(include_null=False)
        out["statistic"] = self.statistic
        out["shifted_outputs"] = list(self.shifted_outputs)
        out["description"] = self.description
        out["direction"] = "p_value: lower means shift; statistics: higher means shift"
        return out

    def __str__(self) -> str:
        verdict = "shift" if self.is_shift else "no shift"
        return (f"{self.description}: statistic {self.statistic:.4g}, p={self.p_value:.4g} "
                f"(alpha {self.alpha:g}) -> {verdict}; n = {self.n_source} vs {self.n_target}")


def check_classifier(model: Any, name: str = "model") -> Any:
    """`model` as a Keras classifier with one `(n, K)` output; a clear error otherwise."""
    model = require_model(model, name)
    if len(model.outputs) != 1:
        raise ValueError(
            f"{name} has {len(model.outputs)} outputs; BBSD needs a classifier with one output of class "
            "probabilities or logits. Pass a single-output model (e.g. keras.Model(model.inputs, model.outputs[0]))."
        )
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[1] is None:
        raise ValueError(
            f"{name}'s output has shape {shape}; BBSD needs a classifier whose output is (batch, n_classes) "
            "probabilities or logits. Flatten or select the class output first."
        )
    activation = output_activation(model)
    if activation not in _CLASSIFIER_ACTIVATIONS:
        raise ValueError(
            f"{name} ends in a {activation!r} activation, which is not a classifier's output: BBSD needs softmax "
            "or sigmoid probabilities, or logits (a linear output). Pass the classifier itself."
        )
    if activation == "softmax" and shape[1] == 1:
        raise ValueError(
            f"{name} has a single softmax unit, whose output is always 1: it cannot show a shift. A binary "
            "classifier needs one sigmoid unit (or logit) or two softmax units."
        )
    return model


def is_classifier(model: Any) -> bool:
    """True when `model` is a Keras model BBSD can read as a classifier (one `(batch, K)` output of
    softmax / sigmoid probabilities or logits; not a single softmax unit)."""
    try:
        check_classifier(model)
    except (TypeError, ValueError):
        return False
    return True


def model_probabilities(model: Any, x: Any, *, name: str = "x", batch_size: int = 256) -> np.ndarray:
    """A classifier's class probabilities `(n, K)` on `x`, validated at the boundary and batched.

    Args:
        model: a Keras classifier (softmax / sigmoid probabilities or logits; one output).
        x: inputs `(n, ...)` with the model's per-sample input shape.
        name: the argument's name, for error messages.
        batch_size: rows per forward pass (`shiftkit._keras.predict`).

    Returns:
        float64 probabilities, rows summing to 1 (a single sigmoid/logit unit gives `[1 - p, p]`).

    Raises:
        TypeError / ValueError: not a classifier, NaN/inf or empty input, a per-sample shape the
            model does not take, or a model whose outputs are not finite.
    """
    model = check_classifier(model)
    arr = check_model_input(model, x, name)
    batch_size = check_positive_int(batch_size, "batch_size")
    probs = to_probabilities(model, predict(model, arr, batch_size=batch_size))
    if not np.all(np.isfinite(probs)):
        raise ValueError(
            f"The model's outputs on {name} are not finite (NaN or inf) for {int((~np.isfinite(probs)).any(axis=1).sum())} "
            "row(s): BBSD cannot compare them. Check the model's weights and the input's scale."
        )
    return probs


def _tested_outputs(n_outputs: int, test: str) -> np.ndarray:
    if test == "ks" and n_outputs == 2:
        return np.array([1])  # [1 - p, p]: identical KS tests; test p once, without a correction
    return np.arange(n_outputs)


def bbsd_from_probabilities(
    probs_source: Any,
    probs_target: Any,
    *,
    alpha: float = 0.05,
    test: str = "ks",
    n_permutations: int = 1000,
    seed: int | None = None,
) -> BBSDResult:
    """BBSD's statistics on probability arrays already computed (the statistical core).

    Args:
        probs_source: class probabilities on the source `(n, K)` (a single column: the positive
            class of a binary classifier); rows must sum to 1.
        probs_target: the same model's probabilities on the target `(m, K)`.
        alpha: level of the test.
        test: "ks" (KS per output, Bonferroni) or "mmd" (MMD on the probability vectors).
        n_permutations: permutations of the MMD test (raised to what `alpha` needs,
            `permutations_for`); unused by "ks".
        seed: seed of the MMD test's permutations (KS has no random step).

    Returns:
        A `BBSDResult`.

    Raises:
        ValueError / TypeError: not probabilities, NaN/inf, fewer than 2 rows on a side, a
            different number of columns, bad settings.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ps = rng.dirichlet([1, 1, 1], size=200)
        >>> pt = rng.dirichlet([4, 1, 1], size=200)
        >>> bbsd_from_probabilities(ps, pt).is_shift
        True
    """
    alpha = check_alpha(alpha)
    test = check_option(test, "test", BBSD_TESTS)
    n_permutations = check_positive_int(n_permutations, "n_permutations")
    seed = check_seed(seed)
    ps = check_probabilities(probs_source, "probs_source", min_samples=2)
    pt = check_probabilities(probs_target, "probs_target", min_samples=2, n_classes=ps.shape[1])
    n_outputs = ps.shape[1]
    outputs = _tested_outputs(n_outputs, test)
    if test == "ks":
        res = stats.ks_2samp(ps[:, outputs], pt[:, outputs], axis=0, method="auto")
        d = np.atleast_1d(np.asarray(res.statistic, dtype=np.float64))
        p = np.atleast_1d(np.asarray(res.pvalue, dtype=np.float64))
        k = len(outputs)
        p_value = float(min(1.0, k * p.min()))
        return BBSDResult(
            is_shift=bool(p_value <= alpha), p_value=p_value, threshold=alpha / k, alpha=alpha, test="ks",
            statistics=tuple(float(v) for v in d), p_values=tuple(float(v) for v in p),
            outputs=tuple(int(o) for o in outputs), n_outputs=n_outputs, n_source=len(ps), n_target=len(pt),
            correction="bonferroni" if k > 1 else "none",
        )
    mmd = mmd_test(ps, pt, n_permutations=permutations_for(alpha, n_permutations), alpha=alpha, seed=seed,
                   space="softmax", check_input=False)
    return BBSDResult(
        is_shift=bool(mmd.is_shift), p_value=float(mmd.p_value), threshold=alpha, alpha=alpha, test="mmd",
        statistics=(float(mmd.statistic),), p_values=(float(mmd.p_value),), outputs=tuple(range(n_outputs)),
        n_outputs=n_outputs, n_source=len(ps), n_target=len(pt), correction="none", mmd=mmd,
    )


class BBSDDetector:
    """Black-box shift detector on a Keras classifier's softmax (alibi-detect style: fit, then predict).

    `fit` stores the model's probabilities on the reference (source) sample once; each `predict`
    computes them on a target sample and tests (see the module docstring).

    Args:
        model: a trained Keras classifier (softmax / sigmoid probabilities or logits; one output).
        alpha: level of the test.
        test: "ks" (default: KS per output with Bonferroni) or "mmd" (MMD on the softmax vector).
        n_permutations: permutations of the MMD test (unused by "ks").
        batch_size: rows per forward pass.
        seed: seed of the MMD test's permutations.

    Example:
        >>> det = BBSDDetector(model).fit(x_source)   # doctest: +SKIP
        >>> result = det.predict(x_target)             # doctest: +SKIP
        >>> result.is_shift, result.p_value            # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any,
        *,
        alpha: float = 0.05,
        test: str = "ks",
        n_permutations: int = 1000,
        batch_size: int = 256,
        seed: int | None = None,
    ):
        self.model = check_classifier(model)
        self.alpha = check_alpha(alpha)
        self.test = check_option(test, "test", BBSD_TESTS)
        self.n_permutations = check_positive_int(n_permutations, "n_permutations")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = check_seed(seed)

    def fit(self, x_source: Any) -> "BBSDDetector":
        """Store the model's probabilities on the reference sample `x_source` (held-out source rows).

        Returns:
            self.
        """
        probs = model_probabilities(self.model, x_source, name="x_source", batch_size=self.batch_size)
        if len(probs) < 2:
            raise ValueError(f"x_source has {len(probs)} sample; at least 2 are needed. Pass more samples.")
        self.probs_source_ = probs
        return self

    def predict(self, x_target: Any) -> BBSDResult:
        """Test the target sample `x_target` against the fitted reference.

        Returns:
            A `BBSDResult`.

        Raises:
            RuntimeError: `fit` was not called first.
        """
        if not hasattr(self, "probs_source_"):
            raise RuntimeError("This BBSDDetector is not fitted yet: call fit(x_source) before predict(x_target).")
        pt = model_probabilities(self.model, x_target, name="x_target", batch_size=self.batch_size)
        return bbsd_from_probabilities(self.probs_source_, pt, alpha=self.alpha, test=self.test,
                                       n_permutations=self.n_permutations, seed=self.seed)

    def __repr__(self) -> str:
        return (f"BBSDDetector(model={self.model.name!r}, alpha={self.alpha:g}, test={self.test!r}"
                f"{', fitted' if hasattr(self, 'probs_source_') else ''})")


def bbsd_test(
    model: Any,
    x_source: Any,
    x_target: Any,
    *,
    alpha: float = 0.05,
    test: str = "ks",
    n_permutations: int = 1000,
    batch_size: int = 256,
    seed: int | None = None,
) -> BBSDResult:
    """Black-box shift detection of `x_target` against `x_source` through `model`'s softmax.

    Args:
        model: a trained Keras classifier (softmax / sigmoid probabilities or logits; one output).
        x_source: held-out source inputs `(n, ...)` (not the model's training rows).
        x_target: target inputs `(m, ...)`, same per-sample shape (the model's input shape).
        alpha: level of the test.
        test: "ks" (KS per output, Bonferroni) or "mmd" (MMD on the softmax vector).
        n_permutations: permutations of the MMD test (unused by "ks").
        batch_size: rows per forward pass.
        seed: seed of the MMD test's permutations.

    Returns:
        A `BBSDResult`.

    Raises:
        TypeError / ValueError: not a classifier, NaN/inf, empty or single-row samples, a
            per-sample shape the model does not take, bad settings.
    """
    det = BBSDDetector(model, alpha=alpha, test=test, n_permutations=n_permutations, batch_size=batch_size, seed=seed)
    return det.fit(x_source).predict(x_target)
