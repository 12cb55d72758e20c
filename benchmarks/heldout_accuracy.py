"""Held-out accuracy of a law on the shared real tables, over several seeds (issue 3 figures).

    python benchmarks/heldout_accuracy.py pile17 --seeds 0,1,2,3,4   # seeded 70/30 splits of the 1B runs
    python benchmarks/heldout_accuracy.py slimpajama7                # fit <= 310M, predict 680M and 937M
    python benchmarks/heldout_accuracy.py pile4                      # fit <= 200M, predict 440M
    python benchmarks/heldout_accuracy.py slimpajama7 --law capacity_noise_transfer --train-max-size 680M
        # fit <= 680M, predict 937M, and the evaluation-only openhermes there

The splits are the case studies' own (``case_studies/``), and so are the metrics
(:func:`bayesmix.compare.heldout_scores`, the protocol they share). On Pile 17 a 70/30
split scores 13 of 43 runs, so one split's MRE moves by a few tenths of a percent from
seed to seed: a single-split figure (such as the paper's Table 2) is compared with the
mean and spread over seeds. For each seed the script fits NUTS (the posterior mean is what
``bayesmix predict`` reports) and a MAP point fit (the kind of estimate the paper
reports), and prints MRE over positive-weight cells and all cells, 90% coverage, R-hat,
divergences and time; where the held-out runs were logged at several checkpoints, the same
over their final checkpoints. --save DIR keeps each seed's fit. Options: --law, --draws, --tune, --chains, --sampler, --likelihood, --no-map;
without them the fit uses ``bayesmix fit``'s defaults (what a user gets). --train-max-size
moves the split of the tables with several model sizes (default: the case study's).

Where the law predicts evaluation-only domains (``capacity_noise_transfer`` on SlimPajama's
``openhermes``), each seed also prints their MRE and 90% coverage on the held-out final
checkpoints; the trained domains' figures stay over the mixture's domains only, so that
laws that do and do not predict them are compared on the same cells.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "case_studies"))

import common  # noqa: E402  (case_studies/common.py)


def _study_module(study: str):
    spec = importlib.util.spec_from_file_location(f"study_{study}", ROOT / "case_studies" / study / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_mask(study: str, module, table, seed: int, max_size: float | None = None) -> np.ndarray:
    """The case study's training rows: a seeded 70% of runs (pile17) or the smaller sizes
    (up to ``max_size``, default the case study's)."""
    if study == "pile17":
        return module.split_runs(table, seed)
    return np.asarray(table.model_size <= (max_size or module.TRAIN_MAX_SIZE) * (1 + 1e-6))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("pile17", "slimpajama7", "pile4"))
    parser.add_argument("--law", default="capacity_noise")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (split and sampler)")
    parser.add_argument("--draws", type=int, help="default: bayesmix fit's")
    parser.add_argument("--tune", type=int, help="default: bayesmix fit's")
    parser.add_argument("--chains", type=int, help="default: bayesmix fit's")
    parser.add_argument("--sampler", help="default: bayesmix fit's")
    parser.add_argument("--likelihood", choices=("normal", "student_t"), help="default: bayesmix fit's")
    parser.add_argument("--no-map", action="store_true", help="skip the MAP point fits")
    parser.add_argument("--save", metavar="DIR", help="save each seed's fit as DIR/STUDY-LAW-seedS.nc "
                        "(for predict, recommend and next)")
    parser.add_argument("--train-max-size", help="fit runs up to this model size, e.g. 680M (slimpajama7, pile4)")
    args = parser.parse_args(argv)
    from bayesmix.units import parse_quantity

    max_size = parse_quantity(args.train_max_size, what="--train-max-size") if args.train_max_size else None

    from bayesmix.compare import heldout_scores
    from bayesmix.data import load_runs
    from bayesmix.estimator import select_checkpoints
    from bayesmix.inference import FitSettings, fit_law, map_posterior

    table = load_runs(common.require_table(args.study))
    study = _study_module(args.study)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        mask = train_mask(args.study, study, table, seed, max_size)
        train, test = select_checkpoints(table.select(mask), "final"), table.select(~mask)
        t0 = time.perf_counter()
        given = {k: getattr(args, k) for k in ("draws", "tune", "chains", "sampler", "likelihood")
                 if getattr(args, k) is not None}
        fit = fit_law(train, args.law, settings=FitSettings(seed=seed, **given), progressbar=False,
                      allow_warnings=True)
        seconds = time.perf_counter() - t0
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            fit.save(Path(args.save) / f"{args.study}-{args.law}-seed{seed}.nc")
        metrics = heldout_scores(fit.posterior(), test, seed=seed, by_size=False).blocks
        m = metrics["all_rows"]
        row = {"seed": seed, "nuts_trained": m["mre_positive_weight"], "nuts_all": m["mre_all_cells"],
               "coverage90": m["coverage90"], "rhat": fit.diagnostics["max_rhat"],
               "divergences": fit.diagnostics["divergences"], "seconds": seconds, "map_trained": np.nan}
        if not args.no_map:
            point = map_posterior(train, args.law, seed=seed, likelihood=fit.attrs["settings"]["likelihood"])
            point_metrics = heldout_scores(point, test, seed=seed, by_size=False).blocks
            row["map_trained"] = point_metrics["all_rows"]["mre_positive_weight"]
        rows.append(row)
        print(f"seed {seed}: train {train.n_rows} rows, test {test.n_rows}; MRE positive-weight cells "
              f"NUTS {100 * row['nuts_trained']:.3f}% MAP {100 * row['map_trained']:.3f}%, all cells "
              f"{100 * row['nuts_all']:.3f}%; 90% coverage {100 * row['coverage90']:.1f}% (5-95% under the model: "
              f"{100 * m['coverage90_band'][0]:.0f}-{100 * m['coverage90_band'][1]:.0f}%); R-hat "
              f"{row['rhat']:.3f}, {row['divergences']} divergences; {fit.diagnostics.get('draws_per_chain')} "
              f"draws per chain; {seconds:.0f} s", flush=True)
        final = metrics.get("final_checkpoints")
        if final is not None and final["rows"] < test.n_rows:  # runs logged at several checkpoints
            print(f"seed {seed}: trained domains, held-out final checkpoints ({final['rows']} rows): "
                  f"MRE {100 * final['mre_all_cells']:.3f}%, 90% coverage {100 * final['coverage90']:.1f}%", flush=True)
        for domain, blocks in metrics.get("eval_domains", {}).items():
            final = blocks["final_checkpoints"]
            print(f"seed {seed}: evaluation-only {domain}, held-out final checkpoints ({final['rows']} rows): "
                  f"MRE {100 * final['mre_all_cells']:.3f}%, 90% coverage {100 * final['coverage90']:.1f}%", flush=True)
    if len(rows) > 1:
        for key, label in (("nuts_trained", "NUTS posterior mean"), ("nuts_all", "NUTS, all cells"),
                           ("map_trained", "MAP point fit"), ("coverage90", "90% coverage")):
            values = np.array([r[key] for r in rows], dtype=float)
            if np.all(np.isfinite(values)):
                print(f"{label:<20} over {len(rows)} seeds: mean {100 * values.mean():.3f}%, "
                      f"sd {100 * values.std(ddof=1):.3f}%, range {100 * values.min():.3f}-{100 * values.max():.3f}%")


if __name__ == "__main__":
    main()
