"""Held-out accuracy metrics shared by benchmarks, comparison, case studies and model cards."""

from __future__ import annotations

import numpy as np


def mean_relative_error(pred, observed, weights=None, *, positive_weight_only=False, mask=None) -> float:
    """Mean of ``|pred - obs| / obs`` over observed cells.

    Parameters
    ----------
    pred, observed : array_like ``(rows, K)``
        Point predictions and observed losses (NaN = missing, skipped; so are cells
        without a finite prediction).
    weights : array_like ``(rows, K)``, optional
        Training mixtures; with ``positive_weight_only`` only cells whose domain had a
        positive weight count (the protocol of Dai and Zheng 2026).
    mask : array_like of bool, optional
        Only these cells count.

    Returns
    -------
    float
        NaN when no cell counts.
    """
    pred = np.asarray(pred, dtype=float)
    observed = np.asarray(observed, dtype=float)
    keep = np.isfinite(observed) & np.isfinite(pred)
    if positive_weight_only:
        keep &= np.asarray(weights) > 0
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs(pred[keep] - observed[keep]) / observed[keep]))


def domain_level_errors(pred, observed, domain) -> dict:
    """How much of a prediction error is each domain's level.

    Held-out cells of one domain at a new scale share the law's error there, so an MRE
    mixes two things: the level each domain's predictions sit at, and how the mixtures
    of one domain are told apart. Per domain, its mean log error ``log(pred / obs)``
    is its level error; what is left after taking it out is the within-domain error.

    Parameters
    ----------
    pred, observed : array_like ``(cells,)``
        Point predictions and observed losses, positive.
    domain : array_like of int ``(cells,)``
        Each cell's domain.

    Returns
    -------
    dict
        ``level_errors`` (per domain, in the order of ``np.unique(domain)``), their mean
        ``mean_level_error``, and ``mre_within_domains``: the MRE of the predictions with
        each domain's level error taken out. NaN (no levels) when there is no cell.
    """
    log_error = np.log(np.asarray(pred, dtype=float) / np.asarray(observed, dtype=float))
    if log_error.size == 0:
        return {"level_errors": np.zeros(0), "mean_level_error": float("nan"), "mre_within_domains": float("nan")}
    _, which = np.unique(np.asarray(domain), return_inverse=True)
    levels = np.bincount(which, weights=log_error) / np.bincount(which)
    return {"level_errors": levels, "mean_level_error": float(levels.mean()),
            "mre_within_domains": float(np.mean(np.abs(np.expm1(log_error - levels[which]))))}


def interval_coverage(lower, upper, observed, mask=None) -> float:
    """Share of observed cells inside ``[lower, upper]`` (NaN when none is observed)."""
    lower, upper, observed = (np.asarray(v, dtype=float) for v in (lower, upper, observed))
    keep = np.isfinite(observed)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)
    if not keep.any():
        return float("nan")
    return float(np.mean((lower[keep] <= observed[keep]) & (observed[keep] <= upper[keep])))


def coverage_band(draws, lower, upper, probs=(0.05, 0.95)) -> tuple[float, float]:
    """The range of interval coverage a held-out table would show if the model were right.

    Each draw of the joint predictive distribution of the table's cells is one outcome the
    model thinks possible; the share of its cells inside ``[lower, upper]`` is the
    coverage that outcome would score. Cells that share an error (the law's error at one
    scale, the effect of one mixture) move together, so one table's coverage strays from
    the nominal level much further than that of independent cells; this band says how
    far, for the held-out table at hand.

    Parameters
    ----------
    draws : array_like ``(S, cells)``
        Joint predictive draws of the cells (one row per draw).
    lower, upper : array_like ``(cells,)``
        The intervals scored.
    probs : (float, float)
        Quantiles of the per-draw coverage (default: a central 90% band).

    Returns
    -------
    (float, float)
        NaN when there is no cell.
    """
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 2:
        return float("nan"), float("nan")
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    return pooled_coverage_band([(lower <= draws) & (draws <= upper)], probs)


def pooled_coverage_band(inside_blocks, probs=(0.05, 0.95)) -> tuple[float, float]:
    """:func:`coverage_band` of several blocks of cells scored by separate fits.

    Parameters
    ----------
    inside_blocks : sequence of array_like of bool ``(S_b, cells_b)``
        Per block (e.g. the held-out fold of one fit), whether each joint predictive draw
        of each cell lies inside the cell's interval. The blocks' draws are independent,
        so draw ``s`` of every block together make one joint outcome of all cells (the
        first ``min S_b`` draws of each block are used).
    probs : (float, float)

    Returns
    -------
    (float, float)
        NaN when there is no cell.
    """
    blocks = [np.asarray(b, dtype=bool) for b in inside_blocks]
    blocks = [b for b in blocks if b.ndim == 2 and b.shape[1] > 0 and b.shape[0] > 0]
    if not blocks:
        return float("nan"), float("nan")
    draws = min(b.shape[0] for b in blocks)
    inside = sum(b[:draws].sum(axis=1) for b in blocks)
    per_draw = inside / sum(b.shape[1] for b in blocks)
    low, high = np.quantile(per_draw, probs)
    return float(low), float(high)


def scatter_around_lines(log_loss, x, groups, *, min_points: int = 4) -> dict:
    """The runs' own scatter: how far runs of one group lie from a straight line in ``x``.

    Runs of one mixture at one model size trained for several token counts should lie on
    a smooth curve of ``log D``; over an e-fold or two, a line. What they scatter around
    it (seed, schedule, data order) no law can predict, so it sets a floor under any
    held-out MRE on runs like them.

    Parameters
    ----------
    log_loss : array_like ``(runs, K)``
        Log-losses (NaN: not logged; such cells are left out of their domain's lines).
    x : array_like ``(runs,)``
        The variable the lines run along (e.g. ``log D``).
    groups : array_like ``(runs,)``
        Runs of one group share a line (e.g. one key per mixture and model size).
    min_points : int
        Groups with fewer runs (of a domain) than this are left out: through 2 or 3
        points a line leaves no or one degree of freedom for its scatter.

    Returns
    -------
    dict
        ``sd`` ``(K,)``: per domain the residual sd of the log-loss, pooled over groups
        with the lines' two parameters per group taken out of the degrees of freedom;
        ``mre_floor`` ``(K,)``: the MRE of an error-free prediction of such runs,
        ``E|exp(eps) - 1| = exp(sd^2 / 2) (2 Phi(sd) - 1)`` for ``eps ~ N(0, sd^2)``;
        ``groups`` and ``runs``: how many went in (per domain, ``(K,)``). NaN for a domain
        without a group of ``min_points`` runs.
    """
    from scipy.special import ndtr

    log_loss = np.atleast_2d(np.asarray(log_loss, dtype=float))
    x, groups = np.asarray(x, dtype=float), np.asarray(groups)
    K = log_loss.shape[1]
    squares, dof = np.zeros(K), np.zeros(K)
    n_groups, n_runs = np.zeros(K, dtype=int), np.zeros(K, dtype=int)
    for group in np.unique(groups):
        for k in range(K):
            keep = (groups == group) & np.isfinite(log_loss[:, k])
            if keep.sum() < min_points or np.ptp(x[keep]) == 0:
                continue
            design = np.column_stack([np.ones(keep.sum()), x[keep]])
            coef, *_ = np.linalg.lstsq(design, log_loss[keep, k], rcond=None)
            squares[k] += np.sum((log_loss[keep, k] - design @ coef) ** 2)
            dof[k] += keep.sum() - 2
            n_groups[k] += 1
            n_runs[k] += keep.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(dof > 0, np.sqrt(squares / np.maximum(dof, 1)), np.nan)
    return {"sd": sd, "mre_floor": np.exp(sd**2 / 2) * (2 * ndtr(sd) - 1), "groups": n_groups, "runs": n_runs}
