"""Every command works where HOME cannot be written (containers, CI, HOME=/nonexistent).

PyTensor, ArviZ, numba and matplotlib keep caches under HOME; bayesmix points them at a
private temporary folder where it cannot be written (bayesmix/_caches.py). HOME is made
unwritable here by pointing it at a regular file: nothing can be created under a file,
for root too (a read-only folder stops everyone but root).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bayesmix._caches import use_writable_caches

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "slimpajama7-capacity_noise"
MIX = "arxiv=0.2,book=0.1,c4=0.2,github=0.1,commoncrawl=0.2,stackexchange=0.1,wikipedia=0.1"


@pytest.fixture
def unwritable_home(tmp_path):
    home = tmp_path / "home-is-a-file"
    home.write_text("not a folder\n")
    return home


def test_writable_home_changes_nothing(tmp_path):
    environ = {"HOME": str(tmp_path)}
    assert use_writable_caches(environ) == {}
    assert environ == {"HOME": str(tmp_path)}


def test_unwritable_home_points_every_cache_at_one_private_folder(tmp_path, unwritable_home, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    environ = {"HOME": str(unwritable_home), "PYTENSOR_FLAGS": "floatX=float64"}
    changes = use_writable_caches(environ)
    assert set(changes) == {"XDG_CACHE_HOME", "MPLCONFIGDIR", "PYTENSOR_FLAGS"}
    private = tmp_path / "tmp" / f"bayesmix-{os.getuid()}"
    assert environ["XDG_CACHE_HOME"] == str(private / "cache")
    assert environ["MPLCONFIGDIR"] == str(private / "matplotlib")
    # The user's own flags are kept.
    assert environ["PYTENSOR_FLAGS"] == f"floatX=float64,base_compiledir={private / 'pytensor'}"
    for name in ("cache", "matplotlib", "pytensor"):
        assert (private / name).is_dir()
    assert oct((private).stat().st_mode & 0o777) == oct(0o700)


def test_folders_the_user_chose_are_kept(tmp_path, unwritable_home, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    environ = {"HOME": str(unwritable_home), "XDG_CACHE_HOME": str(tmp_path / "xdg"),
               "MPLCONFIGDIR": str(tmp_path / "mpl"), "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'pt'}"}
    before = dict(environ)
    assert use_writable_caches(environ) == {}
    assert environ == before


def test_a_private_folder_planted_by_someone_else_is_not_used(tmp_path, unwritable_home, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    planted = tmp_path / f"bayesmix-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)  # writable by anyone: not ours to trust
    environ = {"HOME": str(unwritable_home)}
    changes = use_writable_caches(environ)
    # By path, not by string prefix: as root the planted folder is "bayesmix-0", and a
    # fresh private folder "bayesmix-0xyz..." (mkdtemp's random suffix) shares that prefix.
    assert changes and not any(Path(value.split("=")[-1]).is_relative_to(planted) for value in changes.values())
    assert all(Path(value.split("=")[-1]).parent.parent == tmp_path for value in changes.values())


def run_bayesmix(args, home, tmp, **extra_env):
    """``python -m bayesmix ARGS`` with HOME at ``home`` and the temporary folder at
    ``tmp``; no cache variable inherited."""
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "TMPDIR": str(tmp), "LANG": "C.UTF-8", **extra_env}
    return subprocess.run([sys.executable, "-m", "bayesmix", *map(str, args)], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=600)


def check_clean(done):
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # e.g. matplotlib's "created a temporary cache directory"; the one warning the commands
    # mean to give, that the test's short fit did not pass the diagnostics gate (its first
    # line and its "  - " items), is not about caches and is set aside.
    gate = [i for i, line in enumerate(done.stderr.splitlines()) if "did not pass the diagnostics gate" in line]
    lines = done.stderr.splitlines()
    kept = [line for i, line in enumerate(lines)
            if not (gate and (i in gate or (i > gate[0] and line.startswith("  - "))))]
    assert "warning" not in "\n".join(kept).lower(), done.stderr


def test_predict_works_with_an_unwritable_home(tmp_path, unwritable_home):
    """The caches under HOME (XDG's, matplotlib's) are redirected to a private folder;
    PyTensor keeps this process's compile folder (warm, so that the test takes seconds);
    the slow test below starts from empty caches."""
    from pytensor import config

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    done = run_bayesmix(["predict", MODEL, "--mixture", MIX, "--model-size", "1B", "--tokens", "20B",
                         "-o", tmp / "pred.csv"], unwritable_home, tmp,
                        PYTENSOR_FLAGS=f"base_compiledir={config.base_compiledir}")
    check_clean(done)
    assert (tmp / "pred.csv").exists()
    private = tmp / f"bayesmix-{os.getuid()}"
    assert (private / "cache").is_dir()
    assert not (private / "pytensor").exists()


@pytest.mark.slow
def test_every_step_works_with_an_unwritable_home_from_empty_caches(tmp_path, unwritable_home):
    """validate, fit (nutpie: numba and PyTensor compile), predict, recommend, report
    (matplotlib), all with HOME a file and nothing cached."""
    from bayesmix.simulate import default_truth, simulate_runs

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    table, _ = simulate_runs(default_truth("capacity_noise", seed=3), n_mixtures=6, model_sizes=(1e8, 3e8), seed=3)
    table.to_frame().to_csv(tmp / "runs.csv", index=False)
    check_clean(run_bayesmix(["validate", tmp / "runs.csv"], unwritable_home, tmp))
    # A tiny fit: its diagnostics warn (a few draws), so only its exit status is checked.
    # The linear law fills the same caches (PyTensor, numba, matplotlib) as any other;
    # from empty caches it compiles in about 90 s here, capacity_noise in about 200 s.
    done = run_bayesmix(["fit", tmp / "runs.csv", "--law", "linear", "--draws", "10", "--tune", "10", "--chains", "2",
                         "--quiet", "--allow-warnings", "-o", tmp / "fit.nc"], unwritable_home, tmp)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    mixture = ",".join(f"{d}=0.25" for d in table.domains)
    check_clean(run_bayesmix(["predict", tmp / "fit.nc", "--mixture", mixture, "--model-size", "1B",
                              "--tokens", "20B", "-o", tmp / "pred.csv"], unwritable_home, tmp))
    check_clean(run_bayesmix(["recommend", tmp / "fit.nc", "--target-model-size", "1B", "--target-tokens", "20B",
                              "--max-draws", "10", "--restarts", "1", "-o", tmp / "rec.json"], unwritable_home, tmp))
    check_clean(run_bayesmix(["report", tmp / "fit.nc", "--recommend", tmp / "rec.json", "-o", tmp / "report.html"],
                             unwritable_home, tmp))
    assert (tmp / "report.html").stat().st_size > 0
    private = tmp / f"bayesmix-{os.getuid()}"
    # PyTensor (compiled code) and matplotlib (font cache) wrote into their redirected
    # folders; the XDG cache is redirected too (numba, platformdirs) but nothing in these
    # steps needs to write there since ArviZ 1 dropped its daily stamp.
    assert (private / "cache").is_dir()
    for name in ("matplotlib", "pytensor"):
        assert any((private / name).iterdir()), name
