"""Two relays at once, LISTEN/NOTIFY wake-up, mark-and-purge cleanup, the binlog
watchdog, the retained-WAL warning, and the ``relay status`` / ``db init`` commands."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from servicewire.cli.main import main
from servicewire.outbox import outbox, write_messages
from servicewire.relay.mysql_binlog import MysqlBinlogRelay
from servicewire.relay.polling import PollingRelay
from servicewire.relay.postgres_wal import PostgresWalRelay
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from tests.relay.cases import CASES, Case, relay_env
from tests.relay.dbs import private_database
from tests.relay.helpers import Collector, eventually, make_messages, unique


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_two_relays_at_once_keep_key_order_without_double_publish(
    case: Case, tmp_path: Path
) -> None:
    async with relay_env(case, tmp_path) as env:
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("two")
        collector = await Collector.open(transport, channel)
        first = await env.started(transport, batch_size=20)
        second = env.relay(transport, batch_size=20)
        await second.start()
        both_active = 0

        async def watch() -> None:
            nonlocal both_active
            while True:
                both_active += first.active and second.active
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        messages = make_messages(channel, 600, keys=6)
        await asyncio.gather(env.write(messages[:300], per_tx=5), env.write(messages[300:], 5))
        await eventually(lambda: len(collector.unique_ids) == 600, 30, "all 600")
        watcher.cancel()
        assert collector.duplicates == 0
        by_key = collector.seqs_by_key()
        for key, seqs in by_key.items():
            # Two writers: each writer's messages of a key stay in its order.
            assert [s for s in seqs if s < 300] == sorted(s for s in seqs if s < 300), key
            assert [s for s in seqs if s >= 300] == sorted(s for s in seqs if s >= 300), key
        if case.mode != "polling" or case.kind == "sqlite":
            assert both_active == 0, "two owners of one stream at once"
        else:
            await eventually(lambda: first.published + second.published == 600, 10, "both counts")
        await collector.close()


async def test_listen_notify_wakes_a_slow_poller() -> None:
    async with private_database("postgres") as url:
        engine = create_engine(url)
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("notify")
        collector = await Collector.open(transport, channel)
        relay = PollingRelay(engine, transport, poll_interval=30.0, listen=True, name=unique("n"))
        try:
            await relay.start()
            await eventually(lambda: relay._listener is not None, 10, "listening")
            await asyncio.sleep(0.1)  # past the first (empty) poll
            started = time.monotonic()
            async with engine.begin() as conn:
                # Keys on many shards: the notification must wake both batch loops.
                await write_messages(conn, make_messages(channel, 16, keys=16))
            await eventually(lambda: len(collector.unique_ids) == 16, 10, "notified publishes")
            assert time.monotonic() - started < 10.0  # not the 30 s poll
        finally:
            await relay.stop()
            await collector.close()
            await engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mariadb"])
async def test_mark_then_purge(kind: str, tmp_path: Path) -> None:
    async with private_database(kind, tmp_path) as url:
        engine = create_engine(url)
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("mark")
        collector = await Collector.open(transport, channel)
        relay = PollingRelay(engine, transport, cleanup="mark", retention=0.5, cleanup_interval=0.1)

        async def count() -> int:
            async with engine.connect() as conn:
                return int(
                    (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
                )

        try:
            await relay.start()
            async with engine.begin() as conn:
                await write_messages(conn, make_messages(channel, 10))
            await relay.drain(10)
            assert len(collector.unique_ids) == 10
            assert await count() == 10  # published rows are marked, not deleted...
            await eventually(lambda: count_is_zero(count), 10, "the purge")
            assert collector.duplicates == 0
        finally:
            await relay.stop()
            await collector.close()
            await engine.dispose()


async def count_is_zero(count: object) -> bool:
    return await count() == 0  # type: ignore[operator,no-any-return]


async def test_binlog_watchdog_reconnects_a_stalled_stream() -> None:
    async with private_database("mariadb") as url:
        engine = create_engine(url)
        transport = await connect_transport(f"memory://{unique('b')}")
        channel = unique("stall")
        collector = await Collector.open(transport, channel)
        # Heartbeats every 30 s but a 1 s stall limit: an idle stream counts as stalled.
        relay = MysqlBinlogRelay(
            engine, transport, name=unique("w"), heartbeat=30.0, stall_timeout=1.0
        )
        try:
            await relay.start()
            await eventually(lambda: relay.reconnects >= 1, 10, "a watchdog reconnect")
            await eventually(lambda: relay.active, 10, "streaming again")
            async with engine.begin() as conn:
                await write_messages(conn, make_messages(channel, 5))
            await eventually(lambda: len(collector.unique_ids) == 5, 10, "publish after reconnect")
        finally:
            await relay.stop()
            await collector.close()
            await engine.dispose()


async def test_retained_wal_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with private_database("postgres") as url:
        engine = create_engine(url)
        transport = await connect_transport(f"memory://{unique('b')}")
        relay = PostgresWalRelay(engine, transport, name=unique("w").replace(".", "_"))
        relay.retained_wal_warning = -1  # any retained WAL is "too much"
        try:
            with caplog.at_level(logging.WARNING, logger="servicewire.relay"):
                await relay.start()
                await eventually(lambda: "retains" in caplog.text, 10, "the retained-WAL warning")
        finally:
            await relay.stop()
            await relay.drop_slot()
            await engine.dispose()


def test_db_init_and_relay_status_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "init", url]) == 0
    assert "servicewire_outbox" in capsys.readouterr().out
    assert main(["db", "init", url]) == 0  # idempotent

    async def write() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await write_messages(conn, make_messages("cli.orders", 3))
        await engine.dispose()

    asyncio.run(write())
    assert main(["relay", "status", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "backlog:                 3 unpublished" in out
    assert "oldest unpublished age:" in out and "last published:          never" in out
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["relay", "status", "--db", missing]) == 1
    assert "servicewire db init" in capsys.readouterr().err
