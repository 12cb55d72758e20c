"""Risk-aware mixture recommendations: the decision layer.

Given a posterior over a scaling law (:class:`~bayesmix.posterior.PosteriorLike`: a
fit's, or a stacking mixture of laws), choose the training mixture ``h`` that is best
at a target model size ``N`` and token count ``D``, and say how sure the posterior is
about it.

Objective
    For posterior draw ``s`` the objective is a weighted average of the domains'
    expected losses at the target, ``f_s(h) = sum_k w_k L_k(h, N, D; theta_s)`` in nats:
    the plain average (default), user weights, or a single domain (:class:`Objective`).
Risk
    The draws ``f_s(h)`` are reduced to one number (:class:`Risk`): their mean, an upper
    quantile (Harrell-Davis estimate, a smooth weighted average of order statistics)
    or the CVaR (mean of the worst ``1 - alpha`` of the posterior mass). All three are
    weighted averages of the sorted draws, so they accept importance weights
    (``draw_weights``) and have the gradient ``sum_s c_s grad f_s(h)``.
Constraints
    Per-domain lower and upper bounds and data availability (``h_d D <= E * available_d``,
    an upper bound on ``h_d``) define a box intersected with the simplex
    (:class:`Constraints`). Infeasible sets are refused with a message that names the
    conflicting constraints. Every mixture the optimiser visits is an exact Euclidean
    projection onto this polytope (:func:`bayesmix.polytope.project_to_polytope`), so output constraints
    hold to rounding.
Method
    Sample-average optimisation over the posterior draws: the law's PyTensor mean is
    compiled once per (posterior, target) through
    :meth:`Posterior.symbolic_expected_loss` with a ``(draws, rows, K)`` mixture tensor,
    so a single compiled value-and-gradient serves both the risk objective (every draw
    evaluated at the same mixture) and the per-draw optima (each draw at its own mixture,
    all draws optimised at once). The optimiser is a batched spectral projected gradient
    method (Birgin, Martinez and Raydan, 2000) with several restarts. No numpy copy of any
    law exists here.

The acquisition layer reuses :class:`MixtureProblem`: the per-draw optima do not depend
on draw weights, so the regret of a recommendation under a reweighted posterior costs one
risk optimisation (:meth:`MixtureProblem.recommend_mixture`, :meth:`MixtureProblem.expected_regret`).

Modules, one job each: :mod:`.risk` (risk measures, regret of draws), :mod:`.mixtures`
(mixtures and the objective), :mod:`.constraints`, :mod:`.evaluator` (the compiled
value and gradient), :mod:`.problem` (:class:`MixtureProblem`), :mod:`.results`,
:mod:`.recommend` (the public functions) and :mod:`.files` (files of mixtures).
"""

from .constraints import Bounds, Constraints
from .files import column_domains, load_mixtures
from .mixtures import Objective, as_mixture
from .problem import DEFAULT_MAX_DRAWS, DEFAULT_RESTARTS, MixtureProblem
from .recommend import expected_regret, rank_candidates, recommend
from .results import BaselineComparison, CandidateRanking, Recommendation
from .risk import Risk, risk_value

__all__ = [
    "DEFAULT_MAX_DRAWS", "DEFAULT_RESTARTS", "BaselineComparison", "Bounds", "CandidateRanking",
    "Constraints", "MixtureProblem", "Objective", "Recommendation",
    "Risk", "as_mixture", "column_domains", "expected_regret", "load_mixtures",
    "rank_candidates", "recommend", "risk_value",
]
