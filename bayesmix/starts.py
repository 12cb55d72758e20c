"""Where a fit's chains start: the best of several MAP searches of the posterior
density (or a warm start), as a point of the sampler's transformed coordinates and as
initial values of the model's free variables."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pymc as pm
from scipy import optimize

from .blas import one_blas_thread
from .coordinates import to_sampler_coordinates
from .errors import FitRejectedError
from .laws import Law
from .nutpie_backend import negative_logp, transformed_point, whitened_order

if TYPE_CHECKING:
    from .inference import FitSettings


def find_map(model: pm.Model, *, starts: int = 4, seed: int = 0, logp_dlogp=None) -> tuple[dict, float]:
    """Best of several L-BFGS-B MAP searches from jittered starts (unconstrained space).

    The law posteriors can have separated modes; the chains start at draws of the Laplace
    approximation at the best of several optima (:func:`dispersed_starts`).

    Parameters
    ----------
    model : pm.Model
    starts : int
    seed : int
    logp_dlogp : callable, optional
        ``x -> (logp, gradient)`` on the model's raveled unconstrained point (the order
        of ``model.value_vars``); default: PyTensor's compiled function. The nutpie fit
        passes its numba-compiled one (2.7x faster per call on the capacity law, and
        compiled already), read in that order by
        :func:`bayesmix.nutpie_backend.value_order_logp_dlogp` (a whitened model orders its
        coordinates otherwise).

    Returns
    -------
    (point, logp) : the transformed-space point of the best optimum and its log density.
    """
    from pymc.blocking import DictToArrayBijection
    from pymc.initial_point import make_initial_point_fn

    if logp_dlogp is None:
        func = model.logp_dlogp_function(ravel_inputs=True)
        func.set_extra_values({})
    else:
        func = logp_dlogp
    ip_fn = make_initial_point_fn(model=model, jitter_rvs=set(model.free_RVs), return_transformed=True)
    value_names = [v.name for v in model.value_vars]
    order, block = whitened_order(model)
    moving = np.zeros(len(order), dtype=bool)
    moving[order[:block]] = True
    best, best_logp = None, -np.inf
    rng = np.random.default_rng(seed)
    # One BLAS thread: see bayesmix.blas.one_blas_thread.
    with one_blas_thread():
        for start in range(max(1, starts)):
            point = ip_fn(int(rng.integers(2**31)))
            x0 = DictToArrayBijection.map({k: point[k] for k in value_names})
            x = x0.data.copy()
            # First the law and the observation model's scales with the standard-normal
            # latents at 0, then everything: from a start where the latents are jittered,
            # L-BFGS spends its iterations on them (SlimPajama 7: log density 4500-5300 after
            # 3000 iterations, against 6000-6020 staged, at the same cost).
            x[~moving] = 0.0
            for free in ((moving, np.ones_like(moving)) if not moving.all() else (moving,)):
                with np.errstate(all="ignore"):
                    res = optimize.minimize(negative_logp(func, x, free), x[free], jac=True, method="L-BFGS-B",
                                            options={"maxiter": 3000})
                x[free] = res.x
            if np.isfinite(res.fun) and -res.fun > best_logp:
                best_logp = -res.fun
                best = DictToArrayBijection.rmap(x0._replace(data=x))
    if best is None:
        raise FitRejectedError("no MAP search found a finite log density; check the priors and the data")
    return dict(best), float(best_logp)


def untransformed_point(model: pm.Model, point: dict) -> dict:
    """A point of ``model``'s value variables (transformed space) as initial values by
    free random variable name (natural space).

    Parameters
    ----------
    model : pm.Model
    point : dict
        Values by value-variable name, e.g. from :func:`find_map`.

    Returns
    -------
    dict
    """
    out = {}
    for rv in model.free_RVs:
        value_var = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        value = point[value_var.name]
        if transform is not None:
            value = transform.backward(value, *rv.owner.inputs).eval()
        out[rv.name] = np.asarray(value)
    return out


def starting_point(law: Law, model: pm.Model, logp_dlogp, init: dict | None, settings: FitSettings):
    """Where the chains start: the best MAP point, or ``init`` (a warm start).

    Parameters
    ----------
    law : Law
    model : pm.Model
    logp_dlogp : callable or None
        ``x -> (logp, gradient)`` on the raveled point in ``model.value_vars`` order, for
        the MAP search (:func:`find_map`; the nutpie fit passes its compiled model's,
        :func:`bayesmix.nutpie_backend.value_order_logp_dlogp`); None: PyMC's.
    init : dict, optional
        Values by parameter name in natural coordinates; None: search the MAP point
        (``settings.map_starts`` searches, seeded by ``settings.seed``).
    settings : FitSettings

    Returns
    -------
    (point, start) : dict, dict
        The point in the sampler's transformed coordinates, and the same point as
        initial values of the model's free variables.
    """
    if init is None:
        point, _ = find_map(model, starts=settings.map_starts, seed=settings.seed, logp_dlogp=logp_dlogp)
        start = untransformed_point(model, point)
    else:
        start = to_sampler_coordinates(law, model, dict(init))
        point = transformed_point(model, {k: v for k, v in start.items()
                                           if k in {rv.name for rv in model.free_RVs}})
    free = {rv.name for rv in model.free_RVs}
    return point, {k: v for k, v in start.items() if k in free}
