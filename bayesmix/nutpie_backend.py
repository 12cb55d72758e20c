"""The nutpie backend of a fit: the compiled model (once per law and process), Laplace
whitening, dispersed chain starts, the pilot, and sampling that runs on while the chains
only mix slowly."""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from . import _az, extension, nutpie_compile, observation, pilot
from .errors import UsageError
from .gate import MAX_RHAT, chain_logp, diagnose, without_minor_mode_chains
from .blas import one_blas_thread
from .laws import Law

if TYPE_CHECKING:
    from .inference import FitSettings


#: Largest number of sampler coordinates that "auto" preconditions: the dense map costs
#: about d^2 per gradient (measured on Pile 17, additive law, 650 coordinates: 2.8x
#: slower sampling than without).
PRECONDITION_MAX_DIM = 200

#: Names of the preconditioned model's own variables.
PRECOND_MEAN, PRECOND_CHOL, PRECOND_Z = "precond_mean", "precond_chol", "precond_z"


def model_signature(model: pm.Model) -> str:
    """A hash of everything in ``model`` but its shared data.

    Two models with equal signatures compute the same function of parameters of the same
    shapes and of their shared variables (the graph of the log density and the
    deterministics, printed with types, the values of every constant in it, and the
    parameters' shapes), so code compiled for one serves the
    other once its shared data are swapped in. A number taken from the table and baked
    into the graph as a constant changes the signature: it can make the cache miss,
    never return a wrong model.
    """
    import hashlib

    import pytensor
    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors

    # Deterministics in terms of the value variables: random variables print their RNG's
    # address, which differs between otherwise equal models.
    outputs = [model.logp()] + model.replace_rvs_by_values(list(model.deterministics))
    digest = hashlib.sha256(pytensor.printing.debugprint(outputs, file="str", print_type=True).encode())
    for var in ancestors(outputs):
        if isinstance(var, Constant):
            digest.update(np.asarray(var.data).tobytes())
    for rv in model.free_RVs:
        digest.update(f"{rv.name}:{model.rvs_to_values[rv].name}".encode())
    # Shapes are symbolic in the graph (a dimension's length is data): the parameters'
    # shapes, e.g. the number of domains, must match for the compiled code to fit.
    shapes = {name: [int(n) for n in shape] for name, shape in model.eval_rv_shapes().items()}
    digest.update(repr(sorted(shapes.items())).encode())
    return digest.hexdigest()


#: nutpie-compiled models of this process by :func:`model_signature` (most recent last).
_COMPILED_MODELS: "dict[str, object]" = {}
#: Compiled models kept per process: one per law of a comparison is enough.
COMPILED_MODELS_KEPT = 12


def compiled_nutpie_model(model: pm.Model):
    """nutpie's compiled ``model`` with ``model``'s data, compiled once per signature.

    Compiling takes 5-30 s on Pile 17 (the capacity laws the most), often more than
    sampling a cheap law, and 1-3 s where numba's disk cache holds the callbacks from an
    earlier process (:mod:`bayesmix.nutpie_compile`); the folds of a comparison differ
    only in their data, so a process compiles each law once and later fits swap in their
    data (``with_data``). Set the chains' starts with :func:`nutpie_starts`.
    """
    key = model_signature(model)
    compiled = _COMPILED_MODELS.pop(key, None)
    if compiled is None:
        compiled = nutpie_compile.compile_pymc_model(model)
    else:
        # Data the compiled graph does not read (pruned from it) is not swapped in.
        known = {var.name for var in compiled.shared_var_keys}
        data = {v.name: v.get_value() for v in model.data_vars if v.name in known}
        coords = dict(compiled.coords or {})
        coords.update({name: pd.Index(values) for name, values in model.coords.items()
                       if name in coords and values is not None})
        compiled = dataclasses.replace(compiled.with_data(**data), _coords=coords)
    _COMPILED_MODELS[key] = compiled
    while len(_COMPILED_MODELS) > COMPILED_MODELS_KEPT:
        _COMPILED_MODELS.pop(next(iter(_COMPILED_MODELS)))
    return compiled


def _n_coordinates(model: pm.Model, shapes: dict | None = None) -> int:
    shapes = model.eval_rv_shapes() if shapes is None else shapes
    return int(sum(np.prod(shapes[v.name], dtype=int) for v in model.value_vars))


def raveled(model: pm.Model, point: dict) -> np.ndarray:
    """A point of ``model``'s value variables as one vector, in their order (that of
    :func:`bayesmix.starts.find_map` and of nutpie's coordinates of an unwhitened model;
    a whitened one orders them by :func:`whitened_order`)."""
    return np.concatenate([np.asarray(point[v.name], dtype="float64").ravel() for v in model.value_vars])


def whitened_order(model: pm.Model, shapes: dict | None = None) -> tuple[np.ndarray, int]:
    """Permutation of the raveled coordinates that puts the whitened block first (every
    value variable but the observation model's standard-normal latents,
    :data:`bayesmix.observation.LATENT`), and the block's size."""
    shapes = model.eval_rv_shapes() if shapes is None else shapes
    whitened, latent, offset = [], [], 0
    for value in model.value_vars:
        count = int(np.prod(shapes[value.name], dtype=int))
        (latent if value.name in observation.LATENT else whitened).extend(range(offset, offset + count))
        offset += count
    return np.array(whitened + latent, dtype=int), len(whitened)


def preconditioned_model(model: pm.Model) -> pm.Model:
    """``model`` sampled in whitened coordinates: an affine change of variables.

    The new model's only free variable is ``precond_z``; the original unconstrained
    point, with its coordinates ordered by :func:`whitened_order`, is
    ``u = precond_mean + [precond_chol @ z_w, z_l]`` (both shared data): the law's
    parameters and the observation model's hyperparameters (``z_w``) are whitened
    densely, the observation model's standard-normal latents (``z_l``: run offsets,
    mixture effects, the discrepancy's white noise; hundreds of them, each a priori
    N(0, 1) already) only shifted. The log density is ``model``'s at ``u`` (the affine
    map's Jacobian is a constant). Every free variable and deterministic of ``model`` is
    recorded as a deterministic under its own name and dims, so the draws read as those
    of ``model``. With the mean at the MAP and ``chol`` a square root of the inverse
    Hessian there (:func:`laplace_factor`), the posterior seen by the sampler is close to
    a standard normal, and NUTS starts its adaptation from a good mass matrix instead of
    learning the correlations first; with ``mean = 0`` and ``chol = I`` it is ``model``
    itself.
    """
    from pytensor.graph.replace import graph_replace

    shapes = model.eval_rv_shapes()
    size = _n_coordinates(model, shapes)
    order, block = whitened_order(model, shapes)
    with pm.Model(coords=model.coords) as pre:
        for var in model.data_vars:
            pre.register_data_var(var, dims=model.named_vars_to_dims.get(var.name))
        mean = pm.Data(PRECOND_MEAN, np.zeros(size))
        chol = pm.Data(PRECOND_CHOL, np.eye(block))
        z = pm.Flat(PRECOND_Z, shape=size)
        ordered = mean + pt.concatenate([pt.dot(chol, z[:block]), z[block:]])
        u = ordered[np.argsort(order)]
        replace, offset = {}, 0
        for value in model.value_vars:
            shape = [int(n) for n in shapes[value.name]]
            count = int(np.prod(shape, dtype=int))
            replace[value] = u[offset:offset + count].reshape(shape)
            offset += count
        pm.Potential("log_density", graph_replace(model.logp(), replace, strict=False))
        recorded = list(model.free_RVs) + list(model.deterministics)
        for var, expr in zip(recorded, model.replace_rvs_by_values(recorded)):
            pm.Deterministic(var.name, graph_replace(expr, replace, strict=False),
                             dims=model.named_vars_to_dims.get(var.name))
    return pre


def laplace_factor(logp_dlogp, x: np.ndarray, step: float = 1e-4) -> np.ndarray | None:
    """A square root ``L`` (``L @ L.T = H^-1``) of the inverse of the negative Hessian of
    the log density at ``x``, or None where the Hessian is not finite.

    The Hessian comes from central differences of the gradient (``2 d`` evaluations);
    eigenvalues are floored at ``1e-8`` of the largest (at least ``1e-6``), so flat or
    slightly non-convex directions get a wide, finite scale.
    """
    size = len(x)
    hessian = np.empty((size, size))
    for i in range(size):
        offset = np.zeros(size)
        offset[i] = step
        hessian[i] = -(logp_dlogp(x + offset)[1] - logp_dlogp(x - offset)[1]) / (2 * step)
    if not np.all(np.isfinite(hessian)):
        return None
    eigenvalues, vectors = np.linalg.eigh((hessian + hessian.T) / 2)
    absolute = np.abs(eigenvalues)
    return vectors / np.sqrt(np.maximum(absolute, max(absolute.max() * 1e-8, 1e-6)))


def compiled_logp_dlogp(compiled):
    """``x -> (logp, gradient)`` of a nutpie-compiled model (its numba C callback)."""
    import ctypes

    function = compiled.compiled_logp_func.ctypes
    n_dim = compiled.n_dim
    double_p = ctypes.POINTER(ctypes.c_double)

    def logp_dlogp(x):
        x = np.ascontiguousarray(x, dtype="float64")
        grad = np.zeros(n_dim)
        logp = np.zeros(())
        # user_data points into compiled.shared_data: the closure keeps both alive.
        code = function(n_dim, x.ctypes.data_as(double_p), grad.ctypes.data_as(double_p),
                        logp.ctypes.data_as(double_p), compiled.user_data.ctypes.data)
        # 3, 4: a non-finite gradient or density; 1: an error raised inside, e.g. numba's
        # ZeroDivisionError where an exp underflowed to 0 far in the tails (PyTensor's C
        # code gives inf or nan there). All mean the same to the search: no usable point.
        if code != 0:
            return -np.inf, np.zeros(n_dim)
        return float(logp), grad

    return logp_dlogp


def value_order_logp_dlogp(compiled, model: pm.Model, precondition: bool):
    """``x -> (logp, gradient)`` of a nutpie-compiled model of ``model`` on a point raveled
    in the order of ``model.value_vars`` (:func:`raveled`), which :func:`bayesmix.starts.find_map`
    searches in. A preconditioned model (:func:`preconditioned_model`, still at mean 0 and
    chol I) takes its coordinates in :func:`whitened_order` instead: the log density is
    evaluated there and its gradient put back in the value variables' order."""
    logp_dlogp = compiled_logp_dlogp(compiled)
    if not precondition:
        return logp_dlogp
    order, _ = whitened_order(model)

    def in_value_order(x):
        value, grad = logp_dlogp(np.asarray(x, dtype="float64")[order])
        reordered = np.empty_like(grad)
        reordered[order] = grad
        return value, reordered

    return in_value_order


def _preconditions(law: Law, model: pm.Model, settings: FitSettings) -> bool:
    """Whether the fit samples in whitened coordinates (:func:`preconditioned_model`):
    ``settings.precondition`` "on", or "auto" for a law that asks for it
    (:attr:`~bayesmix.laws.Law.whitened_sampling`) with at most
    :data:`PRECONDITION_MAX_DIM` coordinates. Asked only by the nutpie backend
    (:class:`bayesmix.samplers.NutpieBackend`): the other samplers never whiten."""
    if settings.precondition not in ("auto", "on", "off"):
        raise UsageError(f"precondition must be 'auto', 'on' or 'off', got '{settings.precondition}'")
    if settings.precondition == "off":
        return False
    if settings.precondition == "on":
        return True
    return law.whitened_sampling and whitened_order(model)[1] <= PRECONDITION_MAX_DIM


def transformed_point(model: pm.Model, init: dict) -> dict:
    """Initial values by free RV name as a point of ``model``'s value variables."""
    from pymc.initial_point import make_initial_point_fn

    return make_initial_point_fn(model=model, overrides=init, jitter_rvs=set(), return_transformed=True)(0)


def _whitened_at(compiled, model: pm.Model, point: dict):
    """The compiled preconditioned model centred at ``point`` (by value variable),
    its whitened block (:func:`whitened_order`) whitened by the Laplace factor there."""
    order, block = whitened_order(model)
    return _whitened_at_ordered(compiled, raveled(model, point)[order], block)


def _whitened_at_ordered(compiled, centre: np.ndarray, block: int):
    """The compiled preconditioned model centred at ``centre`` (raveled coordinates in
    :func:`whitened_order`), its first ``block`` coordinates whitened by the Laplace
    factor there."""
    logp = compiled_logp_dlogp(compiled.with_data(**{PRECOND_MEAN: centre, PRECOND_CHOL: np.eye(block)}))

    def logp_block(x):
        # The preconditioned model at mean = centre and chol = I: z is the offset from
        # the centre; only the whitened block moves.
        z = np.zeros(len(centre))
        z[:block] = x - centre[:block]
        value, grad = logp(z)
        return value, grad[:block]

    factor = laplace_factor(logp_block, centre[:block])
    if factor is None:
        factor = np.eye(block)
    return compiled.with_data(**{PRECOND_MEAN: centre, PRECOND_CHOL: factor})


#: Tries for a start inside the Laplace approximation's typical set, each drawn at 0.7
#: times the previous spread.
START_TRIES = 12
#: A start is kept when its log density is within this many standard deviations of
#: where a draw of the Laplace approximation would lie (``chi^2_d / 2`` below the MAP).
START_TAIL_SDS = 4.0


def dispersed_starts(compiled, centre: np.ndarray, factor: np.ndarray, seed: int):
    """``compiled`` whose chains start at distinct points ``centre + factor @ z``,
    ``z ~ N(0, I)``: draws of the Laplace approximation at the MAP, one per chain (nutpie
    passes each chain its own seed), so that chains that agree at the end (R-hat) agree
    because they mixed, not because they started at one point.

    A draw whose log density falls below the approximation's typical set (more than
    ``d/2 + START_TAIL_SDS sqrt(d/2)`` below the centre's: in hundreds of dimensions a
    wider start lands in the far tails, where a chain of the SlimPajama fit settled on a
    noise-explains-all plateau and diverged on every draw) or is not finite is drawn again
    closer to the centre.
    """

    logp = compiled_logp_dlogp(compiled)
    size = len(centre)
    floor = logp(centre)[0] - (size / 2 + START_TAIL_SDS * np.sqrt(size / 2))

    def start(chain_seed):
        rng = pilot.chain_rng(seed, chain_seed)
        for attempt in range(START_TRIES):
            x = centre + factor @ (0.7**attempt * rng.standard_normal(size))
            value = logp(x)[0]
            if np.isfinite(value) and value >= floor:
                return x
        return centre.copy()

    return dataclasses.replace(compiled, initial_point_func=start)


def sampler_threads(settings: FitSettings, chains: int) -> int:
    """nutpie's sampler threads: ``settings.cores`` where given, else one per chain.

    nutpie runs at most that many chains at once, each to its last draw, before it
    starts the next. With fewer threads than chains, a run that may go on past the
    requested draws (:func:`sample_nutpie_until_mixed`) drew all of its first chains'
    extra draws before the last chains began, and the first checkpoint waited for them:
    on SlimPajama 7 the kept run's sampling took 232 s against 125 s for the same 1000
    draws per chain without the extension. With one thread per chain every chain reaches
    a checkpoint at about the same time; on fewer cores than chains the threads share
    them at no loss (4 chains on 2 cores: 6150 gradients/s against 6110 with 2 threads).
    """
    return int(settings.cores or chains)


def mass_matrix(settings: FitSettings) -> str:
    """nutpie's mass-matrix adaptation for ``settings``: the one it names, where
    :meth:`FitSettings.for_law` filled in the law's; still "auto" (settings not filled in
    for a law), the default law's (:attr:`bayesmix.laws.Law.mass_matrix`)."""
    return Law.mass_matrix if settings.mass_matrix == "auto" else settings.mass_matrix


def max_tree_depth(settings: FitSettings) -> int:
    """nutpie's largest tree depth for ``settings``: the one it names, where
    :meth:`FitSettings.for_law` filled in the law's; still None (settings not filled in
    for a law), the default law's (:attr:`bayesmix.laws.Law.max_tree_depth`)."""
    return Law.max_tree_depth if settings.max_tree_depth is None else int(settings.max_tree_depth)


def _sample_nutpie(compiled, settings: FitSettings, sample_kwargs: dict, **extra):
    """NUTS with nutpie: numba-compiled gradients and a low-rank modified mass matrix
    (or the diagonal one a law declares, :func:`mass_matrix`), trees capped at
    :func:`max_tree_depth` unless ``extra`` names its own ``maxdepth`` (the pilot).

    The capacity laws have strongly correlated amplitudes, exponents and irreducible
    losses; nutpie's low-rank mass-matrix adaptation captures those correlations and
    cuts the gradient evaluations per draw by an order of magnitude against a diagonal
    mass matrix (measured: about 16 against 260 on the demo design). The chains' starts
    are set on ``compiled`` (:func:`nutpie_starts`).
    """
    import nutpie

    extra.setdefault("maxdepth", max_tree_depth(settings))
    return nutpie.sample(
        compiled, draws=sample_kwargs["draws"], tune=sample_kwargs["tune"], chains=sample_kwargs["chains"],
        cores=sampler_threads(settings, sample_kwargs["chains"]), seed=sample_kwargs["random_seed"],
        progress_bar=sample_kwargs["progressbar"], adaptation=mass_matrix(settings),
        target_accept=settings.target_accept, save_warmup=False, **extra,
    )


def sample_nutpie_until_mixed(compiled, settings: FitSettings, sample_kwargs: dict, law: Law):
    """nutpie's draws, run on past ``settings.draws`` while the chains only mix slowly
    (:mod:`bayesmix.extension`): the trace cut at the first checkpoint where the gate's
    R-hat holds or more draws cannot help, or at the last. Returns the trace and its
    draws per chain."""
    stops = extension.checkpoints(settings.draws, settings.extend_draws)
    if len(stops) == 1:
        return _sample_nutpie(compiled, settings, sample_kwargs), stops[0]
    sampler = _sample_nutpie(compiled, settings, {**sample_kwargs, "draws": stops[-1]}, blocking=False)
    try:
        for stop in stops[:-1]:
            idata = sampler.inspect()
            while not _finished(sampler) and _az.completed_draws(idata) < stop:
                time.sleep(extension.POLL_SECONDS)
                idata = sampler.inspect()
            if _az.completed_draws(idata) < stop:
                break  # the sampler stopped early (an error): wait() reports it
            idata = _az.first_draws(idata, stop)
            main_mode, _ = without_minor_mode_chains(idata)
            if not extension.more_draws_can_help(diagnose(main_mode, law), MAX_RHAT, stop, stops[-1]):
                sampler.cancel()
                return idata, stop
        return sampler.wait(), stops[-1]
    except BaseException:
        with contextlib.suppress(Exception):
            sampler.cancel()  # no sampler threads left running after an interrupt
        raise


def _finished(sampler) -> bool:
    """Whether nutpie's background sampler has stopped (0.16 raises TimeoutError while it runs)."""
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


#: The pilot's main mode lies away from the whitening's centre when its draws' whitened
#: coordinates have a mean square above this; draws of the Laplace approximation at the
#: centre, where the whitening is right, have about 1.
RECENTRE_MEAN_SQUARE = 4.0
#: L-BFGS iterations of the search for the main mode's optimum from its best pilot draw.
RECENTRE_MAXITER = 3000


def _shared_value(compiled, name: str) -> np.ndarray:
    """The value of the shared variable ``name`` of a nutpie-compiled model."""
    for var, key in compiled.shared_var_keys.items():
        if var.name == name:
            return np.asarray(compiled.shared_data[key])
    raise KeyError(name)


def negative_logp(logp_dlogp, point: np.ndarray, free: np.ndarray):
    """``y -> (-logp, -gradient)`` over the coordinates ``free`` of ``point`` (the others
    held), with a large finite value where the density is not finite: the objective of
    the L-BFGS searches (MAP, re-centring, probes)."""
    def negative(y):
        x = point.copy()
        x[free] = y
        logp, grad = logp_dlogp(x)
        if not np.isfinite(logp):
            return 1e30, np.zeros_like(y)
        return -float(logp), -np.asarray(grad, dtype=float)[free]

    return negative


def _local_optimum(compiled, start: np.ndarray) -> np.ndarray:
    """The L-BFGS maximum of ``compiled``'s log density nearest ``start`` (``start``
    itself where the search ends at a non-finite or lower density)."""
    from scipy import optimize

    logp_dlogp = compiled_logp_dlogp(compiled)
    negative = negative_logp(logp_dlogp, start, np.ones(len(start), dtype=bool))
    with np.errstate(all="ignore"):
        result = optimize.minimize(negative, start, jac=True, method="L-BFGS-B",
                                   options={"maxiter": RECENTRE_MAXITER})
    return result.x if np.isfinite(result.fun) and -result.fun >= logp_dlogp(start)[0] else start


def _best_draw(compiled, draws: np.ndarray) -> np.ndarray:
    """The draw (a row of ``draws``, ``compiled``'s coordinates) of highest log density."""
    logp_dlogp = compiled_logp_dlogp(compiled)
    return draws[int(np.argmax([logp_dlogp(x)[0] for x in draws]))]


def _unwhitened(compiled, block: int, z: np.ndarray) -> np.ndarray:
    """``(n, n_dim)`` whitened coordinates of ``compiled`` as raveled coordinates in
    :func:`whitened_order`: ``mean + [chol @ z_w, z_l]``."""
    mean, chol = _shared_value(compiled, PRECOND_MEAN), _shared_value(compiled, PRECOND_CHOL)
    return mean + np.concatenate([z[:, :block] @ chol.T, z[:, block:]], axis=1)


def recentred_at_main_mode(compiled, block: int, draws: np.ndarray):
    """A whitened model re-centred on the pilot's main mode, where the pilot found its
    draws far from the whitening's centre; and the draws in the new coordinates.

    The whitening is centred at the best MAP optimum, with the Laplace factor there
    (:func:`nutpie_starts`); the highest optimum need not sit where the mass is (SlimPajama
    7, seed 1: the MAP had the capacity floor ``H`` near 0.007 ``N_ref``, the main mode,
    found by seeds 0 and 2 and 11-17 nats higher in typical log density, near 0.06). From
    draws of a mode that the map stretches, the kept run's early adaptation left it for a
    minor mode in 3 of 4 chains. So when the pilot's main-mode draws sit away from the
    centre (mean square of their whitened block above :data:`RECENTRE_MEAN_SQUARE`), the
    model is whitened again at the local optimum reached from the best of them.

    Parameters
    ----------
    compiled : nutpie compiled preconditioned model (:func:`preconditioned_model`)
    block : int
        Size of its whitened block (:func:`whitened_order`).
    draws : ndarray (n, n_dim)
        The pilot's main-mode draws in ``compiled``'s coordinates.

    Returns
    -------
    (compiled, draws, moved) : the (re-)whitened model, the draws in its coordinates,
    and whether it moved.
    """
    if len(draws) == 0 or np.mean(np.sum(draws[:, :block] ** 2, axis=1)) / block <= RECENTRE_MEAN_SQUARE:
        return compiled, draws, False
    best = _best_draw(compiled, draws)
    centre = _unwhitened(compiled, block, _local_optimum(compiled, best)[None, :])[0]
    moved = _whitened_at_ordered(compiled, centre, block)
    offset = _unwhitened(compiled, block, draws) - centre
    new_chol = _shared_value(moved, PRECOND_CHOL)
    new_draws = np.concatenate([np.linalg.solve(new_chol, offset[:, :block].T).T, offset[:, block:]], axis=1)
    return moved, new_draws, True


def probe_position(model: pm.Model, name: str | None) -> int | None:
    """Where the unconstrained coordinate of the scalar parameter ``name`` sits in the
    preconditioned model's coordinates (:func:`whitened_order`), or None where ``name``
    is None or not a scalar free variable of ``model``."""
    if name is None or name not in model.named_vars or model[name] not in model.free_RVs:
        return None
    shapes = model.eval_rv_shapes()
    value_name = model.rvs_to_values[model[name]].name
    if int(np.prod(shapes[value_name], dtype=int)) != 1:
        return None
    offset = 0
    for value in model.value_vars:
        if value.name == value_name:
            break
        offset += int(np.prod(shapes[value.name], dtype=int))
    order, _ = whitened_order(model, shapes)
    return int(np.flatnonzero(order == offset)[0])


#: Spread of the probe chains' starts around a probe, in whitened units.
PROBE_START_SPREAD = 0.1


def _probe_start(compiled, block: int, centre: np.ndarray, position: int, step: float) -> np.ndarray | None:
    """The whitened coordinates of ``centre`` (raveled, :func:`whitened_order`) with the
    coordinate at ``position`` moved by ``step`` and the others at their L-BFGS optimum
    given it; None where that search ends at a non-finite density."""
    from scipy import optimize

    mean, chol = _shared_value(compiled, PRECOND_MEAN), _shared_value(compiled, PRECOND_CHOL)
    # At mean = centre and chol = I the model's coordinates are offsets from the centre.
    logp_dlogp = compiled_logp_dlogp(compiled.with_data(**{PRECOND_MEAN: centre, PRECOND_CHOL: np.eye(block)}))
    offset = np.zeros(len(centre))
    offset[position] = step
    free = np.ones(len(centre), dtype=bool)
    free[position] = False
    with np.errstate(all="ignore"):
        result = optimize.minimize(negative_logp(logp_dlogp, offset, free), offset[free], jac=True, method="L-BFGS-B",
                                   options={"maxiter": RECENTRE_MAXITER})
    if not np.isfinite(result.fun) or result.fun >= 1e30:
        return None
    offset[free] = result.x
    shift = centre + offset - mean
    return np.concatenate([np.linalg.solve(chol, shift[:block]), shift[block:]])


def probe_chains(compiled, block: int, position: int, main: np.ndarray, settings: FitSettings, run_pilot_chains,
                 first_stream: int = 1):
    """The pilot's probes along one parameter (:mod:`bayesmix.pilot`): from the best of
    the main mode's draws ``main`` (whitened), the parameter's coordinate (``position``)
    moved by each of :data:`bayesmix.pilot.PROBE_STEPS` and the rest re-optimised, and
    :data:`~bayesmix.pilot.PROBE_CHAINS` pilot chains run from each probe by
    ``run_pilot_chains(compiled, chains, stream)`` (streams from ``first_stream`` on, one
    per probe, so that each round's chains draw their own numbers).

    Returns their draws ``(chains, draws, n_dim)`` and log densities ``(chains, draws)``,
    empty where no probe had a finite start. A probe chain that went back to the main
    mode is kept too: it is a chain of that mode adapted from a good start, where the
    pilot's own chains can still be far below their mode's typical log density
    (SlimPajama 7, seed 0: 90 nats, measured while the MAP search still returned a
    scrambled start, before 3dbb222), and the kept run may start from its draws."""
    best = _best_draw(compiled, main)
    centre = _unwhitened(compiled, block, best[None, :])[0]
    positions, logps = [], []
    for stream, step in enumerate(pilot.PROBE_STEPS, start=first_stream):
        with one_blas_thread():
            start = _probe_start(compiled, block, centre, position, step)
        if start is None:
            continue
        # Each chain a little off the probe (a tenth of the whitened scale): at the
        # conditional optimum a gradient can be exactly 0, which nutpie refuses.
        starts = dispersed_starts(compiled, start, PROBE_START_SPREAD * np.eye(len(start)), settings.seed + stream)
        idata = run_pilot_chains(starts, pilot.PROBE_CHAINS, stream)
        positions.append(_az.chain_stat(idata, "unconstrained_draw"))
        logps.append(chain_logp(idata))
    if not positions:
        return np.empty((0, 0, len(best))), np.empty((0, 0))
    return np.concatenate(positions), np.concatenate(logps)


def run_pilot(compiled, settings: FitSettings, progressbar: bool, whitened_block: int | None = None,
              probe: int | None = None):
    """The kept run's compiled model, its chains started in the main mode found by a
    short pilot from ``compiled``'s starts (:mod:`bayesmix.pilot`), and the pilot's
    report. With ``whitened_block`` (``compiled`` is preconditioned, the block's size)
    the model is whitened again on the main mode where the pilot found it away from the
    whitening's centre (:func:`recentred_at_main_mode`), and with ``probe`` (a coordinate's
    position, :func:`probe_position`) probe chains along that coordinate join the pilot's
    (:func:`probe_chains`)."""
    tune, draws = pilot.pilot_lengths(settings.tune)
    pilot_settings = dataclasses.replace(settings, target_accept=pilot.pilot_target_accept(settings.target_accept))

    def run_pilot_chains(model, chains: int, stream: int):
        seed = int(np.random.default_rng([settings.seed, 7, stream] if stream else [settings.seed, 7]).integers(2**31))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            return _sample_nutpie(model, pilot_settings, dict(draws=draws, tune=tune, chains=chains, random_seed=seed,
                                                              progressbar=progressbar),
                                  store_unconstrained=True, maxdepth=pilot.PILOT_MAXDEPTH)

    idata = run_pilot_chains(compiled, settings.chains, 0)
    positions, logp = _az.chain_stat(idata, "unconstrained_draw"), chain_logp(idata)
    probes = 0
    for probe_round in range(pilot.PROBE_ROUNDS if probe is not None and whitened_block is not None else 0):
        main, report = pilot.main_mode_draws(positions, logp, probe_chains=probes)
        # A further round only from a main mode that the last round's probe chains set.
        if not len(main) or (probe_round and not report.started_from_probes):
            break
        first_stream = 1 + probe_round * len(pilot.PROBE_STEPS)
        probe_positions, probe_logp = probe_chains(compiled, whitened_block, probe, main, settings,
                                                   run_pilot_chains, first_stream=first_stream)
        if not len(probe_logp) or probe_logp.shape[1] != logp.shape[1]:
            break
        positions = np.concatenate([positions, probe_positions])
        logp = np.concatenate([logp, probe_logp])
        probes += len(probe_logp)
    main, report = pilot.main_mode_draws(positions, logp, probe_chains=probes)
    if whitened_block is not None:
        with one_blas_thread():
            compiled, main, moved = recentred_at_main_mode(compiled, whitened_block, main)
        report = dataclasses.replace(report, recentred=moved)
    return pilot.starts_from(compiled, main, settings.seed), report


def compile_for_nutpie(law: Law, model: pm.Model, settings: FitSettings):
    """nutpie's compiled model (whitened where :func:`_preconditions` says so) and whether
    it is whitened. The nutpie backend (:class:`bayesmix.samplers.NutpieBackend`) calls it
    once it has checked that nutpie is installed."""
    precondition = _preconditions(law, model, settings)
    # A preconditioned model starts with mean 0 and chol I: the MAP search sees the
    # original coordinates.
    return compiled_nutpie_model(preconditioned_model(model) if precondition else model), precondition


def nutpie_starts(compiled, model: pm.Model, point: dict, precondition: bool, seed: int):
    """The compiled model with dispersed chain starts around ``point``: in whitened
    coordinates when preconditioned (centred at ``point``), else along the Laplace factor
    at ``point`` (a small isotropic spread where the Hessian is not finite)."""
    if precondition:
        compiled = _whitened_at(compiled, model, point)
        size = compiled.n_dim
        return dispersed_starts(compiled, np.zeros(size), np.eye(size), seed)
    centre = raveled(model, point)
    factor = laplace_factor(compiled_logp_dlogp(compiled), centre)
    if factor is None:
        factor = 0.1 * np.eye(len(centre))
    return dispersed_starts(compiled, centre, factor, seed)


