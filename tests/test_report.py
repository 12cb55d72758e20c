"""`bayesmix report`: the HTML report, its sections and figures, PNG output, CLI errors and
a headless-browser rendering check.

The fit is built from known draws (no sampling): a truth-centred posterior of the cheap
``chinchilla_domain`` law wrapped as a Fit, with the run table, pointwise log-likelihood
and sampler statistics attached as a real fit would have them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesmix import _az
from bayesmix.report import SECTIONS, build_report
from bayesmix.simulate import default_truth, simulate_runs
from bayesmix.testing import fit_from_posterior, posterior_around_truth

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALL_SECTIONS = [sid for sid, _ in SECTIONS]
#: Figures of a full report: rank plots, PPC, loss-vs-scale, the uncertainty budget, mixture bars, ELPD plot.
FULL_FIGURES = ["diagnostics-rank", "ppc-observed-vs-predicted", "scaling-loss-vs-scale",
                "scaling-uncertainty-budget", "recommendation-mixture", "comparison-elpd"]


# --------------------------------------------------------------------------- fixtures


def _simulated_fit(with_groups=True, seed=0):
    truth = default_truth("chinchilla_domain", seed=seed)
    table, truth = simulate_runs(truth, n_mixtures=5, seed=seed)
    posterior = posterior_around_truth(truth, n_draws=200, rel_sd=0.02, seed=seed)
    fit = fit_from_posterior(posterior)
    if not with_groups:
        return fit, table, posterior
    losses = np.array(table.losses, dtype=float)
    losses[0, 1] = np.nan  # one missing value, to be counted in the data summary
    mu = posterior.expected_loss(table.weights, table.model_size, table.tokens)
    sigma = np.asarray(posterior.sigma)[:, None, :]
    loglik = -0.5 * ((np.log(losses)[None] - np.log(mu)) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi) * losses)
    loglik = loglik.reshape((2, 100) + loglik.shape[1:])
    _az.add_table_groups(fit.idata, weights=table.weights, model_size=table.model_size, tokens=table.tokens,
                         run_ids=table.run_ids, losses=losses, loglik=loglik, domains=table.domains)
    diverging = np.zeros((2, 100), dtype=bool)
    diverging[1, :3] = True  # three divergences, to be reported
    _az.set_sample_stats(fit.idata, {"diverging": diverging})
    return fit, table, posterior


def _recommendation_dict(domains):
    """A recommendation in the format of ``Recommendation.to_dict`` (bayesmix/decide/results.py)."""
    K = len(domains)
    mix = np.array([0.4, 0.3, 0.2, 0.1])[:K]
    by = lambda v: {d: float(x) for d, x in zip(domains, v)}  # noqa: E731
    return {
        "bayesmix_type": "recommendation", "law": "chinchilla_domain", "fingerprint": "none",
        "target": {"model_size": 4e9, "tokens": 8e10}, "domains": list(domains),
        "objective": {"description": "average loss over the domains", "weights": by(np.full(K, 1 / K))},
        "risk": {"measure": "mean", "description": "posterior mean", "value": 2.0},
        "mixture": by(mix),
        "constraints": {"lower": by(np.zeros(K)), "upper": by(np.ones(K)), "binding": []},
        "predicted_objective": {"mean": 2.0, "sd": 0.01, "q05": 1.98, "q95": 2.02},
        "domain_losses": {d: {"mean": 2.0, "sd": 0.01, "q05": 1.98, "q95": 2.02,
                              "predictive_q05": 1.97, "predictive_q95": 2.03} for d in domains},
        "baselines": [{"name": "uniform", "mixture": by(np.full(K, 1 / K)), "feasible": True,
                       "objective": {"mean": 2.05}, "risk_value": 2.05, "prob_better": 0.97,
                       "expected_gain": 0.05}],
        "expected_regret": {"mean": 0.001, "q95": 0.004, "relative": 0.0005},
        "optimal_mixture": {"n_draws": 100, "mean": by(mix), "q05": by(mix * 0.5), "q95": by(mix * 1.5),
                            "objective": {"mean": 1.99}},
        "n_draws": 100, "n_draws_available": 200, "settings": {}, "timing_seconds": {}, "notes": [],
    }


def _comparison_dict(domains):
    """A comparison in the format of ``Comparison.to_dict`` (bayesmix/compare.py), summary records only."""
    summary = []
    for law, elpd, se, diff, dse, w in (("chinchilla_domain", 120.0, 5.0, 0.0, 0.0, 0.8),
                                        ("bimix", 100.0, 6.0, 20.0, 4.0, 0.2)):
        summary.append({"cv": "kfold:5", "law": law, "domain": "all", "status": "ok", "reason": None,
                        "n_runs": 20, "elpd": elpd, "elpd_se": se, "elpd_diff": diff, "elpd_diff_se": dse,
                        "weight": w, "mre_all": 0.01, "mre_trained": 0.01, "coverage90": 0.9})
        for d in domains:
            summary.append({"cv": "kfold:5", "law": law, "domain": d, "status": "ok", "elpd": elpd / 4})
    summary.append({"cv": "kfold:5", "law": "linear", "domain": "all", "status": "skipped",
                    "reason": "cannot explain the table's scales"})
    return {"bayesmix_type": "comparison", "cv": "kfold:5", "domains": list(domains), "summary": summary,
            "laws": {}}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    fit, table, posterior = _simulated_fit()
    fit.save(folder / "fit.nc")
    (folder / "rec.json").write_text(json.dumps(_recommendation_dict(table.domains)))
    (folder / "cmp.json").write_text(json.dumps(_comparison_dict(table.domains)))
    pd.DataFrame({"rank": np.arange(1, 31), "model_size": np.full(30, 1e8),
                  "score": np.linspace(1, 0, 30)}).to_csv(folder / "next.csv", index=False)
    return {"folder": folder, "fit": folder / "fit.nc", "rec": folder / "rec.json", "cmp": folder / "cmp.json",
            "next": folder / "next.csv", "table": table, "posterior": posterior}


@pytest.fixture(scope="module")
def full_html(inputs):
    from bayesmix.cli import main

    out = inputs["folder"] / "report.html"
    code = main(["report", str(inputs["fit"]), "--recommend", str(inputs["rec"]), "--compare", str(inputs["cmp"]),
                 "--next", str(inputs["next"]), "-o", str(out)])
    assert code == 0
    return out


class _Parsed(HTMLParser):
    """Sections (id -> class), figure ids, image sources and table cells of a report."""

    def __init__(self, text):
        super().__init__()
        self.sections, self.figures, self.images, self.cells, self.notes = {}, [], [], [], []
        self._section = None
        self._in = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs.get("id")
            self.sections[self._section] = attrs.get("class", "")
        elif tag == "figure":
            self.figures.append(attrs.get("id"))
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag in ("td", "th"):
            self._in = "cell"
        elif tag == "p" and "note" in attrs.get("class", ""):
            self._in = "note"

    def handle_endtag(self, tag):
        if tag in ("td", "th", "p"):
            self._in = None

    def handle_data(self, data):
        if self._in == "cell":
            self.cells.append((self._section, data))
        elif self._in == "note":
            self.notes.append((self._section, data))


def _decode_png(src):
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return base64.b64decode(src[len(prefix):], validate=True)


# --------------------------------------------------------------------------- HTML content


def test_full_report_has_every_section_and_embedded_figure(full_html):
    parsed = _Parsed(full_html.read_text())
    assert list(parsed.sections) == ALL_SECTIONS
    assert not any("omitted" in cls for cls in parsed.sections.values())
    assert parsed.figures == [f"fig-{name}" for name in FULL_FIGURES]
    assert len(parsed.images) == len(FULL_FIGURES)
    for src in parsed.images:
        png = _decode_png(src)
        assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
    text = full_html.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: nothing fetched


def test_data_and_diagnostics_tables_report_the_fit(full_html, inputs):
    parsed = _Parsed(full_html.read_text())
    table = inputs["table"]
    data_cells = [c for s, c in parsed.cells if s == "data"]
    runs_at = data_cells.index("training runs")
    assert data_cells[runs_at + 1] == str(table.n_runs)
    code_row = data_cells.index("code")
    assert data_cells[code_row + 4] == "1"  # the one missing loss injected in the fixture
    diag_cells = [c for s, c in parsed.cells if s == "diagnostics"]
    assert diag_cells[diag_cells.index("divergences") + 1] == "3"
    # sigma is the same in every draw of the fixture: reported as fixed, not rank-plotted
    assert any("single value" in n for s, n in parsed.notes if s == "diagnostics")


def test_extrapolation_table_matches_the_posterior_at_the_default_target(full_html, inputs):
    """Default target: 10x the largest N and D of the data; the table is the Posterior's summary there."""
    table, posterior = inputs["table"], inputs["posterior"]
    N, D = 10 * table.model_size.max(), 10 * table.tokens.max()
    mixture = table.weights.mean(axis=0)
    expected = posterior.thin(200).summarise(mixture[None], N, D, seed=0)
    cells = [c for s, c in _Parsed(full_html.read_text()).cells if s == "scaling"]
    for k, d in enumerate(table.domains):
        row = cells.index(d)
        # cells are printed with 4 decimals: agree to rounding
        assert abs(float(cells[row + 1]) - expected["mean"][0, k]) <= 5e-5
        assert abs(float(cells[row + 2]) - expected["q05"][0, k]) <= 5e-5


def test_ppc_coverage_of_a_truth_centred_posterior_is_near_nominal(full_html):
    """The data were simulated with the noise the posterior assumes (sd 0.01 on log-loss), and
    the posterior is centred on the truth, so the 90% intervals cover about 90% of the cells.
    With 20 cells per domain the binomial sd is about 7%: a coverage under 60% is a bug."""
    cells = [c for s, c in _Parsed(full_html.read_text()).cells if s == "ppc"]
    coverages = [float(c.rstrip("%")) for c in cells if c.endswith("%")][0::2]
    assert len(coverages) == 4
    assert all(c >= 60 for c in coverages)


def test_recommendation_comparison_and_next_sections_show_their_inputs(full_html):
    parsed = _Parsed(full_html.read_text())
    rec_cells = [c for s, c in parsed.cells if s == "recommendation"]
    assert "0.4000" in rec_cells and "0.200 [0.100, 0.300]" in rec_cells
    cmp_cells = [c for s, c in parsed.cells if s == "comparison"]
    laws = [c for c in cmp_cells if c in ("chinchilla_domain", "bimix", "linear")]
    assert laws == ["chinchilla_domain", "bimix", "linear"]  # best first, skipped last, one row per law
    next_cells = [c for s, c in parsed.cells if s == "next"]
    assert "20" in next_cells and "21" not in next_cells  # first 20 of 30 rows


def test_sections_without_input_are_omitted_with_a_note(inputs, tmp_path):
    report = build_report(inputs["fit"])
    parsed = _Parsed(report.to_html())
    omitted = [sid for sid, cls in parsed.sections.items() if "omitted" in cls]
    assert omitted == ["recommendation", "comparison", "next"]
    notes = {s: n for s, n in parsed.notes}
    assert "--recommend REC.json" in notes["recommendation"] and "--next NEXT.csv" in notes["next"]
    assert len(parsed.images) == 4  # rank plots, PPC, loss against scale, its uncertainty budget
    scaling = report.section("scaling").body
    assert "of the predictive variance and the fit's parameters" in scaling and "predict --explain" in scaling


def test_fit_without_stored_data_degrades_gracefully():
    fit, _, _ = _simulated_fit(with_groups=False)
    report = build_report(fit)
    parsed = _Parsed(report.to_html())
    assert [s for s, c in parsed.sections.items() if "omitted" in c] == [
        "data", "ppc", "recommendation", "comparison", "next"]
    assert any("sample_stats group absent" in n for s, n in parsed.notes if s == "diagnostics")
    assert report.figure_names() == ["diagnostics-rank", "scaling-loss-vs-scale", "scaling-uncertainty-budget"]


def test_a_fit_without_its_run_table_draws_its_scaling_curves_over_the_fitted_range():
    """A shipped model stores no run table but its fitted ``scales``: the curves' fitted
    range (the dotted "largest N fitted" line, the default target at 10 times it) and
    tokens per parameter come from them, not from the reference scale."""
    fit, _, _ = _simulated_fit(with_groups=False)
    fit.attrs["scales"] = {"model_sizes": [1e8, 4e8], "tokens": [2e9, 8e9]}
    body = build_report(fit).section("scaling").body
    assert "Target: N = 4B parameters, D = 80B tokens" in body and "D = 20 N" in body


def test_generic_json_renders_as_a_table_without_elpd_plot(inputs, tmp_path):
    generic = [{"model": "a", "score": 1.5}, {"model": "b", "score": 2.5}]
    report = build_report(inputs["fit"], comparison=generic)
    section = report.section("comparison")
    assert section.omitted is None and not section.figures
    assert "<td class=\"text\">b</td>" in section.body and "No ELPD column" in section.body


# --------------------------------------------------------------------------- PNG output and CLI


def test_format_png_writes_one_file_per_figure(inputs, tmp_path, run_cli):
    out = tmp_path / "figs"
    code, stdout, _ = run_cli("report", str(inputs["fit"]), "--recommend", str(inputs["rec"]),
                              "--compare", str(inputs["cmp"]), "--format", "png", "-o", str(out))
    assert code == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{name}.png" for name in FULL_FIGURES)
    assert all((out / name).read_bytes().startswith(PNG_SIGNATURE) for name in written)
    assert "wrote 6 figures" in stdout and "--next NEXT.csv" in stdout


@pytest.mark.parametrize("case", ["fit", "compare", "recommend", "next", "bad_json", "wrong_type", "bad_target"])
def test_missing_or_bad_inputs_are_clean_cli_errors(inputs, tmp_path, run_cli, case):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    args = [str(inputs["fit"]), "-o", str(tmp_path / "r.html")]
    expected = {"fit": "fit file not found", "compare": "comparison file not found",
                "recommend": "recommendation file not found", "next": "acquisition ranking not found",
                "bad_json": "not valid JSON", "wrong_type": "not a bayesmix recommendation",
                "bad_target": "--target-model-size"}[case]
    if case == "fit":
        args[0] = str(tmp_path / "missing.nc")
    elif case in ("compare", "recommend", "next"):
        args += [f"--{case}", str(tmp_path / "missing.file")]
    elif case == "bad_json":
        args += ["--compare", str(bad_json)]
    elif case == "wrong_type":
        args += ["--recommend", str(inputs["cmp"])]
    else:
        args += ["--target-model-size", "big"]
    code, _, stderr = run_cli("report", *args)
    assert code == 2
    assert expected in stderr and "Traceback" not in stderr
    assert not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- browser


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_renders_in_a_headless_browser(full_html, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium found: install Debian's chromium (apt-get install -y chromium) to run this test")
    shots = Path(os.environ.get("BAYESMIX_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / "report.png"
    if shot.exists():
        shot.unlink()
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1200,3000", full_html.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1000
    # A blank page has one colour; text alone darkens well under 5% of pixels, the figures
    # (plots with lines, markers and grey bands) add many more mid-grey pixels.
    assert pixels.std() > 0.05
    not_white = (pixels.mean(axis=-1) < 0.95).mean()
    assert not_white > 0.03
