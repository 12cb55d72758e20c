"""The simulator: known truths that the statistical tests lean on."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bayesmix.errors import UsageError
from bayesmix.simulate import Truth, default_truth, exponent_prior, simulate_runs


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


# ---------------------------------------------------------------------------- exponent_prior's laws
ANCHOR = (5e7, 1e9)


def _agrees_at_anchor(prior, truth):
    K = len(truth.domains)
    uniform = np.full((1, K), 1 / K)
    size, tokens = [ANCHOR[0]], [ANCHOR[1]]
    return np.allclose(prior.expected_loss(uniform, size, tokens)[:, 0],
                       truth.expected_loss(uniform, size, tokens)[None], rtol=1e-6)


def test_exponent_prior_takes_a_law_by_its_parameters_not_its_name(monkeypatch):
    """A capacity law registered under another name is taken as its parameters say:
    the same draws as capacity_noise, its noise exponent scattered with the capacity's."""
    from bayesmix import laws
    from bayesmix.laws.capacity import CapacityNoiseLaw

    renamed = type("RenamedCapacityNoise", (CapacityNoiseLaw,), {"name": "renamed_capacity_noise"})
    monkeypatch.setitem(laws._REGISTRY, renamed.name, renamed)
    base = default_truth("capacity_noise", seed=1)
    truth = Truth(renamed.name, base.params, base.scaling, base.domains, base.noise_sd)
    prior = exponent_prior(truth, *ANCHOR, n_draws=20, rel_sd=0.4, seed=3)
    same = exponent_prior(base, *ANCHOR, n_draws=20, rel_sd=0.4, seed=3)
    assert set(prior.draws) == set(same.draws)
    for name, value in same.draws.items():
        np.testing.assert_allclose(prior.draws[name], value)
    assert np.ptp(prior.draws["a"], axis=0).min() > 0 and np.ptp(prior.draws["b"], axis=0).min() > 0
    assert _agrees_at_anchor(prior, truth)


def test_exponent_prior_scatters_the_noise_exponent_only_where_the_law_has_it():
    truth = default_truth("capacity", seed=1)
    prior = exponent_prior(truth, *ANCHOR, n_draws=20, rel_sd=0.4, seed=3)
    assert set(prior.draws) == {"c", "b", "H", "E"}
    assert np.ptp(prior.draws["b"], axis=0).min() > 0
    np.testing.assert_allclose(prior.draws["H"], truth.params["H"])
    assert _agrees_at_anchor(prior, truth)


def test_exponent_prior_scatters_each_exponent_by_its_own_spread():
    """One sd per exponent, on the scale of the law's prior for it: the spread of ``a``
    (log-normal prior) in log and of ``b`` (logit-normal, in (0, 1)) in logit follows its
    own sd (2000 draws: the sample sd has a relative sd of 1/sqrt(2 * 1999) = 1.6%, so
    10% is 6 of them); ``b`` stays in (0, 1) however wide; the draws agree at the anchor."""
    truth = default_truth("capacity_noise", seed=1)
    prior = exponent_prior(truth, *ANCHOR, n_draws=2000, rel_sd={"b": 0.8, "a": 0.1}, seed=3)
    b, a = prior.draws["b"][1:], prior.draws["a"][1:]
    np.testing.assert_allclose(np.log(b / (1 - b)).std(axis=0), 0.8, rtol=0.1)
    np.testing.assert_allclose(np.log(a).std(axis=0), 0.1, rtol=0.1)
    wide = exponent_prior(truth, *ANCHOR, n_draws=200, rel_sd={"b": 3.0, "a": 0.1}, seed=3).draws["b"]
    assert np.all((wide > 0) & (wide < 1))
    K = len(truth.domains)
    per_domain = exponent_prior(truth, *ANCHOR, n_draws=2000, rel_sd={"b": 0.1, "a": [1.0] + [0.1] * (K - 1)},
                                seed=3).draws["a"][1:]
    np.testing.assert_allclose(np.log(per_domain).std(axis=0), [1.0] + [0.1] * (K - 1), rtol=0.1)
    assert _agrees_at_anchor(prior, truth)
    with pytest.raises(UsageError, match="the law scatters b: give one sd"):
        exponent_prior(default_truth("capacity", seed=1), *ANCHOR, n_draws=5, rel_sd={"b": 0.2, "a": 0.2})
    with pytest.raises(UsageError, match="finite and non-negative"):
        exponent_prior(truth, *ANCHOR, n_draws=5, rel_sd={"b": -1.0, "a": 0.2})
    with pytest.raises(UsageError, match="are not finite and positive .* give a smaller rel_sd"):
        exponent_prior(truth, *ANCHOR, n_draws=200, rel_sd={"b": 0.2, "a": 4.0}, seed=0)
    with pytest.raises(UsageError, match="one number or one per domain"):
        exponent_prior(truth, *ANCHOR, n_draws=5, rel_sd={"b": 0.2, "a": [0.2, 0.3]})


@pytest.mark.parametrize("law, says", [
    ("linear", "needs a capacity law truth (parameters c, b, H, E), got 'linear' without c, b, H, E"),
    ("chinchilla_domain", "got 'chinchilla_domain' without c, b, H"),
    # Its transfer matrix changes the capacity term matched at the anchor through the law
    # 'capacity' (let through, E absorbs up to 0.4 nats of the mismatch instead of 0.006).
    ("capacity_noise_transfer", "the law's t_level, t_z would change the terms held there"),
])
def test_exponent_prior_refuses_a_law_it_cannot_match_and_says_why(law, says):
    with pytest.raises(UsageError, match=re.escape(says)):
        exponent_prior(default_truth(law, seed=0), *ANCHOR, n_draws=5)


def test_exponent_prior_refuses_half_a_noise_term(monkeypatch):
    """``A`` without ``a`` (or the reverse) is not a noise term it can scatter."""
    from bayesmix import laws
    from bayesmix.laws.capacity import CapacityLaw, CapacityNoiseLaw

    amplitude = next(p for p in CapacityNoiseLaw.params if p.name == "A")
    half = type("HalfNoise", (CapacityLaw,), {"name": "half_noise", "params": CapacityLaw.params + (amplitude,)})
    monkeypatch.setitem(laws._REGISTRY, half.name, half)
    base = default_truth("capacity", seed=0)
    with pytest.raises(UsageError, match="the law's A would change"):
        exponent_prior(Truth(half.name, base.params, base.scaling, base.domains), *ANCHOR, n_draws=5)
