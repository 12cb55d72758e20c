"""Time default NUTS fits on the shared run tables and a large simulated one (issue 20).

    python benchmarks/bench_fit.py                          # pile17, slimpajama7, simulated
    python benchmarks/bench_fit.py --tables pile17 --second-process
    python benchmarks/bench_fit.py --tables pile17 --cold   # from an empty compile cache
    python benchmarks/bench_fit.py --tables slimpajama7 --map-only
    python benchmarks/bench_fit.py --tables slimpajama7 --seed 1 --max-tree-depth 7

Every fit runs in a fresh process with the library's default settings (a figure with
``--draws/--tune/--chains`` says so in its line), as ``bayesmix fit`` would. For each fit
it prints the process's wall time (Python start to saved result) and the fit's
(``fit_law``), how that time splits into compiling, the MAP search, the pilot and NUTS,
the cost of one log-density gradient, gradients per draw, draws per chain (a fit may
run on past the requested draws), the diagnostics gate's figures, how many kept draws'
trees the depth cap cut and whether the fit was sampled again at a higher target
acceptance, beside the issue's bar where it sets one.

Tables:

- ``pile17``: 43 runs x 17 domains at one scale (``../shared/data/pile17/runs.csv``).
- ``slimpajama7``: 200 final checkpoints x 7 domains at four model sizes.
- ``pile4``: 86 runs x 4 domains at three model sizes.
- ``simulated``: 1024 runs x 17 domains, 512 Dirichlet mixtures at 100M and 200M
  parameters, drawn from the default law's example truth (RegMix's proxy design size).

``--second-process`` fits each table again in another new process: the compiled code
that PyTensor and numba keep on disk is then warm. ``--cold`` points PyTensor's compile
cache at an empty folder for the first fit, as on a fresh machine.

With the capacity term as one fused numba Op (main at bea2f6b, 2026-12-07, nothing else
running, library defaults): ``--tables slimpajama7 --seed S`` **74.8, 72.5 and 101.2 s**
wall for seeds 0-2 (bar 90 s: met for seeds 0 and 1), compile 21-24 s, MAP 1.5-2.3 s,
pilot 6.0-10.4 s, NUTS 38, 36 and 55 s; 33, 35 and 32 gradients per draw; seed 2 ran on
to 1500 draws per chain; R-hat 1.010, no divergence. One gradient of the default model,
min of 15 x 200 evaluations: 188 us against 256 us before (Pile 17 88 against 125 us).
The gradient figures this script prints (200 evaluations once, after the fit) vary by
+-30% between runs on this machine: the same process measured 199-320 us in twelve
blocks of 2000 evaluations at one point. Of the warm compile's ~20 s, 13-15 s is numba
compiling nutpie's C callback around PyTensor's function, which itself loads from
PyTensor's cache (0.7 s): numba cannot cache the callback (it closes over the data).

With the callbacks built so that numba caches them (``bayesmix.nutpie_compile``; main at
04c5ba9, 2026-12-07, nothing else running, library defaults, the probes of 376c839 in
the pilot): ``--tables pile17 --second-process`` **54.9 s** wall in the first process
(compile 14.4 s: the callbacks compiled and written to the cache, pilot 4.7 s, NUTS 24.3
s, 69 gradients per draw, run on to 1500 draws) and **37.8 s** in the second (compile
2.3 s; the same draws). ``--tables slimpajama7 --seed S`` **88.4, 54.1 and 53.9 s** for
seeds 0-2 (bar 90 s: met; compile 33.9 s for seed 0, the first process to compile this
table's callbacks, then 3.9 and 3.4 s), pilot 14-15 s (two probe chains beside the
pilot's four: 6-7 s before them), NUTS 27-30 s, 31-32 gradients per draw, R-hat
1.000-1.010, no divergence. ``--tables simulated``: **542.7 s** (bar 600 s: met; compile
37 s, MAP 16 s, pilot 193 s, NUTS 251 s, 1.34 ms a gradient, 31 gradients per draw, R-hat
1.010, bulk ESS 1129, no divergence): the probes tripled its pilot (69 s at 53e5842) and
took most of what the faster gradient saved. ``--tables pile17 --cold --second-process``
(main at 896c717): **125.9 s** from an empty compile cache (bar 150 s; compile 65.8 s,
NUTS 29.0 s, R-hat 1.010), then 48.3 s in a second process (compile 3.7 s).
``--tables simulated`` again with its callbacks cached (main at 9de13fe, which prints the
pilot's line): **481.4 s** (compile 3.5 s, MAP 14.8 s, pilot 186.9 s, NUTS 234.1 s, the
same draws), and the pilot line says why the pilot costs what it does: its four chains,
started around the best MAP optimum, sat 9866 nats below the mode the probe chains found
(H moved by x5 and /5), so a second probe round ran (8 probe chains) and the kept run
starts from the probes' mode. The MAP search misses this table's main mode; the fit of
53e5842 (before the probes) may have sampled the minor one with every chain. Why: until
3dbb222 the MAP search of a whitened fit read its coordinates out of order and returned a
scrambled point (README, "Chains"). Since (main at 3dbb222, same command): **451.2 s**
(compile 4.4 s, MAP 26.8 s, pilot 126.8 s, NUTS 248.3 s, R-hat 1.010, bulk ESS 866, no
divergence), no pilot chain restarted and one round of probes.

The simulated table with the slopes' spread held at its prior's root mean square where
they go through two fitted values (main at 53e5842, 2026-12-06, nothing else running,
library defaults, ``--tables simulated``): **461 s** wall (bar 600 s: met; about 30 min
estimated before), compile 28 s, MAP 24 s, pilot 69 s, NUTS 316 s; 1.9 ms a gradient, 31
gradients per draw (88 before), 1000 draws per chain, max R-hat 1.010, bulk ESS 1032, no
divergence, no tree cut at depth 7.

With the left-out share ``h0`` in capacity_noise (main at 6df3311, 2026-12-06, nothing
else running, library defaults): ``--tables slimpajama7 --seed S`` 92.5, 71.6 and 68.6 s
for seeds 0-2 (compile 15-17 s, pilot 6-7 s, NUTS 63, 41, 40 s; 41, 38, 32 gradients per
draw; R-hat 1.010, no divergence): seed 0 just above the 90 s bar, the same table's
likelihood as before (it has no zero weight; ``h0`` adds one coordinate at its prior).
``--tables pile17 --second-process`` 57.8 s and 58.1 s (compile 11.8 s, NUTS 38 s, 69
gradients per draw, run on to 1500 draws per chain, R-hat 1.010, 27 trees cut at depth 7).

With the capacity laws' trees capped at depth 7 (main at ceadf28, 2026-12-06, nothing
else running, library defaults): ``--tables pile17 --second-process`` 45.7 s wall in the
first process (compile 11.9 s from a warm cache, pilot 3.1 s, NUTS 26.2 s, 52 gradients
per draw, 20 of 4000 kept trees cut) and 43.5 s in the second; ``--tables slimpajama7
--seed S`` 81, 63 and 77 s for seeds 0-2 (compile 15 s, NUTS 52, 35, 46 s), against 94,
77 and 79 s at depth 10 the same afternoon (``--max-tree-depth 10``). The same
SlimPajama command at depth 10 took 130.5 s that morning (compile 34 s, NUTS 80 s): the
machine's speed varies by that much between runs.

Measured on the project's 2-core machine with nothing else running, library defaults
(nutpie, 4 chains x 1000 draws after 800 tuning, the laws' target acceptance 0.95 and
0.99 again where the draws diverge), main at ebac564 (2026-12-05), the same commands:

=========== ============================ ======= ===== ======= ===== ======== ========
table       process                      wall s  comp. pilot   NUTS  grad ms  grad/draw
=========== ============================ ======= ===== ======= ===== ======== ========
pile17      first, empty compile cache   116     56    8       31    0.117    51
pile17      second (bar 90 s)            59      15    7       31    0.111    48
slimpajama7 first, warm cache (bar 90 s) 131     19    42      58    0.213    33
pile4       first, warm cache            48      16    2       25    0.073    45
=========== ============================ ======= ===== ======= ===== ======== ========

(SlimPajama ran on to 1500 draws per chain; Pile 4's seed-0 draws diverged once at 0.95
and were sampled again at 0.99.) Then the pilot's trees were capped at depth 6 (main at
ca18fbf): ``bayesmix fit ../shared/data/slimpajama7/runs.csv --seed S`` took 95, 85 and
94 s for seeds 0-2 (the command's wall time, not this script's; pilot 6.7-7.5 s instead
of 41-42 s, NUTS 50-56 s). Before, with the capacity laws at 0.99 throughout, main
at 355925d (2026-12-05),
``python benchmarks/bench_fit.py --tables pile17 --cold --second-process`` and
``--tables slimpajama7,pile4``:

=========== ============================ ======= ===== ======= ===== ======== ========
table       process                      wall s  comp. pilot   NUTS  grad ms  grad/draw
=========== ============================ ======= ===== ======= ===== ======== ========
pile17      first, empty compile cache   163     55    8       78    0.115    102
pile17      second (bar 90 s)            85      15    7       56    0.110    104
slimpajama7 first, warm cache (bar 90 s) 215     19    41      144   0.218    127
pile4       first, warm cache            40      17    2       16    0.073    45
=========== ============================ ======= ===== ======= ===== ======== ========

Every fit passed the gate (R-hat 1.01, no divergence); the cold Pile 17 fit ran on to
1500 draws per chain, the others stopped at 1000. Before 3f4e521 (2 sampler threads, the
pilot at the law's 0.99 target acceptance, 1000 tuning) the SlimPajama fit took 410 s
(pilot about 100 s, NUTS 265 s, run on to 1500 draws); after it, still with 1000 tuning,
Pile 17 took 152 s (empty cache) and 93 s (second process), SlimPajama 291 s (empty cache)
and 219 s (second process).

The simulated table has not finished a default fit within the 10-minute bar. At 03056bb
it ran past 16 minutes before it was stopped; shortened to 4 chains x (200 + 200) its
slopes, then sampled centred, diverged 159 times at 0.95 and ended at R-hat 1.61 on
``disc_slope_sd`` after the retry at 0.99 (214 gradients per draw at 2.7 ms each, 947 s).
Sampled non-centred, as they are since ee3b36d on a design with two fitted sizes: no
divergence, R-hat 1.03, 88 gradients per draw, 534 s for the same shortened run (compile
34 s, MAP 24 s, pilot 30 s, NUTS 440 s); a full default run would need about four times
that NUTS time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TABLES = ("pile17", "slimpajama7", "pile4", "simulated")
#: Issue 20's bars on the wall time of a default fit, seconds (first process; second).
BARS = {"pile17": (150, 90), "slimpajama7": (90, None), "simulated": (600, None)}
#: The simulated table: RegMix's proxy design size at two model sizes.
SIMULATED = dict(n_domains=17, n_mixtures=512, model_sizes=(1e8, 2e8), seed=0)
#: Settings a run may set away from the library's defaults (its figures then say so).
SPECIAL_SETTINGS = ("draws", "tune", "chains", "max_tree_depth")


def load_table(name: str):
    """The run table called ``name`` (see the module docstring)."""
    if name == "simulated":
        from bayesmix.simulate import default_truth, simulate_runs

        domains = [f"d{i:02d}" for i in range(SIMULATED["n_domains"])]
        table, _ = simulate_runs(default_truth(domains=domains, seed=SIMULATED["seed"]),
                                 n_mixtures=SIMULATED["n_mixtures"], model_sizes=SIMULATED["model_sizes"],
                                 seed=SIMULATED["seed"])
        return table
    from bayesmix.data import load_runs

    path = DATA / name / "runs.csv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: put the shared run tables in ../shared/data")
    table = load_runs(path)
    return table.final_checkpoints() if name == "slimpajama7" else table


def gradient_seconds(fit, table, settings, reps: int = 200) -> float:
    """Seconds per log-density gradient of the model ``fit`` sampled (nutpie's compiled
    function, reused from the fit in this process), at the model's initial point."""
    from bayesmix.inference import build_model, modelled_table
    from bayesmix.nutpie_backend import compile_for_nutpie, compiled_logp_dlogp, raveled

    model, _ = build_model(fit.law, modelled_table(fit.law, table), None, scaling=fit.scaling,
                           coordinates=settings.coordinates, design=fit.observation_design)
    compiled, _ = compile_for_nutpie(fit.law, model, settings)
    logp_dlogp = compiled_logp_dlogp(compiled)
    x = raveled(model, model.initial_point())
    logp_dlogp(x)
    t0 = time.perf_counter()
    for _ in range(reps):
        logp_dlogp(x)
    return (time.perf_counter() - t0) / reps


def child(args) -> dict:
    """One fit in this process; its figures as a dict."""
    t_start = float(os.environ.get("BENCH_FIT_T0", time.time()))
    from bayesmix.inference import FitSettings, find_map, fit_law, build_model
    from bayesmix.laws import get_law

    table = load_table(args.child)
    law = get_law(args.law)
    overrides = {k: getattr(args, k) for k in SPECIAL_SETTINGS if getattr(args, k) is not None}
    settings = FitSettings(sampler=args.sampler, seed=args.seed, **overrides)
    out = {"table": args.child, "rows": table.n_rows, "domains": table.n_domains, "law": law.name,
           "special": ", ".join(f"{k}={v}" for k, v in overrides.items())}
    if args.map_only:
        model, _ = build_model(law, table)
        t0 = time.perf_counter()
        _, logp = find_map(model, starts=settings.map_starts, seed=args.seed)
        return {**out, "map_only_seconds": time.perf_counter() - t0, "map_logp": logp}
    t0 = time.perf_counter()
    fit = fit_law(table, law, settings=settings, progressbar=False, allow_warnings=True)
    fit_wall = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        fit.save(Path(folder) / "fit.nc")  # what `bayesmix fit` does last
    process_wall = time.time() - t_start
    diag = fit.diagnostics
    keys = ("max_rhat", "min_ess_bulk", "min_ess_tail", "divergences", "gradients_per_draw", "compile_seconds",
            "map_seconds", "pilot_seconds", "sampling_seconds", "draws_per_chain", "worst_rhat_param",
            "treedepth_hits", "max_tree_depth", "target_accept", "first_target_accept",
            "pilot_restarted_chains", "pilot_max_logp_gap", "pilot_probe_chains", "pilot_started_from_probes")
    out.update({k: diag.get(k) for k in keys})
    out.update(fit_wall=fit_wall, process_wall=process_wall,
               gradient_seconds=gradient_seconds(fit, table, settings.for_law(law)))
    return out


def run_child(table: str, args, cache_dir: str | None = None) -> dict:
    """One fit of ``table`` in a new process (with PyTensor's compile cache in
    ``cache_dir`` where given)."""
    env = dict(os.environ, BENCH_FIT_T0=repr(time.time()))
    if cache_dir is not None:
        env["PYTENSOR_FLAGS"] = ",".join(filter(None, [env.get("PYTENSOR_FLAGS", ""),
                                                       f"base_compiledir={cache_dir}"]))
    argv = [sys.executable, __file__, "--child", table, "--law", args.law, "--sampler", args.sampler,
            "--seed", str(args.seed)]
    for key in SPECIAL_SETTINGS:
        if getattr(args, key) is not None:
            argv += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    if args.map_only:
        argv.append("--map-only")
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the fit of {table} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def report(result: dict, which: str) -> None:
    """Print one fit's figures."""
    name = result["table"]
    head = f"{name} ({result['rows']} rows x {result['domains']} domains, {result['law']}), {which}"
    if result.get("special"):
        head += f" [special settings: {result['special']}]"
    print(head)
    if "map_only_seconds" in result:
        print(f"  MAP point fit: {result['map_only_seconds']:.1f} s, log density {result['map_logp']:.1f}")
        return
    bar = BARS.get(name, (None, None))[0 if which.startswith("first") else 1]
    verdict = "" if bar is None else f"  (bar <= {bar} s: {'met' if result['process_wall'] <= bar else 'NOT met'})"
    print(f"  wall {result['process_wall']:.1f} s from Python's start to the saved fit{verdict}; "
          f"fit_law {result['fit_wall']:.1f} s")
    print(f"  compile {result['compile_seconds']:.1f} s, MAP {result['map_seconds']:.1f} s, "
          f"pilot {result.get('pilot_seconds') or 0.0:.1f} s, NUTS {result['sampling_seconds']:.1f} s")
    grads = result["gradients_per_draw"]
    print(f"  one gradient {1e3 * result['gradient_seconds']:.3f} ms; {grads:.0f} gradients per draw; "
          f"{result['draws_per_chain']} draws per chain")
    print(f"  max R-hat {result['max_rhat']:.3f} ({result['worst_rhat_param']}), bulk ESS {result['min_ess_bulk']:.0f}, "
          f"tail ESS {result['min_ess_tail']:.0f}, divergences {result['divergences']}")
    retried = (f"; sampled again at {result['target_accept']:g} after divergences at {result['first_target_accept']:g}"
               if result.get("first_target_accept") else "")
    print(f"  trees cut at depth {result.get('max_tree_depth')}: {result.get('treedepth_hits')}{retried}")
    if result.get("pilot_restarted_chains") or result.get("pilot_probe_chains"):
        print(f"  pilot: {result.get('pilot_restarted_chains') or 0} chains restarted, up to "
              f"{result.get('pilot_max_logp_gap') or 0.0:.0f} nats below the main mode; "
              f"{result.get('pilot_probe_chains') or 0} probe chains"
              + (", whose mode the kept run starts in" if result.get("pilot_started_from_probes") else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="pile17,slimpajama7,simulated",
                        help=f"comma-separated, of {', '.join(TABLES)}")
    parser.add_argument("--law", default="capacity_noise")
    parser.add_argument("--sampler", default="nutpie", choices=("nutpie", "pymc", "numpyro"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=None, help="special settings (default: the library's)")
    parser.add_argument("--tune", type=int, default=None)
    parser.add_argument("--chains", type=int, default=None)
    parser.add_argument("--max-tree-depth", type=int, default=None,
                        help="special setting: nutpie's tree-depth cap (default: the law's)")
    parser.add_argument("--second-process", action="store_true", help="fit each table again in a new process")
    parser.add_argument("--cold", action="store_true", help="first fit from an empty PyTensor compile cache")
    parser.add_argument("--map-only", action="store_true", help="only the L-BFGS-B point fit")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args), default=float), flush=True)
        return 0
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        parser.error(f"unknown tables {unknown}: choose from {', '.join(TABLES)}")
    for name in tables:
        with tempfile.TemporaryDirectory() as cold_cache:
            first = run_child(name, args, cold_cache if args.cold else None)
            report(first, "first process" + (" (empty compile cache)" if args.cold else ""))
            if args.second_process:
                report(run_child(name, args, cold_cache if args.cold else None), "second process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
