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

The modules, one job each: ``table`` (:class:`RunTable`), ``reading`` (files),
``columns`` (what each column holds, cells as numbers), ``arrays`` (the arrays given to
:meth:`RunTable.from_arrays`), ``validation`` (scales, weights, losses, repeated rows),
``runs`` (runs and checkpoints), ``loader`` (the chain of steps from a frame or arrays
to a checked table), ``summary`` (a table described) and ``_text`` (message pieces).
"""

from __future__ import annotations

from .reading import load_runs, read_table
from .runs import NEAR_DUPLICATE_RTOL, SCALE_RTOL
from .table import RunTable

__all__ = ["NEAR_DUPLICATE_RTOL", "SCALE_RTOL", "RunTable", "load_runs", "read_table"]
