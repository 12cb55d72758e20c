"""Sampling coordinates: an exact change of variables that straightens the posterior.

A law's additive terms at the reference point (for ``capacity_noise``: the irreducible
loss ``E_i``, the capacity term ``c_i`` and the noise term ``A_i``) add up to a domain's
loss there, which the data pin down far better than the split between them. In the
natural coordinates ``(log E_i, log c_i, log A_i)`` the posterior is a thin, curved
shell around ``E_i + c_i + A_i = const``; no mass matrix (diagonal, dense or low-rank)
fits a curved shell. Measured on the Pile 17-domain runs with ``capacity_noise``: the
posterior sd of ``log(E_i + c_i + A_i)`` is 0.02-0.07 against 0.1-0.9 for the parts,
and nutpie needed 620-825 gradient evaluations per draw.

Level coordinates sample instead, per domain,

* ``log_level_i = log(sum_k T_ki)``, the log of the terms' sum, and
* ``log_ratio_<T>_i = log(T_ki / T_0i)`` for every term after the first,

where ``T_0, T_1, ...`` are the law's :attr:`~bayesmix.laws.Law.level_terms`. The map
from ``(log T_0, log T_1, ...)`` to these coordinates has Jacobian determinant 1, so the
density in the new coordinates is the declared priors' density of the log-parameters
(``log p(T) + log T`` per term), added as a potential: the posterior is exactly the
same, only the sampler's coordinates change. On the same runs nutpie then needs about
100 gradients per draw. The terms themselves are recorded as deterministics under
their usual names, so posteriors, predictions and saved fits do not change.

Where the design varies N and D independently the data also tell the terms apart by
their scaling, but the loss at the reference point is still pinned down best, and level
coordinates still sample better (``build_model(coordinates="auto")`` uses them on every
design; "natural" remains on request). Measured, 2 chains, capacity laws whitened:

* Pile 4 (3 model sizes, 6 token counts), ``capacity_noise``, 2 x (500+500), three
  seeds: 10-12 s of sampling against 46-47 s, 34-35 gradients per draw against
  165-185, 0-1 divergences against 2-10, min bulk ESS 64-86 against 102-121;
  ``additive`` 105 against 279 gradients per draw (ESS 203 against 160),
  ``chinchilla_domain`` 15 against 169 (ESS 179 against 141).
* The recovery tests' simulated design (4 sizes x 2 tokens-per-parameter ratios, 3
  domains), ``capacity_noise``, 2 x (400+400), 20 fits (2 data sets x 10 seeds): max
  R-hat at most 1.04 in all 20 against 1.05-1.21 in 8 of 20, median min bulk ESS 174
  against 64, divergences in 2 fits against 7, about half the sampling time.

Typical-share coordinates do the same for a law's mixture coefficients
(:attr:`~bayesmix.laws.Law.share_terms`): a term ``C_ij (K h_j)^gamma_ij`` with ``C``
defined at the uniform share ``1/K`` is pinned down by the data at the shares the runs
actually gave domain ``j``, often far from ``1/K`` (Pile 17: a typical positive share of
0.05/K to 3/K), so ``log C_ij`` and ``gamma_ij`` trade off along a ridge. The sampler
works in ``u_ij = log C_ij + gamma_ij m_j``, the log of the term at the table's typical
share (``m_j`` is the mean of ``log(K h_j)`` over the runs that give ``j`` a positive
weight), and ``gamma``: a shear with Jacobian determinant 1, so the declared priors'
density enters as a potential and the posterior is the same. Measured on the Pile 17
comparison's five folds (additive law, 2 x (500 + 500) on one core each, each fold's two
fits side by side with the same seed): 312-465 gradients per draw against 371-709 (1788
against 2403 in all), 571 s of sampling against 747, bulk ESS 25-169 against 21-121
(363 against 312 in all), max R-hat 1.07 in either.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .laws import DOMAIN, DOMAIN_J, Law
from .priors import make_dist, prior_draws

#: Prior families with support on the positive half-line: the log change of variables
#: needs it. A law whose level terms have another prior is sampled in natural coordinates.
POSITIVE_DISTRIBUTIONS = frozenset({
    "LogNormal", "Lognormal", "HalfNormal", "HalfCauchy", "HalfStudentT", "Gamma",
    "InverseGamma", "Exponential", "Weibull", "HalfFlat",
})

LEVEL = "log_level"

#: Name of the model's data: the typical log share ``m_j`` of each training domain.
TYPICAL_LOG_SHARE = "typical_log_share"


def ratio_name(term: str) -> str:
    """Name of the free variable ``log(term / first term)``."""
    return f"log_ratio_{term}"


def uses_level_coordinates(law: Law, priors: dict) -> bool:
    """Whether ``law`` with these (resolved) priors is sampled in level coordinates."""
    terms = tuple(getattr(law, "level_terms", ()))
    if len(terms) < 2:
        return False
    return all(law.param(t).dims == (DOMAIN,) and priors[t]["dist"] in POSITIVE_DISTRIBUTIONS
               for t in terms)


def _log_density_of_log(spec: dict, log_x):
    """``log p(x) + log x``: the prior density of ``log x`` for a positive prior ``p``."""
    return pm.logp(make_dist(spec), pt.exp(log_x)) + log_x


def _prior_median_log(spec: dict) -> float:
    """A central value of ``log x`` under the prior (exact for LogNormal)."""
    if spec["dist"] in ("LogNormal", "Lognormal"):
        return float(spec.get("mu", 0.0))
    return float(np.median(np.log(prior_draws(spec, 2001))))


def level_initial_values(law: Law, priors: dict, level_guess: np.ndarray) -> dict:
    """Initial values: the level from the data, the ratios at the priors' medians."""
    terms = law.level_terms
    first = _prior_median_log(priors[terms[0]])
    out = {LEVEL: np.asarray(level_guess, dtype=float)}
    for term in terms[1:]:
        out[ratio_name(term)] = np.full(len(level_guess), _prior_median_log(priors[term]) - first)
    return out


def add_level_terms(law: Law, priors: dict, level_guess: np.ndarray) -> dict:
    """Create the level coordinates in the current PyMC model; return the terms.

    Parameters
    ----------
    law : Law
        A law with :attr:`level_terms` (see :func:`uses_level_coordinates`).
    priors : dict
        Resolved priors; the terms' priors enter as one potential.
    level_guess : array (K,)
        Initial ``log_level`` per domain (e.g. the log of the domain's typical loss in
        reference units).

    Returns
    -------
    dict of str to TensorVariable
        The level terms by name, as deterministics with dims ``domain``.
    """
    terms = law.level_terms
    init = level_initial_values(law, priors, level_guess)
    level = pm.Flat(LEVEL, dims=DOMAIN, initval=init[LEVEL])
    ratios = [pm.Flat(ratio_name(t), dims=DOMAIN, initval=init[ratio_name(t)]) for t in terms[1:]]
    # log T_0 = level - log(1 + sum_k exp(ratio_k)), computed stably.
    stacked = pt.stack([pt.zeros_like(level)] + ratios, axis=0)
    log_first = level - pt.logsumexp(stacked, axis=0)
    logs = [log_first] + [log_first + r for r in ratios]
    pm.Potential("level_terms_prior", sum(_log_density_of_log(priors[t], lg).sum()
                                          for t, lg in zip(terms, logs)))
    return {t: pm.Deterministic(t, pt.exp(lg), dims=DOMAIN) for t, lg in zip(terms, logs)}


def to_level_coordinates(law: Law, values: dict) -> dict:
    """Map natural values of the level terms (e.g. a warm start) to level coordinates.

    Entries other than the level terms pass through unchanged.
    """
    terms = law.level_terms
    if not all(t in values for t in terms):
        return dict(values)
    out = {k: v for k, v in values.items() if k not in terms}
    parts = [np.asarray(values[t], dtype=float) for t in terms]
    out[LEVEL] = np.log(np.sum(parts, axis=0))
    for term, part in zip(terms[1:], parts[1:]):
        out[ratio_name(term)] = np.log(part) - np.log(parts[0])
    return out


def share_name(coefficient: str) -> str:
    """Name of the free variable ``log coefficient + exponent * m`` (typical-share coordinates)."""
    return f"log_{coefficient}_at_typical_share"


def uses_share_coordinates(law: Law, priors: dict) -> bool:
    """Whether ``law`` with these (resolved) priors samples its share terms in typical-share
    coordinates: every coefficient needs a prior on the positive half-line."""
    return bool(law.share_terms) and all(priors[coefficient]["dist"] in POSITIVE_DISTRIBUTIONS
                                         for coefficient, _ in law.share_terms)


def typical_log_share(weights) -> np.ndarray:
    """``m_j``: the mean of ``log(K h_j)`` over the rows with ``h_j > 0``; 0 (the uniform
    share) for a domain no row trains on.

    Parameters
    ----------
    weights : array (rows, K)

    Returns
    -------
    array (K,)
    """
    weights = np.asarray(weights, dtype=float)
    positive = weights > 0
    logs = np.where(positive, np.log(np.where(positive, weights * weights.shape[1], 1.0)), 0.0)
    counts = positive.sum(axis=0)
    return np.where(counts > 0, logs.sum(axis=0) / np.maximum(counts, 1), 0.0)


def add_share_terms(law: Law, priors: dict, exponents: dict, weights) -> dict:
    """Create the typical-share coordinates in the current PyMC model; return the coefficients.

    Parameters
    ----------
    law : Law
        A law with :attr:`~bayesmix.laws.Law.share_terms` (see :func:`uses_share_coordinates`).
    priors : dict
        Resolved priors; the coefficients' priors enter as one potential.
    exponents : dict of str to TensorVariable
        The exponents of the share terms, already in the model.
    weights : array (rows, K)
        The table's mixtures (:func:`typical_log_share`).

    Returns
    -------
    dict of str to TensorVariable
        The coefficients by name, as deterministics with dims ``(domain, domain_j)``.
    """
    share = typical_log_share(weights)
    # Shared data, not a constant: compiled code serves every table of the same shape.
    m = pm.Data(TYPICAL_LOG_SHARE, share, dims=DOMAIN_J)
    out = {}
    for coefficient, exponent in law.share_terms:
        initial = _prior_median_log(priors[coefficient]) + _prior_median(priors[exponent]) * share
        u = pm.Flat(share_name(coefficient), dims=(DOMAIN, DOMAIN_J),
                    initval=np.broadcast_to(initial, (len(share), len(share))).copy())
        log_coefficient = u - exponents[exponent] * m[None, :]
        pm.Potential(f"{coefficient}_prior", _log_density_of_log(priors[coefficient], log_coefficient).sum())
        out[coefficient] = pm.Deterministic(coefficient, pt.exp(log_coefficient), dims=(DOMAIN, DOMAIN_J))
    return out


def _prior_median(spec: dict) -> float:
    return float(np.median(prior_draws(spec, 2001)))


def to_share_coordinates(law: Law, values: dict, share: np.ndarray) -> dict:
    """Map natural values of the share terms (e.g. a warm start) to typical-share
    coordinates, with the table's typical log shares ``share``; other entries pass
    through unchanged."""
    out = dict(values)
    for coefficient, exponent in law.share_terms:
        if coefficient in values and exponent in values:
            del out[coefficient]
            out[share_name(coefficient)] = (np.log(np.asarray(values[coefficient], dtype=float))
                                            + np.asarray(values[exponent], dtype=float) * share[None, :])
    return out


def to_sampler_coordinates(law: Law, model: pm.Model, values: dict) -> dict:
    """Natural values (e.g. a warm start) in the coordinates ``model`` samples: level
    and typical-share coordinates where the model uses them."""
    if LEVEL in model.named_vars:
        values = to_level_coordinates(law, values)
    if TYPICAL_LOG_SHARE in model.named_vars:
        values = to_share_coordinates(law, values, np.asarray(model[TYPICAL_LOG_SHARE].get_value()))
    return values
