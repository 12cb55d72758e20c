"""Chinchilla law per domain on the domain's own tokens, without transfer between domains.

``L_i(h, N, D) = E_i + A_i N^(-alpha_i) + B_i (D h_i)^(-beta_i)``
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import register
from .base import (EXAMPLE_LEFT_OUT_SHARE, LEFT_OUT_SHARE, MIN_POSITIVE_WEIGHT, SIZE_TERM_PARAMS, Law,
                   own_data_params, own_data_term, with_left_out_share)

CITATION = (
    "Hoffmann, J. et al. Training Compute-Optimal Large Language Models. NeurIPS 2022 "
    "(arXiv:2203.15556), Sec. 3.3, Eq. 2: L(N, D) = E + A/N^alpha + B/D^beta; applied to each "
    "domain with D replaced by the domain's own tokens D*h_i (no transfer between domains)."
)


@register
class ChinchillaDomainLaw(Law):
    """Per-domain Chinchilla law on the domain's own tokens (Hoffmann et al. 2022, Eq. 2).

    ``L_i = E_i + A_i n^(-alpha_i) + B_i (K d h_i)^(-beta_i)``, ``n = N/N_ref``,
    ``d = D/D_ref``.

    A baseline without transfer: domain ``i``'s loss depends on the mixture only through
    its own tokens ``D h_i``. They are measured against ``D_ref / K``, the domain's tokens
    under the uniform mixture at the reference scale, so that ``B_i`` is the data term in
    the middle of the data (referencing ``D_ref`` itself, far above a typical domain's own
    tokens, makes ``B_i`` and ``beta_i`` one long ridge in the posterior). This is a
    reparametrisation of the same law (``B^{Eq.2}_i = B_i (D_ref / K)^beta_i``).

    Zero weights: the law diverges as ``h_i -> 0+``. A domain a run leaves out is given
    the fitted share ``h0`` (:data:`LEFT_OUT_SHARE`, this project's extension; the law at
    every positive weight is Eq. 2's), so its loss is a prediction the left-out cells
    inform, not a convention. It is still not the limit as ``h_i -> 0+``: a mixture
    optimiser keeps to :data:`MIN_POSITIVE_WEIGHT` or 0. A fit saved before it (``h0 = 0``,
    parametrization 1) keeps the convention it was fitted with: the data term is dropped
    at ``h_i = 0``.
    """

    name = "chinchilla_domain"
    min_positive_weight = MIN_POSITIVE_WEIGHT
    parametrization = 2  # 2: the left-out share h0 (absent, i.e. 0, in fits saved before)
    relative_cost = 1
    title = "per-domain Chinchilla law on the domain's own tokens"
    citation = CITATION
    uses_model_size = True
    uses_tokens = True
    params = (
        *SIZE_TERM_PARAMS,
        *own_data_params("B", "beta", "data term"),
        LEFT_OUT_SHARE,
    )

    level_terms = ("E", "A", "B")
    irreducible_loss = "E"

    def example_params(self, n_domains, rng):
        return {"E": rng.uniform(0.8, 2.2, n_domains), "A": rng.uniform(0.4, 1.0, n_domains),
                "alpha": rng.uniform(0.2, 0.5, n_domains), "B": rng.uniform(0.15, 0.4, n_domains),
                "beta": rng.uniform(0.2, 0.5, n_domains), "h0": np.array(EXAMPLE_LEFT_OUT_SHARE)}

    def upgrade_draws(self, draws, version):
        return with_left_out_share(draws, version)

    def mean(self, p, h, n, d):
        size_term = p["A"] * pt.exp(-p["alpha"] * pt.log(n))
        return p["E"] + size_term + own_data_term(p["B"], p["beta"], h, d, left_out_share=p["h0"])
