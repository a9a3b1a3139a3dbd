"""What the thread hop of ``sqlite://`` (aiosqlite) costs, and what it buys.

``servicewire.storage.database.create_engine("sqlite:///f.db")`` runs SQLite through
aiosqlite: every statement, commit and checkpoint runs on the connection's own thread
while the event loop carries on. The price is a hop per driver call (put on a queue,
wake the thread, wake the loop). Measured per case, in one run, on a fresh WAL file:

1. transactions/s and CPU per transaction: BEGIN, one INSERT, one SELECT by key,
   COMMIT, one after another;
2. how long the event loop stood still while one slow statement (~0.5 s of SQLite
   work) ran: the largest gap between ticks of a 5 ms heartbeat coroutine (median
   of three runs).

Cases:

* ``servicewire``: ``create_engine("sqlite:///...")`` (SQLAlchemy + aiosqlite);
* ``aiosqlite``: the raw library, the same statements, no SQLAlchemy;
* ``sqlalchemy-sync``: a blocking SQLAlchemy engine (pysqlite) called from the
  coroutine: SQLAlchemy's own cost without the hop, and a loop blocked meanwhile
  (what an inline driver does);
* ``sqlite3``: the raw standard module on the loop, blocking it.

    .venv/bin/python benchmarks/sqlite_driver.py
    .venv/bin/python benchmarks/sqlite_driver.py --n 5000 --rounds 5
    .venv/bin/python benchmarks/sqlite_driver.py --n 100 --rounds 1 --slow-rows 10000  # a check
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event as sa_event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servicewire.storage.database import create_engine

metadata = MetaData()
items = Table(
    "items", metadata, Column("id", Integer, primary_key=True), Column("name", String(32))
)

INSERT = "INSERT INTO items (id, name) VALUES (?, ?)"
SELECT = "SELECT name FROM items WHERE id = ?"
# About 0.5 s of pure SQLite work here: a recursive CTE that counts.
SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
    "SELECT count(*) FROM c"
)
HEARTBEAT = 0.005

Transaction = Callable[[int], Awaitable[None]]
Case = tuple[Transaction, Callable[[], Awaitable[Any]], Callable[[], Awaitable[None]]]
"""A case's transaction (given a fresh key), its slow statement, and its close."""


def _pragmas(conn: Any, _record: Any = None) -> None:
    # The settings create_engine gives SQLite, so every case writes the same way.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


async def _timed(transaction: Transaction, start: int, n: int) -> tuple[float, float]:
    """(wall s, CPU s of the whole process, the driver's thread included) for n calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(start, start + n):
        await transaction(i)
    return time.perf_counter() - wall, time.process_time() - cpu


async def _stall(slow: Callable[[], Awaitable[Any]]) -> float:
    """The longest the loop stood still (s) while ``slow`` ran, seen by a heartbeat."""
    gaps: list[float] = []
    running = True

    async def heartbeat() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(HEARTBEAT)
            now = time.perf_counter()
            gaps.append(now - last - HEARTBEAT)
            last = now

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(HEARTBEAT * 3)
    await slow()
    running = False
    await beat
    return max(gaps)


async def servicewire_case(path: str, slow_rows: int) -> Case:
    engine = create_engine(f"sqlite:///{path}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    insert, lookup = items.insert(), select(items.c.name).where(items.c.id == 0)

    async def transaction(i: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert, {"id": i, "name": f"n{i}"})
            await conn.execute(lookup.where(items.c.id == i))

    async def slow() -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(text(SLOW.replace("?", ":n")), {"n": slow_rows})).scalar()

    return transaction, slow, engine.dispose


async def aiosqlite_case(path: str, slow_rows: int) -> Case:
    conn = await aiosqlite.connect(path)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(32))")
    await conn.commit()

    async def transaction(i: int) -> None:
        await conn.execute(INSERT, (i, f"n{i}"))
        async with conn.execute(SELECT, (i,)) as cursor:
            await cursor.fetchone()
        await conn.commit()

    async def slow() -> Any:
        async with conn.execute(SLOW, (slow_rows,)) as cursor:
            return await cursor.fetchone()

    return transaction, slow, conn.close


async def sqlalchemy_sync_case(path: str, slow_rows: int) -> Case:
    engine = create_sync_engine(f"sqlite+pysqlite:///{path}")
    sa_event.listen(engine, "connect", _pragmas)
    with engine.begin() as conn:
        metadata.create_all(conn)
    insert, lookup = items.insert(), select(items.c.name)

    async def transaction(i: int) -> None:
        with engine.begin() as conn:
            conn.execute(insert, {"id": i, "name": f"n{i}"})
            conn.execute(lookup.where(items.c.id == i))

    async def slow() -> Any:
        with engine.connect() as conn:
            return conn.execute(text(SLOW.replace("?", ":n")), {"n": slow_rows}).scalar()

    async def close() -> None:
        engine.dispose()

    return transaction, slow, close


async def sqlite3_case(path: str, slow_rows: int) -> Case:
    conn = sqlite3.connect(path)
    _pragmas(conn)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(32))")
    conn.commit()

    async def transaction(i: int) -> None:
        conn.execute(INSERT, (i, f"n{i}"))
        conn.execute(SELECT, (i,)).fetchone()
        conn.commit()

    async def slow() -> Any:
        return conn.execute(SLOW, (slow_rows,)).fetchone()

    async def close() -> None:
        conn.close()

    return transaction, slow, close


CASES = {
    "servicewire": servicewire_case,
    "aiosqlite": aiosqlite_case,
    "sqlalchemy-sync": sqlalchemy_sync_case,
    "sqlite3": sqlite3_case,
}


async def measure(name: str, args: argparse.Namespace, tmp: str) -> dict[str, float]:
    """Median wall and CPU µs per transaction over ``rounds`` of ``n``, and the stall."""
    n, rounds = args.n, args.rounds
    transaction, slow, close = await CASES[name](os.path.join(tmp, f"{name}.db"), args.slow_rows)
    try:
        await _timed(transaction, 10_000_000, min(n, 200))  # warm caches and the pool
        walls, cpus = [], []
        for r in range(rounds):
            wall, cpu = await _timed(transaction, r * n, n)
            walls.append(wall / n)
            cpus.append(cpu / n)
        stall = statistics.median([await _stall(slow) for _ in range(3)])
        started = time.perf_counter()
        await slow()
        slow_s = time.perf_counter() - started
    finally:
        await close()
    wall = statistics.median(walls)
    return {
        "tx/s": 1 / wall,
        "wall µs": wall * 1e6,
        "CPU µs": statistics.median(cpus) * 1e6,
        "slow ms": slow_s * 1e3,
        "stall ms": stall * 1e3,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="transactions per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--slow-rows", type=int, default=1_000_000, help="rows the slow statement counts"
    )
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="sw-sqlite-bench-") as tmp:
        for name in args.cases.split(","):
            results[name] = await measure(name, args, tmp)
    columns = ["tx/s", "wall µs", "CPU µs", "slow ms", "stall ms"]
    print(f"{'case':<16}" + "".join(f"{c:>11}" for c in columns))
    for name, row in results.items():
        print(f"{name:<16}" + "".join(f"{row[c]:>11,.0f}" for c in columns))
    ours = results.get("servicewire")
    if ours:
        for base in ("aiosqlite", "sqlalchemy-sync", "sqlite3"):
            if base in results:
                print(
                    f"servicewire / {base}: {ours['tx/s'] / results[base]['tx/s']:.3f}x tx/s, "
                    f"{ours['CPU µs'] / results[base]['CPU µs']:.2f}x CPU per transaction"
                )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
