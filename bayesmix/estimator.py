"""Estimator-style Python API: ``LawModel(...).fit(table).predict(runs)``."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import numpy as np
import pandas as pd

from . import _az
from .errors import UsageError
from .fit_settings import CHECKPOINT_MODES, DEFAULT_LAW, FitSettings
from .inference import Fit, fit_law


def select_checkpoints(table, checkpoints: str):
    """The rows a fit uses: final checkpoints only (default) or all checkpoints.

    Intermediate checkpoints are not models trained to completion at that token count
    (the learning-rate schedule has not decayed) and are strongly correlated within a
    run; "final" avoids both at the price of fewer rows.
    """
    if checkpoints not in CHECKPOINT_MODES:
        raise UsageError(f"checkpoints must be one of {', '.join(CHECKPOINT_MODES)}, got '{checkpoints}'")
    return table.final_checkpoints() if checkpoints == "final" else table


@dataclass(eq=False)
class LawModel:
    """A scaling law fitted by NUTS, with posterior predictive losses.

    Parameters
    ----------
    law : str
        Registered law name (see :func:`bayesmix.laws.available_laws`).
    priors : dict, optional
        Prior overrides by parameter name.
    draws, tune, chains, seed : int
        NUTS settings (defaults: :class:`~bayesmix.fit_settings.FitSettings`'s, as are
        those of ``sampler``, ``likelihood`` and ``discrepancy``).
    sampler : str
        One of :data:`bayesmix.fit_settings.SAMPLERS`.
    likelihood : {"normal", "student_t"}
    discrepancy : {"auto", "on", "off"}
        The law's error over scale (:mod:`bayesmix.observation`); "off": law-only.
    checkpoints : {"final", "all"}
        Which checkpoints of each run enter the fit.
    allow_warnings : bool
        Keep a fit that fails the diagnostics gate instead of raising.

    Attributes
    ----------
    fit_ : Fit
    posterior_ : Posterior
    diagnostics_ : dict
    domains_ : tuple of str
    """

    # One field per argument, under its name (the scikit-learn estimator convention);
    # fitted attributes end in an underscore.
    law: str = DEFAULT_LAW
    _: KW_ONLY
    priors: dict | None = None
    draws: int = FitSettings.draws
    tune: int = FitSettings.tune
    chains: int = FitSettings.chains
    seed: int = FitSettings.seed
    sampler: str = FitSettings.sampler
    likelihood: str = FitSettings.likelihood
    discrepancy: str = FitSettings.discrepancy
    checkpoints: str = CHECKPOINT_MODES[0]
    allow_warnings: bool = False
    progressbar: bool = True

    def fit(self, table, init=None) -> "LawModel":
        """Fit the law to a :class:`~bayesmix.data.RunTable`; returns self."""
        rows = select_checkpoints(table, self.checkpoints)
        settings = FitSettings(draws=self.draws, tune=self.tune, chains=self.chains, seed=self.seed,
                               sampler=self.sampler, likelihood=self.likelihood,
                               discrepancy=self.discrepancy)
        self.fit_ = fit_law(rows, self.law, priors=self.priors, settings=settings, init=init,
                            progressbar=self.progressbar, allow_warnings=self.allow_warnings)
        self.fit_.attrs["settings"]["checkpoints"] = self.checkpoints
        self._set_fitted(self.fit_)
        return self

    @classmethod
    def from_fit(cls, fit: Fit) -> "LawModel":
        """Wrap an existing (e.g. loaded) :class:`Fit`."""
        model = cls(law=fit.law.name)
        model.fit_ = fit
        model._set_fitted(fit)
        return model

    @classmethod
    def load(cls, path) -> "LawModel":
        return cls.from_fit(Fit.load(path))

    def _set_fitted(self, fit):
        self.posterior_ = fit.posterior()
        self.diagnostics_ = fit.diagnostics
        self.domains_ = tuple(fit.domains)

    def _check_fitted(self):
        if not hasattr(self, "fit_"):
            raise UsageError("this LawModel is not fitted yet: call fit(table) first")

    def _inputs(self, runs):
        """(weights, N, D) from a RunTable, or from a DataFrame with weight_<d>, model_size, n_tokens."""
        if hasattr(runs, "weights"):
            if tuple(runs.domains) != self.domains_:
                raise UsageError(
                    f"the runs have domains {', '.join(runs.domains)} but the fit has "
                    f"{', '.join(self.domains_)}; give the same domains in the same order"
                )
            return np.asarray(runs.weights), np.asarray(runs.model_size), np.asarray(runs.tokens)
        if isinstance(runs, pd.DataFrame):
            missing = [c for c in [f"weight_{d}" for d in self.domains_] + ["model_size", "n_tokens"]
                       if c not in runs.columns]
            if missing:
                raise UsageError(f"input frame lacks columns: {', '.join(missing)}")
            w = runs[[f"weight_{d}" for d in self.domains_]].to_numpy(float)
            return w / w.sum(axis=1, keepdims=True), runs["model_size"].to_numpy(float), runs["n_tokens"].to_numpy(float)
        raise UsageError("predict takes a RunTable or a DataFrame")

    def predict(self, runs, *, seed=0) -> pd.DataFrame:
        """Posterior predictive summary per row: ``pred_<d>``, ``sd_<d>``, ``q05_<d>``, ``q95_<d>``.

        ``pred_<d>`` is the posterior mean of the expected loss; ``sd``/``q05``/``q95``
        describe the loss a new run would log (observation noise and run offset included).
        """
        self._check_fitted()
        weights, N, D = self._inputs(runs)
        return prediction_frame(self.posterior_, weights, N, D, seed=seed)

    def predict_draws(self, runs, *, noise=False, seed=0):
        """Loss draws as an xarray DataArray with dims (draw, row, domain)."""
        self._check_fitted()
        weights, N, D = self._inputs(runs)
        mu = self.posterior_.expected_loss(weights, N, D)
        values = self.posterior_.add_noise(mu, seed=seed) if noise else mu
        return _az.draws_dataarray(values, self.posterior_.target_domains)


def prediction_frame(posterior, weights, model_size, tokens, *, seed=0) -> pd.DataFrame:
    """The prediction columns of ``bayesmix predict`` for any object with ``summarise``:
    ``pred_/sd_/q05_/q95_<d>`` for every target domain (the mixture's, then the
    evaluation-only ones the posterior predicts)."""
    return summary_frame(posterior, posterior.summarise(weights, model_size, tokens, seed=seed))


def summary_frame(posterior, summary: dict) -> pd.DataFrame:
    """:func:`prediction_frame`'s columns from a ``summary`` of ``posterior.summarise``."""
    columns = {}
    for key in ("pred", "sd", "q05", "q95"):
        values = summary["mean" if key == "pred" else key]
        for j, domain in enumerate(posterior.target_domains):
            columns[f"{key}_{domain}"] = values[:, j]
    return pd.DataFrame(columns)
