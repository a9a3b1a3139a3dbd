"""A poison message on Kafka: it holds only its own partition, and its attempts persist.

Both run against a private tansu (tests/tansu.py). A poison message is one whose
handler fails every time; the member nacks it with a delay and the partition waits on
it (per-key order). Everything else the member owns must keep flowing meanwhile, and
the attempt count must follow the message to the next member after a rebalance, so the
dead letter happens after the configured attempts however often the group changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from servicewire.messaging.channels import shard_for
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.transports import connect_transport
from servicewire.transports.base import Delivery
from tests.tansu import Tansu, require_tansu

TUNING = (
    "session_timeout_ms=6000&heartbeat_interval_ms=100&rebalance_timeout_ms=5000"
    "&revoke_grace_ms=300&request_timeout_ms=15000&connect_timeout_ms=5000"
)


@pytest.fixture(scope="module")
def tansu() -> Iterator[Tansu]:
    require_tansu()
    with Tansu() as broker:
        yield broker


def _keys(partitions: int) -> list[str]:
    """One partition key per partition: ``keys[p]`` lands on partition ``p``."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(shard_for(f"key-{i}", partitions), f"key-{i}")
        if len(found) == partitions:
            break
    return [found[p] for p in range(partitions)]


async def test_a_poison_message_does_not_starve_the_other_partitions(tansu: Tansu) -> None:
    """Partition 0 is stuck on its head message; partitions 1-3 keep a bounded latency.

    Far more records wait behind the poison message than the member buffers (prefetch
    64: 512 records), so a member that stops fetching for everyone once its buffer is
    full of the stuck partition's records starves the healthy partitions.
    """
    transport = await connect_transport(f"{tansu.url}/?{TUNING}&partitions=4")
    channel, group = unique("poison"), unique("g")
    stuck, *healthy = _keys(4)
    behind = 1500
    poison_attempts: list[int] = []
    latencies: list[float] = []
    sent_at: dict[str, float] = {}

    async def handler(delivery: Delivery) -> None:
        message = delivery.message
        if message.partition_key == stuck:
            # Only the head of the stuck partition is ever delivered: it never succeeds.
            poison_attempts.append(int(message.headers["seq"]))
            await delivery.nack(delay=0.3)
            return
        latencies.append(time.monotonic() - sent_at[message.id])
        await delivery.ack()

    await transport.declare(channel, group)
    await transport.publish_batch(
        [make_message(channel, i, key=stuck, size=200) for i in range(behind + 1)]
    )
    member = Member(await transport.subscribe(channel, group), handler)
    try:
        await eventually(lambda: len(poison_attempts) >= 3, 60, "the poison message failing")
        for i in range(30):
            message = make_message(channel, i, key=healthy[i % len(healthy)])
            sent_at[message.id] = time.monotonic()
            await transport.publish(message)
            await asyncio.sleep(0.05)
        await eventually(lambda: len(latencies) >= 30, 30, "the healthy partitions' messages")
    finally:
        await member.stop()
        await transport.close()
    assert set(poison_attempts) == {0}, "a record behind the poison message overtook it"
    assert max(latencies) < 5.0, f"healthy partitions waited up to {max(latencies):.1f} s"
