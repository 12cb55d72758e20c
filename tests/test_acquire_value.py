"""Building blocks of the value of information: risk under many weightings, and the
density of a run's checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesmix.acquire import log_likelihood
from bayesmix.decide import Risk


# ---------------------------------------------------------------------------- risk under many weightings
def test_risk_under_rows_of_weights_matches_one_weighting_at_a_time():
    rng = np.random.default_rng(0)
    values, weights = rng.normal(size=(50, 7)), rng.uniform(size=(9, 50))
    weights[2, :45] = 0.0  # a row that leaves few draws
    for spec in ("mean", "cvar:0.9", "cvar:0", "quantile:0.8"):
        risk = Risk.parse(spec)
        want = np.array([risk.evaluate(values, w) for w in weights])
        assert np.allclose(risk.evaluate_rows(values, weights, chunk=4), want, rtol=0, atol=1e-12), spec


# ---------------------------------------------------------------------------- run offsets shared by checkpoints
def test_checkpoints_of_one_run_share_its_offset():
    rng = np.random.default_rng(1)
    S, J = 3, 4
    log_mu = rng.normal(size=(S, J, 2))
    sigma = rng.uniform(0.05, 0.2, (S, 2))
    run_sd = rng.uniform(0.1, 0.3, S)
    y = rng.normal(size=(J, 2))
    groups = np.array([0, 0, 1, 1])  # two runs with two checkpoints each
    got = log_likelihood(y, log_mu, sigma, run_sd, groups=groups)
    assert got.shape == (2, S)
    for g in (0, 1):
        rows = groups == g
        for s in range(S):
            cov = np.diag(np.tile(sigma[s] ** 2, rows.sum())) + run_sd[s] ** 2
            want = stats.multivariate_normal(log_mu[s, rows].reshape(-1), cov).logpdf(y[rows].reshape(-1))
            assert got[g, s] == pytest.approx(want, rel=1e-10)
