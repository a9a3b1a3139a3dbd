"""Batches on Kafka: ``publish_batch`` builds record batches per partition (aiokafka's
batch API), and a member holds a whole fetch per partition before it pauses one.

Against a private tansu: a batch larger than one record batch (64 KiB), with a record
larger than a whole record batch in the middle, arrives complete and in order; a
partition is paused only past ``buffer_records`` records or two fetches' bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiokafka import TopicPartition

from servicewire.messaging.message import Message
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.base import Delivery
from servicewire.transports.kafka.subscription import KafkaSubscription
from tests.tansu import Tansu, require_tansu


@pytest.fixture(scope="module")
def tansu() -> Iterator[Tansu]:
    require_tansu()
    with Tansu() as broker:
        yield broker


async def test_a_batch_spanning_record_batches_arrives_in_order(tansu: Tansu) -> None:
    sizes = [1000] * 150 + [200_000] + [1000] * 150  # ~10 record batches on one partition
    url = f"{tansu.url}/?partitions=2&{TIMING}"
    acked = await _publish_and_consume_one_key(url, sizes, None)
    assert [len(m.payload) for m in acked] == sizes


# What a member holds per partition ---------------------------------------------------------


def _record_pauses(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(records, bytes) buffered each time a member pauses a partition (observed, not
    replaced: the real pause still runs)."""
    pauses: list[tuple[int, int]] = []
    pause = KafkaSubscription._pause

    def observed(self: KafkaSubscription, tp: TopicPartition, paused: bool) -> None:
        if paused:
            part = self._parts[tp]
            pauses.append((len(part.buffer), part.buffered_bytes))
        pause(self, tp, paused)

    monkeypatch.setattr(KafkaSubscription, "_pause", observed)
    return pauses


async def _publish_and_consume_one_key(
    url: str, sizes: list[int], hold: asyncio.Event | None
) -> list[Message]:
    """Publish records of ``sizes`` under one key in one batch and consume them all,
    checking their order; with ``hold``, the first delivery waits for it, so the member's
    buffer fills meanwhile. Returns the messages as acked."""
    transport = await connect_transport(url)
    channel, group = unique("held"), unique("g")
    messages = [make_message(channel, i, key="one-key", size=s) for i, s in enumerate(sizes)]
    first = True

    async def handler(delivery: Delivery) -> None:
        nonlocal first
        if first and hold is not None:
            first = False
            await within(hold.wait(), 60)
        await delivery.ack()
        member.acked.append(delivery.message)

    try:
        await transport.declare(channel, group)
        await transport.publish_batch(messages)
        member = Member(await transport.subscribe(channel, group), handler)
        try:
            if hold is not None:
                await asyncio.sleep(3)  # the member joins and fetches while the head waits
                hold.set()
            await eventually(lambda: len(member.acked) >= len(messages), 90, "every record")
        finally:
            await member.stop()
    finally:
        await transport.close()
    assert [m.id for m in member.acked] == [m.id for m in messages]
    return member.acked


TIMING = "heartbeat_interval_ms=100&session_timeout_ms=6000"


@pytest.mark.parametrize("buffer_records", [None, 512])
async def test_a_member_holds_a_whole_fetch_without_pausing(
    tansu: Tansu, monkeypatch: pytest.MonkeyPatch, buffer_records: int | None
) -> None:
    """3,000 records of 500 bytes on one partition: one fetch (2 MiB) brings them all.
    With the default buffer the member takes them without pausing the partition (a pause
    makes aiokafka drop the unread rest of the fetch); with room for 512 it pauses."""
    pauses = _record_pauses(monkeypatch)
    option = f"&buffer_records={buffer_records}" if buffer_records else ""
    await _publish_and_consume_one_key(
        f"{tansu.url}/?partitions=1&{TIMING}{option}", [500] * 3000, None
    )
    if buffer_records is None:
        assert pauses == []
    else:
        assert pauses and all(records >= 512 for records, _ in pauses)


async def test_large_records_pause_at_the_byte_bound(
    tansu: Tansu, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 records of 200 KB (8 MB) behind a held head: the partition pauses once about
    4 MiB (two fetches) wait, long before 4,096 records, and all arrive in order."""
    pauses = _record_pauses(monkeypatch)
    url = f"{tansu.url}/?partitions=1&{TIMING}"
    await _publish_and_consume_one_key(url, [200_000] * 40, asyncio.Event())
    assert pauses, "the member never paused: large records are bounded by count alone"
    assert all(records < 40 for records, _ in pauses)
    assert all(4 * 1024 * 1024 <= size <= 7 * 1024 * 1024 for _, size in pauses), pauses
