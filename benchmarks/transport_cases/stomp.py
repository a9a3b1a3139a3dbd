"""ActiveMQ over STOMP: Servicewire's ``stomp://`` transport next to raw stompman.

Both run against one private ActiveMQ that this module starts on first use and stops
when the process ends (``URL = "stomp://"``: no shared ActiveMQ on a development host).
Both do the same broker work: ``n`` persistent messages of ``size`` bytes, each with
the same headers (ours' ``ce_*`` frame headers), SENT to the channel's virtual topic
with a receipt each, ``WINDOW`` in flight, then consumed from the group's queue
(``Consumer.bench.VirtualTopic.<channel>``, prefetch 64) with an ACK each. Consume
rates run from the first delivery to the last ack.
"""

from __future__ import annotations

import asyncio
import atexit
import time
import uuid

import stompman

from servicewire.messaging.message import Message
from servicewire.testing.activemq import PrivateActiveMQ
from servicewire.transports import connect_transport
from servicewire.transports.stomp.headers import encode
from servicewire.transports.stomp.names import group_queue, topic

URL = "stomp://"
WINDOW = 1000
PREFETCH = 64
_broker: PrivateActiveMQ | None = None


async def _url() -> str:
    """The private broker's STOMP URL, started on first use and stopped at exit."""
    global _broker
    if _broker is None:
        _broker = PrivateActiveMQ(connectors=("stomp",))
        await _broker.start()
        atexit.register(lambda b=_broker: asyncio.run(b.close()))
    return _broker.url("stomp")


def _name(what: str) -> str:
    return f"bench.{what}.{uuid.uuid4().hex[:8]}"


def _messages(channel: str, n: int, size: int) -> list[Message]:
    payload = b"x" * size
    return [
        Message.create(payload, destination=channel, kind="event", type="bench.Event")
        for _ in range(n)
    ]


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    transport = await connect_transport(await _url())
    channel, group = _name("ours"), "bench"
    messages = _messages(channel, n, size)
    try:
        await transport.declare(channel, group)
        start = time.perf_counter()
        for base in range(0, n, WINDOW):
            await transport.publish_batch(messages[base : base + WINDOW])
        publish_rate = n / (time.perf_counter() - start)
        sub = await transport.subscribe(channel, group, prefetch=PREFETCH)
        count, first = 0, 0.0
        async with asyncio.timeout(600):
            async for delivery in sub:
                if count == 0:
                    first = time.perf_counter()
                await delivery.ack()
                count += 1
                if count == n:
                    break
        consume_rate = n / (time.perf_counter() - first)
        await sub.close()
        return publish_rate, consume_rate
    finally:
        await transport.tear_down(channel, [group])
        await transport.close()


async def raw(url: str, n: int, size: int) -> tuple[float, float]:
    private = await _url()
    port = int(private.rsplit(":", 1)[1])
    channel = _name("raw")
    messages = _messages(channel, n, size)
    server = stompman.ConnectionParameters(host="127.0.0.1", port=port, login="", passcode="")
    async with stompman.Client(servers=[server], max_concurrent_handlers=None) as client:
        queue = group_queue(channel, "bench")
        got: asyncio.Queue[stompman.AckableMessageFrame] = asyncio.Queue()

        async def keep(frame: stompman.AckableMessageFrame) -> None:
            got.put_nowait(frame)

        # Create the group queue first (a consumer that takes nothing), as declare does.
        idle = await client.subscribe_with_manual_ack(
            queue, keep, headers={"activemq.prefetchSize": "0"}, receipt_timeout=30
        )
        await idle.unsubscribe()
        start = time.perf_counter()
        for base in range(0, n, WINDOW):
            await asyncio.gather(
                *(
                    client.send(m.payload, topic(channel), headers=encode(m), receipt_timeout=30)
                    for m in messages[base : base + WINDOW]
                )
            )
        publish_rate = n / (time.perf_counter() - start)
        sub = await client.subscribe_with_manual_ack(
            queue, keep, headers={"activemq.prefetchSize": str(PREFETCH)}, receipt_timeout=30
        )
        first = 0.0
        async with asyncio.timeout(600):
            for count in range(n):
                frame = await got.get()
                if count == 0:
                    first = time.perf_counter()
                await frame.ack()
        consume_rate = n / (time.perf_counter() - first)
        await sub.unsubscribe()
    return publish_rate, consume_rate
