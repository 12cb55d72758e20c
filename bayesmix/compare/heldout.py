"""The held-out protocol that case studies and benchmarks share: how a fit is scored on
runs it never saw.

:func:`heldout_scores` predicts every observed (row, domain) cell of a held-out table and
summarises the errors in blocks (all rows, final checkpoints, each model size; all cells
and positive-weight cells; evaluation-only domains apart); :func:`rank_mixtures` asks how
well the fit orders the mixtures run at one (by default the largest) held-out size.

:func:`bayesmix.compare.score_runs` scores held-out runs inside ``bayesmix compare``
(densities, PSIS-weighted intervals); this module is for a fit and a separate test table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from ..metrics import coverage_band, domain_level_errors, interval_coverage, mean_relative_error
from ..posterior import observed_table


@dataclass(frozen=True)
class HeldoutScores:
    """What :func:`heldout_scores` returns.

    Attributes
    ----------
    cells : dict of str to ndarray
        One entry per observed cell of the held-out table: ``cell_row`` (row in the
        table), ``cell_domain`` (column among the posterior's target domains: the
        mixture's domains, then the evaluation-only ones), ``observed``, ``mean`` (the
        posterior-mean expected loss), ``lower`` and ``upper`` (the central 90%
        predictive interval of a new run's loss), ``trained`` (the run's mixture gave the
        domain a positive weight) and ``eval_only`` (an evaluation-only domain).
    blocks : dict
        ``all_rows``, ``final_checkpoints`` and (``by_size``) ``by_model_size`` (keyed by
        ``f"{size:.4g}"``): each ``{"rows", "mre_all_cells", "mre_positive_weight",
        "mean_level_error", "mre_within_domains", "coverage90", "coverage90_band"}`` over
        the mixture's domains only; the level error and the MRE within domains split the
        error into each domain's level and the rest
        (:func:`~bayesmix.metrics.domain_level_errors`); the band is the
        central 90% range of the coverage these cells would show if the posterior were
        right (:func:`~bayesmix.metrics.coverage_band`), against which ``coverage90`` is
        read. When the posterior predicts
        evaluation-only domains, ``eval_domains`` maps each to its own ``all_rows`` and
        ``final_checkpoints`` blocks. JSON-ready: the case studies write it as is.
    """

    cells: dict
    blocks: dict


def heldout_scores(posterior, table, *, seed: int = 0, by_size: bool = True, summary: dict | None = None) -> HeldoutScores:
    """Score a posterior on held-out runs: cell predictions and summary blocks.

    The mean relative error (MRE) is that of the posterior-mean expected loss; the
    coverage is that of the central 90% predictive interval of a new run's loss (noise,
    and where the fit has them a fresh run offset and mixture effect). MRE is given over
    all observed cells of the mixture's domains and over the cells whose domain had a
    positive weight in the run's mixture (the protocol of Dai and Zheng's Table 2: a
    domain left out of a mixture is predicted from transfer alone). Evaluation-only
    domains that the posterior predicts are scored apart, per domain, so that laws that
    do and do not predict them are compared on the same cells.

    The predictions are :meth:`~bayesmix.posterior.PosteriorLike.summarise`'s ``mean``,
    ``q05`` and ``q95``, with ``seed`` for both the law's error at unseen scales and the
    new run's noise. That is the one interval: it is what ``bayesmix predict`` reports
    (so the coverage scored is that of the intervals a user gets), it is part of the
    posterior contract (a stacked posterior or a MAP point fit is scored the same way),
    and it needs no observation noise to compute densities. :func:`score_runs` draws the
    same interval (its discrepancy with seed 0 whatever ``seed``, so the two agree
    exactly at seed 0); it stays for ``bayesmix compare``, which also needs densities and
    PSIS-weighted quantiles.

    Parameters
    ----------
    posterior : PosteriorLike
        Fitted on runs other than those of ``table``.
    table : RunTable
        The held-out runs, all their checkpoints (evaluation-only loss columns included
        when the posterior predicts them).
    seed : int
        Seed of the predictive draws.
    by_size : bool
        Also a block per model size.
    summary : dict, optional
        The posterior's :meth:`~bayesmix.posterior.PosteriorLike.summarise` of ``table``'s
        rows with ``seed`` and ``keep_draws=True``, where the caller has it already
        (``bayesmix predict`` reports the same predictions it scores).

    Returns
    -------
    HeldoutScores
        ``cells`` and ``blocks`` (see :class:`HeldoutScores`).

    Raises
    ------
    DataError
        If ``table`` lacks a loss column of an evaluation-only domain of the posterior.
    """
    table = observed_table(posterior, table)
    if summary is None:
        summary = posterior.summarise(table.weights, table.model_size, table.tokens, seed=seed, keep_draws=True)
    losses = np.asarray(table.losses, dtype=float)
    rows, doms = np.nonzero(np.isfinite(losses))
    draws = summary["draws"][:, rows, doms]  # (S, cells): one joint outcome per draw
    K = posterior.n_domains
    cells = {
        "cell_row": rows,
        "cell_domain": doms,
        "observed": losses[rows, doms],
        "mean": np.asarray(summary["mean"])[rows, doms],
        "lower": np.asarray(summary["q05"])[rows, doms],
        "upper": np.asarray(summary["q95"])[rows, doms],
        "trained": np.asarray(table.weights, dtype=float)[rows, doms] > 0,
        "eval_only": doms >= K,
    }
    everything = np.ones(table.n_rows, bool)
    final = np.asarray(table.final_checkpoint_mask, bool)
    trained_domains = doms < K

    def block(in_rows, in_domains):
        return _block(cells, draws, in_rows, in_domains)

    blocks = {"all_rows": block(everything, trained_domains), "final_checkpoints": block(final, trained_domains)}
    if by_size:
        sizes = np.asarray(table.model_size, dtype=float)
        blocks["by_model_size"] = {f"{size:.4g}": block(sizes == size, trained_domains) for size in np.unique(sizes)}
    if posterior.eval_domains:
        blocks["eval_domains"] = {
            d: {"all_rows": block(everything, doms == K + j), "final_checkpoints": block(final, doms == K + j)}
            for j, d in enumerate(posterior.eval_domains)}
    return HeldoutScores(cells, blocks)


def _block(cells: dict, draws: np.ndarray, rows: np.ndarray, domains: np.ndarray) -> dict:
    """MRE (all and positive-weight cells), 90% coverage and its band under the model
    (:func:`~bayesmix.metrics.coverage_band`) of the cells in the table rows ``rows``
    (bool per row) and the columns ``domains`` (bool per cell); ``draws`` ``(S, cells)``
    are the cells' joint predictive draws."""
    at = rows[cells["cell_row"]] & domains
    observed, mean = cells["observed"][at], cells["mean"][at]
    levels = domain_level_errors(mean, observed, cells["cell_domain"][at])
    return {
        "rows": int(rows.sum()),
        "mre_all_cells": mean_relative_error(mean, observed),
        "mre_positive_weight": mean_relative_error(mean, observed, mask=cells["trained"][at]),
        "mean_level_error": levels["mean_level_error"],
        "mre_within_domains": levels["mre_within_domains"],
        "coverage90": interval_coverage(cells["lower"][at], cells["upper"][at], observed),
        "coverage90_band": list(coverage_band(draws[:, at], cells["lower"][at], cells["upper"][at])),
    }


def rank_mixtures(posterior, table, *, model_size=None, seed: int = 0) -> dict:
    """How well a posterior orders the mixtures run at one held-out model size.

    The mixtures are the final checkpoints at ``model_size`` with a loss on every domain of
    the mixture; a mixture's average loss is the mean over those domains (never over
    evaluation-only ones), predicted as the posterior mean of the expected loss
    (discrepancy draws with ``seed``).

    Parameters
    ----------
    posterior : PosteriorLike
    table : RunTable
        Held-out runs (any checkpoints; only the final ones count).
    model_size : float, optional
        Default: the largest model size of ``table``.
    seed : int
        Seed of the law's error at unseen scales.

    Returns
    -------
    dict
        ``model_size``, ``mixtures`` (how many), ``spearman`` (rank correlation of
        predicted and observed average loss) and its ``spearman_p_value``, ``top_pick``
        and ``best_observed`` (rows of ``table``), ``regret`` (observed average loss of
        the top pick minus the lowest observed, nats), ``relative_regret`` (over the
        lowest), ``observed_rank_of_top_pick`` (1 = best), and per mixture ``rows``,
        ``predicted``, ``observed`` and ``p_best`` (posterior probability of the lowest
        expected average loss).

    Raises
    ------
    UsageError
        If fewer than two complete mixtures were run at that size.
    """
    from scipy import stats

    sizes = np.asarray(table.model_size, dtype=float)
    size = float(np.max(sizes)) if model_size is None else float(model_size)
    losses = np.asarray(table.losses, dtype=float)[:, :posterior.n_domains]  # the mixture's domains
    at = np.asarray(table.final_checkpoint_mask, bool) & np.isclose(sizes, size, rtol=1e-9)
    rows = np.flatnonzero(at & np.isfinite(losses).all(axis=1))
    if len(rows) < 2:
        raise UsageError(f"ranking mixtures needs at least two runs with every loss at model size {size:.4g} "
                         f"(found {len(rows)})")
    weights = np.asarray(table.weights)[rows]
    expected = posterior.expected_loss(weights, sizes[rows], np.asarray(table.tokens)[rows], seed=seed)
    expected = expected[:, :, :posterior.n_domains].mean(axis=2)  # (S, mixtures)
    predicted, observed = expected.mean(axis=0), losses[rows].mean(axis=1)
    rho, p_value = stats.spearmanr(predicted, observed)
    top, best = int(np.argmin(predicted)), int(np.argmin(observed))
    regret = float(observed[top] - observed[best])
    return {
        "model_size": size, "mixtures": int(len(rows)),
        "spearman": float(rho), "spearman_p_value": float(p_value),
        "top_pick": int(rows[top]), "best_observed": int(rows[best]),
        "regret": regret, "relative_regret": regret / float(observed[best]),
        "observed_rank_of_top_pick": int(np.sum(observed < observed[top]) + 1),
        "rows": rows, "predicted": predicted, "observed": observed,
        "p_best": np.bincount(np.argmin(expected, axis=1), minlength=len(rows)) / expected.shape[0],
    }
