"""Log densities of observed log-loss cells: per cell, and summed per group with a shared
offset integrated out (held-out scoring, PSIS-LOO, acquisition)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

#: Gauss-Hermite nodes for integrating the run offset under a Student-t likelihood.
QUADRATURE_NODES = 32


def cell_logpdf(y, loc, scale, nu=None) -> np.ndarray:
    """Density of log-losses ``y`` per cell: Normal, or Student-t with ``nu`` dof."""
    if nu is None:
        return stats.norm.logpdf(y, loc=loc, scale=scale)
    return stats.t.logpdf(y, df=nu, loc=loc, scale=scale)


def group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum ``values (S, C)`` over cells into ``(S, n_groups)`` by the cells' group index."""
    from scipy import sparse

    cells = values.shape[-1]
    indicator = sparse.csr_matrix((np.ones(cells), (groups, np.arange(cells))), shape=(n_groups, cells))
    return np.asarray((indicator @ values.T).T)


def grouped_loglik(y, loc, scale, groups, n_groups: int, *, run_sd=None, nu=None,
                   method: str = "auto") -> np.ndarray:
    """Log density of log-loss cells summed per group, a shared offset integrated out.

    ``y (C,)`` observed log-losses; ``loc, scale (S, C)`` per draw; ``groups (C,)`` the
    cell's group (a run, or a run and domain); the group's cells share an offset
    ``u ~ N(0, run_sd^2)`` (per draw, ``(S,)``; None: no offset). Normal cells: closed form
    (the covariance is diagonal plus rank one: determinant lemma and Sherman-Morrison).
    Student-t cells (``nu (S,)``), or ``method="quadrature"``: adaptive Gauss-Hermite.
    Returns ``(S, n_groups)``; groups without cells get 0.
    """
    y = np.asarray(y, dtype=float)
    loc, scale = np.asarray(loc, dtype=float), np.asarray(scale, dtype=float)
    S = loc.shape[0]
    tau = np.zeros(S) if run_sd is None else np.asarray(run_sd, dtype=float).reshape(S)
    counts = np.bincount(groups, minlength=n_groups)
    inv = 1.0 / scale**2
    r = y[None, :] - loc
    A = group_sum(inv, groups, n_groups)
    B = group_sum(r * inv, groups, n_groups)
    if nu is None and method in ("auto", "closed_form"):
        Q = group_sum(r**2 * inv, groups, n_groups)
        logdet = group_sum(np.log(scale**2), groups, n_groups)
        t2 = (tau**2)[:, None]
        return -0.5 * (counts * math.log(2 * math.pi) + logdet + np.log1p(t2 * A) + Q - t2 * B**2 / (1.0 + t2 * A))
    if method not in ("auto", "quadrature"):
        raise ValueError(f"unknown method '{method}'")
    nu = None if nu is None else np.asarray(nu, dtype=float).reshape(S)[:, None]
    if not np.any(tau > 0):
        return group_sum(cell_logpdf(y[None, :], loc, scale, nu), groups, n_groups)
    # Nodes centred and scaled on the Gaussian approximation of the offset's conditional
    # posterior (precision 1/tau^2 + sum 1/s^2): the integrand is much narrower than the
    # offset's prior when a group has many cells.
    safe_tau = np.where(tau > 0, tau, 1.0)[:, None]
    precision = 1.0 / safe_tau**2 + A
    centre, spread = B / precision, 1.0 / np.sqrt(precision)
    nodes, weights = np.polynomial.hermite.hermgauss(QUADRATURE_NODES)
    parts = []
    for x, w in zip(nodes, weights):
        z = np.where(tau[:, None] > 0, centre + math.sqrt(2.0) * spread * x, 0.0)
        part = group_sum(cell_logpdf(y[None, :], loc + z[:, groups], scale, nu), groups, n_groups)
        prior = stats.norm.logpdf(z, scale=safe_tau)
        parts.append(part + np.where(tau[:, None] > 0, prior + math.log(w) + x**2 + np.log(math.sqrt(2.0) * spread), 0.0))
    return special.logsumexp(np.stack(parts), axis=0)
