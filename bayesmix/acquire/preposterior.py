"""The preposterior value of candidate runs: how much better the target decision made
after seeing a run's losses is than the decision made now, under the decision's own risk
measure, with the posterior updated in a way that does not degenerate.

Everything here works on arrays that do not depend on an outcome and are computed once
(:class:`Belief`): the objective of every posterior draw at a finite set of decisions
``F (S, H)`` (the current recommendation, each draw's optimum and the points half way
between them), and what each draw predicts a candidate run would show
(:class:`RunPredictions`: expected log-losses, cell sd and run offset sd). A decision
after an outcome ``y`` is the member of the set with the lowest risk under the updated
posterior; the value of a run is the risk of the joint outcome of deciding now minus that
of deciding after the run, both under the current posterior (for the mean risk: the
expected fall in posterior expected regret).

Two updates of the posterior by an outcome:

``gaussian`` (default)
    A linear-Gaussian (ensemble Kalman) update: the draws' objective values and the run's
    log-losses are treated as jointly Gaussian, ``F | y`` is ``F`` moved along the
    regression of ``F`` on ``y`` (gain ``(C_yy + R)^-1 C_yF``, ``R`` the noise covariance
    of a run: cell sd and a run offset shared by the domains), with each draw's own
    simulated outcome perturbing it so that the spread shrinks by exactly what the run
    explains. Cross-fitted: the update is estimated on one half of the draws and judged
    on the other half, whose draws play the truth (their own losses plus noise are the
    outcomes, their own objective scores the decision), then the halves swap. An outcome
    can never pin the posterior to one draw, and a regression fitted to noise moves the
    decision at random with respect to the held-out truths, which costs value instead of
    adding it: a run that teaches nothing scores about 0 (either sign, within its
    standard error), one that informs the decision scores what a linear update can learn
    from it (a lower bound on the value of the exact update).
``importance``
    Importance reweighting of the draws by the outcome's likelihood: the exact Bayesian
    update when the posterior *is* the finite set of draws (a discrete prior, as in
    :class:`~bayesmix.acquire.ReweightRefit` campaigns). For a continuous posterior
    approximated by draws it degenerates once an outcome singles out one draw (many
    domains, small noise): every informative run then scores the expected value of
    perfect information. The effective sample size of the weights is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..decide import Risk
from ..errors import UsageError
from .likelihood import effective_sample_size, log_likelihood, normalise_log

#: Ways to update the posterior by a simulated outcome.
METHODS = ("gaussian", "importance")
#: Candidates handled at once in the vectorised scoring (memory ``chunk x outcomes x H``).
CANDIDATE_CHUNK = 16
#: A candidate's regression must explain more of the decision than chance would at this
#: level (chi-square test of the explained share) before its outcome moves the decision.
SHRINK_TEST_LEVEL = 0.05
#: Added to the diagonal of the predictive covariance before solving (log-loss units squared).
GAIN_JITTER = 1e-14


@dataclass
class RunPredictions:
    """What each posterior draw predicts a candidate run would show, on the log-loss scale.

    Attributes
    ----------
    mean : ndarray ``(S, M, K)``
        Expected log-losses per draw, candidate and domain.
    cell_sd : ndarray ``(S, M, K)``
        Sd of a cell around it (noise, and a new mixture's effect where the fit has one).
    run_sd : ndarray ``(S,)`` or None
        Sd of the run offset shared by a run's domains.
    """

    mean: np.ndarray
    cell_sd: np.ndarray
    run_sd: np.ndarray | None = None

    @property
    def n_candidates(self) -> int:
        return self.mean.shape[1]

    def draws(self, idx) -> "RunPredictions":
        """The predictions of the draws ``idx``."""
        return RunPredictions(self.mean[idx], self.cell_sd[idx], None if self.run_sd is None else self.run_sd[idx])

    def candidates(self, idx) -> "RunPredictions":
        """The predictions for the candidates ``idx``."""
        return RunPredictions(self.mean[:, idx], self.cell_sd[:, idx], self.run_sd)

    def noise(self, draws, z_cell, z_run) -> np.ndarray:
        """Noise of runs simulated from the draws ``draws (n,)`` with standard normals
        ``z_cell (n, K)`` and ``z_run (n,)``: ``(M, n, K)``."""
        noise = self.cell_sd[draws].transpose(1, 0, 2) * z_cell[None]
        if self.run_sd is not None:
            noise = noise + (self.run_sd[draws] * z_run)[None, :, None]
        return noise

    def noise_covariance(self, weights) -> np.ndarray:
        """The draws' average covariance of a run's noise, ``(M, K, K)``."""
        var = np.einsum("s,smk->mk", weights, self.cell_sd**2)
        cov = var[:, :, None] * np.eye(var.shape[1])[None]
        if self.run_sd is not None:
            cov = cov + float(weights @ self.run_sd**2)
        return cov


@dataclass
class ValueEstimate:
    """The value of information of candidates with its diagnostics (one entry per candidate).

    Attributes
    ----------
    value : ndarray
        Risk removed from the target decision (nats; for the mean risk, the expected
        fall in posterior expected regret). Not clipped at 0: a run that teaches nothing
        scores about 0 either way.
    se : ndarray
        Monte Carlo standard error over the simulated outcomes.
    ess_min, ess_mean : ndarray
        Effective sample size of the importance weights over the outcomes (``importance``
        only; NaN otherwise).
    """

    value: np.ndarray
    se: np.ndarray
    ess_min: np.ndarray
    ess_mean: np.ndarray


def linear_gains(state, predictions: RunPredictions, weights):
    """Gains of the linear-Gaussian update of ``state`` by each candidate's outcome.

    Parameters
    ----------
    state : ndarray ``(S, P)``
        Quantities per draw to update (e.g. the objective at the decision set).
    predictions : RunPredictions
    weights : ndarray ``(S,)``
        Normalised draw weights.

    Returns
    -------
    (gains ``(M, K, P)``, cross-covariances ``C_yx (M, K, P)``): the update of a draw's
    state by an outcome ``y`` is ``(y - y_s) @ gains[m]``.
    """
    Y = predictions.mean
    Yc = Y - np.einsum("s,smk->mk", weights, Y)[None]
    Xc = state - weights @ state
    wY = Yc * weights[:, None, None]
    cyy = np.einsum("smk,sml->mkl", wY, Yc)
    cyx = np.einsum("smk,sp->mkp", wY, Xc)
    A = cyy + predictions.noise_covariance(weights)
    A = A + GAIN_JITTER * np.eye(A.shape[-1])[None]
    return np.linalg.solve(A, cyx), cyx


def explained_share(gains, cyx, state, weights, reference=None) -> np.ndarray:
    """Share of the posterior variance of ``state``'s columns (or of their contrasts with
    column ``reference``) that each candidate's outcome would explain, ``(M, P)``."""
    Xc = state - weights @ state
    if reference is not None:
        Xc = Xc - Xc[:, [reference]]
        gains = gains - gains[:, :, [reference]]
        cyx = cyx - cyx[:, :, [reference]]
    var = weights @ Xc**2
    explained = np.einsum("mkp,mkp->mp", gains, cyx)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, np.clip(explained / np.where(var > 0, var, 1.0), 0.0, 1.0), 0.0)


def decision_explained(gains, cyx, values, weights, reference: int) -> np.ndarray:
    """Share of the posterior variance of the objective's contrasts with decision
    ``reference`` (summed over the decision set) that each candidate's outcome would
    explain, ``(M,)``: 0 for a run that says nothing about the decision, near 1 for one
    that settles it."""
    Xc = values - weights @ values
    Xc = Xc - Xc[:, [reference]]
    var = float(np.sum(weights @ Xc**2))
    dg = gains - gains[:, :, [reference]]
    dc = cyx - cyx[:, :, [reference]]
    explained = np.einsum("mkp,mkp->m", dg, dc)
    return np.clip(explained / var, 0.0, 1.0) if var > 0 else np.zeros(gains.shape[0])


def significant_share(n_outcomes: int, n_draws: float) -> float:
    """The share of the decision's variance that a regression on ``n_outcomes`` outcomes
    fitted to ``n_draws`` (effective) draws must explain before it counts as more than
    chance: the chi-square test at :data:`SHRINK_TEST_LEVEL` (see :func:`shrink_gains`)."""
    return float(stats.chi2.ppf(1.0 - SHRINK_TEST_LEVEL, n_outcomes) / n_draws)


def shrink_gains(gains, cyx, values, weights, reference: int) -> np.ndarray:
    """Gains shrunk towards no update where a regression on the draws explains little more
    of the decision than it would by chance (positive-part James-Stein).

    A regression on ``K`` outcomes fitted to ``n`` draws explains about ``K / n`` of the
    variance of anything the outcome says nothing about. A candidate whose outcome
    explains the share ``R2`` of the variance of the objective's contrasts with decision
    ``reference`` (pooled over the decision set, :func:`decision_explained`) keeps the
    fraction ``max(0, 1 - K / (n R2))`` of its gains. One factor per candidate, not per
    decision: the decision after an outcome is the best of many, and per-decision factors
    would let it chase the decisions whose regressions fitted the most noise. Without it,
    a regression fitted to noise moves the decision at random (which the held-out judges
    charge for, so a useless run would score below 0 and an informative one would lose
    part of its value). ``n`` is the draws' effective sample size.
    """
    share = decision_explained(gains, cyx, values, weights, reference)  # (M,)
    K, n = gains.shape[1], effective_sample_size(weights)
    chance, significant = K / n, significant_share(K, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(share > significant, np.clip(1.0 - chance / share, 0.0, 1.0), 0.0)
    ref = gains[:, :, [reference]]
    return ref + keep[:, None, None] * (gains - ref)


def systematic_resample(weights, n: int, rng) -> np.ndarray:
    """``n`` draw indices by systematic resampling of ``weights`` (each draw about ``n w_s`` times)."""
    positions = (rng.uniform() + np.arange(n)) / n
    return np.minimum(np.searchsorted(np.cumsum(weights), positions), len(weights) - 1)


def risk_difference(base, rule, weights, risk: Risk):
    """``risk(base) - risk(rule)`` over one weighted joint sample of truths and outcomes.

    Parameters
    ----------
    base, rule : ndarray ``(n, T)``
        The objective of the truth(s) of each outcome row at the decision made now and at
        the decision made after the outcome.
    weights : ndarray ``(n, T)``
        Weights of the joint sample (summing to one).
    risk : Risk

    Returns
    -------
    (difference, standard error): the error from the rows' contributions to the
    linearised risk (for the mean: the sd of the rows' differences over ``sqrt(n)``).
    """
    rho_b, c_b = _risk_and_contributions(base, weights, risk)
    rho_r, c_r = _risk_and_contributions(rule, weights, risk)
    n = base.shape[0]
    se = np.sqrt(n / max(n - 1, 1) * np.sum((c_b - c_r) ** 2))
    return rho_b - rho_r, se


def _risk_and_contributions(values, weights, risk: Risk):
    flat_v, flat_w = values.reshape(-1), weights.reshape(-1)
    coef = risk.coefficients(flat_v, flat_w)
    rho = float(coef @ flat_v)
    return rho, (coef * (flat_v - rho)).reshape(values.shape).sum(axis=1)


class Belief:
    """The current posterior as the value of information sees it, updated by fantasies.

    Parameters
    ----------
    values : ndarray ``(S, H)``
        The objective of each draw at each decision of the finite decision set.
    predictions : RunPredictions
        What each draw predicts for every candidate run.
    weights : ndarray ``(S,)``
        Normalised draw weights.
    risk : Risk
    method : {"gaussian", "importance"}
    n_outcomes : int
        Simulated outcomes per candidate (``gaussian``: half from each half of the draws).
    seed : int
        Seed of the halves, truths and noise (the same for every candidate: common random
        numbers, so that candidates are compared on the same outcomes).
    """

    def __init__(self, values, predictions: RunPredictions, weights, risk: Risk, *, method: str = "gaussian",
                 n_outcomes: int = 256, seed: int = 0):
        if method not in METHODS:
            raise UsageError(f"unknown value-of-information method '{method}': use one of {', '.join(METHODS)}")
        if n_outcomes < 2:
            raise UsageError(f"n_outcomes must be at least 2, got {n_outcomes}")
        self.values = np.asarray(values, dtype=float)
        self.predictions = predictions
        self.weights = np.asarray(weights, dtype=float)
        self.risk, self.method, self.n_outcomes, self.seed = risk, method, int(n_outcomes), seed
        if method == "gaussian" and self.values.shape[0] < 4:
            raise UsageError("the gaussian value of information needs at least 4 posterior draws")
        self.rounds = 0

    def base_decision(self) -> int:
        """Index of the decision with the lowest risk now."""
        return int(np.argmin(self.risk.evaluate(self.values, self.weights)))

    def value(self, idx=None) -> ValueEstimate:
        """The value of information of the candidates ``idx`` (default: all)."""
        pred = self.predictions if idx is None else self.predictions.candidates(np.asarray(idx, dtype=int))
        rng = np.random.default_rng([self.seed, self.rounds])
        if self.method == "gaussian":
            return _gaussian_value(self.values, pred, self.weights, self.risk, self.n_outcomes, rng)
        return _importance_value(self.values, pred, self.weights, self.risk, self.n_outcomes, rng)

    def variance(self, idx=None) -> np.ndarray:
        """Posterior variance of each candidate's expected log-losses ``(M, K)``."""
        Y = self.predictions.mean if idx is None else self.predictions.mean[:, idx]
        mean = np.einsum("s,smk->mk", self.weights, Y)
        return np.einsum("s,smk->mk", self.weights, (Y - mean) ** 2)

    def condition(self, m: int) -> None:
        """Condition on a fantasised outcome of candidate ``m``: a draw of its posterior
        predictive (a draw's expected losses plus a run's noise), not its mean, so that
        the posterior narrows as much as a real outcome would narrow it."""
        rng = np.random.default_rng([self.seed, self.rounds, 1])
        self.rounds += 1
        pred = self.predictions
        t = systematic_resample(self.weights, 1, rng)
        z_cell, z_run = rng.standard_normal((1, pred.mean.shape[2])), rng.standard_normal(1)
        y = pred.mean[t, m] + pred.candidates([m]).noise(t, z_cell, z_run)[0]  # (1, K)
        if self.method == "importance":
            loglik = log_likelihood(y, pred.mean[:, m], pred.cell_sd[:, m], pred.run_sd)[0]
            with np.errstate(divide="ignore"):
                self.weights = normalise_log(loglik + np.log(self.weights))
            return
        S, H = self.values.shape
        state = np.concatenate([self.values, pred.mean.reshape(S, -1)], axis=1)
        single = pred.candidates([m])
        gains, _ = linear_gains(state, single, self.weights)
        z = rng.standard_normal((S, pred.mean.shape[2])), rng.standard_normal(S)
        simulated = pred.mean[:, m] + _centred(single.noise(np.arange(S), *z)[0], self.weights)
        state = state + (y - simulated) @ gains[0]
        self.values = state[:, :H]
        self.predictions = RunPredictions(state[:, H:].reshape(pred.mean.shape), pred.cell_sd, pred.run_sd)


def _centred(noise, weights):
    return noise - weights @ noise


def _gaussian_value(F, pred: RunPredictions, w, risk: Risk, n_outcomes: int, rng) -> ValueEstimate:
    """Cross-fitted linear-Gaussian value (see the module docstring): the mean of the two
    directions (decide with one half, judge with the other)."""
    S = F.shape[0]
    perm = rng.permutation(S)
    halves = (np.sort(perm[: S // 2]), np.sort(perm[S // 2:]))
    n_half = max(n_outcomes // 2, 1)
    parts = [_held_out_value(F, pred, w, risk, fit, held, n_half, rng)
             for fit, held in ((halves[0], halves[1]), (halves[1], halves[0]))]
    value = (parts[0][0] + parts[1][0]) / 2
    se = np.sqrt(parts[0][1] ** 2 + parts[1][1] ** 2) / 2
    nan = np.full(pred.n_candidates, np.nan)
    return ValueEstimate(value, se, nan, nan.copy())


def _held_out_value(F, pred: RunPredictions, w, risk: Risk, fit, held, n: int, rng):
    """Value of the decisions that the draws ``fit`` make after each simulated outcome,
    judged by the draws ``held``: ``(value (M,), se (M,))``.

    The outcomes are the held-out draws' expected losses plus noise. The held-out draws
    judge a decision by their own linear-Gaussian update given the outcome (its risk
    under ``F | y`` as they estimate it), not by the objective of the one draw that made
    the outcome: the same expectation with far less Monte Carlo noise, and their
    regression noise is independent of the decisions the other half made.
    """
    K = pred.mean.shape[2]
    Ff, pf, wf, gf, cf, zf = _half(F, pred, w, fit, rng)
    Fh, ph, wh, gh, _, zh = _half(F, pred, w, held, rng)
    base = int(np.argmin(risk.evaluate(Ff, wf)))
    gf = shrink_gains(gf, cf, Ff, wf, base)
    r = _residual_risk(Ff, pf, wf, gf, risk, zf)  # (M, H)
    truths = systematic_resample(wh, n, rng)
    z = rng.standard_normal((n, K)), rng.standard_normal(n)
    y = ph.mean[truths].transpose(1, 0, 2) + ph.noise(truths, *z)  # (M, n, K)
    M = pred.n_candidates
    value, se = np.empty(M), np.empty(M)
    for start in range(0, M, CANDIDATE_CHUNK):
        sl = slice(start, start + CANDIDATE_CHUNK)
        decisions = np.argmin(r[sl, None, :] + np.einsum("mnk,mkh->mnh", y[sl], gf[sl]), axis=2)  # (m, n)
        for i, m in enumerate(range(M)[sl]):
            value[m], se[m] = _judged_difference(Fh, ph.candidates([m]), wh, gh[m], risk, zh, y[m], base,
                                                 decisions[i])
    return value, se


def _half(F, pred: RunPredictions, w, idx, rng):
    """One half of the draws: its objective, predictions, normalised weights, update gains
    and cross-covariances, and standard normals for its own simulated outcomes."""
    wi = w[idx] / w[idx].sum()
    Fi, pi = F[idx], pred.draws(idx)
    gains, cyx = linear_gains(Fi, pi, wi)
    z = rng.standard_normal((len(idx), pred.mean.shape[2])), rng.standard_normal(len(idx))
    return Fi, pi, wi, gains, cyx, z


def _judged_difference(Fh, ph: RunPredictions, wh, gains, risk: Risk, z, y, base: int, decisions):
    """``risk(now) - risk(after)`` of one candidate as the held-out draws see it.

    ``y (n, K)`` outcomes, ``decisions (n,)`` the decision after each; under the judges'
    update the objective at decision ``h`` given ``y`` is the residual ensemble
    ``F_h - y_s @ g_h`` (each judge's own simulated outcome) plus ``y @ g_h``.
    """
    n = y.shape[0]
    if risk.kind == "mean":
        centre = wh @ Fh - (wh @ ph.mean[:, 0]) @ gains  # (H,)
        shift = y @ gains  # (n, H)
        after = centre[decisions] + shift[np.arange(n), decisions]
        now = centre[base] + shift[:, base]
        return risk_difference(now[:, None], after[:, None], np.full((n, 1), 1.0 / n), risk)
    simulated = ph.mean[:, 0] + _centred(ph.noise(np.arange(len(wh)), *z)[0], wh)
    residual = Fh - simulated @ gains  # (s, H)
    shift = y @ gains  # (n, H)
    after = residual[:, decisions].T + shift[np.arange(n), decisions][:, None]  # (n, s)
    now = residual[:, [base]].T + shift[:, [base]]
    return risk_difference(np.broadcast_to(now, after.shape), after, np.broadcast_to(wh / n, after.shape), risk)


def _residual_risk(Ff, pf: RunPredictions, wf, gains, risk: Risk, z) -> np.ndarray:
    """Risk of each decision under the updated draws less the outcome's own term,
    ``(M, H)``: after an outcome ``y`` the risk is this plus ``y @ gains``."""
    if risk.kind == "mean":
        return (wf @ Ff)[None] - np.einsum("mk,mkh->mh", np.einsum("s,smk->mk", wf, pf.mean), gains)
    noise = pf.noise(np.arange(len(wf)), *z)  # (M, s, K)
    out = np.empty((pf.n_candidates, Ff.shape[1]))
    for m in range(pf.n_candidates):
        simulated = pf.mean[:, m] + _centred(noise[m], wf)
        out[m] = risk.evaluate(Ff - simulated @ gains[m], wf)
    return out


def _importance_value(F, pred: RunPredictions, w, risk: Risk, n: int, rng) -> ValueEstimate:
    """Importance-weighted value: exact for a posterior that is its finite set of draws."""
    M, K = pred.n_candidates, pred.mean.shape[2]
    base = int(np.argmin(risk.evaluate(F, w)))
    truths = systematic_resample(w, n, rng)
    z = rng.standard_normal((n, K)), rng.standard_normal(n)
    y = pred.mean[truths].transpose(1, 0, 2) + pred.noise(truths, *z)  # (M, n, K)
    value, se, ess_min, ess_mean = (np.empty(M) for _ in range(4))
    with np.errstate(divide="ignore"):
        log_w = np.log(w)
    for m in range(M):
        loglik = log_likelihood(y[m], pred.mean[:, m], pred.cell_sd[:, m], pred.run_sd)  # (n, S)
        logw = np.where(np.isfinite(loglik), loglik, -np.inf) + log_w[None]
        lost = ~np.any(np.isfinite(logw), axis=1)  # no draw explains the outcome: weights stay
        logw[lost] = log_w
        W = normalise_log(logw)
        decisions = np.argmin(risk.evaluate_rows(F, W), axis=1)
        value[m], se[m] = risk_difference(np.broadcast_to(F[:, base], W.shape), F[:, decisions].T, W / n, risk)
        ess = effective_sample_size(W)
        ess_min[m], ess_mean[m] = ess.min(), ess.mean()
    return ValueEstimate(value, se, ess_min, ess_mean)
