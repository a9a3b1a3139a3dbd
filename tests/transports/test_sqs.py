"""Amazon SQS: the contract suite and fault tests on a private moto server.

moto is an in-memory emulator of the SQS API (docs/transports/sqs.md says what was
checked on it and what against AWS's documentation instead). Each module run starts
one ``moto_server`` on a free loopback port and stops it; every case deletes the queues
it made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from servicewire.errors import ConnectionFailedError, MessageTooLargeError, TransportError
from servicewire.messaging.message import Message
from servicewire.testing.contract.attempts import next_delivery
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.testing.moto_server import PrivateMoto
from servicewire.transports import connect_transport, transport_from_url
from servicewire.transports.base import Transport
from servicewire.transports.sqs.client import open_client
from servicewire.transports.sqs.headers import HEADERS_ATTRIBUTE, to_sqs
from servicewire.transports.sqs.naming import channel_prefix
from servicewire.transports.sqs.options import parse_sqs_url
from servicewire.transports.sqs.replies import BEAT_TAG
from servicewire.transports.sqs.subscription import SqsSubscription
from servicewire.transports.sqs.transport import SqsTransport
from tests.contract import TransportContract, TransportSpec

FAST = {"wait_time": "1", "visibility_timeout": "10"}


@pytest.fixture(scope="module")
def moto() -> Iterator[PrivateMoto]:
    with PrivateMoto() as server:
        yield server


class _SqsContract(TransportContract):
    """The suite with its high-volume cases at a fifth (the specs' ``volume``), and both
    again at full volume under ``make soak``."""

    @pytest.mark.soak
    @pytest.mark.timeout(1500)
    async def test_high_volume_cases_at_full_volume(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        spec.timeout, spec.volume = 600.0, 1.0
        await super().test_concurrent_publishers_competing_subscribers_no_loss(transport, spec)
        await super().test_publisher_close_flushes_in_flight(transport, spec)


class TestSqsContract(_SqsContract):
    @pytest.fixture
    def spec(self, moto: PrivateMoto) -> TransportSpec:
        # volume: moto's FIFO queues walk their whole depth on every send and receive, so
        # the suite's high-volume cases (5,000 messages from 50 publishers) take minutes
        # on the emulator (AWS: 300 calls/s per queue and action, 3,000 batched). `make
        # test` runs them at a fifth; `make soak` at full volume (below).
        return TransportSpec.for_url(
            moto.sqs_url(**FAST), settle_time=1.0, timeout=60.0, volume=0.2
        )

    async def test_fifo_declares_order_and_the_emulator_no_persistence(
        self, transport: Transport
    ) -> None:
        assert transport.capabilities.ordered_per_key is True
        assert transport.capabilities.persistent is False  # persistent=no: moto is in memory
        assert SqsTransport.capabilities.persistent is True  # AWS: the class default


class TestSqsStandardContract(_SqsContract):
    """Standard queues: the same suite, declared unordered (SQS may reorder and repeat).

    A standard queue differs from a FIFO one in its name, its attributes and the absence
    of ``MessageGroupId``; the receive, settle, retry and dead-letter code is shared.
    ``make test`` therefore runs here the cases that reach those differences (delivery,
    groups, retries, attempts, dead letters, isolation) and leaves the volume and churn
    cases, which the FIFO class already runs through the same code, to ``make soak``
    (about 80 s of emulator time saved per run)."""

    soak_only = frozenset(
        {
            "test_per_key_order_with_competing_consumers",
            "test_no_loss_across_repeated_close_and_reopen",
            "test_concurrent_publishers_competing_subscribers_no_loss",
            "test_concurrent_subscribe_and_close",
            "test_publisher_close_flushes_in_flight",
            "test_recovers_after_a_storm_of_nacks",
        }
    )

    @pytest.fixture
    def spec(self, moto: PrivateMoto) -> TransportSpec:
        url = moto.sqs_url(queue_type="standard", **FAST)
        return TransportSpec.for_url(url, settle_time=1.0, timeout=60.0, volume=0.2)


@pytest.fixture
async def sqs(moto: PrivateMoto) -> AsyncIterator[SqsTransport]:
    transport = await connect_transport(moto.sqs_url(**FAST))
    assert isinstance(transport, SqsTransport)
    try:
        yield transport
    finally:
        await transport.close()


async def _queue_names(moto: PrivateMoto, prefix: str) -> list[str]:
    client, context = await open_client(parse_sqs_url(moto.sqs_url()))
    try:
        answer = await client.list_queues(QueueNamePrefix=prefix)
        return [url.rsplit("/", 1)[1] for url in answer.get("QueueUrls", [])]
    finally:
        await context.__aexit__(None, None, None)


# Standard queues ------------------------------------------------------------------------


async def test_standard_queues_declare_no_order_and_still_deliver(moto: PrivateMoto) -> None:
    transport = await connect_transport(moto.sqs_url(queue_type="standard", **FAST))
    channel = unique("std")
    try:
        assert transport.capabilities.ordered_per_key is False
        member = Member(await transport.subscribe(channel, "g"))
        sent = [make_message(channel, i, key="k") for i in range(20)]
        await transport.publish_batch(sent)
        await eventually(lambda: len({m.id for m in member.acked}) >= 20, 30, "20 messages")
        await member.stop()
        assert not any(n.endswith(".fifo") for n in await _queue_names(moto, "sw-ct_std"))
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


# Faults ---------------------------------------------------------------------------------


async def test_oversize_after_encoding_is_refused_before_the_broker(sqs: SqsTransport) -> None:
    # Binary payloads travel base64: 200 KiB of them pass check_size (256 KiB) but are
    # about 267 KiB as SQS counts them. Refused here, not by SQS, with a clear error.
    channel = unique("big")
    member = Member(await sqs.subscribe(channel, "g"))
    try:
        binary = Message.create(
            b"\xff" * (200 * 1024), destination=channel, kind="event", type="t", version="1"
        )
        assert binary.size < sqs.max_message_size
        with pytest.raises(MessageTooLargeError, match=channel):
            await sqs.publish(binary)
        with pytest.raises(MessageTooLargeError):
            await sqs.publish_batch([make_message(channel, 0), binary])
        text = make_message(channel, 1, size=200 * 1024)  # text: sent as it is
        assert to_sqs(text)[2] <= sqs.max_message_size
        await sqs.publish(text)
        await eventually(lambda: len(member.acked) >= 1, 30, "the text message")
        await asyncio.sleep(1)
        assert [m.headers["seq"] for m in member.acked] == ["1"], "a refused message got through"
    finally:
        await member.stop()
        await sqs.tear_down(channel, ["g"])


async def test_binary_and_empty_payloads_round_trip(sqs: SqsTransport) -> None:
    channel = unique("bin")
    member = Member(await sqs.subscribe(channel, "g"))
    try:
        payloads = [bytes(range(256)), b"", b"\x00text with NUL", "ünïcode ✓".encode()]
        for payload in payloads:
            await sqs.publish(
                Message.create(payload, destination=channel, kind="event", type="t", version="1")
            )
        await eventually(lambda: len(member.acked) >= 4, 30, "four messages")
        assert sorted(m.payload for m in member.acked) == sorted(payloads)
    finally:
        await member.stop()
        await sqs.tear_down(channel, ["g"])


async def test_foreign_message_is_delivered(sqs: SqsTransport, moto: PrivateMoto) -> None:
    # A producer that knows nothing of Servicewire: a plain body and its own attribute.
    channel = unique("foreign")
    member = Member(await sqs.subscribe(channel, "g"))
    client, context = await open_client(parse_sqs_url(moto.sqs_url()))
    try:
        url = (await client.get_queue_url(QueueName=sqs._require().name(channel, "g")))["QueueUrl"]
        sent = await client.send_message(
            QueueUrl=url,
            MessageBody='{"hello": "world"}',
            MessageGroupId="their-key",
            MessageDeduplicationId="their-1",
            MessageAttributes={"origin": {"DataType": "String", "StringValue": "legacy"}},
        )
        await eventually(lambda: len(member.acked) >= 1, 30, "the foreign message")
        got = member.acked[0]
        assert got.payload == b'{"hello": "world"}'
        assert got.id == sent["MessageId"] and got.destination == channel
        assert got.headers["origin"] == "legacy"
        # ... and one that claims to be ours but carries broken headers still arrives.
        await client.send_message(
            QueueUrl=url,
            MessageBody="x",
            MessageGroupId="k",
            MessageDeduplicationId="their-2",
            MessageAttributes={HEADERS_ATTRIBUTE: {"DataType": "String", "StringValue": "{"}},
        )
        await eventually(lambda: len(member.acked) >= 2, 30, "the broken one")
        assert member.acked[1].payload == b"x"
    finally:
        await context.__aexit__(None, None, None)
        await member.stop()
        await sqs.tear_down(channel, ["g"])


async def test_a_dead_members_message_returns_after_the_visibility_timeout(
    moto: PrivateMoto,
) -> None:
    # The member "dies": it never settles nor closes (its tasks just stop). SQS brings
    # the message back to another member once visibility_timeout (2 s) has passed.
    transport = await connect_transport(moto.sqs_url(wait_time="1", visibility_timeout="2"))
    channel = unique("dead-member")
    try:
        sub = await transport.subscribe(channel, "g")
        assert isinstance(sub, SqsSubscription)
        await transport.publish(make_message(channel, 1, key="k"))
        first = await next_delivery(sub, 30)
        died = time.monotonic()
        for task in sub._tasks:  # the crash: no renewal, no return
            task.cancel()
        other = await transport.subscribe(channel, "g")
        again = await next_delivery(other, 30)
        assert again.message.id == first.message.id
        assert time.monotonic() - died >= 1.5, "back before the visibility timeout"
        assert again.attempt == 2
        await again.ack()
        await other.close()
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


async def test_slow_handler_keeps_its_message(moto: PrivateMoto) -> None:
    # Held for 3x the visibility timeout: the member renews it, nobody else gets it.
    transport = await connect_transport(moto.sqs_url(wait_time="1", visibility_timeout="1"))
    channel = unique("slow")
    try:
        holder = await transport.subscribe(channel, "g")
        await transport.publish(make_message(channel, 1))
        held = await next_delivery(holder, 30)
        rival = Member(await transport.subscribe(channel, "g"))
        await asyncio.sleep(3)
        assert rival.deliveries == 0, "a held message was delivered to another member"
        await held.ack()
        await rival.stop()
        await holder.close()
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


async def test_restart_means_a_new_empty_sqs(moto: PrivateMoto) -> None:
    # moto keeps nothing across a restart (AWS never restarts as far as a client can
    # tell). A member whose queue vanished fails with a clear error instead of waiting;
    # declaring again works at once.
    transport = await connect_transport(moto.sqs_url(**FAST))
    channel = unique("restart")
    try:
        sub = await transport.subscribe(channel, "g")
        moto.restart()

        async def drain() -> None:
            async for _ in sub:
                pass

        with pytest.raises(TransportError, match="is gone"):
            async with asyncio.timeout(30):
                await drain()
        await sub.close()
        await transport.publish(make_message(channel, 0))  # no group any more: goes nowhere
        fresh = await connect_transport(moto.sqs_url(**FAST))
        member = Member(await fresh.subscribe(channel, "g"))
        await fresh.publish(make_message(channel, 1))
        await eventually(lambda: len(member.acked) >= 1, 30, "a message after the restart")
        assert [m.headers["seq"] for m in member.acked] == ["1"]
        await member.stop()
        await fresh.tear_down(channel, ["g"])
        await fresh.close()
    finally:
        await transport.close()


# Declaring and deleting -----------------------------------------------------------------


async def test_delete_group_and_channel_remove_their_queues(
    sqs: SqsTransport, moto: PrivateMoto
) -> None:
    channel, other = unique("del"), unique("keep")
    await sqs.declare(channel, "a")
    await sqs.declare(channel, "b")
    await sqs.declare(f"{channel}.dlq", "dead-letters")
    await sqs.declare(other, "a")
    prefix = channel_prefix("sw-", channel)
    assert len(await _queue_names(moto, prefix)) == 2
    assert await sqs.delete_group(channel, "a") is True
    assert len(await _queue_names(moto, prefix)) == 1
    assert await sqs.delete_group(channel, "a") is True  # again: nothing to do, no error
    assert await sqs.delete_channel(channel) is True
    assert await _queue_names(moto, prefix) == []
    assert await _queue_names(moto, channel_prefix("sw-", f"{channel}.dlq")) == []
    assert len(await _queue_names(moto, channel_prefix("sw-", other))) == 1, "another channel"
    await sqs.tear_down(other, ["a"])
    assert await _queue_names(moto, channel_prefix("sw-", other)) == []


async def test_a_group_declared_elsewhere_is_seen_after_group_refresh(moto: PrivateMoto) -> None:
    publisher = await connect_transport(moto.sqs_url(group_refresh="0.5", **FAST))
    consumer = await connect_transport(moto.sqs_url(**FAST))
    channel = unique("refresh")
    try:
        await publisher.publish(make_message(channel, 0))  # lists: no group yet
        member = Member(await consumer.subscribe(channel, "late"))
        await asyncio.sleep(0.6)
        await publisher.publish(make_message(channel, 1))
        await eventually(lambda: len(member.acked) >= 1, 30, "the message after the refresh")
        assert [m.headers["seq"] for m in member.acked] == ["1"]
        await member.stop()
    finally:
        await consumer.tear_down(channel, ["late"])
        await publisher.close()
        await consumer.close()


async def test_a_crashed_instances_reply_queue_is_swept(
    sqs: SqsTransport, moto: PrivateMoto
) -> None:
    dead, alive = "svc-sweep.replies.dead01", "svc-sweep.replies.live02"
    await sqs.declare(dead, "replies")
    url = (await _queue_urls(moto, channel_prefix("sw-", dead)))[0]
    client, context = await open_client(parse_sqs_url(moto.sqs_url()))
    try:  # its last beat, long ago: the instance crashed
        await client.tag_queue(QueueUrl=url, Tags={BEAT_TAG: str(int(time.time()) - 3600)})
    finally:
        await context.__aexit__(None, None, None)
    other = await connect_transport(moto.sqs_url(**FAST))
    try:
        sub = await other.subscribe(alive, "replies")  # a new instance of the service
        assert await _queue_names(moto, channel_prefix("sw-", dead)) == []
        assert len(await _queue_names(moto, channel_prefix("sw-", alive))) == 1
        await sub.close()
        assert await other.sweep_reply_queues("svc-sweep.") == 0  # its beat is fresh
    finally:
        await other.tear_down(alive, ["replies"])
        await other.close()


async def _queue_urls(moto: PrivateMoto, prefix: str) -> list[str]:
    client, context = await open_client(parse_sqs_url(moto.sqs_url()))
    try:
        return list((await client.list_queues(QueueNamePrefix=prefix)).get("QueueUrls", []))
    finally:
        await context.__aexit__(None, None, None)


# URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "sqs://k:s@127.0.0.1:1/?queue_type=lifo",
        "sqs://k:s@127.0.0.1:1/?visibility_timeout=0",
        "sqs://k:s@127.0.0.1:1/?wait_time=21",
        "sqs://k:s@127.0.0.1:1/?max_message_size=2000000",
        "sqs://k:s@127.0.0.1:1/?prefix=no.dots",
        "sqs://k:s@127.0.0.1:1/?visibilty_timeout=5",
        "sqs://k:s@127.0.0.1:1/some/path",
        "sqs://onlykey@127.0.0.1:1/",
    ],
)
def test_bad_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(TransportError, match="sqs"):
        transport_from_url(url)


async def test_secrets_are_never_printed() -> None:
    url = "sqs://AKIDEXAMPLE:top-secret-key@127.0.0.1:9/?https=no&token=secret-token&region=x"
    with pytest.raises(ConnectionFailedError) as caught:
        await connect_transport(url)
    text = str(caught.value)
    assert "top-secret-key" not in text and "secret-token" not in text
    assert "127.0.0.1:9" in text
    with pytest.raises(TransportError) as refused:
        transport_from_url(url + "&nope=1")
    assert "top-secret-key" not in str(refused.value)
