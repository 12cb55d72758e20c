"""SlimPajama, 7 domains: fit up to 310M, check the extrapolation, decide for a larger model.

    python case_studies/slimpajama7/run.py [--export-model] [--out DIR]

1. Fit the default law (capacity_noise) by NUTS to the 122M and 310M runs (final
   checkpoints; the 2B-35B token checkpoints of a run are not independent evidence).
2. Predict every checkpoint of the 680M and 937M runs, which the fit never saw:
   mean relative error and 90% interval coverage per model size.
3. Rank the 40 mixtures tested at 937M by their predicted average loss and compare with
   their observed average loss: Spearman rank correlation and the regret of the top pick.
4. Recommend a mixture for a 7B model on 140B tokens (mean and CVaR risk), against the
   uniform mixture and the best mixture observed at 937M.
5. Write output/report.html (+ figures), output/results.json, and with --export-model the
   shipped artifact models/slimpajama7-capacity_noise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

TRAIN_MAX_SIZE = 3.1e8
TARGET_SIZE, TARGET_TOKENS = 7e9, 1.4e11


def ranking_at(posterior, table, size, seed: int = 0) -> dict:
    """How well the fit orders the mixtures run at ``size`` (final checkpoints), by
    :func:`bayesmix.compare.rank_mixtures`, with the run ids and mixtures named."""
    from bayesmix.compare import rank_mixtures

    r = rank_mixtures(posterior, table, model_size=size, seed=seed)
    top, best = int(np.argmin(r["predicted"])), int(np.argmin(r["observed"]))
    observed, predicted = r["observed"], r["predicted"]
    return {
        "model_size": r["model_size"],
        "mixtures": r["mixtures"],
        "spearman": r["spearman"],
        "spearman_p_value": r["spearman_p_value"],
        "top_pick_run": str(table.run_ids[r["top_pick"]]),
        "top_pick_observed_avg_loss": float(observed[top]),
        "best_observed_run": str(table.run_ids[r["best_observed"]]),
        "best_observed_avg_loss": float(observed[best]),
        "regret_of_top_pick": r["regret"],
        "relative_regret_of_top_pick": r["relative_regret"],
        "observed_rank_of_top_pick": r["observed_rank_of_top_pick"],
        "p_best_of_observed_best": float(r["p_best"][best]),
        "best_observed_mixture": dict(zip(table.domains, map(float, table.weights[r["best_observed"]]))),
        "mean_relative_error_of_avg_loss": float(np.mean(np.abs(predicted - observed) / observed)),
    }


def main(argv=None) -> int:
    args = common.study_parser(__doc__, HERE).parse_args(argv)
    path = common.require_table("slimpajama7")

    from bayesmix.compare import heldout_scores
    from bayesmix.data import load_runs

    clock = common.Timer()
    table = load_runs(path)
    fit, train, test = common.fit_train_split(args, table, table.model_size <= TRAIN_MAX_SIZE,
                                              label="slimpajama7 (train: N <= 310M)")
    posterior = fit.posterior()
    metrics = heldout_scores(posterior, test, seed=args.seed).blocks
    print("\nextrapolation to model sizes the fit never saw:\n" + common.format_metrics(metrics))

    rankings = [ranking_at(posterior, table, size, args.seed) for size in (6.8e8, 9.37e8)
                if np.any(table.model_size == size)]
    print("\nordering the tested mixtures by predicted average loss (final checkpoints):")
    for r in rankings:
        print(f"  N = {r['model_size']:.3g}: {r['mixtures']} mixtures, Spearman {r['spearman']:.3f}, "
              f"top pick {r['top_pick_run']} is observed rank {r['observed_rank_of_top_pick']}, "
              f"regret {r['regret_of_top_pick']:.4f} nats ({100 * r['relative_regret_of_top_pick']:.2f}%)")

    baselines = {"best_observed_937M": rankings[-1]["best_observed_mixture"]} if rankings else None
    recs = common.recommend_and_report(args, fit, target_size=TARGET_SIZE, target_tokens=TARGET_TOKENS,
                                       baselines=baselines,
                                       title="SlimPajama 7 domains: fit <= 310M, decide for 7B")
    results = {"train_rows": train.n_rows, "test_rows": test.n_rows, "seconds": clock(),
               "diagnostics": fit.diagnostics, "heldout": metrics, "rankings": rankings,
               "recommendations": {k: v.to_dict() for k, v in recs.items()}}
    common.write_json(args.out / "results.json", results)
    common.export(
        args, fit, "slimpajama7-capacity_noise",
        heldout={"split": "fit on 122M+310M final checkpoints; scored on every 680M and 937M checkpoint",
                 **metrics, "rankings": rankings},
        provenance={"data": "shared/data/slimpajama7/runs.csv (runs of Shukor et al. 2025, released with "
                            "Dai and Zheng 2026)",
                    "command": "python case_studies/slimpajama7/run.py --export-model",
                    "filters": "model_size <= 310M, final checkpoints"},
        description="capacity_noise fitted to the SlimPajama 122M/310M runs")
    print(f"done in {clock():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
