"""NATS JetStream: Servicewire's ``nats://`` transport next to raw nats-py.

Both do the same work on the same server: ``n`` messages of ``size`` bytes published
pipelined (``WINDOW`` in flight), each awaiting its JetStream PubAck, into a file-backed
stream; then consumed from a durable pull consumer with an explicit ack each. Ours
spreads them over its 16 shard subjects (one pull consumer per shard with
``max_ack_pending=1``, which is what keeps per-key order); raw nats-py uses one subject
and one pull consumer fetching batches of ``PREFETCH``. Consume rates run from the
first delivery to the last ack, so joining the group does not count::

    .venv/bin/python benchmarks/transport_cases/nats.py --n 20000 --size 500
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

if __name__ == "__main__":  # run alone, this file's directory would shadow the nats package
    _here = Path(__file__).resolve().parent
    sys.path = [str(_here.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _here]

import nats
from nats.js import api

from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.nats.transport import NatsTransport
from transport_cases._timing import Clock, pipelined

URL = "nats://127.0.0.1:4222"
WINDOW = 1000
PREFETCH = 64


def _name(what: str) -> str:
    return f"bench.{what}.{uuid.uuid4().hex[:8]}"


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    transport = await connect_transport(url)
    assert isinstance(transport, NatsTransport)
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
        await transport.delete_channel(channel)
        await transport.close()


async def raw(url: str, n: int, size: int) -> tuple[float, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    name = _name("raw").replace(".", "_")
    subject = f"{name}.events"
    payload = b"x" * size
    try:
        await js.add_stream(name=name, subjects=[subject], storage=api.StorageType.FILE)
        await js.add_consumer(
            name, durable_name="bench", ack_policy=api.AckPolicy.EXPLICIT, deliver_policy="all"
        )

        async def publish(i: int) -> None:
            await js.publish(subject, payload, headers={"Nats-Msg-Id": str(i)})

        publish_rate = await pipelined(publish, n, WINDOW)
        clock = Clock(n)
        psub = await js.pull_subscribe_bind("bench", stream=name)
        while not clock.done.is_set():
            for msg in await psub.fetch(PREFETCH, timeout=5):
                await msg.ack()
                clock.tick()
        await psub.unsubscribe()
        return publish_rate, clock.rate()
    finally:
        await js.delete_stream(name)
        await nc.close()


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
            print(f"  raw nats-py   publish {theirs[0]:>8,.0f}/s  consume {theirs[1]:>8,.0f}/s")
            mine = await ours(args.url, args.n, args.size)
            print(f"  servicewire   publish {mine[0]:>8,.0f}/s  consume {mine[1]:>8,.0f}/s")
            print(
                f"  ratio         publish {mine[0] / theirs[0]:>8.2f}x  consume "
                f"{mine[1] / theirs[1]:>8.2f}x",
                flush=True,
            )

    asyncio.run(main())
