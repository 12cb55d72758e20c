"""One vocabulary across commands, a light ``--help``, and domains matched by name."""

from __future__ import annotations

import argparse
import inspect
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
    from bayesmix import acquire, inference, observation
    from bayesmix.cli import options
    from bayesmix.estimator import CHECKPOINT_MODES, LawModel
    from bayesmix.laws import available_laws

    assert tuple(options.LAW_NAMES) == tuple(available_laws())
    assert options.DEFAULT_LAW in options.LAW_NAMES
    assert options.DEFAULT_LAW == inspect.signature(LawModel).parameters["law"].default
    assert tuple(options.CRITERIA) == tuple(acquire.CRITERIA)
    assert tuple(options.VOI_METHODS) == tuple(acquire.METHODS) and options.VOI_METHODS[0] == acquire.DEFAULT_METHOD
    assert tuple(inference.SAMPLERS) == ("pymc", "nutpie", "numpyro")
    assert tuple(inference.LIKELIHOODS) == tuple(observation.LIKELIHOODS) == ("normal", "student_t")
    assert tuple(observation.SWITCHES) == ("auto", "on", "off")
    assert tuple(CHECKPOINT_MODES) == ("final", "all")
    for name in ("next", "campaign"):
        defaults = {a.dest: a.default for a in subparsers()[name]._actions}
        assert defaults["n_outcomes"] == acquire.DEFAULT_OUTCOMES, name
        assert defaults["max_draws"] == acquire.DEFAULT_ACQUISITION_DRAWS, name


def fit_counts():
    """Per command that fits: the library object whose draws, tune and chains it passes on."""
    from bayesmix.acquire import NutsRefit
    from bayesmix.cli.demo_cmd import DEMO_SETTINGS
    from bayesmix.compare import CompareSettings
    from bayesmix.inference import FitSettings

    return {"fit": FitSettings(), "compare": CompareSettings(), "campaign": NutsRefit(), "demo": DEMO_SETTINGS}


@pytest.mark.parametrize("command", ["fit", "compare", "campaign", "demo"])
def test_every_command_that_fits_offers_the_samplers_and_defaults_of_fit_settings(command):
    """Sampler, observation-model and checkpoint options read as FitSettings does; their
    counts are those of the library object the command fills in. An option a command
    cannot honour is not offered (argparse refuses it)."""
    from bayesmix.inference import LIKELIHOODS, SAMPLERS, FitSettings
    from bayesmix.observation import SWITCHES

    actions = {a.dest: a for a in subparsers()[command]._actions}
    settings = FitSettings()
    assert tuple(actions["sampler"].choices) == tuple(SAMPLERS)
    assert actions["sampler"].default == settings.sampler
    expected = {"likelihood": LIKELIHOODS, "discrepancy": SWITCHES}
    for dest, choices in expected.items():
        if dest in actions:
            assert tuple(actions[dest].choices) == tuple(choices), (command, dest)
            assert actions[dest].default == getattr(settings, dest), (command, dest)
    if "target_accept" in actions:
        assert actions["target_accept"].default is settings.target_accept is None
    if "extend_draws" in actions:
        assert actions["extend_draws"].default == settings.extend_draws
    counts = fit_counts()[command]
    for dest in ("draws", "tune", "chains", "map_starts", "seed"):
        if dest in actions and hasattr(counts, dest):
            assert actions[dest].default == getattr(counts, dest), (command, dest)
    assert {"draws", "tune", "chains", "seed"} <= set(actions), command


CAMPAIGN = ["campaign", "--simulate", "--budget-steps", "1", "--target-model-size", "1B", "--target-tokens", "20B",
            "-o", "camp"]


@pytest.mark.parametrize("argv, option", [(CAMPAIGN, "--likelihood"), (CAMPAIGN, "--target-accept"),
                                          (["demo"], "--discrepancy"), (["compare", "runs.csv"], "--extend-draws")])
def test_an_option_a_command_cannot_honour_is_refused(argv, option, capsys):
    from bayesmix.cli import build_parser

    build_parser().parse_args(argv)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, option, "1"])
    assert f"unrecognized arguments: {option}" in capsys.readouterr().err
    assert option in subparsers()[argv[0]].format_help(), f"bayesmix {argv[0]} --help does not say why it has no {option}"


def test_compare_keeps_final_only_as_checkpoints_final():
    from bayesmix.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["compare", "runs.csv"]).checkpoints == "all"
    assert parser.parse_args(["compare", "runs.csv", "--final-only"]).checkpoints == "final"
    assert parser.parse_args(["compare", "runs.csv", "--checkpoints", "final"]).checkpoints == "final"


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
