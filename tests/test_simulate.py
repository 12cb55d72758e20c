"""The simulator: known truths that the statistical tests lean on."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.errors import UsageError
from bayesmix.simulate import default_truth, simulate_runs


def test_irreducible_loss_is_e_in_nats_and_refused_for_laws_without_e():
    truth = default_truth("capacity_noise", seed=0)
    np.testing.assert_allclose(truth.irreducible_loss(),
                               np.asarray(truth.params["E"]) * np.asarray(truth.scaling.loss_ref))
    with pytest.raises(UsageError, match="no irreducible loss"):
        default_truth("linear", seed=0).irreducible_loss()


def test_simulated_weights_respect_the_floor_and_losses_sit_above_the_floor_loss():
    truth = default_truth("capacity_noise", seed=1)
    table, _ = simulate_runs(truth, n_mixtures=20, model_sizes=(5e7, 2e8), min_weight=0.05, seed=1)
    # the floor is applied before renormalising: the sum is then at most 1 + K * floor
    K = len(truth.domains)
    assert np.all(table.weights >= 0.05 / (1 + K * 0.05) - 1e-12)
    np.testing.assert_allclose(table.weights.sum(axis=1), 1.0)
    # expected loss = capacity + noise terms (positive) + E, and noise sd is 1%: 5 sd below E
    # would be a bug, not bad luck
    assert np.all(table.losses > truth.irreducible_loss() * np.exp(-5 * truth.noise_sd))
