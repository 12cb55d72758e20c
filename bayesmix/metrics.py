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
