"""Time the NUTS fit and a MAP point fit of a law on the SlimPajama runs (issue 3 benchmark).

    python benchmarks/bench_fit.py                    # final checkpoints, 4 chains x 1000 draws
    python benchmarks/bench_fit.py --rows all         # every checkpoint
    python benchmarks/bench_fit.py --map-only         # only the L-BFGS-B point fit
    python benchmarks/bench_fit.py --sampler nutpie

Prints wall time, gradient evaluations per second, ESS per second and the diagnostics.
Target on a 2-core machine for the full NUTS fit: under 2 minutes, zero divergences,
max R-hat <= 1.01.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bayesmix.data import load_runs
from bayesmix.gate import format_diagnostics
from bayesmix.inference import FitSettings, build_model, find_map, fit_law
from bayesmix.laws import get_law

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "slimpajama7" / "runs.csv"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--law", default="capacity_noise")
    parser.add_argument("--rows", choices=("final", "all"), default="final")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--sampler", default=FitSettings.sampler, choices=("nutpie", "pymc", "numpyro"))
    parser.add_argument("--map-only", action="store_true")
    args = parser.parse_args(argv)
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing: put the shared run tables in ../shared/data")
    table = load_runs(DATA)
    if args.rows == "final":
        table = table.final_checkpoints()
    law = get_law(args.law)
    print(f"{law.name} on {table.n_rows} rows x {table.n_domains} domains ({args.rows} checkpoints)")

    model, _ = build_model(law, table)
    t0 = time.perf_counter()
    func = model.logp_dlogp_function(ravel_inputs=True)
    func.set_extra_values({})
    from pymc.blocking import DictToArrayBijection

    x = DictToArrayBijection.map({v.name: model.initial_point()[v.name] for v in model.value_vars}).data
    func(x)  # PyTensor 3 compiles (numba) on the first call: count it as compile time
    compile_s = time.perf_counter() - t0
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        func(x)
    grad_s = (time.perf_counter() - t0) / reps
    print(f"compile logp+gradient {compile_s:.1f} s; one gradient {1000 * grad_s:.2f} ms "
          f"({1 / grad_s:.0f} gradients/s)")
    t0 = time.perf_counter()
    _, logp = find_map(model, starts=4, seed=0)
    print(f"MAP point fit (L-BFGS-B, 4 starts): {time.perf_counter() - t0:.1f} s, log density {logp:.1f}")
    if args.map_only:
        return
    t0 = time.perf_counter()
    fit = fit_law(table, law, settings=FitSettings(draws=args.draws, tune=args.tune, chains=args.chains,
                                                   sampler=args.sampler), progressbar=False, allow_warnings=True)
    wall = time.perf_counter() - t0
    diag = fit.diagnostics
    grads = diag.get("gradients_per_draw", float("nan")) * (args.draws + args.tune) * args.chains
    print(f"NUTS {args.sampler}: {args.chains} chains x {args.draws} draws (+{args.tune} tuning): wall {wall:.1f} s")
    print(f"  gradient evaluations/s {grads / diag['sampling_seconds']:.0f}; "
          f"min bulk ESS/s {diag['min_ess_bulk'] / wall:.2f}")
    print(format_diagnostics(diag))


if __name__ == "__main__":
    main()
