"""All ArviZ / xarray access of bayesmix, kept in one small module.

A fit is an :class:`xarray.DataTree` with ArviZ's groups as children (``posterior``,
``sample_stats``, ``log_likelihood``, ``constant_data``, ``observed_data``), as ArviZ 1
and PyMC 6 write it. Files written by ArviZ 0.x (InferenceData) are NetCDF files with the
same groups and load as such a tree.
"""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from ._files import atomic_path


def version() -> str:
    """The installed ArviZ version (recorded with every fit)."""
    return az.__version__


def stacked_draws(idata, var: str) -> np.ndarray:
    """Posterior draws of ``var`` with chain and draw stacked first: ``(S, ...)``."""
    da = idata.posterior[var]
    other = [d for d in da.dims if d not in ("chain", "draw")]
    return da.stack(sample=("chain", "draw")).transpose("sample", *other).values


def chain_stat(idata, name: str) -> np.ndarray:
    """A sampler statistic by chain and draw (``(chains, draws, ...)``), e.g. nutpie's
    ``logp`` or ``unconstrained_draw``."""
    return np.asarray(idata.sample_stats[name].values, dtype=float)


def completed_draws(idata) -> int:
    """Draws that every chain of a sampler's (possibly unfinished) trace has: a trace
    read while sampling pads the chains that are behind with NaN."""
    logp = np.asarray(idata.sample_stats["logp"].values, dtype=float)
    return int(np.isfinite(logp).sum(axis=1).min()) if logp.size else 0


def first_draws(idata, n: int):
    """The trace cut to each chain's first ``n`` draws (every group with a draw axis)."""
    return idata.isel(draw=slice(0, int(n)))


def has_group(idata, group: str) -> bool:
    return group in idata.children


def has_var(idata, var: str, group: str = "posterior") -> bool:
    return has_group(idata, group) and var in idata[group].data_vars


def _dataset(idata, group: str) -> xr.Dataset:
    return idata[group].to_dataset()


def _tree(groups: dict) -> xr.DataTree:
    """A fit's tree from ``{group name: Dataset}``."""
    return xr.DataTree.from_dict(groups)


def diagnostics_table(idata, var_names) -> dict:
    """Max R-hat, min bulk/tail ESS over ``var_names``, and sampler statistics."""
    summary = _summary(idata, var_names, kind="diagnostics")
    # Judged as ArviZ prints them (and as bayesmix has always judged them): R-hat to two
    # decimals, ESS to whole draws; so "R-hat <= 1.01" passes values below 1.015.
    rhat = np.round(summary["r_hat"].to_numpy(dtype=float), 2)
    out = {
        "max_rhat": float(np.nanmax(rhat)),
        "min_ess_bulk": float(np.nanmin(np.round(summary["ess_bulk"].to_numpy(dtype=float)))),
        "min_ess_tail": float(np.nanmin(np.round(summary["ess_tail"].to_numpy(dtype=float)))),
        "worst_rhat_param": str(summary.index[int(np.nanargmax(rhat))]),
        "divergences": 0,
        "chains": int(idata.posterior.sizes["chain"]),
        "draws": int(idata.posterior.sizes["draw"]),
        "treedepth_hits": 0,
    }
    out.update(_nuts_stats(idata.sample_stats))  # what the sampler recorded; 0 where it did not
    return out


#: Each NUTS statistic's names in the samplers' ``sample_stats`` (PyMC and numpyro, then
#: nutpie), and how it is summed up over chains and draws.
NUTS_STATS = {
    "divergences": (("diverging",), "sum"),
    "treedepth_hits": (("reached_max_treedepth", "maxdepth_reached"), "sum"),
    "mean_tree_depth": (("tree_depth", "depth"), "mean"),
    "gradients_per_draw": (("n_steps", "tree_size"), "mean"),
}


def _nuts_stats(stats) -> dict:
    """The :data:`NUTS_STATS` that a ``sample_stats`` dataset holds: sums as int, means
    as float; one left out where the sampler did not record it."""
    out = {}
    for key, (names, how) in NUTS_STATS.items():
        name = next((n for n in names if n in stats), None)
        if name is not None:
            values = stats[name].values
            out[key] = int(values.sum()) if how == "sum" else float(values.mean())
    return out


def array_rhat(values) -> np.ndarray:
    """ArviZ's rank-normalised split R-hat of each column of ``values (chains, draws, n)``."""
    values = np.asarray(values, dtype=float)
    data = xr.Dataset({"x": (("chain", "draw", "column"), values)})
    return np.asarray(az.rhat(data)["x"].values, dtype=float)


def drop_posterior_vars(idata, names) -> None:
    """Remove ``names`` (where present) from the posterior group, in place."""
    posterior = _dataset(idata, "posterior")
    idata["posterior"] = xr.DataTree(posterior.drop_vars([n for n in names if n in posterior]))


def set_posterior_var(idata, name: str, values: np.ndarray, dims, coords: dict) -> None:
    """Add (or replace) posterior variable ``name``: ``values (chains * draws, ...)``
    with chain and draw stacked first, as :func:`stacked_draws` returns them; ``dims``
    names its other axes and ``coords`` gives their labels. In place."""
    posterior = _dataset(idata, "posterior")
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    values = np.asarray(values).reshape(chains, draws, *np.shape(values)[1:])
    posterior[name] = xr.DataArray(values, dims=("chain", "draw", *dims),
                                   coords={**{d: coords[d] for d in dims}, "chain": posterior.chain.values,
                                           "draw": posterior.draw.values})
    idata["posterior"] = xr.DataTree(posterior)


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
        idata[name] = xr.DataTree(ds)
    return idata


def set_sample_stats(idata, stats: dict) -> None:
    """Replace the sampler statistics with ``stats`` (arrays shaped ``(chain, draw)``)."""
    chains, draws = idata.posterior.chain.values, idata.posterior.draw.values
    idata["sample_stats"] = xr.DataTree(xr.Dataset(
        {name: (("chain", "draw"), np.asarray(values)) for name, values in stats.items()},
        coords={"chain": chains, "draw": draws}))


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
    """Write a fit to NetCDF atomically (temp file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        idata.to_netcdf(tmp, engine="h5netcdf")
    return Path(path)


def load(path):
    """A fit read whole into memory (the file is closed again, so it can be replaced)."""
    return xr.load_datatree(path, engine="h5netcdf")


def from_draws(draws: dict, dims: dict | None = None, coords: dict | None = None, sample_stats: dict | None = None,
               log_likelihood: dict | None = None):
    """A fit's tree from arrays shaped ``(chain, draw, ...)``: the posterior ``draws`` and,
    optionally, sampler statistics (``logp``, ``diverging``, ...) and pointwise
    log-likelihoods (``loss``, dims ``row, domain``)."""
    groups = {"posterior": draws, "sample_stats": sample_stats, "log_likelihood": log_likelihood}
    return az.from_dict({name: group for name, group in groups.items() if group is not None}, dims=dims, coords=coords)


def thin(idata, max_draws: int):
    """Keep about ``max_draws`` draws in total, evenly spaced within each chain."""
    n_chain = idata.posterior.sizes["chain"]
    n_draw = idata.posterior.sizes["draw"]
    step = max(1, int(np.ceil(n_chain * n_draw / max_draws)))
    return idata.isel(draw=slice(None, None, step))


def select_chains(idata, chains):
    """The trace of the chains ``chains`` only (its posterior and sampler statistics); one
    chain comes as its two halves, two chains, so that R-hat (split R-hat) is defined."""
    draws = idata.posterior.sizes["draw"]
    return select_windows(idata, [(int(c), 0, draws) for c in chains])


def select_windows(idata, windows):
    """The trace of draw windows ``(chain, start, stop)``, all of one length, each as a
    chain (posterior and sampler statistics only); one window comes as its two halves,
    so that R-hat (split R-hat) is defined."""
    windows = [tuple(int(v) for v in w) for w in windows]
    if len(windows) == 1:
        chain, start, stop = windows[0]
        half = (stop - start) // 2
        windows = [(chain, start, start + half), (chain, start + half, start + 2 * half)]
    if len({stop - start for _, start, stop in windows}) > 1:
        raise ValueError("select_windows: the windows must all have one length")
    source = keep_groups(idata, ("posterior", "sample_stats"))
    groups = {}
    for name in source.children:
        data = _dataset(source, name)
        parts = [data.isel(chain=chain, draw=slice(start, stop)).assign_coords(draw=np.arange(stop - start))
                 for chain, start, stop in windows]
        groups[name] = xr.concat(parts, dim="chain").assign_coords(chain=np.arange(len(parts)))
    return _tree(groups)


def keep_chains(idata, chains):
    """The trace of the chains ``chains`` only, in every group with a chain axis,
    renumbered 0, 1, ..."""
    chains = [int(c) for c in chains]
    groups = {}
    for name in idata.children:
        data = _dataset(idata, name)
        if "chain" in data.dims:
            data = data.isel(chain=chains).assign_coords(chain=np.arange(len(chains)))
        groups[name] = data
    return _tree(groups)


def keep_groups(idata, groups):
    """A copy of ``idata`` with only the named groups (those present)."""
    return _tree({g: _dataset(idata, g).copy() for g in groups if has_group(idata, g)})


# --------------------------------------------------------------------------- model comparison


def psis_loo(loglik, posterior_idata=None, reff=None) -> dict:
    """PSIS-LOO on a pointwise log-likelihood array ``(chain, draw, point)``.

    Parameters
    ----------
    loglik : ndarray ``(chain, draw, point)``
        Log-likelihood of each point (e.g. one training run: all its cells summed).
    posterior_idata : DataTree, optional
        The fit whose posterior gave the draws; used for the relative efficiency
        ``reff`` (mean ESS over all posterior components / draws, as :func:`arviz.loo`
        computes it). Without it ``reff`` is 1.
    reff : float, optional
        Relative MCMC efficiency; overrides the one from ``posterior_idata``.

    Returns
    -------
    dict
        ``elpd_i`` (point,), ``pareto_k`` (point,), ``good_k`` (the sample-size-aware
        threshold ``min(1 - 1/log10(S), 0.7)``), ``log_weights`` ``(S, point)``
        normalised PSIS log weights of the leave-one-out posteriors (draws stacked
        chain-major, as :func:`stacked_draws`), ``p_loo`` and ``reff``.
    """
    import warnings

    loglik = np.asarray(loglik, dtype=float)
    chains, draws, points = loglik.shape
    if reff is None:
        if posterior_idata is not None and has_group(posterior_idata, "posterior") and chains > 1:
            ess_p = az.ess(_dataset(posterior_idata, "posterior"), method="mean")
            reff = float(np.hstack([ess_p[v].values.flatten() for v in ess_p.data_vars]).mean()
                         / (chains * draws))
        else:
            reff = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = az.loo(_loglik_tree(loglik), pointwise=True, reff=reff)
    log_weights = result.log_weights.transpose("chain", "draw", "point").values.reshape(chains * draws, points)
    return {
        "elpd_i": np.asarray(result.elpd_i.values, dtype=float),
        "pareto_k": np.asarray(result.pareto_k.values, dtype=float),
        "good_k": float(result.good_k),
        "log_weights": np.asarray(log_weights, dtype=float),
        "p_loo": float(result.p),
        "reff": float(reff),
    }


def _loglik_tree(loglik: np.ndarray) -> xr.DataTree:
    chains, draws, points = loglik.shape
    ll = xr.Dataset({"point_loglik": (("chain", "draw", "point"), loglik)},
                    coords={"chain": np.arange(chains), "draw": np.arange(draws), "point": np.arange(points)})
    return _tree({"log_likelihood": ll})


def arviz_stacking_weights(logliks: dict) -> dict:
    """Stacking weights of :func:`arviz.compare` from PSIS-LOO of each model.

    Parameters
    ----------
    logliks : dict of str to ndarray ``(chain, draw, point)``
        Pointwise log-likelihood of each model on the same points.

    Returns
    -------
    dict of str to float
    """
    import warnings

    elpds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, arr in logliks.items():
            elpds[name] = az.loo(_loglik_tree(np.asarray(arr, dtype=float)), pointwise=True, reff=1.0)
        table = az.compare(elpds, method="stacking", round_to="none")
    return {str(name): float(w) for name, w in table["weight"].items()}


def pointwise_loglik(idata, var: str = "loss") -> tuple[np.ndarray, np.ndarray]:
    """The stored pointwise log-likelihood ``(chain, draw, row, domain)`` of a fit and the
    run id of each row (from ``constant_data``)."""
    if not has_var(idata, var, "log_likelihood"):
        raise ValueError(f"the fit has no pointwise log-likelihood '{var}'")
    ll = idata.log_likelihood[var].transpose("chain", "draw", "row", "domain").values
    run_ids = np.asarray(idata.constant_data["run_id"].values, dtype=str)
    return np.asarray(ll, dtype=float), run_ids


def pointwise_loglik_cells(idata, max_cells: int, var: str = "loss") -> np.ndarray:
    """At most ``max_cells`` cells (evenly spaced over rows x domains) of the stored
    pointwise log-likelihood, ``(chain, draw, cells)``, read without the others."""
    cells = idata.log_likelihood[var].transpose("chain", "draw", "row", "domain").stack(cell=("row", "domain"))
    n = cells.sizes["cell"]
    if n > max_cells:
        cells = cells.isel(cell=np.linspace(0, n - 1, max_cells).astype(int))
    return np.asarray(cells.values, dtype=float)


def draws_dataarray(values: np.ndarray, domains, name: str = "loss"):
    """Wrap ``(S, rows, K)`` draws as an xarray DataArray with dims (draw, row, domain)."""
    values = np.asarray(values)
    return xr.DataArray(
        values,
        dims=("draw", "row", "domain"),
        coords={"draw": np.arange(values.shape[0]), "row": np.arange(values.shape[1]), "domain": list(domains)},
        name=name,
    )


# --------------------------------------------------------------------------- report helpers


def parameter_summary(idata, var_names):
    """:func:`arviz.summary` of ``var_names``: mean, sd, the 90% highest-density interval
    (columns ``hdi_lower``, ``hdi_upper``), MCSE, bulk/tail ESS, R-hat.

    Returns a pandas DataFrame indexed by labels such as ``c[web]`` or ``t[web, code]``.
    """
    summary = _summary(idata, var_names, kind="all", ci_prob=0.9, ci_kind="hdi")
    return summary.rename(columns={"hdi90_lb": "hdi_lower", "hdi90_ub": "hdi_upper"})


def _summary(idata, var_names, **kwargs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.summary(idata, var_names=list(var_names), round_to="none", **kwargs)


def labelled_chain_draws(idata, var_names) -> dict:
    """Draws of every scalar component of ``var_names``, each ``(chain, draw)``.

    Keys are labelled as :func:`arviz.summary` labels them (``c[web]``, ``t[web, code]``).
    """
    out = {}
    for var in var_names:
        da = idata.posterior[var]
        other = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.transpose("chain", "draw", *other)
        values = np.asarray(da.values, dtype=float)
        if not other:
            out[var] = values
            continue
        index_values = [list(np.asarray(da[d].values)) for d in other]
        flat = values.reshape(values.shape[:2] + (-1,))
        for i, idx in enumerate(np.ndindex(*values.shape[2:])):
            label = ", ".join(str(index_values[j][k]) for j, k in enumerate(idx))
            out[f"{var}[{label}]"] = flat[..., i]
    return out


def posterior_var_names(idata) -> list:
    """Names of the variables of the posterior group."""
    return [str(v) for v in idata.posterior.data_vars]


def table_groups(idata):
    """The run table stored with a fit (``constant_data`` and ``observed_data``), or None.

    Returns
    -------
    dict or None
        ``weights`` (rows, K), ``model_size`` (rows,), ``tokens`` (rows,), ``run_id``
        (rows,) and ``losses`` (rows, K) (NaN where missing; all NaN when the fit has no
        ``observed_data``), ``domains``; None when ``constant_data`` is absent or lacks
        one of these variables.
    """
    if not has_group(idata, "constant_data"):
        return None
    const = idata.constant_data
    if any(name not in const for name in ("weights", "model_size", "tokens")):
        return None
    weights = np.asarray(const["weights"].transpose("row", "domain").values, dtype=float)
    domains = [str(d) for d in const["weights"]["domain"].values]
    rows = weights.shape[0]
    run_id = (np.asarray(const["run_id"].values, dtype=str) if "run_id" in const
              else np.asarray([str(i) for i in range(rows)]))
    if has_var(idata, "loss", "observed_data"):
        losses = np.asarray(idata.observed_data["loss"].transpose("row", "domain").values, dtype=float)
    else:
        losses = np.full(weights.shape, np.nan)
    return {"weights": weights, "model_size": np.asarray(const["model_size"].values, dtype=float),
            "tokens": np.asarray(const["tokens"].values, dtype=float), "run_id": run_id,
            "losses": losses, "domains": domains, "has_observed": bool(np.isfinite(losses).any())}


def sampler_stats(idata):
    """Divergences and tree-depth hits from ``sample_stats``, or None when the group is absent."""
    if not has_group(idata, "sample_stats"):
        return None
    recorded = _nuts_stats(idata.sample_stats)
    out = {"divergences": recorded.get("divergences")}
    out.update({key: recorded[key] for key in ("treedepth_hits", "mean_tree_depth") if key in recorded})
    return out
