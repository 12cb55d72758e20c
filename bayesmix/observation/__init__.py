"""The observation model: how observed losses scatter around a law's mean, written once.

For run ``r`` (mixture ``m(r)``, scale ``s_r = (log n_r[, log d_r])``) and domain ``k``::

    log L_rk = log g(mu_k(h_r, N_r, D_r; theta), delta_k(s_r)) + eta_(m(r), k) + u_r + eps_rk

where ``g(mu, delta) = mu exp(delta)`` (the default: ``delta`` an offset to the log-loss)
or, on request, ``g(mu, delta) = E_k + (mu - E_k) exp(delta)``, which scales the law's
reducible loss (``E_k`` its irreducible loss, :attr:`bayesmix.laws.Law.irreducible_loss`;
:attr:`ObservationDesign.discrepancy_scale`, :func:`discrepant_log_mean`, where the
evidence for the default is).

* ``delta_k(s)`` -- the **discrepancy**: the law's own error as a smooth function of
  scale, per domain. A linear part ``beta_k . e(s)`` (slopes partially pooled across
  domains; their spread learned, except where every fitted feature goes through two
  values only, where it is held at its prior's root mean square:
  :attr:`ObservationDesign.learns_slope_spread`)
  plus a Gaussian process with a squared-exponential kernel of fixed length scale
  (:data:`DISCREPANCY_LENGTHSCALE` e-folds) and one amplitude shared by the domains,
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
  values), else they act outside; and they act outside along a feature where the law's
  own log-mean has a free linear trend (:attr:`bayesmix.laws.Law.log_linear_trends`: the
  linear law), which would otherwise explain the same thing. A feature constant at the
  fitted scales while the other varies (one model size at several token counts, or
  several sizes at one token count) is a feature too, its slopes acting beyond that value
  only: asked about another value, the law's error along it then has the prior's spread
  rather than none (:meth:`ObservationDesign.from_table`). The discrepancy is evaluated at the table's distinct scales
  only, so it stays a small multivariate normal (non-centred: ``L w`` with ``L`` the
  kernel's Cholesky factor, computed once from the design). At a new scale the smooth part
  is drawn from its conditional (kriging) distribution given its values at the fitted
  scales, and the slopes carry on; fitted slopes may bend beyond the fitted scales, by a
  change of sd ``amp / lengthscale`` per e-fold and a drift whose sd grows by
  ``SLOPE_DRIFT |slope|`` per e-fold (:meth:`ObservationDraws._bend`): a large fitted
  slope marks a law that is wrong along that feature, whose error then need not go on
  in a straight line. The
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
wherever the table has several checkpoints per run. Every layer uses this package: the PyMC model
(:func:`add_likelihood`), the stored pointwise log-likelihood and PSIS-LOO
(:func:`cell_logpdf`), held-out scoring and acquisition (:func:`grouped_loglik`) and the
posterior predictive (:class:`ObservationDraws`).

Modules, one job each:

* :mod:`.design` -- which terms a table's model has, and the table's indices for them;
* :mod:`.variables` -- the observation model's priors and which of its variables are
  recorded, latent or gated;
* :mod:`.likelihood` -- the terms in the PyMC model;
* :mod:`.mixture_effects` -- the mixture effect's closed forms (integrated out,
  conditional draws, centring within blocks);
* :mod:`.densities` -- the log density of observed cells, per cell and per group;
* :mod:`.draws` -- the posterior predictive: the discrepancy and effects at any scale and
  mixture, and a new run's noise;
* :mod:`.reducible` -- how the discrepancy enters the law's mean, for NumPy and PyTensor.

What enters where: ``Posterior.expected_loss`` is ``g(mu, delta)`` times
``exp(eta_known)`` (the discrepancy at the asked scale and the effect of a mixture seen in
the fit; :func:`expected_log_loss`), so ``predict``'s means, ``recommend``'s risk measures and acquisition's
simulated outcomes all include the law's error at the target scale; ``add_noise`` adds a
new run's offset, a new mixture's effect and the cell noise (``predict`` intervals and
acquisition outcomes). ``discrepancy="off"`` gives the law-only model of the paper.
"""

from .densities import QUADRATURE_NODES, cell_logpdf, group_sum, grouped_loglik
from .design import (DISCREPANCY_LENGTHSCALE, DISCREPANCY_SCALES, KERNEL_JITTER, LIKELIHOODS, MIXTURE_DECIMALS,
                     PAIRED_SHARE, SLOPE_REGIONS, SWITCHES, ObservationDesign, mixture_keys, paired_features,
                     row_scale_index, scale_features, se_kernel)
from .draws import ObservationDraws, add_noise, cell_sd, expected_log_loss
from .likelihood import add_likelihood
from .mixture_effects import (block_average, centre_within_blocks, conditional_mixture_effects,
                              mixture_effect_conditional, mixture_marginal_logp)
from .reducible import discrepant_log_mean
from .variables import CENTRED_LOG_JACOBIAN, GATED, LATENT, OBSERVATION_PRIORS, RECORDED

__all__ = [
    "CENTRED_LOG_JACOBIAN", "DISCREPANCY_LENGTHSCALE", "DISCREPANCY_SCALES", "GATED", "KERNEL_JITTER", "LATENT",
    "LIKELIHOODS",
    "MIXTURE_DECIMALS", "OBSERVATION_PRIORS", "PAIRED_SHARE", "QUADRATURE_NODES", "RECORDED", "SLOPE_REGIONS",
    "SWITCHES", "ObservationDesign", "ObservationDraws", "add_likelihood", "add_noise", "block_average",
    "cell_logpdf", "cell_sd", "centre_within_blocks", "conditional_mixture_effects", "discrepant_log_mean",
    "expected_log_loss", "group_sum", "grouped_loglik", "mixture_effect_conditional", "mixture_keys",
    "mixture_marginal_logp", "paired_features", "row_scale_index", "scale_features", "se_kernel",
]
