"""The observation model's terms in the PyMC model of a fit."""

from __future__ import annotations

import numpy as np

from .design import ObservationDesign
from .mixture_effects import block_average, mixture_marginal_logp
from .reducible import discrepant_log_mean, floor_for
from .variables import CENTRED_LOG_JACOBIAN


def add_likelihood(design: ObservationDesign, table, log_mu, priors: dict, scaling, log_floor=None) -> None:
    """Add the observation model of ``table`` to the current PyMC model.

    ``log_mu`` is the law's log-mean ``(rows, K)`` in nats (a tensor); ``log_floor`` the
    log of its irreducible loss ``(K,)`` in nats, which a design whose discrepancy
    scales the reducible loss needs (:func:`discrepant_log_mean`). Random variables
    added: ``sigma`` (domain), ``nu`` (Student-t), ``run_sd`` and ``run_z`` (run offset),
    ``disc_slope_mean`` (feature), ``disc_slope_sd`` (where the design learns it),
    ``disc_slope_z`` (feature, domain), ``disc_amp``, ``disc_white`` (scale, domain)
    (discrepancy), ``mix_sd`` (domain) and ``mix_z`` (mixture, domain)
    (mixture effect); and the observed ``log_loss`` over the cells with a logged loss.
    Where slopes are sampled centred, the deterministic
    :data:`~bayesmix.observation.CENTRED_LOG_JACOBIAN` records their Jacobian.
    """
    import pymc as pm

    from ..priors import make_rv

    losses = np.asarray(table.losses, dtype=float)
    rows, doms = np.nonzero(np.isfinite(losses))
    model = pm.modelcontext(None)
    cell_row = pm.Data("cell_row", rows.astype("int64"))
    cell_domain = pm.Data("cell_domain", doms.astype("int64"))
    offset = log_mu[cell_row, cell_domain]
    run_offset = None
    if design.run_effect:
        _, run_index = np.unique(np.asarray(table.run_ids, dtype=str), return_inverse=True)
        cell_run = pm.Data("cell_run", run_index[rows].astype("int64"))
        run_sd = make_rv("run_sd", priors["run_sd"])
        run_z = pm.Normal("run_z", 0.0, 1.0, dims="run")
        run_offset = (run_sd * run_z)[cell_run]
    if design.discrepancy:
        # On the law's mean alone: on the reducible loss it is not an offset.
        offset = _add_discrepancy(design, table, offset, log_floor, priors, scaling, rows, cell_domain)
    if run_offset is not None:
        offset = offset + run_offset
    if design.mixture_effect:
        model.add_coords({"mixture": list(design.mixtures)})
        mix_sd = make_rv("mix_sd", priors["mix_sd"], dims="domain")
        mixture_of_cell = design.mixture_index(table.weights)[rows]
        if not design.marginal_mixture_effect:
            cell_mixture = pm.Data("cell_mixture", mixture_of_cell.astype("int64"))
            mix_z = pm.Normal("mix_z", 0.0, 1.0, dims=("mixture", "domain"))
            effect = mix_sd[None, :] * mix_z
            if design.mixture_blocks:
                effect = effect - pm.math.dot(pm.Data("mixture_block_average", block_average(design.mixture_blocks)),
                                              effect)
            offset = offset + effect[cell_mixture, cell_domain]
    sigma = make_rv("sigma", priors["sigma"], dims="domain")
    observed = pm.Data("observed_log_loss", np.log(losses[rows, doms]))
    if design.marginal_mixture_effect:
        # Group m * K + k: mixture m on domain k (as data, so that one compiled model
        # serves tables with any number of mixtures).
        K, M = losses.shape[1], len(design.mixtures)
        groups = pm.Data("cell_mixture_group", (mixture_of_cell * K + doms).astype("int64"))
        group_domain = pm.Data("mixture_group_domain", np.tile(np.arange(K), M).astype("int64"))
        inputs = [offset, sigma[cell_domain], sigma[group_domain], mix_sd[group_domain], groups]
        signature = "(c),(c),(g),(g),(c)"
        if design.mixture_blocks:
            # Block b on domain k: b * K + k.
            blocks = np.asarray(design.mixture_blocks, dtype=int)
            inputs.append(pm.Data("mixture_group_block",
                                  (np.repeat(blocks, K) * K + np.tile(np.arange(K), M)).astype("int64")))
            signature += ",(g)"
        # One multivariate observation of all cells: its density is the closed form, its
        # draws (prior and posterior predictive) the effects and the noise.
        pm.CustomDist("log_loss", *inputs, logp=_integrated_logp, random=_integrated_random,
                      signature=signature + "->(c)", observed=observed, dims="cell")
    elif design.likelihood == "student_t":
        nu = make_rv("nu", priors["nu"])
        pm.StudentT("log_loss", nu=nu, mu=offset, sigma=sigma[cell_domain], observed=observed, dims="cell")
    else:
        pm.Normal("log_loss", mu=offset, sigma=sigma[cell_domain], observed=observed, dims="cell")


def _add_discrepancy(design: ObservationDesign, table, log_mu_cells, log_floor, priors, scaling, rows, cell_domain):
    """The cells' law log-mean with the discrepancy over scale applied (see
    :mod:`bayesmix.observation`), its variables added to the model in context."""
    import pymc as pm
    import pytensor.tensor as pt

    from ..priors import make_rv, root_mean_square

    model = pm.modelcontext(None)
    n, d = scaling.scale_inputs(table.model_size, table.tokens)
    model.add_coords({"scale": np.arange(len(design.scale_points)), "scale_feature": list(design.features)})
    cell_scale = pm.Data("cell_scale", design.scale_index(n, d)[rows].astype("int64"))
    factor = pm.Data("disc_smooth_factor", design.smooth_factor())
    slope_mean = make_rv("disc_slope_mean", priors["disc_slope_mean"], dims="scale_feature")
    if design.learns_slope_spread:
        slope_sd = make_rv("disc_slope_sd", priors["disc_slope_sd"])
    else:
        slope_sd = root_mean_square(priors["disc_slope_sd"])
    fitted_slope = _discrepancy_slopes(design, slope_mean, slope_sd, np.shape(table.losses)[1])
    amp = make_rv("disc_amp", priors["disc_amp"])
    white = pm.Normal("disc_white", 0.0, 1.0, dims=("scale", "domain"))
    # The smooth part without its level and linear trend at the fitted scales: those
    # are the law's level and trend (no two terms explain one thing).
    delta = amp * pm.math.dot(factor, white)
    if design.fitted_slopes.any():
        # Only the features whose slopes are fitted: the others' are 0 at every fitted scale.
        centred = pm.Data("disc_centred_points", design.slope_distance(design.scale_points)[:, design.fitted_slopes])
        delta = delta + pm.math.dot(centred, fitted_slope)
    floor = floor_for(design.discrepancy_scale, log_floor)
    return discrepant_log_mean(log_mu_cells, delta[cell_scale, cell_domain],
                               None if floor is None else floor[cell_domain], math=pt)


def _integrated_logp(value, mu, cell_sigma, group_sigma, group_tau, groups, group_block=None):
    return mixture_marginal_logp(value - mu, cell_sigma, group_sigma, group_tau, groups, group_block)


def _integrated_random(mu, cell_sigma, group_sigma, group_tau, groups, group_block=None, rng=None, size=None):
    batch = tuple(np.atleast_1d(size)) if size is not None else ()
    effect = rng.standard_normal(batch + np.shape(group_tau)[-1:]) * group_tau
    if group_block is not None:
        effect = effect - effect @ block_average(group_block).T
    noise = rng.standard_normal(batch + np.shape(mu)[-1:]) * cell_sigma
    return mu + effect[..., np.asarray(groups, dtype=int)] + noise


def _discrepancy_slopes(design: ObservationDesign, slope_mean, slope_sd, n_domains: int):
    """Add the discrepancy's slopes ``(feature, domain)``, partially pooled across domains
    (``slope_sd`` a variable, or a constant where the design does not learn the spread:
    :attr:`ObservationDesign.learns_slope_spread`), with ``disc_slope_z`` (their
    standardised values) in the model either way; return the slopes of the features
    fitted with the law (:attr:`ObservationDesign.fitted_slopes`), the ones the
    likelihood reads.

    The slopes of the features the design names (:meth:`ObservationDesign.centred_features`:
    fitted with the law through three values or more, and enough of them to pin ``sd``
    away from 0) are sampled centred, ``disc_slope ~ N(mean, sd)``: the data of every
    fitted scale pin each of them, so in the non-centred form ``mean + sd * z`` each ``z``
    is held on a curved ridge ``z ~ (slope - mean) / sd`` along which alone ``sd`` moves.
    The other features' slopes are sampled non-centred: slopes that act only beyond the
    fitted scales are drawn from their prior, and a few fitted ones, or slopes through two
    fitted values (a level step the law's scale terms also make), leave ``sd`` free to
    reach 0, where the centred form has a funnel. With both kinds the centred slopes are
    ``disc_slope_centred``, the others ``disc_slope_noncentred_z``, and ``disc_slope`` is
    their deterministic union in feature order.
    """
    import pymc as pm
    import pytensor.tensor as pt

    dims = ("scale_feature", "domain")
    fitted = design.fitted_slopes
    centred = design.centred_features(n_domains)
    if not centred.any():
        slope = slope_mean[:, None] + slope_sd * pm.Normal("disc_slope_z", 0.0, 1.0, dims=dims)
        if not design.learns_slope_spread:
            # The spread is a constant, not a recorded draw: record the slopes themselves.
            slope = pm.Deterministic("disc_slope", slope, dims=dims)
        return slope if fitted.all() else slope[np.flatnonzero(fitted)]
    # The centred slopes' Jacobian, for comparing chains' log densities (see
    # CENTRED_LOG_JACOBIAN): a chain in the funnel's neck, all slopes at their mean and
    # the spread near 0, otherwise looks as likely as the main mode.
    pm.Deterministic(CENTRED_LOG_JACOBIAN, n_domains * int(centred.sum()) * pt.log(slope_sd))
    if centred.all():
        slope = pm.Normal("disc_slope", slope_mean[:, None], slope_sd, dims=dims)
        pm.Deterministic("disc_slope_z", (slope - slope_mean[:, None]) / slope_sd, dims=dims)
        return slope if fitted.all() else slope[np.flatnonzero(fitted)]
    pinned, loose = np.flatnonzero(centred), np.flatnonzero(~centred)
    pm.modelcontext(None).add_coords({"centred_feature": [design.features[i] for i in pinned],
                                      "noncentred_feature": [design.features[i] for i in loose]})
    pinned_slope = pm.Normal("disc_slope_centred", slope_mean[pinned, None], slope_sd,
                             dims=("centred_feature", "domain"))
    loose_z = pm.Normal("disc_slope_noncentred_z", 0.0, 1.0, dims=("noncentred_feature", "domain"))
    # Per feature, in feature order; the likelihood reads the fitted features' only.
    rows = {i: pinned_slope[j] for j, i in enumerate(pinned)}
    rows.update({i: slope_mean[i] + slope_sd * loose_z[j] for j, i in enumerate(loose)})
    slope = pm.Deterministic("disc_slope", pt.stack([rows[i] for i in range(len(rows))]), dims=dims)
    pm.Deterministic("disc_slope_z", (slope - slope_mean[:, None]) / slope_sd, dims=dims)
    return pt.stack([rows[i] for i in np.flatnonzero(fitted)])
