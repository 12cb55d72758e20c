"""All ArviZ / xarray access of bayesmix, kept in one small module.

ArviZ 1.x (Python 3.12+) changes InferenceData to a DataTree; porting bayesmix means
porting this file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr


def stacked_draws(idata, var: str) -> np.ndarray:
    """Posterior draws of ``var`` with chain and draw stacked first: ``(S, ...)``."""
    da = idata.posterior[var]
    other = [d for d in da.dims if d not in ("chain", "draw")]
    return da.stack(sample=("chain", "draw")).transpose("sample", *other).values


def has_var(idata, var: str, group: str = "posterior") -> bool:
    return hasattr(idata, group) and var in getattr(idata, group)


def diagnostics_table(idata, var_names) -> dict:
    """Max R-hat, min bulk/tail ESS over ``var_names``, and sampler statistics."""
    summary = az.summary(idata, var_names=list(var_names), kind="diagnostics")
    stats = idata.sample_stats
    out = {
        "max_rhat": float(np.nanmax(summary["r_hat"].values)),
        "min_ess_bulk": float(np.nanmin(summary["ess_bulk"].values)),
        "min_ess_tail": float(np.nanmin(summary["ess_tail"].values)),
        "worst_rhat_param": str(summary["r_hat"].idxmax()),
        "divergences": int(stats["diverging"].values.sum()) if "diverging" in stats else 0,
        "chains": int(idata.posterior.sizes["chain"]),
        "draws": int(idata.posterior.sizes["draw"]),
    }
    if "reached_max_treedepth" in stats:
        out["treedepth_hits"] = int(stats["reached_max_treedepth"].values.sum())
    elif "maxdepth_reached" in stats:
        out["treedepth_hits"] = int(stats["maxdepth_reached"].values.sum())
    else:
        out["treedepth_hits"] = 0
    for name in ("tree_depth", "depth"):
        if name in stats:
            out["mean_tree_depth"] = float(stats[name].values.mean())
            break
    for name in ("n_steps", "tree_size"):
        if name in stats:
            out["gradients_per_draw"] = float(stats[name].values.mean())
            break
    return out


def add_table_groups(idata, *, weights, model_size, tokens, run_ids, losses, loglik, domains):
    """Attach observed and constant data and the pointwise log-likelihood (row, domain)."""
    rows = np.arange(len(model_size))
    coords = {"row": rows, "domain": list(domains)}
    constant = xr.Dataset(
        {
            "weights": (("row", "domain"), np.asarray(weights)),
            "model_size": ("row", np.asarray(model_size)),
            "tokens": ("row", np.asarray(tokens)),
            "run_id": ("row", np.asarray(run_ids, dtype=str)),
        },
        coords=coords,
    )
    observed = xr.Dataset({"loss": (("row", "domain"), np.asarray(losses))}, coords=coords)
    ll = xr.Dataset(
        {"loss": (("chain", "draw", "row", "domain"), loglik)},
        coords={**coords, "chain": idata.posterior.chain.values, "draw": idata.posterior.draw.values},
    )
    for name, ds in (("constant_data", constant), ("observed_data", observed), ("log_likelihood", ll)):
        if hasattr(idata, name):
            delattr(idata, name)
            idata._groups = [g for g in idata._groups if g != name]
        idata.add_groups({name: ds})
    return idata


def set_attrs(idata, attrs: dict) -> None:
    """Store JSON-encoded attributes on the posterior group (NetCDF-safe)."""
    for key, value in attrs.items():
        idata.posterior.attrs[key] = value if isinstance(value, str) else json.dumps(value)


def get_attrs(idata) -> dict:
    out = {}
    for key, value in idata.posterior.attrs.items():
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except (json.JSONDecodeError, ValueError):
                out[key] = value
        else:
            out[key] = value
    return out


def save(idata, path) -> Path:
    """Write InferenceData to NetCDF atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load(path):
    return az.from_netcdf(path, engine="h5netcdf")


def from_draws(draws: dict, dims: dict, coords: dict):
    """InferenceData from arrays shaped ``(chain, draw, ...)``."""
    return az.from_dict(posterior=draws, dims=dims, coords=coords)


def thin(idata, max_draws: int):
    """Keep about ``max_draws`` draws in total, evenly spaced within each chain."""
    n_chain = idata.posterior.sizes["chain"]
    n_draw = idata.posterior.sizes["draw"]
    step = max(1, int(np.ceil(n_chain * n_draw / max_draws)))
    return idata.isel(draw=slice(None, None, step))
