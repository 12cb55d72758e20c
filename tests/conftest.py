"""Shared fixtures: the real run tables, small CSV writers and a CLI runner."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of public run tables (``../shared/data`` from the project root)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real run tables not found at {SHARED_DATA} (they live outside the project)")
    return SHARED_DATA


@pytest.fixture
def write_csv(tmp_path):
    """Write a small table to ``tmp_path`` and return its path.

    ``write_csv(text_or_frame, name="runs.csv")``: a string is written as is (leading
    indentation and blank lines removed), a DataFrame with ``to_csv(index=False)``.
    """

    def write(content, name: str = "runs.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, pd.DataFrame):
            if name.endswith(".parquet"):
                content.to_parquet(path, index=False)
            else:
                content.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
        else:
            lines = [line.strip() for line in content.strip().splitlines()]
            path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``bayesmix.cli.main(argv)``; return ``(exit_code, stdout, stderr)``.

    Subcommand modules that do not exist yet are left out of the parser, so that a
    command's tests do not depend on the others being written.
    """
    import bayesmix.cli as cli

    present = tuple(
        n for n in cli.SUBCOMMANDS if importlib.util.find_spec(f"bayesmix.cli.{n}_cmd") is not None
    )
    if present != tuple(cli.SUBCOMMANDS):
        monkeypatch.setattr(cli, "SUBCOMMANDS", present)

    def run(*argv):
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# --------------------------------------------------------------------------- the slow tier's rule
# Every test that runs NUTS is marked `slow` (README: `-m "not slow"` is the fast tier).
# The samplers bayesmix calls are guarded while an unmarked test runs (its fixtures
# included, so that a module fixture that fits is caught too): a call fails the test
# instead of sampling for minutes. bayesmix samples only through these two functions
# (tests/test_tiers.py checks its source); a test that stubs `fit_law` or a sampler never
# reaches them. Sampling in a subprocess (`python -m bayesmix fit` and the like) is not
# seen here: those tests are marked by hand.
SAMPLERS = (("pymc", "sample"), ("nutpie", "sample"))


def _refusing_sampler(nodeid: str, name: str):
    def sample(*args, **kwargs):
        # pytest.fail raises a BaseException: code that records a fit's failure (a
        # comparison's fold) and carries on does not swallow it.
        pytest.fail(f"{nodeid} runs NUTS ({name}) but is not marked slow: add @pytest.mark.slow "
                    "(or a module-level pytestmark), see tests/conftest.py", pytrace=False)

    return sample


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("slow") is not None:
        return (yield)
    saved = []
    for module_name, attr in SAMPLERS:
        module = importlib.import_module(module_name)  # once per session: the first unmarked test
        saved.append((module, attr, getattr(module, attr)))
        setattr(module, attr, _refusing_sampler(item.nodeid, f"{module_name}.{attr}"))
    try:
        return (yield)
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)
