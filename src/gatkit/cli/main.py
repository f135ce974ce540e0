"""The ``gatkit`` command line: one sub-command per module listed in ``COMMAND_MODULES``.

Each module defines ``register(subparsers)``, which adds its parser and sets
``run=<function(args) -> int>`` as a default. Errors that gatkit raises on purpose
(:class:`gatkit.errors.GatkitError`) are printed as one line and exit with status 2, without
a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gatkit.errors import GatkitError

COMMAND_MODULES = [
    "gatkit.cli.demo",
    "gatkit.cli.train",
    "gatkit.cli.evaluate",
    "gatkit.cli.lookup",
    "gatkit.cli.attention",
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="gatkit", description="Graph attention networks (GAT, GATv2) on sparse edge lists."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gatkit`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GatkitError as error:
        print(f"gatkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gatkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
