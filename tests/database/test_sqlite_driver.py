"""The inline SQLite driver: chosen by default, correct, and polite about the write lock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from servicewire.storage import sqlite as sqlite_driver
from servicewire.storage.database import async_url, create_engine
from servicewire.timeouts import within

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),
)


def test_plain_sqlite_urls_get_the_inline_driver_and_explicit_drivers_stay() -> None:
    assert async_url("sqlite:///x.db").drivername == "sqlite+inline"
    assert async_url("sqlite+pysqlite:///x.db").drivername == "sqlite+inline"
    assert async_url("sqlite+aiosqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("sqlite+inline://").drivername == "sqlite+inline"


async def test_transactions_commit_roll_back_and_read_back(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        assert engine.dialect.driver == sqlite_driver.DRIVER
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
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


async def test_a_locked_database_is_waited_for_without_blocking_the_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    holder, waiter = create_engine(url), create_engine(url)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    try:
        async with holder.begin() as conn:
            await conn.run_sync(metadata.create_all)
        tick_task = asyncio.create_task(ticker())
        async with holder.begin() as conn:
            await conn.execute(items.insert().values(name="first"))  # holds the write lock
            started = time.monotonic()
            second = asyncio.create_task(_insert(waiter, "second"))
            await asyncio.sleep(0.3)
            assert not second.done()  # waiting for the lock, politely
        await within(second, 5)
        waited = time.monotonic() - started
        tick_task.cancel()
        # The loop kept running while the second writer waited (SQLite's own busy handler
        # would have frozen it, and with it the holder that must commit).
        assert ticks >= 10, (ticks, waited)
        async with waiter.connect() as conn:
            names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars()
            assert list(names) == ["first", "second"]
    finally:
        await holder.dispose()
        await waiter.dispose()


async def test_a_lock_held_too_long_fails_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_driver, "BUSY_TIMEOUT", 0.2)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    holder, waiter = create_engine(url), create_engine(url)
    try:
        async with holder.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with holder.begin() as conn:
            await conn.execute(items.insert().values(name="first"))
            with pytest.raises(exc.OperationalError, match="database is locked"):
                await within(_insert(waiter, "second"), 5)
    finally:
        await holder.dispose()
        await waiter.dispose()


async def test_aiosqlite_stays_available_explicitly(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}")
    try:
        assert engine.dialect.driver == "aiosqlite"
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(items.insert().values(name="z"))
        async with engine.connect() as conn:
            assert (await conn.execute(select(items.c.name))).scalar() == "z"
    finally:
        await engine.dispose()


async def _insert(engine: AsyncEngine, name: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(items.insert().values(name=name))
