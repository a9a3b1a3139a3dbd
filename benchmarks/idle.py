"""Idle cost: CPU and database statements of a Service that has nothing to do.

A service with one handler and the embedded polling relay is started on the memory
transport, left alone for ``--warmup`` seconds (so an adaptive relay has backed off),
then measured for ``--seconds``: CPU of this process (``time.process_time``, user +
system, all threads) as a share of one core, and the statements its engine executed.

    .venv/bin/python benchmarks/idle.py                          # sqlite and postgres
    .venv/bin/python benchmarks/idle.py --dbs sqlite --seconds 20
    .venv/bin/python benchmarks/idle.py --fixed                  # + the old fixed 0.25 s poll

``--fixed`` adds a run whose relay never backs off (``max_poll_interval`` equal to the
poll interval), which is how the relay polled before it backed off.
PostgreSQL runs in a private database (created and dropped); needs it on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from servicewire import Command, Context, Service, ServiceOptions
from servicewire.storage.database import create_engine

PG = os.environ.get("SERVICEWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
POLL_INTERVAL = 0.25  # the Service default


class Ping(Command, name="bench.idle.Ping", version="1.0.0", channel="bench-idle"):
    """The one message type the idle service handles (and never receives)."""

    n: int


@contextlib.asynccontextmanager
async def database(kind: str) -> AsyncIterator[str]:
    """An empty database URL of ``kind``: a temporary SQLite file or a private PG database."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/idle.db"
        return
    name = f"sw_idle_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG)
    try:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
        try:
            yield make_url(PG).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        await admin.dispose()


async def measure(kind: str, fixed: bool, warmup: float, seconds: float) -> tuple[float, float]:
    """(CPU % of one core, statements/s) of an idle service on ``kind``."""
    async with database(kind) as url:
        broker = f"memory://{uuid.uuid4().hex}"
        service = Service(
            f"idle-{kind}", db=url, transport=broker, options=ServiceOptions(relay=not fixed)
        )

        @service.handles(Ping)
        async def ping(cmd: Ping, ctx: Context) -> None:
            """Never called: the service only has to be ready."""

        await service.start()
        relay = None
        if fixed:
            from servicewire.relay.polling import PollingRelay

            assert service.engine is not None and service.transport is not None
            relay = PollingRelay(
                service.engine,
                service.transport,
                poll_interval=POLL_INTERVAL,
                max_poll_interval=POLL_INTERVAL,
                name="idle-fixed-relay",
            )
            await relay.start()
        try:
            assert service.engine is not None
            statements = 0

            def count(*_: Any) -> None:
                nonlocal statements
                statements += 1

            event.listen(service.engine.sync_engine, "before_cursor_execute", count)
            await asyncio.sleep(warmup)
            statements = 0
            cpu, wall = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            return 100 * cpu / wall, statements / wall
        finally:
            if relay is not None:
                await relay.stop()
            await service.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dbs", default="sqlite,postgres")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fixed", action="store_true", help="also the never-backing-off relay")
    args = parser.parse_args()
    print(f"{'database':<10} {'relay':<14} {'CPU % of a core':>16} {'statements/s':>13}")
    for kind in args.dbs.split(","):
        for fixed in (True, False) if args.fixed else (False,):
            cpu, rate = await measure(kind, fixed, args.warmup, args.seconds)
            label = "fixed 0.25 s" if fixed else "default"
            print(f"{kind:<10} {label:<14} {cpu:>16.2f} {rate:>13.1f}", flush=True)
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
