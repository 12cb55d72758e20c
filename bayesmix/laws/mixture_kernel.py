"""One fused kernel for the additive and joint laws' mixture term (:func:`bayesmix.laws.shukor.mixture_term`).

``S_ri = mean_j a_rj exp(log C_ij + gamma_ij s_rj)`` over rows ``r``, validation domains
``i`` and training domains ``j`` (``s = log(K h)``, ``a`` the mask of positive weights):
a ``rows x K x K`` array of powers, most of these laws' log-density cost. :class:`MixtureMean`
computes the powers once, as one vectorised exponential (:func:`vector_exp`; numba's
own calls the C library once per element), and keeps them for its gradient
(:class:`MixtureMeanGrad`, sums of products only). Measured on a Pile 17 comparison
fold (34 runs x 17 domains, the additive law's model as nutpie compiles it): 81 us per
log-density gradient against 98 us for the same term as PyTensor elementwise operations.

Only the plain two-dimensional case (one set of coefficients, a table of rows) goes
through the Op; batched graphs (posterior draws by mixtures, in :mod:`bayesmix.decide`)
use the elementwise form, :func:`mixture_mean_reference`, which the tests hold the Op to.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key

from .fast_exp import vector_exp

#: Version of the numba loops below: it joins PyTensor's on-disk cache key, so raise it
#: when a loop changes, or a machine's cache keeps serving the old code.
NUMBA_IMPLEMENTATION_VERSION = 4


def mixture_mean_reference(log_C, gamma, log_share, active):
    """``mean_j active_rj exp(log C_ij + gamma_ij s_rj)`` as elementwise PyTensor
    operations: ``log_share`` and ``active`` ``(..., rows, K)``; ``log_C`` and ``gamma``
    broadcast against ``(..., rows, K, K)`` (``(K, K)``, or with leading draw and row
    axes of the caller's); returns ``(..., rows, K)``."""
    powered = pt.exp(log_C + gamma * log_share[..., None, :])
    return pt.mean(pt.switch(active[..., None, :], powered, 0.0), axis=-1)


def mixture_powers(log_C, gamma, log_share, active, xp=np):
    """:class:`MixtureMean` on arrays: the means ``(rows, K)`` and the powers
    ``(rows, K, K)`` (0 where a weight is 0), with the array module ``xp`` (NumPy for
    PyTensor's Python backend, ``jax.numpy`` for its JAX backend)."""
    powered = xp.where(active[:, None, :] > 0,
                       xp.exp(log_C[None, :, :] + gamma[None, :, :] * log_share[:, None, :]), 0.0)
    return powered.mean(axis=-1), powered


def mixture_mean_gradients(grad_mean, powered, gamma, log_share):
    """:class:`MixtureMeanGrad` on arrays (NumPy or JAX): the gradients of
    ``sum_ri grad_mean_ri S_ri`` with respect to ``log C``, ``gamma`` and ``log_share``
    from the kept powers."""
    K = powered.shape[-1]
    weighted = grad_mean[:, :, None] * powered / K  # (rows, i, j)
    return (weighted.sum(axis=0), (weighted * log_share[:, None, :]).sum(axis=0),
            (weighted * gamma[None, :, :]).sum(axis=1))


class MixtureMean(Op):
    """``S (rows, K)`` and the powers ``P (rows, K, K)`` of the mixture term from
    ``log C (K, K)``, ``gamma (K, K)``, ``log_share (rows, K)`` and ``active (rows, K)``
    (1 where the weight is positive: only those terms enter, whatever ``log_share`` holds
    elsewhere).
    Differentiable in its first three inputs; the powers output is for the gradient only."""

    __props__ = ()

    def make_node(self, log_C, gamma, log_share, active):
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in (log_C, gamma, log_share, active)]
        if any(v.type.ndim != 2 for v in inputs):
            raise TypeError("MixtureMean takes two-dimensional inputs; use mixture_mean_reference for batches")
        outputs = [pt.matrix(dtype="float64"), pt.tensor3(dtype="float64")]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        mean, powered = mixture_powers(*(np.asarray(v, dtype=float) for v in inputs))
        outputs[0][0] = mean
        outputs[1][0] = powered

    def infer_shape(self, node, shapes):
        rows, K = shapes[2][0], shapes[0][0]
        return [(rows, K), (rows, K, shapes[0][1])]

    def pullback(self, inputs, outputs, cotangents):
        _, gamma, log_share, _ = inputs
        grad_mean, grad_powered = cotangents
        if not isinstance(grad_powered.type, DisconnectedType):
            raise NotImplementedError("MixtureMean's powers output has no gradient of its own")
        d_log_C, d_gamma, d_log_share = MixtureMeanGrad()(grad_mean, outputs[1], gamma, log_share)
        return [d_log_C, d_gamma, d_log_share, disconnected_type()]

    def connection_pattern(self, node):
        return [[True, False], [True, False], [True, False], [False, False]]


class MixtureMeanGrad(Op):
    """The gradients of :class:`MixtureMean`'s mean output with respect to ``log C``,
    ``gamma`` and ``log_share``, given the mean's output gradient and the kept powers."""

    __props__ = ()

    def make_node(self, grad_mean, powered, gamma, log_share):
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in (grad_mean, powered, gamma, log_share)]
        outputs = [pt.matrix(dtype="float64"), pt.matrix(dtype="float64"), pt.matrix(dtype="float64")]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        for slot, value in zip(outputs, mixture_mean_gradients(*(np.asarray(v, dtype=float) for v in inputs))):
            slot[0] = value

    def infer_shape(self, node, shapes):
        return [shapes[2], shapes[2], shapes[3]]


@register_funcify_default_op_cache_key(MixtureMean)
def _numba_mixture_mean(op, node, **kwargs):
    @numba_njit(error_model="numpy")
    def mixture_mean(log_C, gamma, log_share, active):
        rows, K = log_share.shape
        exponents = np.empty((rows, K, K))
        for r in range(rows):
            for i in range(K):
                for j in range(K):
                    exponents[r, i, j] = log_C[i, j] + gamma[i, j] * log_share[r, j]
        powered = np.empty((rows, K, K))
        # Separate arrays: in place, the compiler cannot rule out aliasing and runs it scalar.
        vector_exp(exponents.reshape(-1), powered.reshape(-1))
        mean = np.zeros((rows, K))
        for r in range(rows):
            for i in range(K):
                total = 0.0
                for j in range(K):
                    if active[r, j] > 0:
                        total += powered[r, i, j]
                    else:
                        powered[r, i, j] = 0.0
                mean[r, i] = total / K
        return mean, powered

    return mixture_mean, NUMBA_IMPLEMENTATION_VERSION


@register_funcify_default_op_cache_key(MixtureMeanGrad)
def _numba_mixture_mean_grad(op, node, **kwargs):
    @numba_njit(error_model="numpy")
    def mixture_mean_grad(grad_mean, powered, gamma, log_share):
        rows, K = log_share.shape
        d_log_C = np.zeros((K, K))
        d_gamma = np.zeros((K, K))
        d_log_share = np.zeros((rows, K))
        for r in range(rows):
            for i in range(K):
                scale = grad_mean[r, i] / K
                for j in range(K):
                    weighted = scale * powered[r, i, j]
                    d_log_C[i, j] += weighted
                    d_gamma[i, j] += weighted * log_share[r, j]
                    d_log_share[r, j] += weighted * gamma[i, j]
        return d_log_C, d_gamma, d_log_share

    return mixture_mean_grad, NUMBA_IMPLEMENTATION_VERSION


def mixture_mean(log_C, gamma, log_share, active):
    """``mean_j active_rj exp(log C_ij + gamma_ij s_rj)``, ``(..., rows, K)``: through the
    fused :class:`MixtureMean` where every input is two-dimensional, otherwise
    :func:`mixture_mean_reference`."""
    tensors = [pt.as_tensor_variable(v) for v in (log_C, gamma, log_share, active)]
    if all(v.type.ndim == 2 for v in tensors):
        return MixtureMean()(*tensors)[0]
    return mixture_mean_reference(*tensors)
