"""CPU a polling relay spends per row when batches are small, as in a busy service.

A service's embedded relay is woken after each commit and finds the few rows that
commit wrote (4-8 in `benchmarks/pipeline.py`), so its per-batch statements, not the
publishing, decide its cost. This drains N committed rows with ``batch_size=8`` to the
in-memory transport (no broker cost) and prints CPU µs per row and rows/s.

    .venv/bin/python benchmarks/relay_cpu.py --rows 3000 --db pg
    .venv/bin/python benchmarks/relay_cpu.py --rows 2000 --db mariadb

For an A/B against another checkout run it with ``PYTHONPATH=<that checkout>/src``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from servicewire.messaging.message import Message
from servicewire.outbox import write_messages
from servicewire.relay.polling import PollingRelay
from servicewire.storage.schema import all_tables_metadata
from servicewire.transports import connect_transport

SERVERS = {
    "pg": ("postgresql+asyncpg://postgres@127.0.0.1:5432", "postgres", " WITH (FORCE)"),
    "mariadb": ("mysql+aiomysql://root@127.0.0.1:3306", "test", ""),
}


async def drain(url: str, rows: int, name: str) -> tuple[float, float]:
    """(CPU µs per row, rows/s) of a relay draining ``rows`` committed rows."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(all_tables_metadata().create_all)
        messages = [
            Message.create(
                b'{"n": 1}', destination="cpu.x", kind="event", type="b.T", partition_key=f"k{i}"
            )
            for i in range(rows)
        ]
        async with engine.begin() as conn:
            for first in range(0, rows, 500):
                await write_messages(conn, messages[first : first + 500])
        transport = await connect_transport(f"memory://{name}")
        relay = PollingRelay(engine, transport, batch_size=8, poll_interval=0.01)
        cpu, wall = time.process_time(), time.perf_counter()
        await relay.start()
        deadline = wall + 300
        while relay.published < rows and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        await relay.stop()
        await transport.close()
        if relay.published < rows:
            raise RuntimeError(f"only {relay.published}/{rows} published in 300 s")
        return cpu / rows * 1e6, rows / wall
    finally:
        await engine.dispose()


async def main(rows: int, db: str) -> None:
    server, admin_db, force = SERVERS[db]
    name = f"sw_relaycpu_{uuid.uuid4().hex[:6]}"
    admin = create_async_engine(f"{server}/{admin_db}", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        cpu, rate = await drain(f"{server}/{name}", rows, name)
        print(f"{db}: {rows} rows in batches of 8: {cpu:.0f} µs CPU/row, {rate:,.0f} rows/s")
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--db", choices=sorted(SERVERS), default="pg")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.db))
