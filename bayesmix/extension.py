"""Running the chains on while they only mix slowly.

The diagnostics gate refuses a fit whose chains disagree (R-hat above
:data:`bayesmix.gate.MAX_RHAT`). Where that is the only fault -- no divergent
transition, no chains settled in separated places -- the chains are in one posterior and
have only not yet explored it long enough; more draws fix it, and a user told "run more
--draws" would do exactly that. A fit therefore samples up to ``extend_draws`` times the
requested draws per chain and stops at the first checkpoint where the gate's R-hat holds
or where more draws cannot help.

Checkpoints are fixed multiples of the requested draws (:data:`CHECKPOINTS`), and the
kept draws are the chains' first ``checkpoint`` draws, so the decision and the draws do
not depend on how fast the machine ran: a fit stays reproducible from its seed. Measured
on Pile 4 (``capacity_noise``, 4 x 1000, seed 0): max R-hat 1.03 with a bulk ESS of 65 for
the slowest quantity, the level of all domains moving together with the discrepancy's
slope and the noise amplitudes (the law's trend over scale and the discrepancy's linear
part explain the same thing over three model sizes, a ridge that NUTS walks slowly).
"""

from __future__ import annotations

import numpy as np

#: Where a fit may stop, as multiples of the requested draws per chain.
CHECKPOINTS = (1.0, 1.5, 2.0, 3.0, 4.0)
#: Most draws per chain by default, as a multiple of the requested draws.
DEFAULT_EXTEND = 4.0
#: Slack of the projection in :func:`more_draws_can_help`: R-hat - 1 shrinks about as
#: 1 / draws for chains that only mix slowly; a fit runs on while that projection, to the
#: most draws allowed, is within this factor of the gate's threshold. The projection is
#: pessimistic where the excess is one chain's early excursion into a tail, whose weight
#: in the chain means falls as 1 / draws and in R-hat nearer 1 / draws^2: SlimPajama 7
#: fitted <= 310M (``benchmarks/bench_extrapolation.py --folds sp-310``, seed 0), R-hat
#: 1.10 after 1000 draws (one chain deep in the lower tail of ``c[commoncrawl]``), 1.01
#: after 4000. With a slack of 2 that fit stopped at 1000 draws and was refused.
PROJECTION_SLACK = 3.0
#: Seconds between looks at a running sampler.
POLL_SECONDS = 2.0


def checkpoints(draws: int, extend: float) -> list[int]:
    """Draws per chain at which a fit of ``draws`` requested draws may stop, at most
    ``extend`` times ``draws`` (``extend`` 1: ``[draws]``, no extension)."""
    if not extend >= 1:
        raise ValueError(f"extend_draws must be at least 1, got {extend}")
    stops = {int(round(draws * m)) for m in CHECKPOINTS if m <= extend}
    stops.add(int(round(draws * extend)))
    return sorted(s for s in stops if s >= draws)


def slow_mixing_explains(rhat: float, max_rhat: float, draws: float, limit: float) -> bool:
    """Whether chains at ``rhat`` after ``draws`` draws could reach ``max_rhat`` within
    ``limit`` draws by mixing slowly: R-hat - 1 shrinks about as 1 / draws, so the
    projection ``(rhat - 1) * draws / limit`` must be within :data:`PROJECTION_SLACK`
    times ``max_rhat - 1`` (from 1000 of at most 4000 draws, R-hat up to 1.12)."""
    return (rhat - 1.0) * draws / limit <= PROJECTION_SLACK * (max_rhat - 1.0)


def more_draws_can_help(diagnostics: dict, max_rhat: float, draws: int, limit: int) -> bool:
    """Whether the gate fails on R-hat alone by as much as slow mixing explains
    (:func:`slow_mixing_explains`): over all chains, or, where the chains settled in
    separated places (``chain_groups``), within the groups (the modes are then weighted
    by :mod:`bayesmix.chain_stacking` once each group agrees).

    Divergences say the sampler cannot enter part of the posterior, and an R-hat far
    above the projection says the chains disagree by more than the remaining draws can
    average out (Pile 4, seed 1, before chains were grouped: H's two modes, R-hat 1.67
    after 4 x 4000 draws, 370 s of sampling); neither goes away with more draws.
    """
    rhat = (diagnostics.get("within_group_max_rhat", np.inf) if diagnostics.get("chain_groups")
            else diagnostics["max_rhat"])
    return (rhat > max_rhat and diagnostics["divergences"] == 0
            and slow_mixing_explains(rhat, max_rhat, draws, limit))
