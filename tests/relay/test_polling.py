"""The polling relay on SQLite, PostgreSQL and MariaDB with the in-memory transport."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from servicewire.outbox import outbox, write_messages
from servicewire.outbox.tables import relay_shard
from servicewire.relay.ownership import OWNER_KEY
from servicewire.relay.polling import PollingRelay
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from tests.relay.dbs import KINDS, private_database
from tests.relay.helpers import Collector, eventually, make_messages, unique


@pytest.mark.parametrize("kind", KINDS)
async def test_publishes_and_deletes(kind: str, tmp_path: Path) -> None:
    async with private_database(kind, tmp_path) as url:
        engine = create_engine(url)
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("orders")
        collector = await Collector.open(transport, channel)
        relay = PollingRelay(engine, transport, batch_size=50)
        try:
            started = time.time()
            await relay.start()
            messages = make_messages(channel, 120)
            async with engine.begin() as conn:
                await write_messages(conn, messages)
            relay.wake()
            await relay.drain(20)
            await eventually(lambda: len(collector.unique_ids) == 120, 10, "all 120")
            assert collector.seqs_by_key() == {f"k{k}": list(range(k, 120, 4)) for k in range(4)}
            async with engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
                # Each batch adds what it published to its shards' progress counters
                # (SQLite: the lease row's), in the transaction that deletes the rows.
                counted = await conn.execute(
                    select(
                        func.sum(relay_shard.c.published), func.max(relay_shard.c.last_published_at)
                    ).where(relay_shard.c.relay == OWNER_KEY)
                )
                published, last_at = counted.one()
            assert left == 0
            assert published == 120
            assert last_at is not None and last_at >= started
        finally:
            await relay.stop()
            await collector.close()
            await transport.close()
            await engine.dispose()


async def test_mariadb_claim_never_takes_a_later_row_of_a_key_without_the_earlier(
    tmp_path: Path,
) -> None:
    """A row the claim cannot lock must not let a later row of its key out first.

    On MariaDB a locking read (``FOR UPDATE SKIP LOCKED``) sees each row as the scan
    reaches it: a writer committing mid-scan had its first rows skipped (still locked)
    and its last ones taken, so seq 158 went out before seq 150 (test_processes, under
    load). Here a lock held on seq 0 stands in for that moment, deterministically: seq 8
    (same key) is free. PostgreSQL is not in this test: its claim reads one snapshot, so
    a writer's rows are all there or none, and it keeps SKIP LOCKED for its shard workers.
    """
    async with private_database("mariadb", tmp_path) as url:
        engine = create_engine(url)
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("orders")
        collector = await Collector.open(transport, channel)
        relay = PollingRelay(engine, transport, batch_size=50)
        messages = make_messages(channel, 16, keys=8)
        async with engine.begin() as conn:
            await write_messages(conn, messages)
        locker = await engine.connect()
        try:
            lock = await locker.begin()
            first = select(outbox.c.id).order_by(outbox.c.id).limit(1).with_for_update()
            await locker.execute(first)
            await relay.start()
            relay.wake()
            # Old claim: skipped seq 0 and published the other 15 (seq 8 among them).
            # Plain claim: publishes all 16, then its delete waits for the lock.
            await eventually(lambda: len(collector.unique_ids) >= 15, 10, "15 published")
            await lock.rollback()
            await relay.drain(20)
            await eventually(lambda: len(collector.unique_ids) == 16, 10, "all 16")
            assert collector.seqs_by_key() == {f"k{k}": [k, k + 8] for k in range(8)}
        finally:
            await locker.close()
            await relay.stop()
            await collector.close()
            await transport.close()
            await engine.dispose()


async def test_postgres_relay_keeps_its_connections_between_batches(tmp_path: Path) -> None:
    """A batch loop reuses its connection (no pool checkout per batch), and a stopped
    relay gives every connection back."""
    async with private_database("postgres", tmp_path) as url:
        engine = create_engine(url)
        balance: list[int] = []
        pool = engine.sync_engine.pool
        event.listen(pool, "checkout", lambda *a: balance.append(1))
        event.listen(pool, "checkin", lambda *a: balance.append(-1))
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("orders")
        collector = await Collector.open(transport, channel)
        # Woken by each commit; the watcher's own looks (a pool checkout each) are rare.
        relay = PollingRelay(
            engine, transport, batch_size=5, concurrency=1, poll_interval=5, max_poll_interval=5
        )
        try:
            await relay.start()
            for first in range(0, 60, 6):  # ten commits of 6 rows: 12 batches of 5 or more
                async with engine.begin() as conn:
                    await write_messages(conn, make_messages(channel, 6, start=first))
                relay.wake()
                await eventually(lambda n=first + 6: len(collector.unique_ids) == n, 10, "sent")
            checkouts = balance.count(1)
        finally:
            await relay.stop()
            await collector.close()
            await transport.close()
        # The ten writers' own, the relay's start and a look or two, and one for every
        # batch (at least 12 batches: a checkout each would make it 22 or more).
        assert checkouts <= 16, checkouts
        assert sum(balance) == 0
        await engine.dispose()
