"""The NUTS backends a fit samples with: one small object per backend, looked up by name.

:func:`bayesmix.inference.fit_law` runs every backend through the same steps:
:meth:`Backend.check` (before the model is built), :meth:`Backend.prepare` (e.g. compile
the model), :meth:`Backend.start` (where the chains start) and :meth:`Backend.sample`
(the draws and the draws per chain). The backends' choices (:data:`SAMPLERS`) are read
when the command line builds ``--help``, which must stay fast: this module imports no
PyMC, nutpie or JAX until a backend prepares or samples a model.

The nutpie backend's own logic (compiling, whitening, dispersed starts, the pilot,
sampling on while the chains mix slowly) lives in :mod:`bayesmix.nutpie_backend`; its
object here only wires it.
"""

from __future__ import annotations

import importlib
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from .fit_settings import FitSettings
    from .laws import Law


@dataclass
class Prepared:
    """What a backend carries from the model to its draws.

    Attributes
    ----------
    model : pm.Model
        The model the fit samples.
    compiled : object
        The backend's compiled model (nutpie's), or None.
    precondition : bool
        Whether ``compiled`` samples in whitened coordinates (nutpie).
    start : dict
        Initial values of the model's free variables (set by :meth:`Backend.start`).
    timing : dict
        Seconds spent on the steps before sampling (``compile_seconds``, ``map_seconds``).
    pilot : dict
        The pilot run's diagnostics and ``pilot_seconds`` (nutpie), or empty.
    choices : dict
        What the backend chose for this model, recorded with the diagnostics (nutpie:
        ``mass_matrix``, ``sampler_coordinates`` and ``max_tree_depth``), or empty.
    """

    model: object
    compiled: object = None
    precondition: bool = False
    start: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    pilot: dict = field(default_factory=dict)
    choices: dict = field(default_factory=dict)


class Backend:
    """A NUTS backend; a subclass names it and gives its draws (:meth:`draw`).

    Attributes
    ----------
    name : str
        The name ``FitSettings.sampler`` and ``--sampler`` take.
    packages : tuple of str
        Modules it imports beyond PyMC (:meth:`available`).
    missing : str
        What :meth:`require` says when one of them is not installed.
    """

    name = ""
    packages: tuple = ()
    missing = ""

    def available(self) -> bool:
        """Whether the packages this backend needs import."""
        try:
            for package in self.packages:
                importlib.import_module(package)
        except ImportError:
            return False
        return True

    def require(self) -> None:
        """Raise :class:`UsageError` (saying how to install them) unless :meth:`available`."""
        if not self.available():
            raise UsageError(self.missing)

    def check(self, settings: FitSettings) -> None:
        """Refuse, before the model is built, a fit this backend cannot run (default: none)."""

    def prepare(self, law: Law, model, settings: FitSettings) -> Prepared:
        """The backend's form of ``model`` (default: the model as it is)."""
        return Prepared(model)

    def start(self, prepared: Prepared, law: Law, init: dict | None, settings: FitSettings,
              progressbar: bool) -> Prepared:
        """``prepared`` with the chains' starts: the best MAP point, or ``init`` (a warm
        start, :func:`bayesmix.starts.starting_point`); ``timing["map_seconds"]`` set."""
        from .starts import starting_point

        t0 = time.perf_counter()
        _, prepared.start = starting_point(law, prepared.model, None, init, settings)
        prepared.timing["map_seconds"] = time.perf_counter() - t0
        return prepared

    def sample(self, prepared: Prepared, law: Law, settings: FitSettings, progressbar: bool):
        """The draws of ``prepared.model`` (an ArviZ tree) and the draws per chain."""
        import numpy as np

        rng = np.random.default_rng(settings.seed)
        sample_kwargs = dict(
            draws=settings.draws, tune=settings.tune, chains=settings.chains,
            random_seed=int(rng.integers(2**31)), progressbar=progressbar,
            target_accept=settings.target_accept, compute_convergence_checks=False,
        )
        with prepared.model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=RuntimeWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            return self.draw(prepared, law, settings, sample_kwargs)

    def draw(self, prepared: Prepared, law: Law, settings: FitSettings, sample_kwargs: dict):
        """:meth:`sample` inside the model's context with the common keyword arguments."""
        raise NotImplementedError


class PymcBackend(Backend):
    """PyMC's NUTS, every chain started at the same point."""

    name = "pymc"

    def draw(self, prepared, law, settings, sample_kwargs):
        import pymc as pm

        # Chains start at the best MAP point; jitter of +-1 in unconstrained space can
        # throw a chain far into the tails, where these laws' densities are not finite.
        initvals = [dict(prepared.start) for _ in range(settings.chains)]
        return pm.sample(initvals=initvals, init="adapt_diag", cores=settings.cores or min(settings.chains, 2),
                         **sample_kwargs), settings.draws


class NutpieBackend(Backend):
    """nutpie's NUTS (:mod:`bayesmix.nutpie_backend`): the model compiled once per law
    and process, whitened where the law asks for it, chains started dispersed around the
    MAP point (after a pilot that moves chains out of minor modes), and sampling that
    runs on while the chains only mix slowly."""

    name = "nutpie"
    packages = ("nutpie",)
    missing = "the nutpie sampler is not installed: pip install nutpie, or use --sampler pymc"

    def prepare(self, law, model, settings):
        from .nutpie_backend import compile_for_nutpie, mass_matrix, max_tree_depth

        t_compile = time.perf_counter()
        self.require()
        compiled, precondition = compile_for_nutpie(law, model, settings)
        return Prepared(model, compiled, precondition, timing={"compile_seconds": time.perf_counter() - t_compile},
                        choices={"mass_matrix": mass_matrix(settings), "sampler_coordinates": int(compiled.n_dim),
                                 "max_tree_depth": max_tree_depth(settings)})

    def start(self, prepared, law, init, settings, progressbar):
        from .blas import one_blas_thread
        from .nutpie_backend import nutpie_starts, probe_position, run_pilot, value_order_logp_dlogp, whitened_order
        from .starts import starting_point

        t0 = time.perf_counter()
        model = prepared.model
        logp_dlogp = value_order_logp_dlogp(prepared.compiled, model, prepared.precondition)
        point, prepared.start = starting_point(law, model, logp_dlogp, init, settings)
        with one_blas_thread():
            prepared.compiled = nutpie_starts(prepared.compiled, model, point, prepared.precondition, settings.seed)
        prepared.timing["map_seconds"] = time.perf_counter() - t0
        if settings.pilot and init is None and settings.chains > 1:
            block = whitened_order(model)[1] if prepared.precondition else None
            probe = probe_position(model, law.mode_probe) if prepared.precondition else None
            prepared.compiled, report = run_pilot(prepared.compiled, settings, progressbar, whitened_block=block,
                                                  probe=probe)
            prepared.pilot = {**report.to_diagnostics(),
                              "pilot_seconds": time.perf_counter() - t0 - prepared.timing["map_seconds"]}
        return prepared

    def draw(self, prepared, law, settings, sample_kwargs):
        from . import _az
        from .nutpie_backend import PRECOND_Z, sample_nutpie_until_mixed

        idata, draws = sample_nutpie_until_mixed(prepared.compiled, settings, sample_kwargs, law)
        if prepared.precondition:
            _az.drop_posterior_vars(idata, [PRECOND_Z])
        return idata, draws


class NumpyroBackend(Backend):
    """NumPyro's NUTS through PyMC (JAX-compiled; the optional ``numpyro`` extra)."""

    name = "numpyro"
    packages = ("jax", "numpyro")
    missing = ("the numpyro sampler needs jax and numpyro: pip install 'bayesmix[numpyro]' "
               "(or pip install numpyro jax), or use --sampler nutpie")

    def require(self) -> None:
        """As :meth:`Backend.require`, then teach JAX the laws' own Ops."""
        super().require()
        from .laws import register_jax_conversions

        register_jax_conversions()

    def check(self, settings):
        self.require()

    def draw(self, prepared, law, settings, sample_kwargs):
        import pymc as pm

        initvals = [dict(prepared.start) for _ in range(settings.chains)]
        return pm.sample(nuts_sampler=self.name, initvals=initvals, **sample_kwargs), settings.draws


#: The backends by name, in the order the command line lists them.
BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (PymcBackend(), NutpieBackend(),
                                                                      NumpyroBackend())}
#: The names :func:`backend` takes (``FitSettings.sampler``, ``--sampler``).
SAMPLERS = tuple(BACKENDS)
#: The backend a fit samples with unless told otherwise.
DEFAULT_SAMPLER = NutpieBackend.name


def backend(name: str) -> Backend:
    """The backend called ``name``.

    Raises
    ------
    UsageError
        For a name no backend has (the message lists the choices).
    """
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise UsageError(f"sampler must be one of {', '.join(SAMPLERS)}, got '{name}'") from None
