"""Priors: defaults declared by each law, overridable from Python or a TOML/JSON file.

A prior is a plain dict ``{"dist": <PyMC distribution name>, **parameters}`` so that it
can be written in a file, stored in a fit's attributes and shown in a model card.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pymc as pm

from .errors import UsageError
from .laws import Law
from .observation import OBSERVATION_PRIORS

def resolve_priors(law: Law, overrides: dict | None = None) -> dict[str, dict]:
    """The law's default priors and the observation priors, updated by ``overrides``.

    Raises
    ------
    UsageError
        If an override names a parameter the law does not have, or lacks ``dist``.
    """
    priors = {**law.default_priors(), **{k: dict(v) for k, v in OBSERVATION_PRIORS.items()}}
    for name, spec in (overrides or {}).items():
        if name not in priors:
            raise UsageError(
                f"prior for unknown parameter '{name}' of law '{law.name}'; "
                f"its parameters are: {', '.join(priors)}"
            )
        if not isinstance(spec, dict) or "dist" not in spec:
            raise UsageError(f"prior for '{name}' must be a table with a 'dist' key, e.g. "
                             "{dist = 'LogNormal', mu = -1.2, sigma = 0.5}")
        if not hasattr(pm, spec["dist"]):
            raise UsageError(f"prior for '{name}': PyMC has no distribution '{spec['dist']}'")
        priors[name] = dict(spec)
    return priors


def load_prior_file(path) -> dict[str, dict]:
    """Read prior overrides from a TOML or JSON file: one table per parameter."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: prior file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as err:  # parse errors of either format
        raise UsageError(f"{path}: cannot parse prior file: {err}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a prior file maps parameter names to prior tables")
    return data


def _default_transforms() -> dict:
    """Transforms PyMC does not give a distribution by itself: its ``LogitNormal`` is a
    custom distribution with no transform, so NUTS would step outside (0, 1), where the
    density is -inf (every chain's start failed on SlimPajama)."""
    from pymc.distributions import transforms

    return {"LogitNormal": transforms.logodds}


def make_rv(name: str, spec: dict, dims=None, upper=None):
    """Create the PyMC random variable of a prior spec inside the current model.

    ``upper`` (a tensor, e.g. shared data) truncates the prior to ``(0, upper)``: the
    density is the prior's, renormalised, and the sampler's coordinate is the log-odds
    of ``value / upper`` (close to ``log value`` well below the bound).
    """
    try:
        if upper is not None:
            return pm.Truncated(name, make_dist(spec), lower=0.0, upper=upper, dims=dims)
        transform = _default_transforms().get(spec["dist"])
        extra = {"default_transform": transform} if transform is not None else {}
        return getattr(pm, spec["dist"])(name, dims=dims, **_dist_kwargs(spec), **extra)
    except TypeError as err:
        raise UsageError(f"prior for '{name}' ({spec}): {err}") from None


def make_dist(spec: dict):
    """The prior spec as an unnamed PyMC distribution (``.dist``), outside any model."""
    try:
        return getattr(pm, spec["dist"]).dist(**_dist_kwargs(spec))
    except TypeError as err:
        raise UsageError(f"prior {spec}: {err}") from None


def prior_draws(spec: dict, n: int) -> np.ndarray:
    """``n`` draws of a prior spec, seeded: a summary of a spec computed from its draws
    is the same every time."""
    return np.asarray(pm.draw(make_dist(spec), draws=n, random_seed=0), dtype=float)


def root_mean_square(spec: dict) -> float:
    """``sqrt(E[x^2])`` of a prior spec: exact for a HalfNormal (its ``sigma``), else
    from 100000 draws (:func:`prior_draws`)."""
    if spec.get("dist") == "HalfNormal" and set(spec) <= {"dist", "sigma"}:
        return float(spec.get("sigma", 1.0))
    return float(np.sqrt(np.mean(prior_draws(spec, 100_000) ** 2)))


def _dist_kwargs(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "dist"}


def draw_from_prior(law: Law, n_domains: int, *, priors=None, seed=0) -> dict[str, np.ndarray]:
    """One draw of the law's parameters from their priors (for simulation)."""
    priors = resolve_priors(law, priors)
    coords = {"domain": range(n_domains), "domain_j": range(n_domains)}
    with pm.Model(coords=coords):
        rvs = [make_rv(p.name, priors[p.name], dims=p.dims or None) for p in law.params]
        values = pm.draw(rvs, random_seed=seed)
    return {p.name: np.asarray(v, dtype=float) for p, v in zip(law.params, values)}
