"""Posterior: the one seam between fitted laws and every decision layer.

A :class:`Posterior` holds a law, its parameter draws, the reference scaling and the
observation model, and turns them into loss draws at any mixture and scale. The law's
PyTensor mean function is compiled once per law into a function vectorised over draws
and rows, so no numpy twin of a law exists anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pytensor
import pytensor.tensor as pt

from .errors import UsageError
from .laws import Law, get_law
from .scaling import Scaling


def _draw_shape(param, n_domains):
    """Shape of one parameter for S draws following the law broadcasting convention."""
    if not param.dims:
        return (1, 1)
    return (1,) + param.shape(n_domains)


def symbolic_params(law: Law) -> dict[str, pt.TensorVariable]:
    """Symbolic inputs for S draws: ``(S, 1, K)`` per domain, ``(S, 1, 1)`` scalars."""
    out = {}
    for param in law.params:
        shape = (None, 1, 1) if not param.dims else (None, 1) + (None,) * len(param.dims)
        out[param.name] = pt.tensor(param.name, shape=shape, dtype="float64")
    return out


@lru_cache(maxsize=32)
def _compiled_mean(law_name: str, options: tuple):
    law = get_law(law_name, **dict(options))
    p = symbolic_params(law)
    h = pt.matrix("h")
    n = pt.col("n")
    d = pt.col("d")
    mean = law.mean(p, h, n, d)
    inputs = [p[param.name] for param in law.params] + [h, n, d]
    return pytensor.function(inputs, mean, on_unused_input="ignore")


def compiled_mean(law: Law):
    """Compiled ``f(*params, h, n, d) -> (S, rows, K)`` for a law (cached per law)."""
    return _compiled_mean(law.name, tuple(sorted(law.options.items())))


@dataclass
class Posterior:
    """Posterior draws of a fitted law, ready to predict losses anywhere.

    Parameters
    ----------
    law : Law
        The fitted law.
    draws : dict of str to ndarray
        Parameter draws with a leading draw axis: ``(S,)`` for scalars, ``(S, K)`` per
        domain, ``(S, K, K)`` for domain matrices.
    scaling : Scaling
        Reference units of the fit.
    domains : tuple of str
        Domain names in the user's order.
    sigma : ndarray, optional
        ``(S, K)`` observation noise sd on the log-loss scale (per domain).
    nu : ndarray, optional
        ``(S,)`` Student-t degrees of freedom when the fit used that likelihood.
    run_sd : ndarray, optional
        ``(S,)`` sd of the per-run offset; a new run draws a fresh offset.
    """

    law: Law
    draws: dict
    scaling: Scaling
    domains: tuple
    sigma: np.ndarray | None = None
    nu: np.ndarray | None = None
    run_sd: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_draws(self) -> int:
        first = next(iter(self.draws.values()))
        return int(np.shape(first)[0])

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    def thin(self, max_draws: int, seed: int = 0) -> "Posterior":
        """A posterior with at most ``max_draws`` draws, chosen evenly (deterministic)."""
        if self.n_draws <= max_draws:
            return self
        idx = np.linspace(0, self.n_draws - 1, max_draws).round().astype(int)
        return self.subset(idx)

    def subset(self, idx) -> "Posterior":
        """The posterior restricted to the draws ``idx``."""
        idx = np.asarray(idx)
        return Posterior(
            law=self.law,
            draws={k: np.asarray(v)[idx] for k, v in self.draws.items()},
            scaling=self.scaling,
            domains=self.domains,
            sigma=None if self.sigma is None else self.sigma[idx],
            nu=None if self.nu is None else self.nu[idx],
            run_sd=None if self.run_sd is None else self.run_sd[idx],
            meta=dict(self.meta),
        )

    # ----------------------------------------------------------------- inputs
    def _check_inputs(self, weights, model_size, tokens):
        h = np.atleast_2d(np.asarray(weights, dtype=float))
        if h.shape[-1] != self.n_domains:
            raise UsageError(
                f"mixtures have {h.shape[-1]} weights but the fit has {self.n_domains} domains "
                f"({', '.join(self.domains)})"
            )
        rows = h.shape[0]
        N = np.broadcast_to(np.asarray(model_size, dtype=float), (rows,))
        D = np.broadcast_to(np.asarray(tokens, dtype=float), (rows,))
        if np.any(h < -1e-12) or np.any(np.abs(h.sum(-1) - 1) > 1e-6):
            raise UsageError("mixture weights must be non-negative and sum to 1")
        if np.any(~np.isfinite(N)) or np.any(N <= 0) or np.any(~np.isfinite(D)) or np.any(D <= 0):
            raise UsageError("model size and tokens must be positive and finite")
        return np.clip(h, 0.0, None), N, D

    def _param_arrays(self):
        out = []
        for param in self.law.params:
            value = np.asarray(self.draws[param.name], dtype=float)
            out.append(value.reshape((value.shape[0],) + _draw_shape(param, self.n_domains)))
        return out

    # ----------------------------------------------------------------- predictions
    def expected_loss(self, weights, model_size, tokens, *, chunk: int = 4096) -> np.ndarray:
        """Expected loss per draw, row and domain, in nats: ``(S, rows, K)``.

        Parameters
        ----------
        weights : array_like ``(rows, K)`` or ``(K,)``
        model_size, tokens : float or array_like ``(rows,)``
            N in parameters and D in tokens (natural units).
        """
        h, N, D = self._check_inputs(weights, model_size, tokens)
        n, d = self.scaling.scale_inputs(N, D)
        fn = compiled_mean(self.law)
        params = self._param_arrays()
        loss_ref = np.asarray(self.scaling.loss_ref)
        parts = []
        for start in range(0, h.shape[0], chunk):
            sl = slice(start, start + chunk)
            parts.append(fn(*params, h[sl], n[sl], d[sl]))
        return np.concatenate(parts, axis=1) * loss_ref

    def add_noise(self, mu: np.ndarray, *, seed=0) -> np.ndarray:
        """Turn expected-loss draws ``(S, rows, K)`` into draws of an observed loss.

        A new observation is a new run: it gets observation noise and, when the fit has
        one, a fresh per-run offset shared by its domains.
        """
        if self.sigma is None:
            return mu
        rng = np.random.default_rng(seed)
        if self.run_sd is not None:
            offset = rng.standard_normal(mu.shape[:2]) * np.asarray(self.run_sd)[:, None]
            mu = mu * np.exp(offset)[:, :, None]
        sigma = np.asarray(self.sigma)[:, None, :]
        if self.nu is not None:
            eps = rng.standard_t(np.asarray(self.nu)[:, None, None], size=mu.shape)
        else:
            eps = rng.standard_normal(mu.shape)
        return mu * np.exp(sigma * eps)

    def predictive_loss(self, weights, model_size, tokens, *, seed=0) -> np.ndarray:
        """Draws of an observed loss (observation noise included): ``(S, rows, K)``."""
        return self.add_noise(self.expected_loss(weights, model_size, tokens), seed=seed)

    def summarise(self, weights, model_size, tokens, *, seed=0) -> dict[str, np.ndarray]:
        """Posterior-mean expected loss, and predictive sd and 5%/95% quantiles, ``(rows, K)``."""
        mu = self.expected_loss(weights, model_size, tokens)
        pred = self.add_noise(mu, seed=seed)
        return {
            "mean": mu.mean(axis=0),
            "sd": pred.std(axis=0),
            "q05": np.quantile(pred, 0.05, axis=0),
            "q95": np.quantile(pred, 0.95, axis=0),
        }

    def symbolic_expected_loss(self, h, model_size, tokens):
        """PyTensor graph of the expected loss with the draws as constants.

        ``h`` is a symbolic ``(rows, K)`` mixture matrix; ``model_size`` and ``tokens``
        are numbers or arrays in natural units. Returns ``(S, rows, K)`` in nats. Used by
        the decision layer to get gradients with respect to the mixture.
        """
        n, d = self.scaling.scale_inputs(np.atleast_1d(model_size), np.atleast_1d(tokens))
        p = {}
        for param, value in zip(self.law.params, self._param_arrays()):
            p[param.name] = pt.constant(value)
        mean = self.law.mean(p, h, pt.constant(n), pt.constant(d))
        return mean * pt.constant(np.asarray(self.scaling.loss_ref))
