"""Exponential data mixing law of Ye et al. (2024/2025).

``L_i(h) = c_i + k_i * exp(sum_j t_ij h_j)`` for a model of fixed size trained for a fixed
number of tokens; the law has no model-size or token term.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import register
from .base import AMPLITUDE_PRIOR, DOMAIN, DOMAIN_J, Law, Param

CITATION = (
    "Ye, J., Liu, P., Sun, T., Zhan, J., Zhou, Y. and Qiu, X. Data Mixing Laws: Optimizing Data "
    "Mixtures by Predicting Language Modeling Performance. ICLR 2025 (arXiv:2403.16952), "
    "Sec. 3.2, Eq. 7: L_i(r_1..M) = c_i + k_i exp(sum_j t_ij r_j)."
)


@register
class ExponentialLaw(Law):
    """Exponential data mixing law (Ye et al., ICLR 2025, Sec. 3.2, Eq. 7).

    ``L_i(h) = c_i + k_i exp(sum_j t_ij (h_j - 1/K))``

    This is Eq. 7 written with the weights centred on the uniform mixture. Because the
    weights sum to one, ``k_i`` and the row mean of ``t_i`` form a single degree of freedom
    in Eq. 7 (adding ``delta`` to every ``t_ij`` multiplies the exponential by
    ``e^delta``), a ridge in the posterior. Centring turns that direction into one the
    mean does not depend on at all (the posterior of the row mean is its prior, which the
    sampler explores without trouble), so ``k_i`` is identified as the mixture-reducible
    loss at the uniform mixture, and only the within-row contrasts of ``t`` are
    identified. The function family is exactly that of Eq. 7
    (``k_i^{Eq.7} = k_i exp(-sum_j t_ij / K)``).

    ``c_i + k_i`` is the loss at the uniform mixture, which the data pin down far better
    than its split (``level_terms``): the sampler works in level coordinates, see
    :mod:`bayesmix.coordinates`.

    The law describes one model size and one token count: it has no N or D term
    (``uses_model_size = uses_tokens = False``), so :meth:`Law.check_table` refuses tables
    with several scales. Zero weights need no special treatment (``exp`` is finite there).
    """

    name = "exponential"
    relative_cost = 3
    # Its K x K interactions (340 sampler coordinates on Pile 17) make the low-rank mass
    # matrix's cost per leapfrog step dearer than the steps it saves. Measured (2026-12-06,
    # Pile 17, default fit 4 x 1000, seed 0, one after the other): diagonal 305 gradients
    # per draw and 61 s of sampling, bulk/tail ESS 305/855, R-hat 1.01; low-rank 63 and
    # 143 s, 341/387, R-hat 1.01. The comparison's fold settings (2 x (500 + 500), one core,
    # grouped 5-fold fold 0): 25 s against 98 s (R-hat 1.04 against 1.84 in that run),
    # folds 1-4 diagonal 20-24 s, R-hat 1.02-1.05.
    mass_matrix = "diag"
    title = "exponential data mixing law (Ye et al., Eq. 7)"
    citation = CITATION
    level_terms = ("c", "k")
    params = (
        Param("c", (DOMAIN,), {"dist": "LogNormal", "mu": -0.2, "sigma": 0.5},
              "loss that no mixture removes at the table's scale, relative to the reference loss "
              "(the geometric mean of all observed losses, shared by the domains); median 0.8, "
              "90% in (0.36, 1.9): most of a domain's loss, whose typical value ranges from "
              "about 0.5 (code) to 1.5 (books) of the reference"),
        Param("k", (DOMAIN,), AMPLITUDE_PRIOR,
              "mixture-reducible loss at the uniform mixture, relative to the reference loss; "
              "median 0.2, 95% in (0.03, 1.4): mixtures typically move losses by 5-30%"),
        Param("t", (DOMAIN, DOMAIN_J), {"dist": "Normal", "mu": 0.0, "sigma": 2.0},
              "interaction of training domain j (column) with validation domain i (row): "
              "t_ij < t_ik means domain j's data lowers domain i's loss more than domain k's. "
              "Only differences within a row matter (the row mean has no effect, see the class "
              "docstring); sd 2 lets moving the whole mixture to one domain change the "
              "reducible loss by a factor up to about e^2"),
    )

    def example_params(self, n_domains, rng):
        # Own data lowers a domain's loss (t_ii < 0), other domains interact weakly.
        off_diagonal = ~np.eye(n_domains, dtype=bool)
        t = np.where(off_diagonal, rng.uniform(-0.5, 0.5, (n_domains, n_domains)),
                     rng.uniform(-3.0, -1.5, (n_domains, n_domains)))
        return {"c": rng.uniform(1.6, 2.6, n_domains), "k": rng.uniform(0.2, 0.5, n_domains),
                "t": t - t.mean(axis=1, keepdims=True)}  # rows sum to zero, as the prior

    def mean(self, p, h, n, d):
        centred = h - 1.0 / h.shape[-1]
        exponent = pt.sum(p["t"] * centred[..., None, :], axis=-1)
        return p["c"] + p["k"] * pt.exp(exponent)
