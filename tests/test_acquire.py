"""Acquisition: value of information, batches, candidates, the `next` CLI and campaigns.

No NUTS here: posteriors are built from hand-made draws, and campaigns refit by exact
importance reweighting of a fixed set of draws (:class:`ReweightRefit`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from bayesmix.acquire import (Acquisition, CandidateSet, ReweightRefit, SimulatorObserver,
                              generate_candidates, load_candidates,
                              log_likelihood, run_campaign, simplex_sobol)
from bayesmix.cli import main
from bayesmix.decide import Constraints
from bayesmix.errors import UsageError
from bayesmix.posterior import Posterior
from bayesmix.simulate import default_truth, simulate_runs
from bayesmix.testing import fit_from_posterior, posterior_around_truth

K = 4
TARGET = (3e9, 6e10)  # 10x the largest candidate size used below, 20 tokens per parameter


@pytest.fixture(scope="module")
def truth():
    return default_truth("capacity_noise", seed=0)


def exponent_posterior(truth, factors, sigma):
    """Draws equal to the truth except the noise exponent ``a`` (scaled per draw).

    The noise term ``A (d h K)^-a`` does not depend on ``a`` at the uniform mixture and
    ``D = D_ref`` (``d h K = 1``): there every draw predicts the same losses.
    """
    S = len(factors)
    draws = {k: np.repeat(np.asarray(v, float)[None], S, 0) for k, v in truth.params.items()}
    draws["a"] = draws["a"] * np.asarray(factors, float)[:, None]
    return Posterior(truth.posterior.law, draws, truth.scaling, truth.domains, sigma=np.full((S, K), sigma))


def uniform_candidate(truth, model_size, tokens, name="c"):
    return CandidateSet.from_arrays(truth.domains, np.full((1, K), 1 / K), model_size, tokens, names=[name])


# ---------------------------------------------------------------------------- likelihood
def test_log_likelihood_matches_multivariate_normal():
    rng = np.random.default_rng(0)
    S, J = 3, 5
    log_mu = rng.normal(size=(S, K))
    sigma = rng.uniform(0.05, 0.2, (S, K))
    run_sd = rng.uniform(0.05, 0.3, S)
    y = rng.normal(size=(J, K))
    y[1, 2] = np.nan  # a missing domain is left out of the density
    got = log_likelihood(y, log_mu, sigma, run_sd)
    for j in range(J):
        seen = np.isfinite(y[j])
        for s in range(S):
            cov = np.diag(sigma[s, seen] ** 2) + run_sd[s] ** 2
            want = stats.multivariate_normal(log_mu[s, seen], cov).logpdf(y[j, seen])
            assert got[j, s] == pytest.approx(want, rel=1e-10)


# ---------------------------------------------------------------------------- VOI
@pytest.mark.slow
def test_voi_matches_exact_preposterior_analysis(truth):
    """Two-draw posterior: the exact VOI is a 1-D integral over the log-likelihood ratio.

    With equal-variance Normal noise the log-likelihood ratio of draw 1 to draw 2 is
    Normal(+-d^2/2, d^2) given the draw (d: Mahalanobis distance of their predictions),
    and the posterior weight is its logistic transform; the exact expected posterior
    regret is computed by Gauss-Hermite quadrature over it. This path shares only the
    decision optimiser (``recommend_mixture``) with the importance-sampling estimate.
    """
    cand = uniform_candidate(truth, 1e8, 1.2e10)
    probe = exponent_posterior(truth, [0.7, 1.4], 1.0)
    mu = np.log(probe.expected_loss(cand.mixtures, cand.model_size, cand.tokens))[:, 0]
    distance = 1.5  # intermediate information: neither ~0 nor ~all of the regret removed
    sigma = np.sqrt(np.sum((mu[0] - mu[1]) ** 2)) / distance
    post = exponent_posterior(truth, [0.7, 1.4], sigma)
    acq = Acquisition(post, *TARGET, max_draws=None, n_outcomes=400, seed=3)
    estimate = acq.score_voi(cand)
    _, current = acq.recommend()
    problem, w = acq.problem, acq.weights
    nodes, qw = np.polynomial.hermite_e.hermegauss(30)
    qw = qw / qw.sum()
    posterior_regret = 0.0
    for s, sign in ((0, 1.0), (1, -1.0)):
        llr = sign * distance**2 / 2 + distance * nodes
        p1 = expit(llr + np.log(w[0] / w[1]))
        regrets = []
        for row in np.column_stack([p1, 1 - p1]):
            h, _ = problem.recommend_mixture("mean", draw_weights=row)
            regrets.append(problem.expected_regret(h, draw_weights=row))
        posterior_regret += w[s] * np.sum(qw * np.array(regrets))
    exact = current - posterior_regret
    assert 0.1 * current < exact < 0.9 * current  # the case is informative, not degenerate
    # 4 Monte Carlo standard errors over 400 simulated outcomes (plus optimiser slack).
    assert abs(estimate.score[0] - exact) < 4 * estimate.voi_se[0] + 1e-3 * current


def test_agreeing_candidate_scores_near_zero_and_informative_one_does_not(truth):
    post = exponent_posterior(truth, np.linspace(0.6, 1.5, 40), 0.01)
    cands = CandidateSet.from_arrays(truth.domains, np.full((2, K), 1 / K), [1e8, 1e8],
                                     [truth.scaling.d_ref, 10 * truth.scaling.d_ref], names=["agree", "differ"])
    acq = Acquisition(post, *TARGET, max_draws=None, n_outcomes=16, seed=0)
    scores = acq.score_voi(cands)
    _, current = acq.recommend()
    assert current > 0
    # All draws predict the same losses at 'agree' (up to rounding): weights stay
    # uniform, the decision does not move; 1e-6 of the regret allows optimiser rounding.
    assert abs(scores.score[0]) < 1e-6 * current
    assert scores.ess_mean[0] == pytest.approx(40, rel=1e-6)
    assert scores.score[1] > 0.3 * current


def test_ess_warning_fires_for_tiny_noise_only(truth):
    cand = uniform_candidate(truth, 1e8, 6e10)
    factors = np.linspace(0.6, 1.5, 30)
    tiny = Acquisition(exponent_posterior(truth, factors, 1e-5), *TARGET, max_draws=None, n_outcomes=8)
    loud = Acquisition(exponent_posterior(truth, factors, 10.0), *TARGET, max_draws=None, n_outcomes=8)
    r_tiny = tiny.select(cand)
    r_loud = loud.select(cand)
    assert r_tiny.ess_mean[0] < 1.5 and r_tiny.warnings and r_tiny.warnings_col[0]
    assert r_loud.ess_min[0] > 0.9 * 30 and not r_loud.warnings and not r_loud.warnings_col[0]
    # Perfect information removes all the regret; pure noise removes none of it.
    assert r_tiny.score[0] == pytest.approx(r_tiny.current_regret, rel=0.02)
    assert abs(r_loud.score[0]) < 0.05 * r_loud.current_regret


def test_batch_picks_distinct_and_conditions_on_picks(truth):
    post = exponent_posterior(truth, np.linspace(0.6, 1.5, 30), 0.01)
    d_ref = truth.scaling.d_ref
    h = np.full((4, K), 1 / K)
    cands = CandidateSet.from_arrays(truth.domains, h, 1e8, [6 * d_ref, 6 * d_ref, 2 * d_ref, d_ref],
                                     cost=1.0, names=["A", "A-copy", "B", "flat"])
    acq = Acquisition(post, *TARGET, max_draws=None, n_outcomes=16, seed=1)
    result = acq.select(cands, batch=3)
    assert len(set(result.picks)) == 3
    assert result.picks[0] in (0, 1)
    # Once A is (fantasised as) observed, its copy is worth much less than before
    # (about 0.46 of it in this case; a second measurement still has some value).
    copy = 1 - result.picks[0]
    conditioned = acq.select(cands, batch=2)
    assert conditioned.picks[0] == result.picks[0]
    assert conditioned.pick_scores[1] < 0.6 * result.score[copy]
    # 'flat' tells nothing (all draws agree there) and is picked last or not at all.
    assert result.picks[-1] != 3 or result.pick_scores[-1] < 1e-9
    frame = result.to_frame()
    assert list(frame["name"][:3]) == [cands.names[i] for i in result.picks]


# ---------------------------------------------------------------------------- candidates
def test_sobol_points_cover_the_simplex():
    pts = simplex_sobol(256, 3, seed=0)
    assert np.allclose(pts.sum(1), 1) and np.all(pts >= 0)
    # Uniform on the simplex: each coordinate is Beta(1, 2), mean 1/3, P(h_1 < 1/2) = 3/4.
    assert np.allclose(pts.mean(0), 1 / 3, atol=0.02)
    assert np.mean(pts[:, 0] < 0.5) == pytest.approx(0.75, abs=0.03)


def test_generated_candidates_respect_constraints(truth):
    cons = Constraints(min={"web": 0.3}, max={"code": 0.1, "books": 0.2})
    cands = generate_candidates(truth.domains, ["50M", "100M"], tokens=["1B", "4B"], n_mixtures=20,
                                constraints=cons, seed=2)
    assert len(cands) == 2 * 2 * 20
    web, code, books = (truth.domains.index(d) for d in ("web", "code", "books"))
    assert np.all(cands.mixtures[:, web] >= 0.3 - 1e-12)
    assert np.all(cands.mixtures[:, code] <= 0.1 + 1e-12)
    assert np.all(cands.mixtures[:, books] <= 0.2 + 1e-12)
    assert np.allclose(cands.mixtures.sum(1), 1)
    assert np.allclose(cands.cost, 6 * cands.model_size * cands.tokens)
    assert len(np.unique(cands.mixtures.round(6), axis=0)) == 20  # spread, not collapsed
    with pytest.raises(UsageError):
        generate_candidates(truth.domains, ["50M"], tokens=["1B"], tokens_per_param=20)


def test_load_candidates_reads_units_and_cost(tmp_path, truth):
    path = tmp_path / "c.csv"
    pd.DataFrame({"name": ["x", "y"], "web": [1.0, 0.5], "weight_code": [0.0, 0.5],
                  "model_size": ["122M", "310M"], "tokens": ["2B", 1e10], "cost": [1.0, 2.0]}).to_csv(path, index=False)
    cands = load_candidates(path, truth.domains)
    assert cands.names == ["x", "y"]
    assert np.allclose(cands.model_size, [1.22e8, 3.1e8]) and np.allclose(cands.tokens, [2e9, 1e10])
    assert np.allclose(cands.cost, [1, 2])
    assert np.allclose(cands.mixtures[1], [0.5, 0.5, 0, 0])


# ---------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def fit_file(tmp_path_factory, truth):
    post = posterior_around_truth(truth, n_draws=60, rel_sd=0.05, sigma=0.02, seed=4)
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    fit_from_posterior(post).save(path)
    return path


def test_cli_next_writes_ranked_csv(fit_file, tmp_path, capsys, truth):
    out = tmp_path / "next.csv"
    code = main(["next", str(fit_file), "--target-model-size", "3B", "--target-tokens", "60B",
                 "--sizes", "50M,100M", "--tokens-per-param", "20", "--n-mixtures", "3", "--batch", "2",
                 "--n-outcomes", "8", "--max-draws", "40", "--min", "web=0.2", "--out", str(out)])
    assert code == 0
    frame = pd.read_csv(out)
    for col in ("rank", "selected", "name", "model_size", "tokens", "cost", "score", "score_per_cost",
                "ess_min", "ess_mean", "teaches", *[f"weight_{d}" for d in truth.domains]):
        assert col in frame.columns
    assert len(frame) == 6 and frame["selected"].sum() == 2
    assert np.all(frame["weight_web"] >= 0.2 - 1e-9)
    assert "criterion: voi" in capsys.readouterr().out


def test_cli_next_refuses_missing_candidates(fit_file, capsys):
    code = main(["next", str(fit_file), "--target-model-size", "3B", "--target-tokens", "60B"])
    assert code == 2 and "--candidates" in capsys.readouterr().err


# ---------------------------------------------------------------------------- campaigns
@pytest.mark.slow
def test_campaign_with_reweighting_refit_reduces_regret(truth):
    """The posterior's expected regret and the true regret fall as runs are acquired.

    The prior is a grid of 45 values of the noise exponent's scale (the truth is the grid
    point 1.0) and each refit is the exact Bayesian update of that grid, so the loop is an
    honest, well-specified Bayesian campaign. The initial run (uniform mixture at D_ref)
    carries no information about the exponent, so step 0 reports the prior's regret.
    """
    base = exponent_posterior(truth, np.linspace(0.5, 1.6, 45), truth.noise_sd)
    first, last, true_first, true_last = [], [], [], []
    for seed in (0, 1):
        table, _ = simulate_runs(truth, mixtures=np.full((1, K), 1 / K), model_sizes=[5e7],
                                 tokens=[truth.scaling.d_ref], seed=seed)
        cands = generate_candidates(truth.domains, ["50M", "150M"], tokens_per_param=20, n_mixtures=3, seed=seed)
        result = run_campaign(table, *TARGET, refit=ReweightRefit(base), observe=SimulatorObserver(truth, seed=seed),
                              candidates=cands, budget_steps=3, truth=truth, max_draws=None, n_outcomes=8,
                              seed=seed)
        log = result.to_frame()
        assert list(log["step"]) == [0, 1, 2, 3] and log["chosen"].iloc[-1] == ""
        assert log["compute"].iloc[0] == 0 and np.all(np.diff(log["compute"]) > 0)
        assert log["ess"].iloc[0] == pytest.approx(45)  # the initial run is uninformative
        assert result.table.n_runs == table.n_runs + 3
        assert len(set(",".join(log["chosen"]).strip(",").split(","))) == 3  # no run twice
        first.append(log["expected_regret"].iloc[0])
        last.append(log["expected_regret"].iloc[-1])
        true_first.append(log["true_regret"].iloc[0])
        true_last.append(log["true_regret"].iloc[-1])
    # Measured: a 20-100x drop; a factor 3 leaves room for other seeds' noise.
    assert np.mean(last) < np.mean(first) / 3
    assert np.mean(true_last) < np.mean(true_first) / 3


@pytest.mark.slow
def test_cli_campaign_simulated_with_reweighting(tmp_path, capsys, truth):
    base = tmp_path / "base.nc"
    fit_from_posterior(exponent_posterior(truth, np.linspace(0.5, 1.6, 40), truth.noise_sd)).save(base)
    out = tmp_path / "camp"
    code = main(["campaign", "--simulate", "--seed", "0", "--target-model-size", "3B", "--target-tokens", "60B",
                 "--initial-sizes", "50M", "--initial-mixtures", "2", "--sizes", "50M", "--n-mixtures", "3",
                 "--budget-steps", "2", "--n-outcomes", "4", "--refit", "reweight", "--base-fit", str(base),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    log = pd.read_csv(out / "campaign.csv")
    assert len(log) == 3 and {"compute", "expected_regret", "true_regret", "ess"} <= set(log.columns)
    runs = pd.read_csv(out / "runs.csv")
    assert runs["run_id"].nunique() == 2 + 2  # the initial runs plus one per step
    assert "step 2" in capsys.readouterr().out


def test_cli_campaign_needs_budget_and_one_source(tmp_path, capsys):
    code = main(["campaign", "--simulate", "--target-model-size", "3B", "--target-tokens", "60B",
                 "--sizes", "50M", "--out", str(tmp_path)])
    assert code == 2 and "budget" in capsys.readouterr().err
    code = main(["campaign", "--target-model-size", "3B", "--target-tokens", "60B", "--budget-steps", "1",
                 "--out", str(tmp_path)])
    assert code == 2 and "--simulate or --pool" in capsys.readouterr().err
