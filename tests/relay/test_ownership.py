"""One owner per outbox: a relay that lost ownership publishes nothing more.

Each relay publishes to a memory broker of its own, so the test counts what each one
published.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import text

from servicewire.outbox import write_messages
from servicewire.relay.mysql_binlog import MysqlBinlogRelay
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
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
