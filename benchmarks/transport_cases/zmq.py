"""Brokerless ZeroMQ: Servicewire's ``zmq+tcp://`` transport next to raw pyzmq.

Both do the same work between two sockets of one process over loopback TCP: ``n``
messages of ``size`` bytes with their headers as JSON, sent pipelined (``WINDOW`` in
flight); the receiving side answers each with a receipt (publish returns on it) and,
once the consumer handled it, with an ack to the sender. Raw pyzmq: a DEALER sends to a
ROUTER, which replies with one receipt and one ack frame per message. Ours adds the
directory, per-shard ordering, batched receipts and acks, and the sender's copy kept
until the ack. Brokerless keeps nothing for a member that is not there, so the
consumer is subscribed before publishing starts; the consume rate runs from the first
delivery to the last ack.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid

import zmq
import zmq.asyncio

from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.zmq.transport import ZmqTransport


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


URL = f"zmq+tcp://127.0.0.1:{_free_port()}"
WINDOW = 1000


def _messages(channel: str, n: int, size: int) -> list[Message]:
    payload = b"x" * size
    return [
        Message.create(payload, destination=channel, kind="event", type="bench.Event")
        for _ in range(n)
    ]


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    transport = await connect_transport(url)
    assert isinstance(transport, ZmqTransport)
    channel = f"bench.ours.{uuid.uuid4().hex[:8]}"
    messages = _messages(channel, n, size)
    times = {"first": 0.0, "last": 0.0}
    try:
        sub = await transport.subscribe(channel, "bench", prefetch=64)

        async def consume() -> None:
            count = 0
            async for delivery in sub:
                if count == 0:
                    times["first"] = time.perf_counter()
                await delivery.ack()
                count += 1
                if count == n:
                    times["last"] = time.perf_counter()
                    return

        task = asyncio.create_task(consume())
        start = time.perf_counter()
        for base in range(0, n, WINDOW):
            await transport.publish_batch(messages[base : base + WINDOW])
        publish_rate = n / (time.perf_counter() - start)
        await within(task, 600)
        await sub.close()
        return publish_rate, n / (times["last"] - times["first"])
    finally:
        await transport.close()


async def raw(url: str, n: int, size: int) -> tuple[float, float]:
    ctx = zmq.asyncio.Context()
    router = ctx.socket(zmq.ROUTER)
    dealer = ctx.socket(zmq.DEALER)
    for sock in (router, dealer):
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:*")
    dealer.connect(router.getsockopt_string(zmq.LAST_ENDPOINT))
    messages = _messages("bench.raw", n, size)
    times = {"first": 0.0, "last": 0.0}

    async def receiver() -> None:
        for count in range(n):
            rid, tag, headers, _payload = await router.recv_multipart()
            if count == 0:
                times["first"] = time.perf_counter()
            json.loads(headers)  # the receiver reads the headers, as ours does
            await router.send_multipart([rid, b"R", tag])
            await router.send_multipart([rid, b"A", tag])  # handled: ack to the sender
        times["last"] = time.perf_counter()

    receipts = 0
    window_done = asyncio.Event()
    window_end = 0

    async def replies() -> None:
        nonlocal receipts
        while True:
            kind, _tag = await dealer.recv_multipart()
            if kind == b"R":
                receipts += 1
                if receipts >= window_end:
                    window_done.set()

    try:
        consumer = asyncio.create_task(receiver())
        listener = asyncio.create_task(replies())
        start = time.perf_counter()
        for base in range(0, n, WINDOW):
            window_end = min(n, base + WINDOW)
            window_done.clear()
            for i in range(base, window_end):
                message = messages[i]
                headers = json.dumps(message.headers.to_dict(), separators=(",", ":")).encode()
                await dealer.send_multipart([str(i).encode(), headers, message.payload])
            await within(window_done.wait(), 600)
        publish_rate = n / (time.perf_counter() - start)
        await within(consumer, 600)
        listener.cancel()
        return publish_rate, n / (times["last"] - times["first"])
    finally:
        router.close(linger=0)
        dealer.close(linger=0)
        ctx.term()
