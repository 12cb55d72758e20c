"""Where a fit's chains start (bayesmix.starts): the MAP search of a whitened nutpie fit
searches the model's own log density, in the order of its value variables."""

from __future__ import annotations

import numpy as np
import pytest

from bayesmix.data import load_runs
from bayesmix.inference import FitSettings, build_model, modelled_table
from bayesmix.laws import get_law
from bayesmix.nutpie_backend import compile_for_nutpie, raveled, value_order_logp_dlogp, whitened_order
from bayesmix.starts import find_map

pytest.importorskip("nutpie")


@pytest.fixture(scope="module")
def whitened_pile4(shared_data):
    """The default model of Pile 4's final checkpoints (a discrepancy, so standard-normal
    latents sit between the law's parameters and the noise scales) and its whitened
    nutpie compile, at mean 0 and chol I as the MAP search sees it."""
    law = get_law("capacity_noise")
    table = modelled_table(law, load_runs(shared_data / "pile4" / "runs.csv").final_checkpoints())
    model, _ = build_model(law, table)
    settings = FitSettings().for_law(law)
    compiled, precondition = compile_for_nutpie(law, model, settings)
    return model, compiled, precondition


def test_the_whitened_coordinates_are_not_the_value_variables_order(whitened_pile4):
    """The case the next tests are about: a plain reading of the whitened model's
    coordinates in the value variables' order would scramble them."""
    model, _, precondition = whitened_pile4
    order, _ = whitened_order(model)
    assert precondition
    assert not np.array_equal(order, np.arange(len(order)))


def test_the_map_search_sees_the_model_s_log_density_and_gradient(whitened_pile4):
    model, compiled, precondition = whitened_pile4
    logp_dlogp = value_order_logp_dlogp(compiled, model, precondition)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    rng = np.random.default_rng(0)
    for _ in range(3):
        point = {k: v + rng.normal(0.0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
        value, grad = logp_dlogp(raveled(model, point))
        np.testing.assert_allclose(value, logp(point), rtol=1e-9)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-6, atol=1e-8)


def test_the_map_point_has_the_log_density_the_search_reports(whitened_pile4):
    """Before, the search read the whitened model's coordinates as if in the value
    variables' order: it reported 775.5 on Pile 4 and returned a point whose log density
    was -3713.9, where every chain then started."""
    model, compiled, precondition = whitened_pile4
    point, best = find_map(model, starts=1, seed=0, logp_dlogp=value_order_logp_dlogp(compiled, model, precondition))
    np.testing.assert_allclose(model.compile_logp()(point), best, rtol=1e-9)
    # And it is an optimum of the model: no coordinate's gradient is large.
    assert np.max(np.abs(model.compile_dlogp()(point))) < 1.0
