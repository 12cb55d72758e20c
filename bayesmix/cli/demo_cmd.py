"""``bayesmix demo``: the whole loop on simulated proxy runs whose truth is known.

Simulate, fit (with the diagnostics gate), predict at a 10x larger target against the
truth, recommend a mixture there under a risk measure, ask which proxy run to train
next, and write the HTML report, all in one process (the law is compiled once).
"""

from __future__ import annotations

import time

from .._files import check_output_path
from .common import show_progress

#: The demo's design: four domains, every mixture at every model size and token count
#: (N and D varied independently, so the law's terms can be told apart), every weight at
#: least MIN_WEIGHT (a domain without data has no noise-reduction term in this law).
#: Measured on seeds 0-6 (2 chains x (800 + 2000), 2-core machine): tokens 1B and 10B
#: pass the gate on 6 of 7 seeds, 2B and 8B on 2 of 3 (the slow-decaying noise terms
#: need the wider token range); sampling takes about 20 s.
MODEL_SIZES = (5e7, 1e8, 2e8, 4e8)
TOKENS = (1e9, 1e10)
N_MIXTURES = 8
MIN_WEIGHT = 0.03
NOISE_SD = 0.01
#: The target: 10x the largest proxy run in model size and in tokens.
SCALE_UP = 10
RISK = "cvar:0.9"
#: Candidate next runs: the proxy scales, a few mixtures each.
CANDIDATE_SIZES = ("50M", "100M", "200M")
CANDIDATE_MIXTURES = 4


def add_parser(sub):
    p = sub.add_parser(
        "demo", help="the whole loop on simulated proxy runs: fit, predict, recommend, next run, report",
        description="Simulate proxy runs from a known capacity_noise law (4 domains, model sizes "
                    "50M-400M, 1B and 10B tokens), fit it by NUTS and apply the diagnostics gate, "
                    "predict at a 10x larger target next to the true losses, recommend a mixture "
                    "there under a risk measure (CVaR 90%) and compare it with the true optimum, "
                    "rank the next proxy runs by value of information, and write the HTML report. "
                    "Exit status 1 when the fit fails the gate (the rest is still shown).",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation, the sampler and the decisions")
    p.add_argument("--draws", type=int, default=2000, help="draws per chain (default 2000)")
    p.add_argument("--tune", type=int, default=800, help="tuning iterations per chain (default 800)")
    p.add_argument("--chains", type=int, default=2, help="chains (default 2)")
    p.add_argument("-o", "--out", default="bayesmix-demo", metavar="DIR",
                   help="folder for the run table, fit, recommendation, next runs and report "
                        "(default: bayesmix-demo)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _step(number: int, title: str, clock) -> None:
    print(f"\n[{number}/6] {title}  ({clock():.0f} s)", flush=True)


def _true_objective(truth, model_size: float, tokens: float):
    """``h -> `` the true average loss over the domains at one scale (the truth's law
    evaluated directly)."""
    import numpy as np

    def objective(h) -> float:
        return float(truth.expected_loss(np.atleast_2d(h), model_size, tokens).mean())

    return objective


def _true_optimum(objective, starts, min_weight: float) -> float:
    """The least true objective over the mixtures with every weight >= ``min_weight``,
    by SLSQP from each of ``starts``: a check that shares no code with
    :mod:`bayesmix.decide` (and compiles nothing new: the truth's law is compiled for
    the simulation already)."""
    import numpy as np
    from scipy import optimize

    best = np.inf
    for start in starts:
        res = optimize.minimize(objective, np.asarray(start, dtype=float), method="SLSQP",
                                bounds=[(min_weight, 1.0)] * len(start),
                                constraints=[{"type": "eq", "fun": lambda h: np.sum(h) - 1.0}],
                                options={"ftol": 1e-12, "maxiter": 200})
        if abs(np.sum(res.x) - 1) < 1e-6 and np.all(res.x >= min_weight - 1e-9):
            best = min(best, objective(res.x))
    return best


def run(args) -> int:
    start = time.perf_counter()

    def clock():
        return time.perf_counter() - start

    out = check_output_path(args.out, folder=True)
    import numpy as np

    from ..acquire import generate_candidates, select_next
    from ..decide import Constraints, recommend
    from ..gate import MAX_RHAT, check_gate, format_diagnostics
    from ..inference import FitSettings, fit_law
    from ..report import build_report
    from ..simulate import contrasting_truth, simulate_runs
    from ..units import format_quantity

    settings = FitSettings(draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
                           discrepancy="off", target_accept=0.99)
    settings.check()
    out.mkdir(parents=True, exist_ok=True)

    _step(1, "simulate proxy runs from a known law", clock)
    truth = contrasting_truth(seed=args.seed, noise_sd=NOISE_SD)
    table, truth = simulate_runs(truth, n_mixtures=N_MIXTURES, model_sizes=MODEL_SIZES, tokens=TOKENS,
                                 min_weight=MIN_WEIGHT, seed=args.seed)
    table.to_frame().to_csv(out / "runs.csv", index=False)
    domains = table.domains
    print(f"truth: capacity_noise over {', '.join(domains)}; noise-reduction terms differ across domains, "
          f"so the best mixture is not uniform; log-loss noise sd {NOISE_SD}")
    print(f"{table.n_runs} runs: {N_MIXTURES} mixtures x model sizes "
          f"{', '.join(format_quantity(n) for n in MODEL_SIZES)} x tokens "
          f"{', '.join(format_quantity(d) for d in TOKENS)}; written to {out / 'runs.csv'}")

    _step(2, "fit capacity_noise by NUTS, then the diagnostics gate", clock)
    print(f"{args.chains} chains x ({args.tune} tuning + {args.draws} draws), target acceptance "
          f"{settings.target_accept}. The runs follow the law exactly (plus noise), so the law-only "
          "observation model is fitted (as 'bayesmix fit --discrepancy off'); on real runs the default "
          "also models the law's own error over scale.", flush=True)
    fit = fit_law(table, "capacity_noise", settings=settings, progressbar=show_progress(args), allow_warnings=True)
    print(format_diagnostics(fit.diagnostics))
    problems = check_gate(fit.diagnostics, allow_warnings=True)
    fit_path = out / ("fit.rejected.nc" if problems else "fit.nc")
    if problems:
        fit.attrs["rejected"] = True
        print("GATE FAILED: the fit is not trustworthy, and what follows rests on it:")
        for problem in problems:
            print(f"  - {problem}")
    else:
        print(f"gate passed: max R-hat {fit.diagnostics['max_rhat']:.3f} <= {MAX_RHAT} and no divergent transition")
    fit.save(fit_path)
    print(f"saved {fit_path}")
    posterior = fit.posterior()

    target_n = SCALE_UP * max(MODEL_SIZES)
    target_d = SCALE_UP * max(TOKENS)
    target = f"N={format_quantity(target_n)}, D={format_quantity(target_d)}"
    _step(3, f"predict at the target {target} (10x the largest proxy run) against the truth", clock)
    constraints = Constraints(min={d: MIN_WEIGHT for d in domains})
    rng = np.random.default_rng(args.seed + 1)
    K = len(domains)
    mixtures = np.vstack([np.full(K, 1 / K),
                          MIN_WEIGHT + (1 - K * MIN_WEIGHT) * rng.dirichlet(np.ones(K), size=2)])
    summary = posterior.summarise(mixtures, target_n, target_d, seed=args.seed)
    true = truth.expected_loss(mixtures, target_n, target_d)
    print(f"  {'mixture (' + ','.join(domains) + ')':<34} {'domain':<8} {'true':>7} {'pred':>7} "
          f"{'5%':>7} {'95%':>7}")
    inside = 0
    for i, h in enumerate(mixtures):
        label = ",".join(f"{w:.2f}" for w in h)
        for j, d in enumerate(domains):
            inside += bool(summary["q05"][i, j] <= true[i, j] <= summary["q95"][i, j])
            print(f"  {label if j == 0 else '':<34} {d:<8} {true[i, j]:7.4f} {summary['mean'][i, j]:7.4f} "
                  f"{summary['q05'][i, j]:7.4f} {summary['q95'][i, j]:7.4f}")
    print(f"  the true loss lies inside the 90% predictive interval in {inside} of {true.size} cells")

    _step(4, f"recommend a mixture for {target}, risk {RISK}", clock)
    rec = recommend(posterior, target_n, target_d, risk=RISK, constraints=constraints, seed=args.seed)
    rec.to_json(out / "recommendation.json")
    print(rec.format_table())
    true_objective = _true_objective(truth, target_n, target_d)
    uniform = np.full(K, 1 / K)
    rec_true, uniform_true = true_objective(rec.mixture), true_objective(uniform)
    optimum = min(_true_optimum(true_objective, [rec.mixture, uniform], MIN_WEIGHT), rec_true, uniform_true)
    o = rec.objective_summary
    print(f"against the truth: the recommendation's true objective is {rec_true:.4f} nats "
          f"({'inside' if o['q05'] <= rec_true <= o['q95'] else 'OUTSIDE'} its 90% interval "
          f"[{o['q05']:.4f}, {o['q95']:.4f}]); the true optimum is {optimum:.4f}, so its true regret is "
          f"{rec_true - optimum:.2g} nats ({100 * (rec_true - optimum) / optimum:.2g}%), against "
          f"{uniform_true - optimum:.2g} nats ({100 * (uniform_true - optimum) / optimum:.2g}%) for the "
          "uniform mixture")
    print(f"written: {out / 'recommendation.json'}")

    _step(5, "which proxy run to train next (value of information per FLOP)", clock)
    candidates = generate_candidates(domains, CANDIDATE_SIZES, tokens=list(TOKENS),
                                     n_mixtures=CANDIDATE_MIXTURES, constraints=constraints, seed=args.seed)
    nxt = select_next(posterior, candidates, target_n, target_d, risk=RISK, constraints=constraints,
                      max_draws=100, n_outcomes=16, seed=args.seed)
    nxt.to_csv(out / "next.csv")
    best = nxt.picks[0]
    c = nxt.candidates
    mixture = ", ".join(f"{d}={w:.2f}" for d, w in zip(domains, c.mixtures[best]))
    print(f"train next: {c.names[best]}: N={format_quantity(c.model_size[best])}, "
          f"D={format_quantity(c.tokens[best])}, {mixture} ({c.cost[best]:.2g} FLOPs)")
    if nxt.score[best] > 0:
        print(f"why: of {len(c)} candidate runs it is expected to remove the most regret per FLOP: "
              f"{nxt.score[best]:.2g} of the current {nxt.current_regret:.2g} nats of expected regret "
              f"at the target; its losses would narrow the posterior most in {nxt.teaches[best]}")
    else:
        print(f"why: no candidate run is expected to change the recommendation (current expected regret "
              f"{nxt.current_regret:.2g} nats); its losses would narrow the posterior most in "
              f"{nxt.teaches[best]}")
    for warning in nxt.warnings:
        print(f"note: {warning}")
    print(f"written: {out / 'next.csv'} (all {len(c)} candidates, ranked)")

    _step(6, "write the report", clock)
    report = build_report(fit, recommendation=rec.to_dict(), next_table=out / "next.csv",
                          target_model_size=target_n, target_tokens=target_d, seed=args.seed,
                          title="bayesmix demo: simulated proxy runs with a known truth")
    report.write_html(out / "report.html")
    print(f"report: {out / 'report.html'}")
    scale = f"--target-model-size {format_quantity(target_n)} --target-tokens {format_quantity(target_d)}"
    floor = "--min " + ",".join(f"{d}={MIN_WEIGHT}" for d in domains)
    print(f"\ndone in {clock():.0f} s. The same loop from the command line:\n"
          f"  bayesmix fit {out / 'runs.csv'} --discrepancy off --target-accept 0.99 --out fit.nc\n"
          f"  bayesmix recommend fit.nc {scale} --risk {RISK} {floor} --out rec.json\n"
          f"  bayesmix next fit.nc {scale} --risk {RISK} {floor} --sizes {','.join(CANDIDATE_SIZES)} "
          f"--tokens {','.join(format_quantity(d) for d in TOKENS)} --out next.csv\n"
          f"  bayesmix report fit.nc --recommend rec.json --next next.csv -o report.html")
    return 1 if problems else 0
