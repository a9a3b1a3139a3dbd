"""Brokerless ZeroMQ: the contract suite over tcp and ipc, and what brokerless does not give."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servicewire.errors import ConnectionFailedError, MessageTooLargeError, TransportError
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.testing.redis_server import free_port
from servicewire.transports import connect_transport, transport_from_url
from servicewire.transports.base import Transport
from servicewire.transports.zmq.transport import ZmqTransport
from tests.contract import TransportContract, TransportSpec


def tcp_url() -> str:
    return f"zmq+tcp://127.0.0.1:{free_port()}?heartbeat=0.1"


class TestZmqContract(TransportContract):
    @pytest.fixture
    def spec(self) -> TransportSpec:
        url = tcp_url()

        async def make() -> Transport:
            return await connect_transport(url)

        return TransportSpec(make=make, settle_time=0.3, timeout=30.0)


class TestZmqIpcContract(TransportContract):
    """The same suite over Unix domain sockets (a few tests are enough to show it)."""

    @pytest.fixture
    def spec(self, tmp_path: Path) -> TransportSpec:
        url = f"zmq+ipc://{tmp_path}/rendezvous.sock?heartbeat=0.1"

        async def make() -> Transport:
            return await connect_transport(url)

        return TransportSpec(make=make, settle_time=0.3, timeout=30.0)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Transport, Transport]]:
    url = tcp_url()
    first = await connect_transport(url)
    second = await connect_transport(url)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def test_declares_what_brokerless_does_not_give(pair: tuple[Transport, Transport]) -> None:
    caps = pair[0].capabilities
    assert caps.brokerless and not caps.durable and not caps.persistent
    assert caps.ordered_per_key and caps.competing_consumers


async def test_nothing_is_kept_for_a_group_without_members(
    pair: tuple[Transport, Transport],
) -> None:
    consumer, producer = pair
    channel, group = unique("nobody"), unique("g")
    await consumer.declare(channel, group)
    await producer.publish(make_message(channel, 0))  # no member: returns, kept nowhere
    member = Member(await consumer.subscribe(channel, group))
    try:
        await producer.publish(make_message(channel, 1))
        await eventually(lambda: len(member.acked) >= 1, 10, "the message sent after joining")
        await asyncio.sleep(0.3)
        assert [m.headers["seq"] for m in member.acked] == ["1"]
    finally:
        await member.stop()


async def test_member_in_another_node_sees_every_message_after_subscribe(
    pair: tuple[Transport, Transport],
) -> None:
    # subscribe() returns only when every node applied the new view: no warm-up needed.
    consumer, producer = pair
    channel, group = unique("barrier"), unique("g")
    member = Member(await consumer.subscribe(channel, group))
    try:
        sent = [make_message(channel, i, key="k") for i in range(100)]
        for message in sent:
            await producer.publish(message)
        await eventually(lambda: len(member.acked) >= 100, 10, "100 messages")
        assert [m.id for m in member.acked] == [m.id for m in sent]
    finally:
        await member.stop()


async def test_unacked_messages_of_a_departed_member_go_to_the_next(
    pair: tuple[Transport, Transport],
) -> None:
    consumer, producer = pair
    channel, group = unique("handover"), unique("g")
    leaving = await consumer.subscribe(channel, group, prefetch=1)
    await producer.publish_batch([make_message(channel, i, key="k") for i in range(5)])
    async with asyncio.timeout(10):
        async for delivery in leaving:
            assert delivery.message.headers["seq"] == "0"
            break  # taken, never settled
    stayer = Member(await consumer.subscribe(channel, group))
    await leaving.close()  # hands back 0..4; the sender routes them to the stayer in order
    try:
        await eventually(lambda: len(stayer.acked) >= 5, 10, "the handed-back messages")
        assert [m.headers["seq"] for m in stayer.acked] == ["0", "1", "2", "3", "4"]
    finally:
        await stayer.stop()


async def test_sender_redelivers_what_a_crashed_member_held() -> None:
    # The consuming process dies without a word: the directory drops it after six
    # missed heartbeats, and the sender routes its unacked messages to the survivor.
    url = tcp_url()
    producer = await connect_transport(url)
    doomed = await connect_transport(url)
    survivor_node = await connect_transport(url)
    assert isinstance(doomed, ZmqTransport)
    channel, group = unique("crash"), unique("g")
    try:
        victim = await doomed.subscribe(channel, group)
        await producer.publish_batch([make_message(channel, i, key="k") for i in range(3)])
        async with asyncio.timeout(10):
            async for _delivery in victim:
                break  # taken, never settled
        survivor = Member(await survivor_node.subscribe(channel, group))
        # crash: stop heartbeats and the inbox without leaving the directory
        assert doomed._directory is not None and doomed._inbox_task is not None
        await doomed._directory.close(goodbye=False)
        doomed._directory = None
        doomed._inbox_task.cancel()
        try:
            await eventually(lambda: len(survivor.acked) >= 3, 15, "the crashed member's messages")
            assert [m.headers["seq"] for m in survivor.acked[:3]] == ["0", "1", "2"]
        finally:
            await survivor.stop()
    finally:
        await survivor_node.close()
        await producer.close()
        await doomed.close()


async def test_directory_moves_when_its_host_closes() -> None:
    url = tcp_url()
    host = await connect_transport(url)
    consumer = await connect_transport(url)
    producer = await connect_transport(url)
    try:
        channel, group = unique("failover"), unique("g")
        member = Member(await consumer.subscribe(channel, group))
        await host.close()  # the node hosting the directory goes away
        await asyncio.sleep(1.0)  # six missed heartbeats: another node takes over
        late = Member(await consumer.subscribe(channel, unique("late")))
        try:
            await producer.publish(make_message(channel, 1))
            await eventually(
                lambda: len(member.acked) >= 1 and len(late.acked) >= 1, 10, "both groups"
            )
        finally:
            await late.stop()
            await member.stop()
    finally:
        await producer.close()
        await consumer.close()
        await host.close()


@pytest.mark.parametrize(
    "url",
    ["zmq+tcp://127.0.0.1", "zmq+ipc://relative/path", "zmq+tcp://127.0.0.1:5555?shards=0"],
)
def test_bad_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(TransportError, match="zmq"):
        transport_from_url(url)


async def test_rendezvous_held_by_something_else_is_a_connection_error() -> None:
    # A plain TCP listener that speaks no ZeroMQ sits on the rendezvous port.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectionFailedError, match=f"127.0.0.1:{port}"):
            await connect_transport(f"zmq+tcp://127.0.0.1:{port}")
    finally:
        server.close()
        await server.wait_closed()


async def test_oversized_message_is_refused_before_sending() -> None:
    transport = await connect_transport(tcp_url(), max_message_size=1000)
    try:
        with pytest.raises(MessageTooLargeError):
            await transport.publish(make_message(unique("big"), 1, size=2000))
    finally:
        await transport.close()


def test_ipc_socket_paths_stay_in_the_rendezvous_directory() -> None:
    directory = tempfile.gettempdir()
    opts = transport_from_url(f"zmq+ipc://{directory}/{uuid.uuid4().hex}.sock").options  # type: ignore[attr-defined]
    assert opts.data_endpoint().startswith(f"ipc://{directory}/sw-node-")
