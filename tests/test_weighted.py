"""Weighted draws (bayesmix.weighted): one quantile convention for every layer."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.errors import UsageError
from bayesmix.weighted import normalised_draw_weights, weighted_quantile


def test_equal_weights_give_numpys_quantile():
    values = np.random.default_rng(0).normal(size=(40, 3))
    for weights in (None, np.ones(40), np.full((40, 3), 2.5)):
        np.testing.assert_allclose(weighted_quantile(values, [0.05, 0.5, 0.95], weights),
                                   np.quantile(values, [0.05, 0.5, 0.95], axis=0), rtol=1e-12)


def test_per_column_weights_are_each_columns_own():
    """Weights that differ by column (PSIS-LOO weights per held-out cell) give each column
    the quantiles of its own weighted draws: those of one shared weight vector per column."""
    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, 4))
    weights = rng.uniform(0.1, 2.0, size=(50, 4))
    joint = weighted_quantile(values, [0.1, 0.9], weights)
    for col in range(4):
        np.testing.assert_allclose(joint[:, col], weighted_quantile(values[:, col], [0.1, 0.9], weights[:, col]),
                                   rtol=1e-12)


def test_zero_weight_draws_are_left_out_and_positions_follow_the_weights():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(30, 2))
    weights = np.zeros((30, 2))
    weights[:10] = 1.0
    np.testing.assert_allclose(weighted_quantile(values, 0.3, weights), np.quantile(values[:10], 0.3, axis=0),
                               rtol=1e-12)
    # Plotting positions (C_j - w_j) / (1 - w_last) of weights 1/5, 3/5, 1/5: 0, 1/4, 1;
    # the median lies a third of the way from the second value to the third.
    assert weighted_quantile(np.array([0.0, 1.0, 2.0]), 0.5, [1, 3, 1]) == pytest.approx(4 / 3)


def test_bad_weights_are_refused_with_the_reason():
    with pytest.raises(UsageError, match="3 entries but there are 4 draws"):
        normalised_draw_weights([1, 1, 1], 4)
    with pytest.raises(UsageError, match="non-negative"):
        normalised_draw_weights([1, -1, 1], 3)
