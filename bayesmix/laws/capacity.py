"""Capacity competition (+ noise reduction) laws of Dai and Zheng (ICML 2026).

``L_i(h, N, D) = c_i * x_i(h, N)^(-b_i) + A_i * (D h_i)^(-a_i) + E_i``

where the capacity split ``x(h, N)`` solves
``min_x sum_i h_i c_i x_i^(-b_i)`` s.t. ``sum_i x_i = N + (K-1) H``, ``x_i >= H``.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

from . import register
from .base import (AMPLITUDE_PRIOR, DOMAIN, EXAMPLE_LEFT_OUT_SHARE, IRREDUCIBLE_LOSS_PRIOR, LEFT_OUT_SHARE,
                   MIN_POSITIVE_WEIGHT, Law, Param, own_data_params, own_data_term, with_left_out_share)
from .capacity_kernel import capacity_term
from .capacity_split import capacity_split

CITATION = (
    "Dai, J. and Zheng, Y. Explaining Data Mixing Scaling Laws. ICML 2026. "
    "Eq. 1 (capacity competition) and Eq. 3 (capacity competition + noise reduction)."
)


def solver_residual(posterior, table, max_draws: int = 200) -> float:
    """Largest relative residual ``|sum_i x_i - (n + (K-1) H)| / (n + (K-1) H)`` of the
    capacity split over the table's rows and (up to ``max_draws``) posterior draws.

    A stalled solve silently turns the capacity term into a constant, so every fit
    records this number.
    """
    import numpy as np
    import pytensor

    post = posterior.thin(max_draws)
    h = pt.matrix("h")
    n = pt.col("n")
    b = pt.tensor("b", shape=(None, 1, None))
    c = pt.tensor("c", shape=(None, 1, None))
    H = pt.tensor("H", shape=(None, 1, 1))
    x = capacity_split(h, b, c, H, n)
    budget = n + (h.shape[-1] - 1) * H
    rel = pt.abs(pt.sum(x, axis=-1, keepdims=True) - budget) / budget
    fn = pytensor.function([h, b, c, H, n], pt.max(rel))
    S = post.n_draws
    K = post.n_targets  # evaluation-only domains the law predicts take part at weight 0
    n_val, _ = post.scaling.scale_inputs(table.model_size, table.tokens)
    b_draws = np.asarray(post.draws["b"], dtype=float).reshape(S, 1, K)
    return float(fn(post.full_weights(table.weights), b_draws,
                    paper_amplitude(np.asarray(post.draws["c"], dtype=float).reshape(S, 1, K), b_draws, K),
                    np.asarray(post.draws["H"]).reshape(S, 1, 1), n_val))


def paper_amplitude(c, b, n_domains):
    """The paper's amplitude ``c_i K^(-b_i)`` of a capacity term whose value at an equal
    share ``N_ref / K`` is ``c_i``: ``c_paper x^(-b)`` equals ``c`` at ``x = 1/K``."""
    return c * n_domains ** (-b)  # NumPy arrays and PyTensor tensors alike


def _capacity_term(p, h, n):
    """``c_i x_i^(-b_i)`` with the amplitude measured at an equal share of N_ref.

    The parameter ``c`` is the term's value when the domain holds ``N_ref / K``: the
    paper's amplitude is ``c K^(-b)`` (:func:`paper_amplitude`). Measuring amplitudes where
    the data are (a typical share, not the whole model) decorrelates them from the
    exponents, and makes ``E + c + A`` the loss near the reference point, which level
    coordinates (:mod:`bayesmix.coordinates`) rely on.
    """
    return capacity_term(h, p["b"], paper_amplitude(p["c"], p["b"], h.shape[-1]), p["H"], n)


#: NUTS tree-depth cap of ``capacity_noise`` and ``capacity`` (127 leapfrog steps), each
#: declaring it: whitened, these posteriors take 25-90 steps a kept draw, but the first
#: ~350 tuning iterations (before the low-rank mass matrix takes over) take 100-400, three
#: quarters of all steps. Measured with capacity_noise, default settings otherwise (README,
#: "Tree depth"): SlimPajama 7 seeds 0-2, `benchmarks/bench_fit.py --max-tree-depth 7`
#: against 10: 81, 63, 77 s against 94, 77, 79 s wall, no kept tree cut; Pile 17 seeds 0-5:
#: 241 s of sampling against 302 s, two fits of six sampled again at 0.99 at either depth,
#: 17-25 kept trees of 4000 cut at 0.95; Pile 4 unchanged. Not the transfer law's.
CAPACITY_TREE_DEPTH = 7


class CapacityBase(Law):
    """What the capacity laws share: sampler settings, the parametrization version of
    ``c``, the solver-residual check and example parameters."""

    # Measured on a Pile 17 fold, 2 x (500+500): capacity 39 s of sampling against 64 s
    # (min bulk ESS 147 against 82), capacity_noise 50 s against 76 s; nutpie's first 150
    # tuning draws took 700-800 gradients each in the original coordinates, 150-270 whitened.
    whitened_sampling = True
    # The floor H can have separated modes: SlimPajama 7 (final checkpoints, default
    # model) near 0.012, 0.06 and 0.17 N_ref, typical log densities about 5246, 5263 and
    # 5250; the MAP search ends near the first, and in about one seed of eight no chain of
    # the pilot or the kept run reached the second (every chain near 0.012, R-hat 1.01).
    mode_probe = "H"
    irreducible_loss = "E"
    # As an exponent b_i goes to 0 the capacity term turns into a constant that trades with
    # E_i: the ratio c_i/E_i is then free, a funnel whose neck diverges. Pile 4, default
    # settings, seed 0 (2026-12-02): 1 divergent transition in 4 x 2000 draws at 0.95
    # (github: E at its 0.6% quantile, c 99.7%, b 1.2%), none in 4 x 3000 at 0.99, with 128
    # gradients per draw instead of 65. A fit samples at the laws' 0.95 and again at 0.99
    # where its draws diverge (FitSettings.retry_target_accept).

    # Version 2 (2026-12-04): ``c`` is the term at an equal share N_ref/K, as documented.
    # Version 1 computed the paper's amplitude as ``c K^(+b)``, which put ``c`` at a share
    # of K N_ref, far from any data: the term at an equal share was ``c K^(2b)`` (2-2.5x
    # ``c`` on the shared tables), so ``c``'s prior sat in the wrong place and
    # ``E + c + A`` was not the loss at the reference point.
    parametrization = 2

    def upgrade_draws(self, draws: dict, version: int) -> dict:
        if version >= 2 or "c" not in draws:
            return draws
        c, b = np.asarray(draws["c"], dtype=float), np.asarray(draws["b"], dtype=float)
        return {**draws, "c": c * c.shape[-1] ** (2.0 * b)}

    def fit_checks(self, posterior, table) -> dict:
        return {**super().fit_checks(posterior, table), "solver_residual": solver_residual(posterior, table)}

    def example_params(self, n_domains, rng):
        params = {"c": rng.uniform(0.4, 1.0, n_domains), "b": rng.uniform(0.2, 0.5, n_domains),
                  "H": np.array(0.01), "E": rng.uniform(0.8, 2.2, n_domains)}
        names = {param.name for param in self.params}
        if "A" in names:
            params["A"] = rng.uniform(0.15, 0.4, n_domains)
            params["a"] = rng.uniform(0.2, 0.5, n_domains)
        if "h0" in names:
            params["h0"] = np.array(EXAMPLE_LEFT_OUT_SHARE)
        return params


#: Prior of the capacity exponents ``b_i``: LogitNormal(-1, 0.5), ``logit(b) ~ N(-1, 0.5)``,
#: support (0, 1): median 0.27, 90% 0.14-0.45, 99% below 0.54.
#:
#: Why bounded by 1. At the split's optimum a free domain's capacity term is
#: ``c_i x_i^(-b_i) = lam x_i / (h_i b_i)`` and its capacity moves with ``lam^(-1/(b_i+1))``:
#: a domain with a steep exponent holds much of the model while ``N`` is small and gains
#: little as ``N`` grows, so the other domains' capacity grows faster than ``N``, a bend
#: that the law otherwise does not have. On Pile 4 (all 86 runs, default model, the
#: earlier LogNormal(-1.2, 0.5) prior) github did this with ``b`` 2.0-2.2, holding ~60% of
#: the capacity at 90M and ~35% at 440M, in three chains, and sat near ``b`` 0.6-1.2 with
#: a small floor ``H`` in the others: two modes that R-hat (1.53) rightly refused (seeds 0
#: and 1); a LogNormal(-1.6, 0.5) prior moved them but kept both (R-hat 1.27). A loss term
#: falling faster than ``1/x`` in the parameters is outside every published LM scaling
#: fit (Chinchilla: 0.34; the shared tables' posteriors: 0.05-0.6 per domain).
#:
#: Why logit-normal. Near 0 it falls off as the earlier log-normal did (``logit b ~ log b``):
#: a Beta(2, 6), whose density is only linear there, let SlimPajama's exponents sink to
#: 0.01-0.03, where the capacity term turns into a constant that trades with ``E``: a
#: funnel (716 gradients per draw, R-hat 1.43). The sampler works on ``logit b``, where
#: this prior is a plain normal.
CAPACITY_EXPONENT_PRIOR = {"dist": "LogitNormal", "mu": -1.0, "sigma": 0.5}

CAPACITY_PARAMS = (
    Param("c", (DOMAIN,), AMPLITUDE_PRIOR,
          "capacity amplitude: the capacity term when the domain holds an equal share N_ref/K "
          "of the reference model, relative to the reference loss (paper's c = this * K^(-b))"),
    Param("b", (DOMAIN,), CAPACITY_EXPONENT_PRIOR,
          "capacity exponent, between 0 and 1 (median 0.27, 90% 0.14-0.45): with a steeper one a "
          "domain holds much of a small model and hands capacity over as N grows, a bend the "
          "law otherwise lacks (see CAPACITY_EXPONENT_PRIOR); held away from 0, where c*x^-b "
          "would turn into a constant indistinguishable from E"),
    Param("H", (), {"dist": "LogNormal", "mu": -5.3, "sigma": 1.0},
          "minimum capacity of every domain, in units of N_ref; below the smallest model "
          "size of the table, where the split exists (the prior is truncated there)",
          below_model_size=True),
    Param("E", (DOMAIN,), IRREDUCIBLE_LOSS_PRIOR,
          "irreducible loss relative to the reference loss (the geometric mean of all observed "
          "losses); 90% prior range 0.2-1.6 covers easy (code) and hard (books) domains alike"),
)

NOISE_PARAMS = own_data_params("A", "a", "noise-reduction term", "; the paper's A = this * (D_ref/K)^a")


@register
class CapacityNoiseLaw(CapacityBase):
    """Capacity competition + noise reduction (Dai and Zheng, ICML 2026, Eq. 3).

    ``L_i = c_i x_i(h, N)^(-b_i) + A_i (D h_i)^(-a_i) + E_i``. A domain a run leaves out
    (weight 0) has its capacity at the floor ``H`` and its noise-reduction term at the
    fitted share ``h0`` (:data:`~bayesmix.laws.base.LEFT_OUT_SHARE`, this project's
    extension; the law at every positive weight is Eq. 3's). Eq. 3 has no noise term
    there (the domain saw none of its own data); that convention put the left-out
    domains' losses (a third of Pile 17's cells) on the capacity floor alone. A fit
    saved before ``h0`` (parametrization 1 or 2) loads with ``h0 = 0`` and keeps it.
    """

    name = "capacity_noise"
    max_tree_depth = CAPACITY_TREE_DEPTH
    min_positive_weight = MIN_POSITIVE_WEIGHT
    # 2: c at an equal share (CapacityBase); 3: the left-out share h0 (0 in fits saved before)
    parametrization = 3
    relative_cost = 8
    title = "capacity competition + noise reduction (Eq. 3)"
    citation = CITATION
    uses_model_size = True
    uses_tokens = True
    params = CAPACITY_PARAMS + NOISE_PARAMS + (LEFT_OUT_SHARE,)
    level_terms = ("E", "c", "A")

    def upgrade_draws(self, draws, version):
        return with_left_out_share(super().upgrade_draws(draws, version), version, since=3)

    def mean(self, p, h, n, d):
        noise_term = own_data_term(p["A"], p["a"], h, d, left_out_share=p["h0"])
        return _capacity_term(p, h, n) + noise_term + p["E"]


@register
class CapacityLaw(CapacityBase):
    """Capacity competition only (Dai and Zheng, ICML 2026, Eq. 1).

    ``L_i = c_i x_i(h, N)^(-b_i) + E_i``.
    """

    name = "capacity"
    max_tree_depth = CAPACITY_TREE_DEPTH
    relative_cost = 6
    title = "capacity competition (Eq. 1)"
    citation = CITATION
    uses_model_size = True
    uses_tokens = False
    params = CAPACITY_PARAMS
    level_terms = ("E", "c")

    def mean(self, p, h, n, d):
        return _capacity_term(p, h, n) + p["E"]
