"""One vocabulary across commands, a light ``--help``, and domains matched by name."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from test_cli_malformed import DOMAINS, MIX, MODEL, run_table

ROOT = Path(__file__).resolve().parents[1]


def subparsers():
    from bayesmix.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("command", ["", "demo", "validate", "fit", "predict", "recommend", "next", "campaign",
                                     "compare", "report"])
def test_help_imports_no_pymc(command):
    argv = [command, "--help"] if command else ["--help"]
    code = (
        "import sys\n"
        "from bayesmix.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('pymc', 'pytensor', 'arviz', 'nutpie', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "usage: bayesmix" in done.stdout


def test_every_option_has_help_and_every_out_has_o():
    for name, parser in subparsers().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"bayesmix {name} {action.option_strings or action.dest}: no help"
            if "--out" in action.option_strings:
                assert "-o" in action.option_strings, f"bayesmix {name} --out has no -o"
            if not action.option_strings:
                assert action.metavar in ("RUNS", "FIT"), f"bayesmix {name}: positional {action.metavar}"


def test_target_scale_is_spelled_the_same_everywhere():
    for name in ("recommend", "next", "campaign", "report"):
        options = {o for a in subparsers()[name]._actions for o in a.option_strings}
        assert {"--target-model-size", "--target-tokens"} <= options, name


def test_choices_shown_without_pymc_match_the_library():
    from bayesmix import inference
    from bayesmix.cli import common
    from bayesmix.laws import available_laws

    assert tuple(common.LAW_NAMES) == tuple(available_laws())
    assert tuple(common.SAMPLERS) == tuple(inference.SAMPLERS)
    assert tuple(common.LIKELIHOODS) == tuple(inference.LIKELIHOODS)
    from bayesmix import observation
    assert tuple(common.DISCREPANCY_MODES) == tuple(observation.SWITCHES)


def test_recommend_accepts_the_deprecated_spelling_with_a_note(run_cli, tmp_path):
    old = run_cli("recommend", MODEL, "--model-size", "1B", "--tokens", "20B", "--max-draws", "20",
                  "--restarts", "1", "-o", tmp_path / "old.json")
    new = run_cli("recommend", MODEL, "--target-model-size", "1B", "--target-tokens", "20B", "--max-draws", "20",
                  "--restarts", "1", "-o", tmp_path / "new.json")
    assert old[0] == new[0] == 0, old[2] + new[2]
    assert "--model-size is deprecated" in old[2] and "deprecated" not in new[2]
    assert (tmp_path / "old.json").read_text().split('"timing_seconds"')[0] == \
        (tmp_path / "new.json").read_text().split('"timing_seconds"')[0]


def reversed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    weights = [c for c in frame.columns if c.startswith("weight_")]
    return frame[weights[::-1] + [c for c in frame.columns if c not in weights]]


def test_next_matches_existing_runs_by_domain_name(run_cli, tmp_path):
    table = run_table(rows=8, seed=3)
    table.to_csv(tmp_path / "runs.csv", index=False)
    reversed_columns(table).to_csv(tmp_path / "reordered.csv", index=False)
    scores = []
    for name in ("runs.csv", "reordered.csv"):
        code, _, err = run_cli("next", MODEL, "--target-model-size", "1B", "--target-tokens", "20B", "--sizes",
                               "122M", "--tokens-per-param", "20", "--n-mixtures", "6", "--criterion",
                               "space-filling", "--runs", tmp_path / name, "-o", tmp_path / f"next-{name}")
        assert code == 0, err
        scores.append(pd.read_csv(tmp_path / f"next-{name}")["score"].to_numpy())
    assert (scores[0] == scores[1]).all()


def test_predict_accepts_the_fits_domains_in_another_order(run_cli, tmp_path):
    reversed_columns(run_table()).to_csv(tmp_path / "reordered.csv", index=False)
    code, _, err = run_cli("predict", MODEL, "--runs", tmp_path / "reordered.csv", "-o", tmp_path / "pred.csv")
    assert code == 0, err
    pred = pd.read_csv(tmp_path / "pred.csv")
    direct = run_cli("predict", MODEL, "--mixture", ",".join(f"{d}={float(pred[f'weight_{d}'][0])!r}" for d in DOMAINS),
                     "--model-size", str(pred["model_size"][0]), "--tokens", str(pred["n_tokens"][0]),
                     "-o", tmp_path / "one.csv")
    assert direct[0] == 0, direct[2]
    one = pd.read_csv(tmp_path / "one.csv")
    for d in DOMAINS:
        assert one[f"pred_{d}"][0] == pytest.approx(pred[f"pred_{d}"][0], rel=1e-9)


def test_far_extrapolation_is_warned_about(run_cli, tmp_path):
    code, _, err = run_cli("predict", MODEL, "--mixture", MIX, "--model-size", "40B", "--tokens", "20B")
    assert code == 0, err
    assert "model size 40B is more than 100x outside the fitted model sizes (122M to 310M)" in err
    code, _, err = run_cli("predict", MODEL, "--mixture", MIX, "--model-size", "1B", "--tokens", "20B")
    assert code == 0 and "warning" not in err


def test_pytensor_blas_warning_is_silenced_by_importing_bayesmix():
    code = (
        "import warnings\n"
        "import bayesmix\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.warn('PyTensor could not link to a BLAS installation. Operations...', UserWarning)\n"
        "    warnings.warn('another warning', UserWarning)\n"
        "assert [str(w.message) for w in seen] == ['another warning'], seen\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
