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
    if draws.ndim != 2 or draws.shape[1] == 0:
        return float("nan"), float("nan")
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    per_draw = np.mean((lower <= draws) & (draws <= upper), axis=1)
    low, high = np.quantile(per_draw, probs)
    return float(low), float(high)
