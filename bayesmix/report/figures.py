"""Figure helpers: PNG bytes, grids of axes, rank plots and ELPD intervals."""

from __future__ import annotations

import io

import numpy as np

from .layout import GREYS, LINESTYLES, MARKERS
from .markup import as_number


def png_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def figure_grid(n, *, width, height, cols=None):
    from matplotlib.figure import Figure

    cols = cols or min(n, 4)
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(width * cols, height * rows))
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(rows * cols)]
    return fig, axes


def hide_unused_axes(axes, used):
    for ax in axes[used:]:
        ax.set_visible(False)


def rank_figure(draws: dict, bins: int = 20):
    from scipy.stats import rankdata

    labels = list(draws)
    fig, axes = figure_grid(len(labels), width=2.8, height=2.1)
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
    hide_unused_axes(axes, len(labels))
    fig.tight_layout()
    return fig


def elpd_figure(records, name_key):
    from matplotlib.figure import Figure

    records = sorted(records, key=lambda r: -as_number(r.get("elpd")))
    names = [str(r.get(name_key)) for r in records]
    elpd = np.array([as_number(r.get("elpd")) for r in records])
    se = np.array([as_number(r.get("elpd_se"), 0.0) for r in records])
    best = elpd.max()
    diff = np.array([best - as_number(r.get("elpd_diff"), best) if r.get("elpd_diff") is not None else np.nan
                     for r in records])
    # bayesmix.compare reports elpd_diff as (best - law) >= 0; plot the law's ELPD implied by it.
    diff_se = np.array([as_number(r.get("elpd_diff_se"), 0.0) for r in records])
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
