"""How the posterior draws of an objective are reduced to one number (mean, quantile,
CVaR), and the expected regret of objective draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from ..errors import UsageError
from ..weighted import normalised_draw_weights


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
            sorted_coef = self._sorted_coefficients(w[order], 1.0 / np.sum(w**2))
            coef = np.empty_like(sorted_coef)
            np.put_along_axis(coef, order, sorted_coef, axis=0)
        return coef[:, 0] if squeeze else coef

    def _sorted_coefficients(self, w_sorted, n_eff):
        """Coefficients of draws sorted by value along axis ``-2`` whose weights (summing
        to one along that axis) are ``w_sorted``; ``n_eff`` (broadcastable) is the Kish
        effective sample size of the weights (quantile risk only)."""
        upper = np.clip(np.cumsum(w_sorted, axis=-2), 0.0, 1.0)
        upper[..., -1, :] = 1.0
        lower = np.clip(upper - w_sorted, 0.0, 1.0)
        if self.kind == "cvar":
            a = self.level
            return (np.maximum(upper, a) - np.maximum(lower, a)) / (1.0 - a)
        a = self.level * (n_eff + 1.0)
        b = (1.0 - self.level) * (n_eff + 1.0)
        return special.betainc(a, b, upper) - special.betainc(a, b, lower)

    def evaluate_rows(self, values, weights, *, chunk: int = 16) -> np.ndarray:
        """The risk of each column of ``values`` under each row of draw weights.

        The same numbers as ``evaluate(values, weights[j])`` for every row ``j``, with
        the draws sorted once (the value of information re-evaluates every decision
        under the weights each simulated outcome gives).

        Parameters
        ----------
        values : array_like ``(S, M)``
        weights : array_like ``(J, S)``
            Non-negative rows (normalised here).
        chunk : int
            Rows of weights handled at once (memory ``chunk x S x M``).

        Returns
        -------
        ndarray ``(J, M)``
        """
        values = np.asarray(values, dtype=float)
        W = np.atleast_2d(np.asarray(weights, dtype=float))
        W = W / W.sum(axis=1, keepdims=True)
        if self.kind == "mean":
            return W @ values
        order = np.argsort(values, axis=0, kind="stable")
        v_sorted = np.take_along_axis(values, order, axis=0)
        out = np.empty((W.shape[0], values.shape[1]))
        for start in range(0, W.shape[0], chunk):
            rows = W[start:start + chunk]
            n_eff = (1.0 / np.sum(rows**2, axis=1))[:, None, None]
            coef = self._sorted_coefficients(rows[:, order], n_eff)  # (j, S, M)
            out[start:start + chunk] = np.einsum("jsm,sm->jm", coef, v_sorted)
        return out

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


def regret_of_values(values, optimum_values, draw_weights=None):
    """Expected regret from objective draws ``values`` (``(S,)`` or ``(S, M)``) and the
    draws' optimal objectives ``optimum_values`` ``(S,)``: the weighted mean over draws of
    ``max(f_s(h) - min f_s, 0)``; a float, or ``(M,)`` for several mixtures."""
    values = np.asarray(values, dtype=float)
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
