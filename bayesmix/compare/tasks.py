"""Fit tasks of a comparison: picklable units of work (one law, one fold), run in parallel
by :mod:`bayesmix.executors`, their results kept in a store so that an interrupted
comparison resumes."""

from __future__ import annotations

import hashlib
import json
import pickle
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._files import atomic_path
from ..errors import BayesmixError, UsageError
from ..samplers import DEFAULT_SAMPLER
from .folds import Fold
from .scoring import integrated_loglik, score_runs


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
        One of :data:`bayesmix.fit_settings.SAMPLERS` (:mod:`bayesmix.samplers`); the
        default is a single fit's, nutpie: each process compiles a law once for all its
        folds.
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
    discrepancy_scale: str = "log"
    sampler: str = DEFAULT_SAMPLER
    max_refits: int = 10
    score_draws: int = 1000

    def fit_settings(self, seed: int):
        from ..inference import FitSettings

        return FitSettings(draws=self.draws, tune=self.tune, chains=self.chains, seed=int(seed),
                           sampler=self.sampler, target_accept=self.target_accept,
                           likelihood=self.likelihood, run_effect=self.run_effect,
                           discrepancy=self.discrepancy, discrepancy_scale=self.discrepancy_scale,
                           map_starts=self.map_starts, cores=1,
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

    Every law is fitted and scored on the mixture's domains only: a law that predicts
    evaluation-only domains would otherwise be fitted to and scored on more cells than
    one that does not, and their scores would not compare.
    """
    from ..gate import check_gate
    from ..inference import fit_law
    from ..laws import get_law

    t0 = time.perf_counter()
    table = task.table.without_evaluation_domains()
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
            from .. import _az

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


def run_tasks(executor, tasks: list, on_result, store: TaskStore | None) -> list:
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
        from ..laws import get_law

        # Fits of one law share its compiled model: keep them on few workers.
        results = executor.map(run_task, [tasks[i] for i in todo], on_result=finished,
                               affinity=lambda task: task.law, cost=lambda task: get_law(task.law).relative_cost)
        for j, result in enumerate(results):
            outputs[todo[j]] = result
    return outputs
