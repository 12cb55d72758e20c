"""JAX form of the mixture-term Ops (:mod:`bayesmix.laws.mixture_kernel`), for JAX-based
samplers (``--sampler numpyro``).

Imported only when such a sampler is used (:func:`bayesmix.laws.register_jax_conversions`):
JAX is optional and slow to import. Both are the NumPy forms of the module written with
``jax.numpy``; JAX differentiates :class:`MixtureMean`'s form itself.
"""

from __future__ import annotations

import jax.numpy as jnp
from pytensor.link.jax.dispatch import jax_funcify

from .mixture_kernel import MixtureMean, MixtureMeanGrad


@jax_funcify.register(MixtureMean)
def _jax_mixture_mean(op, **kwargs):
    def mixture_mean(log_C, gamma, log_share, active):
        powered = jnp.where(active[:, None, :] > 0,
                            jnp.exp(log_C[None, :, :] + gamma[None, :, :] * log_share[:, None, :]), 0.0)
        return powered.mean(axis=-1), powered

    return mixture_mean


@jax_funcify.register(MixtureMeanGrad)
def _jax_mixture_mean_grad(op, **kwargs):
    def mixture_mean_grad(grad_mean, powered, gamma, log_share):
        weighted = grad_mean[:, :, None] * powered / powered.shape[-1]
        return (weighted.sum(axis=0), (weighted * log_share[:, None, :]).sum(axis=0),
                (weighted * gamma[None, :, :]).sum(axis=1))

    return mixture_mean_grad
