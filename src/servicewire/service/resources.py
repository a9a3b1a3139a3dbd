"""What a service opens when it starts: its database, its transport and its outbox relay.

Each comes from a URL or is given ready-made::

    engine, temp_file = open_engine("sqlite://", "order-service")   # a private temp file
    await create_tables(engine, [order_metadata])
    transport = await connect("memory://")
    relay = await start_relay(engine, transport, poll_interval=0.25, name="order-relay")
    ...
    await relay.stop()
    await transport.close()
    await engine.dispose()
    if temp_file is not None:
        remove_sqlite_files(temp_file)

An in-memory SQLite database lives in one connection, but the relay and the handlers
need connections of their own (each with its own transaction), so a private temporary
file stands in for it and is removed when the service stops.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.transports import Transport, transport_from_url


def open_engine(db: str | AsyncEngine, service: str) -> tuple[AsyncEngine, str | None]:
    """The engine for ``db`` and the temporary SQLite file made for it, if one was."""
    from servicewire.storage.database import create_engine, dialect_of, is_sqlite_memory

    if isinstance(db, AsyncEngine):
        return db, None
    temp_file = temporary_sqlite_file(service) if is_sqlite_memory(db) else None
    url = f"sqlite:///{temp_file}" if temp_file is not None else db
    # SQLite has one writer at a time: with one connection, the relay and the
    # handlers queue for it in asyncio instead of sleeping in SQLite's busy
    # handler (which backs off in steps of up to 100 ms, on aiosqlite's thread).
    single = {"pool_size": 1, "max_overflow": 0} if dialect_of(url) == "sqlite" else {}
    return create_engine(url, **single), temp_file


def temporary_sqlite_file(service: str) -> str:
    """The path of a new, empty temporary file for the database of ``service``."""
    handle, path = tempfile.mkstemp(prefix=f"servicewire-{service}-", suffix=".db")
    os.close(handle)
    return path


def remove_sqlite_files(path: str) -> None:
    """Remove a SQLite database file and its companions (WAL, shared memory, journal)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            os.unlink(path + suffix)


async def create_tables(engine: AsyncEngine, app_tables: Sequence[MetaData]) -> None:
    """Create servicewire's tables and the application's ``app_tables``, if missing."""
    from servicewire.storage.schema import all_tables_metadata

    async with engine.begin() as conn:
        await conn.run_sync(all_tables_metadata().create_all)
        for app_metadata in app_tables:
            await conn.run_sync(app_metadata.create_all)


async def connect(transport: str | Transport) -> Transport:
    """The transport for a URL (or the one given), connected."""
    connected = transport_from_url(transport) if isinstance(transport, str) else transport
    await connected.connect()
    return connected


async def start_relay(
    engine: AsyncEngine, transport: Transport, *, poll_interval: float, name: str
) -> Any:
    """A polling relay from the outbox in ``engine`` to ``transport``, started."""
    from servicewire.relay.polling import PollingRelay

    # listen: on PostgreSQL, commits of other processes (NOTIFY) wake it too; elsewhere
    # they are found by its idle polls, which back off to max_poll_interval.
    # concurrency=1: in a service the relay shares the process's CPU with the pipeline,
    # so a second batch loop overlapping broker confirms gains nothing and costs a batch
    # transaction per commit (benchmarks/pipeline.py: ~10 % more CPU per handled
    # command). A relay process of its own (`servicewire relay`) keeps two.
    relay = PollingRelay(
        engine, transport, poll_interval=poll_interval, name=name, listen=True, concurrency=1
    )
    await relay.start()
    return relay
