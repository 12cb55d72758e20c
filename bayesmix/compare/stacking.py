"""Stacking of laws: a posterior that mixes the compared laws' posteriors by their
stacking weights, and the comparison files that carry them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..chain_stacking import allocate_draws
from ..errors import UsageError
from ..posterior import predictive_summary
from .comparison import Comparison


class StackedPosterior:
    """The stacking mixture of several laws' posterior predictives.

    Draws are taken from each law's posterior in proportion to its stacking weight
    (evenly spaced within each law's draws, deterministically), so every method of
    :class:`~bayesmix.posterior.Posterior` that decision layers use works unchanged:
    ``expected_loss``, ``predictive_loss``, ``add_noise``, ``summarise``,
    ``symbolic_expected_loss``, ``thin``, ``subset``. Each draw keeps its own law's
    observation noise and run offset.

    Parameters
    ----------
    posteriors : dict of str to Posterior
        One posterior per law, all over the same domains.
    weights : dict of str to float
        Stacking weights (normalised here; laws with weight 0 are dropped).
    n_draws : int, optional
        Total draws of the mixture; default: the most any component has.

    Attributes
    ----------
    components : dict of str to Posterior
    weights : dict of str to float
    component : ndarray ``(S,)``
        Which law each draw comes from (index into ``components``).
    """

    def __init__(self, posteriors: dict, weights: dict, n_draws: int | None = None, *, _index=None):
        names = [n for n in posteriors if weights.get(n, 0.0) > 0]
        if not names:
            raise UsageError("no law has a positive stacking weight among the fits given")
        domains = {(tuple(posteriors[n].domains), tuple(posteriors[n].eval_domains)) for n in names}
        if len(domains) > 1:
            raise UsageError("the stacked laws were fitted on different domains (or predict different "
                             "evaluation-only ones): "
                             + "; ".join(f"{n}: {', '.join(posteriors[n].target_domains)}" for n in names))
        total = sum(weights[n] for n in names)
        self.weights = {n: float(weights[n]) / total for n in names}
        self.components = {n: posteriors[n] for n in names}
        self._names = names
        if _index is None:
            S = int(n_draws or max(p.n_draws for p in self.components.values()))
            picks = allocate_draws([self.weights[n] for n in names],
                                   [self.components[n].n_draws for n in names], S)
            self.component = np.concatenate([np.full(len(p), c) for c, p in enumerate(picks)])
            self.local_index = np.concatenate(picks)
        else:
            self.component, self.local_index = (np.asarray(a, dtype=int) for a in _index)
        self.meta = {"stacked": dict(self.weights)}

    # ------------------------------------------------------------------ Posterior API
    @property
    def domains(self) -> tuple:
        return tuple(self.components[self._names[0]].domains)

    @property
    def eval_domains(self) -> tuple:
        return tuple(self.components[self._names[0]].eval_domains)

    @property
    def target_domains(self) -> tuple:
        return self.domains + self.eval_domains

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    def full_weights(self, weights) -> np.ndarray:
        """Mixtures over the :attr:`target_domains` (see :meth:`Posterior.full_weights`)."""
        return self.components[self._names[0]].full_weights(weights)

    @property
    def n_draws(self) -> int:
        return int(len(self.component))

    @property
    def scaling(self):
        return self.components[self._names[0]].scaling

    @property
    def law(self) -> "StackedLaw":
        """A label standing in for the law (``name`` and ``options``) in reports and cache
        keys; the draws mix several laws, so it has no mean function."""
        return StackedLaw("stacked(" + ",".join(f"{n}={w:.3f}" for n, w in self.weights.items()) + ")")

    @property
    def draws(self) -> dict:
        """The draws of every component at the mixture's draws, keyed ``law/param``, with
        the component of each draw (a content key: equal draws give equal dicts)."""
        out = {"component": self.component.astype(float), "local_index": self.local_index.astype(float)}
        for c, name in enumerate(self._names):
            where = self.component == c
            for key, value in self.components[name].draws.items():
                out[f"{name}/{key}"] = np.asarray(value)[self.local_index[where]]
        return out

    @property
    def sigma(self) -> np.ndarray | None:
        """``(S, T)`` observation noise sd of each draw (its own law's), per target domain."""
        T = len(self.target_domains)
        parts = [(p.sigma if p.sigma is not None else np.zeros((p.n_draws, T)), w) for p, w in self._parts()]
        out = np.empty((self.n_draws, T))
        for value, where in parts:
            out[where] = value
        return out

    def _parts(self):
        """(component posterior restricted to its draws, positions in the mixture)."""
        for c, name in enumerate(self._names):
            where = np.flatnonzero(self.component == c)
            if len(where):
                yield self.components[name].subset(self.local_index[where]), where

    def subset(self, idx) -> "StackedPosterior":
        idx = np.asarray(idx)
        return StackedPosterior(self.components, self.weights, _index=(self.component[idx], self.local_index[idx]))

    def thin(self, max_draws: int, seed: int = 0) -> "StackedPosterior":
        if self.n_draws <= max_draws:
            return self
        return self.subset(np.linspace(0, self.n_draws - 1, max_draws).round().astype(int))

    def expected_loss(self, weights, model_size, tokens, **kwargs) -> np.ndarray:
        """Expected loss per mixture draw, row and target domain, in nats: ``(S, rows, T)``."""
        out = None
        for post, where in self._parts():
            mu = post.expected_loss(weights, model_size, tokens, **kwargs)
            if out is None:
                out = np.empty((self.n_draws,) + mu.shape[1:])
            out[where] = mu
        return out

    def add_noise(self, mu: np.ndarray, *, seed=0, weights=None) -> np.ndarray:
        """Observed-loss draws: each draw gets its own law's noise and a fresh run offset."""
        out = np.empty_like(mu)
        for c, (post, where) in enumerate(self._parts()):
            out[where] = post.add_noise(mu[where], seed=np.random.SeedSequence([int(seed), c]).generate_state(1)[0],
                                        weights=weights)
        return out

    @property
    def observation(self):
        """None: a stacked posterior's draws carry their own laws' observation models, which
        :meth:`expected_loss` and :meth:`add_noise` apply per component."""
        return None

    def predictive_loss(self, weights, model_size, tokens, *, seed=0) -> np.ndarray:
        # ``weights`` too: a mixture a component saw keeps its effect (no fresh one).
        return self.add_noise(self.expected_loss(weights, model_size, tokens, seed=seed), seed=seed,
                              weights=weights)

    def summarise(self, weights, model_size, tokens, *, seed=0, keep_draws=False) -> dict:
        """:func:`bayesmix.posterior.predictive_summary` of the mixture of laws."""
        return predictive_summary(self, weights, model_size, tokens, seed=seed, keep_draws=keep_draws)

    def symbolic_expected_loss(self, h, model_size, tokens):
        """PyTensor graph ``(S, rows, K)`` of the mixture's expected loss (for gradients).

        ``h`` is ``(rows, K)``, or ``(S, rows, K)`` with one mixture set per draw.
        """
        import pytensor.tensor as pt

        parts, positions = [], []
        for post, where in self._parts():
            # A 3-d ``h`` carries one mixture set per draw (the decision layer's per-draw
            # optima): each component gets the rows of its own draws.
            h_part = h[where] if h.ndim == 3 else h
            parts.append(post.symbolic_expected_loss(h_part, model_size, tokens))
            positions.append(where)
        order = np.argsort(np.concatenate(positions))
        return pt.concatenate(parts, axis=0)[order]

    def __repr__(self) -> str:
        ws = ", ".join(f"{n} {w:.3f}" for n, w in self.weights.items())
        return f"StackedPosterior({ws}; {self.n_draws} draws)"


@dataclass(frozen=True)
class StackedLaw:
    """Name of a stacking mixture where code expects ``posterior.law`` (display, cache keys)."""

    name: str
    options: dict = field(default_factory=dict)
    title: str = "stacking mixture of laws"


def is_comparison_file(path) -> bool:
    """Whether ``path`` is a comparison JSON written by ``bayesmix compare`` (so that a
    command given a model path can stack the compared laws instead of loading one fit)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with path.open() as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return '"bayesmix_type": "comparison"' in head


def stacked_posterior(comparison, fits=None, *, n_draws: int | None = None, max_draws: int | None = None) -> StackedPosterior:
    """The stacking mixture of a comparison's laws, ready for prediction and decisions.

    Parameters
    ----------
    comparison : Comparison, dict or path
        A comparison, its JSON dict, or the JSON file written by ``bayesmix compare``.
    fits : dict of str to (Fit or Posterior or path), optional
        Each law's full-data fit; default: the fits the comparison saved
        (``--save-fits``), resolved relative to the JSON file when relative.
    n_draws : int, optional
        Total draws of the mixture.
    max_draws : int, optional
        Thin each law's posterior to this many draws first.

    Returns
    -------
    StackedPosterior
    """
    from ..inference import Fit

    base = None
    if isinstance(comparison, (str, Path)):
        base = Path(comparison).parent
        comparison = Comparison.load(comparison)
    elif isinstance(comparison, dict):
        comparison = Comparison.from_dict(comparison)
    weights = {n: w for n, w in comparison.stacking_weights.items() if w > 0}
    if not weights:
        raise UsageError("the comparison has no stacking weights (no law was scored)")
    fits = dict(fits or {})
    posteriors = {}
    for name in weights:
        source = fits.get(name, comparison.laws[name].saved_fit)
        if source is None:
            raise UsageError(
                f"no full-data fit of law '{name}' (stacking weight {weights[name]:.3f}): rerun "
                "'bayesmix compare ... --save-fits DIR', or pass the fit (Python: fits={...})")
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_absolute() and base is not None and not path.exists():
                path = base / path
            source = Fit.load(path)
        posteriors[name] = source.posterior(max_draws) if isinstance(source, Fit) else source
    return StackedPosterior(posteriors, weights, n_draws=n_draws)
