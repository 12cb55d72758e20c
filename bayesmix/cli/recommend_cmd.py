"""`bayesmix recommend`: a risk-aware mixture recommendation from a fitted law."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .common import budget_lines, parse_weights, require_positive, target_decision_from_args
from .options import (add_command, add_decision_options, add_input_argument, add_max_draws_option, add_seed_option,
                      add_target_scale_options)

DESCRIPTION = """\
Recommend the training mixture for a target model size N and token count D from a
fitted law, with the posterior uncertainty of everything reported: the predicted
objective and per-domain losses (mean, sd, 5%/95%), the probability of beating each
baseline mixture (uniform always included) and the expected gain, the expected regret
of the recommendation (its objective minus each posterior draw's own optimum), and the
posterior of the optimal mixture itself (mean and 90% region per domain), which shows
which weights the data pin down and which they do not.

The objective is the plain average of the domains' losses, a weighted average
(--weights) or one domain's loss (--target-domain). The risk measure turns the
posterior of the objective into one number: mean (default), quantile:Q (the loss beaten
with probability Q) or cvar:ALPHA (the mean of the worst 1-ALPHA of the posterior).

Constraints: per-domain --min/--max weights, and data availability: with --available
d=TOKENS and --max-epochs E, the weight obeys h_d * D <= E * TOKENS_d. Constraints that
cannot all hold are refused, naming the ones that conflict (exit status 2).

With --candidates FILE the given mixtures are ranked by the risk measure instead, with
the probability that each one is the best.

With --explain, also where the recommended (or best-ranked) mixture's per-domain
uncertainty at the target comes from: the fit's parameters, the law's error at a scale
the fit did not see, a new mixture's effect and a new run's noise; and what the
discrepancy adds to the law's own mean there (as `bayesmix predict --explain`)."""

EPILOG = """\
mixture files (--baseline FILE, --candidates FILE): a CSV with an optional 'name'
column and one column per domain (<d> or weight_<d>), a JSON {name: {domain: weight}},
or a recommendation JSON written by this command.

examples:
  bayesmix recommend fit.nc --target-model-size 7B --target-tokens 140B --out rec.json
  bayesmix recommend fit.nc --target-model-size 7B --target-tokens 140B --risk cvar:0.9 \\
      --min web=0.3 --max code=0.2 --available books=20B --max-epochs 2
  bayesmix recommend fit.nc --target-model-size 1B --target-tokens 20B --target-domain github \\
      --baseline 'current:web=0.6,code=0.2,books=0.2'
  bayesmix recommend fit.nc --target-model-size 1B --target-tokens 20B --candidates mixes.csv

--model-size and --tokens are the deprecated spellings of --target-model-size and
--target-tokens; they are accepted, with a note, until bayesmix 0.2."""


def add_parser(sub):
    p = add_command(sub, "recommend", summary="recommend a mixture for a target scale, with its uncertainty",
                    description=DESCRIPTION, epilog=EPILOG)
    add_input_argument(p, "fit")
    add_target_scale_options(p, aliases=True)
    add_decision_options(p)
    cmp_ = p.add_argument_group("comparisons")
    cmp_.add_argument("--baseline", action="append", default=[], metavar="NAME:d=W,...|FILE",
                      help="a baseline mixture to compare with (repeatable); uniform is always included")
    cmp_.add_argument("--candidates", metavar="FILE",
                      help="rank the mixtures in FILE instead of optimising")
    run_ = p.add_argument_group("computation")
    add_max_draws_option(run_, 400)
    run_.add_argument("--restarts", type=int, default=4, metavar="R",
                      help="starting points of the optimisation (default 4)")
    add_seed_option(run_, "of the draws thinned and simulated")
    p.add_argument("-o", "--out", metavar="REC.json", help="also write the result as JSON")
    p.add_argument("--explain", action="store_true",
                   help="also print the parts of each domain's predictive sd at the recommended (or best-ranked) "
                        "mixture and target scale (the uncertainty budget)")
    p.set_defaults(func=run)
    return p


def _parse_baselines(values, domains):
    from ..decide import as_mixture, load_mixtures

    out = {}
    for text in values:
        name, sep, spec = text.partition(":")
        if sep and "=" in spec:
            weights = parse_weights(spec, what=f"baseline '{name}'")
            found = {name.strip(): as_mixture(weights, domains, what=f"baseline '{name.strip()}'")}
        elif Path(text).exists():
            found = load_mixtures(text, domains)
        else:
            raise UsageError(f"cannot read --baseline '{text}': write NAME:d=W,... or give a mixture file")
        for key, value in found.items():
            if key in out:
                raise UsageError(f"two baselines are named '{key}'")
            out[key] = value
    return out


def run(args) -> int:
    from ..decide import load_mixtures, rank_candidates, recommend
    from ..uncertainty import budget_refusal

    require_positive(args, "max_draws", "restarts")
    posterior, model_size, tokens, objective, constraints = target_decision_from_args(args)
    refusal = budget_refusal(posterior) if args.explain else None
    if refusal:
        raise UsageError(f"--explain: {refusal}")
    if args.candidates:
        if args.baseline:
            raise UsageError("--baseline compares with an optimised mixture; with --candidates "
                             "put the baselines in the candidates file")
        candidates = load_mixtures(args.candidates, posterior.domains)
        result = rank_candidates(posterior, candidates, model_size, tokens, objective=objective,
                                 risk=args.risk, constraints=constraints, max_draws=args.max_draws)
    else:
        baselines = _parse_baselines(args.baseline, posterior.domains)
        result = recommend(posterior, model_size, tokens, objective=objective, risk=args.risk,
                           constraints=constraints, baselines=baselines, n_restarts=args.restarts,
                           max_draws=args.max_draws, seed=args.seed)
    print(result.format_table())
    if args.out:
        result.to_json(args.out)
        print(f"\nwritten: {args.out}")
    if args.explain:
        print("\n" + _explanation(posterior, result, model_size, tokens))
    return 0


def _explanation(posterior, result, model_size, tokens) -> str:
    """The uncertainty budget (:func:`bayesmix.cli.common.budget_lines`) of the recommended
    mixture, or of the best-ranked candidate, at the target scale."""
    import numpy as np

    from ..decide import Recommendation
    from ..units import format_quantity

    if isinstance(result, Recommendation):
        which, mixture = "the recommended mixture", result.mixture
    else:
        best = int(np.argmin(result.risk_values))
        which, mixture = f"the best-ranked candidate, {result.names[best]},", result.mixtures[best]
    header = f"{which} at {format_quantity(model_size)} parameters and {format_quantity(tokens)} tokens:"
    return header + "\n" + budget_lines(posterior, np.asarray(mixture, dtype=float)[None], model_size, tokens)
