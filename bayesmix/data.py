"""Run tables: the training runs a scaling law is fitted to.

A run table has one row per (training run, checkpoint): the training mixture (one weight
per trained domain), the model size ``N`` in parameters, the tokens seen ``D`` and the
validation loss on each domain (a trained domain whose loss was not logged is kept, with
its losses missing). :func:`load_runs` reads such a table from a CSV, TSV or
Parquet file, checks it thoroughly and returns a :class:`RunTable`, an immutable set of
aligned NumPy arrays.

Every problem a user can fix is reported as a :class:`~bayesmix.errors.DataError` that
names the file, the column, the first offending rows (1-based data rows, header
excluded) and how to fix it. The loader repairs only two things, and says so in
:attr:`RunTable.notes`: weight rows that sum to 1 within a tolerance are renormalised,
and a checkpoint logged twice under two token counts less than 1 % apart with identical
losses is kept once. Nothing else is dropped or changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError
from .units import format_number

__all__ = ["RunTable", "load_runs", "read_table"]

#: Relative tolerance used to match model sizes and token counts in filters.
SCALE_RTOL = 1e-6
#: Two checkpoints of one run closer than this (relative) in tokens, with identical
#: losses, are the same checkpoint logged twice.
NEAR_DUPLICATE_RTOL = 0.01
#: Weight rows whose sum is this close to 1 are float round-off and are left untouched.
_ROUNDOFF = 1e-12
#: Weights are rounded to this many decimals to tell runs apart by their mixture.
_MIXTURE_DECIMALS = 9
#: Loss columns that summarise all domains rather than naming one.
_AGGREGATE_LOSS_NAMES = frozenset(
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
_LOSS_PATTERNS = (re.compile(r"^loss_(.+)$", re.IGNORECASE), re.compile(r"^(.+)_loss$", re.IGNORECASE))


# --------------------------------------------------------------------------- helpers


def _frozen(array, dtype=float) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def _rows(positions, limit=None) -> list[int]:
    """0-based row positions -> 1-based data-row numbers."""
    out = [int(p) + 1 for p in positions]
    return out if limit is None else out[:limit]


def _distinct_format(a: float, b: float) -> tuple[str, str]:
    """Format two counts compactly but with enough digits to tell them apart."""
    for digits in range(4, 13):
        fa, fb = _fmt(a, digits), _fmt(b, digits)
        if fa != fb:
            return fa, fb
    return repr(a), repr(b)


def _fmt(value: float, digits: int = 4) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


def _list_columns(columns, limit=12) -> str:
    cols = list(columns)
    shown = ", ".join(cols[:limit])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > limit else "")


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


# --------------------------------------------------------------------------- RunTable


@dataclass(frozen=True, eq=False)
class RunTable:
    """A checked run table: aligned, read-only arrays with one row per checkpoint.

    Build one with :func:`load_runs`, :meth:`from_frame` or :meth:`from_arrays`; these
    check the values. The constructor itself only checks that the shapes agree.

    Parameters
    ----------
    domains : tuple of str
        The trained domains (those with a mixture weight), in the user's column order.
    weights : ndarray, shape (n, K)
        Mixture weights; each row sums to 1.
    model_size : ndarray, shape (n,)
        Model size ``N`` in parameters.
    tokens : ndarray, shape (n,)
        Training tokens ``D`` seen at the checkpoint.
    losses : ndarray, shape (n, K)
        Validation loss per trained domain; NaN where not logged.
    run_ids : ndarray of str, shape (n,)
        The training run each row belongs to; rows of one run are its checkpoints.
    eval_domains : tuple of str, optional
        Evaluation-only domains: a loss is logged but the domain is not in the mixture.
    eval_losses : ndarray, shape (n, len(eval_domains)), optional
        Losses on the evaluation-only domains (NaN where missing); None when there are none.
    extra : DataFrame, optional
        The user's other columns, one row per table row (index 0..n-1), kept so that
        outputs can carry them along.
    source : str
        Where the table came from (a path, or ``'<memory>'``).
    notes : tuple of str
        Human-readable notes on what the loader found or repaired.
    """

    domains: tuple[str, ...]
    weights: np.ndarray
    model_size: np.ndarray
    tokens: np.ndarray
    losses: np.ndarray
    run_ids: np.ndarray
    eval_domains: tuple[str, ...] = ()
    eval_losses: np.ndarray | None = None
    extra: pd.DataFrame | None = None
    source: str = "<memory>"
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        set_ = object.__setattr__
        domains = tuple(str(d) for d in self.domains)
        eval_domains = tuple(str(d) for d in self.eval_domains)
        weights = _frozen(self.weights)
        n = weights.shape[0] if weights.ndim == 2 else -1
        K = len(domains)
        problems = []
        if weights.ndim != 2 or weights.shape[1] != K:
            problems.append(f"weights has shape {weights.shape}, expected (n, {K})")
        model_size = _frozen(self.model_size)
        tokens = _frozen(self.tokens)
        losses = _frozen(self.losses)
        run_ids = np.empty(len(self.run_ids), dtype=object)
        run_ids[:] = [str(r) for r in self.run_ids]
        run_ids.setflags(write=False)
        for name, arr, shape in (
            ("model_size", model_size, (n,)),
            ("tokens", tokens, (n,)),
            ("losses", losses, (n, K)),
            ("run_ids", run_ids, (n,)),
        ):
            if arr.shape != shape:
                problems.append(f"{name} has shape {arr.shape}, expected {shape}")
        eval_losses = None
        if eval_domains:
            if self.eval_losses is None:
                problems.append("eval_domains given without eval_losses")
            else:
                eval_losses = _frozen(self.eval_losses)
                if eval_losses.shape != (n, len(eval_domains)):
                    problems.append(
                        f"eval_losses has shape {eval_losses.shape}, expected ({n}, {len(eval_domains)})"
                    )
        elif self.eval_losses is not None and np.asarray(self.eval_losses).size:
            problems.append("eval_losses given without eval_domains")
        extra = self.extra
        if extra is not None:
            extra = extra.reset_index(drop=True)
            if len(extra) != n:
                problems.append(f"extra has {len(extra)} rows, expected {n}")
        if len(set(domains)) != K:
            problems.append(f"domain names repeat: {domains}")
        if problems:
            raise DataError("inconsistent RunTable: " + "; ".join(problems), file=self.source)
        set_(self, "domains", domains)
        set_(self, "eval_domains", eval_domains)
        set_(self, "weights", weights)
        set_(self, "model_size", model_size)
        set_(self, "tokens", tokens)
        set_(self, "losses", losses)
        set_(self, "run_ids", run_ids)
        set_(self, "eval_losses", eval_losses)
        set_(self, "extra", extra)
        set_(self, "source", str(self.source))
        set_(self, "notes", tuple(str(s) for s in self.notes))

    def __repr__(self) -> str:
        return (
            f"RunTable(source={self.source!r}, rows={self.n_rows}, runs={self.n_runs}, "
            f"domains={list(self.domains)}, eval_domains={list(self.eval_domains)})"
        )

    def __len__(self) -> int:
        return self.n_rows

    # ------------------------------------------------------------------ properties

    @property
    def n_rows(self) -> int:
        """Number of rows (checkpoints)."""
        return int(self.weights.shape[0])

    @property
    def n_domains(self) -> int:
        """Number of trained domains ``K``."""
        return len(self.domains)

    @property
    def n_runs(self) -> int:
        """Number of distinct training runs."""
        return int(len(pd.unique(self.run_ids)))

    @property
    def has_losses(self) -> bool:
        """Whether any loss is recorded.

        False for a table of inputs only (e.g. a prediction grid loaded with
        ``require_losses=False`` and no loss columns); its ``losses`` are then all NaN.
        """
        return bool(np.isfinite(self.losses).any())

    @property
    def loss_mask(self) -> np.ndarray:
        """Boolean array (n, K): True where the loss is logged (finite)."""
        return np.isfinite(self.losses)

    @property
    def model_sizes(self) -> np.ndarray:
        """The distinct model sizes, sorted."""
        return np.unique(self.model_size)

    @property
    def scales(self) -> pd.DataFrame:
        """The distinct (model size, tokens) pairs, sorted, with their row and run counts.

        Returns
        -------
        DataFrame
            Columns ``model_size``, ``n_tokens``, ``n_rows``, ``n_runs``.
        """
        df = pd.DataFrame({"model_size": self.model_size, "n_tokens": self.tokens, "run_id": self.run_ids})
        out = (
            df.groupby(["model_size", "n_tokens"], sort=True)
            .agg(n_rows=("run_id", "size"), n_runs=("run_id", "nunique"))
            .reset_index()
        )
        return out.astype({"n_rows": int, "n_runs": int})

    @property
    def final_checkpoint_mask(self) -> np.ndarray:
        """Boolean array (n,): True for the row with the most tokens of each run."""
        mask = np.zeros(self.n_rows, dtype=bool)
        if self.n_rows:
            codes, _ = pd.factorize(self.run_ids)
            order = np.lexsort((-self.tokens, codes))  # by run, most tokens first
            first = np.ones(len(order), dtype=bool)
            first[1:] = codes[order][1:] != codes[order][:-1]
            mask[order[first]] = True
        return mask

    @property
    def checkpoint_counts(self) -> pd.Series:
        """Number of checkpoints (rows) of each run, indexed by run id in table order."""
        codes, uniques = pd.factorize(self.run_ids)
        counts = np.bincount(codes, minlength=len(uniques))
        return pd.Series(counts, index=pd.Index(list(uniques), name="run_id"), name="checkpoints")

    # ------------------------------------------------------------------ selections

    def select(self, mask_or_index) -> RunTable:
        """Return the table restricted to some rows, everything kept aligned.

        Parameters
        ----------
        mask_or_index : array of bool, array of int, or slice
            A boolean mask of length ``n_rows``, or row positions (in the order wanted).

        Returns
        -------
        RunTable
            A new table with the same domains, source and notes.
        """
        if isinstance(mask_or_index, slice):
            index = np.arange(self.n_rows)[mask_or_index]
        else:
            sel = np.asarray(mask_or_index)
            if sel.dtype == bool:
                if sel.shape != (self.n_rows,):
                    raise IndexError(f"boolean mask has shape {sel.shape}, expected ({self.n_rows},)")
                index = np.flatnonzero(sel)
            else:
                index = sel.astype(np.intp).reshape(-1)
        return dataclasses.replace(
            self,
            weights=self.weights[index],
            model_size=self.model_size[index],
            tokens=self.tokens[index],
            losses=self.losses[index],
            run_ids=self.run_ids[index],
            eval_losses=None if self.eval_losses is None else self.eval_losses[index],
            extra=None if self.extra is None else self.extra.iloc[index].reset_index(drop=True),
        )

    def final_checkpoints(self) -> RunTable:
        """Return the last checkpoint (most tokens) of each run."""
        return self.select(self.final_checkpoint_mask)

    def filter_scale(self, model_size=None, tokens=None, max_model_size=None) -> RunTable:
        """Keep only rows at given model sizes and/or token counts.

        Parameters
        ----------
        model_size : float or sequence of float, optional
            Model sizes to keep, matched with relative tolerance 1e-6.
        tokens : float or sequence of float, optional
            Token counts to keep, matched with relative tolerance 1e-6.
        max_model_size : float, optional
            Keep only rows with ``model_size <= max_model_size``.

        Returns
        -------
        RunTable

        Raises
        ------
        DataError
            If a requested value is not in the table, or nothing is left; the message
            lists the scales available.
        """
        mask = np.ones(self.n_rows, dtype=bool)
        kept = []
        for what, values, column in (
            ("model size", model_size, self.model_size),
            ("tokens", tokens, self.tokens),
        ):
            if values is None:
                continue
            values = [float(v) for v in np.atleast_1d(np.asarray(values, dtype=float))]
            if not values:
                continue
            hit = np.zeros(self.n_rows, dtype=bool)
            for v in values:
                this = np.isclose(column, v, rtol=SCALE_RTOL, atol=0.0)
                if not this.any():
                    raise DataError(
                        f"no rows at {what} {_fmt(v, 6)}; available scales: {self._scales_text()}",
                        file=self.source,
                    )
                hit |= this
            mask &= hit
            kept.append(f"{what} {', '.join(_fmt(v, 6) for v in values)}")
        if max_model_size is not None:
            limit = float(max_model_size)
            mask &= self.model_size <= limit * (1 + SCALE_RTOL)
            kept.append(f"model size <= {_fmt(limit, 6)}")
        if not mask.any():
            raise DataError(
                f"no rows left after keeping {' and '.join(kept)}; available scales: {self._scales_text()}",
                file=self.source,
            )
        out = self.select(mask)
        if kept and not mask.all():
            note = f"kept {out.n_rows} of {self.n_rows} rows: {' and '.join(kept)}"
            out = dataclasses.replace(out, notes=out.notes + (note,))
        return out

    def _scales_text(self) -> str:
        parts = []
        for n in self.model_sizes:
            d = np.unique(self.tokens[self.model_size == n])
            dtext = (
                ", ".join(_fmt(x, 6) for x in d)
                if len(d) <= 6
                else f"{_fmt(d[0], 6)}..{_fmt(d[-1], 6)} ({len(d)} values)"
            )
            parts.append(f"N={_fmt(n, 6)} (D {dtext})")
        return "; ".join(parts) or "none (the table is empty)"

    # ------------------------------------------------------------------ identity

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the table's content.

        Covers the domain names, weights, model sizes, tokens, losses, run ids and the
        evaluation-only domains and losses, in a canonical byte encoding (little-endian
        float64, one NaN pattern, ``-0.0`` as ``0.0``, length-prefixed UTF-8 strings),
        so it is the same across runs, processes and machines. Notes, ``extra`` and
        ``source`` are not covered.

        Returns
        -------
        str
        """
        h = hashlib.sha256(b"bayesmix.RunTable/v1\0")

        def put_strings(items):
            h.update(len(items).to_bytes(8, "little"))
            for s in items:
                b = str(s).encode("utf-8")
                h.update(len(b).to_bytes(8, "little"))
                h.update(b)

        def put_array(a):
            a = np.asarray(a, dtype=np.float64)
            a = np.where(np.isnan(a), np.nan, a + 0.0)
            h.update(np.asarray(a.shape, dtype="<i8").tobytes())
            h.update(np.ascontiguousarray(a, dtype="<f8").tobytes())

        put_strings(self.domains)
        put_array(self.weights)
        put_array(self.model_size)
        put_array(self.tokens)
        put_array(self.losses)
        put_strings(self.run_ids)
        put_strings(self.eval_domains)
        if self.eval_losses is not None:
            put_array(self.eval_losses)
        return h.hexdigest()

    # ------------------------------------------------------------------ conversion

    def to_frame(self) -> pd.DataFrame:
        """Return the table as a DataFrame in the canonical column layout.

        Columns: ``run_id``, ``model_size``, ``n_tokens``, ``weight_<d>`` per trained
        domain, ``loss_<d>`` per trained domain (all NaN when the table has no losses),
        ``loss_<e>`` per evaluation-only domain, then the ``extra`` columns.
        :meth:`from_frame` reads it back to equal arrays.

        Returns
        -------
        DataFrame
        """
        cols = {
            "run_id": pd.Series(self.run_ids, dtype=object),
            "model_size": self.model_size,
            "n_tokens": self.tokens,
        }
        for j, d in enumerate(self.domains):
            cols[f"weight_{d}"] = self.weights[:, j]
        for j, d in enumerate(self.domains):
            cols[f"loss_{d}"] = self.losses[:, j]
        for j, d in enumerate(self.eval_domains):
            cols[f"loss_{d}"] = self.eval_losses[:, j]
        df = pd.DataFrame(
            {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in cols.items()}
        )
        if self.extra is not None:
            for c in self.extra.columns:
                if c not in df.columns:
                    df[c] = self.extra[c].to_numpy()
        return df

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        *,
        mapping=None,
        model_size_column: str = "model_size",
        tokens_column: str = "n_tokens",
        run_id_column: str | None = None,
        require_losses: bool = True,
        weight_tolerance: float = 1e-2,
        source: str = "<memory>",
    ) -> RunTable:
        """Check a DataFrame and build a table from it; the same rules as :func:`load_runs`.

        Parameters
        ----------
        df : DataFrame
            One row per checkpoint; the row order is kept.
        mapping, model_size_column, tokens_column, run_id_column, require_losses, weight_tolerance
            As in :func:`load_runs`.
        source : str
            Named in error messages and kept in :attr:`RunTable.source`.

        Returns
        -------
        RunTable

        Raises
        ------
        DataError
            If the table is malformed.
        """
        return _table_from_frame(
            df,
            source=str(source),
            mapping=mapping,
            model_size_column=model_size_column,
            tokens_column=tokens_column,
            run_id_column=run_id_column,
            require_losses=require_losses,
            weight_tolerance=weight_tolerance,
        )

    @classmethod
    def from_arrays(
        cls,
        weights,
        model_size,
        tokens,
        losses=None,
        domains=None,
        run_ids=None,
        *,
        eval_losses=None,
        eval_domains=None,
        extra: pd.DataFrame | None = None,
        source: str = "<memory>",
        weight_tolerance: float = 1e-2,
    ) -> RunTable:
        """Build a table from arrays, checked by the same rules as :func:`load_runs`.

        Parameters
        ----------
        weights : array_like, shape (n, K)
            Mixture weights; rows must sum to 1 within ``weight_tolerance``.
        model_size, tokens : float or array_like, shape (n,)
            Model size ``N`` and tokens ``D``; a scalar applies to every row.
        losses : array_like, shape (n, K), optional
            Losses per trained domain (NaN = missing). None: a table of inputs only.
        domains : sequence of str, optional
            Domain names; default ``d1 .. dK``.
        run_ids : sequence, optional
            Run of each row; default: grouped by mixture and model size.
        eval_losses : array_like, shape (n, E), optional
            Losses on evaluation-only domains.
        eval_domains : sequence of str, optional
            Their names; default ``e1 .. eE``.
        extra : DataFrame, optional
            Other columns to carry along (n rows).
        source : str
            Named in error messages.
        weight_tolerance : float
            As in :func:`load_runs`.

        Returns
        -------
        RunTable

        Raises
        ------
        DataError
            If shapes disagree or values are invalid.
        """
        W = np.asarray(weights, dtype=float)
        if W.ndim != 2:
            raise DataError(
                f"weights must be a 2-D array (rows, domains), got shape {W.shape}",
                file=source,
                column="weights",
            )
        n, K = W.shape
        names = [str(d) for d in domains] if domains is not None else [f"d{j + 1}" for j in range(K)]
        if len(names) != K:
            raise DataError(
                f"{len(names)} domain names for {K} weight columns", file=source, column="domains"
            )

        def vector(value, what):
            arr = np.asarray(value, dtype=float)
            if arr.ndim == 0:
                return np.full(n, float(arr))
            if arr.shape != (n,):
                raise DataError(f"{what} has shape {arr.shape}, expected ({n},)", file=source, column=what)
            return arr

        cols = {}
        if run_ids is not None:
            rid = np.asarray(run_ids, dtype=object).reshape(-1)
            if rid.shape != (n,):
                raise DataError(
                    f"run_ids has shape {rid.shape}, expected ({n},)", file=source, column="run_ids"
                )
            cols["run_id"] = rid
        cols["model_size"] = vector(model_size, "model_size")
        cols["n_tokens"] = vector(tokens, "tokens")
        mapping = {}
        for j, d in enumerate(names):
            cols[f"weight_{d}"] = W[:, j]
        if losses is not None:
            Lm = np.asarray(losses, dtype=float)
            if Lm.shape != (n, K):
                raise DataError(
                    f"losses has shape {Lm.shape}, expected ({n}, {K})", file=source, column="losses"
                )
            for j, d in enumerate(names):
                cols[f"loss_{d}"] = Lm[:, j]
        for d in names:
            mapping[d] = (f"weight_{d}", f"loss_{d}" if losses is not None else None)
        if eval_losses is not None:
            E = np.asarray(eval_losses, dtype=float)
            if E.ndim == 1:
                E = E[:, None]
            enames = (
                [str(e) for e in eval_domains]
                if eval_domains is not None
                else [f"e{j + 1}" for j in range(E.shape[1])]
            )
            if E.shape != (n, len(enames)):
                raise DataError(
                    f"eval_losses has shape {E.shape}, expected ({n}, {len(enames)})",
                    file=source,
                    column="eval_losses",
                )
            for j, e in enumerate(enames):
                if e in mapping:
                    raise DataError(
                        f"domain '{e}' is both trained and evaluation-only",
                        file=source,
                        column="eval_domains",
                    )
                cols[f"loss_{e}"] = E[:, j]
                mapping[e] = (None, f"loss_{e}")
        elif eval_domains:
            raise DataError("eval_domains given without eval_losses", file=source, column="eval_domains")
        df = pd.DataFrame(cols)
        if extra is not None:
            extra = extra.reset_index(drop=True)
            if len(extra) != n:
                raise DataError(f"extra has {len(extra)} rows, expected {n}", file=source, column="extra")
            clash = [c for c in extra.columns if c in df.columns]
            if clash:
                raise DataError(
                    f"extra columns {clash} clash with the table's own columns",
                    file=source,
                    column=str(clash[0]),
                )
            df = pd.concat([df, extra], axis=1)
        return _table_from_frame(
            df,
            source=str(source),
            mapping=mapping,
            model_size_column="model_size",
            tokens_column="n_tokens",
            run_id_column="run_id" if run_ids is not None else None,
            require_losses=False,
            weight_tolerance=weight_tolerance,
            _from_arrays=True,
        )

    # ------------------------------------------------------------------ summary

    def summary(self) -> dict:
        """Describe the table in a plain dict (JSON-serialisable).

        Returns
        -------
        dict
            Keys: ``source``, ``fingerprint``, ``domains``, ``n_domains``,
            ``eval_domains``, ``rows``, ``runs``, ``checkpoints_per_run`` (min, median,
            max), ``n_scales`` (distinct (N, D) pairs), ``model_sizes`` (one entry per
            N: ``model_size``, ``runs``, ``rows``, ``tokens_min``, ``tokens_max``,
            ``n_token_values``), ``has_losses``, ``missing_losses`` (per domain,
            trained and evaluation-only), ``missing_losses_total``, ``notes``.
        """
        counts = self.checkpoint_counts.to_numpy()
        if len(counts):
            med = float(np.median(counts))
            per_run = {
                "min": int(counts.min()),
                "median": int(med) if med.is_integer() else med,
                "max": int(counts.max()),
            }
        else:
            per_run = {"min": 0, "median": 0, "max": 0}
        sizes = []
        for n in self.model_sizes:
            at = self.model_size == n
            t = self.tokens[at]
            sizes.append(
                {
                    "model_size": float(n),
                    "runs": int(len(pd.unique(self.run_ids[at]))),
                    "rows": int(at.sum()),
                    "tokens_min": float(t.min()),
                    "tokens_max": float(t.max()),
                    "n_token_values": int(len(np.unique(t))),
                }
            )
        missing = {}
        if self.has_losses:
            missing.update({d: int(np.isnan(self.losses[:, j]).sum()) for j, d in enumerate(self.domains)})
        for j, d in enumerate(self.eval_domains):
            missing[d] = int(np.isnan(self.eval_losses[:, j]).sum())
        return {
            "source": self.source,
            "fingerprint": self.fingerprint(),
            "domains": list(self.domains),
            "n_domains": self.n_domains,
            "eval_domains": list(self.eval_domains),
            "rows": self.n_rows,
            "runs": self.n_runs,
            "checkpoints_per_run": per_run,
            "n_scales": int(len(self.scales)),
            "model_sizes": sizes,
            "has_losses": self.has_losses,
            "missing_losses": missing,
            "missing_losses_total": int(sum(missing.values())),
            "notes": list(self.notes),
        }

    def format_summary(self) -> str:
        """The summary as readable text, as printed by ``bayesmix validate``.

        Returns
        -------
        str
        """
        s = self.summary()
        lines = [f"Run table {s['source']}"]

        def row(label, text):
            lines.append(f"  {label:<17}{text}")

        row("fingerprint", s["fingerprint"][:16])
        row("trained domains", f"{s['n_domains']}: {', '.join(s['domains'])}")
        if s["eval_domains"]:
            row(
                "evaluation-only",
                f"{len(s['eval_domains'])}: {', '.join(s['eval_domains'])} (loss logged, not in the mixture)",
            )
        else:
            row("evaluation-only", "none")
        row("rows", str(s["rows"]))
        row("runs", str(s["runs"]))
        c = s["checkpoints_per_run"]
        row("checkpoints/run", f"min {c['min']}, median {c['median']}, max {c['max']}")
        row(
            "scales",
            f"{_plural(len(s['model_sizes']), 'model size')}, {_plural(s['n_scales'], '(N, D) pair')}",
        )
        for m in s["model_sizes"]:
            if m["n_token_values"] == 1:
                dtext = f"D {_fmt(m['tokens_min'])}"
            else:
                dtext = f"D {_fmt(m['tokens_min'])}..{_fmt(m['tokens_max'])} ({m['n_token_values']} values)"
            lines.append(
                f"    N {_fmt(m['model_size']):>6}  {_plural(m['runs'], 'run'):>9}, {_plural(m['rows'], 'row'):>10}, {dtext}"
            )
        if not s["has_losses"]:
            row("losses", "none (a table of inputs only)")
        total = s["missing_losses_total"]
        if total:
            per = ", ".join(f"{d} {k}" for d, k in s["missing_losses"].items() if k)
            n_eval = sum(s["missing_losses"].get(d, 0) for d in s["eval_domains"])
            split = (
                f" ({total - n_eval} trained, {n_eval} evaluation-only)" if n_eval and n_eval != total else ""
            )
            row("missing losses", f"{total}{split}: {per}")
        elif s["has_losses"] or s["eval_domains"]:
            row("missing losses", "0")
        if s["notes"]:
            lines.append("  notes")
            lines.extend(f"    - {note}" for note in s["notes"])
        return "\n".join(lines)


# --------------------------------------------------------------------------- loading


def load_runs(
    path,
    *,
    mapping=None,
    model_size_column: str = "model_size",
    tokens_column: str = "n_tokens",
    run_id_column: str | None = None,
    require_losses: bool = True,
    weight_tolerance: float = 1e-2,
) -> RunTable:
    """Read and check a run table.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.tsv`` or ``.parquet`` file (other suffixes are read as CSV),
        one row per (run, checkpoint).
    mapping : dict, optional
        Explicit columns per domain, ``{domain: (weight_col or None, loss_col or None)}``;
        a None weight column makes the domain evaluation-only. Default: found by the
        patterns ``weight_<d>`` with ``<d>_loss`` or ``loss_<d>``; a loss column with no
        weight column is an evaluation-only domain.
    model_size_column, tokens_column : str
        Columns with the model size ``N`` (parameters) and tokens ``D``.
    run_id_column : str, optional
        Column naming the training run of each row. Default: ``run_id`` if present,
        else rows are grouped into runs by mixture (weights rounded to 1e-9) and model
        size, with ids ``run-0001``, ... in order of first appearance.
    require_losses : bool
        If True at least one trained domain needs a loss column; a trained domain
        without one (as in RegMix's tables, which log fewer losses than they train
        domains) is kept with all losses missing and noted: it takes part in the
        mixture and the law but adds no likelihood term. False for inputs (a
        prediction grid), where loss columns are optional.
    weight_tolerance : float
        Rows whose weights sum to 1 within this are renormalised (and noted); others
        are an error.

    Returns
    -------
    RunTable

    Raises
    ------
    DataError
        If the file is missing or unreadable or the table is malformed; the message
        names the file, column and first offending rows and says how to fix it.
    """
    p = Path(path).expanduser()
    source = str(path)
    if not p.exists():
        raise DataError(
            "file not found; check the path (run tables are .csv, .tsv or .parquet files)", file=source
        )
    if p.is_dir():
        raise DataError("is a directory; give the run table file inside it (e.g. runs.csv)", file=source)
    df = read_table(p, source)
    return _table_from_frame(
        df,
        source=source,
        mapping=mapping,
        model_size_column=model_size_column,
        tokens_column=tokens_column,
        run_id_column=run_id_column,
        require_losses=require_losses,
        weight_tolerance=weight_tolerance,
    )


def read_table(p, source=None, *, empty_hint: str = "a run table needs a header line and one row per checkpoint"
               ) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a frame; any failure is a :class:`DataError`.

    Parameters
    ----------
    p : str or path-like
    source : str, optional
        The name shown in messages (default: the path).
    empty_hint : str
        What the file should hold, said when it is empty.

    Raises
    ------
    DataError
        If the file is empty, binary, not UTF-8 or cannot be parsed.
    """
    p = Path(p)
    source = source or str(p)
    suffixes = [s.lower() for s in p.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            try:
                return pd.read_parquet(p)
            except ImportError as err:
                raise DataError(
                    f"reading Parquet needs pyarrow ({err}); install it with pip install 'bayesmix[parquet]' "
                    "or save the table as CSV",
                    file=source,
                ) from None
        kwargs = {"skipinitialspace": True}
        if int(pd.__version__.split(".")[0]) < 3:  # pandas 3 parses floats exactly by default
            kwargs["float_precision"] = "round_trip"
        if ".tsv" in suffixes or ".tab" in suffixes:
            kwargs["sep"] = "\t"
        df = pd.read_csv(p, **kwargs)
        # pandas renames a repeated name to 'name.1'; the header line itself shows the repeat
        header = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False, **kwargs)
        _refuse_repeated_columns(header.iloc[0].tolist() if len(header) else [], source)
        return df
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(
            f"the file is empty: {empty_hint}", file=source
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        msg = " ".join(str(err).split())
        raise DataError(
            f"cannot read the table ({msg}); save it as UTF-8 CSV with one header line", file=source
        ) from None
    except Exception as err:  # pyarrow errors and the like
        msg = " ".join(str(err).split())
        raise DataError(f"cannot read the table ({type(err).__name__}: {msg})", file=source) from None


def _refuse_repeated_columns(names, source) -> None:
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


def _parse_mapping(mapping, columns, source):
    trained, evals = [], []
    used = {}
    for domain, spec in mapping.items():
        domain = str(domain)
        if isinstance(spec, str) or not hasattr(spec, "__len__") or len(spec) != 2:
            raise DataError(
                f"mapping for domain '{domain}' must be a pair (weight_column or None, loss_column or None), got {spec!r}",
                file=source,
            )
        wcol, lcol = (None if c in (None, "") else str(c) for c in spec)
        if wcol is None and lcol is None:
            raise DataError(
                f"domain map gives domain '{domain}' neither a weight nor a loss column", file=source
            )
        for col in (wcol, lcol):
            if col is None:
                continue
            if col not in columns:
                raise DataError(
                    f"unknown column: the domain map names '{col}' for domain '{domain}', but the table has no such "
                    f"column (columns: {_list_columns(columns)}); correct --domain-map",
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
        if wcol is None:
            evals.append((domain, lcol))
        else:
            trained.append((domain, wcol, lcol))
    return trained, evals


def _find_domains(columns, reserved, source):
    """Pattern search: weight_<d> with <d>_loss or loss_<d>; other loss columns -> eval-only."""
    lower = {}
    for c in columns:
        lower.setdefault(c.lower(), []).append(c)
    trained, used = [], set()
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
        lcol = cands[0] if cands else None
        trained.append((d, c, lcol))
        used.add(c)
        if lcol:
            used.add(lcol)
    evals, aggregates = [], []
    seen = {d.lower(): d for d, _, _ in trained}
    for c in columns:
        if c in reserved or c in used:
            continue
        if c.lower() in _AGGREGATE_LOSS_NAMES:
            aggregates.append(c)
            continue
        for pat in _LOSS_PATTERNS:
            m = pat.match(c)
            if m:
                name = m.group(1)
                if name.lower() in seen:
                    other = seen[name.lower()]
                    raise DataError(
                        f"evaluation domain '{name}' from column '{c}' clashes with domain '{other}'; "
                        "rename one or use --domain-map",
                        file=source,
                        column=c,
                    )
                seen[name.lower()] = name
                evals.append((name, c))
                break
    return trained, evals, aggregates


def _numeric(series: pd.Series, column: str, role: str, source: str) -> np.ndarray:
    """Column -> float array; non-numeric cells are a DataError showing the bad value."""
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
        example = values[bad[0]]
        hint = {
            "weight": "write the mixture weight as a plain number (e.g. 0.25)",
            "loss": "write losses as plain numbers and leave the cell empty where a loss was not logged",
            "size": "write model sizes as plain numbers of parameters (e.g. 122000000 or 1.22e8, not 122M)",
            "tokens": "write token counts as plain numbers (e.g. 20000000000 or 2e10, not 20B)",
        }[role]
        raise DataError(
            f"non-numeric cell {str(example)!r} ({_plural(len(bad), 'such cell')}); {hint}",
            file=source,
            column=column,
            rows=_rows(bad),
        )
    return out


@dataclass(frozen=True)
class _Roles:
    """What each column of a run table is: the trained domains ``(domain, weight column,
    loss column or None)``, the evaluation-only ones ``(domain, loss column)``, the
    aggregate-loss and loose weight-like columns kept as extras, and the run-id column."""

    trained: list
    evals: list
    aggregates: list
    loose: list
    run_col: str | None
    reserved: set


def _table_from_frame(
    df,
    *,
    source,
    mapping,
    model_size_column,
    tokens_column,
    run_id_column,
    require_losses,
    weight_tolerance,
    _from_arrays=False,
) -> RunTable:
    """A validated :class:`RunTable` from a frame: a chain of small steps, each returning
    arrays and the notes a user is shown (column roles, cells, weights, losses, exact
    duplicates, runs, checkpoints, near-duplicates, what is kept)."""
    df = _checked_frame(df, source)
    columns = list(df.columns)
    notes: list[str] = []
    roles = _column_roles(columns, source=source, mapping=mapping, model_size_column=model_size_column,
                          tokens_column=tokens_column, run_id_column=run_id_column,
                          require_losses=require_losses, map_hint="" if _from_arrays else " (Python: mapping=)")
    if roles.loose:
        notes.append("weight-like columns not in the domain map kept as extra columns, not part of the mixture: "
                     f"{_list_columns(roles.loose)}")
    domains = tuple(d for d, _, _ in roles.trained)
    wcols = [w for _, w, _ in roles.trained]
    lcols = [l for _, _, l in roles.trained]
    ecols = [l for _, l in roles.evals]
    W, N, D, L, E = _cells(df, wcols, lcols, ecols, model_size_column, tokens_column, source)
    _check_scales(N, D, model_size_column, tokens_column, source)
    W, weight_notes = _checked_weights(W, wcols, roles.loose, weight_tolerance, source)
    notes += weight_notes
    _check_losses(((lcols, L), (ecols, E)), source)
    _refuse_exact_duplicates(df, source)
    run_ids, codes, uniques, run_notes = _runs(df, roles.run_col, W, N, source, _from_arrays)
    notes += run_notes
    all_losses = L if E is None else np.column_stack([L, E])
    _refuse_repeated_checkpoints(codes, uniques, D, all_losses, tokens_column, source)
    keep, near_notes = _near_duplicate_checkpoints(codes, D, all_losses)
    notes += near_notes
    notes += _kept_notes(roles, domains, L, E, all_losses, keep)
    role_cols = set(roles.reserved) | set(wcols) | {c for c in lcols if c} | set(ecols)
    other = [c for c in columns if c not in role_cols]
    return RunTable(
        domains=domains,
        weights=W[keep],
        model_size=N[keep],
        tokens=D[keep],
        losses=L[keep],
        run_ids=run_ids[keep],
        eval_domains=tuple(d for d, _ in roles.evals),
        eval_losses=None if E is None else E[keep],
        extra=df.loc[keep, other].reset_index(drop=True) if other else None,
        source=source,
        notes=tuple(notes),
    )


def _checked_frame(df, source) -> pd.DataFrame:
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
    _refuse_repeated_columns(list(df.columns), source)
    return df


def _column_roles(columns, *, source, mapping, model_size_column, tokens_column, run_id_column,
                  require_losses, map_hint) -> _Roles:
    """The role of every column (:class:`_Roles`), from the names or the domain map."""
    for col, option, arg, what in (
        (model_size_column, "--model-size-column", "model_size_column", "model-size (N, parameters)"),
        (tokens_column, "--tokens-column", "tokens_column", "tokens (D)"),
    ):
        if col not in columns:
            raise DataError(
                f"no {what} column '{col}' (columns: {_list_columns(columns)}); name yours with {option} COL "
                f"(Python: {arg}=...)",
                file=source,
                column=col,
            )
    if model_size_column == tokens_column:
        raise DataError("the model-size and tokens columns must differ", file=source, column=tokens_column)
    if run_id_column is not None:
        if run_id_column not in columns:
            raise DataError(
                f"no run-id column '{run_id_column}' (columns: {_list_columns(columns)}); correct --run-id-column "
                "(Python: run_id_column=), or leave it out to group runs by mixture and model size",
                file=source,
                column=run_id_column,
            )
        run_col = run_id_column
    else:
        run_col = "run_id" if "run_id" in columns else None
    reserved = {model_size_column, tokens_column} | ({run_col} if run_col else set())
    aggregates: list[str] = []
    loose: list[str] = []
    if mapping is not None:
        trained, evals, loose = _mapped_domains(mapping, columns, reserved, source)
    else:
        trained, evals, aggregates = _find_domains(columns, reserved, source)
        if not trained:
            raise DataError(
                "no mixture weight columns found: looked for columns named weight_<domain>, with losses in "
                f"<domain>_loss or loss_<domain> (columns: {_list_columns(columns)}); rename the columns, or name "
                "them with --domain-map 'domain=WEIGHT_COL:LOSS_COL,...' (Python: mapping=)",
                file=source,
            )
    if require_losses and all(l is None for _, _, l in trained):
        d, w, _ = trained[0]
        looked = "" if mapping is not None else f" (looked for <domain>_loss and loss_<domain>, e.g. {d}_loss)"
        raise DataError(
            f"no loss column for any trained domain{looked}: a fit needs the validation loss of at least one "
            f"trained domain; if they are under other names, map them with --domain-map '{d}={w}:LOSS_COL,...'"
            f"{map_hint}",
            file=source,
            column=w,
        )
    return _Roles(trained, evals, aggregates, loose, run_col, reserved)


def _mapped_domains(mapping, columns, reserved, source) -> tuple[list, list, list]:
    """Trained and evaluation-only domains of a domain map, and the weight-like columns
    it leaves out."""
    if not mapping:
        raise DataError("the domain map is empty; give at least one domain=WEIGHT_COL:LOSS_COL", file=source)
    trained, evals = _parse_mapping(mapping, columns, source)
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


def _cells(df, wcols, lcols, ecols, model_size_column, tokens_column, source):
    """The numeric cells: weights ``W``, sizes ``N``, tokens ``D``, trained losses ``L``
    (NaN where a domain has no loss column) and evaluation-only losses ``E`` (or None);
    a missing weight is refused."""
    n = len(df)
    W = np.column_stack([_numeric(df[c], c, "weight", source) for c in wcols])
    N = _numeric(df[model_size_column], model_size_column, "size", source)
    D = _numeric(df[tokens_column], tokens_column, "tokens", source)
    L = np.full((n, len(wcols)), np.nan)
    for j, c in enumerate(lcols):
        if c is not None:
            L[:, j] = _numeric(df[c], c, "loss", source)
    E = np.column_stack([_numeric(df[c], c, "loss", source) for c in ecols]) if ecols else None
    for j, c in enumerate(wcols):
        bad = np.flatnonzero(np.isnan(W[:, j]))
        if len(bad):
            raise DataError(
                f"missing weight ({_plural(len(bad), 'empty cell')}): every row needs its full mixture; write 0 for "
                "a domain the run did not train on",
                file=source,
                column=c,
                rows=_rows(bad),
            )
    return W, N, D, L, E


def _check_scales(N, D, model_size_column, tokens_column, source) -> None:
    """Refuse a missing, non-positive or non-finite model size or token count."""
    for col, values, what in ((model_size_column, N, "model size N"), (tokens_column, D, "token count D")):
        bad = np.flatnonzero(np.isnan(values))
        if len(bad):
            raise DataError(
                f"missing {what} ({_plural(len(bad), 'empty cell')}): every row needs it",
                file=source,
                column=col,
                rows=_rows(bad),
            )
        bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
        if len(bad):
            raise DataError(
                f"{what} must be positive and finite, got {format_number(values[bad[0]])}; fix the value",
                file=source,
                column=col,
                rows=_rows(bad),
            )


def _checked_weights(W, wcols, loose, weight_tolerance, source) -> tuple[np.ndarray, list[str]]:
    """Weights refused where not finite, negative or not summing to 1 within
    ``weight_tolerance``; renormalised (with a note) where off by more than rounding."""
    for j, c in enumerate(wcols):
        bad = np.flatnonzero(~np.isfinite(W[:, j]))
        if len(bad):
            raise DataError(
                f"weight must be finite, got {format_number(W[bad[0], j])}", file=source, column=c, rows=_rows(bad)
            )
        bad = np.flatnonzero(W[:, j] < 0)
        if len(bad):
            raise DataError(
                f"negative weight {format_number(W[bad[0], j])}: mixture weights are fractions between 0 and 1",
                file=source,
                column=c,
                rows=_rows(bad),
            )
    sums = W.sum(axis=1)
    dev = np.abs(sums - 1.0)
    bad = np.flatnonzero(dev > weight_tolerance)
    if len(bad):
        shown = ", ".join(f"{sums[i]:.6g}" for i in bad[:3])
        raise DataError(
            f"weights sum to {shown}{', ...' if len(bad) > 3 else ''} instead of 1 (tolerance {weight_tolerance:g}) "
            f"in {_plural(len(bad), 'row')}; the weight columns ({_list_columns(wcols, 8)}) must hold the whole "
            "mixture: fix the weights, add the missing domain"
            + (f" ({_list_columns(loose, 4)} not in the domain map)" if loose else "")
            + ", or raise weight_tolerance (Python) to renormalise them",
            file=source,
            rows=_rows(bad),
        )
    fix = np.flatnonzero(dev > _ROUNDOFF)
    if not len(fix):
        return W, []
    W = W.copy()
    W[fix] = W[fix] / sums[fix, None]
    return W, [
        f"renormalised the weights of {_plural(len(fix), 'row')} to sum to 1: they summed to "
        f"{sums[fix].min():.6g}..{sums[fix].max():.6g} (max deviation {dev[fix].max():.3g}, "
        f"within the tolerance {weight_tolerance:g})"
    ]


def _check_losses(columns_and_values, source) -> None:
    """Refuse a logged loss that is not positive and finite (an empty cell is allowed)."""
    for cols, M in columns_and_values:
        for j, c in enumerate(cols):
            if c is None:
                continue
            v = M[:, j]
            bad = np.flatnonzero(~np.isnan(v) & (~np.isfinite(v) | (v <= 0)))
            if len(bad):
                raise DataError(
                    f"loss must be positive and finite, got {format_number(v[bad[0]])}; fix it, or leave the cell "
                    "empty if the loss was not logged",
                    file=source,
                    column=c,
                    rows=_rows(bad),
                )


def _refuse_exact_duplicates(df, source) -> None:
    dup = np.flatnonzero(df.duplicated(keep=False).to_numpy())
    if len(dup):
        first = dup[0]
        same = [i for i in dup if df.iloc[i].equals(df.iloc[first])] if len(dup) <= 2000 else list(dup[:2])
        raise DataError(
            f"exact duplicate rows (every column equal; {_plural(len(dup), 'row')} involved, e.g. rows "
            f"{', '.join(str(r) for r in _rows(same, 4))} are the same): a checkpoint was logged twice; delete the repeats",
            file=source,
            rows=_rows(dup),
        )


def _runs(df, run_col, W, N, source, from_arrays: bool):
    """Each row's run id, its code, the distinct ids and a note: from the run-id column
    (refused where one id has several mixtures or sizes), else grouped by mixture and size."""
    if run_col is not None:
        raw = df[run_col]
        missing = np.flatnonzero(raw.isna().to_numpy())
        if len(missing):
            raise DataError(
                "missing run id: every row needs one, or leave the run-id column out to group runs by mixture and model size",
                file=source,
                column=run_col,
                rows=_rows(missing),
            )
        if pd.api.types.is_float_dtype(raw.dtype) and np.all(np.mod(raw.to_numpy(dtype=float), 1) == 0):
            run_ids = np.array([str(int(v)) for v in raw.to_numpy(dtype=float)], dtype=object)
        else:
            run_ids = np.array([str(v) for v in raw.to_numpy(dtype=object)], dtype=object)
        codes, uniques = pd.factorize(run_ids)
        # one run = one mixture and one model size
        for what, M, tol in (("mixtures", W, 1e-6), ("model sizes", N[:, None], None)):
            g = pd.DataFrame(M).groupby(codes)
            spread = (g.max() - g.min()).to_numpy()
            limit = tol if tol is not None else SCALE_RTOL * g.max().to_numpy()
            bad_runs = np.flatnonzero((spread > limit).any(axis=1))
            if len(bad_runs):
                rows = np.flatnonzero(codes == bad_runs[0])
                raise DataError(
                    f"run '{uniques[bad_runs[0]]}' has rows with different {what} ({_plural(len(bad_runs), 'run')} like "
                    f"this); a run is one mixture at one model size: give each training run its own id in "
                    f"'{run_col}', or leave the run-id column out to group runs by mixture and model size",
                    file=source,
                    column=run_col,
                    rows=_rows(rows),
                )
        return run_ids, codes, uniques, []
    key = np.column_stack([np.round(W, _MIXTURE_DECIMALS) + 0.0, N])
    _, first_idx, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first_idx, kind="stable")  # groups in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[inverse]
    width = max(4, len(str(len(order))))
    uniques = np.array([f"run-{i + 1:0{width}d}" for i in range(len(order))], dtype=object)
    if from_arrays:
        note = f"no run ids given: grouped the rows into {_plural(len(order), 'run')} by mixture and model size"
    else:
        note = (f"no run-id column: grouped the rows into {_plural(len(order), 'run')} by mixture and model size "
                "(give a run-id column, --run-id-column, if separate runs share both)")
    return uniques[codes], codes, uniques, [note]


def _refuse_repeated_checkpoints(codes, uniques, D, all_losses, tokens_column, source) -> None:
    """Refuse two rows of one run at one token count: conflicting (different losses) or
    repeated (the same losses)."""
    key = pd.DataFrame({"run": codes, "D": D})
    clash = key.duplicated(keep=False).to_numpy()
    if not clash.any():
        return
    groups = key[clash].groupby(["run", "D"], sort=False).groups
    first_rows = np.asarray(next(iter(groups.values())))
    run_name = uniques[codes[first_rows[0]]]
    differ = any(not _same_rows(all_losses[first_rows[0]], all_losses[i]) for i in first_rows[1:])
    hint = (
        "if these are separate training runs (e.g. other seeds), give each its own id in a run-id column "
        "(--run-id-column)"
    )
    if differ:
        raise DataError(
            f"conflicting checkpoints: run '{run_name}' has {len(first_rows)} rows at {_fmt(D[first_rows[0]], 6)} tokens "
            f"with different losses ({_plural(len(groups), 'such checkpoint')} in all); keep one row per checkpoint, "
            f"or {hint}",
            file=source,
            column=tokens_column,
            rows=_rows(first_rows),
        )
    raise DataError(
        f"repeated checkpoint: run '{run_name}' logs the same losses twice at {_fmt(D[first_rows[0]], 6)} tokens "
        f"({_plural(len(groups), 'such checkpoint')} in all); delete the repeated rows, or {hint}",
        file=source,
        column=tokens_column,
        rows=_rows(first_rows),
    )


def _near_duplicate_checkpoints(codes, D, all_losses) -> tuple[np.ndarray, list[str]]:
    """Rows to keep and notes: of two checkpoints of one run less than
    :data:`NEAR_DUPLICATE_RTOL` apart in tokens with identical losses, the larger token
    count is kept; with different losses both are (and a note says so)."""
    order = np.lexsort((-D, codes))
    drop: list[int] = []
    dropped_pairs: list[tuple[int, int]] = []  # (dropped, kept)
    close_different = 0
    final_dups = 0
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and codes[order[stop]] == codes[order[start]]:
            stop += 1
        kept_prev = None
        for pos in range(start, stop):
            i = order[pos]
            if kept_prev is not None and (D[kept_prev] - D[i]) / D[kept_prev] < NEAR_DUPLICATE_RTOL:
                if np.isfinite(all_losses[i]).any() and _same_rows(all_losses[i], all_losses[kept_prev]):
                    drop.append(i)
                    dropped_pairs.append((i, kept_prev))
                    final_dups += int(kept_prev == order[start])
                    continue
                close_different += 1
            kept_prev = i
        start = stop
    notes = []
    if drop:
        runs_hit = len({codes[k] for _, k in dropped_pairs})
        d_small, d_big = dropped_pairs[0][0], dropped_pairs[0][1]
        small, big = _distinct_format(D[d_small], D[d_big])
        which = "final checkpoint" if final_dups == len(drop) else "a checkpoint"
        verb = "logs its" if runs_hit == 1 else "log their"
        if which == "a checkpoint":
            verb = "logs" if runs_hit == 1 else "log"
        notes.append(
            f"{_plural(runs_hit, 'run')} {verb} {which} twice under two token counts less than 1% apart with "
            f"identical losses (e.g. {small} and {big}): kept the larger token count, dropped "
            f"{_plural(len(drop), 'row')} (rows {', '.join(str(r) for r in _rows(sorted(drop), 5))}"
            f"{', ...' if len(drop) > 5 else ''})"
        )
    if close_different:
        notes.append(
            f"{_plural(close_different, 'pair')} of checkpoints of one run less than 1% apart in tokens have different "
            "losses: kept both"
        )
    keep = np.ones(len(D), dtype=bool)
    keep[drop] = False
    return keep, notes


def _kept_notes(roles: _Roles, domains, L, E, all_losses, keep) -> list[str]:
    """Notes on what the table keeps: evaluation-only domains, aggregate columns, domains
    without losses, missing loss values."""
    notes = []
    if roles.evals:
        desc = ", ".join(f"{d} (column {c})" for d, c in roles.evals)
        notes.append(
            f"evaluation-only {'domain' if len(roles.evals) == 1 else 'domains'} {desc}: a loss with no weight column, so "
            "not part of the mixture; kept as a target to evaluate, not fitted as a trained domain"
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
            f"no loss column for {_plural(len(no_loss), 'trained domain')} ({', '.join(no_loss)}): "
            f"{'it takes' if len(no_loss) == 1 else 'they take'} part in the mixture and the law (trained "
            "tokens compete for capacity) but contribute no likelihood term; predictions cover them"
        )
    logged = [j for j, (_, _, l) in enumerate(roles.trained) if l is not None]
    miss = {domains[j]: int(np.isnan(L[keep, j]).sum()) for j in logged}
    if E is not None:
        miss.update({d: int(np.isnan(E[keep, j]).sum()) for j, (d, _) in enumerate(roles.evals)})
    total = sum(miss.values())
    if total and not inputs_only:
        present = all_losses[keep][:, [*logged, *range(len(domains), all_losses.shape[1])]]
        rows_with = int(np.isnan(present).any(axis=1).sum())
        rows_none = int(np.isnan(present).all(axis=1).sum())
        per = ", ".join(f"{d} {k}" for d, k in miss.items() if k)
        none_text = f" ({rows_none} with no loss at all)" if rows_none else ""
        notes.append(
            f"{_plural(total, 'loss value')} missing ({per}) in {_plural(rows_with, 'row')}{none_text}: kept as "
            "NaN; fits use the losses that are there"
        )
    return notes
