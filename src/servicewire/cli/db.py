"""``servicewire db init URL``: create every Servicewire table (outbox, inbox, relay state).

    servicewire db init postgresql://postgres@127.0.0.1/orders
    servicewire db init sqlite:///orders.db

Idempotent: existing tables are left as they are. Projects that use Alembic can instead
autogenerate a migration against ``servicewire.storage.schema.all_tables_metadata()``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("db", help="database setup: 'db init URL' creates the tables")
    parser.add_argument("action", choices=["init"])
    parser.add_argument(
        "url", help="database URL (postgresql://, mysql://, mariadb://, sqlite:///)"
    )


def run(args: argparse.Namespace) -> int:
    from servicewire.errors import ServicewireError

    try:
        return asyncio.run(_init(args.url))
    except ServicewireError as exc:
        print(f"servicewire db: {exc}", file=sys.stderr)
        return 1


async def _init(url: str) -> int:
    from servicewire.storage.database import create_engine, display_url
    from servicewire.storage.schema import all_tables_metadata

    engine = create_engine(url)
    metadata = all_tables_metadata()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()
    names = ", ".join(sorted(metadata.tables))
    print(f"{display_url(url)}: {len(metadata.tables)} tables ready: {names}")
    return 0
