"""JAX forms of the capacity split's Newton Op and the fused capacity-term Ops, for JAX-based
samplers (``--sampler numpyro``).

Imported only when such a sampler is used (:func:`bayesmix.laws.register_jax_conversions`):
JAX is optional and slow to import. The loop is that of :func:`bayesmix.laws.capacity_split.newton_rows`
as a ``fori_loop``; a row whose budget holds takes no further step. The capacity-term
Ops run :mod:`bayesmix.laws.capacity_kernel`'s array forms with ``jax.numpy``; JAX
differentiates :class:`~bayesmix.laws.capacity_kernel.CapacityTerm`'s form itself (the
loop under ``stop_gradient``, the final Newton step differentiated, as in the graph).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from pytensor.link.jax.dispatch import jax_funcify

from .capacity_kernel import CapacityTerm, CapacityTermGrad, capacity_term_arrays, capacity_term_gradients
from .capacity_split import NewtonMultiplier


@jax_funcify.register(NewtonMultiplier)
def _jax_newton_multiplier(op, **kwargs):
    iterations, tolerance = op.iterations, op.tolerance

    def newton_multiplier(log_w, expo, log_H, budget_log, active):
        active = active > 0
        t = jnp.min(jnp.where(active, log_w - budget_log / expo, jnp.inf), axis=-1, keepdims=True)

        def step(_, state):
            t, running = state
            log_x_free = (log_w - t) * expo
            clamped = ~active | (log_x_free < log_H)
            x = jnp.exp(jnp.where(clamped, log_H, log_x_free))
            total = jnp.sum(x, axis=-1, keepdims=True)
            slope = -jnp.sum(jnp.where(clamped, 0.0, x * expo), axis=-1, keepdims=True) / total
            residual = jnp.log(total) - budget_log[..., :1]
            running = running & ~(jnp.abs(residual) <= tolerance)
            return jnp.where(running, t - residual / slope, t), running

        t, _ = jax.lax.fori_loop(0, iterations, step, (t, jnp.ones(t.shape, dtype=bool)))
        # The Op has no gradient of its own (capacity_split differentiates one Newton step
        # in the graph); a sampler that differentiates the JAX function must not see the loop.
        return jax.lax.stop_gradient(t)

    return newton_multiplier


@jax_funcify.register(CapacityTerm)
def _jax_capacity_term(op, **kwargs):
    solve = _jax_newton_multiplier(NewtonMultiplier(op.iterations, op.tolerance))

    def capacity_term(h, b, c, H, n):
        return capacity_term_arrays(h, b, c, H, n, xp=jnp, solve=solve)

    return capacity_term


@jax_funcify.register(CapacityTermGrad)
def _jax_capacity_term_grad(op, **kwargs):
    def capacity_term_grad(grad_term, term, log_x, floor, h, b, c, H, n):
        return capacity_term_gradients(grad_term, term, log_x, floor, h, b, c, H, n, xp=jnp)

    return capacity_term_grad
