"""One fused kernel for the capacity term ``c_i x_i(h, n)^(-b_i)`` of the capacity laws.

:func:`~bayesmix.laws.capacity.capacity_split` builds the split from PyTensor operations
around a Newton Op and differentiates one Newton step in the graph: a dozen elementwise
passes over the ``rows x K`` cells, each with its own exponentials and logarithms, and as
many again for the gradient. :class:`CapacityTerm` solves the split and evaluates the term
in one pass over each row, and :class:`CapacityTermGrad` returns the implicit-function
gradient in one more, from the kept ``log x``. The values are the graph's: the same
Newton loop, then the same final Newton step.

The gradient (one row; ``T_i`` the term, ``g_i`` its output gradient, ``e_i = 1/(b_i+1)``,
``S = sum_i x_i``, ``B = n + (K-1) H``, free domains those off the floor): the split's
multiplier ``t`` moves with every parameter through ``f(t) = log S - log B = 0``, so with
``q_i = -g_i b_i T_i`` (the gradient with respect to ``log x_i``) and
``nu = sum_free q_i e_i / slope``, ``slope = -sum_free x_i e_i / S``, each ``log x_i``
carries ``p_i = q_i + nu x_i / S``, and

- ``d c_i = g_i T_i / c_i + [free] p_i e_i / c_i``
- ``d b_i = -g_i T_i log x_i + [free] p_i e_i (1/b_i - log x_i)``
- ``d H = sum_floor p_i / H - nu (K-1) / B``, ``d n = -nu / B``, ``d h_i = [free] p_i e_i / h_i``

summed over rows for the per-domain parameters. Only the plain case (one parameter set,
a table of rows) goes through the Ops; batched graphs (posterior draws, in
:mod:`bayesmix.posterior` and :mod:`bayesmix.decide`) use :func:`capacity_term_reference`,
which the tests hold the Ops to.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

from .fast_exp import vector_exp
from .capacity_split import SOLVER_ITERATIONS, SOLVER_RESIDUAL_TOLERANCE, capacity_split, newton_rows, newton_solve

#: Version of the numba loops below: it joins PyTensor's on-disk cache key, so raise it
#: when a loop changes (or :func:`~bayesmix.laws.capacity_split.newton_solve`, which the
#: cached code includes), or a machine's cache keeps serving the old code.
NUMBA_IMPLEMENTATION_VERSION = 2


def capacity_term_reference(h, b, c, H, n):
    """``c_i x_i(h, n)^(-b_i)`` as PyTensor operations around the Newton Op, for any
    broadcastable shapes (see :func:`~bayesmix.laws.capacity_split.capacity_split`)."""
    x = capacity_split(h, b, c, H, n)
    return c * pt.exp(-b * pt.log(x))


def capacity_term_arrays(h, b, c, H, n, iterations=SOLVER_ITERATIONS, tolerance=SOLVER_RESIDUAL_TOLERANCE,
                         xp=np, solve=None):
    """:class:`CapacityTerm` on arrays: the term and ``log x``, both ``(rows, K)``, and the
    floor mask (1 where ``x_i = H``), with the array module ``xp`` (NumPy for PyTensor's
    Python backend, ``jax.numpy`` for its JAX backend, where ``solve`` is the JAX form of
    the Newton loop and JAX differentiates the final step as the graph does)."""
    K = h.shape[-1]
    active = h > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_w = xp.log(xp.where(active, h, 1.0) * b * c)
        expo = xp.broadcast_to(1.0 / (b + 1.0), h.shape)
        log_H = xp.broadcast_to(xp.log(H), h.shape)
        budget_log = xp.broadcast_to(xp.log(n + (K - 1) * H), h.shape)
        if solve is None:
            t = newton_rows(log_w, expo, log_H, budget_log, active, iterations, tolerance)
        else:
            t = solve(log_w, expo, log_H, budget_log, active)
        log_x_free = (log_w - t) * expo
        floor = ~active | (log_x_free < log_H)
        x = xp.exp(xp.where(floor, log_H, log_x_free))
        total = x.sum(axis=-1, keepdims=True)
        slope = -xp.where(floor, 0.0, x * expo).sum(axis=-1, keepdims=True) / total
        t_star = t - (xp.log(total) - budget_log[:, :1]) / slope
        log_x = xp.where(floor, log_H, (log_w - t_star) * expo)
        term = c * xp.exp(-b * log_x)
    return term, log_x, floor.astype(float)


def capacity_term_gradients(grad_term, term, log_x, floor, h, b, c, H, n, xp=np):
    """:class:`CapacityTermGrad` on arrays (NumPy or JAX): the gradients of
    ``sum_ri grad_term_ri T_ri`` with respect to ``h, b, c, H, n`` (module docstring)."""
    K = h.shape[-1]
    free = floor == 0
    expo = 1.0 / (b + 1.0)
    x = xp.exp(log_x)
    total = x.sum(axis=-1, keepdims=True)
    budget = n + (K - 1) * H
    q = -grad_term * b * term
    slope = -xp.where(free, x * expo, 0.0).sum(axis=-1, keepdims=True) / total
    nu = xp.where(free, q * expo, 0.0).sum(axis=-1, keepdims=True) / slope
    p = q + nu * x / total
    d_c = (grad_term * term / c + xp.where(free, p * expo / c, 0.0)).sum(axis=0)
    d_b = (-grad_term * term * log_x + xp.where(free, p * expo * (1.0 / b - log_x), 0.0)).sum(axis=0)
    d_H = xp.where(free, 0.0, p).sum() / H - (nu * (K - 1) / budget).sum()
    d_h = xp.where(free, p * expo / xp.where(free, h, 1.0), 0.0)
    return d_h, d_b, d_c, xp.asarray(d_H), -nu / budget


class CapacityTerm(Op):
    """The capacity term ``T (rows, K)`` from ``h (rows, K)``, ``b (K,)``, ``c (K,)`` (the
    paper's amplitude), ``H ()`` and ``n (rows, 1)``, with ``log x`` and the floor mask
    ``(rows, K)`` kept for the gradient (they have none of their own)."""

    __props__ = ("iterations", "tolerance")

    def __init__(self, iterations: int = SOLVER_ITERATIONS, tolerance: float = SOLVER_RESIDUAL_TOLERANCE):
        self.iterations = int(iterations)
        self.tolerance = float(tolerance)

    def make_node(self, h, b, c, H, n):
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in (h, b, c, H, n)]
        if [v.type.ndim for v in inputs] != [2, 1, 1, 0, 2]:
            raise TypeError("CapacityTerm takes h (rows, K), b (K,), c (K,), H () and n (rows, 1); "
                            "use capacity_term_reference for batches")
        return Apply(self, inputs, [pt.matrix(dtype="float64") for _ in range(3)])

    def perform(self, node, inputs, outputs):
        h, b, c, H, n = (np.asarray(v, dtype=float) for v in inputs)
        for slot, value in zip(outputs, capacity_term_arrays(h, b, c, H, n, self.iterations, self.tolerance)):
            slot[0] = value

    def infer_shape(self, node, shapes):
        return [shapes[0]] * 3

    def connection_pattern(self, node):
        return [[True, False, False] for _ in node.inputs]

    def pullback(self, inputs, outputs, cotangents):
        if any(not isinstance(g.type, DisconnectedType) for g in cotangents[1:]):
            raise NotImplementedError("CapacityTerm's log x and floor outputs have no gradient of their own")
        return CapacityTermGrad()(cotangents[0], *outputs, *inputs)


class CapacityTermGrad(Op):
    """The gradients of :class:`CapacityTerm`'s term with respect to ``h, b, c, H, n``,
    given the term's output gradient, the term, ``log x``, the floor mask and the inputs."""

    __props__ = ()

    def make_node(self, grad_term, term, log_x, floor, h, b, c, H, n):
        inputs = [pt.as_tensor_variable(v).astype("float64")
                  for v in (grad_term, term, log_x, floor, h, b, c, H, n)]
        outputs = [pt.matrix(dtype="float64"), pt.vector(dtype="float64"), pt.vector(dtype="float64"),
                   pt.scalar(dtype="float64"), pt.matrix(dtype="float64")]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        arrays = (np.asarray(v, dtype=float) for v in inputs)
        for slot, value in zip(outputs, capacity_term_gradients(*arrays)):
            slot[0] = value

    def infer_shape(self, node, shapes):
        return [shapes[4], shapes[5], shapes[6], (), shapes[8]]


@register_funcify_default_op_cache_key(CapacityTerm)
def _numba_capacity_term(op, node, **kwargs):
    iterations = op.iterations
    tolerance = op.tolerance

    @numba_njit(error_model="numpy")
    def capacity_term(h, b, c, H_array, n):
        rows, K = h.shape
        H = H_array.item()
        log_H = np.log(H)
        log_bc = np.log(b * c)
        log_w = np.empty((rows, K))
        expo = np.empty((rows, K))
        log_floor = np.full((rows, K), log_H)
        budget_log = np.empty((rows, 1))
        active = np.empty((rows, K))
        for r in range(rows):
            budget_log[r, 0] = np.log(n[r, 0] + (K - 1) * H)
            for k in range(K):
                active[r, k] = 1.0 if h[r, k] > 0 else 0.0
                log_w[r, k] = np.log(h[r, k]) + log_bc[k] if h[r, k] > 0 else log_bc[k]
                expo[r, k] = 1.0 / (b[k] + 1.0)
        t, total, free, residual = newton_solve(log_w, expo, log_floor, budget_log, active, iterations, tolerance)
        exponent = np.empty((rows, K))
        # The final Newton step (the graph's), the floor decided at t as there.
        log_x = np.empty((rows, K))
        floor = np.empty((rows, K))
        for r in range(rows):
            t_star = t[r] - residual[r] / (-free[r] / total[r])
            for k in range(K):
                at_floor = not (h[r, k] > 0 and (log_w[r, k] - t[r]) * expo[r, k] >= log_H)
                value = log_H if at_floor else (log_w[r, k] - t_star) * expo[r, k]
                log_x[r, k] = value
                floor[r, k] = 1.0 if at_floor else 0.0
                exponent[r, k] = -b[k] * value
        term = np.empty((rows, K))
        vector_exp(exponent.reshape(-1), term.reshape(-1))
        for r in range(rows):
            for k in range(K):
                term[r, k] *= c[k]
        return term, log_x, floor

    return capacity_term, NUMBA_IMPLEMENTATION_VERSION


@register_funcify_default_op_cache_key(CapacityTermGrad)
def _numba_capacity_term_grad(op, node, **kwargs):
    @numba_njit(error_model="numpy")
    def capacity_term_grad(grad_term, term, log_x, floor, h, b, c, H_array, n):
        rows, K = h.shape
        H = H_array.item()
        expo = 1.0 / (b + 1.0)
        x = np.empty((rows, K))
        vector_exp(np.ascontiguousarray(log_x).reshape(-1), x.reshape(-1))
        d_h = np.zeros((rows, K))
        d_b = np.zeros(K)
        d_c = np.zeros(K)
        d_n = np.empty((rows, 1))
        d_H = 0.0
        q = np.empty(K)
        for r in range(rows):
            total = 0.0
            free = 0.0
            carried = 0.0
            for k in range(K):
                total += x[r, k]
                direct = grad_term[r, k] * term[r, k]
                q[k] = -direct * b[k]
                d_c[k] += direct / c[k]
                d_b[k] -= direct * log_x[r, k]
                if floor[r, k] == 0.0:
                    free += x[r, k] * expo[k]
                    carried += q[k] * expo[k]
            nu = carried / (-free / total)
            budget = n[r, 0] + (K - 1) * H
            d_n[r, 0] = -nu / budget
            d_H -= nu * (K - 1) / budget
            for k in range(K):
                p = q[k] + nu * x[r, k] / total
                if floor[r, k] == 0.0:
                    d_c[k] += p * expo[k] / c[k]
                    d_b[k] += p * expo[k] * (1.0 / b[k] - log_x[r, k])
                    d_h[r, k] = p * expo[k] / h[r, k]
                else:
                    d_H += p / H
        return d_h, d_b, d_c, np.asarray(d_H), d_n

    return capacity_term_grad, NUMBA_IMPLEMENTATION_VERSION


def capacity_term(h, b, c, H, n):
    """``c_i x_i(h, n)^(-b_i)``: through the fused :class:`CapacityTerm` where ``h`` and
    ``n`` are tables of rows and ``b``, ``c``, ``H`` one parameter set, otherwise
    :func:`capacity_term_reference`."""
    tensors = [pt.as_tensor_variable(v) for v in (h, b, c, H, n)]
    if [v.type.ndim for v in tensors] == [2, 1, 1, 0, 2]:
        return CapacityTerm()(*tensors)[0]
    return capacity_term_reference(*tensors)
