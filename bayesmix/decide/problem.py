"""A mixture decision at one target: the risk optimum, per-draw optima, regret, rankings."""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from ..errors import UsageError
from ..polytope import project_to_polytope, spectral_projected_gradient
from ..posterior import PosteriorLike
from ..units import parse_quantity
from ..weighted import INTERVAL_QUANTILES, normalised_draw_weights, weighted_quantile
from .constraints import CONSTRAINT_TOLERANCE, Constraints
from .evaluator import Evaluator, evaluator_for
from .mixtures import Objective, as_mixture, check_predicted
from .results import BaselineComparison, CandidateRanking, Recommendation, draw_summary
from .risk import Risk, regret_of_values

#: Posterior draws used by default for the decision (risk, regret, optimum posterior).
DEFAULT_MAX_DRAWS = 400
#: Restarts of the risk optimisation (the centre of the feasible set and random points).
DEFAULT_RESTARTS = 4


def _thin_index(n_draws: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced draws, as :meth:`Posterior.thin` chooses them."""
    if max_draws is None or n_draws <= max_draws:
        return np.arange(n_draws)
    if max_draws < 1:
        raise UsageError(f"max_draws must be at least 1, got {max_draws}")
    return np.linspace(0, n_draws - 1, int(max_draws)).round().astype(int)


class MixtureProblem:
    """The mixture decision at one target scale, compiled once and reusable.

    Parameters
    ----------
    posterior : PosteriorLike
    model_size, tokens : float or str
        Target N (parameters) and D (tokens); strings like ``"7B"`` are accepted.
    objective : Objective, optional
        Default: the plain average over domains.
    constraints : Constraints, optional
    max_draws : int, optional
        Thin the posterior to at most this many evenly spaced draws (None: all).

    Attributes
    ----------
    posterior : PosteriorLike
        The (thinned) posterior the decision uses; ``draw_index`` maps its draws to the
        input posterior's. Draw weights passed to methods refer to these draws.
    bounds : Bounds
    target_domains : tuple of str
        The mixture's domains, then the evaluation-only domains the posterior predicts
        (which the objective may name; their weight in a mixture is always 0).
    objective_weights : ndarray ``(T,)``
        Over the target domains.

    Raises
    ------
    UsageError
        If the constraints cannot all hold, or an option names an unknown domain.
    """

    def __init__(self, posterior: PosteriorLike, model_size, tokens, *, objective: Objective | None = None,
                 constraints: Constraints | None = None, max_draws: int | None = DEFAULT_MAX_DRAWS):
        self.model_size = parse_quantity(model_size, what="model size")
        self.tokens = parse_quantity(tokens, what="tokens")
        self.domains = tuple(posterior.domains)
        self.target_domains = tuple(posterior.target_domains)
        self.objective = objective or Objective()
        self.constraints = constraints or Constraints()
        check_predicted(self.objective.named_domains(), posterior, "the objective")
        self.objective_weights = self.objective.domain_weights(self.target_domains, n_mixture=len(self.domains))
        self.bounds = self.constraints.bounds(self.domains, self.tokens, posterior.law.min_positive_weight)
        self.source_posterior = posterior
        self.draw_index = _thin_index(posterior.n_draws, max_draws)
        self.posterior = posterior if len(self.draw_index) == posterior.n_draws else posterior.subset(self.draw_index)
        self._optima = None
        self._optima_seconds = 0.0

    # ------------------------------------------------------------------ evaluation
    @property
    def n_draws(self) -> int:
        return self.posterior.n_draws

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    @property
    def evaluator(self) -> Evaluator:
        return evaluator_for(self.posterior, self.model_size, self.tokens)

    def _as_mixtures(self, mixtures) -> np.ndarray:
        h = np.atleast_2d(np.asarray(mixtures, dtype=float))
        if h.shape[-1] != self.n_domains:
            raise UsageError(f"mixtures have {h.shape[-1]} weights but the fit has "
                             f"{self.n_domains} domains ({', '.join(self.domains)})")
        if np.any(h < -1e-12) or np.any(np.abs(h.sum(-1) - 1) > 1e-6):
            raise UsageError("mixture weights must be non-negative and sum to 1")
        return np.clip(h, 0.0, None)

    def domain_losses(self, mixtures) -> np.ndarray:
        """Expected loss per draw, mixture and target domain at the target, ``(S, M, T)`` nats."""
        h = self._as_mixtures(mixtures)
        tiled = np.broadcast_to(h[None], (self.n_draws,) + h.shape)
        return self.evaluator(tiled, self.objective_weights)[2]

    def objective_draws(self, mixtures) -> np.ndarray:
        """The objective per draw and mixture at the target, ``(S, M)`` nats."""
        h = self._as_mixtures(mixtures)
        tiled = np.broadcast_to(h[None], (self.n_draws,) + h.shape)
        return self.evaluator(tiled, self.objective_weights)[0]

    def _risk_function(self, risk: Risk, weights: np.ndarray):
        evaluator, S = self.evaluator, self.n_draws

        def fun(X):
            tiled = np.broadcast_to(X[None], (S,) + X.shape)
            values, grads, _ = evaluator(tiled, self.objective_weights)  # (S, R), (S, R, K)
            if not np.all(np.isfinite(values)):
                bad = ~np.all(np.isfinite(values), axis=0)
                values = np.where(np.isfinite(values), values, 0.0)
            else:
                bad = None
            coef = risk.coefficients(values, weights)
            f = np.sum(coef * values, axis=0)
            g = np.einsum("sr,srk->rk", coef, grads)
            if bad is not None:
                f = np.where(bad, np.inf, f)
            return f, g

        return fun

    # ------------------------------------------------------------------ optimisation
    def starting_points(self, n_restarts: int = DEFAULT_RESTARTS, *, extra=(), seed: int = 0) -> np.ndarray:
        """The centre of the feasible set, random feasible points and ``extra`` mixtures."""
        rng = np.random.default_rng(seed)
        starts = [self.bounds.centre()]
        if n_restarts > 1:
            random = rng.dirichlet(np.ones(self.n_domains), size=n_restarts - 1)
            starts.extend(project_to_polytope(random, self.bounds.lower, self.bounds.upper))
        for h in extra:
            starts.append(project_to_polytope(np.asarray(h, dtype=float), self.bounds.lower, self.bounds.upper))
        return np.array(starts)

    def recommend_mixture(self, risk="mean", *, draw_weights=None, n_restarts: int = DEFAULT_RESTARTS,
                          starts=None, seed: int = 0) -> tuple[np.ndarray, float]:
        """The feasible mixture with the lowest risk measure, and that risk (nats).

        Parameters
        ----------
        risk : str or Risk
        draw_weights : array_like ``(n_draws,)``, optional
            Importance weights of this problem's (thinned) draws.
        n_restarts : int
            Starting points: the centre of the feasible set and random feasible points.
        starts : array_like ``(R, K)``, optional
            Further starting mixtures (projected onto the feasible set).
        seed : int
        """
        risk = Risk.parse(risk)
        weights = normalised_draw_weights(draw_weights, self.n_draws)
        x0 = self.starting_points(n_restarts, extra=() if starts is None else np.atleast_2d(starts), seed=seed)
        x, f, _, _ = spectral_projected_gradient(self._risk_function(risk, weights), x0,
                                                  self.bounds.lower, self.bounds.upper)
        # Re-evaluate exactly at the projected points (the optimiser's f is of these points).
        best = int(np.argmin(f))
        return self._finalise(x[best]), float(f[best])

    def _finalise(self, h) -> np.ndarray:
        """Clip into the bounds and put the sum back to one exactly (to rounding)."""
        h = project_to_polytope(np.asarray(h, dtype=float), self.bounds.lower, self.bounds.upper)
        if (np.any(h < self.bounds.lower - CONSTRAINT_TOLERANCE) or np.any(h > self.bounds.upper + CONSTRAINT_TOLERANCE)
                or abs(h.sum() - 1.0) > CONSTRAINT_TOLERANCE):  # pragma: no cover - a bug, not a user error
            raise RuntimeError(f"projection failed to meet the constraints: {h}")
        return h

    def per_draw_optima(self, *, extra_starts=(), seed: int = 0, refresh: bool = False):
        """Each draw's own optimal mixture over the feasible set, all draws at once.

        Every draw starts from the centre of the feasible set, one random feasible point
        and each of ``extra_starts`` (e.g. the recommendation, so that no draw's optimum is
        worse than it); the best end point per draw is kept. Cached until ``refresh``
        or new ``extra_starts`` are given.

        Returns
        -------
        (mixtures ``(S, K)``, values ``(S,)``)
        """
        if self._optima is not None and not refresh and not len(extra_starts):
            return self._optima
        t0 = time.perf_counter()
        S, K = self.n_draws, self.n_domains
        rng = np.random.default_rng(seed + 1)
        starts = [np.broadcast_to(self.bounds.centre(), (S, K)),
                  project_to_polytope(rng.dirichlet(np.ones(K), size=S), self.bounds.lower, self.bounds.upper)]
        for h in extra_starts:
            starts.append(np.broadcast_to(project_to_polytope(np.asarray(h, float), self.bounds.lower,
                                                              self.bounds.upper), (S, K)))
        R = len(starts)
        x0 = np.stack(starts, axis=1).reshape(S * R, K)  # draw-major: row s*R + r
        evaluator = self.evaluator

        def fun(X):
            values, grads, _ = evaluator(X.reshape(S, R, K), self.objective_weights)
            return values.reshape(-1), grads.reshape(S * R, K)

        x, f, _, _ = spectral_projected_gradient(fun, x0, self.bounds.lower, self.bounds.upper)
        x, f = x.reshape(S, R, K), f.reshape(S, R)
        best = np.argmin(f, axis=1)
        mixtures = x[np.arange(S), best]
        values = f[np.arange(S), best]
        if self._optima is not None and not refresh:  # keep whichever is better per draw
            old_h, old_v = self._optima
            better = old_v < values
            mixtures = np.where(better[:, None], old_h, mixtures)
            values = np.where(better, old_v, values)
        self._optima = (mixtures, values)
        self._optima_seconds += time.perf_counter() - t0
        return self._optima

    def expected_regret(self, mixture, draw_weights=None) -> float:
        """Posterior mean of ``f_s(mixture) - min_h f_s(h)`` (nats), optionally reweighted."""
        values = self.objective_draws(mixture)[:, 0]
        _, optimum = self.per_draw_optima()
        return regret_of_values(values, optimum, draw_weights)

    # ------------------------------------------------------------------ reports
    def recommend(self, risk="mean", *, baselines=None, draw_weights=None,
                  n_restarts: int = DEFAULT_RESTARTS, seed: int = 0) -> Recommendation:
        """Recommend a mixture and report its outcome, regret and the optimum's posterior.

        See :func:`recommend` for the parameters.
        """
        t_start = time.perf_counter()
        risk = Risk.parse(risk)
        weights = normalised_draw_weights(draw_weights, self.n_draws)
        named = _baseline_mixtures(baselines, self.domains)
        mixture, opt_h, opt_v, timing = self._optimise(risk, weights, named, n_restarts, seed)
        values = self.objective_draws(mixture)[:, 0]
        opt_v = np.minimum(opt_v, values)  # a draw's optimum is never worse than the recommendation
        regret = values - opt_v
        opt_summary = draw_summary(opt_h, weights)
        return Recommendation(
            domains=self.domains,
            mixture=mixture,
            model_size=self.model_size,
            tokens=self.tokens,
            objective=self.describe_objective(),
            objective_weights=self.objective_weights,
            eval_domains=self.target_domains[len(self.domains):],
            risk=risk,
            risk_value=float(risk.evaluate(values, weights)),
            objective_summary={k: float(v) for k, v in draw_summary(values, weights).items()},
            domain_losses=self._loss_summary(mixture, weights, seed),
            baselines=self._baseline_comparisons(named, values, risk, weights),
            expected_regret=float(np.sum(weights * regret)),
            regret_q95=float(weighted_quantile(regret, 0.95, weights)),
            optimum={"mean": opt_summary["mean"], "q05": opt_summary["q05"], "q95": opt_summary["q95"]},
            optimum_objective={k: float(v) for k, v in draw_summary(opt_v, weights).items()},
            bounds=self.bounds,
            constraints=self.constraints.to_dict(),
            n_draws=self.n_draws,
            n_draws_available=self.source_posterior.n_draws,
            law=self.posterior.law.name,
            fingerprint=self.posterior.meta.get("fingerprint"),
            settings={"risk": str(risk), "n_restarts": n_restarts, "seed": seed,
                      "weighted_draws": draw_weights is not None},
            timing={**timing, "total": time.perf_counter() - t_start},
            notes=self._notes(),
        )

    def _optimise(self, risk: Risk, weights: np.ndarray, named: dict, n_restarts: int, seed: int):
        """The recommended mixture and every draw's optimum ``(S, K)``, ``(S,)``, with the
        seconds spent compiling, optimising the risk and finding the per-draw optima."""
        t0 = time.perf_counter()
        self.evaluator  # compiled here unless cached
        timing = {"compile": time.perf_counter() - t0}
        feasible_baselines = [h for h in named.values() if not self.bounds.violations(h)]
        t0 = time.perf_counter()
        mixture, value = self.recommend_mixture(risk, draw_weights=weights, n_restarts=n_restarts,
                                                starts=feasible_baselines or None, seed=seed)
        timing["optimise"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        opt_h, opt_v = self.per_draw_optima(extra_starts=[mixture], seed=seed)
        # One more restart from the centre of the draws' optima (often the risk optimum's basin).
        polished, polished_value = self.recommend_mixture(
            risk, draw_weights=weights, n_restarts=1, starts=[np.sum(weights[:, None] * opt_h, axis=0)], seed=seed)
        if polished_value < value:
            mixture = polished
        timing["per_draw_optima"] = time.perf_counter() - t0
        return mixture, opt_h, opt_v, timing

    def _loss_summary(self, mixture: np.ndarray, weights: np.ndarray, seed: int) -> dict:
        """The expected loss per domain at ``mixture`` (:func:`draw_summary`) with the 90%
        interval of a new run's observed loss (``predictive_q05``, ``predictive_q95``)."""
        losses = self.domain_losses(mixture)  # (S, 1, K)
        predictive = self.posterior.add_noise(losses, seed=seed)[:, 0]
        loss_summary = draw_summary(losses[:, 0], weights)
        pred_q = weighted_quantile(predictive, INTERVAL_QUANTILES, weights)
        loss_summary["predictive_q05"], loss_summary["predictive_q95"] = pred_q[0], pred_q[1]
        return loss_summary

    def _baseline_comparisons(self, named: dict, values: np.ndarray, risk: Risk,
                              weights: np.ndarray) -> list[BaselineComparison]:
        """Each named mixture against the recommendation, whose objective draws are ``values``."""
        if not named:
            return []
        base_h = np.array(list(named.values()))
        base_values = self.objective_draws(base_h)
        base_risk = np.atleast_1d(risk.evaluate(base_values, weights))
        comparisons = []
        for j, name in enumerate(named):
            diff = base_values[:, j] - values
            comparisons.append(BaselineComparison(
                name=name, mixture=base_h[j], feasible=not self.bounds.violations(base_h[j]),
                objective={k: float(v) for k, v in draw_summary(base_values[:, j], weights).items()},
                risk_value=float(base_risk[j]),
                prob_better=float(np.sum(weights * (diff > 0)) + 0.5 * np.sum(weights * (diff == 0))),
                expected_gain=float(np.sum(weights * diff)),
            ))
        return comparisons

    def describe_objective(self) -> str:
        """The objective in words."""
        return self.objective.describe(self.target_domains, n_mixture=len(self.domains))

    def _notes(self) -> list[str]:
        """Caveats of a recommendation from this problem."""
        if self.n_draws < 100:
            return [f"only {self.n_draws} posterior draws: tail risks and the optimum's "
                    "90% region are rough"]
        return []

    def rank(self, candidates, risk="mean", *, draw_weights=None) -> CandidateRanking:
        """Rank given mixtures by the risk measure; see :func:`rank_candidates`."""
        risk = Risk.parse(risk)
        weights = normalised_draw_weights(draw_weights, self.n_draws)
        named = _baseline_mixtures(candidates, self.domains, include_uniform=False)
        if not named:
            raise UsageError("no candidate mixtures to rank")
        names = list(named)
        h = np.array(list(named.values()))
        values = self.objective_draws(h)  # (S, M)
        best = values.min(axis=1, keepdims=True)
        is_best = values == best
        share = is_best / is_best.sum(axis=1, keepdims=True)
        summary = draw_summary(values, weights)
        violations = [self.bounds.violations(row) for row in h]
        return CandidateRanking(
            domains=self.domains, names=names, mixtures=h, model_size=self.model_size,
            tokens=self.tokens, objective_description=self.describe_objective(),
            risk=risk, risk_values=np.atleast_1d(risk.evaluate(values, weights)),
            objective=summary, prob_best=np.sum(weights[:, None] * share, axis=0),
            regret=np.sum(weights[:, None] * (values - best), axis=0),
            feasible=np.array([not v for v in violations]), violations=violations,
            n_draws=self.n_draws, law=self.posterior.law.name,
            fingerprint=self.posterior.meta.get("fingerprint"),
        )


def _baseline_mixtures(baselines, domains, *, include_uniform: bool = True) -> dict[str, np.ndarray]:
    """Named mixtures, with the uniform mixture first unless the caller names one 'uniform'."""
    out: dict[str, np.ndarray] = {}
    given = {}
    if baselines is not None:
        if isinstance(baselines, Mapping):
            given = dict(baselines)
        else:
            rows = np.atleast_2d(np.asarray(baselines, dtype=float))
            given = {f"candidate {i + 1}": row for i, row in enumerate(rows)}
    if include_uniform and "uniform" not in given:
        out["uniform"] = np.full(len(domains), 1.0 / len(domains))
    for name, value in given.items():
        out[str(name)] = as_mixture(value, domains, what=f"mixture '{name}'")
    return out


def thinned_weights(draw_weights, posterior: PosteriorLike, index: np.ndarray):
    if draw_weights is None:
        return None
    w = np.asarray(draw_weights, dtype=float).reshape(-1)
    if w.shape[0] != posterior.n_draws:
        raise UsageError(f"draw_weights has {w.shape[0]} entries but the posterior has "
                         f"{posterior.n_draws} draws")
    return normalised_draw_weights(w[index], len(index))
