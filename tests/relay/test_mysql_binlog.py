"""The MariaDB binlog-tailing relay against the local MariaDB (ROW binlog, full metadata)."""

from __future__ import annotations

from sqlalchemy import func, select

from servicewire.outbox import outbox, write_messages
from servicewire.relay.mysql_binlog import MysqlBinlogRelay
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from tests.relay.dbs import private_database
from tests.relay.helpers import Collector, eventually, make_messages, unique


async def test_streams_inserts_and_resumes() -> None:
    async with private_database("mariadb") as url:
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("orders")
        collector = await Collector.open(transport, channel)
        engine = create_engine(url)
        name = unique("t")
        relay = MysqlBinlogRelay(engine, transport, name=name)
        try:
            await relay.start()
            await eventually(lambda: relay.active and relay.position is not None, 10, "ownership")
            async with engine.begin() as conn:
                await write_messages(conn, make_messages(channel, 100))
            await relay.drain(20)
            await eventually(lambda: len(collector.unique_ids) == 100, 10, "all 100")
            assert collector.seqs_by_key() == {f"k{k}": list(range(k, 100, 4)) for k in range(4)}
            await relay.stop()
            # Written while no relay runs: the next one resumes from the checkpoint.
            async with engine.begin() as conn:
                await write_messages(conn, make_messages(channel, 50, start=100))
            relay = MysqlBinlogRelay(engine, transport, name=name)
            await relay.start()
            await relay.drain(20)
            await eventually(lambda: len(collector.unique_ids) == 150, 10, "all 150")
            async with engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
            assert left == 0
        finally:
            await relay.stop()
            await collector.close()
            await transport.close()
            await engine.dispose()
