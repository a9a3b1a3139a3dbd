"""What every command line of the project checks after parsing its arguments.

args = parser.parse_args(argv)
refuse_unsafe_text(parser, args)     # exit 2 on a lone surrogate, as argparse would
"""

from __future__ import annotations

import argparse

from servicewire.messaging import find_unsafe_text


def refuse_unsafe_text(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit 2, as for any bad argument, when a text argument holds a lone surrogate.

    Arguments reach databases (ids, names, URLs), and Python hands over the bytes of a
    command line that are not UTF-8 as lone surrogates, which no database takes (a
    command line cannot hold NUL). Paths, parsed as ``Path``, are left alone.
    """
    found = find_unsafe_text(vars(args))
    if found is not None:
        parser.error(f"argument {found[0]}: {found[1]}")
