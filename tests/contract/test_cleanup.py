"""Every transport deletes what was declared on it: ``delete_group``, ``delete_channel``,
``tear_down``, and the contract suite's own clean-up built on them.

A channel with two groups and a message goes through a client the contract suite would
watch (:class:`~servicewire.testing.contract.cleanup.Declared`); after its clean-up the
broker holds nothing of the channel: no Redis keys or groups (the suite's ``ct.big``
used to leave two streams per run), no NATS stream or consumers, no Kafka topic or
consumer group, no RabbitMQ queue (checked with passive declares), nothing in the
in-memory broker. ZeroMQ keeps nothing and says so.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiormq
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from servicewire.messaging.message import Message
from servicewire.testing.contract.cleanup import Declared
from servicewire.transports import Transport, connect_transport
from servicewire.transports.amqp.topology import exchange_name, queue_name
from servicewire.transports.memory import MemoryBroker
from tests import services
from tests.broker_objects import nats_objects, redis_objects
from tests.tansu import Tansu, free_port, require_tansu

GROUPS = ["billing", "audit"]
Remains = Callable[[str], Awaitable[list[str]]]
"""What the broker still holds of a channel (names), read from outside the transport."""


async def amqp_remains(channel: str) -> list[str]:
    url = services.URLS["rabbitmq"]
    names = [exchange_name(channel), f"{channel}.dlq"]
    names += [queue_name(channel, g, s) for g in GROUPS for s in range(16)]
    names += [queue_name(f"{channel}.dlq", "dead-letters", 0)]
    found = []
    connection = await aiormq.connect(url)
    try:
        for name in names:
            ch = await connection.channel()
            try:
                if name in names[:2]:
                    await ch.exchange_declare(name, passive=True)
                else:
                    await ch.queue_declare(name, passive=True)
                found.append(name)
                await ch.close()
            except aiormq.exceptions.ChannelNotFoundEntity:
                pass  # a failed passive declare closes the channel
    finally:
        await connection.close()
    return found


def kafka_remains(bootstrap: str) -> Remains:
    async def remains(channel: str) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            topics = [t for t in await admin.list_topics() if t.startswith(channel)]
            groups = [g for g, _ in await admin.list_consumer_groups() if g.startswith(channel)]
        finally:
            await admin.close()
        return sorted(topics + groups)

    return remains


async def memory_remains(channel: str) -> list[str]:
    broker = MemoryBroker.named("cleanup-test")
    return [c for c in broker.channels if c.startswith(channel)]


@pytest.fixture(params=["memory", "amqp", "redis", "nats", "kafka"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Remains]]:
    name = request.param
    if name == "memory":
        yield "memory://cleanup-test", memory_remains
    elif name == "kafka":
        require_tansu()
        with Tansu() as tansu:
            yield tansu.url, kafka_remains(tansu.bootstrap)
    else:
        services.require({"amqp": "rabbitmq"}.get(name, name))
        remains = {"amqp": amqp_remains, "redis": redis_objects, "nats": nats_objects}[name]
        yield services.URLS["rabbitmq" if name == "amqp" else name], remains


async def test_what_a_case_declared_is_deleted_after_it(broker: tuple[str, Remains]) -> None:
    url, remains = broker
    channel = f"ct-cleanup-{uuid.uuid4().hex[:10]}"
    declared = Declared()

    async def make() -> Transport:
        return await connect_transport(url)

    client = await declared.watching(make)()
    try:
        for group in GROUPS:
            await client.declare(channel, group)
        await client.publish(
            Message.create(b"x", destination=channel, kind="event", type="t", version="1.0.0")
        )
        assert await remains(channel), "nothing was declared"
    finally:
        await client.close()
    await declared.delete(make, timeout=60)
    assert await remains(channel) == []


async def test_zeromq_keeps_nothing_to_delete() -> None:
    transport = await connect_transport(f"zmq+tcp://127.0.0.1:{free_port()}?heartbeat=0.1")
    try:
        assert await transport.delete_group("orders", "billing") is False
        assert await transport.delete_channel("orders") is False
    finally:
        await transport.close()
