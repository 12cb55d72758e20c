"""Constraints on a mixture: per-domain bounds and data availability, checked for
feasibility."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import UsageError
from ..polytope import project_to_polytope
from ..units import format_quantity
from .mixtures import check_names

#: Slack allowed when checking that bounds and the sum constraint hold.
CONSTRAINT_TOLERANCE = 1e-12


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
            check_names(values.keys(), domains, f"the {what} constraint")
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
            check_names(self.available.keys(), domains, "the available tokens")
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
