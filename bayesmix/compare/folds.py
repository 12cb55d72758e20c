"""Cross-validation schemes and their folds: runs (never rows) left out, grouped by run,
by mixture, or forward over model size."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import UsageError


@dataclass(frozen=True)
class CVScheme:
    """A cross-validation scheme: ``loo``, ``kfold`` or ``mixture`` (with ``k``), or ``scale``."""

    kind: str
    k: int | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.k}" if self.kind in ("kfold", "mixture") else self.kind


def parse_cv(text) -> CVScheme:
    """Parse ``'loo'``, ``'kfold:K'``, ``'mixture:K'`` (leave mixtures out: every run of a
    mixture, at every scale, in one fold) or ``'scale'``.

    Raises
    ------
    UsageError
        For anything else.
    """
    if isinstance(text, CVScheme):
        return text
    value = str(text).strip().lower()
    if value in ("loo", "scale"):
        return CVScheme(value)
    for kind in ("kfold", "mixture"):
        if not value.startswith(kind):
            continue
        _, sep, k = value.partition(":")
        try:
            k = int(k) if sep else 5
        except ValueError:
            raise UsageError(f"cannot read --cv '{text}': write {kind}:K with an integer K, e.g. {kind}:5") from None
        if k < 2:
            raise UsageError(f"--cv {kind}:{k}: K must be at least 2")
        return CVScheme(kind, k)
    raise UsageError(f"unknown --cv '{text}': use loo, kfold:K (e.g. kfold:5), mixture:K or scale")


@dataclass(frozen=True)
class Fold:
    """One split of the runs: fit on ``train_runs``, score ``test_runs``."""

    index: int
    label: str
    train_runs: tuple
    test_runs: tuple

    def to_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "train_runs": list(self.train_runs),
                "test_runs": list(self.test_runs)}


def runs_in_order(table) -> np.ndarray:
    return np.asarray(pd.unique(np.asarray(table.run_ids, dtype=object)), dtype=object)


def _kfold_by_group(runs: np.ndarray, group_of_run: dict, k: int, seed: int, label: str) -> list[Fold]:
    """Deal the groups of ``runs`` (in order of first appearance), shuffled with ``seed``,
    into ``k`` folds of near-equal size; a fold tests every run of its groups."""
    groups = np.asarray(pd.unique(np.array([group_of_run[r] for r in runs], dtype=object)), dtype=object)
    order = np.random.default_rng(seed).permutation(len(groups))
    folds = []
    for index, part in enumerate(np.array_split(order, k)):
        held = set(groups[part])
        folds.append(Fold(index, f"{label} {index + 1}/{k}",
                          tuple(r for r in runs if group_of_run[r] not in held),
                          tuple(r for r in runs if group_of_run[r] in held)))
    return folds


def grouped_kfold(table, k: int, seed: int = 0) -> list[Fold]:
    """Split the runs of ``table`` into ``k`` folds (a run is never split).

    Runs are shuffled with ``seed`` and dealt into ``k`` folds of near-equal size.
    """
    runs = runs_in_order(table)
    if k > len(runs):
        raise UsageError(f"--cv kfold:{k} needs at least {k} runs, the table has {len(runs)}; use a smaller K or loo")
    return _kfold_by_group(runs, {r: r for r in runs}, k, seed, "fold")


def mixture_kfold(table, k: int, seed: int = 0) -> list[Fold]:
    """Split the mixtures of ``table`` into ``k`` folds; every run of a mixture, at every
    scale, is in its mixture's fold (a held-out mixture is new to the fit, as a mixture
    a user asks about is)."""
    from ..observation import mixture_keys

    runs = runs_in_order(table)
    run_ids = np.asarray(table.run_ids, dtype=object)
    keys = mixture_keys(table.weights)
    key_of_run = {r: keys[np.argmax(run_ids == r)] for r in runs}
    if k > len(set(key_of_run.values())):
        raise UsageError(f"--cv mixture:{k} needs at least {k} mixtures, the table has {len(set(key_of_run.values()))}")
    return _kfold_by_group(runs, key_of_run, k, seed, "mixtures")


def _size_groups(table) -> tuple[np.ndarray, np.ndarray]:
    """Distinct model sizes (rounded to a parameter, as ``Law.check_table``) and each row's size."""
    rounded = np.round(np.asarray(table.model_size, dtype=float), 0)
    return np.unique(rounded), rounded


def scale_folds(table) -> list[Fold]:
    """Forward chaining over model size.

    Fold ``j`` fits on the runs of the ``j`` smallest model sizes and scores the runs of
    the next larger size; the runs of the smallest size are never scored.
    """
    sizes, rounded = _size_groups(table)
    if len(sizes) < 2:
        raise UsageError(
            f"--cv scale needs runs at two or more model sizes; the table has one ({sizes[0]:.4g}); "
            "use --cv kfold:K or loo"
        )
    from ..units import format_quantity

    run_ids = np.asarray(table.run_ids, dtype=object)
    folds = []
    for j in range(1, len(sizes)):
        train = _unique(run_ids[rounded <= sizes[j - 1]])
        test = _unique(run_ids[np.isclose(rounded, sizes[j])])
        label = f"<= {format_quantity(sizes[j - 1])} -> {format_quantity(sizes[j])}"
        folds.append(Fold(j - 1, label, tuple(train), tuple(test)))
    return folds


def _unique(values) -> list:
    return list(pd.unique(np.asarray(values, dtype=object)))


def make_folds(table, cv, seed: int = 0) -> list[Fold]:
    """The folds of a scheme (``loo``: one fold per run, each left out once)."""
    scheme = parse_cv(cv)
    if scheme.kind == "kfold":
        return grouped_kfold(table, scheme.k, seed)
    if scheme.kind == "mixture":
        return mixture_kfold(table, scheme.k, seed)
    if scheme.kind == "scale":
        return scale_folds(table)
    runs = runs_in_order(table)
    return [Fold(i, f"run {r}", tuple(x for x in runs if x != r), (r,)) for i, r in enumerate(runs)]
