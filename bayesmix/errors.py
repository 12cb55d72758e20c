"""Exceptions that the CLI turns into short messages and exit codes.

Every error a user can cause derives from :class:`BayesmixError`; the CLI prints its
message to stderr without a traceback and exits with ``exit_code``.
"""

from __future__ import annotations


class BayesmixError(Exception):
    """Base class of the errors bayesmix reports to users."""

    exit_code = 2


class DataError(BayesmixError, ValueError):
    """A run table (or other input file) is malformed.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    file : str, optional
        The file at fault.
    column : str, optional
        The column at fault.
    rows : sequence of int, optional
        The first offending rows, as 1-based line numbers of the data (header excluded).
    """

    def __init__(self, message, *, file=None, column=None, rows=None):
        self.file = file
        self.column = column
        self.rows = list(rows) if rows is not None else None
        where = []
        if file:
            where.append(str(file))
        if column:
            where.append(f"column '{column}'")
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:5])
            more = f" (and {len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
            where.append(f"rows {shown}{more}")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        super().__init__(prefix + message)


class UsageError(BayesmixError, ValueError):
    """An option or argument is invalid (bad unit, unknown law, infeasible constraint)."""


class NotAvailableError(BayesmixError):
    """A feature exists in the interface but is not implemented yet."""

    exit_code = 1


class FitRejectedError(BayesmixError):
    """Sampling finished but the diagnostics gate refused the fit."""

    exit_code = 1
