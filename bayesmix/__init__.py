"""bayesmix: Bayesian data-mixing scaling laws for choosing an LLM training mixture."""

from .errors import BayesmixError, DataError, UsageError

__version__ = "0.1.0"

__all__ = ["BayesmixError", "DataError", "UsageError", "__version__"]
