"""A vectorised exponential for the laws' numba kernels (:mod:`bayesmix.laws.mixture_kernel`,
:mod:`bayesmix.laws.capacity_kernel`)."""

from __future__ import annotations

import numba
import numpy as np

_LOG2_E = 1.4426950408889634
# ln 2 in two parts, the first with trailing zero bits so that m * _LN2_HIGH is exact.
_LN2_HIGH = 6.93147180369123816490e-01
_LN2_LOW = 1.90821492927058770002e-10
# exp overflows above this and is 0 (in double precision, denormals aside) below the other.
_EXP_OVERFLOW = 709.782712893384
_EXP_UNDERFLOW = -708.0


@numba.njit(fastmath={"contract"}, error_model="numpy")
def vector_exp(x, out):
    """``out[k] = exp(x[k])`` for one-dimensional contiguous arrays, within an ulp or two,
    as plain arithmetic the compiler turns into SIMD code.

    numba calls the C library's scalar ``exp`` once per element (about 4 ns here), which
    made the powers most of the additive law's gradient; this loop runs about 5x faster
    (measured on an AVX-512 machine: 6.6 us against 27 us for 6400 values). Cody-Waite
    reduction ``x = m ln 2 + r``, ``|r| <= ln2/2``, a degree-13 Taylor polynomial for
    ``exp(r)`` (truncation error below 2e-17) and the factor ``2^m`` added to the
    exponent bits. Results below ``exp(-708)`` are flushed to
    0 (not to denormals); above the largest double they are ``inf``; NaN stays NaN. Only
    contraction into fused multiply-adds is allowed: reassociation would fold the two
    parts of ``ln 2`` into one and lose 7 digits at ``|x| ~ 700``.
    """
    bits = out.view(np.int64)
    for k in range(x.size):
        value = x[k]
        clipped = min(max(value, _EXP_UNDERFLOW), _EXP_OVERFLOW)
        m = np.floor(clipped * _LOG2_E + 0.5)
        r = (clipped - m * _LN2_HIGH) - m * _LN2_LOW
        p = 1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
            1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
                1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r / 6227020800.0))))))))))))
        # 2^1024 has no exponent of its own: scale by 2^1023 and double.
        top = m > 1023.0
        out[k] = p * 2.0 if top else p
        bits[k] += np.int64(m - 1.0 if top else m) << 52
        if value > _EXP_OVERFLOW:
            out[k] = np.inf
        elif value < _EXP_UNDERFLOW:
            out[k] = 0.0
        elif value != value:
            out[k] = value
    return out
