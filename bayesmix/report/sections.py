"""The report's sections, one function each."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import numpy as np

from .. import _az
from ..units import format_quantity
from .document import Section
from .figures import elpd_figure, figure_grid, hide_unused_axes, rank_figure
from .layout import GREYS, MARKERS, MAX_RANK_PANELS, MAX_TABLE_ROWS
from .markup import (as_number, by_domain_array, cell_html, find_records, fmt_value, html_kv, html_table, is_records,
                     record_columns, section_title)


def overview_section(fit, posterior) -> Section:
    attrs = fit.attrs
    rows = [
        ("law", attrs.get("law", fit.law.name)),
        ("domains", ", ".join(fit.domains)),
        *([("evaluation-only domains (predicted)", ", ".join(fit.eval_domains))] if fit.eval_domains else []),
        *([("evaluation-only domains (not predicted by the law)", ", ".join(attrs["eval_domains_not_modelled"]))]
          if attrs.get("eval_domains_not_modelled") else []),
        ("source", attrs.get("source", "")),
        ("data fingerprint", attrs.get("fingerprint", "")),
        ("posterior draws", str(posterior.n_draws)),
    ]
    rows += [tuple(line.split(": ", 1)) for line in fit.observation_design.describe()]
    settings = attrs.get("settings") or {}
    if isinstance(settings, dict) and settings:
        rows.append(("sampler settings", ", ".join(f"{k}={v}" for k, v in settings.items())))
    return Section("overview", section_title("overview"), html_kv(rows))


def data_section(table) -> Section:
    if table is None:
        return Section("data", section_title("data"),
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
    body = (html_kv(overall) + "<h3>Per domain</h3>" + html_table(header, body_rows, text_cols=1)
            + "<h3>Per model size</h3>"
            + html_table(["model size N (parameters)", "runs", "rows", "tokens D"], per_size, text_cols=1))
    return Section("data", section_title("data"), body)


def diagnostics_section(fit) -> Section:
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
        ("max R-hat", fmt_value(np.nanmax(rhat) if np.isfinite(rhat).any() else np.nan, ".4f") + " (good: <= 1.01)"),
        ("min bulk ESS", fmt_value(np.nanmin(summary["ess_bulk"].to_numpy(dtype=float)), ".0f")),
        ("min tail ESS", fmt_value(np.nanmin(summary["ess_tail"].to_numpy(dtype=float)), ".0f")),
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
        rows.append([str(summary.index[i]), fmt_value(r["mean"], ".4g"), fmt_value(r["sd"], ".3g"),
                     fmt_value(r["hdi_lower"], ".4g"), fmt_value(r["hdi_upper"], ".4g"),
                     fmt_value(r["ess_bulk"], ".0f"), fmt_value(r["ess_tail"], ".0f"), fmt_value(r["r_hat"], ".4f")])
    body = (html_kv(overall) + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
            + "<h3>Parameters, worst R-hat first</h3>"
            + '<p class="note">5%/95%: bounds of the 90% highest-density interval, in the parameter\'s own units '
              "(reference units of the fit).</p>"
            + html_table(header, rows, text_cols=1))
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
        fig = rank_figure({label: draws[label] for label in labels})
        shown = (f"the {len(labels)} parameters with the highest R-hat (of {len(summary)})"
                 if len(summary) > len(labels) else "every parameter")
        figures.append(("rank", fig, f"Rank plots of {shown}: per chain, the histogram of the ranks of its draws "
                                     "among all chains. Well-mixed chains give flat histograms near the dotted line."))
    return Section("diagnostics", section_title("diagnostics"), body, figures)


def ppc_section(posterior, table, seed) -> Section:
    if table is None or not table["has_observed"]:
        return Section("ppc", section_title("ppc"), omitted="The fit stores no observed losses (observed_data group "
                                                      "absent); posterior predictive check omitted.")
    summary = posterior.summarise(table["weights"], table["model_size"], table["tokens"], seed=seed)
    obs = table["losses"]
    domains = table["domains"]
    K = len(domains)
    rows = []
    fig, axes = figure_grid(K, width=3.4, height=3.2)
    sizes = np.unique(np.round(table["model_size"]))
    for k, d in enumerate(domains):
        ax = axes[k]
        ok = np.isfinite(obs[:, k])
        inside = (obs[ok, k] >= summary["q05"][ok, k]) & (obs[ok, k] <= summary["q95"][ok, k])
        rel = np.abs(summary["mean"][ok, k] - obs[ok, k]) / obs[ok, k]
        rows.append([d, str(int(ok.sum())), fmt_value(100 * inside.mean() if ok.any() else np.nan, ".1f") + "%",
                     fmt_value(100 * rel.mean() if ok.any() else np.nan, ".2f") + "%"])
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
    hide_unused_axes(axes, K)
    fig.tight_layout()
    body = ('<p>Each fitted row predicted from the posterior (expected loss, posterior mean) with the 90% '
            "interval of one run's observed loss (observation noise included).</p>"
            + html_table(["domain", "observed cells", "inside 90% interval", "mean relative error"], rows,
                          text_cols=1))
    caption = ("Observed against predicted loss per domain (nats); bars: 90% predictive intervals; "
               "marker: model size; dashed line: perfect prediction.")
    return Section("ppc", section_title("ppc"), body, [("observed-vs-predicted", fig, caption)])


def scaling_section(posterior, table, target_model_size, target_tokens, seed, scales=None) -> Section:
    """The predicted loss against model size and tokens per domain, out to the target.

    Parameters
    ----------
    posterior : Posterior
    table : dict or None
        The fit's run table (:func:`bayesmix._az.table_groups`); None: curves at the
        uniform mixture over the fitted ``scales`` (else around the reference scale),
        without observed points.
    target_model_size, target_tokens : float or None
        The target scale; None: 10 times the largest fitted model size (token count).
    seed : int
        Seed of the predictive noise draws.
    scales : dict, optional
        The fit's ``scales`` attribute (``model_sizes`` and ``tokens``, fitted range):
        where a fit stores no run table (a shipped model), its fitted range.

    Returns
    -------
    Section
    """
    domains = list(posterior.target_domains)
    frame = _scale_frame(posterior, table, scales)
    target_N = float(target_model_size or 10 * frame.n_max)
    target_D = float(target_tokens or 10 * frame.d_max)
    curves = _scaling_curves(posterior, frame, target_N, target_D, seed)
    fig = _scaling_figure(domains, table, frame, curves, target_N, target_D)
    at_target = curves["target"]
    rows = [[d, fmt_value(at_target[0][0, k], ".4f"), fmt_value(at_target[1][0, k], ".4f"), fmt_value(at_target[2][0, k], ".4f")]
            for k, d in enumerate(domains)]
    body = (f"<p>Curves at {html.escape(frame.mixture_text)} ("
            + html.escape(", ".join(f"{d}={w:.3f}" for d, w in zip(domains, frame.mixture)))
            + f"); observed points come from their own mixtures and scatter around them. Left: N varies with "
              f"D = {frame.ratio:.3g} N (median tokens per parameter of the data). Right: D varies at the largest "
              f"fitted N and at the target N. Target: N = {format_quantity(target_N)} parameters, "
              f"D = {format_quantity(target_D)} tokens.</p>"
            + html_table(["domain", "predicted loss at target (nats)", "5%", "95%"], rows, text_cols=1))
    caption = ("Loss (nats) against model size (parameters, left) and training tokens (right) per domain: "
               "fitted law (solid/dashed), 90% predictive band (grey), observed losses (open markers by model "
               "size), the largest fitted scale (dotted) and the target (star with 90% interval).")
    figures = [("loss-vs-scale", fig, caption)]
    budget = _budget_along_n(posterior, frame, curves["n_grid"], target_N)
    if budget is not None:
        figures.append(("uncertainty-budget", _budget_figure(budget, frame, target_N), BUDGET_CAPTION))
        share = budget["shares"][-1]
        body += (f"<p>At the target, the law's error at a scale the fit did not see is "
                 f"{100 * share[1]:.0f}% of the predictive variance and the fit's parameters "
                 f"{100 * share[0]:.0f}% (mean over domains; <code>bayesmix predict --explain</code> "
                 "gives them per domain).</p>")
    return Section("scaling", section_title("scaling"), body, figures)


#: Fills of the budget's parts, dark to light in :data:`bayesmix.uncertainty.PARTS` order.
BUDGET_GREYS = ("0.35", "0.6", "0.8", "0.93")
BUDGET_CAPTION = ("Where the predictive band's width comes from along model size (D = N times the data's "
                  "median tokens per parameter, the curves' mixture): left, the shares of the predictive "
                  "variance of the log-loss (mean over domains) from the fit's parameters, the law's error "
                  "at a scale the fit did not see, a new mixture's effect and a new run's noise "
                  "(bayesmix.uncertainty); right, the total predictive sd in % of the loss (mean over "
                  "domains, the range over domains shaded). Dotted: the largest fitted N; star: the target.")


def _budget_along_n(posterior, frame, n_grid, target_N: float) -> dict | None:
    """The uncertainty budget along ``n_grid`` and at the target (its last row): the parts'
    shares of the variance and the total sd, per point averaged over domains; None where
    the fit's parts do not add (:func:`bayesmix.uncertainty.uncertainty_budget` refuses)."""
    from ..errors import UsageError
    from ..uncertainty import PARTS, uncertainty_budget

    N = np.r_[n_grid, target_N]
    try:
        budget = uncertainty_budget(posterior, np.tile(frame.mixture, (len(N), 1)), N, frame.ratio * N)
    except UsageError:
        return None
    variance = np.stack([budget[p] ** 2 for p in PARTS], axis=-1)  # (points, T, parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.nanmean(variance / variance.sum(axis=-1, keepdims=True), axis=1)
    return {"N": N, "shares": shares, "total": budget["total"], "parts": PARTS}


def _budget_figure(budget: dict, frame, target_N: float):
    """Variance shares (stacked, left) and total predictive sd (right) against N."""
    fig, axes = figure_grid(2, width=4.2, height=3.4, cols=2)
    N, shares, total = budget["N"][:-1], budget["shares"][:-1], 100 * budget["total"][:-1]
    axes[0].stackplot(N, shares.T, labels=budget["parts"], colors=BUDGET_GREYS, edgecolor="0.2", linewidth=0.4)
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("share of predictive variance")
    axes[1].fill_between(N, total.min(axis=1), total.max(axis=1), color="0.85", label="range over domains")
    axes[1].plot(N, total.mean(axis=1), "-", color="0.0", lw=1.3, label="mean over domains")
    axes[1].plot([target_N], [100 * budget["total"][-1].mean()], "*", color="0.0", ms=10, label="target")
    axes[1].set_ylabel("predictive sd (% of loss)")
    for ax in axes:
        ax.set_xscale("log")
        ax.axvline(frame.n_max, ls=":", color="0.4", lw=1)
        ax.set_xlabel("model size N (parameters)")
    axes[0].legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # the stack fills the axes
    axes[1].legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class _ScaleFrame:
    """Where the scaling curves are drawn: at ``mixture`` (described by ``mixture_text``),
    N with D = ``ratio`` N, and the fitted ranges of N and D."""

    mixture: np.ndarray
    mixture_text: str
    ratio: float
    n_min: float
    n_max: float
    d_min: float
    d_max: float


def _scale_frame(posterior, table, scales=None) -> _ScaleFrame:
    """The data's mean mixture, median tokens per parameter and scale ranges; without a
    run table, the uniform mixture and the fitted range of ``scales`` (the fit's
    attribute: tokens per parameter at the range's geometric middle), or without it the
    reference scale."""
    if table is not None:
        mixture = table["weights"].mean(axis=0)
        N_obs, D_obs = table["model_size"], table["tokens"]
        ratio = float(np.median(D_obs / N_obs))
        ranges = (N_obs.min(), N_obs.max(), D_obs.min(), D_obs.max())
        return _ScaleFrame(mixture / mixture.sum(), "the mean training mixture", ratio, *ranges)
    K = len(posterior.domains)
    sizes = np.asarray((scales or {}).get("model_sizes") or [], dtype=float)
    tokens = np.asarray((scales or {}).get("tokens") or [], dtype=float)
    if sizes.size and tokens.size:
        ranges = (sizes.min(), sizes.max(), tokens.min(), tokens.max())
        ratio = float(np.sqrt(tokens.min() * tokens.max() / (sizes.min() * sizes.max())))
    else:
        n_ref, d_ref = posterior.scaling.n_ref, posterior.scaling.d_ref
        ratio = d_ref / n_ref
        ranges = (n_ref / 4, n_ref, d_ref / 4, d_ref)
    return _ScaleFrame(np.full(K, 1.0 / K), "the uniform mixture (the fit stores no run table)", ratio, *ranges)


def _scaling_curves(posterior, frame: _ScaleFrame, target_N: float, target_D: float, seed) -> dict:
    """Predictive bands ``(mean, q05, q95)``, each ``(points, K)``: along N (``"n"``, on
    ``"n_grid"``), along D at the largest fitted N and at the target N (``"d_max"``,
    ``"d_target"``, on ``"d_grid"``), and at the target (``"target"``)."""

    def band(N, D):
        s = posterior.summarise(np.tile(frame.mixture, (len(N), 1)), N, D, seed=seed)
        return s["mean"], s["q05"], s["q95"]

    n_grid = np.geomspace(min(frame.n_min, target_N) / 1.5, max(target_N, frame.n_max) * 1.2, 40)
    d_grid = np.geomspace(min(frame.d_min, target_D) / 1.5, max(target_D, frame.d_max) * 1.2, 40)
    return {"n_grid": n_grid, "d_grid": d_grid,
            "n": band(n_grid, frame.ratio * n_grid),
            "d_max": band(np.full(len(d_grid), frame.n_max), d_grid),
            "d_target": band(np.full(len(d_grid), target_N), d_grid),
            "target": band(np.array([target_N]), np.array([target_D]))}


def _scaling_figure(domains, table, frame: _ScaleFrame, curves: dict, target_N: float, target_D: float):
    """Two panels per domain: loss against N (left) and against D (right)."""
    fig, axes = figure_grid(2 * len(domains), width=3.6, height=3.0, cols=2)
    sizes = np.unique(np.round(table["model_size"])) if table is not None else []
    for k, d in enumerate(domains):
        ax_n, ax_d = axes[2 * k], axes[2 * k + 1]
        _plot_scaling_bands(ax_n, ax_d, k, curves, frame, target_N)
        if table is not None and table["has_observed"]:
            _plot_observed_losses(ax_n, ax_d, k, table, sizes)
        for ax, value in ((ax_n, target_N), (ax_d, target_D)):
            mean, lo, hi = curves["target"]
            ax.errorbar([value], mean[:, k], yerr=[mean[:, k] - lo[:, k], hi[:, k] - mean[:, k]], fmt="*",
                        color="0.0", ms=10, capsize=3, label="target (90% interval)")
        ax_n.axvline(frame.n_max, ls=":", color="0.4", lw=1, label="largest N fitted")
        ax_d.axvline(frame.d_max, ls=":", color="0.4", lw=1, label="largest D fitted")
        _label_scaling_axes(ax_n, ax_d, d)
    axes[0].legend(fontsize=6, loc="upper right")
    axes[1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    return fig


def _plot_scaling_bands(ax_n, ax_d, k: int, curves: dict, frame: _ScaleFrame, target_N: float) -> None:
    """Domain ``k``'s fitted law and 90% predictive band along N and along D."""
    n_grid, d_grid = curves["n_grid"], curves["d_grid"]
    curve_n, curve_d_max, curve_d_target = curves["n"], curves["d_max"], curves["d_target"]
    ax_n.fill_between(n_grid, curve_n[1][:, k], curve_n[2][:, k], color="0.85", label="90% predictive band")
    ax_n.plot(n_grid, curve_n[0][:, k], "-", color="0.0", lw=1.3, label=f"fitted law, D = {frame.ratio:.3g} N")
    ax_d.fill_between(d_grid, curve_d_target[1][:, k], curve_d_target[2][:, k], color="0.85")
    ax_d.fill_between(d_grid, curve_d_max[1][:, k], curve_d_max[2][:, k], color="0.7", alpha=0.6)
    ax_d.plot(d_grid, curve_d_max[0][:, k], "-", color="0.0", lw=1.3, label=f"N = {format_quantity(frame.n_max)}")
    ax_d.plot(d_grid, curve_d_target[0][:, k], "--", color="0.0", lw=1.3,
              label=f"N = {format_quantity(target_N)} (target)")


def _plot_observed_losses(ax_n, ax_d, k: int, table, sizes) -> None:
    """Domain ``k``'s observed losses against N and against D, one open marker per model size."""
    ok = np.isfinite(table["losses"][:, k])
    for j, s in enumerate(sizes):
        sel = ok & (np.round(table["model_size"]) == s)
        style = dict(ls="none", marker=MARKERS[j % len(MARKERS)], mfc="white", mec=GREYS[j % len(GREYS)],
                     ms=4, mew=0.9)
        ax_n.plot(table["model_size"][sel], table["losses"][sel, k], **style)
        ax_d.plot(table["tokens"][sel], table["losses"][sel, k], label=f"observed, N={format_quantity(s)}",
                  **style)


def _label_scaling_axes(ax_n, ax_d, domain: str) -> None:
    """Log scales, axis labels and titles of a domain's two panels."""
    from matplotlib.ticker import NullFormatter

    for ax in (ax_n, ax_d):
        ax.set_xscale("log")
        # a range under one decade gets minor-tick labels that overprint each other
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("loss (nats)")
    ax_n.set_xlabel("model size N (parameters)")
    ax_d.set_xlabel("training tokens D (tokens)")
    ax_n.set_title(f"{domain}: loss against model size", fontsize=9)
    ax_d.set_title(f"{domain}: loss against tokens", fontsize=9)


def recommendation_section(rec, fit) -> Section:
    if rec is None:
        return Section("recommendation", section_title("recommendation"),
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
    lo = by_domain_array(opt.get("q05"), domains)
    hi = by_domain_array(opt.get("q95"), domains)
    mean = by_domain_array(opt.get("mean"), domains)
    bounds = rec.get("constraints") or {}
    lower = by_domain_array(bounds.get("lower"), domains)
    upper = by_domain_array(bounds.get("upper"), domains)
    losses = rec.get("domain_losses") or {}
    rows = []
    for i, d in enumerate(domains):
        dl = losses.get(d, {})
        rows.append([d, f"{mix[i]:.4f}", f"{fmt_value(mean[i], '.3f')} [{fmt_value(lo[i], '.3f')}, {fmt_value(hi[i], '.3f')}]",
                     f"[{fmt_value(lower[i], '.3g')}, {fmt_value(upper[i], '.3g')}]",
                     f"{fmt_value(dl.get('mean'), '.4f')} [{fmt_value(dl.get('q05'), '.4f')}, {fmt_value(dl.get('q95'), '.4f')}]"])
    target = rec.get("target") or {}
    objective = rec.get("predicted_objective") or {}
    risk = rec.get("risk") or {}
    regret = rec.get("expected_regret") or {}
    kv = [("target", f"N = {format_quantity(float(target['model_size']))} parameters, "
                     f"D = {format_quantity(float(target['tokens']))} tokens" if target else "-"),
          ("objective", str((rec.get("objective") or {}).get("description", "-"))),
          ("risk measure", str(risk.get("description", risk.get("measure", "-")))),
          ("predicted objective (nats)", f"mean {fmt_value(objective.get('mean'), '.4f')}, 90% interval "
                                         f"[{fmt_value(objective.get('q05'), '.4f')}, {fmt_value(objective.get('q95'), '.4f')}]"),
          ("expected regret (nats)", f"{fmt_value(regret.get('mean'), '.3g')} (95% quantile {fmt_value(regret.get('q95'), '.3g')})")]
    body = (html_kv(kv) + "".join(f'<p class="warn">{html.escape(n)}</p>' for n in notes)
            + html_table(["domain", "recommended weight", "optimal mixture: mean [90% interval]", "bounds",
                           "expected loss (nats): mean [90%]"], rows, text_cols=1))
    baselines = rec.get("baselines") or []
    if baselines:
        brows = [[str(b.get("name")), fmt_value((b.get("objective") or {}).get("mean"), ".4f"),
                  fmt_value(b.get("prob_better"), ".3f"), fmt_value(b.get("expected_gain"), ".4g")] for b in baselines]
        body += "<h3>Against baselines</h3>" + html_table(
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
    return Section("recommendation", section_title("recommendation"), body, [("mixture", fig, caption)])


def comparison_section(cmp) -> Section:
    if cmp is None:
        return Section("comparison", section_title("comparison"),
                       omitted="No comparison given (--compare CMP.json); section omitted.")
    records = cmp.get("summary") if isinstance(cmp, dict) else cmp
    if not is_records(records):
        records = find_records(cmp)
    if not records:
        body = ('<p class="note">The comparison JSON holds no table of records; its contents:</p><pre>'
                + html.escape(json.dumps(cmp, indent=1)[:20000]) + "</pre>")
        return Section("comparison", section_title("comparison"), body)
    bayesmix_cmp = isinstance(cmp, dict) and cmp.get("bayesmix_type") == "comparison"
    overall = [r for r in records if r.get("domain") in ("all", None)] if bayesmix_cmp else records
    columns = record_columns(overall)
    if bayesmix_cmp:
        preferred = ["law", "status", "n_runs", "elpd", "elpd_se", "elpd_diff", "elpd_diff_se", "weight",
                     "mre_all", "mre_trained", "coverage90", "pareto_k_bad", "max_rhat", "divergences", "reason"]
        columns = [c for c in preferred if c in columns]
        overall = sorted(overall, key=lambda r: (r.get("status") != "ok", as_number(r.get("elpd_diff"), np.inf)))
    rows = [[cell_html(r.get(c)) for c in columns] for r in overall]
    body = ""
    if bayesmix_cmp:
        body += (f"<p>Cross-validation: {html.escape(str(cmp.get('cv')))}; ELPD: held-out log predictive density "
                 "of whole runs (nats), summed over runs; elpd_diff: difference to the best law.</p>")
    body += html_table(columns, rows, text_cols=1)
    figures = []
    plot_rows = [r for r in overall if as_number(r.get("elpd")) is not None and np.isfinite(as_number(r.get("elpd")))]
    name_key = "law" if plot_rows and "law" in plot_rows[0] else (columns[0] if columns else None)
    if plot_rows and name_key:
        figures.append(("elpd", elpd_figure(plot_rows, name_key),
                        "ELPD of each law (nats; open circle, bar: +-1 SE) and its difference to the best law "
                        "(filled square, bar: +-1 SE of the difference); higher is better."))
    else:
        body += '<p class="note">No ELPD column in the comparison; ELPD plot omitted.</p>'
    return Section("comparison", section_title("comparison"), body, figures)


def next_section(frame, n_rows) -> Section:
    if frame is None:
        return Section("next", section_title("next"), omitted="No acquisition ranking given (--next NEXT.csv); section omitted.")
    shown = frame.head(n_rows)
    columns = [str(c) for c in shown.columns]
    counts = [i for i, c in enumerate(columns) if c in ("model_size", "tokens", "n_tokens")]
    rows = [[format_quantity(float(v)) if i in counts and as_number(v) is not None else cell_html(v)
             for i, v in enumerate(row)] for row in shown.itertuples(index=False)]
    text_cols = sum(1 for c in shown.columns if shown[c].dtype.kind in "OUSb")
    body = (f"<p>The first {len(shown)} of {len(frame)} candidate runs, in the ranking's order.</p>"
            + html_table(columns, rows, text_cols=1 if text_cols else 0))
    return Section("next", section_title("next"), body)
