"""Our AMQP messages, taken off RabbitMQ by a plain client, parse with the CloudEvents SDK.

Each naming the ``ce_headers`` URL option offers is published through our transport,
fetched with pika (a consumer) and read with the SDK binding it is meant for:
``rabbitmq`` (``ce-`` headers, Knative eventing-rabbitmq) with
``cloudevents.core.bindings.rabbitmq``, ``amqp`` (``cloudEvents:``) with
``cloudevents.core.bindings.amqp``, and ``both`` with either. Our own subscriber reads
every naming. Queues and exchanges are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pika
import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import amqp as ce_amqp
from cloudevents.core.bindings import rabbitmq as ce_rabbitmq
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from servicewire.messaging.message import Message
from servicewire.testing.contract.helpers import unique
from servicewire.transports import connect_transport
from servicewire.transports.amqp.topology import queue_name
from servicewire.transports.amqp.transport import AmqpTransport
from tests.services import URLS, require

READERS = {"rabbitmq": ("rabbitmq",), "amqp": ("amqp",), "both": ("rabbitmq", "amqp")}


def fetch(queue: str) -> tuple[Any, bytes]:
    """One message off ``queue`` with pika (blocking; run in a thread).

    A consumer, not ``basic_get``: RabbitMQ refuses ``basic.get`` on quorum queues with
    single active consumer, which our shard queues are.
    """
    connection = pika.BlockingConnection(pika.URLParameters(URLS["rabbitmq"]))
    try:
        channel = connection.channel()
        for method, props, body in channel.consume(queue, inactivity_timeout=10):
            assert method is not None, f"nothing in {queue} within 10 s"
            channel.basic_ack(method.delivery_tag)
            channel.cancel()
            return props, body
        raise AssertionError("unreachable: consume() yields until cancelled")
    finally:
        connection.close()


def parse(reader: str, props: Any, body: bytes) -> BaseCloudEvent:
    headers = dict(props.headers or {})
    if reader == "rabbitmq":
        message = ce_rabbitmq.RabbitMQMessage(
            headers=headers, content_type=props.content_type, body=body
        )
        return ce_rabbitmq.from_rabbitmq(message, JSONFormat(), CloudEvent)
    amqp_message = ce_amqp.AMQPMessage(
        properties={"content-type": props.content_type, "message-id": props.message_id},
        application_properties=headers,
        application_data=body,
    )
    return ce_amqp.from_amqp(amqp_message, JSONFormat(), CloudEvent)


@pytest.mark.parametrize("naming", ["rabbitmq", "amqp", "both"])
async def test_the_cloudevents_sdk_parses_what_we_put_on_rabbitmq(naming: str) -> None:
    require("rabbitmq")
    transport = await connect_transport(f"{URLS['rabbitmq']}?shards=1&ce_headers={naming}")
    reader = await connect_transport(URLS["rabbitmq"] + "?shards=1")  # default naming
    assert isinstance(transport, AmqpTransport) and isinstance(reader, AmqpTransport)
    channel = unique("ce-rabbit")
    try:
        await transport.declare(channel, "sdk")
        await transport.declare(channel, "ours")
        message = Message.create(
            json.dumps({"order": 7, "total": "12.50"}).encode(),
            destination=channel,
            kind="event",
            type="ftgo.order.OrderCreated",
            source="/ftgo/orders",
            partition_key="o-7",
        )
        await transport.publish(message)

        props, body = await asyncio.to_thread(fetch, queue_name(channel, "sdk", 0))
        for kind in READERS[naming]:
            event = parse(kind, props, body)
            assert event.get_id() == message.id, kind
            assert event.get_source() == "/ftgo/orders", kind
            assert event.get_type() == "ftgo.order.OrderCreated", kind
            assert event.get_data() == {"order": 7, "total": "12.50"}, kind
            assert event.get_attributes()["partitionkey"] == "o-7", kind
        other = {"rabbitmq": "cloudEvents:", "amqp": "ce-", "both": "-"}[naming]
        assert not any(name.startswith(other) for name in props.headers), "one naming only"

        # Our own consumer (default naming) reads every naming back to the same message.
        sub = await reader.subscribe(channel, "ours")
        try:
            async with asyncio.timeout(10):
                async for delivery in sub:
                    await delivery.ack()
                    assert delivery.message == message
                    break
        finally:
            await sub.close()
    finally:
        for group in ("sdk", "ours"):
            await reader.delete_group(channel, group)
        await reader.delete_channel(channel)
        await reader.close()
        await transport.close()
