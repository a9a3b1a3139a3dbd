"""Client CPU per confirmed publish on RabbitMQ: our ``amqp://`` transport against raw aiormq.

Throughput on a 2-core machine that also runs the broker moves with whatever else the
broker and the kernel do; the CPU the publishing process spends per message does not,
so this is the figure to compare builds with. Both sides publish the same messages (the
CloudEvents envelope, a 100-byte payload, 64 keys) to the same shard queues, in
pipelined batches of ``--batch`` with publisher confirms, in alternating rounds:

- ours: ``transport.publish_batch`` (routing, envelope to AMQP properties, confirm check);
- raw aiormq: ``Channel.basic_publish`` of messages whose pamqp properties, routing keys
  and bodies were built before the clock started (aio-pika adds its own work on top).

::

    .venv/bin/python benchmarks/amqp_publish_cpu.py --n 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import aiormq
from pamqp.commands import Basic
from transport_cases.amqp import URL

from servicewire.messaging.channels import shard_for
from servicewire.messaging.message import Message
from servicewire.transports import connect_transport
from servicewire.transports.amqp.headers import encode
from servicewire.transports.amqp.topology import SHARD_KEYS, exchange_name


async def _timed(n: int, batch: int, send: Callable[[int, int], Awaitable[object]]) -> float:
    """Client CPU µs per message for ``n`` messages sent ``batch`` at a time."""
    started = time.process_time()
    for first in range(0, n, batch):
        await send(first, min(first + batch, n))
    return (time.process_time() - started) / n * 1e6


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages per round (20000)")
    parser.add_argument("--batch", type=int, default=500, help="pipelined per batch (500)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} at the start", file=sys.stderr)
    transport = await connect_transport(args.url)
    channel = f"bench.pubcpu.{uuid.uuid4().hex[:8]}"
    await transport.declare(channel, "bench")
    connection = await aiormq.connect(args.url)
    messages = [
        Message.create(
            b"x" * 100,
            destination=channel,
            kind="event",
            type="bench.Event",
            partition_key=f"k{i % 64}",
        )
        for i in range(args.n)
    ]
    prepared = []
    for m in messages:
        body, props = encode(m)
        plain = Basic.Properties(
            content_type=props.content_type,
            message_id=props.message_id,
            delivery_mode=props.delivery_mode,
            headers=props.headers,
        )
        prepared.append((body, plain, SHARD_KEYS[shard_for(m.partition_key, 16, m.id)]))
    exchange = exchange_name(channel)
    figures: dict[str, list[float]] = {"servicewire": [], "raw aiormq": []}
    try:
        raw = await connection.channel(publisher_confirms=True)

        async def ours(first: int, last: int) -> None:
            await transport.publish_batch(messages[first:last])

        async def raw_batch(first: int, last: int) -> None:
            await asyncio.gather(
                *(
                    raw.basic_publish(body, exchange=exchange, routing_key=key, properties=props)
                    for body, props, key in prepared[first:last]
                )
            )

        for round_ in range(1, args.rounds + 1):
            for label, send in (("servicewire", ours), ("raw aiormq", raw_batch)):
                figures[label].append(await _timed(args.n, args.batch, send))
            print(
                f"  round {round_}/{args.rounds}: servicewire {figures['servicewire'][-1]:.0f}"
                f" µs, raw aiormq {figures['raw aiormq'][-1]:.0f} µs",
                file=sys.stderr,
            )
    finally:
        await connection.close()
        await transport.tear_down(channel, ["bench"])
        await transport.close()
    ours_us, raw_us = (statistics.median(figures[k]) for k in ("servicewire", "raw aiormq"))
    print(f"client CPU per confirmed publish (median of {args.rounds} rounds, {args.n} messages)")
    print(f"  servicewire   {ours_us:6.0f} µs")
    print(
        f"  raw aiormq    {raw_us:6.0f} µs   ours / raw {ours_us / raw_us:.2f}x"
        " (CPU: lower is better)"
    )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
