"""Held-out accuracy metrics shared by benchmarks, comparison and model cards."""

from __future__ import annotations

import numpy as np


def mean_relative_error(pred, observed, weights=None, *, positive_weight_only=False) -> float:
    """Mean of ``|pred - obs| / obs`` over observed cells.

    Parameters
    ----------
    pred, observed : array_like ``(rows, K)``
        Point predictions and observed losses (NaN = missing, skipped).
    weights : array_like ``(rows, K)``, optional
        Training mixtures; with ``positive_weight_only`` only cells whose domain had a
        positive weight count (the protocol of Dai and Zheng 2026).
    """
    pred = np.asarray(pred, dtype=float)
    observed = np.asarray(observed, dtype=float)
    mask = np.isfinite(observed)
    if positive_weight_only:
        mask &= np.asarray(weights) > 0
    return float(np.mean(np.abs(pred[mask] - observed[mask]) / observed[mask]))


def interval_coverage(lower, upper, observed) -> float:
    """Share of observed cells inside ``[lower, upper]``."""
    observed = np.asarray(observed, dtype=float)
    mask = np.isfinite(observed)
    inside = (np.asarray(lower)[mask] <= observed[mask]) & (observed[mask] <= np.asarray(upper)[mask])
    return float(np.mean(inside))
