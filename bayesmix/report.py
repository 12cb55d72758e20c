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

import base64
import datetime as _dt
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _az
from ._files import atomic_path, write_text_atomic
from .errors import DataError, UsageError
from .units import format_quantity

#: Order and titles of the report's sections.
SECTIONS = (
    ("overview", "Fit overview"),
    ("data", "Data summary"),
    ("diagnostics", "Sampler diagnostics"),
    ("ppc", "Posterior predictive check"),
    ("scaling", "Loss against model size and tokens"),
    ("recommendation", "Recommended mixture"),
    ("comparison", "Law comparison"),
    ("next", "Next runs (acquisition ranking)"),
)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
#: Greys for series that also differ by marker/line style (colour is never the only cue).
GREYS = ("0.0", "0.35", "0.55", "0.2", "0.45", "0.65")

#: Rank plots show at most this many parameters (those with the highest R-hat).
MAX_RANK_PANELS = 12
#: The diagnostics table lists at most this many parameters (worst R-hat first).
MAX_TABLE_ROWS = 40


@dataclass
class Section:
    """One section of the report.

    Attributes
    ----------
    id : str
        HTML id of the section (one of :data:`SECTIONS`).
    title : str
    body : str
        HTML text (tables, paragraphs), already escaped.
    figures : list of (name, Figure, caption)
        matplotlib figures, drawn in order after ``body``.
    omitted : str or None
        When set, the section's input was not given: the one-line note shown instead.
    """

    id: str
    title: str
    body: str = ""
    figures: list = field(default_factory=list)
    omitted: str | None = None


@dataclass
class Report:
    """A rendered report: sections with HTML text and figures.

    Use :func:`build_report` to create one.
    """

    title: str
    sections: list
    meta: dict = field(default_factory=dict)

    def section(self, section_id: str) -> Section:
        for sec in self.sections:
            if sec.id == section_id:
                return sec
        raise KeyError(section_id)

    def figure_names(self) -> list:
        """``<section>-<name>`` of every figure, in order."""
        return [f"{sec.id}-{name}" for sec in self.sections for name, _, _ in sec.figures]

    def to_html(self) -> str:
        """The report as one HTML document with the figures embedded as base64 PNG."""
        parts = [
            "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            f"<title>{html.escape(self.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
            f"<h1>{html.escape(self.title)}</h1>",
            f'<p class="meta">{html.escape(self.meta.get("generated", ""))}</p>',
            '<nav><ul>' + "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in self.sections)
            + "</ul></nav>",
        ]
        for sec in self.sections:
            cls = ' class="omitted"' if sec.omitted else ""
            parts.append(f'<section id="{sec.id}"{cls}>')
            parts.append(f"<h2>{html.escape(sec.title)}</h2>")
            if sec.omitted:
                parts.append(f'<p class="note">{html.escape(sec.omitted)}</p>')
            else:
                parts.append(sec.body)
                for name, fig, caption in sec.figures:
                    data = base64.b64encode(_png_bytes(fig)).decode("ascii")
                    parts.append(
                        f'<figure id="fig-{sec.id}-{name}"><img src="data:image/png;base64,{data}" '
                        f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
                    )
            parts.append("</section>")
        parts += ["</body>", "</html>"]
        return "\n".join(parts)

    def write_html(self, path) -> Path:
        """Write :meth:`to_html` to ``path`` atomically (folders created as needed)."""
        return write_text_atomic(path, self.to_html())

    def write_pngs(self, folder) -> list:
        """Write every figure as ``<folder>/<section>-<name>.png``; returns the paths."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder}: exists and is not a folder; --format png writes the figures into a folder")
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for sec in self.sections:
            for name, fig, _ in sec.figures:
                path = folder / f"{sec.id}-{name}.png"
                with atomic_path(path) as tmp:
                    Path(tmp).write_bytes(_png_bytes(fig))
                paths.append(path)
        return paths


_CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#111;line-height:1.4}
h1{border-bottom:2px solid #111}h2{border-bottom:1px solid #999;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #999;padding:3px 8px;text-align:right}th{background:#eee}
td.text,th.text{text-align:left}
figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}figcaption{font-size:0.9em;color:#333}
.note{font-style:italic;color:#444}.warn{font-weight:bold}.meta{color:#555}
nav ul{columns:2}
"""


# --------------------------------------------------------------------------- inputs


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


# --------------------------------------------------------------------------- building


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
    from .inference import Fit

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
    if table is not None and list(table["domains"]) != list(fit.domains):
        table = None
    law = fit.attrs.get("law", fit.law.name)
    sections = [
        _overview_section(fit, posterior),
        _data_section(table),
        _diagnostics_section(fit),
        _ppc_section(posterior, table, seed),
        _scaling_section(posterior, table, target_model_size, target_tokens, seed),
        _recommendation_section(recommendation, fit),
        _comparison_section(comparison),
        _next_section(next_table, next_rows),
    ]
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return Report(title or f"bayesmix report: {law} fit of {fit.attrs.get('source', '?')}", sections,
                  {"generated": f"generated {generated}; {posterior.n_draws} posterior draws used for predictions"})


# --------------------------------------------------------------------------- sections


def _overview_section(fit, posterior) -> Section:
    attrs = fit.attrs
    rows = [
        ("law", attrs.get("law", fit.law.name)),
        ("domains", ", ".join(fit.domains)),
        ("source", attrs.get("source", "")),
        ("data fingerprint", attrs.get("fingerprint", "")),
        ("posterior draws", str(posterior.n_draws)),
    ]
    rows += [tuple(line.split(": ", 1)) for line in fit.observation_design.describe()]
    settings = attrs.get("settings") or {}
    if isinstance(settings, dict) and settings:
        rows.append(("sampler settings", ", ".join(f"{k}={v}" for k, v in settings.items())))
    return Section("overview", _title("overview"), _html_kv(rows))


def _data_section(table) -> Section:
    if table is None:
        return Section("data", _title("data"),
                       omitted="The fit stores no run table (constant_data group absent); data summary omitted.")
    domains = table["domains"]
    losses = table["losses"]
    N, D = table["model_size"], table["tokens"]
    runs = np.unique(table["run_id"])
    sizes = np.unique(np.round(N))
    token_values = np.unique(np.round(D))
    overall = [
        ("rows (checkpoints)", str(len(N))),
        ("training runs", str(len(runs))),
        ("model sizes N (parameters)", ", ".join(format_quantity(s) for s in sizes)),
        ("tokens D", f"{format_quantity(D.min())} to {format_quantity(D.max())} ({len(token_values)} distinct)"),
        ("tokens per parameter D/N", f"{np.min(D / N):.3g} to {np.max(D / N):.3g}"),
    ]
    if not table["has_observed"]:
        overall.append(("observed losses", "not stored (observed_data group absent)"))
    header = ["domain", "mean weight", "max weight", "observed", "missing", "loss min (nats)", "loss max (nats)"]
    body_rows = []
    for k, d in enumerate(domains):
        col = losses[:, k]
        finite = np.isfinite(col)
        body_rows.append([d, f"{table['weights'][:, k].mean():.3f}", f"{table['weights'][:, k].max():.3f}",
                          str(int(finite.sum())), str(int((~finite).sum())),
                          f"{col[finite].min():.4f}" if finite.any() else "-",
                          f"{col[finite].max():.4f}" if finite.any() else "-"])
    per_size = []
    for s in sizes:
        sel = np.round(N) == s
        per_size.append([format_quantity(s), str(len(np.unique(table["run_id"][sel]))), str(int(sel.sum())),
                         f"{format_quantity(D[sel].min())} to {format_quantity(D[sel].max())}"])
    body = (_html_kv(overall) + "<h3>Per domain</h3>" + _html_table(header, body_rows, text_cols=1)
            + "<h3>Per model size</h3>"
            + _html_table(["model size N (parameters)", "runs", "rows", "tokens D"], per_size, text_cols=1))
    return Section("data", _title("data"), body)


def _diagnostics_section(fit) -> Section:
    idata = fit.idata
    names = [p.name for p in fit.law.params] + [v for v in ("sigma", "run_sd", "nu")
                                                 if v in _az.posterior_var_names(idata)]
    summary = _az.parameter_summary(idata, names)
    draws = _az.labelled_chain_draws(idata, names)
    n_chains = next(iter(draws.values())).shape[0]
    notes = []
    if n_chains < 2:
        notes.append("The fit has a single chain: R-hat and rank plots need at least two; they are not meaningful here.")
    stats = _az.sampler_stats(idata)
    stored = fit.attrs.get("diagnostics") or {}
    if stats is None:
        notes.append("The fit stores no sampler statistics (sample_stats group absent): divergences and "
                     "tree-depth hits are unknown.")
    rhat = summary["r_hat"].to_numpy(dtype=float)
    overall = [
        ("chains x draws", f"{n_chains} x {next(iter(draws.values())).shape[1]}"),
        ("max R-hat", _fmt(np.nanmax(rhat) if np.isfinite(rhat).any() else np.nan, ".4f") + " (good: <= 1.01)"),
        ("min bulk ESS", _fmt(np.nanmin(summary["ess_bulk"].to_numpy(dtype=float)), ".0f")),
        ("min tail ESS", _fmt(np.nanmin(summary["ess_tail"].to_numpy(dtype=float)), ".0f")),
    ]
    if stats is not None:
        overall.append(("divergences", "unknown" if stats.get("divergences") is None else str(stats["divergences"])))
        if "treedepth_hits" in stats:
            overall.append(("tree-depth hits", str(stats["treedepth_hits"])))
    if "sampling_seconds" in stored:
        overall.append(("sampling time", f"{stored['sampling_seconds']:.1f} s"))
    order = np.argsort(-np.nan_to_num(rhat, nan=-np.inf), kind="stable")  # undefined R-hat last
    header = ["parameter", "mean", "sd", "5%", "95%", "bulk ESS", "tail ESS", "R-hat"]
    rows = []
    for i in order[:MAX_TABLE_ROWS]:
        r = summary.iloc[i]
        rows.append([str(summary.index[i]), _fmt(r["mean"], ".4g"), _fmt(r["sd"], ".3g"),
                     _fmt(r["hdi_lower"], ".4g"), _fmt(r["hdi_upper"], ".4g"),
                     _fmt(r["ess_bulk"], ".0f"), _fmt(r["ess_tail"], ".0f"), _fmt(r["r_hat"], ".4f")])
    body = (_html_kv(overall) + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
            + "<h3>Parameters, worst R-hat first</h3>"
            + '<p class="note">5%/95%: bounds of the 90% highest-density interval, in the parameter\'s own units '
              "(reference units of the fit).</p>"
            + _html_table(header, rows, text_cols=1))
    if len(order) > MAX_TABLE_ROWS:
        body += (f'<p class="note">{len(order) - MAX_TABLE_ROWS} more parameters with lower R-hat are not '
                 "listed.</p>")
    figures = []
    if n_chains >= 2:
        varying = [str(summary.index[i]) for i in order
                   if str(summary.index[i]) in draws and np.ptp(draws[str(summary.index[i])]) > 0]
        labels = varying[:MAX_RANK_PANELS]
        if len(varying) < len(summary):
            body += (f'<p class="note">{len(summary) - len(varying)} parameter(s) take a single value in every '
                     "draw (fixed); they have no R-hat and no rank plot.</p>")
        fig = _rank_figure({label: draws[label] for label in labels})
        shown = (f"the {len(labels)} parameters with the highest R-hat (of {len(summary)})"
                 if len(summary) > len(labels) else "every parameter")
        figures.append(("rank", fig, f"Rank plots of {shown}: per chain, the histogram of the ranks of its draws "
                                     "among all chains. Well-mixed chains give flat histograms near the dotted line."))
    return Section("diagnostics", _title("diagnostics"), body, figures)


def _ppc_section(posterior, table, seed) -> Section:
    if table is None or not table["has_observed"]:
        return Section("ppc", _title("ppc"), omitted="The fit stores no observed losses (observed_data group "
                                                      "absent); posterior predictive check omitted.")
    summary = posterior.summarise(table["weights"], table["model_size"], table["tokens"], seed=seed)
    obs = table["losses"]
    domains = table["domains"]
    K = len(domains)
    rows = []
    fig, axes = _grid(K, width=3.4, height=3.2)
    sizes = np.unique(np.round(table["model_size"]))
    for k, d in enumerate(domains):
        ax = axes[k]
        ok = np.isfinite(obs[:, k])
        inside = (obs[ok, k] >= summary["q05"][ok, k]) & (obs[ok, k] <= summary["q95"][ok, k])
        rel = np.abs(summary["mean"][ok, k] - obs[ok, k]) / obs[ok, k]
        rows.append([d, str(int(ok.sum())), _fmt(100 * inside.mean() if ok.any() else np.nan, ".1f") + "%",
                     _fmt(100 * rel.mean() if ok.any() else np.nan, ".2f") + "%"])
        for j, s in enumerate(sizes):
            sel = ok & (np.round(table["model_size"]) == s)
            if not sel.any():
                continue
            mean = summary["mean"][sel, k]
            ax.errorbar(obs[sel, k], mean, yerr=[mean - summary["q05"][sel, k], summary["q95"][sel, k] - mean],
                        fmt=MARKERS[j % len(MARKERS)], mfc="white", mec=GREYS[j % len(GREYS)],
                        ecolor="0.6", color=GREYS[j % len(GREYS)], ms=5, lw=0.8, capsize=0,
                        label=f"N={format_quantity(s)}")
        if ok.any():
            lo = min(obs[ok, k].min(), summary["q05"][ok, k].min())
            hi = max(obs[ok, k].max(), summary["q95"][ok, k].max())
            ax.plot([lo, hi], [lo, hi], ls="--", color="0.3", lw=1, label="predicted = observed")
        ax.set_title(d)
        ax.set_xlabel("observed loss (nats)")
        ax.set_ylabel("predicted loss (nats)")
    axes[0].legend(fontsize=7, loc="upper left")
    _hide_unused(axes, K)
    fig.tight_layout()
    body = ('<p>Each fitted row predicted from the posterior (expected loss, posterior mean) with the 90% '
            "interval of one run's observed loss (observation noise included).</p>"
            + _html_table(["domain", "observed cells", "inside 90% interval", "mean relative error"], rows,
                          text_cols=1))
    caption = ("Observed against predicted loss per domain (nats); bars: 90% predictive intervals; "
               "marker: model size; dashed line: perfect prediction.")
    return Section("ppc", _title("ppc"), body, [("observed-vs-predicted", fig, caption)])


def _scaling_section(posterior, table, target_model_size, target_tokens, seed) -> Section:
    from matplotlib.ticker import NullFormatter

    domains = list(posterior.domains)
    K = len(domains)
    if table is not None:
        mixture = table["weights"].mean(axis=0)
        N_obs, D_obs = table["model_size"], table["tokens"]
        ratio = float(np.median(D_obs / N_obs))
        n_min, n_max, d_min, d_max = N_obs.min(), N_obs.max(), D_obs.min(), D_obs.max()
        mixture_text = "the mean training mixture"
    else:
        mixture = np.full(K, 1.0 / K)
        n_ref, d_ref = posterior.scaling.n_ref, posterior.scaling.d_ref
        ratio = d_ref / n_ref
        n_min, n_max, d_min, d_max = n_ref / 4, n_ref, d_ref / 4, d_ref
        mixture_text = "the uniform mixture (the fit stores no run table)"
    target_N = float(target_model_size or 10 * n_max)
    target_D = float(target_tokens or 10 * d_max)
    mixture = mixture / mixture.sum()

    def band(N, D):
        s = posterior.summarise(np.tile(mixture, (len(N), 1)), N, D, seed=seed)
        return s["mean"], s["q05"], s["q95"]

    n_grid = np.geomspace(min(n_min, target_N) / 1.5, max(target_N, n_max) * 1.2, 40)
    d_grid = np.geomspace(min(d_min, target_D) / 1.5, max(target_D, d_max) * 1.2, 40)
    curve_n = band(n_grid, ratio * n_grid)
    curve_d_max = band(np.full(len(d_grid), n_max), d_grid)
    curve_d_target = band(np.full(len(d_grid), target_N), d_grid)
    at_target = band(np.array([target_N]), np.array([target_D]))

    fig, axes = _grid(2 * K, width=3.6, height=3.0, cols=2)
    sizes = np.unique(np.round(table["model_size"])) if table is not None else []
    for k, d in enumerate(domains):
        ax_n, ax_d = axes[2 * k], axes[2 * k + 1]
        ax_n.fill_between(n_grid, curve_n[1][:, k], curve_n[2][:, k], color="0.85", label="90% predictive band")
        ax_n.plot(n_grid, curve_n[0][:, k], "-", color="0.0", lw=1.3, label=f"fitted law, D = {ratio:.3g} N")
        ax_d.fill_between(d_grid, curve_d_target[1][:, k], curve_d_target[2][:, k], color="0.85")
        ax_d.fill_between(d_grid, curve_d_max[1][:, k], curve_d_max[2][:, k], color="0.7", alpha=0.6)
        ax_d.plot(d_grid, curve_d_max[0][:, k], "-", color="0.0", lw=1.3, label=f"N = {format_quantity(n_max)}")
        ax_d.plot(d_grid, curve_d_target[0][:, k], "--", color="0.0", lw=1.3,
                  label=f"N = {format_quantity(target_N)} (target)")
        if table is not None and table["has_observed"]:
            ok = np.isfinite(table["losses"][:, k])
            for j, s in enumerate(sizes):
                sel = ok & (np.round(table["model_size"]) == s)
                style = dict(ls="none", marker=MARKERS[j % len(MARKERS)], mfc="white", mec=GREYS[j % len(GREYS)],
                             ms=4, mew=0.9)
                ax_n.plot(table["model_size"][sel], table["losses"][sel, k], **style)
                ax_d.plot(table["tokens"][sel], table["losses"][sel, k], label=f"observed, N={format_quantity(s)}",
                          **style)
        for ax, value, (mean, lo, hi) in ((ax_n, target_N, at_target), (ax_d, target_D, at_target)):
            ax.errorbar([value], mean[:, k], yerr=[mean[:, k] - lo[:, k], hi[:, k] - mean[:, k]], fmt="*",
                        color="0.0", ms=10, capsize=3, label="target (90% interval)")
        ax_n.axvline(n_max, ls=":", color="0.4", lw=1, label="largest N fitted")
        ax_d.axvline(d_max, ls=":", color="0.4", lw=1, label="largest D fitted")
        for ax in (ax_n, ax_d):
            ax.set_xscale("log")
            # a range under one decade gets minor-tick labels that overprint each other
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel("loss (nats)")
        ax_n.set_xlabel("model size N (parameters)")
        ax_d.set_xlabel("training tokens D (tokens)")
        ax_n.set_title(f"{d}: loss against model size", fontsize=9)
        ax_d.set_title(f"{d}: loss against tokens", fontsize=9)
    axes[0].legend(fontsize=6, loc="upper right")
    axes[1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    rows = [[d, _fmt(at_target[0][0, k], ".4f"), _fmt(at_target[1][0, k], ".4f"), _fmt(at_target[2][0, k], ".4f")]
            for k, d in enumerate(domains)]
    body = (f"<p>Curves at {html.escape(mixture_text)} ("
            + html.escape(", ".join(f"{d}={w:.3f}" for d, w in zip(domains, mixture)))
            + f"); observed points come from their own mixtures and scatter around them. Left: N varies with "
              f"D = {ratio:.3g} N (median tokens per parameter of the data). Right: D varies at the largest "
              f"fitted N and at the target N. Target: N = {format_quantity(target_N)} parameters, "
              f"D = {format_quantity(target_D)} tokens.</p>"
            + _html_table(["domain", "predicted loss at target (nats)", "5%", "95%"], rows, text_cols=1))
    caption = ("Loss (nats) against model size (parameters, left) and training tokens (right) per domain: "
               "fitted law (solid/dashed), 90% predictive band (grey), observed losses (open markers by model "
               "size), the largest fitted scale (dotted) and the target (star with 90% interval).")
    return Section("scaling", _title("scaling"), body, [("loss-vs-scale", fig, caption)])


def _recommendation_section(rec, fit) -> Section:
    if rec is None:
        return Section("recommendation", _title("recommendation"),
                       omitted="No recommendation given (--recommend REC.json); section omitted.")
    domains = list(rec.get("domains") or rec["mixture"].keys())
    notes = []
    if set(domains) != set(fit.domains):
        notes.append(f"The recommendation's domains ({', '.join(domains)}) differ from the fit's "
                     f"({', '.join(fit.domains)}).")
    if rec.get("fingerprint") and fit.attrs.get("fingerprint") not in (None, "none", rec.get("fingerprint")):
        notes.append("The recommendation was computed from a fit of other data (fingerprints differ).")
    mix = np.array([float(rec["mixture"][d]) for d in domains])
    opt = rec.get("optimal_mixture") or {}
    lo = _by_domain_array(opt.get("q05"), domains)
    hi = _by_domain_array(opt.get("q95"), domains)
    mean = _by_domain_array(opt.get("mean"), domains)
    bounds = rec.get("constraints") or {}
    lower = _by_domain_array(bounds.get("lower"), domains)
    upper = _by_domain_array(bounds.get("upper"), domains)
    losses = rec.get("domain_losses") or {}
    rows = []
    for i, d in enumerate(domains):
        dl = losses.get(d, {})
        rows.append([d, f"{mix[i]:.4f}", f"{_fmt(mean[i], '.3f')} [{_fmt(lo[i], '.3f')}, {_fmt(hi[i], '.3f')}]",
                     f"[{_fmt(lower[i], '.3g')}, {_fmt(upper[i], '.3g')}]",
                     f"{_fmt(dl.get('mean'), '.4f')} [{_fmt(dl.get('q05'), '.4f')}, {_fmt(dl.get('q95'), '.4f')}]"])
    target = rec.get("target") or {}
    objective = rec.get("predicted_objective") or {}
    risk = rec.get("risk") or {}
    regret = rec.get("expected_regret") or {}
    kv = [("target", f"N = {format_quantity(float(target['model_size']))} parameters, "
                     f"D = {format_quantity(float(target['tokens']))} tokens" if target else "-"),
          ("objective", str((rec.get("objective") or {}).get("description", "-"))),
          ("risk measure", str(risk.get("description", risk.get("measure", "-")))),
          ("predicted objective (nats)", f"mean {_fmt(objective.get('mean'), '.4f')}, 90% interval "
                                         f"[{_fmt(objective.get('q05'), '.4f')}, {_fmt(objective.get('q95'), '.4f')}]"),
          ("expected regret (nats)", f"{_fmt(regret.get('mean'), '.3g')} (95% quantile {_fmt(regret.get('q95'), '.3g')})")]
    body = (_html_kv(kv) + "".join(f'<p class="warn">{html.escape(n)}</p>' for n in notes)
            + _html_table(["domain", "recommended weight", "optimal mixture: mean [90% interval]", "bounds",
                           "expected loss (nats): mean [90%]"], rows, text_cols=1))
    baselines = rec.get("baselines") or []
    if baselines:
        brows = [[str(b.get("name")), _fmt((b.get("objective") or {}).get("mean"), ".4f"),
                  _fmt(b.get("prob_better"), ".3f"), _fmt(b.get("expected_gain"), ".4g")] for b in baselines]
        body += "<h3>Against baselines</h3>" + _html_table(
            ["baseline", "objective mean (nats)", "P(recommendation better)", "expected gain (nats)"], brows,
            text_cols=1)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(4.0, 0.9 * len(domains) + 2), 3.4))
    ax = fig.add_subplot()
    x = np.arange(len(domains))
    ax.bar(x, mix, width=0.6, color="0.8", edgecolor="0.0", hatch="//", label="recommended mixture")
    if np.isfinite(lo).all() and np.isfinite(hi).all():
        centre = np.where(np.isfinite(mean), mean, mix)
        ax.errorbar(x, centre, yerr=[np.clip(centre - lo, 0, None), np.clip(hi - centre, 0, None)], fmt="o",
                    mfc="white", mec="0.0", color="0.0", capsize=4, label="optimal mixture: mean, 90% interval")
    ax.set_xticks(x, domains, rotation=30 if len(domains) > 5 else 0)
    ax.set_ylabel("weight (fraction of training tokens)")
    ax.set_ylim(0, max(1.0, float(np.nanmax(np.r_[mix, hi])) * 1.05) if np.isfinite(hi).any() else 1.0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    caption = ("Recommended mixture (hatched bars) and the posterior of the optimal mixture (circle: mean; "
               "bars: 90% interval); wide intervals are weights the data do not pin down.")
    return Section("recommendation", _title("recommendation"), body, [("mixture", fig, caption)])


def _comparison_section(cmp) -> Section:
    if cmp is None:
        return Section("comparison", _title("comparison"),
                       omitted="No comparison given (--compare CMP.json); section omitted.")
    records = cmp.get("summary") if isinstance(cmp, dict) else cmp
    if not _is_records(records):
        records = _find_records(cmp)
    if not records:
        body = ('<p class="note">The comparison JSON holds no table of records; its contents:</p><pre>'
                + html.escape(json.dumps(cmp, indent=1)[:20000]) + "</pre>")
        return Section("comparison", _title("comparison"), body)
    bayesmix_cmp = isinstance(cmp, dict) and cmp.get("bayesmix_type") == "comparison"
    overall = [r for r in records if r.get("domain") in ("all", None)] if bayesmix_cmp else records
    columns = _record_columns(overall)
    if bayesmix_cmp:
        preferred = ["law", "status", "n_runs", "elpd", "elpd_se", "elpd_diff", "elpd_diff_se", "weight",
                     "mre_all", "mre_trained", "coverage90", "pareto_k_bad", "max_rhat", "divergences", "reason"]
        columns = [c for c in preferred if c in columns]
        overall = sorted(overall, key=lambda r: (r.get("status") != "ok", _num(r.get("elpd_diff"), np.inf)))
    rows = [[_cell(r.get(c)) for c in columns] for r in overall]
    body = ""
    if bayesmix_cmp:
        body += (f"<p>Cross-validation: {html.escape(str(cmp.get('cv')))}; ELPD: held-out log predictive density "
                 "of whole runs (nats), summed over runs; elpd_diff: difference to the best law.</p>")
    body += _html_table(columns, rows, text_cols=1)
    figures = []
    plot_rows = [r for r in overall if _num(r.get("elpd")) is not None and np.isfinite(_num(r.get("elpd")))]
    name_key = "law" if plot_rows and "law" in plot_rows[0] else (columns[0] if columns else None)
    if plot_rows and name_key:
        figures.append(("elpd", _elpd_figure(plot_rows, name_key),
                        "ELPD of each law (nats; open circle, bar: +-1 SE) and its difference to the best law "
                        "(filled square, bar: +-1 SE of the difference); higher is better."))
    else:
        body += '<p class="note">No ELPD column in the comparison; ELPD plot omitted.</p>'
    return Section("comparison", _title("comparison"), body, figures)


def _next_section(frame, n_rows) -> Section:
    if frame is None:
        return Section("next", _title("next"), omitted="No acquisition ranking given (--next NEXT.csv); section omitted.")
    shown = frame.head(n_rows)
    columns = [str(c) for c in shown.columns]
    counts = [i for i, c in enumerate(columns) if c in ("model_size", "tokens", "n_tokens")]
    rows = [[format_quantity(float(v)) if i in counts and _num(v) is not None else _cell(v)
             for i, v in enumerate(row)] for row in shown.itertuples(index=False)]
    text_cols = sum(1 for c in shown.columns if shown[c].dtype.kind in "OUSb")
    body = (f"<p>The first {len(shown)} of {len(frame)} candidate runs, in the ranking's order.</p>"
            + _html_table(columns, rows, text_cols=1 if text_cols else 0))
    return Section("next", _title("next"), body)


# --------------------------------------------------------------------------- figures


def _png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _grid(n, *, width, height, cols=None):
    from matplotlib.figure import Figure

    cols = cols or min(n, 4)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(width * cols, height * rows))
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(rows * cols)]
    return fig, axes


def _hide_unused(axes, used):
    for ax in axes[used:]:
        ax.set_visible(False)


def _rank_figure(draws: dict, bins: int = 20):
    from scipy.stats import rankdata

    labels = list(draws)
    fig, axes = _grid(len(labels), width=2.8, height=2.1)
    for ax, label in zip(axes, labels):
        values = np.asarray(draws[label], dtype=float)
        chains, n = values.shape
        ranks = rankdata(values.ravel()).reshape(values.shape)
        edges = np.linspace(0.5, chains * n + 0.5, bins + 1)
        for c in range(chains):
            counts, _ = np.histogram(ranks[c], bins=edges)
            centres = 0.5 * (edges[1:] + edges[:-1])
            ax.plot(centres, counts, ls=LINESTYLES[c % len(LINESTYLES)], marker=MARKERS[c % len(MARKERS)], ms=3,
                    mfc="white", color=GREYS[c % len(GREYS)], lw=1, label=f"chain {c}")
        ax.axhline(n / bins, ls=":", color="0.5", lw=1)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("rank among all draws", fontsize=7)
        ax.set_ylabel("draws per bin", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=6)
    _hide_unused(axes, len(labels))
    fig.tight_layout()
    return fig


def _elpd_figure(records, name_key):
    from matplotlib.figure import Figure

    records = sorted(records, key=lambda r: -_num(r.get("elpd")))
    names = [str(r.get(name_key)) for r in records]
    elpd = np.array([_num(r.get("elpd")) for r in records])
    se = np.array([_num(r.get("elpd_se"), 0.0) for r in records])
    best = elpd.max()
    diff = np.array([best - _num(r.get("elpd_diff"), best) if r.get("elpd_diff") is not None else np.nan
                     for r in records])
    # bayesmix.compare reports elpd_diff as (best - law) >= 0; plot the law's ELPD implied by it.
    diff_se = np.array([_num(r.get("elpd_diff_se"), 0.0) for r in records])
    fig = Figure(figsize=(8.5, 0.6 * len(names) + 1.6))
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.errorbar(elpd, y, xerr=se, fmt="o", mfc="white", mec="0.0", color="0.0", capsize=3, label="ELPD +- SE")
    ok = np.isfinite(diff)
    if ok.any():
        ax.errorbar(diff[ok], y[ok] + 0.25, xerr=diff_se[ok], fmt="s", color="0.4", ms=5, capsize=3, ls="none",
                    label="best ELPD - difference, +- SE of difference")
    ax.axvline(best, ls="--", color="0.5", lw=1)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("ELPD, held-out log predictive density (nats)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- HTML helpers


def _title(section_id):
    return dict(SECTIONS)[section_id]


def _html_kv(rows) -> str:
    return ("<table>" + "".join(f'<tr><th class="text">{html.escape(str(k))}</th><td class="text">'
                                f"{html.escape(str(v))}</td></tr>" for k, v in rows) + "</table>")


def _html_table(header, rows, *, text_cols=0) -> str:
    def cls(i):
        return ' class="text"' if i < text_cols else ""

    head = "<tr>" + "".join(f"<th{cls(i)}>{html.escape(str(h))}</th>" for i, h in enumerate(header)) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{html.escape(str(v))}</td>" for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def _fmt(value, spec) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return format(value, spec) if np.isfinite(value) else "-"


def _num(value, default=None):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if np.isfinite(value) else default


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _fmt(value, ".4g")
    if isinstance(value, (dict, list)):
        return json.dumps(value)[:80]
    return str(value)


def _by_domain_array(values, domains) -> np.ndarray:
    if not isinstance(values, dict):
        return np.full(len(domains), np.nan)
    return np.array([_num(values.get(d), np.nan) for d in domains], dtype=float)


def _is_records(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def _find_records(data):
    """The first list of records (dicts) found in a JSON document, or a dict of dicts as records."""
    if _is_records(data):
        return data
    if isinstance(data, dict):
        if data and all(isinstance(v, dict) for v in data.values()) and not any(
                isinstance(x, (dict, list)) for v in data.values() for x in v.values()):
            return [{"name": k, **v} for k, v in data.items()]
        for value in data.values():
            found = _find_records(value)
            if found:
                return found
    return None


def _record_columns(records) -> list:
    columns = []
    for r in records:
        for key in r:
            if key not in columns:
                columns.append(key)
    return columns
