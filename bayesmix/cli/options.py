"""The options of the subcommands, each group declared once.

Choices and defaults come from the library: :class:`bayesmix.fit_settings.FitSettings`
and the choices it takes (:data:`~bayesmix.fit_settings.SAMPLERS`,
:data:`~bayesmix.fit_settings.LIKELIHOODS`, :data:`~bayesmix.fit_settings.SWITCHES`,
:data:`~bayesmix.fit_settings.CHECKPOINT_MODES`), read without importing PyMC so that
``--help`` stays fast. The law registry imports PyTensor, so its names are mirrored in
:data:`LAW_NAMES`; ``tests/test_cli_options.py`` checks that the two agree, and that
every command that fits offers the samplers and defaults of ``FitSettings``.

A command that cannot honour an option of a group does not offer it (argparse refuses
it) and says so in its help.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from ..extension import CHECKPOINTS, DEFAULT_EXTEND
from ..fit_settings import (CHECKPOINT_MODES, DEFAULT_LAW, DISCREPANCY_SCALES, LIKELIHOODS, SAMPLERS, SWITCHES,
                            FitSettings)

#: The registered laws (:func:`bayesmix.laws.available_laws`), in the registry's order.
LAW_NAMES = ("capacity_noise", "capacity", "exponential", "bimix", "additive", "joint", "chinchilla_domain", "linear",
             "capacity_noise_transfer")
#: Ranking criteria of the acquisition (:data:`bayesmix.acquire.CRITERIA`).
CRITERIA = ("voi", "variance", "random", "space-filling")
#: Updates of the value of information (:data:`bayesmix.acquire.METHODS`), default first.
VOI_METHODS = ("gaussian", "importance")
#: Simulated outcomes per candidate (:data:`bayesmix.acquire.DEFAULT_OUTCOMES`).
DEFAULT_OUTCOMES = 256
#: The defaults of one fit; a command that fits changes only the counts.
FIT_DEFAULTS = FitSettings()
#: Release after which the deprecated option spellings are removed.
DEPRECATED_UNTIL = "0.2"
#: The help of a positional fit argument and of a positional run table.
FIT_HELP = "fitted law: a .nc file written by 'bayesmix fit' or its folder"
RUNS_HELP = "run table: a .csv, .tsv or .parquet file"
#: Width of a group's description (shown as written, indented by two), as the commands'.
GROUP_TEXT_WIDTH = 86


def add_command(sub, name: str, *, summary: str, description: str, epilog: str | None = None):
    """Add a subcommand whose description and epilog are shown as written.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``bayesmix`` command's subparsers.
    name : str
        The subcommand, e.g. ``"fit"``.
    summary : str
        One line for ``bayesmix --help``.
    description, epilog : str
        Shown before and after the options, line breaks kept.

    Returns
    -------
    argparse.ArgumentParser
    """
    return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_input_argument(parser, kind: str) -> None:
    """The positional input: ``"runs"`` (a run table) or ``"fit"`` (a fit file or folder).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    kind : {"runs", "fit"}
        Also the attribute the value is stored in.
    """
    help_ = {"runs": RUNS_HELP, "fit": FIT_HELP}[kind]
    parser.add_argument(kind, metavar=kind.upper(), help=help_)


def add_law_option(parser, *, flag: str = "--law", default: str | None = DEFAULT_LAW, what: str = "law to fit",
                   default_note: str | None = None) -> None:
    """One registered law by name (choices: :data:`LAW_NAMES`).

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    flag : str
        The option, e.g. ``--law`` or ``--fit-law``.
    default : str or None
    what : str
        What the law is for, the start of the help.
    default_note : str, optional
        What the help says the default is (default: the ``default`` law's name).
    """
    parser.add_argument(flag, default=default, choices=LAW_NAMES, metavar="LAW",
                        help=f"{what}: {', '.join(LAW_NAMES)} (default: {default_note or default})")


def add_sampling_options(parser, *, defaults: FitSettings = FIT_DEFAULTS, title: str = "sampling",
                         description: str | None = None, chains_note: str = "", sampler_note: str = "",
                         target_accept: bool = True, map_starts: bool = False, extend_draws: bool = False):
    """NUTS options: ``--draws``, ``--tune``, ``--chains``, ``--sampler`` and optional ones.

    The sampler's choices are :data:`bayesmix.fit_settings.SAMPLERS`; every default
    is taken from ``defaults``, so that a command changes the counts only.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    defaults : FitSettings
        Where the defaults come from (default: ``FitSettings()``).
    title, description : str
        The group's title and what it says of the options a command does not offer.
    chains_note, sampler_note : str
        Appended to the help of ``--chains`` and ``--sampler``.
    target_accept, map_starts, extend_draws : bool
        Offer ``--target-accept``, ``--map-starts`` and ``--extend-draws``.

    Returns
    -------
    argparse group
        For more options of the same group.
    """
    group = parser.add_argument_group(title, textwrap.fill(description, GROUP_TEXT_WIDTH, break_on_hyphens=False) if description else None)
    group.add_argument("--draws", type=int, default=defaults.draws,
                       help=f"draws per chain after tuning (default {defaults.draws})")
    group.add_argument("--tune", type=int, default=defaults.tune,
                       help=f"tuning iterations per chain (default {defaults.tune})")
    group.add_argument("--chains", type=int, default=defaults.chains,
                       help=f"chains{chains_note}; at least 2, as the diagnostics (R-hat) compare chains "
                            f"(default {defaults.chains})")
    if map_starts:
        group.add_argument("--map-starts", type=int, default=defaults.map_starts,
                           help=f"MAP searches that pick the chains' starting point (default {defaults.map_starts})")
    group.add_argument("--sampler", default=defaults.sampler, choices=SAMPLERS,
                       help=f"NUTS backend (default {defaults.sampler}). nutpie: low-rank mass matrix (10-20x "
                            "fewer gradients per draw than pymc's diagonal one on the capacity laws; the "
                            "linear law's is diagonal); pymc compiles "
                            "faster; numpyro needs the optional jax and numpyro packages" + sampler_note)
    if target_accept:
        group.add_argument("--target-accept", type=float, default=defaults.target_accept,
                           help="NUTS target acceptance (default: the law's, 0.95; a fit whose draws "
                                "diverge at it is sampled again at 0.99; given, the fit samples at it only)")
    if extend_draws:
        group.add_argument("--extend-draws", type=float, default=defaults.extend_draws, metavar="X",
                           help=f"nutpie: while the chains only mix slowly (R-hat too high, no divergence, no "
                                f"separated chains), run on to at most X times --draws, stopping at the first "
                                f"of {', '.join(f'{m:g}x' for m in CHECKPOINTS)} where they agree "
                                f"(default {DEFAULT_EXTEND:g}; 1: exactly --draws)")
    return group


def add_observation_options(group, *, defaults: FitSettings = FIT_DEFAULTS) -> None:
    """The observation model: ``--likelihood``, ``--discrepancy`` and ``--discrepancy-scale``.

    Parameters
    ----------
    group : argparse.ArgumentParser or argument group
    defaults : FitSettings
        Where the defaults come from (default: ``FitSettings()``).
    """
    group.add_argument("--likelihood", default=defaults.likelihood, choices=LIKELIHOODS,
                       help=f"observation model on log-loss (default {defaults.likelihood}; "
                            "student_t for outliers)")
    group.add_argument("--discrepancy", default=defaults.discrepancy, choices=SWITCHES,
                       help="model the law's own error over scale and mixture effects shared across "
                            "scales (auto: wherever the table has more than one scale; off: the "
                            f"law-only model of the paper; default {defaults.discrepancy})")
    group.add_argument("--discrepancy-scale", default=defaults.discrepancy_scale, choices=DISCREPANCY_SCALES,
                       help="what the law's error over scale multiplies: the whole loss (log) or the "
                            "reducible loss (the law's mean less its irreducible loss, so that it flattens "
                            "beyond the fitted scales as the law does; laws with an irreducible loss only) "
                            f"(default {defaults.discrepancy_scale})")


def add_checkpoints_option(group, *, default: str = CHECKPOINT_MODES[0], final_only: bool = False) -> None:
    """``--checkpoints final|all``: which checkpoints of each run enter the fits.

    Parameters
    ----------
    group : argparse.ArgumentParser or argument group
    default : str
        One of :data:`bayesmix.fit_settings.CHECKPOINT_MODES`.
    final_only : bool
        Also accept ``--final-only``, the spelling of ``--checkpoints final`` that
        ``bayesmix compare`` had first.
    """
    group.add_argument("--checkpoints", default=default, choices=CHECKPOINT_MODES,
                       help="use each run's final checkpoint only, or all checkpoints with a per-run "
                            f"offset (default {default})")
    if final_only:
        group.add_argument("--final-only", dest="checkpoints", action="store_const", const="final",
                           help="the same as --checkpoints final")


def add_seed_option(parser, what: str) -> None:
    """``--seed`` (default that of :class:`FitSettings`).

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    what : str
        What the seed draws, e.g. ``"of the folds and the fits"``.
    """
    parser.add_argument("--seed", type=int, default=FIT_DEFAULTS.seed,
                        help=f"random seed {what} (default {FIT_DEFAULTS.seed}); the same seed gives "
                             "the same output")


def add_quiet_option(parser, help: str = "no progress bar (none is drawn when stderr is not a terminal either)"):
    """``--quiet``: no progress shown.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    help : str
        What ``--quiet`` leaves out, where a command shows more than a progress bar.
    """
    parser.add_argument("--quiet", action="store_true", help=help)


def add_max_draws_option(parser, default: int, *, use: str = "") -> None:
    """``--max-draws S``: the posterior draws a command uses, evenly thinned.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    default : int
    use : str
        What the draws are used for, e.g. ``" for predictions"``.
    """
    parser.add_argument("--max-draws", type=int, default=default, metavar="S",
                        help=f"posterior draws used{use} (evenly thinned; default {default})")


def add_table_options(parser) -> None:
    """Options that say how to read a run table whose columns are not the defaults."""
    group = parser.add_argument_group("run table columns")
    group.add_argument("--model-size-column", default="model_size", metavar="COL",
                       help="column with the model size N in parameters (default: model_size)")
    group.add_argument("--tokens-column", default="n_tokens", metavar="COL",
                       help="column with the training tokens D (default: n_tokens)")
    group.add_argument("--run-id-column", default=None, metavar="COL",
                       help="column grouping the checkpoints of one training run "
                            "(default: run_id if present, else runs are told apart by mixture and N)")
    group.add_argument("--domain-map", default=None, metavar="MAP",
                       help="explicit columns per domain: 'd=WEIGHT_COL:LOSS_COL,...' "
                            "(default: found by the patterns weight_<d> with <d>_loss or loss_<d>)")
    group.add_argument("--filter-model-size", default=None, metavar="N[,N...]",
                       help="keep only rows at these model sizes (e.g. 122M,310M)")
    group.add_argument("--filter-tokens", default=None, metavar="D[,D...]",
                       help="keep only rows at these token counts")


class DeprecatedAlias(argparse.Action):
    """Store an option's value; given by a deprecated spelling, also print a note saying so.

    (``old_spellings``, not ``deprecated``: Python 3.13's ``argparse.Action`` has a
    ``deprecated`` flag of its own.)"""

    def __init__(self, option_strings, dest, old_spellings=(), **kwargs):
        self.old_spellings = tuple(old_spellings)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.old_spellings:
            print(f"note: {option_string} is deprecated and goes in bayesmix {DEPRECATED_UNTIL}; "
                  f"write {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_target_scale_options(parser, *, required: bool = True, aliases: bool = False, default_note: str = ""):
    """``--target-model-size N`` and ``--target-tokens D``: the scale a decision is for.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    required : bool
    aliases : bool
        Also accept the deprecated spellings ``--model-size`` and ``--tokens``.
    default_note : str
        Appended to the help, e.g. what is used when the option is left out.
    """
    for name, old, meta, example in (("--target-model-size", "--model-size", "N", "7B"),
                                     ("--target-tokens", "--tokens", "D", "140B")):
        what = "model size N* in parameters" if meta == "N" else "training tokens D*"
        names = (name, old) if aliases else (name,)
        note = f"; {old} is the deprecated spelling (removed in {DEPRECATED_UNTIL})" if aliases else ""
        parser.add_argument(*names, required=required, metavar=meta, action=DeprecatedAlias,
                            old_spellings=names[1:], help=f"target {what}, e.g. {example}{default_note}{note}")


def add_decision_options(parser) -> None:
    """The objective (``--weights``, ``--target-domain``, ``--risk``) and the constraints
    (``--min``, ``--max``, ``--available``, ``--max-epochs``) of a mixture decision; read
    them with :func:`bayesmix.cli.common.decision_from_args`."""
    obj = parser.add_argument_group("objective")
    obj.add_argument("--weights", metavar="d=W,...",
                     help="weighted average of domain losses (unnamed domains get 0; normalised)")
    obj.add_argument("--target-domain", metavar="DOMAIN", help="minimise this domain's loss only")
    obj.add_argument("--risk", default="mean", metavar="RISK",
                     help="mean (default), quantile:Q (e.g. quantile:0.9) or cvar:ALPHA (e.g. cvar:0.9)")
    con = parser.add_argument_group("constraints")
    con.add_argument("--min", metavar="d=W,...", help="lower bounds on domain weights")
    con.add_argument("--max", metavar="d=W,...", help="upper bounds on domain weights")
    con.add_argument("--available", metavar="d=TOKENS,...",
                     help="tokens available per domain, e.g. books=20B,arxiv=5B")
    con.add_argument("--max-epochs", type=float, metavar="E",
                     help="passes allowed over the available data (default 1)")


def add_candidate_options(parser, *, with_file: bool = True) -> None:
    """Candidate proxy runs: from a file (``--candidates``) or generated (``--sizes`` ...);
    read them with :func:`bayesmix.cli.common.candidates_from_args`.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    with_file : bool
        Offer ``--candidates FILE``.
    """
    g = parser.add_argument_group("candidates")
    if with_file:
        g.add_argument("--candidates", metavar="FILE", help="candidate runs (CSV)")
    g.add_argument("--sizes", metavar="N[,N...]", help="model sizes of generated candidates, e.g. 122M,310M")
    g.add_argument("--tokens", metavar="D[,D...]", help="token counts of generated candidates")
    g.add_argument("--tokens-per-param", type=float, metavar="R", help="D = R x N (default 20)")
    g.add_argument("--n-mixtures", type=int, default=16, metavar="M", help="mixtures per scale (default 16)")


def add_acquisition_options(parser, *, seed: str, batch_help: str = "runs to pick (default 1)"):
    """How candidates are ranked, what they cost and how many are picked: ``--criterion``,
    ``--voi-method``, ``--batch``, ``--fixed-cost``, ``--n-outcomes``, ``--max-draws`` and
    ``--seed``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    seed : str
        What ``--seed`` draws in this command (see :func:`add_seed_option`).
    batch_help : str
        The help of ``--batch`` (its default is None: the command decides).

    Returns
    -------
    argparse group
    """
    g = parser.add_argument_group("acquisition")
    g.add_argument("--criterion", default=CRITERIA[0], choices=CRITERIA,
                   help=f"how candidates are ranked (default {CRITERIA[0]}; see above)")
    g.add_argument("--voi-method", default=VOI_METHODS[0], choices=VOI_METHODS,
                   help="how --criterion voi updates the posterior by a simulated outcome: gaussian "
                        "(linear-Gaussian update, cross-fitted on halves of the draws; never pins the posterior "
                        "to one draw) or importance (reweighting: exact for a discrete prior, saturates at the "
                        f"value of perfect information otherwise) (default {VOI_METHODS[0]})")
    g.add_argument("--batch", type=int, default=None, metavar="Q", help=batch_help)
    g.add_argument("--fixed-cost", metavar="FLOPS",
                   help="cost of every run on top of its 6 N D training FLOPs (start-up, evaluation), e.g. 5e17")
    g.add_argument("--n-outcomes", type=int, default=DEFAULT_OUTCOMES, metavar="J",
                   help=f"simulated outcomes per candidate (default {DEFAULT_OUTCOMES})")
    add_max_draws_option(g, 200)
    add_seed_option(g, seed)
    return g
