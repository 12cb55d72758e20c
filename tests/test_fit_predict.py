"""fit / predict: the CLI and the estimator API, on simulated truths."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesmix.cli import main
from bayesmix.inference import Fit
from bayesmix.simulate import default_truth, simulate_runs
from bayesmix.testing import fit_from_posterior, posterior_around_truth


@pytest.fixture(scope="module")
def truth_and_table():
    truth = default_truth("capacity_noise", seed=3)
    table, truth = simulate_runs(truth, n_mixtures=6, model_sizes=(1e8, 3e8), seed=3)
    return truth, table


@pytest.fixture(scope="module")
def fake_fit_path(tmp_path_factory, truth_and_table):
    truth, _ = truth_and_table
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    fit_from_posterior(posterior_around_truth(truth, n_draws=100, rel_sd=0.01, seed=1)).save(path)
    return path


def test_predict_runs_cli_adds_columns_and_tracks_truth(tmp_path, truth_and_table, fake_fit_path, capsys):
    truth, table = truth_and_table
    runs_csv = tmp_path / "runs.csv"
    table.to_frame().to_csv(runs_csv, index=False)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(fake_fit_path), "--runs", str(runs_csv), "--out", str(out)]) == 0
    pred = pd.read_csv(out)
    assert len(pred) == table.n_rows
    for d in truth.domains:
        for prefix in ("pred", "sd", "q05", "q95"):
            assert f"{prefix}_{d}" in pred.columns
    true = truth.expected_loss(table.weights, table.model_size, table.tokens)
    got = pred[[f"pred_{d}" for d in truth.domains]].to_numpy()
    # Draws scatter 1% around the truth in each parameter: predictions within 3%.
    np.testing.assert_allclose(got, true, rtol=0.03)
    lo = pred[[f"q05_{d}" for d in truth.domains]].to_numpy()
    hi = pred[[f"q95_{d}" for d in truth.domains]].to_numpy()
    assert np.all(lo < got) and np.all(got < hi)


def test_predict_scores_a_table_with_losses_against_them_whatever_its_column_order(tmp_path, truth_and_table,
                                                                                   fake_fit_path, capsys,
                                                                                   monkeypatch):
    """Losses 2% above the truth's expected loss: an MRE of 2% (1/1.02 of the observed
    loss, 1.96%) in whichever order the table's domain columns come; a table without
    losses gets no score. The columns and the score come from one set of predictive
    draws (the posterior summarised once)."""
    from bayesmix import posterior as posterior_module
    from bayesmix.data import RunTable

    summarised = []
    summary = posterior_module.predictive_summary
    monkeypatch.setattr(posterior_module, "predictive_summary",
                        lambda *args, **kwargs: summarised.append(1) or summary(*args, **kwargs))

    truth, table = truth_and_table
    mu = truth.expected_loss(table.weights, table.model_size, table.tokens)
    reversed_order = list(range(table.n_domains))[::-1]
    shifted = RunTable.from_arrays(table.weights, table.model_size, table.tokens, mu * 1.02, truth.domains,
                                   table.run_ids).with_domain_order(reversed_order)
    runs_csv = tmp_path / "runs.csv"
    shifted.to_frame().to_csv(runs_csv, index=False)
    assert main(["predict", str(fake_fit_path), "--runs", str(runs_csv), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert f"scored against the {table.n_rows} rows' logged losses" in err
    assert len(summarised) == 1
    mre = float(err.split("MRE ")[1].split("%")[0])
    assert mre == pytest.approx(100 * 0.02 / 1.02, abs=0.3)  # draws scatter 1% around the truth
    assert "90% coverage" in err and "if the fit were right" in err
    inputs_only = tmp_path / "grid.csv"
    shifted.to_frame().drop(columns=[f"loss_{d}" for d in truth.domains]).to_csv(inputs_only, index=False)
    assert main(["predict", str(fake_fit_path), "--runs", str(inputs_only), "--out", str(tmp_path / "q.csv")]) == 0
    assert "scored against" not in capsys.readouterr().err


def test_a_domain_order_must_be_a_permutation(truth_and_table):
    from bayesmix.errors import UsageError

    _, table = truth_and_table
    order = [2, 0, 3, 1]
    moved = table.with_domain_order(order)
    assert moved.domains == tuple(table.domains[j] for j in order)
    np.testing.assert_array_equal(moved.losses[:, 0], table.losses[:, 2])
    np.testing.assert_array_equal(moved.weights[:, 1], table.weights[:, 0])
    with pytest.raises(UsageError, match="each of the 4 domains once"):
        table.with_domain_order([0, 0, 1, 2])


def test_predict_single_point(truth_and_table, fake_fit_path, capsys):
    truth, _ = truth_and_table
    mixture = ",".join(f"{d}={w}" for d, w in zip(truth.domains, [0.4, 0.3, 0.2, 0.1]))
    assert main(["predict", str(fake_fit_path), "--mixture", mixture, "--model-size", "7B",
                 "--tokens", "140B"]) == 0
    out = capsys.readouterr().out
    assert "pred_web" in out
    value = truth.expected_loss(np.array([[0.4, 0.3, 0.2, 0.1]]), 7e9, 1.4e11)[0, 0]
    assert f"{value:.2g}"[:3] in out


def _budget_rows(text: str, domains) -> dict:
    """The budget table's rows (four parts and the total, % of the loss) by domain."""
    return {line.split()[0]: [float(v) for v in line.split()[1:]] for line in text.splitlines()
            if line.split() and line.split()[0] in domains and len(line.split()) == 6}


def test_predict_explain_prints_each_domains_budget_whose_parts_add_in_variance(truth_and_table, fake_fit_path,
                                                                                 capsys):
    """``--explain`` with a single point: one row per domain with the four parts and the
    total (% of the loss), the total the root of the parts' squares, and the parts those
    of :func:`bayesmix.uncertainty.uncertainty_budget` on the same fit."""
    from bayesmix.cli.common import load_posterior
    from bayesmix.uncertainty import PARTS, uncertainty_budget

    truth, _ = truth_and_table
    mixture = ",".join(f"{d}={w}" for d, w in zip(truth.domains, [0.4, 0.3, 0.2, 0.1]))
    assert main(["predict", str(fake_fit_path), "--mixture", mixture, "--model-size", "7B",
                 "--tokens", "140B", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "where each domain's predictive sd comes from" in out
    rows = _budget_rows(out, truth.domains)
    assert set(rows) == set(truth.domains)
    budget = uncertainty_budget(load_posterior(str(fake_fit_path)), np.array([0.4, 0.3, 0.2, 0.1]), 7e9, 1.4e11)
    for k, domain in enumerate(truth.domains):
        *parts, total = rows[domain]
        np.testing.assert_allclose(parts, [100 * budget[p][0, k] for p in PARTS], atol=0.006)
        assert total == pytest.approx(np.sqrt(np.sum(np.square(parts))), abs=0.02)


@pytest.mark.parametrize("candidates", [False, True])
def test_recommend_explain_prints_the_budget_of_the_mixture_it_recommends(truth_and_table, fake_fit_path, tmp_path,
                                                                           capsys, candidates):
    """``recommend --explain``: the uncertainty budget at the target of the recommended
    mixture (read back from ``--out``), or with ``--candidates`` of the best-ranked one,
    named; the same figures as :func:`bayesmix.uncertainty.uncertainty_budget` there."""
    import json

    from bayesmix.cli.common import load_posterior
    from bayesmix.uncertainty import PARTS, uncertainty_budget

    truth, _ = truth_and_table
    out = tmp_path / "rec.json"
    argv = ["recommend", str(fake_fit_path), "--target-model-size", "7B", "--target-tokens", "140B",
            "--max-draws", "50", "--restarts", "1", "--explain", "--out", str(out)]
    if candidates:
        mixes = tmp_path / "mixes.csv"
        mixes.write_text("name," + ",".join(truth.domains) + "\nflat,0.25,0.25,0.25,0.25\nskewed,0.7,0.1,0.1,0.1\n")
        argv += ["--candidates", str(mixes)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    chosen = result["candidates"][0] if candidates else result
    weights = np.array([chosen["mixture"][d] for d in truth.domains])
    header = text.split("where each domain's predictive sd comes from")[0].splitlines()[-1]
    assert header.startswith(f"the best-ranked candidate, {chosen['name']}," if candidates
                             else "the recommended mixture at 7B")
    rows = _budget_rows(text.split(header)[1], truth.domains)
    assert set(rows) == set(truth.domains)
    budget = uncertainty_budget(load_posterior(str(fake_fit_path)), weights, 7e9, 1.4e11)
    for k, domain in enumerate(truth.domains):
        np.testing.assert_allclose(rows[domain][:-1], [100 * budget[p][0, k] for p in PARTS], atol=0.006)


def test_recommend_explain_refuses_a_fit_it_cannot_explain_before_optimising(fake_fit_path, tmp_path, capsys,
                                                                             monkeypatch):
    """A fit whose budget's parts do not add (a reducible discrepancy) is refused at once,
    with the reason, exit status 2 and nothing written, not after the optimisation."""
    import bayesmix.uncertainty

    monkeypatch.setattr(bayesmix.uncertainty, "budget_refusal", lambda posterior: "the parts do not add here")
    out = tmp_path / "rec.json"
    assert main(["recommend", str(fake_fit_path), "--target-model-size", "7B", "--target-tokens", "140B",
                 "--explain", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "--explain: the parts do not add here" in captured.err and "Traceback" not in captured.err
    assert "recommended mixture" not in captured.out and not out.exists()


@pytest.mark.parametrize("argv_tail, message", [
    (["--mixture", "nope=1.0", "--model-size", "1B", "--tokens", "1B"], "unknown domains"),
    (["--mixture", "web=0.5,code=0.2", "--model-size", "1B", "--tokens", "1B"], "sum to"),
    (["--mixture", "web=1.0", "--model-size", "seven", "--tokens", "1B"], "cannot read model size"),
    (["--mixture", "web=1.0"], "needs --model-size"),
    ([], "give --runs"),
    (["--runs", "runs.csv", "--explain"], "--explain explains one prediction"),
])
def test_predict_bad_input_exits_2(fake_fit_path, capsys, argv_tail, message):
    assert main(["predict", str(fake_fit_path), *argv_tail]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_fit_file_is_a_clean_error(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "absent.nc"), "--mixture", "a=1", "--model-size", "1B",
                 "--tokens", "1B"]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_fit_cli_writes_complete_inference_data(tmp_path, capsys):
    truth = default_truth("capacity", seed=5)
    table, _ = simulate_runs(truth, n_mixtures=8, model_sizes=(1e8, 2e8, 4e8), seed=5)
    runs_csv = tmp_path / "runs.csv"
    table.to_frame().to_csv(runs_csv, index=False)
    out = tmp_path / "fit.nc"
    code = main(["fit", str(runs_csv), "--law", "capacity", "--out", str(out), "--draws", "150",
                 "--tune", "150", "--extend-draws", "1", "--target-accept", "0.9", "--chains", "2", "--seed", "1",
                 "--max-tree-depth", "9", "--quiet", "--allow-warnings"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "max R-hat" in printed and "divergences" in printed
    fit = Fit.load(out)
    idata = fit.idata
    for group in ("posterior", "sample_stats", "observed_data", "constant_data", "log_likelihood"):
        assert hasattr(idata, group), group
    assert idata.log_likelihood["loss"].dims == ("chain", "draw", "row", "domain")
    attrs = fit.attrs
    assert attrs["law"] == "capacity" and attrs["seed"] == 1
    assert attrs["settings"]["target_accept"] == attrs["diagnostics"]["target_accept"] == 0.9
    # The law's mass matrix, filled in for "auto", recorded and printed.
    assert attrs["settings"]["mass_matrix"] == attrs["diagnostics"]["mass_matrix"] == "low_rank"
    assert "mass matrix" in printed and "low-rank" in printed
    # The tree depth asked for, recorded and printed.
    assert attrs["settings"]["max_tree_depth"] == attrs["diagnostics"]["max_tree_depth"] == 9
    assert "capped at depth 9" in printed or "cut at depth 9" in printed
    assert attrs["fingerprint"] == table.fingerprint()
    assert set(attrs["versions"]) >= {"pymc", "arviz", "bayesmix"}
    assert attrs["diagnostics"]["solver_residual"] < 1e-8
    assert 0 < attrs["diagnostics"]["H_to_smallest_size"] < 0.5  # the truth's floor is far below
    assert "H / smallest N" in printed
    # Prediction from the saved file is close to the truth inside the design.
    post = fit.posterior()
    mu = post.expected_loss(table.weights, table.model_size, table.tokens).mean(axis=0)
    true = truth.expected_loss(table.weights, table.model_size, table.tokens)
    assert np.max(np.abs(mu / true - 1)) < 0.02  # noise sd is 1% per cell


def test_numpyro_sampler_without_jax_is_a_clean_error(tmp_path, capsys, monkeypatch, truth_and_table):
    """numpyro is an optional extra: without it the CLI says how to install it (exit 2)."""
    import sys

    monkeypatch.setitem(sys.modules, "numpyro", None)  # import numpyro -> ImportError
    _, table = truth_and_table
    runs = tmp_path / "runs.csv"
    table.to_frame().to_csv(runs, index=False)
    assert main(["fit", str(runs), "--sampler", "numpyro", "--draws", "10", "--tune", "10",
                 "--out", str(tmp_path / "fit.nc")]) == 2
    err = capsys.readouterr().err
    assert "bayesmix[numpyro]" in err and "Traceback" not in err
    assert not (tmp_path / "fit.nc").exists()


@pytest.mark.slow
def test_map_posterior_is_a_point_fit_that_predicts_new_mixtures_of_its_truth():
    from bayesmix.inference import map_posterior

    truth = default_truth("chinchilla_domain", ("a", "b", "c"), seed=2, noise_sd=0.003)
    table, _ = simulate_runs(truth, n_mixtures=10, model_sizes=(5e7, 1e8, 2e8), tokens_per_param=20.0,
                             seed=1)
    new, _ = simulate_runs(truth, n_mixtures=4, model_sizes=(1.5e8,), tokens_per_param=20.0, seed=9)
    post = map_posterior(table, "chinchilla_domain", starts=2, seed=0)
    assert post.n_draws == 1 and post.sigma.shape == (1, 3)
    predicted = post.expected_loss(new.weights, new.model_size, new.tokens)[0]
    expected = truth.expected_loss(new.weights, new.model_size, new.tokens)
    # an interpolation in N between fitted sizes: with 0.3% noise on 30 runs the point fit
    # must reproduce the true losses far better than the 5-30% the mixture moves them
    assert np.max(np.abs(predicted / expected - 1)) < 0.01
    # the point's noise scale is of the simulated order (log-loss sd 0.003), not the prior's
    assert np.all(post.sigma < 0.02)


@pytest.mark.slow  # three nutpie fits (fit_law), two compilations
@pytest.mark.parametrize("precondition", ["off", "on"])
def test_a_law_compiled_once_samples_new_data_exactly_as_a_fresh_compile(monkeypatch, precondition):
    """The folds of a comparison reuse one nutpie compilation per law and process; the
    draws on the second data set must be those of a fresh compilation, bit for bit, also
    in whitened coordinates (whose centre and factor are data of the compiled model)."""
    from bayesmix import nutpie_backend, nutpie_compile
    from bayesmix.inference import build_model, fit_law
    from bayesmix.laws import get_law
    from bayesmix.nutpie_backend import model_signature

    truth = default_truth("chinchilla_domain", ("a", "b", "c"), seed=4, noise_sd=0.01)
    table, _ = simulate_runs(truth, n_mixtures=8, model_sizes=(5e7, 2e8), tokens_per_param=20.0, seed=4)
    runs = np.asarray(table.run_ids, dtype=object)
    first = table.select(runs != runs[0])  # other runs, other references (loss, N, D)
    second = table.select(~np.isin(runs, runs[-3:]))
    law = get_law("chinchilla_domain")
    assert model_signature(build_model(law, first)[0]) == model_signature(build_model(law, second)[0])
    # a changed prior is a changed constant of the graph: another model, another compile
    other = {"E": {"dist": "LogNormal", "mu": -0.4, "sigma": 0.6}}
    assert model_signature(build_model(law, second, other)[0]) != model_signature(build_model(law, second)[0])
    # the same law on four domains has parameters of other shapes: another model
    four, _ = simulate_runs(default_truth("chinchilla_domain", ("a", "b", "c", "d"), seed=4, noise_sd=0.01),
                            n_mixtures=8, model_sizes=(5e7, 2e8), tokens_per_param=20.0, seed=4)
    assert model_signature(build_model(law, four)[0]) != model_signature(build_model(law, second)[0])

    compiles = []
    original = nutpie_compile.compile_pymc_model
    monkeypatch.setattr(nutpie_compile, "compile_pymc_model", lambda *a, **k: compiles.append(1) or original(*a, **k))
    settings = dict(draws=60, tune=60, chains=2, seed=5, map_starts=1, progressbar=False, sampler="nutpie",
                    extend_draws=1,
                    precondition=precondition)
    monkeypatch.setattr(nutpie_backend, "_COMPILED_MODELS", {})
    fresh = fit_law(second, law, **settings)
    monkeypatch.setattr(nutpie_backend, "_COMPILED_MODELS", {})
    fit_law(first, law, **settings)
    reused = fit_law(second, law, **settings)
    assert len(compiles) == 2  # fresh, then first; the second data set reused the latter
    for name in ("E", "A", "alpha", "B", "beta", "sigma"):
        np.testing.assert_array_equal(reused.idata.posterior[name].values, fresh.idata.posterior[name].values)


def test_laplace_factor_inverts_the_hessian_of_a_gaussian():
    """For a Gaussian log density with precision P, the factor L has L L^T = P^-1
    (central differences of a linear gradient are exact up to rounding)."""
    from bayesmix.nutpie_backend import laplace_factor

    rng = np.random.default_rng(2)
    root = rng.normal(size=(5, 5))
    precision = root @ root.T + 0.1 * np.eye(5)
    mode = rng.normal(size=5)

    def logp_dlogp(x):
        return -0.5 * (x - mode) @ precision @ (x - mode), -precision @ (x - mode)

    factor = laplace_factor(logp_dlogp, mode + rng.normal(size=5))
    np.testing.assert_allclose(factor @ factor.T, np.linalg.inv(precision), rtol=1e-6, atol=1e-9)
    assert laplace_factor(lambda x: (np.nan, np.full(5, np.nan)), mode) is None


@pytest.mark.slow  # two nutpie fits (fit_law)
def test_a_warm_started_whitened_fit_agrees_with_its_cold_start():
    """Campaign refits start at a previous posterior mean (no MAP search); whitening is
    then centred there. Both fits sample the same posterior: their means agree within one
    posterior standard deviation: with a bulk ESS of at least 50 per fit (asserted) the
    difference of the two means has a Monte Carlo sd of at most 0.2 posterior sd."""
    from bayesmix.inference import fit_law

    # A law whose posterior mixes well in 150 draws, so that the check can be tight; the
    # law-only observation model, whose few coordinates the whitening covers.
    truth = default_truth("linear", ("a", "b", "c"), seed=6, noise_sd=0.01)
    table, _ = simulate_runs(truth, n_mixtures=8, model_sizes=(5e7, 2e8), tokens_per_param=20.0, seed=6)
    settings = dict(draws=150, tune=150, chains=2, seed=1, map_starts=1, progressbar=False, sampler="nutpie",
                    extend_draws=1,
                    precondition="on", discrepancy="off")
    cold = fit_law(table, "linear", **settings)
    assert "precond_z" not in cold.idata.posterior and "W" in cold.idata.posterior
    means = {name: values.mean(axis=0) for name, values in cold.posterior().draws.items()}
    warm = fit_law(table, "linear", init=means, scaling=cold.scaling, **settings)
    assert min(cold.diagnostics["min_ess_bulk"], warm.diagnostics["min_ess_bulk"]) >= 50
    for name in ("W", "w_n", "w_d"):
        a, b = cold.posterior().draws[name], warm.posterior().draws[name]
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < a.std(0)), name


@pytest.mark.slow
def test_trained_domains_without_logged_losses_fit_and_predict(tmp_path, capsys):
    # RegMix's layout: every domain trained, only some losses logged.
    truth = default_truth("chinchilla_domain", ("a", "b", "c", "d", "e"), seed=1)
    table, _ = simulate_runs(truth, n_mixtures=8, model_sizes=(1e8, 3e8), seed=2)
    runs_csv = tmp_path / "runs.csv"
    table.to_frame().drop(columns=["loss_d", "loss_e"]).to_csv(runs_csv, index=False)
    fit_path, pred_path = tmp_path / "fit.nc", tmp_path / "pred.csv"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Mean of empty slice")  # the unlogged columns are all NaN
        code = main(["fit", str(runs_csv), "--law", "chinchilla_domain", "--out", str(fit_path), "--draws",
                     "50", "--tune", "50", "--chains", "2", "--seed", "0", "--quiet", "--allow-warnings"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "no likelihood term" in err
    assert main(["predict", str(fit_path), "--runs", str(runs_csv), "--out", str(pred_path)]) == 0
    pred = pd.read_csv(pred_path)
    for d in ("d", "e"):
        for prefix in ("pred", "sd", "q05", "q95"):
            assert np.isfinite(pred[f"{prefix}_{d}"]).all(), (prefix, d)


def test_fit_settings_given_to_a_fit_are_not_changed_by_it():
    """Keyword overrides and the law's own defaults go into a copy: a caller that reuses
    its FitSettings for another law or another fit gets what it set."""
    from bayesmix.inference import FitSettings, _settings_for
    from bayesmix.laws import get_law

    mine = FitSettings(draws=300)
    used = _settings_for(get_law("capacity_noise"), mine, {"tune": 77})
    assert (used.draws, used.tune, used.target_accept) == (300, 77, get_law("capacity_noise").target_accept)
    assert mine == FitSettings(draws=300)
    with pytest.raises(TypeError, match="unknown fit setting 'drawz'"):
        _settings_for(get_law("linear"), mine, {"drawz": 1})


@pytest.mark.parametrize("law_name, setting, expected", [
    ("capacity_noise", "auto", "low_rank"), ("linear", "auto", "diag"), ("linear", "low_rank", "low_rank"),
    ("capacity_noise", "diag", "diag"), (None, "auto", "low_rank")])
def test_nutpie_samples_with_the_laws_mass_matrix_unless_one_is_given(monkeypatch, law_name, setting, expected):
    """"auto" takes the law's (Law.mass_matrix; settings not filled in for a law, the
    default law's); any other setting is what nutpie gets; an unknown one is refused."""
    import types

    import nutpie

    from bayesmix.errors import UsageError
    from bayesmix.inference import FitSettings
    from bayesmix.laws import get_law
    from bayesmix.nutpie_backend import _sample_nutpie

    given = {}
    monkeypatch.setattr(nutpie, "sample", lambda compiled, **kwargs: given.update(kwargs))
    settings = FitSettings(mass_matrix=setting)
    settings = settings.for_law(get_law(law_name)) if law_name else settings
    _sample_nutpie(types.SimpleNamespace(n_dim=3), settings, dict(draws=5, tune=5, chains=2, random_seed=0,
                                                                   progressbar=False))
    assert given["adaptation"] == expected
    with pytest.raises(UsageError, match="mass_matrix must be one of auto, low_rank, diag"):
        FitSettings(mass_matrix="dense").check()


@pytest.mark.parametrize("law_name, setting, expected", [
    ("capacity_noise", None, 7), ("linear", None, 10), ("linear", 6, 6), ("capacity_noise", 10, 10), (None, None, 10)])
def test_nutpie_caps_trees_at_the_laws_depth_unless_one_is_given(monkeypatch, law_name, setting, expected):
    """None takes the law's (Law.max_tree_depth; settings not filled in for a law, the
    default law's); a given depth is what nutpie gets; the pilot keeps its own; a depth
    that is not a positive integer is refused."""
    import types

    import nutpie

    from bayesmix import pilot
    from bayesmix.errors import UsageError
    from bayesmix.inference import FitSettings
    from bayesmix.laws import get_law
    from bayesmix.nutpie_backend import _sample_nutpie

    given = {}
    monkeypatch.setattr(nutpie, "sample", lambda compiled, **kwargs: given.update(kwargs))
    settings = FitSettings(max_tree_depth=setting)
    settings = settings.for_law(get_law(law_name)) if law_name else settings
    settings.check()
    run = dict(draws=5, tune=5, chains=2, random_seed=0, progressbar=False)
    _sample_nutpie(types.SimpleNamespace(n_dim=3), settings, run)
    assert given["maxdepth"] == expected
    _sample_nutpie(types.SimpleNamespace(n_dim=3), settings, run, maxdepth=pilot.PILOT_MAXDEPTH)
    assert given["maxdepth"] == pilot.PILOT_MAXDEPTH
    for wrong in (0, 2.5, 21):
        with pytest.raises(UsageError, match="max_tree_depth must be an integer from 1 to 20"):
            FitSettings(max_tree_depth=wrong).check()


# ---------------------------------------------------------------------------- sampler backends
def test_every_sampler_backend_has_the_interface_and_its_name_is_a_choice(monkeypatch):
    """One object per backend (bayesmix.samplers), found by its name; the choices the
    settings and the command line take are the registry's names, in its order."""
    import sys

    from bayesmix import fit_settings, inference, samplers
    from bayesmix.acquire import NutsRefit
    from bayesmix.compare import CompareSettings
    from bayesmix.errors import UsageError

    assert fit_settings.SAMPLERS == inference.SAMPLERS == tuple(samplers.BACKENDS) == ("pymc", "nutpie", "numpyro")
    default = fit_settings.FitSettings().sampler
    assert default == samplers.DEFAULT_SAMPLER == CompareSettings().sampler == NutsRefit().sampler
    assert default in samplers.SAMPLERS
    for name in samplers.SAMPLERS:
        backend = samplers.backend(name)
        assert isinstance(backend, samplers.Backend) and backend.name == name
        assert type(backend).draw is not samplers.Backend.draw, f"{name} gives no draws"
        for method in ("available", "require", "check", "prepare", "start", "sample"):
            assert callable(getattr(backend, method)), (name, method)
        if backend.available():
            backend.require()
        else:
            with pytest.raises(UsageError, match="pip install"):
                backend.require()
    assert samplers.backend("pymc").available() and samplers.backend("nutpie").available()  # dependencies
    monkeypatch.setitem(sys.modules, "numpyro", None)  # import numpyro -> ImportError
    numpyro = samplers.backend("numpyro")
    assert numpyro.available() is False
    with pytest.raises(UsageError, match=r"bayesmix\[numpyro\]"):
        numpyro.check(fit_settings.FitSettings(sampler="numpyro"))


@pytest.mark.parametrize("name", ["stan", "NUTPIE", ""])
def test_an_unknown_sampler_is_refused_with_the_choices(name):
    from bayesmix import samplers
    from bayesmix.errors import UsageError
    from bayesmix.inference import _settings_for
    from bayesmix.laws import get_law

    with pytest.raises(UsageError, match=f"sampler must be one of pymc, nutpie, numpyro, got '{name}'"):
        samplers.backend(name)
    with pytest.raises(UsageError, match="sampler must be one of pymc, nutpie, numpyro"):
        _settings_for(get_law("capacity_noise"), None, {"sampler": name})


def test_fit_law_runs_the_named_backend_through_its_steps(monkeypatch, truth_and_table):
    """fit_law asks the backend named by the settings to check, prepare, start and
    sample, in that order, and knows no backend by name: a new one only registers."""
    from bayesmix import samplers
    from bayesmix.inference import fit_law

    calls = []

    class Stop(Exception):
        pass

    class Recording(samplers.Backend):
        name = "recording"

        def check(self, settings):
            calls.append(("check", settings.sampler))

        def prepare(self, law, model, settings):
            calls.append(("prepare", law.name))
            return samplers.Prepared(model)

        def start(self, prepared, law, init, settings, progressbar):
            calls.append(("start", dict(init)))
            prepared.start = dict(init)
            return prepared

        def sample(self, prepared, law, settings, progressbar):
            calls.append(("sample", prepared.start))
            raise Stop  # what follows is the same for every backend

    monkeypatch.setitem(samplers.BACKENDS, "recording", Recording())
    _, table = truth_and_table
    with pytest.raises(Stop):
        fit_law(table, "capacity_noise", sampler="recording", init={"H": 0.01}, progressbar=False)
    assert calls == [("check", "recording"), ("prepare", "capacity_noise"), ("start", {"H": 0.01}),
                     ("sample", {"H": 0.01})]


@pytest.mark.parametrize("max_rhat, divergences, warned", [(1.5, 3, True), (1.0, 0, False)])
def test_a_fit_kept_past_the_gate_is_flagged_wherever_it_is_used(tmp_path, capsys, max_rhat, divergences, warned):
    """predict (and every command that loads a fit) says on stderr that a fit kept with
    --allow-warnings did not pass the gate, naming the file and the gate's problems; a fit
    that passed loads silently. Either way the command runs."""
    from bayesmix.cli import main
    from bayesmix.simulate import default_truth
    from bayesmix.testing import fit_from_posterior, posterior_around_truth

    fit = fit_from_posterior(posterior_around_truth(default_truth("capacity_noise", ("a", "b", "c"), seed=0),
                                                    n_draws=20))
    fit.attrs["diagnostics"] = {"max_rhat": max_rhat, "divergences": divergences, "worst_rhat_param": "b[a]",
                                "target_accept": 0.99}
    path = fit.save(tmp_path / "fit.nc")
    capsys.readouterr()
    code = main(["predict", str(path), "--mixture", "a=0.2,b=0.3,c=0.5", "--model-size", "300M", "--tokens", "6B"])
    err = capsys.readouterr().err
    assert code == 0
    assert ("did not pass the diagnostics gate" in err) is warned
    if warned:
        assert str(path) in err and "R-hat 1.500" in err and "b[a]" in err and "3 divergent transitions" in err


@pytest.mark.parametrize("hits, depth, expected", [
    (0, 7, "0 (trees capped at depth 7)"),
    (12, 7, "trees cut at depth 7: valid draws, but more correlated; --max-tree-depth 9 if the ESS is low"),
    (12, 19, "--max-tree-depth 20 if the ESS is low"),
    # at the largest depth allowed there is no deeper tree to suggest
    (12, 20, "if the ESS is low, the posterior's geometry needs another parametrisation or priors")])
def test_the_diagnostics_say_where_trees_were_cut_and_what_to_do(hits, depth, expected):
    from bayesmix.gate import format_diagnostics

    diag = {"max_rhat": 1.0, "min_ess_bulk": 500, "min_ess_tail": 500, "divergences": 0,
            "treedepth_hits": hits, "max_tree_depth": depth}
    row = next(line for line in format_diagnostics(diag).splitlines() if "tree depth hits" in line)
    assert row.split()[3] == str(hits) and row.rstrip().endswith(expected)
    assert "tree depth hits" in format_diagnostics({**diag, "max_tree_depth": None})
