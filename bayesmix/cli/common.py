"""What several subcommands do with their options: parse them, load the inputs they name.

The options themselves are declared in :mod:`bayesmix.cli.options`."""

from __future__ import annotations

import math
import sys
from typing import NamedTuple

from .._files import check_output_path
from ..errors import BayesmixError, NotAvailableError, UsageError
from ..units import check_scale_bounds, format_number, format_quantity, parse_quantity

#: A scale more than this factor beyond the fitted model sizes or token counts is an
#: extrapolation the data say little about; it is done, with a warning.
EXTRAPOLATION_FACTOR = 100.0


def parse_available(text):
    """Parse ``--available 'books=20B,arxiv=5B'`` into ``{domain: tokens}``."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"cannot read --available item '{item}': write domain=TOKENS, e.g. books=20B")
        if name.strip() in out:
            raise UsageError(f"--available: domain '{name.strip()}' given twice")
        out[name.strip()] = parse_quantity(value.strip(), what=f"available tokens of '{name.strip()}'")
    return out


def parse_mapping(text: str | None) -> dict[str, tuple[str, str | None]] | None:
    """Parse ``'d=WCOL:LCOL,...'`` into ``{d: (WCOL, LCOL)}``; ``d=:LCOL`` is evaluation-only."""
    if not text:
        return None
    mapping = {}
    for item in text.split(","):
        name, sep, cols = item.partition("=")
        wcol, sep2, lcol = cols.partition(":")
        if not sep or not sep2 or not name.strip():
            raise UsageError(f"cannot read domain mapping item '{item}': write domain=WEIGHT_COL:LOSS_COL")
        mapping[name.strip()] = (wcol.strip() or None, lcol.strip() or None)
    return mapping


def parse_quantity_list(text: str | None, what: str) -> list[float] | None:
    if not text:
        return None
    return [parse_quantity(t, what=what) for t in text.split(",") if t.strip()]


def parse_weights(text: str | None, what: str = "weights") -> dict[str, float] | None:
    """Parse ``'arxiv=0.2,book=0.1'`` into a dict.

    Raises
    ------
    UsageError
        If an item is not ``name=number``, a value is not finite, or a name is given twice.
    """
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"cannot read {what} item '{item}': write name=value,name=value")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"cannot read {what} item '{item}': '{value}' is not a number") from None
        if not math.isfinite(number):
            raise UsageError(f"{what}: the value of '{name}' is {format_number(number)}, not a finite number")
        if name in out:
            raise UsageError(f"{what}: domain '{name}' given twice")
        out[name] = number
    return out


def require_positive(args, *names: str) -> None:
    """Refuse count options below 1.

    Parameters
    ----------
    args : argparse.Namespace
    *names : str
        Attributes of ``args``, e.g. ``"max_draws"`` for ``--max-draws``.

    Raises
    ------
    UsageError
        Naming the first option whose value is below 1.
    """
    for name in names:
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")


def target_scale_from_args(args) -> tuple[float | None, float | None]:
    """``(N*, D*)`` from ``--target-model-size`` and ``--target-tokens``; None for one left out.

    Raises
    ------
    UsageError
        If a value cannot be read as a quantity.
    """
    return tuple(parse_quantity(value, what=option) if value else None
                 for value, option in ((args.target_model_size, "--target-model-size"),
                                       (args.target_tokens, "--target-tokens")))


def decision_from_args(args):
    """The objective and constraints of a mixture decision from the options of
    :func:`bayesmix.cli.options.add_decision_options`.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    (Objective, Constraints)

    Raises
    ------
    UsageError
        If a weight, bound or token count cannot be read.
    """
    from ..decide import Constraints, Objective

    objective = Objective(weights=parse_weights(args.weights, what="--weights"), target_domain=args.target_domain)
    constraints = Constraints(min=parse_weights(args.min, what="--min"), max=parse_weights(args.max, what="--max"),
                              available=parse_available(args.available), max_epochs=args.max_epochs)
    return objective, constraints


class TargetDecision(NamedTuple):
    """What a decision at a target scale starts from (see :func:`target_decision_from_args`)."""

    posterior: object
    model_size: float
    tokens: float
    objective: object
    constraints: object


def target_decision_from_args(args) -> TargetDecision:
    """The fit, target scale, objective and constraints of ``recommend`` and ``next``.

    Every option is read, and ``--out`` checked, before the fit is loaded, so that a
    mistake fails at once; the target is then checked against the fitted scales.

    Parameters
    ----------
    args : argparse.Namespace
        With ``fit``, ``out``, the options of
        :func:`bayesmix.cli.options.add_target_scale_options` and of
        :func:`bayesmix.cli.options.add_decision_options`.

    Returns
    -------
    TargetDecision

    Raises
    ------
    UsageError
        If an option cannot be read, ``--out`` cannot be written, the fit cannot be
        loaded, or the target scale is impossible.
    """
    if args.out:
        check_output_path(args.out)
    model_size, tokens = target_scale_from_args(args)
    objective, constraints = decision_from_args(args)
    posterior = load_posterior(args.fit)
    check_scale(posterior, model_size, tokens, what="target")
    return TargetDecision(posterior, model_size, tokens, objective, constraints)


def candidates_from_args(args, domains, constraints):
    """Candidate proxy runs from the options of :func:`bayesmix.cli.options.add_candidate_options`.

    Parameters
    ----------
    args : argparse.Namespace
    domains : sequence of str
        The fit's domains, which a candidate file's columns are matched to by name.
    constraints : Constraints
        Generated mixtures obey them.

    Returns
    -------
    CandidateSet
        Costing ``6 N D`` plus ``--fixed-cost`` FLOPs each, unless a file gives costs.

    Raises
    ------
    UsageError
        If candidates are given both ways or not at all, or ``--n-mixtures`` is below 1.
    """
    from ..acquire import generate_candidates, load_candidates

    fixed_cost = fixed_cost_from_args(args)
    if getattr(args, "candidates", None):
        if args.sizes or args.tokens or args.tokens_per_param:
            raise UsageError("give candidates in a file (--candidates) or generate them (--sizes ...), not both")
        return load_candidates(args.candidates, domains, fixed_cost=fixed_cost)
    if not args.sizes:
        raise UsageError("no candidates: give --candidates FILE or --sizes N[,N...] "
                         "with --tokens D[,D...] or --tokens-per-param R")
    if args.n_mixtures < 1:
        raise UsageError("--n-mixtures must be at least 1")
    tokens = parse_quantity_list(args.tokens, "tokens") if args.tokens else None
    return generate_candidates(domains, args.sizes.split(","), tokens=tokens, tokens_per_param=args.tokens_per_param,
                               n_mixtures=args.n_mixtures, constraints=constraints, seed=args.seed,
                               fixed_cost=fixed_cost)


def fixed_cost_from_args(args) -> float:
    """The ``--fixed-cost`` of every candidate run in FLOPs (0 when not given)."""
    text = getattr(args, "fixed_cost", None)
    return 0.0 if text is None else parse_quantity(text, what="--fixed-cost")


def load_table_from_args(args, path=None, *, require_losses=True):
    """Load and filter the run table named on the command line."""
    from ..data import load_runs

    table = load_runs(
        path or args.runs,
        mapping=parse_mapping(getattr(args, "domain_map", None)),
        model_size_column=args.model_size_column,
        tokens_column=args.tokens_column,
        run_id_column=args.run_id_column,
        require_losses=require_losses,
    )
    sizes = parse_quantity_list(getattr(args, "filter_model_size", None), "model size")
    tokens = parse_quantity_list(getattr(args, "filter_tokens", None), "tokens")
    if sizes or tokens:
        table = table.filter_scale(model_size=sizes, tokens=tokens)
    return table


def not_available(name: str, issue: str):
    def run(args):
        raise NotAvailableError(f"'{name}' is not available yet ({issue}).")

    return run


def show_progress(args) -> bool:
    """Progress bars only on a terminal and without --quiet."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def load_fit(path):
    """Load a fit file or model folder; anything that is not a bayesmix fit is a UsageError."""
    from ..inference import Fit

    try:
        return Fit.load(path)
    except BayesmixError:
        raise
    except Exception as err:  # a NetCDF file of other content fails anywhere inside Fit.load
        raise UsageError(f"{path}: not a bayesmix fit ({type(err).__name__}: {' '.join(str(err).split())[:100]}); "
                         "fits are written by 'bayesmix fit RUNS --out FIT.nc'") from None


def load_posterior(path, *, max_draws=None):
    """Load a fit file, a shipped model folder, or a comparison JSON (stacked prediction).

    The fitted model sizes and token counts, when the fit records them, are kept in the
    posterior's ``meta["scales"]`` for :func:`check_scale`, and ``path`` in
    ``meta["fit_path"]`` for error messages.
    """
    from ..compare import is_comparison_file, stacked_posterior

    if is_comparison_file(path):
        return stacked_posterior(path, max_draws=max_draws)
    fit = load_fit(path)
    warn_if_untrusted(fit, path)
    posterior = fit.posterior(max_draws=max_draws)
    posterior.meta["scales"] = fit.attrs.get("scales")
    posterior.meta["fit_path"] = str(path)
    return posterior


def warn_if_untrusted(fit, path) -> list[str]:
    """Say on stderr when a fit did not pass the diagnostics gate (kept with
    ``--allow-warnings``): predictions and decisions from it rest on draws that may miss
    part of the posterior. Returns the gate's problems (none for a fit that passed, or
    one saved without diagnostics)."""
    from ..gate import check_gate

    diagnostics = fit.diagnostics
    if not {"max_rhat", "divergences"} <= set(diagnostics):
        return []
    problems = check_gate(diagnostics, allow_warnings=True)
    if problems:
        print(f"warning: {path} did not pass the diagnostics gate, so what follows rests on draws that may "
              "miss part of the posterior:\n  - " + "\n  - ".join(problems), file=sys.stderr)
    return problems


def domain_order(given, fitted, *, source: str) -> list[int]:
    """Positions in ``given`` of each of the fit's domains: match domains by name.

    Raises
    ------
    UsageError
        If ``given`` lacks a domain of the fit or has one the fit does not know.
    """
    given, fitted = [str(d) for d in given], [str(d) for d in fitted]
    unknown = [d for d in given if d not in fitted]
    missing = [d for d in fitted if d not in given]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"domain(s) {', '.join(repr(d) for d in unknown)} unknown to the fit")
        if missing:
            parts.append(f"the fit's domain(s) {', '.join(repr(d) for d in missing)} missing")
        raise UsageError(f"{source}: {'; '.join(parts)} (the fit has {', '.join(fitted)}); "
                         "rename the columns or map them with --domain-map")
    return [given.index(d) for d in fitted]


def check_scale(posterior, model_size, tokens, *, what: str = "target") -> None:
    """Refuse impossible scales; warn about scales far beyond those fitted.

    Parameters
    ----------
    posterior : Posterior
        With ``meta["scales"]`` (set by :func:`load_posterior`) for the warning.
    model_size, tokens : float or array_like
        The scale(s) asked for.
    what : str
        What the scales are, for the messages (e.g. ``--target-model-size``).

    Raises
    ------
    UsageError
        If a model size or token count is not finite, below 1 or beyond
        :data:`bayesmix.units.MAX_MODEL_SIZE` / :data:`bayesmix.units.MAX_TOKENS`.
    """
    import numpy as np

    check_scale_bounds(model_size, tokens, what=what)
    scales = (getattr(posterior, "meta", None) or {}).get("scales") or {}
    for label, values, key in (("model size", model_size, "model_sizes"), ("tokens", tokens, "tokens")):
        fitted = np.asarray(scales.get(key) or [], dtype=float)
        if not fitted.size:
            continue
        lo, hi = float(fitted.min()), float(fitted.max())
        values = np.atleast_1d(np.asarray(values, dtype=float))
        far = values[(values > hi * EXTRAPOLATION_FACTOR) | (values < lo / EXTRAPOLATION_FACTOR)]
        if far.size:
            print(f"warning: {what}: {label} {format_quantity(far[0])} is more than "
                  f"{EXTRAPOLATION_FACTOR:g}x outside the fitted {label}s ({format_quantity(lo)} to "
                  f"{format_quantity(hi)}); the prediction there rests on the law's form, not on data",
                  file=sys.stderr)


def budget_lines(posterior, weights, model_size, tokens) -> str:
    """The uncertainty budget of one prediction (:func:`bayesmix.uncertainty.uncertainty_budget`)
    as a table: per target domain, each part's sd of the log-loss, in % of the loss."""
    import numpy as np

    from ..uncertainty import PARTS, uncertainty_budget

    budget = uncertainty_budget(posterior, weights, model_size, tokens)
    heads = ["parameters", "law error at this scale", "new mixture", "run noise", "total"]
    width = max(len(d) for d in posterior.target_domains) + 2
    lines = ["where each domain's predictive sd comes from (sd of the log-loss, % of the loss; "
             "the parts add in variance):",
             " " * width + "  ".join(f"{h:>{max(len(h), 8)}}" for h in heads)]
    for k, domain in enumerate(posterior.target_domains):
        values = [budget[p][0, k] for p in PARTS] + [budget["total"][0, k]]
        lines.append(f"{domain:<{width}}" + "  ".join(f"{100 * v:>{max(len(h), 8)}.2f}" for h, v in zip(heads, values)))
    share = np.mean(budget[PARTS[1]][0] ** 2 / budget["total"][0] ** 2)
    lines.append(f"the law's error at a scale the fit did not see is {100 * share:.0f}% of the predictive "
                 "variance on average over the domains (0 at a fitted scale)")
    shift = budget["discrepancy_shift"][0]
    if np.any(shift != 0):
        lines.append("what the discrepancy adds to the law's mean here (its fitted slopes' line and smooth part; "
                     "% of the loss):")
        lines += [f"{domain:<{width}}{100 * value:+9.2f}" for domain, value in zip(posterior.target_domains, shift)]
        lines.append(f"on average {100 * np.mean(np.abs(shift)):.1f}% of the loss: where this is large, the "
                     "predicted level rests on how the discrepancy extrapolates more than on the law's own "
                     "trend over scale")
    return "\n".join(lines)
