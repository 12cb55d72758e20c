"""The pilot run that moves chains out of minor modes (bayesmix.pilot)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from bayesmix import _az
from bayesmix.pilot import (MIN_STAY_DRAWS, MODE_GAP_NATS, PilotReport, main_mode_chains, main_mode_draws,
                            minor_mode_chains, separated_chain_groups, separated_draw_windows)


def test_chains_of_one_mode_are_all_kept():
    rng = np.random.default_rng(0)
    logp = 5000 + 20 * rng.standard_normal((4, 40))
    assert minor_mode_chains(logp).size == 0


def test_a_chain_far_below_the_best_is_a_minor_mode():
    """The SlimPajama case: typical log densities 5564, 5562, 5602, 5561 with a
    within-chain sd of about 25: the three low chains sit in the other mode."""
    rng = np.random.default_rng(1)
    logp = np.array([5564.0, 5562.0, 5602.0, 5561.0])[:, None] + 25 * rng.standard_normal((4, 400))
    assert minor_mode_chains(logp).tolist() == [0, 1, 3]


def test_a_small_gap_is_not_a_mode_even_in_a_narrow_posterior():
    """Below MODE_GAP_NATS the chains are kept however small their spread."""
    logp = np.array([[0.0, 0.01], [-(MODE_GAP_NATS - 1), -(MODE_GAP_NATS - 1.01)]])
    assert minor_mode_chains(logp).size == 0
    logp[1] -= 2
    assert minor_mode_chains(logp).tolist() == [1]


def test_a_chain_with_non_finite_density_is_restarted():
    logp = np.array([[1.0, 2.0], [np.nan, 2.0], [1.5, 1.0]])
    assert minor_mode_chains(logp).tolist() == [1]


def test_the_kept_run_keeps_its_main_mode_chains_but_never_fewer_than_two():
    """The SlimPajama default fit's kept run: chains 1 and 3 settled 40 nats below chains
    0 and 2 (within-chain sd about 20): they go. With a single chain in the main mode,
    every chain stays, so that R-hat (and the gate) can still see the disagreement."""
    rng = np.random.default_rng(3)
    logp = np.array([5602.0, 5562.0, 5604.0, 5564.0])[:, None] + 20 * rng.standard_normal((4, 1000))
    assert main_mode_chains(logp).tolist() == [0, 2]
    logp[2] -= 40
    assert minor_mode_chains(logp).tolist() == [1, 2, 3]
    assert main_mode_chains(logp).tolist() == [0, 1, 2, 3]
    assert main_mode_chains(logp, least=1).tolist() == [0]


def test_the_report_names_the_gap():
    report = PilotReport((10.0, -40.0, 9.0), (1,))
    assert report.to_diagnostics() == {"pilot_restarted_chains": 1, "pilot_max_logp_gap": 50.0, "pilot_recentred": 0,
                                       "pilot_probe_chains": 0, "pilot_started_from_probes": 0}


def test_probe_chains_join_the_choice_of_the_main_mode_but_are_never_restarted():
    """Two pilot chains and two probe chains (the last two). Where only the probes reach
    the best mode, the main-mode draws are theirs and the report says a probe found it;
    where a pilot chain is there too, both are kept and no probe 'found' anything. Probe
    chains in a minor mode are not counted as restarts."""
    rng = np.random.default_rng(3)
    positions = np.arange(4)[:, None, None] + np.zeros((4, 10, 2))
    low, high = -100.0 + rng.normal(0, 1, (1, 10)), rng.normal(0, 1, (1, 10))
    draws, report = main_mode_draws(positions, np.concatenate([low, low, high, high]), probe_chains=2)
    assert set(np.unique(draws[:, 0])) == {2.0, 3.0}
    assert report.started_from_probes and report.restarted == (0, 1) and report.probe_chains == 2
    draws, report = main_mode_draws(positions, np.concatenate([high, low, high, low]), probe_chains=2)
    assert set(np.unique(draws[:, 0])) == {0.0, 2.0}
    assert not report.started_from_probes and report.restarted == (1,)


def test_main_mode_draws_keep_the_second_half_of_the_main_chains_and_finite_draws():
    positions = np.arange(4 * 3 * 2, dtype=float).reshape(4, 3, 2)
    positions[0, 1, 0] = np.nan
    logp = np.array([[0.0, 0.0, 0.0], [-100.0, -100.0, -100.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    draws, report = main_mode_draws(positions, logp)
    assert report.restarted == (1,)
    assert draws.shape == (5, 2) and not np.isnan(draws).any()  # draws 1-2 of chains 0, 2, 3; one NaN
    assert not any(np.array_equal(d, p) for d in draws for p in np.concatenate([positions[1], positions[:, 0]]))


@pytest.mark.slow
def test_the_pilot_moves_chains_from_a_minor_mode_into_the_main_one():
    """Two well separated modes of a 1-d mixture, weights 1 - 1e-8 and 1e-8 (typical
    log densities 18 nats apart); two of four chains start in the minor mode, where NUTS
    would keep them. After the pilot every chain starts in the main mode."""
    import pymc as pm

    from bayesmix.inference import FitSettings
    from bayesmix.nutpie_backend import compiled_nutpie_model, run_pilot

    with pm.Model() as model:
        pm.NormalMixture("x", w=np.array([1 - 1e-8, 1e-8]), mu=np.array([-6.0, 6.0]), sigma=np.array([0.3, 0.3]))
    starts = itertools.cycle([-5.9, 5.9])  # nutpie refuses a start with a zero gradient
    compiled = compiled_nutpie_model(model)
    compiled = dataclasses.replace(compiled, initial_point_func=lambda seed: np.array([next(starts)]))
    # No law here: the target acceptance that fit_law would take from one is given.
    settings = FitSettings(chains=4, tune=200, draws=100, seed=0, cores=1, extend_draws=1, target_accept=0.95)
    started, report = run_pilot(compiled, settings, progressbar=False)
    assert len(report.restarted) == 2
    assert max(report.chain_logp) - min(report.chain_logp) > MODE_GAP_NATS
    points = np.array([started.initial_point_func(seed) for seed in range(20)])
    assert np.all(np.abs(points + 6.0) < 2.0)  # within ~6 sd of the main mode


def test_chains_of_one_mode_form_one_group_even_when_poorly_mixed():
    """Four AR(1) chains with autocorrelation 0.99 (ESS about 5 of 1000 draws) of one
    standard normal: their medians wander, their ranges overlap."""
    rng = np.random.default_rng(2)
    chains = np.zeros((4, 1000))
    for t in range(1, 1000):
        chains[:, t] = 0.99 * chains[:, t - 1] + np.sqrt(1 - 0.99**2) * rng.standard_normal(4)
    groups = separated_chain_groups(chains)
    assert len(groups) == 1 and groups[0].tolist() == [0, 1, 2, 3]


def test_separated_chains_are_grouped_by_where_they_sit_whatever_the_scale():
    """The Pile 4 case: the capacity floor H near 0.009 (spread over two orders of
    magnitude) in chains 0 and 3, near 0.08 (30% spread) in chains 1 and 2."""
    rng = np.random.default_rng(3)
    low = np.exp(-4.7 + 1.0 * rng.standard_normal((2, 1000)))
    high = np.exp(-2.5 + 0.3 * rng.standard_normal((2, 1000)))
    values = np.stack([low[0], high[0], high[1], low[1]])
    groups = separated_chain_groups(values)
    assert [g.tolist() for g in groups] == [[0, 3], [1, 2]]
    # Invariant under a monotone map of the quantity (quantiles, not moments).
    assert [g.tolist() for g in separated_chain_groups(np.log(values))] == [[0, 3], [1, 2]]


def _crossing_chains(cross_at: int = 600, draws: int = 1000, seed: int = 7) -> np.ndarray:
    """The Pile 4 case of seed 0: the floor's log near -6 (sd 0.5) in chain 0 until
    ``cross_at``, near -3 (sd 0.15) after it and in chains 1-3 throughout."""
    rng = np.random.default_rng(seed)
    values = -3.0 + 0.15 * rng.standard_normal((4, draws))
    values[0, :cross_at] = -6.0 + 0.5 * rng.standard_normal(cross_at)
    return values


def test_a_chain_that_crossed_is_split_into_its_stays():
    windows = separated_draw_windows(_crossing_chains())
    assert len(windows) == 2
    low, high = windows
    assert {chain for chain, _, _ in low} == {0} and all(stop <= 600 for _, _, stop in low)
    assert {chain for chain, _, _ in high} == {0, 1, 2, 3}
    assert all(start >= 600 for chain, start, _ in high if chain == 0)
    # One length per place, so that R-hat can compare the windows; no draw in two windows.
    for place in windows:
        assert len({stop - start for _, start, stop in place}) == 1
        drawn = [(chain, t) for chain, start, stop in place for t in range(start, stop)]
        assert len(drawn) == len(set(drawn))
    # The places, not the quantity's scale, decide (no cut placed by value).
    assert separated_draw_windows(np.exp(_crossing_chains())) == windows


def test_a_visit_shorter_than_a_stay_belongs_to_no_place():
    values = _crossing_chains(cross_at=MIN_STAY_DRAWS - 10)
    windows = separated_draw_windows(values)
    assert windows == []  # the low place has no stay: nothing to compare it with


def test_chains_that_mix_slowly_are_not_split():
    """AR(1) chains of one normal with autocorrelation 0.99: no separated places."""
    rng = np.random.default_rng(2)
    slow = np.zeros((4, 1000))
    for t in range(1, 1000):
        slow[:, t] = 0.99 * slow[:, t - 1] + np.sqrt(1 - 0.99**2) * rng.standard_normal(4)
    assert separated_draw_windows(slow) == []


def test_a_chain_still_drifting_is_not_passed_as_a_mode():
    """Chain 0 moving steadily from -6 to -3 over its first 600 draws (a chain still
    warming up) may be cut off as a place of its own, but its windows disagree, so the
    split does not pass the gate; the stays of a real crossing agree."""
    from bayesmix.chain_stacking import within_group_diagnostics
    from bayesmix.gate import MAX_RHAT

    drift = _crossing_chains()
    drift[0, :600] = np.linspace(-6.0, -3.0, 600) + 0.05 * np.random.default_rng(1).standard_normal(600)
    for values, passes in ((drift, False), (_crossing_chains(), True)):
        windows = separated_draw_windows(values)
        idata = _az.from_draws({"x": values}, sample_stats={"diverging": np.zeros(values.shape, bool)})
        rhat = within_group_diagnostics(idata, ["x"], windows)["within_group_max_rhat"] if windows else np.inf
        assert (rhat <= MAX_RHAT) is passes, rhat


def test_a_refusal_over_separated_chains_says_modes_not_run_longer():
    from bayesmix.errors import FitRejectedError
    from bayesmix.gate import check_gate

    diag = {"max_rhat": 1.77, "worst_rhat_param": "H", "divergences": 0,
            "chain_groups": [{"chains": [0, 3], "median": 0.0094, "mean_logp": 707.9},
                             {"chains": [1, 2], "median": 0.083, "mean_logp": 707.9}]}
    with pytest.raises(FitRejectedError) as refused:
        check_gate(diag)
    message = str(refused.value)
    assert "2 separated places" in message and "H near 0.0094 in chains 0, 3" in message
    assert "NUTS does not cross" in message and "run more --tune" not in message
    del diag["chain_groups"]
    # Chains that disagree far beyond slow mixing but overlap (Pile 4, seed 1: R-hat 1.67).
    slow = check_gate(diag, allow_warnings=True)[0]
    assert "more than slow mixing explains" in slow and "run more --tune" not in slow
    diag.update(max_rhat=1.03, draws_per_chain=2000, draws_requested=1000)
    slow = check_gate(diag, allow_warnings=True)[0]
    assert "ran on to 2000 draws per chain (asked 1000)" in slow and "run more --tune" in slow
    # Divergences: the advice starts from the fit's own target_accept, not the default.
    diag.update(max_rhat=1.0, divergences=3, target_accept=0.99)
    advice = check_gate(diag, allow_warnings=True)[0]
    assert "above the fit's 0.99" in advice and "--target-accept 0.995" in advice  # a higher one, not the same
    diag.update(target_accept=0.95)
    assert "--target-accept 0.975" in check_gate(diag, allow_warnings=True)[0]


def test_diagnose_records_where_the_chains_of_the_worst_quantity_sit():
    from bayesmix.gate import diagnose
    from bayesmix.laws import get_law

    law = get_law("linear")
    rng = np.random.default_rng(4)
    posterior = {p.name: rng.normal(size=(4, 200) + p.shape(3)) for p in law.params}
    name = law.params[0].name
    shift = np.array([0.0, 8.0, 8.0, 0.0]).reshape((4, 1) + (1,) * len(law.params[0].dims))
    posterior[name] = posterior[name] + shift
    logp = np.array([-10.0, -12.0, -12.0, -10.0])[:, None] + rng.normal(size=(4, 200))
    idata = _az.from_draws(posterior, sample_stats={"logp": logp, "diverging": np.zeros((4, 200), bool)},
                         dims={p.name: list(p.dims) for p in law.params},
                         coords={"domain": ["a", "b", "c"], "domain_j": ["a", "b", "c"]})
    diag = diagnose(idata, law)
    assert diag["worst_rhat_param"].startswith(name) and diag["chain_groups_param"] == diag["worst_rhat_param"]
    assert [g["chains"] for g in diag["chain_groups"]] == [[0, 3], [1, 2]]
    assert [round(g["mean_logp"]) for g in diag["chain_groups"]] == [-10, -12]
    # Within each group the chains draw from one normal: they agree, so the modes can be weighted.
    assert diag["within_group_max_rhat"] <= 1.01


def test_diagnose_finds_the_split_on_another_quantity_when_the_worst_only_mixes_slowly():
    """The Pile 4 case: the worst R-hat on a slowly mixing scale whose chains overlap,
    while the floor's chains sit in two places."""
    from bayesmix.gate import diagnose
    from bayesmix.laws import get_law

    law = get_law("linear")
    rng = np.random.default_rng(5)
    posterior = {p.name: rng.normal(size=(4, 400) + p.shape(3)) for p in law.params}
    slow = np.zeros((4, 400))
    for t in range(1, 400):  # AR(1), autocorrelation 0.995: R-hat far above 1.01, ranges overlap
        slow[:, t] = 0.995 * slow[:, t - 1] + np.sqrt(1 - 0.995**2) * rng.standard_normal(4)
    posterior["W"][..., 0, 0] = 1.0 + 0.01 * slow + np.array([0.0, 0.006, 0.0, 0.006])[:, None]
    posterior["w_n"][..., 1] += np.array([0.0, 6.0, 6.0, 0.0])[:, None]
    # A sampler that records no log density (only divergences).
    idata = _az.from_draws(posterior, sample_stats={"diverging": np.zeros((4, 400), bool)},
                         dims={p.name: list(p.dims) for p in law.params},
                         coords={"domain": ["a", "b", "c"], "domain_j": ["a", "b", "c"]})
    diag = diagnose(idata, law)
    assert diag["worst_rhat_param"] == "W[a, a]" and diag["chain_groups_param"] == "w_n[b]"
    assert [g["chains"] for g in diag["chain_groups"]] == [[0, 3], [1, 2]]
    assert all(g["mean_logp"] is None for g in diag["chain_groups"])
    # Within the groups (0, 3 and 1, 2) the slow quantity still disagrees: each chain's
    # AR(1) walk, and offsets 0 and 0.006 in both groups.
    assert diag["within_group_max_rhat"] > 1.01 and diag["within_group_worst_param"] == "W[a, a]"


def _trace_with_logp(means, draws: int = 300, seed: int = 4):
    """A trace of one chain per entry of ``means``: ``x``, and nutpie's ``logp`` around
    the chain's mean."""
    rng = np.random.default_rng(seed)
    logp = np.asarray(means, dtype=float)[:, None] + 5 * rng.standard_normal((len(means), draws))
    return _az.from_draws({"x": rng.standard_normal((len(means), draws))}, sample_stats={"logp": logp}), logp


def test_a_fit_drops_the_chains_that_settled_in_a_minor_mode_and_says_so():
    from bayesmix.gate import format_diagnostics, without_minor_mode_chains

    idata, logp = _trace_with_logp([100.0, 40.0, 101.0, 99.0])
    kept, dropped = without_minor_mode_chains(idata)
    assert dropped["minor_mode_chains"] == [1]
    assert dropped["minor_mode_logp_gap"] == pytest.approx(logp[2].mean() - logp[1].mean())
    assert kept.posterior.sizes["chain"] == 3 and kept.sample_stats.sizes["chain"] == 3
    np.testing.assert_array_equal(kept.posterior["x"].values, idata.posterior["x"].values[[0, 2, 3]])
    np.testing.assert_array_equal(kept.posterior["chain"].values, [0, 1, 2])
    diag = {"max_rhat": 1.0, "min_ess_bulk": 500, "min_ess_tail": 500, "divergences": 0, **dropped}
    assert "dropped: chain 1 settled" in format_diagnostics(diag)
    same, none = without_minor_mode_chains(_trace_with_logp([100.0, 98.0, 101.0, 99.0])[0])
    assert none == {} and same.posterior.sizes["chain"] == 4


def test_a_chain_in_a_funnels_neck_is_compared_in_standardised_coordinates():
    """A chain whose centred slopes sit in the funnel's neck (spread near 0) has a log
    density as high as the main mode's in the sampler's coordinates; with the Jacobian
    that the model records (``centred_log_jacobian``: J log sd) it is far below, and
    dropped as a minor mode. Without the record the sampler's log density is used as is."""
    from bayesmix import observation
    from bayesmix.gate import chain_logp, without_minor_mode_chains

    idata, logp = _trace_with_logp([100.0, 100.5, 101.0, 99.0])
    assert without_minor_mode_chains(idata)[1] == {}
    np.testing.assert_array_equal(chain_logp(idata), logp)
    spread = np.array([0.012, 8e-6, 0.012, 0.012])[:, None] * np.ones_like(logp)
    jacobian = 14 * np.log(spread)
    idata = _az.from_draws({"x": idata.posterior["x"].values, observation.CENTRED_LOG_JACOBIAN: jacobian},
                           sample_stats={"logp": logp})
    np.testing.assert_allclose(chain_logp(idata), logp + jacobian)
    _, dropped = without_minor_mode_chains(idata)
    assert dropped["minor_mode_chains"] == [1]
    assert dropped["minor_mode_logp_gap"] == pytest.approx(14 * np.log(0.012 / 8e-6) + logp[2].mean() - logp[1].mean())


def _linear_trace_with_a_crossing(seed: int = 8):
    """A linear law's trace of 4 x 1000 draws whose ``w_n[b]`` crosses as in
    :func:`_crossing_chains`; returns the law, the draws and the trace."""
    from bayesmix.laws import get_law

    law = get_law("linear")
    rng = np.random.default_rng(seed)
    posterior = {p.name: rng.normal(size=(4, 1000) + p.shape(3)) for p in law.params}
    posterior["w_n"][..., 1] = _crossing_chains()
    idata = _az.from_draws(posterior, sample_stats={"diverging": np.zeros((4, 1000), bool)},
                           dims={p.name: list(p.dims) for p in law.params},
                           coords={"domain": ["a", "b", "c"], "domain_j": ["a", "b", "c"]})
    return law, posterior, idata


def test_diagnose_splits_the_draws_of_a_chain_that_crossed_between_modes():
    """No chain sits apart (chain 0 crossed at draw 600), so whole chains cannot be
    grouped; the stays can, and within them the chains agree."""
    from bayesmix.gate import check_gate, diagnose

    law, posterior, idata = _linear_trace_with_a_crossing()
    diag = diagnose(idata, law)
    assert diag["max_rhat"] > 1.01 and diag["chain_groups_param"] == "w_n[b]"
    low, high = diag["chain_groups"]
    assert low["chains"] == [0] and high["chains"] == [0, 1, 2, 3]
    assert low["median"] == pytest.approx(-6.0, abs=0.1) and high["median"] == pytest.approx(-3.0, abs=0.05)
    assert diag["within_group_max_rhat"] <= 1.01
    problem = check_gate(diag, allow_warnings=True)[0]  # no weights yet: refused, saying where
    assert "w_n[b] near -6 in chain 0 (draws 0-" in problem


def test_a_fit_weighs_the_stays_of_a_crossing_chain_not_its_whole_trace(monkeypatch):
    """The fit's stacking weights are computed on each group's windows: here every draw
    in the second place predicts the runs better, so the first place (chain 0 before it
    crossed) gets no weight; weighing whole chains would have given chain 0's later draws
    to the first place."""
    from bayesmix import inference

    law, posterior, idata = _linear_trace_with_a_crossing()
    rng = np.random.default_rng(9)
    # Log-likelihood of 30 runs per draw: 0 in the second place, -5 per run in the first.
    in_second = posterior["w_n"][..., 1].reshape(-1) > -4.5
    loglik = np.where(in_second[:, None], 0.0, -5.0) + 0.1 * rng.standard_normal((4000, 30))
    monkeypatch.setattr(inference, "integrated_loglik", lambda post, table: (loglik, None))
    seen = []
    real = inference.chain_stacking.group_weights
    monkeypatch.setattr(inference.chain_stacking, "group_weights",
                        lambda values, groups: seen.append(groups) or real(values, groups))
    diag = inference._weighted_diagnostics(idata, law, posterior=None, table=None)
    first, second = diag["chain_groups"]
    assert seen[0] == [[tuple(w) for w in first["windows"]], [tuple(w) for w in second["windows"]]]
    assert first["weight"] == pytest.approx(0.0, abs=1e-6) and second["weight"] == pytest.approx(1.0, abs=1e-6)


def test_recentring_whitens_again_on_the_main_mode_and_keeps_the_draws_where_they_are():
    """A Normal posterior (mean (3, -2), sd (0.5, 2)) whitened at 0 with a factor 0.1: its
    draws sit 30 whitened units from the centre. Re-centred, the same points have
    whitened coordinates of mean 0 and sd 1 (within 4 and 3 standard errors of 200
    draws), and a second call leaves the model as it is."""
    import pymc as pm

    from bayesmix.nutpie_backend import (compiled_logp_dlogp, compiled_nutpie_model, preconditioned_model,
                                         recentred_at_main_mode, whitened_order)

    with pm.Model() as model:
        pm.Normal("x", mu=np.array([3.0, -2.0]), sigma=np.array([0.5, 2.0]), shape=2)
    _, block = whitened_order(model)
    compiled = compiled_nutpie_model(preconditioned_model(model)).with_data(
        precond_mean=np.zeros(2), precond_chol=0.1 * np.eye(2))
    points = np.array([3.0, -2.0]) + np.random.default_rng(0).standard_normal((200, 2)) * [0.5, 2.0]
    moved, draws, recentred = recentred_at_main_mode(compiled, block, points / 0.1)
    assert recentred
    before, after = compiled_logp_dlogp(compiled), compiled_logp_dlogp(moved)
    assert np.allclose([before(z)[0] for z in points / 0.1], [after(z)[0] for z in draws])
    assert np.all(np.abs(draws.mean(axis=0)) < 4 / np.sqrt(200))
    assert np.all(np.abs(draws.std(axis=0) - 1) < 3 / np.sqrt(2 * 200))
    again, same, recentred_again = recentred_at_main_mode(moved, block, draws)
    assert not recentred_again and again is moved and np.array_equal(same, draws)


@pytest.mark.slow
def test_the_pilot_samples_at_its_own_target_acceptance_and_the_kept_run_at_the_fits(monkeypatch):
    """The pilot's draws are not kept, so it need not pay a high target acceptance (0.99,
    where a fit asks for it or samples again at it); a run asked for less than the
    pilot's cap keeps its own."""
    import pymc as pm

    from bayesmix import nutpie_backend
    from bayesmix.inference import FitSettings
    from bayesmix.pilot import PILOT_MAXDEPTH, PILOT_TARGET_ACCEPT, pilot_target_accept

    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0)
    compiled = nutpie_backend.compiled_nutpie_model(model)
    compiled = dataclasses.replace(compiled, initial_point_func=lambda seed: np.array([0.5]))
    seen = []
    real = nutpie_backend._sample_nutpie

    depths = []

    def recording(compiled, settings, sample_kwargs, **extra):
        seen.append(settings.target_accept)
        depths.append(extra.get("maxdepth"))
        return real(compiled, settings, sample_kwargs, **extra)

    monkeypatch.setattr(nutpie_backend, "_sample_nutpie", recording)
    for asked in (0.99, 0.8):
        settings = FitSettings(chains=2, tune=60, draws=20, seed=0, cores=1, target_accept=asked)
        nutpie_backend.run_pilot(compiled, settings, progressbar=False)
        assert settings.target_accept == asked  # the caller's settings are left alone
    assert PILOT_TARGET_ACCEPT < 0.99
    assert seen == [PILOT_TARGET_ACCEPT, 0.8] == [pilot_target_accept(0.99), pilot_target_accept(0.8)]
    # Its trees are capped below nutpie's default depth of 10.
    assert depths == [PILOT_MAXDEPTH, PILOT_MAXDEPTH] and PILOT_MAXDEPTH < 10


@pytest.mark.slow
@pytest.mark.parametrize("probed", [True, False])
def test_probe_chains_find_a_mode_along_the_probed_parameter_that_every_chain_missed(probed):
    """``h`` has two modes a factor 5 apart on its log scale (``log h`` at 0 and log 5, sd
    0.05: 32 sd apart, where no chain crosses), the second heavier by 18 nats; ``y`` is a nuisance. Every chain
    starts in the light mode, where NUTS keeps it. The probe along ``h`` (the light
    mode's best draw with ``log h`` moved by log 5, ``y`` re-optimised) starts chains in
    the heavy mode, and they win the choice of the main mode: the kept run starts
    there. Without the probe every start stays in the light mode (the test's control)."""
    import pymc as pm

    from bayesmix.inference import FitSettings
    from bayesmix.nutpie_backend import compiled_nutpie_model, preconditioned_model, probe_position, run_pilot
    from bayesmix.nutpie_backend import whitened_order

    with pm.Model() as model:
        log_h = pm.NormalMixture("log_h", w=np.array([1e-8, 1 - 1e-8]), mu=np.array([0.0, np.log(5.0)]),
                                 sigma=np.array([0.05, 0.05]))
        pm.Deterministic("h", pm.math.exp(log_h))
        pm.Normal("y", mu=0.5 * log_h, sigma=1.0)
    _, block = whitened_order(model)
    position = probe_position(model, "log_h")
    assert position is not None and probe_position(model, "h") is None and probe_position(model, None) is None
    compiled = compiled_nutpie_model(preconditioned_model(model)).with_data(
        precond_mean=np.zeros(2), precond_chol=np.eye(2))
    rng = np.random.default_rng(0)
    start = np.zeros(2)
    start[position] = 0.02  # nutpie refuses a start with a zero gradient
    compiled = dataclasses.replace(compiled, initial_point_func=lambda seed: start + 0.02 * rng.standard_normal(2))
    settings = FitSettings(chains=4, tune=200, draws=100, seed=0, cores=1, extend_draws=1, target_accept=0.95)
    started, report = run_pilot(compiled, settings, progressbar=False, whitened_block=block,
                                probe=position if probed else None)
    points = np.array([started.initial_point_func(seed) for seed in range(20)])
    mean, chol = (np.asarray(started.shared_data[key]) for var, key in started.shared_var_keys.items()
                  if var.name in ("precond_mean", "precond_chol"))
    log_h_at = (mean + points @ chol.T)[:, position]
    if probed:
        assert report.probe_chains >= 2 and report.started_from_probes
        assert np.all(np.abs(log_h_at - np.log(5.0)) < 0.3)  # within 6 sd of the heavy mode
        assert report.to_diagnostics()["pilot_started_from_probes"] == 1
    else:
        assert report.probe_chains == 0 and not report.started_from_probes
        assert np.all(np.abs(log_h_at) < 0.3)


def test_the_fit_table_says_when_the_kept_run_starts_at_probe_chains():
    from bayesmix.gate import format_diagnostics

    diag = {"max_rhat": 1.0, "min_ess_bulk": 500, "min_ess_tail": 500, "divergences": 0,
            **PilotReport((5150.0, 5151.0, 5263.0, 5262.0), (0, 1), probe_chains=2,
                          started_from_probes=True).to_diagnostics()}
    assert "probe chains" in format_diagnostics(diag)
    diag["pilot_started_from_probes"] = 0
    assert "probe chains" not in format_diagnostics(diag)
