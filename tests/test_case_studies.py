"""Case studies: each one starts, and one whose data is absent says where to put it and exits 0.

Running the studies themselves takes minutes each (NUTS fits on the real tables); their
figures are in each study's README and in the shipped models' cards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("slimpajama7", "pile17", "pile4")


def run_study(study, *args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "case_studies" / study / "run.py"), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("study", STUDIES)
def test_study_without_data_says_where_to_put_it_and_exits_cleanly(study, tmp_path):
    result = run_study(study, "--out", str(tmp_path / "out"), env_extra={"BAYESMIX_DATA": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / study / "runs.csv") in result.stdout
    assert "Nothing was run" in result.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("study", STUDIES + ("synthetic",))
def test_study_has_readme_and_help(study):
    assert (ROOT / "case_studies" / study / "README.md").read_text().strip()
    result = run_study(study, "--help")
    assert result.returncode == 0 and "--export-model" in result.stdout


def test_export_of_a_refused_fit_exits_1_and_leaves_the_shipped_model(tmp_path, monkeypatch, capsys):
    """``--export-model`` with a fit the gate refused: the study prints the refusal (no
    traceback), exits 1 and writes nothing under models/; without the flag it exports nothing."""
    import argparse
    import dataclasses

    sys.path.insert(0, str(ROOT / "case_studies"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "case_studies"))
    from bayesmix.simulate import default_truth
    from bayesmix.testing import fit_from_posterior, posterior_around_truth

    fit = fit_from_posterior(posterior_around_truth(default_truth("capacity_noise", seed=3), n_draws=40, seed=3))
    refused = dataclasses.replace(fit, attrs={**fit.attrs, "diagnostics": {"max_rhat": 1.16, "divergences": 0,
                                                                            "worst_rhat_param": "c[x]"}})
    monkeypatch.setattr(common, "MODELS", tmp_path)
    kwargs = dict(heldout={}, provenance={"command": "test"}, description="test")
    assert common.export(argparse.Namespace(export_model=False), refused, "m", **kwargs) is None
    with pytest.raises(SystemExit) as stop:
        common.export(argparse.Namespace(export_model=True), refused, "m", **kwargs)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "error: not shipping 'm'" in err and "R-hat 1.160" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
