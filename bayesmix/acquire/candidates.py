"""Candidate runs (mixture, model size, tokens) and their compute cost: generated on a
quasi-random design over the simplex, or read from a file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decide import Constraints
from ..errors import DataError, UsageError
from ..polytope import project_to_polytope
from ..units import check_scale_bounds, format_quantity, parse_quantity

#: FLOPs per parameter per token of a training run (forward and backward pass).
FLOPS_PER_PARAM_TOKEN = 6.0


def flops_cost(model_size, tokens) -> np.ndarray:
    """Training compute ``6 N D`` in FLOPs."""
    return FLOPS_PER_PARAM_TOKEN * np.asarray(model_size, dtype=float) * np.asarray(tokens, dtype=float)


def check_fixed_cost(fixed_cost) -> float:
    """A fixed cost per run (FLOPs) as a float, refused when negative or not finite."""
    value = float(fixed_cost)
    if not np.isfinite(value) or value < 0:
        raise UsageError(f"the fixed cost per run must be a non-negative number of FLOPs, got {fixed_cost}")
    return value


@dataclass
class CandidateSet:
    """Candidate proxy runs: a mixture, a model size, a token count and a cost each.

    Attributes
    ----------
    domains : tuple of str
        The mixture's domains, one column of ``mixtures`` each.
    names : list of str
        One per candidate, distinct: the candidate file's, or ``cand-001``, ... where none are given.
    mixtures : ndarray ``(M, K)``
    model_size, tokens, cost : ndarray ``(M,)``
        N in parameters, D in tokens, cost in FLOPs (default ``6 N D`` plus a fixed
        cost per run).
    """

    domains: tuple
    names: list
    mixtures: np.ndarray
    model_size: np.ndarray
    tokens: np.ndarray
    cost: np.ndarray

    @classmethod
    def from_arrays(cls, domains, mixtures, model_size, tokens, cost=None, names=None, *,
                    fixed_cost: float = 0.0) -> "CandidateSet":
        """Build a checked candidate set (scalars broadcast to every candidate).

        ``cost`` (FLOPs) defaults to ``6 N D + fixed_cost``: the training compute plus
        what every run costs besides (start-up, evaluation, checkpoints), in FLOPs of the
        same hardware; a given ``cost`` is taken as the whole cost.
        """
        fixed_cost = check_fixed_cost(fixed_cost)
        domains = tuple(domains)
        h = np.atleast_2d(np.asarray(mixtures, dtype=float))
        M = h.shape[0]
        if h.shape[1] != len(domains):
            raise UsageError(f"candidate mixtures have {h.shape[1]} weights but there are "
                             f"{len(domains)} domains ({', '.join(domains)})")
        if np.any(~np.isfinite(h)) or np.any(h < 0) or np.any(np.abs(h.sum(1) - 1) > 1e-3):
            raise UsageError("candidate mixtures must be non-negative and sum to 1")
        h = h / h.sum(1, keepdims=True)
        N = np.broadcast_to(np.asarray(model_size, dtype=float), (M,)).copy()
        D = np.broadcast_to(np.asarray(tokens, dtype=float), (M,)).copy()
        if np.any(~np.isfinite(N)) or np.any(N <= 0) or np.any(~np.isfinite(D)) or np.any(D <= 0):
            raise UsageError("candidate model sizes and tokens must be positive")
        if cost is None:
            c = flops_cost(N, D) + fixed_cost
        else:
            c = np.broadcast_to(np.asarray(cost, dtype=float), (M,)).copy()
        if np.any(~np.isfinite(c)) or np.any(c <= 0):
            raise UsageError("candidate costs must be positive")
        names = [f"cand-{i + 1:03d}" for i in range(M)] if names is None else [str(n) for n in names]
        if len(set(names)) != len(names):
            raise UsageError("candidate names must be distinct")
        return cls(domains, names, h, N, D, c)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx) -> "CandidateSet":
        idx = np.asarray(idx, dtype=int).reshape(-1)
        return CandidateSet(self.domains, [self.names[i] for i in idx], self.mixtures[idx],
                            self.model_size[idx], self.tokens[idx], self.cost[idx])

    def features(self) -> np.ndarray:
        """Points for distances: the weights, then log10 N and log10 D."""
        return np.column_stack([self.mixtures, np.log10(self.model_size), np.log10(self.tokens)])

    def to_frame(self):
        import pandas as pd

        cols = {"name": self.names, "model_size": self.model_size, "tokens": self.tokens, "cost": self.cost}
        for j, d in enumerate(self.domains):
            cols[f"weight_{d}"] = self.mixtures[:, j]
        return pd.DataFrame(cols)


def simplex_sobol(n: int, n_domains: int, *, seed: int = 0) -> np.ndarray:
    """``n`` quasi-random points spread uniformly over the simplex, ``(n, K)``.

    A scrambled Sobol sequence in ``K`` dimensions is mapped to the simplex through
    normalised exponential spacings (``-log u``), the map that turns uniform points into
    a uniform Dirichlet.
    """
    from scipy.stats import qmc

    if n < 1:
        raise UsageError(f"the number of mixtures must be at least 1, got {n}")
    sampler = qmc.Sobol(d=n_domains, scramble=True, seed=seed)
    m = int(np.ceil(np.log2(max(n, 2))))
    u = sampler.random_base2(m)[:n]
    e = -np.log(np.clip(u, 1e-12, 1.0))
    return e / e.sum(axis=1, keepdims=True)


def generate_candidates(domains, sizes, *, tokens=None, tokens_per_param=None, n_mixtures: int = 16,
                        constraints: Constraints | None = None, seed: int = 0, fixed_cost: float = 0.0) -> CandidateSet:
    """Candidates on a grid of scales times quasi-random mixtures meeting the constraints.

    Parameters
    ----------
    domains : sequence of str
    sizes : sequence of float or str
        Model sizes N, e.g. ``["122M", "310M"]``.
    tokens : sequence of float or str, optional
        Token counts D; every size is paired with every count.
    tokens_per_param : float, optional
        D = ratio x N instead of ``tokens`` (default 20 when neither is given).
    n_mixtures : int
        Mixtures per scale, spread over the simplex (Sobol points projected onto the
        feasible set of ``constraints`` at each D).
    constraints : Constraints, optional
        The same per-domain ``min``/``max``/``available`` as the recommendation.
    seed : int
    fixed_cost : float
        FLOPs every run costs on top of ``6 N D``.

    Returns
    -------
    CandidateSet
    """
    domains = tuple(domains)
    sizes = [parse_quantity(s, what="candidate model size") for s in sizes]
    if not sizes:
        raise UsageError("give at least one candidate model size (--sizes)")
    if tokens is not None and tokens_per_param is not None:
        raise UsageError("give candidate tokens (--tokens) or a tokens-per-parameter ratio, not both")
    if tokens is None:
        ratio = 20.0 if tokens_per_param is None else float(tokens_per_param)
        if not np.isfinite(ratio) or ratio <= 0:
            raise UsageError(f"tokens per parameter must be positive, got {ratio}")
        scales = [(n, ratio * n) for n in sizes]
    else:
        counts = [parse_quantity(t, what="candidate tokens") for t in tokens]
        scales = [(n, d) for n in sizes for d in counts]
    constraints = constraints or Constraints()
    base = simplex_sobol(n_mixtures, len(domains), seed=seed)
    rows_h, rows_n, rows_d, names = [], [], [], []
    for n, d in scales:
        bounds = constraints.bounds(domains, d)
        h = project_to_polytope(base, bounds.lower, bounds.upper)
        for i, row in enumerate(h):
            rows_h.append(row)
            rows_n.append(n)
            rows_d.append(d)
            names.append(f"{format_quantity(n)}-{format_quantity(d)}-m{i + 1:02d}")
    return CandidateSet.from_arrays(domains, np.array(rows_h), rows_n, rows_d, names=names, fixed_cost=fixed_cost)


def load_candidates(path, domains, *, fixed_cost: float = 0.0) -> CandidateSet:
    """Read candidates from a CSV/TSV file.

    Columns: an optional ``name``; one weight per domain (``<d>`` or ``weight_<d>``,
    matched by name, missing domains get 0); ``model_size`` (or ``N``); ``tokens`` (or
    ``n_tokens``, ``D``); an optional ``cost`` in FLOPs, the whole cost of each run
    (default ``6 N D + fixed_cost``). Sizes may be written ``122M``.

    Raises
    ------
    DataError
        If the file is missing, empty or unreadable, a column is unknown or repeated, or a
        value cannot be read.
    """
    import pandas as pd

    from ..data import read_table
    from ..decide import column_domains

    path = Path(path)
    domains = tuple(domains)
    if not path.exists():
        raise DataError("file not found", file=path)
    frame = read_table(path, empty_hint="a candidate file needs a header line and one candidate run per row")
    if frame.empty:
        raise DataError("no candidate runs in the file (a header line only)", file=path)

    def pick(options, what):
        for c in options:
            if c in frame.columns:
                return c
        if what is None:
            return None
        raise DataError(f"no {what} column: name one of {', '.join(options)}", file=path)

    n_col = pick(("model_size", "N"), "model size")
    d_col = pick(("tokens", "n_tokens", "D"), "tokens")
    cost_col = pick(("cost",), None)
    h = np.zeros((len(frame), len(domains)))
    for col, d in column_domains(frame.columns, domains, path, skip=("name", n_col, d_col, cost_col)).items():
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(f"weight '{frame[col].iloc[bad[0]]}' is not a finite number", file=path, column=col,
                            rows=(bad + 1).tolist())
        h[:, domains.index(d)] = values

    def quantities(col, what):
        try:
            return np.array([parse_quantity(v, what=what) for v in frame[col]])
        except UsageError as err:
            raise DataError(str(err), file=path, column=col) from None

    N = quantities(n_col, "model size")
    D = quantities(d_col, "tokens")
    check_scale_bounds(N, D, what=str(path))
    cost = quantities(cost_col, "cost") if cost_col else None
    names = [str(v) for v in frame["name"]] if "name" in frame.columns else None
    try:
        return CandidateSet.from_arrays(domains, h, N, D, cost=cost, names=names, fixed_cost=fixed_cost)
    except UsageError as err:
        raise DataError(str(err), file=path) from None
