"""Redis Streams: the contract suite on a private redis-server, plus faults on the shared one.

Each contract test gets its own redis-server (own port, temp dir, append-only file on),
so the restart hook restarts only that one and never the shared Redis on 6379.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from servicewire.errors import ConnectionFailedError, MessageTooLargeError, TransportError
from servicewire.testing.contract.attempts import next_delivery
from servicewire.testing.contract.helpers import (
    Member,
    eventually,
    make_message,
    publish_all,
    unique,
)
from servicewire.testing.redis_server import PrivateRedis, free_port
from servicewire.transports import connect_transport, transport_from_url
from servicewire.transports.base import Transport
from servicewire.transports.redis.options import RedisOptions
from servicewire.transports.redis.subscription import RedisSubscription
from servicewire.transports.redis.transport import RedisTransport
from tests.contract import RestartContract, TransportContract, TransportSpec
from tests.services import URLS, require


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    require("redis")
    server = PrivateRedis(appendonly=True)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


class TestRedisContract(TransportContract, RestartContract):
    @pytest.fixture
    def spec(self, private_redis: PrivateRedis) -> TransportSpec:
        async def make() -> Transport:
            return await connect_transport(private_redis.url)

        return TransportSpec(
            make=make, restart_broker=private_redis.restart, settle_time=0.5, timeout=30.0
        )

    async def test_private_server_declares_persistence(self, transport: Transport) -> None:
        # appendonly yes on the private server: the transport says it persists.
        assert transport.capabilities.persistent is True


@pytest.fixture
async def shared() -> AsyncIterator[Transport]:
    require("redis")
    transport = await connect_transport(URLS["redis"])
    try:
        yield transport
    finally:
        await transport.close()


async def test_shared_server_without_aof_is_not_persistent(shared: Transport) -> None:
    # The shared Redis keeps nothing on disk, and the transport says so.
    assert shared.capabilities.persistent is False


async def test_delete_channel_removes_its_streams_groups_and_dead_letters(
    shared: Transport,
) -> None:
    assert isinstance(shared, RedisTransport)
    channel = unique("redis-del")
    other = unique("redis-keep")
    member = Member(await shared.subscribe(channel, "g"))
    await shared.declare(f"{channel}.dlq", "dead-letters")
    await shared.declare(other, "g")
    try:
        await shared.publish(make_message(channel, 1, key="k"))
        await eventually(lambda: len(member.acked) == 1, 10, "the message")
    finally:
        await member.stop()

    async def count(name: str) -> int:
        return len([k async for k in shared.client.scan_iter(match=f"sw:{{{name}}}:*")])

    assert await count(channel) > 0 and await count(f"{channel}.dlq") > 0
    await shared.delete_channel(channel)
    assert await count(channel) == 0, "shard streams or group keys left"
    assert await count(f"{channel}.dlq") == 0, "the dead-letter channel left"
    assert await count(other) > 0, "another channel was touched"
    await shared.delete_channel(other)
    assert await count(other) == 0


async def test_persistence_can_be_declared_in_the_url() -> None:
    require("redis")
    transport = await connect_transport(URLS["redis"] + "?persistent=yes")
    try:
        assert transport.capabilities.persistent is True
        assert RedisTransport.capabilities.persistent is False  # the class default is untouched
    finally:
        await transport.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:99999/0",
        "redis://127.0.0.1:6379/0?shards=0",
        "redis://127.0.0.1:6379/0?persistent=maybe",
        "redis://127.0.0.1:6379/0?heartbeat=10",
    ],
)
def test_bad_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(TransportError, match="redis"):
        transport_from_url(url)


async def test_refused_connection_names_the_address_without_the_password() -> None:
    port = free_port()
    url = f"redis://user:s3cret-pw@127.0.0.1:{port}/0"
    with pytest.raises(ConnectionFailedError) as info:
        await connect_transport(url)
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text and "redis" in text
    assert "s3cret-pw" not in text and "s3cret-pw" not in repr(info.value.args)


async def test_wrong_password_is_a_connection_error_without_the_password() -> None:
    require("redis")
    url = URLS["redis"].replace("redis://", "redis://nobody:wr0ng-pw@", 1)
    with pytest.raises(ConnectionFailedError) as info:
        await connect_transport(url)
    assert "wr0ng-pw" not in str(info.value)


async def test_oversized_message_is_refused_before_redis(shared: Transport) -> None:
    small = await connect_transport(URLS["redis"], max_message_size=1000)
    try:
        channel = unique("big")
        with pytest.raises(MessageTooLargeError):
            await small.publish(make_message(channel, 1, size=2000))
        await small.publish(make_message(channel, 2, size=10))
    finally:
        await small.close()


async def test_shards_move_to_a_new_member_and_back(shared: Transport) -> None:
    channel, group = unique("moves"), unique("g")
    first = await shared.subscribe(channel, group)
    assert isinstance(first, RedisSubscription)
    assert len(first.owned_shards) == 16  # alone: it leases every shard at once
    second = await shared.subscribe(channel, group)
    assert isinstance(second, RedisSubscription)
    try:
        await eventually(
            lambda: len(second.owned_shards) == 8 and len(first.owned_shards) == 8,
            10,
            "the shards to be split between two members",
        )
    finally:
        await second.close()
    try:
        await eventually(lambda: len(first.owned_shards) == 16, 10, "the shards to come back")
    finally:
        await first.close()
        assert isinstance(shared, RedisTransport)
        await shared.delete_channel(channel)  # the shared server keeps nothing of the test


async def test_entries_stuck_with_a_dead_member_are_claimed(private_redis: PrivateRedis) -> None:
    # A member that dies without closing leaves its leases to expire and its pending
    # entries in Redis; the next member claims them (XAUTOCLAIM) and delivers them.
    url = private_redis.url + "?lease_ttl=1&heartbeat=0.2"
    doomed, survivor = await connect_transport(url), await connect_transport(url)
    channel, group = unique("dead"), unique("g")
    try:
        sub = await doomed.subscribe(channel, group)
        await doomed.publish_batch([make_message(channel, i, key="k") for i in range(3)])
        got = None
        async with asyncio.timeout(10):
            async for delivery in sub:
                got = delivery  # taken, never settled
                break
        assert got is not None
        # Simulate a crash: stop the member's tasks without releasing anything in Redis.
        sub._closed = True  # type: ignore[attr-defined]
        sub._ticker.cancel()  # type: ignore[attr-defined]
        for worker in list(sub._workers.values()):  # type: ignore[attr-defined]
            worker.task.cancel()
        member = Member(await survivor.subscribe(channel, group))
        try:
            await eventually(lambda: len(member.acked) >= 3, 15, "the dead member's entries")
            assert [m.headers["seq"] for m in member.acked[:3]] == ["0", "1", "2"]
        finally:
            await member.stop()
    finally:
        await survivor.close()
        await doomed.close()


async def test_entries_read_but_never_handed_out_keep_their_attempt(shared: Transport) -> None:
    # A member reads a batch of a shard's entries and hands out one at a time. Closing
    # with the rest still in its buffer must not count them as delivered: the next
    # owner hands them out as attempt 1 (the one in the application's hands: 2).
    channel, group = unique("unhanded"), unique("g")
    await shared.declare(channel, group)
    await publish_all(shared, [make_message(channel, i, key="same") for i in range(3)])
    try:
        first = await shared.subscribe(channel, group)
        try:
            held = await next_delivery(first, 10)
            assert held.attempt == 1
        finally:
            await first.close()  # closes with `held` unsettled and two entries buffered
        second = await shared.subscribe(channel, group)
        attempts: list[int] = []
        try:
            for _ in range(3):
                delivery = await next_delivery(second, 10)
                attempts.append(delivery.attempt)
                await delivery.ack()
        finally:
            await second.close()
        assert attempts == [2, 1, 1], attempts
    finally:
        assert isinstance(shared, RedisTransport)
        await shared.delete_channel(channel)  # the shared server keeps nothing of the test


async def test_an_idle_member_closes_at_once(shared: Transport) -> None:
    """Closing stops each shard's blocking XREADGROUP. A cancel that lands while
    redis-py sends the next read is lost (its wait_for, Python 3.11), and the read then
    blocks for the whole block time; stopping the shards one after another, an idle
    member of 16 shards took up to 32 s to close. Closes are timed at the moment the
    idle reads come back and go out again, where the cancels were lost."""
    block = RedisOptions.from_url(URLS["redis"]).block
    channel, group = unique("closing"), unique("g")
    await shared.declare(channel, group)
    slowest = 0.0
    try:
        for _ in range(4):
            member = await shared.subscribe(channel, group)
            await asyncio.sleep(block)  # the idle reads end now and are sent again
            started = time.monotonic()
            await member.close()
            slowest = max(slowest, time.monotonic() - started)
    finally:
        assert isinstance(shared, RedisTransport)
        await shared.delete_channel(channel)
    assert slowest < 1.0, f"closing an idle member took {slowest:.1f} s"
