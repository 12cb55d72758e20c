"""The ``bayesmix`` command: a thin shell over the Python API.

Each subcommand lives in its own module of this package and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Errors derived from
:class:`bayesmix.errors.BayesmixError` are printed without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import BayesmixError

# Order is the order shown in --help.
SUBCOMMANDS = (
    "demo",
    "validate",
    "fit",
    "predict",
    "recommend",
    "next",
    "campaign",
    "compare",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="bayesmix",
        description="Decide an LLM training data mixture from small proxy runs, with honest uncertainty.",
    )
    parser.add_argument("--version", action="version", version=f"bayesmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f".{name}_cmd", __name__)
        module.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BayesmixError as err:
        print(f"bayesmix {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"bayesmix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
