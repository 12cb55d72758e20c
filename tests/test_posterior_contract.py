"""The posterior contract (bayesmix.posterior.PosteriorLike): one test over every kind
of posterior the decision layers accept, a fitted law's and a stacking mixture of laws."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.compare import StackedPosterior
from bayesmix.posterior import Posterior, PosteriorLike
from bayesmix.simulate import default_truth
from bayesmix.testing import posterior_around_truth

DOMAINS = ("web", "code", "books")
H = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
N, D = 1e8, 2e9


def _one_law() -> Posterior:
    return posterior_around_truth(default_truth("capacity_noise", DOMAINS, seed=1), n_draws=60)


def _stacked() -> StackedPosterior:
    a = posterior_around_truth(default_truth("capacity_noise", DOMAINS, seed=1), n_draws=60)
    b = posterior_around_truth(default_truth("chinchilla_domain", DOMAINS, seed=2), n_draws=40)
    return StackedPosterior({"capacity_noise": a, "chinchilla_domain": b},
                            {"capacity_noise": 0.6, "chinchilla_domain": 0.4}, n_draws=50)


def _with_evaluation_domain() -> Posterior:
    """A law that predicts an evaluation-only domain ("chat": never in a mixture)."""
    truth = default_truth("capacity_noise_transfer", DOMAINS + ("chat",), seed=1)
    return posterior_around_truth(truth, n_draws=60, n_eval=1)


def _with_discrepancy(scale: str):
    """A law with a discrepancy over scale fitted at 50-200M (scales: reducible or log)."""
    import dataclasses

    from bayesmix.observation import ObservationDesign, ObservationDraws

    post = _one_law()
    fitted = np.log(np.array([[5e7], [1e8], [2e8]]) / post.scaling.n_ref)
    design = ObservationDesign(discrepancy=True, features=("log_n",), scale_points=fitted,
                               centre=fitted.mean(axis=0), discrepancy_scale=scale)
    rng = np.random.default_rng(4)
    return dataclasses.replace(post, observation=ObservationDraws(
        design, disc_slope=rng.normal(-0.05, 0.03, (60, 1, 3)), disc_amp=np.full(60, 0.02),
        disc_white=rng.normal(size=(60, 3, 3))))


def _with_mixture_effect(post: Posterior, seed: int) -> Posterior:
    """``post`` with a mixture effect fitted for the first mixture of ``H`` (the second
    is new to it)."""
    import dataclasses

    from bayesmix import observation
    from bayesmix.observation import ObservationDesign, ObservationDraws

    design = ObservationDesign(mixture_effect=True, mixtures=tuple(observation.mixture_keys(H[:1])))
    rng = np.random.default_rng(seed)
    S = post.n_draws
    return dataclasses.replace(post, observation=ObservationDraws(
        design, mix_effect=rng.normal(0.0, 0.05, (S, 1, len(DOMAINS))), mix_sd=np.full((S, len(DOMAINS)), 0.05)))


def _stacked_with_mixture_effects() -> StackedPosterior:
    a, b = _stacked().components.values()
    return StackedPosterior({"capacity_noise": _with_mixture_effect(a, 5), "chinchilla_domain": _with_mixture_effect(b, 6)},
                            {"capacity_noise": 0.6, "chinchilla_domain": 0.4}, n_draws=50)


@pytest.fixture(params=["one law", "stacked laws", "evaluation-only domain", "discrepancy on the reducible loss",
                        "discrepancy on the log-loss", "mixture effect", "stacked laws with mixture effects"])
def posterior(request):
    return {"one law": _one_law, "stacked laws": _stacked,
            "evaluation-only domain": _with_evaluation_domain,
            "discrepancy on the reducible loss": lambda: _with_discrepancy("reducible"),
            "discrepancy on the log-loss": lambda: _with_discrepancy("log"),
            "mixture effect": lambda: _with_mixture_effect(_one_law(), 5),
            "stacked laws with mixture effects": _stacked_with_mixture_effects}[request.param]()


def test_every_posterior_kind_keeps_the_written_contract(posterior):
    assert isinstance(posterior, PosteriorLike)
    S, T = posterior.n_draws, len(posterior.target_domains)
    assert posterior.domains == DOMAINS and isinstance(posterior.law.name, str) and isinstance(posterior.meta, dict)
    assert posterior.n_domains == len(DOMAINS) and posterior.target_domains == DOMAINS + posterior.eval_domains
    mu = posterior.expected_loss(H, N, D)
    assert mu.shape == (S, 2, T) and np.all(np.isfinite(mu)) and np.all(mu > 0)
    full = posterior.full_weights(H)
    assert full.shape == (2, T) and np.array_equal(full[:, :len(DOMAINS)], H) and not np.any(full[:, len(DOMAINS):])
    noisy = posterior.add_noise(mu, seed=1, weights=H)
    assert noisy.shape == mu.shape and not np.array_equal(noisy, mu)
    np.testing.assert_array_equal(posterior.predictive_loss(H, N, D, seed=1), posterior.add_noise(mu, seed=1, weights=H))
    summary = posterior.summarise(H, N, D)
    assert {"mean", "sd", "q05", "q95"} <= set(summary) and "draws" not in summary
    np.testing.assert_allclose(summary["mean"], mu.mean(axis=0))
    assert np.all(summary["q05"] < summary["q95"])
    # The summary is of predictive_loss's draws (a seen mixture keeps its effect).
    kept = posterior.summarise(H, N, D, seed=2, keep_draws=True)
    np.testing.assert_array_equal(kept["draws"], posterior.predictive_loss(H, N, D, seed=2))
    np.testing.assert_array_equal(kept["q05"], np.quantile(kept["draws"], 0.05, axis=0))
    np.testing.assert_array_equal(kept["q95"], np.quantile(kept["draws"], 0.95, axis=0))


def test_subsets_and_thinning_keep_the_kind_and_pick_the_draws(posterior):
    mu = posterior.expected_loss(H, N, D)
    sub = posterior.subset([3, 0, 7])
    assert isinstance(sub, type(posterior)) and sub.n_draws == 3
    np.testing.assert_allclose(sub.expected_loss(H, N, D), mu[[3, 0, 7]])
    thin = posterior.thin(10)
    assert isinstance(thin, PosteriorLike) and thin.n_draws <= 10


def test_the_symbolic_loss_is_the_numeric_one(posterior):
    import pytensor
    import pytensor.tensor as pt

    # Mixtures no fit saw: a seen mixture's own effect is in expected_loss only (the
    # symbolic loss serves decisions over the continuum of mixtures).
    new = np.array([[0.2, 0.2, 0.6], [0.1, 0.6, 0.3]])
    h = pt.matrix("h")
    graph = pytensor.function([h], posterior.symbolic_expected_loss(h, N, D))
    np.testing.assert_allclose(graph(new), posterior.expected_loss(new, N, D), rtol=1e-8)
