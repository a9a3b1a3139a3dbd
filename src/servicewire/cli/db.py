"""``servicewire db init URL``: create every Servicewire table (outbox, inbox, relay state).

    servicewire db init postgresql://postgres@127.0.0.1/orders
    servicewire db init sqlite:///orders.db
    servicewire db init dynamodb://127.0.0.1:8000?region=us-east-1   # outbox table + stream

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
        "url", help="database URL (postgresql://, mysql://, mariadb://, sqlite:///, dynamodb://)"
    )


def run(args: argparse.Namespace) -> int:
    from servicewire.errors import ServicewireError

    try:
        return asyncio.run(_init(args.url))
    except ServicewireError as exc:
        print(f"servicewire db: {exc}", file=sys.stderr)
        return 1


async def _init(url: str) -> int:
    from servicewire.storage.dynamodb import is_dynamodb_url

    if is_dynamodb_url(url):
        return await _init_dynamodb(url)
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


async def _init_dynamodb(url: str) -> int:
    """The outbox table (stream NEW_IMAGE, TTL on ``expires_at``) and the relay table."""
    from servicewire.storage.dynamodb import DynamoConfig, create_tables

    config = DynamoConfig.from_url(url)
    created = await create_tables(config)
    tables = [config.table, config.relay_table]
    state = f"created {', '.join(created)}" if created else "both existed"
    print(f"{config.display()}: tables ready: {', '.join(tables)} ({state})")
    return 0
