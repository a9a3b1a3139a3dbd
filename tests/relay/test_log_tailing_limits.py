"""Log-tailing relays at their limits: a lost replication slot, a huge transaction.

* The WAL relay's slot is dropped while the relay is stopped: the rows committed in the
  meantime are in no slot; the relay notices the missing slot on start and sweeps the
  table before it streams, so every committed row still goes out, in key order.
* One transaction of many rows (20,000 here, 200,000 under ``make soak``): the WAL and
  binlog relays publish it in batches with bounded memory, and the WAL relay keeps its
  stream alive (standby status) while it works, even with a short ``wal_sender_timeout``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from servicewire.outbox import outbox, write_messages
from servicewire.relay import Relay
from servicewire.relay.mysql_binlog import MysqlBinlogRelay
from servicewire.relay.postgres_wal import PostgresWalRelay
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from tests.relay.big_transaction import KEYS, traced_peak, write_big_transaction
from tests.relay.dbs import private_database
from tests.relay.helpers import Collector, eventually, make_messages, unique
from tests.relay.sink import read_sink, register
from tests.relay.test_processes import first_seen_by_key, sink

MEMORY_BOUND = 16 * 2**20
"""Peak bytes a relay may allocate for one huge transaction, whatever its size."""

SIZES = [20_000, pytest.param(200_000, marks=pytest.mark.soak)]


async def test_wal_slot_dropped_while_stopped_sweeps_the_table() -> None:
    async with private_database("postgres") as url:
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("orders")
        collector = await Collector.open(transport, channel)
        engine = create_engine(url)
        name = unique("t").replace(".", "_")
        relay = PostgresWalRelay(engine, transport, name=name)
        try:
            await relay.start()
            await eventually(lambda: relay.active, 10, "streaming")
            async with engine.begin() as conn:
                await write_messages(conn, make_messages(channel, 20))
            await relay.drain(20)
            await eventually(lambda: len(collector.unique_ids) == 20, 10, "the first 20")
            await relay.stop()
            # Committed while no relay runs, then the slot is lost (dropped by an operator,
            # invalidated by max_slot_wal_keep_size...): these rows are in no slot.
            async with engine.begin() as conn:
                await write_messages(conn, make_messages(channel, 30, start=20))
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": relay.slot})
            relay = PostgresWalRelay(engine, transport, name=name)
            await relay.start()
            await eventually(lambda: relay.active, 10, "streaming again")
            async with engine.begin() as conn:
                await write_messages(conn, make_messages(channel, 10, start=50))
            await relay.drain(20)
            await eventually(lambda: len(collector.unique_ids) == 60, 10, "all 60")
            assert collector.seqs_by_key() == {f"k{k}": list(range(k, 60, 4)) for k in range(4)}
            async with engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
            assert left == 0
        finally:
            await relay.stop()
            await relay.drop_slot()
            await collector.close()
            await transport.close()
            await engine.dispose()


async def _relay_through_big_transaction(
    relay: Relay, rows: int, ready: object, sink_client: object, key: str
) -> int:
    """Write ``rows`` in one transaction, let ``relay`` publish them; the peak it allocated."""
    await relay.start()
    await eventually(ready, 20, "the relay to stream")  # type: ignore[arg-type]
    channel = unique("big")
    await write_big_transaction(relay.engine, channel, rows)
    # Speed is not what this test checks (tracemalloc slows the relay several times, and
    # a loaded CI machine more): it fails when publishing stalls for 30 s, or overall
    # after a generous bound, never because the machine is busy.
    deadline = time.monotonic() + 60 + rows / 100
    seen, stalled_at = 0, time.monotonic() + 30
    with traced_peak() as peak:
        while relay.published < rows:
            now = time.monotonic()
            if relay.published > seen:
                seen, stalled_at = relay.published, now + 30
            assert now < stalled_at, f"stalled at {relay.published} of {rows} for 30 s"
            assert now < deadline, f"published {relay.published} of {rows}"
            assert relay.last_error is None, relay.last_error
            await asyncio.sleep(0.05)
    await relay.stop()
    items = await read_sink(sink_client, key)
    by_key = first_seen_by_key(items)
    assert sum(len(v) for v in by_key.values()) == rows
    assert all(seqs == sorted(seqs) for seqs in by_key.values())
    assert len(by_key) == KEYS
    print(f"{relay.mode}: {rows} rows in one transaction, peak {peak[0] / 2**20:.1f} MiB")
    return peak[0]


@pytest.mark.parametrize("rows", SIZES)
async def test_wal_relay_works_through_a_huge_transaction(rows: int) -> None:
    register()
    async with private_database("postgres") as url, sink() as (sink_url, client, key):
        # A short timeout: a relay that stops reading (or answering) the stream while
        # it publishes a big transaction is cut off within 2 s.
        admin = create_engine(url)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            database = make_url(url).database
            await conn.execute(text(f"ALTER DATABASE {database} SET wal_sender_timeout = '2s'"))
        await admin.dispose()
        transport = await connect_transport(sink_url)
        engine = create_engine(url)
        relay = PostgresWalRelay(engine, transport, name=unique("t").replace(".", "_"))
        try:
            peak = await _relay_through_big_transaction(
                relay, rows, lambda: relay.active, client, key
            )
            assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MiB for {rows} rows"
            async with engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
            assert left == 0
        finally:
            await relay.stop()
            await relay.drop_slot()
            await transport.close()
            await engine.dispose()


@pytest.mark.parametrize("rows", SIZES)
async def test_binlog_relay_works_through_a_huge_transaction(rows: int) -> None:
    register()
    async with private_database("mariadb") as url, sink() as (sink_url, client, key):
        transport = await connect_transport(sink_url)
        engine = create_engine(url)
        relay = MysqlBinlogRelay(engine, transport, name=unique("t"))
        try:
            peak = await _relay_through_big_transaction(
                relay, rows, lambda: relay.active and relay.position is not None, client, key
            )
            assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MiB for {rows} rows"
        finally:
            await relay.stop()
            await transport.close()
            await engine.dispose()
