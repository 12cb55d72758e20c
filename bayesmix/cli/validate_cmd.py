"""`bayesmix validate`: check a run table and print what it holds."""

from __future__ import annotations

from .common import load_table_from_args
from .options import add_command, add_input_argument, add_table_options

DESCRIPTION = """\
Read a run table (one row per training run and checkpoint), check it and print a
summary: trained and evaluation-only domains, rows, runs, checkpoints per run, the
model sizes and token counts, missing losses, and notes on anything the loader
repaired (weights renormalised to sum to 1, a checkpoint logged twice).

Columns are found by name: weight_<domain> for the mixture, <domain>_loss or
loss_<domain> for the validation loss, model_size (N, parameters), n_tokens (D) and
run_id (optional). A loss column without a weight column is an evaluation-only
domain. Use the options below when your columns are named otherwise.

Problems are reported with the file, column and first offending rows (1-based,
header excluded), exit status 2."""

EPILOG = """\
examples:
  bayesmix validate runs.csv
  bayesmix validate logs.parquet --model-size-column params --tokens-column tokens
  bayesmix validate runs.csv --domain-map 'web=w_web:val_web,code=w_code:val_code,ood=:val_ood'
  bayesmix validate runs.csv --filter-model-size 122M,310M"""


def add_parser(sub):
    p = add_command(sub, "validate", summary="check a run table and summarise it", description=DESCRIPTION,
                    epilog=EPILOG)
    add_input_argument(p, "runs")
    add_table_options(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    table = load_table_from_args(args)
    print(table.format_summary())
    return 0
