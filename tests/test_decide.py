"""Tests of the decision layer (bayesmix.decide) and `bayesmix recommend`.

Posteriors are built from hand-made draws (the truth of ``default_truth`` perturbed per
draw), so that only the slow recovery test samples. Each distinct (posterior, target)
pair compiles the law once (about a second), so the tests share a few of them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from bayesmix import _az
from bayesmix.decide import (
    Constraints,
    MixtureProblem,
    Objective,
    Risk,
    expected_regret,
    load_mixtures,
    rank_candidates,
    recommend,
    risk_value,
)
from bayesmix.polytope import project_to_polytope
from bayesmix.weighted import weighted_quantile
from bayesmix.errors import UsageError
from bayesmix.inference import Fit
from bayesmix.laws import get_law
from bayesmix.posterior import Posterior
from bayesmix.simulate import default_truth

DOMAINS = ("web", "code", "books", "science")
TARGET = dict(model_size=1e9, tokens=2e10)


def perturbed_posterior(truth, n_draws, *, scale=0.1, seed=0, centre=None):
    """Draws ``theta_s = centre * exp(scale * z_s)`` (centre: the truth), one Posterior."""
    rng = np.random.default_rng(seed)
    centre = truth.params if centre is None else centre
    draws = {k: np.asarray(v, float)[None] * np.exp(scale * rng.standard_normal((n_draws,) + np.shape(v)))
             for k, v in centre.items()}
    sigma = np.full((n_draws, len(truth.domains)), 0.01)
    return Posterior(get_law(truth.law_name), draws, truth.scaling, tuple(truth.domains), sigma=sigma)


@pytest.fixture(scope="module")
def truth():
    return default_truth("capacity_noise", DOMAINS, seed=1)


@pytest.fixture(scope="module")
def posterior(truth):
    return perturbed_posterior(truth, 120, scale=0.1, seed=0)


@pytest.fixture(scope="module")
def problem(posterior):
    return MixtureProblem(posterior, **TARGET, max_draws=None)


def slsqp_minimum(fun, lower, upper, starts):
    """Independent reference optimiser: SLSQP with finite-difference gradients."""
    best = None
    for x0 in starts:
        res = optimize.minimize(fun, x0, method="SLSQP", bounds=list(zip(lower, upper)),
                                constraints=[{"type": "eq", "fun": lambda h: h.sum() - 1}],
                                options={"ftol": 1e-13, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    return best


# ============================================================================ projection
@st.composite
def boxes(draw, max_k=8):
    """A feasible box: lower <= upper, sum(lower) <= 1 <= sum(upper)."""
    k = draw(st.integers(2, max_k))
    unit = st.floats(0, 1, allow_nan=False)
    lower = np.array([draw(unit) for _ in range(k)]) * draw(st.floats(0, 1)) / k
    upper = np.minimum(1.0, lower + np.array([draw(unit) for _ in range(k)]))
    if upper.sum() < 1:
        upper = upper + (1 - upper.sum()) / k + 1e-9
        upper = np.minimum(upper, 1.0)
    if upper.sum() < 1 or np.any(lower > upper):
        upper = np.ones(k)
    point = np.array([draw(st.floats(-3, 3, allow_nan=False)) for _ in range(k)])
    return lower, upper, point


@given(boxes())
@settings(max_examples=300, deadline=None, derandomize=True)
def test_projection_is_feasible_idempotent_and_euclidean(case):
    lower, upper, point = case
    h = project_to_polytope(point, lower, upper)
    assert np.all(h >= lower) and np.all(h <= upper)
    assert abs(h.sum() - 1) < 1e-12
    np.testing.assert_allclose(project_to_polytope(h, lower, upper), h, atol=1e-12)
    # Euclidean projection onto a convex set: <v - p, y - p> <= 0 for every feasible y.
    rng = np.random.default_rng(0)
    ys = project_to_polytope(rng.dirichlet(np.ones(len(h)), size=50), lower, upper)
    assert np.all((ys - h) @ (point - h) <= 1e-10)


def test_projection_matches_slsqp_on_a_fixed_case():
    point = np.array([0.9, -0.2, 0.4, 0.3, 0.1])
    lower = np.array([0.0, 0.1, 0.0, 0.0, 0.2])
    upper = np.array([1.0, 0.3, 0.05, 1.0, 1.0])
    h = project_to_polytope(point, lower, upper)
    ref = slsqp_minimum(lambda x: np.sum((x - point) ** 2), lower, upper, [np.full(5, 0.2)])
    np.testing.assert_allclose(h, ref.x, atol=1e-7)  # SLSQP's own tolerance


# ============================================================================ risk measures
NORMAL_GRID = 2.0 + 0.3 * stats.norm.ppf((np.arange(4000) + 0.5) / 4000)


@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.95])
def test_cvar_matches_normal_closed_form(alpha):
    expected = 2.0 + 0.3 * stats.norm.pdf(stats.norm.ppf(alpha)) / (1 - alpha)
    # The 4000-point quantile grid truncates the tails at +-3.5 sd: error < 1e-3 sd.
    assert risk_value(NORMAL_GRID, f"cvar:{alpha}") == pytest.approx(expected, abs=3e-4)


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.95])
def test_quantile_matches_normal_closed_form(q):
    expected = 2.0 + 0.3 * stats.norm.ppf(q)
    assert risk_value(NORMAL_GRID, f"quantile:{q}") == pytest.approx(expected, abs=3e-4)


def test_risk_measures_on_random_normal_draws_within_monte_carlo_error():
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, size=20000)
    # Standard errors: quantile sqrt(q(1-q))/(n f(z)) ~ 0.024 at q=0.9; CVaR ~ 0.035. 4 SE.
    assert risk_value(x, "quantile:0.9") == pytest.approx(1 + 2 * stats.norm.ppf(0.9), abs=0.1)
    assert risk_value(x, "cvar:0.9") == pytest.approx(1 + 2 * stats.norm.pdf(stats.norm.ppf(0.9)) / 0.1, abs=0.14)
    assert risk_value(x, "mean") == pytest.approx(1.0, abs=0.06)


def test_weighted_risk_equals_risk_of_repeated_draws():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(30, 3))
    counts = rng.integers(1, 5, size=30)
    repeated = np.repeat(values, counts, axis=0)
    for spec in ("mean", "cvar:0.8", "cvar:0.0"):
        np.testing.assert_allclose(risk_value(values, spec, draw_weights=counts),
                                   risk_value(repeated, spec), rtol=1e-12)
    np.testing.assert_allclose(weighted_quantile(values, [0.1, 0.5], np.ones(30)),
                               np.quantile(values, [0.1, 0.5], axis=0), rtol=1e-12)
    # cvar:0 is the mean; coefficients are weights (non-negative, summing to one).
    np.testing.assert_allclose(risk_value(values, "cvar:0"), values.mean(0), rtol=1e-12)
    coef = Risk.parse("quantile:0.9").coefficients(values)
    assert np.all(coef >= 0) and np.allclose(coef.sum(0), 1)


@pytest.mark.parametrize("spec", ["median", "cvar", "quantile:1.5", "cvar:1", "quantile:x", "mean:0.5"])
def test_bad_risk_specs_are_refused(spec):
    with pytest.raises(UsageError, match="risk|level"):
        Risk.parse(spec)


# ============================================================================ objective and gradients
def test_objective_draws_match_posterior_expected_loss(problem, posterior):
    rng = np.random.default_rng(2)
    h = rng.dirichlet(np.ones(4), size=5)
    reference = posterior.expected_loss(h, TARGET["model_size"], TARGET["tokens"])
    np.testing.assert_allclose(problem.domain_losses(h), reference, rtol=1e-12)
    np.testing.assert_allclose(problem.objective_draws(h), reference.mean(-1), rtol=1e-12)
    weighted = MixtureProblem(posterior, **TARGET, objective=Objective(weights={"web": 3, "code": 1}),
                              max_draws=None)
    np.testing.assert_allclose(weighted.objective_draws(h), reference[..., 0] * 0.75 + reference[..., 1] * 0.25,
                               rtol=1e-12)


@pytest.mark.parametrize("spec", ["mean", "cvar:0.8", "quantile:0.8"])
def test_risk_gradient_matches_finite_differences(problem, spec):
    risk = Risk.parse(spec)
    fun = problem._risk_function(risk, np.full(problem.n_draws, 1 / problem.n_draws))
    h = np.array([[0.3, 0.2, 0.35, 0.15]])
    _, grad = fun(h)
    # Directional derivatives along feasible (sum-zero) directions, central differences.
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.normal(size=4)
        v -= v.mean()
        eps = 1e-6
        numeric = (fun(h + eps * v)[0] - fun(h - eps * v)[0]) / (2 * eps)
        # CVaR/quantile are piecewise smooth: at this generic point no rank changes within eps.
        assert numeric[0] == pytest.approx(float(grad[0] @ v), rel=1e-5, abs=1e-8)


def test_risk_optimum_matches_slsqp_for_one_draw_under_constraints(truth):
    constraints = Constraints(min={"books": 0.2}, max={"web": 0.3}, available={"code": 3e9}, max_epochs=2)
    problem = MixtureProblem(truth.posterior, **TARGET, constraints=constraints)
    h, value = problem.recommend_mixture("mean")
    b = problem.bounds
    assert b.upper[1] == pytest.approx(2 * 3e9 / 2e10)
    ref = slsqp_minimum(lambda x: float(problem.objective_draws(project_to_polytope(x, b.lower, b.upper))[0, 0]),
                        b.lower, b.upper, problem.starting_points(6, seed=3))
    # Our optimum is at least as good as the independent optimiser's (to its 1e-9 accuracy).
    assert value <= ref.fun + 1e-9
    np.testing.assert_allclose(h, project_to_polytope(ref.x, b.lower, b.upper), atol=2e-4)
    # With one draw, the per-draw optimum is the recommendation and the regret is zero.
    opt_h, opt_v = problem.per_draw_optima(extra_starts=[h])
    assert opt_v[0] == pytest.approx(value, abs=1e-10)
    assert problem.expected_regret(h) == pytest.approx(0.0, abs=1e-10)


# ============================================================================ mean versus spread
@pytest.fixture(scope="module")
def spread_posterior():
    """Two domains; only domain 0's noise amplitude A is uncertain, on a normal grid.

    The objective is then exactly affine in the normal scores, with a spread that grows as
    the weight of domain 0 falls (its noise term scales as (D h_0)^-a).
    """
    truth = default_truth("capacity_noise", ("risky", "steady"), seed=4)
    S = 2000
    z = stats.norm.ppf((np.arange(S) + 0.5) / S)
    draws = {k: np.repeat(np.asarray(v, float)[None], S, axis=0) for k, v in truth.params.items()}
    draws["A"] = draws["A"].copy()
    draws["A"][:, 0] *= 1 + 0.25 * z  # positive: |z| < 3.5
    return Posterior(get_law("capacity_noise"), draws, truth.scaling, truth.domains,
                     sigma=np.full((S, 2), 0.01))


def test_cvar_and_quantile_choose_the_safer_of_two_mixtures_tied_in_mean(spread_posterior):
    problem = MixtureProblem(spread_posterior, **TARGET, max_draws=None)

    def mean_objective(t):
        return float(problem.objective_draws([[t, 1 - t]])[:, 0].mean())

    best = optimize.minimize_scalar(mean_objective, bounds=(0.01, 0.99), method="bounded").x
    t_risky = best - 0.2
    t_safe = optimize.brentq(lambda t: mean_objective(t) - mean_objective(t_risky), best, 0.999, xtol=1e-14)
    candidates = {"risky": [t_risky, 1 - t_risky], "safe": [t_safe, 1 - t_safe]}
    values = problem.objective_draws(np.array(list(candidates.values())))
    assert values[:, 0].mean() == pytest.approx(values[:, 1].mean(), abs=1e-12)
    assert values[:, 0].std() > 1.2 * values[:, 1].std()
    for spec in ("cvar:0.9", "quantile:0.9"):
        ranking = rank_candidates(spread_posterior, candidates, **TARGET, risk=spec, max_draws=None)
        assert ranking.to_dict()["candidates"][0]["name"] == "safe"
    # The reported risks are the normal closed forms of each candidate's draws (exactly
    # normal-score grids here): mean + sd * phi(z_a) / (1 - a) and mean + sd * z_q.
    ranking = rank_candidates(spread_posterior, candidates, **TARGET, risk="cvar:0.9", max_draws=None)
    mean, sd = values.mean(0), values.std(0)
    np.testing.assert_allclose(ranking.risk_values, mean + sd * stats.norm.pdf(stats.norm.ppf(0.9)) / 0.1,
                               rtol=1e-4)  # grid truncation at 3.5 sd: < 1e-3 sd
    ranking = rank_candidates(spread_posterior, candidates, **TARGET, risk="quantile:0.9", max_draws=None)
    np.testing.assert_allclose(ranking.risk_values, mean + sd * stats.norm.ppf(0.9), rtol=1e-4)


def test_cvar_recommendation_moves_towards_the_less_uncertain_side(spread_posterior):
    problem = MixtureProblem(spread_posterior, **TARGET, max_draws=400)
    h_mean, _ = problem.recommend_mixture("mean")
    h_cvar, _ = problem.recommend_mixture("cvar:0.9")
    assert h_cvar[0] > h_mean[0] + 0.01  # more weight on the uncertain domain shrinks its term
    values = problem.objective_draws(np.array([h_mean, h_cvar]))
    cvar = risk_value(values, "cvar:0.9")
    assert cvar[1] < cvar[0] and values[:, 0].mean() < values[:, 1].mean()


# ============================================================================ recommendation report
@pytest.fixture(scope="module")
def recommendation(posterior):
    return recommend(posterior, **TARGET, risk="cvar:0.8",
                     baselines={"web-heavy": {"web": 0.7, "code": 0.1, "books": 0.1, "science": 0.1}},
                     max_draws=None, seed=0)


def test_recommendation_report_is_consistent(recommendation, problem):
    rec = recommendation
    values = problem.objective_draws(rec.mixture)[:, 0]
    assert rec.risk_value == pytest.approx(risk_value(values, "cvar:0.8"), rel=1e-12)
    assert rec.objective_summary["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert rec.n_draws == 120
    # No random feasible mixture has a lower CVaR than the recommendation.
    rng = np.random.default_rng(5)
    others = rng.dirichlet(np.ones(4), size=200)
    assert np.all(risk_value(problem.objective_draws(others), "cvar:0.8") >= rec.risk_value - 1e-10)
    # Baselines: uniform first, probabilities and gains from the draws.
    names = [b.name for b in rec.baselines]
    assert names == ["uniform", "web-heavy"]
    heavy = problem.objective_draws([[0.7, 0.1, 0.1, 0.1]])[:, 0]
    assert rec.baselines[1].prob_better == pytest.approx(np.mean(values < heavy))
    assert rec.baselines[1].expected_gain == pytest.approx(np.mean(heavy - values), rel=1e-10)
    # Regret: mean over draws of the objective minus that draw's optimum, never negative.
    opt_h, opt_v = problem.per_draw_optima(extra_starts=[rec.mixture])
    regret = values - np.minimum(opt_v, values)
    assert rec.expected_regret == pytest.approx(regret.mean(), rel=1e-6, abs=1e-12)
    assert rec.expected_regret >= 0
    np.testing.assert_allclose(rec.optimum["mean"], opt_h.mean(0), atol=1e-6)
    assert np.all(rec.optimum["q05"] <= rec.optimum["mean"] + 1e-12)
    assert np.all(rec.optimum["mean"] <= rec.optimum["q95"] + 1e-12)


def test_per_draw_optima_beat_every_draws_alternatives(problem):
    opt_h, opt_v = problem.per_draw_optima()
    rng = np.random.default_rng(6)
    others = rng.dirichlet(np.ones(4), size=300)
    values = problem.objective_draws(others)  # (S, 300)
    assert np.all(opt_v <= values.min(axis=1) + 1e-10)
    np.testing.assert_allclose(problem.objective_draws(opt_h).diagonal(), opt_v, rtol=1e-12)


def test_recommendation_json_and_table(recommendation, tmp_path):
    text = recommendation.to_json(tmp_path / "rec.json")
    data = json.loads(text)
    assert json.loads((tmp_path / "rec.json").read_text()) == data
    for key in ("mixture", "predicted_objective", "domain_losses", "baselines", "expected_regret",
                "optimal_mixture", "n_draws", "risk", "constraints", "target"):
        assert key in data
    assert set(data["mixture"]) == set(DOMAINS)
    assert sum(data["mixture"].values()) == pytest.approx(1, abs=1e-12)
    assert set(data["domain_losses"]["web"]) == {"mean", "sd", "q05", "q95", "predictive_q05", "predictive_q95"}
    assert data["optimal_mixture"]["n_draws"] == 120
    assert set(data["optimal_mixture"]["q05"]) == set(DOMAINS)
    table = recommendation.format_table()
    assert "expected regret" in table and "web-heavy" in table and "90% region" in table


def test_draw_weights_on_one_draw_recommend_that_draws_optimum(problem):
    weights = np.zeros(problem.n_draws)
    weights[7] = 1.0
    h, _ = problem.recommend_mixture("mean", draw_weights=weights)
    opt_h, opt_v = problem.per_draw_optima()
    np.testing.assert_allclose(h, opt_h[7], atol=1e-4)
    assert problem.expected_regret(h, draw_weights=weights) == pytest.approx(0, abs=1e-9)
    # The array form of expected_regret agrees with the problem's.
    values = problem.objective_draws(h)[:, 0]
    assert expected_regret(values, optimum_values=opt_v) == pytest.approx(problem.expected_regret(h), rel=1e-12)


def test_target_domain_objective_favours_that_domain(problem, posterior):
    rec = recommend(posterior, **TARGET, objective=Objective(target_domain="books"), max_draws=40, n_restarts=2)
    uniform_rec_h, _ = problem.recommend_mixture("mean")
    assert rec.mixture[2] > uniform_rec_h[2] + 0.1
    assert rec.objective_weights.tolist() == [0, 0, 1, 0]


# ============================================================================ constraints
def test_available_tokens_cap_the_weight(posterior):
    constraints = Constraints(available={"web": 5e8}, max_epochs=3)
    rec = recommend(posterior, **TARGET, constraints=constraints, max_draws=40, n_restarts=2)
    assert rec.mixture[0] * TARGET["tokens"] <= 3 * 5e8 * (1 + 1e-12)
    assert rec.bounds.upper[0] == pytest.approx(0.075)
    assert any("available web" in c for c in rec.to_dict()["constraints"]["binding"])


def test_weights_stay_off_the_jump_of_a_law_at_zero_weight():
    """A domain gets at least the law's minimum positive weight or, where its upper bound
    is below that, none; user bounds above the minimum are kept as they are."""
    least = 1e-3
    bounds = Constraints(min={"web": 0.2}, max={"books": 5e-4, "science": 0.0}).bounds(DOMAINS, 2e10, least)
    np.testing.assert_array_equal(bounds.lower, [0.2, least, 0.0, 0.0])
    np.testing.assert_array_equal(bounds.upper, [1.0, 1.0, 0.0, 0.0])
    assert bounds.lower_source[0] == "min web=0.2"
    assert "minimum positive weight" in bounds.lower_source[1]
    assert "max books=0.0005" in bounds.upper_source[2] and "books is left out" in bounds.upper_source[2]
    # Without a jump (the default), the simplex is the only lower bound.
    assert Constraints().bounds(DOMAINS, 2e10).lower.tolist() == [0.0] * 4


def test_a_single_domain_objective_does_not_land_on_the_zero_weight_corner(posterior):
    """Optimising the loss of one domain sends every other weight to its lower bound. For
    capacity_noise that bound is the law's minimum positive weight, not the corner h = 0
    where the other domains' own-data terms vanish."""
    least = get_law("capacity_noise").min_positive_weight
    assert least > 0
    rec = recommend(posterior, **TARGET, objective=Objective(target_domain="books"), max_draws=40, n_restarts=2)
    others = np.delete(rec.mixture, 2)
    np.testing.assert_allclose(others, least, rtol=1e-9)
    assert sum("minimum positive weight" in c for c in rec.to_dict()["constraints"]["binding"]) == 3


@pytest.mark.parametrize(
    "constraints, words",
    [
        (Constraints(min={"web": 0.6, "code": 0.5}), ["min web=0.6", "min code=0.5", "sum to 1.1 > 1"]),
        (Constraints(max={"web": 0.2, "code": 0.2, "books": 0.2, "science": 0.3}),
         ["max web=0.2", "max science=0.3", "< 1"]),
        (Constraints(min={"books": 0.5}, max={"books": 0.4}), ["min books=0.5", "max books=0.4"]),
        (Constraints(min={"books": 0.5}, available={"books": 5e9}), ["min books=0.5", "available books=5B"]),
        (Constraints(min={"nope": 0.1}), ["unknown domain", "'nope'"]),
        (Constraints(max_epochs=2), ["--available"]),
        (Constraints(max={"web": 1.5}), ["[0, 1]"]),
    ],
)
def test_infeasible_or_invalid_constraints_are_named(constraints, words):
    with pytest.raises(UsageError) as info:
        constraints.bounds(DOMAINS, TARGET["tokens"])
    for word in words:
        assert word in str(info.value)


@st.composite
def constraint_sets(draw):
    def some(values):
        chosen = draw(st.lists(st.sampled_from(DOMAINS), unique=True, max_size=4))
        return {d: draw(values) for d in chosen} or None

    return Constraints(
        min=some(st.floats(0, 0.5)),
        max=some(st.floats(0, 1)),
        available=some(st.floats(0, 4e10)),
        max_epochs=draw(st.none() | st.floats(0.5, 4)),
    )


@pytest.fixture(scope="module")
def small_posterior(posterior):
    return posterior.subset(np.arange(30))


@given(constraint_sets())
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
def test_constraints_hold_exactly_in_every_recommendation(small_posterior, constraints):
    if constraints.max_epochs is not None and not constraints.available:
        constraints = Constraints(constraints.min, constraints.max, None, None)
    try:
        bounds = constraints.bounds(DOMAINS, TARGET["tokens"])
    except UsageError as err:
        assert "infeasible" in str(err)
        lower = np.zeros(4)
        upper = np.ones(4)
        for i, d in enumerate(DOMAINS):
            lower[i] = (constraints.min or {}).get(d, 0)
            upper[i] = min((constraints.max or {}).get(d, 1),
                           (constraints.effective_epochs() or 1) * (constraints.available or {}).get(d, np.inf)
                           / TARGET["tokens"])
        assert lower.sum() > 1 or upper.sum() < 1 or np.any(lower > upper)
        return
    rec = recommend(small_posterior, **TARGET, constraints=constraints, n_restarts=2, max_draws=None,
                    risk="cvar:0.8")
    h = rec.mixture
    assert abs(h.sum() - 1) <= 1e-12
    for i, d in enumerate(DOMAINS):
        assert h[i] >= (constraints.min or {}).get(d, 0.0)
        assert h[i] <= (constraints.max or {}).get(d, 1.0)
        if constraints.available and d in constraints.available:
            assert h[i] * TARGET["tokens"] <= constraints.effective_epochs() * constraints.available[d] * (1 + 1e-12)
    assert np.all(rec.optimum["q95"] <= bounds.upper + 1e-12) and np.all(rec.optimum["q05"] >= bounds.lower - 1e-12)


# ============================================================================ known optimum
def test_optimum_region_covers_the_true_optimum_over_seeds(truth):
    """Calibrated synthetic posteriors: draws scattered around a centre that is itself the
    truth scattered by the same amount. The true optimum then falls inside the 90% region
    of the draws' optima about 90% of the time (one compile: all seeds in one posterior)."""
    seeds, S, scale = 16, 80, 0.08
    rng = np.random.default_rng(11)
    parts = []
    for _ in range(seeds):
        centre = {k: np.asarray(v, float) * np.exp(scale * rng.standard_normal(np.shape(v)))
                  for k, v in truth.params.items()}
        parts.append(perturbed_posterior(truth, S, scale=scale, seed=int(rng.integers(2**31)), centre=centre))
    draws = {k: np.concatenate([p.draws[k] for p in parts] + [np.asarray(truth.params[k], float)[None]])
             for k in truth.params}
    combined = Posterior(get_law("capacity_noise"), draws, truth.scaling, DOMAINS)
    problem = MixtureProblem(combined, **TARGET, max_draws=None)
    opt_h, _ = problem.per_draw_optima()
    true_opt = opt_h[-1]
    # The last draw is the truth: its optimum agrees with an independent optimiser.
    ref = slsqp_minimum(lambda x: float(truth.expected_loss(project_to_polytope(x, 0, 1), **TARGET).mean()),
                        np.zeros(4), np.ones(4), [np.full(4, 0.25)])
    np.testing.assert_allclose(true_opt, project_to_polytope(ref.x, 0, 1), atol=1e-4)
    true_value = problem.objective_draws(true_opt)[-1, 0]
    covered, gaps = [], []
    for m in range(seeds):
        q05, q95 = np.quantile(opt_h[m * S:(m + 1) * S], [0.05, 0.95], axis=0)
        covered.extend((true_opt >= q05 - 1e-9) & (true_opt <= q95 + 1e-9))
        # This seed's recommendation: the same problem with only this seed's draws weighted.
        weights = np.zeros(problem.n_draws)
        weights[m * S:(m + 1) * S] = 1.0
        h, _ = problem.recommend_mixture("mean", draw_weights=weights, n_restarts=2)
        gaps.append(problem.objective_draws(h)[-1, 0] / true_value - 1)
    coverage = np.mean(covered)
    # 64 domain-seed pairs at nominal 0.9 (sd ~0.04 if independent, more with correlation).
    assert 0.75 <= coverage <= 1.0, coverage
    # The recommendation's true objective is within 0.1% of the true optimum for every seed.
    assert 0 <= min(gaps) and max(gaps) < 1e-3, gaps


# ============================================================================ command line
@pytest.fixture(scope="module")
def fit_file(tmp_path_factory, posterior):
    """A fit file around 40 hand-made draws (one chain), as `bayesmix fit` would write it."""
    S = 40
    law = posterior.law
    draws = {k: np.asarray(v)[:S][None] for k, v in posterior.draws.items()}
    draws["sigma"] = np.full((1, S, len(DOMAINS)), 0.01)
    dims = {p.name: list(p.dims) for p in law.params if p.dims}
    dims["sigma"] = ["domain"]
    idata = _az.from_draws(draws, dims, {"domain": list(DOMAINS)})
    attrs = {"bayesmix_type": "fit", "law": law.name, "law_options": {}, "law_parametrization": law.parametrization,
             "domains": list(DOMAINS),
             "scaling": posterior.scaling.to_dict(), "fingerprint": "hand-made"}
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    Fit(idata, law, posterior.scaling, DOMAINS, attrs).save(path)
    return path


CLI_TARGET = ("--target-model-size", "1B", "--target-tokens", "20B")


def test_cli_recommend_prints_a_table_and_writes_json(run_cli, fit_file, tmp_path):
    out = tmp_path / "rec.json"
    code, stdout, stderr = run_cli("recommend", fit_file, *CLI_TARGET, "--risk", "cvar:0.8", "--min", "books=0.3",
                                   "--baseline", "heavy:web=0.7,code=0.1,books=0.1,science=0.1",
                                   "--out", out)
    assert code == 0, stderr
    assert "Recommended mixture for N=1B, D=20B tokens" in stdout
    assert "heavy" in stdout and "uniform" in stdout and "expected regret" in stdout
    data = json.loads(out.read_text())
    assert data["bayesmix_type"] == "recommendation" and data["fingerprint"] == "hand-made"
    assert data["n_draws"] == 40 and data["optimal_mixture"]["n_draws"] == 40
    assert data["risk"]["measure"] == "cvar:0.8"
    assert data["mixture"]["books"] >= 0.3 and "min books=0.3" in data["constraints"]["binding"]
    assert [b["name"] for b in data["baselines"]] == ["uniform", "heavy"]
    assert 0 <= data["baselines"][1]["prob_better"] <= 1
    assert data["target"] == {"model_size": 1e9, "tokens": 2e10}
    # A written recommendation can serve as a baseline of the next one.
    code, stdout, stderr = run_cli("recommend", fit_file, *CLI_TARGET, "--baseline", out, "--restarts", "1")
    assert code == 0, stderr
    assert "rec " in stdout


@pytest.mark.parametrize(
    "options, words",
    [
        (["--min", "web=0.6,code=0.5"], ["infeasible", "min web=0.6", "min code=0.5"]),
        (["--min", "books=0.5", "--available", "books=5B"], ["infeasible", "min books=0.5", "available books=5B"]),
        (["--max", "web=0.1,code=0.1,books=0.1,science=0.1"], ["infeasible", "max web=0.1", "< 1"]),
        (["--risk", "cvar"], ["cvar:0.9"]),
        (["--target-domain", "github"], ["unknown domain", "github"]),
        (["--max-epochs", "2"], ["--available"]),
    ],
)
def test_cli_refuses_bad_options_with_exit_2(run_cli, fit_file, options, words):
    code, stdout, stderr = run_cli("recommend", fit_file, *CLI_TARGET, *options)
    assert code == 2
    assert "Traceback" not in stderr
    for word in words:
        assert word in stderr


def test_cli_ranks_candidates(run_cli, fit_file, write_csv, tmp_path):
    path = write_csv("""
        name,weight_web,weight_code,weight_books,weight_science
        even,0.25,0.25,0.25,0.25
        web-heavy,0.7,0.1,0.1,0.1
        books-heavy,0.1,0.1,0.7,0.1
    """, name="candidates.csv")
    out = tmp_path / "ranking.json"
    code, stdout, stderr = run_cli("recommend", fit_file, *CLI_TARGET, "--candidates", path, "--risk",
                                   "quantile:0.9", "--out", out)
    assert code == 0, stderr
    assert "Candidates ranked" in stdout and "P(best)" in stdout
    data = json.loads(out.read_text())
    rows = data["candidates"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert sum(r["prob_best"] for r in rows) == pytest.approx(1.0)
    assert rows[0]["risk_value"] <= rows[1]["risk_value"] <= rows[2]["risk_value"]
    assert rows[0]["name"] == "even"  # lopsided mixtures lose on the plain average here


def test_load_mixtures_reads_json_and_refuses_bad_rows(tmp_path):
    good = tmp_path / "m.json"
    good.write_text(json.dumps({"a": {"web": 0.5, "code": 0.5}, "b": {"books": 1.0}}))
    mixtures = load_mixtures(good, DOMAINS)
    np.testing.assert_allclose(mixtures["a"], [0.5, 0.5, 0, 0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": {"web": 0.5, "code": 0.2}}))
    with pytest.raises(Exception, match="sum to 0.7"):
        load_mixtures(bad, DOMAINS)


# ============================================================================ recovery from a fit
@pytest.mark.slow
@pytest.mark.timeout(1800)  # its one NUTS fit: 5-15 minutes on 2 busy cores (docstring)
def test_recommendation_from_a_fit_recovers_the_true_optimum():
    """NUTS on a rich simulated design (3 domains, 10 mixtures x 4 sizes x 2 token counts):
    at targets up to 7.5x the largest proxy, the recommended mixture's true objective is
    within 0.1% of the true optimum, and the true optimum lies inside the reported 90%
    region of the optimal mixture for most domains (one NUTS fit: 5-15 minutes on 2 busy cores)."""
    from bayesmix.inference import fit_law
    from bayesmix.simulate import simulate_runs

    truth = default_truth("capacity_noise", DOMAINS[:3], seed=3)
    table, _ = simulate_runs(truth, n_mixtures=10, model_sizes=(5e7, 1e8, 2e8, 4e8), tokens=(2e9, 8e9), seed=1)
    fit = fit_law(table, "capacity_noise", draws=150, tune=250, chains=2, extend_draws=1, target_accept=0.95,
                  progressbar=False,
                  run_effect="off", map_starts=1, seed=0)
    posterior = fit.posterior()
    inside = []
    for model_size, tokens in [(4e8, 8e9), (1e9, 2e10), (3e9, 6e10)]:
        rec = recommend(posterior, model_size, tokens, max_draws=300)
        truth_problem = MixtureProblem(truth.posterior, model_size, tokens)
        true_opt, true_value = truth_problem.recommend_mixture("mean", n_restarts=6)
        gap = truth_problem.objective_draws(rec.mixture)[0, 0] / true_value - 1
        assert 0 <= gap < 1e-3, (model_size, gap)
        inside.extend((true_opt >= rec.optimum["q05"] - 1e-9) & (true_opt <= rec.optimum["q95"] + 1e-9))
    assert np.mean(inside) > 0.5, inside
