"""Fits saved by earlier releases load and predict after a port of the stack.

``tests/data/fit_arviz023.nc`` was written by bayesmix 0.1.0 on PyMC 5.28 / ArviZ 0.23
(an InferenceData NetCDF file): ``bayesmix fit runs_arviz023.csv --chains 2 --draws 100
--tune 300 --seed 1 --allow-warnings``, on 18 runs simulated from a 3-domain
capacity_noise law. ``pred_arviz023.csv`` is what that release's ``bayesmix predict
--runs runs_arviz023.csv`` printed from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATA = Path(__file__).resolve().parent / "data"
DOMAINS = ("web", "code", "books")


def test_fit_from_arviz_023_loads_with_its_table_and_diagnostics():
    from bayesmix.inference import Fit

    fit = Fit.load(DATA / "fit_arviz023.nc")
    assert fit.law.name == "capacity_noise"
    assert list(fit.domains) == list(DOMAINS)
    posterior = fit.posterior()
    assert posterior.n_draws == 2 * 150  # 2 chains, run on to 150 draws each
    assert fit.diagnostics["max_rhat"] == pytest.approx(1.09, abs=5e-3)


def test_fit_from_arviz_023_predicts_what_that_release_predicted(run_cli, tmp_path):
    out = tmp_path / "pred.csv"
    code, _, err = run_cli("predict", str(DATA / "fit_arviz023.nc"), "--runs", str(DATA / "runs_arviz023.csv"),
                           "-o", str(out))
    assert code == 0, err
    new, old = pd.read_csv(out), pd.read_csv(DATA / "pred_arviz023.csv")
    assert list(new["run_id"]) == list(old["run_id"])
    for d in DOMAINS:
        # The posterior mean of the expected loss uses every stored draw. These rows are
        # at fitted scales, where release 0.1.0 added the discrepancy kernel's jitter as
        # noise (sd ~1.4e-3 disc_amp, ~1.2e-5 in log-loss per draw at this fit's mean
        # amplitude 0.0083; ~1e-6 on a mean over 300 draws); this release returns the
        # fitted value there. Beyond that the two releases agree to rounding.
        np.testing.assert_allclose(new[f"pred_{d}"], old[f"pred_{d}"], rtol=1e-5)
        # The interval adds simulated noise; same seed, same draws. A sample quantile moves
        # by at most the largest change of one draw: the jitter's noise at this fit's
        # largest amplitude (0.029) is ~3.5 x 1.4e-3 x 0.029 = 1.4e-4 in log-loss.
        np.testing.assert_allclose(new[f"q95_{d}"], old[f"q95_{d}"], rtol=2e-4)
        assert (new[f"q05_{d}"] < new[f"pred_{d}"]).all() and (new[f"pred_{d}"] < new[f"q95_{d}"]).all()


@pytest.mark.parametrize("name", ["additive", "joint"])
def test_shukor_fits_saved_with_summed_contributions_predict_as_they_did(name, tmp_path):
    """Version 1 of the additive and joint laws' ``C`` summed the K contributions in the
    mixture term, version 2 averages them (``C_v2 = K C_v1``); a fit saved under version 1
    is converted on loading, so that its law mean is the one it was fitted with."""
    from bayesmix.inference import Fit
    from bayesmix.simulate import default_truth
    from bayesmix.testing import fit_from_posterior, posterior_around_truth

    truth = default_truth(name, domains=DOMAINS, seed=1)
    post = posterior_around_truth(truth, n_draws=8, seed=2)
    summed = type(post)(post.law, {**post.draws, "C": np.asarray(post.draws["C"]) / len(DOMAINS)},
                        post.scaling, post.domains, sigma=post.sigma)
    old = fit_from_posterior(summed)
    old.attrs["law_parametrization"] = 1
    old.save(tmp_path / "old.nc")
    h = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]])
    loaded = Fit.load(tmp_path / "old.nc").posterior()
    np.testing.assert_allclose(loaded.law_mean(h, 3e8, 6e9), post.law_mean(h, 3e8, 6e9), rtol=1e-10)
    # Read in today's meaning, the version-1 draws would predict another loss.
    assert not np.allclose(summed.law_mean(h, 3e8, 6e9), post.law_mean(h, 3e8, 6e9), rtol=1e-3)


@pytest.mark.parametrize("name", ["bimix", "chinchilla_domain"])
def test_fits_saved_before_the_left_out_share_predict_as_they_did(name, tmp_path, monkeypatch):
    """Version 1 of BiMix and the per-domain Chinchilla law had no left-out share ``h0``
    and dropped the own-data term at a zero weight; a fit saved then loads with ``h0 = 0``
    and predicts what it was fitted with, the convention at zero weights included."""
    from bayesmix.inference import Fit
    from bayesmix.laws import get_law
    from bayesmix.simulate import default_truth
    from bayesmix.testing import fit_from_posterior, posterior_around_truth

    law = get_law(name)
    post = posterior_around_truth(default_truth(name, domains=DOMAINS, seed=1), n_draws=8, seed=2)
    draws = {k: np.asarray(v) for k, v in post.draws.items() if k != "h0"}
    monkeypatch.setattr(type(law), "params", tuple(p for p in law.params if p.name != "h0"))
    old = fit_from_posterior(type(post)(law, draws, post.scaling, post.domains, sigma=post.sigma))
    monkeypatch.undo()
    old.attrs["law_parametrization"] = 1
    old.save(tmp_path / "old.nc")
    loaded = Fit.load(tmp_path / "old.nc").posterior()
    np.testing.assert_array_equal(loaded.draws["h0"], 0.0)

    h = np.array([[0.2, 0.3, 0.5], [0.6, 0.4, 0.0]])
    N, D = 3e8, 6e9
    n, d = N / post.scaling.n_ref, D / post.scaling.d_ref
    K = len(DOMAINS)
    with np.errstate(divide="ignore"):
        if name == "bimix":
            factor = np.where(h > 0, (K * h)[None] ** -draws["alpha"][:, None, :], 1.0)
            expected = factor * (draws["B"][:, None, :] * d ** -draws["beta"][:, None, :] + draws["C"][:, None, :])
        else:
            data_term = np.where(h > 0, draws["B"][:, None, :] * (K * d * h)[None] ** -draws["beta"][:, None, :], 0.0)
            expected = draws["E"][:, None, :] + draws["A"][:, None, :] * n ** -draws["alpha"][:, None, :] + data_term
    np.testing.assert_allclose(loaded.law_mean(h, N, D), expected, rtol=1e-10)
    # Today's law gives the left-out domain the share h0: the term is finite and present,
    # and every positive weight's prediction is the same as before.
    today = post.law_mean(h, N, D)
    assert np.all(np.isfinite(today)) and not np.allclose(today[:, 1, 2], expected[:, 1, 2], rtol=1e-3)
    np.testing.assert_allclose(today[:, h > 0], expected[:, h > 0], rtol=1e-10)
