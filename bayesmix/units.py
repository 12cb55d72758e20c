"""Parsing and formatting of model sizes and token counts (``7e9``, ``7B``, ``140B``, ``122M``)."""

from __future__ import annotations

import math
import re

from .errors import UsageError

#: Largest model size (parameters) and token count accepted anywhere: far beyond any
#: trained model, so a larger value is a typo (1e300 for 1e10) and is refused.
MAX_MODEL_SIZE = 1e16
MAX_TOKENS = 1e18

_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*$")


def parse_quantity(text, *, what="quantity") -> float:
    """Parse ``'7B'``, ``'122M'``, ``'1.5e9'`` or a number into a positive float.

    Raises
    ------
    UsageError
        If the text is not a positive finite number with an optional K/M/B/T suffix.
    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _PATTERN.match(str(text))
        if not match:
            raise UsageError(
                f"cannot read {what} '{text}': write a number with an optional suffix "
                "K, M, B or T, e.g. 7e9, 7B, 140B, 122M"
            )
        value = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} must be a positive finite number, got '{text}'")
    return value


def check_scale_bounds(model_size, tokens, *, what: str = "scale") -> None:
    """Refuse model sizes or token counts that no training run can have.

    Parameters
    ----------
    model_size, tokens : float or array_like
    what : str
        What the values are, for the message (e.g. ``target`` or a file name).

    Raises
    ------
    UsageError
        If a value is not finite, below 1, or above :data:`MAX_MODEL_SIZE` (model size)
        or :data:`MAX_TOKENS` (tokens).
    """
    import numpy as np

    for label, values, top in (("model size", model_size, MAX_MODEL_SIZE), ("tokens", tokens, MAX_TOKENS)):
        values = np.atleast_1d(np.asarray(values, dtype=float))
        bad = values[~np.isfinite(values) | (values < 1) | (values > top)]
        if bad.size:
            raise UsageError(f"{what}: {label} {format_number(bad[0])} is impossible; give a value "
                             f"between 1 and {format_number(top)}")


def format_number(value) -> str:
    """Format a number plainly for a message: ``inf``, ``nan``, ``1e+300``, ``0.25``.

    Numpy scalars are shown as numbers, never as ``np.float64(...)``; non-numbers are
    shown as their ``str``.
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def format_quantity(value: float) -> str:
    """Format a count compactly: 122000000 -> '122M', 2.5e10 -> '25B'."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"
