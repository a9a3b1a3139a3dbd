"""``publish_batch`` on Kafka builds record batches per partition (aiokafka's batch API).

Against a private tansu: a batch larger than one record batch (64 KiB), with a record
larger than a whole record batch in the middle, arrives complete and in order.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.transports import connect_transport
from tests.tansu import Tansu, require_tansu


@pytest.fixture(scope="module")
def tansu() -> Iterator[Tansu]:
    require_tansu()
    with Tansu() as broker:
        yield broker


async def test_a_batch_spanning_record_batches_arrives_in_order(tansu: Tansu) -> None:
    transport = await connect_transport(
        f"{tansu.url}/?partitions=2&heartbeat_interval_ms=100&session_timeout_ms=6000"
    )
    channel, group = unique("batch"), unique("g")
    sizes = [1000] * 150 + [200_000] + [1000] * 150  # ~10 record batches on one partition
    messages = [make_message(channel, i, key="one-key", size=s) for i, s in enumerate(sizes)]
    try:
        await transport.declare(channel, group)
        await transport.publish_batch(messages)
        member = Member(await transport.subscribe(channel, group))
        try:
            await eventually(lambda: len(member.acked) >= len(messages), 60, "the whole batch")
        finally:
            await member.stop()
    finally:
        await transport.close()
    assert [m.id for m in member.acked] == [m.id for m in messages]
    assert [len(m.payload) for m in member.acked] == sizes
