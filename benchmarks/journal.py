"""Journal benchmark: how long recording a message holds the event loop.

A service records every send and receive to its journal from the event loop (the
commit hook and the outcome hook). ``SqlJournal`` inserts synchronously through a
blocking engine; ``BufferedJournal`` (``servicewire.telemetry.sql_journal``) queues the
record for a writer thread. For each database this records ``--messages`` sends both
ways, one per event-loop turn, and prints the time each call blocked the loop (mean,
p99, max), a ticker task's worst lateness (what other tasks felt), and the ratio.

    .venv/bin/python benchmarks/journal.py                      # SQLite and PostgreSQL
    .venv/bin/python benchmarks/journal.py --messages 5000 --databases sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from servicewire import Message
from servicewire.storage.database import sync_url
from servicewire.telemetry.journal import SqlJournal, journal_table
from servicewire.telemetry.journal_buffer import BufferedJournal


async def _ticker(stop: asyncio.Event, lateness: list[float]) -> None:
    # Sleeps 1 ms at a time; how late it wakes is how long someone held the loop.
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lateness.append(time.perf_counter() - started - 0.001)


async def measure(journal: Any, n: int, label: str) -> dict[str, float]:
    stop = asyncio.Event()
    lateness: list[float] = []
    ticker = asyncio.create_task(_ticker(stop, lateness))
    blocked: list[float] = []
    started = time.perf_counter()
    for i in range(n):
        message = Message.create(b"{}", destination="orders", type="bench.Ping",
                                 correlation_id=f"c-{i % 50}")  # fmt: skip
        t0 = time.perf_counter()
        journal.record_send("bench-service", message)
        blocked.append(time.perf_counter() - t0)
        await asyncio.sleep(0)
        if (i + 1) % max(1, n // 4) == 0:
            print(f"  {label}: {i + 1}/{n}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    if isinstance(journal, BufferedJournal):
        journal.flush()
    stop.set()
    await ticker
    blocked.sort()
    return {
        "mean_us": statistics.fmean(blocked) * 1e6,
        "p99_us": blocked[int(len(blocked) * 0.99)] * 1e6,
        "max_ms": blocked[-1] * 1e3,
        "ticker_max_ms": max(lateness, default=0.0) * 1e3,
        "per_s": n / elapsed,
    }


def run_case(url: str, n: int) -> None:
    engine = create_engine(sync_url(url))
    journal_table.create(engine, checkfirst=True)
    direct = asyncio.run(measure(SqlJournal(engine), n, "SqlJournal"))
    buffered_journal = BufferedJournal(SqlJournal(engine))
    buffered = asyncio.run(measure(buffered_journal, n, "BufferedJournal"))
    buffered_journal.close()
    with engine.begin() as conn:
        written = conn.execute(
            text(f"select count(*) from {journal_table.name} where service = 'bench-service'")
        ).scalar_one()
        conn.execute(journal_table.delete().where(journal_table.c.service == "bench-service"))
    engine.dispose()
    print(f"\n{url.split('://')[0]} ({n} records each, {written} rows written)")
    print(f"{'':18}{'mean us':>10}{'p99 us':>10}{'max ms':>10}{'loop max ms':>13}{'rec/s':>10}")
    for name, r in (("SqlJournal", direct), ("BufferedJournal", buffered)):
        print(f"{name:18}{r['mean_us']:>10.1f}{r['p99_us']:>10.1f}{r['max_ms']:>10.2f}"
              f"{r['ticker_max_ms']:>13.2f}{r['per_s']:>10.0f}")  # fmt: skip
    print(
        f"loop time per record, direct / buffered: {direct['mean_us'] / buffered['mean_us']:.0f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgres")
    args = parser.parse_args()
    for name in args.databases.split(","):
        if name == "sqlite":
            path = Path(tempfile.mkdtemp()) / "journal.db"
            run_case(f"sqlite:///{path}", args.messages)
        elif name == "postgres":
            run_case("postgresql://postgres@127.0.0.1:5432/test", args.messages)
        else:
            raise SystemExit(f"unknown database {name}")


if __name__ == "__main__":
    main()
