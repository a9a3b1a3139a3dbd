"""SQLite on aiosqlite: chosen for every sqlite URL, tuned, and never stalling the loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool

from servicewire.storage.database import async_url, create_engine, is_sqlite_memory
from servicewire.timeouts import within

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),
)

# A recursive CTE that counts: pure SQLite work, no I/O, ~0.1-1 s on this machine.
SLOW_COUNT = text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) "
    "SELECT count(*) FROM c"
)


class Heartbeat:
    """Ticks every 10 ms on the loop and remembers the longest gap between ticks."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - last)
            self.ticks += 1
            last = now

    def __enter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


def test_every_sqlite_url_gets_aiosqlite() -> None:
    assert async_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("sqlite+pysqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("sqlite+aiosqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("sqlite://").drivername == "sqlite+aiosqlite"


def test_in_memory_urls_are_recognised() -> None:
    for url in ("sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite://"):
        assert is_sqlite_memory(url), url
    for url in ("sqlite:///orders.db", "postgresql://h/db", "sqlite:///file::memory:"):
        assert not is_sqlite_memory(url), url


async def test_files_get_a_pool_and_wal_and_memory_one_shared_connection(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}", pool_size=1, max_overflow=0)
    memory = create_engine("sqlite://")
    try:
        assert engine.dialect.driver == "aiosqlite"
        # A pooled connection keeps its thread (SQLAlchemy < 2.0.38 chose NullPool).
        assert isinstance(engine.pool, AsyncAdaptedQueuePool)
        assert isinstance(memory.pool, StaticPool)
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 10_000}
    finally:
        await engine.dispose()
        await memory.dispose()


async def test_transactions_commit_roll_back_and_read_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        sessions = async_sessionmaker(engine, class_=AsyncSession)
        async with sessions() as session, session.begin():
            await session.execute(items.insert(), [{"name": "a"}, {"name": "b"}])
        with pytest.raises(exc.IntegrityError):
            async with sessions() as session, session.begin():
                await session.execute(items.insert().values(name="c"))
                await session.execute(items.insert().values(name="a"))  # duplicate
        async with engine.connect() as conn:
            names = (await conn.execute(select(items.c.name).order_by(items.c.name))).scalars()
            assert list(names) == ["a", "b"]  # "c" rolled back with its transaction
            streamed = await conn.stream(select(items.c.name).order_by(items.c.name))
            assert [row.name async for row in streamed] == ["a", "b"]
    finally:
        await engine.dispose()


async def test_in_memory_database_is_shared_by_the_engine() -> None:
    engine = create_engine("sqlite://")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(items.insert().values(name="x"))
        async with engine.connect() as conn:
            assert (await conn.execute(select(items.c.name))).scalar() == "x"
    finally:
        await engine.dispose()


async def test_a_long_statement_leaves_the_loop_free(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'slow.db'}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # connect (thread start, PRAGMAs) first
            started = time.monotonic()
            with Heartbeat() as heartbeat:
                count = (await conn.execute(SLOW_COUNT, {"n": 1_500_000})).scalar()
            took = time.monotonic() - started
        assert count == 1_500_000
        # The statement ran for a while on aiosqlite's thread; the loop kept ticking
        # through it. Run on the loop, the heartbeat would have missed all of it.
        assert took > 0.1, took
        assert heartbeat.ticks >= took / 0.01 / 4, (heartbeat.ticks, took)
        assert heartbeat.longest_gap < took / 2, (heartbeat.longest_gap, took)
    finally:
        await engine.dispose()


async def test_a_locked_database_is_waited_for_without_blocking_the_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    holder, waiter = create_engine(url), create_engine(url)
    try:
        async with holder.begin() as conn:
            await conn.run_sync(metadata.create_all)
        with Heartbeat() as heartbeat:
            async with holder.begin() as conn:
                await conn.execute(items.insert().values(name="first"))  # holds the write lock
                second = asyncio.create_task(_insert(waiter, "second"))
                await asyncio.sleep(0.3)
                assert not second.done()  # SQLite's busy handler waits, on its thread
            await within(second, 5)
        # The holder could commit because the waiter's busy handler slept off the loop.
        assert heartbeat.ticks >= 10, heartbeat.ticks
        async with waiter.connect() as conn:
            names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars()
            assert list(names) == ["first", "second"]
    finally:
        await holder.dispose()
        await waiter.dispose()


async def test_a_lock_held_too_long_fails_with_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    holder, waiter = create_engine(url), create_engine(url, connect_args={"timeout": 0.2})
    try:
        async with holder.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with holder.begin() as conn:
            await conn.execute(items.insert().values(name="first"))
            with pytest.raises(exc.OperationalError, match="database is locked"):
                await within(_insert(waiter, "second"), 5)
        async with waiter.connect() as conn:  # nothing of the failed writer was kept
            names = (await conn.execute(select(items.c.name))).scalars()
            assert list(names) == ["first"]
    finally:
        await holder.dispose()
        await waiter.dispose()


async def _insert(engine: AsyncEngine, name: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(items.insert().values(name=name))
