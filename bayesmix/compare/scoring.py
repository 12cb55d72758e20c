"""Held-out scores of runs: the offset-integrated run log-likelihood, PSIS-LOO by run, the
posterior-mean error and interval coverage of held-out cells, and stacking weights."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, special

from .. import observation
from ..errors import UsageError
from ..posterior import observed_table
from ..weighted import INTERVAL_QUANTILES, weighted_quantile


def _logmeanexp(x, axis=0):
    x = np.asarray(x, dtype=float)
    return special.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def integrated_loglik(posterior, table, *, by_domain: bool = False, expected=None,
                      method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood of each run's losses per draw, with the run offset integrated out.

    Parameters
    ----------
    posterior : Posterior
        Draws of a fitted law.
    table : RunTable
        Runs to score (all their checkpoints and domains with a logged loss, the
        evaluation-only domains the posterior predicts included).
    by_domain : bool
        Also split by domain: one value per (run, domain) over that domain's cells.
    expected : ndarray ``(S, rows, K)``, optional
        ``posterior.expected_loss`` on the table, when already computed.
    method : {"auto", "closed_form", "quadrature"}
        Normal likelihood: closed form (default) or Gauss-Hermite quadrature (a check);
        Student-t: always quadrature.

    Returns
    -------
    (loglik, runs)
        ``loglik`` is ``(S, R)`` (or ``(S, R, K)`` with ``by_domain``; NaN where a run has
        no loss on a domain), the density of the losses themselves (nats); ``runs``
        the run ids in order of first appearance. Runs without any logged loss are
        left out (they carry no evidence to score).
    """
    table = observed_table(posterior, table)
    losses = np.asarray(table.losses, dtype=float)
    ids = np.asarray(table.run_ids, dtype=str)
    # A run without any logged loss carries no evidence: it is not scored.
    first = pd.unique(ids[np.isfinite(losses).any(axis=1)])
    remap = {r: i for i, r in enumerate(first)}
    codes = np.array([remap.get(r, -1) for r in ids], dtype=int)
    R, K = len(first), table.n_domains
    rows, doms = np.nonzero(np.isfinite(losses))
    mu = posterior.expected_loss(table.weights, table.model_size, table.tokens) if expected is None else expected
    S = mu.shape[0]
    y = np.log(losses[rows, doms])
    if posterior.sigma is None:
        raise UsageError("the posterior has no observation noise (sigma): cannot score held-out losses")
    scale = observation.cell_sd(posterior.sigma, getattr(posterior, "observation", None),
                                table.weights)[:, rows, doms]
    groups = codes[rows] * K + doms if by_domain else codes[rows]
    G = R * K if by_domain else R
    ll = observation.grouped_loglik(y, np.log(mu[:, rows, doms]), scale, groups, G, run_sd=posterior.run_sd,
                                    nu=posterior.nu, method=method)
    counts = np.bincount(groups, minlength=G)
    ll = ll - np.bincount(groups, weights=y, minlength=G)[None, :]  # density of L, not log L
    ll = np.where(counts[None, :] > 0, ll, np.nan)
    if by_domain:
        ll = ll.reshape(S, R, K)
    return ll, np.asarray(first, dtype=object)


def run_level_loglik(idata) -> tuple[np.ndarray, np.ndarray]:
    """A fit's stored pointwise log-likelihood summed per training run.

    Sums all checkpoints and domains of each run (missing losses count 0), keeping the
    chain and draw axes: ``(chain, draw, run)``, runs in order of first appearance.
    This is conditional on each run's fitted offset; :func:`integrated_loglik`
    integrates the offset out (the two agree for a fit without a run effect).
    """
    from .. import _az

    ll, run_ids = _az.pointwise_loglik(idata)
    runs = pd.unique(run_ids)
    where = {r: i for i, r in enumerate(runs)}
    codes = np.array([where[r] for r in run_ids], dtype=int)
    per_row = np.nansum(ll, axis=-1)  # (chain, draw, row)
    chains, draws, rows = per_row.shape
    summed = observation.group_sum(per_row.reshape(chains * draws, rows), codes, len(runs))
    return summed.reshape(chains, draws, len(runs)), np.asarray(runs, dtype=object)


def run_level_loo(idata) -> dict:
    """PSIS-LOO of a fit with a training run as the unit left out.

    Returns the dict of :func:`bayesmix._az.psis_loo` plus ``runs``, ``elpd`` (the sum)
    and ``se``.
    """
    from .. import _az

    ll, runs = run_level_loglik(idata)
    out = _az.psis_loo(ll, posterior_idata=idata)
    n = len(runs)
    out.update(runs=runs, elpd=float(out["elpd_i"].sum()), se=float(math.sqrt(n * np.var(out["elpd_i"]))))
    return out


def score_runs(posterior, table, *, seed: int = 0, log_weights=None) -> dict:
    """Held-out scores of the runs of ``table`` under ``posterior``.

    Parameters
    ----------
    posterior : Posterior
        Fitted on runs other than those of ``table`` (or, with ``log_weights``, on all).
    table : RunTable
        The runs to score (the evaluation-only domains the posterior predicts included,
        as cells of weight 0).
    seed : int
        Seed of the predictive draws: the law's error at scales the fit did not see, and a
        new run's noise (interval quantiles).
    log_weights : ndarray ``(S, R)``, optional
        Normalised PSIS log weights per run (leave-one-run-out posteriors); without
        them every draw has weight ``1/S``.

    Returns
    -------
    dict
        ``runs`` (R,), ``run_lpd`` (R,), ``run_domain_lpd`` (R, K) and the cells
        ``cell_row`` (row in ``table``), ``cell_domain``, ``observed``, ``mean``,
        ``lower``, ``upper`` (the central 90 % predictive interval) and ``trained``
        (the run's training weight on the domain is positive); ``inside_draws``
        ``(S, cells)``, whether each joint predictive draw lies in the interval (for
        :func:`~bayesmix.metrics.pooled_coverage_band`; None with ``log_weights``).
    """
    table = observed_table(posterior, table)
    mu = posterior.expected_loss(table.weights, table.model_size, table.tokens, seed=seed)
    ll_run, runs = integrated_loglik(posterior, table, expected=mu)
    ll_rd, _ = integrated_loglik(posterior, table, expected=mu, by_domain=True)
    first = {r: i for i, r in enumerate(runs)}
    codes = np.array([first.get(r, -1) for r in np.asarray(table.run_ids, dtype=object)], dtype=int)
    losses = np.asarray(table.losses, dtype=float)
    rows, doms = np.nonzero(np.isfinite(losses))
    pred = posterior.add_noise(mu, seed=seed, weights=table.weights)[:, rows, doms]
    mu_cells = mu[:, rows, doms]
    if log_weights is None:
        run_lpd = _logmeanexp(ll_run, axis=0)
        with np.errstate(invalid="ignore"):
            run_domain_lpd = _logmeanexp(ll_rd, axis=0)
        mean = mu_cells.mean(axis=0)
        lower, upper = np.quantile(pred, INTERVAL_QUANTILES, axis=0)
        inside_draws = (lower <= pred) & (pred <= upper)
    else:
        lw = np.asarray(log_weights, dtype=float)
        run_lpd = special.logsumexp(lw + ll_run, axis=0)
        with np.errstate(invalid="ignore"):
            run_domain_lpd = special.logsumexp(lw[:, :, None] + ll_rd, axis=0)
        w = np.exp(lw[:, codes[rows]])
        w = w / w.sum(axis=0, keepdims=True)
        mean = (w * mu_cells).sum(axis=0)
        lower, upper = weighted_quantile(pred, INTERVAL_QUANTILES, w)
        inside_draws = None  # the draws are weighted per run: no joint outcome to score
    run_domain_lpd = np.where(np.isnan(ll_rd).all(axis=0), np.nan, run_domain_lpd)
    return {
        "runs": [str(r) for r in runs],
        "run_lpd": run_lpd,
        "run_domain_lpd": run_domain_lpd,
        "cell_row": rows,
        "cell_domain": doms,
        "observed": losses[rows, doms],
        "mean": mean,
        "lower": lower,
        "upper": upper,
        "trained": np.asarray(table.weights, dtype=float)[rows, doms] > 0,
        "inside_draws": inside_draws,
    }


def stacking_weights(lpd) -> np.ndarray:
    """Stacking weights of models from their pointwise held-out log densities.

    Maximises ``sum_i log sum_k w_k exp(lpd[i, k])`` over the simplex (Yao et al.
    2018), the objective of :func:`arviz.compare` with ``method="stacking"``.

    Parameters
    ----------
    lpd : array_like ``(points, models)``

    Returns
    -------
    ndarray ``(models,)``
    """
    lpd = np.asarray(lpd, dtype=float)
    n, k = lpd.shape
    if k == 1:
        return np.ones(1)
    shifted = lpd - lpd.max(axis=1, keepdims=True)
    dens = np.exp(shifted)

    def objective(z):
        z = np.append(z, 0.0)
        w = special.softmax(z)
        mix = dens @ w
        value = -np.sum(np.log(mix))
        grad_w = -(dens / mix[:, None]).sum(axis=0)
        grad_z = w * (grad_w - np.dot(w, grad_w))
        return value, grad_z[:-1]

    best = None
    for start in (np.zeros(k - 1), *[np.where(np.arange(k - 1) == j, 3.0, 0.0) for j in range(k - 1)]):
        res = optimize.minimize(objective, start, jac=True, method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    w = special.softmax(np.append(best.x, 0.0))
    w[w < 1e-8] = 0.0
    return w / w.sum()
