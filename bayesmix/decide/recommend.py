"""The decision functions: recommend a mixture, rank given ones, the expected regret."""

from __future__ import annotations

from ..errors import UsageError
from ..posterior import PosteriorLike
from .constraints import Constraints
from .mixtures import Objective, as_mixture
from .problem import DEFAULT_MAX_DRAWS, DEFAULT_RESTARTS, MixtureProblem, thinned_weights
from .results import CandidateRanking, Recommendation
from .risk import regret_of_values


def recommend(posterior: PosteriorLike, model_size, tokens, *, objective: Objective | None = None,
              risk="mean", constraints: Constraints | None = None, baselines=None,
              draw_weights=None, n_restarts: int = DEFAULT_RESTARTS,
              max_draws: int | None = DEFAULT_MAX_DRAWS, seed: int = 0) -> Recommendation:
    """Recommend a training mixture for a target scale under posterior uncertainty.

    Parameters
    ----------
    posterior : PosteriorLike
        Posterior of a fitted law (``Fit.posterior()``).
    model_size, tokens : float or str
        Target model size N (parameters) and training tokens D, e.g. ``7e9`` or ``"7B"``.
    objective : Objective, optional
        Which average of the domain losses to minimise (default: plain average).
    risk : str or Risk
        ``"mean"``, ``"quantile:Q"`` or ``"cvar:ALPHA"``.
    constraints : Constraints, optional
        Per-domain bounds and data availability.
    baselines : mapping of str to mixture, optional
        Mixtures (``{domain: weight}`` or length-K arrays) to compare against; the
        uniform mixture is always included.
    draw_weights : array_like ``(posterior.n_draws,)``, optional
        Importance weights of the posterior draws.
    n_restarts : int
        Starting points of the risk optimisation (plus the feasible baselines).
    max_draws : int, optional
        Thin the posterior to at most this many draws for the whole decision.
    seed : int
        Seed of the random starting points and of the predictive noise.

    Returns
    -------
    Recommendation

    Raises
    ------
    UsageError
        For infeasible constraints (the message names the conflicting ones), unknown
        domains or malformed options.
    """
    problem = MixtureProblem(posterior, model_size, tokens, objective=objective,
                             constraints=constraints, max_draws=max_draws)
    weights = thinned_weights(draw_weights, posterior, problem.draw_index)
    return problem.recommend(risk, baselines=baselines, draw_weights=weights,
                             n_restarts=n_restarts, seed=seed)


def rank_candidates(posterior: PosteriorLike, candidates, model_size, tokens, *,
                    objective: Objective | None = None, risk="mean",
                    constraints: Constraints | None = None, draw_weights=None,
                    max_draws: int | None = DEFAULT_MAX_DRAWS) -> CandidateRanking:
    """Rank given mixtures by a risk measure of their objective at a target scale.

    Parameters
    ----------
    posterior : PosteriorLike
    candidates : mapping of str to mixture, or array_like ``(M, K)``
    model_size, tokens : float or str
    objective : Objective, optional
    risk : str or Risk
    constraints : Constraints, optional
        Candidates are ranked either way; those that break a constraint are flagged.
    draw_weights : array_like ``(posterior.n_draws,)``, optional
    max_draws : int, optional

    Returns
    -------
    CandidateRanking
        With each candidate's risk, objective summary and probability of being the best.
    """
    problem = MixtureProblem(posterior, model_size, tokens, objective=objective,
                             constraints=constraints, max_draws=max_draws)
    weights = thinned_weights(draw_weights, posterior, problem.draw_index)
    return problem.rank(candidates, risk, draw_weights=weights)


def expected_regret(source, mixture=None, *, optimum_values=None, draw_weights=None,
                    model_size=None, tokens=None, objective: Objective | None = None,
                    constraints: Constraints | None = None,
                    max_draws: int | None = DEFAULT_MAX_DRAWS):
    """Posterior expected regret of a mixture: mean over draws of ``f_s(h) - min f_s``.

    Parameters
    ----------
    source : ndarray, MixtureProblem or PosteriorLike
        * ``(S,)`` or ``(S, M)`` objective draws at the mixture(s), with
          ``optimum_values`` ``(S,)`` the draws' optimal objectives (cheapest: the
          acquisition layer precomputes both);
        * a :class:`MixtureProblem` (its cached per-draw optima are used) with ``mixture``;
        * a posterior (:class:`~bayesmix.posterior.PosteriorLike`) with ``mixture``,
          ``model_size`` and ``tokens`` (computes the per-draw optima: seconds).
    mixture : mixture, optional
    optimum_values : array_like ``(S,)``, optional
    draw_weights : array_like ``(S,)``, optional
        Importance weights of the draws (of the problem's thinned draws for a
        MixtureProblem, of the posterior's draws for a Posterior).

    Returns
    -------
    float, or ndarray ``(M,)`` for several mixtures given as columns of ``source``.
    """
    if isinstance(source, MixtureProblem):
        if mixture is None:
            raise UsageError("expected_regret needs the mixture to evaluate")
        return source.expected_regret(as_mixture(mixture, source.domains), draw_weights)
    if isinstance(source, PosteriorLike):
        if mixture is None or model_size is None or tokens is None:
            raise UsageError("expected_regret of a posterior needs mixture, model_size and tokens")
        problem = MixtureProblem(source, model_size, tokens, objective=objective,
                                 constraints=constraints, max_draws=max_draws)
        weights = thinned_weights(draw_weights, source, problem.draw_index)
        return problem.expected_regret(as_mixture(mixture, problem.domains), weights)
    return regret_of_values(source, optimum_values, draw_weights)
