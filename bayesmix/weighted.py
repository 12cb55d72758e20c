"""Posterior draws that carry weights (importance, stacking or thinning weights): their
normalisation and their quantiles, written once for every layer."""

from __future__ import annotations

import numpy as np

from .errors import UsageError

#: The central 90% interval that every layer reports, as its lower and upper quantile
#: levels: the ``q05`` and ``q95`` of ``predict``, ``recommend`` and the posterior
#: summaries, and the interval whose coverage held-out scores count.
INTERVAL_QUANTILES = (0.05, 0.95)


def normalised_draw_weights(draw_weights, n_draws: int) -> np.ndarray:
    """Draw weights summing to one (uniform when ``None``)."""
    if draw_weights is None:
        return np.full(n_draws, 1.0 / n_draws)
    w = np.asarray(draw_weights, dtype=float).reshape(-1)
    if w.shape[0] != n_draws:
        raise UsageError(f"draw_weights has {w.shape[0]} entries but there are {n_draws} draws")
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise UsageError("draw_weights must be finite, non-negative and not all zero")
    return w / w.sum()


def weighted_quantile(values, q, weights=None) -> np.ndarray:
    """Quantiles along the first axis of ``values`` with optional weights.

    With equal weights this is numpy's default (linear) quantile; with unequal weights
    the plotting positions ``(C_j - w_j) / (1 - w_last)`` generalise it (``C_j`` the
    cumulative weight of the sorted values); draws of weight 0 are left out.

    Parameters
    ----------
    values : array_like ``(S, ...)``
    q : float or array_like
        Probabilities in ``[0, 1]``.
    weights : array_like ``(S,)`` or ``values.shape``, optional
        One weight per draw, or per draw and column (e.g. PSIS-LOO weights, which differ
        from one held-out cell to another); normalised here.

    Returns
    -------
    ndarray ``q.shape + values.shape[1:]``
    """
    values = np.asarray(values, dtype=float)
    q = np.asarray(q, dtype=float)
    if weights is None:
        return np.quantile(values, q, axis=0)
    weights = np.asarray(weights, dtype=float)
    flat = values.reshape(values.shape[0], -1)
    if weights.shape == values.shape and values.ndim > 1:
        per_column = weights.reshape(flat.shape)
    else:
        per_column = np.broadcast_to(normalised_draw_weights(weights, values.shape[0])[:, None], flat.shape)
    out = np.empty(q.shape + (flat.shape[1],))
    for col in range(flat.shape[1]):
        keep = per_column[:, col] > 0
        v, w = flat[keep, col], per_column[keep, col]
        order = np.argsort(v, kind="stable")
        v, w = v[order], w[order] / w.sum()
        cum = np.cumsum(w)
        denom = cum[-1] - w[-1]
        if len(v) == 1 or denom <= 0:
            out[..., col] = v[-1]
            continue
        positions = np.clip((cum - w) / denom, 0.0, 1.0)
        out[..., col] = np.interp(q, positions, v)
    return out.reshape(q.shape + values.shape[1:])
