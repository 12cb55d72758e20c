"""`bayesmix next`: which proxy runs to train next, ranked by value for the target decision."""

from __future__ import annotations

from .common import candidates_from_args, check_scale, domain_order, require_positive, target_decision_from_args
from .options import (add_acquisition_options, add_candidate_options, add_command, add_decision_options,
                      add_input_argument, add_target_scale_options)

DESCRIPTION = """\
Rank candidate proxy runs (a mixture, a model size N and a token count D each) by what
training them would do for the mixture decision at the target scale, per unit of
compute, and pick the next batch.

Criteria (--criterion):
  voi            (default) value of information: how much the decision's risk measure
                 (--risk; for the mean, the posterior expected regret of the recommended
                 mixture) is expected to fall once the run's losses are seen, the decision
                 then re-chosen under the same risk measure. Outcomes are simulated from
                 the posterior and the posterior updated without refitting, over a finite
                 set of decisions computed once (the recommendation, each draw's optimum
                 and the points half way between). --voi-method gaussian (default): a
                 linear-Gaussian update fitted on one half of the draws and judged by the
                 other, so an outcome never pins the posterior to one draw and a run that
                 teaches nothing scores 0 (the 'explained' column: the share of the
                 decision's uncertainty the run would explain). --voi-method importance:
                 reweighting of the draws, exact when the posterior is its set of draws,
                 but with many domains and little noise every informative run then scores
                 the value of perfect information (its effective sample size is shown).
  variance       how much the posterior draws disagree about the run's losses.
  random         a random order (baseline).
  space-filling  distance to the nearest existing (--runs) or already picked run.

Candidates come from a file (--candidates) or are generated: every size in --sizes
paired with every count in --tokens (or D = --tokens-per-param x N), each with
--n-mixtures mixtures spread over the simplex (Sobol points) within the --min/--max
constraints. Cost is 6 N D FLOPs plus --fixed-cost, unless the file has a 'cost' column.

With --batch Q, runs are picked one at a time; after each pick the posterior is
conditioned on a fantasised outcome of the pick (a draw of its predictive) so the next
pick adds something new. With --budget FLOPS, runs are picked by value per FLOP among
those that still fit, while one is worth something, and the single most valuable run
that fits replaces the batch when it is worth more (at most --batch runs, if given)."""

EPILOG = """\
candidate file: CSV with an optional 'name', one column per domain (<d> or weight_<d>),
'model_size', 'tokens' (sizes like 122M are read) and an optional 'cost' (FLOPs, the
run's whole cost).

output CSV columns: rank, selected, batch_order, name, model_size, tokens, weight_<d>...,
cost, criterion, score, score_per_cost, batch_score, voi_se, explained, ess_min, ess_mean,
teaches, warning.

examples:
  bayesmix next fit.nc --target-model-size 7B --target-tokens 140B \\
      --sizes 122M,310M --tokens-per-param 20 --n-mixtures 32 --batch 4 --out next.csv
  bayesmix next fit.nc --target-model-size 7B --target-tokens 140B \\
      --sizes 122M,310M --n-mixtures 32 --fixed-cost 5e17 --budget 2e19 --out next.csv
  bayesmix next fit.nc --target-model-size 7B --target-tokens 140B --candidates cands.csv --out next.csv"""


def add_parser(sub):
    p = add_command(sub, "next", summary="choose the next proxy runs to train (value of information)",
                    description=DESCRIPTION, epilog=EPILOG)
    add_input_argument(p, "fit")
    add_target_scale_options(p)
    add_decision_options(p)
    add_candidate_options(p)
    add_acquisition_options(p, seed="of the draws thinned and simulated",
                            batch_help="runs to pick (default 1, or as many as --budget allows)")
    p.add_argument("--budget", metavar="FLOPS",
                   help="compute the picked runs may spend together, e.g. 2e19 (instead of a fixed --batch)")
    p.add_argument("--runs", metavar="RUNS", help="run table of the existing runs (for --criterion space-filling)")
    p.add_argument("-o", "--out", metavar="NEXT.csv", help="write the ranked candidates as CSV")
    p.set_defaults(func=run)
    return p


def existing_runs(path, domains):
    """The runs of a table as candidates over the fit's ``domains``, matched by name."""
    from ..acquire import CandidateSet, table_to_candidates
    from ..data import load_runs

    runs = table_to_candidates(load_runs(path, require_losses=False))
    order = domain_order(runs.domains, domains, source=str(path))
    return CandidateSet.from_arrays(tuple(domains), runs.mixtures[:, order], runs.model_size, runs.tokens,
                                    names=list(runs.names))


def run(args) -> int:
    from ..acquire import select_next
    from ..units import parse_quantity

    require_positive(args, "max_draws", *(["batch"] if args.batch is not None else []))
    budget = parse_quantity(args.budget, what="--budget") if args.budget else None
    posterior, target_n, target_d, objective, constraints = target_decision_from_args(args)
    candidates = candidates_from_args(args, posterior.domains, constraints)
    check_scale(posterior, candidates.model_size, candidates.tokens, what="candidates")
    existing = existing_runs(args.runs, posterior.domains) if args.runs else None
    result = select_next(posterior, candidates, target_n, target_d, criterion=args.criterion, batch=args.batch,
                         budget=budget, objective=objective, constraints=constraints, risk=args.risk,
                         existing=existing, max_draws=args.max_draws, n_outcomes=args.n_outcomes,
                         method=args.voi_method, seed=args.seed)
    print(result.format_table())
    print(f"\n{result.seconds:.1f} s for {len(candidates)} candidates "
          f"({1e3 * result.seconds / len(candidates):.0f} ms each)")
    if args.out:
        result.to_csv(args.out)
        print(f"\nwritten: {args.out}")
    return 0
