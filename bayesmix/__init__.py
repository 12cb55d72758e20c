"""bayesmix: Bayesian data-mixing scaling laws for choosing an LLM training mixture."""

import warnings

from ._caches import use_writable_caches
from .errors import BayesmixError, DataError, UsageError

__version__ = "0.1.0"

__all__ = ["BayesmixError", "DataError", "UsageError", "__version__"]

# A library warning a bayesmix user cannot act on, silenced here once:
# PyTensor looks for a BLAS to link its C code against (MKL, Accelerate, -lblas,
# OpenBLAS) and warns on every import when there is none. pip's numpy and scipy ship an
# OpenBLAS, but with renamed symbols (scipy_dgemm_) that C code cannot link to, so
# pointing blas__ldflags at it does not work. bayesmix samples with nutpie's numba
# backend, which does not use that C code; where a BLAS is found it is still used (the
# search runs as before, only its failure is not announced).
warnings.filterwarnings("ignore", message=r"PyTensor could not link to a BLAS installation", category=UserWarning)

# PyTensor, ArviZ, numba and matplotlib keep caches under HOME; where it cannot be
# written they are pointed at a private temporary folder, before any is imported.
use_writable_caches()
