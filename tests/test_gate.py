"""The diagnostics gate (bayesmix.gate): where the chains disagree on the parameters,
whether they agree on the fit to the runs all the same, and what a refusal then says."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix import _az, gate
from bayesmix.errors import FitRejectedError
from bayesmix.gate import MAX_RHAT, check_gate, diagnose, fit_agreement, format_diagnostics
from bayesmix.laws import get_law

CHAINS, DRAWS, ROWS, DOMAINS = 4, 1000, 5, ["a", "b"]


def _trace(*, shifted_parameter: bool, shifted_fit: bool, missing_cell: bool = False, seed: int = 0):
    """A trace of the linear law over two domains whose chain 0 sits apart from the
    others in a parameter (``shifted_parameter``) and in the log-likelihood of every
    observed cell (``shifted_fit``); independent draws otherwise, so that agreeing chains
    give R-hat within a few thousandths of 1 (1000 draws per chain)."""
    rng = np.random.default_rng(seed)
    law = get_law("linear")
    values = {p.name: rng.normal(size=(CHAINS, DRAWS) + p.shape(len(DOMAINS))) for p in law.params}
    first = law.params[0]
    if shifted_parameter:
        values[first.name][0] += 3.0
    loglik = rng.normal(size=(CHAINS, DRAWS, ROWS, len(DOMAINS)))
    if shifted_fit:
        loglik[0] += 3.0
    if missing_cell:
        loglik[:, :, 0, 0] = np.nan
    dims = {p.name: list(p.dims) for p in law.params}
    dims["loss"] = ["row", "domain"]
    idata = _az.from_draws(values, dims, {"domain": DOMAINS, "domain_j": DOMAINS},
                           sample_stats={"diverging": np.zeros((CHAINS, DRAWS), bool)},
                           log_likelihood={"loss": loglik})
    return idata, law


def test_agreeing_chains_agree_on_the_fit_and_a_chain_apart_does_not():
    agreeing, _ = _trace(shifted_parameter=False, shifted_fit=False)
    apart, _ = _trace(shifted_parameter=False, shifted_fit=True)
    close = fit_agreement(agreeing)
    assert close["fitted_cells"] == ROWS * len(DOMAINS)
    assert close["fitted_cells_max_rhat"] < 1.005  # independent draws: 10 cells, 4000 draws
    # One chain of four 3 sd apart: rank-normalised split R-hat about 1.48.
    assert fit_agreement(apart)["fitted_cells_max_rhat"] > 1.2


def test_a_cell_without_a_likelihood_is_left_out_and_large_tables_are_thinned(monkeypatch):
    idata, _ = _trace(shifted_parameter=False, shifted_fit=False, missing_cell=True)
    assert fit_agreement(idata)["fitted_cells"] == ROWS * len(DOMAINS) - 1
    monkeypatch.setattr(gate, "FIT_AGREEMENT_MAX_CELLS", 4)
    assert fit_agreement(idata)["fitted_cells"] <= 4
    no_loglik = _az.from_draws({"x": np.zeros((CHAINS, DRAWS))})
    assert fit_agreement(no_loglik) == {}


@pytest.mark.parametrize("shifted_fit", [False, True])
def test_the_fit_is_judged_only_where_the_parameters_fail(shifted_fit):
    refused, law = _trace(shifted_parameter=True, shifted_fit=shifted_fit)
    diag = diagnose(refused, law)
    assert diag["max_rhat"] > MAX_RHAT
    agrees = diag["fitted_cells_max_rhat"] <= MAX_RHAT
    assert agrees is (not shifted_fit)
    passing, law = _trace(shifted_parameter=False, shifted_fit=True)
    # Chains that agree on every parameter are not judged on the fit (it costs seconds).
    assert "fitted_cells_max_rhat" not in diagnose(passing, law)


@pytest.mark.parametrize("shifted_fit, says", [
    (False, "They agree on the fit to the runs, though"),
    (True, "They disagree on the fit to the runs too"),
])
def test_a_refusal_says_whether_the_chains_agree_on_the_fit(shifted_fit, says):
    idata, law = _trace(shifted_parameter=True, shifted_fit=shifted_fit)
    diag = diagnose(idata, law)
    with pytest.raises(FitRejectedError, match=says):
        check_gate(diag)
    row = next(line for line in format_diagnostics(diag).splitlines() if "R-hat of the fit" in line)
    assert ("disagree on the fit" in row) is shifted_fit
    assert f"over {ROWS * len(DOMAINS)} observed cells" in row
