"""The optimal transport of probabilities onto a label distribution (shiftkit.shift.transport), against
direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from shiftkit.shift.transport import label_transport_costs


def _assignment_cost(p: np.ndarray, counts: np.ndarray) -> float:
    """The exact optimum when every class takes a whole number of rows: an assignment to class slots."""
    slots = np.repeat(np.arange(len(counts)), counts)
    cost = 1.0 - p[:, slots]
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


@pytest.mark.parametrize("seed", range(5))
def test_equals_the_assignment_optimum_on_whole_masses(seed):
    rng = np.random.default_rng(seed)
    counts = np.array([6, 4, 2])  # 12 rows
    p = rng.dirichlet(np.full(3, 0.5), size=12)
    costs = label_transport_costs(p, counts / counts.sum())
    assert costs.shape == (12,) and np.all((costs >= -1e-12) & (costs <= 1 + 1e-12))
    assert costs.mean() == pytest.approx(_assignment_cost(p, counts), abs=1e-9)


def test_two_classes_closed_form():
    """Two classes: the rows with the highest P(class 0) go to class 0, as many as its mass allows."""
    rng = np.random.default_rng(7)
    p0 = rng.uniform(size=40)
    p = np.column_stack([p0, 1 - p0])
    costs = label_transport_costs(p, np.array([0.25, 0.75]))
    to0 = np.argsort(-p0)[:10]
    expected = np.where(np.isin(np.arange(40), to0), 1 - p0, p0)
    np.testing.assert_allclose(costs, expected, atol=1e-9)


def test_rows_keep_their_order_and_chunks_only_cost_more():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(4, 0.4), size=900)
    priors = np.array([0.1, 0.2, 0.3, 0.4])
    whole = label_transport_costs(p, priors)
    perm = rng.permutation(900)
    assert label_transport_costs(p[perm], priors).mean() == pytest.approx(whole.mean(), abs=1e-9)
    chunked = label_transport_costs(p, priors, variables_budget=4 * 300, seed=0)  # 3 chunks of 300 rows
    assert chunked.mean() >= whole.mean() - 1e-9
    assert chunked.mean() - whole.mean() < 0.02  # hundreds of rows per chunk: close to the whole problem
    again = label_transport_costs(p, priors, variables_budget=4 * 300, seed=0)
    np.testing.assert_array_equal(chunked, again)  # the split is seeded


def test_confident_predictions_in_the_label_proportions_cost_nothing():
    y = np.repeat(np.arange(3), [5, 3, 2])
    p = np.eye(3)[y]
    assert label_transport_costs(p, np.array([0.5, 0.3, 0.2])).max() == pytest.approx(0.0, abs=1e-12)
    # the same predictions against other proportions: the surplus rows cost 1 each (total variation 0.3)
    assert label_transport_costs(p, np.array([0.2, 0.3, 0.5])).mean() == pytest.approx(0.3, abs=1e-9)
