"""The mixture effect's closed forms: integrated out of the likelihood, drawn from its
conditional afterwards, and centred within blocks of mixtures that share scales."""

from __future__ import annotations

import math

import numpy as np

def block_average(blocks) -> np.ndarray:
    """``(M, M)``: averages effects over each mixture's block (row ``m``: ``1/M_b`` on
    the mixtures of ``m``'s block)."""
    blocks = np.asarray(blocks, dtype=int)
    same = (blocks[:, None] == blocks[None, :]).astype(float)
    return same / same.sum(axis=1, keepdims=True)


def centre_within_blocks(effect: np.ndarray, blocks) -> np.ndarray:
    """Mixture effects ``(..., M, K)`` less their mean over each block, per domain.

    Why: a block's mean effect on a domain and the law's error at the block's scales
    (the discrepancy, or the law's own level where there is none) explain the same cells.
    Left free, the effects of a block run only at small sizes take up the law's error
    there and carry it to a larger size with those mixtures (Pile 4, whose 90M and 200M
    mixtures are joined by one mixture only, showed the same: the 90M mixtures' effects
    +1.4 to +3.7% at 440M). Centred, a mixture's effect is what it does relative to the
    other mixtures run at its scales, and the scale's error is the discrepancy's. Without
    blocks (``blocks`` empty) the effects are returned unchanged.
    """
    if len(blocks) == 0:
        return effect
    return effect - np.einsum("mn,...nk->...mk", block_average(blocks), effect)


def mixture_marginal_logp(residual, cell_sigma, group_sigma, group_tau, groups, group_block=None):
    """Log density of Normal cells ``residual`` (around the law's mean plus every other
    term) whose groups share an effect ``~ N(0, tau_g^2)``, the effect integrated out
    (a PyTensor expression).

    ``cell_sigma`` is each cell's noise sd; group ``g`` (``groups``: each cell's group, in
    ``0 .. G-1``) has noise ``group_sigma[g]`` on all its cells and effect sd
    ``group_tau[g]``. Per group, the covariance ``C_g = sigma^2 I + tau^2 11'`` has
    determinant ``sigma^(2n) (1 + n tau^2 / sigma^2)`` and inverse ``(I - tau^2 /
    (sigma^2 + n tau^2) 11') / sigma^2``, so with ``B`` the group's sum of residuals::

        log p = sum_cells log N(r; 0, sigma^2) - 1/2 sum_g [log(1 + n tau^2 / sigma^2)
                - tau^2 B^2 / (sigma^2 (sigma^2 + n tau^2))]

    Groups without cells contribute 0. With ``group_block`` (each group's block, in
    ``0 .. G-1``; groups of one block share ``sigma`` and ``tau``), the effects of a
    block's ``M`` groups sum to zero (prior ``tau^2 (I - 11'/M)``): the
    block's covariance is its groups' less ``(tau^2 / M) 11'``, a rank-one change. With
    ``w_g = 1 / (sigma^2 + n_g tau^2)``, ``T = sum_g w_g B_g`` and ``s = mean_g sigma^2
    w_g`` (``1 - tau^2 / M sum_g n_g w_g``, written without the cancellation), the matrix
    determinant lemma and Sherman-Morrison add per block::

        -1/2 [log s + tau^2 T^2 / (M s)]
    """
    import pytensor.tensor as pt

    n_groups = group_sigma.shape[0]
    counts = pt.zeros(n_groups)[groups].inc(pt.ones_like(residual))
    sums = pt.zeros(n_groups)[groups].inc(residual)
    s2, t2 = group_sigma**2, group_tau**2
    cells = -0.5 * pt.sum(math.log(2 * math.pi) + 2 * pt.log(cell_sigma) + (residual / cell_sigma) ** 2)
    shared = -0.5 * pt.sum(pt.log1p(counts * t2 / s2) - t2 * sums**2 / (s2 * (s2 + counts * t2)))
    if group_block is None:
        return cells + shared
    weight = 1.0 / (s2 + counts * t2)
    size = pt.maximum(pt.zeros(n_groups)[group_block].inc(pt.ones(n_groups)), 1.0)
    mean_s2w = pt.zeros(n_groups)[group_block].inc(s2 * weight) / size
    block_t2 = pt.zeros(n_groups)[group_block].inc(t2) / size
    total = pt.zeros(n_groups)[group_block].inc(sums * weight)
    # Empty block slots: size 1, mean_s2w 0, total 0; their slack is 1 (no term).
    slack = pt.switch(mean_s2w > 0, mean_s2w, 1.0)
    return cells + shared - 0.5 * pt.sum(pt.log(slack) + block_t2 * total**2 / (size * slack))


def _effect_given_cells(design, weights, residual, sigma, mix_sd):
    """Mean and variance ``(S, M, K)`` of uncentred mixture effects given the cells (each
    effect's own Normal update; without cells, its prior ``N(0, mix_sd^2)``)."""
    residual = np.asarray(residual, dtype=float)
    S, _, K = residual.shape
    index = design.mixture_index(weights)
    observed = np.isfinite(residual)
    counts = np.zeros((len(design.mixtures), K))
    np.add.at(counts, index, observed[0].astype(float))
    sums = np.zeros((S, len(design.mixtures), K))
    np.add.at(sums, (slice(None), index), np.where(observed, residual, 0.0))
    sigma, tau = np.asarray(sigma, dtype=float)[:, None, :], np.asarray(mix_sd, dtype=float)[:, None, :]
    precision = 1.0 / tau**2 + counts[None] / sigma**2
    return sums / sigma**2 / precision, 1.0 / precision


def _sum_to_zero_in_blocks(effect, variance, blocks):
    """Condition independent Normal effects (draws or means ``effect``, ``variance``; both
    ``(S, M, K)``) on summing to zero in each block: ``x - v * sum_b(x) / sum_b(v)``. The
    centred prior is the independent one given that constraint, so this turns the
    independent conditional into the centred model's."""
    if len(blocks) == 0:
        return effect
    average = block_average(blocks)
    return effect - variance * np.einsum("mn,snk->smk", average, effect) / np.einsum("mn,snk->smk", average, variance)


def mixture_effect_conditional(design, weights, residual, sigma, mix_sd):
    """Mean and sd ``(S, M, K)`` of the mixture effects given everything else, for a fit
    that integrated them out (:attr:`ObservationDesign.marginal_mixture_effect`).

    ``residual (S, rows, K)``: each cell's log-loss minus the law's log-mean and every
    other term of the model, per draw (NaN where no loss was logged); ``sigma``,
    ``mix_sd (S, K)``. Uncentred, the effect of mixture ``m`` on domain ``k`` with ``n``
    cells summing to ``B`` is Normal with precision ``1/mix_sd^2 + n/sigma^2`` and mean
    ``(B/sigma^2) / precision`` (without cells, its prior ``N(0, mix_sd^2)``); with
    :attr:`ObservationDesign.mixture_blocks`, those effects conditioned on summing to
    zero in each block (the sd is each effect's marginal one).
    """
    mean, variance = _effect_given_cells(design, weights, residual, sigma, mix_sd)
    if not design.mixture_blocks:
        return mean, np.sqrt(variance)
    blocks = np.asarray(design.mixture_blocks, dtype=int)
    in_block = np.einsum("mn,snk->smk", (blocks[:, None] == blocks[None, :]).astype(float), variance)
    centred_variance = np.clip(variance - variance**2 / in_block, 0.0, None)
    return _sum_to_zero_in_blocks(mean, variance, design.mixture_blocks), np.sqrt(centred_variance)


def conditional_mixture_effects(design, weights, residual, sigma, mix_sd, *,
                                seed=0) -> np.ndarray:
    """One draw per posterior draw of the mixture effects from their conditional
    (:func:`mixture_effect_conditional`, jointly within each block), as ``mix_z (S, M,
    K)``: in units of ``mix_sd``, the model's own coordinates."""
    mean, variance = _effect_given_cells(design, weights, residual, sigma, mix_sd)
    effect = mean + np.sqrt(variance) * np.random.default_rng(seed).standard_normal(mean.shape)
    effect = _sum_to_zero_in_blocks(effect, variance, design.mixture_blocks)
    return effect / np.asarray(mix_sd, dtype=float)[:, None, :]
