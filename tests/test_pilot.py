"""The pilot run that moves chains out of minor modes (bayesmix.pilot)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from bayesmix.pilot import MODE_GAP_NATS, PilotReport, main_mode_draws, minor_mode_chains, whitening


def test_chains_of_one_mode_are_all_kept():
    rng = np.random.default_rng(0)
    logp = 5000 + 20 * rng.standard_normal((4, 40))
    assert minor_mode_chains(logp).size == 0


def test_a_chain_far_below_the_best_is_a_minor_mode():
    """The SlimPajama case: typical log densities 5564, 5562, 5602, 5561 with a
    within-chain sd of about 25: the three low chains sit in the other mode."""
    rng = np.random.default_rng(1)
    logp = np.array([5564.0, 5562.0, 5602.0, 5561.0])[:, None] + 25 * rng.standard_normal((4, 400))
    assert minor_mode_chains(logp).tolist() == [0, 1, 3]


def test_a_small_gap_is_not_a_mode_even_in_a_narrow_posterior():
    """Below MODE_GAP_NATS the chains are kept however small their spread."""
    logp = np.array([[0.0, 0.01], [-(MODE_GAP_NATS - 1), -(MODE_GAP_NATS - 1.01)]])
    assert minor_mode_chains(logp).size == 0
    logp[1] -= 2
    assert minor_mode_chains(logp).tolist() == [1]


def test_a_chain_with_non_finite_density_is_restarted():
    logp = np.array([[1.0, 2.0], [np.nan, 2.0], [1.5, 1.0]])
    assert minor_mode_chains(logp).tolist() == [1]


def test_the_report_names_the_gap():
    report = PilotReport((10.0, -40.0, 9.0), (1,))
    assert report.to_diagnostics() == {"pilot_restarted_chains": 1, "pilot_max_logp_gap": 50.0}


def test_main_mode_draws_leave_out_the_minor_chains_and_non_finite_draws():
    positions = np.arange(4 * 3 * 2, dtype=float).reshape(4, 3, 2)
    positions[0, 1, 0] = np.nan
    logp = np.array([[0.0, 0.0, 0.0], [-100.0, -100.0, -100.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    draws, report = main_mode_draws(positions, logp)
    assert report.restarted == (1,)
    assert draws.shape == (8, 2) and not np.isnan(draws).any()
    assert not any(np.array_equal(d, p) for d in draws for p in positions[1])


def test_whitening_recovers_a_correlated_gaussian():
    """Whitened by the factor estimated from 4000 draws, the draws have a covariance
    within 0.01 of I: exactly I but for the shrinkage of d/(n+d) = 0.00075 of the
    off-diagonal, which moves the conditional variances by about that times the
    covariance's condition number (about 10 here)."""
    rng = np.random.default_rng(2)
    true_chol = np.array([[2.0, 0.0, 0.0], [1.5, 1.0, 0.0], [-0.3, 0.2, 0.8]])
    draws = 5.0 + rng.standard_normal((4000, 3)) @ true_chol.T
    mean, chol = whitening(draws)
    z = np.linalg.solve(chol, (draws - mean).T).T
    assert np.allclose(mean, 5.0, atol=0.1)
    assert np.allclose(np.cov(z, rowvar=False), np.eye(3), atol=0.01)


@pytest.mark.slow
def test_the_pilot_moves_chains_from_a_minor_mode_into_the_main_one():
    """Two well separated modes of a 1-d mixture, weights 1 - 1e-8 and 1e-8 (typical
    log densities 18 nats apart); two of four chains start in the minor mode, where NUTS
    would keep them. After the pilot every chain starts in the main mode."""
    import pymc as pm

    from bayesmix.inference import FitSettings, _compiled_nutpie_model, _run_pilot

    with pm.Model() as model:
        pm.NormalMixture("x", w=np.array([1 - 1e-8, 1e-8]), mu=np.array([-6.0, 6.0]), sigma=np.array([0.3, 0.3]))
    starts = itertools.cycle([-5.9, 5.9])  # nutpie refuses a start with a zero gradient
    compiled = _compiled_nutpie_model(model)
    compiled = dataclasses.replace(compiled, initial_point_func=lambda seed: np.array([next(starts)]))
    settings = FitSettings(chains=4, tune=200, draws=100, seed=0, cores=1)
    started, report = _run_pilot(compiled, settings, progressbar=False)
    assert len(report.restarted) == 2
    assert max(report.chain_logp) - min(report.chain_logp) > MODE_GAP_NATS
    points = np.array([started.initial_point_func(seed) for seed in range(20)])
    assert np.all(np.abs(points + 6.0) < 2.0)  # within ~6 sd of the main mode


@pytest.mark.slow
def test_rewhitening_keeps_the_log_density_of_every_draw():
    """Re-centred and re-whitened by a pilot's draws, the preconditioned model gives each
    draw, mapped to the new coordinates, the log density it had (the map is affine and
    the model's density is evaluated at the same original point)."""
    import pymc as pm

    from bayesmix.inference import _compiled_logp_dlogp, _compiled_nutpie_model, _rewhitened, preconditioned_model

    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.3], [0.0, 0.3, 2.0]])
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.array([1.0, -2.0, 0.5]), cov=cov)
    from bayesmix.inference import PRECOND_CHOL, PRECOND_MEAN

    compiled = _compiled_nutpie_model(preconditioned_model(model)).with_data(
        **{PRECOND_MEAN: np.array([0.5, -1.0, 0.0]),
           PRECOND_CHOL: np.array([[0.8, 0.0, 0.0], [0.5, 0.4, 0.0], [0.1, -0.2, 1.2]])})
    draws = np.random.default_rng(3).standard_normal((200, 3))
    before = _compiled_logp_dlogp(compiled)
    rewhitened, moved = _rewhitened(compiled, draws)
    after = _compiled_logp_dlogp(rewhitened)
    assert not np.allclose(moved, draws)
    for old, new in zip(draws[:10], moved[:10]):
        assert after(new)[0] == pytest.approx(before(old)[0], rel=1e-10, abs=1e-10)
