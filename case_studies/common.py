"""What the case studies share: where the data is, the command line, printing held-out metrics.

The public run tables live outside the project, in ``../shared/data`` next to the
project root (or wherever ``BAYESMIX_DATA`` points). A study whose table is absent
says where to put it and exits cleanly (status 0) instead of failing. Held-out runs are
scored by :func:`bayesmix.compare.heldout_scores`, the protocol the benchmarks share.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
MODELS = PROJECT_ROOT / "models"


def data_root() -> Path:
    return Path(os.environ.get("BAYESMIX_DATA", DEFAULT_DATA))


def require_table(study: str) -> Path:
    """Path of ``<data>/<study>/runs.csv``; exit 0 with directions when it is absent."""
    path = data_root() / study / "runs.csv"
    if not path.exists():
        print(f"case study '{study}': the run table is not here: {path}\n"
              f"Put the public table at that path (see ../shared/data/README.md of the project's "
              f"workspace), or point BAYESMIX_DATA at a folder holding '{study}/runs.csv'. Nothing was run.")
        sys.exit(0)
    return path


def study_parser(doc: str, folder: Path, *, draws: int = 500, tune: int = 700, chains: int = 2):
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=folder / "output",
                        help="folder for the report, figures and tables (default: ./output beside run.py)")
    parser.add_argument("--draws", type=int, default=draws, help=f"draws per chain (default {draws})")
    parser.add_argument("--tune", type=int, default=tune, help=f"tuning iterations per chain (default {tune})")
    parser.add_argument("--chains", type=int, default=chains, help=f"chains (default {chains})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default="nutpie", help="nutpie (default) or pymc")
    parser.add_argument("--export-model", action="store_true",
                        help="also write the fit as the shipped artifact under models/")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def format_metrics(metrics: dict) -> str:
    """The blocks of :func:`bayesmix.compare.heldout_scores`, one line each."""
    lines = []

    def line(name, m):
        lines.append(f"  {name:<22} rows {m['rows']:>4}  MRE {100 * m['mre_all_cells']:6.3f}%  "
                     f"(positive-weight cells {100 * m['mre_positive_weight']:6.3f}%{_levels(m)})  "
                     f"90% coverage {100 * m['coverage90']:5.1f}% {_band(m)}")

    line("all held-out rows", metrics["all_rows"])
    line("final checkpoints", metrics["final_checkpoints"])
    for size, m in metrics.get("by_model_size", {}).items():
        line(f"N = {float(size):.3g}", m)
    for domain, blocks in metrics.get("eval_domains", {}).items():
        for which, m in blocks.items():
            lines.append(f"  {domain + ', ' + which.replace('_', ' '):<22} rows {m['rows']:>4}  "
                         f"MRE {100 * m['mre_all_cells']:6.3f}%  90% coverage {100 * m['coverage90']:5.1f}% {_band(m)}")
    return "\n".join(lines)


def _levels(m: dict) -> str:
    """The MRE within domains and the domains' mean level error (older JSON: none)."""
    if "mre_within_domains" not in m:
        return ""
    return (f"; within domains {100 * m['mre_within_domains']:.3f}%, "
            f"mean level error {100 * m['mean_level_error']:+.2f}%")


def _band(m: dict) -> str:
    """The range the coverage would fall in if the posterior were right (older JSON: none)."""
    if "coverage90_band" not in m:
        return ""
    low, high = m["coverage90_band"]
    return f"(expected {100 * low:.0f}-{100 * high:.0f}%)"


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, default=lambda v: v.item() if hasattr(v, "item") else str(v))
        fh.write("\n")


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def fit_train_split(args, table, train_mask, *, law="capacity_noise", label=""):
    """Fit ``law`` to the final checkpoints of ``table[train_mask]``; save it under ``args.out``.

    Returns ``(fit, train, test)`` with ``test`` every row not in ``train_mask``.
    """
    from bayesmix.estimator import select_checkpoints
    from bayesmix.gate import check_gate, format_diagnostics
    from bayesmix.inference import FitSettings, fit_law

    clock = Timer()
    train = select_checkpoints(table.select(train_mask), "final")
    test = table.select(~np.asarray(train_mask, bool))
    print(f"{label}: {table.n_rows} rows; fitting {law} to {train.n_rows} final checkpoints, "
          f"holding out {test.n_rows} rows")
    settings = FitSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                           sampler=args.sampler)
    fit = fit_law(train, law, settings=settings, progressbar=progress(args), allow_warnings=True)
    args.out.mkdir(parents=True, exist_ok=True)
    fit.save(args.out / "fit.nc")
    print(f"\nfit done in {clock():.0f} s\n{format_diagnostics(fit.diagnostics)}")
    for problem in check_gate(fit.diagnostics, allow_warnings=True):
        print(f"  WARNING {problem}")
    return fit, train, test


def recommend_and_report(args, fit, *, target_size, target_tokens, title, baselines=None,
                         risks=("mean", "cvar:0.9"), comparison=None):
    """Recommendations at the target for each risk, and the HTML report with its figures."""
    from bayesmix.decide import recommend
    from bayesmix.report import build_report

    posterior = fit.posterior()
    recs = {}
    for risk in risks:
        rec = recommend(posterior, target_size, target_tokens, risk=risk, baselines=baselines, seed=args.seed)
        recs[risk] = rec
        print(f"\nrecommendation for N = {target_size:.3g}, D = {target_tokens:.3g}, risk {risk}:\n{rec.format_table()}")
    report = build_report(fit, recommendation=recs[risks[0]].to_dict(), target_model_size=target_size,
                          target_tokens=target_tokens, seed=args.seed, title=title, comparison=comparison)
    report.write_html(args.out / "report.html")
    report.write_pngs(args.out / "figures")
    print(f"\nwritten: {args.out / 'report.html'} and {args.out / 'figures'}")
    return recs


def export(args, fit, name, *, heldout, provenance, description):
    from bayesmix.artifacts import export_model

    if not args.export_model:
        return None
    from bayesmix.errors import FitRejectedError

    # The command as run (seed, draws and chains included), not only the study's name.
    script = os.path.relpath(os.path.abspath(sys.argv[0]), PROJECT_ROOT)
    provenance = {**provenance, "command": " ".join(["python", script] + sys.argv[1:])}
    try:
        folder = export_model(fit, MODELS / name, heldout=heldout, provenance=provenance, description=description)
    except FitRejectedError as err:
        # The report is written; the shipped model stays as it was, and the run says so.
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"shipped artifact: {folder}")
    return folder
