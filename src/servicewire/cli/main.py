"""The ``servicewire`` command line.

Each subcommand lives in its own module under :mod:`servicewire.cli` with two
functions, ``add_parser(subparsers)`` and ``run(args) -> int``; this file only finds
and dispatches them, so a subcommand's heavy imports load only when it runs::

    servicewire relay --db postgresql://... --transport amqp://... --mode polling
    servicewire compat old.yaml new.yaml --format json
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from servicewire.cli.arguments import refuse_unsafe_text

# Subcommand modules, in the order `servicewire --help` lists them. A module that is
# missing (not written yet, or its optional dependency absent) is left out of the help.
COMMANDS = [
    "brokers",
    "db",
    "relay",
    "dlq",
    "compat",
    "api",
    "docs",
    "trace",
    "console",
]


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"servicewire.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"servicewire.cli.{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servicewire", description="Interprocess communication for Python microservices."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if module is not None:
            module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    refuse_unsafe_text(parser, args)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = _load(args.command)
    assert module is not None
    result = module.run(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
