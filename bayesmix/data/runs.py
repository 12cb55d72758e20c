"""Training runs and their checkpoints.

Each row belongs to a run: named by a run-id column (one mixture at one model size per
run), or else grouped by mixture and model size. Two rows of one run at one token count
are refused; a checkpoint logged twice under two token counts less than
:data:`NEAR_DUPLICATE_RTOL` apart with identical losses is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from ._text import distinct_format, fmt, plural, row_numbers
from .validation import refuse_rows

#: Relative tolerance used to match model sizes and token counts in filters.
SCALE_RTOL = 1e-6
#: Two checkpoints of one run closer than this (relative) in tokens, with identical
#: losses, are the same checkpoint logged twice.
NEAR_DUPLICATE_RTOL = 0.01
#: Weights are rounded to this many decimals to tell runs apart by their mixture.
MIXTURE_DECIMALS = 9


@dataclass(frozen=True)
class Runs:
    """Each row's run id (``ids``), the run's code (``codes``, 0..R-1), the distinct ids
    (``uniques``, in order of first appearance) and the notes a user is shown."""

    ids: np.ndarray
    codes: np.ndarray
    uniques: np.ndarray
    notes: list


def same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two rows of losses are equal, NaN (not logged) equal to NaN."""
    return bool(np.array_equal(a, b, equal_nan=True))


def table_runs(frame, run_col, W, N, source, grouped_note) -> Runs:
    """The runs of the rows: from the run-id column ``run_col`` (refused where one id
    has several mixtures or sizes), else grouped by mixture and size, with the note
    ``grouped_note(number of runs)``."""
    if run_col is None:
        return grouped_runs(W, N, grouped_note)
    run_ids = column_run_ids(frame[run_col], run_col, source)
    codes, uniques = pd.factorize(run_ids)
    refuse_mixed_runs(codes, uniques, W, N, run_col, source)
    return Runs(run_ids, codes, uniques, [])


def column_run_ids(raw: pd.Series, run_col, source) -> np.ndarray:
    """The run ids of a column as strings (``'3'``, not ``'3.0'``); an empty cell is refused."""
    refuse_rows(raw.isna().to_numpy(), lambda bad: (
        "missing run id: every row needs one, or leave the run-id column out to group runs by mixture and model size"),
        column=run_col, source=source)
    if pd.api.types.is_float_dtype(raw.dtype) and np.all(np.mod(raw.to_numpy(dtype=float), 1) == 0):
        return np.array([str(int(v)) for v in raw.to_numpy(dtype=float)], dtype=object)
    return np.array([str(v) for v in raw.to_numpy(dtype=object)], dtype=object)


def refuse_mixed_runs(codes, uniques, W, N, run_col, source) -> None:
    """Refuse a run id given to rows of several mixtures or model sizes: one run is one
    mixture at one model size."""
    for what, M, tol in (("mixtures", W, 1e-6), ("model sizes", N[:, None], None)):
        g = pd.DataFrame(M).groupby(codes)
        spread = (g.max() - g.min()).to_numpy()
        limit = tol if tol is not None else SCALE_RTOL * g.max().to_numpy()
        bad_runs = np.flatnonzero((spread > limit).any(axis=1))
        if len(bad_runs):
            rows = np.flatnonzero(codes == bad_runs[0])
            raise DataError(
                f"run '{uniques[bad_runs[0]]}' has rows with different {what} ({plural(len(bad_runs), 'run')} like "
                f"this); a run is one mixture at one model size: give each training run its own id in "
                f"'{run_col}', or leave the run-id column out to group runs by mixture and model size",
                file=source,
                column=run_col,
                rows=row_numbers(rows),
            )


def grouped_runs(W, N, grouped_note) -> Runs:
    """Rows grouped into runs by mixture (rounded to :data:`MIXTURE_DECIMALS`) and model
    size, named ``run-0001``, ... in order of first appearance."""
    key = np.column_stack([np.round(W, MIXTURE_DECIMALS) + 0.0, N])
    _, first_idx, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first_idx, kind="stable")  # groups in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[inverse]
    width = max(4, len(str(len(order))))
    uniques = np.array([f"run-{i + 1:0{width}d}" for i in range(len(order))], dtype=object)
    return Runs(uniques[codes], codes, uniques, [grouped_note(len(order))])


def refuse_repeated_checkpoints(codes, uniques, D, all_losses, tokens_column, source) -> None:
    """Refuse two rows of one run at one token count: conflicting (different losses) or
    repeated (the same losses)."""
    key = pd.DataFrame({"run": codes, "D": D})
    clash = key.duplicated(keep=False).to_numpy()
    if not clash.any():
        return
    groups = key[clash].groupby(["run", "D"], sort=False).groups
    first_rows = np.asarray(next(iter(groups.values())))
    run_name = uniques[codes[first_rows[0]]]
    differ = any(not same_rows(all_losses[first_rows[0]], all_losses[i]) for i in first_rows[1:])
    hint = (
        "if these are separate training runs (e.g. other seeds), give each its own id in a run-id column "
        "(--run-id-column)"
    )
    if differ:
        raise DataError(
            f"conflicting checkpoints: run '{run_name}' has {len(first_rows)} rows at {fmt(D[first_rows[0]], 6)} "
            f"tokens with different losses ({plural(len(groups), 'such checkpoint')} in all); keep one row per "
            f"checkpoint, or {hint}",
            file=source,
            column=tokens_column,
            rows=row_numbers(first_rows),
        )
    raise DataError(
        f"repeated checkpoint: run '{run_name}' logs the same losses twice at {fmt(D[first_rows[0]], 6)} tokens "
        f"({plural(len(groups), 'such checkpoint')} in all); delete the repeated rows, or {hint}",
        file=source,
        column=tokens_column,
        rows=row_numbers(first_rows),
    )


@dataclass
class _NearDuplicates:
    """What the scan for near-duplicate checkpoints found."""

    dropped: list  # (dropped row, kept row)
    close_different: int = 0  # pairs close in tokens with different losses
    final: int = 0  # dropped rows that were a run's final checkpoint


def near_duplicate_checkpoints(codes, D, all_losses) -> tuple[np.ndarray, list[str]]:
    """Rows to keep and notes: of two checkpoints of one run less than
    :data:`NEAR_DUPLICATE_RTOL` apart in tokens with identical losses, the larger token
    count is kept; with different losses both are (and a note says so)."""
    found = _scan_near_duplicates(codes, D, all_losses)
    notes = []
    if found.dropped:
        notes.append(_dropped_note(found, codes, D))
    if found.close_different:
        notes.append(
            f"{plural(found.close_different, 'pair')} of checkpoints of one run less than 1% apart in tokens have "
            "different losses: kept both"
        )
    keep = np.ones(len(D), dtype=bool)
    keep[[i for i, _ in found.dropped]] = False
    return keep, notes


def _scan_near_duplicates(codes, D, all_losses) -> _NearDuplicates:
    """Walk each run from its most tokens down, dropping a checkpoint with the losses of
    the kept one just above it and less than :data:`NEAR_DUPLICATE_RTOL` below it."""
    order = np.lexsort((-D, codes))
    found = _NearDuplicates([])
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and codes[order[stop]] == codes[order[start]]:
            stop += 1
        kept_prev = None
        for pos in range(start, stop):
            i = order[pos]
            if kept_prev is not None and (D[kept_prev] - D[i]) / D[kept_prev] < NEAR_DUPLICATE_RTOL:
                if np.isfinite(all_losses[i]).any() and same_rows(all_losses[i], all_losses[kept_prev]):
                    found.dropped.append((i, kept_prev))
                    found.final += int(kept_prev == order[start])
                    continue
                found.close_different += 1
            kept_prev = i
        start = stop
    return found


def _dropped_note(found: _NearDuplicates, codes, D) -> str:
    drop = [i for i, _ in found.dropped]
    runs_hit = len({codes[k] for _, k in found.dropped})
    small, big = distinct_format(D[found.dropped[0][0]], D[found.dropped[0][1]])
    which = "final checkpoint" if found.final == len(drop) else "a checkpoint"
    verb = "logs its" if runs_hit == 1 else "log their"
    if which == "a checkpoint":
        verb = "logs" if runs_hit == 1 else "log"
    return (
        f"{plural(runs_hit, 'run')} {verb} {which} twice under two token counts less than 1% apart with "
        f"identical losses (e.g. {small} and {big}): kept the larger token count, dropped "
        f"{plural(len(drop), 'row')} (rows {', '.join(str(r) for r in row_numbers(sorted(drop), 5))}"
        f"{', ...' if len(drop) > 5 else ''})"
    )
