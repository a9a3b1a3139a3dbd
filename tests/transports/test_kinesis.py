"""Amazon Kinesis Data Streams: the contract suite and fault tests on a private moto server.

moto emulates the Kinesis and DynamoDB APIs in memory (docs/transports/kinesis.md says
what was checked on it and what against AWS's documentation instead). Each module run
starts one ``moto_server`` on a free loopback port and stops it; every case deletes the
streams and tables it made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

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
from servicewire.testing.moto_server import PrivateMoto
from servicewire.transports import connect_transport, transport_from_url
from servicewire.transports.base import Delivery, Transport
from servicewire.transports.kinesis.client import Clients
from servicewire.transports.kinesis.leases import SHARD_END, LeaseLost, LeaseState, LeaseTable
from servicewire.transports.kinesis.membership import ShardInfo, assign, eligible
from servicewire.transports.kinesis.naming import stream_name, table_name
from servicewire.transports.kinesis.options import parse_kinesis_url
from servicewire.transports.kinesis.records import MARKER, from_record, record_size, to_record
from servicewire.transports.kinesis.replies import BEAT_TAG
from servicewire.transports.kinesis.shard import KinesisDelivery
from servicewire.transports.kinesis.subscription import KinesisSubscription
from servicewire.transports.kinesis.transport import KinesisTransport
from tests.contract import TransportContract, TransportSpec

FAST = {
    "poll_interval": "0.1",
    "lease_time": "3",
    "checkpoint_interval": "0.5",
    "shard_refresh": "1",
}


@pytest.fixture(scope="module")
def moto() -> Iterator[PrivateMoto]:
    with PrivateMoto() as server:
        yield server


class TestKinesisContract(TransportContract):
    """The suite with its high-volume cases at a fifth (the spec's ``volume``: moto's
    reads walk a shard from its start), and both again at full volume under ``make soak``."""

    @pytest.fixture
    def spec(self, moto: PrivateMoto) -> TransportSpec:
        return TransportSpec.for_url(
            moto.kinesis_url(**FAST), settle_time=0.5, timeout=60.0, volume=0.2
        )

    @pytest.mark.soak
    @pytest.mark.timeout(1500)
    async def test_high_volume_cases_at_full_volume(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        spec.timeout, spec.volume = 600.0, 1.0
        await super().test_concurrent_publishers_competing_subscribers_no_loss(transport, spec)
        await super().test_publisher_close_flushes_in_flight(transport, spec)

    async def test_declares_history_and_the_emulator_no_persistence(
        self, transport: Transport
    ) -> None:
        assert transport.capabilities.replays_history is True
        assert transport.capabilities.persistent is False  # persistent=no: moto is in memory
        assert KinesisTransport.capabilities.persistent is True


@pytest.fixture
async def kinesis(moto: PrivateMoto) -> AsyncIterator[KinesisTransport]:
    transport = await connect_transport(moto.kinesis_url(**FAST))
    assert isinstance(transport, KinesisTransport)
    try:
        yield transport
    finally:
        await transport.close()


async def _raw(moto: PrivateMoto) -> Clients:
    return await Clients.open(parse_kinesis_url(moto.kinesis_url()))


async def _stream_names(moto: PrivateMoto) -> list[str]:
    clients = await _raw(moto)
    try:
        return list((await clients.kinesis.list_streams()).get("StreamNames", []))
    finally:
        await clients.close()


async def _table_names(moto: PrivateMoto) -> list[str]:
    clients = await _raw(moto)
    try:
        return list((await clients.dynamodb.list_tables()).get("TableNames", []))
    finally:
        await clients.close()


async def _records(moto: PrivateMoto, stream: str) -> list[dict[str, Any]]:
    """Every record of ``stream`` (all shards, from the oldest), read raw."""
    clients = await _raw(moto)
    found: list[dict[str, Any]] = []
    try:
        shards = (await clients.kinesis.list_shards(StreamName=stream))["Shards"]
        for shard in shards:
            iterator = (
                await clients.kinesis.get_shard_iterator(
                    StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            answer = await clients.kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            found.extend(answer["Records"])
        return found
    finally:
        await clients.close()


# Faults ---------------------------------------------------------------------------------


async def test_oversize_after_encoding_is_refused_before_the_broker(moto: PrivateMoto) -> None:
    # check_size counts header text and payload; Kinesis counts our envelope (headers as
    # JSON) plus the partition key. A message just under the first is over the second:
    # refused here, with a clear error, and nothing reaches the stream.
    transport = await connect_transport(moto.kinesis_url(max_message_size="4096", **FAST))
    channel = unique("big")
    try:
        await transport.declare(channel, "g")
        probe = make_message(channel, 0, key="k")
        big = make_message(channel, 0, key="k", size=4096 - (probe.size - 1) - 2)
        assert big.size <= transport.max_message_size
        data, key = to_record(big)
        assert record_size(data, key) > transport.max_message_size
        with pytest.raises(MessageTooLargeError, match=channel):
            await transport.publish(big)
        with pytest.raises(MessageTooLargeError):
            await transport.publish_batch([make_message(channel, 1), big])
        assert isinstance(transport, KinesisTransport)
        assert await _records(moto, transport.stream(channel)) == []
        await transport.publish(make_message(channel, 2))
        assert len(await _records(moto, transport.stream(channel))) == 1
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


async def test_foreign_records_are_delivered(kinesis: KinesisTransport, moto: PrivateMoto) -> None:
    # A producer that knows nothing of Servicewire: plain data under its own key. It is
    # delivered with its data as the payload and an id made of shard and sequence (the
    # pipeline dead-letters what it cannot decode, with the reason).
    channel = unique("foreign")
    member = Member(await kinesis.subscribe(channel, "g"))
    clients = await _raw(moto)
    try:
        sent = await clients.kinesis.put_record(
            StreamName=kinesis.stream(channel), Data=b'{"hello": "world"}', PartitionKey="their"
        )
        await eventually(lambda: len(member.acked) >= 1, 30, "the foreign record")
        got = member.acked[0]
        assert got.payload == b'{"hello": "world"}'
        assert got.id == f"kinesis:{sent['ShardId']}:{sent['SequenceNumber']}"
        assert got.destination == channel and got.partition_key == "their"
        # ... and one with our marker but broken headers arrives the same way.
        broken = MARKER + b"\x00\x00\x00\x05{nope"
        await clients.kinesis.put_record(
            StreamName=kinesis.stream(channel), Data=broken, PartitionKey="their"
        )
        await eventually(lambda: len(member.acked) >= 2, 30, "the broken record")
        assert member.acked[1].payload == broken
    finally:
        await clients.close()
        await member.stop()
        await kinesis.tear_down(channel, ["g"])


async def test_a_dead_members_shard_is_taken_over_and_its_writes_fenced(
    moto: PrivateMoto,
) -> None:
    # The member "dies": it neither settles nor closes (its tasks just stop). Another
    # member takes its shard over once the lease has been silent for lease_time (2 s),
    # and gets the unsettled record again, counted as a second attempt (so a record that
    # kills its consumer every time reaches the dead letters); the dead member can no
    # longer checkpoint.
    transport = await connect_transport(moto.kinesis_url(**{**FAST, "lease_time": "2"}))
    channel = unique("dead-member")
    try:
        sub = await transport.subscribe(channel, "g")
        assert isinstance(sub, KinesisSubscription)
        await transport.publish(make_message(channel, 1, key="k"))
        first = await next_delivery(sub, 30)
        await asyncio.sleep(1.0)  # a renewal or two: the lease counts the attempt
        died = time.monotonic()
        assert sub._task is not None
        sub._task.cancel()  # the crash (its handler killed it): no renewal, no release
        (reader,) = [r for r in sub._readers.values() if r.entries]
        for each in sub._readers.values():
            assert each._task is not None
            each._task.cancel()
        other = await transport.subscribe(channel, "g")
        again = await next_delivery(other, 30)
        assert again.message.id == first.message.id
        assert time.monotonic() - died >= 1.5, "taken over before the lease ran out"
        assert again.attempt == 2, "the crash was not counted: a poison record never ends"
        await first.ack()  # too late: the old owner's checkpoint write is refused
        with pytest.raises(LeaseLost):
            await sub._table.write(reader.lease)
        await again.ack()
        await other.close()
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


async def test_a_slow_handler_keeps_its_shard(moto: PrivateMoto) -> None:
    # Held for over 3x lease_time: the member renews its lease, nobody else gets the key.
    transport = await connect_transport(
        moto.kinesis_url(**{**FAST, "lease_time": "1", "shards": "1"})
    )
    channel = unique("slow")
    try:
        holder = await transport.subscribe(channel, "g")
        await transport.publish(make_message(channel, 1, key="k"))
        held = await next_delivery(holder, 30)
        rival = Member(await transport.subscribe(channel, "g"))
        await transport.publish(make_message(channel, 2, key="k"))
        await asyncio.sleep(3.5)
        assert rival.deliveries == 0, "a held shard was read by another member"
        await held.ack()
        await holder.close()  # hands the shard over with its checkpoint
        await eventually(lambda: len(rival.acked) >= 1, 30, "the next record")
        assert [m.headers["seq"] for m in rival.acked] == ["2"]
        await rival.stop()
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


async def test_the_checkpoint_never_passes_an_unsettled_record(moto: PrivateMoto) -> None:
    # One shard, two keys: the second key's record is acked, the first's is not. The
    # checkpoint stays before the first, so the next member gets it (and, at least
    # once, the second again).
    transport = await connect_transport(moto.kinesis_url(**{**FAST, "shards": "1"}))
    channel = unique("gap")
    try:
        sub = await transport.subscribe(channel, "g")
        await transport.publish_batch(
            [make_message(channel, 1, key="a"), make_message(channel, 2, key="b")]
        )
        deliveries = [await next_delivery(sub, 30), await next_delivery(sub, 30)]
        by_seq = {d.message.headers["seq"]: d for d in deliveries}
        await by_seq["2"].ack()
        await asyncio.sleep(1.0)  # a checkpoint write or two
        await sub.close()
        member = Member(await transport.subscribe(channel, "g"))
        await eventually(lambda: len(member.acked) >= 2, 30, "both again")
        assert [m.headers["seq"] for m in member.acked] == ["1", "2"]
        await member.stop()
        # Now both are settled: a third member gets nothing.
        late = Member(await transport.subscribe(channel, "g"))
        await asyncio.sleep(1.5)
        assert late.deliveries == 0
        await late.stop()
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


async def test_restart_means_a_new_empty_kinesis(moto: PrivateMoto) -> None:
    # moto keeps nothing across a restart (AWS never restarts as far as a client can
    # tell). A member whose stream vanished fails with a clear error instead of waiting;
    # publishing and subscribing again make the stream and table anew.
    transport = await connect_transport(moto.kinesis_url(**FAST))
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
        await transport.publish(make_message(channel, 1))  # makes the stream again
        member = Member(await transport.subscribe(channel, "g"))
        await eventually(lambda: len(member.acked) >= 1, 30, "a message after the restart")
        assert [m.headers["seq"] for m in member.acked] == ["1"]
        await member.stop()
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


def test_records_round_trip_and_long_keys_are_hashed() -> None:
    message = make_message("orders", 1, key="k" * 300).with_headers(custom="välue")
    data, key = to_record(message)
    assert data.startswith(MARKER) and key.startswith("h-") and len(key) <= 256
    assert to_record(make_message("orders", 2, key="k" * 300))[1] == key, "same key, same shard"
    back = from_record({"Data": data, "SequenceNumber": "7"}, channel="orders", shard="s")
    assert back == message
    keyless = make_message("orders", 3)
    assert to_record(keyless)[1] == keyless.id  # spread over the shards by id
    raw = {"Data": b"plain", "SequenceNumber": "9", "PartitionKey": "p"}
    foreign = from_record(raw, channel="orders", shard="shardId-1")
    assert foreign.id == "kinesis:shardId-1:9" and foreign.payload == b"plain"
    assert foreign.partition_key == "p" and foreign.destination == "orders"


# Resharding -----------------------------------------------------------------------------


def test_children_are_eligible_only_after_their_parents_finished() -> None:
    def lease(shard: str, checkpoint: str | None) -> LeaseState:
        return LeaseState(shard, "", 1, 0, checkpoint, {})

    listing = [
        ShardInfo("s0", (), "99"),
        ShardInfo("s1", ("s0",), None),
        ShardInfo("s2", ("s0",), None),
        ShardInfo("s3", ("gone",), None),  # its parent was trimmed away
        ShardInfo("s4", ("s1", "s2"), None),  # a merge
    ]
    assert eligible(listing, {}) == ["s0", "s3"]
    assert eligible(listing, {"s0": lease("s0", "42")}) == ["s0", "s3"]
    done = {"s0": lease("s0", SHARD_END)}
    assert eligible(listing, done) == ["s1", "s2", "s3"]
    done |= {"s1": lease("s1", SHARD_END)}
    assert eligible(listing, done) == ["s2", "s3"]
    done |= {"s2": lease("s2", SHARD_END)}
    assert eligible(listing, done) == ["s3", "s4"]
    assert assign(["a", "b", "c", "d"], ["m1", "m2"], "m2") == {"b", "d"}
    assert assign(["a"], ["m1", "m2"], "m3") == set()


async def _reshard_while_reading(
    moto: PrivateMoto, shards: int, reshard: Callable[[Any, str, list[str]], Awaitable[object]]
) -> tuple[list[str], list[str], dict[str, LeaseState]]:
    """Publish 40 records over 8 keys to a stream of ``shards`` shards, read them, call
    ``reshard(kinesis, stream, parents)``, publish 40 more, read them; return the parent
    shards, the shard of every delivery in order, and the group's leases. Every key's
    records must come in order."""
    transport = await connect_transport(moto.kinesis_url(**{**FAST, "shards": str(shards)}))
    assert isinstance(transport, KinesisTransport)
    channel = unique("reshard")
    handled: dict[str, list[int]] = {}
    shards_seen: list[str] = []  # the shard of every delivery, in order

    async def handler(delivery: Delivery) -> None:
        assert isinstance(delivery, KinesisDelivery)
        shards_seen.append(delivery._reader.shard)
        message = delivery.message
        handled.setdefault(message.partition_key or "", []).append(int(message.headers["seq"]))
        await delivery.ack()

    keys = [f"k{n}" for n in range(8)]
    try:
        member = Member(await transport.subscribe(channel, "g"), handler)
        await publish_all(
            transport, [make_message(channel, i, key=k) for i in range(5) for k in keys]
        )
        await eventually(lambda: sum(map(len, handled.values())) >= 40, 30, "before resharding")
        clients = await _raw(moto)
        try:
            stream = transport.stream(channel)
            listed = (await clients.kinesis.list_shards(StreamName=stream))["Shards"]
            parents = [s["ShardId"] for s in listed]
            await reshard(clients.kinesis, stream, parents)
            await publish_all(
                transport, [make_message(channel, i, key=k) for i in range(5, 10) for k in keys]
            )

            def complete() -> bool:
                return all(set(range(10)) <= set(handled.get(k, [])) for k in keys)

            await eventually(complete, 60, "every key's records after resharding")
            state = await LeaseTable(clients.dynamodb, table_name("sw-", channel)).read("g")
        finally:
            await clients.close()
        await member.stop()
        for key in keys:
            first_seen = list(dict.fromkeys(handled[key]))
            assert first_seen == list(range(10)), f"{key} out of order: {first_seen}"
        return parents, shards_seen, state.shards
    finally:
        await transport.tear_down(channel, ["g"])
        await transport.close()


async def test_a_split_shard_is_finished_before_its_children_are_read(
    moto: PrivateMoto,
) -> None:
    # Split the only shard while a member reads it: the parent is read to its end and
    # its lease ends at SHARD_END, only then are the children read, and every key keeps
    # its order. (PrivateMoto's moto_serial makes moto reshard as Kinesis does: new
    # records go to the open children, the closed parent keeps its records.)
    async def split(kinesis: Any, stream: str, parents: list[str]) -> object:
        return await kinesis.split_shard(
            StreamName=stream, ShardToSplit=parents[0], NewStartingHashKey=str(2**127)
        )

    (parent,), seen, leases = await _reshard_while_reading(moto, 1, split)
    assert leases[parent].checkpoint == SHARD_END
    first_child = next(i for i, s in enumerate(seen) if s != parent)
    assert first_child >= 40 and parent not in seen[first_child:]
    assert len(set(seen)) == 3, "both children were read"


async def test_merged_shards_are_finished_before_their_child_is_read(
    moto: PrivateMoto,
) -> None:
    # Two shards merged into one (UpdateShardCount 2 -> 1): both parents end at
    # SHARD_END before the child is read.
    async def merge(kinesis: Any, stream: str, parents: list[str]) -> object:
        return await kinesis.update_shard_count(
            StreamName=stream, TargetShardCount=1, ScalingType="UNIFORM_SCALING"
        )

    parents, seen, leases = await _reshard_while_reading(moto, 2, merge)
    assert all(leases[p].checkpoint == SHARD_END for p in parents)
    first_child = next(i for i, s in enumerate(seen) if s not in parents)
    assert first_child >= 40 and not set(parents) & set(seen[first_child:])
    assert len(set(seen)) == 3, "the child was read"


async def test_the_lease_of_a_trimmed_finished_shard_is_forgotten(
    kinesis: KinesisTransport,
) -> None:
    # A finished shard Kinesis no longer lists (its records expired) leaves its lease
    # behind; the group's members delete it. A lease not finished is never deleted.
    channel = unique("trimmed")
    await kinesis.declare(channel, "g")
    table = LeaseTable(kinesis._require().dynamodb, table_name("sw-", channel))
    for shard, checkpoint in (("shardId-gone-done", SHARD_END), ("shardId-gone-open", "7")):
        lease = await table.acquire("g", shard, "someone", None)
        assert lease is not None
        lease.checkpoint = checkpoint
        await table.write(lease, release=True)
    sub = await kinesis.subscribe(channel, "g")
    assert isinstance(sub, KinesisSubscription)
    member = Member(sub)
    try:
        await eventually(lambda: len(sub._readers) > 0, 30, "the member's shards")
        state = await table.read("g")
        assert "shardId-gone-done" not in state.shards
        assert state.shards["shardId-gone-open"].checkpoint == "7"
    finally:
        await member.stop()
        await kinesis.tear_down(channel, ["g"])


# Declaring and deleting -----------------------------------------------------------------


async def test_delete_group_and_channel_remove_their_streams_and_tables(
    kinesis: KinesisTransport, moto: PrivateMoto
) -> None:
    channel, other = unique("del"), unique("keep")
    for ch, group in (
        (channel, "a"),
        (channel, "b"),
        (f"{channel}.dlq", "dead-letters"),
        (other, "a"),
    ):
        await kinesis.declare(ch, group)
    member = Member(await kinesis.subscribe(channel, "a"))
    await member.stop()
    table = LeaseTable(kinesis._require().dynamodb, table_name("sw-", channel))
    assert (await table.read("a")).shards, "a member keeps its checkpoints"
    assert await kinesis.delete_group(channel, "a") is True
    assert (await table.read("a")).shards == {}
    assert await kinesis.delete_group(channel, "a") is True  # again: no error
    assert await kinesis.delete_channel(channel) is True
    names, tables = await _stream_names(moto), await _table_names(moto)
    for ch in (channel, f"{channel}.dlq"):
        assert stream_name("sw-", ch) not in names and table_name("sw-", ch) not in tables
    assert stream_name("sw-", other) in names, "another channel's stream"
    assert await kinesis.delete_channel(channel) is True  # again: no error
    await kinesis.tear_down(other, ["a"])
    assert stream_name("sw-", other) not in await _stream_names(moto)


async def test_a_crashed_instances_reply_stream_is_swept(
    kinesis: KinesisTransport, moto: PrivateMoto
) -> None:
    dead, alive = "svc-sweep.replies.dead01", "svc-sweep.replies.live02"
    await kinesis.declare(dead, "replies")
    clients = await _raw(moto)
    try:  # its last beat, long ago: the instance crashed
        await clients.kinesis.add_tags_to_stream(
            StreamName=kinesis.stream(dead), Tags={BEAT_TAG: str(int(time.time()) - 3600)}
        )
    finally:
        await clients.close()
    other = await connect_transport(moto.kinesis_url(**FAST))
    assert isinstance(other, KinesisTransport)
    try:
        sub = await other.subscribe(alive, "replies")  # a new instance of the service
        names = await _stream_names(moto)
        assert kinesis.stream(dead) not in names and other.stream(alive) in names
        assert table_name("sw-", dead) not in await _table_names(moto)
        assert len(await _shards(moto, other.stream(alive))) == 1, "a reply stream: one shard"
        await sub.close()
        assert await other.sweep_reply_streams("svc-sweep.") == 0  # its beat is fresh
        # A reply to the gone instance goes nowhere: a sender never makes its stream.
        await other.publish(make_message(dead, 1))
        assert kinesis.stream(dead) not in await _stream_names(moto)
    finally:
        await other.tear_down(alive, ["replies"])
        await other.close()


async def _shards(moto: PrivateMoto, stream: str) -> list[str]:
    clients = await _raw(moto)
    try:
        return [
            s["ShardId"] for s in (await clients.kinesis.list_shards(StreamName=stream))["Shards"]
        ]
    finally:
        await clients.close()


# URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "kinesis://k:s@127.0.0.1:1/?shards=0",
        "kinesis://k:s@127.0.0.1:1/?lease_time=0.1",
        "kinesis://k:s@127.0.0.1:1/?max_message_size=2000000",
        "kinesis://k:s@127.0.0.1:1/?prefix=no.dots",
        "kinesis://k:s@127.0.0.1:1/?shard=5",
        "kinesis://k:s@127.0.0.1:1/some/path",
        "kinesis://onlykey@127.0.0.1:1/",
    ],
)
def test_bad_url_is_one_clear_error(url: str) -> None:
    with pytest.raises(TransportError, match="kinesis"):
        transport_from_url(url)


async def test_secrets_are_never_printed() -> None:
    url = "kinesis://AKIDEXAMPLE:top-secret-key@127.0.0.1:9/?https=no&token=secret-token"
    with pytest.raises(ConnectionFailedError) as caught:
        await connect_transport(url)
    text = str(caught.value)
    assert "top-secret-key" not in text and "secret-token" not in text
    assert "127.0.0.1:9" in text
    with pytest.raises(TransportError) as refused:
        transport_from_url(url + "&nope=1")
    assert "top-secret-key" not in str(refused.value)
