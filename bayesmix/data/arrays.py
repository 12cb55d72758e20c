"""The arrays given to :meth:`~bayesmix.data.RunTable.from_arrays`: their shapes, their
names, and the columns they stand for.

The columns are named as :meth:`~bayesmix.data.RunTable.to_frame` writes them
(``run_id``, ``model_size``, ``n_tokens``, ``weight_<d>``, ``loss_<d>``), so that a
message about a value names the same column either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError


@dataclass(frozen=True)
class ArrayColumns:
    """The arrays, checked for shape: weights ``W`` (n, K), sizes ``N`` and tokens ``D``
    (n,), losses ``L`` (n, K; all NaN when none were given), evaluation-only losses
    ``E`` or None; ``frame``, the table's columns with the extra ones; ``mapping``, the
    domain map of those columns."""

    frame: pd.DataFrame
    mapping: dict
    W: np.ndarray
    N: np.ndarray
    D: np.ndarray
    L: np.ndarray
    E: np.ndarray | None


def array_columns(weights, model_size, tokens, losses, domains, run_ids, *, eval_losses, eval_domains, extra,
                  source) -> ArrayColumns:
    """Check the shapes of the arrays and name their columns; a DataError names the
    argument at fault."""
    W = _weight_matrix(weights, source)
    n, K = W.shape
    names = _domain_names(domains, K, source)
    cols = {}
    if run_ids is not None:
        cols["run_id"] = _run_ids(run_ids, n, source)
    cols["model_size"] = N = _vector(model_size, "model_size", n, source)
    cols["n_tokens"] = D = _vector(tokens, "tokens", n, source)
    cols.update({f"weight_{d}": W[:, j] for j, d in enumerate(names)})
    L = _loss_matrix(losses, n, K, source)
    if losses is not None:
        cols.update({f"loss_{d}": L[:, j] for j, d in enumerate(names)})
    mapping = {d: (f"weight_{d}", f"loss_{d}" if losses is not None else None) for d in names}
    E, enames = _eval_matrix(eval_losses, eval_domains, n, names, source)
    cols.update({f"loss_{e}": E[:, j] for j, e in enumerate(enames)})
    mapping.update({e: (None, f"loss_{e}") for e in enames})
    frame = _with_extra(pd.DataFrame(cols), extra, n, source)
    return ArrayColumns(frame, mapping, W, N, D, L, E if enames else None)


def _weight_matrix(weights, source) -> np.ndarray:
    W = np.asarray(weights, dtype=float)
    if W.ndim != 2:
        raise DataError(
            f"weights must be a 2-D array (rows, domains), got shape {W.shape}",
            file=source,
            column="weights",
        )
    return W


def _domain_names(domains, K, source) -> list[str]:
    """The names of the K trained domains, ``d1 .. dK`` when not given."""
    names = [str(d) for d in domains] if domains is not None else [f"d{j + 1}" for j in range(K)]
    if len(names) != K:
        raise DataError(f"{len(names)} domain names for {K} weight columns", file=source, column="domains")
    repeated = sorted({d for d in names if names.count(d) > 1})
    if repeated:
        raise DataError(f"domain name repeated: {', '.join(repeated)}; give each domain its own name",
                        file=source, column="domains")
    return names


def _run_ids(run_ids, n, source) -> np.ndarray:
    rid = np.asarray(run_ids, dtype=object).reshape(-1)
    if rid.shape != (n,):
        raise DataError(f"run_ids has shape {rid.shape}, expected ({n},)", file=source, column="run_ids")
    return rid


def _vector(value, what, n, source) -> np.ndarray:
    """One value per row; a scalar applies to every row."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise DataError(f"{what} has shape {arr.shape}, expected ({n},)", file=source, column=what)
    return arr


def _loss_matrix(losses, n, K, source) -> np.ndarray:
    """The losses (n, K); all NaN when none are given (a table of inputs only)."""
    if losses is None:
        return np.full((n, K), np.nan)
    L = np.asarray(losses, dtype=float)
    if L.shape != (n, K):
        raise DataError(f"losses has shape {L.shape}, expected ({n}, {K})", file=source, column="losses")
    return L


def _eval_matrix(eval_losses, eval_domains, n, names, source) -> tuple[np.ndarray, list[str]]:
    """The evaluation-only losses (n, E) and their names, ``e1 .. eE`` when not given;
    none at all (shape (n, 0)) without ``eval_losses``."""
    if eval_losses is None:
        if eval_domains:
            raise DataError("eval_domains given without eval_losses", file=source, column="eval_domains")
        return np.empty((n, 0)), []
    E = np.asarray(eval_losses, dtype=float)
    if E.ndim == 1:
        E = E[:, None]
    enames = [str(e) for e in eval_domains] if eval_domains is not None else [f"e{j + 1}" for j in range(E.shape[1])]
    if E.shape != (n, len(enames)):
        raise DataError(
            f"eval_losses has shape {E.shape}, expected ({n}, {len(enames)})", file=source, column="eval_losses"
        )
    seen = set(names)
    for e in enames:
        if e in seen:
            raise DataError(f"domain '{e}' is both trained and evaluation-only", file=source, column="eval_domains")
        seen.add(e)
    return E, enames


def _with_extra(frame, extra, n, source) -> pd.DataFrame:
    """The frame with the extra columns after its own; refused when their rows or names
    do not fit."""
    if extra is None:
        return frame
    extra = extra.reset_index(drop=True)
    if len(extra) != n:
        raise DataError(f"extra has {len(extra)} rows, expected {n}", file=source, column="extra")
    clash = [c for c in extra.columns if c in frame.columns]
    if clash:
        raise DataError(
            f"extra columns {clash} clash with the table's own columns", file=source, column=str(clash[0])
        )
    return pd.concat([frame, extra], axis=1)
