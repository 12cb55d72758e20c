"""Acquisition campaigns: select, run (simulated or from a pool of finished runs), refit,
repeat; the three refit strategies and the two observers."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..data import RunTable
from ..decide import Constraints, MixtureProblem, Objective
from ..errors import DataError, UsageError
from ..fit_settings import DEFAULT_LAW
from ..posterior import Posterior
from ..samplers import DEFAULT_SAMPLER
from ..units import parse_quantity
from .candidates import CandidateSet
from .likelihood import effective_sample_size, log_likelihood, normalise_log
from .selection import DEFAULT_ACQUISITION_DRAWS, DEFAULT_METHOD, DEFAULT_OUTCOMES, Acquisition


def table_to_candidates(table: RunTable, *, fixed_cost: float = 0.0) -> CandidateSet:
    """The runs of a table (final checkpoints) as candidates named by run id, each
    costing ``6 N D + fixed_cost`` FLOPs."""
    final = table.final_checkpoints()
    _, first = np.unique(np.asarray(final.run_ids, dtype=str), return_index=True)
    first = np.sort(first)
    return CandidateSet.from_arrays(final.domains, final.weights[first], final.model_size[first],
                                    final.tokens[first], names=[str(r) for r in final.run_ids[first]],
                                    fixed_cost=fixed_cost)


def concat_tables(a: RunTable, b: RunTable) -> RunTable:
    """Rows of ``b`` appended to ``a`` (same domains)."""
    if tuple(a.domains) != tuple(b.domains):
        raise DataError(f"tables have different domains: {a.domains} vs {b.domains}")
    return RunTable.from_arrays(
        weights=np.concatenate([a.weights, b.weights]), model_size=np.concatenate([a.model_size, b.model_size]),
        tokens=np.concatenate([a.tokens, b.tokens]), losses=np.concatenate([a.losses, b.losses]),
        domains=a.domains, run_ids=np.concatenate([np.asarray(a.run_ids, dtype=object),
                                                   np.asarray(b.run_ids, dtype=object)]),
        source=a.source,
    )


class ReweightRefit:
    """Cheap refit: the exact Bayesian update of a fixed set of draws by importance weights.

    The draws of ``base`` are treated as the prior (a finite set); the refit weights each
    draw by the likelihood of the table (Normal on the log-loss with the draw's
    ``sigma``; the checkpoints of one run, by run id, share its offset ``run_sd``). Exact
    for a discrete prior, and free of
    sampling, so campaigns and tests run in seconds; the weights degenerate once the
    data outgrow the draws (watch the effective sample size).

    Parameters
    ----------
    base : Posterior
    """

    def __init__(self, base: Posterior):
        self.base = base

    def __call__(self, table: RunTable, previous=None):
        mu = self.base.expected_loss(table.weights, table.model_size, table.tokens)  # (S, n, K)
        S = self.base.n_draws
        sigma = np.full((S, self.base.n_domains), 1e-2) if self.base.sigma is None else self.base.sigma
        _, run = np.unique(np.asarray(table.run_ids, dtype=str), return_inverse=True)
        loglik = log_likelihood(np.log(table.losses), np.log(mu), sigma, self.base.run_sd, groups=run)  # (runs, S)
        return self.base, normalise_log(loglik.sum(0))


class NutsRefit:
    """Refit by NUTS (:func:`bayesmix.inference.fit_law`), warm-started at the previous means.

    A refit keeps the reference units of the previous posterior (``scaling=``), so the
    warm start (the previous posterior means) is in the units of the new model.

    Parameters
    ----------
    law : str
    draws, tune, chains : int
    seed : int
    max_draws : int, optional
        Thin the new posterior.
    sampler : str
        One of :data:`bayesmix.fit_settings.SAMPLERS` (default: that of a single fit).
    priors : dict, optional
        Prior overrides passed to :func:`~bayesmix.inference.fit_law`.

    Attributes
    ----------
    calls : int
        Fits run so far; ``seconds`` their total wall time.
    """

    def __init__(self, law: str = DEFAULT_LAW, *, draws: int = 200, tune: int = 200, chains: int = 2,
                 seed: int = 0, max_draws: int | None = None, sampler: str = DEFAULT_SAMPLER, priors=None):
        self.law, self.draws, self.tune, self.chains = law, draws, tune, chains
        self.seed, self.max_draws, self.sampler, self.priors = seed, max_draws, sampler, priors
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, table: RunTable, previous: Posterior | None = None):
        from ..inference import fit_law

        init, scaling = None, None
        if previous is not None:
            init = {name: np.asarray(v).mean(axis=0) for name, v in previous.draws.items()}
            if previous.sigma is not None:
                init["sigma"] = np.asarray(previous.sigma).mean(axis=0)
            scaling = previous.scaling
        self.calls += 1
        t0 = time.perf_counter()
        fit = fit_law(table, self.law, priors=self.priors, init=init, scaling=scaling, draws=self.draws,
                      tune=self.tune, chains=self.chains, seed=self.seed + self.calls, sampler=self.sampler,
                      progressbar=False)
        self.seconds += time.perf_counter() - t0
        return fit.posterior(max_draws=self.max_draws)


class AdaptiveRefit:
    """Importance reweighting of a NUTS posterior, refitted by NUTS when the weights degenerate.

    The first call fits ``nuts`` to the table (the base posterior, conditioned on the
    base table). Later calls weight the base draws by the likelihood of the rows added
    since (Normal on the log-loss with the draw's ``sigma`` and ``run_sd``; a run's
    checkpoints share its offset): the exact Bayesian update of the base posterior, as long as the
    base draws cover the new posterior. When the effective sample size falls below
    ``ess_fraction`` of the draws, the table is refitted by NUTS, warm-started at the
    current weighted means and in the base's units, and becomes the new base.

    Parameters
    ----------
    nuts : NutsRefit
    ess_fraction : float
        Refit below this effective sample size, as a fraction of the draws.
    max_refits : int, optional
        At most this many NUTS refits after the first fit (then reweight whatever the ESS;
        the logged ESS shows it).
    initial : Posterior, optional
        A posterior already fitted to the table of the first call (used as the base
        instead of a first NUTS fit, e.g. one fit shared by several campaigns).

    Attributes
    ----------
    refits : int
        NUTS refits run after the first fit.
    """

    def __init__(self, nuts: NutsRefit, *, ess_fraction: float = 0.2, max_refits: int | None = None,
                 initial: Posterior | None = None):
        if not 0 < ess_fraction < 1:
            raise UsageError(f"ess_fraction must be in (0, 1), got {ess_fraction}")
        self.nuts, self.ess_fraction, self.max_refits = nuts, ess_fraction, max_refits
        self.initial = initial
        self.base: Posterior | None = None
        self.base_rows = 0
        self.refits = 0

    def _weights(self, table: RunTable) -> np.ndarray:
        S = self.base.n_draws
        new = table.select(np.arange(table.n_rows) >= self.base_rows)
        if new.n_rows == 0:
            return np.full(S, 1.0 / S)
        return ReweightRefit(self.base)(new)[1]

    def __call__(self, table: RunTable, previous=None):
        if self.base is None:
            self.base = self.initial if self.initial is not None else self.nuts(table, None)
            self.base_rows = table.n_rows
            return self.base, None
        w = self._weights(table)
        can_refit = self.max_refits is None or self.refits < self.max_refits
        if effective_sample_size(w) < self.ess_fraction * self.base.n_draws and can_refit:
            draws = {k: np.tensordot(w, np.asarray(v), axes=1)[None] for k, v in self.base.draws.items()}
            sigma = None if self.base.sigma is None else (w @ self.base.sigma)[None]
            warm = Posterior(self.base.law, draws, self.base.scaling, self.base.domains, sigma=sigma,
                             eval_domains=self.base.eval_domains)
            self.base, self.base_rows = self.nuts(table, warm), table.n_rows
            self.refits += 1
            return self.base, None
        return self.base, w


class SimulatorObserver:
    """Observe candidates by simulating their runs from a known :class:`~bayesmix.simulate.Truth`."""

    def __init__(self, truth, *, seed: int = 0):
        self.truth, self.seed, self.count = truth, seed, 0

    def __call__(self, chosen: CandidateSet) -> RunTable:
        from ..simulate import simulate_runs

        tables = []
        for i in range(len(chosen)):
            self.count += 1
            t, _ = simulate_runs(self.truth, mixtures=chosen.mixtures[i:i + 1], model_sizes=[chosen.model_size[i]],
                                 tokens=[chosen.tokens[i]], seed=self.seed * 100003 + self.count)
            tables.append(RunTable.from_arrays(weights=t.weights, model_size=t.model_size, tokens=t.tokens,
                                               losses=t.losses, domains=t.domains,
                                               run_ids=np.array([f"acq-{self.count:04d}"] * len(t), dtype=object)))
        out = tables[0]
        for t in tables[1:]:
            out = concat_tables(out, t)
        return out


class PoolObserver:
    """Observe candidates by replaying finished runs from a pool (candidates named by run id)."""

    def __init__(self, pool: RunTable):
        self.pool = pool

    def __call__(self, chosen: CandidateSet) -> RunTable:
        ids = np.asarray(self.pool.run_ids, dtype=str)
        return self.pool.select(np.isin(ids, list(chosen.names)))


def true_regret_function(truth, model_size, tokens, *, objective=None, constraints=None):
    """``h -> (regret, optimum)`` of a mixture under a known truth at the target (nats)."""
    problem = MixtureProblem(truth.posterior, model_size, tokens, objective=objective,
                             constraints=constraints, max_draws=None)
    _, opt_v = problem.per_draw_optima()
    optimum = float(opt_v[0])

    def regret(h):
        return float(problem.objective_draws(h)[0, 0]) - optimum, optimum

    return regret


@dataclass
class CampaignResult:
    """The log of a campaign (one row per step) and its final run table."""

    log: list
    table: RunTable

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.log)


def run_campaign(table: RunTable, model_size, tokens, *, refit: Callable, observe: Callable,
                 candidates, criterion: str = "voi", batch: int = 1, budget_steps: int | None = None,
                 budget_flops: float | None = None, truth=None, objective: Objective | None = None,
                 constraints: Constraints | None = None, risk="mean",
                 max_draws: int | None = DEFAULT_ACQUISITION_DRAWS, n_outcomes: int = DEFAULT_OUTCOMES,
                 method: str = DEFAULT_METHOD, seed: int = 0, callback: Callable | None = None,
                 score: Callable | None = None) -> CampaignResult:
    """Run fit -> next -> observe -> refit until the budget is spent.

    Parameters
    ----------
    table : RunTable
        The runs trained before the campaign.
    model_size, tokens : float or str
        The target scale.
    refit : callable
        ``refit(table, previous_posterior) -> Posterior`` or ``(Posterior, draw_weights)``;
        called once on ``table`` to start. :class:`NutsRefit` or :class:`ReweightRefit`.
    observe : callable
        ``observe(chosen: CandidateSet) -> RunTable`` of the new runs' rows.
    candidates : CandidateSet or callable
        The candidate runs, or ``candidates(step, table) -> CandidateSet``. Observed
        candidates (by name) are not offered again.
    criterion : str
    batch : int
        Runs per step.
    budget_steps : int, optional
        Steps to run; ``budget_flops``: stop before a step would exceed this compute.
    truth : Truth, optional
        With a known truth the log has the true regret of each step's recommendation.
    max_draws, n_outcomes, method, seed
        As for :class:`Acquisition` (the seed moves on with each step).
    callback : callable, optional
        Called with each log row.
    score : callable, optional
        ``score(problem, draw_weights, recommendation) -> dict``: extra log columns
        computed from each step's decision problem (a
        :class:`~bayesmix.decide.MixtureProblem` for the current posterior), its draw
        weights and the recommended mixture, e.g. a regret against observed runs.

    Returns
    -------
    CampaignResult
        Log columns: ``step``, ``n_runs``, ``compute`` (FLOPs acquired so far),
        ``chosen``, ``expected_regret`` (posterior), ``true_regret``,
        ``true_relative_regret`` (with a truth), ``ess``, the recommended weights
        ``weight_<d>``, ``seconds``.
    """
    if budget_steps is None and budget_flops is None:
        raise UsageError("give a budget: steps (--budget-steps) or compute (--budget)")
    model_size = parse_quantity(model_size, what="target model size")
    tokens = parse_quantity(tokens, what="target tokens")
    regret_of = (true_regret_function(truth, model_size, tokens, objective=objective, constraints=constraints)
                 if truth is not None else None)
    problem_for = _problem_cache(model_size, tokens, objective=objective, constraints=constraints,
                                 max_draws=max_draws)
    state, log = _CampaignState(table, budget_flops), []
    posterior, weights = _posterior_and_weights(refit(table, None))
    for step in itertools.count():
        t0 = time.perf_counter()
        acq = Acquisition(posterior, model_size, tokens, risk=risk, draw_weights=weights, n_outcomes=n_outcomes,
                          method=method, seed=seed + 1000 * step, problem=problem_for(posterior))
        row = _recommendation_row(acq, step, state, regret_of, score)
        pool = candidates(step, state.table) if callable(candidates) else candidates
        last = budget_steps is not None and step >= budget_steps
        chosen = state.acquire(acq, pool, observe, criterion=criterion, batch=batch, last=last)
        row.update(chosen="" if chosen is None else ",".join(chosen.names), seconds=time.perf_counter() - t0)
        log.append(row)
        if callback is not None:
            callback(row)
        if chosen is None:
            return CampaignResult(log, state.table)
        posterior, weights = _posterior_and_weights(refit(state.table, posterior))


def _posterior_and_weights(result) -> tuple:
    """A refit's result as ``(posterior, draw_weights)`` (None: unweighted draws)."""
    return result if isinstance(result, tuple) else (result, None)


def _problem_cache(model_size: float, tokens: float, **options) -> Callable:
    """``posterior -> MixtureProblem`` at the target, built once per posterior: a
    reweighting refit returns the same posterior at every step, with new draw weights."""
    cache: dict = {}

    def problem_for(posterior):
        key = id(posterior)
        if key not in cache:
            cache.clear()
            # The posterior is held with its problem, so that its id cannot be reused.
            cache[key] = (posterior, MixtureProblem(posterior, model_size, tokens, **options))
        return cache[key][1]

    return problem_for


def _recommendation_row(acq: Acquisition, step: int, state: _CampaignState, regret_of, score) -> dict:
    """A step's log row up to its choice: the recommendation, its expected (and, with a
    truth, true) regret, the effective sample size, and the ``score`` columns."""
    h, R = acq.recommend()
    row = {"step": step, "n_runs": int(state.table.n_runs), "compute": state.spent, "expected_regret": R,
           "ess": float(effective_sample_size(acq.weights))}
    if regret_of is not None:
        r, opt = regret_of(h)
        row["true_regret"] = r
        row["true_relative_regret"] = r / opt
    for j, d in enumerate(acq.posterior.domains):
        row[f"weight_{d}"] = h[j]
    if score is not None:
        row.update(score(acq.problem, acq.weights, h))
    return row


class _CampaignState:
    """What a campaign has acquired: its run table, the candidates observed (by name) and
    the compute spent on them, within an optional compute budget."""

    def __init__(self, table: RunTable, budget_flops: float | None):
        self.table, self.budget_flops = table, budget_flops
        self.observed: set = set()
        self.spent = 0.0

    def open_candidates(self, pool: CandidateSet) -> list[int]:
        """Indices of the candidates not observed yet whose cost fits the budget left."""
        keep = [i for i, n in enumerate(pool.names) if n not in self.observed]
        if self.budget_flops is not None:
            keep = [i for i in keep if self.spent + pool.cost[i] <= self.budget_flops]
        return keep

    def acquire(self, acq: Acquisition, pool: CandidateSet, observe: Callable, *, criterion: str, batch: int,
                last: bool) -> CandidateSet | None:
        """Select the next runs from ``pool``, observe them and add their rows to the table.

        Returns
        -------
        CandidateSet or None
            The runs acquired; None when the campaign ends here (``last``, or no open
            candidate left).
        """
        keep = self.open_candidates(pool)
        if last or not keep:
            return None
        pool = pool.subset(keep)
        chosen = pool.subset(acq.select(pool, criterion=criterion, batch=batch).picks)
        if self.budget_flops is not None:  # drop picks beyond the budget
            cum = self.spent + np.cumsum(chosen.cost)
            chosen = chosen.subset(np.flatnonzero(cum <= self.budget_flops))
        self.observed.update(chosen.names)
        self.spent += float(chosen.cost.sum())
        self.table = concat_tables(self.table, observe(chosen))
        return chosen
