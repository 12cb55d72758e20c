"""A comparison of laws: the folds' fit tasks run and merged into per-law, per-domain
scores, its tables, and its JSON/CSV files."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._files import write_json_atomic, write_text_atomic
from ..errors import UsageError
from ..metrics import interval_coverage as coverage, mean_relative_error, pooled_coverage_band
from .folds import Fold, make_folds, parse_cv, runs_in_order
from .scoring import stacking_weights
from .tasks import CompareSettings, FitTask, TaskResult, TaskStore, run_tasks

#: Label of the all-domain row of the summary.
ALL = "all"


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
    #: 5-95% range of the coverage of all the law's held-out cells if its fits were right
    #: (:func:`~bayesmix.metrics.pooled_coverage_band`); None for PSIS-LOO.
    coverage_band: tuple | None = None


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
        coverage90_low and coverage90_high (overall rows of held-out schemes: the range
        the coverage would fall in if the fits were right), pareto_k_bad, refitted,
        max_rhat, divergences, fit_problems.
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
            row["coverage90_low"], row["coverage90_high"] = res.coverage_band or (np.nan, np.nan)
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
                   "coverage90", "coverage90_low", "coverage90_high", "pareto_k_bad", "good_k", "refitted",
                   "max_rhat", "divergences", "fit_problems", "n_folds_skipped"]
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
            if np.isfinite(r["coverage90_low"]):
                notes.append(f"cov90 expected {100 * r['coverage90_low']:.0f}-{100 * r['coverage90_high']:.0f}% "
                             "if the fits were right")
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
                     "good_k": res.good_k, "refitted_runs": list(res.refitted_runs), "fits": res.fits,
                     "coverage_band": None if res.coverage_band is None else list(res.coverage_band)}
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
                fits=e.get("fits", []), saved_fit=e.get("saved_fit"),
                coverage_band=None if e.get("coverage_band") is None else tuple(e["coverage_band"]))
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
    runs, lpd, rd_lpd, cell_frames, ks, insides = [], [], [], [], [], []
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
        if sc.get("inside_draws") is not None:
            insides.append(sc["inside_draws"])
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
    # Only where every scored result has its draws (not PSIS-LOO, not older stored tasks).
    if insides and len(insides) == len(cell_frames):
        out.coverage_band = pooled_coverage_band(insides)
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
    from ..executors import make_executor

    t0 = time.perf_counter()
    settings = settings or CompareSettings()
    scheme = parse_cv(cv)
    law_names = _law_names(table, laws)
    folds = [] if scheme.kind == "loo" else make_folds(table, scheme, seed=settings.seed)
    results, tasks = _fit_tasks(table, law_names, scheme, folds, settings, save_fits, priors)
    own_executor = executor is None
    executor = executor or make_executor()
    runner = _TaskRunner(executor, TaskStore(work_dir) if work_dir is not None else None,
                         _default_progress if progress is True else progress)
    try:
        scored = _merged_results(runner.run(tasks), tasks, table)
        if scheme.kind == "loo" and settings.max_refits > 0:
            _replace_high_k_runs(scored, runner, table, settings, priors)
        results.update(scored)
    finally:
        if own_executor:
            executor.close()
    ordered = {name: results[name] for name in law_names}
    return Comparison(scheme.label, ordered, folds, table.domains, settings.to_dict(), _table_info(table),
                      executor=getattr(executor, "description", ""), seconds=time.perf_counter() - t0)


def _law_names(table, laws) -> list[str]:
    """The names of the laws to compare (default: every registered law), each named once,
    on a table with losses."""
    from ..laws import available_laws

    law_names = list(laws) if laws else available_laws()
    if not law_names:
        raise UsageError("no laws to compare: name them with --laws")
    if len(set(law_names)) != len(law_names):
        raise UsageError(f"--laws names a law twice: {', '.join(law_names)}")
    if not table.has_losses:
        raise UsageError(f"{table.source}: the table has no losses to compare laws on")
    return law_names


def _fit_tasks(table, law_names, scheme, folds, settings, save_fits, priors) -> tuple[dict, list[FitTask]]:
    """The laws that refuse the table (as skipped :class:`LawComparison`) and the fits of
    the others: one LOO fit, or one per fold (plus the full-data fit to save)."""
    from ..laws import get_law

    skipped: dict[str, LawComparison] = {}
    tasks: list[FitTask] = []
    for name in law_names:
        law = get_law(name)  # unknown name: UsageError, a typo the user must fix
        try:
            law.check_table(table)
        except UsageError as err:
            skipped[name] = LawComparison(name, status="skipped", reason=str(err))
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
    return skipped, tasks


class _TaskRunner:
    """Runs batches of fit tasks on one executor (and task store), reporting each finished
    fit as ``progress(done, total, task, result)`` with counts over all the batches."""

    def __init__(self, executor, store: TaskStore | None, progress):
        self.executor, self.store, self.progress = executor, store, progress
        self.done = self.total = 0

    def run(self, tasks: list[FitTask]) -> list[TaskResult]:
        """The results of ``tasks``, in their order."""
        self.total += len(tasks)

        def on_result(index, result):
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total, tasks[index], result)

        return run_tasks(self.executor, tasks, on_result, self.store)


def _merged_results(outputs: list[TaskResult], tasks: list[FitTask], table) -> dict[str, LawComparison]:
    """The task results merged per law (laws in the order of their first task)."""
    by_law: dict[str, list] = {}
    for task, out in zip(tasks, outputs):
        by_law.setdefault(task.law, []).append(out)
    return {name: _merge(name, outs, table, table.domains) for name, outs in by_law.items()}


def _replace_high_k_runs(results: dict[str, LawComparison], runner: _TaskRunner, table, settings, priors) -> None:
    """LOO: refit each law without its runs of highest Pareto k above the threshold (at most
    ``settings.max_refits`` per law) and put their exact scores in ``results``."""
    refit_tasks = []
    for name, res in results.items():
        if res.status != "ok" or res.pareto_k is None:
            continue
        bad = np.flatnonzero(res.pareto_k > res.good_k)
        bad = bad[np.argsort(-res.pareto_k[bad])][: settings.max_refits]
        all_runs = runs_in_order(table)
        for i in bad:
            run = res.runs[i]
            fold = Fold(int(np.flatnonzero(all_runs == run)[0]), f"without run {run} (k={res.pareto_k[i]:.2f})",
                        tuple(r for r in all_runs if r != run), (run,))
            refit_tasks.append(FitTask(table=table, law=name, kind="heldout", fold=fold, settings=settings,
                                       priors=(priors or {}).get(name)))
    if not refit_tasks:
        return
    refits = runner.run(refit_tasks)
    for name in results:
        mine = [r for t, r in zip(refit_tasks, refits) if t.law == name]
        if mine:
            results[name] = _replace_runs(results[name], mine, table, table.domains)


def _table_info(table) -> dict:
    """What a comparison records of its table: source, fingerprint, size and model sizes."""
    return {"source": str(table.source), "fingerprint": table.fingerprint(), "n_rows": table.n_rows,
            "n_runs": table.n_runs, "model_sizes": sorted(set(map(float, table.model_size)))}
