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
