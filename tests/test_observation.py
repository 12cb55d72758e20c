"""The observation model (bayesmix.observation): design rules, the discrepancy's Gaussian
process against its closed form, the grouped likelihood, and the posterior's use of it."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesmix import observation
from bayesmix.errors import UsageError
from bayesmix.observation import ObservationDesign, ObservationDraws
from bayesmix.scaling import Scaling
from bayesmix.simulate import default_truth, simulate_runs


def _design(points, features=("log_n",), lengthscale=1.0):
    points = np.asarray(points, dtype=float).reshape(-1, len(features))
    return ObservationDesign(discrepancy=True, features=features, scale_points=points,
                             centre=points.mean(axis=0), lengthscale=lengthscale)


def _draws(design, S=3, K=2, seed=0):
    rng = np.random.default_rng(seed)
    G, P = design.scale_points.shape
    return ObservationDraws(design, disc_slope=rng.normal(0, 0.02, (S, P, K)),
                            disc_amp=np.abs(rng.normal(0, 0.02, S)), disc_white=rng.normal(size=(S, G, K)))


def test_discrepancy_at_fitted_scales_is_the_fitted_value():
    design = _design([[-0.5], [0.5]])
    draws = _draws(design)
    n = np.exp(np.array([-0.5, 0.5, -0.5]))
    delta = draws.discrepancy(n, np.ones(3), seed=1)
    factor = design.smooth_factor()
    fitted = np.einsum("gh,shk->sgk", factor, draws.disc_white) * draws.disc_amp[:, None, None]
    fitted += np.einsum("gp,spk->sgk", design.scale_points - design.centre, draws.disc_slope)
    np.testing.assert_allclose(delta[:, :2], fitted, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(delta[:, 2], delta[:, 0])  # same scale, same draw


def test_discrepancy_away_from_fitted_scales_matches_the_gaussian_process_conditional():
    design = _design([[-0.5], [0.5], [1.0]])
    S, K = 1, 1
    white = np.array([[[0.4], [-1.1], [0.9]]])
    draws = ObservationDraws(design, disc_slope=np.zeros((S, 1, K)), disc_amp=np.array([0.03]), disc_white=white)
    x_new = np.array([[2.0]])
    many = np.stack([draws.discrepancy(np.exp(x_new[:, 0]), np.ones(1), seed=s)[0, 0, 0] for s in range(4000)])
    # Closed form: the GP kriged from the smooth part's values at the fitted scales (the
    # GP's values there less the line through them, built here by a polynomial fit), plus
    # the bend beyond them: a slope change ~ N(0, (amp / lengthscale)^2) times the
    # distance beyond the largest fitted scale (1.0 here).
    k = observation.se_kernel
    X = design.scale_points
    K_gg = k(X, X, 1.0) + observation.KERNEL_JITTER * np.eye(3)
    g = design.kernel_factor() @ white[0, :, 0]
    smooth = g - np.polyval(np.polyfit(X[:, 0], g, 1), X[:, 0])
    assert np.abs(smooth).max() > 0.05  # a bend that the kriging carries to the new scale
    k_ng = k(x_new, X, 1.0)
    mean = 0.03 * (k_ng @ np.linalg.solve(K_gg, smooth))[0]
    var = 0.03**2 * ((k(x_new, x_new, 1.0) - k_ng @ np.linalg.solve(K_gg, k_ng.T))[0, 0] + 1.0**2)
    # 4000 draws: the mean within 4 standard errors, the sd within 5% (its sampling sd is ~1.1%).
    assert abs(many.mean() - mean) < 4 * np.sqrt(var / len(many))
    assert abs(many.std() / np.sqrt(var) - 1) < 0.05


@pytest.mark.parametrize("region", ["all", "outside"])
def test_discrepancy_far_from_the_fitted_scales_reverts_to_the_linear_part_and_widens_with_distance(region):
    """The smooth part does not extrapolate a bend among the fitted scales into a slope:
    many length scales away its mean is 0 and its sd the amplitude; fitted slopes may bend
    beyond the fitted scales (sd amp / lengthscale per e-fold), slopes from the prior
    already carry that (no bend)."""
    design = _design([[-0.5], [0.0], [0.5]])
    design = ObservationDesign(**{**design.__dict__, "slope_region": (region,)})
    white = np.array([[[2.0], [-2.0], [2.0]]])
    draws = ObservationDraws(design, disc_slope=np.zeros((1, 1, 1)), disc_amp=np.array([0.03]), disc_white=white)
    for x in (4.0, 8.0):
        far = np.stack([draws.discrepancy(np.exp([x]), np.ones(1), seed=s)[0, 0, 0] for s in range(4000)])
        sd = 0.03 * np.sqrt(1.0 + ((x - 0.5) ** 2 if region == "all" else 0.0))
        assert abs(far.mean()) < 4 * sd / np.sqrt(len(far))
        assert abs(far.std() / sd - 1) < 0.05


@pytest.mark.parametrize("region", ["all", "outside"])
def test_a_fitted_slope_drifts_beyond_the_fitted_scales_in_proportion_to_itself(region):
    """Closed form of the drift alone (amplitude 0, so no smooth part and no constant
    change): at ``b`` e-folds beyond the fitted range the discrepancy is the slope's line,
    ``s (x - centre)``, with sd ``SLOPE_DRIFT |s| b^2 / 2`` (independent per domain); none
    inside the range, and none for slopes that act outside only (drawn from their prior)."""
    from bayesmix.observation.draws import SLOPE_DRIFT

    design = _design([[-0.5], [0.0], [0.5]])
    design = ObservationDesign(**{**design.__dict__, "slope_region": (region,)})
    S, slopes = 4000, np.array([-0.12, 0.05])
    draws = ObservationDraws(design, disc_slope=np.broadcast_to(slopes, (S, 1, 2)).copy(),
                             disc_amp=np.zeros(S), disc_white=np.zeros((S, 3, 2)))
    x = np.array([0.25, 1.5, 2.5])
    delta = draws.discrepancy(np.exp(x), np.ones(3), seed=0)
    line = (x[:, None] if region == "all" else np.maximum(x - 0.5, 0.0)[:, None]) * slopes
    np.testing.assert_allclose(delta[:, 0], np.broadcast_to(line[0], (S, 2)), atol=1e-12)  # inside
    for i, b in ((1, 1.0), (2, 2.0)):
        sd = SLOPE_DRIFT * np.abs(slopes) * b**2 / 2 if region == "all" else np.zeros(2)
        # 4000 draws: means within 4 standard errors, sds within 5% (sampling sd ~1.1%).
        assert np.all(np.abs(delta[:, i].mean(0) - line[i]) <= 4 * sd / np.sqrt(S) + 1e-12)
        if region == "all":
            assert np.all(np.abs(delta[:, i].std(0) / sd - 1) < 0.05)
        else:
            assert np.all(delta[:, i].std(0) < 1e-12)
    if region == "all":
        assert abs(np.corrcoef(delta[:, 2].T)[0, 1]) < 0.1  # domains drift independently


def test_discrepancy_moments_are_what_discrepancy_draws_from():
    """Per posterior draw, the mean and variance of 4000 draws of ``discrepancy`` (seeds
    0-3999) at a fitted scale, one inside the range and two beyond it match
    ``discrepancy_moments``: means within 4 standard errors, variances within 10% (the
    sampling sd of a variance from 4000 Normal draws is 2.2%); 0 variance at the fitted scale."""
    design = _design([[-0.5], [0.0], [0.5]])
    rng = np.random.default_rng(4)
    S, K = 3, 2
    draws = ObservationDraws(design, disc_slope=rng.normal(0, 0.1, (S, 1, K)),
                             disc_amp=np.array([0.01, 0.03, 0.02]), disc_white=rng.normal(size=(S, 3, K)))
    x = np.array([0.5, 0.25, 1.5, 3.0])
    many = np.stack([draws.discrepancy(np.exp(x), np.ones(4), seed=s) for s in range(4000)])
    mean, var = draws.discrepancy_moments(np.exp(x), np.ones(4))
    assert np.all(var[:, 0] == 0) and np.all(var[:, 1:] > 0)
    np.testing.assert_allclose(many[:, :, 0], np.broadcast_to(mean[:, 0], many[:, :, 0].shape))
    assert np.all(np.abs(many.mean(0)[:, 1:] - mean[:, 1:]) < 4 * np.sqrt(var[:, 1:] / 4000))
    assert np.all(np.abs(many.var(0)[:, 1:] / var[:, 1:] - 1) < 0.10)


def test_discrepancy_spread_grows_with_distance_from_the_fitted_scales():
    design = _design([[-0.5], [0.5]])
    draws = _draws(design, S=400, K=1)
    spreads = [draws.discrepancy(np.exp([x]), np.ones(1), seed=0)[:, 0, 0].std() for x in (0.5, 1.0, 1.5, 2.5)]
    assert np.all(np.diff(spreads) > 0)


def test_a_design_with_an_unpaired_scale_feature_gets_slopes_from_the_prior_and_no_mixture_effect():
    """Pile 4's shape: the small size runs one set of mixtures at two token counts, the
    larger size another set: tokens are paired, model size is not."""
    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=0)
    every, _ = simulate_runs(truth, n_mixtures=8, model_sizes=[1e8, 3e8], tokens=[2e9, 4e9], seed=0)
    keys = observation.mixture_keys(every.weights)
    first = np.isin(keys, pd.unique(keys)[:4])
    disjoint = every.select(first == (np.asarray(every.model_size) == 1e8))
    design = ObservationDesign.from_table(disjoint, Scaling.from_table(disjoint))
    keys = observation.mixture_keys(disjoint.weights)
    features = observation.scale_features(disjoint.model_size, disjoint.tokens, ("log_n", "log_d"))
    assert observation.paired_features(keys, features) == (False, True)
    assert design.features == ("log_n", "log_d") and design.slope_region == ("outside", "outside")
    assert design.discrepancy and not design.mixture_effect
    grid = ObservationDesign.from_table(every, Scaling.from_table(every))
    assert grid.slope_region == ("all", "all") and grid.mixture_effect
    forced = ObservationDesign.from_table(disjoint, Scaling.from_table(disjoint), slope_region="all",
                                          mixture_effect="on")
    assert forced.slope_region == ("all", "all") and forced.mixture_effect


def test_slopes_act_outside_the_fitted_scales_along_a_laws_own_trend():
    """A law whose log-mean has a free linear trend along a feature (the linear law's
    ``w_n log n + w_d log d``) does not also get fitted discrepancy slopes there: by
    default they act beyond the fitted scales only, along that feature alone; an
    explicit region is kept."""
    from bayesmix.inference import build_model
    from bayesmix.laws import get_law

    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=0)
    grid, _ = simulate_runs(truth, n_mixtures=8, model_sizes=[1e8, 3e8], tokens=[2e9, 4e9], seed=0)
    scaling = Scaling.from_table(grid)
    tokens_trend = types.SimpleNamespace(log_linear_trends=("log_d",))  # a law with a trend in tokens only
    assert ObservationDesign.from_table(grid, scaling, law=tokens_trend).slope_region == ("all", "outside")
    assert ObservationDesign.from_table(grid, scaling, law=get_law("linear"),
                                        slope_region="all").slope_region == ("all", "all")
    assert get_law("linear").log_linear_trends == ("log_n", "log_d")
    assert ObservationDesign.from_table(grid, scaling, law=get_law("linear")).slope_region == ("outside", "outside")
    assert ObservationDesign.from_table(grid, scaling, law=get_law("capacity_noise")).slope_region == ("all", "all")
    model, _ = build_model(get_law("linear"), grid)
    assert "disc_slope_z" in model.named_vars and "disc_centred_points" not in model.named_vars
    model, _ = build_model(get_law("chinchilla_domain"), grid)
    assert "disc_centred_points" in model.named_vars


def test_design_rules_on_tables():
    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=0)
    one_scale, _ = simulate_runs(truth, n_mixtures=8, model_sizes=[1e8], tokens=[2e9], seed=0)
    design = ObservationDesign.from_table(one_scale, Scaling.from_table(one_scale))
    assert not design.discrepancy and not design.mixture_effect
    assert not design.run_effect  # one row per run: no run offset
    two, _ = simulate_runs(truth, n_mixtures=8, model_sizes=[1e8, 3e8], tokens=[2e9], seed=0)
    design = ObservationDesign.from_table(two, Scaling.from_table(two))
    # Tokens constant while the size varies: log_d is a feature constant at the fitted
    # scales, its slopes acting beyond them only.
    assert design.discrepancy and design.features == ("log_n", "log_d") and len(design.scale_points) == 2
    assert design.slope_region == ("all", "outside") and np.ptp(design.scale_points[:, 1]) == 0
    _, d_scaled = Scaling.from_table(two).scale_inputs(np.array([1e8]), np.array([2e9]))
    np.testing.assert_allclose(design.scale_points[:, 1], np.log(d_scaled[0, 0]), atol=1e-9)
    # Tokens that move with the size are no feature of their own.
    ratio, _ = simulate_runs(truth, n_mixtures=8, model_sizes=[1e8, 3e8], tokens_per_param=20.0, seed=0)
    assert ObservationDesign.from_table(ratio, Scaling.from_table(ratio)).features == ("log_n",)
    off = ObservationDesign.from_table(two, Scaling.from_table(two), discrepancy="off")
    assert not off.discrepancy and not off.mixture_effect
    with pytest.raises(UsageError, match="discrepancy"):
        ObservationDesign.from_table(one_scale, Scaling.from_table(one_scale), discrepancy="on")
    law_only = ObservationDesign.from_dict(off.to_dict())
    assert not law_only.discrepancy and law_only.scale_points.size == 0 and law_only.run_effect == off.run_effect
    restored = ObservationDesign.from_dict(design.to_dict())
    np.testing.assert_allclose(restored.scale_points, design.scale_points)
    assert restored.mixtures == design.mixtures and restored.features == design.features


def test_grouped_loglik_matches_multivariate_normal_and_quadrature():
    rng = np.random.default_rng(3)
    S, C = 4, 7
    y = rng.normal(size=C)
    loc = rng.normal(size=(S, C))
    scale = rng.uniform(0.05, 0.3, size=(S, C))
    groups = np.array([0, 0, 0, 1, 1, 2, 2])
    run_sd = rng.uniform(0.05, 0.2, size=S)
    closed = observation.grouped_loglik(y, loc, scale, groups, 3, run_sd=run_sd)
    quad = observation.grouped_loglik(y, loc, scale, groups, 3, run_sd=run_sd, method="quadrature")
    for s in range(S):
        for g in range(3):
            at = groups == g
            cov = np.diag(scale[s, at] ** 2) + run_sd[s] ** 2
            exact = stats.multivariate_normal.logpdf(y[at], loc[s, at], cov)
            assert closed[s, g] == pytest.approx(exact, rel=1e-10)
            assert quad[s, g] == pytest.approx(exact, rel=1e-8)


def test_add_noise_adds_a_new_mixtures_effect_only_to_new_mixtures():
    S, R, K = 4000, 2, 1
    mu = np.ones((S, R, K))
    out = observation.add_noise(mu, sigma=np.full((S, K), 0.01), mix_sd=np.full((S, K), 0.1),
                                new_mixture=np.array([True, False]), seed=0)
    sd = np.log(out).std(axis=0)[:, 0]
    # sd 0.1005 for the new mixture, 0.01 for the known one (3% sampling tolerance at 4000 draws).
    assert sd[0] == pytest.approx(np.hypot(0.1, 0.01), rel=0.05)
    assert sd[1] == pytest.approx(0.01, rel=0.05)


def test_cell_sd_adds_a_new_mixtures_effect_only_to_mixtures_the_fit_did_not_see():
    seen = np.array([[0.5, 0.5]])
    design = ObservationDesign(mixture_effect=True, mixtures=tuple(observation.mixture_keys(seen)))
    draws = ObservationDraws(design, mix_effect=np.zeros((2, 1, 2)), mix_sd=np.array([[0.3, 0.4], [0.0, 0.1]]))
    sigma = np.array([[0.4, 0.3], [0.2, 0.0]])
    sd = observation.cell_sd(sigma, draws, np.array([[0.5, 0.5], [0.2, 0.8]]))
    assert np.allclose(sd[:, 0], sigma)
    assert np.allclose(sd[:, 1], np.hypot(sigma, draws.mix_sd))
    assert np.allclose(observation.cell_sd(sigma, draws)[:, 0], [[0.5, 0.5], [0.2, 0.1]])
    assert np.allclose(observation.cell_sd(sigma, None)[:, 0], sigma)


def test_posterior_refuses_model_sizes_at_or_below_the_capacity_floor():
    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=0)
    post = truth.posterior
    H = float(np.max(post.draws["H"])) * post.scaling.n_ref
    h = np.full(3, 1 / 3)
    post.expected_loss(h, 2 * H, 1e9)  # above the floor: fine
    with pytest.raises(UsageError, match="not defined"):
        post.expected_loss(h, 0.5 * H, 1e9)


def test_smooth_part_at_fitted_scales_has_no_level_or_linear_trend():
    two = _design([[-0.5], [0.5]])
    np.testing.assert_allclose(two.smooth_factor(), 0.0, atol=1e-12)  # two scales: only a line
    three = _design([[-1.0, 0.0], [0.0, 0.3], [1.0, -0.2], [0.4, 0.9]], features=("log_n", "log_d"))
    factor = three.smooth_factor()
    assert np.linalg.matrix_rank(factor, tol=1e-8) == 1  # 4 scales less a plane in 2-D
    X = three.linear_design(three.scale_points)
    np.testing.assert_allclose(X.T @ factor, 0.0, atol=1e-12)


def test_slopes_outside_the_fitted_scales_act_only_beyond_their_range():
    inside = _design([[-0.5], [0.5]])
    outside = ObservationDesign(**{**inside.__dict__, "slope_region": ("outside",)})
    points = np.array([[0.0], [0.5], [1.5], [-1.0]])
    np.testing.assert_allclose(outside.slope_distance(points), [[0.0], [0.0], [1.0], [-0.5]])
    np.testing.assert_allclose(inside.slope_distance(points), points - inside.centre)
    slope = np.array([[[0.03]]])
    draws = ObservationDraws(outside, disc_slope=slope, disc_amp=np.zeros(1), disc_white=np.zeros((1, 2, 1)))
    delta = draws.discrepancy(np.exp(points[:, 0]), np.ones(4))[0, :, 0]
    np.testing.assert_allclose(delta, [0.0, 0.0, 0.03, -0.015], atol=1e-12)
    assert ObservationDesign.from_dict(outside.to_dict()).slope_region == ("outside",)
    saved_before = {k: v for k, v in inside.to_dict().items() if k != "slope_region"}
    assert ObservationDesign.from_dict(saved_before).slope_region == ("all",)  # as it was fitted
    assert ObservationDesign.from_dict({**saved_before, "slope_region": "outside"}).slope_region == ("outside",)
    mixed = _design([[-0.5, 0.0], [0.5, 1.0]], features=("log_n", "log_d"))
    mixed = ObservationDesign(**{**mixed.__dict__, "slope_region": ("outside", "all")})
    np.testing.assert_allclose(mixed.slope_distance(np.array([[1.5, 0.25]])), [[1.0, 0.25 - 0.5]])
    with pytest.raises(UsageError, match="slope_region"):
        truth = default_truth("capacity_noise", ("a", "b"), seed=0)
        table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=[1e8, 3e8], tokens=[2e9], seed=0)
        ObservationDesign.from_table(table, Scaling.from_table(table), slope_region="inside")


@pytest.mark.parametrize("region, in_likelihood", [("outside", False), ("all", True)])
def test_slopes_enter_the_likelihood_only_where_they_act_at_the_fitted_scales(region, in_likelihood):
    from pytensor.graph.traversal import ancestors

    from bayesmix.inference import build_model
    from bayesmix.laws import get_law

    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=0)
    table, _ = simulate_runs(truth, n_mixtures=6, model_sizes=[1e8, 3e8, 9e8], tokens=[2e9], seed=0)
    design = ObservationDesign.from_table(table, Scaling.from_table(table), slope_region=region)
    model, _ = build_model(get_law("capacity_noise"), table, design=design)
    names = {v.name for v in ancestors(model["log_loss"].owner.inputs)}  # what the likelihood reads
    assert bool({"disc_slope", "disc_slope_z"} & names) is in_likelihood
    assert "disc_white" in names  # the smooth part is fitted either way
    # Three slopes (3 domains x log_n) are too few to pin their spread: non-centred either way.
    free = {rv.name for rv in model.free_RVs}
    assert "disc_slope_z" in free and "disc_slope" not in free


@pytest.mark.parametrize("domains, region, centred", [(7, "all", True), (6, "all", False), (7, "outside", False)])
def test_fitted_slopes_are_sampled_centred_where_enough_of_them_pin_their_spread(domains, region, centred):
    """Centred (``disc_slope`` free) with at least CENTRED_SLOPES_MIN = 7 fitted slopes
    (here domains x log_n); non-centred (``disc_slope_z`` free) with fewer, or where the
    slopes act beyond the fitted scales only. The standardised slopes are in the model
    either way, and a posterior reads the slopes from either form alike."""
    from bayesmix.inference import build_model
    from bayesmix.laws import get_law
    from bayesmix.observation.design import CENTRED_SLOPES_MIN

    assert CENTRED_SLOPES_MIN == 7  # the cases below sit on either side of it
    names = tuple(f"d{i}" for i in range(domains))
    truth = default_truth("capacity_noise", names, seed=0)
    table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=[1e8, 3e8, 9e8], tokens_per_param=20.0, seed=0)
    design = ObservationDesign.from_table(table, Scaling.from_table(table), slope_region=region)
    assert design.features == ("log_n",) and list(design.centred_features(domains)) == [centred]
    model, _ = build_model(get_law("capacity_noise"), table, design=design)
    free = {rv.name for rv in model.free_RVs}
    assert ("disc_slope" in free) is centred and ("disc_slope_z" in free) is not centred
    assert "disc_slope_z" in model.named_vars


def test_the_centred_slopes_jacobian_gives_the_non_centred_models_log_density(monkeypatch):
    """The model with centred slopes records ``centred_log_jacobian`` = J log sd; added to
    its log density it is the log density of the same point in the non-centred model
    (``disc_slope_z = (disc_slope - mean) / sd``), exactly: what chains are compared on."""
    from bayesmix.inference import build_model
    from bayesmix.laws import get_law

    names = tuple(f"d{i}" for i in range(7))
    truth = default_truth("capacity_noise", names, seed=0)
    table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=[1e8, 3e8, 9e8], tokens_per_param=20.0, seed=0)
    design = ObservationDesign.from_table(table, Scaling.from_table(table))
    centred_model, _ = build_model(get_law("capacity_noise"), table, design=design)
    assert "disc_slope" in {rv.name for rv in centred_model.free_RVs}
    monkeypatch.setattr(ObservationDesign, "centred_features", lambda self, n: np.zeros(len(self.features), bool))
    plain_model, _ = build_model(get_law("capacity_noise"), table, design=design)
    assert "disc_slope_z" in {rv.name for rv in plain_model.free_RVs}
    assert observation.CENTRED_LOG_JACOBIAN not in plain_model.named_vars

    rng = np.random.default_rng(3)
    point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in centred_model.initial_point().items()}
    sd = np.exp(point["disc_slope_sd_log__"])
    slope_mean = point["disc_slope_mean"]
    plain = {k: v for k, v in point.items() if k != "disc_slope"}
    plain["disc_slope_z"] = (point["disc_slope"] - slope_mean[:, None]) / sd
    recorded = centred_model.replace_rvs_by_values([centred_model[observation.CENTRED_LOG_JACOBIAN]])
    jacobian = centred_model.compile_fn(recorded, inputs=[centred_model.rvs_to_values[centred_model["disc_slope_sd"]]],
                                        point_fn=True)({"disc_slope_sd_log__": point["disc_slope_sd_log__"]})[0]
    assert float(jacobian) == pytest.approx(7 * np.log(sd))
    np.testing.assert_allclose(float(centred_model.compile_logp()(point)) + float(jacobian),
                               float(plain_model.compile_logp()(plain)), rtol=1e-10)


def test_slopes_through_two_fitted_model_sizes_are_sampled_non_centred_however_many():
    """Through two fitted values of a feature a slope is a level step between them that
    the law's scale terms make as well, so its spread can reach 0: non-centred even with
    far more than CENTRED_SLOPES_MIN slopes; a third model size makes them centred."""
    from bayesmix.inference import build_model
    from bayesmix.laws import get_law
    from bayesmix.observation.design import CENTRED_SLOPES_MIN, CENTRED_SLOPES_MIN_VALUES

    assert CENTRED_SLOPES_MIN_VALUES == 3
    names = tuple(f"d{i}" for i in range(2 * CENTRED_SLOPES_MIN))
    truth = default_truth("capacity_noise", names, seed=0)
    for sizes, centred in (([1e8, 3e8], False), ([1e8, 3e8, 9e8], True)):
        table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=sizes, tokens_per_param=20.0, seed=0)
        design = ObservationDesign.from_table(table, Scaling.from_table(table))
        assert design.features == ("log_n",) and design.fitted_slopes.all()  # every mixture at every size
        assert list(design.centred_features(len(names))) == [centred]
        model, _ = build_model(get_law("capacity_noise"), table, design=design)
        assert ("disc_slope" in {rv.name for rv in model.free_RVs}) is centred


def test_the_spread_of_slopes_through_two_fitted_values_is_held_at_its_prior_root_mean_square():
    """Through two model sizes the slopes' spread across domains is a constant (no
    ``disc_slope_sd`` in the model), the prior's root mean square, and the slopes are
    recorded as ``disc_slope``; through three it is learned, also where another fitted
    feature (two token counts) goes through two values only. The model's slopes are
    ``mean + rms * z`` at any point, and the draws read them without a spread."""
    from bayesmix.inference import build_model
    from bayesmix.laws import get_law
    from bayesmix.observation import OBSERVATION_PRIORS, ObservationDraws

    names = ("a", "b", "c")
    truth = default_truth("capacity_noise", names, seed=0)
    rms = OBSERVATION_PRIORS["disc_slope_sd"]["sigma"]  # HalfNormal: sqrt(E[sd^2]) is its sigma
    for sizes, tokens, learned in (([1e8, 3e8], None, False), ([1e8, 3e8, 9e8], None, True),
                                   ([1e8, 3e8, 9e8], [2e9, 4e9], True)):
        if tokens is None:
            table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=sizes, tokens_per_param=20.0, seed=0)
        else:
            table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=sizes, tokens=tokens, seed=0)
        design = ObservationDesign.from_table(table, Scaling.from_table(table))
        assert design.fitted_slopes.all() and design.features == (("log_n",) if tokens is None else ("log_n", "log_d"))
        assert design.learns_slope_spread is learned
        model, _ = build_model(get_law("capacity_noise"), table, design=design)
        assert ("disc_slope_sd" in model.named_vars) is learned
        if learned:
            continue
        assert "disc_slope" in model.named_vars and "disc_slope" not in {rv.name for rv in model.free_RVs}
        point = {"disc_slope_mean": np.array([-0.03]), "disc_slope_z": np.array([[1.0, -2.0, 0.5]])}
        slopes = model.compile_fn(model["disc_slope"], inputs=[model[k] for k in point], on_unused_input="ignore")(point)
        np.testing.assert_allclose(slopes, -0.03 + rms * np.array([[1.0, -2.0, 0.5]]))
        values = {"disc_slope": slopes[None], "disc_amp": np.array([0.01]),
                  "disc_white": np.zeros((1, len(design.scale_points), 3)),
                  "mix_sd": np.full((1, 3), 0.01), "mix_z": np.zeros((1, len(design.mixtures), 3))}
        draws = ObservationDraws.from_values(design, values)
        np.testing.assert_allclose(draws.disc_slope[0], slopes)


def test_a_feature_constant_at_the_fitted_scales_gets_prior_slopes_kept_out_of_the_likelihood():
    """One model size at three token counts (a checkpoint table): log_n is constant at the
    fitted scales, a feature whose slopes act beyond that size only. With 8 domains the
    log_d slopes are centred; log_n's are sampled non-centred beside them, out of the
    likelihood, and ``disc_slope`` is the two in feature order."""
    from pytensor.graph.traversal import ancestors

    from bayesmix.inference import build_model
    from bayesmix.laws import get_law

    names = tuple(f"d{i}" for i in range(8))
    truth = default_truth("capacity_noise", names, seed=0)
    table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=[3e8], tokens=[2e9, 4e9, 8e9], seed=0)
    design = ObservationDesign.from_table(table, Scaling.from_table(table))
    assert design.features == ("log_n", "log_d") and design.slope_region == ("outside", "all")
    assert list(design.centred_features(len(names))) == [False, True] and design.mixture_effect  # log_d pairs every mixture
    assert "slopes: log_n from the prior beyond the fitted scales, log_d fitted" in "\n".join(design.describe())
    model, _ = build_model(get_law("capacity_noise"), table, design=design)
    free = {rv.name for rv in model.free_RVs}
    assert {"disc_slope_centred", "disc_slope_noncentred_z"} <= free and not {"disc_slope", "disc_slope_z"} & free
    reads = {v.name for v in ancestors(model["log_loss"].owner.inputs)}
    assert "disc_slope_centred" in reads and "disc_slope_noncentred_z" not in reads
    rng = np.random.default_rng(0)
    point = model.initial_point()
    point.update({"disc_slope_centred": rng.normal(size=(1, 8)), "disc_slope_noncentred_z": rng.normal(size=(1, 8)),
                  "disc_slope_mean": np.array([0.01, -0.02]), "disc_slope_sd_log__": np.log(0.03)})
    slope = model.compile_fn(model.replace_rvs_by_values([model["disc_slope"]])[0], inputs=model.value_vars,
                             on_unused_input="ignore")(point)
    np.testing.assert_allclose(slope[1], point["disc_slope_centred"][0])
    np.testing.assert_allclose(slope[0], 0.01 + 0.03 * point["disc_slope_noncentred_z"][0])


def test_slopes_of_a_feature_through_three_values_are_centred_beside_non_centred_ones_through_two():
    """Three model sizes at two token counts over 7 domains (SlimPajama fitted <= 680M has
    this shape): the log_n slopes are pinned and sampled centred, the log_d slopes, a step
    between two token counts, non-centred beside them; both are fitted (the likelihood
    reads both), and ``disc_slope`` is ``[centred; mean + sd * z]`` in feature order."""
    from pytensor.graph.traversal import ancestors

    from bayesmix.inference import build_model
    from bayesmix.laws import get_law

    names = tuple(f"d{i}" for i in range(7))
    truth = default_truth("capacity_noise", names, seed=0)
    table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=[1e8, 3e8, 9e8], tokens=[2e9, 4e9], seed=0)
    design = ObservationDesign.from_table(table, Scaling.from_table(table))
    assert design.features == ("log_n", "log_d") and design.fitted_slopes.all() and design.learns_slope_spread
    assert list(design.centred_features(len(names))) == [True, False]
    model, _ = build_model(get_law("capacity_noise"), table, design=design)
    free = {rv.name for rv in model.free_RVs}
    assert {"disc_slope_centred", "disc_slope_noncentred_z", "disc_slope_sd"} <= free
    assert not {"disc_slope", "disc_slope_z"} & free
    reads = {v.name for v in ancestors(model["log_loss"].owner.inputs)}
    assert {"disc_slope_centred", "disc_slope_noncentred_z"} <= reads
    rng = np.random.default_rng(1)
    point = model.initial_point()
    point.update({"disc_slope_centred": rng.normal(size=(1, 7)), "disc_slope_noncentred_z": rng.normal(size=(1, 7)),
                  "disc_slope_mean": np.array([-0.02, 0.01]), "disc_slope_sd_log__": np.log(0.015)})
    slope, z = model.compile_fn(model.replace_rvs_by_values([model["disc_slope"], model["disc_slope_z"]]),
                                inputs=model.value_vars, on_unused_input="ignore")(point)
    np.testing.assert_allclose(slope[0], point["disc_slope_centred"][0])
    np.testing.assert_allclose(slope[1], 0.01 + 0.015 * point["disc_slope_noncentred_z"][0])
    np.testing.assert_allclose(z[1], point["disc_slope_noncentred_z"][0])


def test_a_constant_feature_changes_nothing_at_its_fitted_value_and_carries_its_slopes_beyond_it():
    """Two model sizes at one token count: the design with log_d constant predicts as the
    one over log_n alone at the fitted tokens, and at 4x the tokens adds its log_d slopes
    times log 4 and the kernel's spread along log_d, where the design over log_n alone
    (as before) would have answered the fitted value with no spread at all."""
    truth = default_truth("capacity_noise", ("a", "b"), seed=0)
    table, _ = simulate_runs(truth, n_mixtures=6, model_sizes=[1e8, 3e8], tokens=[2e9], seed=0)
    scaling = Scaling.from_table(table)
    design = ObservationDesign.from_table(table, scaling)
    assert design.features == ("log_n", "log_d")
    alone = dataclasses.replace(design, features=("log_n",), scale_points=design.scale_points[:, :1],
                                centre=design.centre[:1], slope_region=design.slope_region[:1])
    n, d = scaling.scale_inputs(np.array([1e8, 6e8, 1e8]), np.array([2e9, 2e9, 8e9]))
    n, d = n[:, 0], d[:, 0]
    both = np.log(np.column_stack([n, d]))
    for i in (0, 1):  # the fitted tokens, at a fitted and a new size: the same kriging
        for got, want in zip(ObservationDraws(design, disc_white=np.ones((1, 2, 2)))._kriged(both[[i]])[:2],
                             ObservationDraws(alone, disc_white=np.ones((1, 2, 2)))._kriged(both[[i], :1])[:2]):
            np.testing.assert_allclose(got, want, atol=1e-12)
    draws = _draws(design, S=4)
    draws.disc_amp = np.zeros(4)  # the linear part alone
    delta = draws.discrepancy(n, d, seed=0)
    np.testing.assert_allclose(delta[:, 2] - delta[:, 0], draws.disc_slope[:, 1] * np.log(4.0), atol=1e-12)
    old = ObservationDraws(alone, disc_slope=draws.disc_slope[:, :1], disc_amp=draws.disc_amp,
                           disc_white=draws.disc_white).discrepancy(n, d, seed=0)
    np.testing.assert_allclose(old[:, 2], old[:, 0])
    _, cov, _, _ = ObservationDraws(design, disc_white=np.ones((1, 2, 2)))._kriged(both[[0, 2]])
    assert cov[0, 0] < 1e-5 < 0.5 < cov[1, 1]  # log 4 = 1.4 length scales from the fitted tokens


@pytest.mark.slow
def test_a_fit_with_discrepancy_saves_loads_and_widens_its_intervals_beyond_the_fitted_scales(tmp_path):
    """A NUTS fit on three model sizes keeps its observation model through save and load,
    and its 90% interval at 4x the largest fitted size is wider than at a fitted size;
    its chains start at distinct points with finite density."""
    from bayesmix.inference import Fit, build_model, fit_law
    from bayesmix.nutpie_backend import compiled_nutpie_model, dispersed_starts
    from bayesmix.laws import get_law

    truth = default_truth("chinchilla_domain", ("a", "b", "c"), seed=1, noise_sd=0.01)
    table, _ = simulate_runs(truth, n_mixtures=8, model_sizes=(5e7, 1e8, 2e8), tokens_per_param=20.0, seed=1)
    fit = fit_law(table, "chinchilla_domain", draws=200, tune=200, chains=2, seed=0, extend_draws=1, progressbar=False)
    assert fit.attrs["observation"]["discrepancy"] and fit.attrs["observation"]["mixture_effect"]
    path = tmp_path / "fit.nc"
    fit.save(path)
    loaded = Fit.load(path).posterior()
    assert loaded.observation is not None and loaded.observation.disc_slope.shape == (400, 1, 3)
    # Integrated out of the sampled model, the mixture effects are drawn afterwards: one per draw.
    assert loaded.observation.mix_effect.shape == (400, 8, 3) and np.all(np.isfinite(loaded.observation.mix_effect))
    assert np.ptp(loaded.observation.mix_effect, axis=0).min() > 0
    h = np.full((1, 3), 1 / 3)
    inside = loaded.summarise(h, 2e8, 4e9)
    outside = loaded.summarise(h, 8e8, 1.6e10)
    width = lambda s: (s["q95"] - s["q05"]) / s["mean"]  # noqa: E731
    assert np.all(width(outside) > width(inside))

    law = get_law("chinchilla_domain")
    model, _ = build_model(law, table)
    compiled = compiled_nutpie_model(model)
    size = compiled.n_dim
    centre = np.concatenate([np.asarray(model.initial_point()[v.name], dtype=float).ravel()
                             for v in model.value_vars])
    started = dispersed_starts(compiled, centre, 0.1 * np.eye(size), seed=3)
    a, b, again = (started.initial_point_func(s) for s in (11, 12, 11))
    assert not np.allclose(a, b) and np.allclose(a, again)  # one start per chain, reproducible
    assert np.all(np.abs(a - centre) < 0.6)  # draws of N(centre, 0.1^2 I): 6 sd is far out


def test_integrated_mixture_effect_density_is_the_multivariate_normal():
    import pytensor.tensor as pt

    rng = np.random.default_rng(5)
    groups = np.array([0, 0, 0, 2, 2, 3, 1, 3, 3, 3])  # group 4 has no cells
    G, C = 5, len(groups)
    group_sigma, group_tau = rng.uniform(0.01, 0.05, G), rng.uniform(0.005, 0.08, G)
    residual = rng.normal(0.0, 0.05, C)
    value = observation.mixture_marginal_logp(pt.as_tensor(residual), pt.as_tensor(group_sigma[groups]),
                                              pt.as_tensor(group_sigma), pt.as_tensor(group_tau), groups).eval()
    exact = 0.0
    for g in range(G):
        at = groups == g
        if at.any():
            cov = group_sigma[g] ** 2 * np.eye(at.sum()) + group_tau[g] ** 2
            exact += stats.multivariate_normal.logpdf(residual[at], np.zeros(at.sum()), cov)
    assert value == pytest.approx(exact, rel=1e-10)


def test_mixture_blocks_join_mixtures_through_shared_scales_and_survive_saving():
    """Pile 4's shape: one set of mixtures run at the small size (two token counts), a
    disjoint set at the larger one: two blocks; one mixture run at both joins them."""
    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=0)
    every, _ = simulate_runs(truth, n_mixtures=7, model_sizes=[1e8, 3e8], tokens=[2e9, 4e9], seed=0)
    keys = observation.mixture_keys(every.weights)
    first = np.isin(keys, pd.unique(keys)[:3])
    small_rows = first & (np.asarray(every.model_size) == 1e8)
    table = every.select(small_rows | (~first & (np.asarray(every.model_size) == 3e8)
                                       & (np.asarray(every.tokens) == 4e9)))
    small = every.select(small_rows)
    large = table.select(np.asarray(table.model_size) == 3e8)
    design = ObservationDesign.from_table(table, Scaling.from_table(table), mixture_effect="on")
    assert design.mixture_effect and len(design.mixtures) == 7
    blocks = np.asarray(design.mixture_blocks)
    block_of = dict(zip(design.mixtures, blocks))
    small_blocks = {block_of[k] for k in observation.mixture_keys(small.weights)}
    large_blocks = {block_of[k] for k in observation.mixture_keys(large.weights)}
    assert len(small_blocks) == 1 and len(large_blocks) == 1 and small_blocks != large_blocks
    assert ObservationDesign.from_dict(design.to_dict()).mixture_blocks == design.mixture_blocks
    # Effects read from draws are centred in each block, per domain.
    rng = np.random.default_rng(0)
    values = {"mix_sd": np.abs(rng.normal(0, 0.02, (5, 3))), "mix_z": rng.normal(size=(5, 7, 3))}
    effect = ObservationDraws.from_values(dataclasses.replace(design, discrepancy=False), values).mix_effect
    for b in (0, 1):
        np.testing.assert_allclose(effect[:, blocks == b].sum(axis=1), 0.0, atol=1e-15)
    # ... and differ from the uncentred ones by one shift per block and domain.
    shift = effect - values["mix_sd"][:, None] * values["mix_z"]
    for b in (0, 1):
        np.testing.assert_allclose(np.ptp(shift[:, blocks == b], axis=1), 0.0, atol=1e-15)


def test_centred_mixture_effect_density_is_the_multivariate_normal():
    """Effects that sum to zero within blocks (prior ``tau^2 (I - 11'/M)``): the closed form
    against the multivariate normal of all a domain's cells, blocks of 3, 2 and 1 groups,
    one group without cells."""
    import pytensor.tensor as pt

    rng = np.random.default_rng(6)
    group_block = np.array([0, 0, 0, 3, 3, 5])
    sigma, tau = 0.02, 0.03
    groups = np.array([0, 0, 1, 1, 1, 3, 4, 4, 5, 5])      # group 2 (block 0) has no cells
    G, C = len(group_block), len(groups)
    residual = rng.normal(0.0, 0.05, C)
    value = observation.mixture_marginal_logp(pt.as_tensor(residual), pt.as_tensor(np.full(C, sigma)),
                                              pt.as_tensor(np.full(G, sigma)), pt.as_tensor(np.full(G, tau)),
                                              groups, group_block).eval()
    same = (group_block[:, None] == group_block[None, :]).astype(float)
    prior = tau**2 * (np.eye(G) - same / same.sum(axis=1, keepdims=True))
    Z = np.eye(G)[groups]
    exact = stats.multivariate_normal.logpdf(residual, np.zeros(C), sigma**2 * np.eye(C) + Z @ prior @ Z.T)
    assert value == pytest.approx(exact, rel=1e-10)
    plain = observation.mixture_marginal_logp(pt.as_tensor(residual), pt.as_tensor(np.full(C, sigma)),
                                              pt.as_tensor(np.full(G, sigma)), pt.as_tensor(np.full(G, tau)),
                                              groups).eval()
    assert abs(plain - value) > 0.1  # the centring matters here


def test_centred_mixture_effects_are_drawn_from_their_exact_conditional():
    """Effects centred in blocks (mixtures 0 and 2 share one, mixture 2 without rows;
    mixture 1 alone: its effect is 0): draws against Gaussian conditioning of the joint
    (effects, cells) by brute force, 5 standard errors."""
    seen = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])
    design = ObservationDesign(mixture_effect=True, mixtures=tuple(observation.mixture_keys(seen)),
                               mixture_blocks=(0, 1, 0))
    weights = seen[[0, 0, 1, 0, 1, 1]]
    rng = np.random.default_rng(3)
    S = 20000
    residual = np.broadcast_to(rng.normal(0.0, 0.03, (1, len(weights), 1)), (S, len(weights), 1)).copy()
    sigma, tau = 0.01, 0.03
    z = observation.conditional_mixture_effects(design, weights, residual, np.full((S, 1), sigma),
                                                np.full((S, 1), tau), seed=4)
    effect = z[:, :, 0] * tau
    mean_f, sd_f = observation.mixture_effect_conditional(design, weights, residual[:1], np.full((1, 1), sigma),
                                                          np.full((1, 1), tau))
    prior = tau**2 * (np.eye(3) - observation.block_average((0, 1, 0)))
    Z = np.eye(3)[design.mixture_index(weights)]
    cov_y = sigma**2 * np.eye(len(weights)) + Z @ prior @ Z.T
    gain = prior @ Z.T @ np.linalg.inv(cov_y)
    mean = gain @ residual[0, :, 0]
    cov = prior - gain @ Z @ prior
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    np.testing.assert_allclose(effect[:, 1], 0.0, atol=1e-15)
    np.testing.assert_allclose(effect[:, 0] + effect[:, 2], 0.0, atol=1e-15)
    np.testing.assert_allclose(mean_f[0, :, 0], mean, atol=1e-12)
    np.testing.assert_allclose(sd_f[0, :, 0], sd, atol=1e-9)
    for m in (0, 2):
        assert effect[:, m].mean() == pytest.approx(mean[m], abs=5 * sd[m] / np.sqrt(S))
        assert effect[:, m].std() == pytest.approx(sd[m], rel=5 / np.sqrt(2 * S))


def test_integrated_mixture_effects_are_drawn_from_their_exact_conditional():
    """Gaussian conditioning of the joint (effect, cells) by brute force against the draws:
    mean and sd per mixture and domain, Monte Carlo tolerance of 5 standard errors."""
    seen = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])
    design = ObservationDesign(mixture_effect=True, mixtures=tuple(observation.mixture_keys(seen)))
    weights = seen[[0, 0, 1, 0, 1, 1, 1]]  # mixture 2 has no rows: its prior
    rng = np.random.default_rng(2)
    S, K = 20000, 2
    residual = np.broadcast_to(rng.normal(0.0, 0.03, (1, len(weights), K)), (S, len(weights), K)).copy()
    residual[:, 1, 0] = np.nan  # a loss that was not logged
    sigma, tau = np.array([0.01, 0.02]), np.array([0.03, 0.005])
    z = observation.conditional_mixture_effects(design, weights, residual, np.tile(sigma, (S, 1)),
                                                np.tile(tau, (S, 1)), seed=4)
    effect = z * tau
    index = design.mixture_index(weights)
    for m in range(3):
        for k in range(K):
            at = (index == m) & np.isfinite(residual[0, :, k])
            n = at.sum()
            cov_y = sigma[k] ** 2 * np.eye(n) + tau[k] ** 2
            gain = np.full(n, tau[k] ** 2) @ np.linalg.inv(cov_y) if n else np.zeros(0)
            mean = gain @ residual[0, at, k] if n else 0.0
            sd = np.sqrt(tau[k] ** 2 - gain @ np.full(n, tau[k] ** 2)) if n else tau[k]
            assert effect[:, m, k].mean() == pytest.approx(mean, abs=5 * sd / np.sqrt(S))
            assert effect[:, m, k].std() == pytest.approx(sd, rel=5 / np.sqrt(2 * S))


@pytest.mark.parametrize("blocks,scale", [(1, "log"), (2, "log"), (1, "reducible")])
def test_the_model_with_mixture_effects_integrated_out_is_the_explicit_model_marginalised(monkeypatch, blocks,
                                                                                          scale):
    """log p(y, theta) = log p(y, theta, z) - log p(z | y, theta) for any z: the PyMC model
    that integrates the effects out and the explicit one that samples them (``mix_z``)
    agree exactly, with the conditional of z by brute force; uncentred (every mixture at
    every size: one block) and centred (two pairs of mixtures, each at two sizes of its
    own: two blocks). The residuals come from ``Posterior.expected_loss``, so this also
    holds the PyMC likelihood and the posterior's mean to one formula, with the
    discrepancy on the log-loss and on the reducible loss."""
    from bayesmix.inference import _untransformed_point, build_model, posterior_from_values
    from bayesmix.laws import get_law

    law = get_law("chinchilla_domain")
    truth = default_truth("chinchilla_domain", ("a", "b", "c"), seed=2, noise_sd=0.01)
    table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=(5e7, 1e8, 2e8, 4e8), tokens_per_param=20.0, seed=2)
    if blocks == 2:
        keys = observation.mixture_keys(table.weights)
        first = np.isin(keys, pd.unique(keys)[:2])
        table = table.select(first == (np.asarray(table.model_size) < 1.5e8))
    scaling = Scaling.from_table(table)
    design = ObservationDesign.from_table(table, scaling, law=law, discrepancy_scale=scale)
    marginal, _ = build_model(law, table, coordinates="natural", scaling=scaling, design=design)
    with monkeypatch.context() as patch:
        patch.setattr(ObservationDesign, "marginal_mixture_effect", property(lambda self: False))
        explicit, _ = build_model(law, table, coordinates="natural", scaling=scaling, design=design)
    assert "mix_z" not in {rv.name for rv in marginal.free_RVs} and "mix_z" in {rv.name for rv in explicit.free_RVs}

    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 0.1, np.shape(v)) for k, v in marginal.initial_point().items()}
    values = {k: np.asarray(v)[None] for k, v in _untransformed_point(marginal, point).items()}
    without = ObservationDesign(**{**design.__dict__, "mixture_effect": False, "mixtures": (), "mixture_blocks": ()})
    rest = posterior_from_values(law, values, scaling, table.domains, without)
    residual = np.log(table.losses)[None] - np.log(rest.expected_loss(table.weights, table.model_size, table.tokens))
    tau, sigma = values["mix_sd"][0], values["sigma"][0]
    assert len(set(design.mixture_blocks)) == (0 if blocks == 1 else 2)  # one block: uncentred
    centring = np.eye(len(design.mixtures))
    if design.mixture_blocks:
        centring = centring - observation.block_average(design.mixture_blocks)
    index = design.mixture_index(table.weights)

    def log_conditional(z):
        """log p(z | y, theta) by brute force: per domain, z ~ N(0, I) a priori and the
        cells ~ N(residual-free mean + tau P z, sigma^2)."""
        total = 0.0
        for k in range(z.shape[1]):
            at = np.isfinite(residual[0, :, k])
            design_matrix = tau[k] * np.eye(len(design.mixtures))[index[at]] @ centring
            precision = np.eye(len(design.mixtures)) + design_matrix.T @ design_matrix / sigma[k] ** 2
            cov = np.linalg.inv(precision)
            mean = cov @ design_matrix.T @ residual[0, at, k] / sigma[k] ** 2
            total += stats.multivariate_normal.logpdf(z[:, k], mean, cov)
        return total

    logp_marginal = marginal.compile_logp()(point)
    logp_explicit = explicit.compile_logp()
    for _ in range(3):
        z = rng.normal(size=(len(design.mixtures), len(table.domains)))
        assert logp_explicit({**point, "mix_z": z}) - log_conditional(z) == pytest.approx(logp_marginal, rel=1e-9)


def test_discrepancy_given_a_scale_is_distributed_as_one_joint_draw():
    """Drawing the discrepancy at a new scale conditional on the draw a decision uses at
    another (``discrepancy_given``) gives the same joint distribution as drawing both scales
    in one call, and keeps that other draw as it is."""
    design = _design([[-0.5], [0.5]])
    white = np.array([[[0.4], [-1.1]]])
    draws = ObservationDraws(design, disc_slope=np.array([[[0.01]]]), disc_amp=np.array([0.03]), disc_white=white)
    target, near = np.exp([1.5]), np.exp([1.1])
    t0 = draws.discrepancy(target, np.ones(1), seed=7)
    again = draws.discrepancy_given(target, np.ones(1), target[0], 1.0, seed=3, given_seed=7)
    # Its own scale: the given draw, up to the kernel's jitter (variance 1e-6 added to the
    # conditional, which is 0 there, and to the given scale's own): 5 sd of that.
    jitter = np.sqrt(2 * observation.KERNEL_JITTER) * 0.03
    assert abs(again[0, 0, 0] - t0[0, 0, 0]) < 5 * jitter
    given = [draws.discrepancy_given(near, np.ones(1), target[0], 1.0, seed=10_000 + s, given_seed=s)[0, 0, 0]
             for s in range(4000)]
    pairs = np.column_stack([[draws.discrepancy(target, np.ones(1), seed=s)[0, 0, 0] for s in range(4000)], given])
    joint = np.array([draws.discrepancy(np.r_[target, near], np.ones(2), seed=s)[0, :, 0] for s in range(4000)])
    # 4000 draws each: means within 4 standard errors, sds and the correlation within 0.05.
    se = joint.std(0) / np.sqrt(4000)
    assert np.all(np.abs(pairs.mean(0) - joint.mean(0)) < 4 * np.sqrt(2) * se)
    assert np.all(np.abs(pairs.std(0) / joint.std(0) - 1) < 0.05)
    r_pairs, r_joint = np.corrcoef(pairs.T)[0, 1], np.corrcoef(joint.T)[0, 1]
    assert r_joint > 0.5 and abs(r_pairs - r_joint) < 0.05


def test_the_discrepancy_on_the_reducible_loss_is_one_formula_for_numpy_and_pytensor():
    """``log(F + (mu - F) exp(delta))`` in both backends; ``delta = 0`` leaves the mean;
    without a floor it is the log-loss offset ``log mu + delta``."""
    import pytensor.tensor as pt

    rng = np.random.default_rng(3)
    mu = rng.uniform(2.0, 4.0, (5, 3))
    floor = rng.uniform(0.5, 1.9, (1, 3))
    delta = rng.normal(0.0, 0.3, (5, 3))
    exact = np.log(floor + (mu - floor) * np.exp(delta))
    numeric = observation.discrepant_log_mean(np.log(mu), delta, np.log(floor))
    symbolic = observation.discrepant_log_mean(pt.as_tensor(np.log(mu)), pt.as_tensor(delta),
                                               pt.as_tensor(np.log(floor)), math=pt).eval()
    np.testing.assert_allclose(numeric, exact, rtol=1e-12)
    np.testing.assert_allclose(symbolic, exact, rtol=1e-12)
    np.testing.assert_allclose(observation.discrepant_log_mean(np.log(mu), 0.0 * delta, np.log(floor)), np.log(mu),
                               rtol=1e-12)
    np.testing.assert_allclose(observation.discrepant_log_mean(np.log(mu), delta), np.log(mu) + delta, rtol=1e-12)


def test_a_falling_discrepancy_on_the_reducible_loss_flattens_towards_the_floor_beyond_the_fitted_scales(monkeypatch):
    """The same draws of a discrepancy with a falling slope, carried far beyond the
    fitted scales: on the log-loss the prediction falls below the law's irreducible loss;
    on the reducible loss it stays above it and its fall slows as the law's does. (The
    slope's drift beyond the fitted scales is held at 0: the straight line is the subject.)"""
    import dataclasses

    from bayesmix.observation import draws as observation_draws
    from bayesmix.testing import posterior_around_truth

    monkeypatch.setattr(observation_draws, "SLOPE_DRIFT", 0.0)

    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=1)
    base = posterior_around_truth(truth, n_draws=20, rel_sd=0.0)  # every draw the truth: floor known
    fitted = np.log(np.array([[5e7], [1e8], [2e8]]) / base.scaling.n_ref)
    draws = {}
    for scale in ("log", "reducible"):
        design = ObservationDesign(discrepancy=True, features=("log_n",), scale_points=fitted,
                                   centre=fitted.mean(axis=0), discrepancy_scale=scale)
        draws[scale] = dataclasses.replace(base, observation=ObservationDraws(
            design, disc_slope=np.full((20, 1, 3), -0.15), disc_amp=np.zeros(20), disc_white=np.zeros((20, 3, 3))))
    h = np.full((1, 3), 1 / 3)
    sizes = np.array([2e8, 2e10, 2e12])
    floor = truth.irreducible_loss()
    loss = {scale: np.stack([post.expected_loss(h, n, 20 * n)[:, 0].mean(axis=0) for n in sizes])
            for scale, post in draws.items()}
    assert np.any(loss["log"][-1] < floor)
    assert np.all(loss["reducible"] > floor)
    # The line on the reducible loss is a power of the model size times the law's own
    # reducible loss: a change of its exponents.
    law = np.stack([base.law_mean(h, n, 20 * n)[:, 0].mean(axis=0) for n in sizes])
    beyond = np.exp(-0.15 * (np.log(sizes / base.scaling.n_ref) - fitted.mean()))[:, None]
    np.testing.assert_allclose(loss["reducible"] - floor, (law - floor) * beyond, rtol=1e-6)


def test_the_discrepancy_scales_the_reducible_loss_where_asked_and_the_law_declares_a_floor():
    from bayesmix.laws import get_law

    truth = default_truth("capacity_noise", ("a", "b", "c"), seed=0)
    table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=[1e8, 3e8], tokens_per_param=20.0, seed=0)
    scaling = Scaling.from_table(table)
    capacity = get_law("capacity_noise")
    assert ObservationDesign.from_table(table, scaling, law=capacity).discrepancy_scale == "log"  # the default
    design = ObservationDesign.from_table(table, scaling, law=capacity, discrepancy_scale="reducible")
    assert design.discrepancy_scale == "reducible"
    assert ObservationDesign.from_dict(design.to_dict()).discrepancy_scale == "reducible"
    # Without a discrepancy there is nothing to scale; a fit saved before the setting
    # existed keeps its discrepancy on the log-loss.
    assert ObservationDesign.from_table(table, scaling, law=capacity, discrepancy="off",
                                        discrepancy_scale="reducible").discrepancy_scale == "log"
    old = {k: v for k, v in design.to_dict().items() if k != "discrepancy_scale"}
    assert ObservationDesign.from_dict(old).discrepancy_scale == "log"
    with pytest.raises(UsageError, match="'linear' has none"):
        ObservationDesign.from_table(table, scaling, law=get_law("linear"), discrepancy_scale="reducible")
    with pytest.raises(UsageError, match="discrepancy_scale must be one of"):
        ObservationDesign.from_table(table, scaling, law=capacity, discrepancy_scale="exp")
