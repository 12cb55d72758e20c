"""The three public run tables in ../shared/data load with the counts their files hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesmix.data import load_runs

pytestmark = pytest.mark.realdata

SLIM_DOMAINS = ("arxiv", "book", "c4", "github", "commoncrawl", "stackexchange", "wikipedia")


@pytest.fixture(scope="module")
def slim(shared_data):
    return load_runs(shared_data / "slimpajama7" / "runs.csv")


@pytest.fixture(scope="module")
def pile17(shared_data):
    return load_runs(shared_data / "pile17" / "runs.csv")


@pytest.fixture(scope="module")
def pile4(shared_data):
    return load_runs(shared_data / "pile4" / "runs.csv")


def test_slimpajama7(slim, shared_data):
    raw = pd.read_csv(shared_data / "slimpajama7" / "runs.csv")
    assert len(raw) == 2188
    t = slim
    assert t.domains == SLIM_DOMAINS
    assert t.eval_domains == ("openhermes",)
    assert t.n_runs == 200
    # each run logs its final checkpoint twice (e.g. 19.998B and 20B, same losses): one row dropped per run
    assert t.n_rows == 2188 - 200
    assert any("200 runs log their final checkpoint twice" in n and "dropped 200 rows" in n for n in t.notes)
    assert any("19.998B and 20B" in n for n in t.notes)
    # the 16 missing losses of the file are all kept (none sat on a dropped row): 13 trained + 3 openhermes
    assert int(raw.filter(like="_loss").isna().sum().sum()) == 16
    assert int(np.isnan(t.losses).sum()) == 13
    assert int(np.isnan(t.eval_losses).sum()) == 3
    s = t.summary()
    assert s["missing_losses_total"] == 16
    assert s["missing_losses"] == {
        "arxiv": 0,
        "book": 0,
        "c4": 0,
        "github": 2,
        "commoncrawl": 0,
        "stackexchange": 5,
        "wikipedia": 6,
        "openhermes": 3,
    }
    np.testing.assert_array_equal(t.model_sizes, [122e6, 310e6, 680e6, 937e6])
    assert [m["runs"] for m in s["model_sizes"]] == [60, 60, 40, 40]
    assert s["checkpoints_per_run"] == {"min": 9, "median": 10, "max": 10}
    assert (t.checkpoint_counts == 9).sum() == 12  # 12 runs at 122M/310M miss one intermediate checkpoint
    # weights already sum to 1 up to round-off: nothing renormalised
    assert not any("renormalised" in n for n in t.notes)
    assert t.final_checkpoints().n_rows == 200
    np.testing.assert_array_equal(np.unique(t.final_checkpoints().tokens), [20e9, 25.92e9, 35.28e9])


def test_pile17(pile17):
    t = pile17
    assert t.n_domains == 17 and t.eval_domains == ()
    assert t.domains[:3] == ("arxiv", "freelaw", "nih_exporter")
    assert t.n_rows == 43 and t.n_runs == 43
    assert len(t.scales) == 1
    assert t.scales.iloc[0].to_dict() == {"model_size": 1e9, "n_tokens": 25e9, "n_rows": 43, "n_runs": 43}
    note = next(n for n in t.notes if "renormalised" in n)
    assert "22 rows" in note and "0.998..1.002" in note
    np.testing.assert_allclose(t.weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert t.loss_mask.all()


def test_pile4(pile4):
    t = pile4
    assert t.domains == ("github", "gutenberg", "stackexchange", "wikipedia")
    assert t.n_rows == 86 and t.n_runs == 86
    assert int(np.isnan(t.losses).sum()) == 4
    assert int(np.isnan(t.losses).all(axis=1).sum()) == 1  # one row (pile4-200M-8B-m25) has no loss at all
    assert t.summary()["missing_losses_total"] == 4
    np.testing.assert_array_equal(t.model_sizes, [90e6, 200e6, 440e6])
    assert len(t.scales) == 10
    assert any("renormalised the weights of 27 rows" in n for n in t.notes)


@pytest.mark.parametrize(
    "name,expected",
    [
        (
            "slimpajama7",
            [
                "trained domains  7: arxiv, book, c4, github, commoncrawl, stackexchange, wikipedia",
                "evaluation-only  1: openhermes",
                "rows             1988",
                "runs             200",
                "4 model sizes",
                "missing losses   16",
                "dropped 200 rows",
            ],
        ),
        (
            "pile17",
            ["trained domains  17:", "runs             43", "1 model size, 1 (N, D) pair", "renormalised"],
        ),
        ("pile4", ["trained domains  4:", "runs             86", "3 model sizes", "missing losses   4:"]),
    ],
)
def test_cli_validate_real(shared_data, run_cli, name, expected):
    code, out, err = run_cli("validate", shared_data / name / "runs.csv")
    assert code == 0, err
    for text in expected:
        assert text in out, (text, out)
