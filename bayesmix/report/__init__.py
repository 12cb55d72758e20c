"""A self-contained HTML report of a fit and the decisions taken from it.

:func:`build_report` turns a fit (and, optionally, a recommendation JSON written by
``bayesmix recommend --out``, a comparison JSON written by ``bayesmix compare --json``
and an acquisition ranking CSV written by ``bayesmix next``) into a :class:`Report`:
a list of :class:`Section` objects, each with HTML text and matplotlib figures.
:meth:`Report.to_html` embeds the figures as base64 PNG so that the file opens in a
browser with no server; :meth:`Report.write_pngs` writes the figures alone.

Figures are drawn for grey-scale print: series differ by marker and line style, not
by colour alone, and every axis names its unit (parameters, tokens, nats).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from .. import _az
from ..errors import UsageError
from .document import Report, Section
from .inputs import read_comparison, read_next_table, read_recommendation
from .layout import SECTIONS
from .sections import (comparison_section, data_section, diagnostics_section, next_section, overview_section,
                       ppc_section, recommendation_section, scaling_section)

__all__ = ["SECTIONS", "Report", "Section", "build_report", "read_comparison", "read_next_table",
           "read_recommendation"]


def build_report(fit, *, recommendation=None, comparison=None, next_table=None, target_model_size=None,
                 target_tokens=None, max_draws: int = 200, next_rows: int = 20, seed: int = 0,
                 title: str | None = None) -> Report:
    """Build the report of a fit.

    Parameters
    ----------
    fit : Fit or str or Path
        A fit (or the path of one written by ``bayesmix fit``).
    recommendation : dict or str or Path, optional
        Recommendation JSON (path or its dict); without it the section is omitted.
    comparison : dict or str or Path, optional
        Comparison JSON from ``bayesmix compare --json``; any other JSON with a list of
        records is shown as a plain table.
    next_table : DataFrame or str or Path, optional
        Acquisition ranking; its first ``next_rows`` rows are shown.
    target_model_size, target_tokens : float, optional
        Scale the extrapolation bands reach (parameters, tokens); default 10 times the
        largest model size and token count of the fit's data (or of the reference
        scale when the fit stores no data).
    max_draws : int
        Posterior draws used for predictions (evenly thinned).
    next_rows : int
    seed : int
        Seed of the predictive noise draws.
    title : str, optional

    Returns
    -------
    Report
    """
    from ..inference import Fit

    if not isinstance(fit, Fit):
        fit = Fit.load(fit)
    if max_draws < 1:
        raise UsageError("max_draws must be at least 1")
    if recommendation is not None and not isinstance(recommendation, dict):
        recommendation = read_recommendation(recommendation)
    if comparison is not None and not isinstance(comparison, (dict, list)):
        comparison = read_comparison(comparison)
    if next_table is not None and not hasattr(next_table, "columns"):
        next_table = read_next_table(next_table)
    for name, value in (("target model size", target_model_size), ("target tokens", target_tokens)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise UsageError(f"{name} must be positive, got {value}")

    posterior = fit.posterior(max_draws=max_draws)
    table = _az.table_groups(fit.idata)
    if table is not None and list(table["domains"]) != list(posterior.target_domains):
        table = None
    law = fit.attrs.get("law", fit.law.name)
    sections = [
        overview_section(fit, posterior),
        data_section(table),
        diagnostics_section(fit),
        ppc_section(posterior, table, seed),
        scaling_section(posterior, table, target_model_size, target_tokens, seed, scales=fit.attrs.get("scales")),
        recommendation_section(recommendation, fit),
        comparison_section(comparison),
        next_section(next_table, next_rows),
    ]
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return Report(title or f"bayesmix report: {law} fit of {fit.attrs.get('source', '?')}", sections,
                  {"generated": f"generated {generated}; {posterior.n_draws} posterior draws used for predictions"})
