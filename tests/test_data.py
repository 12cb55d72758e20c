"""Tests of the run-table loader (bayesmix.data) and `bayesmix validate` on small tables."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayesmix.data import RunTable, load_runs
from bayesmix.errors import DataError

GOOD = """
run_id,model_size,n_tokens,weight_a,weight_b,a_loss,b_loss
r1,1e8,1e9,0.5,0.5,3.1,3.2
r1,1e8,2e9,0.5,0.5,2.9,3.0
r2,1e8,1e9,0.25,0.75,3.3,3.0
r2,1e8,2e9,0.25,0.75,3.1,2.8
"""

HEADER = "run_id,model_size,n_tokens,weight_a,weight_b,a_loss,b_loss"

# ----------------------------------------------------------------------------- malformed tables
# (id, csv text, load_runs kwargs, extra CLI args, column named, rows named, words in the message)
MALFORMED = [
    ("empty", HEADER, {}, [], None, None, ["no data rows"]),
    (
        "no-weight-columns",
        "model_size,n_tokens,mix_a,a_loss\n1e8,1e9,1.0,3.0",
        {},
        [],
        None,
        None,
        ["weight_<domain>", "--domain-map", "mix_a"],
    ),
    (
        "no-model-size-column",
        "params,n_tokens,weight_a,a_loss\n1e8,1e9,1.0,3.0",
        {},
        [],
        "model_size",
        None,
        ["--model-size-column", "model_size_column", "params"],
    ),
    (
        "no-tokens-column",
        "model_size,tokens,weight_a,a_loss\n1e8,1e9,1.0,3.0",
        {},
        [],
        "n_tokens",
        None,
        ["--tokens-column", "tokens_column"],
    ),
    (
        "unknown-mapped-column",
        "model_size,n_tokens,weight_a,a_loss\n1e8,1e9,1.0,3.0",
        {"mapping": {"a": ("weight_a", "loss_x")}},
        ["--domain-map", "a=weight_a:loss_x"],
        "loss_x",
        None,
        ["unknown column", "domain 'a'"],
    ),
    (
        "unknown-run-id-column",
        GOOD,
        {"run_id_column": "rid"},
        ["--run-id-column", "rid"],
        "rid",
        None,
        ["--run-id-column"],
    ),
    (
        "non-numeric-weight",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr1,1e8,2e9,abc,0.5,2.9,3.0",
        {},
        [],
        "weight_a",
        [2],
        ["'abc'", "non-numeric"],
    ),
    (
        "non-numeric-model-size",
        f"{HEADER}\nr1,122M,1e9,0.5,0.5,3.1,3.2",
        {},
        [],
        "model_size",
        [1],
        ["'122M'", "non-numeric"],
    ),
    (
        "non-numeric-loss",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr1,1e8,2e9,0.5,0.5,2.9,oops",
        {},
        [],
        "b_loss",
        [2],
        ["'oops'"],
    ),
    (
        "missing-weight",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr2,1e8,1e9,0.25,,3.3,3.0\nr3,1e8,1e9,0.2,,3.3,3.0",
        {},
        [],
        "weight_b",
        [2, 3],
        ["missing weight", "write 0"],
    ),
    (
        "missing-model-size",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr1,,2e9,0.5,0.5,2.9,3.0",
        {},
        [],
        "model_size",
        [2],
        ["missing model size"],
    ),
    (
        "missing-tokens",
        f"{HEADER}\nr1,1e8,,0.5,0.5,3.1,3.2",
        {},
        [],
        "n_tokens",
        [1],
        ["missing token count"],
    ),
    (
        "negative-weight",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr2,1e8,1e9,-0.1,1.1,3.3,3.0",
        {},
        [],
        "weight_a",
        [2],
        ["negative weight"],
    ),
    (
        "weights-do-not-sum-to-one",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr2,1e8,1e9,0.5,0.4,3.3,3.0",
        {},
        [],
        None,
        [2],
        ["sum to 0.9", "weight_a", "weight_b", "weight_tolerance"],
    ),
    (
        "non-positive-loss",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr2,1e8,1e9,0.25,0.75,3.3,0",
        {},
        [],
        "b_loss",
        [2],
        ["positive and finite", "empty"],
    ),
    (
        "infinite-loss",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,inf,3.2",
        {},
        [],
        "a_loss",
        [1],
        ["positive and finite", "inf"],
    ),
    (
        "non-positive-model-size",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr2,0,1e9,0.25,0.75,3.3,3.0",
        {},
        [],
        "model_size",
        [2],
        ["positive and finite"],
    ),
    (
        "infinite-tokens",
        f"{HEADER}\nr1,1e8,inf,0.5,0.5,3.1,3.2",
        {},
        [],
        "n_tokens",
        [1],
        ["positive and finite"],
    ),
    (
        "no-trained-domain-has-a-loss",
        "model_size,n_tokens,weight_a,weight_c\n1e8,1e9,0.5,0.5",
        {},
        [],
        "weight_a",
        None,
        ["no loss column for any trained domain", "a_loss", "loss_<domain>", "--domain-map"],
    ),
    (
        "repeated-loss-column",
        "model_size,n_tokens,weight_a,weight_b,loss_a,loss_b,loss_a\n1e8,1e9,0.5,0.5,3.0,3.1,3.2",
        {},
        [],
        "loss_a",
        None,
        ["repeated in the header", "columns 5, 7", "rename or delete"],
    ),
    (
        "ambiguous-loss-columns",
        "model_size,n_tokens,weight_a,a_loss,loss_a\n1e8,1e9,1.0,3.0,3.0",
        {},
        [],
        "a_loss",
        None,
        ["several loss columns", "--domain-map"],
    ),
    (
        "exact-duplicate-rows",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr2,1e8,1e9,0.25,0.75,3.3,3.0\nr2,1e8,1e9,0.25,0.75,3.3,3.0",
        {},
        [],
        None,
        [2, 3],
        ["exact duplicate", "delete the repeats"],
    ),
    (
        "conflicting-checkpoints",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr1,1e8,2e9,0.5,0.5,2.9,3.0\nr1,1e8,1e9,0.5,0.5,3.0,3.2",
        {},
        [],
        "n_tokens",
        [1, 3],
        ["conflicting checkpoints", "run 'r1'"],
    ),
    (
        "conflicting-checkpoints-derived-runs",
        "model_size,n_tokens,weight_a,weight_b,a_loss,b_loss\n1e8,1e9,0.5,0.5,3.1,3.2\n1e8,1e9,0.5,0.5,3.0,3.3",
        {},
        [],
        "n_tokens",
        [1, 2],
        ["conflicting checkpoints", "--run-id-column"],
    ),
    (
        "repeated-checkpoint",
        "run_id,step,model_size,n_tokens,weight_a,a_loss\nr1,10,1e8,1e9,1.0,3.0\nr1,11,1e8,1e9,1.0,3.0",
        {},
        [],
        "n_tokens",
        [1, 2],
        ["repeated checkpoint"],
    ),
    (
        "run-with-two-mixtures",
        f"{HEADER}\nr1,1e8,1e9,0.5,0.5,3.1,3.2\nr1,1e8,2e9,0.25,0.75,2.9,3.0",
        {},
        [],
        "run_id",
        [1, 2],
        ["different mixtures", "own id"],
    ),
]


@pytest.mark.parametrize(
    "text,kwargs,cli_args,column,rows,words",
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_table_load_runs(write_csv, text, kwargs, cli_args, column, rows, words):
    path = write_csv(text)
    with pytest.raises(DataError) as info:
        load_runs(path, **kwargs)
    err = info.value
    msg = str(err)
    assert err.file == str(path) and str(path) in msg
    assert err.column == column
    if column:
        assert f"column '{column}'" in msg
    if rows:
        assert err.rows[: len(rows)] == rows
        assert "rows " + ", ".join(map(str, rows)) in msg
    for word in words:
        assert word in msg, (word, msg)
    assert "\n" not in msg


@pytest.mark.parametrize(
    "text,kwargs,cli_args,column,rows,words",
    [pytest.param(*case[1:], id=case[0]) for case in MALFORMED],
)
def test_malformed_table_cli(write_csv, run_cli, text, kwargs, cli_args, column, rows, words):
    path = write_csv(text)
    code, out, err = run_cli("validate", path, *cli_args)
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bayesmix validate: error: ")
    assert len(lines[0]) < 600
    if column:
        assert f"column '{column}'" in err
    if rows:
        assert "rows " + ", ".join(map(str, rows)) in err


def test_missing_file(tmp_path, run_cli):
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="file not found"):
        load_runs(path)
    code, out, err = run_cli("validate", path)
    assert code == 2 and "file not found" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_empty_file(write_csv):
    path = write_csv("\n")
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_runs(path)


def test_data_error_is_value_error(write_csv):
    with pytest.raises(ValueError):
        load_runs(write_csv(f"{HEADER}\nr1,1e8,1e9,0.5,0.4,3.1,3.2"))


# ----------------------------------------------------------------------------- good tables


def test_good_table(write_csv):
    t = load_runs(write_csv(GOOD))
    assert t.domains == ("a", "b")
    assert t.n_rows == 4 and t.n_domains == 2 and t.n_runs == 2 and len(t) == 4
    assert t.has_losses
    assert t.loss_mask.all()
    np.testing.assert_array_equal(t.weights, [[0.5, 0.5], [0.5, 0.5], [0.25, 0.75], [0.25, 0.75]])
    np.testing.assert_array_equal(t.losses[:, 1], [3.2, 3.0, 3.0, 2.8])
    assert list(t.run_ids) == ["r1", "r1", "r2", "r2"]
    assert t.run_ids.dtype == object
    assert t.notes == ()
    assert t.extra is None
    np.testing.assert_array_equal(t.final_checkpoint_mask, [False, True, False, True])
    assert t.checkpoint_counts.to_dict() == {"r1": 2, "r2": 2}
    np.testing.assert_array_equal(t.model_sizes, [1e8])
    sc = t.scales
    assert list(sc.columns) == ["model_size", "n_tokens", "n_rows", "n_runs"]
    assert sc.to_dict("records") == [
        {"model_size": 1e8, "n_tokens": 1e9, "n_rows": 2, "n_runs": 2},
        {"model_size": 1e8, "n_tokens": 2e9, "n_rows": 2, "n_runs": 2},
    ]
    assert "RunTable(" in repr(t)


def test_arrays_are_read_only(write_csv):
    t = load_runs(write_csv(GOOD))
    for arr in (t.weights, t.model_size, t.tokens, t.losses, t.run_ids):
        with pytest.raises(ValueError):
            arr[0] = arr[1]


def test_renormalisation_note(write_csv):
    text = (
        f"{HEADER}\nr1,1e8,1e9,0.5,0.495,3.1,3.2\nr2,1e8,1e9,0.254,0.75,3.3,3.0\nr3,1e8,1e9,0.3,0.7,3.3,3.0"
    )
    t = load_runs(write_csv(text))
    np.testing.assert_allclose(t.weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t.weights[0], [0.5 / 0.995, 0.495 / 0.995])
    np.testing.assert_array_equal(t.weights[2], [0.3, 0.7])  # exact sums are left alone
    notes = [n for n in t.notes if "renormalised" in n]
    assert len(notes) == 1
    assert "2 rows" in notes[0] and "0.995..1.004" in notes[0] and "0.005" in notes[0]


def test_weight_tolerance_argument(write_csv):
    path = write_csv(f"{HEADER}\nr1,1e8,1e9,0.5,0.45,3.1,3.2")
    with pytest.raises(DataError):
        load_runs(path)
    t = load_runs(path, weight_tolerance=0.1)
    np.testing.assert_allclose(t.weights.sum(axis=1), 1.0)


def test_near_duplicate_checkpoints_dropped(write_csv):
    text = """
    model_size,n_tokens,weight_a,weight_b,a_loss,b_loss
    1e8,1e9,0.5,0.5,3.1,3.2
    1e8,19.998e9,0.5,0.5,2.9,
    1e8,20e9,0.5,0.5,2.9,
    2e8,1e9,0.5,0.5,3.0,3.1
    2e8,19.998e9,0.5,0.5,2.7,2.8
    2e8,20e9,0.5,0.5,2.7,2.8
    2e8,30e9,0.5,0.5,2.6,2.7
    """
    t = load_runs(write_csv(text))
    assert t.n_rows == 5 and t.n_runs == 2
    np.testing.assert_array_equal(t.tokens, [1e9, 20e9, 1e9, 20e9, 30e9])
    assert np.isnan(t.losses[1, 1])  # missing losses equal as missing
    note = next(n for n in t.notes if "dropped" in n)
    assert "2 runs" in note and "19.998B and 20B" in note and "dropped 2 rows" in note
    assert "rows 2, 5" in note
    assert "a checkpoint" in note  # run 2's duplicate is not its final checkpoint


def test_near_duplicate_final_checkpoint_wording(write_csv):
    text = """
    run_id,model_size,n_tokens,weight_a,a_loss
    r1,1e8,1e9,1,3.1
    r1,1e8,19.998e9,1,2.9
    r1,1e8,20e9,1,2.9
    """
    t = load_runs(write_csv(text))
    assert t.n_rows == 2
    assert any("1 run logs its final checkpoint twice" in n and "dropped 1 row " in n for n in t.notes)


def test_close_checkpoints_with_different_losses_are_kept(write_csv):
    text = """
    run_id,model_size,n_tokens,weight_a,a_loss
    r1,1e8,19.998e9,1,2.91
    r1,1e8,20e9,1,2.9
    r1,1e8,30e9,1,2.8
    r1,1e8,30.5e9,1,2.8
    """
    t = load_runs(write_csv(text))
    assert t.n_rows == 4  # 30B and 30.5B are 1.6 % apart: not duplicates
    assert any("different losses: kept both" in n for n in t.notes)
    assert not any("dropped" in n for n in t.notes)


def test_eval_only_domain(write_csv):
    text = """
    weight_arxiv,weight_book,model_size,n_tokens,arxiv_loss,book_loss,openhermes_loss
    0.5,0.5,1e8,1e9,3.0,3.5,3.3
    0.2,0.8,1e8,1e9,3.1,3.4,
    """
    t = load_runs(write_csv(text))
    assert t.domains == ("arxiv", "book")
    assert t.eval_domains == ("openhermes",)
    assert t.eval_losses.shape == (2, 1)
    assert t.eval_losses[0, 0] == 3.3 and np.isnan(t.eval_losses[1, 0])
    assert any("evaluation-only domain openhermes" in n for n in t.notes)
    assert any("1 loss value missing (openhermes 1)" in n for n in t.notes)
    s = t.summary()
    assert s["eval_domains"] == ["openhermes"] and s["missing_losses_total"] == 1
    assert "evaluation-only  1: openhermes" in t.format_summary()


def test_aggregate_loss_column_kept_as_extra(write_csv):
    text = """
    run_id,model_size,n_tokens,weight_a,weight_b,loss_a,loss_b,loss,note
    r1,1e8,1e9,0.5,0.5,3.0,3.2,3.1,hello
    r2,1e8,1e9,0.3,0.7,3.1,3.1,3.1,world
    """
    t = load_runs(write_csv(text))
    assert t.domains == ("a", "b") and t.eval_domains == ()
    assert list(t.extra.columns) == ["loss", "note"]
    assert list(t.extra["note"]) == ["hello", "world"]
    assert any("aggregate loss" in n and "loss" in n for n in t.notes)


def test_missing_losses_kept(write_csv):
    text = f"{HEADER}\nr1,1e8,1e9,0.5,0.5,,3.2\nr1,1e8,2e9,0.5,0.5,2.9,\nr2,1e8,1e9,0.25,0.75,,"
    t = load_runs(write_csv(text))
    assert t.n_rows == 3
    assert np.isnan(t.losses).sum() == 4
    np.testing.assert_array_equal(t.loss_mask, [[False, True], [True, False], [False, False]])
    note = next(n for n in t.notes if "missing" in n)
    assert "4 loss values missing (a 2, b 2) in 3 rows (1 with no loss at all)" in note
    assert t.summary()["missing_losses"] == {"a": 2, "b": 2}


def _regmix_style_frame(n_domains=17, n_logged=13, n_runs=6, seed=0):
    """RegMix's published layout: every domain trained, only some losses logged."""
    rng = np.random.default_rng(seed)
    names = [f"dom{j:02d}" for j in range(n_domains)][::-1]  # not alphabetical: order must be kept
    weights = rng.dirichlet(np.ones(n_domains), size=n_runs)
    df = pd.DataFrame({"run_id": [f"r{i}" for i in range(n_runs)], "model_size": 1e6, "n_tokens": 1e9})
    for j, d in enumerate(names):
        df[f"weight_{d}"] = weights[:, j]
    for d in names[:n_logged]:
        df[f"loss_{d}"] = rng.uniform(2.0, 4.0, size=n_runs)
    return df, names


def test_regmix_style_table_trained_domains_without_losses(write_csv, run_cli):
    df, names = _regmix_style_frame()
    path = write_csv(df)
    t = load_runs(path)
    assert t.domains == tuple(names) and t.eval_domains == ()
    unlogged = names[13:]
    assert np.isnan(t.losses[:, 13:]).all() and np.isfinite(t.losses[:, :13]).all()
    note = next(n for n in t.notes if "no loss column" in n)
    assert "4 trained domains" in note and all(d in note for d in unlogged)
    assert "mixture and the law" in note and "no likelihood term" in note
    code, out, err = run_cli("validate", path)
    assert code == 0 and "Traceback" not in err
    assert "no likelihood term" in out + err and all(d in out + err for d in unlogged)


def test_trained_domain_without_loss_via_domain_map(write_csv):
    df, names = _regmix_style_frame(n_domains=3, n_logged=2)
    mapping = {d: (f"weight_{d}", f"loss_{d}" if d in names[:2] else None) for d in names}
    t = load_runs(write_csv(df), mapping=mapping)
    assert t.domains == tuple(names) and np.isnan(t.losses[:, 2]).all()
    assert any(names[2] in n and "no likelihood term" in n for n in t.notes)


def test_typical_log_loss_of_an_unlogged_domain_is_silent():
    import warnings

    from bayesmix.inference import _typical_log_loss

    losses = np.array([[2.0, np.nan], [np.e * 2.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _typical_log_loss(losses, (2.0, 2.0))
    np.testing.assert_allclose(got, [0.5, 0.0])


def test_derived_run_ids(write_csv):
    text = """
    weight_a,weight_b,model_size,n_tokens,a_loss,b_loss
    0.3,0.7,2e8,1e9,3.0,3.0
    0.5,0.5,1e8,1e9,3.1,3.2
    0.3,0.7,2e8,2e9,2.8,2.9
    0.5,0.5,1e8,2e9,2.9,3.0
    0.3,0.7,1e8,1e9,3.2,3.1
    0.5000000000001,0.4999999999999,1e8,3e9,2.7,2.9
    """
    t = load_runs(write_csv(text))
    assert list(t.run_ids) == ["run-0001", "run-0002", "run-0001", "run-0002", "run-0003", "run-0002"]
    assert t.n_runs == 3
    assert t.checkpoint_counts.to_dict() == {"run-0001": 2, "run-0002": 3, "run-0003": 1}
    np.testing.assert_array_equal(t.final_checkpoint_mask, [False, False, True, False, True, True])
    assert any("grouped the rows into 3 runs by mixture and model size" in n for n in t.notes)
    # the rows keep the file order
    np.testing.assert_array_equal(t.tokens, [1e9, 1e9, 2e9, 2e9, 1e9, 3e9])


def test_explicit_run_id_column_and_numeric_ids(write_csv):
    text = """
    seed,model_size,n_tokens,weight_a,a_loss
    1,1e8,1e9,1,3.0
    2,1e8,1e9,1,3.1
    """
    t = load_runs(write_csv(text), run_id_column="seed")
    assert list(t.run_ids) == ["1", "2"]
    assert t.extra is None


def test_explicit_mapping_and_cli_domain_map(write_csv, run_cli):
    text = """
    params,toks,w_web,w_code,val_web,val_code,val_ood
    1e8,1e9,0.6,0.4,3.0,2.0,3.5
    1e8,2e9,0.6,0.4,2.8,1.9,3.4
    """
    path = write_csv(text)
    t = load_runs(
        path,
        mapping={"web": ("w_web", "val_web"), "code": ("w_code", "val_code"), "ood": (None, "val_ood")},
        model_size_column="params",
        tokens_column="toks",
    )
    assert t.domains == ("web", "code") and t.eval_domains == ("ood",)
    np.testing.assert_array_equal(t.losses[:, 1], [2.0, 1.9])
    code, out, err = run_cli(
        "validate",
        path,
        "--domain-map",
        "web=w_web:val_web,code=w_code:val_code,ood=:val_ood",
        "--model-size-column",
        "params",
        "--tokens-column",
        "toks",
    )
    assert code == 0, err
    assert "trained domains  2: web, code" in out and "evaluation-only  1: ood" in out


def test_filter_scale(write_csv):
    text = """
    run_id,model_size,n_tokens,weight_a,a_loss
    r1,1.22e8,1e9,1,3.0
    r1,1.22e8,2e9,1,2.9
    r2,3.1e8,1e9,1,2.9
    r2,3.1e8,2e9,1,2.7
    r3,6.8e8,2e9,1,2.5
    """
    t = load_runs(write_csv(text))
    f = t.filter_scale(model_size=[122e6 * (1 + 1e-8)])
    assert f.n_rows == 2 and set(f.run_ids) == {"r1"}
    assert any("kept 2 of 5 rows" in n for n in f.notes)
    f = t.filter_scale(model_size=[122e6, 310e6], tokens=[2e9])
    np.testing.assert_array_equal(f.model_size, [1.22e8, 3.1e8])
    assert t.filter_scale(max_model_size=310e6).n_rows == 4
    assert t.filter_scale(tokens=2e9).n_rows == 3  # a scalar is a list of one
    with pytest.raises(DataError) as info:
        t.filter_scale(model_size=[937e6])
    msg = str(info.value)
    assert "no rows at model size 937M" in msg and "N=122M" in msg and "N=680M (D 2B)" in msg
    with pytest.raises(DataError, match="no rows left"):
        t.filter_scale(model_size=[680e6], tokens=[1e9])
    with pytest.raises(DataError, match="available scales"):
        t.filter_scale(max_model_size=1e6)


def test_cli_filter_options(write_csv, run_cli):
    path = write_csv(GOOD)
    code, out, err = run_cli("validate", path, "--filter-tokens", "2B")
    assert code == 0 and "rows             2" in out
    code, out, err = run_cli("validate", path, "--filter-model-size", "7B")
    assert code == 2 and "no rows at model size 7B" in err


def test_select_keeps_everything_aligned(write_csv):
    text = """
    run_id,model_size,n_tokens,weight_a,weight_b,loss_a,loss_b,loss_ood,tag
    r1,1e8,1e9,0.5,0.5,3.0,3.2,4.0,x
    r1,1e8,2e9,0.5,0.5,2.9,3.1,3.9,y
    r2,2e8,1e9,0.3,0.7,3.1,3.0,3.8,z
    """
    t = load_runs(write_csv(text))
    s = t.select(np.array([False, True, True]))
    assert s.n_rows == 2 and list(s.run_ids) == ["r1", "r2"]
    np.testing.assert_array_equal(s.eval_losses[:, 0], [3.9, 3.8])
    assert list(s.extra["tag"]) == ["y", "z"] and list(s.extra.index) == [0, 1]
    s2 = t.select([2, 0])
    np.testing.assert_array_equal(s2.weights, [[0.3, 0.7], [0.5, 0.5]])
    np.testing.assert_array_equal(s2.losses[:, 0], [3.1, 3.0])
    assert list(s2.extra["tag"]) == ["z", "x"]
    assert s2.notes == t.notes and s2.source == t.source
    assert t.select(slice(0, 1)).n_rows == 1
    fc = t.final_checkpoints()
    assert list(fc.run_ids) == ["r1", "r2"] and list(fc.tokens) == [2e9, 1e9]
    with pytest.raises(IndexError):
        t.select(np.array([True, False]))


def test_fingerprint_stable(write_csv, tmp_path):
    path = write_csv(GOOD)
    fp = load_runs(path).fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert load_runs(path).fingerprint() == fp
    code = f"from bayesmix.data import load_runs; print(load_runs({str(path)!r}).fingerprint())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == fp
    # same content elsewhere, other notes: same fingerprint
    copy = tmp_path / "copy.csv"
    copy.write_text(path.read_text())
    assert load_runs(copy).fingerprint() == fp
    # content changes change it
    changed = write_csv(GOOD.replace("2.8", "2.81"), "changed.csv")
    assert load_runs(changed).fingerprint() != fp
    renamed = write_csv(GOOD.replace("r2", "r9"), "renamed.csv")
    assert load_runs(renamed).fingerprint() != fp


def test_fingerprint_canonical_nan_and_zero():
    w = np.array([[1.0, 0.0], [0.5, 0.5]])
    losses = np.array([[3.0, np.nan], [2.0, 2.5]])
    a = RunTable.from_arrays(w, 1e8, [1e9, 1e9], losses, domains=["a", "b"], run_ids=["x", "y"])
    w2 = w.copy()
    w2[0, 1] = -0.0
    losses2 = losses.copy()
    losses2[0, 1] = -np.float64("nan")
    b = RunTable.from_arrays(w2, 1e8, [1e9, 1e9], losses2, domains=["a", "b"], run_ids=["x", "y"])
    assert a.fingerprint() == b.fingerprint()


def test_frame_round_trip(write_csv):
    text = """
    weight_arxiv,weight_book,model_size,n_tokens,arxiv_loss,book_loss,openhermes_loss,comment
    0.5,0.495,1e8,1e9,3.0,3.5,3.3,a
    0.2,0.8,1e8,2e9,3.1,,3.2,b
    0.2,0.8,2e8,2e9,3.0,3.1,,c
    """
    t = load_runs(write_csv(text))
    df = t.to_frame()
    assert list(df.columns) == [
        "run_id",
        "model_size",
        "n_tokens",
        "weight_arxiv",
        "weight_book",
        "loss_arxiv",
        "loss_book",
        "loss_openhermes",
        "comment",
    ]
    back = RunTable.from_frame(df)
    assert back.domains == t.domains and back.eval_domains == t.eval_domains
    for name in ("weights", "model_size", "tokens", "losses", "eval_losses", "run_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))
    assert back.fingerprint() == t.fingerprint()
    assert list(back.extra["comment"]) == ["a", "b", "c"]
    # and through a CSV file
    path = write_csv(df, "again.csv")
    assert load_runs(path).fingerprint() == t.fingerprint()


def test_parquet_and_tsv(write_csv):
    pytest.importorskip("pyarrow")
    t = load_runs(write_csv(GOOD))
    pq = write_csv(t.to_frame(), "runs.parquet")
    tp = load_runs(pq)
    assert tp.fingerprint() == t.fingerprint() and tp.source == str(pq)
    tsv = write_csv(t.to_frame(), "runs.tsv")
    assert load_runs(tsv).fingerprint() == t.fingerprint()


def test_parquet_non_numeric_cell(write_csv):
    pytest.importorskip("pyarrow")
    df = pd.DataFrame(
        {"model_size": [1e8, 1e8], "n_tokens": ["1e9", "lots"], "weight_a": [1.0, 1.0], "a_loss": [3.0, 2.9]}
    )
    with pytest.raises(DataError) as info:
        load_runs(write_csv(df, "bad.parquet"))
    assert info.value.column == "n_tokens" and info.value.rows == [2] and "'lots'" in str(info.value)


def test_inputs_only_table(write_csv):
    text = """
    model_size,n_tokens,weight_a,weight_b
    7e9,1.4e11,0.5,0.5
    7e9,1.4e11,0.3,0.7
    """
    path = write_csv(text)
    with pytest.raises(DataError, match="no loss column"):
        load_runs(path)
    t = load_runs(path, require_losses=False)
    assert not t.has_losses and t.losses.shape == (2, 2) and np.isnan(t.losses).all()
    assert any("inputs only" in n for n in t.notes)
    df = t.to_frame()
    assert df[["loss_a", "loss_b"]].isna().all().all()
    back = RunTable.from_frame(df)
    assert back.fingerprint() == t.fingerprint() and not back.has_losses
    assert any("inputs only" in n for n in back.notes)
    assert "none (a table of inputs only)" in t.format_summary()


def test_from_arrays():
    rng = np.random.default_rng(0)
    W = np.repeat(rng.dirichlet(np.ones(3), size=2), 2, axis=0)  # two runs, two checkpoints each
    L = rng.uniform(2, 4, size=(4, 3))
    t = RunTable.from_arrays(
        W, 1e8, [1e9, 2e9, 1e9, 2e9], L, domains=["x", "y", "z"], run_ids=["a", "a", "b", "b"]
    )
    assert t.domains == ("x", "y", "z") and t.n_runs == 2
    np.testing.assert_array_equal(t.model_size, np.full(4, 1e8))
    np.testing.assert_allclose(t.weights, W, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(t.losses, L)
    # default names and derived runs
    t2 = RunTable.from_arrays(W, [1e8, 2e8, 2e8, 2e8], [1e9, 1e9, 1e9, 2e9], L)
    assert t2.domains == ("d1", "d2", "d3") and t2.n_runs == 3
    assert list(t2.run_ids) == ["run-0001", "run-0002", "run-0003", "run-0003"]
    # no losses: inputs only
    assert not RunTable.from_arrays(W, 1e8, [1e9, 2e9, 1e9, 2e9]).has_losses
    # evaluation-only losses
    t3 = RunTable.from_arrays(W, 1e8, 1e9, L, eval_losses=L[:, 0], eval_domains=["ood"], run_ids=list("abcd"))
    assert t3.eval_domains == ("ood",) and t3.eval_losses.shape == (4, 1)
    with pytest.raises(DataError, match="shape"):
        RunTable.from_arrays(W, 1e8, 1e9, L[:, :2])
    with pytest.raises(DataError, match="shape"):
        RunTable.from_arrays(W, [1e8, 1e8], 1e9)
    bad = W.copy()
    bad[1, 0] += 0.5
    with pytest.raises(DataError, match="sum to") as info:
        RunTable.from_arrays(bad, 1e8, 1e9, L)
    assert info.value.rows == [2]
    neg = L.copy()
    neg[2, 1] = -1.0
    with pytest.raises(DataError) as info:
        RunTable.from_arrays(W, 1e8, 1e9, neg, domains=["x", "y", "z"])
    assert info.value.column == "loss_y" and info.value.rows == [3]


def test_from_arrays_refuses_repeated_domain_names():
    # the columns of two domains of one name used to collapse into one, dropping a weight column
    with pytest.raises(DataError, match="domain name repeated: a") as info:
        RunTable.from_arrays([[0.0, 1.0]], 1e8, 1e9, [[3.0, 3.0]], domains=["a", "a"])
    assert info.value.column == "domains"


def test_constructor_checks_shapes():
    with pytest.raises(DataError, match="losses has shape"):
        RunTable(
            ("a",),
            np.ones((2, 1)),
            np.ones(2),
            np.ones(2),
            np.ones((3, 1)),
            np.array(["r", "s"], dtype=object),
        )


def test_summary_and_cli_output(write_csv, run_cli):
    path = write_csv(GOOD)
    t = load_runs(path)
    s = t.summary()
    assert s["domains"] == ["a", "b"] and s["n_domains"] == 2 and s["rows"] == 4 and s["runs"] == 2
    assert s["checkpoints_per_run"] == {"min": 2, "median": 2, "max": 2}
    assert s["model_sizes"] == [
        {"model_size": 1e8, "runs": 2, "rows": 4, "tokens_min": 1e9, "tokens_max": 2e9, "n_token_values": 2}
    ]
    assert s["missing_losses_total"] == 0 and s["n_scales"] == 2
    code, out, err = run_cli("validate", path)
    assert code == 0 and err == ""
    assert out.strip() == t.format_summary()
    assert "trained domains  2: a, b" in out and "runs             2" in out


def test_cli_help(run_cli):
    with pytest.raises(SystemExit) as info:
        run_cli("validate", "--help")
    assert info.value.code == 0


# ----------------------------------------------------------------------------- properties

TOL = 1e-2


@st.composite
def random_tables(draw):
    K = draw(st.integers(1, 6))
    n = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    perturb = draw(st.floats(0.0, 0.99 * TOL))
    style = draw(st.sampled_from(["loss_{}", "{}_loss"]))
    with_run_ids = draw(st.booleans())
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.full(K, draw(st.floats(0.1, 5.0))), size=n)
    W = W * (1.0 + rng.uniform(-perturb, perturb, size=(n, 1)))
    L = rng.uniform(0.5, 5.0, size=(n, K))
    L[rng.random((n, K)) < 0.1] = np.nan
    N = rng.choice([1.22e8, 3.1e8, 6.8e8, 9.37e8], size=n) * (1 + rng.random(n) * 1e-3)
    D = rng.uniform(1e9, 4e10, size=n)
    names = [f"dom{j}" for j in range(K)]
    cols = {}
    if with_run_ids:
        cols["run_id"] = [f"r{i}" for i in range(n)]
    cols["model_size"] = N
    cols["n_tokens"] = D
    for j, d in enumerate(names):
        cols[f"weight_{d}"] = W[:, j]
    for j, d in enumerate(names):
        cols[style.format(d)] = L[:, j]
    return pd.DataFrame(cols), W, L, N, D


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(random_tables())
def test_property_csv_round_trip(tmp_path, table):
    df, W, L, N, D = table
    path = tmp_path / "prop.csv"
    df.to_csv(path, index=False)
    t = load_runs(path)
    assert t.n_rows == len(df)
    np.testing.assert_array_equal(t.model_size, N)
    np.testing.assert_array_equal(t.tokens, D)
    np.testing.assert_array_equal(t.losses, L)
    sums = W.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(t.weights, W / sums, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # renormalisation never moves a weight by more than the tolerance
    assert np.all(np.abs(t.weights - W) <= TOL)
    # the canonical frame reads back to the same arrays, exactly
    out = t.to_frame()
    again = tmp_path / "again.csv"
    out.to_csv(again, index=False)
    back = load_runs(again)
    for name in ("weights", "model_size", "tokens", "losses", "run_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))
    assert back.fingerprint() == t.fingerprint()
    assert not any("renormalised" in note for note in back.notes)


@settings(max_examples=50, deadline=None)
@given(
    K=st.integers(1, 6),
    seed=st.integers(0, 2**32 - 1),
    factor=st.floats(1 - 0.999 * TOL, 1 + 0.999 * TOL),
)
def test_property_renormalisation_bounded(K, seed, factor):
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(K), size=3) * factor
    t = RunTable.from_arrays(W, 1e8, [1e9, 2e9, 3e9], weight_tolerance=TOL)
    assert np.all(np.abs(t.weights - W) <= TOL + 1e-15)
    assert np.all(np.abs(t.weights - W) <= np.abs(factor - 1) + 1e-15)
    assert math.isclose(t.weights.sum(axis=1).max(), 1.0, abs_tol=1e-12)
