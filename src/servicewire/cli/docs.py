"""``servicewire docs asyncapi MODULE:ATTR``: an AsyncAPI 3.0 document from code.

    servicewire docs asyncapi ftgo.order.docs:service --output order.asyncapi.json
    servicewire docs asyncapi myapp.service:service --html docs/myapp.html --version 1.2.0

``ATTR`` is a service (anything with ``channel_uses()``), a list of ``ChannelUse``, or a
function without arguments returning one. Without ``--output`` or ``--html`` the JSON
goes to standard output. Exit 3 when the target cannot be loaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_TARGET = 3


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("docs", help="generate API documents from code")
    sub = parser.add_subparsers(dest="docs_command", metavar="DOCUMENT", required=True)
    asyncapi = sub.add_parser(
        "asyncapi",
        help="AsyncAPI 3.0 for a service's channels and messages",
        description="Generate an AsyncAPI 3.0 document (JSON, or YAML for a .yaml "
        "output) and optionally an HTML page from MODULE:ATTR.",
    )
    asyncapi.add_argument("target", metavar="MODULE:ATTR")
    asyncapi.add_argument("--output", "-o", type=Path, help="write the document here")
    asyncapi.add_argument("--html", type=Path, help="write a readable HTML page here")
    asyncapi.add_argument("--title", help="document title (default: the service name)")
    asyncapi.add_argument("--version", help="API version (default: the object's, or 1.0.0)")
    asyncapi.add_argument("--description", default="", help="document description")


def run(args: argparse.Namespace) -> int:
    from servicewire.evolution import (
        TargetError,
        build_asyncapi,
        document_text,
        load_uses,
        render_html,
    )

    try:
        uses, title, version = load_uses(args.target)
    except TargetError as exc:
        print(f"servicewire docs: {exc}", file=sys.stderr)
        return EXIT_BAD_TARGET
    doc = build_asyncapi(
        args.title or title, args.version or version or "1.0.0", uses, description=args.description
    )
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(document_text(doc, args.output.suffix), encoding="utf-8")
    if args.html is not None:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(doc), encoding="utf-8")
    if args.output is None and args.html is None:
        print(document_text(doc))
    return 0
