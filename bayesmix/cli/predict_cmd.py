"""``bayesmix predict``: posterior predictive losses at any mixture and scale."""

from __future__ import annotations

import sys

from .._files import check_output_path, write_text_atomic
from ..errors import UsageError
from ..units import parse_quantity
from .common import budget_lines, load_table_from_args, parse_weights
from .options import add_command, add_input_argument, add_seed_option, add_table_options

DESCRIPTION = """\
Predict per-domain losses from a fitted model: for every row of a run table (--runs) or
for a single point (--mixture with --model-size and --tokens). Adds pred_<d> (posterior
mean of the expected loss), sd_<d>, q05_<d>, q95_<d> (loss a new run would log,
observation noise included), for every trained domain and, where the fitted law predicts
them (capacity_noise_transfer), every evaluation-only domain of the fitted table. A run
table with logged losses is also scored against them (MRE, 90% coverage, and the range of
coverage such a table would show if the fit were right), on stderr. With --explain (and
--mixture), also where each domain's interval width comes from: the fit's parameters, the
law's error at a scale the fit did not see, a new mixture's effect and a new run's noise;
and what the discrepancy adds to the law's own mean there."""


def add_parser(sub):
    p = add_command(sub, "predict", summary="predict losses from a fit at given mixtures and scales",
                    description=DESCRIPTION)
    add_input_argument(p, "fit")
    p.add_argument("--runs", default=None, metavar="RUNS",
                   help="run table with mixtures, model_size and n_tokens (losses optional); "
                        "domains are matched to the fit's by name")
    p.add_argument("--mixture", default=None, metavar="d=W,...", help="a single mixture, e.g. arxiv=0.2,book=0.1,...")
    p.add_argument("--model-size", default=None, help="N for --mixture, e.g. 7B")
    p.add_argument("--tokens", default=None, help="D for --mixture, e.g. 140B")
    p.add_argument("-o", "--out", default=None, metavar="PRED.csv", help="output CSV (default: print)")
    p.add_argument("--explain", action="store_true",
                   help="with --mixture: print the parts of each domain's predictive sd (the uncertainty budget)")
    add_seed_option(p, "of the draws thinned and simulated")
    add_table_options(p)
    p.set_defaults(func=run)
    return p


def mixture_vector(text, domains, eval_domains=()):
    """A full weight vector from 'd=w,...'; unnamed domains get 0; must sum to 1 within 1e-2.

    Raises
    ------
    UsageError
        If a domain is unknown, evaluation-only (``eval_domains``) or given twice, a weight is not a finite non-negative
        number, or the weights do not sum to 1.
    """
    import numpy as np

    given = parse_weights(text, "--mixture")
    evaluated = [d for d in given if d in eval_domains]
    if evaluated:
        raise UsageError(f"--mixture: {', '.join(evaluated)} is evaluation-only, never in a mixture; leave it "
                         f"out (its loss is predicted as pred_{evaluated[0]})")
    unknown = [d for d in given if d not in domains]
    if unknown:
        raise UsageError(f"unknown domains in --mixture: {', '.join(unknown)}; the fit has {', '.join(domains)}")
    w = np.array([given.get(d, 0.0) for d in domains])
    if np.any(w < 0):
        raise UsageError("--mixture weights must be non-negative")
    if abs(w.sum() - 1) > 1e-2:
        raise UsageError(f"--mixture weights sum to {w.sum():.4f}, not 1")
    return w / w.sum()


def score_lines(posterior, table, *, seed: int, summary: dict | None = None) -> str:
    """How the predictions of ``table``'s rows fare against its logged losses
    (:func:`bayesmix.compare.heldout_scores`, given the predictions' ``summary`` where
    there is one), for the terminal."""
    import numpy as np

    from ..compare import heldout_scores

    blocks = heldout_scores(posterior, table, seed=seed, by_size=False, summary=summary).blocks

    def line(name, block):
        low, high = block["coverage90_band"]
        return (f"  {name}: MRE {100 * block['mre_all_cells']:.2f}%, 90% coverage {100 * block['coverage90']:.1f}% "
                f"(a table like this one would show {100 * low:.0f}-{100 * high:.0f}% if the fit were right)")

    lines = [f"scored against the {table.n_rows} rows' logged losses (a test of the fit only where it did not see these runs):",
             line("trained domains", blocks["all_rows"])]
    lines += [line(domain, parts["all_rows"]) for domain, parts in blocks.get("eval_domains", {}).items()
              if np.isfinite(parts["all_rows"]["coverage90"])]  # a domain the table does not log: no score
    return "\n".join(lines)


def run(args) -> int:
    import pandas as pd

    from ..estimator import prediction_frame, summary_frame
    from ..posterior import observed_table
    from .common import check_scale, domain_order, load_posterior

    if args.out:
        check_output_path(args.out)
    posterior = load_posterior(args.fit)
    domains = tuple(posterior.domains)
    if args.runs and args.mixture:
        raise UsageError("give either --runs or --mixture, not both")
    if args.mixture:
        if not args.model_size or not args.tokens:
            raise UsageError("--mixture needs --model-size and --tokens")
        w = mixture_vector(args.mixture, domains, posterior.eval_domains)[None]
        N = parse_quantity(args.model_size, what="model size")
        D = parse_quantity(args.tokens, what="tokens")
        check_scale(posterior, N, D, what="--mixture")
        frame = pd.DataFrame({f"weight_{d}": w[:, j] for j, d in enumerate(domains)})
        frame["model_size"], frame["n_tokens"] = N, D
        out = pd.concat([frame, prediction_frame(posterior, w, [N], [D], seed=args.seed)], axis=1)
        explanation = budget_lines(posterior, w, N, D) if args.explain else None
    elif args.runs:
        if args.explain:
            raise UsageError("--explain explains one prediction: give it with --mixture, --model-size and --tokens")
        explanation = None
        table = load_table_from_args(args, args.runs, require_losses=False)
        # The table in the fit's domain order; the output keeps the user's columns.
        fitted_order = table.with_domain_order(domain_order(table.domains, domains, source=args.runs))
        check_scale(posterior, table.model_size, table.tokens, what=args.runs)
        # One set of predictive draws for the columns and, where the table logs losses,
        # for their scores (the rows as the posterior predicts them: observed_table; an
        # evaluation-only domain the table does not log is predicted, not scored).
        scored = (observed_table(posterior, fitted_order.with_unlogged_evaluation_domains(posterior.eval_domains))
                  if table.has_losses else fitted_order)
        summary = posterior.summarise(scored.weights, scored.model_size, scored.tokens, seed=args.seed,
                                      keep_draws=table.has_losses)
        pred = summary_frame(posterior, summary)
        out = pd.concat([table.to_frame().reset_index(drop=True), pred], axis=1)
        for note in table.notes:
            print(f"note: {note}", file=sys.stderr)
        if table.has_losses:
            print(score_lines(posterior, scored, seed=args.seed, summary=summary), file=sys.stderr)
        left_out = [d for d in table.eval_domains if d not in posterior.target_domains]
        if left_out:
            print(f"note: no pred_ columns for the evaluation-only {', '.join(left_out)}: law "
                  f"'{posterior.law.name}' does not predict domains outside the mixture (refit with "
                  "--law capacity_noise_transfer)", file=sys.stderr)
    else:
        raise UsageError("give --runs FILE or --mixture d=w,... with --model-size and --tokens")
    if args.out:
        write_text_atomic(args.out, out.to_csv(index=False))
        print(f"wrote {len(out)} rows to {args.out}")
    else:
        with pd.option_context("display.max_columns", 12, "display.width", 160):
            print(out.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if explanation:
        print(explanation)
    return 0
