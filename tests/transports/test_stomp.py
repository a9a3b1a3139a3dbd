"""ActiveMQ over STOMP: the contract suite on the private broker, plus its faults.

The broker is the session's private ActiveMQ (``activemq`` in tests/conftest.py: own data
directory, STOMP on a loopback port, nothing else), so the restart cases restart only
that one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from servicewire.errors import ConnectionFailedError, MessageTooLargeError, TransportError
from servicewire.messaging import headers as h
from servicewire.messaging.channels import (
    dead_letter_channel,
    is_instance_reply_channel,
    reply_channel,
)
from servicewire.pipeline.deadletter import DLQ_GROUP, DeadLetterPublisher, dead_letter_message
from servicewire.testing.activemq import PrivateActiveMQ
from servicewire.testing.contract.attempts import next_delivery
from servicewire.testing.contract.helpers import (
    Member,
    eventually,
    make_message,
    publish_all,
    unique,
)
from servicewire.testing.redis_server import free_port
from servicewire.timeouts import within
from servicewire.transports import connect_transport, transport_from_url
from servicewire.transports.base import Delivery, Transport
from servicewire.transports.stomp.names import group_queue, topic
from tests.contract import RestartContract, TransportContract, TransportSpec
from tests.transports.test_activemq_server import Stomp


class TestStompContract(TransportContract, RestartContract):
    @pytest.fixture
    def spec(self, activemq: PrivateActiveMQ) -> TransportSpec:
        url = activemq.url("stomp")

        async def make() -> Transport:
            return await connect_transport(url)

        return TransportSpec(
            make=make, restart_broker=activemq.restart, settle_time=0.5, timeout=30.0
        )


@pytest.fixture
async def stomp(activemq: PrivateActiveMQ) -> AsyncIterator[Transport]:
    transport = await connect_transport(activemq.url("stomp"))
    try:
        yield transport
    finally:
        await transport.close()


async def test_oversized_message_is_refused_before_activemq(activemq: PrivateActiveMQ) -> None:
    small = await connect_transport(activemq.url("stomp"), max_message_size=1000)
    channel, group = unique("big"), unique("g")
    try:
        member = Member(await small.subscribe(channel, group))
        with pytest.raises(MessageTooLargeError):
            await small.publish(make_message(channel, 1, size=2000))
        await small.publish(make_message(channel, 2, size=10))
        await eventually(lambda: len(member.acked) == 1, 10, "the small message")
        await asyncio.sleep(0.5)
        assert [m.headers["seq"] for m in member.acked] == ["2"]
        await member.stop()
    finally:
        await small.tear_down(channel, [group])
        await small.close()


async def test_foreign_frame_is_delivered(activemq: PrivateActiveMQ, stomp: Transport) -> None:
    channel, group = unique("foreign"), unique("g")
    member = Member(await stomp.subscribe(channel, group))
    raw = await Stomp.connect(activemq.ports["stomp"])
    try:
        headers = {
            "destination": topic(channel),
            "origin": "legacy",
            "correlation-id": "c-9",
            "content-type": "text/plain",
            "receipt": "r",
        }
        await raw.send("SEND", headers, b"hello from elsewhere")
        assert (await raw.frame())[0] == "RECEIPT"
        await raw.send("SEND", {"destination": topic(channel), "receipt": "s"}, b"bare")
        assert (await raw.frame())[0] == "RECEIPT"
        await eventually(lambda: len(member.acked) >= 2, 10, "the foreign messages")
        first = next(m for m in member.acked if m.payload == b"hello from elsewhere")
        assert first.destination == channel and first.content_type == "text/plain"
        assert first.headers["origin"] == "legacy" and first.correlation_id == "c-9"
        assert first.id
        bare = next(m for m in member.acked if m.payload == b"bare")
        assert bare.content_type == "application/octet-stream" and bare.id != first.id
    finally:
        await raw.close()
        await member.stop()
        await stomp.tear_down(channel, [group])


async def test_dead_letters_go_to_our_dlq_channel_not_activemqs(
    activemq: PrivateActiveMQ, stomp: Transport
) -> None:
    # The pipeline dead-letters through its DLQ channel; the transport never sends
    # STOMP's NACK (ActiveMQ's poison ack), so ActiveMQ's own DLQ.<queue> stays empty.
    channel, group = unique("dead"), unique("g")
    dlq = dead_letter_channel(channel)
    dead = Member(await stomp.subscribe(dlq, DLQ_GROUP))
    publisher = DeadLetterPublisher(stomp)

    async def fail(delivery: Delivery) -> None:
        await publisher.send(
            dead_letter_message(
                delivery.message, channel=channel, group=group, reason="no", attempts=1
            )
        )
        await delivery.ack()

    member = Member(await stomp.subscribe(channel, group), fail)
    raw = await Stomp.connect(activemq.ports["stomp"])
    try:
        sent = make_message(channel, 1, key="k")
        await stomp.publish(sent)
        await eventually(lambda: len(dead.acked) == 1, 10, "the dead letter")
        letter = dead.acked[0]
        assert letter.id == sent.id and letter.headers[h.DLQ_CHANNEL] == channel
        assert letter.headers[h.DLQ_REASON] == "no" and letter.payload == sent.payload
        broker_dlq = "/queue/DLQ." + group_queue(channel, group).removeprefix("/queue/")
        await raw.send("SUBSCRIBE", {"id": "0", "destination": broker_dlq, "ack": "auto"})
        with pytest.raises(TimeoutError):
            await within(raw.frame(), 1.0)
    finally:
        await raw.close()
        await member.stop()
        await dead.stop()
        await stomp.tear_down(channel, [group])
        await stomp.tear_down(dlq, [DLQ_GROUP])


async def test_delete_group_discards_its_messages_only(stomp: Transport) -> None:
    channel, doomed, kept = unique("purge"), unique("g"), unique("g")
    await stomp.declare(channel, doomed)
    await stomp.declare(channel, kept)
    await publish_all(stomp, [make_message(channel, i, key=f"k{i % 3}") for i in range(20)])
    assert await stomp.delete_group(channel, doomed) is True
    assert await stomp.delete_group(channel, unique("never-declared")) is True  # no error
    late = Member(await stomp.subscribe(channel, doomed))
    other = Member(await stomp.subscribe(channel, kept))
    try:
        await eventually(lambda: len(other.acked) == 20, 10, "the other group's messages")
        await asyncio.sleep(0.5)
        assert late.acked == [], "the deleted group kept messages"
    finally:
        await late.stop()
        await other.stop()
        await stomp.tear_down(channel, [doomed, kept])


async def test_group_names_with_dots_get_every_message(stomp: Transport) -> None:
    # ActiveMQ finds group queues with Consumer.*.VirtualTopic.>; a dot in the group
    # name would hide its queue from the topic, so names map dots to '~'.
    channel, group = unique("dots"), unique("billing.v2")
    assert "~" in group_queue(channel, group)
    member = Member(await stomp.subscribe(channel, group))
    try:
        await publish_all(stomp, [make_message(channel, i) for i in range(5)])
        await eventually(lambda: len(member.acked) == 5, 10, "five messages")
    finally:
        await member.stop()
        await stomp.tear_down(channel, [group])


async def test_replies_to_a_gone_instance_expire(activemq: PrivateActiveMQ) -> None:
    transport = await connect_transport(activemq.url("stomp") + "?reply_ttl=1")
    replies = reply_channel("svc", uuid.uuid4().hex[:12])
    assert is_instance_reply_channel(replies)
    ordinary = unique("kept")
    try:
        await transport.declare(replies, "g")  # the instance read it once, then died
        await transport.declare(ordinary, "g")
        await transport.publish(make_message(replies, 1))
        await transport.publish(make_message(ordinary, 1))
        await asyncio.sleep(1.5)
        back = Member(await transport.subscribe(replies, "g"))
        kept = Member(await transport.subscribe(ordinary, "g"))
        await eventually(lambda: len(kept.acked) == 1, 10, "the ordinary message")
        await asyncio.sleep(0.5)
        assert back.acked == [], "a reply outlived reply_ttl"
        await back.stop()
        await kept.stop()
    finally:
        await transport.tear_down(replies, ["g"])
        await transport.tear_down(ordinary, ["g"])
        await transport.close()


@pytest.mark.parametrize(
    "url",
    [
        "stomp://127.0.0.1:99999",
        "stomp://127.0.0.1:61613/?receipt_timeout=0",
        "stomp://127.0.0.1:61613/?prefetch=4",
        "stomp://127.0.0.1:61613/?tls_ca=/etc/ca.pem",
    ],
)
def test_bad_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(TransportError, match="stomp"):
        transport_from_url(url)


async def test_refused_connection_names_the_address_without_the_password() -> None:
    port = free_port()
    with pytest.raises(ConnectionFailedError) as info:
        await connect_transport(f"stomp://user:s3cret-pw@127.0.0.1:{port}")
    text = str(info.value)
    assert f"127.0.0.1:{port}" in text and "stomp" in text
    assert "s3cret-pw" not in text and "s3cret-pw" not in repr(info.value.args)


async def test_close_with_a_retry_waiting_is_bounded_while_the_broker_is_down(
    activemq: PrivateActiveMQ,
) -> None:
    # Closing gives the waiting retry back to the broker; with the broker gone that
    # cannot happen, and close() must still return (the message is unacked: it comes
    # back after the broker returns).
    transport = await connect_transport(activemq.url("stomp"))
    channel, group = unique("down"), unique("g")
    try:
        sub = await transport.subscribe(channel, group)
        await transport.publish(make_message(channel, 1, key="k"))
        delivery = await next_delivery(sub, 10)
        await delivery.nack(delay=30)
        await activemq.stop()
        try:
            started = asyncio.get_running_loop().time()
            await within(sub.close(), 30)
            assert asyncio.get_running_loop().time() - started < 25
        finally:
            await activemq.start()
        again = await connect_transport(activemq.url("stomp"))
        try:
            member = Member(await again.subscribe(channel, group))
            await eventually(lambda: len(member.acked) == 1, 20, "the message, once more")
            assert member.acked[0].id == delivery.message.id
            await member.stop()
        finally:
            await again.tear_down(channel, [group])
            await again.close()
    finally:
        await transport.close()
