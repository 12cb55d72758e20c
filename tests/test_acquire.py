"""Acquisition: value of information, batches, candidates, the `next` CLI and campaigns.

No NUTS here: posteriors are built from hand-made draws, and campaigns refit by exact
importance reweighting of a fixed set of draws (:class:`ReweightRefit`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

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
def test_agreeing_candidate_scores_near_zero_and_informative_one_does_not(truth):
    post = exponent_posterior(truth, np.linspace(0.6, 1.5, 40), 0.01)
    cands = CandidateSet.from_arrays(truth.domains, np.full((2, K), 1 / K), [1e8, 1e8],
                                     [truth.scaling.d_ref, 10 * truth.scaling.d_ref], names=["agree", "differ"])
    for method in ("gaussian", "importance"):
        acq = Acquisition(post, *TARGET, max_draws=None, n_outcomes=16, method=method, seed=0)
        scores = acq.score_voi(cands)
        _, current = acq.recommend()
        assert current > 0
        # All draws predict the same losses at 'agree' (up to rounding): the update is
        # nil (importance weights stay uniform), the decision does not move.
        assert abs(scores.score[0]) < 1e-6 * current
        assert scores.explained[0] < 1e-9 and scores.explained[1] > 0.5
        if method == "importance":
            assert scores.ess_mean[0] == pytest.approx(40, rel=1e-6)
        assert scores.score[1] > 0.3 * current  # measured: gaussian 0.74, importance 0.99


def test_ess_warning_fires_for_tiny_noise_only(truth):
    """The importance update's effective sample size collapses at tiny noise (one
    parameter here, so the value of perfect information is the right answer)."""
    cand = uniform_candidate(truth, 1e8, 6e10)
    factors = np.linspace(0.6, 1.5, 30)
    tiny = Acquisition(exponent_posterior(truth, factors, 1e-5), *TARGET, max_draws=None, n_outcomes=8,
                       method="importance")
    loud = Acquisition(exponent_posterior(truth, factors, 10.0), *TARGET, max_draws=None, n_outcomes=8,
                       method="importance")
    r_tiny = tiny.select(cand)
    r_loud = loud.select(cand)
    assert r_tiny.ess_mean[0] < 1.5 and r_tiny.warnings and r_tiny.warnings_col[0]
    assert r_loud.ess_min[0] > 0.9 * 30 and not r_loud.warnings_col[0]
    assert not any("effective sample size" in w for w in r_loud.warnings)
    assert any("clearly above 0" in w for w in r_loud.warnings)  # pure noise teaches nothing
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
                "explained", "ess_min", "ess_mean", "teaches", *[f"weight_{d}" for d in truth.domains]):
        assert col in frame.columns
    assert len(frame) == 6 and frame["selected"].sum() == 2
    assert np.all(frame["weight_web"] >= 0.2 - 1e-9)
    assert "criterion: voi" in capsys.readouterr().out


def test_cli_next_budget_and_fixed_cost(fit_file, tmp_path, capsys):
    out = tmp_path / "next.csv"
    args = ["next", str(fit_file), "--target-model-size", "3B", "--target-tokens", "60B", "--sizes", "50M,100M",
            "--tokens-per-param", "20", "--n-mixtures", "3", "--n-outcomes", "16", "--max-draws", "40",
            "--fixed-cost", "1e17"]
    cost_50m = 6 * 5e7 * 1e9 + 1e17
    code = main(args + ["--budget", f"{2.5 * cost_50m:g}", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "budget:" in text and "ms each" in text
    frame = pd.read_csv(out)
    assert np.allclose(frame["cost"], 6 * frame["model_size"] * frame["tokens"] + 1e17)
    assert frame.loc[frame["selected"], "cost"].sum() <= 2.5 * cost_50m
    code = main(args + ["--budget", "1e15"])
    err = capsys.readouterr().err
    assert code == 2 and "cheapest" in err and "--budget" in err


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
        # The prior is a discrete grid: importance reweighting is its exact update.
        result = run_campaign(table, *TARGET, refit=ReweightRefit(base), observe=SimulatorObserver(truth, seed=seed),
                              candidates=cands, budget_steps=3, truth=truth, max_draws=None, n_outcomes=8,
                              method="importance", seed=seed)
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


def test_cli_campaign_pool_reveals_one_final_checkpoint_per_run(tmp_path, capsys, truth):
    base = tmp_path / "base.nc"
    fit_from_posterior(exponent_posterior(truth, np.linspace(0.5, 1.6, 40), truth.noise_sd)).save(base)
    pool, _ = simulate_runs(truth, n_mixtures=3, model_sizes=[5e7, 1e8], checkpoints=(0.5, 1.0), seed=1)
    assert pool.n_rows == 2 * pool.n_runs  # two checkpoints per run
    path = tmp_path / "pool.csv"
    pool.to_frame().to_csv(path, index=False)
    out = tmp_path / "camp"
    code = main(["campaign", "--pool", str(path), "--initial-runs", "2", "--seed", "0", "--target-model-size", "3B",
                 "--target-tokens", "60B", "--budget-steps", "2", "--n-outcomes", "4", "--refit", "reweight",
                 "--base-fit", str(base), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    runs = pd.read_csv(out / "runs.csv")
    # 2 initial runs + one per step, each with only its final checkpoint (D at the run's end)
    assert len(runs) == runs["run_id"].nunique() == 4
    ends = pool.to_frame().groupby("run_id")["n_tokens"].max()
    assert np.allclose(runs["n_tokens"].to_numpy(), ends.loc[runs["run_id"]].to_numpy())


def test_cli_campaign_needs_budget_and_one_source(tmp_path, capsys):
    code = main(["campaign", "--simulate", "--target-model-size", "3B", "--target-tokens", "60B",
                 "--sizes", "50M", "--out", str(tmp_path)])
    assert code == 2 and "budget" in capsys.readouterr().err
    code = main(["campaign", "--target-model-size", "3B", "--target-tokens", "60B", "--budget-steps", "1",
                 "--out", str(tmp_path)])
    assert code == 2 and "--simulate or --pool" in capsys.readouterr().err


# ---------------------------------------------------------------------------- benchmark truth and prior
def test_contrasting_truth_optimum_is_off_uniform_and_moves_with_scale():
    """The benchmark truth: a non-uniform optimum that shifts between proxy and target scale."""
    from bayesmix.decide import MixtureProblem
    from bayesmix.simulate import contrasting_truth

    t = contrasting_truth(seed=0)
    cons = Constraints(min={d: 0.03 for d in t.domains})
    optima = {}
    for n in (5e7, 2e9):
        problem = MixtureProblem(t.posterior, n, 20 * n, constraints=cons, max_draws=None)
        optima[n] = problem.per_draw_optima()[0][0]
    target = MixtureProblem(t.posterior, 2e9, 4e10, constraints=cons, max_draws=None)
    opt = target.objective_draws(optima[2e9][None])[0, 0]
    uniform = target.objective_draws(np.full((1, K), 1 / K))[0, 0]
    small = target.objective_draws(optima[5e7][None])[0, 0]
    # Measured 0.65% and 0.32% (docstring); the default truth gives ~0.01% for both.
    assert (uniform - opt) / opt > 0.004
    assert (small - opt) / opt > 0.002
    assert np.abs(optima[2e9] - optima[5e7]).max() > 0.05


def test_exponent_prior_agrees_at_anchor_and_parts_with_scale():
    from bayesmix.simulate import contrasting_truth, exponent_prior

    t = contrasting_truth(seed=1)
    prior = exponent_prior(t, 5e7, 1e9, n_draws=50, rel_sd=0.4, seed=3)
    for name, value in t.params.items():  # draw 0 is the truth
        assert np.allclose(prior.draws[name][0], value, rtol=1e-6)
    uniform = np.full((1, K), 1 / K)
    anchor = prior.expected_loss(uniform, [5e7], [1e9])[:, 0]
    want = t.expected_loss(uniform, [5e7], [1e9])[0]
    # Every draw reproduces the truth at the anchor (fixed-point solve: 1e-6 relative).
    assert np.allclose(anchor, want[None], rtol=1e-6)
    far = prior.expected_loss(uniform, [2e9], [4e10])[:, 0]
    assert np.all(far.std(0) / far.mean(0) > 0.01)  # 40x the anchor's tokens: draws disagree
    off = prior.expected_loss(np.array([[0.7, 0.1, 0.1, 0.1]]), [5e7], [1e9])[:, 0]
    assert np.all(off.std(0) / off.mean(0) > 0.005)  # an off-uniform small run is informative
    assert np.all(prior.draws["E"] > 0)


# ---------------------------------------------------------------------------- refits
class _StubNuts:
    """Stands in for NutsRefit: returns a fixed posterior and records its calls."""

    def __init__(self, posterior):
        self.posterior, self.calls = posterior, []

    def __call__(self, table, previous=None):
        self.calls.append((table.n_rows, previous))
        return self.posterior


def test_adaptive_refit_reweights_new_rows_and_refits_on_low_ess(truth):
    from bayesmix.acquire import AdaptiveRefit

    post = exponent_posterior(truth, np.linspace(0.6, 1.5, 30), 0.02)
    start, _ = simulate_runs(truth, mixtures=np.full((1, K), 1 / K), model_sizes=[5e7], tokens=[truth.scaling.d_ref],
                             seed=0)
    from bayesmix.acquire import concat_tables
    observe = SimulatorObserver(truth, seed=1)  # distinct run ids per observed run
    new = observe(CandidateSet.from_arrays(truth.domains, [[0.7, 0.1, 0.1, 0.1]], 1e8, 2e9))
    grown = concat_tables(start, new)
    stub = _StubNuts(post)
    refit = AdaptiveRefit(stub, ess_fraction=0.01, max_refits=1)
    base, w = refit(start, None)
    assert base is post and w is None and len(stub.calls) == 1
    _, w = refit(grown, base)
    # Only the rows added after the base fit enter: the weights are those of 'new' alone.
    _, want = ReweightRefit(post)(new)
    assert np.allclose(w, want)
    assert len(stub.calls) == 1
    # Demand an ESS above what the data leave: a warm-started refit at the weighted means.
    refit.ess_fraction = 0.99
    _, w2 = refit(grown, base)
    assert w2 is None and len(stub.calls) == 2 and refit.refits == 1
    rows, warm = stub.calls[-1]
    assert rows == grown.n_rows
    assert np.allclose(warm.draws["a"][0], want @ post.draws["a"])
    # max_refits reached: reweight (from the new base) however low the ESS.
    grown2 = concat_tables(grown, observe(CandidateSet.from_arrays(truth.domains, [[0.1, 0.7, 0.1, 0.1]], 1e8, 2e9)))
    _, w3 = refit(grown2, base)
    assert w3 is not None and len(stub.calls) == 2


def test_adaptive_refit_uses_an_initial_posterior_without_fitting(truth):
    from bayesmix.acquire import AdaptiveRefit

    post = exponent_posterior(truth, [0.8, 1.0, 1.2], 0.02)
    stub = _StubNuts(post)
    table, _ = simulate_runs(truth, n_mixtures=2, model_sizes=[5e7], seed=0)
    base, w = AdaptiveRefit(stub, initial=post)(table, None)
    assert base is post and w is None and stub.calls == []


def test_nuts_refit_keeps_units_and_warm_starts(monkeypatch, truth):
    """NutsRefit hands fit_law the previous scaling and means (no sampling: fit_law is stubbed)."""
    import bayesmix.inference as inference
    from bayesmix.acquire import NutsRefit

    seen = {}

    class FakeFit:
        def posterior(self, max_draws=None):
            return "posterior"

    def fake_fit_law(table, law, **kwargs):
        seen.update(kwargs)
        return FakeFit()

    monkeypatch.setattr(inference, "fit_law", fake_fit_law)
    post = exponent_posterior(truth, [0.8, 1.2], 0.02)
    table, _ = simulate_runs(truth, n_mixtures=2, model_sizes=[5e7], seed=0)
    refit = NutsRefit("capacity_noise", sampler="pymc", draws=5, tune=5)
    assert refit(table, None) == "posterior"
    assert seen["scaling"] is None and seen["init"] is None and seen["sampler"] == "pymc"
    refit(table, post)
    assert seen["scaling"] is post.scaling
    assert np.allclose(seen["init"]["a"], post.draws["a"].mean(0))
    assert np.allclose(seen["init"]["sigma"], 0.02)


def test_fit_law_passes_scaling_to_the_model(monkeypatch, truth):
    """fit_law(scaling=...) builds the model in those units (stopped right after building)."""
    import bayesmix.inference as inference
    from bayesmix.scaling import Scaling

    seen = {}

    class Stop(Exception):
        pass

    def fake_build(law, table, priors=None, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(inference, "build_model", fake_build)
    table, _ = simulate_runs(truth, n_mixtures=2, model_sizes=[5e7], seed=0)
    units = Scaling(n_ref=1e8, d_ref=2e9, loss_ref=(1.0,) * K)
    with pytest.raises(Stop):
        inference.fit_law(table, "capacity_noise", scaling=units)
    assert seen["scaling"] is units
    with pytest.raises(Stop):
        inference.fit_law(table, "capacity_noise")
    assert seen["scaling"] == Scaling.from_table(table)  # default: units from the table, as before


def test_build_model_uses_given_scaling(truth):
    from bayesmix.inference import build_model
    from bayesmix.laws import get_law
    from bayesmix.scaling import Scaling

    table, _ = simulate_runs(truth, n_mixtures=3, model_sizes=[5e7, 1e8], seed=0)
    units = Scaling(n_ref=1e8, d_ref=2e9, loss_ref=(2.0,) * K)
    _, got = build_model(get_law("capacity_noise"), table, scaling=units)
    assert got == units
    _, default = build_model(get_law("capacity_noise"), table)
    assert default == Scaling.from_table(table) and default != units


def test_campaign_score_hook_adds_columns(truth):
    post = exponent_posterior(truth, [0.8, 1.0, 1.2], 0.02)
    table, _ = simulate_runs(truth, mixtures=np.full((1, K), 1 / K), model_sizes=[5e7], seed=0)
    cands = generate_candidates(truth.domains, ["50M"], tokens_per_param=20, n_mixtures=2, seed=0)
    calls = []

    def score(problem, weights, h):
        calls.append((problem.n_draws, weights.sum(), h.copy()))
        return {"my_score": float(h[0])}

    result = run_campaign(table, *TARGET, refit=ReweightRefit(post), observe=SimulatorObserver(truth, seed=0),
                          candidates=cands, criterion="random", budget_steps=1, max_draws=None, n_outcomes=2,
                          score=score)
    log = result.to_frame()
    assert len(calls) == 2 and list(log["my_score"]) == [c[2][0] for c in calls]
    assert all(n == 3 and w == pytest.approx(1) for n, w, _ in calls)
    assert np.allclose(log[[f"weight_{d}" for d in truth.domains]].to_numpy(), [c[2] for c in calls])


def test_cli_campaign_adaptive_refit_checks_ess_fraction(tmp_path, capsys):
    code = main(["campaign", "--simulate", "--target-model-size", "3B", "--target-tokens", "60B",
                 "--initial-sizes", "50M", "--initial-mixtures", "2", "--sizes", "50M", "--n-mixtures", "2",
                 "--budget-steps", "1", "--refit", "adaptive", "--ess-fraction", "1.5", "--out", str(tmp_path)])
    assert code == 2 and "--ess-fraction" in capsys.readouterr().err
