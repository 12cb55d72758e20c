"""The likelihood of a simulated outcome under each posterior draw, and the importance
weights and effective sample size it gives."""

from __future__ import annotations

import numpy as np

from .. import observation
from ..posterior import Posterior


def log_likelihood(log_y, log_mu, sigma, run_sd=None, groups=None) -> np.ndarray:
    """Log density of observed log-losses under each draw, Normal with a shared run offset.

    ``log y_k = log mu_sk + u + e_k``, ``u ~ N(0, run_sd_s^2)`` shared by the run's
    domains (and checkpoints), ``e_k ~ N(0, sigma_sk^2)``; the covariance is diagonal
    plus rank one, so the density has a closed form (Sherman-Morrison). Missing (NaN)
    losses are left out.

    Parameters
    ----------
    log_y : ndarray ``(J, K)``
        Observed log-losses (J runs or outcomes).
    log_mu : ndarray ``(S, K)`` or ``(S, J, K)``
        Expected log-losses per draw (per run when 3-D).
    sigma : ndarray ``(S, K)`` or ``(S, J, K)``
    run_sd : ndarray ``(S,)``, optional
    groups : array_like of int ``(J,)``, optional
        The run of each row (``0 .. G-1``): rows of one run (its checkpoints) share one
        offset and their density is joint. Default: every row is its own run.

    Returns
    -------
    ndarray ``(J, S)``, or ``(G, S)`` with ``groups``

    The density is :func:`bayesmix.observation.grouped_loglik`'s, with a run as the group.
    """
    log_y = np.atleast_2d(np.asarray(log_y, dtype=float))
    log_mu = np.asarray(log_mu, dtype=float)
    if log_mu.ndim == 2:
        log_mu = log_mu[:, None, :]
    S, J, K = log_mu.shape[0], log_y.shape[0], log_y.shape[1]
    rows, doms = np.nonzero(np.isfinite(log_y))
    loc = np.broadcast_to(log_mu, (S, J, K))[:, rows, doms]
    scale = np.asarray(sigma, dtype=float)
    scale = (scale[:, None, :] if scale.ndim == 2 else scale)
    scale = np.broadcast_to(scale, (S, J, K))[:, rows, doms]
    if groups is None:
        return observation.grouped_loglik(log_y[rows, doms], loc, scale, rows, J, run_sd=run_sd).T
    groups = np.asarray(groups, dtype=int).reshape(-1)
    return observation.grouped_loglik(log_y[rows, doms], loc, scale, groups[rows], int(groups.max()) + 1,
                                      run_sd=run_sd).T


def normalise_log(logw) -> np.ndarray:
    """Rows of log weights to normalised weights."""
    logw = np.asarray(logw, dtype=float)
    logw = logw - logw.max(axis=-1, keepdims=True)
    w = np.exp(logw)
    return w / w.sum(axis=-1, keepdims=True)


def effective_sample_size(weights) -> np.ndarray:
    """Kish effective sample size ``1 / sum w^2`` of normalised weights (per row)."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum(axis=-1, keepdims=True)
    return 1.0 / np.sum(w**2, axis=-1)


def parameter_table(posterior: Posterior):
    """Draws of every scalar parameter entry, ``(S, P)``, and their names."""
    names, cols = [], []
    doms = posterior.target_domains
    for param in posterior.law.params:
        value = np.asarray(posterior.draws[param.name], dtype=float)
        flat = value.reshape(value.shape[0], -1)
        if value.ndim == 1:
            labels = [param.name]
        elif value.ndim == 2 and value.shape[1] == len(doms):
            labels = [f"{param.name}[{d}]" for d in doms]
        elif value.ndim == 3 and value.shape[1:] == (len(doms), len(doms)):
            labels = [f"{param.name}[{a},{b}]" for a in doms for b in doms]
        else:
            labels = [f"{param.name}[{i}]" for i in range(flat.shape[1])]
        names += labels
        cols.append(flat)
    return names, np.concatenate(cols, axis=1)
