"""The additive and joint data-mixture scaling laws of Shukor et al. (2025).

Additive (Eq. 2.4): ``L = E + 1 / sum_j C_j h_j^gamma_j + A/N^alpha + B/D^beta``.
Joint (Eq. 2.5): ``L = E + 1 / sum_j C_j h_j^gamma_j + A_h/N^alpha + B_h/D^beta`` with
``A_h = (sum_j C^A_j h_j)^gamma^A`` and ``B_h = (sum_j C^B_j h_j)^gamma^B``.

The paper fits one law per target domain; here every validation domain ``i`` has its own
row of coefficients (``C_ij``, ``gamma_ij``, ...), so matrices are ``(domain, domain_j)``
with the validation domain first and the training domain second.

Both laws are written in exact reparametrisations that centre the coefficients in the
data (see the class docstrings): the paper's coefficients are recovered by the formulas
given there. Coefficients referenced far from the data (``h_j = 1``) form long ridges
with their exponents in the posterior, which NUTS explores slowly.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import register
from .mixture_kernel import mixture_mean
from .base import (AMPLITUDE_PRIOR, DOMAIN, DOMAIN_J, EXPONENT_PRIOR, IRREDUCIBLE_LOSS,
                   MODEL_SIZE_EXPONENT, SIZE_TERM_PARAMS, Law, Param)

CITATION = (
    "Shukor, M., Bethune, L., Busbridge, D., Grangier, D., Fini, E., El-Nouby, A. and Ablin, P. "
    "Scaling Laws for Optimal Data Mixtures. arXiv:2507.09404 (v2, 2025), Sec. 2.2: additive law "
    "Eq. 2.4 and joint law Eq. 2.5."
)


def mixture_term(C, gamma, h):
    """``1 / mean_j C_ij (K h_j)^gamma_ij`` (the ``E_h`` part of Eqs. 2.4-2.5), ``(..., rows, K)``.

    The paper's ``1 / sum_j C^{paper}_j h_j^gamma_j`` with ``C^{paper}_ij = C_ij K^(gamma_ij - 1)``:
    ``C_ij`` is training domain j's contribution at the uniform share ``1/K``, relative to
    the mean over the ``K`` training domains, so that the term at the uniform mixture,
    ``1 / mean_j C_ij``, has a prior that does not shrink as domains are added. A training domain with
    ``h_j = 0`` contributes nothing, which is the law's own limit (``gamma > 0``); the
    power is computed on a safe value inside a switch so that the gradient with respect to
    ``gamma`` stays finite (``h^gamma log h`` is 0 * -inf at 0). The sum is positive for
    any mixture because the weights sum to one and ``C > 0``.
    """
    active = pt.gt(h, 0)
    log_share = pt.log(h.shape[-1] * pt.switch(active, h, 1.0))
    # log(C): where C is itself an exponential (its log-space sampler coordinate,
    # bayesmix.coordinates), PyTensor cancels the log.
    return 1.0 / mixture_mean(pt.log(C), gamma, log_share, active)


def mixed_amplitude(amplitude, C, gamma, h):
    """``A_h`` (or ``B_h``) of Eq. 2.5 as ``A_i (sum_j c_ij h_j)^gamma_i``, ``(..., rows, K)``.

    ``c_ij = C_ij / mean_j C_ij`` (rows of mean 1), so ``A_i`` is the amplitude at the
    uniform mixture; this is Eq. 2.5's ``(sum_j C^A_ij h_j)^gamma^A_i`` with
    ``C^A_ij = A_i^(1/gamma_i) c_ij``. Only the ratios within a row of ``C`` matter.
    """
    shape = C / pt.mean(C, axis=-1, keepdims=True)
    return amplitude * pt.exp(gamma * pt.log(pt.sum(shape * h[..., None, :], axis=-1)))


#: Version 2 (2026-12-06) averages the contributions where version 1 summed them
#: (``C_v2 = K C_v1``), with a prior centred on a mixture term of about 10% of the loss at
#: the uniform mixture for any number of domains. Version 1's LogNormal(0.5, 1) on each of
#: a sum of K contributions put that term at 2.3% for 17 domains, with a prior sd of only
#: 0.3 in log (the sum of 17 independent log-normals), against about 8% in the Pile 17
#: posterior: every row's contributions had to shrink together against their priors.
#: Measured on two Pile 17 folds (grouped 5-fold, 2 x (500 + 500)): held-out MRE on trained
#: cells 0.68% and 1.74% against 5.70% on the second fold with version 1.
_C = Param("C", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": 1.8, "sigma": 1.0},
           "contribution of training domain j (column) at the uniform share 1/K to the "
           "mixture term of validation domain i (row), relative to the row's mean, in units of "
           "1/reference loss; the term is 1/mean_j C_ij at the uniform mixture: median about 0.11 "
           "of the reference loss (90%: 0.06-0.17 for 17 domains, 0.05-0.29 for 4), whatever the "
           "number of domains")
_GAMMA = Param("gamma", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": -0.7, "sigma": 0.5},
               "exponent of h_j in the mixture term (median 0.5, 95% in (0.19, 1.3)); "
               "positive, so a domain with zero weight contributes nothing")
_BETA = Param("beta", (DOMAIN,), EXPONENT_PRIOR,
              "token exponent (median 0.3, 95% in (0.11, 0.8))")


def _amplitude_params(amplitude: str, term: str, reference: str) -> tuple[Param, Param, Param]:
    """The joint law's parameters of one mixed amplitude (:func:`mixed_amplitude`): its
    value at the uniform mixture (``A``), the training domains' relative weights in it
    (``C_A``) and its exponent (``gamma_A``); the model-size and token amplitudes have the
    same priors."""
    return (
        Param(amplitude, (DOMAIN,), AMPLITUDE_PRIOR,
              f"{term} term at {reference} for the uniform mixture, relative to the reference "
              "loss (median 0.2)"),
        Param(f"C_{amplitude}", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": 0.0, "sigma": 0.5},
              f"relative weight of training domain j in the {term} amplitude of domain i; "
              "only ratios within a row matter; a factor of e^(+-1) between domains at 95%"),
        Param(f"gamma_{amplitude}", (DOMAIN,), {"dist": "LogNormal", "mu": 0.0, "sigma": 0.3},
              f"exponent of the {term} amplitude; median 1 (the additive law), 95% in "
              "(0.55, 1.8)"),
    )


def _additive_example(n_domains, rng) -> dict:
    """The additive law's example parameters (the joint law's too, before its own):
    own data weighs most in the mixture term, about 0.1-0.5 nats across mixtures."""
    off_diagonal = ~np.eye(n_domains, dtype=bool)
    return {"E": rng.uniform(1.2, 2.0, n_domains),
            "A": rng.uniform(0.3, 0.7, n_domains), "alpha": rng.uniform(0.2, 0.5, n_domains),
            "B": rng.uniform(0.3, 0.7, n_domains), "beta": rng.uniform(0.2, 0.5, n_domains),
            "C": n_domains * np.where(off_diagonal, rng.uniform(0.3, 1.0, (n_domains, n_domains)),
                                      rng.uniform(2.5, 5.0, (n_domains, n_domains))),
            "gamma": rng.uniform(0.3, 0.7, (n_domains, n_domains))}


class ShukorBase(Law):
    """What the additive and joint laws share: the citation, the N and D terms, the level
    terms the sampler straightens, and the version of ``C``'s meaning."""

    citation = CITATION
    uses_model_size = True
    uses_tokens = True
    level_terms = ("E", "A", "B")
    share_terms = (("C", "gamma"),)
    parametrization = 2

    def upgrade_draws(self, draws: dict, version: int) -> dict:
        if version >= 2 or "C" not in draws:
            return draws
        C = np.asarray(draws["C"], dtype=float)
        return {**draws, "C": C * C.shape[-1]}  # a sum of K contributions -> their mean


@register
class AdditiveLaw(ShukorBase):
    """Additive data-mixture scaling law (Shukor et al. 2025, Eq. 2.4).

    ``L_i = E_i + 1 / mean_j C_ij (K h_j)^gamma_ij + A_i n^(-alpha_i) + B_i d^(-beta_i)``

    with ``n = N/N_ref`` and ``d = D/D_ref`` (total tokens, not the domain's own); the
    paper's ``C_j`` is ``C_ij K^(gamma_ij - 1)`` (see :func:`mixture_term`). Since the mixture
    term is separate from the scale terms, the best mixture does not depend on ``N`` or
    ``D``. A training domain with zero weight simply contributes nothing to the mixture
    term (the law's own limit).

    On a single-scale table ``E``, ``A`` and ``B`` add up to one constant and the
    exponents are informed by the priors only (``fit_law`` warns).
    """

    name = "additive"
    relative_cost = 12
    # Its K x K mixture coefficients make it the law with the most sampler coordinates
    # (680 on Pile 17), where the low-rank mass matrix's cost per leapfrog step outweighs
    # what it saves. Measured (2026-12-06, 2 x (500 + 500) on one core each, a comparison's
    # fold settings, Pile 17 grouped 5-fold fold 1, the two side by side): 375 gradients per
    # draw with either, 92 s against 195 s, bulk ESS 55 against 69, R-hat 1.04 against 1.03.
    # Pile 4 default fits (4 x 1000): diagonal passed the gate at 0.95 in 143 s (bulk ESS
    # 576); low-rank diverged there, was sampled again at 0.99 and ran on to 3000 draws
    # (180 s, ESS 292). SlimPajama <= 310M final checkpoints at the fold settings (179
    # coordinates): diagonal 779 gradients per draw against 293, yet 170 s against 143 s,
    # bulk ESS 90 against 24, R-hat 1.03 against 1.08.
    mass_matrix = "diag"
    # Tried on the same fold at the same settings (2026-12-07) and not kept: whitening by the
    # Laplace factor at the MAP, 501 gradients per draw against 366; a row-level coordinate
    # (each row's mean of log C at the typical share, the rest rotated into zero-sum
    # coordinates), 538.
    whitened_sampling = False
    title = "additive data-mixture scaling law (Shukor et al., Eq. 2.4)"
    params = (
        *SIZE_TERM_PARAMS,
        Param("B", (DOMAIN,), AMPLITUDE_PRIOR,
              "token term at D_ref, relative to the reference loss (median 0.2)"),
        _BETA,
        _C,
        _GAMMA,
    )

    def example_params(self, n_domains, rng):
        return _additive_example(n_domains, rng)

    def mean(self, p, h, n, d):
        size_term = p["A"] * pt.exp(-p["alpha"] * pt.log(n))
        token_term = p["B"] * pt.exp(-p["beta"] * pt.log(d))
        return p["E"] + mixture_term(p["C"], p["gamma"], h) + size_term + token_term


@register
class JointLaw(ShukorBase):
    """Joint data-mixture scaling law (Shukor et al. 2025, Eq. 2.5).

    ``L_i = E_i + 1 / mean_j C_ij (K h_j)^gamma_ij + A_h,i n^(-alpha_i) + B_h,i d^(-beta_i)``,
    ``A_h,i = A_i (sum_j a_ij h_j)^gamma^A_i``, ``B_h,i = B_i (sum_j b_ij h_j)^gamma^B_i``,

    with ``a_ij = C^A_ij / mean_j C^A_ij`` and likewise ``b`` from ``C^B``. This is Eq. 2.5
    with the amplitudes split into their value at the uniform mixture (``A_i``, ``B_i``)
    and their shape over mixtures: the paper's ``C^A_ij`` is ``A_i^(1/gamma^A_i) a_ij``
    (see :func:`mixed_amplitude`; the overall scale of a row of ``C^A`` has no effect and
    stays at its prior). Written as in the paper, ``C^A`` and ``gamma^A`` trade off along
    a ridge whenever the amplitude is far from 1.

    The mixture changes the size of the N and D terms, so the best mixture depends on the
    scale. With ``gamma^A = gamma^B = 1`` and constant rows of ``C^A`` and ``C^B`` the law
    reduces to the additive law; the priors on ``gamma^A`` and ``gamma^B`` are centred
    there. ``sum_j a_ij h_j`` is positive for every mixture, so zero weights need no
    special treatment beyond that of the mixture term.

    The law refuses a table with one model size and one token count
    (:attr:`one_scale_refusal`): there ``n`` and ``d`` are constants, the N and D terms
    are two copies of one function of the mixture with the same priors, and the
    posterior is symmetric under swapping them, with long curved ridges between the two
    blocks' shape matrices. Measured on a Pile 17 fold (``C``'s version 1; 30 runs at 1B parameters and 25B
    tokens): 1270-1660 s per fit (2 x (500+500), 637-983 of 1000 draws at the maximum
    tree depth) and still R-hat 1.08-1.16, against 90-210 s for the additive law, whose
    5-fold scores it only matched (ELPD 967 +- 119 against 1007 +- 73, MRE 3.97% against
    4.09%).
    """

    name = "joint"
    relative_cost = 100
    title = "joint data-mixture scaling law (Shukor et al., Eq. 2.5)"
    params = (
        IRREDUCIBLE_LOSS,
        MODEL_SIZE_EXPONENT,
        _BETA,
        _C,
        _GAMMA,
        *_amplitude_params("A", "model-size", "N_ref"),
        *_amplitude_params("B", "token", "D_ref"),
    )
    one_scale_refusal = (
        "its N and D terms are then two interchangeable functions of the mixture that the "
        "data cannot tell apart, and NUTS cannot explore the symmetric posterior they make; "
        "add runs at a second model size or token count, or fit the 'additive' law"
    )

    def example_params(self, n_domains, rng):
        params = _additive_example(n_domains, rng)
        # Amplitudes vary by up to a factor ~2 over mixtures.
        params["C_A"] = rng.uniform(0.5, 1.5, (n_domains, n_domains))
        params["gamma_A"] = rng.uniform(0.8, 1.25, n_domains)
        params["C_B"] = rng.uniform(0.5, 1.5, (n_domains, n_domains))
        params["gamma_B"] = rng.uniform(0.8, 1.25, n_domains)
        return params

    def mean(self, p, h, n, d):
        size_term = mixed_amplitude(p["A"], p["C_A"], p["gamma_A"], h) * pt.exp(-p["alpha"] * pt.log(n))
        token_term = mixed_amplitude(p["B"], p["C_B"], p["gamma_B"], h) * pt.exp(-p["beta"] * pt.log(d))
        return p["E"] + mixture_term(p["C"], p["gamma"], h) + size_term + token_term
