"""Mixtures under box constraints: the Euclidean projection onto ``{lower <= h <= upper,
sum(h) = 1}`` and a projected-gradient optimiser over it (recommendations and
acquisition both optimise mixtures here)."""

from __future__ import annotations

import numpy as np

#: Tolerance on the infinity norm of the projected gradient step (nats per unit weight).
OPTIMISER_TOLERANCE = 1e-9
#: Iteration cap of the projected gradient method.
MAX_ITERATIONS = 2000


def project_to_polytope(points, lower, upper) -> np.ndarray:
    """Euclidean projection onto ``{h : lower <= h <= upper, sum(h) = 1}``, batched.

    The projection is ``clip(v - tau, lower, upper)`` with the shift ``tau`` at which the
    weights sum to one. The sum is piecewise linear and decreasing in ``tau`` with kinks
    at ``v - upper`` and ``v - lower``; the root is found exactly between two kinks.

    Parameters
    ----------
    points : array_like ``(..., K)``
    lower, upper : array_like broadcastable to ``points``
        A feasible box: ``lower <= upper``, ``sum(lower) <= 1 <= sum(upper)``.

    Returns
    -------
    ndarray ``(..., K)``, inside the box and summing to 1 up to rounding (~1e-16).
    """
    v = np.asarray(points, dtype=float)
    lo = np.broadcast_to(np.asarray(lower, dtype=float), v.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=float), v.shape)
    kinks = np.sort(np.concatenate([v - hi, v - lo], axis=-1), axis=-1)  # (..., 2K)
    sums = np.clip(v[..., None, :] - kinks[..., :, None], lo[..., None, :], hi[..., None, :]).sum(-1)
    # sums decrease from sum(upper) >= 1 to sum(lower) <= 1 along the kinks.
    count = np.sum(sums >= 1.0, axis=-1, keepdims=True)
    j = np.clip(count - 1, 0, kinks.shape[-1] - 2)
    t0 = np.take_along_axis(kinks, j, -1)
    t1 = np.take_along_axis(kinks, j + 1, -1)
    s0 = np.take_along_axis(sums, j, -1)
    s1 = np.take_along_axis(sums, j + 1, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(s0 > s1, (s0 - 1.0) / (s0 - s1), 0.0)
    tau = t0 + np.clip(frac, 0.0, 1.0) * (t1 - t0)
    h = np.clip(v - tau, lo, hi)
    # Remove the rounding residual of the sum on the coordinates strictly inside the box.
    free = (h > lo) & (h < hi)
    n_free = free.sum(-1, keepdims=True)
    residual = 1.0 - h.sum(-1, keepdims=True)
    h = np.where(free, h + residual / np.maximum(n_free, 1), h)
    return np.clip(h, lo, hi)


def spectral_projected_gradient(fun, start, lower, upper, *, tol=OPTIMISER_TOLERANCE,
                                max_iter=MAX_ITERATIONS):
    """Minimise ``B`` problems over the box-simplex polytope at once (monotone SPG).

    Parameters
    ----------
    fun : callable
        ``fun(X (B, K)) -> (f (B,), g (B, K))``; problem ``b`` depends on row ``b`` only.
    start : ndarray ``(B, K)``
    lower, upper : ndarray ``(K,)``

    Returns
    -------
    (x, f, iterations, converged)
    """
    def project(v):
        return project_to_polytope(v, lower, upper)

    x = project(start)
    f, g = fun(x)
    f, g = np.array(f, dtype=float), np.array(g, dtype=float)
    B = x.shape[0]
    step_min, step_max = 1e-10, 1e10
    pg = np.abs(project(x - g) - x).max(-1)
    alpha = np.clip(1.0 / np.maximum(pg, 1e-12), step_min, step_max)
    direction = project(x - alpha[:, None] * g) - x
    lam = np.ones(B)
    done = (pg < tol) | ~np.isfinite(f)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        if done.all():
            break
        trial = x + lam[:, None] * direction
        trial[done] = x[done]
        ft, gt = fun(trial)
        slope = np.sum(g * direction, axis=-1)
        accept = ~done & np.isfinite(ft) & (ft <= f + 1e-4 * lam * slope)
        reject = ~done & ~accept
        if accept.any():
            s = trial - x
            y = gt - g
            sy = np.sum(s * y, axis=-1)
            ss = np.sum(s * s, axis=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                new_alpha = np.where(sy > 0, np.clip(ss / sy, step_min, step_max), step_max)
            x[accept], f[accept], g[accept] = trial[accept], ft[accept], gt[accept]
            alpha[accept] = new_alpha[accept]
            lam[accept] = 1.0
            direction[accept] = project(x[accept] - alpha[accept, None] * g[accept]) - x[accept]
            pg_new = np.abs(project(x[accept] - g[accept]) - x[accept]).max(-1)
            idx = np.flatnonzero(accept)
            done[idx[pg_new < tol]] = True
        if reject.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                curvature = ft - f - lam * slope
                guess = np.where(np.isfinite(ft) & (curvature > 0),
                                 -0.5 * lam**2 * slope / curvature, 0.5 * lam)
            new_lam = np.clip(guess, 0.1 * lam, 0.5 * lam)
            lam[reject] = new_lam[reject]
            # A step too short to move any weight, or no descent direction: stationary.
            stalled = reject & ((lam * np.abs(direction).max(-1) < 1e-15) | (slope >= 0))
            done |= stalled
    return x, f, iterations, done
