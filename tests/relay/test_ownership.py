"""One owner per outbox: a relay that lost ownership publishes nothing more.

Each relay publishes to a memory broker of its own, so the test counts what each one
published.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from servicewire.outbox import write_messages
from servicewire.relay.mysql_binlog import MysqlBinlogRelay
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from tests.relay.cases import CASES, Case, relay_env
from tests.relay.dbs import private_database
from tests.relay.helpers import Collector, eventually, make_messages, unique


@dataclass
class Sink:
    """A broker of one relay's own, and what arrived there."""

    transport: Transport
    collector: Collector


@contextlib.asynccontextmanager
async def sinks(channel: str, count: int) -> AsyncIterator[list[Sink]]:
    opened: list[Sink] = []
    try:
        for _ in range(count):
            transport = await connect_transport(f"memory://{unique('sink')}")
            opened.append(Sink(transport, await Collector.open(transport, channel)))
        yield opened
    finally:
        for sink in opened:
            await sink.collector.close()
            await sink.transport.close()


async def test_binlog_relay_whose_lock_connection_died_stops_publishing() -> None:
    """KILL the owner's GET_LOCK connection: the server frees the lock, a standby takes
    it, and the former owner must not publish what it still reads from the binlog."""
    channel = unique("orders")
    async with private_database("mariadb") as url, sinks(channel, 2) as (first_sink, second_sink):
        engine = create_engine(url)
        name = unique("t").replace(".", "_")
        first = MysqlBinlogRelay(engine, first_sink.transport, name=name, takeover_interval=0.2)
        second = MysqlBinlogRelay(engine, second_sink.transport, name=name, takeover_interval=0.2)
        try:
            await first.start()
            await eventually(lambda: first.active and first.position is not None, 15, "owner")
            async with engine.connect() as conn:
                holder = (
                    await conn.execute(text("SELECT IS_USED_LOCK(:n)"), {"n": first.lock_name})
                ).scalar()
                assert holder is not None
                await conn.execute(text(f"KILL {int(holder)}"))
            await second.start()
            await eventually(lambda: second.active, 15, "the standby to take the lock")
            messages = make_messages(channel, 200, keys=4)
            for i in range(0, 200, 10):
                async with engine.begin() as conn:
                    await write_messages(conn, messages[i : i + 10])
            want = {m.id for m in messages}
            await eventually(
                lambda: want <= second_sink.collector.unique_ids, 20, "the new owner to publish"
            )
            await second.drain(10)
            assert first_sink.collector.unique_ids == set(), (
                f"the former owner published {len(first_sink.collector.unique_ids)} messages "
                "after its lock connection died"
            )
            assert not first.active
        finally:
            await first.stop()
            await second.stop()
            await engine.dispose()


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_relays_with_different_names_share_one_owner(case: Case, tmp_path: Path) -> None:
    """An embedded relay and a CLI relay, named differently, on one outbox: each message
    goes out once and per-key order holds; where ownership is exclusive (a lease, a slot,
    a lock) only one of them publishes."""
    channel = unique("orders")
    async with relay_env(case, tmp_path) as env:
        broker = f"memory://{unique('broker')}"
        seen = await connect_transport(broker)
        collector = await Collector.open(seen, channel)
        transports = [await connect_transport(broker) for _ in range(2)]
        try:
            messages = make_messages(channel, 600, keys=4)
            await env.write(messages[:300], per_tx=10)
            options = {"batch_size": 20}
            if case.mode != "polling":
                options["takeover_interval"] = 0.2
            relays = [
                env.relay(transports[0], name=f"{env.name}_svc", **options),
                env.relay(transports[1], name=f"{env.name}_cli", **options),
            ]
            for relay in relays:
                await relay.start()
            await eventually(lambda: any(r.active for r in relays), 15, "an owner")
            await env.write(messages[300:], per_tx=10)
            want = {m.id for m in messages}
            await eventually(lambda: want <= collector.unique_ids, 30, "all 600", interval=0.05)
            published = [r.published for r in relays]
            assert collector.duplicates == 0, f"published twice: {published}"
            assert collector.seqs_by_key() == {f"k{k}": list(range(k, 600, 4)) for k in range(4)}
            if case.mode != "polling" or case.kind == "sqlite":
                assert min(published) == 0, f"two owners published: {published}"
        finally:
            await collector.close()
            for transport in [seen, *transports]:
                await transport.close()
