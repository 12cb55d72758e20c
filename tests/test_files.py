"""Atomic output files: a failed write leaves the old file and no temporary behind."""

from __future__ import annotations

import stat

import pytest

from bayesmix._files import atomic_path, write_text_atomic


def test_write_replaces_and_is_world_readable(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_text_atomic(target, "one")
    write_text_atomic(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "fit.nc"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as handle:
                handle.write("half")
            raise RuntimeError("writer crashed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_output_folder_is_refused_before_any_work(tmp_path):
    from bayesmix._files import check_output_path
    from bayesmix.errors import UsageError

    with pytest.raises(UsageError, match="is a folder"):
        check_output_path(tmp_path, option="--out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        check_output_path(tmp_path / "file", folder=True)
    with pytest.raises(UsageError, match="not a folder"):
        check_output_path(tmp_path / "file" / "out.csv")
    assert check_output_path(tmp_path / "new" / "out.csv") == tmp_path / "new" / "out.csv"


def test_write_into_a_file_as_folder_is_a_usage_error(tmp_path):
    from bayesmix.errors import UsageError

    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError):
        write_text_atomic(tmp_path / "file" / "out.csv", "y")
    assert (tmp_path / "file").read_text() == "x"


def test_json_is_strict_and_plain(tmp_path):
    import json

    import numpy as np

    from bayesmix._files import json_text, write_json_atomic

    data = {1: np.float64(np.inf), "a": np.arange(2), "b": (np.bool_(True), np.nan, np.int64(3))}
    assert json.loads(json_text(data)) == {"1": None, "a": [0, 1], "b": [True, None, 3]}
    write_json_atomic(tmp_path / "x.json", data)
    assert (tmp_path / "x.json").read_text().endswith("}\n")
