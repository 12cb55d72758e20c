"""Running the chains on while they only mix slowly (bayesmix.extension): where a fit may
stop, when more draws can help, and how an unfinished trace is cut."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bayesmix import _az
from bayesmix.errors import UsageError
from bayesmix.extension import CHECKPOINTS, checkpoints, more_draws_can_help
from bayesmix.gate import MAX_RHAT
from bayesmix.inference import FitSettings


def test_checkpoints_are_fixed_multiples_of_the_requested_draws_up_to_the_limit():
    assert checkpoints(1000, 4.0) == [1000, 1500, 2000, 3000, 4000]
    assert checkpoints(1000, 1.0) == [1000]
    assert checkpoints(1000, 2.5) == [1000, 1500, 2000, 2500]
    assert checkpoints(10, 4.0) == [10, 15, 20, 30, 40]
    assert CHECKPOINTS[0] == 1.0
    with pytest.raises(ValueError):
        checkpoints(1000, 0.5)


@pytest.mark.parametrize("diag, draws, helps", [
    ({"max_rhat": 1.03, "divergences": 0}, 1000, True),
    ({"max_rhat": 1.11, "divergences": 0}, 1000, True),         # projected to 1.0275 at 4000 draws
    ({"max_rhat": 1.13, "divergences": 0}, 1000, False),        # more than slow mixing explains
    ({"max_rhat": 1.05, "divergences": 0}, 3000, False),        # too little left to average it out
    ({"max_rhat": 1.035, "divergences": 0}, 3000, True),
    ({"max_rhat": MAX_RHAT, "divergences": 0}, 1000, False),    # the gate holds: stop
    ({"max_rhat": 1.03, "divergences": 2}, 1000, False),        # more draws do not remove divergences
    # Separated chains: judged within the groups, which will be weighted by stacking.
    ({"max_rhat": 1.6, "divergences": 0, "chain_groups": [{"chains": [0]}, {"chains": [1]}],
      "within_group_max_rhat": 1.03}, 1000, True),
    ({"max_rhat": 1.6, "divergences": 0, "chain_groups": [{"chains": [0]}, {"chains": [1]}],
      "within_group_max_rhat": 1.005}, 1000, False),             # the groups agree: stop
    ({"max_rhat": 1.6, "divergences": 0, "chain_groups": [{"chains": [0]}, {"chains": [1]}]}, 1000, False),
])
def test_only_slow_mixing_earns_more_draws(diag, draws, helps):
    assert more_draws_can_help(diag, MAX_RHAT, draws, 4000) is helps


def test_the_gate_advice_and_the_extension_share_one_projection():
    """A refusal says "modes" exactly where the default extension, run from the requested
    draws to its limit, would not have run on (one rule, in extension.py)."""
    from bayesmix.extension import DEFAULT_EXTEND, slow_mixing_explains
    from bayesmix.gate import _slow_chains_advice

    for rhat in (1.03, 1.11, 1.13, 1.5):
        says_modes = "modes" in _slow_chains_advice({"max_rhat": rhat})
        runs_on = more_draws_can_help({"max_rhat": rhat, "divergences": 0}, MAX_RHAT, 1000,
                                      int(1000 * DEFAULT_EXTEND))
        assert says_modes is (not runs_on) is (not slow_mixing_explains(rhat, MAX_RHAT, 1, DEFAULT_EXTEND))


def test_settings_take_the_target_acceptance_the_law_declares_unless_given():
    from bayesmix.laws import get_law

    law = get_law("capacity_noise")
    assert FitSettings().for_law(law).target_accept == law.target_accept
    assert FitSettings().for_law(law).retry_target_accept == FitSettings().retry_target_accept > law.target_accept
    given = FitSettings(target_accept=0.9).for_law(law)
    assert (given.target_accept, given.retry_target_accept) == (0.9, None)  # the user's: no retry at another

    class Careful(type(law)):
        target_accept = 0.8  # a law that asks for its own (the test can tell it from the default)

    assert FitSettings().for_law(Careful()).target_accept == 0.8


class _DivergingAtLowAcceptance:
    """A backend stand-in whose draws diverge below a target acceptance of 0.99."""

    def __init__(self):
        self.asked = []

    def sample(self, prepared, law, settings, progressbar):
        self.asked.append(settings.target_accept)
        diverging = np.zeros((4, 50))
        if settings.target_accept < 0.99:
            diverging[1, 7] = diverging[3, 20] = 1
        stats = {"diverging": diverging, "logp": np.zeros((4, 50))}
        return _az.from_draws({"x": np.zeros((4, 50))}, sample_stats=stats), 50


@pytest.mark.parametrize("given, asked, first", [
    (None, [0.95, 0.99], {"first_target_accept": 0.95, "first_divergences": 2}),  # the law's: sampled again
    (0.9, [0.9], {}),                                                            # the user's: kept, refused by the gate
    (0.99, [0.99], {}),                                                          # no divergence: once
])
def test_draws_that_diverge_at_the_laws_target_acceptance_are_sampled_again_higher(given, asked, first):
    from bayesmix.inference import _sample_kept_run
    from bayesmix.laws import get_law

    law = get_law("linear")
    settings = FitSettings(target_accept=given).for_law(law)
    if given is None:
        assert settings.target_accept == law.target_accept == 0.95
    backend = _DivergingAtLowAcceptance()
    idata, draws, dropped, used, retry = _sample_kept_run(backend, None, law, settings, False)
    assert backend.asked == asked
    assert retry == first
    assert used.target_accept == asked[-1] and used.retry_target_accept is None
    assert int(_az.chain_stat(idata, "diverging").sum()) == (2 if asked[-1] < 0.99 else 0)
    assert (draws, dropped) == (50, {})


def test_no_retry_where_the_setting_says_none_or_the_first_run_was_as_high():
    from bayesmix.inference import _sample_kept_run
    from bayesmix.laws import get_law

    law = get_law("linear")
    for settings in (FitSettings(retry_target_accept=None).for_law(law),
                     FitSettings(retry_target_accept=0.9).for_law(law)):
        backend = _DivergingAtLowAcceptance()
        *_, used, retry = _sample_kept_run(backend, None, law, settings, False)
        assert backend.asked == [law.target_accept] and retry == {} and used.target_accept == law.target_accept


def test_extend_draws_below_one_is_refused():
    with pytest.raises(UsageError, match="extend_draws"):
        FitSettings(extend_draws=0.5).check()
    FitSettings(extend_draws=1).check()


def test_an_unfinished_trace_is_cut_where_every_chain_has_its_draws():
    """A trace read while sampling pads the chains behind with NaN; the cut keeps each
    chain's first draws, the same whatever the other chains had reached."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 10))
    logp = rng.normal(size=(3, 10))
    logp[1, 7:] = np.nan  # chain 1 is 3 draws behind
    x[1, 7:] = np.nan
    idata = _az.from_draws({"x": x}, sample_stats={"logp": logp})
    assert _az.completed_draws(idata) == 7
    cut = _az.first_draws(idata, 5)
    np.testing.assert_array_equal(cut.posterior["x"].values, x[:, :5])
    np.testing.assert_array_equal(cut.sample_stats["logp"].values, logp[:, :5])


@pytest.mark.slow
def test_every_chain_of_a_fit_samples_at_once_unless_cores_are_given():
    """nutpie runs at most ``cores`` chains at once, each to its last draw: with fewer
    threads than chains a run that may go on (asked for 4x the draws) would draw all of
    its first chains' extra draws before its last chains began. With the default threads
    every chain has started before any has finished."""
    import nutpie
    import pymc as pm

    from bayesmix.nutpie_backend import compiled_nutpie_model, sampler_threads

    assert sampler_threads(FitSettings(chains=4), 4) == 4
    assert sampler_threads(FitSettings(chains=4, cores=1), 4) == 1
    # Long enough chains (about 1 s for the four on 2 idle cores, 20x the draws of a
    # 3000-draw run of 20 dimensions) that a thread the OS starts a few time slices late,
    # on a CI machine whose cores the other test worker shares, still starts in time.
    dim, draws = 200, 20_000
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=dim)
    snapshots = []

    def record(progress):
        snapshots.append([(chain.started, chain.finished_draws, chain.total_draws) for chain in progress])

    # nutpie refuses a start with a zero gradient (the mean, where bayesmix's compile puts it)
    compiled = dataclasses.replace(compiled_nutpie_model(model), initial_point_func=lambda seed: np.full(dim, 0.5))
    nutpie.sample(compiled, draws=draws, tune=100, chains=4, seed=1, progress_bar=False,
                  cores=sampler_threads(FitSettings(chains=4), 4), progress_callback=record, progress_rate=5)
    before_any_finished = [s for s in snapshots if all(done < total for _, done, total in s)]
    assert before_any_finished and all(started for started, _, _ in before_any_finished[-1])
