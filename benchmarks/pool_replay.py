"""Replay acquisition campaigns on the real SlimPajama runs, scored against observed 937M runs.

Setup
-----
The table is ``/work/shared/data/slimpajama7/runs.csv`` (7 domains), final checkpoint of
each run (one row per run). The pool of candidate proxy runs is its 122M and 310M runs
(60 mixtures each, 20B tokens; cost ``6 N D``). A campaign starts from
``--initial-runs`` pool runs (half at each size, drawn with ``--seed``) and acquires one
pool run per step by the strategy's criterion (voi, variance, random, space-filling);
the observation is the run's logged final losses. The target is 937M parameters at the
tokens of the 937M runs' final checkpoint (35.28B); the objective is the plain average
of the 7 domain losses; every weight is kept at or above the smallest weight in the
data (2%), the floor of the observed mixtures.

Regret (nats; the truth is the 40 observed 937M runs)
------------------------------------------------------
After each step, with the current posterior (draws and importance weights):

``regret_ranked``
    The observed average loss of the observed 937M mixture that the posterior ranks
    best (lowest posterior expected objective at the target), minus the best observed
    937M average loss. This scores the decision "pick one of the 40 mixtures that were
    trained at 937M", which the observed runs can score without extrapolation.
``regret_nearest``
    The observed average loss of the 937M mixture nearest (Euclidean, weights) to the
    recommended mixture (:meth:`bayesmix.acquire.Acquisition.recommend`), minus the best
    observed 937M average loss: a rough score of the free recommendation (the 40 mixtures
    are sparse in 7 dimensions, so it also measures how far the recommendation is from
    any observed mixture; its distance is logged).

``spearman``
    The rank correlation, over the 40 mixtures, of the posterior expected objective with
    the observed average loss (1: the posterior orders the 937M runs as observed).

All are noisy: one run per mixture, so a regret below the run-to-run noise (about
0.01 nats on these losses) is a tie.

Refit
-----
One NUTS fit (``--sampler``, ``--draws`` x 2 chains) of ``--law`` on the initial runs is
shared by all strategies. Each campaign then reweights those draws by the likelihood of
the runs it acquires (:class:`bayesmix.acquire.AdaptiveRefit`: exact Bayesian update of
the draws), and refits by NUTS, warm-started at the weighted means and in the first
fit's units, when the effective sample size falls below ``--ess-fraction`` of the draws
(at most ``--max-refits`` times per campaign). The logged ``ess`` says how many draws
carry each decision.

Examples
--------
    python benchmarks/pool_replay.py --steps 6 --seed 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from bayesmix.acquire import AdaptiveRefit, NutsRefit, PoolObserver, run_campaign, table_to_candidates
from bayesmix.data import load_runs
from bayesmix.decide import Constraints
from bayesmix.inference import Fit, fit_law

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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=DATA)
    ap.add_argument("--strategies", default="voi,variance,random,space-filling")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--law", default="capacity_noise")
    ap.add_argument("--sampler", default="pymc", choices=("pymc", "nutpie"))
    ap.add_argument("--initial-runs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--draws", type=int, default=200, help="NUTS draws per chain (2 chains)")
    ap.add_argument("--tune", type=int, default=300)
    ap.add_argument("--refit-draws", type=int, default=100, help="NUTS draws per chain of a refit")
    ap.add_argument("--refit-tune", type=int, default=150)
    ap.add_argument("--ess-fraction", type=float, default=0.1)
    ap.add_argument("--max-refits", type=int, default=1)
    ap.add_argument("--max-draws", type=int, default=100, help="draws the acquisition uses")
    ap.add_argument("--sigma", type=float, default=0.02,
                    help="noise sd of the log-losses the prior holds the fit near (0: the default prior)")
    ap.add_argument("--map-starts", type=int, default=2)
    ap.add_argument("--fit-cache", metavar="FIT.nc", help="load the first fit from here, or save it here")
    ap.add_argument("--n-outcomes", type=int, default=6)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    table = load_runs(args.runs).final_checkpoints()
    domains = table.domains
    sizes = np.unique(table.model_size)
    target_n = float(sizes.max())
    at_target = table.model_size == target_n
    target = table.select(at_target)
    target_d = float(np.max(target.tokens))
    target_loss = np.nanmean(target.losses, axis=1)
    pool = table.select(np.isin(table.model_size, sizes[:2]))
    floor = float(np.floor(100 * np.min(table.weights) + 1e-6) / 100)
    constraints = Constraints(min={d: floor for d in domains})
    print(f"pool: {pool.n_runs} runs at {sorted(set(pool.model_size))} params; target: {target.n_runs} observed runs "
          f"at N={target_n:.3g}, D={target_d:.4g}; best observed average loss {target_loss.min():.4f}, "
          f"median {np.median(target_loss):.4f}, worst {target_loss.max():.4f}; weight floor {floor}", flush=True)

    rng = np.random.default_rng(args.seed)
    ids = np.asarray(pool.run_ids, dtype=str)
    start = []
    for k, n in enumerate(sorted(set(pool.model_size))):
        per = args.initial_runs // 2 + (args.initial_runs % 2 if k == 0 else 0)
        start.extend(rng.choice(np.unique(ids[pool.model_size == n]), size=per, replace=False))
    in_start = np.isin(ids, start)
    initial = pool.select(in_start)
    rest = pool.select(~in_start)
    print(f"initial runs: {', '.join(start)}", flush=True)

    t0 = time.perf_counter()
    priors = {"sigma": {"dist": "LogNormal", "mu": float(np.log(args.sigma)), "sigma": 0.1}} if args.sigma > 0 else None
    if args.fit_cache and Path(args.fit_cache).exists():
        fit = Fit.load(args.fit_cache)
        how = f"loaded from {args.fit_cache}"
    else:
        fit = fit_law(initial, args.law, priors=priors, draws=args.draws, tune=args.tune, chains=2, seed=args.seed,
                      sampler=args.sampler, map_starts=args.map_starts, progressbar=False)
        how = f"NUTS ({args.sampler}, {args.law}, {initial.n_runs} runs)"
        if args.fit_cache:
            fit.save(args.fit_cache)
    base = fit.posterior()
    diag = fit.diagnostics
    print(f"first fit {how}: {time.perf_counter() - t0:.0f} s (MAP {diag.get('map_seconds', float('nan')):.0f} s, "
          f"sampling {diag.get('sampling_seconds', float('nan')):.0f} s), {base.n_draws} draws, max R-hat "
          f"{diag.get('max_rhat', float('nan')):.3f}, divergences {diag.get('divergences')}, sigma mean "
          f"{np.mean(base.sigma):.4f}", flush=True)
    score = observed_scorer(target.weights, target_loss)

    logs = {}
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        t1 = time.perf_counter()
        nuts = NutsRefit(args.law, draws=args.refit_draws, tune=args.refit_tune, chains=2, seed=args.seed + 17,
                         sampler=args.sampler, priors=priors)
        refit = AdaptiveRefit(nuts, ess_fraction=args.ess_fraction, max_refits=args.max_refits, initial=base)

        def show(row, strategy=strategy):
            print(f"  {strategy:>13} step {row['step']}: compute {row['compute']:.3g}, regret ranked "
                  f"{row['regret_ranked']:.4f}, nearest {row['regret_nearest']:.4f} (distance "
                  f"{row['nearest_distance']:.2f}), Spearman {row['spearman']:.2f}, posterior regret {row['expected_regret']:.4f}, "
                  f"ESS {row['ess']:.0f}, {row['seconds']:.0f} s; next {row['chosen'] or '-'}", flush=True)

        result = run_campaign(initial, target_n, target_d, refit=refit, observe=PoolObserver(rest),
                              candidates=table_to_candidates(rest), criterion=strategy, budget_steps=args.steps,
                              constraints=constraints, max_draws=args.max_draws, n_outcomes=args.n_outcomes,
                              seed=args.seed, callback=show, score=score)
        log = result.to_frame()
        logs[strategy] = log
        print(f"  {strategy}: {time.perf_counter() - t1:.0f} s, {refit.refits} NUTS refits "
              f"({nuts.seconds:.0f} s)", flush=True)

    print("\nregret curves [nats] (regret_ranked / regret_nearest; compute in FLOPs)")
    for strategy, log in logs.items():
        print(f"{strategy}:")
        for _, r in log.iterrows():
            print(f"  step {int(r['step']):>2}  compute {r['compute']:>9.3g}  ranked {r['regret_ranked']:.4f}  "
                  f"nearest {r['regret_nearest']:.4f}  Spearman {r['spearman']:.2f}  ESS {r['ess']:>5.0f}")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
