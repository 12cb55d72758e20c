"""Chains that settled in separated modes, weighted by stacking.

Where a posterior has modes that NUTS does not cross, chains started apart stay apart,
and pooling their draws weights each mode by its share of chains: an accident of where
the chains started. On Pile 4 (``capacity_noise``, defaults, seeds 1 and 2) github's
mixture-specific misfit has two explanations within a few nats of each other: the
capacity floor (``H`` near 0.065 ``N_ref``, a small mixture effect) or the mixture effect
(``H`` near 0.01, inert); two chains settle in each.

Yao, Vehtari and Gelman (2022, "Stacking for non-mixing Bayesian computations: the curse
and blessing of multimodal posteriors", JMLR 23(79)) weight such groups of chains by
stacking their leave-one-out predictive densities: the weights under which the mixture
of the groups predicts each left-out run best. This module gives those weights
(:func:`group_weights`, a training run being the unit left out, as in
:mod:`bayesmix.compare`) and the draws that carry them (:func:`weighted_draw_index`).

A group can also hold parts of chains: where a chain crossed from one mode to another,
its stays in each are cut into windows (:func:`bayesmix.pilot.separated_draw_windows`)
and a group is a list of windows ``(chain, start, stop)``; draws of a crossing belong
to no group and leave the posterior.

A fit is kept this way only where each group's chains agree among themselves
(:func:`within_group_diagnostics`): each group then pictures its mode faithfully, and
only the share between modes is left to estimate. Stacking weights are predictive,
not posterior, probabilities: they favour the mode that predicts held-out runs better,
which is what the decisions downstream use the posterior for.
"""

from __future__ import annotations

import numpy as np

from . import _az


def as_windows(group, draws: int) -> list[tuple[int, int, int]]:
    """A group's draws as windows ``(chain, start, stop)``: an entry that is one integer
    is a whole chain of ``draws`` draws, a triple a window of one (see
    :func:`bayesmix.pilot.separated_draw_windows`)."""
    return [(int(w), 0, int(draws)) if np.ndim(w) == 0 else tuple(int(v) for v in w) for w in group]


def group_of(record: dict, draws: int) -> list[tuple[int, int, int]]:
    """The windows of a fit's ``chain_groups`` entry: its ``windows``, or its whole
    ``chains`` (fits saved before groups could hold parts of chains)."""
    return as_windows(record.get("windows") or record["chains"], draws)


def flat_draw_index(windows, draws: int) -> np.ndarray:
    """Indices of the windows' draws in a trace stacked chain-major (``chain * draws +
    t``, as :func:`bayesmix._az.stacked_draws` and ``values.reshape(-1)`` order them)."""
    return np.concatenate([np.arange(chain * draws + start, chain * draws + stop) for chain, start, stop in windows])


def within_group_diagnostics(idata, names, groups) -> dict:
    """R-hat and ESS of ``names`` computed within each group of chains or windows.

    Parameters
    ----------
    idata : DataTree
    names : list of str
        Variables to check (the gate's).
    groups : list
        Each group's chain indices, or its windows ``(chain, start, stop)`` of one
        length (:func:`as_windows`).

    Returns
    -------
    dict
        ``within_group_max_rhat`` (the worst over groups; a group of one chain is judged
        by its split R-hat, its two halves), ``within_group_worst_param`` and
        ``within_group_min_ess_bulk``.
    """
    worst, worst_param, ess = 1.0, None, np.inf
    draws = idata.posterior.sizes["draw"]
    for group in groups:
        table = _az.diagnostics_table(_az.select_windows(idata, as_windows(group, draws)), names)
        if table["max_rhat"] >= worst:
            worst, worst_param = table["max_rhat"], table["worst_rhat_param"]
        ess = min(ess, table["min_ess_bulk"])
    return {"within_group_max_rhat": float(worst), "within_group_worst_param": worst_param,
            "within_group_min_ess_bulk": float(ess)}


#: Fewest draws in a group that PSIS-LOO can smooth: ArviZ fits the Pareto tail to 20%
#: of them and needs at least 5 there.
MIN_GROUP_DRAWS = 25


def group_weights(loglik: np.ndarray, groups) -> np.ndarray | None:
    """Stacking weights of groups of chains.

    Parameters
    ----------
    loglik : ndarray ``(chains, draws, points)``
        Pointwise log-likelihood of every draw (a point: one training run).
    groups : list
        Each group's chain indices or windows (:func:`as_windows`).

    Returns
    -------
    ndarray ``(groups,)`` or None
        Non-negative, summing to 1: the weights maximising the summed log of the groups'
        mixed PSIS-LOO predictive densities of the points. None where a group has fewer
        than :data:`MIN_GROUP_DRAWS` draws: then the groups are not weighted (and the gate
        does not keep them as modes).
    """
    from .compare import stacking_weights  # compare builds on this module

    loglik = np.asarray(loglik, dtype=float)
    groups = [as_windows(group, loglik.shape[1]) for group in groups]
    if min(sum(stop - start for _, start, stop in group) for group in groups) < MIN_GROUP_DRAWS:
        return None
    # Each window as a chain (the windows of a group have one length).
    lpd = np.column_stack([_az.psis_loo(np.stack([loglik[chain, start:stop] for chain, start, stop in group]))["elpd_i"]
                           for group in groups])
    return stacking_weights(lpd)


def allocate_draws(weights, sizes, total: int) -> list[np.ndarray]:
    """Which draws of each component a mixture of ``total`` draws takes.

    Component ``k`` (of ``sizes[k]`` draws) gives ``round(weights[k] * total)`` of them
    (largest remainders, so the counts sum to ``total``), evenly spaced over its draws and
    repeated where it gives more than it has: deterministic, so a mixture is the same
    every time it is built.

    Returns
    -------
    list of ndarray of int
        Indices into each component's draws (empty for a weight of 0).
    """
    weights = np.asarray(weights, dtype=float)
    raw = weights / weights.sum() * total
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts), kind="stable")[:total - counts.sum()]] += 1
    return [np.linspace(0, size - 1, count).round().astype(int) if count else np.array([], dtype=int)
            for size, count in zip(sizes, counts)]


def weighted_draw_index(diagnostics: dict, chains: int, draws: int) -> np.ndarray | None:
    """Indices into a fit's draws (stacked chain-major, as :func:`bayesmix._az.stacked_draws`)
    that weight its chain groups by their stacking weights; None unless the fit's
    ``diagnostics`` carry weighted ``chain_groups``.

    The mixture has as many draws as the fit, ``chains * draws``.
    """
    groups = diagnostics.get("chain_groups") or []
    if len(groups) < 2 or any("weight" not in g for g in groups):
        return None
    flat = [flat_draw_index(group_of(g, draws), draws) for g in groups]
    picks = allocate_draws([g["weight"] for g in groups], [len(f) for f in flat], chains * draws)
    return np.concatenate([f[p] for f, p in zip(flat, picks)])


def weighs_modes(diagnostics: dict, max_rhat: float) -> bool:
    """Whether a fit whose chains disagree is kept as stacked modes: its chains settled in
    separated groups, each group's chains agree (R-hat within groups at most ``max_rhat``)
    and every group carries a stacking weight."""
    groups = diagnostics.get("chain_groups") or []
    return (len(groups) > 1 and all("weight" in g for g in groups)
            and diagnostics.get("within_group_max_rhat", np.inf) <= max_rhat)
