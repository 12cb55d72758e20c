"""From a frame or from arrays to the checked fields of a :class:`~bayesmix.data.RunTable`.

Both ways are a chain of small steps, each returning arrays and the notes a user is
shown. A frame: its columns (names, roles), its cells as numbers. Arrays: their shapes
(:mod:`bayesmix.data.arrays`) and the roles of the columns they stand for. Then, shared:
scales, weights, losses, exact duplicates, runs, checkpoints, near-duplicates, what is
kept (:func:`checked_fields`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._text import list_columns, plural
from .arrays import array_columns
from .columns import Roles, checked_frame, column_roles, numeric
from .runs import near_duplicate_checkpoints, refuse_repeated_checkpoints, table_runs
from .validation import check_losses, check_scales, checked_weights, refuse_exact_duplicates, refuse_missing_weights


@dataclass(frozen=True)
class Cells:
    """The numbers of a table: weights ``W`` (n, K), sizes ``N`` and tokens ``D`` (n,),
    trained losses ``L`` (n, K; NaN where not logged) and evaluation-only losses ``E``
    (n, E) or None."""

    W: np.ndarray
    N: np.ndarray
    D: np.ndarray
    L: np.ndarray
    E: np.ndarray | None


def fields_from_frame(df, *, source, mapping, model_size_column, tokens_column, run_id_column, require_losses,
                      weight_tolerance) -> dict:
    """The fields of a checked table read from a frame (as :func:`~bayesmix.data.load_runs`)."""
    df = checked_frame(df, source)
    roles = column_roles(list(df.columns), source=source, mapping=mapping, model_size_column=model_size_column,
                         tokens_column=tokens_column, run_id_column=run_id_column, require_losses=require_losses,
                         map_hint=" (Python: mapping=)")
    return checked_fields(df, roles, frame_cells(df, roles, source), weight_tolerance=weight_tolerance,
                          source=source, grouped_note=_grouped_by_column_note)


def fields_from_arrays(weights, model_size, tokens, losses, domains, run_ids, *, eval_losses, eval_domains, extra,
                       source, weight_tolerance) -> dict:
    """The fields of a checked table given as arrays (as
    :meth:`~bayesmix.data.RunTable.from_arrays`)."""
    given = array_columns(weights, model_size, tokens, losses, domains, run_ids, eval_losses=eval_losses,
                          eval_domains=eval_domains, extra=extra, source=source)
    source = str(source)
    frame = checked_frame(given.frame, source)
    roles = column_roles(list(frame.columns), source=source, mapping=given.mapping, model_size_column="model_size",
                         tokens_column="n_tokens", run_id_column="run_id" if run_ids is not None else None,
                         require_losses=False, map_hint="")
    refuse_missing_weights(given.W, roles.weight_columns, source)
    cells = Cells(given.W, given.N, given.D, given.L, given.E)
    return checked_fields(frame, roles, cells, weight_tolerance=weight_tolerance, source=source,
                          grouped_note=_grouped_arrays_note)


def _grouped_by_column_note(n_runs: int) -> str:
    return (f"no run-id column: grouped the rows into {plural(n_runs, 'run')} by mixture and model size "
            "(give a run-id column, --run-id-column, if separate runs share both)")


def _grouped_arrays_note(n_runs: int) -> str:
    return f"no run ids given: grouped the rows into {plural(n_runs, 'run')} by mixture and model size"


def frame_cells(df, roles: Roles, source) -> Cells:
    """The numeric cells of a frame; a missing weight is refused."""
    n = len(df)
    wcols = roles.weight_columns
    W = np.column_stack([numeric(df[c], c, "weight", source) for c in wcols])
    N = numeric(df[roles.size_col], roles.size_col, "size", source)
    D = numeric(df[roles.tokens_col], roles.tokens_col, "tokens", source)
    L = np.full((n, len(wcols)), np.nan)
    for j, c in enumerate(roles.loss_columns):
        if c is not None:
            L[:, j] = numeric(df[c], c, "loss", source)
    ecols = roles.eval_columns
    E = np.column_stack([numeric(df[c], c, "loss", source) for c in ecols]) if ecols else None
    refuse_missing_weights(W, wcols, source)
    return Cells(W, N, D, L, E)


def checked_fields(frame, roles: Roles, cells: Cells, *, weight_tolerance, source, grouped_note) -> dict:
    """The checks every table passes, then its fields (keyword arguments of RunTable).

    ``frame`` holds the table's columns as given (for exact duplicates, run ids and the
    extra columns); ``grouped_note(n_runs)`` is the note said when runs are grouped by
    mixture and model size.
    """
    notes: list[str] = []
    if roles.loose:
        notes.append("weight-like columns not in the domain map kept as extra columns, not part of the mixture: "
                     f"{list_columns(roles.loose)}")
    check_scales(cells.N, cells.D, roles.size_col, roles.tokens_col, source)
    W, weight_notes = checked_weights(cells.W, roles.weight_columns, roles.loose, weight_tolerance, source)
    notes += weight_notes
    check_losses(((roles.loss_columns, cells.L), (roles.eval_columns, cells.E)), source)
    refuse_exact_duplicates(frame, source)
    runs = table_runs(frame, roles.run_col, W, cells.N, source, grouped_note)
    notes += runs.notes
    all_losses = cells.L if cells.E is None else np.column_stack([cells.L, cells.E])
    refuse_repeated_checkpoints(runs.codes, runs.uniques, cells.D, all_losses, roles.tokens_col, source)
    keep, near_notes = near_duplicate_checkpoints(runs.codes, cells.D, all_losses)
    notes += near_notes
    notes += kept_notes(roles, cells, all_losses, keep)
    other = roles.other_columns(frame.columns)
    return dict(
        domains=roles.domains,
        weights=W[keep],
        model_size=cells.N[keep],
        tokens=cells.D[keep],
        losses=cells.L[keep],
        run_ids=runs.ids[keep],
        eval_domains=roles.eval_domains,
        eval_losses=None if cells.E is None else cells.E[keep],
        extra=frame.loc[keep, other].reset_index(drop=True) if other else None,
        source=source,
        notes=tuple(notes),
    )


def kept_notes(roles: Roles, cells: Cells, all_losses, keep) -> list[str]:
    """Notes on what the table keeps: evaluation-only domains, aggregate columns, domains
    without losses, missing loss values."""
    notes = []
    if roles.evals:
        desc = ", ".join(f"{d} (column {c})" for d, c in roles.evals)
        notes.append(
            f"evaluation-only {'domain' if len(roles.evals) == 1 else 'domains'} {desc}: a loss with no weight column, "
            "so not part of the mixture; kept as a target to evaluate: fitted and predicted at weight 0 by a law "
            "that predicts evaluation-only domains (capacity_noise_transfer), left out by the others"
        )
    if roles.aggregates:
        notes.append(
            f"{'column' if len(roles.aggregates) == 1 else 'columns'} {', '.join(roles.aggregates)} look like an "
            "aggregate loss over domains, not one domain: kept as extra columns, not fitted"
        )
    no_loss = [d for d, _, l in roles.trained if l is None]
    inputs_only = not np.isfinite(all_losses[keep]).any()
    if inputs_only:
        notes.append("no losses logged: the table holds inputs only (mixtures, N, D), e.g. for prediction")
    elif no_loss:
        notes.append(
            f"no loss column for {plural(len(no_loss), 'trained domain')} ({', '.join(no_loss)}): "
            f"{'it takes' if len(no_loss) == 1 else 'they take'} part in the mixture and the law (trained "
            "tokens compete for capacity) but contribute no likelihood term; predictions cover them"
        )
    if not inputs_only:
        notes += _missing_loss_notes(roles, cells, all_losses, keep)
    return notes


def _missing_loss_notes(roles: Roles, cells: Cells, all_losses, keep) -> list[str]:
    """A note counting the loss values missing from the columns that are there."""
    logged = [j for j, (_, _, l) in enumerate(roles.trained) if l is not None]
    miss = {roles.domains[j]: int(np.isnan(cells.L[keep, j]).sum()) for j in logged}
    if cells.E is not None:
        miss.update({d: int(np.isnan(cells.E[keep, j]).sum()) for j, (d, _) in enumerate(roles.evals)})
    total = sum(miss.values())
    if not total:
        return []
    present = all_losses[keep][:, [*logged, *range(len(roles.domains), all_losses.shape[1])]]
    rows_with = int(np.isnan(present).any(axis=1).sum())
    rows_none = int(np.isnan(present).all(axis=1).sum())
    per = ", ".join(f"{d} {k}" for d, k in miss.items() if k)
    none_text = f" ({rows_none} with no loss at all)" if rows_none else ""
    return [
        f"{plural(total, 'loss value')} missing ({per}) in {plural(rows_with, 'row')}{none_text}: kept as "
        "NaN; fits use the losses that are there"
    ]
