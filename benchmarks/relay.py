"""Relay benchmark: drain throughput against raw aio-pika, and commit-to-broker latency.

For each relay mode and database:

1. throughput: 20,000 rows are committed to the outbox first; the relay then drains
   them to RabbitMQ (the ``amqp://`` transport, publisher confirms). In the same run,
   raw aio-pika publishes the same 20,000 messages (same bodies, headers, exchange and
   routing keys) pipelined with publisher confirms, 500 in flight per window (the
   relay's batch size). Printed as msg/s and relay/raw ratio.
   "raw waves" is raw aio-pika sending the same messages the way any publisher that
   keeps each key's first-seen order through a failed publish must, and the way the
   relay does: batches of 500 (two at a time, over disjoint halves of the 16 shards,
   as the relay's two batch loops on PostgreSQL), each sent in waves (the first
   message of every key, then the second, ...), a wave confirmed before the next.
   With the benchmark's 64 keys a wave holds at most 32 messages, so what this costs
   against 500 in flight is the price of the order rule, not of the relay's code.
   ``+itd`` is the WAL relay with insert-then-delete writers (the table stays empty).
2. latency: once a fresh relay has caught up (``drain()``), a writer commits 10
   messages every 10 ms (1,000 msg/s offered) for ``--seconds``; commit-to-broker
   latency is the time from the writer's commit returning to the broker's confirm of
   that message. p50/p99/max, and a CDF plot.

    .venv/bin/python benchmarks/relay.py                       # every case, ~2 minutes
    .venv/bin/python benchmarks/relay.py --cases polling-postgres,postgres-wal-postgres

Everything (writer, relay, broker client) runs in one process on one event loop, as
the embedded relay does in a service. Needs PostgreSQL, MariaDB and RabbitMQ locally.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aio_pika
from sqlalchemy import text
from sqlalchemy.engine import make_url

from servicewire.messaging.message import Message
from servicewire.outbox import write_messages
from servicewire.relay import Relay, create_relay
from servicewire.relay.postgres_wal import PostgresWalRelay
from servicewire.storage.database import create_engine
from servicewire.storage.schema import all_tables_metadata
from servicewire.transports import connect_transport
from servicewire.transports.base import Subscription, Transport

PG = os.environ.get("SERVICEWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB = os.environ.get("SERVICEWIRE_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test")
AMQP = os.environ.get("SERVICEWIRE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")

CASES: dict[str, tuple[str, str, bool, bool]] = {
    # name: (relay mode, database, wake after commit, insert-then-delete)
    "polling-postgres": ("polling", "postgres", False, False),
    "polling-mariadb": ("polling", "mariadb", False, False),
    "polling-sqlite": ("polling", "sqlite", False, False),
    "polling+wake-postgres": ("polling", "postgres", True, False),
    "postgres-wal-postgres": ("postgres-wal", "postgres", False, False),
    "postgres-wal+itd-postgres": ("postgres-wal", "postgres", False, True),
    "mysql-binlog-mariadb": ("mysql-binlog", "mariadb", False, False),
}


def log(text_: str) -> None:
    print(text_, file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def private_database(kind: str, tmp: Path) -> AsyncIterator[str]:
    name = f"sw_bench_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        url = f"sqlite:///{tmp / (name + '.db')}"
    else:
        base = PG if kind == "postgres" else MARIADB
        admin = create_engine(base)
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(all_tables_metadata().create_all)
    await engine.dispose()
    try:
        yield url
    finally:
        if kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (tmp / f"{name}.db{suffix}").unlink()
        else:
            async with admin.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                force = " WITH (FORCE)" if kind == "postgres" else ""
                await conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
            await admin.dispose()


class ConfirmClock(Transport):
    """Wraps a transport; records when each message's publish was confirmed."""

    scheme = "clock"

    def __init__(self, inner: Transport) -> None:
        super().__init__("clock://", max_message_size=inner.max_message_size)
        self.inner = inner
        self.confirmed: dict[str, float] = {}
        self.capabilities = inner.capabilities  # type: ignore[misc]

    async def connect(self) -> None:
        await self.inner.connect()

    async def _send(self, message: Message) -> None:
        await self.inner.publish(message)
        self.confirmed.setdefault(message.id, time.perf_counter())

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        await self.inner.publish_batch(messages)
        now = time.perf_counter()
        for m in messages:
            self.confirmed.setdefault(m.id, now)

    async def declare(self, channel: str, group: str) -> None:
        await self.inner.declare(channel, group)

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        return await self.inner.subscribe(channel, group, prefetch=prefetch)

    async def close(self) -> None:
        await self.inner.close()


def make_messages(channel: str, count: int, start: int = 0) -> list[Message]:
    body = b'{"orderId": "o-000000", "total": 12.5, "items": [1, 2, 3]}'
    return [
        Message.create(
            body,
            destination=channel,
            kind="event",
            type="bench.OrderCreated",
            version="1.0.0",
            partition_key=f"o-{n % 64}",
        )
        for n in range(start, start + count)
    ]


async def relay_ready(relay: Relay, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not relay.active:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{relay.mode} relay did not become active: {relay.last_error}")
        await asyncio.sleep(0.02)


async def wait_published(relay: Relay, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    next_report = time.monotonic() + 2
    while relay.published < count:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"published {relay.published} of {count} in {timeout:.0f}s")
        if now >= next_report:
            log(f"    ... {relay.published}/{count} published")
            next_report = now + 2
        await asyncio.sleep(0.005)


def _raw_message(m: Message) -> tuple[aio_pika.Message, int]:
    """``m`` as raw aio-pika sends it (same body, headers and id) and its shard (of 16)."""
    from servicewire.messaging.channels import shard_for
    from servicewire.transports.amqp.headers import encode

    body, props = encode(m)
    out = aio_pika.Message(
        body,
        headers=props.headers,
        message_id=m.id,
        content_type=props.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )
    return out, shard_for(m.partition_key, 16, m.id)


async def raw_publish(messages: list[Message], window: int) -> float:
    """Raw aio-pika, pipelined publisher confirms: the same bodies, headers and routes."""
    from servicewire.transports.amqp.topology import SHARD_KEYS, exchange_name

    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name(messages[0].destination), ensure=False)
        prepared = []
        for m in messages:
            out, shard = _raw_message(m)
            prepared.append((out, SHARD_KEYS[shard]))
        started = time.perf_counter()
        for i in range(0, len(prepared), window):
            chunk = prepared[i : i + window]
            await asyncio.gather(*(exchange.publish(msg, routing_key=k) for msg, k in chunk))
        return time.perf_counter() - started
    finally:
        await connection.close()


async def raw_waves(messages: list[Message], batch: int, loops: int = 2) -> float:
    """Raw aio-pika keeping per-key order as the relay does (see the module docstring)."""
    from servicewire.transports.amqp.topology import SHARD_KEYS, exchange_name

    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name(messages[0].destination), ensure=False)
        halves: list[list[tuple[aio_pika.Message, str, str | None]]] = [[] for _ in range(loops)]
        for m in messages:
            out, shard = _raw_message(m)
            halves[shard * loops // 16].append((out, SHARD_KEYS[shard], m.partition_key))

        async def loop(todo: list[tuple[aio_pika.Message, str, str | None]]) -> None:
            for first in range(0, len(todo), batch):
                waves: list[list[tuple[aio_pika.Message, str]]] = []
                depth: dict[str | None, int] = {}
                for msg, route, key in todo[first : first + batch]:
                    level = depth.get(key, 0)
                    depth[key] = level + 1
                    if level == len(waves):
                        waves.append([])
                    waves[level].append((msg, route))
                for wave in waves:
                    await asyncio.gather(*(exchange.publish(m, routing_key=r) for m, r in wave))

        started = time.perf_counter()
        await asyncio.gather(*(loop(half) for half in halves))
        return time.perf_counter() - started
    finally:
        await connection.close()


async def raw_latency(rate: int, seconds: float) -> dict[str, object]:
    """The floor: raw aio-pika publishing each message at its "commit" tick, to confirm."""
    from servicewire.messaging.channels import shard_for
    from servicewire.transports.amqp.headers import encode
    from servicewire.transports.amqp.topology import SHARD_KEYS, exchange_name

    transport = await connect_transport(AMQP)
    channel_name = f"bench.relay.{uuid.uuid4().hex[:8]}"
    await transport.declare(channel_name, "bench")
    connection = await aio_pika.connect(AMQP)
    latencies: list[float] = []
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name(channel_name), ensure=False)
        per_tick = max(1, rate // 100)
        pending: set[asyncio.Task[None]] = set()

        async def send(m: Message, started: float) -> None:
            body, props = encode(m)
            key = SHARD_KEYS[shard_for(m.partition_key, 16, m.id)]
            msg = aio_pika.Message(
                body,
                headers=props.headers,
                message_id=m.id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(msg, routing_key=key)
            latencies.append((time.perf_counter() - started) * 1000)

        next_tick = time.perf_counter()
        for t in range(int(seconds * 100)):
            now = time.perf_counter()
            for m in make_messages(channel_name, per_tick, start=t * per_tick):
                task = asyncio.create_task(send(m, now))
                pending.add(task)
                task.add_done_callback(pending.discard)
            next_tick += 0.01
            delay = next_tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.gather(*pending)
    finally:
        await connection.close()
        with contextlib.suppress(Exception):
            await transport.tear_down(channel_name, ["bench"])
        await transport.close()
    lat = sorted(latencies)
    return {
        "case": "raw aio-pika (floor)",
        "p50": statistics.median(lat),
        "p99": lat[int(len(lat) * 0.99) - 1],
        "max": lat[-1],
        "latencies": lat,
    }


async def prepare_log_position(relay: Relay) -> None:
    """Log-tailing relays: create the slot / first checkpoint before the rows are written."""
    await relay.start()
    await relay_ready(relay)
    await relay.stop()


async def run_case(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    mode, kind, wake, itd = CASES[name]
    result: dict[str, object] = {"case": name}
    relay_name = f"bench_{uuid.uuid4().hex[:8]}"
    async with private_database(kind, tmp) as url:
        engine = create_engine(url)
        transport = ConfirmClock(await connect_transport(AMQP))
        channel = f"bench.relay.{uuid.uuid4().hex[:8]}"
        await transport.declare(channel, "bench")  # routed to real (quorum) queues
        options: dict[str, object] = {"name": relay_name, "batch_size": args.batch}
        if mode == "polling":
            options["poll_interval"] = 0.01
        if itd:
            options["delete_published"] = False
        relays: list[Relay] = []
        try:
            # (1) throughput ----------------------------------------------------------
            relay = create_relay(mode, engine, transport, **options)
            relays.append(relay)
            if mode != "polling":
                await prepare_log_position(relay)
                relay = create_relay(mode, engine, transport, **options)
                relays.append(relay)
            messages = make_messages(channel, args.rows)
            log(f"{name}: filling the outbox with {args.rows} rows")
            for i in range(0, len(messages), 1000):
                async with engine.begin() as conn:
                    await write_messages(conn, messages[i : i + 1000], delete_after_insert=itd)
            log(f"{name}: draining")
            started = time.perf_counter()
            await relay.start()
            await wait_published(relay, args.rows, timeout=300)
            relay_s = time.perf_counter() - started
            await relay.stop()
            log(f"{name}: raw aio-pika publishing the same {args.rows} messages")
            raw_s = await raw_publish(messages, args.batch)
            log(f"{name}: raw aio-pika publishing them again in per-key waves")
            waves_s = await raw_waves(messages, args.batch)
            result.update(
                relay_rate=args.rows / relay_s,
                raw_rate=args.rows / raw_s,
                ratio=raw_s / relay_s,
                waves_rate=args.rows / waves_s,
                waves_ratio=waves_s / relay_s,
            )
            # (2) latency at a steady offered load -------------------------------------
            relay = create_relay(mode, engine, transport, **options)
            relays.append(relay)
            await relay.start()
            await relay_ready(relay)
            # Steady state only: a log-tailing relay's server first re-reads the WAL or
            # binlog of the drain above (its slot restarts from an older position).
            await relay.drain(60)
            await asyncio.sleep(0.5)
            ticks = int(args.seconds * 100)
            per_tick = max(1, args.rate // 100)
            committed: dict[str, float] = {}
            log(f"{name}: {per_tick * 100} msg/s offered for {args.seconds:.0f}s")
            next_tick = time.perf_counter()
            for t in range(ticks):
                batch = make_messages(channel, per_tick, start=t * per_tick)
                async with engine.begin() as conn:
                    await write_messages(conn, batch, delete_after_insert=itd)
                now = time.perf_counter()
                for m in batch:
                    committed[m.id] = now
                if wake:
                    relay.wake()
                next_tick += 0.01
                delay = next_tick - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            deadline = time.monotonic() + 120
            while not all(i in transport.confirmed for i in committed):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name}: latency run did not drain")
                await asyncio.sleep(0.01)
            lat = sorted(max(0.0, transport.confirmed[i] - c) * 1000 for i, c in committed.items())
            result.update(
                p50=statistics.median(lat),
                p99=lat[int(len(lat) * 0.99) - 1],
                max=lat[-1],
                offered=per_tick * 100,
                achieved=len(committed) / (time.perf_counter() - (next_tick - ticks * 0.01)),
                latencies=lat,
            )
        finally:
            for r in relays:
                await r.stop()
            for r in relays:
                if isinstance(r, PostgresWalRelay):
                    await r.drop_slot()
                    break
            inner = transport.inner
            with contextlib.suppress(Exception):
                await inner.tear_down(channel, ["bench"])
            await transport.close()
            await engine.dispose()
    return result


def plot(results: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        lat = r.get("latencies")
        if not isinstance(lat, list) or not lat:
            continue
        ys = [(i + 1) / len(lat) for i in range(len(lat))]
        ax.plot(lat, ys, label=f"{r['case']} (p99 {r['p99']:.1f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("commit-to-broker latency (ms, log scale)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Commit-to-broker latency at the offered load (CDF)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}"
    )
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--png", default="docs/relay-latency.png")
    args = parser.parse_args()
    cases = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = [name for name in cases if name not in CASES]
    if unknown or not cases:  # before any work: a typo should not cost the first cases' run
        parser.error(
            f"unknown case {', '.join(unknown) or '(none given)'}; cases: {', '.join(CASES)}"
        )
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    log(f"raw aio-pika: {args.rate} msg/s for {args.seconds:.0f}s (the latency floor)")
    floor = await raw_latency(args.rate, args.seconds)
    results = []
    for name in cases:
        results.append(await run_case(name, args, tmp))
    print(
        f"\n{'case':24} {'relay msg/s':>11} {'raw msg/s':>10} {'ratio':>6}"
        f" {'raw waves':>10} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    for r in results:
        print(
            f"{r['case']:24} {r['relay_rate']:>11.0f} {r['raw_rate']:>10.0f} {r['ratio']:>5.2f}x"
            f" {r['waves_rate']:>10.0f} {r['waves_ratio']:>5.2f}x"
            f" {r['p50']:>7.1f} {r['p99']:>7.1f} {r['max']:>7.1f}"
        )
    print(
        f"{floor['case']:24} {'':>11} {'':>10} {'':>6} {'':>10} {'':>6}"
        f" {floor['p50']:>7.1f} {floor['p99']:>7.1f} {floor['max']:>7.1f}"
    )
    print(f"(offered {args.rate} msg/s; load average {os.getloadavg()[0]:.1f} at the end)")
    if args.png:
        plot([*results, floor], Path(args.png))
        print(f"\nlatency CDF written to {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
