"""``bayesmix fit``: fit a law to a run table by NUTS and save the posterior."""

from __future__ import annotations

import sys
from pathlib import Path

from .._files import check_output_path
from ..errors import FitRejectedError
from ..extension import CHECKPOINTS, DEFAULT_EXTEND
from .common import DISCREPANCY_MODES, LAW_NAMES, LIKELIHOODS, SAMPLERS, add_table_options, load_table_from_args, show_progress


def add_parser(sub):
    p = sub.add_parser(
        "fit", help="fit a scaling law to a run table by NUTS",
        description="Fit a registered scaling law to a run table with NUTS, print the sampler "
                    "diagnostics, and save the posterior as an ArviZ tree (NetCDF).",
    )
    p.add_argument("runs", metavar="RUNS", help="run table: a .csv, .tsv or .parquet file")
    p.add_argument("--law", default="capacity_noise", choices=LAW_NAMES,
                   help="law to fit (default: capacity_noise)")
    p.add_argument("-o", "--out", required=True, metavar="FIT.nc",
                   help="output file (.nc); checked before sampling starts")
    p.add_argument("--draws", type=int, default=1000, help="draws per chain after tuning (default 1000)")
    p.add_argument("--tune", type=int, default=1000, help="tuning iterations per chain (default 1000)")
    p.add_argument("--extend-draws", type=float, default=DEFAULT_EXTEND, metavar="X",
                   help=f"nutpie: while the chains only mix slowly (R-hat too high, no divergence, no "
                        f"separated chains), run on to at most X times --draws, stopping at the first of "
                        f"{', '.join(f'{m:g}x' for m in CHECKPOINTS)} where they agree "
                        f"(default {DEFAULT_EXTEND:g}; 1: exactly --draws)")
    p.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sampler", default="nutpie", choices=SAMPLERS,
                   help="NUTS backend (default nutpie: low-rank mass matrix, 10-20x fewer gradients per "
                        "draw than pymc's diagonal one on these laws; pymc compiles faster)")
    p.add_argument("--target-accept", type=float, default=None,
                   help="NUTS target acceptance (default: the law's, 0.99 for the capacity laws, 0.95 otherwise)")
    p.add_argument("--likelihood", default="normal", choices=LIKELIHOODS,
                   help="observation model on log-loss (student_t for outliers)")
    p.add_argument("--discrepancy", default="auto", choices=DISCREPANCY_MODES,
                   help="model the law's own error over scale and mixture effects shared across "
                        "scales (auto: wherever the table has more than one scale; off: the "
                        "law-only model of the paper)")
    p.add_argument("--checkpoints", default="final", choices=("final", "all"),
                   help="use each run's final checkpoint only (default) or all checkpoints "
                        "with a per-run offset")
    p.add_argument("--priors", default=None, metavar="FILE",
                   help="TOML or JSON file overriding default priors, one table per parameter")
    p.add_argument("--allow-warnings", action="store_true",
                   help="keep a fit that fails the diagnostics gate (R-hat > 1.01 or divergences)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_table_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..estimator import select_checkpoints
    from ..gate import format_diagnostics
    from ..inference import FitSettings, fit_law
    from ..laws import get_law
    from ..priors import load_prior_file

    out = check_output_path(args.out)
    check_output_path(rejected_path(out))
    table = load_table_from_args(args)
    for note in table.notes:
        print(f"note: {note}", file=sys.stderr)
    rows = select_checkpoints(table, args.checkpoints)
    priors = load_prior_file(args.priors) if args.priors else None
    law = get_law(args.law)
    settings = FitSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                           extend_draws=args.extend_draws,
                           sampler=args.sampler, target_accept=args.target_accept,
                           likelihood=args.likelihood, discrepancy=args.discrepancy)
    print(f"fitting {law.name} to {rows.n_rows} rows ({rows.n_runs} runs, {len(rows.domains)} domains) "
          f"from {table.source}", file=sys.stderr)
    fit = fit_law(rows, law, priors=priors, settings=settings, progressbar=show_progress(args),
                  allow_warnings=True)
    fit.attrs["settings"]["checkpoints"] = args.checkpoints
    for warning in fit.attrs.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print("diagnostics:")
    print(format_diagnostics(fit.diagnostics))
    from ..gate import check_gate

    try:
        problems = check_gate(fit.diagnostics, allow_warnings=args.allow_warnings)
    except FitRejectedError as err:
        rejected = rejected_path(out)
        fit.attrs["rejected"] = True
        fit.save(rejected)
        raise FitRejectedError(f"{err}\n  the draws were kept in {rejected} for inspection") from None
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    fit.save(out)
    print(f"saved {out}")
    return 0


def rejected_path(out: Path) -> Path:
    """Where the draws of a fit refused by the diagnostics gate are kept."""
    return out.with_name(out.stem + ".rejected" + (out.suffix or ".nc"))
