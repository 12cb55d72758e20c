"""Held-out accuracy of a law on the shared real tables (issue 3 figures).

    python benchmarks/heldout_accuracy.py pile17       # seeded 70/30 split of the 1B runs
    python benchmarks/heldout_accuracy.py slimpajama7  # fit 122M+310M, predict 680M and 937M

Options: --law, --draws, --tune, --chains, --sampler, --checkpoints final|all.
Prints MRE over all cells and over positive-weight cells, and 90% interval coverage.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bayesmix.data import load_runs
from bayesmix.estimator import select_checkpoints
from bayesmix.inference import FitSettings, fit_law, format_diagnostics
from bayesmix.metrics import interval_coverage, mean_relative_error

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def split(study: str, table, seed: int):
    if study == "pile17":
        rng = np.random.default_rng(seed)
        runs = np.unique(table.run_ids)
        train_runs = set(rng.permutation(runs)[: int(round(0.7 * len(runs)))])
        train = np.array([r in train_runs for r in table.run_ids])
        return table.select(train), table.select(~train)
    if study == "slimpajama7":
        small = table.model_size <= 3.1e8
        return table.select(small), table.select(~small)
    if study == "pile4":
        small = table.model_size <= 2.0e8
        return table.select(small), table.select(~small)
    raise SystemExit(f"unknown study {study}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("pile17", "slimpajama7", "pile4"))
    parser.add_argument("--law", default="capacity_noise")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--sampler", default="nutpie")
    parser.add_argument("--checkpoints", default="final", choices=("final", "all"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    table = load_runs(DATA / args.study / "runs.csv")
    train, test = split(args.study, table, args.seed)
    train = select_checkpoints(train, args.checkpoints)
    t0 = time.perf_counter()
    fit = fit_law(train, args.law, settings=FitSettings(draws=args.draws, tune=args.tune, chains=args.chains,
                                                        seed=args.seed, sampler=args.sampler),
                  progressbar=False, allow_warnings=True)
    seconds = time.perf_counter() - t0
    post = fit.posterior()
    summary = post.summarise(test.weights, test.model_size, test.tokens)
    print(f"{args.study}: law {args.law}, train {train.n_rows} rows ({args.checkpoints} checkpoints), "
          f"test {test.n_rows} rows, fit {seconds:.0f} s")
    print(format_diagnostics(fit.diagnostics))
    for name, mask in (("all held-out rows", np.ones(test.n_rows, bool)),
                       ("final checkpoints", test.final_checkpoint_mask)):
        obs = test.losses[mask]
        pred = summary["mean"][mask]
        mre_all = mean_relative_error(pred, obs)
        mre_pos = mean_relative_error(pred, obs, test.weights[mask], positive_weight_only=True)
        cov = interval_coverage(summary["q05"][mask], summary["q95"][mask], obs)
        print(f"  {name:<20} MRE all cells {100 * mre_all:.3f}%  positive-weight cells "
              f"{100 * mre_pos:.3f}%  90% coverage {100 * cov:.1f}%")
    if args.study != "pile17":
        for size in np.unique(test.model_size):
            m = test.model_size == size
            print(f"  N={size:.3g}: MRE {100 * mean_relative_error(summary['mean'][m], test.losses[m]):.3f}%  "
                  f"coverage {100 * interval_coverage(summary['q05'][m], summary['q95'][m], test.losses[m]):.1f}%")


if __name__ == "__main__":
    main()
