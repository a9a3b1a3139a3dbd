"""RabbitMQ: Servicewire's ``amqp://`` transport next to raw aio-pika, and FastStream.

All of them do the same work on the same broker: ``n`` persistent messages of ``size``
bytes published pipelined (``WINDOW`` in flight) with publisher confirms into durable
quorum queues, then consumed with a manual ack each. Ours spreads them over its 16
shard queues (single active consumer, one unacked message per shard: what keeps each
key in order while members compete); raw aio-pika and FastStream use one queue with a
prefetch of 64, which keeps no key's order once two consumers share it. "Raw, same
topology" is raw aio-pika on ours's topology (16 single-active-consumer quorum queues
behind a direct exchange, the envelope's headers, a prefetch of one per queue), so
the gap splits into what the broker charges for that topology and what our client
code adds. Consume rates run from the first delivery to the last ack, so joining the
group does not count.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika

from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.amqp.headers import encode
from servicewire.transports.amqp.transport import AmqpTransport
from transport_cases._timing import Clock, pipelined

URL = "amqp://guest:guest@127.0.0.1:5672/"
WINDOW = 1000
PREFETCH = 64
_QUORUM = {"x-queue-type": "quorum"}


def _name(what: str) -> str:
    return f"bench.{what}.{uuid.uuid4().hex[:8]}"


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    transport = await connect_transport(url)
    assert isinstance(transport, AmqpTransport)
    channel, group = _name("ours"), "bench"
    payload = b"x" * size
    messages = [
        Message.create(payload, destination=channel, kind="event", type="bench.Event")
        for _ in range(n)
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
        await transport.delete_group(channel, group)
        await transport.delete_channel(channel)  # with its .dlq channel
        await transport.close()


async def raw_enveloped(url: str, n: int, size: int) -> tuple[float, float]:
    """Raw aio-pika carrying the very application headers ours sends (the CloudEvents
    envelope: id, type, source, time, ...), built before the clock starts: what the
    envelope costs any client, apart from what our transport adds."""
    envelopes = []
    for i in range(n):
        message = Message.create(
            b"", destination="bench", kind="event", type="bench.Event", id=str(i)
        )
        envelopes.append(encode(message)[1].headers)
    return await raw(url, n, size, envelopes)


async def raw_same_topology(url: str, n: int, size: int) -> tuple[float, float]:
    """Raw aio-pika on the topology ours declares: 16 single-active-consumer quorum
    queues bound to a direct exchange by shard key, the envelope's headers, messages
    spread over the shards, one unacknowledged message per queue."""
    connection = await aio_pika.connect(url)
    name = _name("rawsharded")
    payload = b"x" * size
    shards = 16
    envelope = encode(
        Message.create(b"", destination="bench", kind="event", type="bench.Event", id="0")
    )[1].headers
    arguments = {**_QUORUM, "x-single-active-consumer": True}
    queues = [f"{name}.{shard}" for shard in range(shards)]
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, durable=True)
        for shard, queue_name in enumerate(queues):
            queue = await channel.declare_queue(queue_name, durable=True, arguments=arguments)
            await queue.bind(exchange, routing_key=str(shard))

        async def publish(i: int) -> None:
            headers = {**envelope, "cloudEvents:id": str(i)}
            message = aio_pika.Message(
                payload,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(i),
                content_type="application/json",
                headers=headers,
            )
            await exchange.publish(message, routing_key=str(i % shards))

        publish_rate = await pipelined(publish, n, WINDOW)
        clock = Clock(n)
        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=1)  # per consumer: one per queue

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            clock.tick()

        consumers = []
        for queue_name in queues:
            queue = await consumer_channel.get_queue(queue_name)
            consumers.append((queue, await queue.consume(on_message)))
        await within(clock.done.wait(), 600)
        for queue, tag in consumers:
            await queue.cancel(tag)
        for queue_name in queues:
            await channel.queue_delete(queue_name)
        await channel.exchange_delete(name)
        return publish_rate, clock.rate()
    finally:
        await connection.close()


async def raw(
    url: str, n: int, size: int, envelopes: list[Any] | None = None
) -> tuple[float, float]:
    connection = await aio_pika.connect(url)
    name = _name("raw")
    payload = b"x" * size
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.DIRECT, durable=True)
        queue = await channel.declare_queue(name, durable=True, arguments=_QUORUM)
        await queue.bind(exchange, routing_key="k")

        async def publish(i: int) -> None:
            message = aio_pika.Message(
                payload,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(i),
                content_type="application/json",
                headers=envelopes[i] if envelopes is not None else None,
            )
            await exchange.publish(message, routing_key="k")

        publish_rate = await pipelined(publish, n, WINDOW)
        clock = Clock(n)
        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=PREFETCH)
        cqueue = await consumer_channel.get_queue(name)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            clock.tick()

        tag = await cqueue.consume(on_message)
        await within(clock.done.wait(), 600)
        await cqueue.cancel(tag)
        await channel.queue_delete(name)
        await channel.exchange_delete(name)
        return publish_rate, clock.rate()
    finally:
        await connection.close()


async def faststream(url: str, n: int, size: int) -> tuple[float, float]:
    """FastStream on RabbitMQ: ``broker.publish`` (confirmed) and a subscriber that acks."""
    import logging

    from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

    name = _name("faststream")
    payload = b"x" * size
    broker = RabbitBroker(
        url,
        logger=None,
        log_level=logging.WARNING,
        default_channel=Channel(prefetch_count=PREFETCH),
    )
    queue = RabbitQueue(name, queue_type=QueueType.QUORUM, durable=True, routing_key="k")
    exchange = RabbitExchange(name, durable=True)
    clock = Clock(n)

    @broker.subscriber(queue, exchange)
    async def handle(body: bytes) -> None:
        clock.tick()

    await broker.connect()
    try:
        # Declare the queue before publishing (as the other two do), consume later.
        declared_exchange = await broker.declare_exchange(exchange)
        declared_queue = await broker.declare_queue(queue)
        await declared_queue.bind(declared_exchange, routing_key="k")

        async def publish(i: int) -> None:
            await broker.publish(
                payload, exchange=exchange, routing_key="k", persist=True, message_id=str(i)
            )

        publish_rate = await pipelined(publish, n, WINDOW)
        await broker.start()
        await within(clock.done.wait(), 600)
        return publish_rate, clock.rate()
    finally:
        await broker.stop()
        # Deleted only once FastStream stopped consuming: its robust channel would
        # declare the queue again after the broker cancels its consumer.
        await _delete(url, queue=name, exchange=name)


async def _delete(url: str, *, queue: str, exchange: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()
