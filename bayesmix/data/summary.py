"""A run table described: as a plain dict (:func:`table_summary`) and as the text
``bayesmix validate`` prints (:func:`format_summary`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._text import fmt, plural


def table_summary(table) -> dict:
    """Describe a :class:`~bayesmix.data.RunTable` in a plain dict (JSON-serialisable);
    the keys are listed in :meth:`~bayesmix.data.RunTable.summary`."""
    return {
        "source": table.source,
        "fingerprint": table.fingerprint(),
        "domains": list(table.domains),
        "n_domains": table.n_domains,
        "eval_domains": list(table.eval_domains),
        "rows": table.n_rows,
        "runs": table.n_runs,
        "checkpoints_per_run": _checkpoints_per_run(table),
        "n_scales": int(len(table.scales)),
        "model_sizes": _model_sizes(table),
        "has_losses": table.has_losses,
        **_missing_losses(table),
        "notes": list(table.notes),
    }


def _checkpoints_per_run(table) -> dict:
    counts = table.checkpoint_counts.to_numpy()
    if not len(counts):
        return {"min": 0, "median": 0, "max": 0}
    med = float(np.median(counts))
    return {"min": int(counts.min()), "median": int(med) if med.is_integer() else med, "max": int(counts.max())}


def _model_sizes(table) -> list[dict]:
    sizes = []
    for n in table.model_sizes:
        at = table.model_size == n
        t = table.tokens[at]
        sizes.append(
            {
                "model_size": float(n),
                "runs": int(len(pd.unique(table.run_ids[at]))),
                "rows": int(at.sum()),
                "tokens_min": float(t.min()),
                "tokens_max": float(t.max()),
                "n_token_values": int(len(np.unique(t))),
            }
        )
    return sizes


def _missing_losses(table) -> dict:
    missing = {}
    if table.has_losses:
        missing.update({d: int(np.isnan(table.losses[:, j]).sum()) for j, d in enumerate(table.domains)})
    for j, d in enumerate(table.eval_domains):
        missing[d] = int(np.isnan(table.eval_losses[:, j]).sum())
    return {"missing_losses": missing, "missing_losses_total": int(sum(missing.values()))}


def format_summary(s: dict) -> str:
    """The summary ``s`` of :func:`table_summary` as readable text."""
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
    row("scales", f"{plural(len(s['model_sizes']), 'model size')}, {plural(s['n_scales'], '(N, D) pair')}")
    lines.extend(_model_size_line(m) for m in s["model_sizes"])
    if not s["has_losses"]:
        row("losses", "none (a table of inputs only)")
    missing = _missing_text(s)
    if missing is not None:
        row("missing losses", missing)
    if s["notes"]:
        lines.append("  notes")
        lines.extend(f"    - {note}" for note in s["notes"])
    return "\n".join(lines)


def _model_size_line(m: dict) -> str:
    if m["n_token_values"] == 1:
        dtext = f"D {fmt(m['tokens_min'])}"
    else:
        dtext = f"D {fmt(m['tokens_min'])}..{fmt(m['tokens_max'])} ({m['n_token_values']} values)"
    return f"    N {fmt(m['model_size']):>6}  {plural(m['runs'], 'run'):>9}, {plural(m['rows'], 'row'):>10}, {dtext}"


def _missing_text(s: dict) -> str | None:
    """The 'missing losses' line: the count, split into trained and evaluation-only, per
    domain; None when the table has no losses to miss."""
    total = s["missing_losses_total"]
    if not total:
        return "0" if s["has_losses"] or s["eval_domains"] else None
    per = ", ".join(f"{d} {k}" for d, k in s["missing_losses"].items() if k)
    n_eval = sum(s["missing_losses"].get(d, 0) for d in s["eval_domains"])
    split = f" ({total - n_eval} trained, {n_eval} evaluation-only)" if n_eval and n_eval != total else ""
    return f"{total}{split}: {per}"
