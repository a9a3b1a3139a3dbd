"""A relay publishing to brokerless ZeroMQ keeps each outbox row until a member acked it.

ZeroMQ has no broker to hold a message: a member's receipt only says it arrived, and
with no live member nothing is kept at all. The relay deletes a row only when a member
of the channel's group acked the message (its handler committed); otherwise the publish
fails and the row stays for the next round. SQLite outbox, two zmq nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.errors import PublishError
from servicewire.outbox import outbox, write_messages
from servicewire.relay.polling import PollingRelay
from servicewire.storage.database import create_engine
from servicewire.testing.redis_server import free_port
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from servicewire.transports.handled import confirm_handled
from tests.relay.dbs import private_database
from tests.relay.helpers import eventually, make_messages, unique


@pytest.fixture
async def nodes() -> AsyncIterator[tuple[Transport, Transport]]:
    """Two zmq nodes on one rendezvous: the relay's (1 s publish timeout) and a consumer's."""
    url = f"zmq+tcp://127.0.0.1:{free_port()}?heartbeat=0.1&timeout=1"
    relay_node = await connect_transport(url)
    consumer_node = await connect_transport(url)
    try:
        yield relay_node, consumer_node
    finally:
        await consumer_node.close()
        await relay_node.close()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with private_database("sqlite", tmp_path) as url:
        engine = create_engine(url)
        try:
            yield engine
        finally:
            await engine.dispose()


async def rows_left(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(outbox))).scalar() or 0)


async def test_publish_confirming_handling_fails_without_a_live_member(
    nodes: tuple[Transport, Transport],
) -> None:
    relay_node, _ = nodes
    message = make_messages(unique("nobody"), 1)[0]
    await relay_node.publish(message)  # a plain publish: nothing to keep it for, accepted
    with confirm_handled(), pytest.raises(PublishError, match="no live member"):
        await relay_node.publish(message)


async def test_relay_keeps_the_row_while_no_member_lives(
    nodes: tuple[Transport, Transport], engine: AsyncEngine
) -> None:
    relay_node, consumer_node = nodes
    channel = unique("orders")
    relay = PollingRelay(engine, relay_node, poll_interval=0.05, max_poll_interval=0.2)
    await relay.start()
    sub = None
    task: asyncio.Task[None] | None = None
    try:
        async with engine.begin() as conn:
            await write_messages(conn, make_messages(channel, 3))
        relay.wake()
        await asyncio.sleep(1.5)  # several relay rounds
        assert await rows_left(engine) == 3, "rows published to nobody were deleted"
        assert relay.last_error is not None and "no live member" in relay.last_error

        sub = await consumer_node.subscribe(channel, "g")
        seen: list[str] = []

        async def consume() -> None:
            async for delivery in sub:
                seen.append(delivery.message.headers["seq"])
                await delivery.ack()

        task = asyncio.create_task(consume())
        await eventually(_no_rows(engine), 15, "the relay deleting the acked rows")
        assert sorted(set(seen)) == ["0", "1", "2"]
    finally:
        await relay.stop()
        if sub is not None:
            await sub.close()
        if task is not None:
            task.cancel()


async def test_relay_deletes_the_row_only_after_the_member_acked(
    nodes: tuple[Transport, Transport], engine: AsyncEngine
) -> None:
    relay_node, consumer_node = nodes
    channel = unique("orders")
    sub = await consumer_node.subscribe(channel, "g")
    release = asyncio.Event()
    attempts: list[int] = []

    async def consume() -> None:
        async for delivery in sub:
            attempts.append(delivery.attempt)
            if len(attempts) == 1:
                await delivery.nack()  # the handler failed: redelivered, not acked
                continue
            await within(release.wait(), 30)  # a slow handler: holds it
            await delivery.ack()

    task = asyncio.create_task(consume())
    relay = PollingRelay(engine, relay_node, poll_interval=0.05, max_poll_interval=0.2)
    await relay.start()
    try:
        async with engine.begin() as conn:
            await write_messages(conn, make_messages(channel, 1))
        relay.wake()
        await eventually(lambda: len(attempts) >= 2, 10, "the redelivery after the nack")
        await asyncio.sleep(1.5)  # past the publish timeout: the relay retried meanwhile
        assert await rows_left(engine) == 1, "the row went before the member acked it"

        release.set()
        await eventually(_no_rows(engine), 15, "the relay deleting the acked row")
    finally:
        release.set()
        await relay.stop()
        await sub.close()
        task.cancel()


def _no_rows(engine: AsyncEngine) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await rows_left(engine) == 0

    return check
