"""The test tiers: every test that runs NUTS is marked ``slow`` (issue 19).

tests/conftest.py replaces the samplers bayesmix calls while an unmarked test runs; these
tests check that the guard is in place and that bayesmix has no other way to sample.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import SAMPLERS

PACKAGE = Path(__file__).resolve().parents[1] / "bayesmix"
# Libraries whose functions run MCMC; a call into one of them that draws must be guarded.
MCMC_LIBRARIES = {"pymc", "nutpie", "numpyro", "blackjax"}
DRAWS_NOT_MCMC = {"sample_prior_predictive", "sample_posterior_predictive", "compile_pymc_model"}


@pytest.mark.parametrize("module_name, attr", SAMPLERS)
def test_an_unmarked_test_that_samples_fails_at_once(module_name, attr):
    import importlib

    sampler = getattr(importlib.import_module(module_name), attr)
    with pytest.raises(pytest.fail.Exception, match="is not marked slow"):
        sampler()  # the guard fails before looking at its arguments
    # BaseException: a fold's `except Exception` in a comparison does not swallow it
    assert not issubclass(pytest.fail.Exception, Exception)


def _samples(name: str) -> bool:
    return "sample" in name.lower() or name in ("MCMC", "NUTS")


def _sampler_uses(path: Path):
    """``(line, "library.name")`` for each use of a sampler library's sampling function in
    ``path`` through a module alias, ``(line, "from library import name")`` for each such
    name imported (bound at import: the guard cannot replace it)."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = {}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in MCMC_LIBRARIES:
            # bound at import, before the guard replaces the library's function
            uses.extend((node.lineno, f"from {node.module} import {alias.name}") for alias in node.names
                        if _samples(alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _samples(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):  # numpyro.infer.MCMC: from the module alias
                root = root.value
            library = aliases.get(root.id, "") if isinstance(root, ast.Name) else ""
            if library.split(".")[0] in MCMC_LIBRARIES:
                uses.append((node.lineno, f"{library}.{node.attr}"))
    return uses


def test_bayesmix_samples_only_through_the_guarded_samplers():
    """A new sampler call (another backend, a name imported from pymc) would escape the
    guard in tests/conftest.py: guard it there, then list it in SAMPLERS."""
    guarded = {f"{module}.{attr}" for module, attr in SAMPLERS}
    found = {(str(path.relative_to(PACKAGE.parent)), line, name)
             for path in sorted(PACKAGE.rglob("*.py")) for line, name in _sampler_uses(path)}
    allowed = guarded | {f"{library}.{name}" for library in ("pymc", "nutpie") for name in DRAWS_NOT_MCMC}
    unguarded = sorted(use for use in found if use[2] not in allowed)
    assert unguarded == []
    assert {name for _, _, name in found} >= guarded  # the rule sees bayesmix's own calls
