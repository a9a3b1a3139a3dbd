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
from aiokafka.admin import AIOKafkaAdminClient

from servicewire import Context, RetryPolicy, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging.channels import shard_for
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.transports import connect_transport
from servicewire.transports.base import Delivery, Transport
from servicewire.transports.kafka.attempts import attempts_topic
from servicewire.transports.kafka.transport import KafkaTransport
from tests.service.contracts import CreateTicket
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

    Far more records wait behind the poison message than the member buffers per
    partition (``buffer_records=512``), so a member that stops fetching for everyone once
    its buffer is full of the stuck partition's records starves the healthy partitions.
    """
    transport = await connect_transport(f"{tansu.url}/?{TUNING}&partitions=4&buffer_records=512")
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


async def test_the_attempt_count_follows_the_message_to_the_next_member(tansu: Tansu) -> None:
    """Member A fails M twice and closes; member B delivers M as attempt 3, not 1."""
    transport = await connect_transport(f"{tansu.url}/?{TUNING}&partitions=2")
    channel, group = unique("attempts"), unique("g")
    seen_a: list[tuple[int, int]] = []
    seen_b: list[tuple[int, int]] = []

    async def fail_twice(delivery: Delivery) -> None:
        seen_a.append((int(delivery.message.headers["seq"]), delivery.attempt))
        # The second failure waits long: A closes before it would deliver M again.
        await delivery.nack(delay=0.2 if delivery.attempt < 2 else 30)

    async def dead_letter_at_3(delivery: Delivery) -> None:
        seen_b.append((int(delivery.message.headers["seq"]), delivery.attempt))
        await delivery.ack()  # attempt 3 of 3: the pipeline dead-letters and acks

    await transport.declare(channel, group)
    await transport.publish_batch([make_message(channel, i, key="k") for i in range(2)])
    first = Member(await transport.subscribe(channel, group), fail_twice)
    try:
        await eventually(lambda: len(seen_a) >= 2, 60, "two failures on member A")
        await asyncio.sleep(0.3)  # the nack's record write is awaited by nack() itself
    finally:
        await first.stop()
    second = Member(await transport.subscribe(channel, group), dead_letter_at_3)
    try:
        await eventually(lambda: len(seen_b) >= 2, 60, "member B's deliveries")
        await second.stop()
        # Deleting the group deletes its attempts record too.
        assert _attempts_topic(transport, channel, group) in await _topics(tansu)
        await transport.tear_down(channel, [group])
        assert _attempts_topic(transport, channel, group) not in await _topics(tansu)
    finally:
        await second.stop()
        await transport.close()
    assert seen_a == [(0, 1), (0, 2)]
    assert seen_b[:2] == [(0, 3), (1, 1)]


def _attempts_topic(transport: Transport, channel: str, group: str) -> str:
    assert isinstance(transport, KafkaTransport)
    return attempts_topic(transport.topic_for(channel), group)


async def _topics(broker: Tansu) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_service_restarted_mid_retries_dead_letters_after_the_configured_attempts(
    tansu: Tansu,
) -> None:
    """3 delayed redeliveries: deliveries 1-2 fail on instance A, 3-4 on its successor B.

    Attempt 4 is past the policy, so B dead-letters it there: four deliveries in all, as
    if one instance had run them (before: B started again at 1, four more deliveries).
    """
    url = f"{tansu.url}/?{TUNING}&partitions=2"
    retry = RetryPolicy(immediate=0, delayed=3, backoff=1.0, factor=1.0, jitter=0.0)

    def kitchen(attempts: list[int]) -> Service:
        service = Service("kitchen", transport=url, options=ServiceOptions(retry=retry))

        @service.handles(CreateTicket)
        async def cook(cmd: CreateTicket, ctx: Context) -> None:
            attempts.append(ctx.attempt)
            raise ValueError(f"cannot cook {cmd.order_id}")

        return service

    on_a: list[int] = []
    on_b: list[int] = []
    tool = await connect_transport(url)
    try:
        first = kitchen(on_a)
        async with first:
            await tool.publish(to_message(CreateTicket(order_id="order-1", fail=True)))
            await eventually(lambda: first.stats["retrying"] >= 2, 60, "two failures on A")
        second = kitchen(on_b)
        async with second:
            await eventually(lambda: second.stats["dead-lettered"] >= 1, 60, "the dead letter")
            await asyncio.sleep(1.5)  # (a redelivery after the dead letter would show here)
    finally:
        await tool.close()
    assert on_a == [1, 2]
    assert on_b == [3, 4]
