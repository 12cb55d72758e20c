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
