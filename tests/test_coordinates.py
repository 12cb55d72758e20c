"""Level and typical-share coordinates: when they are used, how values map into them, and bad input.

The exactness of the change of variables (equal log densities at matching points) is
checked for every law in tests/test_laws_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.coordinates import (LEVEL, TYPICAL_LOG_SHARE, level_initial_values, ratio_name, share_name,
                                  to_level_coordinates, to_sampler_coordinates, typical_log_share,
                                  uses_level_coordinates, uses_share_coordinates)
from bayesmix.errors import UsageError
from bayesmix.inference import build_model
from bayesmix.laws import get_law
from bayesmix.priors import resolve_priors
from bayesmix.simulate import default_truth, simulate_runs


@pytest.fixture(scope="module")
def table():
    truth = default_truth(seed=0)
    runs, _ = simulate_runs(truth, model_sizes=(6e7, 2e8), tokens=(2e9, 6e9), n_mixtures=4, seed=0,
                            min_weight=0.02)
    return runs


def test_level_coordinates_map_back_to_the_natural_values():
    law = get_law("capacity_noise")
    rng = np.random.default_rng(0)
    values = {t: rng.lognormal(-1.0, 1.0, size=5) for t in law.level_terms}
    values["b"] = np.full(5, 0.3)
    level = to_level_coordinates(law, values)
    assert set(level) == {LEVEL, ratio_name("c"), ratio_name("A"), "b"}
    np.testing.assert_allclose(np.exp(level[LEVEL]), values["E"] + values["c"] + values["A"], rtol=1e-12)
    # Back: E = level / (1 + sum exp(ratios)); the others are E * exp(ratio).
    E = np.exp(level[LEVEL]) / (1 + np.exp(level[ratio_name("c")]) + np.exp(level[ratio_name("A")]))
    np.testing.assert_allclose(E, values["E"], rtol=1e-12)
    np.testing.assert_allclose(E * np.exp(level[ratio_name("A")]), values["A"], rtol=1e-12)
    assert level["b"] is values["b"]


def test_values_without_every_level_term_pass_through_unchanged():
    law = get_law("capacity_noise")
    values = {"E": np.ones(3), "b": np.ones(3)}
    assert to_level_coordinates(law, values).keys() == values.keys()


def test_initial_ratios_sit_at_the_prior_medians():
    law = get_law("capacity_noise")
    priors = resolve_priors(law)
    init = level_initial_values(law, priors, np.zeros(4))
    assert init[ratio_name("c")] == pytest.approx(np.full(4, priors["c"]["mu"] - priors["E"]["mu"]))
    # A non-lognormal positive prior: the median of log x by simulation, close to the exact one.
    priors["A"] = {"dist": "HalfNormal", "sigma": 0.5}
    init = level_initial_values(law, priors, np.zeros(4))
    exact_median_log = np.log(0.5 * 0.6744897501960817)  # median of |N(0, 0.5)|
    assert init[ratio_name("A")][0] == pytest.approx(exact_median_log - priors["E"]["mu"], abs=0.05)


def test_a_prior_off_the_positive_half_line_falls_back_to_natural_coordinates(table):
    law = get_law("capacity_noise")
    priors = {"E": {"dist": "Normal", "mu": 0.5, "sigma": 0.1}}
    assert not uses_level_coordinates(law, resolve_priors(law, priors))
    model, _ = build_model(law, table, priors)
    assert "E" in {rv.name for rv in model.free_RVs} and LEVEL not in model.named_vars
    with pytest.raises(UsageError, match="positive half-line"):
        build_model(law, table, priors, coordinates="level")


def test_laws_without_level_terms_and_unknown_settings(table):
    assert not uses_level_coordinates(get_law("linear"), resolve_priors(get_law("linear")))
    with pytest.raises(UsageError, match="coordinates must be"):
        build_model(get_law("capacity_noise"), table, coordinates="polar")


def test_auto_picks_level_coordinates_on_every_design_and_natural_on_request(table):
    law = get_law("capacity_noise")
    level_free = {LEVEL, ratio_name("c"), ratio_name("A")}
    one_scale = table.select(np.isclose(table.model_size, 6e7) & np.isclose(table.tokens, 2e9))
    tied, _ = simulate_runs(default_truth(seed=1), model_sizes=(6e7, 2e8, 6e8), n_mixtures=3, seed=1)
    # A 2 x 2 grid of N and D, one scale, and D tied to N: level coordinates on each, the
    # terms kept as deterministics under their own names.
    for design in (table, one_scale, tied):
        model, _ = build_model(law, design)
        free = {rv.name for rv in model.free_RVs}
        assert level_free <= free and not {"E", "c", "A"} & free
        assert {"E", "c", "A"} <= {v.name for v in model.deterministics}
    model, _ = build_model(law, table, coordinates="natural")
    free = {rv.name for rv in model.free_RVs}
    assert {"E", "c", "A"} <= free and not level_free & free



def test_typical_log_share_averages_the_positive_shares_only():
    weights = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [0.25, 0.25, 0.5]])
    expected = [np.mean(np.log(3 * np.array([0.5, 0.2, 0.25]))), np.mean(np.log(3 * np.array([0.5, 0.8, 0.25]))),
                np.log(3 * 0.5)]
    np.testing.assert_allclose(typical_log_share(weights), expected, rtol=1e-12)
    # A domain no run trains on sits at the uniform share.
    assert typical_log_share(np.array([[1.0, 0.0], [1.0, 0.0]]))[1] == 0.0


def test_share_coordinates_are_the_log_term_at_the_typical_share_and_map_back(table):
    law = get_law("additive")
    model, _ = build_model(law, table)
    assert share_name("C") in {rv.name for rv in model.free_RVs} and "C" in {v.name for v in model.deterministics}
    share = np.asarray(model[TYPICAL_LOG_SHARE].get_value())
    np.testing.assert_allclose(share, typical_log_share(table.weights))
    rng = np.random.default_rng(1)
    K = len(share)
    values = {"C": rng.lognormal(1.8, 1.0, (K, K)), "gamma": rng.lognormal(-0.7, 0.5, (K, K)), "alpha": np.ones(K)}
    moved = to_sampler_coordinates(law, model, values)
    assert set(moved) == {share_name("C"), "gamma", "alpha"}
    # The term C (K h)^gamma at the typical share h = exp(m) / K.
    np.testing.assert_allclose(np.exp(moved[share_name("C")]), values["C"] * np.exp(values["gamma"] * share), rtol=1e-12)
    # Natural coordinates (prior sampling) keep C as a random variable.
    natural, _ = build_model(law, table, coordinates="natural")
    assert "C" in {rv.name for rv in natural.free_RVs} and TYPICAL_LOG_SHARE not in natural.named_vars


def test_a_coefficient_prior_off_the_positive_half_line_keeps_natural_share_coordinates(table):
    law = get_law("additive")
    priors = {"C": {"dist": "Normal", "mu": 5.0, "sigma": 1.0}}
    assert uses_share_coordinates(law, resolve_priors(law)) and not uses_share_coordinates(law, resolve_priors(law, priors))
    model, _ = build_model(law, table, priors)
    assert "C" in {rv.name for rv in model.free_RVs} and share_name("C") not in model.named_vars
