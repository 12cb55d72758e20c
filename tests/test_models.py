"""Shipped model artifacts: export round trip, and predict / recommend / next from each one.

The artifacts under ``models/`` are fitted by the case studies
(``python case_studies/<study>/run.py --export-model``) and committed; these tests use
them as a user on a fresh clone would, without the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix.artifacts import CARD_FILE, POSTERIOR_FILE, export_model, read_card
from bayesmix.errors import UsageError
from bayesmix.inference import Fit
from bayesmix.simulate import default_truth
from bayesmix.testing import fit_from_posterior, posterior_around_truth

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = ("slimpajama7-capacity_noise", "pile17-capacity_noise", "pile4-capacity_noise")
#: The issue asks for "small: a few MB at most".
MAX_ARTIFACT_BYTES = 5 * 2**20


@pytest.fixture(scope="module")
def small_fit():
    truth = default_truth("capacity_noise", seed=3)
    return fit_from_posterior(posterior_around_truth(truth, n_draws=600, seed=3))


def test_export_round_trip_thins_and_keeps_predictions(small_fit, tmp_path):
    folder = export_model(small_fit, tmp_path / "m", max_draws=100, heldout={"mre": 0.01},
                          provenance={"command": "test"}, description="unit test")
    loaded = Fit.load(folder)
    post = loaded.posterior()
    assert post.n_draws == 100
    # the thinned draws are a subset of the original ones: predictions at a point agree
    # with the original posterior evaluated on the same draws
    full = small_fit.posterior()
    h = np.full((1, len(full.domains)), 1 / len(full.domains))
    kept = full.expected_loss(h, 1e9, 2e10)[::6][:100]
    np.testing.assert_allclose(post.expected_loss(h, 1e9, 2e10), kept, rtol=1e-12)
    card = read_card(folder)
    assert card["law"] == "capacity_noise"
    assert card["heldout_accuracy"] == {"mre": 0.01}
    assert card["fit"]["draws_shipped"] == 100
    assert card["domains"] == list(full.domains)


def test_export_does_not_ship_the_data(small_fit, tmp_path):
    from bayesmix import _az

    _az.add_table_groups(small_fit.idata, weights=np.full((2, 4), 0.25), model_size=np.array([1e8, 2e8]),
                         tokens=np.array([2e9, 4e9]), run_ids=np.array(["a", "b"]),
                         losses=np.full((2, 4), 3.0), loglik=np.zeros((2, 300, 2, 4)),
                         domains=small_fit.domains)
    folder = export_model(small_fit, tmp_path / "m", max_draws=50)
    idata = _az.load(folder / POSTERIOR_FILE)
    assert _az.table_groups(idata) is None
    assert not hasattr(idata, "log_likelihood")


def test_export_refuses_a_fit_the_gate_refused_and_writes_nothing(small_fit, tmp_path):
    """A shipped model is one the diagnostics gate let through: chains that disagree
    (R-hat 1.16) or a divergence stop the export before any file is written."""
    import dataclasses

    from bayesmix.errors import FitRejectedError

    for bad in ({"max_rhat": 1.16, "worst_rhat_param": "c[commoncrawl]", "divergences": 0},
                {"max_rhat": 1.0, "divergences": 2, "target_accept": 0.95}):
        refused = dataclasses.replace(small_fit, attrs={**small_fit.attrs, "diagnostics": bad})
        with pytest.raises(FitRejectedError, match="not shipping 'm'.*gate refused") as err:
            export_model(refused, tmp_path / "m")
        assert ("R-hat 1.160" in str(err.value)) is (bad["max_rhat"] > 1.01)
        assert not (tmp_path / "m" / POSTERIOR_FILE).exists() and not (tmp_path / "m" / CARD_FILE).exists()
    passed = dataclasses.replace(small_fit, attrs={**small_fit.attrs, "diagnostics": {"max_rhat": 1.0, "divergences": 0}})
    assert (export_model(passed, tmp_path / "m", max_draws=50) / CARD_FILE).exists()


def test_export_rejects_bad_draw_count(small_fit, tmp_path):
    with pytest.raises(UsageError, match="max_draws"):
        export_model(small_fit, tmp_path / "m", max_draws=0)


def test_read_card_of_a_folder_without_card(tmp_path):
    with pytest.raises(UsageError, match="card.json"):
        read_card(tmp_path)


# ----------------------------------------------------------------------------- shipped artifacts


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_artifact_is_small_and_has_a_complete_card(name):
    folder = MODELS / name
    assert (folder / POSTERIOR_FILE).exists(), f"{folder} missing: run case_studies/.../run.py --export-model"
    assert (folder / POSTERIOR_FILE).stat().st_size < MAX_ARTIFACT_BYTES
    card = json.loads((folder / CARD_FILE).read_text())
    for key in ("law", "priors", "domains", "data", "provenance", "fit", "heldout_accuracy", "versions"):
        assert card[key], f"card of {name} lacks {key}"
    assert len(card["data"]["fingerprint"]) == 64
    assert card["data"]["scales_covered"]["model_sizes"]
    assert np.isfinite(card["fit"]["diagnostics"]["max_rhat"])
    assert 0 <= card["heldout_accuracy"]["all_rows"]["mre_all_cells"] < 0.2


@pytest.mark.parametrize("name", SHIPPED)
def test_card_fingerprint_matches_the_public_table(name, shared_data):
    from bayesmix.data import load_runs

    card = read_card(MODELS / name)
    study = name.split("-")[0]
    # the fit saw a subset of the table; the fingerprint is of that subset, so it must
    # differ from the whole table's but the table's domains must be the artifact's
    table = load_runs(shared_data / study / "runs.csv")
    assert list(table.domains) == card["domains"]
    assert card["data"]["fingerprint"] != table.fingerprint()


@pytest.mark.parametrize("name", SHIPPED)
def test_predict_from_shipped_artifact(name, run_cli, tmp_path):
    card = read_card(MODELS / name)
    domains = card["domains"]
    mixture = ",".join(f"{d}={1 / len(domains):.6f}" for d in domains)
    out = tmp_path / "pred.csv"
    code, stdout, stderr = run_cli("predict", str(MODELS / name), "--mixture", mixture, "--model-size", "3B",
                                   "--tokens", "60B", "--out", str(out))
    assert code == 0, stderr
    frame = pd.read_csv(out)
    for d in domains:
        mean, lo, hi = frame[f"pred_{d}"].iloc[0], frame[f"q05_{d}"].iloc[0], frame[f"q95_{d}"].iloc[0]
        # a validation loss in nats of a 3B model: positive, below the loss of a uniform
        # byte model (ln 256 = 5.5), and inside its own predictive interval
        assert 0 < lo <= mean <= hi < np.log(256)


def test_predict_explain_says_what_the_discrepancy_adds_to_the_law_s_mean(run_cli):
    """SlimPajama's model extrapolated to 3B: ``--explain`` prints, per domain, the
    discrepancy's mean at that scale (% of the loss), those of
    :func:`bayesmix.uncertainty.uncertainty_budget`; fitted on two sizes whose loss falls
    faster than the law's own trend, it lowers every domain's predicted loss there."""
    from bayesmix.cli.common import load_posterior
    from bayesmix.uncertainty import uncertainty_budget

    name = "slimpajama7-capacity_noise"
    domains = read_card(MODELS / name)["domains"]
    weights = np.full(len(domains), 1 / len(domains))
    mixture = ",".join(f"{d}={w:.6f}" for d, w in zip(domains, weights))
    code, stdout, stderr = run_cli("predict", str(MODELS / name), "--mixture", mixture, "--model-size", "3B",
                                   "--tokens", "60B", "--explain")
    assert code == 0, stderr
    block = stdout.split("what the discrepancy adds to the law's mean here")[1].splitlines()[1:len(domains) + 1]
    printed = {line.split()[0]: float(line.split()[1]) for line in block}
    assert list(printed) == list(domains)
    shift = uncertainty_budget(load_posterior(str(MODELS / name)), weights, 3e9, 6e10)["discrepancy_shift"][0]
    np.testing.assert_allclose([printed[d] for d in domains], 100 * shift, atol=0.006)
    assert all(value < 0 for value in printed.values())


@pytest.mark.parametrize("name", SHIPPED)
def test_recommend_from_shipped_artifact(name, run_cli, tmp_path):
    card = read_card(MODELS / name)
    out = tmp_path / "rec.json"
    first = card["domains"][0]
    code, stdout, stderr = run_cli("recommend", str(MODELS / name), "--target-model-size", "3B", "--target-tokens", "60B",
                                   "--risk", "cvar:0.9", "--min", f"{first}=0.05", "--out", str(out))
    assert code == 0, stderr
    rec = json.loads(out.read_text())
    weights = np.array([rec["mixture"][d] for d in card["domains"]])
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert weights.min() >= 0 and rec["mixture"][first] >= 0.05 - 1e-9


# Pile 17's 17 domains make `next` the fast tier's slowest test (15-16 s measured on 2 cores
# under a load of 5; the other two took half that or less): slow, the other two keep
# `next` on a shipped artifact in the fast tier.
# Candidate sizes above every shipped model's capacity floor H: Pile 17 is one model size
# (1B), and its H reaches 121M in some draws (median 57M), so a 100M candidate is refused
# there (test_next_refuses_candidates_at_or_below_the_capacity_floor).
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n.startswith("pile17") else n
                                  for n in SHIPPED])
def test_next_from_shipped_artifact(name, run_cli, tmp_path):
    out = tmp_path / "next.csv"
    code, stdout, stderr = run_cli("next", str(MODELS / name), "--target-model-size", "3B", "--target-tokens",
                                   "60B", "--sizes", "200M,300M", "--tokens-per-param", "20", "--n-mixtures", "4",
                                   "--max-draws", "100", "--out", str(out))
    assert code == 0, stderr
    frame = pd.read_csv(out)
    assert len(frame) == 8 and frame["selected"].sum() == 1
    numbers = frame[["model_size", "tokens", "cost", "score", "score_per_cost"]
                    + [c for c in frame.columns if c.startswith("weight_")]].to_numpy(dtype=float)
    assert np.all(np.isfinite(numbers))
    # The value of information is never negative; its estimate is 0 for a run that teaches
    # nothing and otherwise within its Monte Carlo error of a non-negative number.
    assert np.all(frame["score"] >= -4 * frame["voi_se"] - 1e-12)


def test_next_refuses_candidates_at_or_below_the_capacity_floor(run_cli, tmp_path):
    """No capacity split exists at a model size at or below H: the candidate is refused
    with the floor named, not scored from floor values."""
    name = "pile17-capacity_noise"
    post = Fit.load(MODELS / name).posterior()
    floor = float(np.max(post.draws["H"])) * post.scaling.n_ref
    size = f"{floor / 2 / 1e6:.0f}M"
    code, _, stderr = run_cli("next", str(MODELS / name), "--target-model-size", "3B", "--target-tokens", "60B",
                              "--sizes", f"{size},300M", "--tokens-per-param", "20", "--n-mixtures", "2",
                              "--max-draws", "50", "--out", str(tmp_path / "next.csv"))
    assert code != 0 and "'H'" in stderr and "not defined" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "next.csv").exists()
