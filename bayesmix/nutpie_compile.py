"""nutpie's compiled model, with C callbacks that numba finds in its disk cache.

nutpie's Rust sampler calls the log density and the draws' expansion through two numba
``cfunc`` callbacks around PyTensor's numba functions. PyTensor caches its own functions
on disk, but nutpie builds each callback as a closure over names drawn at random in every
process (its shared data's keys) and over the data themselves, so numba cannot cache it:
every new process paid 10-15 s of LLVM work for the default model on Pile 17, most of a
warm fit's compile time, and a comparison paid it once per law and worker.

:func:`compile_pymc_model` builds the same callbacks as source code without a closure,
registered under a key made of PyTensor's cache key of the function they wrap, the
layout of the data record and the versions of what they were compiled with; numba's
cache then finds them in a new process. The data reach the callbacks as in nutpie:
through the user-data record (their addresses and shapes), so a callback knows only
their dtypes and ranks and serves any table of the same model, as nutpie's
``with_data`` expects.

Where PyTensor cannot cache a function (no key), or nutpie's internals are not the ones
this module was written against (nutpie 0.16), :func:`compile_pymc_model` falls back to
:func:`nutpie.compile_pymc_model`.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

#: Version of the callbacks' source below: bump it when the source changes.
CALLBACK_VERSION = 1

_LOGP_SOURCE = """
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        logp_val, grad = extract(x, user_data_)
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND_SOURCE = """
def expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        (values,) = extract(x, user_data_)
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def compile_pymc_model(model):
    """``nutpie.compile_pymc_model(model, jitter_rvs=set())`` with callbacks numba caches.

    Parameters
    ----------
    model : pymc.Model

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        The same object nutpie returns (its ``with_data`` swaps in new data), whose
        callbacks come from numba's disk cache where an earlier process compiled them.
    """
    import nutpie

    try:
        parts = _nutpie_parts()
    except (ImportError, AttributeError):
        parts = None
    if parts is not None:
        compiled = _compile_cached(model, parts)
        if compiled is not None:
            return compiled
    return nutpie.compile_pymc_model(model, jitter_rvs=set())


def _nutpie_parts() -> dict:
    """The pieces of nutpie 0.16's numba compilation this module builds on (an
    AttributeError where a version lacks one)."""
    from nutpie import compile_pymc as nutpie_pymc

    names = ("_make_functions", "make_user_data", "make_extraction_fn", "_prepare_dims_and_coords",
             "_wrap_with_lock", "CompiledPyMCModel")
    return {name: getattr(nutpie_pymc, name) for name in names}


def _compile_cached(model, parts: dict):
    """nutpie's numba compilation (``_compile_pymc_model_numba``) with deterministic data
    keys and closure-free callbacks; None where PyTensor gives no cache key."""
    from pymc.initial_point import make_initial_point_fn
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    initial_point_fn = parts["_wrap_with_lock"](make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(), return_transformed=True))
    n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_func, shape_info, reparameterized = (
        parts["_make_functions"](model, mode="NUMBA", compute_grad=True, join_expanded=True,
                                 pymc_initial_point_fn=initial_point_fn, var_names=None))
    logp_fn, expand_fn = logp_fn_pt.vm.jit_fn, expand_fn_pt.vm.jit_fn
    graph_keys = [CACHED_SRC_FUNCTIONS.get(getattr(fn, "py_func", None)) for fn in (logp_fn, expand_fn)]
    if any(key is None for key in graph_keys):
        return None

    shared_data, shared_var_keys = {}, {}
    for var in [*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]:
        if var in shared_var_keys:
            continue
        key = f"shared_{len(shared_var_keys)}"
        shared_data[key] = np.array(var.get_value(), order="C", copy=True)
        shared_data[key].flags.writeable = False
        shared_var_keys[var] = key
    user_data = parts["make_user_data"](shared_var_keys, shared_data)
    # The callbacks take the data's dtype and rank from these, their values from the record.
    templates = {key: _template(value) for key, value in shared_data.items()}
    layout = repr([(key, str(value.dtype), value.ndim) for key, value in shared_data.items()])

    def callback(source, name, signature, fn, fn_pt, graph_key, constants):
        keys = [shared_var_keys[var] for var in fn_pt.get_shared()]
        extract = parts["make_extraction_fn"](fn, templates, keys, user_data.dtype)
        key = _callback_key(graph_key, layout, keys, constants)
        return _cached_cfunc(source, name, {"extract": extract, **constants}, key, signature)

    logp_cfunc = callback(_LOGP_SOURCE, "logp_callback", _logp_signature(), logp_fn, logp_fn_pt,
                          graph_keys[0], {"N_DIM": int(n_dim)})
    expand_cfunc = callback(_EXPAND_SOURCE, "expand_callback", _expand_signature(), expand_fn, expand_fn_pt,
                            graph_keys[1], {"N_DIM": int(n_dim), "N_EXPANDED": int(n_expanded)})
    dims, coords = parts["_prepare_dims_and_coords"](model, shape_info, reparameterized)
    return parts["CompiledPyMCModel"](
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_cfunc, compiled_expand_func=expand_cfunc,
        initial_point_func=initial_point_func, shared_data=shared_data,
        shared_var_keys=shared_var_keys, user_data=user_data, n_expanded=n_expanded,
        shape_info=shape_info, logp_func=logp_fn_pt, expand_func=expand_fn_pt,
        reparameterized_names=reparameterized)


def _template(value: np.ndarray) -> np.ndarray:
    """An empty read-only array of ``value``'s dtype and rank: numba types the data by it,
    and embeds it in the compiled code, which a table's data must not be."""
    template = np.zeros((0,) * value.ndim, dtype=value.dtype)  # rank 0: shape ()
    template.flags.writeable = False
    return template


def _callback_key(graph_key: str, layout: str, keys: list[str], constants: dict) -> str:
    """The disk-cache key of one callback: everything its compiled code depends on."""
    import nutpie
    import numba

    text = repr((CALLBACK_VERSION, graph_key, layout, keys, sorted(constants.items()),
                 nutpie.__version__, numba.__version__))
    return hashlib.sha256(text.encode()).hexdigest()


def _logp_signature():
    """The C signature nutpie's sampler calls the log density by (nutpie 0.16's
    ``_make_c_logp_func``): dimension, position, gradient out, log density out, user data."""
    from numba import types

    return types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                       types.CPointer(types.double), types.voidptr)


def _expand_signature():
    """The C signature of the draws' expansion (nutpie 0.16's ``_make_c_expand_func``):
    dimension, expanded length, position, values out, user data."""
    from numba import types

    return types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                       types.CPointer(types.double), types.voidptr)


def _cached_cfunc(source: str, name: str, env: dict, key: str, signature):
    """``numba.cfunc(signature, cache=True)`` of the function ``name`` in ``source``, its
    globals ``env``, cached under ``key`` (PyTensor's cache locator: its numba cache
    folder, the key as the file's disambiguator)."""
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    # numba rebuilds a cached function's environment by importing its globals' module.
    function = compile_numba_function_src(source, name, cache_key=key,
                                          global_env={"__name__": __name__, "np": np, "numba": numba, **env})
    with warnings.catch_warnings():
        # Where numba cannot cache after all (a dynamic global), it says so; the callback works.
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(signature, cache=True)(function)
