"""``bayesmix demo``: simulate a small campaign, fit the central law, compare with the truth."""

from __future__ import annotations

from .._files import check_output_path
from .common import show_progress


def add_parser(sub):
    p = sub.add_parser(
        "demo", help="simulate proxy runs, fit capacity_noise, predict against the truth",
        description="Simulate a small proxy-run campaign from a known capacity_noise law (4 domains, "
                    "model sizes 50M-400M), fit it by NUTS, print the diagnostics and predictions "
                    "at a 10x larger scale next to the true losses.",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation and the sampler")
    p.add_argument("--draws", type=int, default=400, help="draws per chain (default 400)")
    p.add_argument("--tune", type=int, default=600, help="tuning iterations per chain (default 600)")
    p.add_argument("--chains", type=int, default=2, help="chains (default 2)")
    p.add_argument("-o", "--out", default=None, metavar="FIT.nc", help="also save the fit to this .nc file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import numpy as np

    from ..inference import fit_law, format_diagnostics
    from ..simulate import default_truth, simulate_runs

    if args.out:
        check_output_path(args.out)
    truth = default_truth("capacity_noise", seed=args.seed)
    table, truth = simulate_runs(truth, n_mixtures=12, model_sizes=(5e7, 1e8, 2e8, 4e8),
                                 tokens_per_param=20, seed=args.seed, min_weight=0.03)
    print("simulated run table (truth: capacity_noise):")
    print(table.format_summary())
    print()
    print(f"fitting capacity_noise by NUTS ({args.chains} chains x {args.draws} draws) ...", flush=True)
    fit = fit_law(table, "capacity_noise", draws=args.draws, tune=args.tune, chains=args.chains,
                  seed=args.seed, progressbar=show_progress(args), allow_warnings=True)
    print("diagnostics:")
    print(format_diagnostics(fit.diagnostics))
    if args.out:
        fit.save(args.out)
        print(f"saved {args.out}")
    posterior = fit.posterior()
    rng = np.random.default_rng(args.seed + 1)
    mixtures = np.vstack([np.full(len(truth.domains), 1 / len(truth.domains)),
                          rng.dirichlet(np.ones(len(truth.domains)), size=2)])
    N, D = 4e9, 8e10
    summary = posterior.summarise(mixtures, N, D)
    true = truth.expected_loss(mixtures, N, D)
    print()
    print("predictions at N=4B, D=80B (10x the largest proxy run), 90% predictive intervals:")
    print(f"  {'mixture':<32} {'domain':<8} {'true':>7} {'pred':>7} {'q05':>7} {'q95':>7}")
    inside = 0
    for i, h in enumerate(mixtures):
        label = ",".join(f"{w:.2f}" for w in h)
        for j, d in enumerate(truth.domains):
            ok = summary["q05"][i, j] <= true[i, j] <= summary["q95"][i, j]
            inside += ok
            print(f"  {label if j == 0 else '':<32} {d:<8} {true[i, j]:7.4f} {summary['mean'][i, j]:7.4f} "
                  f"{summary['q05'][i, j]:7.4f} {summary['q95'][i, j]:7.4f}")
    print(f"  true loss inside the 90% interval in {inside} of {true.size} cells")
    print("\nnext: bayesmix fit RUNS.csv --out fit.nc; bayesmix predict fit.nc --runs RUNS.csv")
    return 0
