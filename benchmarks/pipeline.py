"""Commands per second through the whole delivery pipeline, and what the framework costs.

Each handled command is: decode, inbox insert, the handler writing one row and sending
one reply, outbox insert, commit, ack. Measured per configuration:

1. throughput: a pre-filled channel of N commands drained by one service instance
   (with its relay publishing the replies, and again with no relay in the process);
2. latency p50/p99 from publish to handler commit at a steady offered load (after a
   second of warm-up at that load: a new consumer's start is not the steady state);
3. the framework's own overhead per message: the pipeline driven directly (no broker)
   minus the same SQL statements run raw with SQLAlchemy Core, batch for batch;
4. where time goes: a cProfile of the hot path, grouped by package.

The pipeline runs deliveries in batches (group commit, ServiceOptions.batch_size), so
the raw side of (3) runs the very statements a batch of B sends, on a bare
AsyncConnection with no session, no context, no middleware: one transaction; one
multi-row inbox INSERT .. ON CONFLICT DO NOTHING RETURNING; per message a SAVEPOINT
(none in a batch of one) and the handler's INSERT; one multi-row outbox INSERT;
COMMIT. The difference is what servicewire adds per message (decode, lookup, the
Context, the session, the middleware, building the outbox rows, settling, the reply's
envelope, which the raw side builds before the clock starts). It is measured at
B = 16 (the default batch size, what a busy consumer forms) and at B = 1 (a quiet
consumer: one delivery per transaction); both sides of a row use the same B.

Baselines in the same run: raw aio-pika consume-with-ack (RabbitMQ) and the raw memory
transport loop.

    .venv/bin/python benchmarks/pipeline.py                 # sqlite+memory, postgres+amqp
    .venv/bin/python benchmarks/pipeline.py --only sqlite --n 3000
    .venv/bin/python benchmarks/pipeline.py --only postgres --pg-transport memory
    .venv/bin/python benchmarks/pipeline.py --only postgres --loop uvloop   # as ftgo serve

SQLite runs on aiosqlite (``sqlite://``'s driver: a thread hop per driver call);
benchmarks/sqlite_driver.py measures that hop against sqlite3 on the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servicewire import Command, Context, Service, ServiceOptions, SuccessReply
from servicewire.codecs import to_message
from servicewire.messaging.message import Message
from servicewire.outbox.tables import outbox
from servicewire.outbox.writer import INSERT_ROWS_SQL, insert_rows_args, outbox_rows
from servicewire.pipeline.inbox import inbox
from servicewire.storage.asyncpg_direct import AsyncpgDirect
from servicewire.storage.database import create_engine
from servicewire.testing import HarnessDelivery
from servicewire.timeouts import within
from servicewire.transports import Transport, connect_transport

PG_ADMIN = os.environ.get("SERVICEWIRE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
AMQP = os.environ.get("SERVICEWIRE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
# Per run, and deleted afterwards: replies pile up in a sink nobody reads.
REPLIES = f"bench.replies.{uuid.uuid4().hex[:8]}"

bench_tables = MetaData()
tickets = Table(
    "bench_tickets",
    bench_tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False),
)


class MakeTicket(
    Command, name="bench.MakeTicket", version="1.0.0", channel="bench-tickets", key="order_id"
):
    order_id: str
    note: str = ""


class TicketMade(SuccessReply, name="bench.TicketMade", version="1.0.0"):
    order_id: str


def build_service(
    db: str | AsyncEngine, transport: str, channel: str, latencies: list[float] | None
) -> Service:
    def on_outcome(message: Message, outcome: Any, spec: Any) -> None:
        sent = message.headers.get("benchsent")
        if latencies is not None and sent is not None:
            latencies.append(time.perf_counter() - float(sent))

    service = Service(
        "bench",
        db=db,
        transport=transport,
        # The relay as a service runs it (woken by each commit, polling every 0.25 s
        # otherwise); the handler writes its row through ctx.connection (Core).
        options=ServiceOptions(tables=[bench_tables], on_outcome=on_outcome),
    )

    @service.handles(MakeTicket, channel=channel)
    async def make(cmd: MakeTicket, ctx: Context) -> None:
        await ctx.connection.execute(tickets.insert().values(order_id=cmd.order_id))
        await ctx.reply(TicketMade(order_id=cmd.order_id))

    return service


def commands(n: int, channel: str, offset: int = 0) -> list[Message]:
    return [
        to_message(
            MakeTicket(order_id=f"o-{offset + i}", note="x" * 100),
            destination=channel,
            reply_to=REPLIES,
        )
        for i in range(n)
    ]


async def fresh_pg_database() -> str:
    name = f"sw_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return f"{PG_ADMIN}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def throughput(
    db: str, transport_url: str, n: int, relay: bool = True
) -> tuple[float, float, float, float]:
    """(commands/s, CPU µs per command in this process, relay and publisher included),
    from the service's start and again at steady state: over the commands after the
    first fifth (the start, joining the group and taking shards, is not in it).

    ``relay=False``: no relay in this process (the replies stay in the outbox, as when
    a relay runs elsewhere): the pipeline's own capacity.
    """
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    publisher = await connect_transport(transport_url)
    await publisher.declare(channel, "bench")
    await publisher.declare(REPLIES, "sink")
    for chunk in range(0, n, 500):
        await publisher.publish_batch(commands(min(500, n - chunk), channel, chunk))
    service = build_service(db, transport_url, channel, None)
    service.options = replace(service.options, relay=relay)
    start = time.perf_counter()
    cpu = time.process_time()
    await service.start()
    last = 0
    deadline = start + 600
    steady: tuple[float, float, int] | None = None  # (wall, CPU, handled) at a fifth
    while service.stats["handled"] < n:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {service.stats['handled']}/{n} handled in 600 s")
        await asyncio.sleep(0.01)
        done = service.stats["handled"]
        if steady is None and done >= n // 5:
            steady = (time.perf_counter(), time.process_time(), done)
        if done - last >= max(1, n // 5):
            print(f"    ... {done}/{n}", flush=True)
            last = done
    end, end_cpu = time.perf_counter(), time.process_time()
    await service.stop()
    await cleanup(publisher, channel)
    assert steady is not None
    counted = max(1, n - steady[2])
    return (
        n / (end - start),
        (end_cpu - cpu) / n * 1e6,
        counted / (end - steady[0]),
        (end_cpu - steady[1]) / counted * 1e6,
    )


async def cleanup(transport: Transport, channel: str) -> None:
    """Delete the run's groups and channels (with their ``.dlq`` channels): brokers keep
    them otherwise. Best effort: the figures are measured already."""
    for name, group in ((channel, "bench"), (REPLIES, "sink")):
        with contextlib.suppress(Exception):
            await transport.tear_down(name, [group])
    await transport.close()


WARMUP_SECONDS = 1.0
"""Offered load before latency is recorded: a consumer that has just joined its group
waits for the membership answers and takes its shards, and the first statements on each
connection are prepared; those first deliveries (up to ~250 ms) are the cold start, not
the steady state this figure is about."""
WARM_NOTE = f"publish to commit, after {WARMUP_SECONDS:g} s of warm-up at that rate"


async def latency(db: str, transport_url: str, rate: int, seconds: float) -> tuple[float, float]:
    """p50/p99 ms from publish to handler commit at ``rate``/s for ``seconds``, after
    :data:`WARMUP_SECONDS` at the same rate that are not recorded."""
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    service = build_service(db, transport_url, channel, latencies)
    publisher = await connect_transport(transport_url)
    await publisher.declare(REPLIES, "sink")
    await service.start()
    warm = int(rate * WARMUP_SECONDS)
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(warm + total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # Only messages past the warm-up carry the header the outcome hook records.
        stamp = "benchsent" if i >= warm else "benchwarm"
        message = to_message(
            MakeTicket(order_id=f"l-{i}"),
            destination=channel,
            reply_to=REPLIES,
            extra={stamp: repr(time.perf_counter())},
        )
        await within(publisher.publish(message), 30)  # a stuck broker fails the run
    deadline = time.perf_counter() + 30
    while len(latencies) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    await service.stop()
    await cleanup(publisher, channel)
    if not latencies:
        raise RuntimeError(f"no command handled within 30 s of the last publish ({total} sent)")
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    return p50, p99


class Overhead:
    """CPU and wall µs per message: the pipeline without a broker, and bare SQL."""

    def __init__(self) -> None:
        self.pipe_cpu = self.pipe_wall = self.sql_cpu = self.sql_wall = 0.0
        self.stats: pstats.Stats | None = None

    def row(self, label: str) -> tuple[str, str, str]:
        return (
            label,
            f"{self.pipe_cpu - self.sql_cpu:.0f} µs CPU/msg",
            f"pipeline {self.pipe_cpu:.0f} µs CPU ({self.pipe_wall:.0f} wall) vs raw SQL "
            f"{self.sql_cpu:.0f} µs CPU ({self.sql_wall:.0f} wall), per msg",
        )


async def overhead(
    db: str | AsyncEngine, n: int, profile: bool = True, batch: int = 16
) -> Overhead:
    """The pipeline driven directly (no broker) against the same SQL run raw, per batch.

    CPU time (time.process_time) is the figure to trust on a shared machine: wall time
    also counts the other processes' turns on the two cores and the database's work.
    Even CPU time swings with the machine's load (caches, slower syscalls), so the two
    run in alternating rounds of about 100 messages and each figure is the median over
    the rounds.
    """
    result = Overhead()
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    service = build_service(db, f"memory://{uuid.uuid4().hex}", channel, None)
    service.options = replace(service.options, relay=False)
    service._subscribe = False
    await service.start()
    pipeline = next(iter(service.pipelines.values()))
    engine = service.engine
    assert engine is not None
    claim, claim_one = _raw_claim(engine.dialect.name)
    messages = commands(n + 64, channel)
    replies = [to_message(TicketMade(order_id=f"r-{i}"), destination=REPLIES) for i in range(n)]

    async def bare(first: int, last: int) -> None:
        async with engine.begin() as conn:
            savepoint = await _cheapest_savepoint(conn)
            now = _now()
            rows = [
                {"consumer_group": "raw", "message_id": f"{channel}-{i}", "processed_at": now}
                for i in range(first, last)
            ]
            if len(rows) > 1:
                await conn.execute(claim, rows)
            else:  # as ours: one id needs no RETURNING, the row count tells
                await conn.execute(claim_one, rows[0])
            for i in range(first, last):
                if last - first > 1:  # as ours: a savepoint per run, never released
                    await savepoint()
                await conn.execute(tickets.insert().values(order_id=f"raw-{i}"))
            replied = outbox_rows(replies[first:last])
            # As ours: on asyncpg the outbox insert goes to the driver, the same SQL text
            # (storage/asyncpg_direct.py); elsewhere SQLAlchemy Core.
            direct = await AsyncpgDirect.on(conn)
            if direct is not None:
                await direct.run(INSERT_ROWS_SQL, *insert_rows_args(replied))
            else:
                await conn.execute(outbox.insert(), replied)

    async def piped(first: int, last: int, pool: list[Message]) -> None:
        await pipeline.process_batch([HarnessDelivery(m) for m in pool[first:last]])

    for first in range(n, n + 64, batch):  # warm up: statement caches, pool, prepared statements
        await piped(first, min(first + batch, n + 64), messages)
    rounds: list[tuple[float, float, float, float]] = []
    per_round = max(batch, 100 // batch * batch)
    for start_of_round in range(0, n, per_round):
        end_of_round = min(start_of_round + per_round, n)
        count = end_of_round - start_of_round
        start, cpu = time.perf_counter(), time.process_time()
        for first in range(start_of_round, end_of_round, batch):
            await piped(first, min(first + batch, end_of_round), messages)
        pipe = (time.perf_counter() - start, time.process_time() - cpu)
        start, cpu = time.perf_counter(), time.process_time()
        for first in range(start_of_round, end_of_round, batch):
            await bare(first, min(first + batch, end_of_round))
        sql = (time.perf_counter() - start, time.process_time() - cpu)
        rounds.append((pipe[0] / count, pipe[1] / count, sql[0] / count, sql[1] / count))
    result.pipe_wall, result.pipe_cpu, result.sql_wall, result.sql_cpu = (
        statistics.median(r[k] for r in rounds) * 1e6 for k in range(4)
    )
    if profile:  # separate messages under the profiler: its own cost stays out of the figures
        profiler = cProfile.Profile()
        extra = commands(min(n, 1000), channel)
        profiler.enable()
        for first in range(0, len(extra), batch):
            await piped(first, min(first + batch, len(extra)), extra)
        profiler.disable()
        result.stats = pstats.Stats(profiler)
    await service.stop()
    return result


async def _cheapest_savepoint(conn: Any) -> Any:
    """``SAVEPOINT`` the cheapest way the driver allows (asyncpg: its own simple-query
    ``execute``, as the pipeline does since storage/savepoints.py)."""
    if conn.dialect.driver == "asyncpg":
        driver = (await conn.get_raw_connection()).driver_connection
        return lambda: driver.execute("SAVEPOINT raw_run")
    return lambda: conn.exec_driver_sql("SAVEPOINT raw_run")


def _raw_claim(dialect: str) -> tuple[Any, Any]:
    """The inbox claims a batch sends: insert-or-ignore returning the ids inserted, and
    (for a batch of one) without RETURNING."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    plain = insert(inbox).on_conflict_do_nothing()
    return plain.returning(inbox.c.message_id), plain


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def where_time_goes(stats: pstats.Stats) -> dict[str, float]:
    """Own time (tottime) grouped by top-level package."""
    groups: dict[str, float] = defaultdict(float)
    for (filename, _line, _func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "/servicewire/" in filename:
            key = "servicewire"
        elif "sqlalchemy" in filename:
            key = "sqlalchemy"
        elif "asyncpg" in filename or "aiosqlite" in filename or "sqlite3" in filename:
            key = "db driver"
        elif "pydantic" in filename:
            key = "pydantic"
        elif "asyncio" in filename or "selectors" in filename:
            key = "asyncio"
        else:
            key = "other"
        groups[key] += tt
    total = sum(groups.values()) or 1.0
    return {k: v / total * 100 for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


async def raw_amqp_consume(n: int) -> float:
    import aio_pika

    connection = await aio_pika.connect_robust(AMQP)
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(f"bench-raw-{uuid.uuid4().hex[:8]}", durable=True)
    body = b"x" * 200
    await asyncio.gather(
        *(
            channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue.name
            )
            for _ in range(n)
        )
    )
    await channel.set_qos(prefetch_count=64)
    done = asyncio.Event()
    count = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal count
        await message.ack()
        count += 1
        if count >= n:
            done.set()

    start = time.perf_counter()
    tag = await queue.consume(on_message)
    await done.wait()
    rate = n / (time.perf_counter() - start)
    await queue.cancel(tag)  # before the delete: no "consumer cancelled by the broker"
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return rate


async def raw_memory_consume(n: int) -> float:
    url = f"memory://{uuid.uuid4().hex}"
    transport = await connect_transport(url)
    await transport.declare("raw", "g")
    await transport.publish_batch(commands(n, "raw"))
    sub = await transport.subscribe("raw", "g")
    start = time.perf_counter()
    count = 0
    async for delivery in sub:
        await delivery.ack()
        count += 1
        if count >= n:
            break
    rate = n / (time.perf_counter() - start)
    await transport.close()
    return rate


def profile_row(stats: pstats.Stats | None) -> tuple[str, str, str]:
    if stats is None:
        return ("  where time goes", "(not profiled)", "")
    shares = ", ".join(f"{k} {v:.0f}%" for k, v in where_time_goes(stats).items())
    return ("  where time goes", shares, "")


async def sqlite_rows(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    print("== SQLite (aiosqlite) + memory://", flush=True)
    path = Path(tempfile.mkdtemp(prefix="sw-bench-")) / "bench.db"
    try:
        rate, cpu, rate_steady, cpu_steady = await throughput(
            f"sqlite:///{path}", f"memory://{uuid.uuid4().hex}", args.n
        )
        alone, alone_cpu, alone_steady, alone_steady_cpu = await throughput(
            f"sqlite:///{path}.alone", f"memory://{uuid.uuid4().hex}", args.n, False
        )
        raw = await raw_memory_consume(args.n)
        p50, p99 = await latency(
            f"sqlite:///{path}.lat",
            f"memory://{uuid.uuid4().hex}",
            args.rate,
            args.seconds,
        )
        cost = await overhead(f"sqlite:///{path}.ovh", min(args.n, 3000))
        single = await overhead(f"sqlite:///{path}.one", min(args.n, 3000), profile=False, batch=1)
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
    return [
        (
            "SQLite (aiosqlite) + memory",
            f"{rate:,.0f} cmd/s, {cpu:.0f} µs CPU/cmd",
            f"raw memory consume+ack {raw:,.0f}/s ({rate / raw:.3f}x)",
        ),
        (
            "  steady state",
            f"{rate_steady:,.0f} cmd/s, {cpu_steady:.0f} µs CPU/cmd",
            "after the first fifth (the start, joining the group, is not in it)",
        ),
        ("  same, relay off", f"{alone:,.0f} cmd/s, {alone_cpu:.0f} µs CPU/cmd", ""),
        (
            "  relay off, steady state",
            f"{alone_steady:,.0f} cmd/s, {alone_steady_cpu:.0f} µs CPU/cmd",
            "",
        ),
        (f"  latency @{args.rate}/s", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", WARM_NOTE),
        cost.row("  framework overhead, B=16"),
        single.row("  framework overhead, B=1"),
        profile_row(cost.stats),
    ]


async def postgres_rows(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    on_memory = args.pg_transport == "memory"
    broker = "memory://" if on_memory else "amqp://"
    print(f"== PostgreSQL + {broker}", flush=True)

    def transport() -> str:
        return f"memory://{uuid.uuid4().hex}" if on_memory else AMQP

    dbs = [await fresh_pg_database() for _ in range(5)]
    try:
        rate, cpu, rate_steady, cpu_steady = await throughput(dbs[0], transport(), args.n)
        alone, alone_cpu, alone_steady, alone_steady_cpu = await throughput(
            dbs[4], transport(), args.n, relay=False
        )
        if on_memory:
            raw, raw_name = await raw_memory_consume(args.n), "raw memory consume+ack"
        else:
            raw, raw_name = await raw_amqp_consume(args.n), "raw aio-pika consume+ack"
        p50, p99 = await latency(dbs[1], transport(), args.rate, args.seconds)
        cost = await overhead(dbs[2], min(args.n, 3000))
        single = await overhead(dbs[3], min(args.n, 3000), profile=False, batch=1)
    finally:
        for db in dbs:
            await drop_pg_database(db)
    return [
        (
            "PostgreSQL + " + ("memory" if on_memory else "RabbitMQ"),
            f"{rate:,.0f} cmd/s, {cpu:.0f} µs CPU/cmd",
            f"{raw_name} {raw:,.0f}/s ({rate / raw:.3f}x)",
        ),
        (
            "  steady state",
            f"{rate_steady:,.0f} cmd/s, {cpu_steady:.0f} µs CPU/cmd",
            "after the first fifth (the start, joining the group, is not in it)",
        ),
        ("  same, relay off", f"{alone:,.0f} cmd/s, {alone_cpu:.0f} µs CPU/cmd", ""),
        (
            "  relay off, steady state",
            f"{alone_steady:,.0f} cmd/s, {alone_steady_cpu:.0f} µs CPU/cmd",
            "",
        ),
        (f"  latency @{args.rate}/s", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", WARM_NOTE),
        cost.row("  framework overhead, B=16"),
        single.row("  framework overhead, B=1"),
        profile_row(cost.stats),
    ]


def show(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Print a section's rows as soon as it finished (a later section may hang or fail)."""
    for name, value, note in rows:
        print(f"{name:<30} {value:<36} {note}", flush=True)
    return rows


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument(
        "--pg-transport",
        default="amqp",
        choices=["amqp", "memory"],
        help="the broker of the PostgreSQL section (memory: when RabbitMQ is unavailable)",
    )
    parser.add_argument("--rate", type=int, default=300, help="offered load for latency, msg/s")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--loop",
        default="asyncio",
        choices=["asyncio", "uvloop"],
        help="the event loop of the whole run (ftgo serve runs on uvloop)",
    )
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    wanted = set(args.only.split(","))
    rows: list[tuple[str, str, str]] = []
    load = os.getloadavg()[0]
    if "sqlite" in wanted:
        rows += show(await sqlite_rows(args))
    if "postgres" in wanted:
        rows += show(await postgres_rows(args))
    print()
    print("== summary")
    print(f"load average at start {load:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"event loop: {args.loop} (raw baselines too)")
    for name, value, note in rows:
        print(f"{name:<30} {value:<36} {note}")


if __name__ == "__main__":
    options = arguments()
    if options.loop == "uvloop":
        import uvloop

        uvloop.run(main(options))
    else:
        asyncio.run(main(options))
