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
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special

from ._files import atomic_path, write_json_atomic, write_text_atomic
from .metrics import interval_coverage as coverage, mean_relative_error  # noqa: F401  (re-exported)
from . import observation
from .chain_stacking import allocate_draws
from .errors import BayesmixError, UsageError
from .weighted import weighted_quantile

__all__ = [
    "CVScheme",
    "CompareSettings",
    "Comparison",
    "Fold",
    "FitTask",
    "StackedPosterior",
    "compare_laws",
    "coverage",
    "grouped_kfold",
    "integrated_loglik",
    "is_comparison_file",
    "make_folds",
    "mean_relative_error",
    "parse_cv",
    "run_level_loglik",
    "run_level_loo",
    "run_task",
    "scale_folds",
    "stacked_posterior",
    "stacking_weights",
]

#: Probability of the central predictive interval whose coverage is reported.
INTERVAL = 0.90
#: Label of the all-domain row of the summary.
ALL = "all"


# =========================================================================== schemes


@dataclass(frozen=True)
class CVScheme:
    """A cross-validation scheme: ``loo``, ``kfold`` or ``mixture`` (with ``k``), or ``scale``."""

    kind: str
    k: int | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.k}" if self.kind in ("kfold", "mixture") else self.kind


def parse_cv(text) -> CVScheme:
    """Parse ``'loo'``, ``'kfold:K'``, ``'mixture:K'`` (leave mixtures out: every run of a
    mixture, at every scale, in one fold) or ``'scale'``.

    Raises
    ------
    UsageError
        For anything else.
    """
    if isinstance(text, CVScheme):
        return text
    value = str(text).strip().lower()
    if value in ("loo", "scale"):
        return CVScheme(value)
    for kind in ("kfold", "mixture"):
        if not value.startswith(kind):
            continue
        _, sep, k = value.partition(":")
        try:
            k = int(k) if sep else 5
        except ValueError:
            raise UsageError(f"cannot read --cv '{text}': write {kind}:K with an integer K, e.g. {kind}:5") from None
        if k < 2:
            raise UsageError(f"--cv {kind}:{k}: K must be at least 2")
        return CVScheme(kind, k)
    raise UsageError(f"unknown --cv '{text}': use loo, kfold:K (e.g. kfold:5), mixture:K or scale")


@dataclass(frozen=True)
class Fold:
    """One split of the runs: fit on ``train_runs``, score ``test_runs``."""

    index: int
    label: str
    train_runs: tuple
    test_runs: tuple

    def to_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "train_runs": list(self.train_runs),
                "test_runs": list(self.test_runs)}


def _runs_in_order(table) -> np.ndarray:
    return np.asarray(pd.unique(np.asarray(table.run_ids, dtype=object)), dtype=object)


def _kfold_by_group(runs: np.ndarray, group_of_run: dict, k: int, seed: int, label: str) -> list[Fold]:
    """Deal the groups of ``runs`` (in order of first appearance), shuffled with ``seed``,
    into ``k`` folds of near-equal size; a fold tests every run of its groups."""
    groups = np.asarray(pd.unique(np.array([group_of_run[r] for r in runs], dtype=object)), dtype=object)
    order = np.random.default_rng(seed).permutation(len(groups))
    folds = []
    for index, part in enumerate(np.array_split(order, k)):
        held = set(groups[part])
        folds.append(Fold(index, f"{label} {index + 1}/{k}",
                          tuple(r for r in runs if group_of_run[r] not in held),
                          tuple(r for r in runs if group_of_run[r] in held)))
    return folds


def grouped_kfold(table, k: int, seed: int = 0) -> list[Fold]:
    """Split the runs of ``table`` into ``k`` folds (a run is never split).

    Runs are shuffled with ``seed`` and dealt into ``k`` folds of near-equal size.
    """
    runs = _runs_in_order(table)
    if k > len(runs):
        raise UsageError(f"--cv kfold:{k} needs at least {k} runs, the table has {len(runs)}; use a smaller K or loo")
    return _kfold_by_group(runs, {r: r for r in runs}, k, seed, "fold")


def mixture_kfold(table, k: int, seed: int = 0) -> list[Fold]:
    """Split the mixtures of ``table`` into ``k`` folds; every run of a mixture, at every
    scale, is in its mixture's fold (a held-out mixture is new to the fit, as a mixture
    a user asks about is)."""
    from .observation import mixture_keys

    runs = _runs_in_order(table)
    run_ids = np.asarray(table.run_ids, dtype=object)
    keys = mixture_keys(table.weights)
    key_of_run = {r: keys[np.argmax(run_ids == r)] for r in runs}
    if k > len(set(key_of_run.values())):
        raise UsageError(f"--cv mixture:{k} needs at least {k} mixtures, the table has {len(set(key_of_run.values()))}")
    return _kfold_by_group(runs, key_of_run, k, seed, "mixtures")


def _size_groups(table) -> tuple[np.ndarray, np.ndarray]:
    """Distinct model sizes (rounded to a parameter, as ``Law.check_table``) and each row's size."""
    rounded = np.round(np.asarray(table.model_size, dtype=float), 0)
    return np.unique(rounded), rounded


def scale_folds(table) -> list[Fold]:
    """Forward chaining over model size.

    Fold ``j`` fits on the runs of the ``j`` smallest model sizes and scores the runs of
    the next larger size; the runs of the smallest size are never scored.
    """
    sizes, rounded = _size_groups(table)
    if len(sizes) < 2:
        raise UsageError(
            f"--cv scale needs runs at two or more model sizes; the table has one ({sizes[0]:.4g}); "
            "use --cv kfold:K or loo"
        )
    from .units import format_quantity

    run_ids = np.asarray(table.run_ids, dtype=object)
    folds = []
    for j in range(1, len(sizes)):
        train = _unique(run_ids[rounded <= sizes[j - 1]])
        test = _unique(run_ids[np.isclose(rounded, sizes[j])])
        label = f"<= {format_quantity(sizes[j - 1])} -> {format_quantity(sizes[j])}"
        folds.append(Fold(j - 1, label, tuple(train), tuple(test)))
    return folds


def _unique(values) -> list:
    return list(pd.unique(np.asarray(values, dtype=object)))


def make_folds(table, cv, seed: int = 0) -> list[Fold]:
    """The folds of a scheme (``loo``: one fold per run, each left out once)."""
    scheme = parse_cv(cv)
    if scheme.kind == "kfold":
        return grouped_kfold(table, scheme.k, seed)
    if scheme.kind == "mixture":
        return mixture_kfold(table, scheme.k, seed)
    if scheme.kind == "scale":
        return scale_folds(table)
    runs = _runs_in_order(table)
    return [Fold(i, f"run {r}", tuple(x for x in runs if x != r), (r,)) for i, r in enumerate(runs)]


# =========================================================================== scoring


def _logmeanexp(x, axis=0):
    x = np.asarray(x, dtype=float)
    return special.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def integrated_loglik(posterior, table, *, by_domain: bool = False, expected=None,
                      method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood of each run's losses per draw, with the run offset integrated out.

    Parameters
    ----------
    posterior : Posterior
        Draws of a fitted law.
    table : RunTable
        Runs to score (all their checkpoints and domains with a logged loss).
    by_domain : bool
        Also split by domain: one value per (run, domain) over that domain's cells.
    expected : ndarray ``(S, rows, K)``, optional
        ``posterior.expected_loss`` on the table, when already computed.
    method : {"auto", "closed_form", "quadrature"}
        Normal likelihood: closed form (default) or Gauss-Hermite quadrature (a check);
        Student-t: always quadrature.

    Returns
    -------
    (loglik, runs)
        ``loglik`` is ``(S, R)`` (or ``(S, R, K)`` with ``by_domain``; NaN where a run has
        no loss on a domain), the density of the losses themselves (nats); ``runs``
        the run ids in order of first appearance. Runs without any logged loss are
        left out (they carry no evidence to score).
    """
    losses = np.asarray(table.losses, dtype=float)
    ids = np.asarray(table.run_ids, dtype=str)
    # A run without any logged loss carries no evidence: it is not scored.
    first = pd.unique(ids[np.isfinite(losses).any(axis=1)])
    remap = {r: i for i, r in enumerate(first)}
    codes = np.array([remap.get(r, -1) for r in ids], dtype=int)
    R, K = len(first), table.n_domains
    rows, doms = np.nonzero(np.isfinite(losses))
    mu = posterior.expected_loss(table.weights, table.model_size, table.tokens) if expected is None else expected
    S = mu.shape[0]
    y = np.log(losses[rows, doms])
    if posterior.sigma is None:
        raise UsageError("the posterior has no observation noise (sigma): cannot score held-out losses")
    scale = observation.cell_sd(posterior.sigma, getattr(posterior, "observation", None),
                                table.weights)[:, rows, doms]
    groups = codes[rows] * K + doms if by_domain else codes[rows]
    G = R * K if by_domain else R
    ll = observation.grouped_loglik(y, np.log(mu[:, rows, doms]), scale, groups, G, run_sd=posterior.run_sd,
                                    nu=posterior.nu, method=method)
    counts = np.bincount(groups, minlength=G)
    ll = ll - np.bincount(groups, weights=y, minlength=G)[None, :]  # density of L, not log L
    ll = np.where(counts[None, :] > 0, ll, np.nan)
    if by_domain:
        ll = ll.reshape(S, R, K)
    return ll, np.asarray(first, dtype=object)


def run_level_loglik(idata) -> tuple[np.ndarray, np.ndarray]:
    """A fit's stored pointwise log-likelihood summed per training run.

    Sums all checkpoints and domains of each run (missing losses count 0), keeping the
    chain and draw axes: ``(chain, draw, run)``, runs in order of first appearance.
    This is conditional on each run's fitted offset; :func:`integrated_loglik`
    integrates the offset out (the two agree for a fit without a run effect).
    """
    from . import _az

    ll, run_ids = _az.pointwise_loglik(idata)
    runs = pd.unique(run_ids)
    where = {r: i for i, r in enumerate(runs)}
    codes = np.array([where[r] for r in run_ids], dtype=int)
    per_row = np.nansum(ll, axis=-1)  # (chain, draw, row)
    chains, draws, rows = per_row.shape
    summed = observation.group_sum(per_row.reshape(chains * draws, rows), codes, len(runs))
    return summed.reshape(chains, draws, len(runs)), np.asarray(runs, dtype=object)


def run_level_loo(idata) -> dict:
    """PSIS-LOO of a fit with a training run as the unit left out.

    Returns the dict of :func:`bayesmix._az.psis_loo` plus ``runs``, ``elpd`` (the sum)
    and ``se``.
    """
    from . import _az

    ll, runs = run_level_loglik(idata)
    out = _az.psis_loo(ll, posterior_idata=idata)
    n = len(runs)
    out.update(runs=runs, elpd=float(out["elpd_i"].sum()), se=float(math.sqrt(n * np.var(out["elpd_i"]))))
    return out


def score_runs(posterior, table, *, seed: int = 0, log_weights=None) -> dict:
    """Held-out scores of the runs of ``table`` under ``posterior``.

    Parameters
    ----------
    posterior : Posterior
        Fitted on runs other than those of ``table`` (or, with ``log_weights``, on all).
    table : RunTable
        The runs to score.
    seed : int
        Seed of the predictive draws (interval quantiles).
    log_weights : ndarray ``(S, R)``, optional
        Normalised PSIS log weights per run (leave-one-run-out posteriors); without
        them every draw has weight ``1/S``.

    Returns
    -------
    dict
        ``runs`` (R,), ``run_lpd`` (R,), ``run_domain_lpd`` (R, K) and the cells
        ``cell_row`` (row in ``table``), ``cell_domain``, ``observed``, ``mean``,
        ``lower``, ``upper`` (the central 90 % predictive interval) and ``trained``
        (the run's training weight on the domain is positive).
    """
    mu = posterior.expected_loss(table.weights, table.model_size, table.tokens)
    ll_run, runs = integrated_loglik(posterior, table, expected=mu)
    ll_rd, _ = integrated_loglik(posterior, table, expected=mu, by_domain=True)
    first = {r: i for i, r in enumerate(runs)}
    codes = np.array([first.get(r, -1) for r in np.asarray(table.run_ids, dtype=object)], dtype=int)
    losses = np.asarray(table.losses, dtype=float)
    rows, doms = np.nonzero(np.isfinite(losses))
    pred = posterior.add_noise(mu, seed=seed, weights=table.weights)[:, rows, doms]
    mu_cells = mu[:, rows, doms]
    alpha = (1.0 - INTERVAL) / 2
    if log_weights is None:
        run_lpd = _logmeanexp(ll_run, axis=0)
        with np.errstate(invalid="ignore"):
            run_domain_lpd = _logmeanexp(ll_rd, axis=0)
        mean = mu_cells.mean(axis=0)
        lower, upper = np.quantile(pred, [alpha, 1 - alpha], axis=0)
    else:
        lw = np.asarray(log_weights, dtype=float)
        run_lpd = special.logsumexp(lw + ll_run, axis=0)
        with np.errstate(invalid="ignore"):
            run_domain_lpd = special.logsumexp(lw[:, :, None] + ll_rd, axis=0)
        w = np.exp(lw[:, codes[rows]])
        w = w / w.sum(axis=0, keepdims=True)
        mean = (w * mu_cells).sum(axis=0)
        lower, upper = weighted_quantile(pred, [alpha, 1 - alpha], w)
    run_domain_lpd = np.where(np.isnan(ll_rd).all(axis=0), np.nan, run_domain_lpd)
    return {
        "runs": [str(r) for r in runs],
        "run_lpd": run_lpd,
        "run_domain_lpd": run_domain_lpd,
        "cell_row": rows,
        "cell_domain": doms,
        "observed": losses[rows, doms],
        "mean": mean,
        "lower": lower,
        "upper": upper,
        "trained": np.asarray(table.weights, dtype=float)[rows, doms] > 0,
    }


def stacking_weights(lpd) -> np.ndarray:
    """Stacking weights of models from their pointwise held-out log densities.

    Maximises ``sum_i log sum_k w_k exp(lpd[i, k])`` over the simplex (Yao et al.
    2018), the objective of :func:`arviz.compare` with ``method="stacking"``.

    Parameters
    ----------
    lpd : array_like ``(points, models)``

    Returns
    -------
    ndarray ``(models,)``
    """
    lpd = np.asarray(lpd, dtype=float)
    n, k = lpd.shape
    if k == 1:
        return np.ones(1)
    shifted = lpd - lpd.max(axis=1, keepdims=True)
    dens = np.exp(shifted)

    def objective(z):
        z = np.append(z, 0.0)
        w = special.softmax(z)
        mix = dens @ w
        value = -np.sum(np.log(mix))
        grad_w = -(dens / mix[:, None]).sum(axis=0)
        grad_z = w * (grad_w - np.dot(w, grad_w))
        return value, grad_z[:-1]

    best = None
    for start in (np.zeros(k - 1), *[np.where(np.arange(k - 1) == j, 3.0, 0.0) for j in range(k - 1)]):
        res = optimize.minimize(objective, start, jac=True, method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    w = special.softmax(np.append(best.x, 0.0))
    w[w < 1e-8] = 0.0
    return w / w.sum()


# =========================================================================== tasks


@dataclass
class CompareSettings:
    """Sampler and scoring settings of every fit of a comparison.

    Parameters
    ----------
    draws, tune, chains : int
        NUTS settings of each fit (chains run one after the other, on one core).
    seed : int
        Base seed: of the fold split, and (with the law and fold) of each fit.
    map_starts : int
        MAP searches that pick the chains' starting point.
    target_accept : float or None
        None: each law's own (:attr:`bayesmix.laws.Law.target_accept`).
    likelihood : {"normal", "student_t"}
    run_effect : {"auto", "on", "off"}
    sampler : str
        ``nutpie`` (default, as for a single fit: each process compiles a law once for
        all its folds) or ``pymc``.
    max_refits : int
        LOO: at most this many runs with a bad Pareto ``k`` are refitted exactly per law
        (worst first); the rest are reported.
    score_draws : int
        Held-out scores use at most this many posterior draws (evenly thinned).
    """

    draws: int = 500
    tune: int = 500
    chains: int = 2
    seed: int = 0
    map_starts: int = 2
    target_accept: float | None = None
    likelihood: str = "normal"
    run_effect: str = "auto"
    discrepancy: str = "auto"
    sampler: str = "nutpie"
    max_refits: int = 10
    score_draws: int = 1000

    def fit_settings(self, seed: int):
        from .inference import FitSettings

        return FitSettings(draws=self.draws, tune=self.tune, chains=self.chains, seed=int(seed),
                           sampler=self.sampler, target_accept=self.target_accept,
                           likelihood=self.likelihood, run_effect=self.run_effect,
                           discrepancy=self.discrepancy, map_starts=self.map_starts, cores=1,
                           # A comparison refits the folds that fail the gate itself (max_refits).
                           extend_draws=1.0)

    def to_dict(self) -> dict:
        return asdict(self)


def task_seed(base: int, law: str, kind: str, fold: int) -> int:
    """The seed of one fit: a function of the base seed, the law and the fold only, so
    that every executor gives the same result."""
    seq = np.random.SeedSequence([int(base), zlib.crc32(law.encode()), zlib.crc32(kind.encode()), int(fold) + 1])
    return int(seq.generate_state(1)[0] % (2**31))


@dataclass
class FitTask:
    """One independent fit of a comparison (picklable).

    Attributes
    ----------
    table : RunTable
        The whole comparison table; the fit uses the rows of ``fold.train_runs``.
    law : str
    kind : {"heldout", "loo", "full"}
        ``heldout``: fit on the training runs, score the test runs; ``loo``: fit on all
        runs and score them by PSIS-LOO; ``full``: fit on all runs and save the fit.
    fold : Fold or None
    settings : CompareSettings
    law_options, priors : dict, optional
    save_path : str, optional
        Where to write the fit (``loo`` and ``full`` tasks).
    """

    table: object
    law: str
    kind: str
    fold: Fold | None
    settings: CompareSettings
    law_options: dict = field(default_factory=dict)
    priors: dict | None = None
    save_path: str | None = None

    @property
    def seed(self) -> int:
        return task_seed(self.settings.seed, self.law, self.kind, self.fold.index if self.fold else -1)

    def describe(self) -> str:
        if self.kind == "heldout":
            return f"{self.law} {self.fold.label}"
        return f"{self.law} {'full data (LOO)' if self.kind == 'loo' else 'full data'}"


@dataclass
class TaskResult:
    """What a fit task returns: held-out pointwise results, never the fit itself."""

    law: str
    kind: str
    fold_index: int | None
    status: str  # "ok", "skipped" (the law refuses the training table) or "failed"
    reason: str = ""
    seconds: float = 0.0
    diagnostics: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    scores: dict | None = None
    pareto_k: np.ndarray | None = None
    good_k: float | None = None
    saved_fit: str | None = None


def _short_diagnostics(diag: dict) -> dict:
    keys = ("max_rhat", "min_ess_bulk", "divergences", "treedepth_hits", "sampling_seconds",
            "map_seconds", "compile_seconds", "chains", "draws")
    return {k: (float(diag[k]) if isinstance(diag[k], (float, np.floating)) else diag[k])
            for k in keys if k in diag}


def run_task(task: FitTask) -> TaskResult:
    """Run one fit task (in any process): fit, then score its held-out runs.

    A law that refuses the training table (:meth:`Law.check_table`) gives a result
    with status ``skipped`` and the reason; any other error gives ``failed`` with the
    message, so that one fit cannot end a long comparison.
    """
    from .gate import check_gate
    from .inference import fit_law
    from .laws import get_law

    t0 = time.perf_counter()
    table = task.table
    ids = np.asarray(table.run_ids, dtype=object)
    if task.kind == "heldout":
        train = table.select(np.isin(ids, list(task.fold.train_runs)))
        test_rows = np.flatnonzero(np.isin(ids, list(task.fold.test_runs)))
    else:
        train, test_rows = table, np.arange(table.n_rows)
    result = TaskResult(task.law, task.kind, task.fold.index if task.fold else None, "ok")
    try:
        law = get_law(task.law, **task.law_options)
        fit = fit_law(train, law, priors=task.priors, settings=task.settings.fit_settings(task.seed),
                      progressbar=False, allow_warnings=True)
        result.diagnostics = _short_diagnostics(fit.diagnostics)
        result.problems = check_gate(fit.diagnostics, allow_warnings=True)
        if task.save_path:
            fit.save(task.save_path)
            result.saved_fit = str(task.save_path)
        if task.kind == "heldout":
            posterior = fit.posterior(max_draws=task.settings.score_draws)
            scores = score_runs(posterior, table.select(test_rows), seed=task.seed)
        elif task.kind == "loo":
            from . import _az

            posterior = fit.posterior()  # PSIS needs every draw, in (chain, draw) order
            ll, _ = integrated_loglik(posterior, table)
            chains = fit.idata.posterior.sizes["chain"]
            loo = _az.psis_loo(ll.reshape(chains, -1, ll.shape[-1]), posterior_idata=fit.idata)
            scores = score_runs(posterior, table, seed=task.seed, log_weights=loo["log_weights"])
            scores["run_lpd"] = loo["elpd_i"]
            result.pareto_k = loo["pareto_k"]
            result.good_k = loo["good_k"]
        else:
            scores = None
    except UsageError as err:
        result.status, result.reason = "skipped", str(err)
        scores = None
    except Exception as err:  # noqa: BLE001 - reported, not hidden, in the comparison
        result.status = "failed"
        result.reason = f"{type(err).__name__}: {err}" if not isinstance(err, BayesmixError) else str(err)
        scores = None
    if scores is not None:
        scores["cell_row"] = test_rows[scores["cell_row"]]
        result.scores = scores
    result.seconds = time.perf_counter() - t0
    return result


class TaskStore:
    """Finished fit tasks kept on disk, so that a stopped comparison loses nothing.

    Each finished task's :class:`TaskResult` is written (atomically) to
    ``folder/<key>.pkl`` as soon as it arrives; the key hashes everything that determines
    the result: the table's fingerprint, the law, the task kind, the fold's runs, the
    settings, the priors and the seed. Rerunning the same comparison with the same
    folder skips the tasks already done; changing anything reruns them.

    The files are Python pickles written by this library: point it only at folders you
    wrote yourself.
    """

    def __init__(self, folder):
        self.folder = Path(folder)

    @staticmethod
    def key(task: FitTask) -> str:
        fold = task.fold.to_dict() if task.fold else None
        payload = json.dumps(
            [task.table.fingerprint(), task.law, task.kind, fold, task.settings.to_dict(),
             task.law_options, task.priors, task.save_path, task.seed],
            sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:24]

    def _path(self, task: FitTask) -> Path:
        safe_law = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in task.law)
        return self.folder / f"{safe_law}-{task.kind}-{self.key(task)}.pkl"

    def load(self, task: FitTask) -> TaskResult | None:
        """The stored result of ``task``, or None (also when the file is unreadable)."""
        path = self._path(task)
        if not path.exists():
            return None
        if task.save_path and not Path(task.save_path).exists():
            return None  # the saved fit is gone: redo the task
        try:
            with open(path, "rb") as handle:
                result = pickle.load(handle)
        except Exception:  # noqa: BLE001 - a damaged file means: run the task again
            return None
        return result if isinstance(result, TaskResult) and result.status == "ok" else None

    def save(self, task: FitTask, result: TaskResult) -> None:
        """Keep ``result`` (only successful fits: a failed one is retried next time)."""
        if result.status != "ok":
            return
        with atomic_path(self._path(task)) as tmp:
            with open(tmp, "wb") as handle:
                pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _run_tasks(executor, tasks: list, on_result, store: TaskStore | None) -> list:
    """Run ``tasks`` on ``executor`` in order; those already in ``store`` are not rerun."""
    outputs: list = [None] * len(tasks)
    todo = []
    for i, task in enumerate(tasks):
        found = store.load(task) if store is not None else None
        if found is None:
            todo.append(i)
        else:
            outputs[i] = found
            on_result(i, found)

    def finished(j, result):
        i = todo[j]
        if store is not None:
            store.save(tasks[i], result)
        on_result(i, result)

    if todo:
        results = executor.map(run_task, [tasks[i] for i in todo], on_result=finished)
        for j, result in enumerate(results):
            outputs[todo[j]] = result
    return outputs


# =========================================================================== comparison


@dataclass
class LawComparison:
    """Pointwise results of one law (merged over folds)."""

    law: str
    status: str = "ok"
    reason: str = ""
    runs: list = field(default_factory=list)
    run_lpd: np.ndarray = field(default_factory=lambda: np.zeros(0))
    run_domain_lpd: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    pareto_k: np.ndarray | None = None
    good_k: float | None = None
    refitted_runs: list = field(default_factory=list)
    cells: pd.DataFrame | None = None
    fits: list = field(default_factory=list)
    saved_fit: str | None = None


class Comparison:
    """The result of :func:`compare_laws`: pointwise scores of every law, their summary,
    stacking weights, and input/output to CSV and JSON.

    Attributes
    ----------
    scheme : str
    laws : dict of str to LawComparison
    folds : list of Fold
    domains : tuple of str
    settings : dict
    table_info : dict
    """

    def __init__(self, scheme, laws, folds, domains, settings, table_info, executor="", seconds=0.0):
        self.scheme = scheme
        self.laws = laws
        self.folds = folds
        self.domains = tuple(domains)
        self.settings = settings
        self.table_info = table_info
        self.executor = executor
        self.seconds = seconds
        self.weights_, self.common_runs_ = self._stacking()

    # ------------------------------------------------------------------ derived
    @property
    def ok_laws(self) -> list[str]:
        return [name for name, res in self.laws.items() if res.status == "ok" and len(res.runs)]

    def _lpd_matrix(self, laws):
        common = None
        for name in laws:
            runs = set(self.laws[name].runs)
            common = runs if common is None else common & runs
        order = [r for r in self.laws[laws[0]].runs if r in (common or set())] if laws else []
        cols = []
        for name in laws:
            res = self.laws[name]
            where = {r: i for i, r in enumerate(res.runs)}
            cols.append(np.asarray(res.run_lpd)[[where[r] for r in order]])
        return order, (np.column_stack(cols) if cols else np.zeros((0, 0)))

    def _stacking(self):
        laws = self.ok_laws
        if not laws:
            return {}, []
        order, matrix = self._lpd_matrix(laws)
        if len(order) == 0:
            return {}, []
        w = stacking_weights(matrix)
        return dict(zip(laws, map(float, w))), order

    def _sum_se(self, values: np.ndarray, runs) -> float:
        """Standard error of ``values.sum()``: over runs, or under forward chaining by
        scale over folds (the runs of one fold share one extrapolation error, so they are
        not independent evidence; with one fold the SE is not defined: NaN)."""
        values = np.asarray(values, dtype=float)
        if self.scheme != "scale":
            return float(math.sqrt(len(values) * np.var(values)))
        fold_of = {r: f.index for f in self.folds for r in f.test_runs}
        groups = np.array([fold_of.get(r, -1) for r in runs])
        sums = np.array([values[groups == g].sum() for g in np.unique(groups)])
        return float(math.sqrt(len(sums) * np.var(sums, ddof=1))) if len(sums) > 1 else float("nan")

    @property
    def stacking_weights(self) -> dict:
        """Stacking weights of the laws scored on common runs (zero for the others)."""
        return {name: self.weights_.get(name, 0.0) for name in self.laws}

    def summary(self) -> pd.DataFrame:
        """One row per law and domain (``domain == 'all'`` for the overall row).

        Columns: law, domain, status, reason, n_runs, n_cells, n_cells_trained, elpd,
        elpd_se, elpd_diff, elpd_diff_se, weight, mre_all, mre_trained, coverage90,
        pareto_k_bad, refitted, max_rhat, divergences, fit_problems.
        """
        laws = self.ok_laws
        order, matrix = self._lpd_matrix(laws) if laws else ([], np.zeros((0, 0)))
        best = int(np.argmax(matrix.sum(axis=0))) if matrix.size else None
        records = []
        for name, res in self.laws.items():
            base = {"law": name, "status": res.status, "reason": res.reason}
            if res.status != "ok" or not len(res.runs):
                records.append({**base, "domain": ALL})
                continue
            lpd = np.asarray(res.run_lpd, dtype=float)
            n = len(lpd)
            row = {**base, "domain": ALL, "n_runs": n}
            row["elpd"] = float(lpd.sum())
            row["elpd_se"] = self._sum_se(lpd, res.runs)
            if name in laws and best is not None:
                j = laws.index(name)
                diff = matrix[:, best] - matrix[:, j]
                row["elpd_diff"] = float(diff.sum())
                row["elpd_diff_se"] = self._sum_se(diff, order)
                row["n_common_runs"] = len(order)
            row["weight"] = self.weights_.get(name, 0.0)
            cells = res.cells
            row.update(_cell_metrics(cells))
            if res.pareto_k is not None:
                row["pareto_k_bad"] = int(np.sum(np.asarray(res.pareto_k) > res.good_k))
                row["good_k"] = res.good_k
                row["refitted"] = len(res.refitted_runs)
            rhats = [f["diagnostics"].get("max_rhat", np.nan) for f in res.fits if f.get("diagnostics")]
            row["max_rhat"] = float(np.nanmax(rhats)) if rhats else np.nan
            row["divergences"] = int(sum(f["diagnostics"].get("divergences", 0) for f in res.fits if f.get("diagnostics")))
            row["fit_problems"] = int(sum(bool(f.get("problems")) for f in res.fits))
            row["n_folds_skipped"] = int(sum(f["status"] != "ok" for f in res.fits))
            records.append(row)
            for k, domain in enumerate(self.domains):
                drow = {**base, "domain": domain}
                col = np.asarray(res.run_domain_lpd, dtype=float)[:, k]
                finite = np.isfinite(col)
                drow["n_runs"] = int(finite.sum())
                drow["elpd"] = float(col[finite].sum())
                drow["elpd_se"] = float(math.sqrt(finite.sum() * np.var(col[finite]))) if finite.any() else np.nan
                drow.update(_cell_metrics(cells[cells["domain"] == domain]))
                records.append(drow)
        columns = ["law", "domain", "status", "reason", "n_runs", "n_common_runs", "n_cells", "n_cells_trained",
                   "elpd", "elpd_se", "elpd_diff", "elpd_diff_se", "weight", "mre_all", "mre_trained",
                   "coverage90", "pareto_k_bad", "good_k", "refitted", "max_rhat", "divergences",
                   "fit_problems", "n_folds_skipped"]
        frame = pd.DataFrame.from_records(records)
        for col in columns:
            if col not in frame:
                frame[col] = np.nan
        frame.insert(0, "cv", self.scheme)
        return frame[["cv", *columns]]

    # ------------------------------------------------------------------ output
    def format_table(self) -> str:
        """The printed table: one line per law, best first, then skipped or failed laws."""
        frame = self.summary()
        overall = frame[(frame["domain"] == ALL) & (frame["status"] == "ok") & frame["n_runs"].notna()]
        overall = overall.sort_values("elpd_diff", na_position="last")
        info = self.table_info
        lines = [
            f"Comparison of {len(self.laws)} laws on {info.get('source')} ({info.get('n_runs')} runs, "
            f"{info.get('n_rows')} rows, {len(self.domains)} domains), cv {self.scheme}"
            f" ({len(self.folds)} folds)" if self.scheme != "loo" else
            f"Comparison of {len(self.laws)} laws on {info.get('source')} ({info.get('n_runs')} runs, "
            f"{info.get('n_rows')} rows, {len(self.domains)} domains), cv loo (PSIS, run level)",
        ]
        loo = self.scheme == "loo"
        header = (f"  {'law':<18}{'runs':>5}{'elpd':>11}{'se':>8}{'d_elpd':>10}{'d_se':>8}{'weight':>8}"
                  f"{'MRE all':>9}{'MRE trained':>12}{'cov90':>7}")
        header += f"{'k>thr (refit)':>15}" if loo else ""
        header += "  notes"
        lines.append(header)
        for _, r in overall.iterrows():
            notes = []
            if r["fit_problems"]:
                notes.append(f"{int(r['fit_problems'])} fit(s) fail the diagnostics gate (max R-hat {r['max_rhat']:.3f}, "
                             f"{int(r['divergences'])} divergences)")
            if r["n_folds_skipped"]:
                notes.append(f"{int(r['n_folds_skipped'])} fold(s) skipped or failed")
            if r["n_common_runs"] < r["n_runs"]:
                notes.append(f"differences on {int(r['n_common_runs'])} common runs")
            line = (f"  {r['law']:<18}{int(r['n_runs']):>5}{r['elpd']:>11.1f}{r['elpd_se']:>8.1f}"
                    f"{r['elpd_diff']:>10.1f}{r['elpd_diff_se']:>8.1f}{r['weight']:>8.3f}"
                    f"{100 * r['mre_all']:>8.3f}%{100 * r['mre_trained']:>11.3f}%{100 * r['coverage90']:>6.1f}%")
            if loo:
                k_text = f"{int(r['pareto_k_bad'])} ({int(r['refitted'])})"
                line += f"{k_text:>15}"
            lines.append(line + ("  " + "; ".join(notes) if notes else ""))
        for name, res in self.laws.items():
            if res.status != "ok":
                lines.append(f"  {name:<18}{res.status}: {res.reason}")
        if loo:
            thr = next((res.good_k for res in self.laws.values() if res.good_k is not None), None)
            if thr is not None:
                lines.append(f"  k>thr: runs with Pareto k above {thr:.2f}; refitted exactly without the run "
                             f"(up to {self.settings.get('max_refits')} per law), the rest are PSIS estimates")
        lines.append("  elpd: held-out log predictive density of whole runs (nats, loss scale), summed; d_elpd: "
                     "difference to the best law; MRE trained: cells with positive training weight")
        return "\n".join(lines)

    def cells_frame(self) -> pd.DataFrame:
        """All held-out cells of all laws (law, fold, run, domain, observed, mean, lower, upper, trained)."""
        frames = [res.cells.assign(law=name) for name, res in self.laws.items() if res.cells is not None]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def to_dict(self) -> dict:
        """Everything needed to redraw the table and stack the laws (JSON-safe)."""
        laws = {}
        for name, res in self.laws.items():
            entry = {"status": res.status, "reason": res.reason, "saved_fit": res.saved_fit,
                     "runs": list(res.runs), "run_lpd": _floats(res.run_lpd),
                     "run_domain_lpd": [_floats(r) for r in np.asarray(res.run_domain_lpd)],
                     "pareto_k": None if res.pareto_k is None else _floats(res.pareto_k),
                     "good_k": res.good_k, "refitted_runs": list(res.refitted_runs), "fits": res.fits}
            if res.cells is not None:
                entry["cells"] = {c: (_floats(res.cells[c]) if res.cells[c].dtype.kind == "f"
                                      else res.cells[c].tolist()) for c in res.cells.columns}
            laws[name] = entry
        return {
            "bayesmix_type": "comparison",
            "cv": self.scheme,
            "domains": list(self.domains),
            "table": self.table_info,
            "settings": self.settings,
            "executor": self.executor,
            "seconds": self.seconds,
            "folds": [f.to_dict() for f in self.folds],
            "stacking_weights": self.stacking_weights,
            "stacking_runs": list(self.common_runs_),
            "fits": {name: res.saved_fit for name, res in self.laws.items() if res.saved_fit},
            "summary": json.loads(self.summary().to_json(orient="records")),
            "laws": laws,
        }

    def save(self, csv_path=None, json_path=None) -> None:
        """Write the summary CSV and/or the JSON (atomically)."""
        if csv_path is not None:
            write_text_atomic(csv_path, self.summary().to_csv(index=False))
        if json_path is not None:
            write_json_atomic(json_path, self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: dict) -> "Comparison":
        laws = {}
        for name, e in data["laws"].items():
            cells = pd.DataFrame(e["cells"]) if e.get("cells") else None
            laws[name] = LawComparison(
                law=name, status=e["status"], reason=e["reason"], runs=list(e["runs"]),
                run_lpd=np.asarray(e["run_lpd"], dtype=float),
                run_domain_lpd=np.asarray(e["run_domain_lpd"], dtype=float).reshape(len(e["runs"]), len(data["domains"])),
                pareto_k=None if e.get("pareto_k") is None else np.asarray(e["pareto_k"], dtype=float),
                good_k=e.get("good_k"), refitted_runs=list(e.get("refitted_runs", [])), cells=cells,
                fits=e.get("fits", []), saved_fit=e.get("saved_fit"))
        folds = [Fold(f["index"], f["label"], tuple(f["train_runs"]), tuple(f["test_runs"])) for f in data["folds"]]
        return cls(data["cv"], laws, folds, data["domains"], data["settings"], data["table"],
                   data.get("executor", ""), data.get("seconds", 0.0))

    @classmethod
    def combine(cls, comparisons) -> "Comparison":
        """One comparison from several run separately on the same table and folds (e.g.
        one law at a time, or a law added later without refitting the others).

        Raises
        ------
        UsageError
            If the comparisons differ in table, scheme or folds, or share a law.
        """
        comparisons = [c if isinstance(c, Comparison) else Comparison.load(c) for c in comparisons]
        if not comparisons:
            raise UsageError("nothing to combine")
        first = comparisons[0]
        laws = {}
        for other in comparisons:
            for what, a, b in (("table", first.table_info.get("fingerprint"), other.table_info.get("fingerprint")),
                               ("cv scheme", first.scheme, other.scheme),
                               ("folds", [f.to_dict() for f in first.folds], [f.to_dict() for f in other.folds])):
                if a != b:
                    raise UsageError(f"cannot combine comparisons with different {what}; rerun them with the "
                                     "same table, --cv and --seed")
            for name, res in other.laws.items():
                if name in laws:
                    raise UsageError(f"law '{name}' is in two of the comparisons to combine")
                laws[name] = res
        return cls(first.scheme, laws, first.folds, first.domains, first.settings, first.table_info,
                   first.executor, sum(c.seconds for c in comparisons))

    @classmethod
    def load(cls, path) -> "Comparison":
        """Read a comparison JSON written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise UsageError(f"{path}: comparison file not found; create one with "
                             f"'bayesmix compare RUNS.csv --out CMP.csv --json {path}'")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}: not a comparison JSON ({err})") from None
        if data.get("bayesmix_type") != "comparison":
            raise UsageError(f"{path}: not a bayesmix comparison (written by 'bayesmix compare --json')")
        return cls.from_dict(data)


def _floats(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float).reshape(-1)]


def _cell_metrics(cells: pd.DataFrame | None) -> dict:
    if cells is None or not len(cells):
        return {"n_cells": 0, "n_cells_trained": 0, "mre_all": np.nan, "mre_trained": np.nan, "coverage90": np.nan}
    trained = cells["trained"].to_numpy(dtype=bool)
    return {
        "n_cells": int(len(cells)),
        "n_cells_trained": int(trained.sum()),
        "mre_all": mean_relative_error(cells["mean"], cells["observed"]),
        "mre_trained": mean_relative_error(cells["mean"], cells["observed"], mask=trained),
        "coverage90": coverage(cells["lower"], cells["upper"], cells["observed"]),
    }


def _merge(law: str, results: list[TaskResult], table, domains) -> LawComparison:
    """Merge the task results of one law into pointwise arrays (one entry per scored run)."""
    out = LawComparison(law)
    run_ids = np.asarray(table.run_ids, dtype=object)
    runs, lpd, rd_lpd, cell_frames, ks = [], [], [], [], []
    for res in results:
        out.fits.append({"kind": res.kind, "fold": res.fold_index, "status": res.status, "reason": res.reason,
                         "seconds": res.seconds, "diagnostics": res.diagnostics, "problems": res.problems})
        if res.saved_fit:
            out.saved_fit = res.saved_fit
        if res.status != "ok" or res.scores is None:
            continue
        sc = res.scores
        runs.extend(sc["runs"])
        lpd.extend(np.asarray(sc["run_lpd"], dtype=float))
        rd_lpd.extend(np.asarray(sc["run_domain_lpd"], dtype=float))
        if res.pareto_k is not None:
            ks.extend(res.pareto_k)
            out.good_k = res.good_k
        rows = np.asarray(sc["cell_row"], dtype=int)
        cell_frames.append(pd.DataFrame({
            "fold": -1 if res.fold_index is None else res.fold_index,
            "row": rows, "run_id": run_ids[rows], "domain": np.asarray(domains, dtype=object)[sc["cell_domain"]],
            "observed": sc["observed"], "mean": sc["mean"], "lower": sc["lower"], "upper": sc["upper"],
            "trained": np.asarray(sc["trained"], dtype=bool)}))
    out.runs = runs
    out.run_lpd = np.asarray(lpd, dtype=float)
    out.run_domain_lpd = np.asarray(rd_lpd, dtype=float).reshape(len(runs), len(domains))
    out.pareto_k = np.asarray(ks, dtype=float) if ks else None
    out.cells = pd.concat(cell_frames, ignore_index=True) if cell_frames else None
    scored = [r for r in results if r.kind != "full"]
    if scored and all(r.status != "ok" for r in scored):
        statuses = {r.status for r in scored}
        out.status = "skipped" if statuses == {"skipped"} else "failed"
        out.reason = next(r.reason for r in scored if r.status != "ok")
    return out


def _replace_runs(base: LawComparison, refits: list[TaskResult], table, domains) -> LawComparison:
    """LOO: replace the PSIS estimates of refitted runs by their exact held-out scores."""
    exact = _merge(base.law, refits, table, domains)
    done = [r for r in exact.runs]
    if not done:
        base.fits.extend(exact.fits)
        return base
    keep = np.array([r not in set(done) for r in base.runs])
    where = {r: i for i, r in enumerate(exact.runs)}
    run_lpd = np.asarray(base.run_lpd, dtype=float).copy()
    run_domain = np.asarray(base.run_domain_lpd, dtype=float).copy()
    for i, r in enumerate(base.runs):
        if r in where:
            run_lpd[i] = exact.run_lpd[where[r]]
            run_domain[i] = exact.run_domain_lpd[where[r]]
    cells = base.cells[base.cells["run_id"].isin([r for r, k in zip(base.runs, keep) if k])]
    base.cells = pd.concat([cells, exact.cells], ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)
    base.run_lpd, base.run_domain_lpd = run_lpd, run_domain
    base.refitted_runs = list(done)
    base.fits.extend(exact.fits)
    return base


def _default_progress(done: int, total: int, task: FitTask, result: TaskResult) -> None:
    if result.status == "ok":
        diag = result.diagnostics
        text = f"ok, max R-hat {diag.get('max_rhat', float('nan')):.3f}, {diag.get('divergences', 0)} divergences"
    else:
        text = f"{result.status}: {result.reason.splitlines()[0][:120]}"
    print(f"[{done:>{len(str(total))}}/{total}] {task.describe()}: {result.seconds:.1f} s, {text}",
          file=sys.stderr, flush=True)


def compare_laws(table, laws=None, *, cv="kfold:5", settings: CompareSettings | None = None,
                 executor=None, save_fits=None, priors: dict | None = None, progress=None,
                 work_dir=None) -> Comparison:
    """Compare laws on a run table by held-out prediction of whole runs.

    Parameters
    ----------
    table : RunTable
    laws : sequence of str, optional
        Law names; default: every registered law. A law whose :meth:`Law.check_table`
        refuses the table is reported as skipped with the reason.
    cv : str or CVScheme
        ``"loo"``, ``"kfold:K"`` or ``"scale"``.
    settings : CompareSettings, optional
        Sampler and scoring settings of every fit.
    executor : Executor, optional
        Where the fits run (default: local processes, one per core).
    save_fits : path, optional
        Folder where each law's full-data fit is written as ``<law>.nc`` (an extra fit
        per law for ``kfold`` and ``scale``); recorded in the result for stacked
        prediction (:func:`stacked_posterior`).
    priors : dict of str to dict, optional
        Prior overrides per law name.
    progress : callable or bool, optional
        ``progress(done, total, task, result)`` after each fit; True prints one line per
        fit to stderr; None/False is silent.
    work_dir : path, optional
        Keep each finished fit's held-out results in this folder as it arrives
        (:class:`TaskStore`); a rerun with the same folder and inputs skips the fits
        already done, so an interrupted comparison resumes where it stopped.

    Returns
    -------
    Comparison
    """
    from .executors import make_executor
    from .laws import available_laws, get_law

    t0 = time.perf_counter()
    settings = settings or CompareSettings()
    scheme = parse_cv(cv)
    law_names = list(laws) if laws else available_laws()
    if not law_names:
        raise UsageError("no laws to compare: name them with --laws")
    if len(set(law_names)) != len(law_names):
        raise UsageError(f"--laws names a law twice: {', '.join(law_names)}")
    if not table.has_losses:
        raise UsageError(f"{table.source}: the table has no losses to compare laws on")
    folds = [] if scheme.kind == "loo" else make_folds(table, scheme, seed=settings.seed)
    if progress is True:
        progress = _default_progress
    results: dict[str, LawComparison] = {}
    tasks: list[FitTask] = []
    for name in law_names:
        law = get_law(name)  # unknown name: UsageError, a typo the user must fix
        try:
            law.check_table(table)
        except UsageError as err:
            results[name] = LawComparison(name, status="skipped", reason=str(err))
            continue
        save_path = None
        if save_fits is not None:
            save_path = str(Path(save_fits).resolve() / f"{name}.nc")
        common = dict(table=table, law=name, settings=settings, priors=(priors or {}).get(name))
        if scheme.kind == "loo":
            tasks.append(FitTask(kind="loo", fold=None, save_path=save_path, **common))
        else:
            tasks.extend(FitTask(kind="heldout", fold=fold, **common) for fold in folds)
            if save_path:
                tasks.append(FitTask(kind="full", fold=None, save_path=save_path, **common))
    # The most expensive laws first (a stable sort keeps each law's folds in order): with
    # fits queued law by law, an expensive law last leaves its final fits running alone.
    tasks.sort(key=lambda task: -get_law(task.law).relative_cost)
    own_executor = executor is None
    executor = executor or make_executor()
    store = TaskStore(work_dir) if work_dir is not None else None
    done = [0]
    total = [len(tasks)]

    def on_result(index, result, batch):
        done[0] += 1
        if progress:
            progress(done[0], total[0], batch[index], result)

    try:
        outputs = _run_tasks(executor, tasks, lambda i, r: on_result(i, r, tasks), store)
        by_law: dict[str, list] = {}
        for task, out in zip(tasks, outputs):
            by_law.setdefault(task.law, []).append(out)
        for name, outs in by_law.items():
            results[name] = _merge(name, outs, table, table.domains)
        if scheme.kind == "loo" and settings.max_refits > 0:
            refit_tasks = []
            for name in by_law:
                res = results[name]
                if res.status != "ok" or res.pareto_k is None:
                    continue
                bad = np.flatnonzero(res.pareto_k > res.good_k)
                bad = bad[np.argsort(-res.pareto_k[bad])][: settings.max_refits]
                all_runs = _runs_in_order(table)
                for i in bad:
                    run = res.runs[i]
                    fold = Fold(int(np.flatnonzero(all_runs == run)[0]), f"without run {run} (k={res.pareto_k[i]:.2f})",
                                tuple(r for r in all_runs if r != run), (run,))
                    refit_tasks.append(FitTask(table=table, law=name, kind="heldout", fold=fold, settings=settings,
                                               priors=(priors or {}).get(name)))
            if refit_tasks:
                total[0] += len(refit_tasks)
                refits = _run_tasks(executor, refit_tasks, lambda i, r: on_result(i, r, refit_tasks), store)
                for name in by_law:
                    mine = [r for t, r in zip(refit_tasks, refits) if t.law == name]
                    if mine:
                        results[name] = _replace_runs(results[name], mine, table, table.domains)
    finally:
        if own_executor:
            executor.close()
    ordered = {name: results[name] for name in law_names}
    table_info = {"source": str(table.source), "fingerprint": table.fingerprint(), "n_rows": table.n_rows,
                  "n_runs": table.n_runs, "model_sizes": sorted(set(map(float, table.model_size)))}
    return Comparison(scheme.label, ordered, folds, table.domains, settings.to_dict(), table_info,
                      executor=getattr(executor, "description", ""), seconds=time.perf_counter() - t0)


# =========================================================================== stacking


class StackedPosterior:
    """The stacking mixture of several laws' posterior predictives.

    Draws are taken from each law's posterior in proportion to its stacking weight
    (evenly spaced within each law's draws, deterministically), so every method of
    :class:`~bayesmix.posterior.Posterior` that decision layers use works unchanged:
    ``expected_loss``, ``predictive_loss``, ``add_noise``, ``summarise``,
    ``symbolic_expected_loss``, ``thin``, ``subset``. Each draw keeps its own law's
    observation noise and run offset.

    Parameters
    ----------
    posteriors : dict of str to Posterior
        One posterior per law, all over the same domains.
    weights : dict of str to float
        Stacking weights (normalised here; laws with weight 0 are dropped).
    n_draws : int, optional
        Total draws of the mixture; default: the most any component has.

    Attributes
    ----------
    components : dict of str to Posterior
    weights : dict of str to float
    component : ndarray ``(S,)``
        Which law each draw comes from (index into ``components``).
    """

    def __init__(self, posteriors: dict, weights: dict, n_draws: int | None = None, *, _index=None):
        names = [n for n in posteriors if weights.get(n, 0.0) > 0]
        if not names:
            raise UsageError("no law has a positive stacking weight among the fits given")
        domains = {tuple(posteriors[n].domains) for n in names}
        if len(domains) > 1:
            raise UsageError("the stacked laws were fitted on different domains: "
                             + "; ".join(f"{n}: {', '.join(posteriors[n].domains)}" for n in names))
        total = sum(weights[n] for n in names)
        self.weights = {n: float(weights[n]) / total for n in names}
        self.components = {n: posteriors[n] for n in names}
        self._names = names
        if _index is None:
            S = int(n_draws or max(p.n_draws for p in self.components.values()))
            picks = allocate_draws([self.weights[n] for n in names],
                                   [self.components[n].n_draws for n in names], S)
            self.component = np.concatenate([np.full(len(p), c) for c, p in enumerate(picks)])
            self.local_index = np.concatenate(picks)
        else:
            self.component, self.local_index = (np.asarray(a, dtype=int) for a in _index)
        self.meta = {"stacked": dict(self.weights)}

    # ------------------------------------------------------------------ Posterior API
    @property
    def domains(self) -> tuple:
        return tuple(self.components[self._names[0]].domains)

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    @property
    def n_draws(self) -> int:
        return int(len(self.component))

    @property
    def scaling(self):
        return self.components[self._names[0]].scaling

    @property
    def law(self) -> "StackedLaw":
        """A label standing in for the law (``name`` and ``options``) in reports and cache
        keys; the draws mix several laws, so it has no mean function."""
        return StackedLaw("stacked(" + ",".join(f"{n}={w:.3f}" for n, w in self.weights.items()) + ")")

    @property
    def draws(self) -> dict:
        """The draws of every component at the mixture's draws, keyed ``law/param``, with
        the component of each draw (a content key: equal draws give equal dicts)."""
        out = {"component": self.component.astype(float), "local_index": self.local_index.astype(float)}
        for c, name in enumerate(self._names):
            where = self.component == c
            for key, value in self.components[name].draws.items():
                out[f"{name}/{key}"] = np.asarray(value)[self.local_index[where]]
        return out

    @property
    def sigma(self) -> np.ndarray | None:
        """``(S, K)`` observation noise sd of each draw (its own law's)."""
        parts = [(p.sigma if p.sigma is not None else np.zeros((p.n_draws, self.n_domains)), w)
                 for p, w in self._parts()]
        out = np.empty((self.n_draws, self.n_domains))
        for value, where in parts:
            out[where] = value
        return out

    def _parts(self):
        """(component posterior restricted to its draws, positions in the mixture)."""
        for c, name in enumerate(self._names):
            where = np.flatnonzero(self.component == c)
            if len(where):
                yield self.components[name].subset(self.local_index[where]), where

    def subset(self, idx) -> "StackedPosterior":
        idx = np.asarray(idx)
        return StackedPosterior(self.components, self.weights, _index=(self.component[idx], self.local_index[idx]))

    def thin(self, max_draws: int, seed: int = 0) -> "StackedPosterior":
        if self.n_draws <= max_draws:
            return self
        return self.subset(np.linspace(0, self.n_draws - 1, max_draws).round().astype(int))

    def expected_loss(self, weights, model_size, tokens, **kwargs) -> np.ndarray:
        """Expected loss per mixture draw, row and domain, in nats: ``(S, rows, K)``."""
        out = None
        for post, where in self._parts():
            mu = post.expected_loss(weights, model_size, tokens, **kwargs)
            if out is None:
                out = np.empty((self.n_draws,) + mu.shape[1:])
            out[where] = mu
        return out

    def add_noise(self, mu: np.ndarray, *, seed=0, weights=None) -> np.ndarray:
        """Observed-loss draws: each draw gets its own law's noise and a fresh run offset."""
        out = np.empty_like(mu)
        for c, (post, where) in enumerate(self._parts()):
            out[where] = post.add_noise(mu[where], seed=np.random.SeedSequence([int(seed), c]).generate_state(1)[0],
                                        weights=weights)
        return out

    @property
    def observation(self):
        """None: a stacked posterior's draws carry their own laws' observation models, which
        :meth:`expected_loss` and :meth:`add_noise` apply per component."""
        return None

    def predictive_loss(self, weights, model_size, tokens, *, seed=0) -> np.ndarray:
        return self.add_noise(self.expected_loss(weights, model_size, tokens), seed=seed)

    def summarise(self, weights, model_size, tokens, *, seed=0) -> dict:
        """Mixture mean of the expected loss, and predictive sd and 5 %/95 % quantiles."""
        mu = self.expected_loss(weights, model_size, tokens)
        pred = self.add_noise(mu, seed=seed)
        return {"mean": mu.mean(axis=0), "sd": pred.std(axis=0),
                "q05": np.quantile(pred, 0.05, axis=0), "q95": np.quantile(pred, 0.95, axis=0)}

    def symbolic_expected_loss(self, h, model_size, tokens):
        """PyTensor graph ``(S, rows, K)`` of the mixture's expected loss (for gradients).

        ``h`` is ``(rows, K)``, or ``(S, rows, K)`` with one mixture set per draw.
        """
        import pytensor.tensor as pt

        parts, positions = [], []
        for post, where in self._parts():
            # A 3-d ``h`` carries one mixture set per draw (the decision layer's per-draw
            # optima): each component gets the rows of its own draws.
            h_part = h[where] if h.ndim == 3 else h
            parts.append(post.symbolic_expected_loss(h_part, model_size, tokens))
            positions.append(where)
        order = np.argsort(np.concatenate(positions))
        return pt.concatenate(parts, axis=0)[order]

    def __repr__(self) -> str:
        ws = ", ".join(f"{n} {w:.3f}" for n, w in self.weights.items())
        return f"StackedPosterior({ws}; {self.n_draws} draws)"


@dataclass(frozen=True)
class StackedLaw:
    """Name of a stacking mixture where code expects ``posterior.law`` (display, cache keys)."""

    name: str
    options: dict = field(default_factory=dict)
    title: str = "stacking mixture of laws"


def is_comparison_file(path) -> bool:
    """Whether ``path`` is a comparison JSON written by ``bayesmix compare`` (so that a
    command given a model path can stack the compared laws instead of loading one fit)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with path.open() as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return '"bayesmix_type": "comparison"' in head


def stacked_posterior(comparison, fits=None, *, n_draws: int | None = None, max_draws: int | None = None) -> StackedPosterior:
    """The stacking mixture of a comparison's laws, ready for prediction and decisions.

    Parameters
    ----------
    comparison : Comparison, dict or path
        A comparison, its JSON dict, or the JSON file written by ``bayesmix compare``.
    fits : dict of str to (Fit or Posterior or path), optional
        Each law's full-data fit; default: the fits the comparison saved
        (``--save-fits``), resolved relative to the JSON file when relative.
    n_draws : int, optional
        Total draws of the mixture.
    max_draws : int, optional
        Thin each law's posterior to this many draws first.

    Returns
    -------
    StackedPosterior
    """
    from .inference import Fit

    base = None
    if isinstance(comparison, (str, Path)):
        base = Path(comparison).parent
        comparison = Comparison.load(comparison)
    elif isinstance(comparison, dict):
        comparison = Comparison.from_dict(comparison)
    weights = {n: w for n, w in comparison.stacking_weights.items() if w > 0}
    if not weights:
        raise UsageError("the comparison has no stacking weights (no law was scored)")
    fits = dict(fits or {})
    posteriors = {}
    for name in weights:
        source = fits.get(name, comparison.laws[name].saved_fit)
        if source is None:
            raise UsageError(
                f"no full-data fit of law '{name}' (stacking weight {weights[name]:.3f}): rerun "
                "'bayesmix compare ... --save-fits DIR', or pass the fit (Python: fits={...})")
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_absolute() and base is not None and not path.exists():
                path = base / path
            source = Fit.load(path)
        posteriors[name] = source.posterior(max_draws) if isinstance(source, Fit) else source
    return StackedPosterior(posteriors, weights, n_draws=n_draws)
