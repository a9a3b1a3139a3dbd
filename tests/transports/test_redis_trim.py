"""Redis streams are trimmed without dropping anything a group has not acked (shared Redis).

Two groups on one shard stream: ``fast`` and a ``slow`` one that lags behind. Trimming
removes what both acked and keeps what either still has pending or has not been
delivered yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.base import Delivery
from servicewire.transports.redis.transport import RedisTransport
from servicewire.transports.redis.trimming import parse_id, trim_point, trim_streams
from tests.services import URLS, require


@pytest.fixture
async def redis_one_shard(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RedisTransport, str]]:
    """A transport with one shard per channel (``trim_interval`` = the param) and a channel."""
    require("redis")
    interval = getattr(request, "param", 0)
    transport = await connect_transport(f"{URLS['redis']}?shards=1&trim_interval={interval}")
    assert isinstance(transport, RedisTransport)
    channel = unique("trim")
    try:
        yield transport, channel
    finally:
        await transport.delete_channel(channel)
        await transport.close()


def test_trim_point_is_the_lowest_need_of_every_group() -> None:
    groups = [
        {"name": b"a", "pending": 1, "last-delivered-id": b"9-0"},
        {"name": b"b", "pending": 0, "last-delivered-id": b"7-3"},
    ]
    assert trim_point(groups, {"a": (4, 0)}) == (4, 0)  # a's oldest pending
    assert trim_point(groups, {"a": (8, 0)}) == (7, 4)  # b has not had 7-4 yet
    assert trim_point([], {}) is None  # no group: leave the stream alone
    assert parse_id(b"1700000000000-5") == (1700000000000, 5)


async def test_trim_keeps_pending_and_undelivered_entries_of_every_group(
    redis_one_shard: tuple[RedisTransport, str],
) -> None:
    transport, channel = redis_one_shard
    client = transport.client
    key = transport.options.stream(channel, 0)
    await transport.declare(channel, "fast")
    await transport.declare(channel, "slow")
    for n in range(30):
        await transport.publish(make_message(channel, n))

    async def read(group: str, count: int) -> list[bytes]:
        reply = await client.xreadgroup(group, f"{group}-1", {key: ">"}, count=count)
        return [entry_id for entry_id, _ in reply[0][1]]

    ids = await read("fast", 30)
    assert len(ids) == 30
    await client.xack(key, "fast", *ids[:10], *ids[11:])  # ids[10] stays pending
    assert await read("slow", 15) == ids[:15]
    await client.xack(key, "slow", *ids[:15])  # slow has not been given ids[15:] yet

    async def remaining() -> list[bytes]:
        return [entry_id for entry_id, _ in await client.xrange(key)]

    assert await trim_streams(client, [key]) == {key: 10}
    assert await remaining() == ids[10:], "fast's pending entry (and all after) must stay"

    await client.xack(key, "fast", ids[10])
    assert await trim_streams(client, [key]) == {key: 5}
    assert await remaining() == ids[15:], "what slow has not been delivered must stay"

    assert await read("slow", 30) == ids[15:], "slow reads the rest intact"
    assert await trim_streams(client, [key]) == {key: 0}, "slow's pending entries stay"
    await client.xack(key, "slow", *ids[15:])
    assert await trim_streams(client, [key]) == {key: 15}
    assert await remaining() == []


@pytest.mark.parametrize("redis_one_shard", [0.1], indirect=True)
async def test_members_trim_what_both_groups_acked_and_nothing_else(
    redis_one_shard: tuple[RedisTransport, str],
) -> None:
    transport, channel = redis_one_shard
    key = transport.options.stream(channel, 0)
    await transport.declare(channel, "slow")
    fast = Member(await transport.subscribe(channel, "fast"))
    slow: Member | None = None
    release = asyncio.Event()

    async def slow_handler(delivery: Delivery) -> None:
        if delivery.message.headers["seq"] == "11":
            await within(release.wait(), 30)  # pending with slow meanwhile
        await delivery.ack()
        assert slow is not None
        slow.acked.append(delivery.message)

    async def length() -> int:
        return int(await transport.client.xlen(key))

    try:
        for n in range(20):
            await transport.publish(make_message(channel, n))
        await eventually(lambda: len(fast.acked) == 20, 10, "fast acking everything")
        await asyncio.sleep(0.5)  # several trim intervals of the fast member
        assert await length() == 20, "slow has read nothing yet: nothing may go"

        slow = Member(await transport.subscribe(channel, "slow"), slow_handler)
        await eventually(lambda: len(slow.acked) == 11, 10, "slow acking up to seq 10")
        await asyncio.sleep(0.5)
        assert await length() == 9, "entries from slow's pending seq 11 on must stay"

        release.set()
        await eventually(lambda: len(slow.acked) == 20, 10, "slow acking the rest")
        await transport.acks_landed()
        deadline = asyncio.get_running_loop().time() + 10
        while await length() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert await length() == 0, "everything both groups acked is trimmed"
        assert [m.headers["seq"] for m in slow.acked] == [str(n) for n in range(20)]
    finally:
        release.set()
        await fast.stop()
        if slow is not None:
            await slow.stop()
