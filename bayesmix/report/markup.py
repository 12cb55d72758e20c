"""HTML pieces: titles, key-value lists, tables, number formatting, and the records of a
comparison JSON."""

from __future__ import annotations

import html
import json

import numpy as np

from .layout import SECTIONS


def section_title(section_id):
    return dict(SECTIONS)[section_id]


def html_kv(rows) -> str:
    return ("<table>" + "".join(f'<tr><th class="text">{html.escape(str(k))}</th><td class="text">'
                                f"{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>")


def html_table(header, rows, *, text_cols=0) -> str:
    def cls(i):
        return ' class="text"' if i < text_cols else ""

    head = "<tr>" + "".join(f"<th{cls(i)}>{html.escape(str(h))}</th>" for i, h in enumerate(header)) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{html.escape(str(v))}</td>" for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def fmt_value(value, spec) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return format(value, spec) if np.isfinite(value) else "-"


def as_number(value, default=None):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if np.isfinite(value) else default


def cell_html(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return fmt_value(value, ".4g")
    if isinstance(value, (dict, list)):
        return json.dumps(value)[:80]
    return str(value)


def by_domain_array(values, domains) -> np.ndarray:
    if not isinstance(values, dict):
        return np.full(len(domains), np.nan)
    return np.array([as_number(values.get(d), np.nan) for d in domains], dtype=float)


def is_records(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def find_records(data):
    """The first list of records (dicts) found in a JSON document, or a dict of dicts as records."""
    if is_records(data):
        return data
    if isinstance(data, dict):
        if data and all(isinstance(v, dict) for v in data.values()) and not any(
                isinstance(x, (dict, list)) for v in data.values() for x in v.values()):
            return [{"name": k, **v} for k, v in data.items()]
        for value in data.values():
            found = find_records(value)
            if found:
                return found
    return None


def record_columns(records) -> list:
    columns = []
    for r in records:
        for key in r:
            if key not in columns:
                columns.append(key)
    return columns
