"""The ``sessionlens`` command: one entry point, subcommands owned by the subpackages."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes ``register(subparsers)``, adding its subcommands; a subcommand
# stores its handler as ``func`` (args -> exit code). The modules import only the standard
# library at load time (drivers are imported by the handlers), so the base install still
# answers ``sessionlens --help``.
COMMAND_MODULES = ("sessionlens.collector.cli", "sessionlens.schema.cli", "sessionlens.cli.commands")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sessionlens", description="See LLM applications as sessions."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    parser.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
