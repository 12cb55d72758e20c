"""Where a predictive interval's width comes from: the uncertainty budget of a prediction.

The log-loss a new run would log at a mixture and scale is, per posterior draw ``s``,

    log L = log mu_s(h, N, D) + delta_s(scale) + eta_s(mixture) + u + eps

(:mod:`bayesmix.observation`). Given the draw, the law's mean, the discrepancy's part the
data pin (its fitted slopes' line and the smooth part kriged from the fitted scales) and a
seen mixture's effect are known; what a scale the fit did not see, a new mixture, and a
new run draw afresh is independent of them. By the law of total variance the
predictive variance of ``log L`` is then the sum of

* ``parameters``: the variance over draws of what the data pin;
* ``law error beyond the fitted scales``: the mean over draws of the discrepancy's fresh
  variance at a new scale (:meth:`bayesmix.observation.ObservationDraws.discrepancy_moments`;
  0 at a fitted scale), plus the variance of the line that slopes acting outside the
  fitted scales only draw from their prior
  (:meth:`~bayesmix.observation.ObservationDraws.prior_slope_line`: along a feature the
  table never varied, the law's error is its prior);
* ``new mixture``: the mean variance of a mixture effect the fit did not see (0 for a
  mixture it saw, or without mixture effects);
* ``run noise``: the mean variance of a new run's offset and cell noise.

Beside the parts, ``discrepancy_shift``: the posterior mean of the discrepancy at the
point (its fitted slopes' line and the smooth part kriged from the fitted scales), the
log-offset the observation model adds to the law's own mean. Where the law and the
discrepancy's slopes explain the same trend over scale, the posterior can give it to the
slopes (``benchmarks/bench_extrapolation.py``, ``law_level@<size>``: SlimPajama 7's fits
<= 680M hand them the whole fall of the loss with model size); a large shift then says the
prediction's level rests on the discrepancy's extrapolation more than on the law's.

The sum is exact but for the covariance between the prior-drawn line and the rest, which
is 0 unless the slopes' spread is learned from fitted slopes beside them; ``total`` is the
exact predictive sd either way. Standard deviations of the log-loss are relative errors
of the loss, to first order.
"""

from __future__ import annotations

import numpy as np

from .errors import UsageError

#: The budget's parts, in the order they are reported.
PARTS = ("parameters", "law error beyond the fitted scales", "new mixture", "run noise")


def budget_refusal(posterior) -> str | None:
    """Why :func:`uncertainty_budget` cannot split ``posterior``'s predictive sd into
    parts, or None where it can: the parts add on the log-loss only where the discrepancy
    is an offset to it (``discrepancy_scale="log"``, the default)."""
    draws = posterior.observation
    if draws is not None and draws.design.discrepancy_scale != "log":
        return ("the uncertainty budget needs the discrepancy on the log loss (the default "
                f"discrepancy_scale='log'); this fit has '{draws.design.discrepancy_scale}'")
    return None


def uncertainty_budget(posterior, weights, model_size, tokens) -> dict[str, np.ndarray]:
    """The parts of the predictive sd of the log-loss at each row, ``(rows, T)`` each.

    Parameters
    ----------
    posterior : Posterior
        A fitted law's posterior (:class:`bayesmix.posterior.Posterior`).
    weights : array_like ``(rows, K)`` or ``(K,)``
        Mixtures over the posterior's domains.
    model_size, tokens : float or array_like ``(rows,)``
        N and D in natural units.

    Returns
    -------
    dict
        One ``(rows, T)`` array of standard deviations (log-loss) per name in :data:`PARTS`,
        and ``total``: the sd of the log-loss of
        :meth:`~bayesmix.posterior.Posterior.predictive_loss`'s draws (the square root of
        the sum of the parts' squares, but for the covariance in the module docstring). A
        Student-t fit with draws of ``nu <= 2`` has infinite run noise. And
        ``discrepancy_shift``: the posterior mean of the discrepancy there (log-loss; 0
        without one).

    Raises
    ------
    UsageError
        Where the fit's discrepancy scales the law's reducible loss
        (``discrepancy_scale="reducible"``): its parts do not add on the log scale there.
    """
    refusal = budget_refusal(posterior)
    if refusal:
        raise UsageError(refusal)
    draws = posterior.observation
    h = np.atleast_2d(posterior.full_weights(weights))
    rows = h.shape[0]
    N = np.broadcast_to(np.asarray(model_size, dtype=float), (rows,))
    D = np.broadcast_to(np.asarray(tokens, dtype=float), (rows,))
    fixed = np.log(posterior.law_mean(weights, N, D))
    S, _, T = fixed.shape
    fresh_scale = np.zeros_like(fixed)
    prior_line = np.zeros_like(fixed)
    new_mixture = np.zeros_like(fixed)
    shift = np.zeros((rows, T))
    if draws is not None:
        n, d = posterior.scaling.scale_inputs(N, D)
        moments = draws.discrepancy_moments(n, d)
        if moments is not None:
            prior_line = draws.prior_slope_line(n, d)
            fixed = fixed + moments[0] - prior_line
            fresh_scale = moments[1]
            shift = moments[0].mean(axis=0)
        effect, known = draws.known_mixture_effect(h)
        if effect is not None:
            fixed = fixed + effect
            new_mixture = np.where(known[None, :, None], 0.0, draws.new_mixture_sd()[:, None, :] ** 2)
    noise = np.zeros((S, rows, T))
    if posterior.sigma is not None:
        cell = np.asarray(posterior.sigma, dtype=float) ** 2
        if posterior.nu is not None:
            nu = np.asarray(posterior.nu, dtype=float).reshape(-1, 1)
            cell = np.where(nu > 2, cell * nu / np.where(nu > 2, nu - 2, 1.0), np.inf)
        noise = noise + cell[:, None, :]
    if posterior.run_sd is not None:
        noise = noise + (np.asarray(posterior.run_sd, dtype=float) ** 2)[:, None, None]
    variances = {"parameters": fixed.var(axis=0),
                 "law error beyond the fitted scales": fresh_scale.mean(axis=0) + prior_line.var(axis=0),
                 "new mixture": new_mixture.mean(axis=0), "run noise": noise.mean(axis=0)}
    out = {name: np.sqrt(variances[name]) for name in PARTS}
    out["total"] = np.sqrt((fixed + prior_line).var(axis=0) + fresh_scale.mean(axis=0)
                           + variances["new mixture"] + variances["run noise"])
    out["discrepancy_shift"] = shift
    return out
