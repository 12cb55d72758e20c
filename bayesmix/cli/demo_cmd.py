"""``bayesmix demo``: the whole loop on simulated proxy runs whose truth is known.

Simulate, fit (with the diagnostics gate), predict at a 10x larger target against the
truth, recommend a mixture there under a risk measure, ask which proxy run to train
next, and write the HTML report, all in one process (the law is compiled once).
"""

from __future__ import annotations

import dataclasses
import time

from .._files import check_output_path
from ..fit_settings import FitSettings
from .common import show_progress
from .options import add_command, add_quiet_option, add_sampling_options, add_seed_option

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


#: The demo's sampling: every observation-model choice fixed (see DESCRIPTION).
DEMO_SETTINGS = FitSettings(draws=2000, tune=800, chains=2, discrepancy="off", target_accept=0.99)

DESCRIPTION = """\
Simulate proxy runs from a known capacity_noise law (4 domains, model sizes 50M-400M,
1B and 10B tokens), fit it by NUTS and apply the diagnostics gate, predict at a 10x
larger target next to the true losses, recommend a mixture there under a risk measure
(CVaR 90%) and compare it with the true optimum, rank the next proxy runs by value of
information, and write the HTML report. Exit status 1 when the fit fails the gate (the
rest is still shown)."""


def add_parser(sub):
    p = add_command(sub, "demo", summary="the whole loop on simulated proxy runs: fit, predict, recommend, "
                                         "next run, report", description=DESCRIPTION)
    sampling = add_sampling_options(
        p, defaults=DEMO_SETTINGS, target_accept=False,
        description=f"The simulated runs follow the law exactly, so the law-only observation model "
                    f"(--discrepancy {DEMO_SETTINGS.discrepancy}, normal likelihood) is fitted with "
                    f"target acceptance {DEMO_SETTINGS.target_accept}; these are fixed.")
    add_seed_option(sampling, "of the simulation, the sampler and the decisions")
    p.add_argument("-o", "--out", default="bayesmix-demo", metavar="DIR",
                   help="folder for the run table, fit, recommendation, next runs and report "
                        "(default: bayesmix-demo)")
    add_quiet_option(p)
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
    """Run the demo: simulate, fit and gate, predict, recommend, choose the next run, report.

    Parameters
    ----------
    args : argparse.Namespace
        The options of :func:`add_parser`.

    Returns
    -------
    int
        The exit status: 1 when the fit fails the diagnostics gate, else 0.
    """
    start = time.perf_counter()

    def clock():
        return time.perf_counter() - start

    out = check_output_path(args.out, folder=True)
    from ..decide import Constraints
    from ..units import format_quantity

    settings = dataclasses.replace(DEMO_SETTINGS, draws=args.draws, tune=args.tune, chains=args.chains,
                                   seed=args.seed, sampler=args.sampler)
    settings.check()
    out.mkdir(parents=True, exist_ok=True)

    _step(1, "simulate proxy runs from a known law", clock)
    table, truth = _simulate(args.seed, out)
    _step(2, f"fit {truth.law_name} by NUTS, then the diagnostics gate", clock)
    fit, problems = _fit_and_gate(table, truth.law_name, settings, args, out)
    posterior = fit.posterior()
    target_n = SCALE_UP * max(MODEL_SIZES)
    target_d = SCALE_UP * max(TOKENS)
    target = f"N={format_quantity(target_n)}, D={format_quantity(target_d)}"
    constraints = Constraints(min={d: MIN_WEIGHT for d in table.domains})
    _step(3, f"predict at the target {target} (10x the largest proxy run) against the truth", clock)
    _predict_against_truth(posterior, truth, table.domains, target_n, target_d, args.seed)
    _step(4, f"recommend a mixture for {target}, risk {RISK}", clock)
    rec = _recommend_against_truth(posterior, truth, constraints, target_n, target_d, args.seed, out)
    _step(5, "which proxy run to train next (value of information per FLOP)", clock)
    _choose_next_run(posterior, table.domains, constraints, target_n, target_d, args.seed, out)
    _step(6, "write the report", clock)
    _write_report(fit, rec, target_n, target_d, args.seed, out)
    _print_same_loop_commands(out, table.domains, target_n, target_d, clock)
    return 1 if problems else 0


def _simulate(seed: int, out):
    """Step 1: proxy runs of a contrasting truth, written to ``out/runs.csv``; the table
    and the truth."""
    from ..simulate import contrasting_truth, simulate_runs
    from ..units import format_quantity

    truth = contrasting_truth(seed=seed, noise_sd=NOISE_SD)
    table, truth = simulate_runs(truth, n_mixtures=N_MIXTURES, model_sizes=MODEL_SIZES, tokens=TOKENS,
                                 min_weight=MIN_WEIGHT, seed=seed)
    table.to_frame().to_csv(out / "runs.csv", index=False)
    print(f"truth: {truth.law_name} over {', '.join(table.domains)}; noise-reduction terms differ across domains, "
          f"so the best mixture is not uniform; log-loss noise sd {NOISE_SD}")
    print(f"{table.n_runs} runs: {N_MIXTURES} mixtures x model sizes "
          f"{', '.join(format_quantity(n) for n in MODEL_SIZES)} x tokens "
          f"{', '.join(format_quantity(d) for d in TOKENS)}; written to {out / 'runs.csv'}")
    return table, truth


def _fit_and_gate(table, law: str, settings, args, out):
    """Step 2: the fit of ``law`` (the truth's) by NUTS and the diagnostics gate's verdict,
    the fit saved as ``fit.nc`` (``fit.rejected.nc`` when it fails the gate); the fit and
    the gate's problems."""
    from ..gate import MAX_RHAT, check_gate, format_diagnostics
    from ..inference import fit_law

    print(f"{args.chains} chains x ({args.tune} tuning + {args.draws} draws), target acceptance "
          f"{settings.target_accept}. The runs follow the law exactly (plus noise), so the law-only "
          "observation model is fitted (as 'bayesmix fit --discrepancy off'); on real runs the default "
          "also models the law's own error over scale.", flush=True)
    fit = fit_law(table, law, settings=settings, progressbar=show_progress(args), allow_warnings=True)
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
    return fit, problems


def _predict_against_truth(posterior, truth, domains, target_n: float, target_d: float, seed: int) -> None:
    """Step 3: the predicted losses of three mixtures (uniform and two random ones) at the
    target next to the true losses, and how many of these lie inside the 90% interval."""
    import numpy as np

    rng = np.random.default_rng(seed + 1)
    K = len(domains)
    mixtures = np.vstack([np.full(K, 1 / K),
                          MIN_WEIGHT + (1 - K * MIN_WEIGHT) * rng.dirichlet(np.ones(K), size=2)])
    summary = posterior.summarise(mixtures, target_n, target_d, seed=seed)
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


def _recommend_against_truth(posterior, truth, constraints, target_n: float, target_d: float, seed: int, out):
    """Step 4: the recommendation at the target under :data:`RISK`, written to
    ``out/recommendation.json``, and its true regret next to the uniform mixture's."""
    import numpy as np

    from ..decide import recommend

    rec = recommend(posterior, target_n, target_d, risk=RISK, constraints=constraints, seed=seed)
    rec.to_json(out / "recommendation.json")
    print(rec.format_table())
    true_objective = _true_objective(truth, target_n, target_d)
    K = len(rec.mixture)
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
    return rec


def _choose_next_run(posterior, domains, constraints, target_n: float, target_d: float, seed: int, out) -> None:
    """Step 5: the candidate proxy runs ranked by value of information per FLOP, written
    to ``out/next.csv``, and why the first one."""
    from ..acquire import generate_candidates, select_next
    from ..units import format_quantity

    candidates = generate_candidates(domains, CANDIDATE_SIZES, tokens=list(TOKENS),
                                     n_mixtures=CANDIDATE_MIXTURES, constraints=constraints, seed=seed)
    nxt = select_next(posterior, candidates, target_n, target_d, risk=RISK, constraints=constraints,
                      max_draws=100, seed=seed)
    nxt.to_csv(out / "next.csv")
    best = nxt.picks[0]
    c = nxt.candidates
    mixture = ", ".join(f"{d}={w:.2f}" for d, w in zip(domains, c.mixtures[best]))
    print(f"train next: {c.names[best]}: N={format_quantity(c.model_size[best])}, "
          f"D={format_quantity(c.tokens[best])}, {mixture} ({c.cost[best]:.2g} FLOPs)")
    if nxt.score[best] > 0:
        print(f"why: of {len(c)} candidate runs it is expected to lower the {RISK} risk of the decision at the "
              f"target the most per FLOP, by {nxt.score[best]:.2g} nats (current expected regret "
              f"{nxt.current_regret:.2g} nats); its losses would narrow the posterior most in {nxt.teaches[best]}")
    else:
        print(f"why: no candidate run is expected to change the recommendation (current expected regret "
              f"{nxt.current_regret:.2g} nats); its losses would narrow the posterior most in "
              f"{nxt.teaches[best]}")
    for warning in nxt.warnings:
        print(f"note: {warning}")
    print(f"written: {out / 'next.csv'} (all {len(c)} candidates, ranked)")


def _write_report(fit, rec, target_n: float, target_d: float, seed: int, out) -> None:
    """Step 6: the HTML report of the fit, the recommendation and the ranking."""
    from ..report import build_report

    report = build_report(fit, recommendation=rec.to_dict(), next_table=out / "next.csv",
                          target_model_size=target_n, target_tokens=target_d, seed=seed,
                          title="bayesmix demo: simulated proxy runs with a known truth")
    report.write_html(out / "report.html")
    print(f"report: {out / 'report.html'}")


def _print_same_loop_commands(out, domains, target_n: float, target_d: float, clock) -> None:
    """The demo's time, and the commands that run the same loop from the command line."""
    from ..units import format_quantity

    scale = f"--target-model-size {format_quantity(target_n)} --target-tokens {format_quantity(target_d)}"
    floor = "--min " + ",".join(f"{d}={MIN_WEIGHT}" for d in domains)
    print(f"\ndone in {clock():.0f} s. The same loop from the command line:\n"
          f"  bayesmix fit {out / 'runs.csv'} --discrepancy off --target-accept 0.99 --out fit.nc\n"
          f"  bayesmix recommend fit.nc {scale} --risk {RISK} {floor} --out rec.json\n"
          f"  bayesmix next fit.nc {scale} --risk {RISK} {floor} --sizes {','.join(CANDIDATE_SIZES)} "
          f"--tokens {','.join(format_quantity(d) for d in TOKENS)} --out next.csv\n"
          f"  bayesmix report fit.nc --recommend rec.json --next next.csv -o report.html")
