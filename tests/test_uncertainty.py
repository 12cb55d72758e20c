"""The uncertainty budget (bayesmix.uncertainty) against the predictive draws it explains."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesmix.errors import UsageError
from bayesmix.observation import ObservationDesign, ObservationDraws, mixture_keys
from bayesmix.simulate import default_truth
from bayesmix.testing import posterior_around_truth
from bayesmix.uncertainty import PARTS, budget_refusal, uncertainty_budget

S = 4000


def _posterior(*, mixture_effect=True, run_sd=0.01, scale="log", region="all"):
    """capacity_noise around a truth, with a discrepancy fitted at 50M, 100M and 200M
    (20 tokens per parameter) and, optionally, mixture effects for two seen mixtures."""
    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=1)
    base = posterior_around_truth(truth, n_draws=S, rel_sd=0.03, sigma=0.01, seed=2)
    fitted = np.log(np.array([[5e7], [1e8], [2e8]]) / base.scaling.n_ref)
    seen = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    design = ObservationDesign(discrepancy=True, features=("log_n",), scale_points=fitted,
                               centre=fitted.mean(axis=0), discrepancy_scale=scale, mixture_effect=mixture_effect,
                               slope_region=(region,),
                               mixtures=tuple(mixture_keys(seen)) if mixture_effect else ())
    rng = np.random.default_rng(3)
    mix_sd = np.abs(rng.normal(0.0, 0.01, (S, 3))) if mixture_effect else None
    draws = ObservationDraws(design, disc_slope=rng.normal(-0.05, 0.02, (S, 1, 3)),
                             disc_amp=np.abs(rng.normal(0.0, 0.01, S)), disc_white=rng.normal(size=(S, 3, 3)),
                             mix_effect=(mix_sd[:, None, :] * rng.normal(size=(S, 2, 3))) if mixture_effect else None,
                             mix_sd=mix_sd)
    return dataclasses.replace(base, observation=draws, run_sd=np.full(S, run_sd) if run_sd else None), seen


def test_the_parts_add_up_to_the_spread_of_the_predictive_draws():
    """At a fitted scale, inside the range, and 4x beyond it, for a seen and a new mixture:
    the budget's total is the sd of log(predictive_loss) over 4000 draws (within 5%: the
    sampling sd of an sd from 4000 draws is about 1.1%, more for heavier tails), each
    part is what it says (no fresh law error at a fitted scale, none for a seen
    mixture's effect), and the law's error beyond the fitted scales grows with distance."""
    posterior, seen = _posterior()
    new = np.array([0.1, 0.1, 0.8])
    weights = np.array([seen[0], new, seen[0], new, new])
    N = np.array([1e8, 1e8, 1.4e8, 8e8, 3.2e9])
    budget = uncertainty_budget(posterior, weights, N, 20 * N)
    log_draws = np.log(posterior.predictive_loss(weights, N, 20 * N, seed=5))
    np.testing.assert_allclose(budget["total"], log_draws.std(axis=0), rtol=0.05)
    np.testing.assert_allclose(budget["total"] ** 2, sum(budget[p] ** 2 for p in PARTS), rtol=1e-12)
    beyond = budget["law error beyond the fitted scales"]
    assert np.all(beyond[:2] == 0) and np.all(beyond[2] > 0)
    assert np.all(beyond[4] > beyond[3]) and np.all(beyond[3] > beyond[2])
    assert np.all(budget["new mixture"][[0, 2]] == 0) and np.all(budget["new mixture"][[1, 3, 4]] > 0)
    np.testing.assert_allclose(budget["run noise"], np.sqrt(0.01**2 + 0.01**2), rtol=1e-12)


def test_a_law_only_posterior_has_parameters_and_noise_only():
    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=1)
    posterior = posterior_around_truth(truth, n_draws=S, rel_sd=0.03, sigma=0.02, seed=2)
    h = np.array([0.2, 0.3, 0.5])
    budget = uncertainty_budget(posterior, h, 1e9, 2e10)
    assert np.all(budget["law error beyond the fitted scales"] == 0) and np.all(budget["new mixture"] == 0)
    np.testing.assert_allclose(budget["run noise"], 0.02, rtol=1e-12)
    log_mu = np.log(posterior.law_mean(h, 1e9, 2e10))
    np.testing.assert_allclose(budget["parameters"], log_mu.std(axis=0), rtol=1e-12)


def test_student_t_noise_counts_its_variance_and_a_reducible_discrepancy_is_refused():
    posterior, _ = _posterior(mixture_effect=False, run_sd=0)
    nu = np.full(S, 4.0)
    budget = uncertainty_budget(dataclasses.replace(posterior, nu=nu), np.full(3, 1 / 3), 1e8, 2e9)
    np.testing.assert_allclose(budget["run noise"], 0.01 * np.sqrt(2.0), rtol=1e-12)  # nu / (nu - 2) = 2
    nu[0] = 1.5
    assert np.isinf(uncertainty_budget(dataclasses.replace(posterior, nu=nu), np.full(3, 1 / 3), 1e8, 2e9)["total"]).all()
    reducible, _ = _posterior(mixture_effect=False, scale="reducible")
    with pytest.raises(UsageError, match="discrepancy_scale='log'"):
        uncertainty_budget(reducible, np.full(3, 1 / 3), 1e8, 2e9)
    assert "discrepancy_scale='log'" in budget_refusal(reducible) and budget_refusal(posterior) is None


def test_slopes_drawn_from_their_prior_count_as_law_error_not_as_parameters():
    """Slopes acting outside the fitted scales only never meet the data: at ``b`` e-folds
    beyond, their line adds ``Var(slope) b^2`` to the law's error and nothing to the
    parameters' part (against the same draws with those slopes at 0), and the total is
    still the sd of the predictive draws."""
    posterior, _ = _posterior(mixture_effect=False, region="outside")
    h, N = np.full(3, 1 / 3), np.array([8e8])
    budget = uncertainty_budget(posterior, h, N, 20 * N)
    flat = dataclasses.replace(posterior, observation=dataclasses.replace(
        posterior.observation, disc_slope=np.zeros_like(posterior.observation.disc_slope)))
    without = uncertainty_budget(flat, h, N, 20 * N)
    b = np.log(8e8 / 2e8)
    slope_var = posterior.observation.disc_slope[:, 0, :].var(axis=0)
    np.testing.assert_allclose(budget["law error beyond the fitted scales"][0] ** 2
                               - without["law error beyond the fitted scales"][0] ** 2, slope_var * b**2, rtol=1e-9)
    np.testing.assert_allclose(budget["parameters"], without["parameters"], rtol=1e-12)
    log_draws = np.log(posterior.predictive_loss(h, N, 20 * N, seed=5))
    np.testing.assert_allclose(budget["total"], log_draws.std(axis=0), rtol=0.05)


def test_the_discrepancy_shift_is_the_mean_offset_of_the_predictive_draws_from_the_law():
    """Without mixture effects the predictive draws' log-loss is the law's log-mean plus the
    discrepancy plus zero-mean noise: its mean offset from the law is the shift, within
    four Monte Carlo standard errors; 0 without a discrepancy; at 4x beyond the fitted
    scales, slopes near -0.05 per e-fold make it negative."""
    posterior, _ = _posterior(mixture_effect=False)
    h = np.full((2, 3), 1 / 3)
    N = np.array([1e8, 8e8])
    budget = uncertainty_budget(posterior, h, N, 20 * N)
    offset = np.log(posterior.predictive_loss(h, N, 20 * N, seed=5)) - np.log(posterior.law_mean(h, N, 20 * N))
    np.testing.assert_allclose(budget["discrepancy_shift"], offset.mean(axis=0),
                               atol=4 * float(offset.std(axis=0).max()) / np.sqrt(S))
    assert np.all(budget["discrepancy_shift"][1] < -0.02)
    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=1)
    law_only = posterior_around_truth(truth, n_draws=100, rel_sd=0.03, sigma=0.02, seed=2)
    assert np.all(uncertainty_budget(law_only, h[0], 1e9, 2e10)["discrepancy_shift"] == 0)
