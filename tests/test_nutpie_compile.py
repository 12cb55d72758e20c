"""nutpie's compiled model with callbacks numba caches (bayesmix.nutpie_compile)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("nutpie")

# Built the same way here and in a new process: a regression with data of two ranks, a
# positive parameter (a transformed coordinate) and a deterministic (the expansion).
MODEL_SOURCE = textwrap.dedent("""
    import numpy as np
    import pymc as pm

    def regression(x, y):
        with pm.Model() as model:
            xs = pm.Data("xs", x)
            ys = pm.Data("ys", y)
            beta = pm.Normal("beta", 0.0, 1.0, shape=x.shape[1])
            sigma = pm.LogNormal("sigma", -1.0, 0.5)
            pm.Deterministic("scale", 2.0 * sigma)
            pm.Normal("obs", xs @ beta, sigma, observed=ys)
        return model

    def data(n, seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 3))
        return x, x @ np.array([0.5, -1.0, 2.0]) + 0.3 * rng.normal(size=n)
""")
_namespace: dict = {}
exec(MODEL_SOURCE, _namespace)
regression, data = _namespace["regression"], _namespace["data"]


def _pointer(array):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


def logp_and_gradient(compiled, x):
    """The log density and its gradient through the compiled C callback, as nutpie calls it."""
    x = np.ascontiguousarray(x, dtype=float)
    gradient, logp = np.zeros(compiled.n_dim), np.zeros(())
    code = compiled.compiled_logp_func.ctypes(compiled.n_dim, _pointer(x), _pointer(gradient), _pointer(logp),
                                              ctypes.c_void_p(compiled.user_data.ctypes.data))
    assert code == 0
    return float(logp), gradient


def expanded(compiled, x):
    x = np.ascontiguousarray(x, dtype=float)
    out = np.zeros(compiled.n_expanded)
    code = compiled.compiled_expand_func.ctypes(compiled.n_dim, compiled.n_expanded, _pointer(x), _pointer(out),
                                                ctypes.c_void_p(compiled.user_data.ctypes.data))
    assert code == 0
    return out


def test_the_cached_callbacks_compute_what_nutpies_own_compute():
    """Log density, gradient and expansion equal nutpie's own compilation's, bit for bit,
    at random points; and after ``with_data`` those of a fresh compilation on the new
    data (the callbacks read the data from the record, not from the compiled code)."""
    import nutpie

    from bayesmix.nutpie_compile import compile_pymc_model

    first, second = data(30, 0), data(45, 1)
    cached = compile_pymc_model(regression(*first))
    reference = nutpie.compile_pymc_model(regression(*first), jitter_rvs=set())
    assert cached.n_dim == reference.n_dim == 4
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.normal(size=cached.n_dim)
        logp, gradient = logp_and_gradient(cached, x)
        expected_logp, expected_gradient = logp_and_gradient(reference, x)
        assert logp == expected_logp
        np.testing.assert_array_equal(gradient, expected_gradient)
        np.testing.assert_array_equal(expanded(cached, x), expanded(reference, x))

    swapped = cached.with_data(xs=second[0], ys=second[1])
    fresh = nutpie.compile_pymc_model(regression(*second), jitter_rvs=set())
    x = rng.normal(size=cached.n_dim)
    assert logp_and_gradient(swapped, x)[0] == logp_and_gradient(fresh, x)[0]
    assert logp_and_gradient(swapped, x)[0] != logp_and_gradient(cached, x)[0]


def test_a_new_process_finds_the_callbacks_in_numbas_cache():
    """Compiled here (or earlier), the same model's callbacks load from the disk cache in
    a new process, also for other data of the same shapes' ranks."""
    from bayesmix.nutpie_compile import compile_pymc_model

    compile_pymc_model(regression(*data(30, 0)))
    script = MODEL_SOURCE + textwrap.dedent("""
        from bayesmix.nutpie_compile import compile_pymc_model
        compiled = compile_pymc_model(regression(*data(52, 7)))
        print(compiled.compiled_logp_func.cache_hits, compiled.compiled_expand_func.cache_hits)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["1", "1"]


def test_without_a_cache_key_nutpies_own_compilation_is_used(monkeypatch):
    """Where PyTensor cannot cache the wrapped function, or nutpie lacks a piece this
    module uses, the model is compiled by nutpie itself."""
    import nutpie

    from bayesmix import nutpie_compile

    calls = []
    original = nutpie.compile_pymc_model
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda *a, **k: calls.append(k) or original(*a, **k))
    monkeypatch.setattr(nutpie_compile, "_compile_cached", lambda model, parts: None)
    model = regression(*data(30, 0))
    compiled = nutpie_compile.compile_pymc_model(model)
    assert calls == [{"jitter_rvs": set()}]
    assert compiled.compiled_logp_func.cache_hits == 0  # nutpie's callback: never cached

    def missing():
        raise AttributeError("no _make_functions in this nutpie")

    monkeypatch.setattr(nutpie_compile, "_nutpie_parts", missing)
    nutpie_compile.compile_pymc_model(model)
    assert len(calls) == 2
