"""Held-out metrics (bayesmix.metrics) on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bayesmix.metrics import coverage_band, domain_level_errors, pooled_coverage_band, scatter_around_lines

Z90 = stats.norm.ppf(0.95)


def test_coverage_band_of_independent_cells_is_the_binomial_one():
    """Independent standard normal cells against their exact 90% intervals: each draw's
    coverage is Binomial(400, 0.9) / 400, whose 5% and 95% quantiles are 0.875 and 0.925
    (sd 0.015; the draws' quantiles are within 0.001 at 4000 draws, the binomial's
    steps are 0.0025)."""
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((4000, 400))
    low, high = coverage_band(draws, np.full(400, -Z90), np.full(400, Z90))
    exact = stats.binom.ppf([0.05, 0.95], 400, 0.9) / 400
    assert low == pytest.approx(exact[0], abs=0.005) and high == pytest.approx(exact[1], abs=0.005)


def test_coverage_band_of_cells_sharing_one_error_is_all_or_nothing():
    """Every cell of a draw moves with one shared error: a draw covers all cells or none
    (none with probability 0.1), so the band is the whole of [0, 1]."""
    shared = np.random.default_rng(1).standard_normal((4000, 1))
    draws = np.repeat(shared, 50, axis=1)
    assert coverage_band(draws, np.full(50, -Z90), np.full(50, Z90)) == (0.0, 1.0)


def test_coverage_band_without_cells_is_nan():
    low, high = coverage_band(np.empty((10, 0)), np.empty(0), np.empty(0))
    assert math.isnan(low) and math.isnan(high)


def test_pooled_band_of_independent_blocks_is_the_band_of_all_their_cells():
    """Two folds of 200 independent cells each, scored by separate fits (the second with
    more draws, of which the first 4000 count): together the binomial band of 400 cells."""
    rng = np.random.default_rng(2)
    first = np.abs(rng.standard_normal((4000, 200))) <= Z90
    second = np.abs(rng.standard_normal((5000, 200))) <= Z90
    low, high = pooled_coverage_band([first, second])
    exact = stats.binom.ppf([0.05, 0.95], 400, 0.9) / 400
    assert low == pytest.approx(exact[0], abs=0.005) and high == pytest.approx(exact[1], abs=0.005)
    assert math.isnan(pooled_coverage_band([])[0])


def test_domain_level_errors_split_a_shared_offset_from_the_errors_within_a_domain():
    """Predictions off by a factor per domain (e^0.02 and e^-0.01) and by +-1% around it:
    the levels are those factors' logs, and with them taken out the MRE is that of the
    +-1% alone, whatever the levels."""
    observed = np.array([2.0, 2.5, 3.0, 1.0, 1.2, 1.4])
    domain = np.array([0, 0, 0, 1, 1, 1])
    wiggle = np.array([0.01, -0.01, 0.0, -0.01, 0.01, 0.0])  # mean 0 in each domain
    level = np.where(domain == 0, 0.02, -0.01)
    got = domain_level_errors(observed * np.exp(level + wiggle), observed, domain)
    np.testing.assert_allclose(got["level_errors"], [0.02, -0.01])
    assert got["mean_level_error"] == pytest.approx(0.005)
    assert got["mre_within_domains"] == pytest.approx(np.mean(np.abs(np.expm1(wiggle))))
    unshifted = domain_level_errors(observed * np.exp(wiggle), observed, domain)
    assert unshifted["mre_within_domains"] == pytest.approx(got["mre_within_domains"])
    np.testing.assert_allclose(unshifted["level_errors"], 0.0, atol=1e-12)
    empty = domain_level_errors([], [], [])
    assert math.isnan(empty["mean_level_error"]) and math.isnan(empty["mre_within_domains"])


def test_scatter_around_lines_is_exact_for_a_residual_orthogonal_to_every_line():
    """Three points on a line plus c (1, -2, 1) (orthogonal to 1 and x): the residual sum
    of squares is 6 c^2 on one degree of freedom, whatever the line; groups pool, a group
    too small is left out, NaN cells drop from their domain only."""
    x = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0, 5.0, 6.0])
    c1, c2 = 0.02, -0.01
    bump = np.array([1.0, -2.0, 1.0])
    first = 0.3 - 0.1 * x[:3] + c1 * bump
    second = 1.2 + 0.05 * x[3:6] + c2 * bump
    log_loss = np.column_stack([np.r_[first, second, 9.0, 7.0], np.r_[first, np.nan, 1.0, 2.0, 9.0, 7.0]])
    groups = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    out = scatter_around_lines(log_loss, x, groups, min_points=3)
    assert out["sd"][0] == pytest.approx(np.sqrt(6 * (c1**2 + c2**2) / 2), rel=1e-9)
    assert out["sd"][1] == pytest.approx(np.sqrt(6) * abs(c1), rel=1e-9)  # group 1 has 2 cells there
    np.testing.assert_array_equal(out["groups"], [2, 1])
    np.testing.assert_array_equal(out["runs"], [6, 3])
    assert np.isnan(scatter_around_lines(log_loss, x, groups, min_points=4)["sd"]).all()


def test_scatter_around_lines_recovers_the_noise_sd_and_its_mre_floor_on_simulated_runs():
    """Runs of 200 groups, six points each on their own line in x, log-normal noise of sd
    0.03: the pooled sd within 10% (800 degrees of freedom: its relative standard error
    is 1 / sqrt(1600) = 2.5%), and the MRE floor is what such noise does to an exact
    prediction (Monte Carlo over 10^6 draws)."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 6)
    x = np.tile(np.log([3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), 200)
    lines = rng.normal(0.0, 1.0, (200, 2))
    log_loss = (lines[groups, 0] + lines[groups, 1] * x + rng.normal(0.0, 0.03, x.size))[:, None]
    out = scatter_around_lines(log_loss, x, groups)
    assert abs(out["sd"][0] / 0.03 - 1) < 0.10
    eps = np.random.default_rng(1).normal(0.0, out["sd"][0], 1_000_000)
    assert out["mre_floor"][0] == pytest.approx(np.mean(np.abs(np.expm1(eps))), rel=0.01)
