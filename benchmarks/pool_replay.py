"""Replay acquisition campaigns on the real SlimPajama runs, scored against observed 937M runs.

Protocol (issue 23)
-------------------
The table is ``/work/shared/data/slimpajama7/runs.csv`` (7 domains), final checkpoint of
each run (one row per run). The target is the largest model size (937M) at the tokens of
its runs' final checkpoint (35.28B); the objective is the plain average of the 7 domain
losses; every weight is kept at or above the smallest weight in the data (2%).

* Start: ``--initial-runs`` (2) runs at ``--initial-size`` (122M), drawn at random: a
  start that does not already know the answer (4 starting runs at two sizes already
  ranked the best 937M mixture first, so no strategy could be told apart).
* Pool: every other run at the sizes below the target (``--pool-sizes``, default 122M,
  310M and 680M: 158 runs), each costing ``6 N D`` (+ ``--fixed-cost``).
* ``--starts`` (10) random starts (seeds 0..9, or ``--start-seeds``), each with its own
  NUTS fit of the starting runs (cached under ``--fit-cache-dir``), shared by the
  strategies of that start.
* Each strategy (voi, variance, random, space-filling) acquires one pool run per step for
  ``--steps`` steps; the observation is the run's logged final losses. The posterior
  after a step is the previous NUTS draws reweighted by the new runs' likelihood
  (:class:`bayesmix.acquire.AdaptiveRefit`), refitted by NUTS, warm-started, whenever the
  effective sample size falls below ``--ess-fraction`` of the draws (at most
  ``--max-refits`` times per campaign; default: whenever it does).

Scores after each step (nats; the truth is the 40 observed 937M runs)
---------------------------------------------------------------------
``regret_ranked``
    The observed average loss of the observed 937M mixture that the posterior ranks best
    (lowest posterior expected objective at the target) minus the best observed one.
``spearman``
    The rank correlation, over the 40 mixtures, of the posterior expected objective with
    the observed average loss.
``regret_nearest``
    The observed average loss of the 937M mixture nearest to the free recommendation,
    minus the best (a rough score: the 40 mixtures are sparse in 7 dimensions).

All are noisy: one run per mixture, so a regret below the run-to-run noise (about 0.01
nats) is a tie.

Output
------
Per start, strategy and step a line; then per strategy the curves over compute (mean over
starts of ``regret_ranked`` and ``spearman`` of the latest state within each compute
level), the compute at which the mean curves first reach ``regret <= --regret-target``
(0.005) and ``Spearman >= --spearman-target`` (0.8) together, the same per start (median),
and the ratio voi / random of both (the issue asks for at most 0.5). ``--out FILE.csv``
keeps every log row.

Cost: a NUTS fit per start (10-30 s) and one per refit (5-20 s; 5-8 per campaign), and
0.6-1.6 s per step for the acquisition itself: the full protocol (10 starts x 4
strategies x 10 steps) took 101 minutes on 2 cores shared with other fits (2026-12-05).
``--starts 1 --steps 2 --strategies voi,random`` is a smoke test.

Measured (2026-12-05, main at 6b2e890, ``python benchmarks/pool_replay.py --fit-cache-dir
DIR --out replay.csv``, defaults: 10 starts, 10 steps, all four strategies), compute to
reach mean regret <= 0.005 and mean Spearman >= 0.8 together: voi 6.9e19 FLOPs (per
start median 2.2e19, 10/10 starts), variance 3.2e19 (1.5e19, 10/10), random 7.2e20
(3.4e20, 8/10), space-filling 1.1e21 (8.5e20, 9/10): voi / random 0.097 on the mean
curves, 0.064 per start (the issue asks for <= 0.5). Regret is below 0.005 from the
start for every strategy; the Spearman separates them. voi and variance buy mostly 122M
runs (54 and 80 of 100), random all sizes, space-filling only 680M runs. The curves and
the reading are in ``case_studies/slimpajama7/README.md``.

Examples
--------
    python benchmarks/pool_replay.py --starts 1 --steps 2 --strategies voi,random   # smoke test
    python benchmarks/pool_replay.py --starts 10 --steps 10 --fit-cache-dir /tmp/replay --out replay.csv
    python benchmarks/pool_replay.py --from-csv replay.csv --plot replay.png               # summary and curves again
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from bayesmix.acquire import (DEFAULT_METHOD, DEFAULT_OUTCOMES, METHODS, AdaptiveRefit, NutsRefit, PoolObserver,
                              run_campaign, table_to_candidates)
from bayesmix.data import load_runs
from bayesmix.decide import Constraints
from bayesmix.inference import Fit, fit_law
from bayesmix.units import parse_quantity

DATA = "/work/shared/data/slimpajama7/runs.csv"


def observed_scorer(target_weights, target_loss):
    """``score(problem, draw_weights, h)`` for :func:`run_campaign`: regrets against observed runs."""
    target_weights = target_weights / target_weights.sum(1, keepdims=True)
    best = float(target_loss.min())

    def score(problem, draw_weights, h):
        values = problem.objective_draws(target_weights)  # (S, 40)
        expected = draw_weights @ values
        ranked = int(np.argmin(expected))
        dist = np.sqrt(((target_weights - h[None]) ** 2).sum(1))
        nearest = int(np.argmin(dist))
        return {"regret_ranked": float(target_loss[ranked] - best),
                "regret_nearest": float(target_loss[nearest] - best),
                "nearest_distance": float(dist[nearest]),
                "spearman": float(spearmanr(expected, target_loss)[0]),
                "predicted_best_observed": float(expected[ranked])}

    return score


def latest_at(log, levels, column):
    """The column's value of the latest step with at most each compute level spent."""
    compute = log["compute"].to_numpy()
    idx = np.searchsorted(compute, levels, side="right") - 1
    return np.where(idx >= 0, log[column].to_numpy()[np.maximum(idx, 0)], np.nan)


def reached(compute, regret, spearman, regret_target, spearman_target):
    """The first compute at which both targets hold (inf: never)."""
    ok = (np.asarray(regret) <= regret_target) & (np.asarray(spearman) >= spearman_target)
    return float(np.asarray(compute)[np.argmax(ok)]) if ok.any() else np.inf


def fmt(x):
    return "never" if not np.isfinite(x) else f"{x:.3g}"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=DATA)
    ap.add_argument("--strategies", default="voi,variance,random,space-filling")
    ap.add_argument("--starts", type=int, default=10, help="random starts (seeds 0..starts-1)")
    ap.add_argument("--start-seeds", help="explicit seeds of the starts, e.g. 3,4 (overrides --starts)")
    ap.add_argument("--initial-size", default="122M", help="model size of the starting runs")
    ap.add_argument("--initial-runs", type=int, default=2)
    ap.add_argument("--pool-sizes", default=None, help="pool model sizes (default: every size below the target)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--fixed-cost", type=float, default=0.0, help="FLOPs per run on top of 6 N D")
    ap.add_argument("--law", default="capacity_noise")
    ap.add_argument("--sampler", default="pymc", choices=("pymc", "nutpie"))
    ap.add_argument("--draws", type=int, default=200, help="NUTS draws per chain of a start's fit (2 chains)")
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--refit-draws", type=int, default=100, help="NUTS draws per chain of a refit")
    ap.add_argument("--refit-tune", type=int, default=150)
    ap.add_argument("--ess-fraction", type=float, default=0.1)
    ap.add_argument("--max-refits", type=int, default=None, help="NUTS refits per campaign (default: no cap)")
    ap.add_argument("--max-draws", type=int, default=200, help="draws the acquisition uses")
    ap.add_argument("--sigma", type=float, default=0.02,
                    help="noise sd of the log-losses the prior holds the fit near (0: the default prior)")
    ap.add_argument("--map-starts", type=int, default=2)
    ap.add_argument("--fit-cache-dir", metavar="DIR", help="load each start's fit from here, or save it here")
    ap.add_argument("--n-outcomes", type=int, default=DEFAULT_OUTCOMES)
    ap.add_argument("--voi-method", default=DEFAULT_METHOD, choices=METHODS)
    ap.add_argument("--regret-target", type=float, default=0.005)
    ap.add_argument("--spearman-target", type=float, default=0.8)
    ap.add_argument("--out", metavar="FILE.csv", help="write every log row here")
    ap.add_argument("--plot", metavar="FILE.png", help="draw the mean curves over compute here")
    ap.add_argument("--from-csv", metavar="FILE.csv",
                    help="summarise (and --plot) the log rows of an earlier --out instead of replaying")
    return ap.parse_args(argv)


def replay_setup(args):
    """The run table split into the target's observed runs and the rest, and the decision."""
    table = load_runs(args.runs).final_checkpoints()
    sizes = np.unique(table.model_size)
    target_n = float(sizes.max())
    target = table.select(table.model_size == target_n)
    pool_sizes = (sizes[sizes < target_n] if args.pool_sizes is None
                  else np.array([parse_quantity(s) for s in args.pool_sizes.split(",")]))
    pool = table.select(np.isin(table.model_size, pool_sizes))
    floor = float(np.floor(100 * np.min(table.weights) + 1e-6) / 100)
    return {"table": table, "target_n": target_n, "target_d": float(np.max(target.tokens)), "target": target,
            "target_loss": np.nanmean(target.losses, axis=1), "pool": pool,
            "constraints": Constraints(min={d: floor for d in table.domains}), "floor": floor}


def start_fit(args, setup, seed: int):
    """The starting runs of one start and the NUTS fit to them (cached per seed)."""
    pool = setup["pool"]
    ids = np.asarray(pool.run_ids, dtype=str)
    first = ids[pool.model_size == parse_quantity(args.initial_size)]
    start = np.random.default_rng(seed).choice(np.unique(first), size=args.initial_runs, replace=False)
    in_start = np.isin(ids, start)
    initial, rest = pool.select(in_start), pool.select(~in_start)
    priors = {"sigma": {"dist": "LogNormal", "mu": float(np.log(args.sigma)), "sigma": 0.1}} if args.sigma > 0 else None
    cache = Path(args.fit_cache_dir) / f"start{seed}.nc" if args.fit_cache_dir else None
    t0 = time.perf_counter()
    if cache is not None and cache.exists():
        fit = Fit.load(cache)
    else:
        fit = fit_law(initial, args.law, priors=priors, draws=args.draws, tune=args.tune, chains=2, seed=seed,
                      sampler=args.sampler, map_starts=args.map_starts, progressbar=False)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            fit.save(cache)
    diag = fit.diagnostics
    print(f"start {seed}: runs {', '.join(start)}; fit {time.perf_counter() - t0:.0f} s, max R-hat "
          f"{diag.get('max_rhat', float('nan')):.3f}, divergences {diag.get('divergences')}", flush=True)
    return initial, rest, fit.posterior(), priors


def run_start(args, setup, seed: int, strategies) -> list:
    """Every strategy's campaign from one start: their logs (DataFrames)."""
    initial, rest, base, priors = start_fit(args, setup, seed)
    score = observed_scorer(setup["target"].weights, setup["target_loss"])
    logs = []
    for strategy in strategies:
        t1 = time.perf_counter()
        nuts = NutsRefit(args.law, draws=args.refit_draws, tune=args.refit_tune, chains=2, seed=seed + 17,
                         sampler=args.sampler, priors=priors)
        refit = AdaptiveRefit(nuts, ess_fraction=args.ess_fraction, max_refits=args.max_refits, initial=base)

        def show(row, strategy=strategy):
            print(f"  start {seed} {strategy:>13} step {row['step']}: compute {row['compute']:.3g}, regret ranked "
                  f"{row['regret_ranked']:.4f}, Spearman {row['spearman']:.2f}, nearest {row['regret_nearest']:.4f}, "
                  f"posterior regret {row['expected_regret']:.4f}, ESS {row['ess']:.0f}, {row['seconds']:.0f} s; "
                  f"next {row['chosen'] or '-'}", flush=True)

        result = run_campaign(initial, setup["target_n"], setup["target_d"], refit=refit, observe=PoolObserver(rest),
                              candidates=table_to_candidates(rest, fixed_cost=args.fixed_cost), criterion=strategy,
                              budget_steps=args.steps, constraints=setup["constraints"], max_draws=args.max_draws,
                              n_outcomes=args.n_outcomes, method=args.voi_method, seed=seed, callback=show,
                              score=score)
        log = result.to_frame().assign(strategy=strategy, start=seed)
        logs.append(log)
        print(f"  start {seed} {strategy}: {time.perf_counter() - t1:.0f} s, {refit.refits} NUTS refits "
              f"({nuts.seconds:.0f} s)", flush=True)
    return logs


def mean_curves(frame):
    """Compute levels and, per strategy, the mean over starts of ``regret_ranked`` and
    ``spearman`` of the latest state within each level."""
    positive = frame.loc[frame["compute"] > 0, "compute"]
    low, top = (positive.min(), frame["compute"].max()) if len(positive) else (1.0, 1.0)
    levels = np.concatenate([[0.0], np.geomspace(low, max(top, low), 12)])
    curves = {}
    for s in dict.fromkeys(frame["strategy"]):
        logs = [g.sort_values("step") for _, g in frame[frame["strategy"] == s].groupby("start")]
        curves[s] = {c: np.nanmean([latest_at(l, levels, c) for l in logs], axis=0)
                     for c in ("regret_ranked", "spearman")}
    return levels, curves


def plot_curves(levels, curves, args, n_starts: int, path) -> None:
    """Mean ranked regret and mean Spearman over compute, one line per strategy, the
    issue's targets as grey lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.where(levels > 0, levels, levels[levels > 0].min() / 2) if np.any(levels > 0) else levels + 1.0
    for (name, curve), style in zip(curves.items(), ("-o", "--s", ":^", "-.d")):
        for ax, column in zip(axes, ("regret_ranked", "spearman")):
            ax.plot(x, curve[column], style, label=name, markerfacecolor="white")
    axes[0].axhline(args.regret_target, color="grey", lw=0.8)
    axes[1].axhline(args.spearman_target, color="grey", lw=0.8)
    axes[0].set_ylabel("regret of the top-ranked mixture [nats]")
    axes[1].set_ylabel("Spearman of the ranking")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("compute spent on new runs [FLOPs] (leftmost point: the start)")
    axes[1].legend(frameon=False)
    fig.suptitle(f"pool replay: mean over {n_starts} starts of the latest state within each compute level")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(frame, args) -> None:
    """Curves over compute and the compute to reach the targets, per strategy."""
    strategies = list(dict.fromkeys(frame["strategy"]))
    levels, curves = mean_curves(frame)
    n_starts = frame["start"].nunique()
    for column, label in (("regret_ranked", "mean regret_ranked [nats]"), ("spearman", "mean Spearman")):
        print(f"\n{label} over {n_starts} starts of the latest state with at most this compute")
        print(f"{'FLOPs':>10}  " + "  ".join(f"{s:>13}" for s in strategies))
        for i, c in enumerate(levels):
            print(f"{c:>10.3g}  " + "  ".join(f"{curves[s][column][i]:>13.4f}" for s in strategies))
    print(f"\ncompute [FLOPs] to reach regret <= {args.regret_target:g} and Spearman >= {args.spearman_target:g}")
    need = {}
    for s in strategies:
        mean_curve = reached(levels, curves[s]["regret_ranked"], curves[s]["spearman"], args.regret_target,
                             args.spearman_target)
        per_start = [reached(g.sort_values("step")["compute"], g.sort_values("step")["regret_ranked"],
                             g.sort_values("step")["spearman"], args.regret_target, args.spearman_target)
                     for _, g in frame[frame["strategy"] == s].groupby("start")]
        need[s] = (mean_curve, float(np.median(per_start)))
        print(f"  {s:>13}: mean curves {fmt(mean_curve)}; per start median {fmt(need[s][1])} "
              f"(reached in {int(np.isfinite(per_start).sum())}/{len(per_start)}): "
              + ", ".join(fmt(x) for x in per_start))
    if "voi" in need and "random" in need:
        spent_by_random = float(frame.loc[frame["strategy"] == "random", "compute"].max())
        for k, label in ((0, "mean curves"), (1, "median per start")):
            print(f"  compute voi / random ({label}): {compute_ratio(need['voi'][k], need['random'][k], spent_by_random)}"
                  " (the issue asks for <= 0.5)")
    if args.plot:
        plot_curves(levels, curves, args, n_starts, args.plot)
        print(f"\ncurves drawn: {args.plot}")


def compute_ratio(voi: float, random: float, spent_by_random: float) -> str:
    """voi's compute over random's to reach the targets; where random never reached them,
    a bound: voi's compute over the most random spent."""
    if not np.isfinite(voi):
        return "voi never reached the targets"
    if np.isfinite(random):
        return f"{voi / random:.3g}" if random > 0 else ("1 (both at the start)" if voi == 0 else "inf")
    return f"< {voi / spent_by_random:.3g} (random did not reach the targets within {spent_by_random:.3g} FLOPs)"


def main(argv=None):
    import pandas as pd

    args = parse_args(argv)
    if args.from_csv:
        summarise(pd.read_csv(args.from_csv), args)
        return
    t_start = time.perf_counter()
    setup = replay_setup(args)
    pool, target = setup["pool"], setup["target"]
    print(f"pool: {pool.n_runs} runs at {sorted(set(pool.model_size))} params; target: {target.n_runs} observed runs "
          f"at N={setup['target_n']:.3g}, D={setup['target_d']:.4g}; best observed average loss "
          f"{setup['target_loss'].min():.4f}, median {np.median(setup['target_loss']):.4f}; weight floor "
          f"{setup['floor']}", flush=True)
    seeds = ([int(s) for s in args.start_seeds.split(",")] if args.start_seeds else list(range(args.starts)))
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    logs = []
    for seed in seeds:
        logs += run_start(args, setup, seed, strategies)
        frame = pd.concat(logs, ignore_index=True)
        if args.out:
            frame.to_csv(args.out, index=False)
    summarise(frame, args)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
