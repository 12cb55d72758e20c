"""The checks of a run table's values: scales, weights, losses and repeated rows.

Each check raises a :class:`~bayesmix.errors.DataError` naming the column and the first
offending rows. The one repair, renormalising weights that sum to 1 within the
tolerance, is done by :func:`checked_weights` and comes back with its note.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..units import format_number
from ._text import list_columns, plural, row_numbers

#: Weight rows whose sum is this close to 1 are float round-off and are left untouched.
ROUNDOFF = 1e-12


def refuse_rows(bad_mask, message, *, column, source) -> None:
    """Raise a DataError naming the rows where ``bad_mask`` is True, if any;
    ``message(bad)`` says what is wrong, given their 0-based positions ``bad``."""
    bad = np.flatnonzero(bad_mask)
    if len(bad):
        raise DataError(message(bad), file=source, column=column, rows=row_numbers(bad))


def refuse_missing_weights(W, wcols, source) -> None:
    """Refuse an empty weight cell: every row needs its full mixture."""
    for j, c in enumerate(wcols):
        refuse_rows(np.isnan(W[:, j]), lambda bad: (
            f"missing weight ({plural(len(bad), 'empty cell')}): every row needs its full mixture; write 0 for "
            "a domain the run did not train on"), column=c, source=source)


def check_scales(N, D, model_size_column, tokens_column, source) -> None:
    """Refuse a missing, non-positive or non-finite model size or token count."""
    for col, values, what in ((model_size_column, N, "model size N"), (tokens_column, D, "token count D")):
        refuse_rows(np.isnan(values), lambda bad: (
            f"missing {what} ({plural(len(bad), 'empty cell')}): every row needs it"), column=col, source=source)
        refuse_rows(~np.isfinite(values) | (values <= 0), lambda bad: (
            f"{what} must be positive and finite, got {format_number(values[bad[0]])}; fix the value"),
            column=col, source=source)


def checked_weights(W, wcols, loose, weight_tolerance, source) -> tuple[np.ndarray, list[str]]:
    """Weights refused where not finite, negative or not summing to 1 within
    ``weight_tolerance``; renormalised (with a note) where off by more than rounding."""
    _refuse_bad_weights(W, wcols, source)
    sums = W.sum(axis=1)
    dev = np.abs(sums - 1.0)
    bad = np.flatnonzero(dev > weight_tolerance)
    if len(bad):
        shown = ", ".join(f"{sums[i]:.6g}" for i in bad[:3])
        raise DataError(
            f"weights sum to {shown}{', ...' if len(bad) > 3 else ''} instead of 1 (tolerance {weight_tolerance:g}) "
            f"in {plural(len(bad), 'row')}; the weight columns ({list_columns(wcols, 8)}) must hold the whole "
            "mixture: fix the weights, add the missing domain"
            + (f" ({list_columns(loose, 4)} not in the domain map)" if loose else "")
            + ", or raise weight_tolerance (Python) to renormalise them",
            file=source,
            rows=row_numbers(bad),
        )
    fix = np.flatnonzero(dev > ROUNDOFF)
    if not len(fix):
        return W, []
    W = W.copy()
    W[fix] = W[fix] / sums[fix, None]
    return W, [
        f"renormalised the weights of {plural(len(fix), 'row')} to sum to 1: they summed to "
        f"{sums[fix].min():.6g}..{sums[fix].max():.6g} (max deviation {dev[fix].max():.3g}, "
        f"within the tolerance {weight_tolerance:g})"
    ]


def _refuse_bad_weights(W, wcols, source) -> None:
    """Refuse a weight that is not finite or is negative."""
    for j, c in enumerate(wcols):
        w = W[:, j]
        refuse_rows(~np.isfinite(w), lambda bad: f"weight must be finite, got {format_number(w[bad[0]])}",
                    column=c, source=source)
        refuse_rows(w < 0, lambda bad: (
            f"negative weight {format_number(w[bad[0]])}: mixture weights are fractions between 0 and 1"),
            column=c, source=source)


def check_losses(columns_and_values, source) -> None:
    """Refuse a logged loss that is not positive and finite (an empty cell is allowed)."""
    for cols, M in columns_and_values:
        for j, c in enumerate(cols):
            if c is None:
                continue
            v = M[:, j]
            refuse_rows(~np.isnan(v) & (~np.isfinite(v) | (v <= 0)), lambda bad: (
                f"loss must be positive and finite, got {format_number(v[bad[0]])}; fix it, or leave the cell "
                "empty if the loss was not logged"), column=c, source=source)


def refuse_exact_duplicates(df, source) -> None:
    """Refuse rows equal in every column: a checkpoint logged twice."""
    dup = np.flatnonzero(df.duplicated(keep=False).to_numpy())
    if len(dup):
        first = dup[0]
        same = [i for i in dup if df.iloc[i].equals(df.iloc[first])] if len(dup) <= 2000 else list(dup[:2])
        raise DataError(
            f"exact duplicate rows (every column equal; {plural(len(dup), 'row')} involved, e.g. rows "
            f"{', '.join(str(r) for r in row_numbers(same, 4))} are the same): a checkpoint was logged twice; "
            "delete the repeats",
            file=source,
            rows=row_numbers(dup),
        )
