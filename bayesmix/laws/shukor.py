"""The additive and joint data-mixture scaling laws of Shukor et al. (2025).

Additive (Eq. 2.4): ``L = E + 1 / sum_j C_j h_j^gamma_j + A/N^alpha + B/D^beta``.
Joint (Eq. 2.5): ``L = E + 1 / sum_j C_j h_j^gamma_j + A_h/N^alpha + B_h/D^beta`` with
``A_h = (sum_j C^A_j h_j)^gamma^A`` and ``B_h = (sum_j C^B_j h_j)^gamma^B``.

The paper fits one law per target domain; here every validation domain ``i`` has its own
row of coefficients (``C_ij``, ``gamma_ij``, ...), so matrices are ``(domain, domain_j)``
with the validation domain first and the training domain second.
"""

from __future__ import annotations

import pytensor.tensor as pt

from . import register
from .base import DOMAIN, DOMAIN_J, Law, Param

CITATION = (
    "Shukor, M., Bethune, L., Busbridge, D., Grangier, D., Fini, E., El-Nouby, A. and Ablin, P. "
    "Scaling Laws for Optimal Data Mixtures. arXiv:2507.09404 (v2, 2025), Sec. 2.2: additive law "
    "Eq. 2.4 and joint law Eq. 2.5."
)


def mixture_term(C, gamma, h):
    """``1 / sum_j C_ij h_j^gamma_ij`` (the ``E_h`` part of Eqs. 2.4-2.5), ``(..., rows, K)``.

    A training domain with ``h_j = 0`` contributes nothing, which is the law's own limit
    (``gamma > 0``); the power is computed on a safe value inside a switch so that the
    gradient with respect to ``gamma`` stays finite (``h^gamma log h`` is 0 * -inf at 0).
    The sum is positive for any mixture because the weights sum to one and ``C > 0``.
    """
    h_j = h[..., None, :]
    active = pt.gt(h_j, 0)
    powered = pt.switch(active, pt.exp(gamma * pt.log(pt.switch(active, h_j, 1.0))), 0.0)
    return 1.0 / pt.sum(C * powered, axis=-1)


def _mixed_amplitude(C, gamma, h):
    """``(sum_j C_ij h_j)^gamma_i`` (``A_h`` and ``B_h`` of Eq. 2.5), ``(..., rows, K)``."""
    return pt.exp(gamma * pt.log(pt.sum(C * h[..., None, :], axis=-1)))


_E = Param("E", (DOMAIN,), {"dist": "Beta", "alpha": 3.0, "beta": 2.0},
           "irreducible loss as a fraction of the domain's reference loss; Beta(3, 2) keeps it "
           "below the typical observed loss (mean 0.6)")
_C = Param("C", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": 1.5, "sigma": 1.0},
           "weight of training domain j (column) in the mixture term of validation domain i "
           "(row), in units of 1/reference loss; median 4.5 puts the mixture term at about "
           "5-15% of the loss for a uniform mixture of 4-17 domains")
_GAMMA = Param("gamma", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": -0.7, "sigma": 0.5},
               "exponent of h_j in the mixture term (median 0.5, 95% in (0.19, 1.3)); "
               "positive, so a domain with zero weight contributes nothing")
_ALPHA = Param("alpha", (DOMAIN,), {"dist": "LogNormal", "mu": -1.2, "sigma": 0.5},
               "model-size exponent (median 0.3, 95% in (0.11, 0.8)); bounded away from 0 where "
               "the term would turn into a constant indistinguishable from E")
_BETA = Param("beta", (DOMAIN,), {"dist": "LogNormal", "mu": -1.2, "sigma": 0.5},
              "token exponent (median 0.3, 95% in (0.11, 0.8))")


@register
class AdditiveLaw(Law):
    """Additive data-mixture scaling law (Shukor et al. 2025, Eq. 2.4).

    ``L_i = E_i + 1 / sum_j C_ij h_j^gamma_ij + A_i n^(-alpha_i) + B_i d^(-beta_i)``

    with ``n = N/N_ref`` and ``d = D/D_ref`` (total tokens, not the domain's own). Since the
    mixture term is separate from the scale terms, the best mixture does not depend on
    ``N`` or ``D``. A training domain with zero weight simply contributes nothing to the
    mixture term (the law's own limit, see :func:`mixture_term`).

    On a single-scale table ``E``, ``A`` and ``B`` add up to one constant and the
    exponents are informed by the priors only (``fit_law`` warns).
    """

    name = "additive"
    title = "additive data-mixture scaling law (Shukor et al., Eq. 2.4)"
    citation = CITATION
    uses_model_size = True
    uses_tokens = True
    params = (
        _E,
        Param("A", (DOMAIN,), {"dist": "LogNormal", "mu": -1.6, "sigma": 1.0},
              "model-size term at N_ref, relative to the reference loss (median 0.2)"),
        _ALPHA,
        Param("B", (DOMAIN,), {"dist": "LogNormal", "mu": -1.6, "sigma": 1.0},
              "token term at D_ref, relative to the reference loss (median 0.2)"),
        _BETA,
        _C,
        _GAMMA,
    )

    def mean(self, p, h, n, d):
        size_term = p["A"] * pt.exp(-p["alpha"] * pt.log(n))
        token_term = p["B"] * pt.exp(-p["beta"] * pt.log(d))
        return p["E"] + mixture_term(p["C"], p["gamma"], h) + size_term + token_term


@register
class JointLaw(Law):
    """Joint data-mixture scaling law (Shukor et al. 2025, Eq. 2.5).

    ``L_i = E_i + 1 / sum_j C_ij h_j^gamma_ij + A_h,i n^(-alpha_i) + B_h,i d^(-beta_i)``,
    ``A_h,i = (sum_j C^A_ij h_j)^gamma^A_i``, ``B_h,i = (sum_j C^B_ij h_j)^gamma^B_i``.

    The mixture changes the size of the N and D terms, so the best mixture depends on the
    scale. With ``gamma^A = gamma^B = 1`` and constant rows of ``C^A`` and ``C^B`` the law
    reduces to the additive law; the priors on ``gamma^A`` and ``gamma^B`` are centred
    there. ``sum_j C^A_ij h_j`` is positive for every mixture, so zero weights need no
    special treatment beyond that of the mixture term.
    """

    name = "joint"
    title = "joint data-mixture scaling law (Shukor et al., Eq. 2.5)"
    citation = CITATION
    uses_model_size = True
    uses_tokens = True
    params = (
        _E,
        _ALPHA,
        _BETA,
        _C,
        _GAMMA,
        Param("C_A", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": -1.6, "sigma": 1.0},
              "contribution of training domain j to the model-size amplitude of domain i, "
              "relative to the reference loss (median 0.2, as A of the additive law)"),
        Param("gamma_A", (DOMAIN,), {"dist": "LogNormal", "mu": 0.0, "sigma": 0.3},
              "exponent of the model-size amplitude; median 1 (the additive law), 95% in "
              "(0.55, 1.8)"),
        Param("C_B", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": -1.6, "sigma": 1.0},
              "contribution of training domain j to the token amplitude of domain i, relative "
              "to the reference loss (median 0.2)"),
        Param("gamma_B", (DOMAIN,), {"dist": "LogNormal", "mu": 0.0, "sigma": 0.3},
              "exponent of the token amplitude; median 1 (the additive law)"),
    )

    def mean(self, p, h, n, d):
        size_term = _mixed_amplitude(p["C_A"], p["gamma_A"], h) * pt.exp(-p["alpha"] * pt.log(n))
        token_term = _mixed_amplitude(p["C_B"], p["gamma_B"], h) * pt.exp(-p["beta"] * pt.log(d))
        return p["E"] + mixture_term(p["C"], p["gamma"], h) + size_term + token_term
