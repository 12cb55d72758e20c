"""Helpers for tests and examples: posteriors and fits built from known draws, no sampling."""

from __future__ import annotations

import numpy as np

from . import _az
from .inference import Fit
from .posterior import Posterior
from .priors import resolve_priors


def posterior_around_truth(truth, *, n_draws: int = 200, rel_sd: float = 0.05, sigma: float = 0.01,
                           seed: int = 0, n_eval: int = 0) -> Posterior:
    """A Posterior whose draws scatter log-normally (sd ``rel_sd``) around a Truth's parameters.

    ``n_eval``: the truth's last ``n_eval`` domains are evaluation-only (never in a
    mixture; the law must predict them).
    """
    rng = np.random.default_rng(seed)
    draws = {}
    for name, value in truth.params.items():
        value = np.asarray(value, dtype=float)
        draws[name] = value[None] * np.exp(rng.normal(0.0, rel_sd, size=(n_draws,) + value.shape))
    if "E" in draws:  # E is a fraction of the reference loss: keep it inside (0, 1) when it is
        if np.all(np.asarray(truth.params["E"]) < 1):
            draws["E"] = np.clip(draws["E"], 1e-6, 1 - 1e-6)
    K = len(truth.domains)
    mixture = tuple(truth.domains)[:K - n_eval]
    return Posterior(truth.posterior.law, draws, truth.scaling, mixture, sigma=np.full((n_draws, K), sigma),
                     eval_domains=tuple(truth.domains)[K - n_eval:])


def fit_from_posterior(posterior: Posterior, *, chains: int = 2, source: str = "<test>") -> Fit:
    """Wrap a Posterior as a :class:`Fit` (ArviZ tree + attributes) that can be saved and loaded."""
    S = posterior.n_draws - posterior.n_draws % chains
    per_chain = S // chains
    law = posterior.law
    draws, dims = {}, {}
    for param in law.params:
        value = np.asarray(posterior.draws[param.name])[:S]
        draws[param.name] = value.reshape((chains, per_chain) + value.shape[1:])
        dims[param.name] = list(param.dims)
    sigma = np.asarray(posterior.sigma)[:S]
    draws["sigma"] = sigma.reshape(chains, per_chain, -1)
    dims["sigma"] = ["domain"]
    coords = {"domain": list(posterior.target_domains), "domain_j": list(posterior.target_domains)}
    idata = _az.from_draws(draws, dims, coords)
    attrs = {
        "bayesmix_type": "fit",
        "law": law.name,
        "law_options": law.options,
        "law_parametrization": law.parametrization,
        "priors": resolve_priors(law),
        "scaling": posterior.scaling.to_dict(),
        "domains": list(posterior.domains),
        "eval_domains": list(posterior.eval_domains),
        "fingerprint": "none",
        "source": source,
        "settings": {"sampler": "none (draws given)"},
        "diagnostics": {},
    }
    return Fit(idata, law, posterior.scaling, tuple(posterior.domains), attrs)
