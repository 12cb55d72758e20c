"""Bayesian linear regression of the loss on the mixture (RegMix's linear baseline).

``L_i = (sum_j W_ij h_j) * n^w_n,i * d^w_d,i``: linear in the mixture at the reference
scale, with log N and log D terms on the log-loss scale.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import register
from .base import DOMAIN, DOMAIN_J, Law, Param

CITATION = (
    "Liu, Q., Zheng, X., Muennighoff, N., Zeng, G., Dou, L., Pang, T., Jiang, J. and Lin, M. "
    "RegMix: Data Mixture as Regression for Language Model Pre-training. ICLR 2025 "
    "(arXiv:2407.01492), Sec. 3: the linear-regression model of the loss on the mixture "
    "weights; here Bayesian, with log N and log D terms added."
)


@register
class LinearLaw(Law):
    """Linear regression of the loss on the mixture (RegMix, Liu et al., ICLR 2025, Sec. 3).

    ``L_i = (sum_j W_ij h_j) exp(w_n,i log n + w_d,i log d)``, ``n = N/N_ref``,
    ``d = D/D_ref``.

    At the reference scale this is RegMix's linear regression of the loss on the mixture
    weights. Because the weights sum to one, an intercept is not identifiable next to
    ``W``; it is folded into ``W``, so ``W_ij`` is the loss (relative to the reference
    loss) the regression predicts for a model trained on domain ``j`` alone. The scale
    terms are not part of RegMix: on a single-scale table ``log n = log d = 0`` and they
    drop out (their priors are centred at 0, so they stay harmless there). They enter as
    a log-linear trend of the log-loss, which keeps the loss positive at any scale (an
    additive ``w log n`` term can turn it negative, where the log-normal likelihood is
    undefined); it is a crude trend, not a scaling law, and should not be extrapolated
    far. Zero weights need no special treatment.
    """

    name = "linear"
    relative_cost = 1
    title = "Bayesian linear regression on the mixture (RegMix linear baseline)"
    citation = CITATION
    uses_model_size = True
    uses_tokens = True
    log_linear_trends = ("log_n", "log_d")
    # Measured on Pile 17 (340 sampler coordinates; 2 chains x (500 + 500) on one core, as
    # a comparison's folds): 31 gradients per draw with either mass matrix and the same
    # bulk ESS (262 low-rank, 275 diagonal), but 90 s of sampling against 3.3 s: the
    # low-rank one's cost per leapfrog step (~270 us against the gradient's 47) buys
    # nothing here. Pile 4 (24 coordinates): 1.2 s against 1.1 s.
    mass_matrix = "diag"
    params = (
        Param("W", (DOMAIN, DOMAIN_J), {"dist": "LogNormal", "mu": 0.1, "sigma": 0.5},
              "predicted loss of validation domain i (row) for training on domain j (column) "
              "alone, relative to the reference loss (shared by the domains); positive, median "
              "1.1, 95% in (0.4, 2.9): typical losses range from 0.5 to 1.5 of the reference and "
              "rise when a domain's own data is missing"),
        Param("w_n", (DOMAIN,), {"dist": "Normal", "mu": 0.0, "sigma": 0.1},
              "change of the log-loss per e-fold of model size; centred at 0 (drops out on one "
              "model size), sd 0.1 covers the usual -0.02 to -0.1"),
        Param("w_d", (DOMAIN,), {"dist": "Normal", "mu": 0.0, "sigma": 0.1},
              "change of the log-loss per e-fold of tokens; centred at 0 (drops out on one token "
              "count)"),
    )

    def example_params(self, n_domains, rng):
        off_diagonal = ~np.eye(n_domains, dtype=bool)
        return {"W": np.where(off_diagonal, rng.uniform(2.6, 3.4, (n_domains, n_domains)),
                              rng.uniform(1.6, 2.2, (n_domains, n_domains))),
                "w_n": rng.uniform(-0.1, -0.03, n_domains), "w_d": rng.uniform(-0.1, -0.03, n_domains)}

    def mean(self, p, h, n, d):
        mixture = pt.sum(p["W"] * h[..., None, :], axis=-1)
        return mixture * pt.exp(p["w_n"] * pt.log(n) + p["w_d"] * pt.log(d))
