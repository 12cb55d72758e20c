"""Chains that settled in separated modes, weighted by stacking (bayesmix.chain_stacking):
the weights on cases whose answer is known, the draws that carry them, and the gate that
keeps such a fit only where each group's chains agree."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayesmix import _az
from bayesmix.chain_stacking import allocate_draws, group_weights, weighs_modes, weighted_draw_index
from bayesmix.gate import MAX_RHAT, check_gate
from bayesmix.inference import Fit
from bayesmix.laws import get_law
from bayesmix.scaling import Scaling


def _mode_loglik(points: np.ndarray, centres: list[float], draws: int = 200, seed: int = 0) -> np.ndarray:
    """Log densities ``(chains, draws, points)`` of ``points`` under N(mu, 1), each chain
    drawing mu near its centre (a narrow mode: sd 0.05)."""
    rng = np.random.default_rng(seed)
    mu = np.asarray(centres)[:, None] + 0.05 * rng.standard_normal((len(centres), draws))
    return stats.norm.logpdf(points[None, None, :], loc=mu[..., None], scale=1.0)


def test_the_mode_that_predicts_every_point_takes_the_weight():
    points = np.random.default_rng(1).normal(0.0, 1.0, 60)
    loglik = _mode_loglik(points, [0.0, 0.0, 4.0, 4.0])
    weights = group_weights(loglik, [[0, 1], [2, 3]])
    assert weights.shape == (2,) and weights.sum() == pytest.approx(1.0)
    assert weights[0] > 0.99


def test_modes_that_each_predict_half_the_points_share_the_weight():
    """Points drawn half near -3, half near +3, and one mode at each: by symmetry
    stacking weighs them equally; with three quarters near +3, the +3 mode gets about
    three quarters (the mixture that maximises the points' log density)."""
    rng = np.random.default_rng(2)
    even = np.concatenate([rng.normal(-3, 0.2, 40), rng.normal(3, 0.2, 40)])
    np.testing.assert_allclose(group_weights(_mode_loglik(even, [-3, -3, 3, 3]), [[0, 1], [2, 3]]),
                               [0.5, 0.5], atol=0.02)
    skewed = np.concatenate([rng.normal(-3, 0.2, 20), rng.normal(3, 0.2, 60)])
    np.testing.assert_allclose(group_weights(_mode_loglik(skewed, [-3, 3, 3, 3]), [[0], [1, 2, 3]]),
                               [0.25, 0.75], atol=0.02)


def test_draws_are_allocated_in_proportion_evenly_and_reproducibly():
    picks = allocate_draws([0.75, 0.25, 0.0], [10, 10, 10], 20)
    assert [len(p) for p in picks] == [15, 5, 0]
    assert picks[0].min() == 0 and picks[0].max() == 9          # spread over the whole component
    assert np.bincount(picks[0]).max() == 2                      # repeated where it gives more than it has
    assert all(np.array_equal(a, b) for a, b in zip(picks, allocate_draws([3, 1, 0], [10, 10, 10], 20)))
    # Largest remainders: counts always sum to the total.
    assert sum(len(p) for p in allocate_draws([1, 1, 1], [5, 5, 5], 10)) == 10


def test_the_draw_index_takes_each_group_by_its_weight():
    diag = {"chain_groups": [{"chains": [0, 3], "weight": 0.75}, {"chains": [1, 2], "weight": 0.25}]}
    index = weighted_draw_index(diag, chains=4, draws=10)
    chain_of = index // 10
    assert len(index) == 40
    assert np.isin(chain_of[:30], [0, 3]).all() and np.isin(chain_of[30:], [1, 2]).all()
    assert weighted_draw_index({"chain_groups": [{"chains": [0, 1]}, {"chains": [2, 3]}]}, 4, 10) is None
    assert weighted_draw_index({}, 4, 10) is None


def test_a_fit_of_separated_chains_is_kept_only_where_each_group_agrees():
    groups = [{"chains": [0, 3], "median": 0.0094, "mean_logp": 707.9, "weight": 0.8},
              {"chains": [1, 2], "median": 0.065, "mean_logp": 706.4, "weight": 0.2}]
    diag = {"max_rhat": 1.6, "worst_rhat_param": "H", "divergences": 0, "chain_groups_param": "H",
            "chain_groups": groups, "within_group_max_rhat": 1.004, "within_group_worst_param": "b[github]"}
    assert weighs_modes(diag, MAX_RHAT) and check_gate(diag) == []
    diag["within_group_max_rhat"] = 1.04
    assert not weighs_modes(diag, MAX_RHAT)
    problem = check_gate(diag, allow_warnings=True)[0]
    assert "chains within a group disagree too (R-hat 1.040 on b[github])" in problem
    diag["within_group_max_rhat"], diag["divergences"] = 1.004, 2
    assert [p for p in check_gate(diag, allow_warnings=True) if "R-hat" in p] == []
    assert any("divergent" in p for p in check_gate(diag, allow_warnings=True))  # divergences still refuse


def test_a_fit_posterior_carries_the_weights_of_its_chain_groups():
    """The seam: Fit.posterior(), which every decision layer reads, gives the groups'
    draws in proportion to their weights, not to their numbers of chains."""
    law = get_law("linear")
    chains, draws, domains = 4, 50, ["a", "b"]
    offset = np.array([0.0, 10.0, 10.0, 10.0]).reshape(4, 1, 1)  # one chain in mode 0, three in mode 10
    values = {p.name: np.random.default_rng(3).normal(size=(chains, draws) + p.shape(2)) for p in law.params}
    first = law.params[0]
    values[first.name] = values[first.name] + offset.reshape((4, 1) + (1,) * len(first.dims))
    values["sigma"] = np.full((chains, draws, 2), 0.01)
    dims = {p.name: list(p.dims) for p in law.params}
    dims["sigma"] = ["domain"]
    idata = _az.from_draws(values, dims, {"domain": domains, "domain_j": domains})
    groups = [{"chains": [0], "weight": 0.5}, {"chains": [1, 2, 3], "weight": 0.5}]
    scaling = Scaling(1e8, 1e9, (1.0, 1.0))
    plain = Fit(idata, law, scaling, tuple(domains), {"diagnostics": {}}).posterior()
    weighted = Fit(idata, law, scaling, tuple(domains), {"diagnostics": {"chain_groups": groups}}).posterior()
    in_mode_zero = lambda post: float(np.mean(np.asarray(post.draws[first.name]).reshape(post.n_draws, -1)[:, 0] < 5))
    assert in_mode_zero(plain) == pytest.approx(0.25)
    assert in_mode_zero(weighted) == pytest.approx(0.5)
    assert weighted.n_draws == plain.n_draws == chains * draws


def test_the_weights_survive_saving_and_loading_the_fit(tmp_path):
    law = get_law("linear")
    chains, draws, domains = 4, 20, ["a", "b"]
    rng = np.random.default_rng(7)
    values = {p.name: rng.normal(size=(chains, draws) + p.shape(2)) for p in law.params}
    values["sigma"] = np.full((chains, draws, 2), 0.01)
    dims = {p.name: list(p.dims) for p in law.params}
    dims["sigma"] = ["domain"]
    idata = _az.from_draws(values, dims, {"domain": domains, "domain_j": domains})
    scaling = Scaling(1e8, 1e9, (1.0, 1.0))
    attrs = {"law": law.name, "law_options": {}, "scaling": scaling.to_dict(), "domains": domains,
             "diagnostics": {"chain_groups": [{"chains": [0], "weight": 0.9}, {"chains": [1, 2, 3], "weight": 0.1}]}}
    fit = Fit(idata, law, scaling, tuple(domains), attrs)
    fit.save(tmp_path / "fit.nc")
    loaded = Fit.load(tmp_path / "fit.nc").posterior()
    name = law.params[0].name
    np.testing.assert_array_equal(np.asarray(loaded.draws[name]), np.asarray(fit.posterior().draws[name]))
    first_chain = np.asarray(values[name])[0].reshape(draws, -1)
    from_first = np.isin(np.asarray(loaded.draws[name]).reshape(chains * draws, -1)[:, 0], first_chain[:, 0])
    assert from_first.mean() == pytest.approx(0.9)


def test_a_group_of_one_chain_is_judged_by_its_split_r_hat():
    """A chain alone agrees with itself only if its two halves agree: a stationary chain
    passes, one that moved to another place half-way (Pile 4, seed 2: chain 1 went from
    the floor H near 0.01 to near 0.07 and stayed) does not."""
    from bayesmix.chain_stacking import within_group_diagnostics

    rng = np.random.default_rng(6)
    steady = rng.normal(size=(2, 1000))
    moved = steady.copy()
    moved[1, 500:] += 3.0
    for values, agrees in ((steady, True), (moved, False)):
        idata = _az.from_draws({"x": values}, sample_stats={"diverging": np.zeros((2, 1000), bool)})
        assert _az.select_chains(idata, [1]).posterior.sizes["chain"] == 2
        rhat = within_group_diagnostics(idata, ["x"], [[0], [1]])["within_group_max_rhat"]
        assert (rhat <= MAX_RHAT) is agrees, rhat


def test_groups_too_small_for_psis_are_not_weighted():
    """A group of one chain of 10 draws has 2 tail draws for PSIS (it needs 5): no weights,
    so the fit is judged by R-hat alone; at 25 draws the same groups are weighted."""
    points = np.random.default_rng(1).normal(0.0, 1.0, 30)
    assert group_weights(_mode_loglik(points, [0.0, 4.0], draws=10), [[0], [1]]) is None
    assert group_weights(_mode_loglik(points, [0.0, 4.0], draws=25), [[0], [1]])[0] > 0.99


def test_groups_of_windows_carry_only_their_draws_by_their_weights():
    """Chain 0 crossed at draw 5: its first five draws are one group, the rest of it and
    chain 1 the other; a draw in no window (a crossing) is in no mixture."""
    diag = {"chain_groups": [{"chains": [0], "windows": [[0, 0, 5]], "weight": 0.5},
                             {"chains": [0, 1], "windows": [[0, 6, 10], [1, 0, 4], [1, 4, 8]], "weight": 0.5}]}
    index = weighted_draw_index(diag, chains=2, draws=10)
    assert len(index) == 20
    assert set(index[:10]) == {0, 1, 2, 3, 4}
    assert set(index[10:]) <= {6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}
    assert 5 not in index and 18 not in index and 19 not in index


def test_windows_are_weighted_and_judged_as_whole_chains_would_be():
    """The same draws as whole chains or as two windows per chain give the same weights;
    windows of one chain that moved disagree (split R-hat), windows of one place agree."""
    from bayesmix.chain_stacking import within_group_diagnostics

    points = np.random.default_rng(1).normal(0.0, 1.0, 60)
    loglik = _mode_loglik(points, [0.0, 0.0, 4.0, 4.0], draws=200)
    by_chain = group_weights(loglik, [[0, 1], [2, 3]])
    by_window = group_weights(loglik, [[(0, 0, 100), (0, 100, 200), (1, 0, 100), (1, 100, 200)],
                                       [(2, 0, 100), (2, 100, 200), (3, 0, 100), (3, 100, 200)]])
    np.testing.assert_allclose(by_window, by_chain, atol=1e-6)
    rng = np.random.default_rng(6)
    values = rng.normal(size=(2, 1000))
    values[0, 500:] += 3.0
    idata = _az.from_draws({"x": values}, sample_stats={"diverging": np.zeros((2, 1000), bool)})
    stays = [[(0, 0, 250), (0, 250, 500), (1, 0, 250), (1, 250, 500)], [(0, 500, 750), (0, 750, 1000)]]
    assert within_group_diagnostics(idata, ["x"], stays)["within_group_max_rhat"] <= MAX_RHAT
    moved = [[(0, 250, 500), (0, 500, 750)], [(1, 0, 500), (1, 500, 1000)]]  # chain 0 moved at 500
    assert within_group_diagnostics(idata, ["x"], moved)["within_group_max_rhat"] > MAX_RHAT
    with pytest.raises(ValueError, match="one length"):
        _az.select_windows(idata, [(0, 0, 10), (1, 0, 20)])
