"""Synthetic: an acquisition campaign against a known truth.

    python case_studies/synthetic/run.py [--steps 6] [--out DIR]

Needs no data: the runs are simulated from a known capacity_noise law over four
domains (`contrasting_truth`: noise terms that differ across domains, so the optimal
mixture is far from uniform and moves with scale), so every claim can be checked against
the truth. Every weight is kept at 3% or more (a domain with no data at all has no
noise-reduction term in this law, which makes the objective jump at the simplex edge).

1. Simulate a small starting design (6 mixtures at 50M and 100M parameters).
2. Fit capacity_noise by NUTS; check the 90% predictive intervals at the target
   (2B parameters, 40B tokens: 20x beyond the largest run) against the true losses.
3. Ask `next` which run to train, then run campaigns (value of information per FLOP,
   and random choice for comparison) for --steps steps over candidate runs at 50M-200M.
   Each step updates the posterior by importance reweighting of the NUTS draws by the
   new runs' likelihood (exact Bayes for the draws; the effective sample size is logged;
   --max-refits N lets the campaign refit by NUTS when it collapses).
4. Log after each step the compute spent and the *true* regret at the target of what
   `recommend` says then; draw the compute-to-regret curves (output/campaign.png) and
   write the report (output/report.html).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import common  # noqa: E402

TARGET_SIZE, TARGET_TOKENS = 2e9, 4e10
CANDIDATE_SIZES = ("50M", "100M", "200M")
MIN_WEIGHT = 0.03


def campaign_figure(logs: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (name, frame), style in zip(logs.items(), ("-o", "--s", ":^", "-.d")):
        ax.plot(frame["compute"] / 1e18, 100 * frame["true_relative_regret"], style, color="black",
                label=name, markerfacecolor="white")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_xlabel("compute spent on new runs [EFLOP]")
    ax.set_ylabel("true regret at target [% of optimum]")
    ax.set_title(f"campaign: target N = {TARGET_SIZE:.0e}, D = {TARGET_TOKENS:.0e}")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = common.study_parser(__doc__, HERE)
    parser.add_argument("--steps", type=int, default=6, help="campaign steps per strategy (default 6)")
    parser.add_argument("--strategies", default="voi,random")
    parser.add_argument("--max-refits", type=int, default=0,
                        help="NUTS refits allowed per campaign when the reweighted ESS collapses (default 0)")
    args = parser.parse_args(argv)

    from bayesmix.acquire import (AdaptiveRefit, NutsRefit, SimulatorObserver, generate_candidates, run_campaign,
                                  select_next)
    from bayesmix.decide import recommend
    from bayesmix.gate import check_gate, format_diagnostics
    from bayesmix.inference import FitSettings, fit_law
    from bayesmix.report import build_report
    from bayesmix.decide import Constraints
    from bayesmix.simulate import contrasting_truth, simulate_runs

    clock = common.Timer()
    args.out.mkdir(parents=True, exist_ok=True)
    truth = contrasting_truth(seed=args.seed, noise_sd=0.02, amplitude=0.5)
    constraints = Constraints(min={d: MIN_WEIGHT for d in truth.domains})
    table, _ = simulate_runs(truth, n_mixtures=6, model_sizes=(5e7, 1e8), min_weight=MIN_WEIGHT,
                              seed=args.seed)
    print(f"synthetic: {table.n_rows} simulated runs over {', '.join(table.domains)}; target N = 2B, D = 40B")
    fit = fit_law(table, "capacity_noise", settings=FitSettings(draws=args.draws, tune=args.tune, chains=args.chains,
                                                                 seed=args.seed, sampler=args.sampler),
                  progressbar=common.progress(args), allow_warnings=True)
    fit.save(args.out / "fit.nc")
    print(f"\nfit done in {clock():.0f} s\n{format_diagnostics(fit.diagnostics)}")
    for problem in check_gate(fit.diagnostics, allow_warnings=True):
        print(f"  WARNING {problem}")
    posterior = fit.posterior()

    # predictive check at the target against the truth, over random mixtures
    rng = np.random.default_rng(args.seed)
    mixtures = MIN_WEIGHT + (1 - len(table.domains) * MIN_WEIGHT) * rng.dirichlet(np.ones(len(table.domains)), size=50)
    true_loss = truth.expected_loss(mixtures, TARGET_SIZE, TARGET_TOKENS)
    summary = posterior.summarise(mixtures, np.full(50, TARGET_SIZE), np.full(50, TARGET_TOKENS), seed=args.seed)
    inside = (summary["q05"] <= true_loss) & (true_loss <= summary["q95"])
    rel_err = np.abs(summary["mean"] - true_loss) / true_loss
    print(f"\nat the target, 50 random mixtures: true expected loss inside the 90% predictive interval in "
          f"{100 * inside.mean():.0f}% of cells; mean relative error {100 * rel_err.mean():.2f}%")

    rec = recommend(posterior, TARGET_SIZE, TARGET_TOKENS, constraints=constraints, seed=args.seed)
    print(f"\nrecommendation from the starting design:\n{rec.format_table()}")
    candidates = generate_candidates(table.domains, list(CANDIDATE_SIZES), tokens_per_param=20, n_mixtures=8,
                                     constraints=constraints, seed=args.seed)
    first = select_next(posterior, candidates, TARGET_SIZE, TARGET_TOKENS, batch=2, constraints=constraints,
                        seed=args.seed)
    print(f"\nwhich runs to train next:\n{first.format_table()}")
    first.to_csv(args.out / "next.csv")

    logs = {}
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        # importance reweighting of the NUTS draws by the new runs (exact Bayes on the
        # draws); --max-refits > 0 refits by NUTS, warm-started, when the ESS collapses
        refit = AdaptiveRefit(NutsRefit("capacity_noise", draws=200, tune=300, sampler=args.sampler,
                                        seed=args.seed), initial=posterior.thin(400), max_refits=args.max_refits)
        result = run_campaign(table, TARGET_SIZE, TARGET_TOKENS, refit=refit,
                              observe=SimulatorObserver(truth, seed=args.seed), candidates=candidates,
                              criterion=strategy, budget_steps=args.steps, truth=truth, max_draws=None,
                              constraints=constraints,
                              seed=args.seed)
        frame = result.to_frame()
        frame.to_csv(args.out / f"campaign_{strategy}.csv", index=False)
        logs[strategy] = frame
        print(f"\ncampaign '{strategy}':")
        print(frame[["step", "n_runs", "compute", "chosen", "expected_regret", "true_relative_regret", "ess"]]
              .to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    campaign_figure(logs, args.out / "campaign.png")

    report = build_report(fit, recommendation=rec.to_dict(), next_table=args.out / "next.csv",
                          target_model_size=TARGET_SIZE, target_tokens=TARGET_TOKENS, seed=args.seed,
                          title="Synthetic campaign with a known truth")
    report.write_html(args.out / "report.html")
    report.write_pngs(args.out / "figures")
    common.write_json(args.out / "results.json", {
        "seconds": clock(), "diagnostics": fit.diagnostics,
        "target_coverage90": float(inside.mean()), "target_mre": float(rel_err.mean()),
        "campaigns": {k: v.to_dict(orient="records") for k, v in logs.items()},
    })
    print(f"\nwritten: {args.out / 'report.html'}, {args.out / 'campaign.png'}; done in {clock():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
