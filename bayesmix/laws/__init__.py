"""The law zoo: one registry that every layer uses through the :class:`Law` interface.

>>> from bayesmix.laws import get_law, available_laws
>>> law = get_law("capacity_noise")
"""

from __future__ import annotations

from ..errors import UsageError
from .base import DOMAIN, DOMAIN_J, MIN_POSITIVE_WEIGHT, Law, Param

_REGISTRY: dict[str, type[Law]] = {}


def register(cls: type[Law]) -> type[Law]:
    """Class decorator adding a law to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError("a registered law needs a name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"law '{cls.name}' is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_laws() -> list[str]:
    """Names of all registered laws, in registration order."""
    return list(_REGISTRY)


def get_law(name: str, **options) -> Law:
    """Instantiate a registered law by name.

    Raises
    ------
    UsageError
        If no law of that name is registered.
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"unknown law '{name}'; registered laws: {', '.join(available_laws())}"
        ) from None
    return cls(options=dict(options))


def register_jax_conversions() -> None:
    """Teach PyTensor's JAX backend the laws' own Ops (for JAX-based samplers); needs jax."""
    from . import capacity_jax, mixture_kernel_jax  # noqa: F401  (importing registers)


# Importing the modules registers their laws.
from . import capacity, exponential, bimix, shukor, chinchilla, linear, transfer  # noqa: E402,F401,I001

__all__ = ["DOMAIN", "DOMAIN_J", "MIN_POSITIVE_WEIGHT", "Law", "Param", "available_laws", "get_law", "register",
           "register_jax_conversions"]
