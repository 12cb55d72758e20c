"""Capacity competition + noise reduction with transfer between domains.

``L_i = c_i xt_i(h, N)^(-b_i) + A_i (D s_i(h))^(-a_i) + E_i`` with

* effective data share ``s_i = (h_i + sum_(j != i) T_ij h_j) / (1 + sum_(j != i) T_ij)``,
* effective capacity ``xt_i = (x_i + sum_(j != i) T_ij x_j) / (1 + sum_(j != i) T_ij)``,

where ``x(h, N)`` is the capacity split of Dai and Zheng (ICML 2026, Eq. 1) and ``T`` a
non-negative transfer matrix: a token (or a unit of capacity) of domain ``j`` is worth
``T_ij`` of domain ``i``'s own. Without transfer (``T = 0``) this is ``capacity_noise``
(Eq. 3). A domain with zero weight, or one that is only evaluated (never in the mixture),
keeps a noise-reduction term and a capacity that move with the mixture and the model
size, instead of the constant floor ``c_i H^(-b_i) + E_i`` of the law without transfer.

The normalisation by ``1 + sum_j T_ij`` keeps the amplitudes where ``capacity_noise``
measures them: at the uniform mixture and an equal split every domain's effective share
is ``1/K`` whatever ``T``, so ``c_i`` and ``A_i`` are again the terms at an equal share.
For a fixed ``T`` it is the unnormalised form with the amplitudes rescaled by
``(1 + sum_j T_ij)^b_i`` and ``^a_i``, the same family of functions.

``T`` is partially pooled and sparse: ``log T_ij = t_level + TRANSFER_SPREAD * t_z_ij``
with ``t_z_ij ~ N(0, 1)`` (non-centred) and one typical level for all pairs; a log-normal
with a spread of 1.5 e-folds is heavy-tailed, so most pairs stay small while a few related
ones (PubMed Central and PubMed abstracts) can be large. The diagonal of ``t_z`` does not
enter the law (its posterior is its prior).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import register
from .base import DOMAIN, DOMAIN_J, Param
from .capacity import CAPACITY_PARAMS, CITATION, NOISE_PARAMS, CapacityBase, paper_amplitude
from .capacity_split import capacity_split

TRANSFER_CITATION = (
    CITATION + " Transfer between domains (an effective data share and capacity through a "
    "partially pooled, non-negative transfer matrix) is this project's extension."
)

#: Spread of ``log T_ij`` around ``t_level`` across domain pairs, in e-folds: 95% of the
#: pairs within a factor 19 of the typical transfer either way, so a few related pairs can
#: transfer 20 times the typical amount. Fixed, not a parameter: with a pooled spread
#: ``t_sd`` beside ``t_level``, one strongly identified pair ties ``t_level + t_sd t_z_ij``
#: to a constant, a curved ridge in (``t_sd``, ``t_z_ij``) that NUTS mixed slowly (the
#: contract test's simulated fit, 3 domains, 2 x 300 draws: R-hat 1.13 on ``t_sd``,
#: 1.14 on the identified ``t_z``, bulk ESS 12); ``t_level`` alone makes a straight ridge.
TRANSFER_SPREAD = 1.5

TRANSFER_PARAMS = (
    Param("t_level", (), {"dist": "Normal", "mu": -3.0, "sigma": 1.0},
          "log of the typical transfer T_ij (a token of domain j worth T_ij of domain i's own): "
          "median 0.05, 95% of typical levels in (0.007, 0.35)"),
    Param("t_z", (DOMAIN, DOMAIN_J), {"dist": "Normal", "mu": 0.0, "sigma": 1.0},
          "standardised log transfer of training domain j (column) to domain i (row): "
          "log T_ij = t_level + 1.5 t_z_ij (TRANSFER_SPREAD); the diagonal does not enter the law"),
)


def transfer_matrix(p: dict, n_domains):
    """``T_ij = exp(t_level + TRANSFER_SPREAD t_z_ij)`` off the diagonal and 0 on it,
    ``(..., K, K)``: ``(K, K)`` in the model, ``(S, 1, K, K)`` for draws (the level,
    ``(S, 1, 1)`` there, gets a trailing axis to broadcast against the matrix)."""
    level = pt.shape_padright(p["t_level"])
    return pt.exp(level + TRANSFER_SPREAD * p["t_z"]) * (1.0 - pt.eye(n_domains))


def transferred(T, values):
    """``(v_i + sum_j T_ij v_j) / (1 + sum_j T_ij)`` of per-domain ``values (..., rows, K)``
    for a transfer matrix ``T (..., K, K)`` with a zero diagonal: a weighted average of the
    domain's own value and the others', the own one weighing 1."""
    gained = pt.sum(T * values[..., None, :], axis=-1)
    return (values + gained) / (1.0 + pt.sum(T, axis=-1))


@register
class CapacityNoiseTransferLaw(CapacityBase):
    """Capacity competition + noise reduction with transfer between domains.

    ``L_i = c_i xt_i^(-b_i) + A_i (D s_i)^(-a_i) + E_i``, the effective capacity ``xt``
    and data share ``s`` mixing each domain's own with the others' through the transfer
    matrix ``T`` (module docstring). Continuous as a weight goes to 0 (the effective share
    stays positive), so the decision layer needs no minimum positive weight, and it
    predicts evaluation-only domains: their weight is 0 in every run, and their loss
    moves with the mixture and the scale through their row of ``T``.
    """

    name = "capacity_noise_transfer"
    # Pile 17, seeded 70/30 splits, defaults: 681-1664 s per fit against 160-250 s for
    # capacity_noise (relative cost 8) on the same shared cores.
    relative_cost = 45
    # Not capacity_noise's depth-7 cap: this posterior (393 sampler coordinates on Pile 17)
    # needs deep trees in its kept draws. `bayesmix fit ../shared/data/pile17/runs.csv --law
    # capacity_noise_transfer` (seed 0, 2026-12-06): at depth 7 all 4000 kept trees were cut
    # and the fit ended at R-hat 1.75 (refused); at depth 10 R-hat 1.01, bulk ESS 424, no
    # divergence (after the retry at 0.99), 963 gradients per draw, 2068 trees at depth 10.
    max_tree_depth = 10
    title = "capacity competition + noise reduction with transfer between domains"
    citation = TRANSFER_CITATION
    uses_model_size = True
    uses_tokens = True
    predicts_evaluation_domains = True
    params = CAPACITY_PARAMS + NOISE_PARAMS + TRANSFER_PARAMS
    level_terms = ("E", "c", "A")

    def example_params(self, n_domains, rng):
        """``capacity_noise``'s example with a sparse transfer: every pair ``T = 0.01``
        except the second domain learning from the first as much as from its own data
        (``T_10 = 1``) and, with four domains or more, the fourth from the third (0.5)."""
        params = super().example_params(n_domains, rng)
        T = np.full((n_domains, n_domains), 0.01)
        T[1, 0] = 1.0
        if n_domains >= 4:
            T[3, 2] = 0.5
        level = np.log(0.01)
        params.update(t_level=np.array(level), t_z=(np.log(T) - level) / TRANSFER_SPREAD)
        return params

    def mean(self, p, h, n, d):
        K = h.shape[-1]
        T = transfer_matrix(p, K)
        c_paper = paper_amplitude(p["c"], p["b"], K)
        x = transferred(T, capacity_split(h, p["b"], c_paper, p["H"], n))
        capacity_term = c_paper * pt.exp(-p["b"] * pt.log(x))
        # Effective tokens relative to an equal share of D_ref, as capacity_noise's own tokens.
        share = transferred(T, h)
        noise_term = p["A"] * pt.exp(-p["a"] * pt.log(d * share * K))
        return capacity_term + noise_term + p["E"]


def transfer_draws(draws: dict) -> np.ndarray:
    """The transfer matrix ``T (S, K, K)`` of posterior draws ``t_level (S,)`` and
    ``t_z (S, K, K)`` (zero diagonal), evaluated by :func:`transfer_matrix`
    itself; rows are the domains that gain, columns the domains whose data they gain from."""
    t_z = np.asarray(draws["t_z"], dtype=float)
    S, K = t_z.shape[0], t_z.shape[-1]
    p = {"t_level": pt.as_tensor(np.asarray(draws["t_level"], dtype=float).reshape(S, 1)),
         "t_z": pt.as_tensor(t_z)}
    return np.asarray(transfer_matrix(p, K).eval())
