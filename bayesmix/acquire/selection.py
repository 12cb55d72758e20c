"""Which candidate run to do next: the value of information of each candidate (the
expected fall in regret of the decision), or a simpler criterion, per unit of compute."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import observation
from .._files import write_text_atomic
from ..decide import Constraints, MixtureProblem, Objective, Risk
from ..errors import UsageError
from ..polytope import project_to_polytope, spectral_projected_gradient
from ..posterior import Posterior
from ..units import format_quantity
from ..weighted import normalised_draw_weights
from .candidates import CandidateSet
from .likelihood import effective_sample_size, log_likelihood, normalise_log, parameter_table

#: Simulated outcomes per candidate for the value of information.
DEFAULT_OUTCOMES = 32
#: Below this fraction of the draws, the mean effective sample size draws a warning.
ESS_WARNING_FRACTION = 0.1
#: Posterior draws used by the acquisition by default (each outcome re-optimises over them).
DEFAULT_ACQUISITION_DRAWS = 200
CRITERIA = ("voi", "variance", "random", "space-filling")


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
        self.param_names, self.param_draws = parameter_table(self.posterior)
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
        return normalise_log(logw)

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
