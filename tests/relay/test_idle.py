"""An idle polling relay backs off to a few cheap statements a second and still answers
at once to a commit of its own process, and within ``max_poll_interval`` to rows that
another writer committed without waking it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.outbox import write_messages
from servicewire.relay.polling import PollingRelay
from servicewire.storage.database import create_engine
from tests.relay.dbs import KINDS, private_database
from tests.relay.helpers import Collector, eventually, make_messages, unique

POLL = 0.25  # the Service default
CAP = 1.0  # backs off to this quickly; the default (2 s) would only make the tests longer


@dataclass
class Idle:
    """A started relay on a private database, the statements its engine ran, and a consumer."""

    relay: PollingRelay
    engine: AsyncEngine
    writer: AsyncEngine  # another connection pool: "another process" that never wakes it
    collector: Collector
    channel: str
    statements: int = 0

    async def write(self, count: int, engine: AsyncEngine | None = None) -> None:
        async with (engine or self.engine).begin() as conn:
            await write_messages(conn, make_messages(self.channel, count))

    async def published(self, count: int, timeout: float) -> float:
        """Seconds until ``count`` messages arrived (polled every millisecond)."""
        started = time.monotonic()
        await eventually(
            lambda: len(self.collector.unique_ids) >= count, timeout, "publishes", 0.001
        )
        return time.monotonic() - started


@contextlib.asynccontextmanager
async def idle_relay(
    kind: str, tmp: Path, poll: float = POLL, cap: float = CAP, **options: Any
) -> AsyncIterator[Idle]:
    async with private_database(kind, tmp) as url:
        from servicewire.transports import connect_transport

        engine, writer = create_engine(url), create_engine(url)
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("idle")
        collector = await Collector.open(transport, channel)
        relay = PollingRelay(
            engine,
            transport,
            poll_interval=poll,
            max_poll_interval=cap,
            name=unique("idle"),
            **options,
        )
        idle = Idle(relay, engine, writer, collector, channel)

        def count(*_: Any) -> None:
            idle.statements += 1

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            await relay.start()
            yield idle
        finally:
            await relay.stop()
            await collector.close()
            await transport.close()
            await engine.dispose()
            await writer.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_idle_relay_backs_off_then_answers_a_commit_at_once(
    kind: str, tmp_path: Path
) -> None:
    async with idle_relay(kind, tmp_path) as idle:
        await asyncio.sleep(POLL + 2 * POLL + 4 * POLL + 0.2)  # backed off to the cap
        idle.statements = 0
        await asyncio.sleep(5.0)
        # Fixed 0.25 s polling ran 24 (SQLite) and 80 (PostgreSQL) statements here.
        assert idle.statements <= 12, f"{idle.statements} statements in 5 s idle"

        await idle.write(3)
        idle.relay.wake()  # what a service does after its commit
        latency = await idle.published(3, 5)
        assert latency < 0.05, f"published {latency * 1000:.0f} ms after commit"


@pytest.mark.parametrize("kind", KINDS)
async def test_rows_of_another_writer_go_out_within_the_cap(kind: str, tmp_path: Path) -> None:
    async with idle_relay(kind, tmp_path) as idle:
        await asyncio.sleep(POLL + 2 * POLL + 4 * POLL + 0.2)  # backed off to the cap
        await idle.write(5, idle.writer)  # no wake(), no NOTIFY listener
        latency = await idle.published(5, 10)
        assert latency < CAP + 0.5, f"published {latency:.2f} s after commit (cap {CAP} s)"


async def test_a_lost_listen_connection_is_reopened(tmp_path: Path) -> None:
    # Polls every 30 s: only NOTIFY can publish the row in time.
    async with idle_relay("postgres", tmp_path, poll=30.0, cap=30.0, listen=True) as idle:
        await eventually(lambda: idle.relay._listener is not None, 10, "listening")
        lost = idle.relay._listener
        async with idle.writer.connect() as conn:
            await conn.execute(text(f"SELECT pg_terminate_backend({lost.get_server_pid()})"))
        await eventually(
            lambda: idle.relay._listener not in (None, lost), 10, "a new LISTEN connection"
        )
        await asyncio.sleep(0.3)  # past the look that follows the reconnect
        await idle.write(2, idle.writer)
        latency = await idle.published(2, 10)
        assert latency < 2.0, f"published {latency:.2f} s after commit (not notified?)"
