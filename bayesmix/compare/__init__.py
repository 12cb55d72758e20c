"""Statistical comparison of competing laws: cross-validation, PSIS-LOO and stacking.

Three schemes score how well each law predicts runs it was not fitted to:

``loo``
    PSIS-LOO at the level of a training run: one full-data fit per law, the
    log-likelihood of all checkpoints and domains of a run summed (checkpoints of one
    run are not exchangeable, so a run is the unit left out). Runs whose Pareto ``k``
    exceeds the sample-size-aware threshold ``min(1 - 1/log10(S), 0.7)`` are refitted
    exactly without the run (up to ``max_refits`` per law); the others are reported,
    never hidden.
``kfold:K``
    Exact grouped K-fold: the runs (never the rows) are split into K folds.
``scale``
    Forward chaining over model size: fit on all runs up to one size, score the runs of
    the next larger size (the question behind a mixture decision at a larger scale).

For every scheme and law: the held-out log predictive density (ELPD, summed over runs,
its standard error, and its difference to the best law with the SE of the difference),
stacking weights, the mean relative error (MRE) of the posterior-mean prediction over
all held-out (run, domain) cells and over cells with positive training weight (the
protocol of Dai and Zheng's Table 2), and the coverage of the 90 % predictive interval,
overall and per domain.

Held-out density of a run
-------------------------
A held-out run is a *new* run: its per-run offset (shared by its checkpoints and
domains) is unknown and must be integrated out, as :meth:`Posterior.add_noise` does for
draws. For the Normal likelihood on log-loss this is exact: given a draw, the run's
log-losses are jointly Normal with mean ``log mu`` and covariance
``diag(sigma_d^2) + run_sd^2 11^T``, whose log-density follows from the
matrix-determinant lemma and Sherman-Morrison in O(cells). For the Student-t likelihood
the offset is integrated by Gauss-Hermite quadrature. The density is that of the loss
itself (log-loss density minus ``log L``), as in :func:`bayesmix.inference.compute_loglik`,
so laws are comparable. The run's predictive density is then the mean over draws
(log-mean-exp). PSIS-LOO uses the same offset-integrated run log-likelihood: leaving a
run out also removes all information on its offset, and importance sampling on the
integrated likelihood is far more stable than on one conditional on the fitted offset.

Fits run in parallel through :mod:`bayesmix.executors`; each fit task is picklable and
returns only pointwise held-out results.

Modules, one job each: :mod:`.folds` (schemes and folds), :mod:`.scoring` (held-out
densities, errors, coverage, stacking weights), :mod:`.heldout` (the held-out protocol
of a fit and a separate test table that case studies and benchmarks share: cell
predictions, summary blocks, the ranking of mixtures), :mod:`.tasks` (fit tasks, their store),
:mod:`.comparison` (running and merging a comparison, its files) and :mod:`.stacking`
(the stacked posterior of the compared laws).
"""

from ..metrics import interval_coverage as coverage, mean_relative_error
from .comparison import ALL, Comparison, LawComparison, compare_laws
from .folds import CVScheme, Fold, grouped_kfold, make_folds, mixture_kfold, parse_cv, scale_folds
from .heldout import HeldoutScores, heldout_scores, rank_mixtures
from .scoring import integrated_loglik, run_level_loglik, run_level_loo, score_runs, stacking_weights
from .stacking import StackedLaw, StackedPosterior, is_comparison_file, stacked_posterior
from .tasks import CompareSettings, FitTask, TaskResult, TaskStore, run_task, task_seed

__all__ = [
    "ALL", "CVScheme", "CompareSettings", "Comparison", "Fold", "FitTask", "HeldoutScores",
    "LawComparison", "StackedLaw", "StackedPosterior", "TaskResult", "TaskStore", "compare_laws", "coverage",
    "grouped_kfold", "heldout_scores", "integrated_loglik", "is_comparison_file", "make_folds",
    "mean_relative_error", "mixture_kfold", "parse_cv", "rank_mixtures", "run_level_loglik", "run_level_loo",
    "run_task", "scale_folds", "score_runs", "stacked_posterior", "stacking_weights", "task_seed",
]
