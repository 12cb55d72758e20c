"""The fused mixture-term kernel of the additive and joint laws (bayesmix.laws.mixture_kernel):
the same values and gradients as the elementwise form it replaces, under numba (what nutpie
runs) and under PyTensor's C/Python backend, gradients against finite differences, and
its vectorised exponential against NumPy's."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from bayesmix.laws.fast_exp import vector_exp
from bayesmix.laws.mixture_kernel import MixtureMean, mixture_mean, mixture_mean_reference
from bayesmix.laws.shukor import mixture_term


def _instance(rng, rows=9, K=6):
    """Coefficients and mixtures with some zero weights (a quarter of the cells)."""
    h = rng.dirichlet(np.ones(K), rows)
    h[rng.uniform(size=h.shape) < 0.25] = 0.0
    h[h.sum(axis=1) == 0, 0] = 1.0
    h /= h.sum(axis=1, keepdims=True)
    return rng.normal(1.0, 1.0, (K, K)), rng.uniform(0.1, 1.5, (K, K)), h


def _value_and_gradients(fused: bool, mode):
    """Compiled ``sum(w * mixture_term)`` and its gradient with respect to ``log C``,
    ``gamma`` and ``h``, through the Op or through the elementwise form."""
    log_C, gamma, h, w = pt.matrix("log_C"), pt.matrix("gamma"), pt.matrix("h"), pt.matrix("w")
    if fused:
        term = 1.0 / mixture_mean(log_C, gamma, pt.log(h.shape[-1] * pt.switch(pt.gt(h, 0), h, 1.0)), pt.gt(h, 0))
        assert any(isinstance(v.owner.op, MixtureMean) for v in pytensor.graph.ancestors([term])
                   if v.owner is not None)
    else:
        term = 1.0 / mixture_mean_reference(log_C, gamma, pt.log(h.shape[-1] * pt.switch(pt.gt(h, 0), h, 1.0)),
                                            pt.gt(h, 0))
    value = pt.sum(w * term)
    return pytensor.function([log_C, gamma, h, w], [value, *pytensor.grad(value, [log_C, gamma, h])], mode=mode)


@pytest.mark.parametrize("mode", ["NUMBA", pytensor.compile.mode.Mode(linker="cvm", optimizer="fast_run")],
                         ids=["numba", "c"])
def test_fused_mixture_mean_matches_the_elementwise_form_in_value_and_gradient(mode):
    rng = np.random.default_rng(3)
    log_C, gamma, h = _instance(rng)
    w = rng.normal(size=h.shape)
    fused = _value_and_gradients(True, mode)(log_C, gamma, h, w)
    reference = _value_and_gradients(False, mode)(log_C, gamma, h, w)
    for name, got, expected in zip(("value", "d log C", "d gamma", "d h"), fused, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14, err_msg=name)
    # A zero weight contributes nothing, to the value or to gamma's gradient.
    assert np.all(fused[3][h == 0] == reference[3][h == 0])


def test_fused_mixture_mean_gradient_matches_finite_differences():
    """PyTensor's one-sided differences (step 1e-7) are good to about 1e-7 times the
    curvature, O(1) here: 1e-5 leaves margin, and a wrong factor (a lost 1/K, a
    transposed sum) is off by O(1)."""
    rng = np.random.default_rng(4)
    log_C, gamma, h = _instance(rng, rows=5, K=4)
    active = (h > 0).astype(float)
    log_share = np.log(h.shape[1] * np.where(h > 0, h, 1.0))
    pytensor.gradient.verify_grad(lambda a, b, c: MixtureMean()(a, b, c, pt.constant(active))[0],
                                  [log_C, gamma, log_share], rng=rng, abs_tol=1e-5, rel_tol=1e-5,
                                  mode=pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile"))


def test_batched_mixture_term_takes_the_elementwise_form_and_agrees_draw_by_draw():
    """Posterior draws by mixtures (the decision layer's graph) are not two-dimensional:
    they go through the elementwise form, which gives each draw the fused value."""
    rng = np.random.default_rng(5)
    draws = [_instance(rng, rows=4, K=5) for _ in range(3)]
    C = np.stack([np.exp(d[0]) for d in draws])[:, None]          # (S, 1, K, K)
    gamma = np.stack([d[1] for d in draws])[:, None]
    h = np.stack([d[2] for d in draws])                            # (S, rows, K)
    batched = mixture_term(pt.as_tensor(C), pt.as_tensor(gamma), pt.as_tensor(h)).eval()
    for s in range(len(draws)):
        single = mixture_term(pt.as_tensor(C[s, 0]), pt.as_tensor(gamma[s, 0]), pt.as_tensor(h[s])).eval()
        np.testing.assert_allclose(batched[s], single, rtol=1e-12)


def test_vector_exp_is_within_two_ulp_of_numpy_and_keeps_the_edges():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-708.0, 709.78, 200_000), rng.uniform(-1.0, 1.0, 10_000),
                        np.linspace(709.0, 709.782712893384, 1001)])
    got = vector_exp(x, np.empty_like(x))
    np.testing.assert_array_less(np.abs(got / np.exp(x) - 1.0), 2.5 * np.finfo(float).eps)
    edges = np.array([np.nan, np.inf, -np.inf, 709.79, -708.5, -1e300, 0.0, -0.0, 1.0])
    np.testing.assert_array_equal(vector_exp(edges, np.empty_like(edges)),
                                  [np.nan, np.inf, 0.0, np.inf, 0.0, 0.0, 1.0, 1.0, np.e])
