"""The diagnostics gate: whether a fit's draws can be trusted, and what to do when not.

:func:`diagnose` computes the figures (R-hat, ESS, divergences over the law's parameters
and the observation model's scales) and, where the chains disagree, where their draws
sit (whole chains apart, or stays of chains that crossed between modes) and whether they
agree on the fit to the runs all the same (:func:`fit_agreement`); chains in a
minor mode are taken out first (:func:`without_minor_mode_chains`). :func:`check_gate`
turns the figures into the problems a user is told, each with its remedy, and refuses
the fit unless asked not to; :func:`format_diagnostics` prints them.
"""

from __future__ import annotations

import numpy as np

from . import _az, chain_stacking, extension, observation, pilot
from .errors import FitRejectedError
from .fit_settings import MAX_TREE_DEPTH_LIMIT
from .laws import Law
from .laws.base import SMALLEST_SIZE_RATIO_SUFFIX

#: The diagnostics gate: a fit is called good only within these bounds.
MAX_RHAT = 1.01
#: Most observed cells whose log-likelihood :func:`fit_agreement` judges (evenly spaced
#: beyond that): SlimPajama 7's 840 cells at 4 x 4000 draws take about 4 s.
FIT_AGREEMENT_MAX_CELLS = 1000


def diagnose(idata, law: Law) -> dict:
    """The gate's figures over the law's parameters and the observation model's scales;
    where R-hat fails and some quantity's chains sit apart, also ``chain_groups`` (see
    :func:`chain_groups`), ``chain_groups_param``, the quantity, and the figures within
    the groups (:func:`bayesmix.chain_stacking.within_group_diagnostics`)."""
    names = [p.name for p in law.params] + [v for v in observation.GATED if _az.has_var(idata, v)]
    diag = _az.diagnostics_table(idata, names)
    if diag["max_rhat"] > MAX_RHAT:
        diag.update(fit_agreement(idata))
        draws = _az.labelled_chain_draws(idata, names)
        worst = diag["worst_rhat_param"]
        labels = [worst] + [other for other in draws if other != worst]
        found = _separated_places(draws, labels)
        if found:
            label, groups = found
            diag["chain_groups_param"], diag["chain_groups"] = label, chain_groups(idata, draws[label], groups)
            diag.update(chain_stacking.within_group_diagnostics(idata, names, groups))
    return diag


def fit_agreement(idata) -> dict:
    """Whether chains that disagree on the parameters agree on the fit to the runs: the
    largest R-hat over the observed cells' pointwise log-likelihood
    (``fitted_cells_max_rhat``; at most :data:`FIT_AGREEMENT_MAX_CELLS` cells, evenly
    spaced, in ``fitted_cells``); ``{}`` where the trace has no log-likelihood (a trace
    judged while sampling).

    Why: where it holds, the chains differ only along directions the runs leave open, and
    those matter only where a prediction depends on them (beyond the fitted scales, at
    weights outside those seen). SlimPajama 7 fitted <= 310M (``sp-310``), refused at
    seeds 0 and 2 (R-hat 1.04 and 1.07, on the capacity floor ``H``'s shoulder): 1.009
    over all 840 cells in both; their held-out MRE is within 0.015 points of that of fits
    with ``H`` held in its main place, coverage and ranking the same (case study's README).
    """
    if not _az.has_group(idata, "log_likelihood"):
        return {}
    cells = _az.pointwise_loglik_cells(idata, FIT_AGREEMENT_MAX_CELLS)
    cells = cells[:, :, np.all(np.isfinite(cells), axis=(0, 1))]  # a missing loss has no likelihood
    rhat = _az.array_rhat(cells) if cells.shape[-1] else np.array([])
    if not np.isfinite(rhat).any():
        return {}
    return {"fitted_cells_max_rhat": float(np.nanmax(rhat)), "fitted_cells": int(cells.shape[-1])}


def _agrees_on_the_fit(diagnostics: dict) -> bool:
    """Whether :func:`fit_agreement` holds, judged as the gate judges R-hat (two decimals)."""
    return round(diagnostics["fitted_cells_max_rhat"], 2) <= MAX_RHAT


def _fit_agreement_note(diagnostics: dict) -> str:
    """What the chains' agreement on the fit to the runs says about a refused R-hat."""
    if "fitted_cells_max_rhat" not in diagnostics:
        return ""
    figure = (f"max R-hat {diagnostics['fitted_cells_max_rhat']:.3f} over the log-likelihood of "
              f"{diagnostics['fitted_cells']} observed cells")
    if not _agrees_on_the_fit(diagnostics):
        return f". They disagree on the fit to the runs too ({figure})"
    return (f". They agree on the fit to the runs, though ({figure}): they differ along directions the runs "
            "leave open, which matter where a prediction depends on them (beyond the fitted scales, at weights "
            "outside those seen); compare such predictions from fits with other --seed values before keeping "
            "one with --allow-warnings")


def _separated_places(draws: dict, labels: list) -> tuple[str, list] | None:
    """The first quantity (in the order of ``labels``) whose draws sit in separated
    places, and its groups as windows ``(chain, start, stop)``: whole chains where some
    chains sit apart (:func:`bayesmix.pilot.separated_chain_groups`), else stays of
    chains that crossed between places (:func:`bayesmix.pilot.separated_draw_windows`).

    The worst quantity comes first; where its chains overlap (a slow mixer), another may
    still show the split (on Pile 4: ``mix_sd[github]`` worst, ``H`` apart)."""
    for label in labels:
        groups = pilot.separated_chain_groups(draws[label])
        if len(groups) > 1:
            return label, [chain_stacking.as_windows(g, draws[label].shape[1]) for g in groups]
    for label in labels:
        windows = pilot.separated_draw_windows(draws[label])
        if windows:
            return label, windows
    return None


def chain_logp(idata) -> np.ndarray | None:
    """Each draw's log density by chain, ``(chains, draws)``, for comparing where chains
    settled: the sampler's (nutpie: ``logp``, PyMC: ``lp``) plus the Jacobian that puts
    the model's centred hierarchical variables in standardised coordinates, where the
    model records one (:data:`bayesmix.observation.CENTRED_LOG_JACOBIAN`); None where
    the sampler recorded no log density.

    Why the Jacobian: in centred coordinates a funnel's neck (the slopes of the
    discrepancy all at their mean, their spread near 0) is narrow in every slope's
    direction, and its density is high by as much; SlimPajama 7's default fit (seed 0) had
    a chain there, in the capacity floor's minor mode, 0.8 nats below the main mode's
    chains in the sampler's log density and 103 nats below in standardised coordinates.
    """
    logp = next((_az.chain_stat(idata, name) for name in ("logp", "lp") if _az.has_var(idata, name, "sample_stats")),
                None)
    jacobian = observation.CENTRED_LOG_JACOBIAN
    if logp is not None and _az.has_var(idata, jacobian):
        logp = logp + _az.labelled_chain_draws(idata, [jacobian])[jacobian]
    return logp


def without_minor_mode_chains(idata) -> tuple[object, dict]:
    """The trace without the chains that settled in a minor mode, and what was dropped.

    The rule is the pilot's (:func:`bayesmix.pilot.main_mode_chains`): a chain whose
    mean log density stays more than :data:`bayesmix.pilot.MODE_GAP_NATS` (and more than
    the within-chain spread) below the best chain's sits where the posterior holds a
    negligible share of its mass; at least two chains are always kept.

    Returns
    -------
    (idata, dict)
        The kept chains' trace (renumbered), and ``{}`` or ``minor_mode_chains`` (the
        dropped chains' original indices) and ``minor_mode_logp_gap`` (nats between the
        best kept chain's mean log density and the lowest dropped one's).
    """
    logp = chain_logp(idata)
    if logp is None:
        return idata, {}
    kept = pilot.main_mode_chains(logp)
    if len(kept) == len(logp):
        return idata, {}
    dropped = np.setdiff1d(np.arange(len(logp)), kept)
    means = np.where(np.all(np.isfinite(logp), axis=1), logp.mean(axis=1), -np.inf)
    return _az.keep_chains(idata, kept), {"minor_mode_chains": [int(c) for c in dropped],
                                          "minor_mode_logp_gap": float(means[kept].max() - means[dropped].min())}


def chain_groups(idata, values: np.ndarray, groups: list) -> list[dict]:
    """Each group of draws (windows ``(chain, start, stop)`` from :func:`_separated_places`
    on ``values``, one quantity's draws ``(chains, draws)``) as its ``chains``, its
    ``windows``, the ``median`` of its draws and their ``mean_logp`` (None where the
    sampler records no log density)."""
    logp = chain_logp(idata)
    records = []
    for group in groups:
        windows = chain_stacking.as_windows(group, values.shape[1])
        index = chain_stacking.flat_draw_index(windows, values.shape[1])
        records.append({"chains": sorted({chain for chain, _, _ in windows}),
                        "windows": [list(w) for w in windows], "median": float(np.median(values.reshape(-1)[index])),
                        "mean_logp": None if logp is None else float(np.mean(logp.reshape(-1)[index]))})
    return records


def _describe_chain_groups(diagnostics: dict) -> str:
    label = diagnostics.get("chain_groups_param", diagnostics.get("worst_rhat_param", "?"))
    groups = diagnostics["chain_groups"]
    places = "; ".join(
        f"{label} near {g['median']:.3g} in {_where(g, diagnostics.get('draws'))}"
        + (f" (mean log density {g['mean_logp']:.1f})" if g["mean_logp"] is not None else "")
        for g in groups)
    within = diagnostics.get("within_group_max_rhat")
    why = (f"; the chains within a group disagree too (R-hat {within:.3f} on "
           f"{diagnostics.get('within_group_worst_param')}), so the modes cannot be weighted"
           if within is not None else "")
    return (f"the draws sit in {len(groups)} separated places: {places}{why}. The posterior has "
            "modes that NUTS does not cross. Fit again with more --draws or another --seed, or narrow "
            f"the prior of {label.split('[', 1)[0]} (--priors) where one explanation is implausible; "
            "--allow-warnings keeps the fit with the groups weighted by stacking")


def _where(group: dict, draws: int | None) -> str:
    """``chains 0, 3`` for a group of whole chains, else each chain's stretches of
    draws (adjacent windows joined), ``chain 0 (draws 0-499, 1000-1499), chain 1 (draws 0-999)``."""
    spans = {}
    for chain, start, stop in sorted(tuple(w) for w in group.get("windows") or []):
        runs = spans.setdefault(chain, [])
        if runs and runs[-1][1] == start:
            runs[-1][1] = stop
        else:
            runs.append([start, stop])
    if not spans or (draws and all(runs == [[0, draws]] for runs in spans.values())):
        chains = group["chains"]
        return f"chain{'s' if len(chains) > 1 else ''} {', '.join(map(str, chains))}"
    return ", ".join(f"chain {chain} (draws {', '.join(f'{a}-{b - 1}' for a, b in runs)})"
                     for chain, runs in sorted(spans.items()))


def _slow_chains_advice(diagnostics: dict) -> str:
    """What to do about chains that disagree without sitting apart."""
    kept, asked = diagnostics.get("draws_per_chain"), diagnostics.get("draws_requested")
    ran_on = f"the fit ran on to {kept} draws per chain (asked {asked}); " if kept and asked and kept > asked else ""
    if not extension.slow_mixing_explains(diagnostics["max_rhat"], MAX_RHAT, 1, extension.DEFAULT_EXTEND):
        return (ran_on + "the chains disagree by more than slow mixing explains: the posterior may have "
                "modes that NUTS does not cross. Fit again with another --seed to see whether they recur, "
                "or narrow the prior of the worst parameter (--priors)")
    return (ran_on + "run more --tune and --draws (--extend-draws), or more chains with a different --seed, "
            "or tighten the priors of the worst parameter")


def check_gate(diagnostics: dict, allow_warnings: bool = False) -> list[str]:
    """Problems that make a fit untrustworthy; raise unless ``allow_warnings``."""
    problems = []
    if diagnostics["max_rhat"] > MAX_RHAT and not chain_stacking.weighs_modes(diagnostics, MAX_RHAT):
        worst = diagnostics.get("worst_rhat_param")
        advice = (_describe_chain_groups(diagnostics) if diagnostics.get("chain_groups")
                  else _slow_chains_advice(diagnostics))
        problems.append(f"max R-hat {diagnostics['max_rhat']:.3f} > {MAX_RHAT} (worst: {worst}): chains disagree; "
                        + advice + _fit_agreement_note(diagnostics))
    if diagnostics["divergences"] > 0:
        target = diagnostics.get("target_accept")
        higher = 0.99 if target is None else round(1.0 - (1.0 - target) / 2.0, 4)  # halve the rejection rate
        problems.append(
            f"{diagnostics['divergences']} divergent transitions: the sampler missed part of the posterior; "
            f"raise target_accept above the fit's {target if target is not None else 'default'} "
            f"(e.g. --target-accept {higher:g}) or use --likelihood student_t if there are outliers"
        )
    if problems and not allow_warnings:
        raise FitRejectedError("the fit is not trustworthy:\n  - " + "\n  - ".join(problems)
                               + "\n  (pass --allow-warnings to keep it anyway)")
    return problems


def _tree_depth_note(diag: dict) -> str:
    """What the tree-depth row expects, and what to do about trees cut at the cap."""
    depth = diag.get("max_tree_depth")
    if depth is None:
        return "0"
    if not diag.get("treedepth_hits"):
        return f"0 (trees capped at depth {depth})"
    if depth >= MAX_TREE_DEPTH_LIMIT:
        return (f"trees cut at depth {depth}, the largest allowed: valid draws, but more correlated; "
                "if the ESS is low, the posterior's geometry needs another parametrisation or priors")
    return (f"trees cut at depth {depth}: valid draws, but more correlated; "
            f"--max-tree-depth {min(depth + 2, MAX_TREE_DEPTH_LIMIT)} if the ESS is low")


def format_diagnostics(diag: dict) -> str:
    rows = [
        ("max R-hat", f"{diag['max_rhat']:.4f}", f"<= {MAX_RHAT}"),
        ("min bulk ESS", f"{diag['min_ess_bulk']:.0f}", ">= 100 per chain is comfortable"),
        ("min tail ESS", f"{diag['min_ess_tail']:.0f}", ""),
        ("divergences", f"{diag['divergences']}", "0"),
        ("tree depth hits", f"{diag.get('treedepth_hits', 0)}", _tree_depth_note(diag)),
        ("gradients / draw", f"{diag.get('gradients_per_draw', float('nan')):.1f}", ""),
        ("sampling time", f"{diag.get('sampling_seconds', float('nan')):.1f} s", ""),
    ]
    if "fitted_cells_max_rhat" in diag:
        rows.append(("R-hat of the fit", f"{diag['fitted_cells_max_rhat']:.4f}",
                     f"over {diag['fitted_cells']} observed cells' log-likelihood: the chains "
                     + ("agree" if _agrees_on_the_fit(diag) else "disagree") + " on the fit to the runs"))
    if "draws_per_chain" in diag:
        extended = diag["draws_per_chain"] > diag.get("draws_requested", diag["draws_per_chain"])
        rows.append(("draws per chain", f"{diag['draws_per_chain']}",
                     f"run on past the {diag['draws_requested']} asked while the chains mixed slowly"
                     if extended else ""))
    if "first_target_accept" in diag:
        rows.append(("target acceptance", f"{diag['target_accept']:g}",
                     f"sampled again: {diag['first_divergences']} divergent transitions at the law's "
                     f"{diag['first_target_accept']:g}"))
    if "pilot_restarted_chains" in diag:
        rows.append(("pilot restarts", f"{diag['pilot_restarted_chains']}",
                     f"chains moved out of a minor mode ({diag['pilot_max_logp_gap']:.0f} nats below)"
                     if diag["pilot_restarted_chains"] else "no minor mode seen"))
    if diag.get("pilot_started_from_probes"):
        rows.append(("pilot probes", "main mode",
                     f"the kept run starts at draws of the {diag['pilot_probe_chains']} probe chains (run with a "
                     "parameter with separated modes moved up and down): every pilot chain was 10+ nats below them"))
    if diag.get("pilot_recentred"):
        rows.append(("pilot re-centred", "yes",
                     "the pilot's main-mode draws lay away from the MAP: whitened again at their optimum"))
    if diag.get("minor_mode_chains"):
        dropped = diag["minor_mode_chains"]
        rows.append(("minor-mode chains", f"{len(dropped)}",
                     f"dropped: chain{'s' if len(dropped) > 1 else ''} {', '.join(map(str, dropped))} settled "
                     f"{diag['minor_mode_logp_gap']:.0f} nats below the main mode"))
    if diag.get("chain_groups"):
        rows.append(("chain groups", f"{len(diag['chain_groups'])}",
                     f"draws apart on {diag.get('chain_groups_param', diag['worst_rhat_param'])}: "
                     + " | ".join(",".join(map(str, g["chains"]))
                                  + (f" (weight {g['weight']:.2f})" if "weight" in g else "")
                                  for g in diag["chain_groups"])
                     + ("; modes weighted by stacking" if chain_stacking.weighs_modes(diag, MAX_RHAT) else "")))
        if "within_group_max_rhat" in diag:
            rows.append(("R-hat in groups", f"{diag['within_group_max_rhat']:.4f}",
                         f"<= {MAX_RHAT} keeps the modes, weighted"))
    if "mass_matrix" in diag:
        rows.append(("mass matrix", diag["mass_matrix"].replace("_", "-"),
                     f"{diag['sampler_coordinates']} sampler coordinates"))
    if "compile_seconds" in diag:
        rows.append(("compile time", f"{diag['compile_seconds']:.1f} s", "about 0 reused in a process, a few s from the disk cache"))
    rows.append(("solver residual", f"{diag.get('solver_residual', float('nan')):.1e}", "capacity laws: < 1e-8"))
    # Law.fit_checks: one ratio per parameter bounded by the model size.
    suffix = SMALLEST_SIZE_RATIO_SUFFIX
    rows += [(f"{key[:-len(suffix)]} / smallest N", f"{value:.2g}", "near 1: it absorbs a misfit")
             for key, value in diag.items() if key.endswith(suffix)]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {name:<{width}}  {value:>10}  {note}" for name, value, note in rows)
