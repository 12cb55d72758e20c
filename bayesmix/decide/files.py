"""Files of mixtures: a JSON object, a recommendation, or a table with one column per
domain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from .mixtures import as_mixture


def load_mixtures(path, domains) -> dict[str, np.ndarray]:
    """Read named mixtures from a file.

    Formats
    -------
    * CSV/TSV: one mixture per row, an optional ``name`` column and one column per
      domain named ``<domain>`` or ``weight_<domain>`` (missing domains get 0).
    * JSON: ``{name: {domain: weight}}``, a list of ``{"name": ..., "mixture": {...}}``,
      or a recommendation written by ``bayesmix recommend`` (its mixture, named after the
      file).

    Domains are matched by name; a domain given twice (``web`` and ``weight_web``, or a
    repeated JSON key) is refused.

    Raises
    ------
    DataError
        If the file cannot be read or a row is not a mixture over the fit's domains.
    """
    path = Path(path)
    domains = tuple(domains)
    if not path.exists():
        raise DataError("file not found", file=path)
    if path.suffix.lower() == ".json":
        raw = _json_mixtures(path)
    else:
        raw = _table_mixtures(path, domains)
    out = {}
    for name, value in raw.items():
        try:
            out[str(name)] = as_mixture(value, domains, what=f"mixture '{name}'")
        except UsageError as err:
            raise DataError(str(err), file=path) from None
    if not out:
        raise DataError("no mixtures in the file", file=path)
    return out


def _no_duplicate_keys(pairs):
    """``object_pairs_hook`` of :func:`json.loads` refusing a key given twice."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise DataError(f"'{key}' given twice in one object")
        out[key] = value
    return out


def _json_mixtures(path: Path) -> dict:
    """``{name: mixture}`` from a JSON mixture file (see :func:`load_mixtures`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read mixtures ({' '.join(str(err).split())[:120]}); "
                        "write UTF-8 JSON {name: {domain: weight}}", file=path) from None
    except DataError as err:
        raise DataError(str(err), file=path) from None
    if isinstance(data, dict) and data.get("bayesmix_type") == "recommendation":
        if not isinstance(data.get("mixture"), dict):
            raise DataError("recommendation without a 'mixture' object", file=path)
        return {path.stem: data["mixture"]}
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        raw = {}
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise DataError(f"item {i + 1} is not an object {{\"name\": ..., \"mixture\": {{...}}}}", file=path)
            name = str(item.get("name", f"mixture {i + 1}"))
            if name in raw:
                raise DataError(f"two mixtures are named '{name}'", file=path)
            raw[name] = item.get("mixture", {k: v for k, v in item.items() if k != "name"})
        return raw
    raise DataError("expected an object or a list of mixtures", file=path)


def _table_mixtures(path: Path, domains: tuple) -> dict:
    """``{name: {domain: weight}}`` from a CSV/TSV mixture file (see :func:`load_mixtures`)."""
    from ..data import read_table

    frame = read_table(path, empty_hint="a mixture file needs a header line and one mixture per row")
    columns = column_domains(frame.columns, domains, path, skip=("name",))
    raw = {}
    for i, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(frame.columns, row))
        name = str(values["name"]) if "name" in frame.columns else f"mixture {i + 1}"
        if name in raw:
            raise DataError(f"two mixtures are named '{name}'", file=path, rows=[i + 1])
        weights = {}
        for col, d in columns.items():
            try:
                weights[d] = float(values[col])
            except (TypeError, ValueError):
                raise DataError(f"weight '{values[col]}' is not a number", file=path, column=col,
                                rows=[i + 1]) from None
        raw[name] = weights
    return raw


def column_domains(columns, domains, path, *, skip=()) -> dict[str, str]:
    """``{column: domain}`` for the weight columns of a mixture or candidate file.

    A column is named ``<domain>`` or ``weight_<domain>``; columns in ``skip`` are left
    out.

    Raises
    ------
    DataError
        If a column names no domain of the fit, or two columns name the same domain.
    """
    out = {}
    for col in (str(c) for c in columns):  # a repeated header name is refused by read_table
        if col in skip:
            continue
        d = col[len("weight_"):] if str(col).startswith("weight_") else str(col)
        if d not in domains:
            raise DataError(f"column '{col}' is not a domain of the fit ({', '.join(domains)})"
                            + (f" nor one of {', '.join(s for s in skip if s)}" if any(skip) else ""),
                            file=path, column=col)
        if d in out.values():
            raise DataError(f"domain '{d}' given twice", file=path, column=col)
        out[col] = d
    return out
