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
