"""The polling relay on SQLite, PostgreSQL and MariaDB with the in-memory transport."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from servicewire.outbox import outbox, write_messages
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
            assert left == 0
        finally:
            await relay.stop()
            await collector.close()
            await transport.close()
            await engine.dispose()
