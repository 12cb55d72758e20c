"""Ground-truth campaigns: proxy-run tables drawn from a known law and parameter set.

The simulator is the default data of ``bayesmix demo`` and the ground truth of the
recovery tests and acquisition studies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .data import RunTable
from .errors import UsageError
from .fit_settings import DEFAULT_LAW
from .laws import get_law
from .posterior import Posterior
from .priors import draw_from_prior
from .scaling import Scaling

DEFAULT_DOMAINS = ("web", "code", "books", "science")

#: Reference units of simulated truths: parameters are given at 300M parameters and 6B
#: tokens, with a reference loss of 1 nat so that amplitudes are in nats.
TRUTH_SCALING = dict(n_ref=3e8, d_ref=6e9)


@dataclass(frozen=True)
class Truth:
    """A known law and parameter set.

    Attributes
    ----------
    law_name : str
    params : dict of str to ndarray
        One value per parameter (no draw axis), in the units of ``scaling``.
    scaling : Scaling
    domains : tuple of str
    noise_sd : float
        Log-normal observation noise sd.
    """

    law_name: str
    params: dict
    scaling: Scaling
    domains: tuple
    noise_sd: float = 0.01

    @property
    def posterior(self) -> Posterior:
        """The truth as a one-draw :class:`Posterior`, so every layer can evaluate it."""
        draws = {k: np.asarray(v, dtype=float)[None] for k, v in self.params.items()}
        return Posterior(get_law(self.law_name), draws, self.scaling, tuple(self.domains))

    def expected_loss(self, weights, model_size, tokens) -> np.ndarray:
        """True expected loss ``(rows, K)``."""
        return self.posterior.expected_loss(weights, model_size, tokens)[0]

    def irreducible_loss(self) -> np.ndarray:
        """``E_i`` in nats, when the law has an ``E`` parameter."""
        if "E" not in self.params:
            raise UsageError(f"law '{self.law_name}' has no irreducible loss E "
                             f"(its parameters: {', '.join(self.params)})")
        return np.asarray(self.params["E"]) * np.asarray(self.scaling.loss_ref)


def default_truth(law: str = DEFAULT_LAW, domains=DEFAULT_DOMAINS, *, seed: int = 0,
                  noise_sd: float = 0.01) -> Truth:
    """A plausible ground truth for ``law`` over ``domains``.

    Each law gives its own example parameters (:meth:`bayesmix.laws.Law.example_params`:
    hand-set ranges typical of small LLMs, in nats with reference loss 1); a law without
    them gets a draw from its default priors.
    """
    rng = np.random.default_rng(seed)
    K = len(domains)
    law_obj = get_law(law)
    params = law_obj.example_params(K, rng)
    if params is not None:
        scaling = Scaling(loss_ref=tuple([1.0] * K), **TRUTH_SCALING)
    else:
        params = draw_from_prior(law_obj, K, seed=int(rng.integers(2**31)))
        scaling = Scaling(loss_ref=tuple([2.5] * K), **TRUTH_SCALING)
    return Truth(law, params, scaling, tuple(domains), noise_sd)


def simulate_runs(
    truth: Truth | None = None,
    *,
    n_mixtures: int = 12,
    model_sizes=(5e7, 1e8, 2e8, 4e8),
    tokens_per_param: float = 20.0,
    tokens=None,
    checkpoints=(1.0,),
    mixtures=None,
    dirichlet_alpha: float = 1.0,
    min_weight: float = 0.0,
    run_offset_sd: float = 0.0,
    seed: int = 0,
) -> tuple[RunTable, Truth]:
    """Draw a proxy-run table from a known truth.

    Parameters
    ----------
    truth : Truth, optional
        Ground truth; default :func:`default_truth` (of the default law,
        :data:`~bayesmix.fit_settings.DEFAULT_LAW`).
    n_mixtures : int
        Mixtures drawn from a Dirichlet (ignored when ``mixtures`` is given). Every model
        size is trained on every mixture.
    model_sizes : sequence of float
        N of the runs, in parameters.
    tokens_per_param : float
        Final tokens of a run as a multiple of N (used when ``tokens`` is None).
    tokens : sequence of float, optional
        Final token counts; each model size is trained at each of them.
    checkpoints : sequence of float
        Fractions of the final tokens at which a run logs its losses (1.0 = final).
    mixtures : array_like ``(M, K)``, optional
        A given design instead of Dirichlet draws.
    dirichlet_alpha : float
        Concentration of the Dirichlet draws.
    min_weight : float
        Floor applied to drawn weights before renormalising (0: none).
    run_offset_sd : float
        sd of a per-run multiplicative offset shared by its checkpoints and domains.
    seed : int
        Seed of every random step; the same seed gives the same table.

    Returns
    -------
    (RunTable, Truth)
    """
    truth = truth or default_truth()
    rng = np.random.default_rng(seed)
    mixtures = _design_mixtures(mixtures, len(truth.domains), rng, n_mixtures=n_mixtures,
                                dirichlet_alpha=dirichlet_alpha, min_weight=min_weight)
    h, N, D, run_ids = _run_rows(mixtures, model_sizes, tokens, tokens_per_param, checkpoints)
    losses = _noisy_losses(truth.expected_loss(h, N, D), run_ids, run_offset_sd, truth.noise_sd, rng)
    table = RunTable.from_arrays(
        weights=h, model_size=N, tokens=D, losses=losses, domains=truth.domains,
        run_ids=run_ids, source=f"<simulated {truth.law_name}, seed {seed}>",
    )
    return table, truth


def _design_mixtures(mixtures, K: int, rng: np.random.Generator, *, n_mixtures: int, dirichlet_alpha: float,
                     min_weight: float) -> np.ndarray:
    """The design's mixtures ``(M, K)``, each summing to one: ``mixtures`` as given, or
    ``n_mixtures`` Dirichlet draws floored at ``min_weight``."""
    if mixtures is None:
        mixtures = rng.dirichlet(np.full(K, dirichlet_alpha), size=n_mixtures)
        if min_weight > 0:
            mixtures = np.maximum(mixtures, min_weight)
    mixtures = np.atleast_2d(np.asarray(mixtures, dtype=float))
    if mixtures.shape[1] != K:
        raise UsageError(f"mixtures have {mixtures.shape[1]} columns but the truth has {K} domains")
    return mixtures / mixtures.sum(axis=1, keepdims=True)


def _run_rows(mixtures: np.ndarray, model_sizes, tokens, tokens_per_param: float, checkpoints):
    """One row per checkpoint of every run (each mixture at each model size and final
    token count): weights, N, D and run ids ``sim-0001``, ..."""
    checkpoints = np.asarray(sorted(checkpoints), dtype=float)
    rows_h, rows_n, rows_d, rows_run = [], [], [], []
    run = 0
    for size in model_sizes:
        finals = [tokens_per_param * size] if tokens is None else list(tokens)
        for final in finals:
            for h in mixtures:
                run += 1
                for frac in checkpoints:
                    rows_h.append(h)
                    rows_n.append(size)
                    rows_d.append(frac * final)
                    rows_run.append(f"sim-{run:04d}")
    return (np.array(rows_h), np.array(rows_n, dtype=float), np.array(rows_d, dtype=float),
            np.array(rows_run, dtype=object))


def _noisy_losses(mu: np.ndarray, run_ids: np.ndarray, run_offset_sd: float, noise_sd: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Observed losses: the expected losses ``mu`` times a log-normal run offset (shared by
    a run's rows) and log-normal noise per cell."""
    _, run_index = np.unique(run_ids, return_inverse=True)
    offsets = rng.normal(0.0, run_offset_sd, size=run_index.max() + 1)[run_index] if run_offset_sd > 0 else 0.0
    noise = rng.normal(0.0, noise_sd, size=mu.shape)
    return mu * np.exp(noise + np.reshape(offsets, (-1, 1)))


def contrasting_truth(domains=DEFAULT_DOMAINS, *, seed: int = 0, noise_sd: float = 0.02,
                      amplitude: float = 0.25, contrast: float = 8.0) -> Truth:
    """A ``capacity_noise`` truth whose optimal mixture is far from uniform and moves with scale.

    Under the capacity laws with objective weights ``w`` the capacity term alone is
    minimised at ``h = w`` for every model size (the capacity split already minimises
    ``sum_i h_i c_i x_i^-b_i``, so at ``h = w`` it minimises the objective: envelope
    argument). The optimum leaves ``w`` only through the noise-reduction term
    ``A_i (D h_i K)^-a_i``; :func:`default_truth` draws similar ``A_i`` and ``a_i`` for
    every domain, so its optimum is within ~0.01% of the uniform mixture.

    Here the noise amplitudes run from ``amplitude`` to ``amplitude * contrast`` nats
    (default 0.25 to 2, times a log-normal jitter of sd 0.1) and the exponents from 0.15
    to 0.7 with the amplitudes (large amplitudes decay fast), in a seed-dependent order
    of the domains; ``c``, ``b``,
    ``H`` and ``E`` are those of :func:`default_truth` (``seed``). Domains whose noise
    term decays fast want weight at small scales and lose it at large ones, so the
    optimum at a 10x larger target differs from the optimum at the proxy scales, and
    where it lies depends on the exponents ``a_i`` that small runs pin down only
    loosely. Measured on seeds 0-3 with the defaults and every weight >= 3%, at a target
    of 2B parameters and 40B tokens: the uniform mixture is 0.6-0.7% worse than the
    optimum, the optimum at 50M / 1B is 0.3-2.6% worse, the optimum at 200M / 4B 0.1-0.5%
    worse (``amplitude=0.5`` roughly doubles these).

    Parameters
    ----------
    domains : sequence of str
    seed : int
    noise_sd : float
        Log-normal observation noise sd.
    amplitude : float
        Smallest noise-reduction amplitude (nats).
    contrast : float
        Largest over smallest amplitude.

    Returns
    -------
    Truth
    """
    base = default_truth("capacity_noise", domains, seed=seed, noise_sd=noise_sd)
    rng = np.random.default_rng(10_000 + seed)
    K = len(domains)
    rank = rng.permutation(K) / max(K - 1, 1)  # 0 .. 1, the domain's place in the contrast
    params = dict(base.params)
    params["A"] = amplitude * contrast**rank * np.exp(rng.normal(0.0, 0.1, K))
    params["a"] = (0.15 + 0.55 * rank) * np.exp(rng.normal(0.0, 0.1, K))
    return Truth("capacity_noise", params, base.scaling, tuple(domains), noise_sd)


def exponent_prior(truth: Truth, anchor_model_size: float, anchor_tokens: float, *, n_draws: int = 200,
                   rel_sd: float | dict = 0.25, sigma: float | None = None, truth_is_centre: bool = False,
                   seed: int = 0) -> Posterior:
    """Draws of a capacity-law truth whose exponents scatter but agree at one anchor scale.

    Every draw has the truth's ``H``; the exponents ``b_i`` (and ``a_i`` for a law with
    the noise-reduction term, e.g. ``capacity_noise``) are normal with sd ``rel_sd`` on
    the scale of the law's prior for them (``a``: log; the capacity laws' ``b``: logit,
    so that it stays in (0, 1)) around a centre that is itself one such draw around the
    truth (the truth is a typical draw of the prior, not its centre, so the prior's
    decision is off), and the amplitudes are moved with them so that each draw's
    capacity and noise terms equal the truth's for the uniform mixture at the anchor
    scale (``c`` by a fixed-point solve through the capacity split, ``A`` in closed
    form), and the irreducible losses ``E_i`` take up the rounding: every draw predicts
    exactly the truth's losses for the uniform mixture at the anchor scale, so a run
    there tells nothing. The
    draws agree on small runs near the anchor and part ways with scale, which is the
    uncertainty that small proxy runs leave about a large target. Draw 0 is the truth,
    so reweighting by data is a well-specified discrete Bayesian update.

    Parameters
    ----------
    truth : Truth
        A truth of a capacity law: one whose parameters are the capacity term's and
        ``E`` (:data:`CAPACITY_TERM_PARAMS`), with or without the noise-reduction term's
        (:data:`NOISE_TERM_PARAMS`): ``capacity`` or ``capacity_noise``. Refused for
        ``capacity_noise_transfer``, whose transfer matrix changes the capacity term.
    anchor_model_size, anchor_tokens : float
        The scale (N, D) at which the draws agree.
    n_draws : int
    rel_sd : float or dict of str to float or array_like ``(K,)``
        Sd of the exponents on the scale of their prior (log or logit). Per exponent
        (``{"b": ..., "a": ...}``) to scatter one more than the other (e.g. a capacity
        exponent, which moves the losses at larger sizes but hardly the best mixture),
        and per domain where a value is an array (e.g. one domain whose weight the
        decision does not choose).
    sigma : float, optional
        Noise sd of every draw (default: the truth's).
    truth_is_centre : bool
        Centre the exponents on the truth's instead (the prior's decision is then
        close to the true optimum before any data).
    seed : int

    Returns
    -------
    Posterior
    """
    pairs = _exponent_pairs(truth.law_name)
    if n_draws < 2:
        raise UsageError(f"n_draws must be at least 2, got {n_draws}")
    rel_sd = _exponent_spreads(rel_sd, [exponent for exponent, _ in pairs], len(truth.domains))
    rng = np.random.default_rng(seed)
    K = len(truth.domains)
    draws = _scattered_exponents(truth, anchor_model_size, anchor_tokens, n_draws, pairs, rel_sd=rel_sd,
                                 truth_is_centre=truth_is_centre, rng=rng)
    _match_capacity_at_anchor(truth, draws, anchor_model_size, anchor_tokens)
    _absorb_anchor_gap(truth, draws, anchor_model_size, anchor_tokens)
    broken = sorted({name for name, value in draws.items() if not np.all(np.isfinite(value) & (value > 0))})
    if broken:
        raise UsageError(f"exponent_prior: with rel_sd {({e: v.tolist() for e, v in rel_sd.items()})} some draws' "
                         f"{', '.join(broken)} are not finite and positive (an exponent so far out that its "
                         "amplitude, held fixed at the anchor, under- or overflows); give a smaller rel_sd")
    sd = truth.noise_sd if sigma is None else sigma
    return Posterior(get_law(truth.law_name), draws, truth.scaling, tuple(truth.domains),
                     sigma=np.full((n_draws, K), sd))


#: The parameters of every law :func:`exponent_prior` takes: the capacity term's (``c``,
#: ``b``, ``H``, matched at the anchor through the law ``capacity``) and the irreducible
#: losses ``E``, which take up what is left.
CAPACITY_TERM_PARAMS = ("c", "b", "H", "E")
#: The noise-reduction term's amplitude and exponent, scattered where a law has both.
NOISE_TERM_PARAMS = ("A", "a")
#: Parameters every draw keeps at the truth's: the share of a left-out domain, which no
#: loss at the anchor's uniform mixture involves.
HELD_PARAMS = ("h0",)


def _exponent_pairs(law_name: str) -> list[tuple[str, str]]:
    """The (exponent, amplitude) pairs :func:`exponent_prior` scatters for the law
    ``law_name``, by the parameters it declares: ``("b", "c")``, and ``("a", "A")``
    where it has the noise-reduction term.

    Raises
    ------
    UsageError
        For a law without the capacity term's parameters, or with parameters beyond
        :data:`CAPACITY_TERM_PARAMS` and :data:`NOISE_TERM_PARAMS` (e.g. a transfer
        matrix's, which changes the capacity term that the draws are matched on).
    """
    names = [p.name for p in get_law(law_name).params]
    missing = [n for n in CAPACITY_TERM_PARAMS if n not in names]
    if missing:
        raise UsageError(f"exponent_prior needs a capacity law truth (parameters {', '.join(CAPACITY_TERM_PARAMS)}), "
                         f"got '{law_name}' without {', '.join(missing)}")
    noise = all(n in names for n in NOISE_TERM_PARAMS)
    known = CAPACITY_TERM_PARAMS + (NOISE_TERM_PARAMS if noise else ()) + HELD_PARAMS
    extra = [n for n in names if n not in known]
    if extra:
        raise UsageError(
            f"exponent_prior cannot take a '{law_name}' truth: it moves only the parameters "
            f"{', '.join(CAPACITY_TERM_PARAMS + NOISE_TERM_PARAMS)} and matches each draw's capacity term at the "
            f"anchor through the law 'capacity'; the law's {', '.join(extra)} would change the terms held there")
    return [("b", "c")] + ([("a", "A")] if noise else [])


#: The scale on which :func:`exponent_prior` scatters an exponent, by the family of the
#: law's prior for it: (to that scale, back).
_SCATTER_LINKS = {"LogNormal": (np.log, np.exp), "LogitNormal": (special.logit, special.expit)}


def _exponent_spreads(rel_sd, exponents: list, n_domains: int) -> dict:
    """``rel_sd`` (one sd, or one per exponent, each a number or one per domain) as a
    dict of ``(K,)`` arrays over ``exponents``, checked."""
    spreads = dict(rel_sd) if isinstance(rel_sd, dict) else {e: rel_sd for e in exponents}
    unknown = sorted(set(spreads) - set(exponents))
    if unknown or set(exponents) - set(spreads):
        raise UsageError(f"rel_sd gives the exponents {', '.join(sorted(spreads))}; the law scatters "
                         f"{', '.join(exponents)}: give one sd, or one for each of them")
    out = {}
    for exponent, value in spreads.items():
        spread = np.asarray(value, dtype=float)
        if spread.ndim > 1 or spread.size not in (1, n_domains):
            raise UsageError(f"rel_sd of {exponent} must be one number or one per domain ({n_domains}), "
                             f"got {spread.size}")
        if not np.all(np.isfinite(spread)) or np.any(spread < 0):
            raise UsageError(f"rel_sd must be finite and non-negative, got {exponent}: {value}")
        out[exponent] = np.broadcast_to(spread.reshape(-1), (n_domains,)).copy()
    return out


def _scattered_exponents(truth: Truth, anchor_model_size: float, anchor_tokens: float, n_draws: int,
                         pairs: list, *, rel_sd: dict, truth_is_centre: bool, rng: np.random.Generator) -> dict:
    """``n_draws`` copies of the truth's parameters (draw 0 the truth) whose exponents
    ``b`` (and ``a``: the (exponent, amplitude) ``pairs``) scatter normally (sd
    ``rel_sd[exponent]``) on the scale of the law's prior for them (log for a
    log-normal prior, logit for a logit-normal one, so that the draws stay where the law
    is defined), each amplitude moved with its exponent so that its term is unchanged at
    the anchor."""
    K = len(truth.domains)
    n0, d0 = truth.scaling.scale_inputs(np.array([anchor_model_size]), np.array([anchor_tokens]))
    n0, d0 = float(np.ravel(n0)[0]), float(np.ravel(d0)[0])
    draws = {k: np.repeat(np.asarray(v, dtype=float)[None], n_draws, 0) for k, v in truth.params.items()}
    anchors = {"b": n0 / K, "a": d0}
    priors = get_law(truth.law_name).default_priors()
    for exponent, amplitude in pairs:
        anchor = anchors[exponent]
        spread = rel_sd[exponent]
        to_link, from_link = _SCATTER_LINKS[priors[exponent]["dist"]]
        centre = np.zeros(K) if truth_is_centre else rng.normal(0.0, spread, K)
        shift = centre + rng.normal(0.0, spread, (n_draws, K))
        shift[0] = 0.0
        new = from_link(to_link(draws[exponent]) + shift)
        # amplitude * anchor^-exponent is held fixed.
        draws[amplitude] = draws[amplitude] * anchor ** (new - draws[exponent])
        draws[exponent] = new
    return draws


def _match_capacity_at_anchor(truth: Truth, draws: dict, anchor_model_size: float, anchor_tokens: float) -> None:
    """Rescale each draw's ``c`` (in place) so that its capacity term ``c_i x_i^-b_i`` for
    the uniform mixture at the anchor is the truth's.

    The capacity split at the anchor moves with the draw's ``b`` and ``c``, so this is a
    few fixed-point steps, not one division.
    """
    K = len(truth.domains)
    n_draws = len(draws["c"])
    uniform = np.full((1, K), 1.0 / K)
    capacity, keep = get_law("capacity"), ("c", "b", "H")

    def capacity_term(params, S):
        p = {k: np.asarray(params[k], dtype=float) for k in keep}
        p["E"] = np.zeros((S, K)) if p["c"].ndim == 2 else np.zeros(K)
        if p["c"].ndim == 1:
            p = {k: v[None] for k, v in p.items()}
        return Posterior(capacity, p, truth.scaling, tuple(truth.domains)).expected_loss(
            uniform, [anchor_model_size], [anchor_tokens])[:, 0]  # (S, K)

    wanted = capacity_term(truth.params, 1)
    for _ in range(8):
        draws["c"] = draws["c"] * wanted / capacity_term(draws, n_draws)


def _absorb_anchor_gap(truth: Truth, draws: dict, anchor_model_size: float, anchor_tokens: float) -> None:
    """Move each draw's irreducible losses ``E`` (in place, floored at 1e-3) by what is left
    between its prediction and the truth's for the uniform mixture at the anchor.

    The capacity split is not exactly ``n0 / K``, so after :func:`_match_capacity_at_anchor`
    a small gap remains; taken up here, every draw predicts the truth's losses at the
    anchor exactly.
    """
    K = len(truth.domains)
    uniform = np.full((1, K), 1.0 / K)
    law = get_law(truth.law_name)
    gap = (truth.expected_loss(uniform, [anchor_model_size], [anchor_tokens])[None]
           - Posterior(law, draws, truth.scaling, tuple(truth.domains)).expected_loss(
               uniform, [anchor_model_size], [anchor_tokens]))[:, 0]  # (S, K) nats
    draws["E"] = np.maximum(draws["E"] + gap / np.asarray(truth.scaling.loss_ref), 1e-3)
