"""Shipped model artifacts: a thinned posterior and a card, usable without the data.

An artifact is a folder::

    models/<name>/
        posterior.nc   thinned posterior draws + sampler statistics (NetCDF, a few MB at most)
        card.json      law, priors, data fingerprint and provenance, scales covered,
                       diagnostics of the full fit, held-out accuracy

The run table itself is *not* copied into the artifact (the public tables must not be
redistributed from this project); the card records its fingerprint so that a user who
has the table can check it is the same one. Every command that reads a fit file
(``predict``, ``recommend``, ``next``, ``report``) also reads an artifact folder.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from . import _az
from ._files import write_json_atomic
from .errors import FitRejectedError, UsageError

POSTERIOR_FILE = "posterior.nc"
CARD_FILE = "card.json"
DEFAULT_MAX_DRAWS = 400


def export_model(fit, folder, *, max_draws: int = DEFAULT_MAX_DRAWS, heldout: dict | None = None,
                 provenance: dict | None = None, description: str = "") -> Path:
    """Write ``fit`` as a shipped artifact folder.

    Parameters
    ----------
    fit : Fit
        A fit from :func:`bayesmix.inference.fit_law`.
    folder : path
        Output folder (created; existing ``posterior.nc`` and ``card.json`` are replaced
        atomically).
    max_draws : int
        Posterior draws kept (evenly thinned within chains).
    heldout : dict, optional
        Held-out accuracy measured for this fit (e.g. ``{"split": ..., "mre": ...}``).
    provenance : dict, optional
        Where the data came from and how the fit was made (command, data path, filters).
    description : str
        One line for humans.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    FitRejectedError
        Where the diagnostics gate refuses the fit (:func:`bayesmix.gate.check_gate`):
        nothing is written, a shipped model is one the gate let through.
    """
    if max_draws < 1:
        raise UsageError("max_draws must be at least 1")
    folder = Path(folder)
    _refuse_what_the_gate_refused(fit, folder)
    folder.mkdir(parents=True, exist_ok=True)
    idata = _az.thin(fit.idata, max_draws)
    idata = _az.keep_groups(idata, ("posterior", "sample_stats"))
    attrs = dict(fit.attrs)
    attrs["bayesmix_type"] = "artifact"
    _az.set_attrs(idata, attrs)
    _az.save(idata, folder / POSTERIOR_FILE)
    card = {
        "name": folder.name,
        "description": description,
        "law": attrs.get("law"),
        "law_options": attrs.get("law_options", {}),
        "law_parametrization": attrs.get("law_parametrization", 1),
        "domains": attrs.get("domains"),
        "priors": attrs.get("priors"),
        "scaling": attrs.get("scaling"),
        "data": {
            "fingerprint": attrs.get("fingerprint"),
            # the last two path parts: where it was on the machine that fitted it is noise
            "source": "/".join(Path(str(attrs.get("source", ""))).parts[-2:]),
            "scales_covered": attrs.get("scales"),
            "note": "the run table is not shipped; its SHA-256 fingerprint identifies it",
        },
        "provenance": provenance or {},
        "fit": {
            "settings": attrs.get("settings"),
            "diagnostics": attrs.get("diagnostics"),
            "identification_warnings": attrs.get("warnings", []),
            "draws_shipped": int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]),
        },
        "heldout_accuracy": heldout or {},
        "versions": attrs.get("versions"),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_json_atomic(folder / CARD_FILE, card)
    return folder


def read_card(folder) -> dict:
    """The card of an artifact folder."""
    path = Path(folder) / CARD_FILE
    if not path.exists():
        raise UsageError(f"{folder}: no {CARD_FILE}; is this a bayesmix model folder?")
    with open(path) as fh:
        return json.load(fh)


def _refuse_what_the_gate_refused(fit, folder: Path) -> None:
    """Raise where the gate refuses ``fit`` (a fit wrapped from given draws, with no
    sampler diagnostics, has no gate to pass)."""
    from .gate import check_gate  # the gate imports the sampler's stack; reading a card does not need it

    if not fit.diagnostics:
        return
    problems = check_gate(fit.diagnostics, allow_warnings=True)
    if problems:
        raise FitRejectedError(f"not shipping '{folder.name}': the diagnostics gate refused the fit:\n  - "
                               + "\n  - ".join(problems)
                               + f"\n  nothing was written to {folder}; fit again (another --seed, more --draws) "
                               "until the gate passes")
