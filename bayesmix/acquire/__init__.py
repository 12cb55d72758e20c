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

from .campaign import (AdaptiveRefit, CampaignResult, NutsRefit, PoolObserver, ReweightRefit, SimulatorObserver,
                       concat_tables, run_campaign, table_to_candidates, true_regret_function)
from .candidates import (FLOPS_PER_PARAM_TOKEN, CandidateSet, flops_cost, generate_candidates, load_candidates,
                         simplex_sobol)
from .likelihood import effective_sample_size, log_likelihood
from .selection import (CRITERIA, DEFAULT_ACQUISITION_DRAWS, DEFAULT_OUTCOMES, ESS_WARNING_FRACTION, Acquisition,
                        AcquisitionResult, CandidateScores, select_next)

__all__ = [
    "CRITERIA", "DEFAULT_ACQUISITION_DRAWS", "DEFAULT_OUTCOMES", "ESS_WARNING_FRACTION", "FLOPS_PER_PARAM_TOKEN",
    "CandidateScores",
    "AcquisitionResult", "Acquisition", "AdaptiveRefit", "CampaignResult", "CandidateSet", "NutsRefit", "PoolObserver",
    "ReweightRefit", "SimulatorObserver", "concat_tables", "effective_sample_size", "flops_cost",
    "generate_candidates", "load_candidates", "log_likelihood", "run_campaign", "select_next",
    "simplex_sobol", "table_to_candidates", "true_regret_function",
]
