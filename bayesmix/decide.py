"""Risk-aware mixture recommendations: the decision layer.

Given a posterior over a scaling law (:class:`~bayesmix.posterior.PosteriorLike`: a
fit's, or a stacking mixture of laws), choose the training mixture ``h`` that is best
at a target model size ``N`` and token count ``D``, and say how sure the posterior is
about it.

Objective
    For posterior draw ``s`` the objective is a weighted average of the domains'
    expected losses at the target, ``f_s(h) = sum_k w_k L_k(h, N, D; theta_s)`` in nats:
    the plain average (default), user weights, or a single domain (:class:`Objective`).
Risk
    The draws ``f_s(h)`` are reduced to one number (:class:`Risk`): their mean, an upper
    quantile (Harrell-Davis estimate, a smooth weighted average of order statistics)
    or the CVaR (mean of the worst ``1 - alpha`` of the posterior mass). All three are
    weighted averages of the sorted draws, so they accept importance weights
    (``draw_weights``) and have the gradient ``sum_s c_s grad f_s(h)``.
Constraints
    Per-domain lower and upper bounds and data availability (``h_d D <= E * available_d``,
    an upper bound on ``h_d``) define a box intersected with the simplex
    (:class:`Constraints`). Infeasible sets are refused with a message that names the
    conflicting constraints. Every mixture the optimiser visits is an exact Euclidean
    projection onto this polytope (:func:`project_to_polytope`), so output constraints
    hold to rounding.
Method
    Sample-average optimisation over the posterior draws: the law's PyTensor mean is
    compiled once per (posterior, target) through
    :meth:`Posterior.symbolic_expected_loss` with a ``(draws, rows, K)`` mixture tensor,
    so a single compiled value-and-gradient serves both the risk objective (every draw
    evaluated at the same mixture) and the per-draw optima (each draw at its own mixture,
    all draws optimised at once). The optimiser is a batched spectral projected gradient
    method (Birgin, Martinez and Raydan, 2000) with several restarts. No numpy copy of any
    law exists here.

The acquisition layer reuses :class:`MixtureProblem`: the per-draw optima do not depend
on draw weights, so the regret of a recommendation under a reweighted posterior costs one
risk optimisation (:meth:`MixtureProblem.recommend_mixture`, :meth:`MixtureProblem.expected_regret`).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
from scipy import special

from ._files import json_report, json_safe
from .errors import DataError, UsageError
from .polytope import project_to_polytope, spectral_projected_gradient
from .posterior import PosteriorLike
from .units import format_number, format_quantity, parse_quantity
from .weighted import normalised_draw_weights, weighted_quantile

#: Posterior draws used by default for the decision (risk, regret, optimum posterior).
DEFAULT_MAX_DRAWS = 400
#: Restarts of the risk optimisation (the centre of the feasible set and random points).
DEFAULT_RESTARTS = 4
#: Slack allowed when checking that bounds and the sum constraint hold.
CONSTRAINT_TOLERANCE = 1e-12
#: Width of the reported intervals (5% and 95% quantiles).
INTERVAL = (0.05, 0.95)


# ============================================================================ risk measures
@dataclass(frozen=True)
class Risk:
    """How the posterior draws of the objective are reduced to one number (lower is better).

    Parameters
    ----------
    kind : {"mean", "quantile", "cvar"}
        ``mean``: the expected objective. ``quantile``: the ``level`` quantile of the
        objective over the posterior (Harrell-Davis estimate), e.g. 0.9 for "the loss we
        beat with 90% probability". ``cvar``: the mean of the worst ``1 - level`` of the
        posterior mass (conditional value at risk).
    level : float, optional
        Quantile level in (0, 1) or CVaR level in [0, 1).

    Examples
    --------
    >>> Risk.parse("cvar:0.9")
    Risk(kind='cvar', level=0.9)
    """

    kind: str = "mean"
    level: float | None = None

    def __post_init__(self):
        if self.kind not in ("mean", "quantile", "cvar"):
            raise UsageError(f"unknown risk '{self.kind}': use mean, quantile:Q or cvar:ALPHA")
        if self.kind == "mean":
            if self.level is not None:
                raise UsageError("risk 'mean' takes no level")
            return
        if self.level is None or not np.isfinite(self.level):
            raise UsageError(f"risk '{self.kind}' needs a level, e.g. {self.kind}:0.9")
        if self.kind == "quantile" and not 0 < self.level < 1:
            raise UsageError(f"quantile level must be in (0, 1), got {self.level}")
        if self.kind == "cvar" and not 0 <= self.level < 1:
            raise UsageError(f"CVaR level must be in [0, 1), got {self.level}")

    @classmethod
    def parse(cls, spec) -> "Risk":
        """Read ``"mean"``, ``"quantile:Q"`` or ``"cvar:ALPHA"`` (a :class:`Risk` passes through)."""
        if isinstance(spec, Risk):
            return spec
        if spec is None:
            return cls()
        text = str(spec).strip().lower()
        kind, sep, level = text.partition(":")
        if kind == "mean" and not sep:
            return cls()
        if kind in ("quantile", "cvar") and sep:
            try:
                value = float(level)
            except ValueError:
                value = None
            if value is not None:
                return cls(kind, value)
        raise UsageError(
            f"cannot read risk '{spec}': write mean, quantile:Q (e.g. quantile:0.9) or "
            "cvar:ALPHA (e.g. cvar:0.9)"
        )

    def __str__(self) -> str:
        return "mean" if self.kind == "mean" else f"{self.kind}:{self.level:g}"

    def describe(self) -> str:
        """Plain-language description of the measure."""
        if self.kind == "mean":
            return "posterior mean"
        if self.kind == "quantile":
            return f"{100 * self.level:g}% posterior quantile"
        return f"CVaR {100 * self.level:g}% (mean of the worst {100 * (1 - self.level):g}% of the posterior)"

    def coefficients(self, values, draw_weights=None) -> np.ndarray:
        """Coefficients ``c`` with ``risk = sum_s c_s values_s`` (per column), ``(S, M)``.

        They are non-negative and sum to one per column; at a point where no two draws tie
        they are also the weights of the risk's gradient, ``sum_s c_s grad f_s``.
        """
        values = np.asarray(values, dtype=float)
        squeeze = values.ndim == 1
        values = values.reshape(values.shape[0], -1)
        S, M = values.shape
        w = normalised_draw_weights(draw_weights, S)
        if self.kind == "mean":
            coef = np.repeat(w[:, None], M, axis=1)
        else:
            order = np.argsort(values, axis=0, kind="stable")
            w_sorted = w[order]
            upper = np.clip(np.cumsum(w_sorted, axis=0), 0.0, 1.0)
            upper[-1] = 1.0
            lower = np.clip(upper - w_sorted, 0.0, 1.0)
            if self.kind == "cvar":
                a = self.level
                sorted_coef = (np.maximum(upper, a) - np.maximum(lower, a)) / (1.0 - a)
            else:
                n_eff = 1.0 / np.sum(w**2)
                a = self.level * (n_eff + 1.0)
                b = (1.0 - self.level) * (n_eff + 1.0)
                sorted_coef = special.betainc(a, b, upper) - special.betainc(a, b, lower)
            coef = np.empty_like(sorted_coef)
            np.put_along_axis(coef, order, sorted_coef, axis=0)
        return coef[:, 0] if squeeze else coef

    def evaluate(self, values, draw_weights=None):
        """The risk of each column of ``values`` ``(S,)`` or ``(S, M)``."""
        values = np.asarray(values, dtype=float)
        return np.sum(self.coefficients(values, draw_weights) * values, axis=0)


def risk_value(values, risk="mean", draw_weights=None):
    """The risk measure of objective draws ``values`` ``(S,)`` or ``(S, M)``.

    Parameters
    ----------
    values : array_like
        Objective per posterior draw (and per mixture in the columns).
    risk : str or Risk
        ``"mean"``, ``"quantile:Q"`` or ``"cvar:ALPHA"``.
    draw_weights : array_like ``(S,)``, optional
        Importance weights of the draws (normalised here).

    Returns
    -------
    float or ndarray ``(M,)``
    """
    out = Risk.parse(risk).evaluate(values, draw_weights)
    return float(out) if np.ndim(out) == 0 else out


# ============================================================================ mixtures and objective
def _domain_index(domains) -> dict[str, int]:
    return {d: i for i, d in enumerate(domains)}


def _check_names(names, domains, what: str) -> None:
    unknown = [n for n in names if n not in domains]
    if unknown:
        raise UsageError(
            f"{what} names unknown domain(s) {', '.join(map(repr, unknown))}; "
            f"the fit's domains are: {', '.join(domains)}"
        )


def _weight_number(value, what: str) -> float:
    """One weight as a float; a string, list or None is refused naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UsageError(f"{what}: weight {str(value)[:40]!r} is not a number")
    return float(value)


def as_mixture(value, domains, *, what: str = "mixture") -> np.ndarray:
    """A mixture ``(K,)`` from a ``{domain: weight}`` mapping or a length-K sequence.

    Domains missing from a mapping get weight 0. Weights must be non-negative and sum to
    1 within 1e-3 (rounded weights from a file are renormalised; larger gaps are refused).
    """
    domains = tuple(domains)
    if isinstance(value, Mapping):
        _check_names(value.keys(), domains, what)
        h = np.zeros(len(domains))
        index = _domain_index(domains)
        for name, weight in value.items():
            h[index[name]] = _weight_number(weight, f"{what}, domain '{name}'")
    else:
        try:
            h = np.asarray(value, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise UsageError(f"{what} must be a {{domain: weight}} mapping or a list of weights, "
                             f"got {str(value)[:60]}") from None
        if h.shape[0] != len(domains):
            raise UsageError(f"{what} has {h.shape[0]} weights but the fit has {len(domains)} "
                             f"domains ({', '.join(domains)})")
    bad = np.flatnonzero(~np.isfinite(h) | (h < 0))
    if bad.size:
        raise UsageError(f"{what}: weight of '{domains[bad[0]]}' is {format_number(h[bad[0]])}; "
                         "weights must be finite and non-negative")
    total = h.sum()
    if abs(total - 1.0) > 1e-3:
        raise UsageError(f"{what}: weights sum to {total:.6g}, not 1")
    return h / total


@dataclass(frozen=True)
class Objective:
    """Which average of the domains' losses the mixture should minimise.

    Parameters
    ----------
    weights : mapping of str to float, optional
        Weight of each domain in the objective; domains left out get 0 and the weights are
        normalised to sum to 1. Default: the plain average over all domains.
    target_domain : str, optional
        Minimise one domain's loss only. Exclusive with ``weights``.
    """

    weights: Mapping[str, float] | None = None
    target_domain: str | None = None

    def domain_weights(self, domains) -> np.ndarray:
        """Objective weights ``(K,)`` summing to one, in the order of ``domains``."""
        domains = tuple(domains)
        if self.weights is not None and self.target_domain is not None:
            raise UsageError("give objective weights or a target domain, not both")
        if self.target_domain is not None:
            _check_names([self.target_domain], domains, "the target domain")
            w = np.zeros(len(domains))
            w[domains.index(self.target_domain)] = 1.0
            return w
        if self.weights is None:
            return np.full(len(domains), 1.0 / len(domains))
        _check_names(self.weights.keys(), domains, "the objective weights")
        w = np.zeros(len(domains))
        for name, value in self.weights.items():
            w[domains.index(name)] = float(value)
        if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise UsageError("objective weights must be non-negative with at least one positive")
        return w / w.sum()

    def describe(self, domains) -> str:
        if self.target_domain is not None:
            return f"loss on {self.target_domain}"
        if self.weights is None:
            return f"average loss over the {len(tuple(domains))} domains"
        w = self.domain_weights(domains)
        parts = ", ".join(f"{d}={v:.3g}" for d, v in zip(domains, w) if v > 0)
        return f"weighted average loss ({parts})"


# ============================================================================ constraints
@dataclass(frozen=True)
class Bounds:
    """Per-domain bounds on the mixture and the constraint behind each.

    Attributes
    ----------
    domains : tuple of str
    lower, upper : ndarray ``(K,)``
    lower_source, upper_source : tuple of str or None
        The user's constraint that sets each bound (None: the simplex itself).
    """

    domains: tuple
    lower: np.ndarray
    upper: np.ndarray
    lower_source: tuple
    upper_source: tuple

    def violations(self, mixture, tol: float = 1e-9) -> list[str]:
        """Constraints that ``mixture`` breaks, in words (empty when it is feasible)."""
        h = np.asarray(mixture, dtype=float)
        out = []
        for i, d in enumerate(self.domains):
            if h[i] < self.lower[i] - tol:
                out.append(f"{d}={h[i]:.4g} < {self.lower_source[i]}")
            if h[i] > self.upper[i] + tol:
                out.append(f"{d}={h[i]:.4g} > {self.upper_source[i]}")
        return out

    def binding(self, mixture, tol: float = 1e-9) -> list[str]:
        """The user's constraints that are active at ``mixture``."""
        h = np.asarray(mixture, dtype=float)
        out = []
        for i in range(len(self.domains)):
            if self.lower_source[i] and h[i] <= self.lower[i] + tol:
                out.append(self.lower_source[i])
            if self.upper_source[i] and h[i] >= self.upper[i] - tol:
                out.append(self.upper_source[i])
        return out

    def centre(self) -> np.ndarray:
        """The projection of the uniform mixture onto the feasible set."""
        K = len(self.domains)
        return project_to_polytope(np.full(K, 1.0 / K), self.lower, self.upper)


@dataclass(frozen=True)
class Constraints:
    """Constraints on the recommended mixture.

    Parameters
    ----------
    min, max : mapping of str to float, optional
        Per-domain lower and upper bounds on the weight.
    available : mapping of str to float, optional
        Tokens of each domain that exist; with ``max_epochs`` E and target tokens D the
        weight obeys ``h_d * D <= E * available_d``. Domains left out are unlimited.
    max_epochs : float, optional
        Passes allowed over the available data (default 1 when ``available`` is given).
    """

    min: Mapping[str, float] | None = None
    max: Mapping[str, float] | None = None
    available: Mapping[str, float] | None = None
    max_epochs: float | None = None

    def to_dict(self) -> dict:
        return {
            "min": dict(self.min or {}),
            "max": dict(self.max or {}),
            "available": {k: float(v) for k, v in (self.available or {}).items()},
            "max_epochs": self.effective_epochs(),
        }

    def effective_epochs(self) -> float | None:
        if self.available:
            return 1.0 if self.max_epochs is None else float(self.max_epochs)
        return None if self.max_epochs is None else float(self.max_epochs)

    def bounds(self, domains, tokens, min_positive_weight: float = 0.0) -> Bounds:
        """Resolve to per-domain bounds at ``tokens`` and check that they can all hold.

        ``min_positive_weight`` is the law's (:attr:`bayesmix.laws.Law.min_positive_weight`):
        a domain whose upper bound allows it gets at least this weight, one whose upper
        bound is below it is left out (its weight held at 0), so that no mixture falls
        where the law's loss jumps as a weight reaches 0.

        Raises
        ------
        UsageError
            For unknown domains, values outside [0, 1], or an infeasible set; the message
            names the constraints that conflict.
        """
        domains = tuple(domains)
        K = len(domains)
        tokens = float(tokens)
        lower, upper = np.zeros(K), np.ones(K)
        lower_src: list = [None] * K
        upper_src: list = [None] * K
        if self.max_epochs is not None and not self.available:
            raise UsageError("max_epochs (--max-epochs) needs the available tokens per domain "
                             "(--available d=TOKENS,...)")
        for what, values in (("min", self.min), ("max", self.max)):
            if not values:
                continue
            _check_names(values.keys(), domains, f"the {what} constraint")
            for name, value in values.items():
                value = float(value)
                if not np.isfinite(value) or not 0 <= value <= 1:
                    raise UsageError(f"{what} {name}={value:g}: a weight bound must lie in [0, 1]")
                i = domains.index(name)
                if what == "min":
                    lower[i], lower_src[i] = value, f"min {name}={value:g}"
                else:
                    upper[i], upper_src[i] = value, f"max {name}={value:g}"
        if self.available:
            epochs = self.effective_epochs()
            if not np.isfinite(epochs) or epochs <= 0:
                raise UsageError(f"max_epochs must be positive, got {epochs:g}")
            _check_names(self.available.keys(), domains, "the available tokens")
            for name, value in self.available.items():
                value = float(value)
                if not np.isfinite(value) or value < 0:
                    raise UsageError(f"available {name}={value:g}: tokens must be non-negative")
                i = domains.index(name)
                cap = epochs * value / tokens
                if cap < upper[i]:
                    upper[i] = cap
                    upper_src[i] = (f"available {name}={format_quantity(value)} tokens x {epochs:g} "
                                    f"epoch(s) (weight <= {cap:.4g} at {format_quantity(tokens)} tokens)")
        if min_positive_weight > 0:
            _keep_off_the_zero_weight_jump(lower, upper, lower_src, upper_src, domains, min_positive_weight)
        bounds = Bounds(domains, lower, upper, tuple(lower_src), tuple(upper_src))
        _check_feasible(bounds)
        return bounds


def _keep_off_the_zero_weight_jump(lower, upper, lower_src, upper_src, domains, least: float) -> None:
    """Raise lower bounds below ``least`` to it, or hold at 0 a domain that cannot reach
    it (see :meth:`Constraints.bounds`); in place."""
    why = f"the law's minimum positive weight {least:g} (its loss jumps at a weight of 0)"
    for i, name in enumerate(domains):
        if lower[i] >= least:
            continue
        if upper[i] >= least:
            lower[i], lower_src[i] = least, f"{name} >= {why}"
        elif lower[i] == 0:
            upper[i] = 0.0
            upper_src[i] = f"{upper_src[i]} < {why}: {name} is left out"


def _check_feasible(bounds: Bounds) -> None:
    problems = []
    for i, d in enumerate(bounds.domains):
        if bounds.lower[i] > bounds.upper[i]:
            problems.append(f"{bounds.lower_source[i]} conflicts with {bounds.upper_source[i]}")
    if problems:
        raise UsageError("infeasible constraints: " + "; ".join(problems))
    low_total = bounds.lower.sum()
    if low_total > 1 + CONSTRAINT_TOLERANCE:
        named = [s for s in bounds.lower_source if s]
        raise UsageError(f"infeasible constraints: the lower bounds {', '.join(named)} sum to "
                         f"{low_total:.4g} > 1; lower some of them")
    high_total = bounds.upper.sum()
    if high_total < 1 - CONSTRAINT_TOLERANCE:
        named = [s for s in bounds.upper_source if s]
        raise UsageError(f"infeasible constraints: the upper bounds {'; '.join(named)} sum to "
                         f"{high_total:.4g} < 1 (every domain is capped); raise a cap, allow more "
                         "epochs or train on fewer tokens")


# ============================================================================ compiled evaluator
class _Evaluator:
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


_EVALUATORS: "OrderedDict[tuple, _Evaluator]" = OrderedDict()
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


def _evaluator(posterior: PosteriorLike, model_size: float, tokens: float) -> _Evaluator:
    """The compiled evaluator of a posterior at a target (cached on the draws' content,
    so reloading the same fit does not compile again)."""
    key = (_posterior_key(posterior), float(model_size), float(tokens))
    hit = _EVALUATORS.get(key)
    if hit is not None:
        _EVALUATORS.move_to_end(key)
        return hit
    evaluator = _Evaluator(posterior, model_size, tokens)
    _EVALUATORS[key] = evaluator
    while len(_EVALUATORS) > _EVALUATOR_CACHE_SIZE:
        _EVALUATORS.popitem(last=False)
    return evaluator


# ============================================================================ results
def _summary(values, draw_weights=None) -> dict:
    """Mean, sd and 5%/95% quantiles over the first axis."""
    values = np.asarray(values, dtype=float)
    w = normalised_draw_weights(draw_weights, values.shape[0])
    shape = (-1,) + (1,) * (values.ndim - 1)
    mean = np.sum(w.reshape(shape) * values, axis=0)
    sd = np.sqrt(np.sum(w.reshape(shape) * (values - mean) ** 2, axis=0))
    q = weighted_quantile(values, INTERVAL, draw_weights)
    return {"mean": mean, "sd": sd, "q05": q[0], "q95": q[1]}


def _by_domain(domains, values) -> dict:
    return {d: float(v) for d, v in zip(domains, np.asarray(values).reshape(-1))}


@dataclass
class BaselineComparison:
    """How the recommendation compares with one baseline mixture.

    Attributes
    ----------
    name : str
    mixture : ndarray ``(K,)``
    feasible : bool
        Whether the baseline meets the constraints (comparisons are made either way).
    objective : dict
        Mean, sd, q05, q95 of the baseline's objective over the posterior (nats).
    risk_value : float
        The chosen risk measure at the baseline.
    prob_better : float
        Posterior probability that the recommendation has the lower objective.
    expected_gain : float
        Posterior mean of ``f(baseline) - f(recommendation)`` in nats (positive: better).
    """

    name: str
    mixture: np.ndarray
    feasible: bool
    objective: dict
    risk_value: float
    prob_better: float
    expected_gain: float

    def to_dict(self, domains) -> dict:
        return {
            "name": self.name,
            "mixture": _by_domain(domains, self.mixture),
            "feasible": self.feasible,
            "objective": {k: float(v) for k, v in self.objective.items()},
            "risk_value": self.risk_value,
            "prob_better": self.prob_better,
            "expected_gain": self.expected_gain,
        }


@dataclass
class Recommendation:
    """A recommended mixture with its predicted outcome and the posterior's doubts about it.

    Attributes
    ----------
    domains : tuple of str
    mixture : ndarray ``(K,)``
        The recommended mixture; meets every constraint.
    model_size, tokens : float
        The target scale.
    objective : str
        The objective in words; ``objective_weights`` ``(K,)`` its domain weights.
    risk : Risk
    risk_value : float
        The risk measure of the objective at the recommendation (nats).
    objective_summary : dict
        Mean, sd, q05, q95 of the objective at the recommendation over the posterior.
    domain_losses : dict of str to ndarray ``(K,)``
        Per-domain expected loss at the recommendation: mean, sd, q05, q95 over the
        posterior, and ``predictive_q05``/``predictive_q95`` of one training run's
        observed loss (observation noise included).
    baselines : list of BaselineComparison
    expected_regret : float
        Posterior mean of ``f_s(recommendation) - min_h f_s(h)`` over the feasible set (nats).
    regret_q95 : float
        95% posterior quantile of that regret.
    optimum : dict of str to ndarray ``(K,)``
        Posterior of the optimal mixture (one optimum per draw): mean, q05, q95.
    optimum_objective : dict
        Mean, sd, q05, q95 of each draw's optimal objective.
    bounds : Bounds
    n_draws : int
        Posterior draws used (risk, regret, optimum posterior); ``n_draws_available``
        before thinning.
    settings, timing : dict
    notes : list of str
    """

    domains: tuple
    mixture: np.ndarray
    model_size: float
    tokens: float
    objective: str
    objective_weights: np.ndarray
    risk: Risk
    risk_value: float
    objective_summary: dict
    domain_losses: dict
    baselines: list
    expected_regret: float
    regret_q95: float
    optimum: dict
    optimum_objective: dict
    bounds: Bounds
    constraints: dict
    n_draws: int
    n_draws_available: int
    law: str
    fingerprint: str | None = None
    settings: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dictionary of every reported quantity."""
        doms = self.domains
        return json_safe({
            "bayesmix_type": "recommendation",
            "law": self.law,
            "fingerprint": self.fingerprint,
            "target": {"model_size": self.model_size, "tokens": self.tokens},
            "domains": list(doms),
            "objective": {"description": self.objective,
                          "weights": _by_domain(doms, self.objective_weights)},
            "risk": {"measure": str(self.risk), "description": self.risk.describe(),
                     "value": self.risk_value},
            "mixture": _by_domain(doms, self.mixture),
            "constraints": {
                **self.constraints,
                "lower": _by_domain(doms, self.bounds.lower),
                "upper": _by_domain(doms, self.bounds.upper),
                "binding": self.bounds.binding(self.mixture),
            },
            "predicted_objective": {k: float(v) for k, v in self.objective_summary.items()},
            "domain_losses": {d: {k: float(v[i]) for k, v in self.domain_losses.items()}
                              for i, d in enumerate(doms)},
            "baselines": [b.to_dict(doms) for b in self.baselines],
            "expected_regret": {"mean": self.expected_regret, "q95": self.regret_q95,
                                "relative": self.expected_regret / self.objective_summary["mean"]},
            "optimal_mixture": {
                "n_draws": self.n_draws,
                **{k: _by_domain(doms, v) for k, v in self.optimum.items()},
                "objective": {k: float(v) for k, v in self.optimum_objective.items()},
            },
            "n_draws": self.n_draws,
            "n_draws_available": self.n_draws_available,
            "settings": self.settings,
            "timing_seconds": self.timing,
            "notes": list(self.notes),
        })

    def to_json(self, path=None, indent: int = 2) -> str:
        """The JSON text; also written to ``path`` (atomically) when given."""
        return json_report(self.to_dict(), path, indent=indent)

    def format_table(self) -> str:
        """Human-readable report of the recommendation."""
        doms = self.domains
        width = max(6, max(len(d) for d in doms))
        lines = [
            f"Recommended mixture for N={format_quantity(self.model_size)}, "
            f"D={format_quantity(self.tokens)} tokens",
            f"objective: {self.objective}; risk: {self.risk.describe()}",
            f"posterior draws used: {self.n_draws} (of {self.n_draws_available})",
            "",
            f"{'domain':<{width}}  {'weight':>7}  {'bounds':>15}  {'optimum: mean [90% region]':>28}  "
            f"{'loss mean':>9}  {'sd':>7}  {'5%':>7}  {'95%':>7}",
        ]
        for i, d in enumerate(doms):
            bounds = f"[{self.bounds.lower[i]:.3g}, {self.bounds.upper[i]:.3g}]"
            opt = (f"{self.optimum['mean'][i]:.3f} [{self.optimum['q05'][i]:.3f}, "
                   f"{self.optimum['q95'][i]:.3f}]")
            dl = self.domain_losses
            lines.append(
                f"{d:<{width}}  {self.mixture[i]:>7.4f}  {bounds:>15}  {opt:>28}  "
                f"{dl['mean'][i]:>9.4f}  {dl['sd'][i]:>7.4f}  {dl['q05'][i]:>7.4f}  {dl['q95'][i]:>7.4f}"
            )
        o = self.objective_summary
        lines += [
            "",
            f"predicted objective: mean {o['mean']:.4f} nats, sd {o['sd']:.4f}, "
            f"90% interval [{o['q05']:.4f}, {o['q95']:.4f}]; {self.risk}: {self.risk_value:.4f}",
            f"expected regret: {self.expected_regret:.3g} nats "
            f"({100 * self.expected_regret / o['mean']:.3g}% of the objective; 95% quantile "
            f"{self.regret_q95:.3g}), against each draw's own optimum",
        ]
        binding = self.bounds.binding(self.mixture)
        if binding:
            lines.append("binding constraints: " + "; ".join(binding))
        if self.baselines:
            nw = max(8, max(len(b.name) for b in self.baselines))
            lines += ["", f"{'baseline':<{nw}}  {'objective':>9}  {'P(rec. better)':>14}  "
                          f"{'expected gain':>13}  feasible"]
            for b in self.baselines:
                lines.append(f"{b.name:<{nw}}  {b.objective['mean']:>9.4f}  {b.prob_better:>14.3f}  "
                             f"{b.expected_gain:>13.4g}  {'yes' if b.feasible else 'no'}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


@dataclass
class CandidateRanking:
    """Given mixtures ranked by a risk measure of their objective (best first).

    Attributes
    ----------
    domains : tuple of str
    names : list of str
    mixtures : ndarray ``(M, K)``
    risk : Risk
    risk_values : ndarray ``(M,)``
    objective : dict of str to ndarray ``(M,)``
        Mean, sd, q05, q95 of each candidate's objective.
    prob_best : ndarray ``(M,)``
        Posterior probability that the candidate has the lowest objective (ties split).
    regret : ndarray ``(M,)``
        Posterior mean of the candidate's objective minus the best candidate's in that draw.
    feasible : ndarray of bool ``(M,)``
    violations : list of list of str
    """

    domains: tuple
    names: list
    mixtures: np.ndarray
    model_size: float
    tokens: float
    objective_description: str
    risk: Risk
    risk_values: np.ndarray
    objective: dict
    prob_best: np.ndarray
    regret: np.ndarray
    feasible: np.ndarray
    violations: list
    n_draws: int
    law: str
    fingerprint: str | None = None

    def to_dict(self) -> dict:
        rows = []
        for rank, j in enumerate(np.argsort(self.risk_values, kind="stable"), start=1):
            rows.append({
                "rank": rank,
                "name": self.names[j],
                "mixture": _by_domain(self.domains, self.mixtures[j]),
                "risk_value": float(self.risk_values[j]),
                "objective": {k: float(v[j]) for k, v in self.objective.items()},
                "prob_best": float(self.prob_best[j]),
                "regret_within_candidates": float(self.regret[j]),
                "feasible": bool(self.feasible[j]),
                "violations": list(self.violations[j]),
            })
        return json_safe({
            "bayesmix_type": "candidate_ranking",
            "law": self.law,
            "fingerprint": self.fingerprint,
            "target": {"model_size": self.model_size, "tokens": self.tokens},
            "domains": list(self.domains),
            "objective": self.objective_description,
            "risk": {"measure": str(self.risk), "description": self.risk.describe()},
            "n_draws": self.n_draws,
            "candidates": rows,
        })

    def to_json(self, path=None, indent: int = 2) -> str:
        """The JSON text; also written to ``path`` (atomically) when given."""
        return json_report(self.to_dict(), path, indent=indent)

    def format_table(self) -> str:
        nw = max(9, max(len(n) for n in self.names))
        lines = [
            f"Candidates ranked at N={format_quantity(self.model_size)}, "
            f"D={format_quantity(self.tokens)} tokens",
            f"objective: {self.objective_description}; risk: {self.risk.describe()}; "
            f"{self.n_draws} posterior draws",
            "",
            f"{'rank':>4}  {'candidate':<{nw}}  {'risk':>12}  {'mean':>8}  {'5%':>8}  "
            f"{'95%':>8}  {'P(best)':>7}  {'regret':>8}  feasible",
        ]
        for rank, j in enumerate(np.argsort(self.risk_values, kind="stable"), start=1):
            o = self.objective
            lines.append(
                f"{rank:>4}  {self.names[j]:<{nw}}  {self.risk_values[j]:>12.4f}  {o['mean'][j]:>8.4f}  "
                f"{o['q05'][j]:>8.4f}  {o['q95'][j]:>8.4f}  {self.prob_best[j]:>7.3f}  "
                f"{self.regret[j]:>8.4g}  {'yes' if self.feasible[j] else 'no: ' + '; '.join(self.violations[j])}"
            )
        return "\n".join(lines)


# ============================================================================ the problem
def _thin_index(n_draws: int, max_draws: int | None) -> np.ndarray:
    """Evenly spaced draws, as :meth:`Posterior.thin` chooses them."""
    if max_draws is None or n_draws <= max_draws:
        return np.arange(n_draws)
    if max_draws < 1:
        raise UsageError(f"max_draws must be at least 1, got {max_draws}")
    return np.linspace(0, n_draws - 1, int(max_draws)).round().astype(int)


class MixtureProblem:
    """The mixture decision at one target scale, compiled once and reusable.

    Parameters
    ----------
    posterior : PosteriorLike
    model_size, tokens : float or str
        Target N (parameters) and D (tokens); strings like ``"7B"`` are accepted.
    objective : Objective, optional
        Default: the plain average over domains.
    constraints : Constraints, optional
    max_draws : int, optional
        Thin the posterior to at most this many evenly spaced draws (None: all).

    Attributes
    ----------
    posterior : PosteriorLike
        The (thinned) posterior the decision uses; ``draw_index`` maps its draws to the
        input posterior's. Draw weights passed to methods refer to these draws.
    bounds : Bounds
    objective_weights : ndarray ``(K,)``

    Raises
    ------
    UsageError
        If the constraints cannot all hold, or an option names an unknown domain.
    """

    def __init__(self, posterior: PosteriorLike, model_size, tokens, *, objective: Objective | None = None,
                 constraints: Constraints | None = None, max_draws: int | None = DEFAULT_MAX_DRAWS):
        self.model_size = parse_quantity(model_size, what="model size")
        self.tokens = parse_quantity(tokens, what="tokens")
        self.domains = tuple(posterior.domains)
        self.objective = objective or Objective()
        self.constraints = constraints or Constraints()
        self.objective_weights = self.objective.domain_weights(self.domains)
        self.bounds = self.constraints.bounds(self.domains, self.tokens, posterior.law.min_positive_weight)
        self.source_posterior = posterior
        self.draw_index = _thin_index(posterior.n_draws, max_draws)
        self.posterior = posterior if len(self.draw_index) == posterior.n_draws else posterior.subset(self.draw_index)
        self._optima = None
        self._optima_seconds = 0.0

    # ------------------------------------------------------------------ evaluation
    @property
    def n_draws(self) -> int:
        return self.posterior.n_draws

    @property
    def n_domains(self) -> int:
        return len(self.domains)

    @property
    def evaluator(self) -> _Evaluator:
        return _evaluator(self.posterior, self.model_size, self.tokens)

    def _as_mixtures(self, mixtures) -> np.ndarray:
        h = np.atleast_2d(np.asarray(mixtures, dtype=float))
        if h.shape[-1] != self.n_domains:
            raise UsageError(f"mixtures have {h.shape[-1]} weights but the fit has "
                             f"{self.n_domains} domains ({', '.join(self.domains)})")
        if np.any(h < -1e-12) or np.any(np.abs(h.sum(-1) - 1) > 1e-6):
            raise UsageError("mixture weights must be non-negative and sum to 1")
        return np.clip(h, 0.0, None)

    def domain_losses(self, mixtures) -> np.ndarray:
        """Expected loss per draw, mixture and domain at the target, ``(S, M, K)`` nats."""
        h = self._as_mixtures(mixtures)
        tiled = np.broadcast_to(h[None], (self.n_draws,) + h.shape)
        return self.evaluator(tiled, self.objective_weights)[2]

    def objective_draws(self, mixtures) -> np.ndarray:
        """The objective per draw and mixture at the target, ``(S, M)`` nats."""
        h = self._as_mixtures(mixtures)
        tiled = np.broadcast_to(h[None], (self.n_draws,) + h.shape)
        return self.evaluator(tiled, self.objective_weights)[0]

    def _risk_function(self, risk: Risk, weights: np.ndarray):
        evaluator, S = self.evaluator, self.n_draws

        def fun(X):
            tiled = np.broadcast_to(X[None], (S,) + X.shape)
            values, grads, _ = evaluator(tiled, self.objective_weights)  # (S, R), (S, R, K)
            if not np.all(np.isfinite(values)):
                bad = ~np.all(np.isfinite(values), axis=0)
                values = np.where(np.isfinite(values), values, 0.0)
            else:
                bad = None
            coef = risk.coefficients(values, weights)
            f = np.sum(coef * values, axis=0)
            g = np.einsum("sr,srk->rk", coef, grads)
            if bad is not None:
                f = np.where(bad, np.inf, f)
            return f, g

        return fun

    # ------------------------------------------------------------------ optimisation
    def starting_points(self, n_restarts: int = DEFAULT_RESTARTS, *, extra=(), seed: int = 0) -> np.ndarray:
        """The centre of the feasible set, random feasible points and ``extra`` mixtures."""
        rng = np.random.default_rng(seed)
        starts = [self.bounds.centre()]
        if n_restarts > 1:
            random = rng.dirichlet(np.ones(self.n_domains), size=n_restarts - 1)
            starts.extend(project_to_polytope(random, self.bounds.lower, self.bounds.upper))
        for h in extra:
            starts.append(project_to_polytope(np.asarray(h, dtype=float), self.bounds.lower, self.bounds.upper))
        return np.array(starts)

    def recommend_mixture(self, risk="mean", *, draw_weights=None, n_restarts: int = DEFAULT_RESTARTS,
                          starts=None, seed: int = 0) -> tuple[np.ndarray, float]:
        """The feasible mixture with the lowest risk measure, and that risk (nats).

        Parameters
        ----------
        risk : str or Risk
        draw_weights : array_like ``(n_draws,)``, optional
            Importance weights of this problem's (thinned) draws.
        n_restarts : int
            Starting points: the centre of the feasible set and random feasible points.
        starts : array_like ``(R, K)``, optional
            Further starting mixtures (projected onto the feasible set).
        seed : int
        """
        risk = Risk.parse(risk)
        weights = normalised_draw_weights(draw_weights, self.n_draws)
        x0 = self.starting_points(n_restarts, extra=() if starts is None else np.atleast_2d(starts), seed=seed)
        x, f, _, _ = spectral_projected_gradient(self._risk_function(risk, weights), x0,
                                                  self.bounds.lower, self.bounds.upper)
        # Re-evaluate exactly at the projected points (the optimiser's f is of these points).
        best = int(np.argmin(f))
        return self._finalise(x[best]), float(f[best])

    def _finalise(self, h) -> np.ndarray:
        """Clip into the bounds and put the sum back to one exactly (to rounding)."""
        h = project_to_polytope(np.asarray(h, dtype=float), self.bounds.lower, self.bounds.upper)
        if (np.any(h < self.bounds.lower - CONSTRAINT_TOLERANCE) or np.any(h > self.bounds.upper + CONSTRAINT_TOLERANCE)
                or abs(h.sum() - 1.0) > CONSTRAINT_TOLERANCE):  # pragma: no cover - a bug, not a user error
            raise RuntimeError(f"projection failed to meet the constraints: {h}")
        return h

    def per_draw_optima(self, *, extra_starts=(), seed: int = 0, refresh: bool = False):
        """Each draw's own optimal mixture over the feasible set, all draws at once.

        Every draw starts from the centre of the feasible set, one random feasible point
        and each of ``extra_starts`` (e.g. the recommendation, so that no draw's optimum is
        worse than it); the best end point per draw is kept. Cached until ``refresh``
        or new ``extra_starts`` are given.

        Returns
        -------
        (mixtures ``(S, K)``, values ``(S,)``)
        """
        if self._optima is not None and not refresh and not len(extra_starts):
            return self._optima
        t0 = time.perf_counter()
        S, K = self.n_draws, self.n_domains
        rng = np.random.default_rng(seed + 1)
        starts = [np.broadcast_to(self.bounds.centre(), (S, K)),
                  project_to_polytope(rng.dirichlet(np.ones(K), size=S), self.bounds.lower, self.bounds.upper)]
        for h in extra_starts:
            starts.append(np.broadcast_to(project_to_polytope(np.asarray(h, float), self.bounds.lower,
                                                              self.bounds.upper), (S, K)))
        R = len(starts)
        x0 = np.stack(starts, axis=1).reshape(S * R, K)  # draw-major: row s*R + r
        evaluator = self.evaluator

        def fun(X):
            values, grads, _ = evaluator(X.reshape(S, R, K), self.objective_weights)
            return values.reshape(-1), grads.reshape(S * R, K)

        x, f, _, _ = spectral_projected_gradient(fun, x0, self.bounds.lower, self.bounds.upper)
        x, f = x.reshape(S, R, K), f.reshape(S, R)
        best = np.argmin(f, axis=1)
        mixtures = x[np.arange(S), best]
        values = f[np.arange(S), best]
        if self._optima is not None and not refresh:  # keep whichever is better per draw
            old_h, old_v = self._optima
            better = old_v < values
            mixtures = np.where(better[:, None], old_h, mixtures)
            values = np.where(better, old_v, values)
        self._optima = (mixtures, values)
        self._optima_seconds += time.perf_counter() - t0
        return self._optima

    def expected_regret(self, mixture, draw_weights=None) -> float:
        """Posterior mean of ``f_s(mixture) - min_h f_s(h)`` (nats), optionally reweighted."""
        values = self.objective_draws(mixture)[:, 0]
        _, optimum = self.per_draw_optima()
        return expected_regret(values, optimum_values=optimum, draw_weights=draw_weights)

    # ------------------------------------------------------------------ reports
    def recommend(self, risk="mean", *, baselines=None, draw_weights=None,
                  n_restarts: int = DEFAULT_RESTARTS, seed: int = 0) -> Recommendation:
        """Recommend a mixture and report its outcome, regret and the optimum's posterior.

        See :func:`recommend` for the parameters.
        """
        t_start = time.perf_counter()
        risk = Risk.parse(risk)
        weights = normalised_draw_weights(draw_weights, self.n_draws)
        named = _baseline_mixtures(baselines, self.domains)
        t0 = time.perf_counter()
        self.evaluator  # compiled here unless cached
        compile_seconds = time.perf_counter() - t0
        feasible_baselines = [h for h in named.values() if not self.bounds.violations(h)]
        t0 = time.perf_counter()
        mixture, value = self.recommend_mixture(risk, draw_weights=weights, n_restarts=n_restarts,
                                                starts=feasible_baselines or None, seed=seed)
        optimise_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        opt_h, opt_v = self.per_draw_optima(extra_starts=[mixture], seed=seed)
        # One more restart from the centre of the draws' optima (often the risk optimum's basin).
        polished, polished_value = self.recommend_mixture(
            risk, draw_weights=weights, n_restarts=1, starts=[np.sum(weights[:, None] * opt_h, axis=0)], seed=seed)
        if polished_value < value:
            mixture, value = polished, polished_value
        optima_seconds = time.perf_counter() - t0

        values = self.objective_draws(mixture)[:, 0]
        opt_v = np.minimum(opt_v, values)  # a draw's optimum is never worse than the recommendation
        regret = values - opt_v
        losses = self.domain_losses(mixture)  # (S, 1, K)
        predictive = self.posterior.add_noise(losses, seed=seed)[:, 0]
        loss_summary = _summary(losses[:, 0], weights)
        pred_q = weighted_quantile(predictive, INTERVAL, weights)
        loss_summary["predictive_q05"], loss_summary["predictive_q95"] = pred_q[0], pred_q[1]

        comparisons = []
        if named:
            base_h = np.array(list(named.values()))
            base_values = self.objective_draws(base_h)
            base_risk = np.atleast_1d(risk.evaluate(base_values, weights))
            for j, name in enumerate(named):
                diff = base_values[:, j] - values
                comparisons.append(BaselineComparison(
                    name=name, mixture=base_h[j], feasible=not self.bounds.violations(base_h[j]),
                    objective={k: float(v) for k, v in _summary(base_values[:, j], weights).items()},
                    risk_value=float(base_risk[j]),
                    prob_better=float(np.sum(weights * (diff > 0)) + 0.5 * np.sum(weights * (diff == 0))),
                    expected_gain=float(np.sum(weights * diff)),
                ))
        opt_summary = _summary(opt_h, weights)
        notes = []
        if self.n_draws < 100:
            notes.append(f"only {self.n_draws} posterior draws: tail risks and the optimum's "
                         "90% region are rough")
        return Recommendation(
            domains=self.domains,
            mixture=mixture,
            model_size=self.model_size,
            tokens=self.tokens,
            objective=self.objective.describe(self.domains),
            objective_weights=self.objective_weights,
            risk=risk,
            risk_value=float(risk.evaluate(values, weights)),
            objective_summary={k: float(v) for k, v in _summary(values, weights).items()},
            domain_losses=loss_summary,
            baselines=comparisons,
            expected_regret=float(np.sum(weights * regret)),
            regret_q95=float(weighted_quantile(regret, 0.95, weights)),
            optimum={"mean": opt_summary["mean"], "q05": opt_summary["q05"], "q95": opt_summary["q95"]},
            optimum_objective={k: float(v) for k, v in _summary(opt_v, weights).items()},
            bounds=self.bounds,
            constraints=self.constraints.to_dict(),
            n_draws=self.n_draws,
            n_draws_available=self.source_posterior.n_draws,
            law=self.posterior.law.name,
            fingerprint=self.posterior.meta.get("fingerprint"),
            settings={"risk": str(risk), "n_restarts": n_restarts, "seed": seed,
                      "weighted_draws": draw_weights is not None},
            timing={"compile": compile_seconds, "optimise": optimise_seconds,
                    "per_draw_optima": optima_seconds, "total": time.perf_counter() - t_start},
            notes=notes,
        )

    def rank(self, candidates, risk="mean", *, draw_weights=None) -> CandidateRanking:
        """Rank given mixtures by the risk measure; see :func:`rank_candidates`."""
        risk = Risk.parse(risk)
        weights = normalised_draw_weights(draw_weights, self.n_draws)
        named = _baseline_mixtures(candidates, self.domains, include_uniform=False)
        if not named:
            raise UsageError("no candidate mixtures to rank")
        names = list(named)
        h = np.array(list(named.values()))
        values = self.objective_draws(h)  # (S, M)
        best = values.min(axis=1, keepdims=True)
        is_best = values == best
        share = is_best / is_best.sum(axis=1, keepdims=True)
        summary = _summary(values, weights)
        violations = [self.bounds.violations(row) for row in h]
        return CandidateRanking(
            domains=self.domains, names=names, mixtures=h, model_size=self.model_size,
            tokens=self.tokens, objective_description=self.objective.describe(self.domains),
            risk=risk, risk_values=np.atleast_1d(risk.evaluate(values, weights)),
            objective=summary, prob_best=np.sum(weights[:, None] * share, axis=0),
            regret=np.sum(weights[:, None] * (values - best), axis=0),
            feasible=np.array([not v for v in violations]), violations=violations,
            n_draws=self.n_draws, law=self.posterior.law.name,
            fingerprint=self.posterior.meta.get("fingerprint"),
        )


def _baseline_mixtures(baselines, domains, *, include_uniform: bool = True) -> dict[str, np.ndarray]:
    """Named mixtures, with the uniform mixture first unless the caller names one 'uniform'."""
    out: dict[str, np.ndarray] = {}
    given = {}
    if baselines is not None:
        if isinstance(baselines, Mapping):
            given = dict(baselines)
        else:
            rows = np.atleast_2d(np.asarray(baselines, dtype=float))
            given = {f"candidate {i + 1}": row for i, row in enumerate(rows)}
    if include_uniform and "uniform" not in given:
        out["uniform"] = np.full(len(domains), 1.0 / len(domains))
    for name, value in given.items():
        out[str(name)] = as_mixture(value, domains, what=f"mixture '{name}'")
    return out


def _thinned_weights(draw_weights, posterior: PosteriorLike, index: np.ndarray):
    if draw_weights is None:
        return None
    w = np.asarray(draw_weights, dtype=float).reshape(-1)
    if w.shape[0] != posterior.n_draws:
        raise UsageError(f"draw_weights has {w.shape[0]} entries but the posterior has "
                         f"{posterior.n_draws} draws")
    return normalised_draw_weights(w[index], len(index))


# ============================================================================ public functions
def recommend(posterior: PosteriorLike, model_size, tokens, *, objective: Objective | None = None,
              risk="mean", constraints: Constraints | None = None, baselines=None,
              draw_weights=None, n_restarts: int = DEFAULT_RESTARTS,
              max_draws: int | None = DEFAULT_MAX_DRAWS, seed: int = 0) -> Recommendation:
    """Recommend a training mixture for a target scale under posterior uncertainty.

    Parameters
    ----------
    posterior : PosteriorLike
        Posterior of a fitted law (``Fit.posterior()``).
    model_size, tokens : float or str
        Target model size N (parameters) and training tokens D, e.g. ``7e9`` or ``"7B"``.
    objective : Objective, optional
        Which average of the domain losses to minimise (default: plain average).
    risk : str or Risk
        ``"mean"``, ``"quantile:Q"`` or ``"cvar:ALPHA"``.
    constraints : Constraints, optional
        Per-domain bounds and data availability.
    baselines : mapping of str to mixture, optional
        Mixtures (``{domain: weight}`` or length-K arrays) to compare against; the
        uniform mixture is always included.
    draw_weights : array_like ``(posterior.n_draws,)``, optional
        Importance weights of the posterior draws.
    n_restarts : int
        Starting points of the risk optimisation (plus the feasible baselines).
    max_draws : int, optional
        Thin the posterior to at most this many draws for the whole decision.
    seed : int
        Seed of the random starting points and of the predictive noise.

    Returns
    -------
    Recommendation

    Raises
    ------
    UsageError
        For infeasible constraints (the message names the conflicting ones), unknown
        domains or malformed options.
    """
    problem = MixtureProblem(posterior, model_size, tokens, objective=objective,
                             constraints=constraints, max_draws=max_draws)
    weights = _thinned_weights(draw_weights, posterior, problem.draw_index)
    return problem.recommend(risk, baselines=baselines, draw_weights=weights,
                             n_restarts=n_restarts, seed=seed)


def rank_candidates(posterior: PosteriorLike, candidates, model_size, tokens, *,
                    objective: Objective | None = None, risk="mean",
                    constraints: Constraints | None = None, draw_weights=None,
                    max_draws: int | None = DEFAULT_MAX_DRAWS) -> CandidateRanking:
    """Rank given mixtures by a risk measure of their objective at a target scale.

    Parameters
    ----------
    posterior : PosteriorLike
    candidates : mapping of str to mixture, or array_like ``(M, K)``
    model_size, tokens : float or str
    objective : Objective, optional
    risk : str or Risk
    constraints : Constraints, optional
        Candidates are ranked either way; those that break a constraint are flagged.
    draw_weights : array_like ``(posterior.n_draws,)``, optional
    max_draws : int, optional

    Returns
    -------
    CandidateRanking
        With each candidate's risk, objective summary and probability of being the best.
    """
    problem = MixtureProblem(posterior, model_size, tokens, objective=objective,
                             constraints=constraints, max_draws=max_draws)
    weights = _thinned_weights(draw_weights, posterior, problem.draw_index)
    return problem.rank(candidates, risk, draw_weights=weights)


def expected_regret(source, mixture=None, *, optimum_values=None, draw_weights=None,
                    model_size=None, tokens=None, objective: Objective | None = None,
                    constraints: Constraints | None = None,
                    max_draws: int | None = DEFAULT_MAX_DRAWS):
    """Posterior expected regret of a mixture: mean over draws of ``f_s(h) - min f_s``.

    Parameters
    ----------
    source : ndarray, MixtureProblem or PosteriorLike
        * ``(S,)`` or ``(S, M)`` objective draws at the mixture(s), with
          ``optimum_values`` ``(S,)`` the draws' optimal objectives (cheapest: the
          acquisition layer precomputes both);
        * a :class:`MixtureProblem` (its cached per-draw optima are used) with ``mixture``;
        * a posterior (:class:`~bayesmix.posterior.PosteriorLike`) with ``mixture``,
          ``model_size`` and ``tokens`` (computes the per-draw optima: seconds).
    mixture : mixture, optional
    optimum_values : array_like ``(S,)``, optional
    draw_weights : array_like ``(S,)``, optional
        Importance weights of the draws (of the problem's thinned draws for a
        MixtureProblem, of the posterior's draws for a Posterior).

    Returns
    -------
    float, or ndarray ``(M,)`` for several mixtures given as columns of ``source``.
    """
    if isinstance(source, MixtureProblem):
        if mixture is None:
            raise UsageError("expected_regret needs the mixture to evaluate")
        return source.expected_regret(as_mixture(mixture, source.domains), draw_weights)
    if isinstance(source, PosteriorLike):
        if mixture is None or model_size is None or tokens is None:
            raise UsageError("expected_regret of a posterior needs mixture, model_size and tokens")
        problem = MixtureProblem(source, model_size, tokens, objective=objective,
                                 constraints=constraints, max_draws=max_draws)
        weights = _thinned_weights(draw_weights, source, problem.draw_index)
        return problem.expected_regret(as_mixture(mixture, problem.domains), weights)
    values = np.asarray(source, dtype=float)
    if optimum_values is None:
        raise UsageError("expected_regret of objective draws needs optimum_values")
    optimum = np.asarray(optimum_values, dtype=float).reshape(-1)
    if values.shape[0] != optimum.shape[0]:
        raise UsageError(f"objective draws ({values.shape[0]}) and optimum values "
                         f"({optimum.shape[0]}) differ in length")
    w = normalised_draw_weights(draw_weights, values.shape[0])
    shape = (-1,) + (1,) * (values.ndim - 1)
    regret = np.maximum(values - optimum.reshape(shape), 0.0)
    out = np.sum(w.reshape(shape) * regret, axis=0)
    return float(out) if np.ndim(out) == 0 else out


# ============================================================================ files of mixtures
def load_mixtures(path, domains) -> dict[str, np.ndarray]:
    """Read named mixtures from a file.

    Formats
    -------
    * CSV/TSV: one mixture per row, an optional ``name`` column and one column per
      domain named ``<domain>`` or ``weight_<domain>`` (missing domains get 0).
    * JSON: ``{name: {domain: weight}}``, a list of ``{"name": ..., "mixture": {...}}``,
      or a recommendation written by ``bayesmix recommend`` (its mixture, named after the
      file).

    Domains are matched by name; a domain given twice (``web`` and ``weight_web``, or a
    repeated JSON key) is refused.

    Raises
    ------
    DataError
        If the file cannot be read or a row is not a mixture over the fit's domains.
    """
    path = Path(path)
    domains = tuple(domains)
    if not path.exists():
        raise DataError("file not found", file=path)
    if path.suffix.lower() == ".json":
        raw = _json_mixtures(path)
    else:
        raw = _table_mixtures(path, domains)
    out = {}
    for name, value in raw.items():
        try:
            out[str(name)] = as_mixture(value, domains, what=f"mixture '{name}'")
        except UsageError as err:
            raise DataError(str(err), file=path) from None
    if not out:
        raise DataError("no mixtures in the file", file=path)
    return out


def _no_duplicate_keys(pairs):
    """``object_pairs_hook`` of :func:`json.loads` refusing a key given twice."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise DataError(f"'{key}' given twice in one object")
        out[key] = value
    return out


def _json_mixtures(path: Path) -> dict:
    """``{name: mixture}`` from a JSON mixture file (see :func:`load_mixtures`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read mixtures ({' '.join(str(err).split())[:120]}); "
                        "write UTF-8 JSON {name: {domain: weight}}", file=path) from None
    except DataError as err:
        raise DataError(str(err), file=path) from None
    if isinstance(data, dict) and data.get("bayesmix_type") == "recommendation":
        if not isinstance(data.get("mixture"), dict):
            raise DataError("recommendation without a 'mixture' object", file=path)
        return {path.stem: data["mixture"]}
    if isinstance(data, dict):
        return data
    if isinstance(data, list):
        raw = {}
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                raise DataError(f"item {i + 1} is not an object {{\"name\": ..., \"mixture\": {{...}}}}", file=path)
            name = str(item.get("name", f"mixture {i + 1}"))
            if name in raw:
                raise DataError(f"two mixtures are named '{name}'", file=path)
            raw[name] = item.get("mixture", {k: v for k, v in item.items() if k != "name"})
        return raw
    raise DataError("expected an object or a list of mixtures", file=path)


def _table_mixtures(path: Path, domains: tuple) -> dict:
    """``{name: {domain: weight}}`` from a CSV/TSV mixture file (see :func:`load_mixtures`)."""
    from .data import read_table

    frame = read_table(path, empty_hint="a mixture file needs a header line and one mixture per row")
    columns = column_domains(frame.columns, domains, path, skip=("name",))
    raw = {}
    for i, row in enumerate(frame.itertuples(index=False)):
        values = dict(zip(frame.columns, row))
        name = str(values["name"]) if "name" in frame.columns else f"mixture {i + 1}"
        if name in raw:
            raise DataError(f"two mixtures are named '{name}'", file=path, rows=[i + 1])
        weights = {}
        for col, d in columns.items():
            try:
                weights[d] = float(values[col])
            except (TypeError, ValueError):
                raise DataError(f"weight '{values[col]}' is not a number", file=path, column=col,
                                rows=[i + 1]) from None
        raw[name] = weights
    return raw


def column_domains(columns, domains, path, *, skip=()) -> dict[str, str]:
    """``{column: domain}`` for the weight columns of a mixture or candidate file.

    A column is named ``<domain>`` or ``weight_<domain>``; columns in ``skip`` are left
    out.

    Raises
    ------
    DataError
        If a column names no domain of the fit, or two columns name the same domain.
    """
    out = {}
    for col in (str(c) for c in columns):  # a repeated header name is refused by read_table
        if col in skip:
            continue
        d = col[len("weight_"):] if str(col).startswith("weight_") else str(col)
        if d not in domains:
            raise DataError(f"column '{col}' is not a domain of the fit ({', '.join(domains)})"
                            + (f" nor one of {', '.join(s for s in skip if s)}" if any(skip) else ""),
                            file=path, column=col)
        if d in out.values():
            raise DataError(f"domain '{d}' given twice", file=path, column=col)
        out[col] = d
    return out


__all__ = [
    "Bounds", "CandidateRanking", "Constraints", "MixtureProblem", "Objective", "Recommendation",
    "Risk", "as_mixture", "column_domains", "expected_regret", "load_mixtures",
    "rank_candidates", "recommend", "risk_value",
]

