"""Model building, NUTS sampling, the diagnostics gate, and saving/loading fits.

The PyMC model is built from (law, run table, priors). Observations enter on the
log-loss scale with a noise sd per domain; a per-run offset shared by all checkpoints
and domains of one training run keeps checkpoints of one run from counting as
independent evidence. Missing losses are masked out of the likelihood.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from . import _az, chain_stacking, observation, samplers
from .gate import check_gate, diagnose, without_minor_mode_chains
from .errors import UsageError
from .fit_settings import DEFAULT_LAW, FitSettings
from .laws import Law, get_law
from .coordinates import add_level_terms, add_share_terms, uses_level_coordinates, uses_share_coordinates
from .posterior import Posterior, observed_table
from .priors import make_rv, resolve_priors
from .scaling import Scaling
from .starts import find_map, untransformed_point
from .compare import integrated_loglik

LIKELIHOODS = observation.LIKELIHOODS
#: The samplers' names (:data:`bayesmix.fit_settings.SAMPLERS`), for the callers that read them here.
SAMPLERS = samplers.SAMPLERS

#: |corr(log N, log D)| above which the N and D terms of a design are called collinear.
COLLINEAR = 0.95

#: The former name of :func:`bayesmix.starts.untransformed_point`, kept for its callers.
_untransformed_point = untransformed_point


def build_model(law: Law, table, priors: dict | None = None, *, likelihood: str = "normal",
                run_effect: str = "auto", scaling: Scaling | None = None,
                coordinates: str = "auto", discrepancy: str = "auto", mixture_effect: str = "auto",
                design: observation.ObservationDesign | None = None) -> tuple[pm.Model, Scaling]:
    """Build the PyMC model of ``law`` on ``table``.

    Parameters
    ----------
    law : Law
        A registered law.
    table : RunTable
        Runs with losses (missing values masked).
    priors : dict, optional
        Prior overrides (see :func:`bayesmix.priors.resolve_priors`).
    likelihood : {"normal", "student_t"}
        Observation model on log-loss; Student-t for tables with outliers.
    run_effect : {"auto", "on", "off"}
        Per-run offset shared by a run's checkpoints and domains (see
        :class:`bayesmix.observation.ObservationDesign` for "auto").
    discrepancy : {"auto", "on", "off"}
        The law's error as a function of scale (:mod:`bayesmix.observation`); "auto":
        wherever the table has more than one scale.
    mixture_effect : {"auto", "on", "off"}
        A mixture's effect shared by its runs at every scale ("auto": with the
        discrepancy, where a mixture was run at several scales).
    design : ObservationDesign, optional
        The observation model's terms, when already decided (then ``likelihood``,
        ``run_effect``, ``discrepancy`` and ``mixture_effect`` are not read).
    scaling : Scaling, optional
        Reference units; default from the table.
    coordinates : {"auto", "level", "natural"}
        The sampler's coordinates for the law's :attr:`~bayesmix.laws.Law.level_terms`:
        "level" samples the log of their sum and their log-ratios (an exact change of
        variables, see :mod:`bayesmix.coordinates`); "natural" samples each term with its
        own prior as a PyMC random variable (needed for prior predictive sampling);
        "auto" uses level coordinates wherever the law and its priors allow them, on
        any design (measurements in :mod:`bayesmix.coordinates`). Except under
        "natural", the coefficients of the law's
        :attr:`~bayesmix.laws.Law.share_terms` are sampled in typical-share coordinates
        where their priors allow them (also an exact change of variables).

    Returns
    -------
    (pm.Model, Scaling)
    """
    if coordinates not in ("auto", "level", "natural"):
        raise UsageError(f"coordinates must be 'auto', 'level' or 'natural', got '{coordinates}'")
    table = modelled_table(law, table)
    law.check_table(table)
    priors = resolve_priors(law, priors)
    level = _level_coordinates(law, priors, coordinates)
    shares = coordinates != "natural" and uses_share_coordinates(law, priors)
    scaling = scaling or Scaling.from_table(table)
    design = design or observation.ObservationDesign.from_table(
        table, scaling, likelihood=likelihood, run_effect=run_effect, discrepancy=discrepancy,
        mixture_effect=mixture_effect, law=law)
    coords = _model_coords(table)
    n, d = scaling.scale_inputs(table.model_size, table.tokens)
    with pm.Model(coords=coords) as model:
        # Every number taken from the table enters as a shared variable, never a constant,
        # so that compiled code (PyTensor's C and numba caches, nutpie's compiled model via
        # :func:`bayesmix.nutpie_backend.model_signature`) is reused across data sets of the same law, e.g. folds.
        weights = pm.Data("weights", np.asarray(table.weights, dtype=float))
        n_data = pm.Data("n", n[:, 0])[:, None]
        d_data = pm.Data("d", d[:, 0])[:, None]
        params = _law_parameters(law, priors, level, shares, table, scaling, n)
        mean = law.mean(params, weights, n_data, d_data)
        log_loss_ref = pm.Data("log_loss_ref", np.log(np.asarray(scaling.loss_ref, dtype=float)))
        log_mu = pt.log(mean) + log_loss_ref
        log_floor = None
        if design.discrepancy_scale == "reducible":
            log_floor = pt.log(params[law.irreducible_loss]) + log_loss_ref
        observation.add_likelihood(design, table, log_mu, priors, scaling, log_floor=log_floor)
    return model, scaling


def modelled_table(law: Law, table):
    """The table ``law`` is fitted to: with the evaluation-only domains as domains of
    weight 0 where the law predicts them (:attr:`~bayesmix.laws.Law.predicts_evaluation_domains`),
    else as it is (they stay evaluation-only, kept but not fitted)."""
    return table.with_evaluation_domains() if law.predicts_evaluation_domains else table


def modelled_evaluation_domains(law: Law, table) -> tuple[tuple, tuple]:
    """The evaluation-only domains of ``table`` that a fit of ``law`` predicts, and those
    it leaves out."""
    names = tuple(table.eval_domains)
    return (names, ()) if law.predicts_evaluation_domains else ((), names)


def _level_coordinates(law: Law, priors: dict, coordinates: str) -> bool:
    """Whether the model samples the law's level terms in level coordinates."""
    level = uses_level_coordinates(law, priors) and coordinates in ("auto", "level")
    if coordinates == "level" and not level:
        raise UsageError(f"law '{law.name}' with these priors cannot use level coordinates: its level "
                         "terms need priors on the positive half-line")
    return level


def _model_coords(table) -> dict:
    """The model's coordinates: domains, runs and the observed cells (at least one)."""
    rows, _ = np.nonzero(np.isfinite(np.asarray(table.losses, dtype=float)))
    if len(rows) == 0:
        raise UsageError(f"{table.source}: the table has no observed losses to fit")
    run_labels = np.unique(np.asarray(table.run_ids, dtype=str))
    return {"domain": list(table.domains), "domain_j": list(table.domains), "run": list(run_labels),
            "cell": np.arange(len(rows))}


def _law_parameters(law: Law, priors: dict, level: bool, shares: bool, table, scaling: Scaling,
                    n: np.ndarray) -> dict:
    """The law's parameters as variables of the model in context: the level terms in level
    coordinates where ``level``, the share terms' coefficients in typical-share
    coordinates where ``shares``, the others from their priors (below the smallest model
    size where a parameter asks for it)."""
    p = {}
    if level:
        p.update(add_level_terms(law, priors, _typical_log_loss(table.losses, scaling.loss_ref)))
    coefficients = {coefficient for coefficient, _ in law.share_terms} if shares else set()
    if any(param.below_model_size for param in law.params):
        smallest_size = pm.Data("smallest_model_size", float(np.min(n)))
    p.update({param.name: make_rv(param.name, priors[param.name], dims=param.dims or None,
                                  upper=smallest_size if param.below_model_size else None)
              for param in law.params if param.name not in p and param.name not in coefficients})
    if shares:
        p.update(add_share_terms(law, priors, p, table.weights))
    return p


def _typical_log_loss(losses: np.ndarray, loss_ref) -> np.ndarray:
    """Mean log loss per domain relative to ``loss_ref``; 0 for a domain with no logged loss.

    A trained domain whose loss is never logged (e.g. RegMix's tables) has an all-NaN
    column: it gets 0 (the reference) without numpy's "Mean of empty slice" warning.
    """
    with np.errstate(all="ignore"):
        logs = np.log(np.asarray(losses, dtype=float))
    seen = np.isfinite(logs)
    counts = seen.sum(axis=0)
    mean = np.where(seen, logs, 0.0).sum(axis=0) / np.maximum(counts, 1)
    return np.where(counts > 0, mean - np.log(np.asarray(loss_ref, dtype=float)), 0.0)


def map_posterior(table, law=DEFAULT_LAW, *, priors=None, starts: int = 4, seed: int = 0,
                  likelihood: str = "normal", run_effect: str = "auto", discrepancy: str = "auto") -> Posterior:
    """A MAP point fit of ``law`` as a one-draw :class:`Posterior`.

    The best of ``starts`` L-BFGS-B searches of the posterior density (the same model and
    compiled gradient as the NUTS fit, see :func:`find_map`). Useful to compare with
    point-fit protocols (e.g. a paper's least-squares fit) and as a quick look; it
    carries no parameter uncertainty, so its predictive intervals are too narrow.

    Returns
    -------
    Posterior
        One draw: the law's parameters and the observation model's variables at the MAP
        point.
    """
    import pytensor

    law = get_law(law) if isinstance(law, str) else law
    domains, (eval_domains, _) = table.domains, modelled_evaluation_domains(law, table)
    table = modelled_table(law, table)
    scaling = Scaling.from_table(table)
    design = observation.ObservationDesign.from_table(table, scaling, likelihood=likelihood,
                                                      run_effect=run_effect, discrepancy=discrepancy,
                                                      law=law)
    model, _ = build_model(law, table, priors, scaling=scaling, design=design)
    point, _ = find_map(model, starts=starts, seed=seed)
    names = [p.name for p in law.params] + [n for n in observation.RECORDED if n in model.named_vars]
    evaluate = pytensor.function(model.value_vars, model.replace_rvs_by_values([model[n] for n in names]),
                                 on_unused_input="ignore")
    values = {n: np.asarray(v, dtype=float)[None]
              for n, v in zip(names, evaluate(*[point[v.name] for v in model.value_vars]))}
    if design.marginal_mixture_effect:
        values["mix_z"] = _integrated_mixture_z(law, values, scaling, table, design)
    return posterior_from_values(law, values, scaling, domains, design, eval_domains=eval_domains)


def log_scale_correlation(table) -> float | None:
    """Correlation of log N and log D over the rows; None unless both take several values."""
    if len(np.unique(table.model_size)) < 2 or len(np.unique(table.tokens)) < 2:
        return None
    return float(np.corrcoef(np.log(table.model_size), np.log(table.tokens))[0, 1])


def identification_warnings(law: Law, table) -> list[str]:
    """Plain-language warnings when the design cannot identify the law's scale terms."""
    out = []
    sizes = np.unique(table.model_size)
    tokens = np.unique(table.tokens)
    if law.uses_model_size and len(sizes) == 1:
        out.append(f"the table has a single model size, so the N terms of '{law.name}' are "
                   "informed by the priors only: extrapolation over N is prior-driven")
    if law.uses_tokens and len(tokens) == 1:
        out.append(f"the table has a single token count, so the D terms of '{law.name}' are "
                   "informed by the priors only")
    corr = log_scale_correlation(table)
    if law.uses_model_size and law.uses_tokens and corr is not None:
        if abs(corr) > COLLINEAR:
            out.append(f"log N and log D are nearly collinear (correlation {corr:.3f}): the N and D "
                       "exponents trade off; add runs at other tokens-per-parameter ratios")
    return out


def compute_loglik(posterior: Posterior, table, run_draws=None) -> np.ndarray:
    """Pointwise log-likelihood of the observed losses, ``(S, rows, T)`` over the
    posterior's target domains (:func:`~bayesmix.posterior.observed_table`), NaN where
    missing.

    Conditional on the fitted run offsets ``run_draws (S, rows)`` where given. The density
    is that of the loss itself (the log-loss density minus ``log L``), so laws fitted to
    the same table are comparable.
    """
    table = observed_table(posterior, table)
    log_mu = np.log(posterior.expected_loss(table.weights, table.model_size, table.tokens))
    if run_draws is not None:
        log_mu = log_mu + run_draws[:, :, None]
    y = np.log(np.asarray(table.losses, dtype=float))[None]
    nu = None if posterior.nu is None else np.asarray(posterior.nu)[:, None, None]
    return observation.cell_logpdf(y, log_mu, np.asarray(posterior.sigma)[:, None, :], nu) - y


def posterior_from_values(law: Law, values: dict, scaling: Scaling, domains, design, meta=None,
                          eval_domains=()) -> Posterior:
    """A :class:`Posterior` from draws by model variable name (law parameters and the
    observation model's :data:`~bayesmix.observation.RECORDED` variables), over the
    mixture ``domains`` and the ``eval_domains`` it predicts (per-domain draws have an
    entry for each, in that order)."""
    extra = observation.ObservationDraws.from_values(design, values)
    has_extra = design.discrepancy or design.mixture_effect
    return Posterior(law, {p.name: values[p.name] for p in law.params}, scaling, tuple(domains),
                     sigma=values.get("sigma"), nu=values.get("nu"), run_sd=values.get("run_sd"),
                     meta=dict(meta or {}), observation=extra if has_extra else None,
                     eval_domains=tuple(eval_domains))


@dataclass
class Fit:
    """A fitted law: its ArviZ tree (posterior, sampler statistics, data) plus what is needed to predict from it.

    Use :func:`fit_law` to create one and :meth:`Fit.load` to read one from disk.
    """

    idata: object
    law: Law
    scaling: Scaling
    domains: tuple
    attrs: dict = field(default_factory=dict)

    @property
    def diagnostics(self) -> dict:
        return self.attrs.get("diagnostics", {})

    @property
    def eval_domains(self) -> tuple:
        """The evaluation-only domains the fit predicts (after :attr:`domains` in its draws)."""
        return tuple(self.attrs.get("eval_domains", ()))

    @property
    def observation_design(self) -> observation.ObservationDesign:
        """The observation model's terms (a fit saved before they were recorded: the
        law-only model with its likelihood and run offset)."""
        return observation.ObservationDesign.from_dict(
            self.attrs.get("observation"), likelihood="student_t" if _az.has_var(self.idata, "nu") else "normal",
            run_effect=_az.has_var(self.idata, "run_sd"))

    def posterior(self, max_draws: int | None = None) -> Posterior:
        """The fit's :class:`Posterior` (optionally thinned to ``max_draws``); where its
        chains settled in separated modes, their groups weighted by stacking
        (:mod:`bayesmix.chain_stacking`)."""
        names = [p.name for p in self.law.params] + list(observation.RECORDED)
        values = {n: _az.stacked_draws(self.idata, n) for n in names if _az.has_var(self.idata, n)}
        values = self.law.upgrade_draws(values, int(self.attrs.get("law_parametrization", self.law.parametrization)))
        meta = {"fingerprint": self.attrs.get("fingerprint"),
                "eval_domains_not_modelled": list(self.attrs.get("eval_domains_not_modelled", []))}
        post = posterior_from_values(self.law, values, self.scaling, self.domains, self.observation_design, meta,
                                     self.eval_domains)
        index = chain_stacking.weighted_draw_index(self.diagnostics, self.idata.posterior.sizes["chain"],
                                                   self.idata.posterior.sizes["draw"])
        if index is not None:
            post = post.subset(index)
        return post.thin(max_draws) if max_draws else post

    def save(self, path):
        """Write the fit to NetCDF atomically."""
        _az.set_attrs(self.idata, self.attrs)
        return _az.save(self.idata, path)

    @classmethod
    def load(cls, path) -> "Fit":
        """Read a fit written by :meth:`save` (a ``.nc`` file or a model folder)."""
        from pathlib import Path

        path = Path(path)
        if path.is_dir():
            candidates = sorted(path.glob("*.nc"))
            if not candidates:
                raise UsageError(f"{path}: no fitted model (.nc) in this folder")
            path = candidates[0]
        if not path.exists():
            raise UsageError(f"{path}: fit file not found; create one with 'bayesmix fit RUNS.csv --out {path}'")
        try:
            idata = _az.load(path)
            attrs = _az.get_attrs(idata)
            law = get_law(attrs["law"], **attrs.get("law_options", {}))
        except (KeyError, OSError, ValueError) as err:
            raise UsageError(f"{path}: not a bayesmix fit ({err})") from None
        # A file written before laws had parametrization versions holds version-1 draws.
        attrs.setdefault("law_parametrization", 1)
        return cls(idata, law, Scaling.from_dict(attrs["scaling"]), tuple(attrs["domains"]), attrs)


def _integrated_mixture_z(law: Law, values: dict, scaling: Scaling, table, design, *, seed=None) -> np.ndarray:
    """``mix_z (S, M, K)`` for draws ``values`` of a model that integrated the mixture
    effects out (:attr:`~bayesmix.observation.ObservationDesign.marginal_mixture_effect`):
    one draw from their conditional posterior per draw, or with ``seed`` None its mean
    (the effects' joint mode given the rest, for a point fit)."""
    without = dataclasses.replace(design, mixture_effect=False, mixtures=(), mixture_blocks=())
    rest = posterior_from_values(law, values, scaling, table.domains, without)
    residual = (np.log(np.asarray(table.losses, dtype=float))[None]
                - np.log(rest.expected_loss(table.weights, table.model_size, table.tokens)))
    if seed is None:
        mean, _ = observation.mixture_effect_conditional(design, table.weights, residual, values["sigma"],
                                                         values["mix_sd"])
        return mean / np.asarray(values["mix_sd"], dtype=float)[:, None, :]
    return observation.conditional_mixture_effects(design, table.weights, residual, values["sigma"],
                                                   values["mix_sd"], seed=seed)


def _draw_integrated_mixture_effects(idata, law: Law, scaling: Scaling, table, design, seed: int) -> None:
    """Add ``mix_z`` to a trace whose model integrated the mixture effects out: one draw
    from their conditional posterior per posterior draw, so that the trace holds every
    variable of the model and predictions see the effects as if they had been sampled."""
    names = [p.name for p in law.params] + [n for n in observation.RECORDED if n != "mix_z"]
    values = {n: _az.stacked_draws(idata, n) for n in names if _az.has_var(idata, n)}
    mix_z = _integrated_mixture_z(law, values, scaling, table, design, seed=[seed, 11])
    _az.set_posterior_var(idata, "mix_z", mix_z, ("mixture", "domain"),
                          {"mixture": list(design.mixtures), "domain": list(table.domains)})


def fit_law(table, law=DEFAULT_LAW, *, priors=None, settings: FitSettings | None = None,
            init: dict | None = None, progressbar: bool = True, allow_warnings: bool = True,
            scaling: Scaling | None = None, **kwargs) -> Fit:
    """Fit a law to a run table by NUTS.

    Parameters
    ----------
    table : RunTable
    law : str or Law
    priors : dict, optional
        Prior overrides.
    settings : FitSettings, optional
        Sampler settings; keyword arguments override single fields.
    init : dict, optional
        Initial values by parameter name (warm start, e.g. a previous posterior mean);
        skips the MAP search.
    progressbar : bool
    allow_warnings : bool
        When False, raise :class:`FitRejectedError` if the diagnostics gate fails.
    scaling : Scaling, optional
        Reference units (default: from the table). Pass a previous fit's ``scaling``
        when refitting a grown table warm-started at that fit's means, so that ``init``
        is in the units the model uses.

    Returns
    -------
    Fit
    """
    law = get_law(law) if isinstance(law, str) else law
    settings = _settings_for(law, settings, kwargs)
    given, table = table, modelled_table(law, table)
    scaling = scaling or Scaling.from_table(table)
    design = observation.ObservationDesign.from_table(
        table, scaling, likelihood=settings.likelihood, run_effect=settings.run_effect,
        discrepancy=settings.discrepancy, mixture_effect=settings.mixture_effect,
        slope_region=settings.slope_region, discrepancy_scale=settings.discrepancy_scale, law=law)
    model, _ = build_model(law, table, priors, scaling=scaling, coordinates=settings.coordinates, design=design)
    sampler = samplers.backend(settings.sampler)
    prepared = sampler.start(sampler.prepare(law, model, settings), law, init, settings, progressbar)
    t1 = time.perf_counter()
    idata, draws_per_chain, dropped_chains, settings, retry = _sample_kept_run(sampler, prepared, law, settings,
                                                                               progressbar)
    timing = {**prepared.timing, "sampling_seconds": time.perf_counter() - t1}
    if design.marginal_mixture_effect:
        _draw_integrated_mixture_effects(idata, law, scaling, table, design, settings.seed)

    fit = Fit(idata, law, scaling, tuple(given.domains),
              {"observation": design.to_dict(), "eval_domains": list(modelled_evaluation_domains(law, given)[0])})
    posterior = fit.posterior()
    _add_table_and_loglik(idata, posterior, table)
    diag = {**_weighted_diagnostics(idata, law, posterior, table), **timing,
            "draws_per_chain": draws_per_chain, "draws_requested": settings.draws,
            "target_accept": settings.target_accept, **retry, **prepared.pilot, **prepared.choices,
            **dropped_chains,
            **law.fit_checks(posterior, table)}
    fit.attrs = _fit_attrs(law, given, priors, scaling, settings, design, diag)
    check_gate(diag, allow_warnings=allow_warnings)
    return fit


def _sample_kept_run(sampler, prepared, law: Law, settings: FitSettings, progressbar: bool):
    """The kept run's draws without minor-mode chains (:func:`without_minor_mode_chains`),
    sampled again at ``settings.retry_target_accept`` where they diverged at a lower
    target acceptance (:attr:`FitSettings.retry_target_accept`).

    Returns ``(idata, draws_per_chain, dropped_chains, settings, retry)``: ``settings``
    as sampled (its ``target_accept`` the retry's after a retry, and no further retry),
    ``retry`` ``{}`` or the first run's ``first_target_accept`` and
    ``first_divergences`` for the fit's diagnostics.
    """
    idata, draws_per_chain = sampler.sample(prepared, law, settings, progressbar)
    idata, dropped_chains = without_minor_mode_chains(idata)
    higher = settings.retry_target_accept
    divergences = (_az.sampler_stats(idata) or {}).get("divergences") or 0
    if higher is None or higher <= settings.target_accept or divergences == 0:
        return idata, draws_per_chain, dropped_chains, settings, {}
    retry = {"first_target_accept": settings.target_accept, "first_divergences": divergences}
    settings = dataclasses.replace(settings, target_accept=higher, retry_target_accept=None)
    idata, draws_per_chain = sampler.sample(prepared, law, settings, progressbar)
    idata, dropped_chains = without_minor_mode_chains(idata)
    return idata, draws_per_chain, dropped_chains, settings, retry


def _settings_for(law: Law, settings: FitSettings | None, overrides: dict) -> FitSettings:
    """A copy of ``settings`` (default :class:`FitSettings`) with ``overrides`` and the
    law's own defaults (:meth:`FitSettings.for_law`), checked; the caller's object is
    left as it was."""
    settings = dataclasses.replace(settings or FitSettings())
    for key, value in overrides.items():
        if not hasattr(settings, key):
            raise TypeError(f"unknown fit setting '{key}'")
        setattr(settings, key, value)
    settings.check()
    samplers.backend(settings.sampler).check(settings)
    return settings.for_law(law)


def _add_table_and_loglik(idata, posterior: Posterior, table) -> None:
    """Store the table and the pointwise log-likelihood (with the run offsets drawn in the
    fit, where the model has them) in ``idata``."""
    run_draws = None
    if _az.has_var(idata, "run_z"):
        _, index = np.unique(np.asarray(table.run_ids, dtype=str), return_inverse=True)
        run_draws = (_az.stacked_draws(idata, "run_sd")[:, None] * _az.stacked_draws(idata, "run_z"))[:, index]
    loglik = compute_loglik(posterior, table, run_draws)
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    _az.add_table_groups(
        idata, weights=table.weights, model_size=table.model_size, tokens=table.tokens,
        run_ids=table.run_ids, losses=table.losses,
        loglik=loglik.reshape(chains, draws, *loglik.shape[1:]),
        domains=table.domains,
    )


def _weighted_diagnostics(idata, law: Law, posterior: Posterior, table) -> dict:
    """The gate's figures (:func:`bayesmix.gate.diagnose`), each group of draws that sit
    apart weighted by stacking (:mod:`bayesmix.chain_stacking`)."""
    diag = diagnose(idata, law)
    if diag.get("chain_groups"):
        chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
        stacked_loglik, _ = integrated_loglik(posterior, table)
        weights = chain_stacking.group_weights(stacked_loglik.reshape(chains, draws, -1),
                                               [chain_stacking.group_of(g, draws) for g in diag["chain_groups"]])
        for group, weight in zip(diag["chain_groups"], [] if weights is None else weights):
            group["weight"] = float(weight)
    return diag


def _fit_attrs(law: Law, table, priors, scaling: Scaling, settings: FitSettings,
               design: observation.ObservationDesign, diag: dict) -> dict:
    """What a fit records beside its draws: law, priors, units, the table's domains (the
    mixture's, the evaluation-only ones the law predicts and those it leaves out) and
    fingerprint, settings, observation design, diagnostics, warnings and versions."""
    import pymc
    import pytensor

    from . import __version__

    return {
        "bayesmix_type": "fit",
        "law": law.name,
        "law_options": law.options,
        "law_parametrization": law.parametrization,
        "priors": resolve_priors(law, priors),
        "scaling": scaling.to_dict(),
        "domains": list(table.domains),
        "eval_domains": list(modelled_evaluation_domains(law, table)[0]),
        "eval_domains_not_modelled": list(modelled_evaluation_domains(law, table)[1]),
        "fingerprint": table.fingerprint(),
        "source": str(table.source),
        "settings": settings.to_dict(),
        "seed": settings.seed,
        "observation": design.to_dict(),
        "diagnostics": diag,
        "warnings": identification_warnings(law, table),
        "versions": {"bayesmix": __version__, "pymc": pymc.__version__,
                     "pytensor": pytensor.__version__, "arviz": _az.version()},
        "scales": {"model_sizes": sorted(set(map(float, table.model_size))),
                   "tokens": [float(np.min(table.tokens)), float(np.max(table.tokens))]},
    }
