"""Mixtures given by the user (names or vectors) and the objective over domains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import UsageError
from ..units import format_number


def _domain_index(domains) -> dict[str, int]:
    return {d: i for i, d in enumerate(domains)}


def check_names(names, domains, what: str) -> None:
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
        check_names(value.keys(), domains, what)
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


def predicting_laws() -> list[str]:
    """The registered laws that predict evaluation-only domains."""
    from ..laws import available_laws, get_law

    return [name for name in available_laws() if get_law(name).predicts_evaluation_domains]


def check_predicted(names, posterior, what: str) -> None:
    """Refuse domain ``names`` that ``posterior`` does not predict, explaining an
    evaluation-only domain its law left out (the law cannot predict such a domain).

    Raises
    ------
    UsageError
        Naming the fit file (``posterior.meta["fit_path"]``, when known), the domain and
        how to fix it.
    """
    left_out = [n for n in names if n in tuple(posterior.meta.get("eval_domains_not_modelled") or ())]
    if left_out:
        fit = posterior.meta.get("fit_path")
        raise UsageError(
            f"{fit + ': ' if fit else ''}{what} names {', '.join(map(repr, left_out))}, an evaluation-only "
            f"domain of the fitted table (a loss column with no weight column), which law "
            f"'{posterior.law.name}' does not predict: its loss of a domain at weight 0 does not move with "
            f"the mixture; refit with a law that predicts evaluation-only domains ({', '.join(predicting_laws())}), "
            "e.g. bayesmix fit RUNS --law capacity_noise_transfer")
    check_names(names, tuple(posterior.target_domains), what)


@dataclass(frozen=True)
class Objective:
    """Which average of the domains' losses the mixture should minimise.

    Parameters
    ----------
    weights : mapping of str to float, optional
        Weight of each domain in the objective; domains left out get 0 and the weights are
        normalised to sum to 1. Default: the plain average over the mixture's domains
        (evaluation-only domains count only when named).
    target_domain : str, optional
        Minimise one domain's loss only. Exclusive with ``weights``.
    """

    weights: Mapping[str, float] | None = None
    target_domain: str | None = None

    def named_domains(self) -> tuple:
        """The domains the objective names (none for the default average)."""
        if self.target_domain is not None:
            return (self.target_domain,)
        return tuple(self.weights or ())

    def domain_weights(self, domains, *, n_mixture: int | None = None) -> np.ndarray:
        """Objective weights ``(T,)`` summing to one, in the order of ``domains``.

        ``n_mixture``: the default average is over the first ``n_mixture`` domains (the
        mixture's; the evaluation-only ones follow them); default all of them.
        """
        domains = tuple(domains)
        if self.weights is not None and self.target_domain is not None:
            raise UsageError("give objective weights or a target domain, not both")
        if self.target_domain is not None:
            check_names([self.target_domain], domains, "the target domain")
            w = np.zeros(len(domains))
            w[domains.index(self.target_domain)] = 1.0
            return w
        if self.weights is None:
            k = len(domains) if n_mixture is None else int(n_mixture)
            return np.concatenate([np.full(k, 1.0 / k), np.zeros(len(domains) - k)])
        check_names(self.weights.keys(), domains, "the objective weights")
        w = np.zeros(len(domains))
        for name, value in self.weights.items():
            w[domains.index(name)] = float(value)
        if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise UsageError("objective weights must be non-negative with at least one positive")
        return w / w.sum()

    def describe(self, domains, *, n_mixture: int | None = None) -> str:
        if self.target_domain is not None:
            return f"loss on {self.target_domain}"
        if self.weights is None:
            return f"average loss over the {len(tuple(domains)) if n_mixture is None else n_mixture} domains"
        w = self.domain_weights(domains)
        parts = ", ".join(f"{d}={v:.3g}" for d, v in zip(domains, w) if v > 0)
        return f"weighted average loss ({parts})"
