"""Parameter recovery: NUTS fits of capacity_noise on data simulated from known truths.

Interval coverage is checked across several seeds: with S independent 90% intervals the
number that contain the truth is Binomial(S, 0.9) when the posterior is calibrated.

The truths are the law itself, with no error over scale and no mixture effects, so the
fits use the law-only observation model (``discrepancy="off"``), the model these truths
were drawn from. (With the discrepancy-aware default, one of the two fits had max R-hat
1.29 at 2 x (400 + 400) in a clean-clone CI run: the open problem of issue 17, measured by
``benchmarks/bench_calibration.py``, not hidden here.)

The fits run at the default lengths (4 chains x (1000 + 1000)), and the gate's R-hat
threshold applies. At 2 x (400 + 400) with a looser 1.05 the second fit failed (R-hat
1.05, bulk ESS 42 on a[code]): mixing along the noise term's amplitude/exponent ridge is
slow, and short runs only sometimes reach 1.05 there (1 of 40 seeds). Divergent
transitions are not asserted: this design still gives 0-6 per 4000 draws (in 5 of 10
seeds measured), all in the tail of small ``a``, large ``A`` and small ``E`` of one
domain, an open item of issue 17.
"""

import numpy as np
import pytest
from scipy import stats

from bayesmix.gate import MAX_RHAT

from bayesmix.inference import fit_law
from bayesmix.simulate import default_truth, simulate_runs

# Every test reads the module fixture's NUTS fits (fit_law, nutpie, default lengths). The
# fixture's two fits of 80 runs at 4 x (1000 + 1000), run on up to 4x the draws where
# the chains mix slowly, are charged to whichever test runs first; at the README's 70 s
# for one default fit of 18 runs on 2 cores they may well pass the global 900 s on busy
# cores (an estimate: not measured here).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SEEDS = (11, 12)
DOMAINS = ("web", "code", "books")


@pytest.fixture(scope="module")
def recovery_fits():
    results = []
    for seed in SEEDS:
        truth = default_truth("capacity_noise", DOMAINS, seed=seed)
        # A rich design: four sizes and two tokens-per-parameter ratios, so that the N and D
        # terms are separately identified.
        table_a, _ = simulate_runs(truth, n_mixtures=10, model_sizes=(5e7, 1e8, 2e8, 4e8),
                                   tokens_per_param=10, seed=seed, min_weight=0.03)
        table_b, _ = simulate_runs(truth, n_mixtures=10, model_sizes=(5e7, 1e8, 2e8, 4e8),
                                   tokens_per_param=40, seed=seed + 100, min_weight=0.03)
        from bayesmix.data import RunTable

        frame = np.concatenate
        table = RunTable.from_arrays(
            weights=frame([table_a.weights, table_b.weights]),
            model_size=frame([table_a.model_size, table_b.model_size]),
            tokens=frame([table_a.tokens, table_b.tokens]),
            losses=frame([table_a.losses, table_b.losses]),
            domains=DOMAINS,
            run_ids=np.array([f"r{i}" for i in range(table_a.n_rows + table_b.n_rows)], dtype=object),
        )
        fit = fit_law(table, "capacity_noise", seed=seed, progressbar=False, sampler="nutpie",
                      discrepancy="off", allow_warnings=True)
        results.append((truth, table, fit))
    return results


def test_interval_coverage_of_exponents_and_irreducible_losses(recovery_fits):
    inside, total = 0, 0
    for truth, _, fit in recovery_fits:
        post = fit.posterior()
        loss_ref = np.asarray(post.scaling.loss_ref)
        checks = {
            "b": (post.draws["b"], truth.params["b"]),
            "a": (post.draws["a"], truth.params["a"]),
            "E": (post.draws["E"] * loss_ref, truth.irreducible_loss()),
        }
        for draws, true in checks.values():
            lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
            inside += int(np.sum((lo <= true) & (true <= hi)))
            total += len(true)
    # 18 intervals: under calibration the count is Binomial(18, 0.9); its 1% quantile is
    # the bound, so a calibrated sampler fails this test about once in a hundred seeds.
    bound = stats.binom.ppf(0.01, total, 0.9)
    assert inside >= bound, f"{inside} of {total} intervals contain the truth (need {bound:.0f})"


def test_extrapolation_tracks_truth_at_10x_scale(recovery_fits):
    for truth, table, fit in recovery_fits:
        post = fit.posterior()
        rng = np.random.default_rng(0)
        mixtures = rng.dirichlet(np.ones(len(DOMAINS)), size=20)
        N, D = 4e9, 8e10  # 10x the largest proxy model, 20 tokens per parameter
        summary = post.summarise(mixtures, N, D)
        true = truth.expected_loss(mixtures, N, D)
        # Extrapolated predictions stay within 3% of the truth, and the truth lies
        # within the 90% predictive band for most cells.
        assert np.max(np.abs(summary["mean"] / true - 1)) < 0.03
        cover = np.mean((summary["q05"] <= true) & (true <= summary["q95"]))
        assert cover >= 0.7


def test_fits_pass_the_diagnostics_gate(recovery_fits):
    for _, _, fit in recovery_fits:
        diag = fit.diagnostics
        assert diag["solver_residual"] < 1e-8
        assert diag["max_rhat"] <= MAX_RHAT
