"""``bayesmix demo``: the whole loop, with the gate's verdict shown, and no library warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The one test runs `bayesmix demo`: a NUTS fit (nutpie) in a subprocess. Its own
# 900 s limit on that subprocess (a failure that names the command, and the run goes on)
# must come before pytest-timeout's, which ends the whole run.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_demo_shows_the_whole_loop_and_writes_the_report(tmp_path):
    # Fewer draws than the demo's default, to keep the test short: the gate may then
    # fail, which the demo must say and signal by its exit status.
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "bayesmix", "demo", "--draws", "300", "--tune", "300",
                           "--quiet", "-o", str(out)], cwd=tmp_path, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=900)
    printed = done.stdout
    # Nothing on stderr: no library warning (PyTensor, ArviZ, matplotlib, numpy) reaches a user.
    assert done.stderr == ""
    for step in range(1, 7):
        assert f"[{step}/6]" in printed, printed
    rejected = "GATE FAILED" in printed
    assert done.returncode == (1 if rejected else 0), printed
    assert rejected or "gate passed" in printed
    assert (out / ("fit.rejected.nc" if rejected else "fit.nc")).exists()
    assert "inside the 90% predictive interval in" in printed
    assert "Recommended mixture for N=4B, D=100B" in printed and "90% interval" in printed
    assert "against the truth:" in printed
    assert "train next:" in printed and "why:" in printed
    for name in ("runs.csv", "recommendation.json", "next.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert f"report: {out / 'report.html'}" in printed
