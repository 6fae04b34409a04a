"""Optimal transport of a model's predicted probabilities onto a label distribution (for COT).

Confidence Optimal Transport (Lu, Qin, Zhai, Wu, Yu, Ishwaran & Xia, NeurIPS 2023, "Characterizing
Out-of-Distribution Error via Optimal Transport") estimates a classifier's error on unlabelled target
rows as the earth mover's distance between the target rows' probability vectors and the one-hot
vectors of the label distribution the target is assumed to share with the source, with the cost
`||p - e_k||_1 / 2 = 1 - p_k`. A model that stays confident but predicts classes in proportions the
label distribution cannot have pays for the mismatch, which the model's own confidence never shows.

The problem here is semi-discrete on the label side (`k` one-hot points with masses `priors`), so it is
a transportation problem of `m x k` variables, solved exactly as a linear program by scipy's HiGHS.
Above `max_rows_per_problem` rows (about `variables_budget / k`), the rows are split into seeded chunks
of near-equal size, each transported onto the whole label distribution (the reference implementation
also averages problems over batches of rows); every chunk's coupling is at least as costly as the
whole problem's, so chunking can only lower the accuracy estimate, by little for chunks of hundreds of
rows per class.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

__all__ = ["label_transport_costs"]

#: Most variables (rows x classes) one linear program holds; more rows are split into chunks.
VARIABLES_BUDGET = 20_000
#: Fewest rows of a chunk (with many classes the budget allows fewer rows than this).
MIN_CHUNK_ROWS = 200


@functools.lru_cache(maxsize=16)
def _constraints(m: int, k: int) -> sparse.csr_matrix:
    """Equality constraints of the `m x k` transportation problem: row sums, then column sums but the last."""
    var = np.arange(m * k)
    rows = np.concatenate([var // k, m + (var % k)])
    a = sparse.csr_matrix((np.ones(2 * m * k), (rows, np.tile(var, 2))), shape=(m + k, m * k))
    return a[: m + k - 1]


def _solve(probs: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Per-row transport cost of one exact problem: row `i` carries mass `1/m`; returns `m * sum_k x_ik (1 - p_ik)`."""
    m, k = probs.shape
    cost = 1.0 - probs
    if k == 1:
        return cost[:, 0].copy()
    b = np.concatenate([np.full(m, 1.0 / m), priors[:-1]])
    res = linprog(cost.ravel(), A_eq=_constraints(m, k), b_eq=b, bounds=(0, None), method="highs")
    if res.status != 0:  # a transportation problem is always feasible and bounded
        raise RuntimeError(f"the optimal-transport linear program failed ({res.message}); please report this.")
    plan = np.clip(res.x.reshape(m, k), 0.0, None)
    return m * np.sum(plan * cost, axis=1)


def label_transport_costs(
    probs: np.ndarray,
    priors: np.ndarray,
    *,
    variables_budget: int = VARIABLES_BUDGET,
    seed: int | None = 0,
) -> np.ndarray:
    """Each row's cost in the optimal transport of `probs` onto the one-hot label distribution `priors`.

    The coupling sends every row (mass `1/m`) to the classes, class `j` receiving mass `priors[j]`,
    at the least total cost `sum_ij plan_ij (1 - probs_ij)`. The mean of the returned costs is COT's
    error estimate (the earth mover's distance under the L1 cost halved); `1 - mean` its accuracy.

    Args:
        probs: `(m, k)` probability rows (checked by the caller).
        priors: `(k,)` class proportions summing to 1.
        variables_budget: most `rows x k` of one linear program; more rows are split into seeded chunks.
        seed: seed of the split into chunks (unused when one problem holds every row).

    Returns:
        `(m,)` per-row costs in [0, 1], in the rows' order.

    Example:
        >>> import numpy as np
        >>> p = np.array([[0.9, 0.1], [0.8, 0.2]])  # both rows predict class 0
        >>> label_transport_costs(p, np.array([0.5, 0.5])).round(2)  # one must go to class 1
        array([0.1, 0.8])
    """
    probs = np.asarray(probs, dtype=np.float64)
    priors = np.asarray(priors, dtype=np.float64)
    priors = priors / priors.sum()
    m, k = probs.shape
    per = max(MIN_CHUNK_ROWS, int(variables_budget) // max(k, 1))
    if m <= per:
        return _solve(probs, priors)
    n_chunks = -(-m // per)
    order = np.random.default_rng(seed).permutation(m)
    costs = np.empty(m)
    for rows in np.array_split(order, n_chunks):
        costs[rows] = _solve(probs[rows], priors)
    return costs
