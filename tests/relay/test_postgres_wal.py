"""The PostgreSQL WAL-tailing relay against the local PostgreSQL (wal_level=logical)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from servicewire.outbox import outbox, write_messages
from servicewire.relay.postgres_wal import PostgresWalRelay
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from tests.relay.dbs import private_database
from tests.relay.helpers import Collector, eventually, make_messages, unique


@contextlib.asynccontextmanager
async def wal_relay(
    url: str, transport: Transport, **kw: object
) -> AsyncIterator[PostgresWalRelay]:
    engine = create_engine(url)
    relay = PostgresWalRelay(engine, transport, name=unique("t").replace(".", "_"), **kw)  # type: ignore[arg-type]
    try:
        yield relay
    finally:
        await relay.stop()
        await relay.drop_slot()
        await engine.dispose()


@pytest.mark.parametrize("delete_after_insert", [False, True])
async def test_streams_inserts(delete_after_insert: bool) -> None:
    async with private_database("postgres") as url:
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("orders")
        collector = await Collector.open(transport, channel)
        async with wal_relay(url, transport) as relay:
            await relay.start()
            await eventually(lambda: relay.flushed_lsn > 0 or relay.published > 0, 10, "start")
            async with relay.engine.begin() as conn:
                await write_messages(
                    conn, make_messages(channel, 100), delete_after_insert=delete_after_insert
                )
            await relay.drain(20)
            await eventually(lambda: len(collector.unique_ids) == 100, 10, "all 100")
            assert collector.seqs_by_key() == {f"k{k}": list(range(k, 100, 4)) for k in range(4)}
            async with relay.engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
            assert left == 0
        await collector.close()
        await transport.close()


async def test_insert_then_delete_first_start_publishes_existing_rows_once() -> None:
    """``servicewire relay --mode postgres-wal --insert-then-delete`` on a table that
    already holds rows: the first start sweeps them once, then streams."""
    async with private_database("postgres") as url:
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("orders")
        collector = await Collector.open(transport, channel)
        engine = create_engine(url)
        try:
            existing = make_messages(channel, 10)
            async with engine.begin() as conn:
                await write_messages(conn, existing)  # before the slot exists
        finally:
            await engine.dispose()
        async with wal_relay(url, transport, delete_published=False) as relay:
            await relay.start()
            await eventually(lambda: relay.active, 10, "streaming to start")
            await eventually(lambda: len(collector.unique_ids) == 10, 10, "the 10 existing")
            new = make_messages(channel, 1, start=10)
            async with relay.engine.begin() as conn:
                await write_messages(conn, new, delete_after_insert=True)
            await eventually(lambda: new[0].id in collector.counts, 10, "the new row")
            assert all(collector.counts[m.id] == 1 for m in existing), collector.counts
            # Counted when the settler has deleted and confirmed the row, which may be just
            # after the collector saw it.
            await eventually(lambda: relay.published == 11, 10, "11 counted as published")
        await collector.close()
        await transport.close()
