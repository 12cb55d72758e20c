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
  voi            (default) value of information: the expected reduction of the posterior
                 expected regret of the recommended mixture at the target once the run's
                 losses are observed. Estimated without refitting: outcomes are simulated
                 from the posterior, the draws reweighted by each outcome's likelihood
                 (importance sampling) and the decision re-optimised. The effective sample
                 size of the weights is reported; a warning says when it is too low.
  variance       how much the posterior draws disagree about the run's losses.
  random         a random order (baseline).
  space-filling  distance to the nearest existing (--runs) or already picked run.

Candidates come from a file (--candidates) or are generated: every size in --sizes
paired with every count in --tokens (or D = --tokens-per-param x N), each with
--n-mixtures mixtures spread over the simplex (Sobol points) within the --min/--max
constraints. Cost is 6 N D FLOPs unless the file has a 'cost' column.

With --batch Q, runs are picked one at a time; after each pick the posterior is
conditioned on the pick's expected outcome so the next pick adds something new."""

EPILOG = """\
candidate file: CSV with an optional 'name', one column per domain (<d> or weight_<d>),
'model_size', 'tokens' (sizes like 122M are read) and an optional 'cost' (FLOPs).

output CSV columns: rank, selected, batch_order, name, model_size, tokens, weight_<d>...,
cost, criterion, score, score_per_cost, batch_score, voi_se, ess_min, ess_mean, teaches, warning.

examples:
  bayesmix next fit.nc --target-model-size 7B --target-tokens 140B \\
      --sizes 122M,310M --tokens-per-param 20 --n-mixtures 32 --batch 4 --out next.csv
  bayesmix next fit.nc --target-model-size 7B --target-tokens 140B --candidates cands.csv --out next.csv"""


def add_parser(sub):
    p = add_command(sub, "next", summary="choose the next proxy runs to train (value of information)",
                    description=DESCRIPTION, epilog=EPILOG)
    add_input_argument(p, "fit")
    add_target_scale_options(p)
    add_decision_options(p)
    add_candidate_options(p)
    add_acquisition_options(p, seed="of the draws thinned and simulated")
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

    require_positive(args, "batch", "max_draws")
    posterior, target_n, target_d, objective, constraints = target_decision_from_args(args)
    candidates = candidates_from_args(args, posterior.domains, constraints)
    check_scale(posterior, candidates.model_size, candidates.tokens, what="candidates")
    existing = existing_runs(args.runs, posterior.domains) if args.runs else None
    result = select_next(posterior, candidates, target_n, target_d, criterion=args.criterion, batch=args.batch,
                         objective=objective, constraints=constraints, risk=args.risk, existing=existing,
                         max_draws=args.max_draws, n_outcomes=args.n_outcomes, seed=args.seed)
    print(result.format_table())
    if args.out:
        result.to_csv(args.out)
        print(f"\nwritten: {args.out}")
    return 0
