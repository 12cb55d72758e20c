"""Progress bars for long loops (cross-validation fits, campaign steps).

A bar is drawn on standard error only when it is a terminal and the user did not ask
for quiet; otherwise nothing is written, so logs and pipes stay clean. Uses ``rich``,
which PyMC already depends on (its own sampling bars are rich bars).
"""

from __future__ import annotations

import sys


def wanted(quiet: bool = False, stream=None) -> bool:
    """Whether to draw progress: not ``quiet`` and ``stream`` (stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return not quiet and hasattr(stream, "isatty") and stream.isatty()


class ProgressBar:
    """A context manager around a rich progress bar; does nothing when disabled.

    Parameters
    ----------
    total : int or None
        Number of steps; None when unknown (e.g. a compute budget).
    description : str
    enabled : bool
        Usually :func:`wanted` of the command's ``--quiet``.

    Examples
    --------
    >>> with ProgressBar(3, "fits", enabled=False) as bar:
    ...     for i in range(3):
    ...         bar.advance(f"fit {i} done")
    """

    def __init__(self, total: int | None, description: str, *, enabled: bool = True):
        self.total, self.description, self.enabled = total, description, enabled
        self.steps = 0
        self._progress = None
        self._task = None

    def __enter__(self) -> "ProgressBar":
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TimeRemainingColumn(),
                                      TextColumn("{task.fields[status]}"), console=Console(stderr=True),
                                      transient=False)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, status="")
        return self

    def advance(self, status: str = "", steps: int = 1) -> None:
        """Count ``steps`` more done and show ``status`` beside the bar."""
        self.steps += steps
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, status=status[:80])

    def set_total(self, total: int | None) -> None:
        """Change the number of steps (e.g. once a loop knows how many there are)."""
        self.total = total
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
