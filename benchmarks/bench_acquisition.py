"""Acquisition strategies on the simulator: compute spent versus true regret at the target.

Design
------
For each strategy (voi, variance, random, space-filling) and seed, a campaign starts
from one small run (the uniform mixture at the smallest candidate size) and acquires
runs from a grid of candidate scales (``--sizes``, 20 tokens per parameter) times
quasi-random mixtures (``--n-mixtures`` per size, every weight >= ``--min-weight``);
the target is ``--target-factor`` (default 10) times the largest candidate size. After
each step the true regret of the recommendation (its true objective minus the true
optimum, relative to the optimum) is logged. The same seed gives every strategy the
same truth, prior draws, first run and candidates.

Truth (``--truth contrast``, default): :func:`bayesmix.simulate.contrasting_truth`
(``--amplitude`` 0.5, ``--contrast`` 8). The default simulated truth has a flat optimum
(the uniform mixture is within ~0.01% of it: under the capacity laws the capacity term
is minimised at ``h`` = the objective's weights at every scale, so only the
noise-reduction term moves the optimum), so every strategy is "within 0.5%" at step 0
and nothing can be told apart (``--truth default`` shows it). The contrasting truth has
noise-reduction amplitudes spanning a factor 8 and exponents 0.15-0.7: the uniform
mixture is about 1-4% worse than the optimum at the target, and the optimum moves with
scale.

Prior (``--prior exponents``, default): :func:`bayesmix.simulate.exponent_prior`,
``--base-draws`` (200) draws whose exponents ``b_i``, ``a_i`` are log-normal (sd
``--base-rel-sd``, 0.5) around a centre that is itself one draw away from the truth's
(the truth is a typical draw of the prior, not its centre), with amplitudes and
irreducible losses moved so that every draw predicts exactly the truth's losses for
the uniform mixture at the smallest candidate scale: the first run tells nothing. Draw
0 is the truth and the refit is the exact importance reweighting of these draws (a
well-specified discrete Bayesian update; seconds per step). The draws part ways with
scale and away from the uniform mixture, at a cost of ``6 N D`` per run: a strategy
wins by buying the information the target decision needs cheaply. Nothing in the
prior favours a strategy (symmetric in the domains, no candidate built in). Its
optimism: the truth is one of the draws and ``H`` is known, so once the weights
collapse onto the truth the regret is 0.

What the design shows (and does not): in this law the noise term is
``A_i (D h_i K)^-a_i``, so the exponent ``a_i`` that drives the target decision is
also what makes a domain's loss move with its weight at a fixed small D: a cheap run
at an off-uniform mixture is informative, and with ``--noise-sd`` 0.02 a single such
run pins the draws (ESS ~1). The comparison then measures whether a strategy buys a
cheap informative run first; ``--noise-sd 0.05`` needs several runs. The prior regret
depends on the seed (how far the truth lies from the prior's centre): with the
defaults, the prior's decision is already within 0.5% of the optimum for about 2 of 3
seeds, which is why the 0.1% threshold is printed too. ``--prior grid`` (one common
scale of the exponents ``a``) and ``--prior cloud`` (every parameter scattered) are
kept for comparison; ``--nuts`` refits by NUTS (minutes per step).

A truth where variance is not what the decision needs (``--nuisance-rel-sd SD``): the
first domain's weight is fixed at 1/K in the target decision (the candidates still vary
it), and its noise exponent gets the prior sd SD while the others keep
``--base-rel-sd``. Its loss at a candidate that moves its weight is then the most
uncertain thing a run can measure, and says nothing about the decision (at a fixed
weight its noise term is the same for every decision). ``variance`` ranks by that
uncertainty, ``voi`` by what the decision needs. Measured (2026-12-05, ``--strategies
voi,variance,random --seeds 0,...,15 --nuisance-rel-sd 1.0 --base-rel-sd 0.3 --noise-sd
0.05``; 4-7 s a campaign): mean true regret after the first run (3e17 FLOPs) 0.029% (voi),
0.070% (variance), 0.152% (random), from 0.160% at the start; after 2.7e19 FLOPs 0.001%,
0.008%, 0.001%: variance keeps buying runs that measure the nuisance and stalls; staying
within 0.1% from then on took a mean 1.7e17 FLOPs (voi), 7.7e17 (variance), 1.3e18
(random). Runs whose first-domain weight lies more than half of 1/K from 1/K: 57% of
voi's, 61% of variance's, 50% of random's. The two can be told apart, by a factor of 2-8
in regret at equal compute, not by an order of magnitude: every run measures all
domains, so runs bought for the nuisance teach the decision something too.

Output
------
Per strategy and seed the campaign log; then, per strategy, the mean (over seeds)
relative regret of the latest recommendation at log-spaced compute levels (the
compute-to-regret curve), and the compute to reach within each of ``--thresholds`` (default
0.5%, the issue's target, and 0.1%) of the true optimal objective, per seed, counted two ways: ``first`` (the first
recommendation within the threshold) and ``stay`` (from then on every recommendation
of the campaign stays within it); 'never' when it is not reached within the budget.
The ratio of the median (and mean) compute of voi to that of random is printed last. ``--plot
FILE`` saves the curves as a PNG.

Timing of ``bayesmix next`` (``--time-next FIT``)
-------------------------------------------------
Runs the command of issue 23 in a fresh process and prints its wall time and the time
per candidate::

    bayesmix next FIT --target-model-size 937e6 --target-tokens 35e9 --sizes 122M,310M \\
        --tokens-per-param 20 --n-mixtures 64 --batch 4

(128 candidates, 7 domains, 200 draws). FIT is the fit of the 60 SlimPajama 122M runs
(final checkpoints); when the file does not exist it is fitted first (``bayesmix fit
runs.csv --filter-model-size 122M --chains 2 --draws 500 --tune 500 --allow-warnings``,
1-2 minutes) and saved there. The issue's target: <= 60 s on the 2-core machine.

Examples
--------
    python benchmarks/bench_acquisition.py --seeds 0 --steps 2 --n-mixtures 3   # smoke test
    python benchmarks/bench_acquisition.py --seeds 0,1,2,3 --plot acq.png
    python benchmarks/bench_acquisition.py --time-next /tmp/sp122.nc --strategies ""   # timing only
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bayesmix.acquire import (NutsRefit, ReweightRefit, SimulatorObserver, generate_candidates,
                              run_campaign)
from bayesmix.decide import Constraints
from bayesmix.posterior import Posterior
from bayesmix.simulate import contrasting_truth, default_truth, exponent_prior, simulate_runs
from bayesmix.testing import posterior_around_truth
from bayesmix.units import format_quantity, parse_quantity


def exponent_grid(truth, n_draws, sigma):
    """Draws equal to the truth except the noise exponents, scaled by a grid containing 1."""
    factors = np.sort(np.append(np.linspace(0.5, 1.6, n_draws - 1), 1.0))
    S, K = len(factors), len(truth.domains)
    draws = {k: np.repeat(np.asarray(v, float)[None], S, 0) for k, v in truth.params.items()}
    draws["a"] = draws["a"] * factors[:, None]
    return Posterior(truth.posterior.law, draws, truth.scaling, truth.domains, sigma=np.full((S, K), sigma))


def nuisance_share(log, candidates) -> float:
    """Share of a campaign's runs (``--nuisance-rel-sd``) whose weight of the first domain
    is more than half of 1/K away from the 1/K the decision fixes it at: runs that mostly
    measure the nuisance exponent."""
    where = {name: i for i, name in enumerate(candidates.names)}
    chosen = [where[n] for names in log["chosen"] if names for n in names.split(",")]
    if not chosen:
        return float("nan")
    K = candidates.mixtures.shape[1]
    return float(np.mean(np.abs(candidates.mixtures[chosen, 0] - 1 / K) > 0.5 / K))


def regret_at(log, levels, column="true_relative_regret"):
    """Regret of the latest recommendation made with at most each compute level."""
    compute = log["compute"].to_numpy()
    regret = log[column].to_numpy()
    idx = np.searchsorted(compute, levels, side="right") - 1
    return np.where(idx >= 0, regret[np.maximum(idx, 0)], np.nan)


def compute_to_threshold(log, threshold):
    """(first, stay): compute at the first step within the threshold, and from which it stays."""
    compute = log["compute"].to_numpy()
    ok = log["true_relative_regret"].to_numpy() <= threshold
    first = compute[np.argmax(ok)] if ok.any() else np.inf
    bad = np.flatnonzero(~ok)
    if not ok[-1]:
        stay = np.inf
    else:
        stay = compute[bad[-1] + 1] if len(bad) else compute[0]
    return first, stay


def fmt(x):
    return "never" if not np.isfinite(x) else f"{x:.3g}"


SLIMPAJAMA = "/work/shared/data/slimpajama7/runs.csv"
NEXT_COMMAND = ["--target-model-size", "937e6", "--target-tokens", "35e9", "--sizes", "122M,310M",
                "--tokens-per-param", "20", "--n-mixtures", "64", "--batch", "4"]


def time_next(fit: str, runs: str = SLIMPAJAMA) -> None:
    """Time the `next` command of issue 23 in a fresh process (fitting FIT first if needed)."""
    cli = [sys.executable, "-m", "bayesmix"]
    if not Path(fit).exists():
        t0 = time.perf_counter()
        subprocess.run(cli + ["fit", runs, "--filter-model-size", "122M", "--chains", "2", "--draws", "500",
                              "--tune", "500", "--allow-warnings", "--quiet", "--out", fit], check=True,
                       capture_output=True)
        print(f"fitted the 60 SlimPajama 122M runs in {time.perf_counter() - t0:.0f} s: {fit}")
    command = cli + ["next", fit] + NEXT_COMMAND
    t0 = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    total = time.perf_counter() - t0
    print("command: bayesmix next " + " ".join([fit] + NEXT_COMMAND))
    print("\n".join(done.stdout.splitlines()[:8]))
    match = re.search(r"([0-9.]+) s for ([0-9]+) candidates", done.stdout)
    if match:
        seconds, n = float(match.group(1)), int(match.group(2))
        print(f"acquisition: {seconds:.1f} s for {n} candidates, {1e3 * seconds / n:.0f} ms per candidate")
        print(f"command total (start-up, loading, compiling, acquisition): {total:.1f} s, "
              f"{1e3 * total / n:.0f} ms per candidate (issue 23: <= 60 s)")


def plot_curves(path, results, levels, thresholds, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"voi": ("-", "o", "black"), "variance": ("--", "s", "0.35"),
              "random": (":", "^", "0.5"), "space-filling": ("-.", "D", "0.65")}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, (strategy, logs) in enumerate(results.items()):
        ls, marker, colour = styles.get(strategy, ("-", "x", str(0.2 + 0.15 * k)))
        curves = np.array([regret_at(l, levels) for l in logs])
        mean = np.nanmean(curves, axis=0)
        ax.plot(levels, 100 * mean, ls=ls, marker=marker, markersize=4, color=colour, label=strategy)
    for threshold in thresholds:
        ax.axhline(100 * threshold, color="0.3", lw=0.8)
        ax.text(levels[0], 100 * threshold * 1.08, f"{100 * threshold:g}%", fontsize=8, color="0.3")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.01)
    top = max([100 * max(thresholds)] + [np.nanmax(100 * np.array([regret_at(l, levels) for l in logs]))
                                          for logs in results.values()])
    ax.set_ylim(0, 1.5 * top)
    ax.set_xlabel("compute of acquired proxy runs [FLOPs, 6 N D]")
    ax.set_ylabel("true relative regret at the target [%]")
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(True, which="major", color="0.9")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategies", default="voi,variance,random,space-filling")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--truth", choices=("contrast", "default"), default="contrast")
    ap.add_argument("--sizes", default="50M,100M,200M", help="candidate model sizes")
    ap.add_argument("--tokens-per-param", type=float, default=20.0)
    ap.add_argument("--n-mixtures", type=int, default=6, help="candidate mixtures per size")
    ap.add_argument("--min-weight", type=float, default=0.03, help="lower bound of every weight")
    ap.add_argument("--initial-mixtures", type=int, default=3, help="initial runs (--prior cloud, --nuts)")
    ap.add_argument("--target-factor", type=float, default=10.0, help="target N / largest candidate N")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--budget", type=float, default=3e19, help="compute budget of a campaign [FLOPs]")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--n-outcomes", type=int, default=256)
    ap.add_argument("--prior", choices=("exponents", "grid", "cloud"), default="exponents",
                    help="draws reweighted by the cheap refit")
    ap.add_argument("--base-draws", type=int, default=200)
    ap.add_argument("--base-rel-sd", type=float, default=0.5, help="prior sd of the log exponents")
    ap.add_argument("--capacity-rel-sd", type=float, default=None,
                    help="prior sd of the logit capacity exponents b (--prior exponents; default --base-rel-sd)")
    ap.add_argument("--nuisance-rel-sd", type=float, default=None,
                    help="a truth where reducing variance is not what the decision needs (--prior exponents): "
                         "the first domain's weight is fixed at 1/K in the decision, the candidates still vary "
                         "it, and its noise exponent gets this prior sd")
    ap.add_argument("--amplitude", type=float, default=0.5, help="smallest noise amplitude of the truth [nats]")
    ap.add_argument("--contrast", type=float, default=8.0, help="largest / smallest noise amplitude")
    ap.add_argument("--noise-sd", type=float, default=0.02)
    ap.add_argument("--thresholds", default="0.005,0.001",
                    help="relative regrets counted as reached (the first is the issue's target)")
    ap.add_argument("--nuts", action="store_true", help="refit by NUTS instead of reweighting")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--tune", type=int, default=200)
    ap.add_argument("--voi-method", default="gaussian", choices=("gaussian", "importance"),
                    help="update of the value of information (importance: exact for the discrete priors here)")
    ap.add_argument("--plot", metavar="FILE.png", help="save the compute-to-regret curves")
    ap.add_argument("--time-next", metavar="FIT.nc",
                    help="time issue 23's `next` command on this fit of the SlimPajama 122M runs (fitted if missing)")
    args = ap.parse_args(argv)
    if args.time_next:
        time_next(args.time_next)

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    sizes = [parse_quantity(s) for s in args.sizes.split(",")]
    target_n = args.target_factor * max(sizes)
    target_d = args.tokens_per_param * target_n
    n0, d0 = min(sizes), args.tokens_per_param * min(sizes)
    print(f"target: N={format_quantity(target_n)}, D={format_quantity(target_d)}; truth {args.truth}; "
          f"prior {args.prior} ({args.base_draws} draws); refit {'NUTS' if args.nuts else 'importance reweighting'}; "
          f"candidates {args.n_mixtures} mixtures x {args.sizes}; budget {args.steps} steps / {args.budget:.3g} FLOPs; "
          f"seeds {seeds}", flush=True)
    results = {}
    for strategy in strategies:
        logs = []
        for seed in seeds:
            t0 = time.perf_counter()
            if args.truth == "contrast":
                truth = contrasting_truth(seed=seed, noise_sd=args.noise_sd, amplitude=args.amplitude,
                                          contrast=args.contrast)
            else:
                truth = default_truth("capacity_noise", seed=seed, noise_sd=args.noise_sd)
            K = len(truth.domains)
            constraints = Constraints(min={d: args.min_weight for d in truth.domains})
            decision = constraints
            spreads = {"a": np.full(K, args.base_rel_sd),
                       "b": args.base_rel_sd if args.capacity_rel_sd is None else args.capacity_rel_sd}
            if args.nuisance_rel_sd is not None:
                nuisance = truth.domains[0]
                decision = Constraints(min={**constraints.min, nuisance: 1 / K}, max={nuisance: 1 / K})
                spreads["a"][0] = args.nuisance_rel_sd
            if args.nuts or args.prior == "cloud":
                table, _ = simulate_runs(truth, n_mixtures=args.initial_mixtures, model_sizes=[n0], seed=seed,
                                         min_weight=args.min_weight)
            else:
                table, _ = simulate_runs(truth, mixtures=np.full((1, K), 1 / K), model_sizes=[n0], tokens=[d0],
                                         seed=seed)
            cands = generate_candidates(truth.domains, sizes, tokens_per_param=args.tokens_per_param,
                                        n_mixtures=args.n_mixtures, constraints=constraints, seed=seed)
            if args.nuts:
                refit = NutsRefit("capacity_noise", draws=args.draws, tune=args.tune, chains=2, seed=seed)
            elif args.prior == "exponents":
                refit = ReweightRefit(exponent_prior(truth, n0, d0, n_draws=args.base_draws, rel_sd=spreads,
                                                     seed=100 + seed))
            elif args.prior == "grid":
                refit = ReweightRefit(exponent_grid(truth, args.base_draws, args.noise_sd))
            else:
                refit = ReweightRefit(posterior_around_truth(truth, n_draws=args.base_draws, rel_sd=args.base_rel_sd,
                                                             sigma=args.noise_sd, seed=100 + seed))
            result = run_campaign(table, target_n, target_d, refit=refit, observe=SimulatorObserver(truth, seed=seed),
                                  candidates=cands, criterion=strategy, batch=args.batch, budget_steps=args.steps,
                                  budget_flops=args.budget, truth=truth, constraints=decision,
                                  max_draws=None if not args.nuts else 200, n_outcomes=args.n_outcomes,
                                  method=args.voi_method, seed=seed)
            log = result.to_frame()
            logs.append(log)
            first, stay = compute_to_threshold(log, thresholds[0])
            print(f"  {strategy:>13} seed {seed}: {time.perf_counter() - t0:5.1f} s; relative regret by step "
                  + " ".join(f"{100 * r:.2f}%" for r in log["true_relative_regret"])
                  + "; compute by step " + " ".join(f"{c:.2g}" for c in log["compute"])
                  + f"; to {100 * thresholds[0]:g}%: first {fmt(first)}, stay {fmt(stay)}; "
                  f"final ESS {log['ess'].iloc[-1]:.1f}"
                  + (f"; {nuisance_share(log, cands):.0%} of its runs far from the fixed weight of "
                     f"{truth.domains[0]}" if args.nuisance_rel_sd is not None else ""), flush=True)
        results[strategy] = logs

    top = max(l["compute"].max() for logs in results.values() for l in logs)
    low = min(sizes) * args.tokens_per_param * min(sizes) * 6
    levels = np.concatenate([[0.0], np.geomspace(low, max(top, low), 12)])
    print(f"\ncompute-to-regret: mean over {len(seeds)} seeds of the relative true regret [%] of the latest "
          "recommendation made with at most this compute")
    print(f"{'FLOPs':>10}  " + "  ".join(f"{s:>13}" for s in results))
    for i, c in enumerate(levels):
        vals = [100 * np.nanmean([regret_at(l, levels)[i] for l in logs]) for logs in results.values()]
        print(f"{c:>10.3g}  " + "  ".join(f"{v:>13.3f}" for v in vals))
    for threshold in thresholds:
        print(f"\ncompute [FLOPs] to reach within {100 * threshold:g}% of the true optimum, per seed "
              "(first / stay), and the median over seeds")
        medians = {}
        for strategy, logs in results.items():
            pairs = [compute_to_threshold(l, threshold) for l in logs]
            firsts = np.array([p[0] for p in pairs])
            stays = np.array([p[1] for p in pairs])
            medians[strategy] = (np.median(firsts), np.median(stays), np.mean(firsts), np.mean(stays))
            print(f"  {strategy:>13}: " + ", ".join(f"s{s} {fmt(f)}/{fmt(t)}" for s, f, t in zip(seeds, firsts, stays))
                  + f"; median {fmt(medians[strategy][0])} / {fmt(medians[strategy][1])}, mean "
                  f"{fmt(medians[strategy][2])} / {fmt(medians[strategy][3])}; reached in "
                  f"{np.isfinite(firsts).sum()}/{len(seeds)} (first), {np.isfinite(stays).sum()}/{len(seeds)} (stay); "
                  f"already at step 0 in {int(np.sum(firsts == 0))}/{len(seeds)}")
        if "voi" in medians and "random" in medians:
            for k, label in ((0, "median, first"), (1, "median, stay"), (2, "mean, first"), (3, "mean, stay")):
                v, r = medians["voi"][k], medians["random"][k]
                ratio = v / r if np.isfinite(v) and np.isfinite(r) and r > 0 else float("nan")
                print(f"  compute voi / random ({label}): {ratio:.3g}"
                      + ("" if np.isfinite(ratio) else " (0 or never)"))
    if args.plot:
        plot_curves(args.plot, results, levels[1:], thresholds,
                    f"target {format_quantity(target_n)} params / {format_quantity(target_d)} tokens; "
                    f"mean over seeds {','.join(map(str, seeds))}")
        print(f"plot written: {args.plot}")


if __name__ == "__main__":
    main()
