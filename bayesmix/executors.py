"""One seam for running independent fits in parallel: in process, local processes, or Dask.

A comparison of laws is a set of independent fits (laws x folds). Each fit is a
picklable task (a run table, a law name and sampler settings) handed to a function
that returns a small result (held-out log densities and predictions, never a fitted
model). An :class:`Executor` maps that function over the tasks:

* :class:`SerialExecutor` runs them one after the other in this process (``jobs=1``);
* :class:`LocalExecutor` runs them in local worker processes (the default, at most one
  worker per core);
* :class:`DaskExecutor` submits them to an existing Dask ``distributed`` cluster, so
  that sweeps too big for one machine run on a cluster the user already has.

The same task with the same seed gives the same result on every executor: tasks
carry their own seeds, and sampling inside a task is single-core (chains run one
after the other), so that workers do not oversubscribe the cores.

>>> from bayesmix.executors import make_executor
>>> with make_executor(jobs=2) as ex:          # doctest: +SKIP
...     results = ex.map(run_task, tasks, on_result=print_progress)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Callable, Iterable

from .errors import UsageError

__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "make_executor", "default_jobs",
           "next_task"]

#: Environment of worker processes: one thread per numerical library, since the
#: workers already use every core between them.
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def default_jobs() -> int:
    """Default (and largest) number of local worker processes: one per core, since each
    task samples on a single core."""
    return max(1, os.cpu_count() or 1)


class Executor:
    """Map a picklable function over picklable tasks.

    Subclasses implement :meth:`map`; executors are context managers that release their
    workers on exit.
    """

    description = "executor"

    def map(self, fn: Callable, tasks: Iterable, on_result: Callable | None = None,
            affinity: Callable | None = None, cost: Callable | None = None) -> list:
        """Run ``fn(task)`` for every task; return the results in task order.

        Parameters
        ----------
        fn : callable
            A module-level (picklable) function of one task.
        tasks : iterable
            Picklable tasks, the ones to start first first.
        on_result : callable, optional
            Called as ``on_result(index, result)`` as soon as each task finishes (in
            completion order), e.g. to print progress.
        affinity : callable, optional
            ``affinity(task)`` is a key (a law's name) of what a worker prepares once and
            reuses for later tasks with the same key (a compiled model). Executors that
            keep workers may send such tasks to a worker that has it
            (:func:`next_task`). Results never depend on it.
        cost : callable, optional
            ``cost(task)``: its expected cost, in any unit (default 1 each); with
            ``affinity``, keeps one key's tasks from piling up on one worker.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release workers (no-op by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class SerialExecutor(Executor):
    """Run the tasks one after the other in this process."""

    description = "in process"

    def map(self, fn, tasks, on_result=None, affinity=None, cost=None):
        out = []
        for index, task in enumerate(tasks):
            result = fn(task)
            out.append(result)
            if on_result is not None:
                on_result(index, result)
        return out


@contextlib.contextmanager
def _environment(values: dict):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _init_worker(env: dict) -> None:  # pragma: no cover - runs in the workers
    os.environ.update(env)


class LocalExecutor(Executor):
    """Run the tasks in ``jobs`` local worker processes (started with ``spawn``).

    Parameters
    ----------
    jobs : int, optional
        Number of worker processes; default and maximum: the number of cores.

    Notes
    -----
    Workers are started fresh (``spawn``), not forked, so that they never inherit a
    half-initialised thread or compiler lock of the parent; each imports bayesmix once
    (a few seconds) and is reused for all its tasks. A script that uses this executor
    must guard its entry point with ``if __name__ == "__main__":``.

    Each worker is a pool of its own, so that tasks with the same ``affinity`` key go to
    the worker that already has what they share (:func:`next_task`): in a comparison,
    each law's model is compiled by about one worker instead of by every worker (10-20 s
    each on Pile 17).
    """

    description = "local processes"

    def __init__(self, jobs: int | None = None):
        self.jobs = jobs
        self._lanes: list[_Lane] = []

    def _workers(self) -> int:
        cores = default_jobs()
        jobs = cores if self.jobs is None else int(self.jobs)
        if jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {jobs}")
        return min(jobs, cores)

    def map(self, fn, tasks, on_result=None, affinity=None, cost=None):
        import concurrent.futures as cf

        tasks = list(tasks)
        if not tasks:
            return []
        self._start_lanes(min(self._workers(), len(tasks)))
        keys = [affinity(task) if affinity is not None else None for task in tasks]
        costs = [float(cost(task)) if cost is not None else 1.0 for task in tasks]
        pending = list(range(len(tasks)))
        running: dict = {}
        out = [None] * len(tasks)
        try:
            while pending or running:
                for lane in self._lanes:
                    if pending and lane not in running.values():
                        index = next_task(pending, keys, costs, lane.keys, [other.keys for other in self._lanes])
                        pending.remove(index)
                        lane.keys.add(keys[index])
                        lane.index = index
                        running[lane.pool.submit(fn, tasks[index])] = lane
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for future in done:
                    lane = running.pop(future)
                    out[lane.index] = future.result()
                    if on_result is not None:
                        on_result(lane.index, out[lane.index])
        except BaseException:
            for future in running:
                future.cancel()
            raise
        return out

    def _start_lanes(self, n: int) -> None:
        """One single-process pool per worker ("lane"), kept across calls of :meth:`map`,
        so that the scheduler knows which worker has prepared what."""
        import concurrent.futures as cf
        import multiprocessing

        while len(self._lanes) < n:
            # Workers are spawned during submit: give them the single-thread environment
            # from the start, before they import numpy.
            with _environment(SINGLE_THREAD_ENV):
                pool = cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                              initializer=_init_worker, initargs=(SINGLE_THREAD_ENV,))
            self._lanes.append(_Lane(pool))

    def close(self):
        for lane in self._lanes:
            lane.pool.shutdown(wait=True, cancel_futures=True)
        self._lanes = []


@dataclasses.dataclass(eq=False)
class _Lane:
    """One worker process of a :class:`LocalExecutor`, the affinity keys of the tasks it
    ran, and the index of the task it runs."""

    pool: object
    keys: set = dataclasses.field(default_factory=set)
    index: int = -1


def next_task(pending: list, keys: list, costs: list, own: set, every_worker: list) -> int:
    """The task a free worker takes next, from ``pending`` (indices, in the caller's order:
    the most expensive first).

    In this order of preference: a task whose key the worker has prepared (``own``); a
    task of a key whose pending cost is more than one worker's share of all pending cost
    (one worker alone would finish it last: the others join it, preparing the key once
    each); a task of a key no worker has prepared (``every_worker``: each worker's keys);
    the first task. Simulated with the measured fit times of the seven-law Pile 17
    comparison (2 workers; each law compiled about once instead of once per worker):
    479 s against 514 s in task order; where one law is most of the work, 759 s against
    755 s (without the second rule: 788 s).
    """
    for index in pending:
        if keys[index] in own:
            return index
    share = sum(costs[index] for index in pending) / max(len(every_worker), 1)
    by_key: dict = {}
    for index in pending:
        by_key.setdefault(keys[index], []).append(index)
    for indices in by_key.values():
        if sum(costs[index] for index in indices) > share:
            return indices[0]
    for index in pending:
        if not any(keys[index] in worker_keys for worker_keys in every_worker):
            return index
    return pending[0]


class DaskExecutor(Executor):
    """Submit the tasks to a Dask ``distributed`` cluster.

    Parameters
    ----------
    address : str or distributed.Client or cluster object
        Scheduler address (``tcp://host:8786``), an existing ``Client``, or a cluster
        object such as ``distributed.LocalCluster``.

    Notes
    -----
    Workers need bayesmix installed (same version) and, when fits are saved, a file
    system shared with the client. Start them with one thread each
    (``dask worker ADDRESS --nthreads 1``) and ``OMP_NUM_THREADS=1``: every task
    samples on one core.
    """

    description = "Dask cluster"

    def __init__(self, address):
        self.address = address
        self._client = None
        self._own_client = False

    def _get_client(self):
        if self._client is not None:
            return self._client
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--dask needs the 'distributed' package: pip install 'bayesmix[dask]'") from None
        if isinstance(self.address, Client):
            self._client = self.address
        else:
            try:
                self._client = Client(self.address, timeout="30s")
            except OSError as err:
                raise UsageError(f"cannot reach the Dask scheduler at {self.address!r}: {err}") from None
            self._own_client = True
        return self._client

    @property
    def description_long(self) -> str:
        client = self._get_client()
        return f"Dask cluster at {client.scheduler.address}"

    def map(self, fn, tasks, on_result=None, affinity=None, cost=None):
        from distributed import as_completed

        tasks = list(tasks)
        if not tasks:
            return []
        client = self._get_client()
        futures = [client.submit(fn, task, pure=False) for task in tasks]
        index_of = {future.key: index for index, future in enumerate(futures)}
        out = [None] * len(tasks)
        try:
            for future in as_completed(futures):
                index = index_of[future.key]
                out[index] = future.result()
                if on_result is not None:
                    on_result(index, out[index])
        except BaseException:
            client.cancel(futures)
            raise
        return out

    def close(self):
        if self._client is not None and self._own_client:
            self._client.close()
        self._client = None


def make_executor(jobs: int | None = None, dask=None) -> Executor:
    """The executor for the command-line options ``--jobs`` and ``--dask``.

    Parameters
    ----------
    jobs : int, optional
        Local worker processes (default: one per core); 1 runs in this process.
    dask : str or Client or cluster, optional
        A Dask scheduler address (or object); takes precedence over ``jobs``.
    """
    if dask is not None:
        return DaskExecutor(dask)
    if jobs is not None and int(jobs) < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1 or default_jobs() == 1:
        return SerialExecutor()
    return LocalExecutor(jobs)
