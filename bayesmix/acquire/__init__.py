"""Which proxy run to train next: value of information for the target mixture decision.

The decision at the target scale (``N*``, ``D*``) is the mixture that minimises a risk
measure of the objective under the posterior (:mod:`bayesmix.decide`). A new proxy run
at mixture ``h``, model size ``N`` and tokens ``D`` is worth what it is expected to
remove from the posterior expected regret of that decision, per unit of compute.

Value of information (``voi``)
    The fall in the decision's risk measure (for the mean: in posterior expected
    regret) from deciding after the run's losses are seen instead of now, both judged
    under the current posterior, with the decision chosen under the same risk measure
    (:mod:`.preposterior`). Everything that does not depend on an outcome is computed
    once: the recommendation, each draw's optimum, a finite set of decisions (those and
    the points half way between them) with every draw's objective there, and every
    draw's prediction of each candidate. Outcomes are simulated, the posterior updated
    by a linear-Gaussian (ensemble Kalman) update fitted on one half of the draws and
    judged by the other half (``gaussian``, default: an outcome can never pin the
    posterior to one draw, and a run that teaches nothing scores 0), or reweighted by
    importance sampling (``importance``: exact when the posterior *is* its draws, as in
    :class:`ReweightRefit` campaigns; it saturates at the value of perfect information
    once an outcome singles out a draw, and its effective sample size is reported).
    Vectorised over candidates and outcomes: seconds for 128 candidates.
``variance``
    The posterior variance of the candidate's expected log-losses, averaged over domains
    with the objective's weights: how much the draws disagree about the run's outcome
    (cheap, ignores what matters at the target).
``random``, ``space-filling``
    Baselines: a random score, and the distance (mixture weights and log-scales) to the
    nearest existing or already chosen run.

Batches are chosen greedily, by count (``batch``) or within a compute budget (``budget``:
value per FLOP among the runs that still fit, then the single most valuable run that fits
if it is worth more than the whole batch). After a pick the posterior is conditioned on a
fantasised outcome of it, a draw from its predictive (not its mean, which would narrow the
posterior less than any real outcome; with the ``gaussian`` update the spread shrinks by
what the run explains whatever the draw), and the rest are scored again. Cost is
``6 N D`` FLOPs plus an optional fixed cost per run.

Campaigns (:func:`run_campaign`) loop fit -> choose -> observe -> refit with a pluggable
``refit`` (NUTS through :class:`NutsRefit`, or the exact importance reweighting of a
fixed set of draws, :class:`ReweightRefit`) and ``observe`` (the simulator,
:class:`SimulatorObserver`, or a pool of finished runs, :class:`PoolObserver`).
"""

from .campaign import (AdaptiveRefit, CampaignResult, NutsRefit, PoolObserver, ReweightRefit, SimulatorObserver,
                       concat_tables, run_campaign, table_to_candidates, true_regret_function)
from .candidates import (FLOPS_PER_PARAM_TOKEN, CandidateSet, flops_cost, generate_candidates, load_candidates,
                         simplex_sobol)
from .likelihood import effective_sample_size, log_likelihood
from .preposterior import METHODS, Belief, RunPredictions, ValueEstimate
from .selection import (CRITERIA, DEFAULT_ACQUISITION_DRAWS, DEFAULT_METHOD, DEFAULT_OUTCOMES, ESS_WARNING_FRACTION,
                        Acquisition, AcquisitionResult, CandidateScores, select_next)

__all__ = [
    "CRITERIA", "DEFAULT_ACQUISITION_DRAWS", "DEFAULT_METHOD", "DEFAULT_OUTCOMES", "ESS_WARNING_FRACTION",
    "FLOPS_PER_PARAM_TOKEN", "METHODS", "Acquisition", "AcquisitionResult", "AdaptiveRefit", "Belief", "CampaignResult",
    "CandidateScores", "CandidateSet", "NutsRefit", "PoolObserver", "ReweightRefit", "RunPredictions",
    "SimulatorObserver", "ValueEstimate", "concat_tables", "effective_sample_size", "flops_cost", "generate_candidates",
    "load_candidates", "log_likelihood", "run_campaign", "select_next", "simplex_sobol", "table_to_candidates",
    "true_regret_function",
]
