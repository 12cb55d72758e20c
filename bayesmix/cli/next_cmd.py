"""`bayesmix next`: which proxy runs to train next, ranked by value for the target decision."""

from __future__ import annotations

import argparse

from .._files import check_output_path
from ..errors import UsageError
from ..units import parse_quantity
from .common import (add_target_scale_options, check_scale, domain_order, load_posterior, parse_available,
                     parse_quantity_list, parse_weights)

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
    p = sub.add_parser("next", help="choose the next proxy runs to train (value of information)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fit", metavar="FIT", help="fitted law: a .nc file written by 'bayesmix fit' or its folder")
    add_target_options(p)
    add_candidate_options(p)
    add_acquisition_options(p)
    p.add_argument("--runs", metavar="RUNS", help="run table of the existing runs (for --criterion space-filling)")
    p.add_argument("-o", "--out", metavar="NEXT.csv", help="write the ranked candidates as CSV")
    p.set_defaults(func=run)
    return p


def add_target_options(p):
    add_target_scale_options(p)
    obj = p.add_argument_group("objective and constraints (as in 'bayesmix recommend')")
    obj.add_argument("--weights", metavar="d=W,...", help="weighted average of domain losses")
    obj.add_argument("--target-domain", metavar="DOMAIN", help="minimise this domain's loss only")
    obj.add_argument("--risk", default="mean", metavar="RISK", help="mean, quantile:Q or cvar:ALPHA")
    obj.add_argument("--min", metavar="d=W,...", help="lower bounds on domain weights")
    obj.add_argument("--max", metavar="d=W,...", help="upper bounds on domain weights")
    obj.add_argument("--available", metavar="d=TOKENS,...", help="tokens available per domain")
    obj.add_argument("--max-epochs", type=float, metavar="E", help="passes allowed over the available data")


def add_candidate_options(p, *, with_file: bool = True):
    g = p.add_argument_group("candidates")
    if with_file:
        g.add_argument("--candidates", metavar="FILE", help="candidate runs (CSV)")
    g.add_argument("--sizes", metavar="N[,N...]", help="model sizes of generated candidates, e.g. 122M,310M")
    g.add_argument("--tokens", metavar="D[,D...]", help="token counts of generated candidates")
    g.add_argument("--tokens-per-param", type=float, metavar="R", help="D = R x N (default 20)")
    g.add_argument("--n-mixtures", type=int, default=16, metavar="M", help="mixtures per scale (default 16)")


def add_acquisition_options(p):
    g = p.add_argument_group("acquisition")
    g.add_argument("--criterion", default="voi", choices=("voi", "variance", "random", "space-filling"),
                   help="how candidates are ranked (default voi; see above)")
    g.add_argument("--batch", type=int, default=1, metavar="Q", help="runs to pick (default 1)")
    g.add_argument("--n-outcomes", type=int, default=32, metavar="J",
                   help="simulated outcomes per candidate (default 32)")
    g.add_argument("--max-draws", type=int, default=200, metavar="S", help="posterior draws used (default 200)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the draws thinned and simulated (default 0); the same seed gives the same output")


def decision_from_args(args):
    """(objective, constraints) from the shared options."""
    from ..decide import Constraints, Objective

    objective = Objective(weights=parse_weights(args.weights, what="--weights"), target_domain=args.target_domain)
    constraints = Constraints(min=parse_weights(args.min, what="--min"), max=parse_weights(args.max, what="--max"),
                              available=parse_available(args.available), max_epochs=args.max_epochs)
    return objective, constraints


def candidates_from_args(args, domains, constraints):
    from ..acquire import generate_candidates, load_candidates

    if getattr(args, "candidates", None):
        if args.sizes or args.tokens or args.tokens_per_param:
            raise UsageError("give candidates in a file (--candidates) or generate them (--sizes ...), not both")
        return load_candidates(args.candidates, domains)
    if not args.sizes:
        raise UsageError("no candidates: give --candidates FILE or --sizes N[,N...] "
                         "with --tokens D[,D...] or --tokens-per-param R")
    if args.n_mixtures < 1:
        raise UsageError("--n-mixtures must be at least 1")
    tokens = parse_quantity_list(args.tokens, "tokens") if args.tokens else None
    return generate_candidates(domains, args.sizes.split(","), tokens=tokens, tokens_per_param=args.tokens_per_param,
                               n_mixtures=args.n_mixtures, constraints=constraints, seed=args.seed)


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

    if args.out:
        check_output_path(args.out)
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    if args.max_draws < 1:
        raise UsageError("--max-draws must be at least 1")
    target_n = parse_quantity(args.target_model_size, what="--target-model-size")
    target_d = parse_quantity(args.target_tokens, what="--target-tokens")
    objective, constraints = decision_from_args(args)
    posterior = load_posterior(args.fit)
    check_scale(posterior, target_n, target_d, what="target")
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
