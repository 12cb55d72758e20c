"""The same seed gives the same numbers, across processes (the README's promise)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesmix import _az
from bayesmix.extension import DEFAULT_EXTEND, checkpoints
from bayesmix.fit_settings import RETRY_TARGET_ACCEPT
from bayesmix.inference import Fit
from bayesmix.laws import get_law
from bayesmix.simulate import default_truth, simulate_runs

ROOT = Path(__file__).resolve().parents[1]

# The one test runs two `bayesmix fit` processes (nutpie NUTS) side by side. Its own
# 900 s limit on them (a failure, and the run goes on) must come before pytest-timeout's,
# which ends the whole run.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_two_processes_with_one_seed_draw_bitwise_identical_posteriors(tmp_path):
    """Two ``bayesmix fit`` processes, run at the same time, each with its own hash seed.

    Run concurrently, each process competes for the cores with the other (and with
    nutpie's chain threads: 3 chains on 2 sampling threads), so a result that depended
    on thread timing would show here; different PYTHONHASHSEEDs change the iteration
    order of every set and str-keyed hash table. The default model (capacity_noise, the
    discrepancy and mixture effects, whitened coordinates, MAP search, dispersed starts)
    is fitted, not a cut-down one: each process spends about a minute compiling, the
    draws themselves take seconds.
    """
    table, _ = simulate_runs(default_truth("capacity_noise", seed=3), n_mixtures=6, model_sizes=(1e8, 3e8), seed=3)
    runs = tmp_path / "runs.csv"
    table.to_frame().to_csv(runs, index=False)
    procs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"fit-{hash_seed}.nc"
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=hash_seed)
        argv = [sys.executable, "-m", "bayesmix", "fit", str(runs), "--draws", "30", "--tune", "30",
                "--chains", "3", "--seed", "11", "--quiet", "--allow-warnings", "-o", str(out)]
        procs.append((out, subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)))
    fits = []
    for out, proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err
        fits.append(Fit.load(out))
    first, second = (fit.idata for fit in fits)
    # A fit that mixes slowly runs on past --draws to a fixed checkpoint (bayesmix.extension):
    # both processes must stop at the same one, whatever their speed.
    kept = [fit.diagnostics["draws_per_chain"] for fit in fits]
    # No --target-accept: the law's own (capacity_noise: 0.95), recorded with the fit, or
    # 0.99 where its draws diverged and were sampled again; both processes must agree.
    law_target = get_law("capacity_noise").target_accept
    for fit in fits:
        sampled_first_at = fit.diagnostics.get("first_target_accept")
        expected = law_target if sampled_first_at is None else RETRY_TARGET_ACCEPT
        assert sampled_first_at in (None, law_target)
        assert fit.attrs["settings"]["target_accept"] == fit.diagnostics["target_accept"] == expected
    assert [f.diagnostics.get("first_divergences") for f in fits] == [fits[0].diagnostics.get("first_divergences")] * 2
    assert kept[0] == kept[1] and kept[0] in checkpoints(30, DEFAULT_EXTEND), kept
    # A chain that settled in a minor mode is dropped (bayesmix.gate.without_minor_mode_chains):
    # both processes must drop the same ones, and at least two chains stay to compare.
    dropped = [fit.diagnostics.get("minor_mode_chains", []) for fit in fits]
    assert dropped[0] == dropped[1], dropped
    n_chains = 3 - len(dropped[0])
    assert first.posterior.sizes["chain"] == second.posterior.sizes["chain"] == n_chains >= 2
    names = _az.posterior_var_names(first)
    assert names == _az.posterior_var_names(second)
    assert {"c", "b", "E", "A", "a", "H", "sigma"} <= set(names)
    for name in names:
        a, b = _az.stacked_draws(first, name), _az.stacked_draws(second, name)
        assert a.shape[0] == n_chains * kept[0] and np.isfinite(a).all(), name
        # Bitwise: equal bytes, not merely close numbers.
        assert a.tobytes() == b.tobytes(), f"{name} differs between the two processes"
    assert _az.pointwise_loglik(first)[0].tobytes() == _az.pointwise_loglik(second)[0].tobytes()
    # The chains kept differ from each other: equal files of equal chains would prove less.
    chains = _az.labelled_chain_draws(first, ["E"])
    assert any(len(set(values[:, 0])) == n_chains for values in chains.values())
