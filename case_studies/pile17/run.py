"""Pile, 17 domains at 1B: which law predicts held-out mixtures best?

    python case_studies/pile17/run.py [--laws capacity_noise,linear,...] [--export-model] [--out DIR]

The RegMix 1B runs (43 mixtures, one model size, one token count) with the protocol of
Dai and Zheng's Table 2: a seeded 70/30 split of the runs; each law is fitted by NUTS to
the 70% and scored on the 30% by the mean relative error (MRE) of its posterior-mean
prediction over cells whose domain has positive training weight, and by the 90% interval
coverage. The table is printed beside the paper's figures.

Then the default law's fit recommends a 1B mixture (mean and CVaR risk) and writes
output/report.html; with --export-model it becomes the shipped artifact
models/pile17-capacity_noise. The grouped K-fold comparison of the same laws is
`bayesmix compare ../shared/data/pile17/runs.csv --cv kfold:5` (benchmarks/bench_compare.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

#: Dai and Zheng (ICML 2026), Table 2: held-out MRE (%) on Pile 17 domains, 70/30 split.
PAPER_TABLE2 = {"capacity_noise": 1.533, "capacity": 2.064, "additive": 2.209, "bimix": 2.963,
                "linear": 6.480, "exponential": 6.990}
DEFAULT_LAWS = "capacity_noise,capacity,additive,bimix,linear,exponential"
TRAIN_FRACTION = 0.7


def split_runs(table, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    runs = np.unique(table.run_ids)
    train_runs = set(rng.permutation(runs)[: int(round(TRAIN_FRACTION * len(runs)))])
    return np.array([r in train_runs for r in table.run_ids])


def main(argv=None) -> int:
    # fewer draws than the other studies: six laws, the capacity laws over 17 domains
    parser = common.study_parser(__doc__, HERE, draws=300, tune=500)
    parser.add_argument("--laws", default=DEFAULT_LAWS, help=f"laws to compare (default {DEFAULT_LAWS})")
    args = parser.parse_args(argv)
    path = common.require_table("pile17")

    from bayesmix.compare import heldout_scores
    from bayesmix.data import load_runs
    from bayesmix.errors import BayesmixError
    from bayesmix.gate import format_diagnostics
    from bayesmix.inference import FitSettings, fit_law
    from bayesmix.estimator import select_checkpoints

    clock = common.Timer()
    table = load_runs(path)
    train_mask = split_runs(table, args.seed)
    train = select_checkpoints(table.select(train_mask), "final")
    test = table.select(~train_mask)
    print(f"pile17: {table.n_runs} runs at one scale; fitting on {train.n_rows}, scoring {test.n_rows} "
          f"(seeded {int(100 * TRAIN_FRACTION)}/{int(100 * (1 - TRAIN_FRACTION))} split, seed {args.seed})")
    args.out.mkdir(parents=True, exist_ok=True)
    records, fits, heldout = [], {}, {}
    laws = [law.strip() for law in args.laws.split(",") if law.strip()]
    for law in laws:
        t0 = common.Timer()
        settings = FitSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                               sampler=args.sampler)
        try:
            fit = fit_law(train, law, settings=settings, progressbar=common.progress(args), allow_warnings=True)
        except BayesmixError as err:
            print(f"  {law}: skipped ({err})")
            continue
        fits[law] = fit
        fit.save(args.out / f"fit_{law}.nc")
        metrics = heldout_scores(fit.posterior(), test, seed=args.seed, by_size=False).blocks
        heldout[law] = metrics
        diag = fit.diagnostics
        record = {"law": law, "mre_positive_weight_pct": 100 * metrics["all_rows"]["mre_positive_weight"],
                  "mre_all_cells_pct": 100 * metrics["all_rows"]["mre_all_cells"],
                  "coverage90_pct": 100 * metrics["all_rows"]["coverage90"],
                  "paper_table2_mre_pct": PAPER_TABLE2.get(law, float("nan")),
                  "max_rhat": diag["max_rhat"], "divergences": diag["divergences"], "seconds": t0()}
        records.append(record)
        print(f"  {law:<16} MRE {record['mre_positive_weight_pct']:6.3f}% (paper {record['paper_table2_mre_pct']:.3f}%)"
              f"  coverage {record['coverage90_pct']:5.1f}%  R-hat {diag['max_rhat']:.3f}  "
              f"div {diag['divergences']}  {record['seconds']:.0f} s", flush=True)

    records.sort(key=lambda r: r["mre_positive_weight_pct"])
    print("\nheld-out MRE on the 30% of runs (positive-weight cells), best first:")
    print(f"  {'law':<16} {'MRE %':>8} {'paper %':>8} {'all cells %':>11} {'cov90 %':>8} {'R-hat':>6} {'div':>4}")
    for r in records:
        print(f"  {r['law']:<16} {r['mre_positive_weight_pct']:8.3f} {r['paper_table2_mre_pct']:8.3f} "
              f"{r['mre_all_cells_pct']:11.3f} {r['coverage90_pct']:8.1f} {r['max_rhat']:6.3f} {r['divergences']:4d}")
    common.write_json(args.out / "comparison.json", {"protocol": "seeded 70/30 split of runs", "seed": args.seed,
                                                     "records": records})

    default = "capacity_noise" if "capacity_noise" in fits else (records[0]["law"] if records else None)
    if default is None:
        print("no law could be fitted")
        return 1
    fit = fits[default]
    print(f"\n{default} fit:\n{format_diagnostics(fit.diagnostics)}")
    recs = common.recommend_and_report(args, fit, target_size=1e9, target_tokens=2.5e10,
                                       title="Pile 17 domains at 1B: law comparison and recommendation",
                                       comparison=args.out / "comparison.json")
    metrics = heldout[default]
    common.write_json(args.out / "results.json", {"seconds": clock(), "records": records, "heldout": metrics,
                                                  "recommendations": {k: v.to_dict() for k, v in recs.items()}})
    common.export(
        args, fit, f"pile17-{default}",
        heldout={"split": f"seeded 70/30 split of the runs (seed {args.seed}); scored on the 30%", **metrics,
                 "paper_table2_mre_pct": PAPER_TABLE2.get(default)},
        provenance={"data": "shared/data/pile17/runs.csv (RegMix 1B runs, Liu et al. 2025, released with "
                            "Dai and Zheng 2026)",
                    "command": "python case_studies/pile17/run.py --export-model",
                    "filters": f"70% of the runs (seed {args.seed})"},
        description=f"{default} fitted to 70% of the RegMix 1B runs on 17 Pile domains")
    print(f"done in {clock():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
