"""``servicewire trace ID --db URL [--db URL ...]``: where did this message chain go?

Reads the message journal (``servicewire_journal``) of each database, follows the
conversation ``ID`` names (a correlation id, any message id in it, or an FTGO order
id, which FTGO uses as correlation id), prints the sequence and writes an SVG
sequence diagram::

    servicewire trace 0193a5c2-... --db postgresql://postgres@127.0.0.1/ftgo_order \\
        --db postgresql://postgres@127.0.0.1/ftgo_consumer \\
        --db postgresql://postgres@127.0.0.1/ftgo_restaurant --svg order.svg --mermaid

Services record to the journal when given one (``ftgo serve --journal``; ``ftgo up``
does it by default).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="print a message chain from the journals and draw its sequence diagram",
        description="Follow a conversation through the message journals of several databases.",
    )
    parser.add_argument("id", help="correlation id, message id or FTGO order id")
    parser.add_argument(
        "--db", action="append", required=True, help="database with a journal (repeatable)"
    )
    parser.add_argument(
        "--svg", type=Path, default=None, help="SVG file to write (default: trace-ID.svg)"
    )
    parser.add_argument("--no-svg", action="store_true", help="write no SVG")
    parser.add_argument(
        "--mermaid",
        action="store_true",
        help="also print Mermaid text (written beside the SVG)",
    )


async def _entries(urls: list[str], key: str) -> list[Any]:
    from servicewire.errors import ServicewireError
    from servicewire.storage.database import create_engine, missing_tables
    from servicewire.telemetry.journal import journal_table
    from servicewire.telemetry.journal_buffer import read_conversation
    from servicewire.urls import redact

    engines = [create_engine(url) for url in urls]
    try:
        for url, engine in zip(urls, engines, strict=True):
            if await missing_tables(engine, [journal_table.name]):
                raise ServicewireError(
                    f"{redact(url)} has no {journal_table.name} table: record with a journal "
                    "(ftgo serve --journal), or run `servicewire db init URL`"
                )
        return await read_conversation(engines, key)
    finally:
        for engine in engines:
            await engine.dispose()


def run(args: argparse.Namespace) -> int:
    from servicewire.errors import ServicewireError
    from servicewire.telemetry.sequence import render_mermaid, render_svg, render_text, sequence
    from servicewire.urls import redact_text

    try:
        entries = asyncio.run(_entries(args.db, args.id))
    except ServicewireError as exc:
        print(f"servicewire trace: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a database that cannot be reached, say
        print(f"servicewire trace: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    if not entries:
        print(f"servicewire trace: no journal entries for {args.id}", file=sys.stderr)
        return 1
    steps = sequence(entries)
    services = sorted({e.service for e in entries})
    print(f"conversation {args.id}: {len(steps)} messages across {', '.join(services)}")
    print(render_text(steps))
    mermaid = render_mermaid(steps)
    if args.mermaid:
        print()
        print(mermaid)
    if not args.no_svg:
        target: Path = args.svg or Path(f"trace-{args.id}.svg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_svg(steps, title=f"conversation {args.id}"))
        print(f"sequence diagram: {target}")
        if args.mermaid:
            target.with_suffix(".mmd").write_text(mermaid + "\n")
            print(f"mermaid text: {target.with_suffix('.mmd')}")
    return 0
