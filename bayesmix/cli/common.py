"""Options shared by several subcommands, so that they read the same everywhere."""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import BayesmixError, NotAvailableError, UsageError
from ..units import check_scale_bounds, format_number, format_quantity, parse_quantity

#: Choices shown by --help without importing PyMC (tests check them against the library).
LAW_NAMES = ("capacity_noise", "capacity", "exponential", "bimix", "additive", "joint", "chinchilla_domain", "linear")
SAMPLERS = ("pymc", "nutpie", "numpyro")
LIKELIHOODS = ("normal", "student_t")
#: --discrepancy: the observation model's switches (bayesmix.observation.SWITCHES).
DISCREPANCY_MODES = ("auto", "on", "off")
#: Release after which the deprecated option spellings are removed.
DEPRECATED_UNTIL = "0.2"

#: A scale more than this factor beyond the fitted model sizes or token counts is an
#: extrapolation the data say little about; it is done, with a warning.
EXTRAPOLATION_FACTOR = 100.0


def add_table_options(parser) -> None:
    """Options that say how to read a run table whose columns are not the defaults."""
    group = parser.add_argument_group("run table columns")
    group.add_argument("--model-size-column", default="model_size", metavar="COL",
                       help="column with the model size N in parameters (default: model_size)")
    group.add_argument("--tokens-column", default="n_tokens", metavar="COL",
                       help="column with the training tokens D (default: n_tokens)")
    group.add_argument("--run-id-column", default=None, metavar="COL",
                       help="column grouping the checkpoints of one training run "
                            "(default: run_id if present, else runs are told apart by mixture and N)")
    group.add_argument("--domain-map", default=None, metavar="MAP",
                       help="explicit columns per domain: 'd=WEIGHT_COL:LOSS_COL,...' "
                            "(default: found by the patterns weight_<d> with <d>_loss or loss_<d>)")
    group.add_argument("--filter-model-size", default=None, metavar="N[,N...]",
                       help="keep only rows at these model sizes (e.g. 122M,310M)")
    group.add_argument("--filter-tokens", default=None, metavar="D[,D...]",
                       help="keep only rows at these token counts")


class DeprecatedAlias(argparse.Action):
    """Store an option's value; given by a deprecated spelling, also print a note saying so.

    (``old_spellings``, not ``deprecated``: Python 3.13's ``argparse.Action`` has a
    ``deprecated`` flag of its own.)"""

    def __init__(self, option_strings, dest, old_spellings=(), **kwargs):
        self.old_spellings = tuple(old_spellings)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.old_spellings:
            print(f"note: {option_string} is deprecated and goes in bayesmix {DEPRECATED_UNTIL}; "
                  f"write {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_target_scale_options(parser, *, required: bool = True, aliases: bool = False, default_note: str = ""):
    """``--target-model-size N`` and ``--target-tokens D``: the scale a decision is for.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    required : bool
    aliases : bool
        Also accept the deprecated spellings ``--model-size`` and ``--tokens``.
    default_note : str
        Appended to the help, e.g. what is used when the option is left out.
    """
    for name, old, meta, example in (("--target-model-size", "--model-size", "N", "7B"),
                                     ("--target-tokens", "--tokens", "D", "140B")):
        what = "model size N* in parameters" if meta == "N" else "training tokens D*"
        names = (name, old) if aliases else (name,)
        note = f"; {old} is the deprecated spelling (removed in {DEPRECATED_UNTIL})" if aliases else ""
        parser.add_argument(*names, required=required, metavar=meta, action=DeprecatedAlias,
                            old_spellings=names[1:], help=f"target {what}, e.g. {example}{default_note}{note}")


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
    posterior's ``meta["scales"]`` for :func:`check_scale`.
    """
    from ..compare import is_comparison_file, stacked_posterior

    if is_comparison_file(path):
        return stacked_posterior(path, max_draws=max_draws)
    fit = load_fit(path)
    posterior = fit.posterior(max_draws=max_draws)
    posterior.meta["scales"] = fit.attrs.get("scales")
    return posterior


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
