"""Text pieces of the run-table messages and notes: counts, row numbers, column lists."""

from __future__ import annotations


def row_numbers(positions, limit=None) -> list[int]:
    """0-based row positions -> 1-based data-row numbers."""
    out = [int(p) + 1 for p in positions]
    return out if limit is None else out[:limit]


def fmt(value: float, digits: int = 4) -> str:
    """A count with a K/M/B/T suffix and ``digits`` significant digits (``1.22B``)."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{suffix}"
    return f"{value:.{digits}g}"


def distinct_format(a: float, b: float) -> tuple[str, str]:
    """Format two counts compactly but with enough digits to tell them apart."""
    for digits in range(4, 13):
        fa, fb = fmt(a, digits), fmt(b, digits)
        if fa != fb:
            return fa, fb
    return repr(a), repr(b)


def list_columns(columns, limit=12) -> str:
    """The first ``limit`` column names, and how many there are in all when more."""
    cols = list(columns)
    shown = ", ".join(cols[:limit])
    return shown + (f", ... ({len(cols)} in all)" if len(cols) > limit else "")


def plural(n: int, word: str, plural: str | None = None) -> str:
    """``'1 row'``, ``'2 rows'``."""
    return f"{n} {word if n == 1 else (plural or word + 's')}"
