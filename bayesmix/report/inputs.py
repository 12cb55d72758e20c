"""The decisions a report shows, read from the files the commands write."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError, UsageError


def read_recommendation(path) -> dict:
    """Read a recommendation JSON written by ``bayesmix recommend --out``.

    Raises
    ------
    UsageError
        If the file is missing or is not a recommendation.
    """
    data = _read_json(path, "recommendation", "bayesmix recommend FIT --target-model-size N --target-tokens D --out REC.json")
    if data.get("bayesmix_type") != "recommendation" or "mixture" not in data:
        raise UsageError(f"{path}: not a bayesmix recommendation (write one with 'bayesmix recommend ... --out REC.json')")
    return data


def read_comparison(path) -> dict:
    """Read a comparison JSON (``bayesmix compare --json``) or any JSON holding a table."""
    data = _read_json(path, "comparison", "bayesmix compare RUNS.csv --json CMP.json")
    if not isinstance(data, (dict, list)):
        raise UsageError(f"{path}: expected a JSON object or list, found {type(data).__name__}")
    return data


def read_next_table(path):
    """Read the acquisition ranking CSV written by ``bayesmix next``."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: acquisition ranking not found; write one with 'bayesmix next ... --out {path}'")
    try:
        frame = pd.read_csv(path)
    except Exception as err:  # pandas raises several types for unreadable CSV
        raise DataError(f"cannot read the acquisition ranking as CSV ({err})", file=str(path)) from None
    if frame.empty:
        raise DataError("the acquisition ranking has no rows", file=str(path))
    return frame


def _read_json(path, what, how):
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: {what} file not found; write one with '{how}'")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", file=str(path)) from None
