"""Acquisition strategies on the simulator: compute spent versus regret at the target.

For each strategy (voi, variance, random, space-filling) and seed, a campaign starts
from a few small simulated runs and acquires runs from a grid of candidate scales and
quasi-random mixtures; the target is ``--target-factor`` (default 10) times the largest
candidate size, at 20 tokens per parameter. After each step the true regret of the
recommendation (its true objective minus the true optimum, relative to the optimum) is
logged.

The refit is the exact importance reweighting of a fixed set of draws by default, so a
campaign takes seconds. ``--prior grid`` (default): every parameter at its true value
except the noise exponents ``a``, scaled by a common factor on a grid of
``--base-draws`` points in [0.5, 1.6] that contains 1 (the truth), and the campaign starts
from one uninformative run (uniform mixture at D_ref): a well-specified 1-D problem on
which the reweighting stays exact and the weights do not collapse at once.
``--prior cloud``: a log-normal cloud (``--base-rel-sd``) around every true parameter,
started from ``--initial-mixtures`` random runs; its weights collapse within a step or two
(watch the logged ESS), so it is a rough check only. Both flatter every strategy alike.
``--nuts`` refits by NUTS (warm-started) instead: minutes per step.

Prints, per strategy, the mean compute and mean relative regret after each step, and the
compute needed to reach within ``--threshold`` (default 0.5%) of the true optimal
objective (mean over seeds; 'never' when a seed does not reach it).

Examples
--------
    python benchmarks/bench_acquisition.py --seeds 0 --steps 2 --n-mixtures 3   # smoke test
    python benchmarks/bench_acquisition.py --seeds 0,1,2 --steps 8 --batch 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bayesmix.acquire import (NutsRefit, ReweightRefit, SimulatorObserver, generate_candidates,
                              run_campaign)
from bayesmix.posterior import Posterior
from bayesmix.simulate import default_truth, simulate_runs
from bayesmix.testing import posterior_around_truth
from bayesmix.units import format_quantity, parse_quantity


def exponent_grid(truth, n_draws, sigma):
    """Draws equal to the truth except the noise exponents, scaled by a grid containing 1."""
    factors = np.sort(np.append(np.linspace(0.5, 1.6, n_draws - 1), 1.0))
    S, K = len(factors), len(truth.domains)
    draws = {k: np.repeat(np.asarray(v, float)[None], S, 0) for k, v in truth.params.items()}
    draws["a"] = draws["a"] * factors[:, None]
    return Posterior(truth.posterior.law, draws, truth.scaling, truth.domains, sigma=np.full((S, K), sigma))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategies", default="voi,variance,random,space-filling")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--law", default="capacity_noise")
    ap.add_argument("--sizes", default="50M,100M,200M", help="candidate model sizes")
    ap.add_argument("--tokens-per-param", type=float, default=20.0)
    ap.add_argument("--n-mixtures", type=int, default=6, help="candidate mixtures per size")
    ap.add_argument("--initial-mixtures", type=int, default=3)
    ap.add_argument("--target-factor", type=float, default=10.0, help="target N / largest candidate N")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--n-outcomes", type=int, default=16)
    ap.add_argument("--prior", choices=("grid", "cloud"), default="grid", help="draws reweighted by the cheap refit")
    ap.add_argument("--base-draws", type=int, default=60)
    ap.add_argument("--base-rel-sd", type=float, default=0.05)
    ap.add_argument("--noise-sd", type=float, default=0.02)
    ap.add_argument("--threshold", type=float, default=0.005, help="relative regret counted as reached")
    ap.add_argument("--nuts", action="store_true", help="refit by NUTS instead of reweighting")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=200)
    args = ap.parse_args(argv)

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [parse_quantity(s) for s in args.sizes.split(",")]
    target_n = args.target_factor * max(sizes)
    target_d = args.tokens_per_param * target_n
    print(f"target: N={format_quantity(target_n)}, D={format_quantity(target_d)}; law {args.law}; "
          f"refit {'NUTS' if args.nuts else 'importance reweighting'}; seeds {seeds}")
    results = {}
    for strategy in strategies:
        logs = []
        for seed in seeds:
            t0 = time.perf_counter()
            truth = default_truth(args.law, seed=seed, noise_sd=args.noise_sd)
            if args.prior == "grid" and not args.nuts:
                K = len(truth.domains)
                table, _ = simulate_runs(truth, mixtures=np.full((1, K), 1 / K), model_sizes=[min(sizes)],
                                         tokens=[truth.scaling.d_ref], seed=seed)
            else:
                table, _ = simulate_runs(truth, n_mixtures=args.initial_mixtures, model_sizes=[min(sizes)],
                                         seed=seed)
            cands = generate_candidates(truth.domains, sizes, tokens_per_param=args.tokens_per_param,
                                        n_mixtures=args.n_mixtures, seed=seed)
            if args.nuts:
                refit = NutsRefit(args.law, draws=args.draws, tune=args.tune, chains=2, seed=seed)
            elif args.prior == "grid":
                refit = ReweightRefit(exponent_grid(truth, args.base_draws, args.noise_sd))
            else:
                refit = ReweightRefit(posterior_around_truth(truth, n_draws=args.base_draws, rel_sd=args.base_rel_sd,
                                                             sigma=args.noise_sd, seed=100 + seed))
            result = run_campaign(table, target_n, target_d, refit=refit, observe=SimulatorObserver(truth, seed=seed),
                                  candidates=cands, criterion=strategy, batch=args.batch, budget_steps=args.steps,
                                  truth=truth, max_draws=None if not args.nuts else 200,
                                  n_outcomes=args.n_outcomes, seed=seed)
            log = result.to_frame()
            logs.append(log)
            print(f"  {strategy:>13} seed {seed}: {time.perf_counter() - t0:.1f} s, final relative regret "
                  f"{log['true_relative_regret'].iloc[-1]:.3g}, final ESS {log['ess'].iloc[-1]:.1f}", flush=True)
        results[strategy] = logs

    print("\ncompute-to-regret (mean over seeds): step, compute [FLOPs], relative true regret, posterior regret [nats]")
    for strategy, logs in results.items():
        n = min(len(l) for l in logs)
        compute = np.mean([l["compute"].to_numpy()[:n] for l in logs], axis=0)
        rel = np.mean([l["true_relative_regret"].to_numpy()[:n] for l in logs], axis=0)
        post = np.mean([l["expected_regret"].to_numpy()[:n] for l in logs], axis=0)
        print(f"{strategy}:")
        for i in range(n):
            print(f"  {i:>3}  {compute[i]:>10.3g}  {rel[i]:>10.3g}  {post[i]:>10.3g}")
        reached = []
        for l in logs:
            hit = np.flatnonzero(l["true_relative_regret"].to_numpy() <= args.threshold)
            reached.append(l["compute"].iloc[hit[0]] if len(hit) else np.inf)
        text = "never (some seed)" if np.any(np.isinf(reached)) else f"{np.mean(reached):.3g} FLOPs"
        print(f"  compute to reach within {100 * args.threshold:g}% of the optimum: {text}")


if __name__ == "__main__":
    main()
