"""Subcommands of the ``servicewire`` command line, one module each.

A module provides ``add_parser(subparsers: argparse._SubParsersAction) -> None``
(which adds its parser with ``set_defaults``-free options) and ``run(args) -> int``.
Every command line (``servicewire``, ``ftgo``) calls :func:`refuse_unsafe_text` on
what it parsed.
"""

from servicewire.cli.arguments import refuse_unsafe_text

__all__ = ["refuse_unsafe_text"]
