"""The contract every scaling law in the registry fulfils.

A law is a small declarative object: its parameters (with dims), default priors, a
mean function written once in PyTensor, and a citation. The fitting, prediction,
decision and acquisition layers only ever use this interface.

Broadcasting convention of :meth:`Law.mean`
-------------------------------------------
The same mean function serves the PyMC model and the vectorised evaluation of
posterior draws, so it must be written with broadcasting in mind:

* ``h`` has shape ``(..., rows, K)``; ``n`` and ``d`` have shape ``(..., rows, 1)``;
* a parameter with dims ``("domain",)`` has shape ``(K,)`` in the model and
  ``(S, 1, K)`` for ``S`` posterior draws; a scalar parameter has shape ``()`` in the
  model and ``(S, 1, 1)`` for draws; a parameter with dims ``("domain", "domain_j")``
  has shape ``(K, K)`` in the model and ``(S, 1, K, K)`` for draws;
* reductions over domains use ``axis=-1`` with ``keepdims=True``.

Units: ``n = N / N_ref`` and ``d = D / D_ref`` are dimensionless, measured at the
reference scale of the data (geometric means), and the mean is the loss divided by the
reference loss (the geometric mean of all observed losses, one number shared by all
domains, so that amplitudes of different domains stay comparable). Amplitudes are
therefore "the term's size at the reference scale relative to the typical loss", which
keeps amplitude and exponent from forming one long ridge in the posterior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

DOMAIN = "domain"
DOMAIN_J = "domain_j"


@dataclass(frozen=True)
class Param:
    """A law parameter.

    Parameters
    ----------
    name : str
        Name in the PyMC model and in the posterior.
    dims : tuple of str
        ``()`` for a scalar, ``("domain",)`` for one value per domain,
        ``("domain", "domain_j")`` for a domain-by-domain matrix.
    prior : dict
        Default prior: ``{"dist": <pymc distribution name>, **kwargs}``. Overridable.
    doc : str
        What the parameter means, with its units.
    below_model_size : bool
        The law is defined only where this (positive) parameter is below every model size
        of the data, in ``N_ref`` units (the capacity floor ``H``: the split needs
        ``n > H``). Its prior is then truncated to ``(0, smallest model size)`` of the
        fitted table, so that the sampler's coordinate maps onto the law's domain and a
        trajectory can never step where the law is undefined.
    """

    name: str
    dims: tuple[str, ...]
    prior: dict
    doc: str = ""
    below_model_size: bool = False

    def shape(self, n_domains: int) -> tuple[int, ...]:
        return tuple(n_domains for _ in self.dims)


#: Key suffix of :meth:`Law.fit_checks`' ratio of a bounded parameter to its bound.
SMALLEST_SIZE_RATIO_SUFFIX = "_to_smallest_size"

#: The minimum positive weight of laws with a term in a domain's own data
#: (:attr:`Law.min_positive_weight`): 0.1% of the tokens, the smallest positive weight
#: in the public proxy-run tables (Pile 17), so the decision layer never goes below the
#: weights the laws were fitted on.
MIN_POSITIVE_WEIGHT = 1e-3

# Default priors that several laws share, one home each (a law may override per fit; never
# mutate these dicts in place: :meth:`Law.default_priors` hands out copies).

#: Scale exponent of a power term (``N^(-alpha)``, ``D^(-beta)``): median 0.3, 95% in
#: (0.11, 0.8), as in Chinchilla-type fits; held away from 0, where the term would turn
#: into a constant indistinguishable from the irreducible loss.
EXPONENT_PRIOR = {"dist": "LogNormal", "mu": -1.2, "sigma": 0.5}

#: Size of a scale term at the reference scale, relative to the reference loss: median
#: 0.2, 95% in (0.03, 1.4).
AMPLITUDE_PRIOR = {"dist": "LogNormal", "mu": -1.6, "sigma": 1.0}

#: Size of a data term when the domain's own tokens ``D h_i`` are an equal share
#: ``D_ref / K``, relative to the reference loss: median 0.1, 95% in (0.014, 0.7).
DATA_AMPLITUDE_PRIOR = {"dist": "LogNormal", "mu": -2.3, "sigma": 1.0}

#: Loss left at infinite scale, relative to the reference loss: median 0.6, 90% in
#: (0.2, 1.6), as domains' typical losses range from about 0.5 (code) to 1.5 (books) of
#: the reference.
IRREDUCIBLE_LOSS_PRIOR = {"dist": "LogNormal", "mu": -0.5, "sigma": 0.6}

# Parameters of the Chinchilla form ``E + A n^(-alpha) + ...`` (Hoffmann et al. 2022, Eq. 2)
# that the per-domain Chinchilla law and Shukor et al.'s laws declare alike.
IRREDUCIBLE_LOSS = Param(
    "E", (DOMAIN,), IRREDUCIBLE_LOSS_PRIOR,
    "irreducible loss relative to the reference loss (the geometric mean of all observed "
    "losses, shared by the domains); median 0.6, 90% in (0.2, 1.6): domains' typical "
    "losses range from about 0.5 (code) to 1.5 (books) of the reference")
MODEL_SIZE_AMPLITUDE = Param(
    "A", (DOMAIN,), AMPLITUDE_PRIOR,
    "model-size term at N_ref, relative to the reference loss (median 0.2)")
MODEL_SIZE_EXPONENT = Param(
    "alpha", (DOMAIN,), EXPONENT_PRIOR,
    "model-size exponent (median 0.3, 95% in (0.11, 0.8)); bounded away from 0 where "
    "the term would turn into a constant indistinguishable from E")
#: ``E + A n^(-alpha)``: the irreducible loss and the model-size term, in this order.
SIZE_TERM_PARAMS = (IRREDUCIBLE_LOSS, MODEL_SIZE_AMPLITUDE, MODEL_SIZE_EXPONENT)


def own_data_params(amplitude: str, exponent: str, term: str, note: str = "") -> tuple[Param, Param]:
    """The amplitude and exponent of a term in a domain's own tokens, ``amplitude (K d
    h_i)^(-exponent)`` (:func:`own_data_term`), under the names a law gives them; ``term``
    says what the law calls it, ``note`` how it maps to the paper's parameters."""
    return (Param(amplitude, (DOMAIN,), DATA_AMPLITUDE_PRIOR,
                  f"{term} when the domain's own tokens D*h_i equal an equal share D_ref/K (the uniform "
                  f"mixture at the reference scale), relative to the reference loss (median 0.1){note}"),
            Param(exponent, (DOMAIN,), EXPONENT_PRIOR,
                  f"exponent of the domain's own tokens in the {term} (median 0.3, 95% in (0.11, 0.8))"))


def left_out_or_own_share(h, left_out_share):
    """A domain's own share ``h_i``, or ``left_out_share`` where a run gives it weight 0
    (PyTensor): what a term in the domain's own data sees (:data:`LEFT_OUT_SHARE`)."""
    import pytensor.tensor as pt

    return pt.switch(pt.gt(h, 0), h, left_out_share)


def own_data_term(amplitude, exponent, h, d, left_out_share=0.0):
    """``amplitude (K d h_i)^(-exponent)``: a term in the domain's own tokens ``D h_i``,
    measured against ``D_ref / K`` (its tokens under the uniform mixture at the reference
    scale, so that the amplitude is the term in the middle of the data rather than far
    from it, where amplitude and exponent form one long ridge).

    The term diverges as ``h_i -> 0+``; a law that has it sets :data:`MIN_POSITIVE_WEIGHT`.
    Where ``h_i = 0`` the domain's share is ``left_out_share`` (:data:`LEFT_OUT_SHARE`, a
    fitted parameter); at 0 (the default) the term is dropped there: the domain saw none
    of its own data, a convention and not the limit.

    PyTensor, ``h (..., K)`` and ``d`` in units of ``D_ref``.
    """
    return amplitude * own_share_power(h, exponent, d, left_out_share, where_none=0.0)


def own_share_power(h, exponent, scale=1.0, left_out_share=0.0, *, where_none):
    """``(K scale s_i)^(-exponent)`` with ``s_i`` the domain's own share, or
    ``left_out_share`` where a run gives it weight 0 (:func:`left_out_or_own_share`);
    ``where_none`` where that share is 0 too (the domain saw none of its own data: a
    convention of the law, not the limit). PyTensor, ``h (..., K)``."""
    import pytensor.tensor as pt

    share = left_out_or_own_share(h, left_out_share)
    active = pt.gt(share, 0)
    scaled = scale * h.shape[-1] * pt.switch(active, share, 1.0)  # 1 where inactive: log stays finite
    return pt.switch(active, pt.exp(-exponent * pt.log(scaled)), where_none)


#: The share ``h0`` that a domain a run leaves out (weight 0) behaves as if it had, in a
#: term in the domain's own data (capacity_noise's noise term, BiMix, the per-domain
#: Chinchilla law). Such a term diverges as the weight goes to 0, and the laws used to
#: drop it at 0: a convention that the losses of left-out domains (a third of Pile 17's
#: cells) pulled the other parameters towards. With one fitted share those cells inform one number, and the term at every
#: positive weight is the published law's, so a table without zero weights fits exactly
#: as before (``h0`` then keeps its prior). Pile 17, grouped 5-fold, 2 x (500 + 500):
#: held-out MRE over positive-weight cells BiMix 5.1% -> 1.8%, chinchilla_domain 5.5% ->
#: 1.8%; fitted ``h0`` 0.05% for both (the smallest positive weight there is 0.1%);
#: capacity_noise, Pile 17's seeded 70/30 splits 0-4, default fits: 1.60% -> 1.24%.
#: Prior median 0.1%, 95% in (0.014%, 0.7%). Fits saved before it (``h0 = 0``) keep the
#: convention. (A leak added to every weight, ``h_i + h0``, scored as well on Pile 17 but
#: bent the term at small shares where no run leaves a domain out: chinchilla_domain then
#: extrapolated SlimPajama from <= 310M with 1.31% MRE against 0.79%; 0.80% with this.)
LEFT_OUT_SHARE = Param("h0", (), {"dist": "LogNormal", "mu": -6.9, "sigma": 1.0},
                       "share of its own data that a domain a run leaves out (weight 0) behaves as if it "
                       "had; median 0.001, 95% in (0.00014, 0.007); keeps its prior where no run leaves a "
                       "domain out")
#: ``h0`` in the laws' example parameters (:meth:`Law.example_params`): its prior median.
EXAMPLE_LEFT_OUT_SHARE = 1e-3


def with_left_out_share(draws: dict, version: int, since: int = 2) -> dict:
    """Draws saved before :data:`LEFT_OUT_SHARE` (a parametrization below ``since``, the
    law's version that brought it) with ``h0 = 0``: the law they were fitted with, the
    convention at a zero weight included."""
    if version >= since or "h0" in draws or not draws:
        return draws
    n_draws = len(next(iter(draws.values())))
    return {**draws, "h0": np.zeros(n_draws)}


@dataclass
class Law:
    """Base class of registered laws. Subclasses set the class attributes and ``mean``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    uses_model_size: ClassVar[bool] = False
    uses_tokens: ClassVar[bool] = False
    params: ClassVar[tuple[Param, ...]] = ()
    #: Positive per-domain parameters that add up to the law's mean at the reference
    #: point (e.g. ``("E", "c", "A")``). The sampler then works in level coordinates
    #: (log of their sum, log-ratios): an exact change of variables, see
    #: :mod:`bayesmix.coordinates`. Empty: natural coordinates.
    level_terms: ClassVar[tuple[str, ...]] = ()
    #: Pairs ``(coefficient, exponent)`` of ``(domain, domain_j)`` matrices that enter the
    #: law as ``coefficient_ij (K h_j)^exponent_ij`` (the coefficient is the term at the
    #: uniform share ``1/K``). The sampler then works in typical-share coordinates (the
    #: log of the term at the table's typical share of domain ``j``): an exact change of
    #: variables, see :mod:`bayesmix.coordinates`.
    share_terms: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Why the law cannot be fitted to runs at one model size and one token count, or
    #: empty when it can (the table is then refused with this reason).
    one_scale_refusal: ClassVar[str] = ""
    #: Typical sampling cost of one fit relative to the cheapest laws (measured: CPU
    #: seconds of the Pile 17 comparison, ``benchmarks/bench_compare.py``). A comparison
    #: submits the most expensive fits first so that no long fit starts last; results
    #: never depend on it.
    relative_cost: ClassVar[float] = 1.0
    #: Whether NUTS samples this law in Laplace-whitened coordinates by default
    #: (:func:`bayesmix.nutpie_backend.preconditioned_model`): worth it where the posterior has
    #: strong correlations that nutpie's mass matrix learns only late in tuning; it makes
    #: the compilation 10-20 s longer, which a law that samples well anyway does not
    #: earn back.
    whitened_sampling: ClassVar[bool] = False
    #: A scalar parameter along which this law's posterior can have separated modes that
    #: every chain of the pilot may miss, or None. Where a fit is whitened, the pilot also
    #: runs short chains from points with this parameter moved up and down from its main
    #: mode (:func:`bayesmix.nutpie_backend.probe_chains`); they join the pilot's chains in
    #: the choice of the main mode.
    mode_probe: ClassVar[str | None] = None
    #: nutpie's mass matrix for this law by default (:attr:`bayesmix.fit_settings.FitSettings.mass_matrix`):
    #: "low_rank" learns the strongest posterior correlations, at a cost in every leapfrog
    #: step that grows with the sampler's coordinates; "diag" where they are few or weak
    #: enough that the low-rank one saves no steps.
    mass_matrix: ClassVar[str] = "low_rank"
    #: nutpie's largest tree depth for this law by default
    #: (:attr:`bayesmix.fit_settings.FitSettings.max_tree_depth`): a NUTS trajectory stops
    #: after ``2**depth - 1`` leapfrog steps. 10 is nutpie's (and Stan's) own;
    #: ``capacity`` and ``capacity_noise`` cap at 7, where it shortens their long early
    #: tuning trees and not their kept ones (:data:`bayesmix.laws.capacity.CAPACITY_TREE_DEPTH`).
    #: A cap is measured per law: a law that inherits one must earn it again.
    max_tree_depth: ClassVar[int] = 10
    #: Smallest positive weight of a domain that the decision layer lets an optimiser
    #: choose, or 0 where the law is continuous as a weight goes to 0. A term in a
    #: domain's own data, ``A (D h_i)^(-a)``, grows without bound as ``h_i -> 0+`` but is
    #: absent at ``h_i = 0`` (the domain saw none of its data): the loss jumps down at
    #: the corner, where an optimiser would stall on a loss the law never meant. Such a
    #: law sets :data:`MIN_POSITIVE_WEIGHT`; a domain is then either left out (a maximum
    #: of 0) or given at least this weight.
    min_positive_weight: ClassVar[float] = 0.0
    #: Whether the law predicts a domain that is only evaluated (a loss column with no
    #: weight column, e.g. SlimPajama's ``openhermes``) as a function of the mixture and the
    #: scale. Such a law is fitted with the evaluation-only domains as domains of weight 0
    #: in every run (:meth:`bayesmix.data.RunTable.with_evaluation_domains`). A law in
    #: which a zero-weight domain's loss does not move with the mixture (the capacity
    #: laws without transfer give it the floor capacity and at most a noise term at the
    #: fixed left-out share ``h0``) leaves them out.
    predicts_evaluation_domains: ClassVar[bool] = False
    #: Scale features (``"log_n"``, ``"log_d"``) along which the law's log-mean has a free
    #: linear trend of its own per domain (e.g. ``exp(w_n log n)``). The discrepancy's
    #: linear part along such a feature would explain the same thing within the fitted
    #: scales (a ridge only the priors hold: NUTS mixed the pooled slope sd with a bulk
    #: ESS of 7-25 in 600 draws), so by default it acts only beyond them
    #: (:attr:`bayesmix.observation.ObservationDesign.slope_region` "outside").
    log_linear_trends: ClassVar[tuple[str, ...]] = ()
    #: Name of the per-domain parameter that is the floor of the law's mean (the
    #: irreducible loss ``E``: the mean is ``E`` plus terms that vanish with scale), or
    #: empty. Where a law declares one, a fit can put the observation model's discrepancy
    #: over scale on the reducible loss ``mean - E`` rather than on the whole loss
    #: (``FitSettings(discrepancy_scale="reducible")``, see
    #: :func:`bayesmix.observation.discrepant_log_mean`).
    irreducible_loss: ClassVar[str] = ""
    #: NUTS target acceptance rate a fit uses unless told otherwise. Higher means smaller
    #: steps, more gradients per draw and fewer divergent transitions where the
    #: posterior's curvature changes sharply (a funnel).
    target_accept: ClassVar[float] = 0.95

    #: Version of the meaning of the law's parameters. A law that changes what a
    #: parameter measures (not its mean function) raises it and converts draws saved
    #: under an older version in :meth:`upgrade_draws`, so that old fits predict as before.
    parametrization: ClassVar[int] = 1

    options: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ contract
    def upgrade_draws(self, draws: dict, version: int) -> dict:
        """Draws saved under :attr:`parametrization` ``version`` in this version's terms.

        Parameters
        ----------
        draws : dict of str to ndarray
            Parameter draws by name, ``(S, *dims)``.
        version : int
            The version they were saved under (1 for fits saved before versions).

        Returns
        -------
        dict
            The same law's mean at every input: draws in the current meaning.
        """
        return draws

    def example_params(self, n_domains: int, rng: np.random.Generator) -> dict | None:
        """Plausible parameters of this law over ``n_domains`` domains, in nats with a
        reference loss of 1, for simulated truths (:func:`bayesmix.simulate.default_truth`):
        ranges typical of small LLMs (scale exponents 0.2-0.5, irreducible losses
        0.8-2.2 nats, mixtures moving a domain's loss by 5-30%). None: the simulation
        draws them from the law's default priors instead."""
        return None

    def mean(self, p: dict, h, n, d):
        """Expected loss divided by the reference loss, shape ``(..., rows, K)``.

        Parameters
        ----------
        p : dict of str to TensorVariable
            Parameter values following the broadcasting convention of this module.
        h : TensorVariable
            Mixture weights, ``(..., rows, K)``.
        n, d : TensorVariable
            Model size and tokens in reference units, ``(..., rows, 1)``.
        """
        raise NotImplementedError

    def fit_checks(self, posterior, table) -> dict:
        """Law-specific checks recorded with every fit.

        For each parameter bounded by the model size (:attr:`Param.below_model_size`),
        ``<name>_to_smallest_size``: its posterior median over the smallest model size of
        the table. Near 1, the posterior sits against the bound: the law bends that
        parameter to absorb a misfit (e.g. the capacity floor taking up unfinished
        checkpoints), and predictions deserve suspicion.
        """
        bounded = [param.name for param in self.params if param.below_model_size]
        if not bounded:
            return {}
        n, _ = posterior.scaling.scale_inputs(table.model_size, table.tokens)
        return {f"{name}{SMALLEST_SIZE_RATIO_SUFFIX}": float(np.median(posterior.draws[name]) / np.min(n))
                for name in bounded}

    # ------------------------------------------------------------------ helpers
    def default_priors(self) -> dict[str, dict]:
        """The default prior of every parameter, as plain (JSON-serialisable) dicts."""
        return {param.name: dict(param.prior) for param in self.params}

    def param(self, name: str) -> Param:
        """The parameter called ``name`` (KeyError if the law has none)."""
        return {param.name: param for param in self.params}[name]

    def describe(self) -> str:
        lines = [f"{self.name}: {self.title}", f"  {self.citation}"]
        for param in self.params:
            dims = "(" + ", ".join(param.dims) + ")" if param.dims else "scalar"
            bound = ", truncated below the smallest model size" if param.below_model_size else ""
            lines.append(f"  {param.name:<8} {dims:<20} {param.prior}{bound}  {param.doc}")
        return "\n".join(lines)

    def check_table(self, table) -> None:
        """Raise :class:`UsageError` when the table's scales cannot inform this law."""
        from ..errors import UsageError

        sizes = np.unique(np.round(np.asarray(table.model_size), 0))
        if self.one_scale_refusal and len(sizes) == 1 and len(np.unique(np.round(table.tokens, 0))) == 1:
            raise UsageError(
                f"law '{self.name}' cannot be fitted to runs at one model size and one token count "
                f"({table.source}: every run has N = {sizes[0]:.4g}, D = {float(table.tokens[0]):.4g}): "
                f"{self.one_scale_refusal}"
            )
        if not self.uses_model_size and len(sizes) > 1:
            raise UsageError(
                f"law '{self.name}' has no model-size term but the table has {len(sizes)} model "
                "sizes; select one with --filter-model-size (Python: table.filter_scale(model_size=[...]))"
            )
        if not self.uses_tokens:
            # Several token counts at one model size cannot be explained without a D term.
            for size in sizes:
                at = np.isclose(table.model_size, size, rtol=1e-6)
                if len(np.unique(np.round(table.tokens[at], 0))) > 1:
                    raise UsageError(
                        f"law '{self.name}' has no token term but the table has several token counts "
                        f"at model size {size:.4g}; select one with --filter-tokens or use final "
                        "checkpoints only (Python: table.final_checkpoints())"
                    )
