"""`bayesmix compare`: rank competing laws by held-out prediction of whole runs."""

from __future__ import annotations

import shutil
from pathlib import Path

from .._files import check_output_path
from ..errors import UsageError
from ..fit_settings import FitSettings
from .common import load_table_from_args, require_positive
from .options import (add_checkpoints_option, add_command, add_input_argument, add_observation_options,
                      add_quiet_option, add_sampling_options, add_seed_option, add_table_options)

#: The counts of each fit of a comparison (:class:`bayesmix.compare.CompareSettings`):
#: fewer than a single fit's, as a comparison runs one fit per law and fold.
FIT_DEFAULTS = FitSettings(draws=500, tune=500, chains=2, map_starts=2)

DESCRIPTION = """\
Compare scaling laws on a run table by how well each predicts training runs it was
not fitted to. A run (all its checkpoints and domains) is the unit held out.

  --cv loo       PSIS-LOO over runs from one full-data fit per law; runs whose Pareto k
                 is above the threshold are refitted exactly (up to --max-refits).
  --cv kfold:K   exact grouped K-fold over runs.
  --cv mixture:K exact K-fold over mixtures: every run of a mixture, at every scale, is
                 left out together (what a new mixture's prediction faces).
  --cv scale     forward chaining over model size: fit on all runs up to one size,
                 score the runs of the next larger size.

Reported per law (and per domain in the CSV): held-out log predictive density of whole
runs (ELPD) with its SE, the difference to the best law with its SE, stacking weights,
the mean relative error (MRE) of the posterior-mean prediction over all held-out cells
and over cells with positive training weight, and the coverage of the 90% predictive
interval with (every scheme but loo) the range it would fall in if the law's fits were
right: held-out cells share errors, so a coverage far from 90% can still be the law's
own expectation. A law that cannot explain the table's scales is reported as skipped
with the reason.

Fits run in parallel: local processes (--jobs, default one per core) or an existing
Dask cluster (--dask ADDRESS). Each fit samples on one core. Every finished fit is kept
in a work folder as it arrives: if a long comparison stops, run the same command again
and it carries on from the fits already done."""

EPILOG = """\
examples:
  bayesmix compare pile17.csv --laws capacity_noise,capacity,exponential --cv kfold:5 --out cmp.csv
  bayesmix compare runs.csv --cv scale --out cmp.csv --json cmp.json --save-fits fits/
  bayesmix compare runs.csv --cv loo --out cmp.csv --dask tcp://scheduler:8786

Use the stacking mixture for prediction (Python):
  from bayesmix.compare import stacked_posterior
  post = stacked_posterior("cmp.json")   # needs --save-fits; use like a Posterior"""


def add_parser(sub):
    p = add_command(sub, "compare", summary="rank competing laws by cross-validation (LOO, K-fold, over scale)",
                    description=DESCRIPTION, epilog=EPILOG)
    add_input_argument(p, "runs")
    p.add_argument("--laws", default=None, metavar="LAW[,LAW...]",
                   help="laws to compare (default: every registered law; those that cannot explain "
                        "the table's scales are reported as skipped)")
    p.add_argument("--cv", default="kfold:5", metavar="SCHEME",
                   help="loo, kfold:K, mixture:K or scale (default: kfold:5)")
    p.add_argument("-o", "--out", default=None, metavar="CMP.csv",
                   help="write the summary (one row per law and domain) to this CSV")
    p.add_argument("--json", default=None, metavar="CMP.json",
                   help="write everything needed to redraw the table and to stack the laws "
                        "(default: the --out path with .json)")
    p.add_argument("--save-fits", default=None, metavar="DIR",
                   help="save each law's full-data fit as DIR/<law>.nc (needed for stacked prediction)")
    add_checkpoints_option(p, default="all", final_only=True)
    run_group = p.add_argument_group("execution")
    run_group.add_argument("--jobs", type=int, default=None, metavar="N",
                           help="local worker processes (default: one per core; 1 runs in this process)")
    run_group.add_argument("--dask", default=None, metavar="ADDRESS",
                           help="run the fits on an existing Dask cluster (scheduler address, e.g. tcp://host:8786)")
    run_group.add_argument("--work-dir", default=None, metavar="DIR",
                           help="keep each finished fit's results in DIR as it arrives; rerunning the same "
                                "command skips the fits already done (default: CMP.parts beside --out/--json, "
                                "removed once the comparison is written)")
    add_quiet_option(run_group, "no progress bar or lines (overrides --progress)")
    run_group.add_argument("--progress", action="store_true",
                           help="one line per finished fit on stderr even when it is not a terminal")
    fit_group = add_sampling_options(
        p, defaults=FIT_DEFAULTS, title="sampling of each fit", map_starts=True,
        description="Each fit keeps exactly --draws (no --extend-draws: a fit that fails the diagnostics "
                    "gate is kept and counted under fit_problems) and uses each law's default priors "
                    "(no --priors).",
        chains_note=", run one after the other on one core",
        sampler_note="; each worker compiles a law once for all its folds")
    add_seed_option(fit_group, "of the folds and the fits")
    add_observation_options(fit_group)
    fit_group.add_argument("--max-refits", type=int, default=10,
                           help="loo: refit at most this many runs with a bad Pareto k per law (default: 10)")
    add_table_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..compare import CompareSettings, compare_laws
    from ..executors import make_executor
    from ..progress import ProgressBar, wanted

    require_positive(args, "draws", "tune", "chains", "map_starts")
    if args.chains < 2:
        raise UsageError("--chains must be at least 2: the diagnostics (R-hat) compare chains")
    for option, value, folder in (("--out", args.out, False), ("--json", args.json, False),
                                  ("--save-fits", args.save_fits, True), ("--work-dir", args.work_dir, True)):
        if value:
            check_output_path(value, option=option, folder=folder)
    from ..estimator import select_checkpoints

    table = select_checkpoints(load_table_from_args(args), args.checkpoints)
    laws = [name.strip() for name in args.laws.split(",") if name.strip()] if args.laws else None
    settings = CompareSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                               map_starts=args.map_starts, target_accept=args.target_accept,
                               likelihood=args.likelihood, discrepancy=args.discrepancy,
                               discrepancy_scale=args.discrepancy_scale, sampler=args.sampler,
                               max_refits=args.max_refits)
    json_path = args.json or (str(Path(args.out).with_suffix(".json")) if args.out else None)
    if json_path and not args.json:
        check_output_path(json_path, option="--json (from --out)")
    work_dir = args.work_dir or (str(Path(json_path).with_suffix(".parts")) if json_path else None)
    executor = make_executor(jobs=args.jobs, dask=args.dask)
    # --progress: one plain line per fit (for logs); on a terminal: a bar; else silent
    bar = ProgressBar(None, "fits", enabled=wanted(args.quiet) and not args.progress)

    def progress(done, total, task, result):
        bar.set_total(total)
        bar.advance(f"{task.describe()}: {result.status}")

    show = True if args.progress and not args.quiet else (progress if bar.enabled else None)
    with executor, bar:
        result = compare_laws(table, laws, cv=args.cv, settings=settings, executor=executor,
                              save_fits=args.save_fits, progress=show, work_dir=work_dir)
    print(result.format_table())
    result.save(csv_path=args.out, json_path=json_path)
    if work_dir and not args.work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)  # everything it held is in the JSON now
    written = [p for p in (args.out, json_path) if p]
    if written:
        print(f"wrote {' and '.join(written)}")
    return 0
