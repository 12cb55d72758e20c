"""`bayesmix campaign`: a fit -> next -> observe -> refit loop on the simulator or a pool of runs."""

from __future__ import annotations

from .._files import check_output_path, write_text_atomic
from ..errors import UsageError
from ..fit_settings import FitSettings
from ..units import parse_quantity
from .options import (add_acquisition_options, add_candidate_options, add_command, add_decision_options,
                      add_law_option, add_quiet_option, add_sampling_options, add_target_scale_options)

#: The counts of each refit by NUTS (:class:`bayesmix.acquire.NutsRefit`): a campaign
#: refits at every step, warm-started at the previous posterior.
REFIT_DEFAULTS = FitSettings(draws=200, tune=200, chains=2)

DESCRIPTION = """\
Run an acquisition campaign: fit the law, choose the next runs (bayesmix next), observe
their losses, refit (NUTS warm-started at the previous posterior means), and repeat until
the budget (--budget-steps steps, or --budget FLOPs of acquired runs) is spent. The log
records the compute spent and the regret at the target after each step.

Observations come from the simulator (--simulate, with --law and --seed: the true regret
of each recommendation is logged) or from a pool of finished runs (--pool RUNS.csv: the
campaign starts from --initial-runs random runs of the pool and may only pick runs of the
pool; only the posterior expected regret is logged).

--refit reweight replaces NUTS by the exact importance reweighting of the draws of
--base-fit (seconds instead of minutes; only sound while the effective sample size,
logged as 'ess', stays large). --refit adaptive fits by NUTS once, then reweights those
draws by the new runs and refits by NUTS (warm-started, same reference units) only when
the effective sample size falls below --ess-fraction of the draws."""

EPILOG = """\
writes DIR/campaign.csv (one row per step: step, n_runs, compute, expected_regret,
true_regret, true_relative_regret, ess, weight_<d>..., chosen, seconds) and
DIR/runs.csv (every run of the campaign).

examples:
  bayesmix campaign --simulate --law capacity_noise --seed 1 --target-model-size 3B \\
      --target-tokens 60B --sizes 50M,100M --n-mixtures 8 --budget-steps 5 --out camp/
  bayesmix campaign --pool runs.csv --target-model-size 1B --target-tokens 20B \\
      --budget 1e20 --out camp/"""


def add_parser(sub):
    p = add_command(sub, "campaign", summary="run a fit -> next -> observe -> refit loop",
                    description=DESCRIPTION, epilog=EPILOG)
    src = p.add_argument_group("observations")
    src.add_argument("--simulate", action="store_true", help="observe runs from the simulator")
    add_law_option(src, what="the simulator's true law")
    src.add_argument("--domains", default="web,code,books,science", metavar="d,...",
                     help="simulated domains (default web,code,books,science)")
    src.add_argument("--initial-sizes", default="50M,100M", metavar="N,...",
                     help="model sizes of the simulated initial runs (default 50M,100M)")
    src.add_argument("--initial-mixtures", type=int, default=6, metavar="M",
                     help="mixtures of the simulated initial runs (default 6)")
    src.add_argument("--pool", metavar="RUNS.csv", help="replay runs from this table")
    src.add_argument("--initial-runs", type=int, default=8, metavar="R",
                     help="random pool runs the campaign starts from (default 8)")
    add_target_scale_options(p)
    add_decision_options(p)
    add_candidate_options(p, with_file=False)
    add_acquisition_options(p, seed="of the simulator, the initial pool runs, the refits and the acquisition",
                            batch_help="runs to pick per step (default 1)")
    b = p.add_argument_group("budget and refit")
    b.add_argument("--budget-steps", type=int, metavar="S", help="acquisition steps")
    b.add_argument("--budget", metavar="FLOPS", help="compute of acquired runs, e.g. 1e20")
    b.add_argument("--refit", default="nuts", choices=("nuts", "reweight", "adaptive"),
                   help="nuts: NUTS every step; reweight: reweight --base-fit's draws; adaptive: one NUTS fit, "
                        "then reweight, refitting by NUTS when the ESS falls below --ess-fraction")
    b.add_argument("--ess-fraction", type=float, default=0.2,
                   help="--refit adaptive: refit below this ESS / draws (default 0.2)")
    b.add_argument("--base-fit", metavar="FIT.nc", help="draws reweighted by --refit reweight")
    add_law_option(b, flag="--fit-law", default=None, what="law fitted by NUTS", default_note="--law")
    add_sampling_options(
        p, defaults=REFIT_DEFAULTS, title="sampling of each NUTS refit", target_accept=False,
        description="Refits use the default observation model (normal likelihood, discrepancy auto), "
                    "each law's target acceptance and its default priors; --refit reweight and adaptive "
                    "weigh draws by a normal likelihood with a run offset. So --likelihood, "
                    "--discrepancy, --target-accept and --priors are not offered.")
    add_quiet_option(p)
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for campaign.csv and runs.csv")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import numpy as np

    from ..acquire import (AdaptiveRefit, NutsRefit, PoolObserver, ReweightRefit, SimulatorObserver, run_campaign,
                           table_to_candidates)
    from ..data import load_runs
    from ..simulate import default_truth, simulate_runs
    from ..progress import ProgressBar, wanted
    from .common import (candidates_from_args, check_scale, decision_from_args, fixed_cost_from_args, load_fit,
                         require_positive, target_scale_from_args)

    out = check_output_path(args.out, folder=True)
    if bool(args.simulate) == bool(args.pool):
        raise UsageError("give exactly one source of observations: --simulate or --pool RUNS.csv")
    if args.budget_steps is None and args.budget is None:
        raise UsageError("give a budget: --budget-steps S or --budget FLOPS")
    if args.budget_steps is not None and args.budget_steps < 1:
        raise UsageError("--budget-steps must be at least 1")
    require_positive(args, "max_draws", *(["batch"] if args.batch is not None else []))
    budget = parse_quantity(args.budget, what="--budget") if args.budget else None
    check_scale(None, *target_scale_from_args(args), what="target")
    objective, constraints = decision_from_args(args)
    truth = None
    if args.simulate:
        domains = tuple(d.strip() for d in args.domains.split(",") if d.strip())
        truth = default_truth(args.law, domains, seed=args.seed)
        sizes = [parse_quantity(s, what="--initial-sizes") for s in args.initial_sizes.split(",")]
        table, _ = simulate_runs(truth, n_mixtures=args.initial_mixtures, model_sizes=sizes, seed=args.seed)
        observe = SimulatorObserver(truth, seed=args.seed)
        candidates = candidates_from_args(args, domains, constraints)
    else:
        # one row per run: the reweighting treats each new row as an independent run, and
        # fits use final checkpoints by default (intermediate ones have not finished their
        # learning-rate decay), so the pool reveals each run's final checkpoint only
        pool = load_runs(args.pool).final_checkpoints()
        ids = np.unique(np.asarray(pool.run_ids, dtype=str))
        if args.initial_runs < 1 or args.initial_runs >= len(ids):
            raise UsageError(f"--initial-runs must be between 1 and {len(ids) - 1} (the pool has {len(ids)} runs)")
        start = np.random.default_rng(args.seed).choice(ids, size=args.initial_runs, replace=False)
        in_start = np.isin(np.asarray(pool.run_ids, dtype=str), start)
        table = pool.select(in_start)
        rest = pool.select(~in_start)
        observe = PoolObserver(rest)
        candidates = table_to_candidates(rest, fixed_cost=fixed_cost_from_args(args))
    if args.refit == "reweight":
        if not args.base_fit:
            raise UsageError("--refit reweight needs --base-fit FIT.nc (the draws to reweight)")
        refit = ReweightRefit(load_fit(args.base_fit).posterior(max_draws=None))
    else:
        refit = NutsRefit(args.fit_law or args.law, draws=args.draws, tune=args.tune, chains=args.chains,
                          seed=args.seed, sampler=args.sampler)
        if args.refit == "adaptive":
            if not 0 < args.ess_fraction < 1:
                raise UsageError(f"--ess-fraction must be between 0 and 1, got {args.ess_fraction}")
            refit = AdaptiveRefit(refit, ess_fraction=args.ess_fraction)

    bar = ProgressBar(args.budget_steps + 1 if args.budget_steps is not None else None, "campaign steps",
                      enabled=wanted(args.quiet))

    def show(row):
        true = f", true regret {row['true_regret']:.4g}" if "true_regret" in row else ""
        print(f"step {row['step']}: {row['n_runs']} runs, compute {row['compute']:.3g} FLOPs, "
              f"expected regret {row['expected_regret']:.4g}{true}; next: {row['chosen'] or '-'}", flush=True)
        bar.advance(f"step {row['step']}: {row['seconds']:.0f} s")

    with bar:
        result = run_campaign(table, args.target_model_size, args.target_tokens, refit=refit, observe=observe,
                              candidates=candidates, criterion=args.criterion, batch=args.batch or 1,
                              budget_steps=args.budget_steps, budget_flops=budget, truth=truth,
                              objective=objective, constraints=constraints, risk=args.risk,
                              max_draws=args.max_draws, n_outcomes=args.n_outcomes, method=args.voi_method,
                              seed=args.seed, callback=show)
    write_text_atomic(out / "campaign.csv", result.to_frame().to_csv(index=False))
    write_text_atomic(out / "runs.csv", result.table.to_frame().to_csv(index=False))
    print(f"written: {out / 'campaign.csv'}, {out / 'runs.csv'}")
    return 0
