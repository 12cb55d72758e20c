"""The observation model: how observed losses scatter around a law's mean, written once.

For run ``r`` (mixture ``m(r)``, scale ``s_r = (log n_r[, log d_r])``) and domain ``k``::

    log L_rk = log mu_k(h_r, N_r, D_r; theta) + delta_k(s_r) + eta_(m(r), k) + u_r + eps_rk

* ``delta_k(s)`` -- the **discrepancy**: the law's own error as a smooth function of
  scale, per domain. A linear part ``beta_k . e(s)`` (slopes partially pooled across
  domains) plus a Gaussian process with a squared-exponential kernel of fixed length
  scale (:data:`DISCREPANCY_LENGTHSCALE` e-folds) and one amplitude shared by the domains,
  less its level and linear trend through the fitted scales (those are the law's and the
  linear part's; with two fitted scales the smooth part is zero there and only widens the
  prediction away from them). Where the linear part acts is
  :attr:`ObservationDesign.slope_region`, per feature: at "all" scales, ``e(s) = s - s_0``, fitted with the law; or only
  "outside" the range of the fitted scales, ``e(s)`` the distance beyond it (0 inside),
  the slopes then never in the likelihood and drawn from their prior: a modular ("cut")
  treatment of a discrepancy that the data cannot tell apart from the law's own exponents
  (Liu, Bayarri and Berger 2009, "Modularization in Bayesian analysis"); inside the
  fitted range the law's trend and a linear error explain the same thing, a ridge that
  NUTS walks slowly (Pile 4). By default ("auto") the slopes are fitted where the design
  pairs every feature (:func:`paired_features`: most mixtures run at several of its
  values), else they act outside. The discrepancy is evaluated at the table's distinct scales
  only, so it stays a small multivariate normal (non-centred: ``L w`` with ``L`` the
  kernel's Cholesky factor, computed once from the design). At a new scale the smooth part
  is drawn from its conditional (kriging) distribution given its values at the fitted
  scales, and the slopes carry on; fitted slopes may bend beyond the fitted scales, by a
  change of sd ``amp / lengthscale`` per e-fold (:meth:`ObservationDraws._bend`). The
  spread grows with the distance from the fitted scales, which is what makes
  extrapolation honest.
* ``eta_(m, k)`` -- the **mixture effect**: what a mixture does to domain ``k`` that the
  law misses, shared by every run of that mixture at any scale (sd per domain). A known
  mixture keeps its posterior effect at a new scale; a new mixture draws a fresh one. The
  effects sum to zero per domain within each block of mixtures joined by shared scales,
  where the design has more than one (:func:`centre_within_blocks`).
  With Normal cells and no run offset the sampled model integrates the effects out in
  closed form (:func:`mixture_marginal_logp`) and a fit draws them afterwards from their
  exact conditional (:func:`conditional_mixture_effects`).
* ``u_r`` -- the per-run offset shared by a run's checkpoints and domains.
* ``eps_rk`` -- cell noise, Normal or Student-t with sd ``sigma_k``.

Which terms are in the model is decided once from the table (:class:`ObservationDesign`):
the discrepancy wherever the table has more than one distinct scale (``discrepancy="auto"``),
the mixture effect with it wherever the design pairs every scale feature (most mixtures run at
several of its values: :func:`paired_features`), the run offset
wherever the table has several checkpoints per run. Every layer uses this module: the PyMC model
(:func:`add_likelihood`), the stored pointwise log-likelihood and PSIS-LOO
(:func:`cell_logpdf`), held-out scoring and acquisition (:func:`grouped_loglik`) and the
posterior predictive (:class:`ObservationDraws`).

What enters where: ``Posterior.expected_loss`` is the law's mean times
``exp(delta + eta_known)`` (the discrepancy at the asked scale and the effect of a mixture
seen in the fit), so ``predict``'s means, ``recommend``'s risk measures and acquisition's
simulated outcomes all include the law's error at the target scale; ``add_noise`` adds a
new run's offset, a new mixture's effect and the cell noise (``predict`` intervals and
acquisition outcomes). ``discrepancy="off"`` gives the law-only model of the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from .errors import UsageError

LIKELIHOODS = ("normal", "student_t")
SWITCHES = ("auto", "on", "off")
#: Where the discrepancy's linear part acts: at "all" scales (fitted with the law), or
#: "outside" the fitted scales only (never in the likelihood); see the module docstring.
SLOPE_REGIONS = ("auto", "all", "outside")
#: A scale feature "pairs" the design when at least this share of its mixtures were run at
#: two or more of its values (see :func:`paired_features`).
PAIRED_SHARE = 0.5

#: Length scale of the discrepancy's smooth part, in e-folds of model size (and tokens).
#: One e-fold: the law's error may bend appreciably between 122M and 310M, not between
#: two checkpoints 10% apart.
DISCREPANCY_LENGTHSCALE = 1.0
#: Added to the kernel's diagonal (relative) so that its Cholesky factor exists.
KERNEL_JITTER = 1e-6
#: Weights are rounded to this many decimals to tell mixtures apart.
MIXTURE_DECIMALS = 4
#: Gauss-Hermite nodes for integrating the run offset under a Student-t likelihood.
QUADRATURE_NODES = 32

#: Priors of the observation model (not part of any law).
OBSERVATION_PRIORS = {
    "sigma": {"dist": "HalfNormal", "sigma": 0.05},
    "run_sd": {"dist": "HalfNormal", "sigma": 0.02},
    "nu": {"dist": "Gamma", "alpha": 2.0, "beta": 0.1},
    # Law error per e-fold of scale: common to the domains, and its sd across domains.
    "disc_slope_mean": {"dist": "Normal", "mu": 0.0, "sigma": 0.02},
    "disc_slope_sd": {"dist": "HalfNormal", "sigma": 0.02},
    # Amplitude of the smooth part of the law's error (log-loss): with the unit length
    # scale, a prior sd of the law's error of about 1% of the loss one e-fold beyond the
    # fitted scales (the kernel, less its line through two scales, gives 0.9-1.3 x amp at
    # 0.8-1.1 e-folds), growing further out.
    "disc_amp": {"dist": "HalfNormal", "sigma": 0.01},
    # What a mixture does to a domain beyond the law (log-loss), per domain.
    "mix_sd": {"dist": "HalfNormal", "sigma": 0.02},
}


def mixture_keys(weights) -> np.ndarray:
    """One string per row naming its mixture (weights rounded to :data:`MIXTURE_DECIMALS`)."""
    h = np.round(np.asarray(weights, dtype=float), MIXTURE_DECIMALS) + 0.0
    return np.array([",".join(f"{v:.{MIXTURE_DECIMALS}f}" for v in row) for row in np.atleast_2d(h)])


def scale_features(n, d, features) -> np.ndarray:
    """``(rows, P)``: the log of the reference-scaled model size (and tokens)."""
    columns = {"log_n": np.log(np.asarray(n, dtype=float).ravel()),
               "log_d": np.log(np.asarray(d, dtype=float).ravel())}
    return np.stack([columns[f] for f in features], axis=-1)


def se_kernel(a: np.ndarray, b: np.ndarray, lengthscale: float) -> np.ndarray:
    """Squared-exponential kernel of unit amplitude between the rows of ``a`` and ``b``."""
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-0.5 * sq / lengthscale**2)


def _switch(value, name: str) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value not in SWITCHES:
        raise UsageError(f"{name} must be 'auto', 'on' or 'off', got '{value}'")
    return value


@dataclass(frozen=True)
class ObservationDesign:
    """Which terms the observation model has on a table, and the table's indices for them.

    Build with :meth:`from_table`; stored with a fit (:meth:`to_dict`) so that a saved
    posterior predicts with the same terms.

    ``mixture_blocks`` gives each of :attr:`mixtures` its block: the connected parts of
    the graph that joins a mixture to the scales it was run at. Within a block the mixture
    effects sum to zero per domain; see :func:`centre_within_blocks`. Empty: uncentred
    (all mixtures in one block, or a fit saved before blocks existed).
    """

    likelihood: str = "normal"
    run_effect: bool = False
    discrepancy: bool = False
    mixture_effect: bool = False
    features: tuple = ()
    scale_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    lengthscale: float = DISCREPANCY_LENGTHSCALE
    centre: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mixtures: tuple = ()
    slope_region: tuple = ()
    mixture_blocks: tuple = ()

    @classmethod
    def from_table(cls, table, scaling, *, likelihood: str = "normal", run_effect="auto",
                   discrepancy="auto", mixture_effect="auto", slope_region: str = "auto") -> "ObservationDesign":
        """The observation model's terms on ``table`` (see the module docstring for "auto"
        and for ``slope_region``)."""
        if likelihood not in LIKELIHOODS:
            raise UsageError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got '{likelihood}'")
        if slope_region not in SLOPE_REGIONS:
            raise UsageError(f"slope_region must be one of {', '.join(SLOPE_REGIONS)}, got '{slope_region}'")
        run_effect, discrepancy = _switch(run_effect, "run_effect"), _switch(discrepancy, "discrepancy")
        mixture_effect = _switch(mixture_effect, "mixture_effect")
        n, d = scaling.scale_inputs(table.model_size, table.tokens)
        points, features = _distinct_scales(n[:, 0], d[:, 0])
        use_disc = len(points) > 1 if discrepancy == "auto" else discrepancy == "on"
        keys = mixture_keys(table.weights)
        row_features = scale_features(n, d, features) if features else np.zeros((len(n), 0))
        scale_of_row = _row_scale_index(row_features, points)
        paired = all(paired_features(keys, row_features)) if features else False
        # The mixture effect belongs to the discrepancy-aware model: the law-only model
        # (discrepancy off) is the paper's, with noise and run offsets alone.
        use_mix = (use_disc and paired) if mixture_effect == "auto" else mixture_effect == "on"
        if slope_region == "auto":
            slope_region = "all" if paired else "outside"
        regions = (slope_region,) * len(features)
        mixtures = tuple(str(k) for k in pd.unique(keys)) if use_mix else ()
        # Only where runs have several checkpoints: with one row per run the offset shared
        # by a run's domains is identified in principle, but measured, it cost the
        # sampler half its effective draws (a 3-domain simulated table: bulk ESS 19-22
        # against 50+ without it) for evidence the cell noise already carries.
        use_run = table.n_runs < table.n_rows if run_effect == "auto" else run_effect == "on"
        if use_disc and not features:
            raise UsageError("discrepancy='on' needs a table with more than one model size or token count")
        return cls(likelihood=likelihood, run_effect=bool(use_run), discrepancy=bool(use_disc),
                   mixture_effect=bool(use_mix), features=tuple(features) if use_disc else (),
                   scale_points=points if use_disc else np.zeros((0, 0)),
                   centre=points.mean(axis=0) if use_disc else np.zeros(0),
                   mixtures=mixtures, slope_region=regions if use_disc else (),
                   mixture_blocks=_mixture_blocks(keys, scale_of_row, mixtures))

    # ------------------------------------------------------------------ indices
    def scale_index(self, n, d) -> np.ndarray:
        """Index of each row's scale among :attr:`scale_points` (-1: not a fitted scale)."""
        return _row_scale_index(scale_features(n, d, self.features), self.scale_points)

    def mixture_index(self, weights) -> np.ndarray:
        """Index of each row's mixture among :attr:`mixtures` (-1: a new mixture)."""
        where = {key: i for i, key in enumerate(self.mixtures)}
        return np.array([where.get(key, -1) for key in mixture_keys(weights)], dtype=int)

    def kernel_factor(self) -> np.ndarray:
        """Cholesky factor of the discrepancy kernel at the fitted scales, ``(G, G)``."""
        k = se_kernel(self.scale_points, self.scale_points, self.lengthscale)
        return np.linalg.cholesky(k + KERNEL_JITTER * np.eye(len(k)))

    def linear_design(self, points) -> np.ndarray:
        """``[1, s - s_0]`` at ``points (n, P)``: the functions the linear part spans."""
        points = np.asarray(points, dtype=float)
        return np.column_stack([np.ones(len(points)), points - self.centre])

    def slope_distance(self, points) -> np.ndarray:
        """``(n, P)``: what the linear part's slopes multiply at ``points (n, P)``: per
        feature, the distance beyond the fitted scales' range (0 inside it) where its
        :attr:`slope_region` is "outside", else the offset from their centre."""
        points = np.asarray(points, dtype=float)
        return np.where(self.fitted_slopes, points - self.centre, self.distance_beyond(points))

    def distance_beyond(self, points) -> np.ndarray:
        """``(n, P)``: per feature, how far ``points`` lie beyond the fitted scales' range
        (0 inside it)."""
        points = np.asarray(points, dtype=float)
        return points - np.clip(points, self.scale_points.min(axis=0), self.scale_points.max(axis=0))

    @property
    def fitted_slopes(self) -> np.ndarray:
        """``(P,)`` bool: the features whose slopes are fitted with the law ("all")."""
        return np.array([region == "all" for region in self.feature_regions], dtype=bool)

    @property
    def feature_regions(self) -> tuple:
        """:attr:`slope_region` per feature ("all" for each where none is set)."""
        return tuple(self.slope_region) or ("all",) * len(self.features)

    def linear_fit(self) -> np.ndarray:
        """``(P + 1, G)``: least-squares coefficients of a linear function through values
        at the fitted scales (the pseudo-inverse of :meth:`linear_design` there)."""
        return np.linalg.pinv(self.linear_design(self.scale_points))

    def smooth_factor(self) -> np.ndarray:
        """``(G, G)``: maps white noise to the smooth part at the fitted scales, with its
        level and linear trend there removed (those are the law's level and the linear
        part's): ``(I - X X^+) L``. Zero where the scales are too few for more than a line."""
        X = self.linear_design(self.scale_points)
        return (np.eye(len(X)) - X @ self.linear_fit()) @ self.kernel_factor()

    @property
    def marginal_mixture_effect(self) -> bool:
        """Whether the fit integrates the mixture effect out of its likelihood.

        With Normal cells and no run offset, the cells of one mixture and domain are
        jointly Normal around the law's mean (covariance ``sigma_k^2 I + mix_sd_k^2 11'``),
        so the effects need not be sampled: hundreds of effects that the data pin down
        far more tightly than their prior (SlimPajama: ~3 cells each, noise well below
        ``mix_sd``) otherwise tie every one of them to ``mix_sd`` in a curved ridge that
        NUTS crosses in ~1000 gradients a draw (230 without the effect). Their draws are
        then taken from their exact conditional after sampling
        (:func:`conditional_mixture_effects`)."""
        return self.mixture_effect and self.likelihood == "normal" and not self.run_effect

    def describe(self) -> list[str]:
        """Plain-language lines: which terms the model has."""
        out = [f"likelihood: {'Student-t' if self.likelihood == 'student_t' else 'normal'} on log-loss"]
        out.append("per-run offset: " + ("yes" if self.run_effect else "no"))
        if self.discrepancy:
            out.append(f"scale discrepancy: over {', '.join(self.features)} at {len(self.scale_points)} fitted scales"
                       + "; slopes " + ", ".join(sorted({"fitted" if r == "all" else "beyond them, from the prior"
                                                         for r in self.feature_regions})))
        else:
            out.append("scale discrepancy: no (law-only)")
        out.append(f"mixture effect: {len(self.mixtures)} mixtures" if self.mixture_effect else "mixture effect: no")
        return out

    def to_dict(self) -> dict:
        return {"likelihood": self.likelihood, "run_effect": self.run_effect, "discrepancy": self.discrepancy,
                "mixture_effect": self.mixture_effect, "features": list(self.features),
                "scale_points": np.asarray(self.scale_points).tolist(), "lengthscale": self.lengthscale,
                "centre": np.asarray(self.centre).tolist(), "mixtures": list(self.mixtures),
                "slope_region": list(self.slope_region), "mixture_blocks": [int(b) for b in self.mixture_blocks]}

    @classmethod
    def from_dict(cls, data: dict | None, *, likelihood: str = "normal", run_effect: bool = False):
        """Read :meth:`to_dict`; a fit saved before the observation model was stored gets
        the law-only design with its likelihood and run offset, one saved before
        :attr:`slope_region` existed the linear part at all scales it was fitted with, one
        saved before :attr:`mixture_blocks` existed its effects uncentred."""
        if not data:
            return cls(likelihood=likelihood, run_effect=run_effect)
        features = tuple(data.get("features", ()))
        points = np.asarray(data.get("scale_points", []), dtype=float).reshape(-1, max(len(features), 1))
        points = points if features else np.zeros((0, 0))
        return cls(likelihood=data["likelihood"], run_effect=bool(data["run_effect"]),
                   discrepancy=bool(data["discrepancy"]), mixture_effect=bool(data["mixture_effect"]),
                   features=features, scale_points=points, lengthscale=float(data["lengthscale"]),
                   centre=np.asarray(data.get("centre", []), dtype=float), mixtures=tuple(data.get("mixtures", ())),
                   slope_region=_regions(data.get("slope_region", "all"), features),
                   mixture_blocks=tuple(int(b) for b in data.get("mixture_blocks", ())))


def _distinct_scales(n: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Distinct scales of the rows as features, and which features vary independently.

    ``log_d`` is a feature only where tokens vary other than with the model size (the
    distinct scales are not on one line in (log n, log d)); otherwise ``log_n`` alone, or
    ``log_d`` alone when the model size is constant.
    """
    both = np.unique(np.round(np.stack([np.log(n), np.log(d)], axis=-1), 9), axis=0)
    if len(both) < 2:
        return both[:, :1], ()
    centred = both - both.mean(axis=0)
    rank = np.linalg.matrix_rank(centred, tol=1e-6)
    if rank >= 2:
        features = ("log_n", "log_d")
    elif np.ptp(both[:, 0]) > 1e-9:
        features = ("log_n",)
    else:
        features = ("log_d",)
    columns = [0 if f == "log_n" else 1 for f in features]
    return np.unique(both[:, columns], axis=0), features


def _regions(stored, features) -> tuple:
    """Per-feature slope regions from a saved design (one string for all before they were
    per feature)."""
    return (stored,) * len(features) if isinstance(stored, str) else tuple(stored)


def paired_features(keys: np.ndarray, row_features: np.ndarray) -> tuple:
    """Per scale feature (columns of ``row_features``), whether the design pairs it: at
    least :data:`PAIRED_SHARE` of the mixtures (``keys``, one per row) were run at two or
    more of its values.

    Why it matters: how the law's error changes along a feature (the discrepancy's slope)
    and what a mixture does at every scale (the mixture effect) are told apart by runs of
    one mixture at several values of it. Without such pairs (Pile 4: its 90M and 200M runs
    share one mixture of 40) a level difference between the sizes is either a slope or
    the two sets of mixtures' effects, and the hierarchical priors pick one: fitted on
    90M and 200M, the slope extrapolated to 440M cost 4.1% MRE against the law's 1.8%;
    the effects, carried to 440M with the mixtures seen at 90M, 4.3%. And where the
    features move together across the design (Pile 4's larger size also has the longer
    runs), the slope of a paired feature takes up the unpaired one's level difference
    (Pile 4, log_n unpaired and log_d paired: log_d slopes of -5 to -7% per e-fold, 2.5%
    MRE at 440M; both from the prior: 1.9%). So the design's slopes are fitted, and it has
    a mixture effect, only where every feature is paired; elsewhere the slopes act beyond
    the fitted scales only, from their prior.
    """
    out = []
    for column in np.atleast_2d(row_features).T:
        values = pd.DataFrame({"key": keys, "value": np.round(column, 9)})
        spread = values.groupby("key")["value"].nunique()
        out.append(bool((spread >= 2).mean() >= PAIRED_SHARE))
    return tuple(out)


def _mixture_blocks(keys: np.ndarray, scale_of_row: np.ndarray, mixtures: tuple) -> tuple:
    """Block of each of ``mixtures``: mixtures are in one block when a chain of shared
    scales joins them (mixture A and B run at one scale, B and C at another, ...); empty
    (uncentred effects) where all are in one."""
    if not mixtures:
        return ()
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    where = {key: i for i, key in enumerate(mixtures)}
    mixture_of_row = np.array([where[key] for key in keys])
    M, G = len(mixtures), int(scale_of_row.max()) + 1
    edges = sparse.coo_matrix((np.ones(len(keys)), (mixture_of_row, M + scale_of_row)), shape=(M + G, M + G))
    _, labels = connected_components(edges, directed=False)
    _, blocks = np.unique(labels[:M], return_inverse=True)
    # One block: its mean effect trades off only with the law's own level, which the
    # effects' prior settles cheaply. Centred, that level is pinned to the precision of all
    # the cells of a domain (SlimPajama: ~7x narrower than any other direction), and NUTS
    # took twice the gradients per draw (575 against 265, R-hat 1.11 against 1.01).
    return tuple(int(b) for b in blocks) if blocks.max() > 0 else ()


def block_average(blocks) -> np.ndarray:
    """``(M, M)``: averages effects over each mixture's block (row ``m``: ``1/M_b`` on
    the mixtures of ``m``'s block)."""
    blocks = np.asarray(blocks, dtype=int)
    same = (blocks[:, None] == blocks[None, :]).astype(float)
    return same / same.sum(axis=1, keepdims=True)


def centre_within_blocks(effect: np.ndarray, blocks) -> np.ndarray:
    """Mixture effects ``(..., M, K)`` less their mean over each block, per domain.

    Why: a block's mean effect on a domain and the law's error at the block's scales
    (the discrepancy, or the law's own level where there is none) explain the same cells.
    Left free, the effects of a block run only at small sizes take up the law's error
    there and carry it to a larger size with those mixtures (Pile 4, whose 90M and 200M
    mixtures are joined by one mixture only, showed the same: the 90M mixtures' effects
    +1.4 to +3.7% at 440M). Centred, a mixture's effect is what it does relative to the
    other mixtures run at its scales, and the scale's error is the discrepancy's. Without
    blocks (``blocks`` empty) the effects are returned unchanged.
    """
    if len(blocks) == 0:
        return effect
    return effect - np.einsum("mn,...nk->...mk", block_average(blocks), effect)


def _row_scale_index(row_features: np.ndarray, points: np.ndarray) -> np.ndarray:
    if points.size == 0 or row_features.shape[1] == 0:
        return np.zeros(len(row_features), dtype=int)
    dist = np.abs(np.round(row_features, 9)[:, None, :] - points[None]).max(-1)
    index = dist.argmin(axis=1)
    return np.where(dist[np.arange(len(index)), index] < 1e-6, index, -1)


# ---------------------------------------------------------------------- PyMC model
def add_likelihood(design: ObservationDesign, table, log_mu, priors: dict, scaling) -> None:
    """Add the observation model of ``table`` to the current PyMC model.

    ``log_mu`` is the law's log-mean ``(rows, K)`` in nats (a tensor). Random variables
    added: ``sigma`` (domain), ``nu`` (Student-t), ``run_sd`` and ``run_z`` (run offset),
    ``disc_slope_mean`` (feature), ``disc_slope_sd``, ``disc_slope_z`` (feature, domain), ``disc_amp``, ``disc_white``
    (scale, domain) (discrepancy), ``mix_sd`` (domain) and ``mix_z`` (mixture, domain)
    (mixture effect); and the observed ``log_loss`` over the cells with a logged loss.
    """
    import pymc as pm

    from .priors import make_rv

    losses = np.asarray(table.losses, dtype=float)
    rows, doms = np.nonzero(np.isfinite(losses))
    model = pm.modelcontext(None)
    cell_row = pm.Data("cell_row", rows.astype("int64"))
    cell_domain = pm.Data("cell_domain", doms.astype("int64"))
    offset = log_mu[cell_row, cell_domain]
    if design.run_effect:
        _, run_index = np.unique(np.asarray(table.run_ids, dtype=str), return_inverse=True)
        cell_run = pm.Data("cell_run", run_index[rows].astype("int64"))
        run_sd = make_rv("run_sd", priors["run_sd"])
        run_z = pm.Normal("run_z", 0.0, 1.0, dims="run")
        offset = offset + (run_sd * run_z)[cell_run]
    if design.discrepancy:
        n, d = scaling.scale_inputs(table.model_size, table.tokens)
        model.add_coords({"scale": np.arange(len(design.scale_points)), "scale_feature": list(design.features)})
        cell_scale = pm.Data("cell_scale", design.scale_index(n, d)[rows].astype("int64"))
        factor = pm.Data("disc_smooth_factor", design.smooth_factor())
        slope_mean = make_rv("disc_slope_mean", priors["disc_slope_mean"], dims="scale_feature")
        slope_sd = make_rv("disc_slope_sd", priors["disc_slope_sd"])
        slope_z = pm.Normal("disc_slope_z", 0.0, 1.0, dims=("scale_feature", "domain"))
        amp = make_rv("disc_amp", priors["disc_amp"])
        white = pm.Normal("disc_white", 0.0, 1.0, dims=("scale", "domain"))
        # The smooth part without its level and linear trend at the fitted scales: those
        # are the law's level and trend (no two terms explain one thing).
        delta = amp * pm.math.dot(factor, white)
        if "all" in design.feature_regions:
            # Zero in the columns of features whose slopes act outside the fitted scales.
            centred = pm.Data("disc_centred_points", design.slope_distance(design.scale_points))
            delta = delta + pm.math.dot(centred, slope_mean[:, None] + slope_sd * slope_z)
        offset = offset + delta[cell_scale, cell_domain]
    if design.mixture_effect:
        model.add_coords({"mixture": list(design.mixtures)})
        mix_sd = make_rv("mix_sd", priors["mix_sd"], dims="domain")
        mixture_of_cell = design.mixture_index(table.weights)[rows]
        if not design.marginal_mixture_effect:
            cell_mixture = pm.Data("cell_mixture", mixture_of_cell.astype("int64"))
            mix_z = pm.Normal("mix_z", 0.0, 1.0, dims=("mixture", "domain"))
            effect = mix_sd[None, :] * mix_z
            if design.mixture_blocks:
                effect = effect - pm.math.dot(pm.Data("mixture_block_average", block_average(design.mixture_blocks)),
                                              effect)
            offset = offset + effect[cell_mixture, cell_domain]
    sigma = make_rv("sigma", priors["sigma"], dims="domain")
    observed = pm.Data("observed_log_loss", np.log(losses[rows, doms]))
    if design.marginal_mixture_effect:
        # Group m * K + k: mixture m on domain k (as data, so that one compiled model
        # serves tables with any number of mixtures).
        K, M = losses.shape[1], len(design.mixtures)
        groups = pm.Data("cell_mixture_group", (mixture_of_cell * K + doms).astype("int64"))
        group_domain = pm.Data("mixture_group_domain", np.tile(np.arange(K), M).astype("int64"))
        inputs = [offset, sigma[cell_domain], sigma[group_domain], mix_sd[group_domain], groups]
        signature = "(c),(c),(g),(g),(c)"
        if design.mixture_blocks:
            # Block b on domain k: b * K + k.
            blocks = np.asarray(design.mixture_blocks, dtype=int)
            inputs.append(pm.Data("mixture_group_block",
                                  (np.repeat(blocks, K) * K + np.tile(np.arange(K), M)).astype("int64")))
            signature += ",(g)"
        # One multivariate observation of all cells: its density is the closed form, its
        # draws (prior and posterior predictive) the effects and the noise.
        pm.CustomDist("log_loss", *inputs, logp=_integrated_logp, random=_integrated_random,
                      signature=signature + "->(c)", observed=observed, dims="cell")
    elif design.likelihood == "student_t":
        nu = make_rv("nu", priors["nu"])
        pm.StudentT("log_loss", nu=nu, mu=offset, sigma=sigma[cell_domain], observed=observed, dims="cell")
    else:
        pm.Normal("log_loss", mu=offset, sigma=sigma[cell_domain], observed=observed, dims="cell")


def mixture_marginal_logp(residual, cell_sigma, group_sigma, group_tau, groups, group_block=None):
    """Log density of Normal cells ``residual`` (around the law's mean plus every other
    term) whose groups share an effect ``~ N(0, tau_g^2)``, the effect integrated out
    (a PyTensor expression).

    ``cell_sigma`` is each cell's noise sd; group ``g`` (``groups``: each cell's group, in
    ``0 .. G-1``) has noise ``group_sigma[g]`` on all its cells and effect sd
    ``group_tau[g]``. Per group, the covariance ``C_g = sigma^2 I + tau^2 11'`` has
    determinant ``sigma^(2n) (1 + n tau^2 / sigma^2)`` and inverse ``(I - tau^2 /
    (sigma^2 + n tau^2) 11') / sigma^2``, so with ``B`` the group's sum of residuals::

        log p = sum_cells log N(r; 0, sigma^2) - 1/2 sum_g [log(1 + n tau^2 / sigma^2)
                - tau^2 B^2 / (sigma^2 (sigma^2 + n tau^2))]

    Groups without cells contribute 0. With ``group_block`` (each group's block, in
    ``0 .. G-1``; groups of one block share ``sigma`` and ``tau``), the effects of a
    block's ``M`` groups sum to zero (prior ``tau^2 (I - 11'/M)``): the
    block's covariance is its groups' less ``(tau^2 / M) 11'``, a rank-one change. With
    ``w_g = 1 / (sigma^2 + n_g tau^2)``, ``T = sum_g w_g B_g`` and ``s = mean_g sigma^2
    w_g`` (``1 - tau^2 / M sum_g n_g w_g``, written without the cancellation), the matrix
    determinant lemma and Sherman-Morrison add per block::

        -1/2 [log s + tau^2 T^2 / (M s)]
    """
    import pytensor.tensor as pt

    n_groups = group_sigma.shape[0]
    counts = pt.zeros(n_groups)[groups].inc(pt.ones_like(residual))
    sums = pt.zeros(n_groups)[groups].inc(residual)
    s2, t2 = group_sigma**2, group_tau**2
    cells = -0.5 * pt.sum(math.log(2 * math.pi) + 2 * pt.log(cell_sigma) + (residual / cell_sigma) ** 2)
    shared = -0.5 * pt.sum(pt.log1p(counts * t2 / s2) - t2 * sums**2 / (s2 * (s2 + counts * t2)))
    if group_block is None:
        return cells + shared
    weight = 1.0 / (s2 + counts * t2)
    size = pt.maximum(pt.zeros(n_groups)[group_block].inc(pt.ones(n_groups)), 1.0)
    mean_s2w = pt.zeros(n_groups)[group_block].inc(s2 * weight) / size
    block_t2 = pt.zeros(n_groups)[group_block].inc(t2) / size
    total = pt.zeros(n_groups)[group_block].inc(sums * weight)
    # Empty block slots: size 1, mean_s2w 0, total 0; their slack is 1 (no term).
    slack = pt.switch(mean_s2w > 0, mean_s2w, 1.0)
    return cells + shared - 0.5 * pt.sum(pt.log(slack) + block_t2 * total**2 / (size * slack))


def _integrated_logp(value, mu, cell_sigma, group_sigma, group_tau, groups, group_block=None):
    return mixture_marginal_logp(value - mu, cell_sigma, group_sigma, group_tau, groups, group_block)


def _integrated_random(mu, cell_sigma, group_sigma, group_tau, groups, group_block=None, rng=None, size=None):
    batch = tuple(np.atleast_1d(size)) if size is not None else ()
    effect = rng.standard_normal(batch + np.shape(group_tau)[-1:]) * group_tau
    if group_block is not None:
        effect = effect - effect @ block_average(group_block).T
    noise = rng.standard_normal(batch + np.shape(mu)[-1:]) * cell_sigma
    return mu + effect[..., np.asarray(groups, dtype=int)] + noise


def _effect_given_cells(design: "ObservationDesign", weights, residual, sigma, mix_sd):
    """Mean and variance ``(S, M, K)`` of uncentred mixture effects given the cells (each
    effect's own Normal update; without cells, its prior ``N(0, mix_sd^2)``)."""
    residual = np.asarray(residual, dtype=float)
    S, _, K = residual.shape
    index = design.mixture_index(weights)
    observed = np.isfinite(residual)
    counts = np.zeros((len(design.mixtures), K))
    np.add.at(counts, index, observed[0].astype(float))
    sums = np.zeros((S, len(design.mixtures), K))
    np.add.at(sums, (slice(None), index), np.where(observed, residual, 0.0))
    sigma, tau = np.asarray(sigma, dtype=float)[:, None, :], np.asarray(mix_sd, dtype=float)[:, None, :]
    precision = 1.0 / tau**2 + counts[None] / sigma**2
    return sums / sigma**2 / precision, 1.0 / precision


def _sum_to_zero_in_blocks(effect, variance, blocks):
    """Condition independent Normal effects (draws or means ``effect``, ``variance``; both
    ``(S, M, K)``) on summing to zero in each block: ``x - v * sum_b(x) / sum_b(v)``. The
    centred prior is the independent one given that constraint, so this turns the
    independent conditional into the centred model's."""
    if len(blocks) == 0:
        return effect
    average = block_average(blocks)
    return effect - variance * np.einsum("mn,snk->smk", average, effect) / np.einsum("mn,snk->smk", average, variance)


def mixture_effect_conditional(design: "ObservationDesign", weights, residual, sigma, mix_sd):
    """Mean and sd ``(S, M, K)`` of the mixture effects given everything else, for a fit
    that integrated them out (:attr:`ObservationDesign.marginal_mixture_effect`).

    ``residual (S, rows, K)``: each cell's log-loss minus the law's log-mean and every
    other term of the model, per draw (NaN where no loss was logged); ``sigma``,
    ``mix_sd (S, K)``. Uncentred, the effect of mixture ``m`` on domain ``k`` with ``n``
    cells summing to ``B`` is Normal with precision ``1/mix_sd^2 + n/sigma^2`` and mean
    ``(B/sigma^2) / precision`` (without cells, its prior ``N(0, mix_sd^2)``); with
    :attr:`ObservationDesign.mixture_blocks`, those effects conditioned on summing to
    zero in each block (the sd is each effect's marginal one).
    """
    mean, variance = _effect_given_cells(design, weights, residual, sigma, mix_sd)
    if not design.mixture_blocks:
        return mean, np.sqrt(variance)
    blocks = np.asarray(design.mixture_blocks, dtype=int)
    in_block = np.einsum("mn,snk->smk", (blocks[:, None] == blocks[None, :]).astype(float), variance)
    centred_variance = np.clip(variance - variance**2 / in_block, 0.0, None)
    return _sum_to_zero_in_blocks(mean, variance, design.mixture_blocks), np.sqrt(centred_variance)


def conditional_mixture_effects(design: "ObservationDesign", weights, residual, sigma, mix_sd, *,
                                seed=0) -> np.ndarray:
    """One draw per posterior draw of the mixture effects from their conditional
    (:func:`mixture_effect_conditional`, jointly within each block), as ``mix_z (S, M,
    K)``: in units of ``mix_sd``, the model's own coordinates."""
    mean, variance = _effect_given_cells(design, weights, residual, sigma, mix_sd)
    effect = mean + np.sqrt(variance) * np.random.default_rng(seed).standard_normal(mean.shape)
    effect = _sum_to_zero_in_blocks(effect, variance, design.mixture_blocks)
    return effect / np.asarray(mix_sd, dtype=float)[:, None, :]


#: Variables of the observation model recorded with every fit, when in the model.
RECORDED = ("sigma", "nu", "run_sd", "disc_slope_mean", "disc_slope_sd", "disc_slope_z", "disc_amp", "disc_white",
            "mix_sd", "mix_z")
#: The observation model's standard-normal latent variables (non-centred): many, each
#: a priori N(0, 1); the sampler's whitening leaves them out of its dense block.
LATENT = ("run_z", "mix_z", "disc_white")
#: Hyperparameters checked by the diagnostics gate beside the law's parameters.
GATED = ("sigma", "nu", "run_sd", "disc_slope_mean", "disc_slope_sd", "disc_amp", "mix_sd")


# ---------------------------------------------------------------------- densities
def cell_logpdf(y, loc, scale, nu=None) -> np.ndarray:
    """Density of log-losses ``y`` per cell: Normal, or Student-t with ``nu`` dof."""
    if nu is None:
        return stats.norm.logpdf(y, loc=loc, scale=scale)
    return stats.t.logpdf(y, df=nu, loc=loc, scale=scale)


def group_sum(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum ``values (S, C)`` over cells into ``(S, n_groups)`` by the cells' group index."""
    from scipy import sparse

    cells = values.shape[-1]
    indicator = sparse.csr_matrix((np.ones(cells), (groups, np.arange(cells))), shape=(n_groups, cells))
    return np.asarray((indicator @ values.T).T)


def grouped_loglik(y, loc, scale, groups, n_groups: int, *, run_sd=None, nu=None,
                   method: str = "auto") -> np.ndarray:
    """Log density of log-loss cells summed per group, a shared offset integrated out.

    ``y (C,)`` observed log-losses; ``loc, scale (S, C)`` per draw; ``groups (C,)`` the
    cell's group (a run, or a run and domain); the group's cells share an offset
    ``u ~ N(0, run_sd^2)`` (per draw, ``(S,)``; None: no offset). Normal cells: closed form
    (the covariance is diagonal plus rank one: determinant lemma and Sherman-Morrison).
    Student-t cells (``nu (S,)``), or ``method="quadrature"``: adaptive Gauss-Hermite.
    Returns ``(S, n_groups)``; groups without cells get 0.
    """
    y = np.asarray(y, dtype=float)
    loc, scale = np.asarray(loc, dtype=float), np.asarray(scale, dtype=float)
    S = loc.shape[0]
    tau = np.zeros(S) if run_sd is None else np.asarray(run_sd, dtype=float).reshape(S)
    counts = np.bincount(groups, minlength=n_groups)
    inv = 1.0 / scale**2
    r = y[None, :] - loc
    A = group_sum(inv, groups, n_groups)
    B = group_sum(r * inv, groups, n_groups)
    if nu is None and method in ("auto", "closed_form"):
        Q = group_sum(r**2 * inv, groups, n_groups)
        logdet = group_sum(np.log(scale**2), groups, n_groups)
        t2 = (tau**2)[:, None]
        return -0.5 * (counts * math.log(2 * math.pi) + logdet + np.log1p(t2 * A) + Q - t2 * B**2 / (1.0 + t2 * A))
    if method not in ("auto", "quadrature"):
        raise ValueError(f"unknown method '{method}'")
    nu = None if nu is None else np.asarray(nu, dtype=float).reshape(S)[:, None]
    if not np.any(tau > 0):
        return group_sum(cell_logpdf(y[None, :], loc, scale, nu), groups, n_groups)
    # Nodes centred and scaled on the Gaussian approximation of the offset's conditional
    # posterior (precision 1/tau^2 + sum 1/s^2): the integrand is much narrower than the
    # offset's prior when a group has many cells.
    safe_tau = np.where(tau > 0, tau, 1.0)[:, None]
    precision = 1.0 / safe_tau**2 + A
    centre, spread = B / precision, 1.0 / np.sqrt(precision)
    nodes, weights = np.polynomial.hermite.hermgauss(QUADRATURE_NODES)
    parts = []
    for x, w in zip(nodes, weights):
        z = np.where(tau[:, None] > 0, centre + math.sqrt(2.0) * spread * x, 0.0)
        part = group_sum(cell_logpdf(y[None, :], loc + z[:, groups], scale, nu), groups, n_groups)
        prior = stats.norm.logpdf(z, scale=safe_tau)
        parts.append(part + np.where(tau[:, None] > 0, prior + math.log(w) + x**2 + np.log(math.sqrt(2.0) * spread), 0.0))
    return special.logsumexp(np.stack(parts), axis=0)


# ---------------------------------------------------------------------- posterior draws
@dataclass
class ObservationDraws:
    """Posterior draws of the observation model beyond ``sigma``, ``nu`` and ``run_sd``:
    the discrepancy and the mixture effect, with the design that gives them meaning."""

    design: ObservationDesign
    disc_slope: np.ndarray | None = None   # (S, P, K)
    disc_amp: np.ndarray | None = None     # (S,)
    disc_white: np.ndarray | None = None   # (S, G, K)
    mix_effect: np.ndarray | None = None   # (S, M, K)
    mix_sd: np.ndarray | None = None       # (S, K)

    @classmethod
    def from_values(cls, design: ObservationDesign, values: dict) -> "ObservationDraws":
        """From draws by model variable name (see :data:`RECORDED`)."""
        out = cls(design)
        if design.discrepancy:
            out.disc_slope = (np.asarray(values["disc_slope_mean"])[:, :, None]
                              + np.asarray(values["disc_slope_sd"]).reshape(-1, 1, 1) * np.asarray(values["disc_slope_z"]))
            out.disc_amp = np.asarray(values["disc_amp"]).reshape(-1)
            out.disc_white = np.asarray(values["disc_white"])
        if design.mixture_effect:
            out.mix_sd = np.asarray(values["mix_sd"])
            out.mix_effect = centre_within_blocks(out.mix_sd[:, None, :] * np.asarray(values["mix_z"]),
                                                  design.mixture_blocks)
        return out

    def subset(self, idx) -> "ObservationDraws":
        pick = (lambda a: None if a is None else np.asarray(a)[idx])
        return ObservationDraws(self.design, pick(self.disc_slope), pick(self.disc_amp), pick(self.disc_white),
                                pick(self.mix_effect), pick(self.mix_sd))

    def discrepancy(self, n, d, *, seed=0) -> np.ndarray | None:
        """Draws of the law's log-error ``delta`` at each row's scale, ``(S, rows, K)``.

        At a fitted scale, its posterior value; elsewhere a draw from the Gaussian
        process given the fitted scales (one draw per distinct scale and posterior draw,
        shared by the rows at that scale). None without a discrepancy term.
        """
        if not self.design.discrepancy:
            return None
        design = self.design
        feats = scale_features(n, d, design.features)
        new, inverse = np.unique(np.round(feats, 9), axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        factor = design.kernel_factor()
        # The smooth part at the fitted scales (unit amplitude), as in the model: the
        # GP's values there less their level and linear trend, which are the law's and
        # the linear part's.
        fitted = np.einsum("gh,shk->sgk", design.smooth_factor(), self.disc_white)
        # Kriged from those values: it reverts to 0 (the law plus the linear part) and
        # its spread to ``amp`` beyond a length scale from the fitted scales. (Kriging the
        # raw GP and removing its trend through the fitted scales afterwards would instead
        # extrapolate that trend linearly: a curvature among the fitted scales would become
        # a slope at the new one, which the linear part was meant to carry.)
        k_new = se_kernel(new, design.scale_points, design.lengthscale)
        solve = np.linalg.solve(factor.T, np.linalg.solve(factor, k_new.T)).T  # K_*G K_GG^-1
        mean = np.einsum("ng,sgk->snk", solve, fitted)
        cov = se_kernel(new, new, design.lengthscale) - solve @ k_new.T
        cov = (cov + cov.T) / 2 + KERNEL_JITTER * np.eye(len(new))
        vals, vecs = np.linalg.eigh(cov)
        root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        rng = np.random.default_rng(seed)
        S, K = self.disc_white.shape[0], self.disc_white.shape[-1]
        gp = mean + np.einsum("nm,smk->snk", root, rng.standard_normal((S, len(new), K)))
        # At a fitted scale the conditional is the fitted value itself; the kernel's jitter
        # would otherwise leave a spread of ~1e-3 amplitudes there.
        fitted_at = _row_scale_index(new, design.scale_points)
        gp[:, fitted_at >= 0] = fitted[:, fitted_at[fitted_at >= 0]]
        linear = np.einsum("np,spk->snk", design.slope_distance(new), self.disc_slope)
        delta = linear + self.disc_amp[:, None, None] * gp + self._bend(new, rng)
        return delta[:, inverse, :]

    def _bend(self, new: np.ndarray, rng) -> np.ndarray:
        """``(S, n, K)``: a change of the fitted slopes beyond the fitted scales, Normal with
        sd ``amp / lengthscale`` per e-fold (the slope change the smooth part itself makes
        over one length scale), times the distance beyond their range; along features whose
        slopes act outside only, their prior already is that change, and it is 0.

        Why: kriged, the smooth part's spread stops growing at ``amp`` a length scale away,
        and fitted slopes are known to the precision of the fitted scales, so without it the
        intervals far out stop widening: simulated truths of another law, scored at 4x the
        largest fitted size, covered 42-63% of cells with 90% intervals; SlimPajama, fit
        <= 680M and scored at 937M, 80%.
        """
        design = self.design
        beyond = np.where(design.fitted_slopes, design.distance_beyond(new), 0.0)
        S, K = self.disc_white.shape[0], self.disc_white.shape[-1]
        change = rng.standard_normal((S, beyond.shape[1], K)) * (self.disc_amp / design.lengthscale)[:, None, None]
        return np.einsum("np,spk->snk", beyond, change)

    def known_mixture_effect(self, weights) -> tuple[np.ndarray | None, np.ndarray]:
        """The posterior effect of each row's mixture where it was seen in the fit
        (``(S, rows, K)``, 0 for new mixtures; None without a mixture effect), and the
        mask of seen mixtures ``(rows,)``."""
        rows = np.atleast_2d(weights).shape[0]
        if not self.design.mixture_effect:
            return None, np.zeros(rows, dtype=bool)
        index = self.design.mixture_index(weights)
        known = index >= 0
        effect = np.where(known[None, :, None], self.mix_effect[:, np.maximum(index, 0), :], 0.0)
        return effect, known

    def new_mixture_sd(self) -> np.ndarray | None:
        """``(S, K)`` sd of a new mixture's effect, or None."""
        return self.mix_sd if self.design.mixture_effect else None


def log_offsets(draws: ObservationDraws | None, weights, n, d, *, seed=0) -> np.ndarray | None:
    """``delta + eta_known`` at the rows, ``(S, rows, K)``; None when neither term is in
    the model (``draws`` None, or a law-only design)."""
    if draws is None:
        return None
    delta = draws.discrepancy(n, d, seed=seed)
    eta, _ = draws.known_mixture_effect(weights)
    parts = [p for p in (delta, eta) if p is not None]
    return sum(parts) if parts else None


def cell_sd(sigma, draws: ObservationDraws | None, weights=None) -> np.ndarray:
    """Per-draw sd of a new run's log-loss around its expected loss, ``(S, rows, K)``, its
    run offset aside: the cell noise ``sigma (S, K)``, and for mixtures the fit did not
    see (``weights (rows, K)``) a new mixture's effect. Without ``weights``: one row, a
    mixture the fit did not see."""
    sigma = np.asarray(sigma, dtype=float)[:, None, :]
    rows = 1 if weights is None else np.atleast_2d(weights).shape[0]
    mix_sd = None if draws is None else draws.new_mixture_sd()
    if mix_sd is None:
        return np.broadcast_to(sigma, (sigma.shape[0], rows, sigma.shape[-1]))
    new = np.ones(1, dtype=bool) if weights is None else ~draws.known_mixture_effect(weights)[1]
    return np.sqrt(sigma**2 + np.where(new[None, :, None], np.asarray(mix_sd)[:, None, :] ** 2, 0.0))


def add_noise(mu: np.ndarray, *, sigma=None, nu=None, run_sd=None, mix_sd=None, new_mixture=None,
              seed=0) -> np.ndarray:
    """Draws of an observed loss of a new run around expected losses ``mu (S, rows, K)``.

    A new run gets a fresh offset (``run_sd (S,)``) shared by its domains, a new mixture
    a fresh mixture effect (``mix_sd (S, K)``; ``new_mixture (rows,)`` marks which rows
    are new, default all), and every cell noise (``sigma (S, K)``, Student-t with ``nu``).
    """
    if sigma is None:
        return mu
    rng = np.random.default_rng(seed)
    log_noise = np.zeros(mu.shape)
    if run_sd is not None:
        log_noise += (rng.standard_normal(mu.shape[:2]) * np.asarray(run_sd)[:, None])[:, :, None]
    if mix_sd is not None:
        fresh = rng.standard_normal(mu.shape) * np.asarray(mix_sd)[:, None, :]
        mask = np.ones(mu.shape[1], dtype=bool) if new_mixture is None else np.asarray(new_mixture, dtype=bool)
        log_noise += np.where(mask[None, :, None], fresh, 0.0)
    sigma = np.asarray(sigma)[:, None, :]
    if nu is not None:
        eps = rng.standard_t(np.asarray(nu)[:, None, None], size=mu.shape)
    else:
        eps = rng.standard_normal(mu.shape)
    return mu * np.exp(log_noise + sigma * eps)
