"""Which terms the observation model has on a table, and the table's indices for them
(see :mod:`bayesmix.observation` for the model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..fit_settings import DISCREPANCY_SCALES, LIKELIHOODS, SWITCHES

#: Where the discrepancy's linear part acts: at "all" scales (fitted with the law), or
#: "outside" the fitted scales only (never in the likelihood); see :mod:`bayesmix.observation`.
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
#: Pinned discrepancy slopes (domains x scale features through three values or more) from
#: which they are sampled centred; fewer are sampled non-centred (see
#: :meth:`ObservationDesign.centred_features`).
CENTRED_SLOPES_MIN = 7
#: Distinct fitted values of a scale feature from which its slopes are sampled centred:
#: through two values a slope is a level step between them, which the law's own scale
#: terms make as well (see :meth:`ObservationDesign.centred_features`).
CENTRED_SLOPES_MIN_VALUES = 3


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
    discrepancy_scale: str = "log"

    @classmethod
    def from_table(cls, table, scaling, *, likelihood: str = "normal", run_effect="auto",
                   discrepancy="auto", mixture_effect="auto", slope_region: str = "auto",
                   discrepancy_scale: str = "log", law=None) -> "ObservationDesign":
        """The observation model's terms on ``table`` (see :mod:`bayesmix.observation` for "auto"
        and for ``slope_region``). ``law``: the law the terms sit on, or None for a law
        without a trend of its own. Along the features where the law's log-mean has a linear
        trend of its own (:attr:`bayesmix.laws.Law.log_linear_trends`), with ``slope_region``
        "auto" the discrepancy's slopes act only outside the fitted scales.
        ``discrepancy_scale`` "reducible" needs a law that declares an irreducible loss
        (:attr:`bayesmix.laws.Law.irreducible_loss`). A scale feature constant over the
        table while the other varies is a feature of the discrepancy too, its slopes
        acting beyond its one value only (see ``_with_constant_feature`` for why)."""
        if likelihood not in LIKELIHOODS:
            raise UsageError(f"likelihood must be one of {', '.join(LIKELIHOODS)}, got '{likelihood}'")
        if slope_region not in SLOPE_REGIONS:
            raise UsageError(f"slope_region must be one of {', '.join(SLOPE_REGIONS)}, got '{slope_region}'")
        scale = _discrepancy_scale(discrepancy_scale, law)
        run_effect, discrepancy = _switch(run_effect, "run_effect"), _switch(discrepancy, "discrepancy")
        mixture_effect = _switch(mixture_effect, "mixture_effect")
        n, d = scaling.scale_inputs(table.model_size, table.tokens)
        points, features, constant = _distinct_scales(n[:, 0], d[:, 0])
        use_disc = len(points) > 1 if discrepancy == "auto" else discrepancy == "on"
        keys = mixture_keys(table.weights)
        row_features = scale_features(n, d, features) if features else np.zeros((len(n), 0))
        scale_of_row = row_scale_index(row_features, points)
        paired = all(paired_features(keys, row_features)) if features else False
        # The mixture effect belongs to the discrepancy-aware model: the law-only model
        # (discrepancy off) is the paper's, with noise and run offsets alone.
        use_mix = (use_disc and paired) if mixture_effect == "auto" else mixture_effect == "on"
        if slope_region == "auto":
            law_trends = law.log_linear_trends if law is not None else ()
            regions = tuple("outside" if not paired or f in law_trends else "all" for f in features)
        else:
            regions = (slope_region,) * len(features)
        mixtures = tuple(str(k) for k in pd.unique(keys)) if use_mix else ()
        # Only where runs have several checkpoints: with one row per run the offset shared
        # by a run's domains is identified in principle, but measured, it cost the
        # sampler half its effective draws (a 3-domain simulated table: bulk ESS 19-22
        # against 50+ without it) for evidence the cell noise already carries.
        use_run = table.n_runs < table.n_rows if run_effect == "auto" else run_effect == "on"
        if use_disc and not features:
            raise UsageError("discrepancy='on' needs a table with more than one model size or token count")
        if use_disc and constant:
            points, features, regions = _with_constant_feature(points, features, regions, constant, n[0, 0], d[0, 0])
        return cls(likelihood=likelihood, run_effect=bool(use_run), discrepancy=bool(use_disc),
                   mixture_effect=bool(use_mix), features=tuple(features) if use_disc else (),
                   scale_points=points if use_disc else np.zeros((0, 0)),
                   centre=points.mean(axis=0) if use_disc else np.zeros(0),
                   mixtures=mixtures, slope_region=regions if use_disc else (),
                   mixture_blocks=_mixture_blocks(keys, scale_of_row, mixtures),
                   discrepancy_scale=scale if use_disc else "log")

    # ------------------------------------------------------------------ indices
    def scale_index(self, n, d) -> np.ndarray:
        """Index of each row's scale among :attr:`scale_points` (-1: not a fitted scale)."""
        return row_scale_index(scale_features(n, d, self.features), self.scale_points)

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

    def centred_features(self, n_domains: int) -> np.ndarray:
        """``(P,)`` bool: the features whose slopes over ``n_domains`` domains are sampled
        centred, ``disc_slope ~ N(mean, sd)``, rather than as ``mean + sd * z``: features
        whose slopes are fitted with the law and take at least
        :data:`CENTRED_SLOPES_MIN_VALUES` distinct values at the fitted scales, where
        there are at least :data:`CENTRED_SLOPES_MIN` slopes of such features (else none).
        The others' slopes are sampled non-centred beside them: those of features that
        act beyond the fitted scales only (prior draws) and those fitted through two values.

        The centred form suits a pooled spread ``sd`` that the slopes pin away from 0; the
        non-centred form one whose posterior reaches 0, where the centred form has a funnel.
        With ``J`` slopes known exactly, ``sd`` has the relative spread of a scale with
        ``J - 1`` degrees of freedom, about ``1 / sqrt(2 (J - 1))``: 0.71 with 3 slopes,
        0.27 with 8, 0.20 with 14. Measured: SlimPajama 7 (7 domains x 2 features), seed
        1, non-centred: R-hat 1.017 on ``sd`` (bulk ESS 315 of 16000 draws), centred
        1.009, ``sd``'s 5% quantile 0.6 of its median; simulated tables of 3 domains and
        3 sizes (3 slopes; ``benchmarks/bench_calibration.py``, 20 truths from the prior),
        centred: divergent transitions in 19 of 20 fits, near ``sd`` = 0 (its 5% quantile
        0.1 of its median); non-centred: none.

        Through two fitted values of a feature a slope is only a step of the domain's
        level between them, which the law's own scale terms (exponents, amplitudes) make as
        well: the data pin the sum, not each slope, and ``sd`` reaches 0 however many
        slopes there are. Measured on ``benchmarks/bench_fit.py``'s simulated table (1024
        runs x 17 domains at two model sizes, truth without discrepancy; 4 chains x
        (200 + 200)): centred, 159 divergent transitions at 0.95, then at 0.99 none but
        max R-hat 1.61 on ``sd``, bulk ESS 7, 214 gradients per draw, 947 s; non-centred,
        no divergence at 0.95, R-hat 1.03, bulk ESS 174, 88 gradients per draw, 534 s.
        There ``sd`` is now held at a constant (:attr:`learns_slope_spread`), which makes
        the two forms the same model.

        Each feature takes its own form because one design can have both kinds: SlimPajama
        fitted <= 680M has ``log_n`` through three sizes (its 7 slopes pinned) and ``log_d``
        through two token counts (its 7 slopes a step the law also makes). All 14
        non-centred (before), default settings, seed 2: max R-hat 1.14 on the slopes'
        mean, 127 gradients per draw (the same with nutpie's diagonal mass matrix: R-hat
        1.09 on ``sd``); ``log_n`` centred and ``log_d`` non-centred: seeds 0, 1 and 2
        pass (R-hat 1.01, 43-56 gradients per draw, 77-168 s on 2 shared cores) with the
        same held-out scores (MRE 0.48%, coverage 89.6-90.4%).
        Seven pinned slopes leave ``sd`` a relative spread of about 0.29 (eight: 0.27),
        so :data:`CENTRED_SLOPES_MIN` is 7.
        """
        counts = np.zeros(len(self.features), dtype=int)
        counts[self.fitted_slopes] = self._fitted_value_counts()
        pinned = counts >= CENTRED_SLOPES_MIN_VALUES
        return pinned if n_domains * pinned.sum() >= CENTRED_SLOPES_MIN else np.zeros(len(pinned), dtype=bool)

    @property
    def learns_slope_spread(self) -> bool:
        """Whether the fit learns the spread of the discrepancy's slopes across domains
        (``disc_slope_sd`` in the model). Not where every feature whose slopes are
        fitted goes through only two of its values: there the spread is held at its
        prior's root mean square (:func:`bayesmix.priors.root_mean_square`; 0.02 per
        e-fold by default), which keeps each slope's prior spread what it is marginally.
        Where one fitted feature takes three values or more, its slopes are pinned and
        tell the spread, which every feature's slopes share.

        Why: through two values a slope is a level step that the law's scale terms make
        as well, so the data say little about how the slopes differ and a learned spread
        is a funnel neither sampling form crosses well. Measured on SlimPajama's <= 310M
        final checkpoints (7 domains, ``log_n`` through 122M and 310M; default settings,
        seed 0, 2026-12-06): learned and non-centred, 127 gradients per draw (219 kept
        trees cut at depth 7), a divergence at 0.95 and the retry at 0.99, max R-hat 1.09
        on the spread; learned and centred, 125 gradients per draw and R-hat 1.37; with
        a Gamma(2, 125) prior on the spread (its density 0 at 0, the same marginal slope
        spread) non-centred 127 and R-hat 1.07, centred 48 and R-hat 1.20; held at 0.02,
        42 gradients per draw, no divergence and no retry, 56 s against 121-280 s (seeds
        1 and 2 pass the gate; seed 0, R-hat 1.16, does not, on a capacity amplitude).
        Simulated, 256 runs x 17 domains at 100M and 200M, a truth without discrepancy,
        4 x (300 + 300): 58 gradients per draw against 104 (centred with the Gamma
        prior: 113, and a retry).

        Why the spread is still learned where one feature is fitted through three values:
        SlimPajama fitted <= 680M (``log_n`` through three sizes, ``log_d`` through two
        token counts), default settings: with the spread held, seeds 1 and 2 were refused
        (R-hat 1.53 on c[github], 1.70 on H: chains in separate places; seed 0 passed);
        learned, seed 1 passes (R-hat 1.01, 127 gradients per draw, 172 s). The slopes
        through three sizes put the spread near 0.01, and held at 0.02 they leave the
        law's floor and amplitudes room for a second mode.
        """
        counts = self._fitted_value_counts()
        return not counts or any(count >= CENTRED_SLOPES_MIN_VALUES for count in counts)

    def _fitted_value_counts(self) -> list[int]:
        """Distinct values at the fitted scales of each feature whose slopes are fitted
        (the scale points are rounded already: :func:`_distinct_scales`)."""
        return [len(np.unique(column)) for column in self.scale_points[:, self.fitted_slopes].T]

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
            kinds = {"all": "fitted", "outside": "from the prior beyond the fitted scales"}
            slopes = ", ".join(f"{feature} {kinds[region]}"
                               for feature, region in zip(self.features, self.feature_regions))
            out.append(f"scale discrepancy: over {', '.join(self.features)} at {len(self.scale_points)} fitted scales"
                       f"; slopes: {slopes}")
        else:
            out.append("scale discrepancy: no (law-only)")
        out.append(f"mixture effect: {len(self.mixtures)} mixtures" if self.mixture_effect else "mixture effect: no")
        return out

    def to_dict(self) -> dict:
        return {"likelihood": self.likelihood, "run_effect": self.run_effect, "discrepancy": self.discrepancy,
                "mixture_effect": self.mixture_effect, "features": list(self.features),
                "scale_points": np.asarray(self.scale_points).tolist(), "lengthscale": self.lengthscale,
                "centre": np.asarray(self.centre).tolist(), "mixtures": list(self.mixtures),
                "slope_region": list(self.slope_region), "mixture_blocks": [int(b) for b in self.mixture_blocks],
                "discrepancy_scale": self.discrepancy_scale}

    @classmethod
    def from_dict(cls, data: dict | None, *, likelihood: str = "normal", run_effect: bool = False):
        """Read :meth:`to_dict`; a fit saved before the observation model was stored gets
        the law-only design with its likelihood and run offset, one saved before
        :attr:`slope_region` existed the linear part at all scales it was fitted with, one
        saved before :attr:`mixture_blocks` existed its effects uncentred, one saved before
        :attr:`discrepancy_scale` existed its discrepancy on the log-loss."""
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
                   mixture_blocks=tuple(int(b) for b in data.get("mixture_blocks", ())),
                   discrepancy_scale=str(data.get("discrepancy_scale", "log")))


def _discrepancy_scale(choice: str, law) -> str:
    """:attr:`ObservationDesign.discrepancy_scale` checked against the law."""
    if choice not in DISCREPANCY_SCALES:
        raise UsageError(f"discrepancy_scale must be one of {', '.join(DISCREPANCY_SCALES)}, got '{choice}'")
    if choice == "reducible" and not getattr(law, "irreducible_loss", ""):
        name = getattr(law, "name", "") or "this law"
        raise UsageError(f"discrepancy_scale 'reducible' needs a law with an irreducible loss; '{name}' has none: "
                         "use 'log'")
    return choice


def _distinct_scales(n: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, tuple, str]:
    """Distinct scales of the rows as features, which features vary independently, and
    the feature that is constant while the other varies ("" if none).

    ``log_d`` is a feature only where tokens vary other than with the model size (the
    distinct scales are not on one line in (log n, log d)); otherwise ``log_n`` alone, or
    ``log_d`` alone when the model size is constant. Tokens that move with the model size
    (a fixed tokens-per-parameter ratio) are neither a feature nor constant.
    """
    both = np.unique(np.round(np.stack([np.log(n), np.log(d)], axis=-1), 9), axis=0)
    if len(both) < 2:
        return both[:, :1], (), ""
    centred = both - both.mean(axis=0)
    rank = np.linalg.matrix_rank(centred, tol=1e-6)
    constant = ""
    if rank >= 2:
        features = ("log_n", "log_d")
    elif np.ptp(both[:, 0]) > 1e-9:
        features = ("log_n",)
        constant = "log_d" if np.ptp(both[:, 1]) <= 1e-9 else ""
    else:
        features, constant = ("log_d",), "log_n"
    columns = [0 if f == "log_n" else 1 for f in features]
    return np.unique(both[:, columns], axis=0), features, constant


def _with_constant_feature(points: np.ndarray, features: tuple, regions: tuple, constant: str, n0: float,
                           d0: float) -> tuple[np.ndarray, tuple, tuple]:
    """The design's scale points, features and slope regions with the ``constant``
    feature added (its value at every fitted scale: ``log n0`` or ``log d0``), its slopes
    acting beyond that value only, from their prior; features in the order log_n, log_d.

    Why: the discrepancy stands for the law's error along the features it has. Fitted at
    one model size (Pile 4's 90M runs at two token counts) and asked about another, a
    design over ``log_d`` alone gives the law's error at the new size no spread at all,
    and the law's prior-driven exponents are surer of that step than runs bear out:
    Pile 4, fit 90M -> 200M, 90% intervals covered 44.9% of cells (band 70-99%), R-hat
    1.18; with ``log_n`` as a constant feature 84.2% (band 63-100%), the same MRE (4.18%
    against 4.17%), R-hat 1.01. At the fitted value the feature adds nothing (its slopes
    multiply 0 there, its kernel distance is 0), so the likelihood is the same.
    """
    value = float(np.round(np.log(n0 if constant == "log_n" else d0), 9))
    columns = dict(zip(features, points.T))
    columns[constant] = np.full(len(points), value)
    region_of = dict(zip(features, regions))
    region_of[constant] = "outside"
    order = tuple(f for f in ("log_n", "log_d") if f in columns)
    return (np.stack([columns[f] for f in order], axis=-1), order, tuple(region_of[f] for f in order))


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


def row_scale_index(row_features: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Index of each row (its scale features) among ``points`` (-1: none within 1e-6)."""
    if points.size == 0 or row_features.shape[1] == 0:
        return np.zeros(len(row_features), dtype=int)
    dist = np.abs(np.round(row_features, 9)[:, None, :] - points[None]).max(-1)
    index = dist.argmin(axis=1)
    return np.where(dist[np.arange(len(index)), index] < 1e-6, index, -1)
