"""Subcommands of the ``servicewire`` command line, one module each.

A module provides ``add_parser(subparsers: argparse._SubParsersAction) -> None``
(which adds its parser with ``set_defaults``-free options) and ``run(args) -> int``.
"""
