"""The law's value and gradient at mixtures, compiled once per (posterior, target) and
cached."""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from ..posterior import PosteriorLike


class Evaluator:
    """Compiled objective, its gradient and the domain losses for one (posterior, target).

    The graph takes a mixture tensor ``(S, R, K)``: draw ``s`` is evaluated at its own
    ``R`` mixtures, so the gradient of the summed objective is every draw's own gradient.
    """

    def __init__(self, posterior: PosteriorLike, model_size: float, tokens: float):
        import pytensor
        import pytensor.tensor as pt
        from pytensor.compile.mode import Mode

        t0 = time.perf_counter()
        mixtures = pt.tensor3("mixtures")
        objective_weights = pt.vector("objective_weights")
        losses = posterior.symbolic_expected_loss(mixtures, model_size, tokens)
        value = pt.sum(losses * objective_weights, axis=-1)
        grad = pytensor.grad(pt.sum(value), mixtures)
        # The light rewrite set compiles in about a second and runs as fast as the full one
        # on these graphs (measured on capacity_noise, K = 7 and 17).
        mode = Mode(linker="cvm", optimizer="fast_compile")
        self._fn = pytensor.function([mixtures, objective_weights], [value, grad, losses], mode=mode)
        self.n_draws = posterior.n_draws
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, mixtures, objective_weights):
        value, grad, losses = self._fn(np.ascontiguousarray(mixtures, dtype=float),
                                       np.asarray(objective_weights, dtype=float))
        bad = ~np.isfinite(value)
        if bad.any():
            value = np.where(bad, np.inf, value)
            grad = np.where(bad[..., None], 0.0, grad)
        # Weights a hair above zero give huge noise-term slopes; keep directions finite.
        grad = np.nan_to_num(grad, nan=0.0, posinf=1e12, neginf=-1e12)
        return value, grad, losses


_EVALUATORS: "OrderedDict[tuple, Evaluator]" = OrderedDict()
_EVALUATOR_CACHE_SIZE = 8


def _posterior_key(posterior: PosteriorLike) -> tuple:
    """A content key of the parts of a posterior that enter the expected loss."""
    import hashlib

    digest = hashlib.sha1()
    for name in sorted(posterior.draws):
        value = np.ascontiguousarray(posterior.draws[name], dtype=float)
        digest.update(name.encode())
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    law = posterior.law
    return (law.name, tuple(sorted(law.options.items())), posterior.scaling, tuple(posterior.domains),
            digest.hexdigest())


def evaluator_for(posterior: PosteriorLike, model_size: float, tokens: float) -> Evaluator:
    """The compiled evaluator of a posterior at a target (cached on the draws' content,
    so reloading the same fit does not compile again)."""
    key = (_posterior_key(posterior), float(model_size), float(tokens))
    hit = _EVALUATORS.get(key)
    if hit is not None:
        _EVALUATORS.move_to_end(key)
        return hit
    evaluator = Evaluator(posterior, model_size, tokens)
    _EVALUATORS[key] = evaluator
    while len(_EVALUATORS) > _EVALUATOR_CACHE_SIZE:
        _EVALUATORS.popitem(last=False)
    return evaluator
