"""Every command refuses malformed input like `validate` does.

Each case runs ``bayesmix.cli.main`` on one malformed input and checks: exit status 2,
exactly one error line on stderr naming the problem, no traceback, and an existing
output file left byte-identical. No case samples: commands needing a fit use a shipped
model folder, and every check runs before any long work.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "slimpajama7-capacity_noise"
DOMAINS = ("arxiv", "book", "c4", "github", "commoncrawl", "stackexchange", "wikipedia")
MIX = "arxiv=0.2,book=0.1,c4=0.2,github=0.1,commoncrawl=0.2,stackexchange=0.1,wikipedia=0.1"
KEEP = b"an existing output: keep me\n"
TARGET = ["--target-model-size", "1B", "--target-tokens", "20B"]
NEXT = ["next", "{fit}", *TARGET, "--out", "{out}"]
REC = ["recommend", "{fit}", *TARGET, "--max-draws", "20", "--restarts", "1", "--out", "{out}"]
CAMP = ["campaign", "--simulate", "--budget-steps", "1", "--sizes", "50M", "--tokens-per-param", "20"]


def run_table(domains=DOMAINS, rows: int = 6, seed: int = 0) -> pd.DataFrame:
    """A small valid run table over ``domains`` (weights, N, D and losses)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(len(domains)), size=rows)
    frame = pd.DataFrame({f"weight_{d}": weights[:, j] for j, d in enumerate(domains)})
    frame["model_size"] = np.where(np.arange(rows) % 2, 1.22e8, 3.1e8)
    frame["n_tokens"] = 2e10
    for j, d in enumerate(domains):
        frame[f"{d}_loss"] = 2.5 + 0.3 * rng.random(rows)
    return frame


@pytest.fixture
def files(tmp_path):
    """Paths of the inputs the cases name, as ``{name: str}`` for ``str.format``."""
    import xarray as xr

    def put(name, content):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)

    good = run_table()
    cand = "name,{cols},model_size,tokens\na,{vals},122M,2.4B\n"
    cols, vals = ",".join(DOMAINS), ",".join(["0.1"] * 4 + ["0.2"] * 3)
    out = {
        "fit": str(MODEL),
        "out": put("existing.csv", KEEP),
        "dir": str(tmp_path / "a_folder"),
        "runs": str(tmp_path / "runs.csv"),
        "renamed": str(tmp_path / "renamed.csv"),
        "empty": put("empty.csv", ""),
        "binary": put("binary.csv", bytes(range(256)) * 8),
        "garbage_nc": put("garbage.nc", bytes(range(256)) * 8),
        "notfit": str(tmp_path / "plain.nc"),
        "cand_str": put("cand_str.csv", cand.format(cols=cols, vals=vals.replace("0.1", "abc", 1))),
        "cand_dup": put("cand_dup.csv", cand.format(cols=cols + ",weight_github", vals=vals + ",0.1")),
        "cand_rep": put("cand_rep.csv", cand.format(cols=cols + ",github", vals=vals + ",0.1")),
        "cand_unknown": put("cand_unknown.csv", cand.format(cols=cols.replace("github", "code"), vals=vals)),
        "cand_header": put("cand_header.csv", f"name,{cols},model_size,tokens\n"),
        "cand_huge": put("cand_huge.csv", cand.format(cols=cols, vals=vals).replace("122M", "1e300")),
        "mix_str": put("mix_str.json", json.dumps({"a": {"arxiv": "x", "book": 1.0}})),
        "mix_dup": put("mix_dup.json", '{"a": {"arxiv": 0.5, "arxiv": 0.5}}'),
        "mix_nan": put("mix_nan.json", '{"a": {"arxiv": NaN, "book": 1.0}}'),
        "mix_neg": put("mix_neg.csv", "name,arxiv,book\na,-0.5,1.5\n"),
        "mix_bad_json": put("mix_bad.json", "{not json"),
        "rec_binary": put("rec.json", bytes(range(256)) * 4),
    }
    (tmp_path / "a_folder").mkdir()
    good.to_csv(out["runs"], index=False)
    good.rename(columns={"weight_github": "weight_code", "github_loss": "code_loss"}).to_csv(out["renamed"], index=False)
    xr.Dataset({"x": ("a", np.arange(3.0))}).to_netcdf(out["notfit"], engine="h5netcdf")
    return out


CASES = {
    # validate
    "validate-empty": (["validate", "{empty}"], "empty"),
    "validate-binary": (["validate", "{binary}"], "cannot read"),
    "validate-missing": (["validate", "{dir}/absent.csv"], "not found"),
    "validate-bad-filter": (["validate", "{runs}", "--filter-model-size", "big"], "cannot read model size"),
    # fit: refused before sampling
    "fit-out-is-folder": (["fit", "{runs}", "--out", "{dir}"], "is a folder"),
    "fit-out-under-file": (["fit", "{runs}", "--out", "{out}/fit.nc"], "not a folder"),
    "fit-empty-table": (["fit", "{empty}", "--out", "{out}"], "empty"),
    "fit-missing-priors": (["fit", "{runs}", "--out", "{out}", "--priors", "{dir}/absent.toml"], "not found"),
    "fit-unknown-law": (["fit", "{runs}", "--out", "{out}", "--law", "nope"], "invalid choice"),
    "fit-one-chain": (["fit", "{runs}", "--out", "{out}", "--chains", "1"], "chains must be an integer of at least 2"),
    "fit-no-draws": (["fit", "{runs}", "--out", "{out}", "--draws", "0"], "draws must be an integer of at least 1"),
    # predict
    "predict-out-is-folder": (["predict", "{fit}", "--mixture", MIX, "--model-size", "1B", "--tokens", "20B",
                               "--out", "{dir}"], "is a folder"),
    "predict-out-under-file": (["predict", "{fit}", "--runs", "{runs}", "--out", "{out}/p.csv"], "not a folder"),
    "predict-nan-weight": (["predict", "{fit}", "--mixture", MIX.replace("arxiv=0.2", "arxiv=nan"),
                            "--model-size", "1B", "--tokens", "20B", "--out", "{out}"], "nan, not a finite"),
    "predict-domain-twice": (["predict", "{fit}", "--mixture", MIX.replace("book=", "arxiv="),
                              "--model-size", "1B", "--tokens", "20B", "--out", "{out}"], "'arxiv' given twice"),
    "predict-unknown-domain": (["predict", "{fit}", "--mixture", "web=1", "--model-size", "1B", "--tokens", "20B",
                                "--out", "{out}"], "unknown domains in --mixture: web"),
    "predict-sum": (["predict", "{fit}", "--mixture", "arxiv=0.75", "--model-size", "1B", "--tokens", "20B",
                     "--out", "{out}"], "sum to 0.75"),
    "predict-huge-size": (["predict", "{fit}", "--mixture", MIX, "--model-size", "1e300", "--tokens", "20B",
                           "--out", "{out}"], "model size 1e+300 is impossible"),
    "predict-zero-size": (["predict", "{fit}", "--mixture", MIX, "--model-size", "0", "--tokens", "20B",
                           "--out", "{out}"], "positive"),
    "predict-inf-tokens": (["predict", "{fit}", "--mixture", MIX, "--model-size", "1B", "--tokens", "inf",
                            "--out", "{out}"], "cannot read tokens 'inf'"),
    "predict-not-a-fit": (["predict", "{notfit}", "--runs", "{runs}", "--out", "{out}"], "not a bayesmix fit"),
    "predict-garbage-fit": (["predict", "{garbage_nc}", "--runs", "{runs}", "--out", "{out}"], "not a bayesmix fit"),
    "predict-renamed-domain": (["predict", "{fit}", "--runs", "{renamed}", "--out", "{out}"],
                               "'code' unknown to the fit"),
    "predict-empty-runs": (["predict", "{fit}", "--runs", "{empty}", "--out", "{out}"], "empty"),
    "predict-nothing": (["predict", "{fit}", "--out", "{out}"], "give --runs"),
    # recommend
    "recommend-out-is-folder": ([*REC[:-1], "{dir}"], "is a folder"),
    "recommend-huge-target": (["recommend", "{fit}", "--target-model-size", "1e300", "--target-tokens", "20B",
                               "--out", "{out}"], "impossible"),
    "recommend-string-weight": ([*REC, "--candidates", "{mix_str}"], "weight 'x' is not a number"),
    "recommend-key-twice": ([*REC, "--candidates", "{mix_dup}"], "'arxiv' given twice"),
    "recommend-nan-weight": ([*REC, "--candidates", "{mix_nan}"], "weight of 'arxiv' is nan"),
    "recommend-negative-weight": ([*REC, "--candidates", "{mix_neg}"], "weight of 'arxiv' is -0.5"),
    "recommend-bad-json": ([*REC, "--candidates", "{mix_bad_json}"], "cannot read mixtures"),
    "recommend-empty-candidates": ([*REC, "--candidates", "{empty}"], "empty"),
    "recommend-binary-candidates": ([*REC, "--candidates", "{binary}"], "cannot read"),
    "recommend-baseline-twice": ([*REC, "--baseline", "cur:arxiv=0.5,arxiv=0.5"], "'arxiv' given twice"),
    "recommend-nan-bound": ([*REC, "--min", "arxiv=nan"], "not a finite number"),
    "recommend-not-a-fit": (["recommend", "{notfit}", *TARGET, "--out", "{out}"], "not a bayesmix fit"),
    # next
    "next-out-is-folder": ([*NEXT[:-1], "{dir}", "--candidates", "{cand_str}"], "is a folder"),
    "next-empty-candidates": ([*NEXT, "--candidates", "{empty}"], "empty"),
    "next-binary-candidates": ([*NEXT, "--candidates", "{binary}"], "cannot read"),
    "next-string-weight": ([*NEXT, "--candidates", "{cand_str}"], "weight 'abc' is not a finite number"),
    "next-domain-twice": ([*NEXT, "--candidates", "{cand_dup}"], "domain 'github' given twice"),
    "next-column-twice": ([*NEXT, "--candidates", "{cand_rep}"], "column name repeated in the header: github"),
    "next-unknown-domain": ([*NEXT, "--candidates", "{cand_unknown}"], "column 'code' is not a domain"),
    "next-header-only": ([*NEXT, "--candidates", "{cand_header}"], "no candidate runs"),
    "next-huge-candidate": ([*NEXT, "--candidates", "{cand_huge}"], "cand_huge.csv: model size 1e+300 is impossible"),
    "next-renamed-runs": ([*NEXT, "--sizes", "122M", "--tokens-per-param", "20", "--n-mixtures", "2",
                           "--criterion", "space-filling", "--runs", "{renamed}"], "'code' unknown to the fit"),
    "next-huge-target": (["next", "{fit}", "--target-model-size", "1B", "--target-tokens", "1e300",
                          "--sizes", "122M", "--out", "{out}"], "tokens 1e+300 is impossible"),
    "next-no-candidates": ([*NEXT], "no candidates"),
    "next-not-a-fit": (["next", "{garbage_nc}", *TARGET, "--sizes", "122M", "--out", "{out}"], "not a bayesmix fit"),
    # compare: refused before any fit
    "compare-empty": (["compare", "{empty}", "--out", "{out}"], "empty"),
    "compare-out-is-folder": (["compare", "{runs}", "--out", "{dir}"], "is a folder"),
    "compare-save-fits-is-file": (["compare", "{runs}", "--json", "{dir}/c.json", "--save-fits", "{out}"],
                                  "is a file"),
    "compare-one-chain": (["compare", "{runs}", "--out", "{out}", "--chains", "1"], "at least 2"),
    # report
    "report-not-a-fit": (["report", "{notfit}", "-o", "{out}"], "not a bayesmix fit"),
    "report-out-is-folder": (["report", "{fit}", "-o", "{dir}"], "is a folder"),
    "report-binary-recommendation": (["report", "{fit}", "--recommend", "{rec_binary}", "-o", "{out}"], "rec.json"),
    "report-huge-target": (["report", "{fit}", "--target-model-size", "1e300", "-o", "{out}"], "impossible"),
    # campaign: refused before simulating or fitting
    "campaign-out-is-file": ([*CAMP, *TARGET, "--out", "{out}"], "is a file"),
    "campaign-two-sources": ([*CAMP, "--pool", "{runs}", *TARGET, "--out", "{dir}"], "exactly one source"),
    "campaign-no-budget": (["campaign", "--simulate", *TARGET, "--out", "{dir}"], "give a budget"),
    "campaign-huge-target": ([*CAMP, "--target-model-size", "1e300", "--target-tokens", "20B", "--out", "{dir}"],
                             "impossible"),
}


def run_main(argv):
    """``main(argv)`` as the console script runs it: ``(exit status, traceback or '')``."""
    from bayesmix.cli import main

    try:
        return main(argv), ""
    except SystemExit as exc:  # argparse's own errors
        return exc.code, ""
    except BaseException:  # noqa: BLE001 - the point is to see any traceback
        return None, traceback.format_exc()


@pytest.mark.parametrize("argv, words", list(CASES.values()), ids=list(CASES))
def test_malformed_input_is_refused_cleanly(files, capsys, argv, words):
    argv = [a.format(**files) for a in argv]
    capsys.readouterr()
    code, trace = run_main(argv)
    out, err = capsys.readouterr()
    assert not trace, trace
    assert "Traceback" not in out + err
    assert code == 2, (code, err)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert words in errors[0], err
    assert "np.float64" not in err
    assert Path(files["out"]).read_bytes() == KEEP
    assert list(Path(files["dir"]).iterdir()) == []


def test_the_matrix_is_wide():
    commands = {argv[0] for argv, _ in CASES.values()}
    assert len(CASES) >= 40
    assert commands == {"validate", "fit", "predict", "recommend", "next", "compare", "report", "campaign"}
