"""Held-out metrics (bayesmix.metrics) on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bayesmix.metrics import coverage_band, pooled_coverage_band

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
