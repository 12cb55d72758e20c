"""The observation model's variables: their priors, and which are recorded with a fit,
latent (standard normal, non-centred) or checked by the diagnostics gate."""

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

#: Variables of the observation model recorded with every fit, when in the model.
RECORDED = ("sigma", "nu", "run_sd", "disc_slope_mean", "disc_slope_sd", "disc_slope", "disc_slope_z", "disc_amp",
            "disc_white", "mix_sd", "mix_z")
#: The observation model's standard-normal latent variables (non-centred): many, each
#: a priori N(0, 1); the sampler's whitening leaves them out of its dense block.
LATENT = ("run_z", "mix_z", "disc_white")
#: Deterministic of a model whose variables include centred hierarchical ones (``x ~
#: N(mu, s)`` with ``s`` a variable): the sum of ``log s`` over their elements. Added to a
#: draw's log density it gives the density in coordinates where they are standardised,
#: ``z = (x - mu) / s`` (:func:`bayesmix.gate.chain_logp`): there a funnel's neck is as
#: wide as its mouth, so its density no longer outbids a mode with far more mass.
CENTRED_LOG_JACOBIAN = "centred_log_jacobian"
#: Hyperparameters checked by the diagnostics gate beside the law's parameters.
GATED = ("sigma", "nu", "run_sd", "disc_slope_mean", "disc_slope_sd", "disc_amp", "mix_sd")
