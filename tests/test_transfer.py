"""The capacity law with transfer between domains (``capacity_noise_transfer``).

The registry's contract (``tests/test_laws_contract.py``) checks it as every law: shapes,
prior sampling, level and whitened coordinates, gradients against finite differences and
a small fit. Here: its mean in closed form on a tiny case, its limit without transfer,
what it predicts for a domain of weight 0, and (slow) that a fit finds a known transfer
structure in simulated runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.laws import get_law
from bayesmix.laws.transfer import TRANSFER_SPREAD, transfer_draws
from bayesmix.posterior import Posterior
from bayesmix.scaling import Scaling
from bayesmix.simulate import default_truth, simulate_runs

SCALING = Scaling(n_ref=1e8, d_ref=1e9, loss_ref=(1.0, 1.0))
LAW = "capacity_noise_transfer"


def two_domain_posterior(T01: float, T10: float, **overrides) -> Posterior:
    """One draw over two domains with the transfer matrix ``[[0, T01], [T10, 0]]``."""
    draws = {"c": np.array([[0.3, 0.5]]), "b": np.array([[0.3, 0.4]]), "H": np.array([0.01]),
             "E": np.array([[1.0, 1.5]]), "A": np.array([[0.2, 0.1]]), "a": np.array([[0.3, 0.5]]),
             "t_level": np.array([0.0]),
             "t_z": np.array([[[0.0, np.log(T01)], [np.log(T10), 0.0]]]) / TRANSFER_SPREAD}
    draws.update(overrides)
    return Posterior(get_law(LAW), draws, SCALING, ("d0", "d1"))


def test_mean_of_a_one_hot_mixture_in_closed_form():
    """Two domains, all weight on d0 at ``n = 2``, ``d = 3``: d0 holds the whole model
    above the floor (``x = (n, H)``, the budget being ``n + H``) and d1 sits at the floor;
    the effective capacity and share of d1 are ``(H + T10 n) / (1 + T10)`` and
    ``T10 / (1 + T10)``, of d0 ``(n + T01 H) / (1 + T01)`` and ``1 / (1 + T01)``."""
    T01, T10, n, d, H = 0.2, 0.7, 2.0, 3.0, 0.01
    post = two_domain_posterior(T01, T10)
    got = post.expected_loss([[1.0, 0.0]], n * SCALING.n_ref, d * SCALING.d_ref)[0, 0]
    c, b, E, A, a = (np.array(v) for v in ([0.3, 0.5], [0.3, 0.4], [1.0, 1.5], [0.2, 0.1], [0.3, 0.5]))
    c_paper = c * 2.0 ** (-b)
    capacity = np.array([(n + T01 * H) / (1 + T01), (H + T10 * n) / (1 + T10)])
    share = np.array([1 / (1 + T01), T10 / (1 + T10)])
    want = c_paper * capacity ** (-b) + A * (d * share * 2) ** (-a) + E
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_without_transfer_it_is_capacity_noise_at_positive_weights():
    """``T -> 0`` (``t_level = -60``: every ``T_ij`` below 1e-26) gives the law without
    transfer wherever every weight is positive; at a zero weight that law gives the noise
    term the fitted left-out share ``h0``, this one the transferred share (which goes to 0,
    and the term without bound, as ``T -> 0``)."""
    post = two_domain_posterior(1.0, 1.0, t_level=np.array([-60.0]))
    draws = {k: v for k, v in post.draws.items() if not k.startswith("t_")}
    draws["h0"] = np.full(post.n_draws, 1e-3)
    plain = Posterior(get_law("capacity_noise"), draws, SCALING, ("d0", "d1"))
    h = np.array([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5]])
    N, D = [1e8, 3e8, 5e7], [1e9, 4e9, 2e9]
    np.testing.assert_allclose(post.expected_loss(h, N, D), plain.expected_loss(h, N, D), rtol=1e-12)


def test_a_zero_weight_domain_moves_with_the_domain_it_learns_from():
    """In the example truth the second domain learns from the first as from its own data
    (``T_10 = 1``) and little from the others: at weight 0 its loss falls as the first
    domain's weight grows, by far more than when an unrelated domain's weight grows; the
    law without transfer predicts the same loss for every such mixture."""
    truth = default_truth(LAW, ("a", "b", "c", "d"), seed=0)
    rows = np.array([[0.1, 0.0, 0.45, 0.45], [0.7, 0.0, 0.15, 0.15],   # more of a
                     [0.3, 0.0, 0.1, 0.6], [0.3, 0.0, 0.6, 0.1]])      # c against d
    mu = truth.expected_loss(rows, 3e8, 6e9)[:, 1]
    related, unrelated = mu[0] - mu[1], abs(mu[2] - mu[3])
    assert related > 0.05, mu  # nats: the noise and capacity terms of b shrink with a's share
    assert unrelated < related / 10, mu
    plain = {k: v for k, v in truth.params.items() if not k.startswith("t_")} | {"h0": np.array(1e-3)}
    no_transfer = Posterior(get_law("capacity_noise"), {k: np.asarray(v)[None] for k, v in plain.items()},
                            truth.scaling, truth.domains)
    flat = no_transfer.expected_loss(rows, 3e8, 6e9)[0, :, 1]
    np.testing.assert_allclose(flat, flat[0], rtol=1e-12)


def test_transfer_draws_are_the_laws_matrix():
    post = two_domain_posterior(0.2, 0.7)
    T = transfer_draws(post.draws)
    np.testing.assert_allclose(T, [[[0.0, 0.2], [0.7, 0.0]]], rtol=1e-12)


# ----------------------------------------------------------------------------- evaluation-only domains
EVAL_DOMAINS = ("a", "b", "c", "e")  # e learns from c (T_ec = 0.5 in the example truth) and is only evaluated


def eval_truth():
    return default_truth(LAW, EVAL_DOMAINS, seed=0)


def eval_table(truth, mixtures, **design):
    """Runs of a truth over ``EVAL_DOMAINS`` at ``mixtures`` over a, b, c: e is a loss
    column without a weight column (its weight 0 in the truth)."""
    from bayesmix.data import RunTable

    h = np.hstack([mixtures, np.zeros((len(mixtures), 1))])
    table, _ = simulate_runs(truth, mixtures=h, **design)
    keep = list(range(3))
    return RunTable.from_arrays(weights=table.weights[:, keep], model_size=table.model_size, tokens=table.tokens,
                                losses=table.losses[:, keep], domains=EVAL_DOMAINS[:3], run_ids=table.run_ids,
                                eval_losses=table.losses[:, 3:], eval_domains=("e",))


def test_a_table_moves_its_evaluation_only_domains_among_its_domains_at_weight_0():
    from bayesmix.errors import DataError

    truth = eval_truth()
    table = eval_table(truth, np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]), model_sizes=(1e8,), tokens=(2e9,))
    moved = table.with_evaluation_domains()
    assert moved.domains == EVAL_DOMAINS and moved.eval_domains == () and moved.eval_losses is None
    np.testing.assert_array_equal(moved.weights[:, 3], 0.0)
    np.testing.assert_array_equal(moved.losses[:, 3], table.eval_losses[:, 0])
    assert table.with_evaluation_domains(()) is table and moved.with_evaluation_domains() is moved
    dropped = table.without_evaluation_domains()
    assert dropped.domains == EVAL_DOMAINS[:3] and dropped.eval_domains == () and dropped.eval_losses is None
    with pytest.raises(DataError, match="no evaluation-only loss column for 'chat'"):
        table.with_evaluation_domains(["chat"])


def test_a_posterior_predicts_an_evaluation_only_domain_from_the_mixture():
    """Weights over a, b, c; losses over a, b, c, e: the law's own prediction with e at
    weight 0. e follows c's share (its transfer row), and a weight on e is refused."""
    from bayesmix.errors import UsageError
    from bayesmix.testing import posterior_around_truth

    truth = eval_truth()
    post = posterior_around_truth(truth, n_draws=20, n_eval=1)
    assert post.domains == EVAL_DOMAINS[:3] and post.eval_domains == ("e",)
    h = np.array([[0.45, 0.45, 0.1], [0.15, 0.15, 0.7]])
    mu = post.expected_loss(h, 3e8, 6e9)
    assert mu.shape == (20, 2, 4)
    plain = Posterior(post.law, post.draws, post.scaling, EVAL_DOMAINS, sigma=post.sigma)
    np.testing.assert_allclose(mu, plain.expected_loss(np.hstack([h, np.zeros((2, 1))]), 3e8, 6e9), rtol=1e-12)
    assert mu[:, 1, 3].mean() < mu[:, 0, 3].mean() - 0.05  # more of c: less loss on e (nats)
    with pytest.raises(UsageError, match="evaluation-only"):
        post.expected_loss([[0.4, 0.3, 0.2, 0.1]], 3e8, 6e9)


def test_recommending_for_an_evaluation_only_domain():
    """With the loss on e as the objective, the mixture goes to c (what e learns from);
    the report lists e's loss at the recommendation and its objective weight."""
    from bayesmix.decide import MixtureProblem, Objective
    from bayesmix.testing import posterior_around_truth

    post = posterior_around_truth(eval_truth(), n_draws=40, n_eval=1)
    problem = MixtureProblem(post, 3e8, 6e9, objective=Objective(target_domain="e"))
    rec = problem.recommend()
    assert int(np.argmax(rec.mixture)) == 2 and rec.mixture[2] > 0.5, rec.mixture
    report = rec.to_dict()
    assert report["eval_domains"] == ["e"] and report["objective"]["weights"] == {"a": 0, "b": 0, "c": 0, "e": 1}
    assert set(report["domain_losses"]) == set(EVAL_DOMAINS) and set(report["mixture"]) == set(EVAL_DOMAINS[:3])
    assert "evaluation only" in rec.format_table()
    default = MixtureProblem(post, 3e8, 6e9)
    np.testing.assert_allclose(default.objective_weights, [1 / 3, 1 / 3, 1 / 3, 0])


def test_the_cli_predicts_and_targets_an_evaluation_only_domain(tmp_path, capsys):
    """predict writes pred_/sd_/q05_/q95_e; recommend --target-domain e and --weights
    with e return a mixture over a, b, c; next ranks runs for the loss on e."""
    import json

    import pandas as pd

    from bayesmix.cli import main
    from bayesmix.testing import fit_from_posterior, posterior_around_truth

    truth = eval_truth()
    fit = tmp_path / "fit.nc"
    fit_from_posterior(posterior_around_truth(truth, n_draws=40, n_eval=1)).save(fit)
    runs = tmp_path / "runs.csv"
    table = eval_table(truth, np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]), model_sizes=(1e8,), tokens=(2e9,))
    table.to_frame().to_csv(runs, index=False)
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(fit), "--runs", str(runs), "--out", str(pred)]) == 0
    assert "\n  e: MRE" in capsys.readouterr().err  # logged, so scored
    frame = pd.read_csv(pred)
    assert {f"{k}_e" for k in ("pred", "sd", "q05", "q95")} <= set(frame.columns)
    assert np.all((frame["q05_e"] < frame["loss_e"]) & (frame["loss_e"] < frame["q95_e"]))
    target = ["--target-model-size", "300M", "--target-tokens", "6B"]
    for objective in (["--target-domain", "e"], ["--weights", "e=0.5,a=0.5"]):
        out = tmp_path / "rec.json"
        assert main(["recommend", str(fit), *target, *objective, "--out", str(out)]) == 0
        rec = json.loads(out.read_text())
        assert set(rec["mixture"]) == {"a", "b", "c"} and "e" in rec["domain_losses"]
    ranked = tmp_path / "next.csv"
    assert main(["next", str(fit), *target, "--target-domain", "e", "--sizes", "100M", "--tokens-per-param", "20",
                 "--n-mixtures", "4", "--out", str(ranked)]) == 0
    assert len(pd.read_csv(ranked)) == 4


def test_predict_scores_a_table_that_does_not_log_an_evaluation_only_domain_on_the_rest(tmp_path, capsys):
    """Runs with the mixture's losses but no loss_e column, and a fit that predicts e:
    pred_e is written, the mixture's domains are scored, e is not (before, the score
    refused the table for its missing column)."""
    import pandas as pd

    from bayesmix.cli import main
    from bayesmix.testing import fit_from_posterior, posterior_around_truth

    truth = eval_truth()
    fit = tmp_path / "fit.nc"
    fit_from_posterior(posterior_around_truth(truth, n_draws=40, n_eval=1)).save(fit)
    table = eval_table(truth, np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]), model_sizes=(1e8,), tokens=(2e9,))
    runs = tmp_path / "runs.csv"
    table.to_frame().drop(columns=["loss_e"]).to_csv(runs, index=False)
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(fit), "--runs", str(runs), "--out", str(pred)]) == 0
    frame = pd.read_csv(pred)
    assert "loss_e" not in frame.columns and np.all(np.isfinite(frame["pred_e"]))
    err = capsys.readouterr().err
    assert "trained domains: MRE" in err and "\n  e: MRE" not in err


def test_a_law_that_cannot_predict_an_evaluation_only_domain_says_so(tmp_path, capsys):
    """A capacity_noise fit of a table with e records e as left out; recommend
    --target-domain e names the fit file, the domain and the laws that predict it."""
    from bayesmix.cli import main
    from bayesmix.testing import fit_from_posterior, posterior_around_truth

    truth = default_truth("capacity_noise", EVAL_DOMAINS[:3], seed=0)
    fit = fit_from_posterior(posterior_around_truth(truth, n_draws=40))
    fit.attrs["eval_domains_not_modelled"] = ["e"]
    path = fit.save(tmp_path / "fit.nc")
    capsys.readouterr()
    code = main(["recommend", str(path), "--target-model-size", "300M", "--target-tokens", "6B",
                 "--target-domain", "e"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert str(path) in err and "'e'" in err and "evaluation-only" in err and "capacity_noise_transfer" in err


# ----------------------------------------------------------------------------- recovery (slow)
def transfer_design(seed: int = 0):
    """Domains a, b, c and the evaluation-only e; b learns from a (``T_ba = 1``), e from c
    (``T_ec = 0.5``), every other pair transfers 0.01. Twelve mixtures, half of them
    without b, at three model sizes and two token counts (72 runs)."""
    truth = eval_truth()
    rng = np.random.default_rng(seed)
    h = np.maximum(rng.dirichlet(np.ones(3), size=12), 0.05)
    h[::2, 1] = 0.0
    h /= h.sum(axis=1, keepdims=True)
    return truth, eval_table(truth, h, model_sizes=(6e7, 2e8, 6e8), tokens=(2e9, 1.2e10), seed=seed)


@pytest.mark.slow
def test_a_fit_recovers_a_known_transfer_structure(tmp_path):
    """The posterior median of ``T_ba`` (true 1) is within 15% of the truth, and ``T_ba``
    is ten times the unrelated ``T_bc`` (true 0.01) in at least 95% of the draws;
    predictions of b at weight 0 and of the evaluation-only e for new mixtures in the
    design's range are within 0.75% of the truth on average and 1.5% at worst (the noise
    sd is 1%; 72 runs pin the law's mean down to a fraction of it, measured 0.2-0.7% where
    the design has runs, 2.3% at a share of a below the design's). The saved fit predicts
    e as the fit did.

    Measured (seed 0, without e): ``T_ba``'s 90% interval 0.91-1.00, a posterior sd of
    about 3%, so 15% is five sds; without the transfer term in the data the posterior of
    ``T_ba`` would be its prior (median 0.05). 300 draws in 2 chains after 400 tuning
    steps give the median to a tenth of that sd."""
    from bayesmix.inference import Fit, fit_law

    truth, table = transfer_design()
    fit = fit_law(table, LAW, draws=300, tune=400, chains=2, seed=0, map_starts=1, progressbar=False,
                  extend_draws=1, target_accept=0.95, allow_warnings=True, sampler="nutpie")
    assert fit.domains == ("a", "b", "c") and fit.eval_domains == ("e",)
    post = fit.posterior()
    T = transfer_draws(post.draws)
    assert abs(np.median(T[:, 1, 0]) - 1.0) < 0.15, np.quantile(T[:, 1, 0], [0.05, 0.5, 0.95])
    assert np.mean(T[:, 1, 0] > 10 * T[:, 1, 2]) >= 0.95, np.quantile(T[:, 1, 2], [0.05, 0.5, 0.95])
    rng = np.random.default_rng(7)
    new = np.maximum(rng.dirichlet(np.ones(3), size=10), 0.05)  # within the design's range
    new[:, 1] = 0.0
    new /= new.sum(axis=1, keepdims=True)
    predicted = post.expected_loss(new, 3e8, 5e9).mean(axis=0)[:, [1, 3]]
    actual = truth.expected_loss(np.hstack([new, np.zeros((10, 1))]), 3e8, 5e9)[:, [1, 3]]
    error = np.abs(predicted / actual - 1)
    assert error.mean() < 0.0075 and error.max() < 0.015, (predicted, actual)
    loaded = Fit.load(fit.save(tmp_path / "fit.nc")).posterior()
    np.testing.assert_array_equal(loaded.expected_loss(new, 3e8, 5e9), post.expected_loss(new, 3e8, 5e9))
