"""Tests of the comparison of laws: scoring, PSIS-LOO, stacking, folds, executors, CLI.

Most tests replace NUTS by a *fake fit*: a genuine :class:`bayesmix.inference.Fit`
built from hand-made draws around a known truth, so that the whole pipeline (folds,
tasks, scoring, merging, CSV/JSON, saved fits, stacking) runs in milliseconds. One
slow test runs real (tiny) NUTS fits on local processes and on a Dask LocalCluster.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesmix import _az
from bayesmix.compare import (
    CompareSettings,
    Comparison,
    FitTask,
    StackedPosterior,
    compare_laws,
    coverage,
    grouped_kfold,
    integrated_loglik,
    is_comparison_file,
    make_folds,
    mean_relative_error,
    parse_cv,
    run_level_loglik,
    run_level_loo,
    run_task,
    scale_folds,
    score_runs,
    stacked_posterior,
    stacking_weights,
    task_seed,
)
from bayesmix.errors import UsageError
from bayesmix.executors import SerialExecutor, make_executor
from bayesmix.inference import Fit
from bayesmix.laws import get_law
from bayesmix.posterior import Posterior
from bayesmix.simulate import default_truth, simulate_runs

DOMAINS = ("web", "code", "books")


# --------------------------------------------------------------------------- helpers


def _truth(law="capacity_noise", seed=1):
    return default_truth(law, DOMAINS, seed=seed, noise_sd=0.01)


@pytest.fixture(scope="module")
def multi_scale_table():
    """Two checkpoints per run, three model sizes, a run offset: 18 runs, 36 rows."""
    table, _ = simulate_runs(_truth(), n_mixtures=6, model_sizes=(5e7, 1e8, 2e8), checkpoints=(0.5, 1.0),
                             run_offset_sd=0.01, seed=3)
    return table


def _posterior_near_truth(truth, n_draws=200, *, seed=0, jitter=0.01, sigma=0.015, run_sd=0.01):
    rng = np.random.default_rng(seed)
    draws = {k: np.asarray(v, dtype=float)[None] * np.exp(rng.normal(0, jitter, (n_draws,) + np.shape(v)))
             for k, v in truth.params.items()}
    K = len(truth.domains)
    return Posterior(get_law(truth.law_name), draws, truth.scaling, tuple(truth.domains),
                     sigma=np.full((n_draws, K), sigma) * np.exp(rng.normal(0, 0.1, (n_draws, K))),
                     run_sd=None if run_sd is None else np.abs(rng.normal(run_sd, run_sd / 5, n_draws)))


def _fit_from_posterior(post: Posterior, table, chains=2) -> Fit:
    """A real Fit (saveable, loadable) whose draws are those of ``post``."""
    S = post.n_draws
    per = S // chains
    draws, dims = {}, {}
    for param in post.law.params:
        value = np.asarray(post.draws[param.name])[: chains * per]
        draws[param.name] = value.reshape((chains, per) + value.shape[1:])
        dims[param.name] = list(param.dims)
    draws["sigma"] = post.sigma[: chains * per].reshape(chains, per, -1)
    dims["sigma"] = ["domain"]
    if post.run_sd is not None:
        draws["run_sd"] = post.run_sd[: chains * per].reshape(chains, per)
    idata = _az.from_draws(draws, dims, {"domain": list(post.domains), "domain_j": list(post.domains)})
    attrs = {"law": post.law.name, "law_options": {}, "law_parametrization": post.law.parametrization,
             "scaling": post.scaling.to_dict(),
             "domains": list(post.domains), "fingerprint": table.fingerprint(),
             "diagnostics": {"max_rhat": 1.0, "min_ess_bulk": 400.0, "min_ess_tail": 400.0, "divergences": 0}}
    return Fit(idata, post.law, post.scaling, tuple(post.domains), attrs)


class FakeFitter:
    """Stands in for ``inference.fit_law``: records each training table, returns a Fit
    whose draws sit near the simulation truth of the law (so scores are meaningful)."""

    def __init__(self):
        self.calls = []

    def __call__(self, table, law, priors=None, settings=None, **kwargs):
        law = get_law(law) if isinstance(law, str) else law
        law.check_table(table)  # as build_model does: a refused table raises UsageError
        self.calls.append({"law": law.name, "model_sizes": sorted(set(table.model_size)),
                           "runs": sorted(set(table.run_ids)), "seed": settings.seed})
        offset = {"capacity_noise": 0, "capacity": 1}.get(law.name, 2)
        truth = _truth("capacity_noise")
        post = _posterior_near_truth(truth, 200, seed=settings.seed % 1000)
        if law.name != "capacity_noise":
            # a worse law: the same draws, biased by a few percent
            post.draws["E"] = post.draws["E"] * (1.0 + 0.03 * offset)
        return _fit_from_posterior(post, table)


@pytest.fixture
def fake_fitter(monkeypatch):
    fitter = FakeFitter()
    monkeypatch.setattr("bayesmix.inference.fit_law", fitter)
    return fitter


# --------------------------------------------------------------------------- metrics


def test_mre_and_coverage_on_known_numbers():
    observed = np.array([2.0, 4.0, 1.0, np.nan])
    predicted = np.array([2.2, 3.0, 1.0, 5.0])
    # |0.2|/2 = 0.1, 1/4 = 0.25, 0 -> mean 0.35/3; the NaN cell is not scored
    assert mean_relative_error(predicted, observed) == pytest.approx(0.35 / 3)
    assert mean_relative_error(predicted, observed, mask=[True, False, True, True]) == pytest.approx(0.05)
    assert math.isnan(mean_relative_error(predicted, observed, mask=[False] * 4))
    lower = np.array([1.9, 4.1, 0.5, 0.0])
    upper = np.array([2.1, 5.0, 1.0, 9.0])
    # inside, below the interval, on the upper edge (inside); NaN not scored
    assert coverage(lower, upper, observed) == pytest.approx(2 / 3)


def test_parse_cv():
    assert parse_cv("loo").kind == "loo"
    assert parse_cv("kfold:7").k == 7
    assert parse_cv("scale").label == "scale"
    for bad in ("kfold:1", "kfold:x", "holdout"):
        with pytest.raises(UsageError):
            parse_cv(bad)


# --------------------------------------------------------------------------- folds


def test_grouped_kfold_never_splits_a_run(multi_scale_table):
    table = multi_scale_table
    folds = grouped_kfold(table, 4, seed=5)
    all_runs = set(table.run_ids)
    tested = [set(f.test_runs) for f in folds]
    assert set().union(*tested) == all_runs  # every run is held out once ...
    assert sum(len(t) for t in tested) == len(all_runs)  # ... and only once
    for fold in folds:
        assert not set(fold.train_runs) & set(fold.test_runs)
        assert set(fold.train_runs) | set(fold.test_runs) == all_runs
        # all checkpoints of a test run are test rows: no row of a test run is in training
        train_rows = np.isin(table.run_ids, fold.train_runs)
        test_rows = np.isin(table.run_ids, fold.test_runs)
        assert np.all(train_rows ^ test_rows)
    assert max(map(len, tested)) - min(map(len, tested)) <= 1
    with pytest.raises(UsageError, match="needs at least"):
        grouped_kfold(table, 100)


def test_mixture_kfold_holds_out_every_run_of_a_mixture(multi_scale_table):
    from bayesmix.compare import mixture_kfold
    from bayesmix.observation import mixture_keys

    table = multi_scale_table
    folds = mixture_kfold(table, 3, seed=1)
    assert parse_cv("mixture:3").label == "mixture:3"
    key_of = dict(zip(table.run_ids, mixture_keys(table.weights)))
    held = [{key_of[r] for r in f.test_runs} for f in folds]
    assert set().union(*held) == set(key_of.values()) and sum(map(len, held)) == 6  # each mixture once
    for fold, keys in zip(folds, held):
        # every run of a held-out mixture (3 sizes) is held out, none is trained on
        assert {r for r, k in key_of.items() if k in keys} == set(fold.test_runs)
        assert not {key_of[r] for r in fold.train_runs} & keys


def test_scale_folds_train_only_on_smaller_sizes(multi_scale_table):
    table = multi_scale_table
    folds = scale_folds(table)
    size_of = dict(zip(table.run_ids, table.model_size))
    assert len(folds) == 2
    for fold in folds:
        train_sizes = {size_of[r] for r in fold.train_runs}
        test_sizes = {size_of[r] for r in fold.test_runs}
        assert len(test_sizes) == 1
        assert max(train_sizes) < min(test_sizes)
        # fit on *all* runs up to the previous size
        assert set(fold.train_runs) == {r for r, s in size_of.items() if s <= max(train_sizes)}
    with pytest.raises(UsageError, match="two or more model sizes"):
        scale_folds(table.filter_scale(model_size=[1e8]))


def test_scale_chaining_fits_see_only_smaller_sizes(multi_scale_table, fake_fitter):
    result = compare_laws(multi_scale_table, ["capacity_noise"], cv="scale", executor=SerialExecutor())
    sizes = [call["model_sizes"] for call in fake_fitter.calls]
    assert sizes == [[5e7], [5e7, 1e8]]
    scored = set(result.laws["capacity_noise"].runs)
    size_of = dict(zip(multi_scale_table.run_ids, multi_scale_table.model_size))
    assert {size_of[r] for r in scored} == {1e8, 2e8}  # the smallest size is never scored


# --------------------------------------------------------------------------- held-out density


def test_integrated_loglik_matches_quadrature_and_monte_carlo(multi_scale_table):
    truth = _truth()
    post = _posterior_near_truth(truth, 50, run_sd=0.02)
    closed, runs = integrated_loglik(post, multi_scale_table)
    quad, _ = integrated_loglik(post, multi_scale_table, method="quadrature")
    # Adaptive Gauss-Hermite integrates a Gaussian integrand exactly: round-off only.
    np.testing.assert_allclose(closed, quad, atol=1e-8)
    # Monte Carlo over the run offset for one draw and run: 2e5 offsets give an SE of
    # about 1e-3 nats here; 0.01 is 10 SE.
    rng = np.random.default_rng(0)
    mask = np.asarray(multi_scale_table.run_ids) == runs[0]
    mu = post.expected_loss(multi_scale_table.weights, multi_scale_table.model_size, multi_scale_table.tokens)[0][mask]
    y = np.log(multi_scale_table.losses[mask])
    z = rng.normal(0.0, post.run_sd[0], 200_000)
    ll = stats.norm.logpdf(y[None] - np.log(mu)[None] - z[:, None, None], scale=post.sigma[0]).sum((1, 2)) - y.sum()
    mc = np.logaddexp.reduce(ll) - np.log(len(z))
    assert closed[0, 0] == pytest.approx(mc, abs=0.01)
    # by domain: each (run, domain) block integrates its own offset; with one domain's
    # cells only the result must equal the run-level value on a one-domain table
    by_domain, _ = integrated_loglik(post, multi_scale_table, by_domain=True)
    assert by_domain.shape == (50, len(runs), 3)


def test_integrated_loglik_without_run_effect_is_the_sum_of_pointwise(multi_scale_table):
    from bayesmix.inference import compute_loglik

    post = _posterior_near_truth(_truth(), 40, run_sd=None)
    ll, runs = integrated_loglik(post, multi_scale_table)
    pointwise = compute_loglik(post, multi_scale_table)  # (S, rows, K)
    per_row = np.nansum(pointwise, axis=-1)
    expected = np.column_stack([per_row[:, np.asarray(multi_scale_table.run_ids) == r].sum(axis=1) for r in runs])
    np.testing.assert_allclose(ll, expected, rtol=1e-10)


def test_runs_without_any_loss_are_not_scored(multi_scale_table):
    import dataclasses

    losses = np.array(multi_scale_table.losses)
    first_run = multi_scale_table.run_ids[0]
    losses[np.asarray(multi_scale_table.run_ids) == first_run] = np.nan
    table = dataclasses.replace(multi_scale_table, losses=losses)
    scores = score_runs(_posterior_near_truth(_truth(), 30), table)
    assert first_run not in scores["runs"] and len(scores["runs"]) == table.n_runs - 1
    assert np.all(np.isfinite(scores["run_lpd"]))


def test_score_runs_calibrated_on_truth():
    """Scoring the truth itself: coverage near 90 % and small MRE (no bias)."""
    truth = _truth()
    table, _ = simulate_runs(truth, n_mixtures=40, model_sizes=(1e8,), seed=11)
    post = _posterior_near_truth(truth, 400, jitter=0.0, sigma=0.01, run_sd=None)
    scores = score_runs(post, table, seed=1)
    inside = coverage(scores["lower"], scores["upper"], scores["observed"])
    # 120 cells: binomial sd of the coverage is 0.027; 0.9 +- 0.08 is 3 sd
    assert abs(inside - 0.9) < 0.08
    # noise sd 1 %: the mean |relative error| of a unbiased prediction is about 0.8 %
    assert mean_relative_error(scores["mean"], scores["observed"]) < 0.012


def test_score_runs_draws_the_laws_error_at_unseen_scales_with_its_own_seed():
    """The discrepancy at a scale the fit did not see is a draw: ``score_runs``' seed is
    the one of ``expected_loss``, so scores at different seeds are different draws and
    each one is the posterior's own at that seed."""
    import dataclasses

    from bayesmix.observation import ObservationDesign, ObservationDraws

    truth = _truth()
    table, _ = simulate_runs(truth, n_mixtures=4, model_sizes=(4e8,), seed=5)
    post = _posterior_near_truth(truth, 50, run_sd=None)
    fitted = np.log(np.array([[5e7], [1e8], [2e8]]) / truth.scaling.n_ref)
    design = ObservationDesign(discrepancy=True, features=("log_n",), scale_points=fitted,
                               centre=fitted.mean(axis=0), lengthscale=1.0)
    rng = np.random.default_rng(0)
    post = dataclasses.replace(post, observation=ObservationDraws(
        design, disc_slope=rng.normal(0, 0.02, (50, 1, 3)), disc_amp=np.full(50, 0.02),
        disc_white=rng.normal(size=(50, 3, 3))))
    by_seed = {s: score_runs(post, table, seed=s) for s in (0, 1)}
    rows, doms = by_seed[1]["cell_row"], by_seed[1]["cell_domain"]
    own = post.expected_loss(table.weights, table.model_size, table.tokens, seed=1)[:, rows, doms].mean(axis=0)
    np.testing.assert_allclose(by_seed[1]["mean"], own, rtol=1e-12)
    assert not np.allclose(by_seed[0]["mean"], by_seed[1]["mean"], rtol=1e-6)


# --------------------------------------------------------------------------- held-out protocol


def _exact_posterior(truth, *, sigma=1e-4, n_eval=0):
    """Every draw is the truth itself (no spread); a tiny noise sd makes the 90 % interval
    a hair's breadth around the truth's expected loss."""
    from bayesmix.testing import posterior_around_truth

    return posterior_around_truth(truth, n_draws=50, rel_sd=0.0, sigma=sigma, n_eval=n_eval)


def _design(truth, mixtures, **design):
    """Inputs of runs of ``truth`` at ``mixtures`` (weights, sizes, tokens, run ids)."""
    table, _ = simulate_runs(truth, mixtures=mixtures, **design)
    return table


def _with_losses(design, losses, *, domains=DOMAINS, eval_losses=None, eval_domains=None):
    from bayesmix.data import RunTable

    return RunTable.from_arrays(design.weights[:, :len(domains)], design.model_size, design.tokens, losses,
                                domains, design.run_ids, eval_losses=eval_losses, eval_domains=eval_domains)


# Two mixtures leave "books" out: their books cells have weight 0.
HELDOUT_MIXTURES = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.7, 0.3, 0.0], [0.4, 0.6, 0.0]])


def test_heldout_mre_is_the_known_factor_and_positive_weight_cells_differ_where_weights_are_0():
    """Observed = truth / (1 - f) gives a relative error of exactly f per cell."""
    from bayesmix.compare import heldout_scores

    truth = _truth()
    post = _exact_posterior(truth)
    design = _design(truth, HELDOUT_MIXTURES, model_sizes=(1e8,), checkpoints=(1.0,))
    mu = truth.expected_loss(design.weights, design.model_size, design.tokens)
    f = np.where(design.weights > 0, 0.02, 0.10)
    scores = heldout_scores(post, _with_losses(design, mu / (1 - f)))
    block = scores.blocks["all_rows"]
    assert block["rows"] == 4
    assert block["mre_positive_weight"] == pytest.approx(0.02, rel=1e-9)
    assert block["mre_all_cells"] == pytest.approx((10 * 0.02 + 2 * 0.10) / 12, rel=1e-9)
    # Levels: log 0.98 for the two domains always in the mixture, the mean of two log 0.98
    # and two log 0.90 for books; within domains only books' cells are off its level, by
    # half the two logs' difference either way.
    books = (np.log(0.98) + np.log(0.90)) / 2
    assert block["mean_level_error"] == pytest.approx((2 * np.log(0.98) + books) / 3, rel=1e-9)
    half = (np.log(0.98) - np.log(0.90)) / 2
    assert block["mre_within_domains"] == pytest.approx(2 * (np.expm1(half) - np.expm1(-half)) / 12, rel=1e-9)
    assert block["coverage90"] == 0.0  # every cell 2 % or more away from a 0.02 %-wide interval
    np.testing.assert_array_equal(scores.cells["trained"], design.weights.ravel() > 0)
    assert not scores.cells["eval_only"].any() and "eval_domains" not in scores.blocks


def test_heldout_coverage_of_a_known_interval_and_missing_losses_skipped():
    from bayesmix.compare import heldout_scores

    truth = _truth()
    post = _exact_posterior(truth)
    design = _design(truth, HELDOUT_MIXTURES, model_sizes=(1e8,), checkpoints=(1.0,))
    mu = truth.expected_loss(design.weights, design.model_size, design.tokens)
    observed = mu / (1 - np.array([[0.0], [0.0], [0.0], [0.05]]))  # the last run 5 % off, the others exact
    observed[0, 0] = np.nan
    scores = heldout_scores(post, _with_losses(design, observed))
    assert len(scores.cells["observed"]) == 11
    assert scores.blocks["all_rows"]["coverage90"] == pytest.approx(8 / 11)
    assert scores.blocks["all_rows"]["mre_all_cells"] == pytest.approx(3 * 0.05 / 11, rel=1e-9)
    cells = scores.cells
    assert np.all(cells["lower"] < cells["mean"]) and np.all(cells["mean"] < cells["upper"])


def test_heldout_coverage_band_is_wide_where_the_cells_share_the_posteriors_spread():
    """Cell noise alone (independent cells) gives a narrow band around 0.9; a spread of the
    law's parameters, which every cell of a draw shares, a far wider one."""
    from bayesmix.compare import heldout_scores
    from bayesmix.testing import posterior_around_truth

    truth = _truth()
    design = _design(truth, HELDOUT_MIXTURES, model_sizes=(1e8, 2e8), checkpoints=(0.5, 1.0))
    table = _with_losses(design, truth.expected_loss(design.weights, design.model_size, design.tokens))
    noise_only = posterior_around_truth(truth, n_draws=2000, rel_sd=0.0, sigma=0.01)
    shared = posterior_around_truth(truth, n_draws=2000, rel_sd=0.1, sigma=1e-4)
    narrow = heldout_scores(noise_only, table).blocks["all_rows"]["coverage90_band"]
    wide = heldout_scores(shared, table).blocks["all_rows"]["coverage90_band"]
    # 48 independent cells: Binomial(48, 0.9) / 48 (5-95%: 0.833-0.958; the quantiles of
    # 2000 draws are within one step, 1/48, of it).
    from scipy import stats

    exact = stats.binom.ppf([0.05, 0.95], 48, 0.9) / 48
    np.testing.assert_allclose(narrow, exact, atol=1 / 48)
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0])


def test_heldout_blocks_split_final_checkpoints_and_model_sizes():
    """Final checkpoints 1 % (at 100M) and 3 % (at 200M) off, earlier checkpoints 5 % off."""
    from bayesmix.compare import heldout_scores

    truth = _truth()
    post = _exact_posterior(truth)
    design = _design(truth, HELDOUT_MIXTURES[:2], model_sizes=(1e8, 2e8), checkpoints=(0.5, 1.0))
    mu = truth.expected_loss(design.weights, design.model_size, design.tokens)
    final = np.asarray(design.final_checkpoint_mask)
    f = np.where(final, np.where(design.model_size == 1e8, 0.01, 0.03), 0.05)[:, None]
    blocks = heldout_scores(post, _with_losses(design, mu / (1 - f))).blocks
    assert blocks["all_rows"]["rows"] == 8 and blocks["final_checkpoints"]["rows"] == 4
    assert blocks["final_checkpoints"]["mre_all_cells"] == pytest.approx(0.02, rel=1e-9)
    assert blocks["all_rows"]["mre_all_cells"] == pytest.approx(0.035, rel=1e-9)
    assert set(blocks["by_model_size"]) == {"1e+08", "2e+08"}
    assert blocks["by_model_size"]["1e+08"]["mre_all_cells"] == pytest.approx(0.03, rel=1e-9)
    assert blocks["by_model_size"]["2e+08"]["mre_positive_weight"] == pytest.approx(0.04, rel=1e-9)
    assert "by_model_size" not in heldout_scores(post, _with_losses(design, mu), by_size=False).blocks


def test_heldout_evaluation_only_domains_are_scored_apart():
    """The mixture's domains 1 % off, the evaluation-only domain 30 % off: neither leaks
    into the other's figure; a law that does not predict it is scored on the same cells."""
    from bayesmix.compare import heldout_scores

    domains = ("a", "b", "c", "e")
    truth = default_truth("capacity_noise_transfer", domains, seed=0)
    post = _exact_posterior(truth, n_eval=1)
    full = np.hstack([HELDOUT_MIXTURES, np.zeros((4, 1))])
    design = _design(truth, full, model_sizes=(1e8,), checkpoints=(0.5, 1.0))
    mu = truth.expected_loss(design.weights, design.model_size, design.tokens)
    table = _with_losses(design, mu[:, :3] / 0.99, domains=domains[:3], eval_losses=mu[:, 3:] / 0.7,
                         eval_domains=("e",))
    scores = heldout_scores(post, table)
    assert scores.blocks["all_rows"]["mre_all_cells"] == pytest.approx(0.01, rel=1e-9)
    assert scores.blocks["by_model_size"]["1e+08"]["mre_all_cells"] == pytest.approx(0.01, rel=1e-9)
    e = scores.blocks["eval_domains"]["e"]
    assert e["all_rows"]["mre_all_cells"] == pytest.approx(0.3, rel=1e-9)
    assert e["final_checkpoints"]["rows"] == 4 and e["final_checkpoints"]["coverage90"] == 0.0
    assert math.isnan(e["all_rows"]["mre_positive_weight"])  # never in a mixture
    assert scores.cells["eval_only"].sum() == 8 and not scores.cells["trained"][scores.cells["eval_only"]].any()
    plain = _exact_posterior(default_truth("capacity_noise", domains[:3], seed=0))
    other = heldout_scores(plain, table)
    assert "eval_domains" not in other.blocks and len(other.cells["observed"]) == len(scores.cells["observed"]) - 8


def test_heldout_interval_is_summarise_and_agrees_with_score_runs_at_seed_0(multi_scale_table):
    """The one interval is the posterior's summarise (what `bayesmix predict` reports);
    score_runs draws the same one at seed 0."""
    from bayesmix.compare import heldout_scores

    post = _posterior_near_truth(_truth(), 60)
    table = multi_scale_table
    for seed in (0, 5):
        cells = heldout_scores(post, table, seed=seed).cells
        summary = post.summarise(table.weights, table.model_size, table.tokens, seed=seed)
        rows, doms = cells["cell_row"], cells["cell_domain"]
        np.testing.assert_array_equal(cells["lower"], summary["q05"][rows, doms])
        np.testing.assert_array_equal(cells["upper"], summary["q95"][rows, doms])
        np.testing.assert_array_equal(cells["mean"], summary["mean"][rows, doms])
    reference = score_runs(post, table, seed=0)
    cells = heldout_scores(post, table, seed=0).cells
    for key in ("cell_row", "cell_domain", "observed", "trained"):
        np.testing.assert_array_equal(cells[key], reference[key])
    for key in ("mean", "lower", "upper"):  # the same draws, reduced over arrays of another shape
        np.testing.assert_allclose(cells[key], reference[key], rtol=1e-13)
    assert not np.allclose(heldout_scores(post, table, seed=5).cells["lower"], reference["lower"], rtol=1e-6)


def _ranking_table(truth, observed_at_largest):
    """Final checkpoints of 5 mixtures at 400M with the given average losses' per-domain
    losses, plus decoys that would spoil the order: the same mixtures at 100M and their
    earlier checkpoints, observed in the reverse order."""
    rng = np.random.default_rng(3)
    mixtures = rng.dirichlet(np.ones(4), 5)
    mixtures[:, 3] = 0.0
    mixtures /= mixtures.sum(axis=1, keepdims=True)
    design = _design(truth, mixtures, model_sizes=(1e8, 4e8), checkpoints=(0.5, 1.0))
    mu = truth.expected_loss(design.weights, design.model_size, design.tokens)[:, :3]
    at = (design.model_size == 4e8) & np.asarray(design.final_checkpoint_mask)
    losses = mu * np.where(at, 1.0, 0.0)[:, None] + np.where(at, 0.0, 1.0)[:, None] * (10 - mu)
    losses[at] = observed_at_largest(mu[at])
    return design, mu, at, losses


def test_rank_mixtures_perfect_order_and_a_known_mis_pick():
    """Observed = truth: Spearman 1, regret 0. Then the predicted best made worse by 0.1
    nats on every domain: the regret is its new average minus the next best's."""
    from bayesmix.compare import rank_mixtures

    domains = ("a", "b", "c", "e")
    truth = default_truth("capacity_noise_transfer", domains, seed=0)
    post = _exact_posterior(truth, n_eval=1)  # predicts e too: never in the average
    design, mu, at, losses = _ranking_table(truth, lambda m: m)
    table = _with_losses(design, losses, domains=domains[:3], eval_losses=np.full((len(losses), 1), 3.0),
                         eval_domains=("e",))
    r = rank_mixtures(post, table)
    assert r["model_size"] == 4e8 and r["mixtures"] == 5
    np.testing.assert_array_equal(r["rows"], np.flatnonzero(at))
    np.testing.assert_allclose(r["predicted"], mu[at].mean(axis=1), rtol=1e-12)
    assert r["spearman"] == pytest.approx(1.0) and r["regret"] == 0.0 and r["observed_rank_of_top_pick"] == 1
    top = int(np.argmin(mu[at].mean(axis=1)))
    np.testing.assert_array_equal(r["p_best"], np.eye(5)[top])

    def spoil(m):
        m = m.copy()
        m[top] += 0.1
        return m

    design, mu, at, losses = _ranking_table(truth, spoil)
    table = _with_losses(design, losses, domains=domains[:3], eval_losses=np.full((len(losses), 1), 3.0),
                         eval_domains=("e",))
    r = rank_mixtures(post, table)
    avg = mu[at].mean(axis=1)
    assert r["top_pick"] == np.flatnonzero(at)[top]
    assert r["regret"] == pytest.approx(avg[top] + 0.1 - np.delete(avg, top).min(), rel=1e-9)
    assert r["regret"] > 0 and r["spearman"] < 1 and r["observed_rank_of_top_pick"] > 1
    assert r["best_observed"] == np.flatnonzero(at)[np.argmin(np.where(np.arange(5) == top, np.inf, avg))]
    small = rank_mixtures(post, table, model_size=1e8)  # the decoys: final checkpoints at 100M, reversed
    assert small["spearman"] == pytest.approx(-1.0)


def test_rank_mixtures_needs_two_complete_mixtures():
    from bayesmix.compare import rank_mixtures

    truth = _truth()
    design = _design(truth, HELDOUT_MIXTURES[:2], model_sizes=(1e8,), checkpoints=(1.0,))
    losses = truth.expected_loss(design.weights, design.model_size, design.tokens)
    losses[1, 0] = np.nan
    with pytest.raises(UsageError, match="at least two runs"):
        rank_mixtures(_exact_posterior(truth), _with_losses(design, losses))


# --------------------------------------------------------------------------- LOO


def _conjugate_fake_idata(seed=0, groups=8, per_group=3, chains=4, draws=1000):
    """Normal mean, known sd, conjugate prior: exact posterior draws and the exact
    leave-one-group-out predictive densities."""
    rng = np.random.default_rng(seed)
    sd, prior_sd = 0.5, 2.0
    y = rng.normal(1.0, sd, (groups, per_group))
    prec = 1 / prior_sd**2 + y.size / sd**2
    mean, var = (y.sum() / sd**2) / prec, 1 / prec
    theta = rng.normal(mean, math.sqrt(var), (chains, draws))
    exact = []
    for g in range(groups):
        rest = np.delete(y, g, axis=0)
        prec_g = 1 / prior_sd**2 + rest.size / sd**2
        m_g, v_g = (rest.sum() / sd**2) / prec_g, 1 / prec_g
        cov = sd**2 * np.eye(per_group) + v_g
        exact.append(stats.multivariate_normal.logpdf(y[g], mean=np.full(per_group, m_g), cov=cov))
    # one row per observation, the observations of a group are the "checkpoints" of a run;
    # spread them over two "domains" with a NaN cell to check that missing cells count 0
    rows = groups * per_group
    loglik = np.full((chains, draws, rows, 2), np.nan)
    obs = y.reshape(-1)
    loglik[..., 0] = stats.norm.logpdf(obs[None, None, :], loc=theta[..., None], scale=sd)
    loglik[..., 1] = 0.0
    run_ids = np.repeat([f"run-{g}" for g in range(groups)], per_group)
    idata = _az.from_draws({"theta": theta}, {}, {})
    _az.add_table_groups(idata, weights=np.full((rows, 2), 0.5), model_size=np.ones(rows), tokens=np.ones(rows),
                         run_ids=run_ids, losses=np.ones((rows, 2)), loglik=loglik, domains=("a", "b"))
    return idata, loglik, run_ids, np.array(exact)


def test_run_level_loo_sums_pointwise_and_matches_exact_logo():
    idata, loglik, run_ids, exact = _conjugate_fake_idata()
    summed, runs = run_level_loglik(idata)
    by_hand = np.stack([np.nansum(loglik[:, :, run_ids == r], axis=(2, 3)) for r in runs], axis=-1)
    np.testing.assert_allclose(summed, by_hand, rtol=1e-12)
    loo = run_level_loo(idata)
    assert list(loo["runs"]) == [f"run-{g}" for g in range(8)]
    assert loo["good_k"] == pytest.approx(min(1 - 1 / np.log10(4000), 0.7))
    assert np.all(loo["pareto_k"] < loo["good_k"])
    # 4000 exact posterior draws and well-behaved weights (k < 0.5): PSIS error is a few
    # 1e-3 nats per group; 0.03 is ~10x that
    np.testing.assert_allclose(loo["elpd_i"], exact, atol=0.03)
    assert loo["elpd"] == pytest.approx(exact.sum(), abs=0.1)


# --------------------------------------------------------------------------- stacking


def test_stacking_weights_dominant_and_mixed():
    rng = np.random.default_rng(0)
    good = rng.normal(-1.0, 0.1, 50)
    lpd = np.column_stack([good, good - 2.0])  # model 0 better on every point
    w = stacking_weights(lpd)
    assert w[0] == pytest.approx(1.0, abs=1e-6)
    # Each model explains a disjoint set of points (density ~0 on the others): the
    # optimum of sum log(w p1 + (1-w) p2) is w = n1 / (n1 + n2).
    n1, n2 = 30, 10
    lpd = np.vstack([np.tile([0.0, -30.0], (n1, 1)), np.tile([-30.0, 0.0], (n2, 1))])
    np.testing.assert_allclose(stacking_weights(lpd), [0.75, 0.25], atol=1e-4)


def test_stacking_weights_agree_with_arviz_compare():
    rng = np.random.default_rng(1)
    n, chains, draws = 40, 2, 500
    y = rng.normal(0, 1, n)
    theta_a = rng.normal(0.0, 0.1, (chains, draws, 1))
    ll_a = stats.norm.logpdf(y, loc=theta_a, scale=1.0)  # the true model
    ll_b = stats.norm.logpdf(y, loc=theta_a + 1.5, scale=1.0)  # biased
    arviz_w = _az.arviz_stacking_weights({"a": ll_a, "b": ll_b})
    loo_a = _az.psis_loo(ll_a)["elpd_i"]
    loo_b = _az.psis_loo(ll_b)["elpd_i"]
    ours = stacking_weights(np.column_stack([loo_a, loo_b]))
    assert arviz_w["a"] > 0.99 and ours[0] > 0.99
    np.testing.assert_allclose(ours, [arviz_w["a"], arviz_w["b"]], atol=1e-3)


# --------------------------------------------------------------------------- stacked posterior


def test_stacked_posterior_mixes_in_proportion_and_keeps_each_laws_noise():
    truth = _truth()
    a = _posterior_near_truth(truth, 100, seed=1, run_sd=None)
    b = _posterior_near_truth(truth, 60, seed=2, run_sd=None)
    b.draws["E"] = b.draws["E"] * 1.5
    b = Posterior(b.law, b.draws, b.scaling, b.domains, sigma=np.zeros_like(b.sigma))  # noiseless component
    mix = StackedPosterior({"a": a, "b": b, "c": a}, {"a": 0.75, "b": 0.25, "c": 0.0}, n_draws=80)
    assert mix.n_draws == 80 and set(mix.weights) == {"a", "b"}
    assert np.bincount(mix.component).tolist() == [60, 20]
    h = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    mu = mix.expected_loss(h, 1e8, 2e9)
    mu_a = a.expected_loss(h, 1e8, 2e9)
    mu_b = b.expected_loss(h, 1e8, 2e9)
    from_a, from_b = mix.component == 0, mix.component == 1
    np.testing.assert_allclose(mu[from_a], mu_a[mix.local_index[from_a]])
    np.testing.assert_allclose(mu[from_b], mu_b[mix.local_index[from_b]])
    noisy = mix.add_noise(mu, seed=3)
    np.testing.assert_array_equal(noisy[from_b], mu[from_b])  # b has sigma 0
    assert np.all(noisy[from_a] != mu[from_a])
    summary = mix.summarise(h, 1e8, 2e9)
    np.testing.assert_allclose(summary["mean"], 0.75 * mu_a.mean(0) + 0.25 * mu_b[mix.local_index[from_b]].mean(0), rtol=1e-3)
    sub = mix.subset([5, 70, 1])
    np.testing.assert_allclose(sub.expected_loss(h, 1e8, 2e9), mu[[5, 70, 1]])


@pytest.mark.slow
def test_stacked_posterior_symbolic_graph_equals_numeric():
    import pytensor
    import pytensor.tensor as pt

    truth = _truth("capacity")
    a = _posterior_near_truth(truth, 30, seed=1, run_sd=None)
    b = _posterior_near_truth(truth, 30, seed=2, run_sd=None)
    b.draws["E"] = b.draws["E"] * 1.5
    mix = StackedPosterior({"a": a, "b": b}, {"a": 0.5, "b": 0.5}, n_draws=20).subset([19, 0, 10, 3])
    h = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    hs = pt.matrix("h")
    sym = pytensor.function([hs], mix.symbolic_expected_loss(hs, 1e8, 2e9))(h)
    np.testing.assert_allclose(sym, mix.expected_loss(h, 1e8, 2e9), rtol=1e-10)
    # one mixture set per draw (as the decision layer evaluates per-draw optima)
    per_draw = np.stack([h, h[::-1], h, h[::-1]])
    h3 = pt.tensor3("h3")
    sym3 = pytensor.function([h3], mix.symbolic_expected_loss(h3, 1e8, 2e9))(per_draw)
    for s in range(4):
        np.testing.assert_allclose(sym3[s], mix.subset([s]).expected_loss(per_draw[s], 1e8, 2e9)[0], rtol=1e-10)


# --------------------------------------------------------------------------- pipeline (fake fits)


def test_compare_kfold_pipeline_ranks_the_true_law(multi_scale_table, fake_fitter, tmp_path):
    table = multi_scale_table.final_checkpoints()  # one token count per size: 'capacity' accepts it
    result = compare_laws(table, ["capacity_noise", "capacity", "exponential"] if _has("exponential")
                          else ["capacity_noise", "capacity"], cv="kfold:3",
                          executor=SerialExecutor(), save_fits=tmp_path / "fits")
    summary = result.summary()
    overall = summary[summary["domain"] == "all"].set_index("law")
    assert overall.loc["capacity_noise", "elpd_diff"] == 0.0
    assert overall.loc["capacity", "elpd_diff"] > 0
    assert overall.loc["capacity_noise", "n_runs"] == table.n_runs
    assert overall.loc["capacity_noise", "mre_trained"] < overall.loc["capacity", "mre_trained"]
    assert result.stacking_weights["capacity_noise"] > 0.9
    if "exponential" in overall.index:
        assert overall.loc["exponential", "status"] == "skipped"
        assert "model size" in overall.loc["exponential", "reason"]
    # per-domain rows
    assert set(summary["domain"]) >= {"all", *DOMAINS}
    # the range each law's coverage would fall in if its fits were right: overall rows only
    low, high = overall.loc["capacity_noise", "coverage90_low"], overall.loc["capacity_noise", "coverage90_high"]
    assert 0.0 <= low < high <= 1.0
    assert summary.loc[summary["domain"] != "all", "coverage90_low"].isna().all()
    assert f"cov90 expected {100 * low:.0f}-{100 * high:.0f}%" in result.format_table()
    # the stacking mixture loads the saved full-data fits through the JSON
    path = tmp_path / "cmp.json"
    result.save(json_path=path)
    assert is_comparison_file(path) and not is_comparison_file(tmp_path / "fits" / "capacity.nc")
    mix = stacked_posterior(path)
    assert mix.law.name.startswith("stacked(capacity_noise=")
    assert set(mix.components) <= {"capacity_noise", "capacity"}
    out = mix.summarise(table.weights[:2], 1e8, 2e9)
    assert out["mean"].shape == (2, 3)
    again = Comparison.load(path)
    pd.testing.assert_frame_equal(again.summary(), summary, check_dtype=False)
    # a law compared later, alone on the same folds, combines with the others
    alone = compare_laws(table, ["capacity"], cv="kfold:3", executor=SerialExecutor())
    rest = Comparison.load(path)
    rest.laws.pop("capacity")
    combined = Comparison.combine([Comparison(rest.scheme, rest.laws, rest.folds, rest.domains, rest.settings,
                                              rest.table_info), alone])
    np.testing.assert_allclose(combined.summary().set_index(["law", "domain"]).loc[("capacity", "all"), "elpd"],
                               overall.loc["capacity", "elpd"])
    with pytest.raises(UsageError, match="different cv scheme"):
        Comparison.combine([alone, compare_laws(table, ["capacity_noise"], cv="kfold:2", executor=SerialExecutor())])


def test_fits_start_most_expensive_law_first_and_results_keep_the_users_order(multi_scale_table, fake_fitter):
    table = multi_scale_table.final_checkpoints()
    cheap, costly = sorted(["capacity", "capacity_noise"], key=lambda name: get_law(name).relative_cost)
    assert get_law(cheap).relative_cost < get_law(costly).relative_cost
    result = compare_laws(table, [cheap, costly], cv="kfold:3", executor=SerialExecutor())
    called = [call["law"] for call in fake_fitter.calls]
    assert called == [costly] * 3 + [cheap] * 3
    # each law's folds keep their order (their seeds say which fold a fit was)
    folds = make_folds(table, parse_cv("kfold:3"))
    for name in (cheap, costly):
        seeds = [call["seed"] for call in fake_fitter.calls if call["law"] == name]
        assert seeds == [task_seed(0, name, "heldout", fold.index) for fold in folds]
    assert list(result.laws) == [cheap, costly]


def _has(law):
    from bayesmix.laws import available_laws

    return law in available_laws()


def test_compare_loo_refits_runs_with_bad_k(multi_scale_table, fake_fitter, monkeypatch):
    real = _az.psis_loo

    def flagged(loglik, **kwargs):
        out = real(loglik, **kwargs)
        out["pareto_k"] = np.full_like(out["pareto_k"], 0.1)  # fake draws: set k by hand
        out["pareto_k"][[2, 5]] = [0.9, 1.2]  # two runs with bad k
        return out

    monkeypatch.setattr(_az, "psis_loo", flagged)
    settings = CompareSettings(max_refits=1)
    result = compare_laws(multi_scale_table, ["capacity_noise"], cv="loo", settings=settings,
                          executor=SerialExecutor())
    res = result.laws["capacity_noise"]
    runs = list(pd.unique(multi_scale_table.run_ids))
    assert res.refitted_runs == [runs[5]]  # worst first, at most max_refits
    refit_call = fake_fitter.calls[-1]
    assert runs[5] not in refit_call["runs"] and len(refit_call["runs"]) == len(runs) - 1
    row = result.summary().query("domain == 'all'").iloc[0]
    assert row["pareto_k_bad"] == 2 and row["refitted"] == 1
    assert np.isnan(row["coverage90_low"])  # PSIS-weighted draws are no joint outcome
    assert "k>thr" in result.format_table()
    # each run is scored once, its cells once
    assert sorted(res.runs) == sorted(runs)
    assert len(res.cells) == np.isfinite(multi_scale_table.losses).sum()


def test_a_law_refused_on_a_training_fold_is_reported_not_fatal(multi_scale_table, fake_fitter, monkeypatch):
    from bayesmix.errors import UsageError as UE

    calls = {"n": 0}
    real = fake_fitter.__call__

    def sometimes_refuse(table, law, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise UE("law refuses this fold")
        return real(table, law, **kwargs)

    monkeypatch.setattr("bayesmix.inference.fit_law", sometimes_refuse)
    result = compare_laws(multi_scale_table, ["capacity_noise"], cv="kfold:3", executor=SerialExecutor())
    row = result.summary().query("domain == 'all'").iloc[0]
    assert row["status"] == "ok" and row["n_folds_skipped"] == 1
    assert row["n_runs"] == multi_scale_table.n_runs - len(make_folds(multi_scale_table, "kfold:3")[1].test_runs)
    assert "1 fold(s) skipped" in result.format_table()


def test_cli_compare_writes_csv_json_and_reports_refused_law(multi_scale_table, fake_fitter, run_cli, tmp_path):
    frame = multi_scale_table.final_checkpoints().to_frame()
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "cmp.csv"
    laws = "capacity_noise,capacity" + (",exponential" if _has("exponential") else "")
    code, stdout, stderr = run_cli("compare", path, "--laws", laws, "--cv", "kfold:2", "--out", out,
                                   "--jobs", "1", "--progress", "--draws", "10", "--tune", "10")
    assert code == 0, stderr
    assert "capacity_noise" in stdout and "wrote" in stdout
    assert stderr.count("] capacity") == 4  # one progress line per fit
    csv = pd.read_csv(out)
    assert {"law", "domain", "elpd", "elpd_diff", "weight", "mre_all", "mre_trained", "coverage90"} <= set(csv.columns)
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["cv"] == "kfold:2" and len(data["folds"]) == 2
    assert set(data["laws"]["capacity"]["cells"]) >= {"observed", "mean", "lower", "upper", "trained"}
    if _has("exponential"):
        assert "exponential" in stdout and "skipped" in stdout
        assert data["laws"]["exponential"]["status"] == "skipped"
    # --quiet: no progress
    code, _, stderr = run_cli("compare", path, "--laws", "capacity", "--cv", "kfold:2", "--jobs", "1", "--quiet")
    assert code == 0 and "] capacity" not in stderr
    code, _, stderr = run_cli("compare", path, "--laws", "nosuchlaw", "--jobs", "1")
    assert code == 2 and "unknown law" in stderr


# --------------------------------------------------------------------------- executors (real NUTS)


def _tiny_tasks():
    """Two folds of a small table, fitted by the cheapest law registered (the executor,
    not the law, is under test; the capacity law's graph takes ~30 s to compile)."""
    law = "linear" if _has("linear") else "capacity"
    truth = _truth("capacity", seed=4)
    table, _ = simulate_runs(truth, n_mixtures=6, model_sizes=(1e8, 2e8), seed=5)
    settings = CompareSettings(draws=30, tune=30, chains=2, map_starts=1, seed=3, sampler="pymc")
    folds = make_folds(table, "kfold:2", seed=0)
    return [FitTask(table=table, law=law, kind="heldout", fold=f, settings=settings) for f in folds]


@pytest.mark.slow
def test_local_processes_and_dask_cluster_give_identical_results():
    distributed = pytest.importorskip("distributed")
    tasks = _tiny_tasks()
    # PyTensor 3's numba code compiled afresh and the same code loaded from its disk cache
    # can differ in the last bit of the log density, which sends L-BFGS and the chains
    # elsewhere: identical results need the compiled code in the cache first, as after any
    # earlier run. Under test here is the executor, so the cache is filled beforehand.
    SerialExecutor().map(run_task, tasks)
    with make_executor(jobs=2) as local:
        seen = []
        local_results = local.map(run_task, tasks, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with make_executor(dask=cluster) as dask_ex:
            dask_results = dask_ex.map(run_task, tasks)
    for a, b in zip(local_results, dask_results):
        assert a.status == b.status == "ok", (a.reason, b.reason)
        np.testing.assert_array_equal(a.scores["run_lpd"], b.scores["run_lpd"])
        np.testing.assert_array_equal(a.scores["mean"], b.scores["mean"])
        assert a.scores["runs"] == b.scores["runs"]


def test_a_free_worker_keeps_to_what_it_has_prepared_unless_one_key_outweighs_a_worker():
    from bayesmix.executors import next_task

    keys = ["additive"] * 3 + ["exponential"] * 2 + ["linear"]
    costs = [10.0] * 3 + [3.0] * 2 + [1.0]
    everything = list(range(6))
    # A worker that has the exponential law keeps to it, though additive fits come first.
    assert next_task(everything[1:], keys, costs, {"exponential"}, [{"additive"}, {"exponential"}]) == 3
    # A fresh worker while another runs the additive law: its two pending fits (20 of 27)
    # are more than one of two workers' share, so it joins it rather than start a new law.
    assert next_task(everything[1:], keys, costs, set(), [{"additive"}, set()]) == 1
    # With the additive law's pending work no more than a worker's share, it starts a new law.
    assert next_task([2, 5], keys, [1.0] * 6, set(), [{"additive"}, set()]) == 5
    # Nothing of its own, no key outweighs a worker, every key taken: the first task.
    assert next_task([2, 5], keys, [1.0] * 6, {"exponential"}, [{"additive", "linear"}, {"exponential"}]) == 2
    # No keys at all (no affinity given): the caller's order.
    assert next_task([3, 1], [None] * 6, [1.0] * 6, {None}, [{None}, {None}]) == 3


def test_local_workers_return_results_in_task_order_with_affinity():
    with make_executor(jobs=2) as local:
        seen = []
        got = local.map(abs, [-3, 4, -5, 6, -7], on_result=lambda i, r: seen.append(i),
                        affinity=lambda task: task % 2, cost=abs)
        # The workers are kept: a second call reuses them.
        again = local.map(abs, [-1, 2])
    assert got == [3, 4, 5, 6, 7] and sorted(seen) == [0, 1, 2, 3, 4] and again == [1, 2]


def test_mre_over_trained_cells_counts_only_cells_with_positive_weight():
    """Regression: the trained-cells MRE must use the mask (it once equalled the all-cells MRE)."""
    import pandas as pd

    from bayesmix.compare.comparison import _cell_metrics

    cells = pd.DataFrame({
        "observed": [1.0, 1.0, 2.0, 2.0],
        "mean": [1.1, 1.0, 2.0, 3.0],  # relative errors 0.1, 0, 0, 0.5
        "lower": [0.5, 0.5, 0.5, 2.5], "upper": [2.5, 2.5, 2.5, 3.5],  # the last misses its observation
        "trained": [True, True, True, False],
    })
    metrics = _cell_metrics(cells)
    assert metrics["n_cells_trained"] == 3
    assert metrics["mre_all"] == pytest.approx(0.6 / 4)
    assert metrics["mre_trained"] == pytest.approx(0.1 / 3)
    assert metrics["coverage90"] == pytest.approx(0.75)


def test_an_interrupted_comparison_resumes_from_its_work_folder(multi_scale_table, fake_fitter, tmp_path):
    table = multi_scale_table.final_checkpoints()
    work = tmp_path / "parts"
    laws = ["capacity_noise", "capacity"]
    real_call = FakeFitter.__call__

    def stop_at_third_fit(self, *args, **kwargs):
        if len(self.calls) == 2:
            raise KeyboardInterrupt  # the user stops the comparison during the third fit
        return real_call(self, *args, **kwargs)

    FakeFitter.__call__ = stop_at_third_fit
    try:
        with pytest.raises(KeyboardInterrupt):
            compare_laws(table, laws, cv="kfold:2", executor=SerialExecutor(), work_dir=work)
    finally:
        FakeFitter.__call__ = real_call
    assert len(list(work.glob("*.pkl"))) == 2  # the two finished fits were kept
    resumed = compare_laws(table, laws, cv="kfold:2", executor=SerialExecutor(), work_dir=work)
    assert len(fake_fitter.calls) == 2 + 2  # only the two missing fits ran
    fresh = compare_laws(table, laws, cv="kfold:2", executor=SerialExecutor())
    pd.testing.assert_frame_equal(resumed.summary(), fresh.summary())
    # anything that changes a fit's result changes its key: a new seed reruns every fit
    calls = len(fake_fitter.calls)
    compare_laws(table, laws, cv="kfold:2", executor=SerialExecutor(), work_dir=work,
                 settings=CompareSettings(seed=1))
    assert len(fake_fitter.calls) == calls + 4


def test_cli_compare_keeps_parts_only_until_the_result_is_written(multi_scale_table, fake_fitter, run_cli, tmp_path):
    path = tmp_path / "runs.csv"
    multi_scale_table.final_checkpoints().to_frame().to_csv(path, index=False)
    out = tmp_path / "cmp.csv"
    args = ("compare", path, "--laws", "capacity", "--cv", "kfold:2", "--out", out, "--jobs", "1", "--quiet")
    code, _, stderr = run_cli(*args)
    assert code == 0, stderr
    assert out.exists() and not (tmp_path / "cmp.parts").exists()
    work = tmp_path / "kept"
    code, _, stderr = run_cli(*args, "--work-dir", work)
    assert code == 0, stderr
    calls = len(fake_fitter.calls)
    code, _, stderr = run_cli(*args, "--work-dir", work)
    assert code == 0 and len(fake_fitter.calls) == calls  # every fit came from the kept folder
