"""The :class:`RunTable`: a checked run table as aligned, read-only arrays.

Its constructor checks only that the shapes agree; :meth:`RunTable.from_frame` and
:meth:`RunTable.from_arrays` check the values (:mod:`bayesmix.data.loader`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, UsageError
from ._text import fmt
from .loader import fields_from_arrays, fields_from_frame
from .runs import SCALE_RTOL
from .summary import format_summary, table_summary

__all__ = ["RunTable"]


def _frozen(array, dtype=float) -> np.ndarray:
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


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

    def with_unlogged_evaluation_domains(self, names) -> RunTable:
        """The table with an evaluation-only loss column of NaN (not logged) for each of
        ``names`` it does not have: a table of runs that a fit predicting those domains
        can be scored on, their cells predicted but never scored."""
        new = [str(n) for n in names if str(n) not in self.eval_domains]
        if not new:
            return self
        logged = self.eval_losses if self.eval_losses is not None else np.zeros((self.n_rows, 0))
        return dataclasses.replace(self, eval_domains=self.eval_domains + tuple(new),
                                   eval_losses=np.column_stack([logged, np.full((self.n_rows, len(new)), np.nan)]))

    def with_evaluation_domains(self, names=None) -> RunTable:
        """The table with evaluation-only domains as domains of weight 0 in every run.

        What a law that predicts evaluation-only domains
        (:attr:`bayesmix.laws.Law.predicts_evaluation_domains`) is fitted to and scored
        on: the evaluation-only domains follow the trained ones in :attr:`domains`, with
        their losses.

        Parameters
        ----------
        names : sequence of str, optional
            The evaluation-only domains to move, in this order (default: all of them);
            the others stay evaluation-only.

        Returns
        -------
        RunTable
            The table itself when there is nothing to move.

        Raises
        ------
        DataError
            If a name is not an evaluation-only domain of the table.
        """
        names = tuple(self.eval_domains if names is None else (str(n) for n in names))
        missing = [n for n in names if n not in self.eval_domains]
        if missing:
            raise DataError(f"no evaluation-only loss column for {', '.join(map(repr, missing))} (the table has "
                            f"{', '.join(self.eval_domains) or 'none'}); add its loss column, e.g. "
                            f"loss_{missing[0]}, or use a fit without it", file=self.source)
        if not names:
            return self
        moved = [self.eval_domains.index(n) for n in names]
        kept = [j for j in range(len(self.eval_domains)) if j not in moved]
        zeros = np.zeros((self.n_rows, len(names)))
        return dataclasses.replace(
            self, domains=self.domains + names, weights=np.hstack([self.weights, zeros]),
            losses=np.hstack([self.losses, self.eval_losses[:, moved]]),
            eval_domains=tuple(self.eval_domains[j] for j in kept),
            eval_losses=self.eval_losses[:, kept] if kept else None)

    def without_evaluation_domains(self) -> RunTable:
        """The table without its evaluation-only domains (and their losses).

        Returns
        -------
        RunTable
            The table itself when it has none.
        """
        if not self.eval_domains:
            return self
        return dataclasses.replace(self, eval_domains=(), eval_losses=None)

    def with_domain_order(self, order) -> RunTable:
        """The table with its trained domains in another order.

        Parameters
        ----------
        order : sequence of int
            Positions in :attr:`domains`, each once: ``domains[order[0]]`` comes first.

        Returns
        -------
        RunTable
            Weights and losses permuted alike; evaluation-only domains unchanged.

        Raises
        ------
        UsageError
            If ``order`` is not a permutation of the domains' positions.
        """
        order = [int(j) for j in order]
        if sorted(order) != list(range(self.n_domains)):
            raise UsageError(f"a domain order must name each of the {self.n_domains} domains once, got {order}")
        return dataclasses.replace(self, domains=tuple(self.domains[j] for j in order),
                                   weights=self.weights[:, order], losses=self.losses[:, order])

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
            The rows kept; a note says what was kept when rows were dropped.

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
                        f"no rows at {what} {fmt(v, 6)}; available scales: {self._scales_text()}",
                        file=self.source,
                    )
                hit |= this
            mask &= hit
            kept.append(f"{what} {', '.join(fmt(v, 6) for v in values)}")
        if max_model_size is not None:
            limit = float(max_model_size)
            mask &= self.model_size <= limit * (1 + SCALE_RTOL)
            kept.append(f"model size <= {fmt(limit, 6)}")
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
                ", ".join(fmt(x, 6) for x in d)
                if len(d) <= 6
                else f"{fmt(d[0], 6)}..{fmt(d[-1], 6)} ({len(d)} values)"
            )
            parts.append(f"N={fmt(n, 6)} (D {dtext})")
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
    def from_frame(cls, df: pd.DataFrame, *, mapping=None, model_size_column: str = "model_size",
                   tokens_column: str = "n_tokens", run_id_column: str | None = None, require_losses: bool = True,
                   weight_tolerance: float = 1e-2, source: str = "<memory>") -> RunTable:
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
            The rows of ``df``, checked.

        Raises
        ------
        DataError
            If the table is malformed.
        """
        return cls(**fields_from_frame(df, source=str(source), mapping=mapping, model_size_column=model_size_column,
                                        tokens_column=tokens_column, run_id_column=run_id_column,
                                        require_losses=require_losses, weight_tolerance=weight_tolerance))

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
            The rows of the arrays, checked.

        Raises
        ------
        DataError
            If shapes disagree or values are invalid.
        """
        return cls(**fields_from_arrays(
            weights, model_size, tokens, losses, domains, run_ids, eval_losses=eval_losses,
            eval_domains=eval_domains, extra=extra, source=source, weight_tolerance=weight_tolerance,
        ))

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
        return table_summary(self)

    def format_summary(self) -> str:
        """The summary as readable text, as printed by ``bayesmix validate``.

        Returns
        -------
        str
        """
        return format_summary(self.summary())
