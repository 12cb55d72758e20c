"""``bayesmix fit``: fit a law to a run table by NUTS and save the posterior."""

from __future__ import annotations

import sys
from pathlib import Path

from .._files import check_output_path
from ..errors import FitRejectedError
from .common import load_table_from_args, show_progress
from .options import (add_checkpoints_option, add_command, add_input_argument, add_law_option,
                      add_observation_options, add_quiet_option, add_sampling_options, add_seed_option,
                      add_table_options)

DESCRIPTION = """\
Fit a registered scaling law to a run table with NUTS, print the sampler diagnostics,
and save the posterior as an ArviZ tree (NetCDF)."""


def add_parser(sub):
    p = add_command(sub, "fit", summary="fit a scaling law to a run table by NUTS", description=DESCRIPTION)
    add_input_argument(p, "runs")
    add_law_option(p)
    p.add_argument("-o", "--out", required=True, metavar="FIT.nc",
                   help="output file (.nc); checked before sampling starts")
    sampling = add_sampling_options(p, map_starts=True, extend_draws=True)
    add_seed_option(sampling, "of the sampler and its starting points")
    sampling.add_argument("--max-tree-depth", type=int, default=None, metavar="DEPTH",
                          help="nutpie: most leapfrog steps of one draw, 2**DEPTH - 1 (default: the law's; 7 "
                               "for capacity and capacity_noise, 10 for the others); raise it where the diagnostics "
                               "show many trees cut and a low ESS")
    model = p.add_argument_group("model")
    add_observation_options(model)
    add_checkpoints_option(model)
    model.add_argument("--priors", default=None, metavar="FILE",
                       help="TOML or JSON file overriding default priors, one table per parameter")
    p.add_argument("--allow-warnings", action="store_true",
                   help="keep a fit that fails the diagnostics gate (R-hat > 1.01 or divergences)")
    add_quiet_option(p)
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
                           extend_draws=args.extend_draws, map_starts=args.map_starts,
                           sampler=args.sampler, target_accept=args.target_accept,
                           likelihood=args.likelihood, discrepancy=args.discrepancy,
                           discrepancy_scale=args.discrepancy_scale, max_tree_depth=args.max_tree_depth)
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
