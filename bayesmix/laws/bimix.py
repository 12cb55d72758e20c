"""BiMix, the bivariate data mixing law of Ge et al. (2025).

``L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i)``: the loss of domain ``i``
depends on its own proportion ``r_i`` and on the amount of training ``s``; there is no
model-size term and no transfer between domains.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import register
from .base import (AMPLITUDE_PRIOR, DOMAIN, EXAMPLE_LEFT_OUT_SHARE, EXPONENT_PRIOR, IRREDUCIBLE_LOSS_PRIOR,
                   LEFT_OUT_SHARE, MIN_POSITIVE_WEIGHT, Law, Param, own_share_power, with_left_out_share)

CITATION = (
    "Ge, C., Ma, Z., Chen, D., Li, Y. and Ding, B. BiMix: Bivariate Data Mixing Law for Language "
    "Model Pretraining. arXiv:2405.14908 (v4, 2025), Sec. 3.1, Eq. 3: "
    "L_i(r_i, s) = A_i / r_i^alpha_i * (B_i / s^beta_i + C_i)."
)


@register
class BiMixLaw(Law):
    """BiMix (Ge et al., arXiv:2405.14908, Sec. 3.1, Eq. 3).

    ``L_i(h, D) = (K h_i)^(-alpha_i) * (B_i d^(-beta_i) + C_i)``, ``d = D / D_ref``.

    Eq. 3 uses training steps ``s``; at a fixed batch size they are proportional to the
    tokens ``D``, and the constant is absorbed in ``B_i``. Only the products ``A_i B_i`` and
    ``A_i C_i`` of Eq. 3 are identifiable, so ``A_i`` is absorbed too and the proportion is
    measured against the uniform share ``1/K``: ``B_i + C_i`` is the loss at the uniform
    share and the reference token count, relative to the reference loss. The function
    family is exactly that of Eq. 3 (``A_i = K^(-alpha_i)`` times the scale absorbed).

    Zero weights: Eq. 3 gives an infinite loss at ``h_i = 0``. A domain a run leaves out
    is given the fitted share ``h0`` (:data:`LEFT_OUT_SHARE`, this project's extension;
    the law at every positive weight is Eq. 3's), so its loss is a prediction the
    left-out cells inform, not a convention. It is still not the limit as ``h_i -> 0+``:
    a mixture optimiser keeps to :data:`MIN_POSITIVE_WEIGHT` or 0. A fit saved before it
    (``h0 = 0``, parametrization 1) keeps the convention it was fitted with: the
    proportion factor is dropped at ``h_i = 0`` (the uniform share's loss).

    ``C_i + B_i`` is the loss at the uniform share and ``D_ref``; on one token count only
    that sum is identified (``level_terms``: the sampler works in level coordinates, see
    :mod:`bayesmix.coordinates`).

    No model-size term (``uses_model_size = False``): tables with several model sizes are
    refused by :meth:`Law.check_table`; several token counts are fine.
    """

    name = "bimix"
    min_positive_weight = MIN_POSITIVE_WEIGHT
    parametrization = 2  # 2: the left-out share h0 (absent, i.e. 0, in fits saved before)
    relative_cost = 1
    title = "BiMix bivariate data mixing law (Ge et al., Eq. 3)"
    citation = CITATION
    uses_tokens = True
    level_terms = ("C", "B")
    params = (
        Param("alpha", (DOMAIN,), {"dist": "LogNormal", "mu": -2.3, "sigma": 1.0},
              "exponent of the domain's own proportion; median 0.1, 95% in (0.014, 0.7): "
              "a five-fold change of share moves the loss by a few to tens of percent"),
        Param("B", (DOMAIN,), AMPLITUDE_PRIOR,
              "token term at the uniform share and D_ref, relative to the reference loss "
              "(median 0.2)"),
        Param("beta", (DOMAIN,), EXPONENT_PRIOR,
              "token exponent (median 0.3, 95% in (0.11, 0.8)), as in Chinchilla-type fits"),
        Param("C", (DOMAIN,), IRREDUCIBLE_LOSS_PRIOR,
              "loss left at infinite tokens at the uniform share, relative to the reference loss "
              "(the geometric mean of all observed losses, shared by the domains); median 0.6, "
              "90% in (0.2, 1.6), as domains' losses range from about 0.5 to 1.5 of the reference"),
        LEFT_OUT_SHARE,
    )

    def upgrade_draws(self, draws, version):
        return with_left_out_share(draws, version)

    def example_params(self, n_domains, rng):
        return {"alpha": rng.uniform(0.05, 0.2, n_domains), "B": rng.uniform(0.3, 0.8, n_domains),
                "beta": rng.uniform(0.2, 0.5, n_domains), "C": rng.uniform(1.5, 2.5, n_domains),
                "h0": np.array(EXAMPLE_LEFT_OUT_SHARE)}

    def mean(self, p, h, n, d):
        proportion_factor = own_share_power(h, p["alpha"], left_out_share=p["h0"], where_none=1.0)
        token_term = p["B"] * pt.exp(-p["beta"] * pt.log(d))
        return proportion_factor * (token_term + p["C"])
