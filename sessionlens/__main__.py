"""The ``sessionlens`` command: one entry point, subcommands owned by the subpackages."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes ``register(subparsers)``, adding its subcommands; a subcommand
# stores its handler as ``func`` (args -> exit code). Imported lazily so that the base
# (application-side) install still answers ``sessionlens --help``.
COMMAND_MODULES = ("sessionlens.collector.cli", "sessionlens.schema.cli")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand whose module can be imported."""
    parser = argparse.ArgumentParser(
        prog="sessionlens", description="See LLM applications as sessions."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    missing = []
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            missing.append(f"{name}: {exc}")
            continue
        module.register(subparsers)
    parser.set_defaults(func=None, _missing=missing)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:
        parser.print_help()
        if args._missing:
            print(
                "\nsome commands need the collector extras: pip install 'sessionlens[collector]'",
                file=sys.stderr,
            )
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
