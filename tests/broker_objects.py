"""What a broker holds, counted from outside: for tests that must leave nothing behind.

RabbitMQ: every queue and exchange of a private node (``rabbitmqctl``; the management
plugin is not enabled there). Redis and NATS: the keys, groups, streams and consumers
whose names carry a given service name, so that a test on a shared server counts only
its own::

    before = await redis_objects("leak-3f2a")
    ...
    assert await redis_objects("leak-3f2a") == before
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from redis.asyncio import Redis

from servicewire.transports.nats.names import REPLY_STREAM, encode_name
from tests import services
from tests.transports.test_amqp import SERVER, PrivateRabbit


def rabbitmqctl(node: PrivateRabbit, *args: str) -> list[str]:
    # Not the /usr/sbin wrapper: it switches to the rabbitmq user and loses HOME, where
    # the private node keeps its Erlang cookie.
    ctl = str(Path(SERVER).with_name("rabbitmqctl"))
    done = subprocess.run(
        [ctl, "-q", "-n", node.node, *args],
        env=node._env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def rabbit_objects(node: PrivateRabbit) -> Callable[[str], Awaitable[list[str]]]:
    async def objects(_service: str) -> list[str]:
        queues = await asyncio.to_thread(rabbitmqctl, node, "list_queues", "name")
        exchanges = await asyncio.to_thread(rabbitmqctl, node, "list_exchanges", "name")
        return sorted([f"queue {q}" for q in queues] + [f"exchange {e}" for e in exchanges])

    return objects


async def redis_objects(service: str) -> list[str]:
    client = Redis.from_url(services.URLS["redis"])
    try:
        found = []
        async for key in client.scan_iter(match=f"*{service}*", count=1000):
            found.append(f"key {key.decode()}")
            if await client.type(key) == b"stream":
                for group in await client.xinfo_groups(key):
                    found.append(f"group {key.decode()} {group['name'].decode()}")
        return sorted(found)
    finally:
        await client.aclose()


async def nats_objects(service: str) -> list[str]:
    token = encode_name(service)
    nc = await nats.connect(services.URLS["nats"])
    try:
        js = nc.jetstream()
        found = []
        for stream in await js.streams_info():
            name = stream.config.name
            if token in name:
                found.append(f"stream {name}")
            if token in name or name == REPLY_STREAM:
                for consumer in await js.consumers_info(name):
                    if token in name or token in consumer.name:
                        found.append(f"consumer {name} {consumer.name}")
            if name == REPLY_STREAM:
                info = await js.stream_info(name, subjects_filter="swr.>")
                subjects = info.state.subjects or {}
                found += [f"replies {s}" for s in subjects if s.startswith(f"swr.{token}")]
        return sorted(found)
    finally:
        await nc.close()
