"""The settings of one fit and the choices they take, in a module that imports no PyMC.

:class:`FitSettings` is used by :func:`bayesmix.inference.fit_law` (which re-exports it);
the command line reads its defaults and the choices below when it builds ``--help``,
which must stay fast, so nothing here imports PyMC, PyTensor, ArviZ or pandas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import extension, samplers
from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from .laws import Law

#: NUTS backends :func:`bayesmix.inference.fit_law` can sample with (numpyro needs the
#: optional jax and numpyro packages): the names of :data:`bayesmix.samplers.BACKENDS`.
SAMPLERS = samplers.SAMPLERS
#: Observation models on log-loss (:mod:`bayesmix.observation`).
LIKELIHOODS = ("normal", "student_t")
#: Values of the observation model's switches (discrepancy, run and mixture effects).
SWITCHES = ("auto", "on", "off")
#: What the discrepancy over scale multiplies (:attr:`FitSettings.discrepancy_scale`).
DISCREPANCY_SCALES = ("log", "reducible")
#: nutpie's mass matrices (:attr:`FitSettings.mass_matrix`).
MASS_MATRICES = ("auto", "low_rank", "diag")
#: Largest :attr:`FitSettings.max_tree_depth` accepted: 2**20 leapfrog steps a draw is
#: already far past any posterior NUTS can sample in reasonable time.
MAX_TREE_DEPTH_LIMIT = 20
#: The law fitted when none is named (a registered name, :func:`bayesmix.laws.available_laws`).
DEFAULT_LAW = "capacity_noise"
#: The NUTS target acceptance a fit samples again at when the draws it kept diverged and
#: it had sampled at the law's own, lower one (:attr:`FitSettings.retry_target_accept`).
RETRY_TARGET_ACCEPT = 0.99
#: Which checkpoints of each run enter a fit (:func:`bayesmix.estimator.select_checkpoints`):
#: each run's final one, or all of them with a per-run offset.
CHECKPOINT_MODES = ("final", "all")


@dataclass
class FitSettings:
    """Sampler settings recorded with every fit."""

    draws: int = 1000
    #: Tuning iterations of the kept run (nutpie's own default for its low-rank mass
    #: matrix). The kept run starts at pilot draws in the main mode, so it needs no long
    #: approach. Measured with default settings, seeds 0-2 on SlimPajama 7, Pile 4 and
    #: Pile 17 (2026-12-05): all nine pass the gate with no divergence at 800 as at 1000,
    #: bulk ESS 417-914 against 349-967, 1033 s of wall time in all against 1210 s.
    tune: int = 800
    chains: int = 4
    seed: int = 0
    #: One of :data:`SAMPLERS` (:mod:`bayesmix.samplers`).
    sampler: str = samplers.DEFAULT_SAMPLER
    #: NUTS target acceptance; None: the law's (:attr:`bayesmix.laws.Law.target_accept`).
    target_accept: float | None = None
    #: Where ``target_accept`` is left to the law: a run whose kept draws diverged is
    #: sampled again from the same starts at this target acceptance, if it is higher
    #: (smaller steps, for the few posteriors with a funnel); None: never. A fit given a
    #: ``target_accept`` samples at it only. Most fits do not diverge at the laws' 0.95
    #: and pay a half to a quarter of the gradients per draw they would at 0.99 (the
    #: README's "Sampled again only where it diverges": 7 of the 9 default fits on the
    #: shared tables did not diverge at 0.95).
    retry_target_accept: float | None = RETRY_TARGET_ACCEPT
    likelihood: str = "normal"
    run_effect: str = "auto"
    #: The law's error over scale (:mod:`bayesmix.observation`): "auto" wherever the
    #: table has more than one scale, "off" for the law-only model of the paper.
    discrepancy: str = "auto"
    #: A mixture's effect shared by its runs at every scale: "auto" with the discrepancy
    #: where a mixture was run at several scales.
    mixture_effect: str = "auto"
    #: Where the discrepancy's linear part acts (:data:`bayesmix.observation.SLOPE_REGIONS`):
    #: "all": fitted with the law at every scale; "outside": beyond the fitted scales only,
    #: from its prior; "auto": "all" where the design runs most mixtures at several values
    #: of every scale feature (:func:`bayesmix.observation.paired_features`), else "outside".
    slope_region: str = "auto"
    #: What the discrepancy over scale multiplies (:data:`DISCREPANCY_SCALES`): "log", the
    #: whole loss (an offset to the log-loss); "reducible", the law's mean less its
    #: irreducible loss (:attr:`bayesmix.laws.Law.irreducible_loss`), so that its
    #: continuation beyond the fitted scales flattens as the law does. "log" by evidence:
    #: on SlimPajama the reducible form covered 62% (fit <= 310M) and 83% (<= 680M)
    #: against 98% and 88%; it covers simulated truths of other laws far better (see
    #: :mod:`bayesmix.observation.reducible`).
    discrepancy_scale: str = "log"
    map_starts: int = 4
    #: nutpie: sampler threads, None: one per chain (every chain samples at once, see
    #: :func:`bayesmix.nutpie_backend.sampler_threads`); PyMC: processes, None: up to 2.
    cores: int | None = None
    coordinates: str = "auto"
    #: nutpie only: "on" samples in Laplace-whitened coordinates (preconditioned_model),
    #: "auto" where the law asks for it (Law.whitened_sampling), "off" never.
    precondition: str = "auto"
    #: nutpie only: its mass matrix, "low_rank" (diagonal modified by the posterior's
    #: strongest correlations), "diag", or "auto": the law's
    #: (:attr:`bayesmix.laws.Law.mass_matrix`).
    mass_matrix: str = "auto"
    #: nutpie only: largest NUTS tree depth (at most ``2**depth - 1`` leapfrog steps a
    #: draw); None: the law's (:attr:`bayesmix.laws.Law.max_tree_depth`). The pilot keeps
    #: its own (:data:`bayesmix.pilot.PILOT_MAXDEPTH`).
    max_tree_depth: int | None = None
    #: nutpie, several chains, no warm start: a short pilot run first, and chains that
    #: it finds in a minor mode start the kept run in the main one (:mod:`bayesmix.pilot`).
    pilot: bool = True
    #: nutpie: most draws per chain, as a multiple of ``draws``, that a fit whose chains
    #: only mix slowly runs on to (:mod:`bayesmix.extension`); 1 keeps exactly ``draws``.
    extend_draws: float = extension.DEFAULT_EXTEND

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def for_law(self, law: Law) -> "FitSettings":
        """These settings with what they leave to the law filled in from ``law``: the
        target acceptance (:attr:`bayesmix.laws.Law.target_accept`) where it is None,
        where it is given no retry at another (``retry_target_accept`` None); the
        mass matrix (:attr:`bayesmix.laws.Law.mass_matrix`) where it is "auto"; and the
        largest tree depth (:attr:`bayesmix.laws.Law.max_tree_depth`) where it is None."""
        settings = self
        if self.mass_matrix == "auto":
            settings = dataclasses.replace(settings, mass_matrix=law.mass_matrix)
        if self.max_tree_depth is None:
            settings = dataclasses.replace(settings, max_tree_depth=law.max_tree_depth)
        if self.target_accept is not None:
            return dataclasses.replace(settings, retry_target_accept=None)
        return dataclasses.replace(settings, target_accept=law.target_accept)

    def check(self) -> None:
        """Refuse counts a fit cannot run or judge.

        Raises
        ------
        UsageError
            Unless ``draws >= 1``, ``tune >= 0`` and ``chains >= 2`` (integers): R-hat,
            and so the diagnostics gate, needs two chains; ``extend_draws >= 1``;
            ``mass_matrix`` one of :data:`MASS_MATRICES`; and ``max_tree_depth`` None or
            an integer from 1 to :data:`MAX_TREE_DEPTH_LIMIT`.
        """
        for name, least in (("draws", 1), ("tune", 0), ("chains", 2)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < least:
                why = ": the diagnostics gate compares chains (R-hat)" if name == "chains" else ""
                raise UsageError(f"{name} must be an integer of at least {least}, got {value}{why}")
        if self.mass_matrix not in MASS_MATRICES:
            raise UsageError(f"mass_matrix must be one of {', '.join(MASS_MATRICES)}, got '{self.mass_matrix}'")
        depth = self.max_tree_depth
        if depth is not None and not (isinstance(depth, (int, np.integer)) and 1 <= depth <= MAX_TREE_DEPTH_LIMIT):
            raise UsageError(f"max_tree_depth must be an integer from 1 to {MAX_TREE_DEPTH_LIMIT}, got {depth}")
        if not (isinstance(self.extend_draws, (int, float, np.integer, np.floating)) and self.extend_draws >= 1):
            raise UsageError(f"extend_draws must be a number of at least 1 (1: no extension), got {self.extend_draws}")
