"""A short pilot run that puts every kept chain in the posterior's main mode.

The capacity laws' posteriors can have separated modes: on SlimPajama 7 (final
checkpoints, discrepancy model), chains started around one MAP point settled in two
modes, one with the capacity floor ``H`` near 1% of ``N_ref`` and one near 6% (an offset
to the effective model size), the second 38 nats higher in typical log density; no chain
crossed between them in 2000 iterations. R-hat rightly refused that fit, but one more
chain or seed would not fix it: the chains that start in the minor mode stay there.

So the fit first runs a short pilot (a quarter of the tuning, from the dispersed starts
of :mod:`bayesmix.inference`), and a chain whose log density stays well below the best
chain's (:func:`minor_mode_chains`) is restarted from a draw of the chains that are not.
The kept run then starts every chain at a pilot draw of the main mode, and its
R-hat measures mixing within it. A chain that leaves the main mode for a minor one while
the kept run adapts is taken out of the posterior by the same rule
(:func:`main_mode_chains`; the fit's ``minor_mode_chains`` diagnostic names it), as long as
two chains are left to compare. The pilot's per-chain log densities and the chains it
moved are recorded in the fit's diagnostics (``pilot_*``), so that a user sees when the
posterior had a minor mode.

Chains started around one MAP point can all miss a mode. For a law that names a
parameter along which its posterior has separated modes (:attr:`bayesmix.laws.Law.mode_probe`,
the capacity laws' floor ``H``), the pilot also runs :data:`PROBE_CHAINS` short chains from
each of two probes: the main mode's best draw with that parameter's unconstrained
coordinate moved by :data:`PROBE_STEPS` and the other coordinates at their optimum given
it. The probe chains join the pilot's in the choice of the main mode, by the same rule;
where they become the main mode, a second round probes from their draws
(:data:`PROBE_ROUNDS`).

Modes of similar log density are not minor: the pilot leaves their chains where they
are, and R-hat refuses the fit. :func:`separated_chain_groups` then tells the user which
chains settled where (the fit's ``chain_groups`` diagnostic), so that a refusal says
"two modes" rather than "run longer".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

#: The pilot tunes for this fraction of the kept run's tuning (at least PILOT_MIN_TUNE
#: iterations) and then draws PILOT_DRAWS per chain, on which the chains are compared.
PILOT_TUNE_FRACTION = 0.25
PILOT_MIN_TUNE = 50
PILOT_DRAWS = 40

#: The pilot's NUTS target acceptance, where the kept run's is higher. The pilot only
#: finds where the chains settle and compares their log densities; its draws are not
#: kept, so a divergence there costs nothing, while the 0.99 the capacity laws then
#: sampled at (chosen against a rare divergence in the kept draws) made most of its
#: tuning trajectories hit the tree-depth limit. SlimPajama 7, final checkpoints, the
#: default pilot (4 x (250 + 40)): 108 s at 0.99, 29 s at 0.9, with the same main mode
#: found.
PILOT_TARGET_ACCEPT = 0.9
#: The pilot's largest NUTS tree depth (nutpie's default is 10: up to 1023 steps a
#: draw). Its early tuning, before the mass matrix fits the posterior, is what it pays
#: for: most trajectories there run to the cap. Capped at 63 steps its chains move less
#: far, and more of them end in a minor mode, which the kept run's starts leave behind
#: anyway. SlimPajama 7, default fits, seeds 0-2 (2026-12-05): the pilot took 6.7-7.5 s
#: against 41-42 s, restarted 3, 1 and 3 chains (0, 0 and 2 before), and every kept run
#: found the same main mode (the floor H near 6% of N_ref) and passed the gate; the fits
#: took 95, 85 and 94 s against 130, 129 and 127 s.
PILOT_MAXDEPTH = 6

#: A chain is in a minor mode when its mean log density over the pilot's draws is below
#: the best chain's by more than this many nats and by more than one within-chain
#: standard deviation of the log density: chains of one mode then differ by a few nats
#: (their means' Monte Carlo error), and a mode so far below holds a negligible share of
#: the mass unless it is far wider.
MODE_GAP_NATS = 10.0

#: The probes' steps along the probed parameter's unconstrained coordinate (log scale for
#: a positive parameter): a factor 5 up and down. The capacity floor's modes on SlimPajama
#: 7 lie a factor 5 and 2.8 apart (0.012, 0.06, 0.17 N_ref); one step from any of them
#: starts a probe in or next to another.
PROBE_STEPS = (float(np.log(5.0)), -float(np.log(5.0)))
#: Chains run from each probe (the pilot's tuning and draws; two share the machine's cores).
PROBE_CHAINS = 2
#: Most rounds of probes. A round after the first runs only where the last one's probe
#: chains became the main mode, from their draws: a probe from a pilot chain still far from
#: its mode's typical set can slide back (SlimPajama 7, seed 0: the pilot's chains 90 nats
#: below typical, the probe up back at H ~ 1.2% of N_ref), and a probe from the better
#: adapted probe chains of that mode starts where the others did.
PROBE_ROUNDS = 2

#: Chains sit in separated places when their central intervals of this probability
#: for one quantity do not overlap: chains of one mode, even poorly mixed ones, share
#: most of their range; a quantile rule is also blind to the quantity's scale (the
#: capacity floor's draws span two orders of magnitude in one mode, 30% in another).
SEPARATION_INTERVAL = 0.9


@dataclass(frozen=True)
class PilotReport:
    """What the pilot saw: each chain's mean log density and the chains it restarted."""

    chain_logp: tuple[float, ...]
    restarted: tuple[int, ...]
    recentred: bool = False
    #: Probe chains (:data:`PROBE_CHAINS` per probe), the last of ``chain_logp``.
    probe_chains: int = 0
    #: Whether every chain of the main mode was a probe chain: the kept run then starts
    #: at probe chains' draws (in another mode, or in the same one better adapted).
    started_from_probes: bool = False

    def to_diagnostics(self) -> dict:
        """Flat entries for a fit's diagnostics."""
        best = max(self.chain_logp)
        gap = max((best - self.chain_logp[c] for c in self.restarted), default=0.0)
        return {"pilot_restarted_chains": len(self.restarted), "pilot_max_logp_gap": float(gap),
                "pilot_recentred": int(self.recentred), "pilot_probe_chains": self.probe_chains,
                "pilot_started_from_probes": int(self.started_from_probes)}


def minor_mode_chains(logp: np.ndarray) -> np.ndarray:
    """Indices of the chains whose log density stays far below the best chain's.

    Parameters
    ----------
    logp : ndarray (chains, draws)
        Log density of each chain's draws.

    Returns
    -------
    ndarray of int
        Chains whose mean log density is below the best chain's by more than
        :data:`MODE_GAP_NATS` and by more than the pooled within-chain standard deviation;
        chains with non-finite log densities are always among them (unless all are).
    """
    logp = np.asarray(logp, dtype=float)
    finite = np.all(np.isfinite(logp), axis=1)
    if not finite.any():
        return np.array([], dtype=int)
    means = np.where(finite, logp.mean(axis=1) if logp.shape[1] else -np.inf, -np.inf)
    spread = float(np.sqrt(np.mean(np.var(logp[finite], axis=1, ddof=1)))) if logp.shape[1] > 1 else 0.0
    gap = means.max() - means
    return np.flatnonzero(~finite | (gap > max(MODE_GAP_NATS, spread)))


def main_mode_chains(logp: np.ndarray, least: int = 2) -> np.ndarray:
    """Indices of the chains not in a minor mode (:func:`minor_mode_chains`), or of every
    chain where fewer than ``least`` would be left (R-hat needs two chains: with one chain
    in the main mode the fit cannot show that it mixed there, and the gate should say so).

    A kept run's chains can leave the main mode the pilot put them in while the sampler
    is still adapting (SlimPajama 7, default fit: two of four chains started at pilot
    draws of the main mode settled 40 nats below it); the same rule as the pilot's then
    takes them out of the posterior.
    """
    logp = np.asarray(logp, dtype=float)
    kept = np.setdiff1d(np.arange(len(logp)), minor_mode_chains(logp))
    return kept if len(kept) >= least else np.arange(len(logp))


def separated_chain_groups(values: np.ndarray) -> list[np.ndarray]:
    """Chains grouped by where their draws of one quantity sit.

    Parameters
    ----------
    values : ndarray (chains, draws)
        One scalar quantity's draws, by chain.

    Returns
    -------
    list of ndarray of int
        Chain indices in groups ordered by their medians. Taking the chains by their
        medians, a chain starts a new group when the lower end of its central
        :data:`SEPARATION_INTERVAL` interval lies above the upper ends of every chain of
        the group before. One group when no chain sits apart.
    """
    values = np.asarray(values, dtype=float)
    tail = (1.0 - SEPARATION_INTERVAL) / 2
    lower, median, upper = np.quantile(values, [tail, 0.5, 1.0 - tail], axis=1)
    order = np.argsort(median, kind="stable")
    groups, top = [[int(order[0])]], upper[order[0]]
    for chain in order[1:]:
        if lower[chain] > top:
            groups.append([])
            top = -np.inf
        groups[-1].append(int(chain))
        top = max(top, upper[chain])
    return [np.array(sorted(g), dtype=int) for g in groups]


#: Chains that crossed between places are cut into this many windows each to find the
#: places (:func:`separated_draw_windows`); a window is long enough to show where a
#: stay sits and short enough that most windows hold no crossing.
WINDOWS_PER_CHAIN = 4
#: Places are separated only where at most this share of all draws lies in the gap
#: between them (above every lower window's central interval, below every upper one's):
#: a mode switch crosses the gap in a few draws and the modes' tails reach into it
#: (Pile 4, seeds 0 and 1: 3.0% and 3.3% of the floor's draws, scattered over all
#: chains, two crossings), a chain that drifts fills it.
GAP_SHARE = 0.05
#: A stay in one place shorter than this many draws is part of a crossing, not a visit:
#: its draws belong to no group.
MIN_STAY_DRAWS = 100


def separated_draw_windows(values: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Draws of chains that moved between separated places, grouped by place.

    Where a chain crossed from one mode to another, whole chains do not sit apart
    (:func:`separated_chain_groups` finds one group) although the draws do: Pile 4,
    ``capacity_noise``, seed 0, chain 0 stayed 600 draws with the capacity floor ``H``
    near 0.0025 ``N_ref`` and then moved to near 0.05 where the other three chains sat.
    The places are found on windows (each chain cut into :data:`WINDOWS_PER_CHAIN`), the
    widest windows (those that straddle a crossing, at most one per chain) left out; a
    chain is then in a place from its first draw on that place's side of the gap until
    it reaches the other side, and each chain's stays of at least
    :data:`MIN_STAY_DRAWS` draws are cut into windows of one length per place (the
    shortest stay, at most a quarter chain), so that R-hat can compare them.

    Parameters
    ----------
    values : ndarray (chains, draws)
        One scalar quantity's draws, by chain in sampling order: a crossing is found
        along each chain.

    Returns
    -------
    list of list of (chain, start, stop)
        Per place, ordered by where it sits, its windows of draws ``start:stop`` of
        ``chain``; draws in a crossing belong to none. Empty where there are not two
        separated places with stays in each, or where the draws fill the gap between them.
    """
    values = np.asarray(values, dtype=float)
    chains, draws = values.shape
    length = draws // WINDOWS_PER_CHAIN
    if length < 2:
        return []
    pieces = values[:, :length * WINDOWS_PER_CHAIN].reshape(chains * WINDOWS_PER_CHAIN, length)
    tail = (1.0 - SEPARATION_INTERVAL) / 2
    lower, upper = np.quantile(pieces, [tail, 1.0 - tail], axis=1)
    widest = np.argsort(-(upper - lower), kind="stable")
    for dropped in range(chains + 1):
        kept = np.sort(widest[dropped:])
        groups = [kept[g] for g in separated_chain_groups(pieces[kept])]
        if len(groups) > 1:
            break
    else:
        return []
    gaps = [(upper[a].max(), lower[b].min()) for a, b in zip(groups, groups[1:])]
    if any(np.mean((values > low) & (values < high)) > GAP_SHARE for low, high in gaps):
        return []
    # A chain changes place only once it reaches the other place's side of the gap, so
    # that a draw in the gap does not break a stay (and no cut inside the gap, whose
    # position would depend on the quantity's scale, is needed).
    lows, highs = np.array([g[0] for g in gaps]), np.array([g[1] for g in gaps])
    stays = [[] for _ in groups]
    below, above = np.searchsorted(highs, values, side="right"), np.searchsorted(lows, values, side="left")
    outside = below == above  # outside every gap: in place ``below``
    for chain in range(chains):
        # Each draw takes the place of the latest draw outside the gaps (-1 before the first).
        latest = np.maximum.accumulate(np.where(outside[chain], np.arange(draws), -1))
        place = np.where(latest >= 0, below[chain][np.maximum(latest, 0)], -1)
        changes = np.flatnonzero(np.diff(place)) + 1
        for start, stop in zip(np.r_[0, changes], np.r_[changes, draws]):
            if place[start] >= 0 and stop - start >= MIN_STAY_DRAWS:
                stays[place[start]].append((chain, int(start), int(stop)))
    stays = [s for s in stays if s]
    if len(stays) < 2:
        return []
    windows = []
    for visits in stays:
        size = min(length, min(stop - start for _, start, stop in visits))
        windows.append([(chain, start + k * size, start + (k + 1) * size)
                        for chain, start, stop in visits for k in range((stop - start) // size)])
    return windows


def pilot_target_accept(target_accept: float) -> float:
    """The pilot's NUTS target acceptance before a run at ``target_accept``: at most
    :data:`PILOT_TARGET_ACCEPT`."""
    return min(float(target_accept), PILOT_TARGET_ACCEPT)


def pilot_lengths(tune: int) -> tuple[int, int]:
    """(tuning iterations, draws) of the pilot before a run with ``tune`` tuning iterations."""
    return max(PILOT_MIN_TUNE, int(round(PILOT_TUNE_FRACTION * tune))), PILOT_DRAWS


def main_mode_draws(positions: np.ndarray, logp: np.ndarray, probe_chains: int = 0) -> tuple[np.ndarray, PilotReport]:
    """The pilot's draws of the main mode and what the pilot saw.

    Parameters
    ----------
    positions : ndarray (chains, draws, n_dim)
        The pilot's draws in the compiled model's coordinates.
    logp : ndarray (chains, draws)
        Their log densities.
    probe_chains : int
        How many of the last chains are probe chains: they take part in the choice of
        the main mode; only the others can be restarted.

    Returns
    -------
    (draws, PilotReport)
        ``draws``: ``(n, n_dim)``, the finite draws of the second half of every chain
        not in a minor mode (of all chains where every chain is): a chain's later draws
        are the better mixed.
    """
    minor = minor_mode_chains(logp)
    kept = main_mode_chains(logp, least=1)
    half = positions.shape[1] // 2
    draws = positions[kept, half:].reshape(-1, positions.shape[-1])
    draws = draws[np.all(np.isfinite(draws), axis=1) & np.isfinite(logp[kept, half:].ravel())]
    pilot_chains = len(logp) - probe_chains
    found = bool(probe_chains) and bool(np.all(kept >= pilot_chains))
    report = PilotReport(tuple(float(v) for v in np.mean(logp, axis=1)),
                         tuple(int(c) for c in minor if c < pilot_chains), probe_chains=probe_chains,
                         started_from_probes=found)
    return draws, report


def chain_rng(seed: int, chain_seed, *stream: int) -> np.random.Generator:
    """The random generator of one chain's start: from the fit's ``seed``, a ``stream``
    that tells apart the uses, and the seed nutpie passes each chain (so the same fit
    gives each chain the same start, and chains different ones)."""
    chain = [int(v) % 2**32 for v in np.atleast_1d(np.asarray(chain_seed, dtype=np.uint64))]
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, stream), *chain]))


def starts_from(compiled, draws: np.ndarray, seed: int):
    """``compiled`` whose chains start at draws from ``draws`` (``(n, n_dim)``, in its
    coordinates), one picked by each chain's seed, reproducibly (two chains may pick the
    same draw; their trajectories still differ)."""
    def start(chain_seed):
        return np.array(draws[chain_rng(seed, chain_seed, 1).integers(len(draws))], dtype="float64")

    return dataclasses.replace(compiled, initial_point_func=start)
