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
from ..polytope import project_to_polytope
from ..posterior import Posterior
from ..units import format_quantity
from ..weighted import normalised_draw_weights
from .candidates import CandidateSet
from .likelihood import parameter_table
from .preposterior import (METHODS, Belief, RunPredictions, decision_explained, explained_share, linear_gains,
                           significant_share)

#: Simulated outcomes per candidate for the value of information.
DEFAULT_OUTCOMES = 256
#: Below this fraction of the draws, the mean effective sample size draws a warning
#: (``importance`` value of information).
ESS_WARNING_FRACTION = 0.1
#: Posterior draws used by the acquisition by default.
DEFAULT_ACQUISITION_DRAWS = 200
#: How the value of information updates the posterior by an outcome (see :mod:`.preposterior`).
DEFAULT_METHOD = "gaussian"
CRITERIA = ("voi", "variance", "random", "space-filling")
#: Noise sd of the log-loss assumed for posteriors without one (nats).
DEFAULT_NOISE_SD = 1e-2


@dataclass
class CandidateScores:
    """Scores of candidates under one state of the posterior (see :class:`Acquisition`)."""

    score: np.ndarray
    voi_se: np.ndarray
    ess_min: np.ndarray
    ess_mean: np.ndarray
    teaches: list
    explained: np.ndarray

    @classmethod
    def plain(cls, score) -> "CandidateScores":
        """Scores without the value of information's diagnostics."""
        nan = np.full(len(score), np.nan)
        return cls(np.asarray(score, dtype=float), nan, nan.copy(), nan.copy(), [""] * len(score), nan.copy())


class Acquisition:
    """Scores candidate runs by what they would teach about the target decision.

    What does not depend on an outcome is computed once: the recommendation now (under
    ``risk``), each draw's optimal mixture, a finite set of decisions (the recommendation,
    the draws' optima and the points half way between the two) with every draw's
    objective there, and what every draw predicts each candidate would show. The value
    of information is then a vectorised computation over candidates and simulated
    outcomes (:class:`~bayesmix.acquire.preposterior.Belief`).

    Parameters
    ----------
    posterior : Posterior
    model_size, tokens : float or str
        The target scale ``N*``, ``D*``.
    objective : Objective, optional
    constraints : Constraints, optional
    risk : str or Risk
        The decision's risk measure: the decision minimises it and the value of
        information is the fall in it (for the mean: the fall in expected regret).
    draw_weights : array_like, optional
        Weights of ``posterior``'s draws (e.g. from :class:`ReweightRefit`).
    max_draws : int, optional
        Thin the posterior to at most this many draws.
    n_outcomes : int
        Simulated outcomes per candidate.
    method : {"gaussian", "importance"}
        How an outcome updates the posterior (:mod:`bayesmix.acquire.preposterior`).
    seed : int
        Seed of the simulated outcomes (shared by all candidates: common random numbers).
    problem : MixtureProblem, optional
        A compiled problem for the same posterior and target to reuse (its per-draw optima
        are cached).
    """

    def __init__(self, posterior: Posterior, model_size, tokens, *, objective: Objective | None = None,
                 constraints: Constraints | None = None, risk="mean", draw_weights=None,
                 max_draws: int | None = DEFAULT_ACQUISITION_DRAWS, n_outcomes: int = DEFAULT_OUTCOMES,
                 method: str = DEFAULT_METHOD, seed: int = 0, problem: MixtureProblem | None = None):
        if n_outcomes < 2:
            raise UsageError(f"n_outcomes must be at least 2, got {n_outcomes}")
        if method not in METHODS:
            raise UsageError(f"unknown value-of-information method '{method}': use one of {', '.join(METHODS)}")
        self.problem = problem or MixtureProblem(posterior, model_size, tokens, objective=objective,
                                                 constraints=constraints, max_draws=max_draws)
        self.posterior = self.problem.posterior
        w = None
        if draw_weights is not None:
            w = np.asarray(draw_weights, dtype=float).reshape(-1)
            if w.shape[0] == posterior.n_draws and w.shape[0] != self.problem.n_draws:
                w = w[self.problem.draw_index]
        self.weights = normalised_draw_weights(w, self.problem.n_draws)
        self.risk = Risk.parse(risk)
        self.n_outcomes, self.method, self.seed = int(n_outcomes), method, seed
        self.param_names, self.param_draws = parameter_table(self.posterior)
        self._decisions = None

    # ------------------------------------------------------------------ decisions
    @property
    def n_draws(self) -> int:
        return self.problem.n_draws

    def decision_set(self):
        """The finite set of decisions the value of information chooses among, and every
        draw's objective there.

        Returns
        -------
        (mixtures ``(H, K)``, objective ``(S, H)``, optima ``(S,)``): row 0 is the
        recommendation now; then each draw's optimum and the point half way between it
        and the recommendation. ``optima`` are the draws' optimal objectives.
        """
        if self._decisions is None:
            w = self.weights
            opt_h, opt_v = self.problem.per_draw_optima()
            h0, _ = self.problem.recommend_mixture(self.risk, draw_weights=w, starts=[w @ opt_h])
            bounds = self.problem.bounds
            halfway = project_to_polytope(0.5 * (h0[None] + opt_h), bounds.lower, bounds.upper)
            H = np.concatenate([h0[None], opt_h, halfway])
            F = self.problem.objective_draws(H)
            self._decisions = (H, F, np.minimum(opt_v, F.min(axis=1)))
        return self._decisions

    def recommend(self):
        """The recommendation now and its posterior expected (mean) regret in nats."""
        H, F, optima = self.decision_set()
        return H[0], float(self.weights @ np.maximum(F[:, 0] - optima, 0.0))

    # ------------------------------------------------------------------ outcomes
    def predictions(self, candidates: CandidateSet) -> RunPredictions:
        """What each draw predicts each candidate run would show (log-losses, noise).

        Where the fit models the law's error over scale, a candidate's is drawn jointly
        with the error at the target that the decision's objective holds (the Gaussian
        process conditioned on it): a run near the target tells about it, one far away
        little, and a linear update sees that.
        """
        target = (self.problem.model_size, self.problem.tokens)
        mu = self.posterior.expected_loss(candidates.mixtures, candidates.model_size, candidates.tokens,
                                          jointly_with=target)
        S, M, K = mu.shape
        draws = getattr(self.posterior, "observation", None)
        if self.posterior.sigma is None:
            cell = np.full((S, M, K), DEFAULT_NOISE_SD)
        else:
            cell = np.array(observation.cell_sd(self.posterior.sigma, draws,
                                                self.posterior.full_weights(candidates.mixtures)))
        run_sd = None if self.posterior.run_sd is None else np.asarray(self.posterior.run_sd, dtype=float)
        return RunPredictions(np.log(mu), cell, run_sd)

    def belief(self, candidates: CandidateSet, predictions: RunPredictions | None = None) -> Belief:
        """The current posterior over the decision set and the candidates' outcomes."""
        _, F, _ = self.decision_set()
        pred = self.predictions(candidates) if predictions is None else predictions
        return Belief(F, pred, self.weights, self.risk, method=self.method, n_outcomes=self.n_outcomes,
                      seed=self.seed)

    # ------------------------------------------------------------------ criteria
    def score_voi(self, candidates: CandidateSet, *, belief: Belief | None = None, idx=None) -> CandidateScores:
        """Value of information of each candidate (nats of risk removed; see :class:`Belief`).

        ``idx`` restricts the scoring to those candidates of ``belief`` (default: all).
        """
        belief = self.belief(candidates) if belief is None else belief
        est = belief.value(idx)
        pred = belief.predictions if idx is None else belief.predictions.candidates(np.asarray(idx, dtype=int))
        w = belief.weights
        gains, cyx = linear_gains(self.param_draws, pred, w)
        teaches = [self._teaches(row) for row in explained_share(gains, cyx, self.param_draws, w)]
        gains, cyx = linear_gains(belief.values, pred, w)
        explained = decision_explained(gains, cyx, belief.values, w, belief.base_decision())
        return CandidateScores(est.value, est.se, est.ess_min, est.ess_mean, teaches, explained)

    def _teaches(self, share, top: int = 3) -> str:
        """The parameters whose posterior sd a run would shrink most, from the shares of
        their variance it explains."""
        shrink = 1.0 - np.sqrt(1.0 - share)
        order = np.argsort(-shrink)[:top]
        return "; ".join(f"{self.param_names[i]} sd -{100 * shrink[i]:.0f}%" for i in order if shrink[i] > 0.005)

    def score_variance(self, candidates: CandidateSet, *, belief: Belief | None = None, idx=None) -> CandidateScores:
        """Posterior variance of the candidate's expected log-losses, objective-weighted."""
        belief = self.belief(candidates) if belief is None else belief
        return CandidateScores.plain(belief.variance(idx) @ self.problem.objective_weights)

    # ------------------------------------------------------------------ selection
    def select(self, candidates: CandidateSet, *, criterion: str = "voi", batch: int | None = None,
               budget: float | None = None, existing: CandidateSet | None = None,
               ess_warning: float = ESS_WARNING_FRACTION) -> "AcquisitionResult":
        """Score and rank candidates; pick a batch greedily, by count or within a budget.

        Parameters
        ----------
        candidates : CandidateSet
        criterion : {"voi", "variance", "random", "space-filling"}
        batch : int, optional
            Runs to pick (default 1; with ``budget``: as many as fit). After each pick
            the posterior is conditioned on a fantasised outcome of it (a draw of its
            predictive) and the rest are rescored.
        budget : float, optional
            Compute (FLOPs, in the candidates' cost units) the picks may spend together:
            runs are added by value per cost among those that still fit, while one is
            worth something (``voi``); the batch is replaced by the single most valuable
            run that fits when that one is worth more (the greedy knapsack's safeguard).
        existing : CandidateSet, optional
            Runs already trained (for ``space-filling``).
        ess_warning : float
            Warn when the mean effective sample size is below this fraction of the draws
            (``importance`` method).

        Returns
        -------
        AcquisitionResult
        """
        t0 = time.perf_counter()
        M = _check_selection(candidates, criterion, batch, budget)
        max_picks = min(M, batch if batch is not None else (M if budget is not None else 1))
        rng = np.random.default_rng(self.seed + 7)
        belief = self.belief(candidates) if criterion in ("voi", "variance") else None
        h0, R0 = self.recommend()
        picks, pick_scores, first = [], [], None
        while len(picks) < max_picks:
            spent = float(candidates.cost[picks].sum())
            open_ = [i for i in range(M) if i not in picks and (budget is None or spent + candidates.cost[i] <= budget)]
            if not open_:
                break
            idx = list(range(M)) if first is None else open_
            sc = self._criterion_scores(criterion, candidates, idx, belief, picks, existing, rng)
            first = sc if first is None else first
            score = dict(zip(idx, sc.score))
            key = [score[i] / candidates.cost[i] if criterion in ("voi", "variance") else score[i] for i in open_]
            j = open_[int(np.argmax(key))]
            if budget is not None and criterion == "voi" and score[j] <= 0:
                break  # nothing left is worth its cost
            picks.append(j)
            pick_scores.append(float(score[j]))
            if belief is not None and len(picks) < max_picks:
                belief.condition(j)
        if budget is not None and criterion == "voi":
            picks, pick_scores = _knapsack_safeguard(picks, pick_scores, first.score, candidates.cost, budget)
        return AcquisitionResult(
            candidates=candidates, criterion=criterion, score=first.score, voi_se=first.voi_se,
            ess_min=first.ess_min, ess_mean=first.ess_mean, teaches=first.teaches,
            warnings_col=self._warning_column(criterion, first, ess_warning), picks=picks, pick_scores=pick_scores,
            current_regret=R0, recommendation=h0, n_draws=self.n_draws, n_outcomes=self.n_outcomes,
            warnings=self._warnings(criterion, first, ess_warning, budget, picks), seconds=time.perf_counter() - t0,
            explained=first.explained, method=self.method, risk=str(self.risk), budget=budget,
        )

    def _criterion_scores(self, criterion, candidates, idx, belief, picks, existing, rng) -> CandidateScores:
        """The criterion's scores of the candidates ``idx`` given the picks so far."""
        if criterion == "voi":
            return self.score_voi(candidates, belief=belief, idx=idx)
        if criterion == "variance":
            return self.score_variance(candidates, belief=belief, idx=idx)
        if criterion == "random":
            return CandidateScores.plain(rng.uniform(size=len(idx)))
        return self._space_filling(candidates.subset(idx), candidates.subset(picks) if picks else None, existing,
                                   candidates)

    def _warning_column(self, criterion, first: CandidateScores, ess_warning: float) -> list:
        M = len(first.score)
        if criterion != "voi" or self.method != "importance":
            return [""] * M
        limit = ess_warning * self.n_draws
        return [f"low effective sample size ({first.ess_mean[m]:.1f} of {self.n_draws} draws): the value of "
                "information rests on few draws; use more draws or --voi-method gaussian"
                if first.ess_mean[m] < limit else "" for m in range(M)]

    def _warnings(self, criterion, first: CandidateScores, ess_warning: float, budget, picks) -> list:
        out = []
        if criterion == "voi" and self.method == "importance":
            n_low = int(np.sum(first.ess_mean < ess_warning * self.n_draws))
            if n_low:
                out.append(f"{n_low} of {len(first.score)} candidates have a mean effective sample size below "
                           f"{100 * ess_warning:g}% of the {self.n_draws} draws: their outcome would pin the "
                           "posterior to few draws, so their value of information saturates at the value of "
                           "perfect information; use --voi-method gaussian, or more draws (--max-draws)")
        if criterion == "voi" and not np.any(first.score > 2 * first.voi_se):
            out.append("no candidate's value of information is clearly above 0 (2 standard errors): no run "
                       "here is expected to change the decision much; the ranking is mostly noise")
        if budget is not None and not picks:
            out.append(f"no candidate within the budget of {budget:.3g} FLOPs is worth its cost")
        return out

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
        return CandidateScores.plain(np.sqrt(((x[:, None] - ref[None]) ** 2).sum(-1)).min(1))


def _check_selection(candidates: CandidateSet, criterion: str, batch, budget) -> int:
    """The number of candidates, once the selection's options are checked."""
    if criterion not in CRITERIA:
        raise UsageError(f"unknown criterion '{criterion}': use one of {', '.join(CRITERIA)}")
    M = len(candidates)
    if M == 0:
        raise UsageError("no candidates to score")
    if batch is not None and batch < 1:
        raise UsageError(f"batch must be at least 1, got {batch}")
    if budget is not None:
        if not np.isfinite(budget) or budget <= 0:
            raise UsageError(f"the budget must be a positive number of FLOPs, got {budget}")
        cheapest = float(np.min(candidates.cost))
        if cheapest > budget:
            raise UsageError(f"the budget of {budget:.3g} FLOPs is below the cheapest candidate's cost "
                             f"({cheapest:.3g} FLOPs): raise --budget or offer smaller candidates")
    return M


def _knapsack_safeguard(picks, pick_scores, first_scores, cost, budget):
    """The greedy batch, or the single most valuable run within the budget when it is worth
    more than the whole batch (greedy by value per cost alone can be arbitrarily worse)."""
    fits = np.flatnonzero(cost <= budget)
    best = int(fits[np.argmax(first_scores[fits])])
    if first_scores[best] > 0 and first_scores[best] > sum(pick_scores):
        return [best], [float(first_scores[best])]
    return picks, pick_scores


@dataclass
class AcquisitionResult:
    """Candidates ranked by an acquisition criterion, with the batch picked.

    Attributes
    ----------
    candidates : CandidateSet
    criterion : str
    score : ndarray ``(M,)``
        The criterion under the current posterior (``voi``: nats of the risk measure
        removed, for the mean risk the expected regret removed; ``variance``: squared
        log-loss; ``space-filling``: a distance).
    voi_se : ndarray ``(M,)``
        Monte Carlo standard error of the VOI over simulated outcomes.
    ess_min, ess_mean : ndarray ``(M,)``
        Effective sample size of the reweighted draws over the outcomes (``importance``).
    teaches : list of str
        Parameters whose posterior sd the run would shrink most.
    picks : list of int
        Indices of the batch, in pick order; ``pick_scores`` their scores when picked.
    current_regret : float
        Posterior expected regret of the current recommendation (nats).
    recommendation : ndarray ``(K,)``
    warnings : list of str
    explained : ndarray ``(M,)``
        Share of the posterior variance of the objective's contrasts between decisions
        that the run's outcome would explain (linear-Gaussian).
    method, risk : str
        The value of information's update and the decision's risk measure.
    budget : float or None
        The compute budget of the batch (FLOPs), when one was given.
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
    explained: np.ndarray | None = None
    method: str = DEFAULT_METHOD
    risk: str = "mean"
    budget: float | None = None

    @property
    def score_per_cost(self) -> np.ndarray:
        return self.score / self.candidates.cost

    @property
    def batch_cost(self) -> float:
        """Compute of the picked runs together (FLOPs)."""
        return float(self.candidates.cost[self.picks].sum()) if self.picks else 0.0

    def order(self) -> list:
        """Batch picks first (in pick order), then the rest by score per cost (or score);
        candidates of equal score (a value of exactly 0: :meth:`below_detection`) by the
        share of the decision they explain per cost."""
        key = self.score_per_cost if self.criterion in ("voi", "variance") else self.score
        tie = (np.zeros(len(key)) if self.explained is None
               else np.nan_to_num(self.explained / self.candidates.cost, nan=0.0))
        rest = [i for i in np.lexsort((-tie, -key)) if i not in self.picks]
        return list(self.picks) + [int(i) for i in rest]

    def below_detection(self) -> np.ndarray:
        """``(M,)`` bool: candidates whose value of information is exactly 0 because what
        their outcome explains of the decision (:attr:`explained`) is not more than
        ``n_draws`` draws would explain by chance (the gaussian update's significance
        test, :func:`~bayesmix.acquire.preposterior.significant_share`). More draws can
        resolve weaker runs; their order among themselves is by explained share per cost."""
        if self.criterion != "voi" or self.method != "gaussian" or self.explained is None:
            return np.zeros(len(self.score), dtype=bool)
        return (self.score == 0) & np.isfinite(self.explained)

    def detection_bar(self) -> float:
        """About the explained share a candidate needs before its outcome moves the
        decision: the significance bar of :func:`~bayesmix.acquire.preposterior.shrink_gains`
        for the half of :attr:`n_draws` equally weighted draws that fits the cross-fitted
        update (the test is on that half's own estimate of the share, which scatters
        around :attr:`explained`)."""
        return significant_share(self.candidates.mixtures.shape[1], self.n_draws / 2)

    def to_frame(self):
        """The ranked candidates as a DataFrame (the CSV that ``bayesmix next`` writes)."""
        import pandas as pd

        c = self.candidates
        explained = np.full(len(c), np.nan) if self.explained is None else self.explained
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
                        "voi_se": self.voi_se[i], "explained": explained[i], "ess_min": self.ess_min[i],
                        "ess_mean": self.ess_mean[i], "teaches": self.teaches[i], "warning": self.warnings_col[i]})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_csv(self, path) -> None:
        """Write :meth:`to_frame` as CSV to ``path`` atomically (folders created as needed)."""
        write_text_atomic(path, self.to_frame().to_csv(index=False))

    def format_table(self, limit: int = 15) -> str:
        """The ranking as text: a header, the first ``limit`` candidates, the warnings."""
        c = self.candidates
        nw = max(9, max(len(n) for n in c.names))
        voi = self.criterion == "voi"
        how = ""
        if voi:
            how = (f", {self.n_outcomes} simulated outcomes each, {self.method} update, "
                   f"value = fall in the {self.risk} risk")
        lines = [f"criterion: {self.criterion}; {len(c)} candidates; {self.n_draws} draws{how}",
                 f"current expected regret at the target: {self.current_regret:.4g} nats"]
        if self.budget is not None:
            lines.append(f"budget: {self.budget:.3g} FLOPs; batch of {len(self.picks)} costs {self.batch_cost:.3g}")
        diag = "ESS mean" if self.method == "importance" else "explained"
        lines += ["", f"{'rank':>4}  {'pick':>4}  {'candidate':<{nw}}  {'N':>6}  {'D':>6}  {'cost':>9}  "
                  f"{'score':>10}  {'+-':>8}  {'per EFLOP':>10}  {'in batch':>10}  {diag:>9}  teaches"]
        for rank, i in enumerate(self.order()[:limit], start=1):
            pick = str(self.picks.index(i) + 1) if i in self.picks else ""
            in_batch = f"{self.pick_scores[self.picks.index(i)]:.4g}" if i in self.picks else ""
            d = self.ess_mean[i] if self.method == "importance" else (np.nan if self.explained is None
                                                                       else self.explained[i])
            lines.append(f"{rank:>4}  {pick:>4}  {c.names[i]:<{nw}}  {format_quantity(c.model_size[i]):>6}  "
                         f"{format_quantity(c.tokens[i]):>6}  {c.cost[i]:>9.3g}  {self.score[i]:>10.4g}  "
                         f"{self.voi_se[i]:>8.2g}  {1e18 * self.score_per_cost[i]:>10.4g}  {in_batch:>10}  "
                         f"{d:>9.3g}  {self.teaches[i]}")
        if len(c) > limit:
            lines.append(f"... {len(c) - limit} more")
        if len(self.picks) > 1:
            lines.append("score: the value now; in batch: the value once the earlier picks are (fantasised as) "
                         "observed, which picks the later ones")
        undetected = int(self.below_detection().sum())
        if undetected:
            lines.append(f"score 0 ({undetected} candidates): what the run explains of the decision is not "
                         f"more than {self.n_draws} draws tell from chance (about {self.detection_bar():.1%}), so "
                         "its outcome would not move the decision; these are ordered by explained share per "
                         "FLOP, and more draws (--max-draws) resolve weaker runs")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)


def select_next(posterior: Posterior, candidates: CandidateSet, model_size, tokens, *, criterion: str = "voi",
                batch: int | None = None, budget: float | None = None, objective: Objective | None = None,
                constraints: Constraints | None = None, risk="mean", draw_weights=None,
                existing: CandidateSet | None = None, max_draws: int | None = DEFAULT_ACQUISITION_DRAWS,
                n_outcomes: int = DEFAULT_OUTCOMES, method: str = DEFAULT_METHOD, seed: int = 0) -> AcquisitionResult:
    """Rank candidate proxy runs for the target decision and pick the next batch.

    Parameters
    ----------
    posterior : Posterior
    candidates : CandidateSet
        From :func:`generate_candidates` or :func:`load_candidates`.
    model_size, tokens : float or str
        The target scale.
    criterion : {"voi", "variance", "random", "space-filling"}
    batch : int, optional
        Runs to pick (default 1, or as many as ``budget`` allows).
    budget : float, optional
        Compute the batch may spend (FLOPs); see :meth:`Acquisition.select`.
    objective, constraints, risk
        As for :func:`bayesmix.decide.recommend`.
    draw_weights : array_like, optional
        Weights of the posterior's draws.
    existing : CandidateSet, optional
        Runs already trained (for ``space-filling``).
    max_draws, n_outcomes, method, seed
        See :class:`Acquisition`.

    Returns
    -------
    AcquisitionResult
    """
    acq = Acquisition(posterior, model_size, tokens, objective=objective, constraints=constraints,
                      risk=risk, draw_weights=draw_weights, max_draws=max_draws, n_outcomes=n_outcomes,
                      method=method, seed=seed)
    return acq.select(candidates, criterion=criterion, batch=batch, budget=budget, existing=existing)
