"""Posterior: the one seam between fitted laws and every decision layer.

A :class:`Posterior` holds a law, its parameter draws, the reference scaling and the
observation model, and turns them into loss draws at any mixture and scale. The law's
PyTensor mean function is compiled once per law into a function vectorised over draws
and rows, so no numpy twin of a law exists anywhere.

:class:`PosteriorLike` writes down what the decision layers read from a posterior; a
:class:`Posterior` and a stacking mixture of laws
(:class:`bayesmix.compare.StackedPosterior`) both keep it (``tests/test_posterior_contract.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
import pytensor
import pytensor.tensor as pt

from . import observation
from .errors import UsageError
from .laws import Law, get_law
from .scaling import Scaling
from .weighted import INTERVAL_QUANTILES


@runtime_checkable
class PosteriorLike(Protocol):
    """What ``predict``, ``recommend``, ``rank``, ``next`` and the report read from a
    posterior. Every array has a leading draw axis of :attr:`n_draws`; losses are in nats,
    ``(S, rows, T)`` over the rows of ``weights`` and the :attr:`target_domains`: the
    mixture's :attr:`domains` (whose weights ``weights`` holds), then the
    :attr:`eval_domains` (evaluated, never in a mixture).
    """

    domains: tuple
    eval_domains: tuple
    meta: dict

    @property
    def target_domains(self) -> tuple:
        """The domains whose losses are predicted: :attr:`domains`, then :attr:`eval_domains`."""

    @property
    def n_draws(self) -> int: ...

    @property
    def n_domains(self) -> int: ...

    @property
    def law(self):
        """Has ``name`` (and ``options``): labels and cache keys."""

    @property
    def scaling(self) -> Scaling: ...

    def full_weights(self, weights) -> np.ndarray:
        """``weights (rows, K)`` over the :attr:`target_domains`, 0 on the evaluation-only ones."""

    def expected_loss(self, weights, model_size, tokens, **kwargs) -> np.ndarray:
        """Expected loss draws ``(S, rows, T)`` (the law and its error at that scale)."""

    def add_noise(self, mu: np.ndarray, *, seed=0, weights=None) -> np.ndarray:
        """Draws of observed losses of new runs around ``mu``."""

    def predictive_loss(self, weights, model_size, tokens, *, seed=0) -> np.ndarray:
        """:meth:`expected_loss` with a new run's noise."""

    def summarise(self, weights, model_size, tokens, *, seed=0, keep_draws=False) -> dict:
        """``mean``, ``sd`` and interval arrays ``(rows, K)`` of the predictive loss (and
        its ``draws`` with ``keep_draws``): :func:`predictive_summary`."""

    def symbolic_expected_loss(self, h, model_size, tokens):
        """:meth:`expected_loss` as a PyTensor expression of the mixtures ``h`` (for
        gradients in the optimiser)."""

    def subset(self, idx) -> "PosteriorLike":
        """The posterior of the draws ``idx``."""

    def thin(self, max_draws: int, seed: int = 0) -> "PosteriorLike":
        """At most ``max_draws`` draws, evenly spaced."""


def predictive_summary(posterior, weights, model_size, tokens, *, seed=0, keep_draws=False) -> dict:
    """What ``predict`` reports of a posterior at some mixtures and scales, ``(rows, T)``.

    ``mean``: the posterior mean of the expected loss; ``sd``, ``q05`` and ``q95``
    (:data:`~bayesmix.weighted.INTERVAL_QUANTILES`): of a new run's loss, the draws of
    :meth:`PosteriorLike.predictive_loss` with ``seed`` (its noise, and a fresh mixture
    effect only where ``weights`` holds a mixture the fit did not see). With
    ``keep_draws``, also those ``draws`` ``(S, rows, T)``: draw ``s`` is one joint
    outcome of all rows (the law's error at a scale and a mixture's effect shared by the
    rows they belong to).
    """
    mu = posterior.expected_loss(weights, model_size, tokens, seed=seed)
    pred = posterior.add_noise(mu, seed=seed, weights=weights)
    q05, q95 = np.quantile(pred, INTERVAL_QUANTILES, axis=0)
    out = {"mean": mu.mean(axis=0), "sd": pred.std(axis=0), "q05": q05, "q95": q95}
    if keep_draws:
        out["draws"] = pred
    return out


def observed_table(posterior, table):
    """``table`` as ``posterior`` predicts it: the evaluation-only domains the posterior
    models moved among its domains with weight 0
    (:meth:`bayesmix.data.RunTable.with_evaluation_domains`), so that its losses have one
    column per target domain; a posterior without evaluation-only domains gets the table
    itself (its evaluation-only losses are not predicted), and so does a table whose
    domains are already the posterior's target domains.

    Raises
    ------
    DataError
        If the table lacks a loss column of an evaluation-only domain of the posterior.
    """
    if not posterior.eval_domains or tuple(table.domains) == tuple(posterior.target_domains):
        return table
    return table.with_evaluation_domains(tuple(posterior.eval_domains))


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
        The mixture's domains in the user's order: ``weights`` have one column each.
    sigma : ndarray, optional
        ``(S, T)`` observation noise sd on the log-loss scale (per target domain).
    nu : ndarray, optional
        ``(S,)`` Student-t degrees of freedom when the fit used that likelihood.
    run_sd : ndarray, optional
        ``(S,)`` sd of the per-run offset; a new run draws a fresh offset.
    observation : ObservationDraws, optional
        Draws of the law's discrepancy over scale and of the mixture effects
        (:mod:`bayesmix.observation`); None for a law-only posterior.
    eval_domains : tuple of str
        Evaluation-only domains the law predicts (a law with
        :attr:`~bayesmix.laws.Law.predicts_evaluation_domains` fitted to a table that has
        them): never in a mixture, their weight is 0 in the law. Losses are predicted for
        the ``T = K + E`` :attr:`target_domains`, and per-domain parameters have ``T``
        entries.
    """

    law: Law
    draws: dict
    scaling: Scaling
    domains: tuple
    sigma: np.ndarray | None = None
    nu: np.ndarray | None = None
    run_sd: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    observation: observation.ObservationDraws | None = None
    eval_domains: tuple = ()

    @property
    def n_draws(self) -> int:
        first = next(iter(self.draws.values()))
        return int(np.shape(first)[0])

    @property
    def n_domains(self) -> int:
        """Number of mixture domains ``K`` (the weights' columns)."""
        return len(self.domains)

    @property
    def target_domains(self) -> tuple:
        """The domains whose losses are predicted: :attr:`domains`, then :attr:`eval_domains`."""
        return tuple(self.domains) + tuple(self.eval_domains)

    @property
    def n_targets(self) -> int:
        """Number of target domains ``T = K + E`` (the losses' columns)."""
        return len(self.target_domains)

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
            observation=None if self.observation is None else self.observation.subset(idx),
            eval_domains=self.eval_domains,
        )

    # ----------------------------------------------------------------- inputs
    def full_weights(self, weights) -> np.ndarray:
        """Mixtures over the :attr:`target_domains`, ``(rows, T)``: ``weights`` over the
        mixture domains ``(rows, K)`` with 0 for every evaluation-only domain, or already
        over the target domains (their evaluation-only weights must be 0).

        Raises
        ------
        UsageError
            If the weights have neither ``K`` nor ``T`` columns, or put weight on an
            evaluation-only domain.
        """
        h = np.atleast_2d(np.asarray(weights, dtype=float))
        E = len(self.eval_domains)
        if E and h.shape[-1] == self.n_targets:
            if np.any(h[..., self.n_domains:] != 0):
                raise UsageError(f"evaluation-only domains ({', '.join(self.eval_domains)}) are never in a "
                                 "mixture: their weights must be 0")
            return h
        if h.shape[-1] != self.n_domains:
            raise UsageError(
                f"mixtures have {h.shape[-1]} weights but the fit has {self.n_domains} domains "
                f"({', '.join(self.domains)})"
            )
        return np.concatenate([h, np.zeros(h.shape[:-1] + (E,))], axis=-1) if E else h

    def _check_inputs(self, weights, model_size, tokens):
        h = self.full_weights(weights)
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
            out.append(value.reshape((value.shape[0],) + _draw_shape(param, self.n_targets)))
        return out

    # ----------------------------------------------------------------- predictions
    def law_mean(self, weights, model_size, tokens, *, chunk: int = 4096) -> np.ndarray:
        """The law's mean loss per draw, row and target domain, in nats: ``(S, rows, T)``,
        without the observation model's discrepancy and mixture effects."""
        h, N, D = self._check_inputs(weights, model_size, tokens)
        n, d = self.scaling.scale_inputs(N, D)
        self._check_law_domain(n)
        fn = compiled_mean(self.law)
        params = self._param_arrays()
        loss_ref = np.asarray(self.scaling.loss_ref)
        parts = []
        for start in range(0, h.shape[0], chunk):
            sl = slice(start, start + chunk)
            parts.append(fn(*params, h[sl], n[sl], d[sl]))
        return np.concatenate(parts, axis=1) * loss_ref

    def _log_floor(self) -> np.ndarray | None:
        """Log of the law's irreducible loss in nats, ``(S, 1, T)``, where the discrepancy
        scales the reducible loss (:attr:`bayesmix.observation.ObservationDesign.discrepancy_scale`);
        else None."""
        if self.observation is None or self.observation.design.discrepancy_scale != "reducible":
            return None
        floor = dict(zip((p.name for p in self.law.params), self._param_arrays()))[self.law.irreducible_loss]
        return np.log(floor.reshape(floor.shape[0], 1, -1) * np.asarray(self.scaling.loss_ref))

    def expected_loss(self, weights, model_size, tokens, *, chunk: int = 4096, seed=0,
                      jointly_with=None) -> np.ndarray:
        """Expected loss per draw, row and target domain, in nats: ``(S, rows, T)``.

        The law's mean with the observation model's discrepancy over scale at the asked
        scale (on the law's reducible loss, or as a factor ``exp(delta)``, as the fit's
        design says) and times ``exp(eta_known)``, the effect of a mixture seen in the
        fit (:func:`bayesmix.observation.expected_log_loss`): the law's error at the asked
        scale is part of every draw, so its spread grows away from the fitted scales.

        Parameters
        ----------
        weights : array_like ``(rows, K)`` or ``(K,)``
        model_size, tokens : float or array_like ``(rows,)``
            N in parameters and D in tokens (natural units).
        seed : int
            Seed of the discrepancy's draws at scales the fit did not see (the same seed
            gives the same draws).
        jointly_with : (float, float), optional
            A scale ``(N0, D0)`` (natural units): the discrepancy at the rows is drawn
            conditional on its draw there with seed 0, the draw a decision at that scale
            uses (:meth:`symbolic_expected_loss`), so that the rows' losses say what they
            would about the law's error at ``(N0, D0)`` (acquisition's predictions).
        """
        mu = self.law_mean(weights, model_size, tokens, chunk=chunk)
        if self.observation is None:
            return mu
        h, N, D = self._check_inputs(weights, model_size, tokens)
        n, d = self.scaling.scale_inputs(N, D)
        joint = None
        if jointly_with is not None:
            n0, d0 = self.scaling.scale_inputs(np.atleast_1d(float(jointly_with[0])),
                                               np.atleast_1d(float(jointly_with[1])))
            joint = (float(np.ravel(n0)[0]), float(np.ravel(d0)[0]))
        return np.exp(observation.expected_log_loss(self.observation, np.log(mu), h, n, d, log_floor=self._log_floor(),
                                                    seed=seed, jointly_with=joint))

    def _check_law_domain(self, n: np.ndarray) -> None:
        """Refuse model sizes where the law is undefined for some draw (at or below a
        parameter bounded by the model size, e.g. the capacity floor ``H``)."""
        for param in self.law.params:
            if not param.below_model_size:
                continue
            bound = float(np.max(self.draws[param.name]))
            if np.any(n <= bound):
                smallest = float(np.min(n)) * self.scaling.n_ref
                raise UsageError(
                    f"model size {smallest:.4g} is at or below the fitted '{param.name}' of law "
                    f"'{self.law.name}' ({bound * self.scaling.n_ref:.4g} parameters in some draws): "
                    "the law is not defined there; predict at larger model sizes")

    def add_noise(self, mu: np.ndarray, *, seed=0, weights=None) -> np.ndarray:
        """Turn expected-loss draws ``(S, rows, T)`` into draws of an observed loss.

        A new observation is a new run: it gets observation noise and, when the fit has
        them, a fresh per-run offset shared by its domains and, unless ``weights`` shows
        its mixture was seen in the fit, a fresh mixture effect.
        """
        mix_sd, new_mixture = None, None
        if self.observation is not None:
            mix_sd = self.observation.new_mixture_sd()
            if mix_sd is not None and weights is not None:
                new_mixture = ~self.observation.known_mixture_effect(self.full_weights(weights))[1]
        return observation.add_noise(mu, sigma=self.sigma, nu=self.nu, run_sd=self.run_sd, mix_sd=mix_sd,
                                     new_mixture=new_mixture, seed=seed)

    def predictive_loss(self, weights, model_size, tokens, *, seed=0) -> np.ndarray:
        """Draws of an observed loss (observation noise included): ``(S, rows, T)``."""
        return self.add_noise(self.expected_loss(weights, model_size, tokens, seed=seed), seed=seed,
                              weights=weights)

    def summarise(self, weights, model_size, tokens, *, seed=0, keep_draws=False) -> dict[str, np.ndarray]:
        """:func:`predictive_summary` of this posterior."""
        return predictive_summary(self, weights, model_size, tokens, seed=seed, keep_draws=keep_draws)

    def symbolic_expected_loss(self, h, model_size, tokens, *, seed=0):
        """PyTensor graph of the expected loss with the draws as constants.

        ``h`` is a symbolic ``(..., rows, K)`` mixture tensor over :attr:`domains`
        (evaluation-only domains get weight 0); ``model_size`` and ``tokens`` are numbers
        or arrays in natural units. Returns ``(S, rows, T)`` in nats. Used by
        the decision layer to get gradients with respect to the mixture. The discrepancy
        at the scale enters with constant draws (the same draws as :meth:`expected_loss`
        with the same seed); a mixture's own effect does not (it belongs to mixtures
        already run, not to the continuum a decision searches).
        """
        n, d = self.scaling.scale_inputs(np.atleast_1d(model_size), np.atleast_1d(tokens))
        self._check_law_domain(n)
        p = {}
        for param, value in zip(self.law.params, self._param_arrays()):
            p[param.name] = pt.constant(value)
        if self.eval_domains:
            h = pt.concatenate([h, pt.zeros(tuple(h.shape)[:-1] + (len(self.eval_domains),))], axis=-1)
        mean = self.law.mean(p, h, pt.constant(n), pt.constant(d))
        mean = mean * pt.constant(np.asarray(self.scaling.loss_ref))
        if self.observation is not None:
            delta = self.observation.discrepancy(n, d, seed=seed)
            if delta is not None:
                log_floor = self._log_floor()
                mean = pt.exp(observation.discrepant_log_mean(
                    pt.log(mean), pt.constant(delta), None if log_floor is None else pt.constant(log_floor), math=pt))
        return mean
