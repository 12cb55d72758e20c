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
