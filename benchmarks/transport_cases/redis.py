"""Redis Streams: Servicewire's ``redis://`` transport next to raw redis-py.

Both do the same work on the same server: ``n`` messages of ``size`` bytes, each with
the same CloudEvents header fields, XADDed pipelined (``WINDOW`` in flight, every reply
awaited), then read through a consumer group and XACKed. Raw redis-py uses one stream,
reads 64 entries per XREADGROUP and acks each batch with one XACK; ours spreads the
messages over its 16 shard streams, hands them out one per shard at a time and waits
for each XACK before the shard's next entry (what per-key order costs). Consume rates
run from the first delivery to the last ack.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from servicewire.messaging.message import Message
from servicewire.transports import connect_transport
from servicewire.transports.redis.options import encode_entry
from servicewire.transports.redis.transport import RedisTransport

URL = "redis://127.0.0.1:6379/0"
WINDOW = 1000
BATCH = 64


def _name(what: str) -> str:
    return f"bench.{what}.{uuid.uuid4().hex[:8]}"


def _messages(channel: str, n: int, size: int) -> list[Message]:
    payload = b"x" * size
    return [
        Message.create(payload, destination=channel, kind="event", type="bench.Event")
        for _ in range(n)
    ]


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    transport = await connect_transport(url)
    assert isinstance(transport, RedisTransport)
    channel, group = _name("ours"), "bench"
    messages = _messages(channel, n, size)
    try:
        await transport.declare(channel, group)
        start = time.perf_counter()
        for base in range(0, n, WINDOW):
            await transport.publish_batch(messages[base : base + WINDOW])
        publish_rate = n / (time.perf_counter() - start)
        sub = await transport.subscribe(channel, group, prefetch=BATCH)
        count, first = 0, 0.0
        async with asyncio.timeout(600):
            async for delivery in sub:
                if count == 0:
                    first = time.perf_counter()
                await delivery.ack()
                count += 1
                if count == n:
                    break
        await transport.acks_landed()  # the last XACK replies, as raw waits for its own
        consume_rate = n / (time.perf_counter() - first)
        # Closing is not consuming (it used to be timed here, and a member's close that
        # took up to 32 s read as slow consumption; tests/transports/test_redis.py times it).
        await sub.close()
        await transport.close()
        return publish_rate, consume_rate
    finally:
        await transport.close()
        await _drop(url, [transport.options.stream(channel, s) for s in range(16)])


async def raw(url: str, n: int, size: int) -> tuple[float, float]:
    client = Redis.from_url(url)
    stream, group = _name("raw"), "bench"
    messages = _messages(stream, n, size)
    try:
        await client.xgroup_create(stream, group, id="$", mkstream=True)
        start = time.perf_counter()
        for base in range(0, n, WINDOW):
            pipe = client.pipeline(transaction=False)
            for message in messages[base : base + WINDOW]:
                fields: Any = encode_entry(message)  # the same fields ours writes
                pipe.xadd(stream, fields)
            await pipe.execute()
        publish_rate = n / (time.perf_counter() - start)
        count, first = 0, 0.0
        while count < n:
            reply = await client.xreadgroup(group, "c1", {stream: ">"}, count=BATCH, block=1000)
            if not reply:
                continue
            if count == 0:
                first = time.perf_counter()
            batch = reply[0][1]
            await client.xack(stream, group, *[entry_id for entry_id, _ in batch])
            count += len(batch)
        consume_rate = n / (time.perf_counter() - first)
        return publish_rate, consume_rate
    finally:
        await client.delete(stream)
        await client.aclose()


async def _drop(url: str, keys: list[str]) -> None:
    client = Redis.from_url(url)
    try:
        await client.delete(*keys)
    finally:
        await client.aclose()
