"""What a decision returns: the recommendation, a ranking of candidates and the comparison
with baselines, as tables and JSON."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._files import json_report, json_safe
from ..units import format_quantity
from ..weighted import INTERVAL_QUANTILES, normalised_draw_weights, weighted_quantile
from .constraints import Bounds
from .risk import Risk


def draw_summary(values, draw_weights=None) -> dict:
    """Mean, sd and 5%/95% quantiles over the first axis."""
    values = np.asarray(values, dtype=float)
    w = normalised_draw_weights(draw_weights, values.shape[0])
    shape = (-1,) + (1,) * (values.ndim - 1)
    mean = np.sum(w.reshape(shape) * values, axis=0)
    sd = np.sqrt(np.sum(w.reshape(shape) * (values - mean) ** 2, axis=0))
    q = weighted_quantile(values, INTERVAL_QUANTILES, draw_weights)
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
        The objective in words; ``objective_weights`` ``(T,)`` its weights over the
        target domains (:attr:`domains`, then :attr:`eval_domains`).
    risk : Risk
    risk_value : float
        The risk measure of the objective at the recommendation (nats).
    objective_summary : dict
        Mean, sd, q05, q95 of the objective at the recommendation over the posterior.
    domain_losses : dict of str to ndarray ``(T,)``
        Per target domain, expected loss at the recommendation: mean, sd, q05, q95 over the
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
    eval_domains : tuple of str
        Evaluation-only domains the posterior predicts: never in the mixture, but in the
        objective and the domain losses.
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
    eval_domains: tuple = ()

    @property
    def target_domains(self) -> tuple:
        """The domains whose losses are reported: :attr:`domains`, then :attr:`eval_domains`."""
        return tuple(self.domains) + tuple(self.eval_domains)

    def to_dict(self) -> dict:
        """JSON-ready dictionary of every reported quantity."""
        doms, targets = self.domains, self.target_domains
        return json_safe({
            "bayesmix_type": "recommendation",
            "law": self.law,
            "fingerprint": self.fingerprint,
            "target": {"model_size": self.model_size, "tokens": self.tokens},
            "domains": list(doms),
            "eval_domains": list(self.eval_domains),
            "objective": {"description": self.objective,
                          "weights": _by_domain(targets, self.objective_weights)},
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
                              for i, d in enumerate(targets)},
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
        width = max(6, max(len(d) for d in self.target_domains))
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
        for i, d in enumerate(self.eval_domains, start=len(doms)):
            dl = self.domain_losses
            lines.append(
                f"{d:<{width}}  {'-':>7}  {'evaluation only':>15}  {'':>28}  "
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
    domains, names, mixtures
        The candidates as given: ``mixtures (M, K)`` over ``domains``, named ``names``.
    model_size, tokens : float
        The target scale at which they are compared (N in parameters, D in tokens).
    objective_description : str
        What is minimised (:meth:`~bayesmix.decide.MixtureProblem.describe_objective`).
    risk : Risk
        The risk measure that orders them; ``risk_values (M,)`` its value per candidate.
    objective : dict of str to ndarray ``(M,)``
        Mean, sd, q05, q95 of each candidate's objective.
    prob_best : ndarray ``(M,)``
        Posterior probability that the candidate has the lowest objective (ties split).
    regret : ndarray ``(M,)``
        Posterior mean of the candidate's objective minus the best candidate's in that draw.
    feasible, violations
        Whether each candidate keeps the constraints, and the bounds it breaks if not.
    n_draws, law, fingerprint
        The posterior's number of draws, its law and the fitted table's fingerprint.
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
