"""Posterior draws of the observation model at any scale and mixture: the discrepancy
(kriged, bending beyond the fitted scales), the mixture effects, and a new run's noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..laws.base import EXPONENT_PRIOR
from .design import KERNEL_JITTER, ObservationDesign, row_scale_index, scale_features, se_kernel
from .mixture_effects import centre_within_blocks
from .reducible import discrepant_log_mean, floor_for

#: Relative drift of a fitted discrepancy slope beyond the fitted scales, per e-fold
#: (:meth:`ObservationDraws._bend`): a typical scaling exponent, the median of the laws'
#: exponent prior (:data:`bayesmix.laws.base.EXPONENT_PRIOR`).
SLOPE_DRIFT = float(np.exp(EXPONENT_PRIOR["mu"]))  # 0.30


@dataclass
class ObservationDraws:
    """Posterior draws of the observation model beyond ``sigma``, ``nu`` and ``run_sd``:
    the discrepancy and the mixture effect, with the design that gives them meaning."""

    design: ObservationDesign
    disc_slope: np.ndarray | None = None   # (S, P, K)
    disc_amp: np.ndarray | None = None     # (S,)
    disc_white: np.ndarray | None = None   # (S, G, K)
    mix_effect: np.ndarray | None = None   # (S, M, K)
    mix_sd: np.ndarray | None = None       # (S, K)

    @classmethod
    def from_values(cls, design: ObservationDesign, values: dict) -> "ObservationDraws":
        """From draws by model variable name (see :data:`RECORDED`)."""
        out = cls(design)
        if design.discrepancy:
            if "disc_slope" in values:  # sampled centred (fitted slopes)
                out.disc_slope = np.asarray(values["disc_slope"], dtype=float)
            else:
                out.disc_slope = (np.asarray(values["disc_slope_mean"])[:, :, None]
                                  + np.asarray(values["disc_slope_sd"]).reshape(-1, 1, 1)
                                  * np.asarray(values["disc_slope_z"]))
            out.disc_amp = np.asarray(values["disc_amp"]).reshape(-1)
            out.disc_white = np.asarray(values["disc_white"])
        if design.mixture_effect:
            out.mix_sd = np.asarray(values["mix_sd"])
            out.mix_effect = centre_within_blocks(out.mix_sd[:, None, :] * np.asarray(values["mix_z"]),
                                                  design.mixture_blocks)
        return out

    def subset(self, idx) -> "ObservationDraws":
        pick = (lambda a: None if a is None else np.asarray(a)[idx])
        return ObservationDraws(self.design, pick(self.disc_slope), pick(self.disc_amp), pick(self.disc_white),
                                pick(self.mix_effect), pick(self.mix_sd))

    def discrepancy(self, n, d, *, seed=0) -> np.ndarray | None:
        """Draws of the law's log-error ``delta`` at each row's scale, ``(S, rows, K)``.

        At a fitted scale, its posterior value; elsewhere a draw from the Gaussian
        process given the fitted scales (one draw per distinct scale and posterior draw,
        shared by the rows at that scale). None without a discrepancy term.
        """
        if not self.design.discrepancy:
            return None
        new, inverse = self._distinct_scales(n, d)
        mean, cov, fitted, fitted_at = self._kriged(new)
        vals, vecs = np.linalg.eigh(cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        rng = np.random.default_rng(seed)
        S, K = self.disc_white.shape[0], self.disc_white.shape[-1]
        gp = mean + np.einsum("nm,smk->snk", root, rng.standard_normal((S, len(new), K)))
        # At a fitted scale the conditional is the fitted value itself; the kernel's jitter
        # would otherwise leave a spread of ~1e-3 amplitudes there.
        gp[:, fitted_at >= 0] = fitted[:, fitted_at[fitted_at >= 0]]
        delta = self._slope_line(new) + self.disc_amp[:, None, None] * gp + self._bend(new, rng)
        return delta[:, inverse, :]

    def discrepancy_moments(self, n, d) -> tuple[np.ndarray, np.ndarray] | None:
        """Given each posterior draw, the mean and variance of ``delta`` at each row's
        scale, ``(S, rows, K)`` each: what :meth:`discrepancy` draws from.

        The mean is the slopes' line plus the kriged smooth part (at a fitted scale, the
        fitted value); the variance is what a scale the fit did not see draws afresh: the
        smooth part's conditional spread and the slopes' bend and drift beyond the fitted
        scales (:meth:`_bend`), 0 at a fitted scale. None without a discrepancy term.
        """
        if not self.design.discrepancy:
            return None
        new, inverse = self._distinct_scales(n, d)
        mean, cov, fitted, fitted_at = self._kriged(new)
        S, K = self.disc_white.shape[0], self.disc_white.shape[-1]
        gp_var = np.broadcast_to(np.clip(np.diag(cov), 0.0, None)[None, :, None], (S, len(new), K)).copy()
        mean[:, fitted_at >= 0] = fitted[:, fitted_at[fitted_at >= 0]]
        gp_var[:, fitted_at >= 0] = 0.0
        amp = self.disc_amp[:, None, None]
        beyond, change_sd, drift_sd = self._bend_scales(new)
        bend_var = (np.einsum("np,spk->snk", beyond**2, change_sd**2)
                    + 0.25 * np.einsum("np,spk->snk", beyond**4, drift_sd**2))
        return (self._slope_line(new) + amp * mean)[:, inverse], (amp**2 * gp_var + bend_var)[:, inverse]

    def prior_slope_line(self, n, d) -> np.ndarray | None:
        """``(S, rows, K)``: the part of ``delta`` at each row's scale that slopes acting
        outside the fitted scales only make (their slopes never in the likelihood, drawn
        from their prior), 0 along features whose slopes are fitted; part of the mean of
        :meth:`discrepancy_moments`. None without a discrepancy term."""
        if not self.design.discrepancy:
            return None
        design = self.design
        outside = np.where(design.fitted_slopes, 0.0, design.distance_beyond(scale_features(n, d, design.features)))
        return np.einsum("np,spk->snk", outside, self.disc_slope)

    def _distinct_scales(self, n, d) -> tuple[np.ndarray, np.ndarray]:
        """The distinct scale points of the rows ``(m, P)`` (features rounded to 9
        decimals, so that one scale is one point) and each row's index among them."""
        points = np.round(scale_features(n, d, self.design.features), 9)
        new, inverse = np.unique(points, axis=0, return_inverse=True)
        return new, np.asarray(inverse).reshape(-1)

    def _slope_line(self, new: np.ndarray) -> np.ndarray:
        """``(S, m, K)``: the slopes' line at the scale points ``new`` (from the fitted
        scales' centre, or beyond their range for slopes acting outside only)."""
        return np.einsum("np,spk->snk", self.design.slope_distance(new), self.disc_slope)

    def _kriged(self, new: np.ndarray):
        """The smooth part's conditional (kriging) distribution at the scale points ``new``
        given its values at the fitted scales: per-draw means ``(S, n, K)`` and the shared
        covariance ``(n, n)`` (unit amplitude), the values at the fitted scales and where
        ``new`` is one of them (``-1`` where not)."""
        design = self.design
        factor = design.kernel_factor()
        # The smooth part at the fitted scales (unit amplitude), as in the model: the
        # GP's values there less their level and linear trend, which are the law's and
        # the linear part's.
        fitted = np.einsum("gh,shk->sgk", design.smooth_factor(), self.disc_white)
        # Kriged from those values: it reverts to 0 (the law plus the linear part) and
        # its spread to ``amp`` beyond a length scale from the fitted scales. (Kriging the
        # raw GP and removing its trend through the fitted scales afterwards would instead
        # extrapolate that trend linearly: a curvature among the fitted scales would become
        # a slope at the new one, which the linear part was meant to carry.)
        k_new = se_kernel(new, design.scale_points, design.lengthscale)
        solve = np.linalg.solve(factor.T, np.linalg.solve(factor, k_new.T)).T  # K_*G K_GG^-1
        mean = np.einsum("ng,sgk->snk", solve, fitted)
        cov = se_kernel(new, new, design.lengthscale) - solve @ k_new.T
        cov = (cov + cov.T) / 2 + KERNEL_JITTER * np.eye(len(new))
        return mean, cov, fitted, row_scale_index(new, design.scale_points)

    def discrepancy_given(self, n, d, n0: float, d0: float, *, seed=1, given_seed=0) -> np.ndarray | None:
        """Draws of ``delta`` at each row's scale jointly with its draw at one scale.

        :meth:`discrepancy` draws each call's new scales independently of other calls';
        here the draw at the scale ``(n0, d0)`` (scaled units) is the one
        ``discrepancy(n0, d0, seed=given_seed)`` gives (the draw a decision at that scale
        uses) and the rows' draws are its Gaussian process conditional on it, with the
        same change of slope beyond the fitted scales. So a run near that scale tells
        about the law's error there, and one far from it little. ``(S, rows, K)``; None
        without a discrepancy term.
        """
        if not self.design.discrepancy:
            return None
        design = self.design
        S, K = self.disc_white.shape[0], self.disc_white.shape[-1]
        target = scale_features(np.atleast_1d(n0), np.atleast_1d(d0), design.features)
        new, inverse = self._distinct_scales(n, d)
        points = np.concatenate([np.round(target, 9), new])
        mean, cov, fitted, fitted_at = self._kriged(points)
        rng0 = np.random.default_rng(given_seed)
        # The target's draw as discrepancy() makes it: its one scale, then the slope change.
        vals, vecs = np.linalg.eigh(cov[:1, :1])
        g_t = mean[:, :1] + np.einsum("nm,smk->snk", vecs * np.sqrt(np.clip(vals, 0.0, None)),
                                      rng0.standard_normal((S, 1, K)))
        if fitted_at[0] >= 0:
            g_t = fitted[:, [fitted_at[0]]]
        bend = self._bend(new, rng0)  # the target's draw used rng0 so far: the same bend
        c_ct = cov[1:, 0] / cov[0, 0]
        cond_cov = cov[1:, 1:] - np.outer(c_ct, cov[0, 1:])
        cond_cov = (cond_cov + cond_cov.T) / 2 + KERNEL_JITTER * np.eye(len(new))
        vals, vecs = np.linalg.eigh(cond_cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        rng = np.random.default_rng(seed)
        gp = (mean[:, 1:] + c_ct[None, :, None] * (g_t - mean[:, :1])
              + np.einsum("nm,smk->snk", root, rng.standard_normal((S, len(new), K))))
        at = fitted_at[1:]
        gp[:, at >= 0] = fitted[:, at[at >= 0]]
        delta = self._slope_line(new) + self.disc_amp[:, None, None] * gp + bend
        return delta[:, inverse, :]

    def _bend(self, new: np.ndarray, rng) -> np.ndarray:
        """``(S, n, K)``: how the fitted slopes bend beyond the fitted scales, at ``new``.

        Two changes of slope, per domain and feature, times the distance ``b`` beyond the
        fitted range: a constant change, Normal with sd ``amp / lengthscale`` per e-fold
        (the slope change the smooth part itself makes over one length scale), and a drift
        that grows with ``b``, Normal with sd :data:`SLOPE_DRIFT` ``|slope| b``, which
        integrates to ``SLOPE_DRIFT |slope| b^2 / 2``. Along features whose slopes act
        outside only, their prior already is that change, and both are 0.

        Why the first: kriged, the smooth part's spread stops growing at ``amp`` a length
        scale away, and fitted slopes are known to the precision of the fitted scales, so
        without it the intervals far out stop widening: simulated truths of another law,
        scored at 4x the largest fitted size, covered 42-63% of cells with 90% intervals;
        SlimPajama, fit <= 680M and scored at 937M, 80%.

        Why the second: a large fitted slope says the law's form is wrong along that
        feature, and then how the error goes on is not known either. The log-error
        between two power laws in ``x = log N`` changes its slope at a rate of the order
        of their exponents (the log-slope of ``E + A e^(-alpha x)`` changes by ``alpha``
        times the irreducible share per e-fold), so the drift's sd is a typical exponent
        times the slope, with no sign assumed. Growing as ``b^2``, it barely touches a
        step of a third of an e-fold (SlimPajama fitted <= 680M, scored at 937M: coverage
        0.904 either way) and dominates at four times the largest size: truths of other
        laws (``benchmarks/bench_calibration.py``, six datasets each) covered 0.74
        (chinchilla_domain) and 0.42 (additive) without it and 0.94 and 0.87 with it
        (their fits' slopes are 0.07-0.2 per e-fold), prior truths, whose slopes are
        small, 0.92 either way.
        """
        beyond, change_sd, drift_sd = self._bend_scales(new)
        change = rng.standard_normal(change_sd.shape) * change_sd
        drift = rng.standard_normal(drift_sd.shape) * drift_sd
        return (np.einsum("np,spk->snk", beyond, change)
                + 0.5 * np.einsum("np,spk->snk", beyond**2, drift))

    def _bend_scales(self, new: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What :meth:`_bend` draws with: the distance beyond the fitted range along the
        fitted features ``(n, P)`` (0 along the others), and the sds ``(S, P, K)`` of the
        constant slope change and of the drift's rate per e-fold."""
        design = self.design
        beyond = np.where(design.fitted_slopes, design.distance_beyond(new), 0.0)
        change_sd = np.broadcast_to((self.disc_amp / design.lengthscale)[:, None, None], self.disc_slope.shape)
        return beyond, change_sd, SLOPE_DRIFT * np.abs(self.disc_slope)

    def known_mixture_effect(self, weights) -> tuple[np.ndarray | None, np.ndarray]:
        """The posterior effect of each row's mixture where it was seen in the fit
        (``(S, rows, K)``, 0 for new mixtures; None without a mixture effect), and the
        mask of seen mixtures ``(rows,)``."""
        rows = np.atleast_2d(weights).shape[0]
        if not self.design.mixture_effect:
            return None, np.zeros(rows, dtype=bool)
        index = self.design.mixture_index(weights)
        known = index >= 0
        effect = np.where(known[None, :, None], self.mix_effect[:, np.maximum(index, 0), :], 0.0)
        return effect, known

    def new_mixture_sd(self) -> np.ndarray | None:
        """``(S, K)`` sd of a new mixture's effect, or None."""
        return self.mix_sd if self.design.mixture_effect else None


def expected_log_loss(draws: ObservationDraws | None, log_mean, weights, n, d, *, log_floor=None, seed=0,
                      jointly_with=None) -> np.ndarray:
    """The log of the expected loss at the rows, ``(S, rows, K)``: the law's log-mean with
    the discrepancy at the rows' scales (:func:`discrepant_log_mean`; on the reducible
    loss where the design says so) plus the effect of a mixture seen in the fit.

    ``log_floor``: the log of the law's irreducible loss, ``(S, 1, K)``, needed where the
    design's discrepancy scales the reducible loss. ``jointly_with``: a scale ``(n0, d0)``
    whose discrepancy draw (seed 0) the rows' draws are conditioned on
    (:meth:`ObservationDraws.discrepancy_given`). ``draws`` None: ``log_mean``.
    """
    if draws is None:
        return log_mean
    if jointly_with is None:
        delta = draws.discrepancy(n, d, seed=seed)
    else:
        delta = draws.discrepancy_given(n, d, *jointly_with, seed=seed, given_seed=0)
    if delta is not None:
        log_mean = discrepant_log_mean(log_mean, delta, floor_for(draws.design.discrepancy_scale, log_floor))
    eta, _ = draws.known_mixture_effect(weights)
    return log_mean if eta is None else log_mean + eta


def cell_sd(sigma, draws: ObservationDraws | None, weights=None) -> np.ndarray:
    """Per-draw sd of a new run's log-loss around its expected loss, ``(S, rows, K)``, its
    run offset aside: the cell noise ``sigma (S, K)``, and for mixtures the fit did not
    see (``weights (rows, K)``) a new mixture's effect. Without ``weights``: one row, a
    mixture the fit did not see."""
    sigma = np.asarray(sigma, dtype=float)[:, None, :]
    rows = 1 if weights is None else np.atleast_2d(weights).shape[0]
    mix_sd = None if draws is None else draws.new_mixture_sd()
    if mix_sd is None:
        return np.broadcast_to(sigma, (sigma.shape[0], rows, sigma.shape[-1]))
    new = np.ones(1, dtype=bool) if weights is None else ~draws.known_mixture_effect(weights)[1]
    return np.sqrt(sigma**2 + np.where(new[None, :, None], np.asarray(mix_sd)[:, None, :] ** 2, 0.0))


def add_noise(mu: np.ndarray, *, sigma=None, nu=None, run_sd=None, mix_sd=None, new_mixture=None,
              seed=0) -> np.ndarray:
    """Draws of an observed loss of a new run around expected losses ``mu (S, rows, K)``.

    A new run gets a fresh offset (``run_sd (S,)``) shared by its domains, a new mixture
    a fresh mixture effect (``mix_sd (S, K)``; ``new_mixture (rows,)`` marks which rows
    are new, default all), and every cell noise (``sigma (S, K)``, Student-t with ``nu``).
    """
    if sigma is None:
        return mu
    rng = np.random.default_rng(seed)
    log_noise = np.zeros(mu.shape)
    if run_sd is not None:
        log_noise += (rng.standard_normal(mu.shape[:2]) * np.asarray(run_sd)[:, None])[:, :, None]
    if mix_sd is not None:
        fresh = rng.standard_normal(mu.shape) * np.asarray(mix_sd)[:, None, :]
        mask = np.ones(mu.shape[1], dtype=bool) if new_mixture is None else np.asarray(new_mixture, dtype=bool)
        log_noise += np.where(mask[None, :, None], fresh, 0.0)
    sigma = np.asarray(sigma)[:, None, :]
    if nu is not None:
        eps = rng.standard_t(np.asarray(nu)[:, None, None], size=mu.shape)
    else:
        eps = rng.standard_normal(mu.shape)
    return mu * np.exp(log_noise + sigma * eps)
