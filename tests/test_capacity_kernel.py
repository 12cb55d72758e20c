"""The fused capacity-term kernel of the capacity laws (bayesmix.laws.capacity_kernel): the
same values and gradients as the graph around the Newton Op it replaces, under numba (what
nutpie runs) and under PyTensor's C/Python backend, gradients against finite differences,
and the laws' models going through it while batched draws do not."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesmix.laws import get_law
from bayesmix.laws.capacity_kernel import (CapacityTerm, capacity_term, capacity_term_arrays,
                                           capacity_term_reference)

PYTHON_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")


def _instance(rng, rows=14, K=5):
    """Mixtures with a quarter of the weights 0, one single-domain row, model sizes 0.3-3
    and a floor ``H`` that some active domains sit on (small weights, steep exponents)."""
    h = rng.dirichlet(np.full(K, 0.6), rows)
    h[rng.uniform(size=h.shape) < 0.25] = 0.0
    h[h.sum(axis=1) == 0, 0] = 1.0
    h[-1] = np.eye(K)[1]
    h /= h.sum(axis=1, keepdims=True)
    b = rng.uniform(0.1, 0.9, K)
    c = rng.uniform(0.2, 1.0, K)
    n = rng.uniform(0.3, 3.0, (rows, 1))
    return h, b, c, 0.08, n


def _floor_cells(h, b, c, H, n):
    _, _, floor = capacity_term_arrays(h, b, c, H, n)
    return (floor > 0) & (h > 0)


def test_the_instance_has_active_domains_on_the_floor_and_off_it():
    h, b, c, H, n = _instance(np.random.default_rng(0))
    on_floor = _floor_cells(h, b, c, H, n)
    assert on_floor.sum() >= 3 and ((h > 0) & ~on_floor).sum() >= 30


def _value_and_gradients(fused: bool, mode):
    h, b, c, H, n, w = pt.matrix("h"), pt.vector("b"), pt.vector("c"), pt.scalar("H"), pt.col("n"), pt.matrix("w")
    term = (CapacityTerm()(h, b, c, H, n)[0] if fused else capacity_term_reference(h, b, c, H, n))
    value = pt.sum(w * term)
    return pytensor.function([h, b, c, H, n, w], [term, *pytensor.grad(value, [b, c, H, n, h])], mode=mode)


@pytest.mark.parametrize("mode", ["NUMBA", pytensor.compile.mode.Mode(linker="cvm", optimizer="fast_run")],
                         ids=["numba", "c"])
def test_fused_capacity_term_matches_the_graph_in_value_and_gradient(mode):
    """Both solve the split by the same Newton loop and one final Newton step, so they
    agree to rounding; ``d h`` of a row with one domain is rounding noise (~1e-17) in the
    graph and 0 in the kernel, hence the absolute tolerance."""
    rng = np.random.default_rng(1)
    h, b, c, H, n = _instance(rng)
    w = rng.normal(size=h.shape)
    fused = _value_and_gradients(True, mode)(h, b, c, H, n, w)
    reference = _value_and_gradients(False, mode)(h, b, c, H, n, w)
    for name, got, expected in zip(("term", "d b", "d c", "d H", "d n", "d h"), fused, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13, err_msg=name)
    # A weight of 0 and a domain on the floor take no part in h's gradient.
    assert np.all(fused[5][(h == 0) | _floor_cells(h, b, c, H, n)] == 0.0)


def test_fused_capacity_term_gradient_matches_finite_differences():
    """PyTensor's one-sided differences (step 1e-7) are good to about 1e-7 times the
    curvature, O(1) here: 1e-5 leaves margin, and a wrong term of the implicit gradient
    (a lost floor's share of H, the multiplier's move) is off by O(0.1-1)."""
    rng = np.random.default_rng(2)
    h, b, c, H, n = _instance(rng, rows=6, K=4)
    pytensor.gradient.verify_grad(lambda b_, c_, H_, n_: CapacityTerm()(pt.constant(h), b_, c_, H_, n_)[0],
                                  [b, c, np.asarray(H), n], rng=rng, abs_tol=1e-5, rel_tol=1e-5, mode=PYTHON_MODE)


def test_the_split_behind_the_term_holds_the_budget_and_the_kkt_conditions():
    """Independent of the graph: the capacities sum to ``n + (K-1) H``, sit at ``H`` or
    above it, and the free ones share one multiplier ``h_i b_i c_i x_i^-(b_i+1)``."""
    h, b, c, H, n = _instance(np.random.default_rng(3))
    term, log_x, floor = capacity_term_arrays(h, b, c, H, n)
    x = np.exp(log_x)
    K = h.shape[1]
    np.testing.assert_allclose(x.sum(axis=1, keepdims=True), n + (K - 1) * H, rtol=1e-12)
    assert np.all(x >= H * (1 - 1e-12))
    np.testing.assert_allclose(term, c * x ** (-b), rtol=1e-12)
    multiplier = np.where(floor == 0, h * b * c * x ** (-(b + 1)), np.nan)
    spread = np.nanmax(multiplier, axis=1) / np.nanmin(multiplier, axis=1)
    np.testing.assert_allclose(spread, 1.0, rtol=1e-10)


@pytest.mark.parametrize("law_name", ["capacity", "capacity_noise"])
def test_the_laws_model_goes_through_the_fused_op_and_batched_draws_through_the_graph(law_name):
    """The fit's graph (one parameter set, a table of rows) uses the Op; posterior draws
    ``(S, 1, K)`` (prediction, decisions) take the graph, with each draw's value the Op's."""
    law = get_law(law_name)
    rng = np.random.default_rng(4)
    h, _, _, _, n = _instance(rng, rows=5, K=3)
    draws = [law.example_params(3, rng) for _ in range(3)]
    d = np.full((5, 1), 1.5)

    def uses_op(variable):
        return any(isinstance(v.owner.op, CapacityTerm) for v in pytensor.graph.ancestors([variable])
                   if v.owner is not None)

    single = [law.mean({k: pt.as_tensor(np.asarray(v, dtype=float)) for k, v in p.items()},
                       pt.as_tensor(h), pt.as_tensor(n), pt.as_tensor(d)) for p in draws]
    assert all(uses_op(value) for value in single)
    stacked = {k: pt.as_tensor(np.stack([np.asarray(p[k], dtype=float) for p in draws]).reshape(3, 1, -1)
                               if np.ndim(draws[0][k]) else np.array([p[k] for p in draws], dtype=float).reshape(3, 1, 1))
               for k in draws[0]}
    batched = law.mean(stacked, pt.as_tensor(h), pt.as_tensor(n), pt.as_tensor(d))
    assert not uses_op(batched)
    batched = batched.eval()
    for s, value in enumerate(single):
        np.testing.assert_allclose(batched[s], value.eval(), rtol=1e-12)


def test_capacity_term_takes_the_op_only_for_one_parameter_set():
    h, b, c, H, n = (pt.as_tensor(v) for v in _instance(np.random.default_rng(5)))
    assert isinstance(capacity_term(h, b, c, H, n).owner.op, CapacityTerm)
    with pytest.raises(TypeError, match="capacity_term_reference"):
        CapacityTerm()(h, b[None, :], c, H, n)


def test_jax_forms_match_numba_in_value_in_jax_gradient_and_in_the_gradient_op():
    """For --sampler numpyro: the jaxified term equals the numba Op's, JAX's own gradient
    of it (what numpyro differentiates) equals the Op's implicit gradient, and so does the
    jaxified gradient Op."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("numpyro")
    from pymc.sampling.jax import get_jaxified_graph

    from bayesmix.laws import register_jax_conversions

    register_jax_conversions()
    jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(6)
    h_val, b_val, c_val, H_val, n_val = _instance(rng)
    w_val = rng.normal(size=h_val.shape)
    b, c, H, n = pt.vector("b"), pt.vector("c"), pt.scalar("H"), pt.col("n")
    value = pt.sum(pt.constant(w_val) * CapacityTerm()(pt.constant(h_val), b, c, H, n)[0])
    args = (b_val, c_val, np.float64(H_val), n_val)
    numba_fn = pytensor.function([b, c, H, n], [value, *pytensor.grad(value, [b, c, H, n])], mode="NUMBA")
    jax_fn = pytensor.function([b, c, H, n], [value, *pytensor.grad(value, [b, c, H, n])], mode="JAX")
    expected = numba_fn(*args)
    for name, got, want in zip(("value", "d b", "d c", "d H", "d n"), jax_fn(*args), expected):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-13, err_msg=name)
    jaxified = get_jaxified_graph(inputs=[b, c, H, n], outputs=[value])
    jax_grads = jax.grad(lambda *a: jaxified(*a)[0], argnums=(0, 1, 2, 3))(*args)
    for name, got, want in zip(("d b", "d c", "d H", "d n"), jax_grads, expected[1:]):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-8, atol=1e-12, err_msg=name)
