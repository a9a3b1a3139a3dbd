"""Amazon SQS: Servicewire's ``sqs://`` transport next to raw aiobotocore, on moto.

Both do the same work on the same server: ``n`` messages of ``size`` bytes sent with
``SendMessage`` (``WINDOW`` in flight, each confirmed) to a FIFO queue, every message
with its own key (``MessageGroupId``); then consumed by one member that long-polls ten
at a time and acks each with ``DeleteMessage`` (raw: the usual receive / handle /
delete loop). Ours also carries the envelope's headers (JSON in one attribute) and
renews the visibility of what it holds.

moto is an in-memory emulator whose FIFO queues get slower with their depth (each send
and receive walks the queue), so the figures are moto's, not AWS's, and ``n`` is capped
at ``MAX_N``. With no ``SERVICEWIRE_BENCH_SQS`` URL in the environment, importing this
module starts a private ``moto_server`` that stops at exit::

    .venv/bin/python benchmarks/transports.py --only sqs --n 500
"""

from __future__ import annotations

import asyncio
import atexit
import os
import uuid

from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.sqs.client import open_client
from servicewire.transports.sqs.options import parse_sqs_url
from servicewire.transports.sqs.transport import SqsTransport
from transport_cases._timing import Clock, pipelined

WINDOW = 32
PREFETCH = 10
MAX_N = 1000
OPTIONS = {"wait_time": "1", "visibility_timeout": "30", "connections": str(WINDOW + 8)}


def _own_server() -> str:
    from servicewire.testing.moto_server import PrivateMoto

    server = PrivateMoto()
    atexit.register(server.close)  # registered first: a failed start cleans up too
    server.start()
    return server.sqs_url(**OPTIONS)


URL = os.environ.get("SERVICEWIRE_BENCH_SQS") or _own_server()


def _name(what: str) -> str:
    return f"bench.{what}.{uuid.uuid4().hex[:8]}"


def _capped(n: int) -> int:
    if n > MAX_N:
        print(f"    (sqs: {n:,} capped at {MAX_N:,} messages: moto's FIFO queues slow with depth)")
    return min(n, MAX_N)


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    n = _capped(n)
    transport = await connect_transport(url)
    assert isinstance(transport, SqsTransport)
    channel, group = _name("ours"), "g"
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
                if clock.tick():
                    return

        await within(consume(), 600)
        await sub.close()
        return publish_rate, clock.rate()
    finally:
        await transport.tear_down(channel, [group])
        await transport.close()


async def raw(url: str, n: int, size: int) -> tuple[float, float]:
    n = _capped(n)
    client, context = await open_client(parse_sqs_url(url))
    name = _name("raw").replace(".", "_") + ".fifo"
    body = "x" * size
    try:
        made = await client.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})
        queue = made["QueueUrl"]

        async def publish(i: int) -> None:
            await client.send_message(
                QueueUrl=queue,
                MessageBody=body,
                MessageGroupId=str(i),
                MessageDeduplicationId=str(i),
                MessageAttributes={"id": {"DataType": "String", "StringValue": str(i)}},
            )

        publish_rate = await pipelined(publish, n, WINDOW)
        clock = Clock(n)
        async with asyncio.timeout(600):
            done = False
            while not done:
                answer = await client.receive_message(
                    QueueUrl=queue,
                    MaxNumberOfMessages=PREFETCH,
                    WaitTimeSeconds=1,
                    MessageAttributeNames=["All"],
                )
                for message in answer.get("Messages", ()):
                    message["MessageAttributes"]["id"]["StringValue"]  # read it, as a handler would
                    await client.delete_message(
                        QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"]
                    )
                    done = clock.tick()
        await client.delete_queue(QueueUrl=queue)
        return publish_rate, clock.rate()
    finally:
        await context.__aexit__(None, None, None)
