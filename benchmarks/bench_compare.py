"""Time a whole comparison of laws on a real run table and set it beside the paper.

Default: ``--cv kfold:5`` on ``../shared/data/pile17/runs.csv`` with every registered
law that accepts the table (the single-scale comparison of Dai and Zheng's Table 2; the
joint law refuses one scale), two local worker processes, nutpie. Prints one line per
fit, the comparison table, the held-out MRE per law beside the paper's Table 2, the
seconds each law spent compiling, in MAP searches and in NUTS, and the wall time.

    python benchmarks/bench_compare.py
    python benchmarks/bench_compare.py --data ../shared/data/pile4/runs.csv --cv scale
    python benchmarks/bench_compare.py --data ../shared/data/slimpajama7/runs.csv --cv scale \\
        --laws capacity_noise,chinchilla_domain,additive,joint,linear --out /tmp/sp7

The paper's protocol is a 70/30 split of the 1B runs and MRE over cells with positive
training weight; this benchmark uses grouped K-fold (every run held out once), so the
figures are comparable in kind, not digit for digit.

Measured (2026-12-05, main at 2576858, 2 cores with nothing else running, ``python
benchmarks/bench_compare.py --laws capacity_noise,capacity,exponential,bimix,additive,chinchilla_domain,linear``,
the seven laws of issue 20): 35 fits in 1280 s wall (issue 20's bar: 360 s). Fit seconds
summed over each law's five folds: additive 1081 (NUTS 981), exponential 608 (564), linear
409 (363), capacity_noise 228 (156), capacity 79, chinchilla_domain 47, bimix 26; compiling
12-27 s per law and worker. Three laws' geometry, not compilation, holds the comparison
back. Held-out MRE on trained cells: capacity_noise 1.667%, capacity 1.685%, additive
3.417%, exponential 4.851%, bimix 5.124%, chinchilla_domain 5.531%, linear 6.328%. At 2 x
(500 + 500) most folds of most laws end above the gate's R-hat 1.01 (up to 1.15, additive),
which the comparison reports beside each law.

Again after the linear law's mass matrix became diagonal (2026-12-06, main at
8a32b43, the same command, nothing else running): 35 fits in 1417 s wall. Linear 25
fit-seconds (NUTS 11; was 409), but additive 1772 (NUTS 1677; its five folds took
216-303 s each, against 1081 s in all on 12-05; a variation between runs not taken apart
here), exponential 587, capacity_noise 238, capacity 110, chinchilla_domain 41,
bimix 33. The additive law alone now holds the comparison back. Held-out MRE as before
(capacity_noise 1.613%, linear 6.325%).

After the capacity laws' trees were capped at depth 7 (2026-12-06, main at 686ad1e, the
same command, nothing else running): 35 fits in 840 s wall. Fit-seconds: additive 1028,
exponential 409, capacity_noise 100, capacity 58, chinchilla_domain 29, linear 19, bimix
17. The uncapped additive and exponential laws fell too (1772 and 587 that morning): the
machine's speed varied by about that much during the day, so only the capacity laws'
share (238 -> 100 and 110 -> 58) is the cap's. Held-out MRE on trained cells:
capacity_noise 1.604%, capacity 1.693%; the capacity laws' fold R-hats at these short
chains 1.01-1.05 and 1.03-1.13 (morning 1.01-1.03 and 1.03-1.06).

With the additive law's mixture term averaging its contributions (2026-12-06, main at
dba5a84, the same command, nothing else running): 35 fits in 812 s wall (bar 360 s: not
met). Fit-seconds: additive 991 (NUTS 933), exponential 401, capacity_noise 96, capacity
48, chinchilla_domain 28, linear 18, bimix 16. The additive law's held-out MRE on
trained cells fell from 3.43% to 0.986% (ELPD 1277 against capacity's 1125), the others'
as before within Monte Carlo error (capacity_noise 1.604%).

With a fitted share ``h0`` for left-out domains in BiMix and chinchilla_domain (a domain
a run gives weight 0 gets the share ``h0`` in the law's own-data term, which the laws
used to drop there by convention; 2026-12-06, main at 9150654, ``--laws
bimix,chinchilla_domain``, combined with the other five laws' results of the run
before (identical code for them) by ``Comparison.combine``): held-out MRE on trained cells
bimix 1.850% (was 5.125%; the paper's 2.963%), chinchilla_domain 1.779% (was 5.533%),
all cells 2.502% and 2.422%; ELPD bimix 1081.1, chinchilla_domain 1047.8 (was 633.7 and
509.9), now beside capacity_noise (1090.6). Fit-seconds: bimix 43, chinchilla_domain 88
(73 s wall for the two). A first version added ``h0`` to every weight (main at 39289fe,
the full command, 838 s wall: bimix 2.020%, chinchilla_domain 1.741%) but bent the term
where no run leaves a domain out (``bench_extrapolation.py``).

The same comparison took 14 min on 11-30 (case study, 7b701d0), with the exponential law at
165 fit seconds and the linear at 64. Not a regression: ``bayesmix fit
../shared/data/pile17/runs.csv --law exponential --draws 500 --tune 500 --chains 2`` with
that commit's code on its stack (PyMC 5.28.5, PyTensor 2.38.3, nutpie 0.16.8, in a scratch
environment) took 82.8 gradients per draw and 12.9 s of sampling for max R-hat 1.06 and
bulk ESS 26; today's code and stack 394.9 and 64.7 s for R-hat 1.01 and bulk ESS 196 (3.0
effective draws per second against 2.0). One gradient of the same standalone PyMC model
of the law costs 37.9 us on the old stack and 28.8 us on today's. The old fits were fast
because their trees were short and their draws poor.

With the left-out share ``h0`` in capacity_noise and the additive law on a diagonal mass
matrix (2026-12-06, main at 085b4a7, the seven-law command above, nothing else running):
35 fits in **604 s wall** (bar 360 s: not met; 812-840 s before). Fit-seconds: additive 520
(NUTS 478; 991 before), exponential 409, capacity_noise 110, capacity 61,
chinchilla_domain 60, linear 22, bimix 17. Held-out MRE on trained cells: capacity_noise
**1.305%** (1.604% before; ELPD 1136.8 against 1090.6), additive 0.985% (ELPD 1286.9;
its folds' R-hats at these short chains 1.02-1.11, before 1.02-1.08), the others as before.
The additive and exponential laws are still 77% of the fit-seconds.

With the exponential law on a diagonal mass matrix and the additive law's coefficients in
typical-share coordinates (2026-12-06, main at e81ee82, the seven-law command above,
nothing else running): 35 fits in **566 s wall** (bar 360 s: not met). Fit-seconds:
additive 562 (NUTS 483), exponential 138 (NUTS 111; 409 before), capacity_noise 144,
chinchilla_domain 113, capacity 78, linear 41, bimix 34. The additive law is now half the
fit-seconds and its five folds the critical path of the two workers. Held-out MRE on
trained cells as before within Monte Carlo error: additive 0.983%, capacity_noise 1.314%,
exponential 4.858%. A run with the additive law's folds kept on the worker that compiled
it (not kept) took 816 s: one worker ran all five in a row.

With the additive law's mixture term as one fused Op with a vectorised exponential
(2026-12-07, main at c6d36cd, the seven-law command above, nothing else running): 35 fits
in **518 s wall** (bar 360 s: not met). Fit-seconds: additive 436 (NUTS 368; 483 before),
capacity_noise 171, exponential 154, chinchilla_domain 100, capacity 92, bimix 42, linear
28: the laws whose code did not change took 10-20% longer than in the run before, the
machine's variation between runs. Compiling: 175 of the 1022 fit-seconds (each law once per
worker). Held-out MRE on trained cells: additive 0.988% (ELPD 1258.6, R-hats at these
short chains 1.02-1.13), the others as before. The ELPD below session 38's 1290.4 is the
chains' Monte Carlo error, not the Op: with ``--laws additive --seed 1``, back to back, the
fused Op gave ELPD 1251.6 (MRE 1.025%, R-hat <= 1.06) in 382 fit-seconds (NUTS 320), the
elementwise form 1232.4 (1.030%, <= 1.04) in 551 (NUTS 484).

With the local executor's law affinity (a free worker keeps to the laws it has compiled
unless one law outweighs a worker's share; 2026-12-07, the same command, nothing else
running, three runs back to back): **393 s and 472 s wall** with affinity against 533 s
without it (the commit before). Compile-seconds 84 and 107 against 191; NUTS-seconds 592
and 700 against 746, the machine's variation between runs. Held-out scores identical in
all three (the same seeds: additive ELPD 1258.6, MRE on trained cells 0.988%).

With nutpie's C callbacks read from numba's disk cache (``bayesmix.nutpie_compile``;
2026-12-07, main at 04c5ba9, the same command, nothing else running, the callbacks
compiled by earlier runs of the same laws): **339 s wall** (bar 360 s: met), against 408 s
with main at 7513829 an hour before. Compile-seconds 59 against 145 (capacity_noise 4
against 42); NUTS-seconds 504 and 514. Fit-seconds: additive 320 (NUTS 283), exponential
109, capacity_noise 77, chinchilla_domain 67, capacity 46, bimix 21, linear 21. Held-out
MRE on trained cells: additive 0.988%, capacity_noise 1.310%, capacity 1.689%,
chinchilla_domain 1.776%, bimix 1.857%, exponential 4.858%, linear 6.330%. The same
laws compared two at a time (``--laws exponential``, ``--laws capacity_noise,linear``)
give the same scores digit for digit; the run at 7513829 did not (capacity_noise ELPD
1137.1 against 1142.5, exponential 710.2 against 685.4, with fold R-hats up to 1.26):
with nutpie's own callbacks a law's fold could depend on what its worker had compiled
before, not taken apart further. Run again at once (main at 22ce391, every callback
now in the cache): 339.6 s wall, compile-seconds 17, the same scores digit for digit.
The additive law alone is still 47% of the
fit-seconds: its trees capped at depth 8 it took 233 fit-seconds against 389 (``--laws
additive``, fold R-hats 1.03-1.07 against 1.02-1.13), but a default Pile 17 fit at depth 8
cut every tree and ended at R-hat 1.06 (refused; 270 s) where depth 10 passed (1.010,
497 s, 729 gradients per draw at 0.99): not kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pile17" / "runs.csv"

#: Dai and Zheng (ICML 2026), Table 2: held-out MRE on Pile 17 domains (70/30 split).
PAPER_TABLE2 = {
    "capacity_noise": ("Eq. 3 capacity + noise", 1.533),
    "capacity": ("Eq. 1 capacity", 2.064),
    "additive": ("additive (Shukor et al.)", 2.209),
    "bimix": ("BiMix", 2.963),
    "linear": ("RegMix regression", 6.480),
    "exponential": ("exponential (Ye et al.)", 6.990),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--cv", default="kfold:5")
    parser.add_argument("--laws", default=None, help="comma-separated (default: every law that accepts the table)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--map-starts", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", default="nutpie", choices=("nutpie", "pymc"))
    parser.add_argument("--out", default=None, help="folder for cmp.csv and cmp.json")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--combine", nargs="+", default=None, metavar="CMP.json",
                        help="no fits: combine comparisons run one law at a time (same table, --cv, --seed) "
                             "and print the table")
    args = parser.parse_args(argv)
    if args.combine:
        from bayesmix.compare import Comparison

        result = Comparison.combine(args.combine)
        _report(result, result.table_info.get("source", ""), args)
        print(f"\ncombined {len(args.combine)} comparisons: {result.seconds:.1f} s of wall time in all")
        return 0

    from bayesmix.compare import CompareSettings, compare_laws
    from bayesmix.data import load_runs
    from bayesmix.errors import UsageError
    from bayesmix.executors import make_executor
    from bayesmix.laws import available_laws, get_law

    table = load_runs(args.data)
    if args.laws:
        laws = [x.strip() for x in args.laws.split(",") if x.strip()]
    else:
        laws = []
        for name in available_laws():
            try:
                get_law(name).check_table(table)
                laws.append(name)
            except UsageError:
                pass
    settings = CompareSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                               map_starts=args.map_starts, sampler=args.sampler)
    print(f"{args.data}: {table.n_rows} rows, {table.n_runs} runs, {table.n_domains} domains; "
          f"laws {', '.join(laws)}; cv {args.cv}; {args.jobs} jobs; "
          f"{args.chains}x({args.tune}+{args.draws}) draws per fit ({args.sampler})", flush=True)
    t0 = time.perf_counter()
    with make_executor(jobs=args.jobs) as executor:
        result = compare_laws(table, laws, cv=args.cv, settings=settings, executor=executor,
                              progress=not args.quiet)
    seconds = time.perf_counter() - t0
    _report(result, args.data, args)
    n_fits = sum(len(res.fits) for res in result.laws.values())
    print(f"\ncompare {args.cv} on {Path(args.data).parent.name}: {n_fits} fits in {seconds:.1f} s wall "
          f"({args.jobs} jobs)")
    return 0


def _report(result, data, args) -> None:
    print(result.format_table())
    overall = result.summary().query("domain == 'all' and status == 'ok'").set_index("law")
    if "pile17" in str(data):
        print("\nheld-out MRE over cells with positive training weight, beside the paper's Table 2 (70/30 split):")
        print(f"  {'law':<18}{'this run':>10}{'paper':>9}  paper's name")
        for name, (label, paper) in PAPER_TABLE2.items():
            ours = f"{100 * overall.loc[name, 'mre_trained']:.3f}%" if name in overall.index else "-"
            print(f"  {name:<18}{ours:>10}{paper:>8.3f}%  {label}")
    print("\nwhere the time went (seconds summed over each law's fits, all workers):")
    print(f"  {'law':<18}{'fits':>5}{'total':>9}{'compile':>9}{'MAP':>8}{'NUTS':>8}")
    for name, res in result.laws.items():
        if not res.fits:
            continue
        part = lambda key: sum(float(f.get("diagnostics", {}).get(key, 0.0)) for f in res.fits)
        total = sum(float(f.get("seconds", 0.0)) for f in res.fits)
        print(f"  {name:<18}{len(res.fits):>5}{total:>9.0f}{part('compile_seconds'):>9.0f}"
              f"{part('map_seconds'):>8.0f}{part('sampling_seconds'):>8.0f}")
    if args.out:
        out = Path(args.out)
        result.save(csv_path=out / "cmp.csv", json_path=out / "cmp.json")
        print(f"wrote {out / 'cmp.csv'} and {out / 'cmp.json'}")


if __name__ == "__main__":
    sys.exit(main())
