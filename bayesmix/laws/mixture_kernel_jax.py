"""JAX form of the mixture-term Ops (:mod:`bayesmix.laws.mixture_kernel`), for JAX-based
samplers (``--sampler numpyro``).

Imported only when such a sampler is used (:func:`bayesmix.laws.register_jax_conversions`):
JAX is optional and slow to import. Both Ops run the module's array forms with
``jax.numpy``; JAX differentiates :class:`MixtureMean`'s form itself.
"""

from __future__ import annotations

import jax.numpy as jnp
from pytensor.link.jax.dispatch import jax_funcify

from .mixture_kernel import MixtureMean, MixtureMeanGrad, mixture_mean_gradients, mixture_powers


@jax_funcify.register(MixtureMean)
def _jax_mixture_mean(op, **kwargs):
    def mixture_mean(log_C, gamma, log_share, active):
        return mixture_powers(log_C, gamma, log_share, active, xp=jnp)

    return mixture_mean


@jax_funcify.register(MixtureMeanGrad)
def _jax_mixture_mean_grad(op, **kwargs):
    return mixture_mean_gradients
