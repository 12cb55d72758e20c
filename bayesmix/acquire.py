"""Which proxy run to train next: value of information for the target mixture decision.

The decision at the target scale (``N*``, ``D*``) is the mixture that minimises a risk
measure of the objective under the posterior (:mod:`bayesmix.decide`). A new proxy run
at mixture ``h``, model size ``N`` and tokens ``D`` is worth what it is expected to
remove from the posterior expected regret of that decision, per unit of compute.

Value of information (``voi``)
    Without refitting: outcomes ``y`` of the candidate run are simulated from the current
    posterior (a draw, then its expected log-losses plus a run offset and observation
    noise), the draws are reweighted by each outcome's likelihood (importance sampling,
    ``w_s ∝ w0_s p(y | theta_s)``, Normal on the log-loss with the draw's ``sigma`` and
    ``run_sd``), the recommendation is re-optimised under each reweighted posterior and
    its expected regret (against the draws' own optima, which do not depend on the
    weights) is averaged over the outcomes::

        VOI = max(0, R(h0 | w0) - mean_j R(h_j | w_j))

    When the posterior is a finite set of draws this reweighting is the exact Bayesian
    update, so the estimate is exact up to the Monte Carlo error over outcomes (reported
    as ``voi_se``). The effective sample size of the weights (min and mean over
    outcomes) is reported; below :data:`ESS_WARNING_FRACTION` of the draws the estimate
    rests on few draws and a warning is attached. The true value is never negative; a
    negative estimate (Monte Carlo error) is reported as 0, which is always closer to
    it. A Student-t fit is treated as Normal.
``variance``
    The posterior variance of the candidate's expected log-losses, averaged over domains
    with the objective's weights: how much the draws disagree about the run's outcome
    (cheap, ignores what matters at the target).
``random``, ``space-filling``
    Baselines: a random score, and the distance (mixture weights and log-scales) to the
    nearest existing or already chosen run.

Batches are chosen greedily: after a pick the posterior weights are conditioned on the
pick's fantasised outcome (the current predictive mean of its log-losses, "kriging
believer") and the remaining candidates are scored again under those weights.

Campaigns (:func:`run_campaign`) loop fit -> choose -> observe -> refit with a pluggable
``refit`` (NUTS through :class:`NutsRefit`, or the exact importance reweighting of a
fixed set of draws, :class:`ReweightRefit`) and ``observe`` (the simulator,
:class:`SimulatorObserver`, or a pool of finished runs, :class:`PoolObserver`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import observation
from ._files import write_text_atomic
from .data import RunTable
from .decide import Constraints, MixtureProblem, Objective, Risk
from .errors import DataError, UsageError
from .polytope import project_to_polytope, spectral_projected_gradient
from .posterior import Posterior
from .units import check_scale_bounds, format_quantity, parse_quantity
from .weighted import normalised_draw_weights

#: Simulated outcomes per candidate for the value of information.
DEFAULT_OUTCOMES = 32
#: Below this fraction of the draws, the mean effective sample size draws a warning.
ESS_WARNING_FRACTION = 0.1
#: Posterior draws used by the acquisition by default (each outcome re-optimises over them).
DEFAULT_ACQUISITION_DRAWS = 200
#: FLOPs per parameter per token of a training run (forward and backward pass).
FLOPS_PER_PARAM_TOKEN = 6.0
CRITERIA = ("voi", "variance", "random", "space-filling")


# ============================================================================ candidates
def flops_cost(model_size, tokens) -> np.ndarray:
    """Training compute ``6 N D`` in FLOPs."""
    return FLOPS_PER_PARAM_TOKEN * np.asarray(model_size, dtype=float) * np.asarray(tokens, dtype=float)


@dataclass
class CandidateSet:
    """Candidate proxy runs: a mixture, a model size, a token count and a cost each.

    Attributes
    ----------
    domains : tuple of str
    names : list of str
    mixtures : ndarray ``(M, K)``
    model_size, tokens, cost : ndarray ``(M,)``
        N in parameters, D in tokens, cost in FLOPs (default ``6 N D``).
    """

    domains: tuple
    names: list
    mixtures: np.ndarray
    model_size: np.ndarray
    tokens: np.ndarray
    cost: np.ndarray

    @classmethod
    def from_arrays(cls, domains, mixtures, model_size, tokens, cost=None, names=None) -> "CandidateSet":
        """Build a checked candidate set (scalars broadcast to every candidate)."""
        domains = tuple(domains)
        h = np.atleast_2d(np.asarray(mixtures, dtype=float))
        M = h.shape[0]
        if h.shape[1] != len(domains):
            raise UsageError(f"candidate mixtures have {h.shape[1]} weights but there are "
                             f"{len(domains)} domains ({', '.join(domains)})")
        if np.any(~np.isfinite(h)) or np.any(h < 0) or np.any(np.abs(h.sum(1) - 1) > 1e-3):
            raise UsageError("candidate mixtures must be non-negative and sum to 1")
        h = h / h.sum(1, keepdims=True)
        N = np.broadcast_to(np.asarray(model_size, dtype=float), (M,)).copy()
        D = np.broadcast_to(np.asarray(tokens, dtype=float), (M,)).copy()
        if np.any(~np.isfinite(N)) or np.any(N <= 0) or np.any(~np.isfinite(D)) or np.any(D <= 0):
            raise UsageError("candidate model sizes and tokens must be positive")
        c = flops_cost(N, D) if cost is None else np.broadcast_to(np.asarray(cost, dtype=float), (M,)).copy()
        if np.any(~np.isfinite(c)) or np.any(c <= 0):
            raise UsageError("candidate costs must be positive")
        names = [f"cand-{i + 1:03d}" for i in range(M)] if names is None else [str(n) for n in names]
        if len(set(names)) != len(names):
            raise UsageError("candidate names must be distinct")
        return cls(domains, names, h, N, D, c)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx) -> "CandidateSet":
        idx = np.asarray(idx, dtype=int).reshape(-1)
        return CandidateSet(self.domains, [self.names[i] for i in idx], self.mixtures[idx],
                            self.model_size[idx], self.tokens[idx], self.cost[idx])

    def features(self) -> np.ndarray:
        """Points for distances: the weights, then log10 N and log10 D."""
        return np.column_stack([self.mixtures, np.log10(self.model_size), np.log10(self.tokens)])

    def to_frame(self):
        import pandas as pd

        cols = {"name": self.names, "model_size": self.model_size, "tokens": self.tokens, "cost": self.cost}
        for j, d in enumerate(self.domains):
            cols[f"weight_{d}"] = self.mixtures[:, j]
        return pd.DataFrame(cols)


def simplex_sobol(n: int, n_domains: int, *, seed: int = 0) -> np.ndarray:
    """``n`` quasi-random points spread uniformly over the simplex, ``(n, K)``.

    A scrambled Sobol sequence in ``K`` dimensions is mapped to the simplex through
    normalised exponential spacings (``-log u``), the map that turns uniform points into
    a uniform Dirichlet.
    """
    from scipy.stats import qmc

    if n < 1:
        raise UsageError(f"the number of mixtures must be at least 1, got {n}")
    sampler = qmc.Sobol(d=n_domains, scramble=True, seed=seed)
    m = int(np.ceil(np.log2(max(n, 2))))
    u = sampler.random_base2(m)[:n]
    e = -np.log(np.clip(u, 1e-12, 1.0))
    return e / e.sum(axis=1, keepdims=True)


def generate_candidates(domains, sizes, *, tokens=None, tokens_per_param=None, n_mixtures: int = 16,
                        constraints: Constraints | None = None, seed: int = 0) -> CandidateSet:
    """Candidates on a grid of scales times quasi-random mixtures meeting the constraints.

    Parameters
    ----------
    domains : sequence of str
    sizes : sequence of float or str
        Model sizes N, e.g. ``["122M", "310M"]``.
    tokens : sequence of float or str, optional
        Token counts D; every size is paired with every count.
    tokens_per_param : float, optional
        D = ratio x N instead of ``tokens`` (default 20 when neither is given).
    n_mixtures : int
        Mixtures per scale, spread over the simplex (Sobol points projected onto the
        feasible set of ``constraints`` at each D).
    constraints : Constraints, optional
        The same per-domain ``min``/``max``/``available`` as the recommendation.
    seed : int

    Returns
    -------
    CandidateSet
    """
    domains = tuple(domains)
    sizes = [parse_quantity(s, what="candidate model size") for s in sizes]
    if not sizes:
        raise UsageError("give at least one candidate model size (--sizes)")
    if tokens is not None and tokens_per_param is not None:
        raise UsageError("give candidate tokens (--tokens) or a tokens-per-parameter ratio, not both")
    if tokens is None:
        ratio = 20.0 if tokens_per_param is None else float(tokens_per_param)
        if not np.isfinite(ratio) or ratio <= 0:
            raise UsageError(f"tokens per parameter must be positive, got {ratio}")
        scales = [(n, ratio * n) for n in sizes]
    else:
        counts = [parse_quantity(t, what="candidate tokens") for t in tokens]
        scales = [(n, d) for n in sizes for d in counts]
    constraints = constraints or Constraints()
    base = simplex_sobol(n_mixtures, len(domains), seed=seed)
    rows_h, rows_n, rows_d, names = [], [], [], []
    for n, d in scales:
        bounds = constraints.bounds(domains, d)
        h = project_to_polytope(base, bounds.lower, bounds.upper)
        for i, row in enumerate(h):
            rows_h.append(row)
            rows_n.append(n)
            rows_d.append(d)
            names.append(f"{format_quantity(n)}-{format_quantity(d)}-m{i + 1:02d}")
    return CandidateSet.from_arrays(domains, np.array(rows_h), rows_n, rows_d, names=names)


def load_candidates(path, domains) -> CandidateSet:
    """Read candidates from a CSV/TSV file.

    Columns: an optional ``name``; one weight per domain (``<d>`` or ``weight_<d>``,
    matched by name, missing domains get 0); ``model_size`` (or ``N``); ``tokens`` (or
    ``n_tokens``, ``D``); an optional ``cost`` in FLOPs (default ``6 N D``). Sizes may be
    written ``122M``.

    Raises
    ------
    DataError
        If the file is missing, empty or unreadable, a column is unknown or repeated, or a
        value cannot be read.
    """
    import pandas as pd

    from .data import read_table
    from .decide import column_domains

    path = Path(path)
    domains = tuple(domains)
    if not path.exists():
        raise DataError("file not found", file=path)
    frame = read_table(path, empty_hint="a candidate file needs a header line and one candidate run per row")
    if frame.empty:
        raise DataError("no candidate runs in the file (a header line only)", file=path)

    def pick(options, what):
        for c in options:
            if c in frame.columns:
                return c
        if what is None:
            return None
        raise DataError(f"no {what} column: name one of {', '.join(options)}", file=path)

    n_col = pick(("model_size", "N"), "model size")
    d_col = pick(("tokens", "n_tokens", "D"), "tokens")
    cost_col = pick(("cost",), None)
    h = np.zeros((len(frame), len(domains)))
    for col, d in column_domains(frame.columns, domains, path, skip=("name", n_col, d_col, cost_col)).items():
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(f"weight '{frame[col].iloc[bad[0]]}' is not a finite number", file=path, column=col,
                            rows=(bad + 1).tolist())
        h[:, domains.index(d)] = values

    def quantities(col, what):
        try:
            return np.array([parse_quantity(v, what=what) for v in frame[col]])
        except UsageError as err:
            raise DataError(str(err), file=path, column=col) from None

    N = quantities(n_col, "model size")
    D = quantities(d_col, "tokens")
    check_scale_bounds(N, D, what=str(path))
    cost = quantities(cost_col, "cost") if cost_col else None
    names = [str(v) for v in frame["name"]] if "name" in frame.columns else None
    try:
        return CandidateSet.from_arrays(domains, h, N, D, cost=cost, names=names)
    except UsageError as err:
        raise DataError(str(err), file=path) from None


# ============================================================================ likelihood
def log_likelihood(log_y, log_mu, sigma, run_sd=None) -> np.ndarray:
    """Log density of observed log-losses under each draw, Normal with a shared run offset.

    ``log y_k = log mu_sk + u + e_k``, ``u ~ N(0, run_sd_s^2)`` shared by the run's
    domains, ``e_k ~ N(0, sigma_sk^2)``; the covariance is diagonal plus rank one, so the
    density has a closed form (Sherman-Morrison). Missing (NaN) losses are left out.

    Parameters
    ----------
    log_y : ndarray ``(J, K)``
        Observed log-losses (J runs or outcomes).
    log_mu : ndarray ``(S, K)`` or ``(S, J, K)``
        Expected log-losses per draw (per run when 3-D).
    sigma : ndarray ``(S, K)`` or ``(S, J, K)``
    run_sd : ndarray ``(S,)``, optional

    Returns
    -------
    ndarray ``(J, S)``

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
    return observation.grouped_loglik(log_y[rows, doms], loc, scale, rows, J, run_sd=run_sd).T


def _normalise_log(logw) -> np.ndarray:
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


def _parameter_table(posterior: Posterior):
    """Draws of every scalar parameter entry, ``(S, P)``, and their names."""
    names, cols = [], []
    doms = posterior.domains
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


# ============================================================================ the acquisition problem
@dataclass
class CandidateScores:
    """Scores of candidates under one prior weighting of the draws (see :class:`Acquisition`)."""

    score: np.ndarray
    voi_se: np.ndarray
    ess_min: np.ndarray
    ess_mean: np.ndarray
    teaches: list


class Acquisition:
    """Scores candidate runs by what they would teach about the target decision.

    Parameters
    ----------
    posterior : Posterior
    model_size, tokens : float or str
        The target scale ``N*``, ``D*``.
    objective : Objective, optional
    constraints : Constraints, optional
    risk : str or Risk
        The decision's risk measure (its regret is always the mean regret).
    draw_weights : array_like, optional
        Weights of ``posterior``'s draws (e.g. from :class:`ReweightRefit`).
    max_draws : int, optional
        Thin the posterior to at most this many draws.
    n_outcomes : int
        Simulated outcomes per candidate.
    seed : int
        Seed of the simulated outcomes (shared by all candidates: common random numbers).
    problem : MixtureProblem, optional
        A compiled problem for the same posterior and target to reuse (its per-draw optima
        are cached).
    """

    def __init__(self, posterior: Posterior, model_size, tokens, *, objective: Objective | None = None,
                 constraints: Constraints | None = None, risk="mean", draw_weights=None,
                 max_draws: int | None = DEFAULT_ACQUISITION_DRAWS, n_outcomes: int = DEFAULT_OUTCOMES,
                 seed: int = 0, problem: MixtureProblem | None = None):
        if n_outcomes < 2:
            raise UsageError(f"n_outcomes must be at least 2, got {n_outcomes}")
        self.problem = problem or MixtureProblem(posterior, model_size, tokens, objective=objective,
                                                 constraints=constraints, max_draws=max_draws)
        self.posterior = self.problem.posterior
        if draw_weights is not None:
            w = np.asarray(draw_weights, dtype=float).reshape(-1)
            if w.shape[0] == posterior.n_draws and w.shape[0] != self.problem.n_draws:
                w = w[self.problem.draw_index]
            self.weights = normalised_draw_weights(w, self.problem.n_draws)
        else:
            self.weights = normalised_draw_weights(None, self.problem.n_draws)
        self.risk = Risk.parse(risk)
        self.n_outcomes = int(n_outcomes)
        self.seed = seed
        S, K = self.problem.n_draws, self.problem.n_domains
        # A candidate is a new run of a new mixture: its cells scatter by the noise and,
        # where the fit has mixture effects, a new mixture's effect.
        draws = getattr(self.posterior, "observation", None)
        self.sigma = (np.full((S, K), 1e-2) if self.posterior.sigma is None
                      else observation.cell_sd(self.posterior.sigma, draws)[:, 0])
        self.run_sd = None if self.posterior.run_sd is None else np.asarray(self.posterior.run_sd, dtype=float)
        self.param_names, self.param_draws = _parameter_table(self.posterior)
        self._optima = None

    # ------------------------------------------------------------------ decisions
    @property
    def n_draws(self) -> int:
        return self.problem.n_draws

    def optima(self):
        if self._optima is None:
            self._optima = self.problem.per_draw_optima()
        return self._optima

    def recommend(self, weights=None, *, n_restarts: int = 4):
        """The decision and its posterior expected regret under ``weights`` (default: current)."""
        w = self.weights if weights is None else normalised_draw_weights(weights, self.n_draws)
        opt_h, _ = self.optima()
        h, _ = self.problem.recommend_mixture(self.risk, draw_weights=w, n_restarts=n_restarts,
                                              starts=[w @ opt_h])
        H, R = self.reweighted_decisions(w[None], starts=h[None])
        return H[0], float(R[0])

    def reweighted_decisions(self, W, *, starts=None):
        """Re-optimise the decision under each row of weights, all at once.

        Parameters
        ----------
        W : ndarray ``(J, S)``
            Normalised draw weights, one row per (simulated) posterior.
        starts : ndarray ``(R, K)``, optional
            Starting mixtures shared by every row (plus each row's weighted mean of the
            draws' optima).

        Returns
        -------
        (mixtures ``(J, K)``, expected regrets ``(J,)``)
        """
        W = np.atleast_2d(np.asarray(W, dtype=float))
        J, S = W.shape
        K = self.problem.n_domains
        opt_h, opt_v = self.optima()
        lower, upper = self.problem.bounds.lower, self.problem.bounds.upper
        start_list = [W @ opt_h]
        if starts is not None:
            for h in np.atleast_2d(starts):
                start_list.append(np.broadcast_to(h, (J, K)))
        R_ = len(start_list)
        x0 = project_to_polytope(np.stack(start_list, axis=1).reshape(J * R_, K), lower, upper)
        Wrep = np.repeat(W, R_, axis=0)  # (J*R, S), row j*R + r
        evaluator, ow, risk = self.problem.evaluator, self.problem.objective_weights, self.risk

        def fun(X):
            values, grads, _ = evaluator(np.broadcast_to(X[None], (S,) + X.shape), ow)  # (S, B), (S, B, K)
            bad = ~np.all(np.isfinite(values), axis=0)
            values = np.where(np.isfinite(values), values, 0.0)
            if risk.kind == "mean":
                coef = Wrep.T
            else:
                coef = np.column_stack([risk.coefficients(values[:, b], Wrep[b]) for b in range(X.shape[0])])
            f = np.where(bad, np.inf, np.sum(coef * values, axis=0))
            g = np.einsum("sb,sbk->bk", coef, grads)
            return f, g

        x, f, _, _ = spectral_projected_gradient(fun, x0, lower, upper)
        x, f = x.reshape(J, R_, K), f.reshape(J, R_)
        best = np.argmin(f, axis=1)
        H = project_to_polytope(x[np.arange(J), best], lower, upper)
        values = self.problem.objective_draws(H)  # (S, J)
        regret = np.maximum(values - opt_v[:, None], 0.0)
        return H, np.sum(W.T * regret, axis=0)

    # ------------------------------------------------------------------ outcomes
    def expected_log_loss(self, candidates: CandidateSet) -> np.ndarray:
        """Expected log-losses per draw at each candidate, ``(S, M, K)``."""
        mu = self.posterior.expected_loss(candidates.mixtures, candidates.model_size, candidates.tokens)
        return np.log(mu)

    def simulate_outcomes(self, log_mu, weights=None, *, seed=None):
        """Simulated log-loss outcomes of each candidate, ``(M, J, K)``, with common numbers.

        Draws are chosen by systematic resampling of ``weights``; each outcome adds a run
        offset (``run_sd``) and observation noise (``sigma``) of its draw.
        """
        S, M, K = log_mu.shape
        J = self.n_outcomes
        w = self.weights if weights is None else weights
        rng = np.random.default_rng(self.seed if seed is None else seed)
        positions = (rng.uniform() + np.arange(J)) / J
        draws = np.minimum(np.searchsorted(np.cumsum(w), positions), S - 1)  # (J,)
        z_noise = rng.standard_normal((J, K))
        z_run = rng.standard_normal(J)
        offset = 0.0 if self.run_sd is None else (self.run_sd[draws] * z_run)[:, None]
        noise = self.sigma[draws] * z_noise + offset  # (J, K)
        return log_mu[draws].transpose(1, 0, 2) + noise[None]  # (M, J, K)

    # ------------------------------------------------------------------ criteria
    def score_voi(self, candidates: CandidateSet, weights=None, *, log_mu=None) -> CandidateScores:
        """Value of information of each candidate (nats of expected regret removed)."""
        w = self.weights if weights is None else normalised_draw_weights(weights, self.n_draws)
        log_mu = self.expected_log_loss(candidates) if log_mu is None else log_mu
        outcomes = self.simulate_outcomes(log_mu, w)
        h0, R0 = self.recommend(w)
        sd0 = self._param_sd(w[None])[0]
        M = len(candidates)
        score, se = np.empty(M), np.empty(M)
        ess_min, ess_mean, teaches = np.empty(M), np.empty(M), []
        for m in range(M):
            W = self._outcome_weights(log_mu[:, m], outcomes[m], w)
            _, R = self.reweighted_decisions(W, starts=h0[None])
            # The value of information is never negative; the estimate can be, by a Monte
            # Carlo error (the outcomes' weights average to w only approximately). Zero
            # is never further from the true value than a negative estimate.
            score[m] = max(R0 - R.mean(), 0.0)
            se[m] = R.std(ddof=1) / np.sqrt(len(R))
            ess = effective_sample_size(W)
            ess_min[m], ess_mean[m] = ess.min(), ess.mean()
            teaches.append(self._teaches(sd0, W))
        return CandidateScores(score, se, ess_min, ess_mean, teaches)

    def _outcome_weights(self, log_mu_c, outcomes, w) -> np.ndarray:
        loglik = log_likelihood(outcomes, log_mu_c, self.sigma, self.run_sd)  # (J, S)
        with np.errstate(divide="ignore"):
            logw = np.where(np.isfinite(loglik), loglik, -np.inf) + np.log(w)[None]
        # An outcome no draw can explain (non-finite everywhere) leaves the weights as they were.
        lost = ~np.any(np.isfinite(logw), axis=1)
        if lost.any():
            with np.errstate(divide="ignore"):
                logw[lost] = np.log(w)[None]
        return _normalise_log(logw)

    def _param_sd(self, W) -> np.ndarray:
        P = self.param_draws
        mean = W @ P
        return np.sqrt(np.maximum(W @ P**2 - mean**2, 0.0))

    def _teaches(self, sd0, W, top: int = 3) -> str:
        sd1 = self._param_sd(W).mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(sd0 > 0, 1.0 - sd1 / sd0, 0.0)
        order = np.argsort(-shrink)[:top]
        return "; ".join(f"{self.param_names[i]} sd -{100 * shrink[i]:.0f}%" for i in order if shrink[i] > 0.005)

    def score_variance(self, candidates: CandidateSet, weights=None, *, log_mu=None) -> CandidateScores:
        """Posterior variance of the candidate's expected log-losses, objective-weighted."""
        w = self.weights if weights is None else normalised_draw_weights(weights, self.n_draws)
        log_mu = self.expected_log_loss(candidates) if log_mu is None else log_mu
        mean = np.einsum("s,smk->mk", w, log_mu)
        var = np.einsum("s,smk->mk", w, (log_mu - mean) ** 2)
        score = var @ self.problem.objective_weights
        nan = np.full(len(candidates), np.nan)
        return CandidateScores(score, nan, nan.copy(), nan.copy(), [""] * len(candidates))

    # ------------------------------------------------------------------ selection
    def select(self, candidates: CandidateSet, *, criterion: str = "voi", batch: int = 1,
               existing: CandidateSet | None = None, ess_warning: float = ESS_WARNING_FRACTION) -> "AcquisitionResult":
        """Score and rank candidates; pick a batch greedily.

        Parameters
        ----------
        candidates : CandidateSet
        criterion : {"voi", "variance", "random", "space-filling"}
        batch : int
            Runs to pick. After each pick the draws are reweighted by the pick's
            fantasised outcome (its predictive mean log-losses) and the rest rescored.
        existing : CandidateSet, optional
            Runs already trained (for ``space-filling``).
        ess_warning : float
            Warn when the mean effective sample size is below this fraction of the draws.

        Returns
        -------
        AcquisitionResult
        """
        t0 = time.perf_counter()
        if criterion not in CRITERIA:
            raise UsageError(f"unknown criterion '{criterion}': use one of {', '.join(CRITERIA)}")
        M = len(candidates)
        if M == 0:
            raise UsageError("no candidates to score")
        if batch < 1:
            raise UsageError(f"batch must be at least 1, got {batch}")
        batch = min(batch, M)
        rng = np.random.default_rng(self.seed + 7)
        log_mu = self.expected_log_loss(candidates) if criterion in ("voi", "variance") else None
        w = self.weights.copy()
        h0, R0 = self.recommend(w)
        remaining = list(range(M))
        picks, pick_scores = [], []
        first = None
        for q in range(batch):
            sub = candidates.subset(remaining)
            if criterion == "voi":
                sc = self.score_voi(sub, w, log_mu=log_mu[:, remaining])
            elif criterion == "variance":
                sc = self.score_variance(sub, w, log_mu=log_mu[:, remaining])
            elif criterion == "random":
                nan = np.full(len(sub), np.nan)
                sc = CandidateScores(rng.uniform(size=len(sub)), nan, nan.copy(), nan.copy(), [""] * len(sub))
            else:
                sc = self._space_filling(sub, candidates.subset(picks) if picks else None, existing, candidates)
            key = sc.score / sub.cost if criterion in ("voi", "variance") else sc.score
            j = int(np.argmax(key))
            if first is None:
                first = sc
            picks.append(remaining[j])
            pick_scores.append(sc.score[j])
            if criterion in ("voi", "variance") and q + 1 < batch:
                # Kriging believer: condition on the pick's predictive mean outcome.
                lm = log_mu[:, remaining[j]]
                y = (w @ lm)[None]
                w = self._outcome_weights(lm, y, w)[0]
            remaining.pop(j)
        warnings = []
        ess_limit = ess_warning * self.n_draws
        warn_col = [""] * M
        if criterion == "voi":
            for m in range(M):
                if first.ess_mean[m] < ess_limit:
                    warn_col[m] = (f"low effective sample size ({first.ess_mean[m]:.1f} of {self.n_draws} "
                                   "draws): the value of information rests on few draws; use more draws")
            n_low = sum(1 for x in warn_col if x)
            if n_low:
                warnings.append(f"{n_low} of {M} candidates have a mean effective sample size below "
                                f"{100 * ess_warning:g}% of the {self.n_draws} draws: their outcome would "
                                "pin the posterior to few draws, so their value of information is rough; "
                                "refit with more draws (--max-draws) to refine it")
        return AcquisitionResult(
            candidates=candidates, criterion=criterion, score=first.score, voi_se=first.voi_se,
            ess_min=first.ess_min, ess_mean=first.ess_mean, teaches=first.teaches, warnings_col=warn_col,
            picks=picks, pick_scores=pick_scores, current_regret=R0, recommendation=h0,
            n_draws=self.n_draws, n_outcomes=self.n_outcomes, warnings=warnings,
            seconds=time.perf_counter() - t0,
        )

    @staticmethod
    def _space_filling(sub, chosen, existing, allc) -> CandidateScores:
        feats = allc.features()
        lo, hi = feats.min(0), feats.max(0)
        scale = np.where(hi > lo, hi - lo, 1.0)
        scale[: allc.mixtures.shape[1]] = 1.0  # weights keep their units

        def norm(x):
            return x / scale

        points = [c.features() for c in (existing, chosen) if c is not None and len(c)]
        x = norm(sub.features())
        if points:
            ref = norm(np.concatenate(points))
        else:
            ref = norm(feats.mean(0, keepdims=True))
        dist = np.sqrt(((x[:, None] - ref[None]) ** 2).sum(-1)).min(1)
        nan = np.full(len(sub), np.nan)
        return CandidateScores(dist, nan, nan.copy(), nan.copy(), [""] * len(sub))


@dataclass
class AcquisitionResult:
    """Candidates ranked by an acquisition criterion, with the batch picked.

    Attributes
    ----------
    candidates : CandidateSet
    criterion : str
    score : ndarray ``(M,)``
        The criterion under the current posterior (``voi``: nats of expected regret
        removed; ``variance``: squared log-loss; ``space-filling``: a distance).
    voi_se : ndarray ``(M,)``
        Monte Carlo standard error of the VOI over simulated outcomes.
    ess_min, ess_mean : ndarray ``(M,)``
        Effective sample size of the reweighted draws over the outcomes.
    teaches : list of str
        Parameters whose posterior sd the run would shrink most.
    picks : list of int
        Indices of the batch, in pick order; ``pick_scores`` their scores when picked.
    current_regret : float
        Posterior expected regret of the current recommendation (nats).
    recommendation : ndarray ``(K,)``
    warnings : list of str
    """

    candidates: CandidateSet
    criterion: str
    score: np.ndarray
    voi_se: np.ndarray
    ess_min: np.ndarray
    ess_mean: np.ndarray
    teaches: list
    warnings_col: list
    picks: list
    pick_scores: list
    current_regret: float
    recommendation: np.ndarray
    n_draws: int
    n_outcomes: int
    warnings: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score_per_cost(self) -> np.ndarray:
        return self.score / self.candidates.cost

    def order(self) -> list:
        """Batch picks first (in pick order), then the rest by score per cost (or score)."""
        key = self.score_per_cost if self.criterion in ("voi", "variance") else self.score
        rest = [i for i in np.argsort(-key, kind="stable") if i not in self.picks]
        return list(self.picks) + [int(i) for i in rest]

    def to_frame(self):
        """The ranked candidates as a DataFrame (the CSV that ``bayesmix next`` writes)."""
        import pandas as pd

        c = self.candidates
        rows = []
        for rank, i in enumerate(self.order(), start=1):
            row = {"rank": rank, "selected": i in self.picks,
                   "batch_order": self.picks.index(i) + 1 if i in self.picks else None,
                   "name": c.names[i], "model_size": c.model_size[i], "tokens": c.tokens[i]}
            for j, d in enumerate(c.domains):
                row[f"weight_{d}"] = c.mixtures[i, j]
            row.update({"cost": c.cost[i], "criterion": self.criterion, "score": self.score[i],
                        "score_per_cost": self.score_per_cost[i],
                        "batch_score": self.pick_scores[self.picks.index(i)] if i in self.picks else None,
                        "voi_se": self.voi_se[i], "ess_min": self.ess_min[i], "ess_mean": self.ess_mean[i],
                        "teaches": self.teaches[i], "warning": self.warnings_col[i]})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, path) -> None:
        """Write :meth:`to_frame` as CSV to ``path`` atomically (folders created as needed)."""
        write_text_atomic(path, self.to_frame().to_csv(index=False))

    def format_table(self, limit: int = 15) -> str:
        c = self.candidates
        nw = max(9, max(len(n) for n in c.names))
        lines = [f"criterion: {self.criterion}; {len(c)} candidates; {self.n_draws} draws"
                 + (f", {self.n_outcomes} simulated outcomes each" if self.criterion == "voi" else ""),
                 f"current expected regret at the target: {self.current_regret:.4g} nats",
                 "",
                 f"{'rank':>4}  {'pick':>4}  {'candidate':<{nw}}  {'N':>6}  {'D':>6}  {'cost':>9}  "
                 f"{'score':>10}  {'per EFLOP':>10}  {'ESS mean':>8}  teaches"]
        for rank, i in enumerate(self.order()[:limit], start=1):
            pick = str(self.picks.index(i) + 1) if i in self.picks else ""
            lines.append(f"{rank:>4}  {pick:>4}  {c.names[i]:<{nw}}  {format_quantity(c.model_size[i]):>6}  "
                         f"{format_quantity(c.tokens[i]):>6}  {c.cost[i]:>9.3g}  {self.score[i]:>10.4g}  "
                         f"{1e18 * self.score_per_cost[i]:>10.4g}  {self.ess_mean[i]:>8.1f}  {self.teaches[i]}")
        if len(c) > limit:
            lines.append(f"... {len(c) - limit} more")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def select_next(posterior: Posterior, candidates: CandidateSet, model_size, tokens, *, criterion: str = "voi",
                batch: int = 1, objective: Objective | None = None, constraints: Constraints | None = None,
                risk="mean", draw_weights=None, existing: CandidateSet | None = None,
                max_draws: int | None = DEFAULT_ACQUISITION_DRAWS, n_outcomes: int = DEFAULT_OUTCOMES,
                seed: int = 0) -> AcquisitionResult:
    """Rank candidate proxy runs for the target decision and pick the next batch.

    Parameters
    ----------
    posterior : Posterior
    candidates : CandidateSet
        From :func:`generate_candidates` or :func:`load_candidates`.
    model_size, tokens : float or str
        The target scale.
    criterion : {"voi", "variance", "random", "space-filling"}
    batch : int
    objective, constraints, risk
        As for :func:`bayesmix.decide.recommend`.
    draw_weights : array_like, optional
        Weights of the posterior's draws.
    existing : CandidateSet, optional
        Runs already trained (for ``space-filling``).
    max_draws, n_outcomes, seed
        See :class:`Acquisition`.

    Returns
    -------
    AcquisitionResult
    """
    acq = Acquisition(posterior, model_size, tokens, objective=objective, constraints=constraints,
                      risk=risk, draw_weights=draw_weights, max_draws=max_draws, n_outcomes=n_outcomes,
                      seed=seed)
    return acq.select(candidates, criterion=criterion, batch=batch, existing=existing)


# ============================================================================ campaigns
def table_to_candidates(table: RunTable) -> CandidateSet:
    """The runs of a table (final checkpoints) as candidates named by run id."""
    final = table.final_checkpoints()
    _, first = np.unique(np.asarray(final.run_ids, dtype=str), return_index=True)
    first = np.sort(first)
    return CandidateSet.from_arrays(final.domains, final.weights[first], final.model_size[first],
                                    final.tokens[first], names=[str(r) for r in final.run_ids[first]])


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
    ``sigma``; each row counts as its own run). Exact for a discrete prior, and free of
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
        loglik = log_likelihood(np.log(table.losses), np.log(mu), sigma, self.base.run_sd)  # (n, S)
        return self.base, _normalise_log(loglik.sum(0))


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
    sampler : {"nutpie", "pymc", "numpyro"}
    priors : dict, optional
        Prior overrides passed to :func:`~bayesmix.inference.fit_law`.

    Attributes
    ----------
    calls : int
        Fits run so far; ``seconds`` their total wall time.
    """

    def __init__(self, law: str = "capacity_noise", *, draws: int = 200, tune: int = 200, chains: int = 2,
                 seed: int = 0, max_draws: int | None = None, sampler: str = "nutpie", priors=None):
        self.law, self.draws, self.tune, self.chains = law, draws, tune, chains
        self.seed, self.max_draws, self.sampler, self.priors = seed, max_draws, sampler, priors
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, table: RunTable, previous: Posterior | None = None):
        from .inference import fit_law

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
    since (Normal on the log-loss with the draw's ``sigma`` and ``run_sd``; each new row
    its own run): the exact Bayesian update of the base posterior, as long as the
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
            warm = Posterior(self.base.law, draws, self.base.scaling, self.base.domains, sigma=sigma)
            self.base, self.base_rows = self.nuts(table, warm), table.n_rows
            self.refits += 1
            return self.base, None
        return self.base, w


class SimulatorObserver:
    """Observe candidates by simulating their runs from a known :class:`~bayesmix.simulate.Truth`."""

    def __init__(self, truth, *, seed: int = 0):
        self.truth, self.seed, self.count = truth, seed, 0

    def __call__(self, chosen: CandidateSet) -> RunTable:
        from .simulate import simulate_runs

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
                 seed: int = 0, callback: Callable | None = None, score: Callable | None = None) -> CampaignResult:
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
    observed: set = set()
    spent = 0.0
    log = []
    problems: dict = {}

    def state(result):
        return result if isinstance(result, tuple) else (result, None)

    posterior, weights = state(refit(table, None))
    step = 0
    while True:
        t0 = time.perf_counter()
        key = id(posterior)
        if key not in problems:
            problems.clear()
            problems[key] = (posterior, MixtureProblem(posterior, model_size, tokens, objective=objective,
                                                       constraints=constraints, max_draws=max_draws))
        acq = Acquisition(posterior, model_size, tokens, risk=risk, draw_weights=weights,
                          n_outcomes=n_outcomes, seed=seed + 1000 * step, problem=problems[key][1])
        h, R = acq.recommend()
        row = {"step": step, "n_runs": int(table.n_runs), "compute": spent, "expected_regret": R,
               "ess": float(effective_sample_size(acq.weights))}
        if regret_of is not None:
            r, opt = regret_of(h)
            row["true_regret"] = r
            row["true_relative_regret"] = r / opt
        for j, d in enumerate(posterior.domains):
            row[f"weight_{d}"] = h[j]
        if score is not None:
            row.update(score(acq.problem, acq.weights, h))
        done = budget_steps is not None and step >= budget_steps
        pool = candidates(step, table) if callable(candidates) else candidates
        keep = [i for i, n in enumerate(pool.names) if n not in observed]
        if budget_flops is not None:
            keep = [i for i in keep if spent + pool.cost[i] <= budget_flops]
        if not keep:
            done = True
        chosen_names = ""
        if not done:
            pool = pool.subset(keep)
            result = acq.select(pool, criterion=criterion, batch=batch)
            chosen = pool.subset(result.picks)
            if budget_flops is not None:  # drop picks beyond the budget
                cum = spent + np.cumsum(chosen.cost)
                chosen = chosen.subset(np.flatnonzero(cum <= budget_flops))
            chosen_names = ",".join(chosen.names)
            observed.update(chosen.names)
            spent += float(chosen.cost.sum())
            table = concat_tables(table, observe(chosen))
        row["chosen"] = chosen_names
        row["seconds"] = time.perf_counter() - t0
        log.append(row)
        if callback is not None:
            callback(row)
        if done:
            break
        posterior, weights = state(refit(table, posterior))
        step += 1
    return CampaignResult(log, table)


__all__ = [
    "AcquisitionResult", "Acquisition", "AdaptiveRefit", "CampaignResult", "CandidateSet", "NutsRefit", "PoolObserver",
    "ReweightRefit", "SimulatorObserver", "concat_tables", "effective_sample_size", "flops_cost",
    "generate_candidates", "load_candidates", "log_likelihood", "run_campaign", "select_next",
    "simplex_sobol", "table_to_candidates", "true_regret_function",
]
