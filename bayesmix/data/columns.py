"""What each column of a run table holds, and its cells as numbers.

The roles come from the column names (``weight_<d>`` with ``<d>_loss`` or
``loss_<d>``; a loss column with no weight column is an evaluation-only domain) or from
an explicit domain map; :func:`column_roles` returns them as :class:`Roles`.
:func:`numeric` turns a column into floats, refusing a cell that is not a number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from ._text import list_columns, plural, row_numbers

#: Loss columns that summarise all domains rather than naming one.
AGGREGATE_LOSS_NAMES = frozenset(
    {
        "loss",
        "losses",
        "train_loss",
        "training_loss",
        "val_loss",
        "valid_loss",
        "validation_loss",
        "eval_loss",
        "evaluation_loss",
        "test_loss",
        "avg_loss",
        "average_loss",
        "mean_loss",
        "total_loss",
        "overall_loss",
        "loss_avg",
        "loss_average",
        "loss_mean",
        "loss_total",
        "loss_overall",
        "loss_all",
        "all_loss",
    }
)
LOSS_PATTERNS = (re.compile(r"^loss_(.+)$", re.IGNORECASE), re.compile(r"^(.+)_loss$", re.IGNORECASE))
#: How to write each kind of value, said when a cell is not a number.
_NUMBER_HINTS = {
    "weight": "write the mixture weight as a plain number (e.g. 0.25)",
    "loss": "write losses as plain numbers and leave the cell empty where a loss was not logged",
    "size": "write model sizes as plain numbers of parameters (e.g. 122000000 or 1.22e8, not 122M)",
    "tokens": "write token counts as plain numbers (e.g. 20000000000 or 2e10, not 20B)",
}


@dataclass(frozen=True)
class Roles:
    """What each column of a run table is: the trained domains ``(domain, weight column,
    loss column or None)``, the evaluation-only ones ``(domain, loss column)``, the
    aggregate-loss and loose weight-like columns kept as extras, the run-id column, the
    model-size and tokens columns, and the columns reserved for the scale and run."""

    trained: list
    evals: list
    aggregates: list
    loose: list
    run_col: str | None
    reserved: set
    size_col: str
    tokens_col: str

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(d for d, _, _ in self.trained)

    @property
    def eval_domains(self) -> tuple[str, ...]:
        return tuple(d for d, _ in self.evals)

    @property
    def weight_columns(self) -> list[str]:
        return [w for _, w, _ in self.trained]

    @property
    def loss_columns(self) -> list[str | None]:
        return [l for _, _, l in self.trained]

    @property
    def eval_columns(self) -> list[str]:
        return [l for _, l in self.evals]

    def other_columns(self, columns) -> list[str]:
        """The columns with no role: kept as the table's extra columns."""
        taken = set(self.reserved) | set(self.weight_columns) | {c for c in self.loss_columns if c}
        taken |= set(self.eval_columns)
        return [c for c in columns if c not in taken]


def refuse_repeated_columns(names, source) -> None:
    """Raise a DataError naming the header names that occur more than once (after stripping)."""
    names = [str(c).strip() for c in names]
    dup_cols = sorted({c for c in names if names.count(c) > 1})
    if dup_cols:
        raise DataError(
            f"column name repeated in the header: {', '.join(dup_cols)} "
            f"(columns {', '.join(str(i + 1) for i, c in enumerate(names) if c == dup_cols[0])}); "
            "a column can hold one thing only: rename or delete the repeats",
            file=source,
            column=dup_cols[0],
        )


def checked_frame(df, source) -> pd.DataFrame:
    """The frame with a fresh index and stripped column names; refused when it is not a
    frame, has no rows or columns, or repeats a column."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}", file=source)
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(
            "the table has no data rows; a run table needs a header line and one row per (run, checkpoint)",
            file=source,
        )
    df = df.reset_index(drop=True)
    df.columns = [str(c).strip() for c in df.columns]
    refuse_repeated_columns(list(df.columns), source)
    return df


def column_roles(columns, *, source, mapping, model_size_column, tokens_column, run_id_column,
                 require_losses, map_hint) -> Roles:
    """The role of every column (:class:`Roles`), from the names or the domain map.

    ``map_hint`` follows the advice to use ``--domain-map`` when no trained domain has
    a loss column (``' (Python: mapping=)'`` for a table read from a file).
    """
    _require_scale_columns(columns, model_size_column, tokens_column, source)
    run_col = _run_column(columns, run_id_column, source)
    reserved = {model_size_column, tokens_column} | ({run_col} if run_col else set())
    aggregates: list[str] = []
    loose: list[str] = []
    if mapping is not None:
        trained, evals, loose = mapped_domains(mapping, columns, reserved, source)
    else:
        trained, evals, aggregates = find_domains(columns, reserved, source)
        if not trained:
            raise DataError(
                "no mixture weight columns found: looked for columns named weight_<domain>, with losses in "
                f"<domain>_loss or loss_<domain> (columns: {list_columns(columns)}); rename the columns, or name "
                "them with --domain-map 'domain=WEIGHT_COL:LOSS_COL,...' (Python: mapping=)",
                file=source,
            )
    if require_losses and all(l is None for _, _, l in trained):
        _refuse_no_losses(trained, mapped=mapping is not None, map_hint=map_hint, source=source)
    return Roles(trained, evals, aggregates, loose, run_col, reserved, model_size_column, tokens_column)


def _require_scale_columns(columns, model_size_column, tokens_column, source) -> None:
    for col, option, arg, what in (
        (model_size_column, "--model-size-column", "model_size_column", "model-size (N, parameters)"),
        (tokens_column, "--tokens-column", "tokens_column", "tokens (D)"),
    ):
        if col not in columns:
            raise DataError(
                f"no {what} column '{col}' (columns: {list_columns(columns)}); name yours with {option} COL "
                f"(Python: {arg}=...)",
                file=source,
                column=col,
            )
    if model_size_column == tokens_column:
        raise DataError("the model-size and tokens columns must differ", file=source, column=tokens_column)


def _run_column(columns, run_id_column, source) -> str | None:
    """The run-id column: the one named, else ``run_id`` when there is one, else None."""
    if run_id_column is None:
        return "run_id" if "run_id" in columns else None
    if run_id_column not in columns:
        raise DataError(
            f"no run-id column '{run_id_column}' (columns: {list_columns(columns)}); correct --run-id-column "
            "(Python: run_id_column=), or leave it out to group runs by mixture and model size",
            file=source,
            column=run_id_column,
        )
    return run_id_column


def _refuse_no_losses(trained, *, mapped, map_hint, source) -> None:
    d, w, _ = trained[0]
    looked = "" if mapped else f" (looked for <domain>_loss and loss_<domain>, e.g. {d}_loss)"
    raise DataError(
        f"no loss column for any trained domain{looked}: a fit needs the validation loss of at least one "
        f"trained domain; if they are under other names, map them with --domain-map '{d}={w}:LOSS_COL,...'"
        f"{map_hint}",
        file=source,
        column=w,
    )


def parse_mapping(mapping, columns, source):
    """Trained ``(domain, weight column, loss column)`` and evaluation-only ``(domain,
    loss column)`` domains of a domain map, each column known and used once."""
    trained, evals = [], []
    used = {}
    for domain, spec in mapping.items():
        domain = str(domain)
        if isinstance(spec, str) or not hasattr(spec, "__len__") or len(spec) != 2:
            raise DataError(
                f"mapping for domain '{domain}' must be a pair (weight_column or None, loss_column or None), "
                f"got {spec!r}",
                file=source,
            )
        wcol, lcol = (None if c in (None, "") else str(c) for c in spec)
        if wcol is None and lcol is None:
            raise DataError(
                f"domain map gives domain '{domain}' neither a weight nor a loss column", file=source
            )
        for col in (wcol, lcol):
            if col is not None:
                _claim_column(col, domain, columns, used, source)
        if wcol is None:
            evals.append((domain, lcol))
        else:
            trained.append((domain, wcol, lcol))
    return trained, evals


def _claim_column(col, domain, columns, used, source) -> None:
    """Record that the domain map gives ``col`` to ``domain``; refused when the table has
    no such column or another domain has it."""
    if col not in columns:
        raise DataError(
            f"unknown column: the domain map names '{col}' for domain '{domain}', but the table has no such "
            f"column (columns: {list_columns(columns)}); correct --domain-map",
            file=source,
            column=col,
        )
    if col in used:
        raise DataError(
            f"the domain map uses column '{col}' for both '{used[col]}' and '{domain}'",
            file=source,
            column=col,
        )
    used[col] = domain


def mapped_domains(mapping, columns, reserved, source) -> tuple[list, list, list]:
    """Trained and evaluation-only domains of a domain map, and the weight-like columns
    it leaves out."""
    if not mapping:
        raise DataError("the domain map is empty; give at least one domain=WEIGHT_COL:LOSS_COL", file=source)
    trained, evals = parse_mapping(mapping, columns, source)
    if not trained:
        raise DataError(
            "the domain map names no weight column: every domain is evaluation-only; give the trained domains "
            "as domain=WEIGHT_COL:LOSS_COL",
            file=source,
        )
    clash = [c for _, w, l in trained for c in (w, l) if c in reserved] + [l for _, l in evals if l in reserved]
    if clash:
        raise DataError(
            "the domain map uses a model-size, tokens or run-id column as a domain column",
            file=source,
            column=clash[0],
        )
    mapped = {c for _, w, l in trained for c in (w, l) if c} | {l for _, l in evals}
    loose = [c for c in columns if c not in mapped and c not in reserved and c.lower().startswith("weight_")]
    return trained, evals, loose


def find_domains(columns, reserved, source):
    """Pattern search: weight_<d> with <d>_loss or loss_<d>; other loss columns -> eval-only.

    Returns the trained ``(domain, weight column, loss column or None)``, the
    evaluation-only ``(domain, loss column)`` and the aggregate-loss columns.
    """
    trained = _trained_by_name(columns, reserved, source)
    used = {c for _, w, l in trained for c in (w, l) if c}
    evals, aggregates = [], []
    seen = {d.lower(): d for d, _, _ in trained}
    for c in columns:
        if c in reserved or c in used:
            continue
        if c.lower() in AGGREGATE_LOSS_NAMES:
            aggregates.append(c)
            continue
        name = _loss_domain(c)
        if name is None:
            continue
        if name.lower() in seen:
            raise DataError(
                f"evaluation domain '{name}' from column '{c}' clashes with domain '{seen[name.lower()]}'; "
                "rename one or use --domain-map",
                file=source,
                column=c,
            )
        seen[name.lower()] = name
        evals.append((name, c))
    return trained, evals, aggregates


def _trained_by_name(columns, reserved, source) -> list:
    """``(domain, weight column, loss column or None)`` for each ``weight_<d>`` column."""
    lower = {}
    for c in columns:
        lower.setdefault(c.lower(), []).append(c)
    trained = []
    for c in columns:
        if c in reserved or not c.lower().startswith("weight_") or len(c) <= len("weight_"):
            continue
        d = c[len("weight_") :]
        cands = [
            x
            for key in (f"{d.lower()}_loss", f"loss_{d.lower()}")
            for x in lower.get(key, [])
            if x not in reserved
        ]
        if len(cands) > 1:
            raise DataError(
                f"domain '{d}' has several loss columns ({', '.join(cands)}); say which one with "
                f"--domain-map '{d}={c}:LOSS_COL' (Python: mapping=)",
                file=source,
                column=cands[0],
            )
        trained.append((d, c, cands[0] if cands else None))
    return trained


def _loss_domain(column) -> str | None:
    """The domain a loss column names (``loss_<d>`` or ``<d>_loss``), or None."""
    for pat in LOSS_PATTERNS:
        m = pat.match(column)
        if m:
            return m.group(1)
    return None


def numeric(series: pd.Series, column: str, role: str, source: str) -> np.ndarray:
    """Column -> float array; non-numeric cells are a DataError showing the bad value.

    ``role`` (``'weight'``, ``'loss'``, ``'size'`` or ``'tokens'``) picks the advice.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    values = series.to_numpy(dtype=object)
    out = np.empty(len(values), dtype=float)
    bad = []
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out[i] = np.nan
            continue
        if isinstance(v, (bool, np.bool_)):
            bad.append(i)
            continue
        text = str(v).strip()
        if text == "":
            out[i] = np.nan
            continue
        try:
            out[i] = float(text)
        except ValueError:
            bad.append(i)
    if bad:
        raise DataError(
            f"non-numeric cell {str(values[bad[0]])!r} ({plural(len(bad), 'such cell')}); {_NUMBER_HINTS[role]}",
            file=source,
            column=column,
            rows=row_numbers(bad),
        )
    return out
