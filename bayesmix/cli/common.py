"""Options shared by several subcommands, so that they read the same everywhere."""

from __future__ import annotations

from ..errors import NotAvailableError, UsageError
from ..units import parse_quantity


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
    """Parse ``'arxiv=0.2,book=0.1'`` into a dict."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"cannot read {what} item '{item}': write name=value,name=value")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"cannot read {what} item '{item}': '{value}' is not a number") from None
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
    import sys

    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def load_posterior(path, *, max_draws=None):
    """Load a fit file, a shipped model folder, or a comparison JSON (stacked prediction)."""
    from ..compare import is_comparison_file, stacked_posterior
    from ..inference import Fit

    if is_comparison_file(path):
        return stacked_posterior(path, max_draws=max_draws)
    return Fit.load(path).posterior(max_draws=max_draws)
