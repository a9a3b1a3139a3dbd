"""Kafka protocol: Servicewire's ``kafka://`` transport next to raw aiokafka, on tansu.

Both do the same work on the same broker: ``n`` messages of ``size`` bytes published
pipelined (``WINDOW`` sends in flight) with ``acks=all`` into a topic of 16 partitions,
each with a key; then consumed by a group member that acks (ours: ``delivery.ack()``,
which commits the contiguous prefix, coalesced; raw: a commit after each fetched batch,
the usual hand-written loop). Ours also carries the CloudEvents headers (about ten per
record) and keeps one unsettled delivery per partition for per-key order; raw sends a
key and an id header. Consume rates run from the first delivery to the last ack, so
joining the group (seconds on tansu) does not count.

With no ``SERVICEWIRE_BENCH_KAFKA`` URL in the environment, importing this module
starts a private memory-backed tansu (servicewire.testing.tansu) that stops at exit::

    .venv/bin/python benchmarks/transport_cases/kafka.py --n 20000 --size 500
    SERVICEWIRE_BENCH_KAFKA=kafka://127.0.0.1:9092 \\
        .venv/bin/python benchmarks/transports.py --only kafka
"""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import uuid
from pathlib import Path

if __name__ == "__main__":  # run alone: make the transport_cases package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.kafka.headers import KafkaHeaders, to_kafka
from servicewire.transports.kafka.transport import KafkaTransport
from transport_cases._timing import Clock, pipelined

WINDOW = 1000
PREFETCH = 64
PARTITIONS = 16
# A member learns of a rebalance within a heartbeat; fine for a single-member benchmark.
OPTIONS = f"partitions={PARTITIONS}&heartbeat_interval_ms=500"


def _own_broker() -> str:
    from servicewire.testing.tansu import Tansu

    broker = Tansu()
    atexit.register(broker.stop)  # registered first: a failed start cleans up too
    broker.start()
    return broker.url


URL = os.environ.get("SERVICEWIRE_BENCH_KAFKA") or _own_broker()


def _name(what: str) -> str:
    return f"bench.{what}.{uuid.uuid4().hex[:8]}"


def _bootstrap(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0].split("@")[-1]


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    sep = "&" if "?" in url else "/?"
    transport = await connect_transport(f"{url.rstrip('/')}{sep}{OPTIONS}")
    assert isinstance(transport, KafkaTransport)
    channel, group = _name("ours"), _name("group")
    payload = b"x" * size
    messages = [
        Message.create(
            payload, destination=channel, kind="event", type="bench.Event", partition_key=str(i)
        )
        for i in range(n)
    ]
    try:
        await transport.declare(channel, group)
        publish_rate = await pipelined(lambda i: transport.publish(messages[i]), n, WINDOW)
        clock = Clock(n)
        sub = await transport.subscribe(channel, group, prefetch=PREFETCH)

        async def consume() -> None:
            async for delivery in sub:
                await delivery.ack()
                clock.tick()
                if clock.done.is_set():
                    return

        task = asyncio.create_task(consume())
        await within(clock.done.wait(), 600)
        await task
        await sub.close()
        return publish_rate, clock.rate()
    finally:
        await transport.close()


async def raw_enveloped(url: str, n: int, size: int) -> tuple[float, float]:
    """Raw aiokafka carrying the very record headers ours sends (the CloudEvents
    envelope, about ten headers), built before the clock starts: what the envelope
    costs any client, apart from what our transport adds."""
    envelopes = []
    for i in range(n):
        message = Message.create(
            b"", destination="bench", kind="event", type="bench.Event", partition_key=str(i)
        )
        envelopes.append(to_kafka(message)[0])
    return await raw(url, n, size, envelopes)


async def raw(
    url: str, n: int, size: int, envelopes: list[KafkaHeaders] | None = None
) -> tuple[float, float]:
    bootstrap = _bootstrap(url)
    topic = _name("raw")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=64 * 1024
    )
    await producer.start()
    payload = b"x" * size
    try:

        async def publish(i: int) -> None:
            key = str(i).encode()
            headers = envelopes[i] if envelopes is not None else [("id", key)]
            sent = await producer.send(topic, payload, key=key, headers=headers)
            await sent

        publish_rate = await pipelined(publish, n, WINDOW)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=_name("group"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        heartbeat_interval_ms=500,
        max_partition_fetch_bytes=1024 * 1024,
    )
    await consumer.start()
    consumer.subscribe([topic])
    clock = Clock(n)
    try:
        async with asyncio.timeout(600):
            while not clock.done.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=PREFETCH * 8)
                for records in batches.values():
                    for record in records:
                        dict(record.headers)  # read it, as a handler would
                        clock.tick()
                if batches:
                    await consumer.commit()
        return publish_rate, clock.rate()
    finally:
        await consumer.stop()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--url", default=URL)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    async def main() -> None:
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: n={args.n} size={args.size}", flush=True)
            theirs = await raw(args.url, args.n, args.size)
            print(f"  raw aiokafka  publish {theirs[0]:>8,.0f}/s  consume {theirs[1]:>8,.0f}/s")
            mine = await ours(args.url, args.n, args.size)
            print(f"  servicewire   publish {mine[0]:>8,.0f}/s  consume {mine[1]:>8,.0f}/s")
            print(
                f"  ratio         publish {mine[0] / theirs[0]:>8.2f}x  consume "
                f"{mine[1] / theirs[1]:>8.2f}x",
                flush=True,
            )

    asyncio.run(main())
