"""Commands per second through the whole delivery pipeline, and what the framework costs.

Each handled command is: decode, inbox insert, the handler writing one row and sending
one reply, outbox insert, commit, ack. Measured per configuration:

1. throughput: a pre-filled channel of N commands drained by one service instance;
2. latency p50/p99 from publish to handler commit at a steady offered load;
3. the framework's own overhead per message: the pipeline driven directly (no broker)
   minus the same three SQL statements run as a bare SQLAlchemy transaction;
4. where time goes: a cProfile of the hot path, grouped by package.

Baselines in the same run: raw aio-pika consume-with-ack (RabbitMQ) and the raw memory
transport loop.

    .venv/bin/python benchmarks/pipeline.py                 # sqlite+memory, postgres+amqp
    .venv/bin/python benchmarks/pipeline.py --only sqlite --n 3000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from servicewire import Command, Context, Service, SuccessReply, to_message
from servicewire.database import create_engine
from servicewire.inbox import inbox
from servicewire.message import Message
from servicewire.outbox.writer import write_messages
from servicewire.testing import HarnessDelivery
from servicewire.transports import connect_transport

PG_ADMIN = os.environ.get("SERVICEWIRE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
AMQP = os.environ.get("SERVICEWIRE_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672/")

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


def build_service(db: str, transport: str, channel: str, latencies: list[float] | None) -> Service:
    def on_outcome(message: Message, outcome: Any, spec: Any) -> None:
        sent = message.headers.get("benchsent")
        if latencies is not None and sent is not None:
            latencies.append(time.perf_counter() - float(sent))

    service = Service(
        "bench",
        db=db,
        transport=transport,
        tables=[bench_tables],
        on_outcome=on_outcome,
        relay_poll_interval=0.01,
    )

    @service.handles(MakeTicket, channel=channel)
    async def make(cmd: MakeTicket, ctx: Context) -> None:
        await ctx.session.execute(tickets.insert().values(order_id=cmd.order_id))
        await ctx.reply(TicketMade(order_id=cmd.order_id))

    return service


def commands(n: int, channel: str, offset: int = 0) -> list[Message]:
    return [
        to_message(
            MakeTicket(order_id=f"o-{offset + i}", note="x" * 100),
            destination=channel,
            reply_to="bench.replies",
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


async def throughput(db: str, transport_url: str, n: int) -> float:
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    publisher = await connect_transport(transport_url)
    await publisher.declare(channel, "bench")
    await publisher.declare("bench.replies", "sink")
    for chunk in range(0, n, 500):
        await publisher.publish_batch(commands(min(500, n - chunk), channel, chunk))
    service = build_service(db, transport_url, channel, None)
    start = time.perf_counter()
    await service.start()
    last = 0
    while service.stats["handled"] < n:
        await asyncio.sleep(0.05)
        done = service.stats["handled"]
        if done - last >= max(1, n // 5):
            print(f"    ... {done}/{n}", flush=True)
            last = done
    elapsed = time.perf_counter() - start
    await service.stop()
    await publisher.close()
    return n / elapsed


async def latency(db: str, transport_url: str, rate: int, seconds: float) -> tuple[float, float]:
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    service = build_service(db, transport_url, channel, latencies)
    publisher = await connect_transport(transport_url)
    await publisher.declare("bench.replies", "sink")
    await service.start()
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        message = to_message(
            MakeTicket(order_id=f"l-{i}"),
            destination=channel,
            reply_to="bench.replies",
            extra={"benchsent": repr(time.perf_counter())},
        )
        await publisher.publish(message)
    deadline = time.perf_counter() + 30
    while len(latencies) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    await service.stop()
    await publisher.close()
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1000
    return p50, p99


async def overhead(db: str, n: int) -> tuple[float, float, pstats.Stats]:
    """(pipeline µs/msg without a broker, bare SQL µs/msg, profile of the pipeline loop)."""
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    service = build_service(db, f"memory://{uuid.uuid4().hex}", channel, None)
    service._relay_enabled = False
    service._subscribe = False
    await service.start()
    pipeline = next(iter(service.pipelines.values()))
    messages = commands(n, channel)
    for m in messages[:50]:  # warm up
        await pipeline.process(HarnessDelivery(m))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for m in messages[50:]:
        await pipeline.process(HarnessDelivery(m))
    profiler.disable()
    per_pipeline = (time.perf_counter() - start) / (n - 50) * 1e6
    engine = service.engine
    assert engine is not None
    replies = [
        to_message(TicketMade(order_id=f"r-{i}"), destination="bench.replies") for i in range(n)
    ]
    start = time.perf_counter()
    for i in range(n - 50):
        async with engine.begin() as conn:
            await conn.execute(
                inbox.insert().values(
                    consumer_group="raw", message_id=f"m{i}", processed_at=None or _now()
                )
            )
            await conn.execute(tickets.insert().values(order_id=f"raw-{i}"))
            await write_messages(conn, [replies[i]])
    per_sql = (time.perf_counter() - start) / (n - 50) * 1e6
    await service.stop()
    return per_pipeline, per_sql, pstats.Stats(profiler)


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
    await queue.consume(on_message)
    await done.wait()
    rate = n / (time.perf_counter() - start)
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


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--rate", type=int, default=300, help="offered load for latency, msg/s")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    rows: list[tuple[str, str, str]] = []

    if "sqlite" in wanted:
        print("== SQLite + memory://")
        path = Path(f"/tmp/sw-bench-{uuid.uuid4().hex[:6]}.db")
        db = f"sqlite:///{path}"
        rate = await throughput(db, f"memory://{uuid.uuid4().hex}", args.n)
        raw = await raw_memory_consume(args.n)
        p50, p99 = await latency(
            f"sqlite:///{path}.lat", f"memory://{uuid.uuid4().hex}", args.rate, args.seconds
        )
        per_pipe, per_sql, stats = await overhead(f"sqlite:///{path}.ovh", min(args.n, 3000))
        rows.append(
            ("SQLite + memory", f"{rate:,.0f} cmd/s", f"raw memory consume+ack {raw:,.0f}/s")
        )
        rows.append((f"  latency @{args.rate}/s", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", ""))
        rows.append(
            (
                "  framework overhead",
                f"{per_pipe - per_sql:.0f} µs/msg",
                f"pipeline {per_pipe:.0f} µs vs bare SQL {per_sql:.0f} µs",
            )
        )
        rows.append(
            (
                "  where time goes",
                ", ".join(f"{k} {v:.0f}%" for k, v in where_time_goes(stats).items()),
                "",
            )
        )
        for suffix in ("", ".lat", ".ovh"):
            for extra in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}{extra}").unlink(missing_ok=True)

    if "postgres" in wanted:
        print("== PostgreSQL + amqp://")
        dbs = [await fresh_pg_database() for _ in range(3)]
        try:
            rate = await throughput(dbs[0], AMQP, args.n)
            raw = await raw_amqp_consume(args.n)
            p50, p99 = await latency(dbs[1], AMQP, args.rate, args.seconds)
            per_pipe, per_sql, stats = await overhead(dbs[2], min(args.n, 3000))
        finally:
            for db in dbs:
                await drop_pg_database(db)
        rows.append(
            (
                "PostgreSQL + RabbitMQ",
                f"{rate:,.0f} cmd/s",
                f"raw aio-pika consume+ack {raw:,.0f}/s ({rate / raw:.2f}x)",
            )
        )
        rows.append((f"  latency @{args.rate}/s", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", ""))
        rows.append(
            (
                "  framework overhead",
                f"{per_pipe - per_sql:.0f} µs/msg",
                f"pipeline {per_pipe:.0f} µs vs bare SQL {per_sql:.0f} µs",
            )
        )
        rows.append(
            (
                "  where time goes",
                ", ".join(f"{k} {v:.0f}%" for k, v in where_time_goes(stats).items()),
                "",
            )
        )

    print()
    for name, value, note in rows:
        print(f"{name:<26} {value:<32} {note}")


if __name__ == "__main__":
    asyncio.run(main())
