"""The tests every transport passes. See :mod:`servicewire.testing.contract` for how to run them."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from servicewire.errors import MessageTooLargeError, TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS, shard_for
from servicewire.messaging.message import Message
from servicewire.testing.contract.attempts import AttemptContract
from servicewire.testing.contract.cleanup import Declared
from servicewire.testing.contract.helpers import (
    Member,
    duplicates,
    eventually,
    ids,
    make_message,
    publish_all,
    unique,
)
from servicewire.transports import connect_transport
from servicewire.transports.base import MAX_HEADER_BYTES, Capabilities, Delivery, Transport


@dataclass
class TransportSpec:
    """How the suite reaches a transport under test."""

    make: Callable[[], Awaitable[Transport]]
    """A new, connected client of the broker under test (called once per client)."""
    restart_broker: Callable[[], Awaitable[None]] | None = None
    """Stop and start the broker (for :class:`RestartContract`)."""
    settle_time: float = 0.5
    """How long to wait before concluding that nothing more will arrive."""
    timeout: float = 60.0
    """Upper bound for any single wait in the suite."""
    volume: float = 1.0
    """Scale of the high-volume cases (1.0: 5,000 messages from 50 publishers, 1,000 in
    flight at a publisher's close). A broker
    emulator that is slow by nature (moto's SQS) may run them smaller in a quick suite and
    at full volume in a long one."""

    @classmethod
    def for_url(cls, url: str, **settings: Any) -> TransportSpec:
        """A spec whose clients connect to ``url`` (any registered scheme)."""

        async def make() -> Transport:
            return await connect_transport(url)

        return cls(make=make, **settings)

    @classmethod
    def fixture(cls, url: str, **settings: Any) -> Any:
        """A ``spec`` fixture for a contract class: ``spec = TransportSpec.fixture(url)``."""

        def spec(self: object) -> TransportSpec:
            return cls.for_url(url, **settings)

        return pytest.fixture(spec, name="spec")


class LeavesNothingBehind:
    """Each case deletes the channels and groups it declared when it ends."""

    @pytest.fixture(autouse=True)
    async def _leave_nothing_behind(self, spec: TransportSpec) -> AsyncIterator[None]:
        """Watch every client the case makes (:mod:`.cleanup`); delete what they declared."""
        make = spec.make
        declared = Declared()
        spec.make = declared.watching(make)
        try:
            yield
        finally:
            spec.make = make
            await declared.delete(make, spec.timeout)


def _at_least(count: Callable[[str], set[str]], key: str, wanted: int) -> bool:
    return len(count(key)) >= wanted


def _acked_at_least(member: Member, wanted: int) -> bool:
    return len(set(ids(member.acked))) >= wanted


def _report(label: str, received: list[Message], caps: Capabilities) -> None:
    dup = duplicates(received)
    print(f"[contract] {label}: {len(received)} receptions, {dup} duplicates")
    if caps.exactly_once:
        assert dup == 0, f"{label}: {dup} duplicates on a transport declared exactly-once"


def _keys_on_distinct_shards(shards: int) -> list[str]:
    """One key per shard (at the default shard count): every key's retry waits at once."""
    by_shard: dict[int, str] = {}
    for n in range(shards * 64):
        by_shard.setdefault(shard_for(f"k{n}", shards), f"k{n}")
    return [by_shard[s] for s in sorted(by_shard)]


async def _retry_through_a_membership_change(
    transport: Transport, spec: TransportSpec, *, leave: bool
) -> None:
    """Each key's message 1 fails once with ``nack(delay)``; while the retries wait, a
    second member joins (``leave=False``) or the member holding them leaves. A shard that
    moves must bring its retry along: message 1 is handled before 2 on every key."""
    channel, group = unique("handover"), unique("g")
    await transport.declare(channel, group)
    keys, per_key = _keys_on_distinct_shards(DEFAULT_SHARDS), 5
    delay = spec.settle_time * 4  # long enough for the membership change to land
    handled: dict[str, list[int]] = defaultdict(list)
    failed_by: dict[str, str] = {}  # key -> the member that failed its message 1

    def handler_for(name: str) -> Callable[[Delivery], Awaitable[None]]:
        async def handler(delivery: Delivery) -> None:
            key, seq = delivery.message.partition_key or "", int(delivery.message.headers["seq"])
            if seq == 1 and key not in failed_by:
                failed_by[key] = name
                await delivery.nack(delay=delay)
                return
            handled[key].append(seq)
            await delivery.ack()

        return handler

    members = {"a": Member(await transport.subscribe(channel, group), handler_for("a"))}
    try:
        if leave:
            members["b"] = Member(await transport.subscribe(channel, group), handler_for("b"))
        await asyncio.sleep(spec.settle_time * 2)  # let the group settle its assignment
        sent = [make_message(channel, i, key=key) for i in range(per_key) for key in keys]
        await publish_all(transport, sent)
        await eventually(lambda: len(failed_by) == len(keys), spec.timeout, "every first try")
        waiting = sum(1 for k in keys if 1 not in handled[k])
        assert waiting, "every retry ran before the membership change: nothing to test"
        if leave:
            # The member that failed more of them leaves while their retries wait.
            holder = max(("a", "b"), key=list(failed_by.values()).count)
            await members.pop(holder).stop()
        else:
            members["b"] = Member(await transport.subscribe(channel, group), handler_for("b"))

        def complete() -> bool:
            return all(len(set(handled[k])) >= per_key for k in keys)

        await eventually(complete, spec.timeout * 2, "every key's messages")
        took = {name: member.deliveries for name, member in members.items()}
        change = "leave" if leave else "join"
        print(f"[contract] {change} with {waiting} retries waiting; deliveries {took}")
        if transport.capabilities.ordered_per_key:
            for key in keys:
                first_seen = list(dict.fromkeys(handled[key]))
                assert first_seen == list(range(per_key)), f"{key} out of order: {first_seen}"
    finally:
        for member in members.values():
            await member.stop()


class TransportContract(LeavesNothingBehind, AttemptContract):
    """The base contract suite. Subclass it and provide a ``spec`` fixture.

    Each case deletes the channels and groups it declared when it ends
    (:meth:`~servicewire.transports.base.Transport.tear_down`).
    """

    @pytest.fixture
    def spec(self) -> TransportSpec:
        raise NotImplementedError("a transport's test class must provide the spec fixture")

    # Declarations ---------------------------------------------------------------------

    async def test_capabilities_are_declared(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        assert isinstance(transport.capabilities, Capabilities)
        if spec.restart_broker is not None:
            assert isinstance(self, RestartContract), "a restart hook needs RestartContract"

    async def test_history_replay_matches_declaration(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel = unique("history")
        await publish_all(transport, [make_message(channel, i) for i in range(5)])
        await asyncio.sleep(spec.settle_time)
        member = Member(await transport.subscribe(channel, unique("late")))
        try:
            if transport.capabilities.replays_history:
                await eventually(lambda: len(member.acked) >= 5, spec.timeout, "old messages")
            else:
                await asyncio.sleep(spec.settle_time)
                assert member.acked == [], "a new group got old messages: declare replays_history"
        finally:
            await member.stop()

    # Basic flow -------------------------------------------------------------------------

    async def test_publish_then_subscribe(self, transport: Transport, spec: TransportSpec) -> None:
        channel, group = unique("pub-sub"), unique("g")
        await transport.declare(channel, group)
        sent = [make_message(channel, i, key="k") for i in range(20)]
        await publish_all(transport, sent)
        member = Member(await transport.subscribe(channel, group))
        try:
            if transport.capabilities.durable:
                await eventually(lambda: len(set(ids(member.acked))) >= 20, spec.timeout, "20")
                assert set(ids(member.acked)) == set(ids(sent))
                if transport.capabilities.ordered_per_key:
                    first_seen = list(dict.fromkeys(ids(member.acked)))
                    assert first_seen == ids(sent)
        finally:
            await member.stop()

    async def test_subscribe_then_publish(self, transport: Transport, spec: TransportSpec) -> None:
        channel, group = unique("sub-pub"), unique("g")
        member = Member(await transport.subscribe(channel, group))
        try:
            sent = [make_message(channel, i) for i in range(50)]
            await publish_all(transport, sent)
            await eventually(lambda: len(set(ids(member.acked))) >= 50, spec.timeout, "50")
            assert set(ids(member.acked)) == set(ids(sent))
            received = member.acked[0]
            assert received.headers["seq"] in {m.headers["seq"] for m in sent}
            assert received.payload and received.type == "contract.Test"
            assert received.version == "1.0.0" and received.destination == channel
        finally:
            await member.stop()

    async def test_headers_and_payload_survive(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("headers"), unique("g")
        member = Member(await transport.subscribe(channel, group))
        try:
            payload = bytes(range(256)) * 4
            sent = Message.create(
                payload,
                destination=channel,
                kind="command",
                type="contract.Binary",
                version="2.1.0",
                content_type="application/avro",
                partition_key="key-ü",
                correlation_id="corr-1",
                causation_id="cause-1",
                reply_to="replies.x",
                extra={
                    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    "custom": "välue",
                },
            )
            await transport.publish(sent)
            await eventually(lambda: len(member.acked) >= 1, spec.timeout, "the message")
            got = member.acked[0]
            assert got.id == sent.id and got.payload == payload
            for name, value in sent.headers.items():
                assert got.headers.get(name) == value, f"header {name} changed"
        finally:
            await member.stop()

    async def test_oversized_message_refused_before_the_broker(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("big"), unique("g")
        member = Member(await transport.subscribe(channel, group))
        try:
            big_payload = make_message(channel, 0, size=transport.max_message_size + 10)
            big_headers = make_message(channel, 1).with_headers(big="h" * MAX_HEADER_BYTES)
            assert big_headers.size < transport.max_message_size  # refused for its headers
            for big in (big_payload, big_headers):
                with pytest.raises(MessageTooLargeError):
                    await transport.publish(big)
                # One message over a limit refuses the whole batch, before any is sent.
                with pytest.raises(MessageTooLargeError):
                    await transport.publish_batch([make_message(channel, 2), big])
            within = make_message(channel, 3)
            await transport.publish(within)
            await eventually(lambda: len(member.acked) >= 1, spec.timeout, "the message")
            await asyncio.sleep(spec.settle_time)
            assert ids(member.acked) == [within.id], "a refused message reached the broker"
        finally:
            await member.stop()

    # Competition and isolation ----------------------------------------------------------

    async def test_concurrent_publishers_competing_subscribers_no_loss(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("compete"), unique("g")
        members = [Member(await transport.subscribe(channel, group)) for _ in range(4)]
        publishers = [await spec.make() for _ in range(5)]
        try:
            count = max(5, round(50 * spec.volume))  # batches of 100, one per publisher task
            batches = [
                [make_message(channel, p * 100 + i) for i in range(100)] for p in range(count)
            ]
            await asyncio.gather(
                *(publish_all(publishers[i % len(publishers)], b) for i, b in enumerate(batches))
            )
            sent = {m.id for b in batches for m in b}

            def received() -> set[str]:
                return {m.id for mem in members for m in mem.acked}

            total = len(sent)
            await eventually(
                lambda: len(received()) >= total, spec.timeout * 2, f"{total} messages"
            )
            assert received() == sent
            all_acked = [m for mem in members for m in mem.acked]
            _report(f"{total}/{count} publishers", all_acked, transport.capabilities)
            if transport.capabilities.competing_consumers:
                busy = sum(1 for mem in members if mem.acked)
                assert busy >= 2, "competing members: more than one should get work"
        finally:
            for mem in members:
                await mem.stop()
            for pub in publishers:
                await pub.close()

    async def test_channels_are_isolated(self, transport: Transport, spec: TransportSpec) -> None:
        channels = [unique(f"iso{i}") for i in range(10)]
        members = {c: Member(await transport.subscribe(c, "g")) for c in channels}
        try:
            sent = {c: [make_message(c, i) for i in range(25)] for c in channels}
            await asyncio.gather(*(publish_all(transport, msgs) for msgs in sent.values()))
            for c in channels:
                await eventually(partial(_acked_at_least, members[c], 25), spec.timeout, c)
            await asyncio.sleep(spec.settle_time)
            for c in channels:
                assert set(ids(members[c].acked)) == set(ids(sent[c]))
                assert all(m.destination == c for m in members[c].acked)
        finally:
            for mem in members.values():
                await mem.stop()

    async def test_each_group_receives_everything(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel = unique("groups")
        groups = ["billing", "shipping", "audit"]
        members = {
            g: [Member(await transport.subscribe(channel, g)) for _ in range(2)] for g in groups
        }
        try:
            sent = [make_message(channel, i) for i in range(300)]
            await publish_all(transport, sent)

            def got(g: str) -> set[str]:
                return {m.id for mem in members[g] for m in mem.acked}

            for g in groups:
                await eventually(partial(_at_least, got, g, 300), spec.timeout, f"group {g}")
                assert got(g) == set(ids(sent))
        finally:
            for mems in members.values():
                for mem in mems:
                    await mem.stop()

    # Redelivery -------------------------------------------------------------------------

    async def test_redelivery_after_nack(self, transport: Transport, spec: TransportSpec) -> None:
        channel, group = unique("nack"), unique("g")
        times: list[float] = []
        attempts: list[int] = []

        async def handler(delivery: Delivery) -> None:
            times.append(time.monotonic())
            attempts.append(delivery.attempt)
            if len(times) == 1:
                await delivery.nack(delay=0.3)
            else:
                await delivery.ack()

        member = Member(await transport.subscribe(channel, group), handler)
        try:
            await transport.publish(make_message(channel, 1))
            await eventually(lambda: len(times) >= 2, spec.timeout, "the redelivery")
            assert times[1] - times[0] >= 0.25, "nack(delay=0.3) came back too early"
            assert attempts[0] == 1 and attempts[1] >= 2, f"attempt numbers {attempts}"
        finally:
            await member.stop()

    async def test_no_next_message_on_a_shard_before_ack(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("hold"), unique("g")
        held: list[Delivery] = []
        seen: list[str] = []

        async def handler(delivery: Delivery) -> None:
            seen.append(delivery.message.headers["seq"])
            if delivery.message.headers["seq"] == "0":
                held.append(delivery)  # settled later by the test
            else:
                await delivery.ack()

        member = Member(await transport.subscribe(channel, group), handler)
        try:
            await publish_all(transport, [make_message(channel, i, key="same") for i in range(2)])
            await eventually(lambda: len(seen) >= 1, spec.timeout, "the first message")
            if transport.capabilities.ordered_per_key:
                await asyncio.sleep(spec.settle_time)
                assert seen == ["0"], "the next message of the shard came before the ack"
            await held[0].ack()
            await eventually(lambda: "1" in seen, spec.timeout, "the second message")
        finally:
            await member.stop()

    async def test_nacked_message_comes_back_before_the_next_of_its_key(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        # A handler that fails once is redelivered (nack with and without a delay); the
        # messages after it on its key must wait for it, or a retry reorders the key.
        channel, group = unique("renack"), unique("g")
        acked: list[int] = []
        failed: set[int] = set()

        async def handler(delivery: Delivery) -> None:
            seq = int(delivery.message.headers["seq"])
            if seq in (1, 3) and seq not in failed:
                failed.add(seq)
                await delivery.nack(delay=0.2 if seq == 1 else 0.0)
                return
            acked.append(seq)
            await delivery.ack()

        member = Member(await transport.subscribe(channel, group), handler)
        try:
            await asyncio.sleep(spec.settle_time)
            await publish_all(transport, [make_message(channel, i, key="same") for i in range(6)])
            await eventually(lambda: len(set(acked)) >= 6, spec.timeout, "all six messages")
            if transport.capabilities.ordered_per_key:
                first = list(dict.fromkeys(acked))
                assert first == list(range(6)), f"a nack reordered the key: {first}"
        finally:
            await member.stop()

    async def test_recovers_after_a_storm_of_nacks(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("storm"), unique("g")
        tries: dict[str, int] = defaultdict(int)
        done: set[str] = set()

        async def handler(delivery: Delivery) -> None:
            mid = delivery.message.id
            tries[mid] += 1
            if tries[mid] <= 3:
                await delivery.nack()
            else:
                await delivery.ack()
                done.add(mid)

        members = [Member(await transport.subscribe(channel, group), handler) for _ in range(3)]
        try:
            sent = [make_message(channel, i, key=f"k{i % 8}") for i in range(200)]
            await publish_all(transport, sent)
            await eventually(lambda: len(done) >= 200, spec.timeout * 2, "200 after the storm")
            assert done == set(ids(sent))
            # the transport still works normally afterwards
            tail = make_message(channel, 999)
            await transport.publish(tail)
            await eventually(lambda: tail.id in done, spec.timeout, "a message after the storm")
        finally:
            for mem in members:
                await mem.stop()

    # Membership churn -------------------------------------------------------------------

    async def test_no_loss_across_repeated_close_and_reopen(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("reopen"), unique("g")
        await transport.declare(channel, group)
        # A transport that keeps nothing without a member (brokerless) gets an anchor
        # member for the whole test: the group must still lose nothing while members
        # come and go around it.
        anchor = None
        if not transport.capabilities.durable:
            anchor = Member(await transport.subscribe(channel, group))
            await asyncio.sleep(spec.settle_time)
        sent = [make_message(channel, i, key=f"k{i % 5}") for i in range(300)]
        await publish_all(transport, sent)
        acked: set[str] = set()

        def done() -> set[str]:
            return acked | (set(ids(anchor.acked)) if anchor is not None else set())

        deadline = time.monotonic() + spec.timeout * 2
        rounds = 0
        while len(done()) < len(sent) and time.monotonic() < deadline and rounds < 200:
            rounds += 1
            sub = await transport.subscribe(channel, group, prefetch=8)
            taken = 0
            try:
                async with asyncio.timeout(spec.settle_time * 4 + 1):
                    async for delivery in sub:
                        taken += 1
                        if taken == 25:
                            break  # leave this one unsettled: it must come back
                        await delivery.ack()
                        acked.add(delivery.message.id)
            except TimeoutError:
                pass
            await sub.close()
        if anchor is not None:
            await eventually(lambda: done() >= set(ids(sent)), spec.timeout, "every message")
            await anchor.stop()
        missing = set(ids(sent)) - done()
        assert not missing, f"lost {len(missing)} after {rounds} rounds"

    async def test_concurrent_subscribe_and_close(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("churn"), unique("g")
        await transport.declare(channel, group)
        anchor = None
        if not transport.capabilities.durable:
            # brokerless: the group lives only while it has a member (see above)
            anchor = Member(await transport.subscribe(channel, group))
            await asyncio.sleep(spec.settle_time)
        acked: set[str] = set()

        async def churn() -> None:
            for _ in range(5):
                sub = await transport.subscribe(channel, group, prefetch=4)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        async for delivery in sub:
                            await delivery.ack()
                            acked.add(delivery.message.id)
                            break
                await sub.close()

        sent = [make_message(channel, i, key=f"k{i % 7}") for i in range(300)]
        await asyncio.gather(publish_all(transport, sent), *(churn() for _ in range(20)))
        final = Member(await transport.subscribe(channel, group))
        try:
            await eventually(
                lambda: (
                    acked
                    | set(ids(final.acked))
                    | (set(ids(anchor.acked)) if anchor is not None else set())
                    >= set(ids(sent))
                ),
                spec.timeout * 2,
                "every message after the churn",
            )
        finally:
            await final.stop()
            if anchor is not None:
                await anchor.stop()

    # Ordering ---------------------------------------------------------------------------

    async def test_per_key_order_with_competing_consumers(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("order"), unique("g")
        processed: dict[str, list[int]] = defaultdict(list)

        async def handler(delivery: Delivery) -> None:
            message = delivery.message
            await asyncio.sleep(random.random() * 0.002)
            processed[message.partition_key or ""].append(int(message.headers["seq"]))
            await delivery.ack()

        members = [Member(await transport.subscribe(channel, group), handler) for _ in range(10)]
        publishers = [await spec.make() for _ in range(4)]
        keys = [f"key-{k}" for k in range(16)]
        per_key = 60
        try:
            await asyncio.sleep(spec.settle_time)  # let the group settle its assignment
            await asyncio.gather(
                *(
                    publish_all(
                        publishers[k % len(publishers)],
                        [make_message(channel, i, key=key) for i in range(per_key)],
                    )
                    for k, key in enumerate(keys)
                )
            )

            def complete() -> bool:
                return all(len(set(processed[k])) >= per_key for k in keys)

            await eventually(complete, spec.timeout * 2, "every key's messages")
            if transport.capabilities.ordered_per_key:
                for key in keys:
                    first_seen = list(dict.fromkeys(processed[key]))
                    assert first_seen == list(range(per_key)), f"{key} out of order: {first_seen}"
            assert sum(1 for m in members if m.deliveries) >= 2, "competition expected"
        finally:
            for mem in members:
                await mem.stop()
            for pub in publishers:
                await pub.close()

    async def test_delayed_retry_keeps_its_place_when_a_member_joins(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        await _retry_through_a_membership_change(transport, spec, leave=False)

    async def test_delayed_retry_keeps_its_place_when_its_member_leaves(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        await _retry_through_a_membership_change(transport, spec, leave=True)

    # Shutdown ---------------------------------------------------------------------------

    async def test_publisher_close_flushes_in_flight(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        channel, group = unique("flush"), unique("g")
        member = Member(await transport.subscribe(channel, group))
        publisher = await spec.make()
        try:
            count = max(100, round(1000 * spec.volume))
            sent = [make_message(channel, i) for i in range(count)]
            tasks = [asyncio.create_task(publisher.publish(m)) for m in sent]
            await asyncio.sleep(0)  # every publish has started
            await publisher.close()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            assert not failed, f"{len(failed)} publishes in flight failed at close: {failed[:1]}"
            await eventually(lambda: len(set(ids(member.acked))) >= count, spec.timeout, f"{count}")
        finally:
            await member.stop()


class RestartContract(LeavesNothingBehind):
    """For transports whose broker the tests can restart: nothing is lost across restarts."""

    async def test_reconnects_after_two_broker_restarts_mid_stream(
        self, transport: Transport, spec: TransportSpec
    ) -> None:
        assert spec.restart_broker is not None
        channel, group = unique("restart"), unique("g")
        members = [Member(await transport.subscribe(channel, group)) for _ in range(2)]
        publishers = [await spec.make() for _ in range(4)]
        retries = 0

        async def publish_with_retry(pub: Transport, messages: list[Message]) -> None:
            nonlocal retries
            for message in messages:
                for _attempt in range(600):
                    try:
                        await pub.publish(message)
                        break
                    except (TransportError, ConnectionError, OSError, TimeoutError):
                        retries += 1
                        await asyncio.sleep(0.1)
                else:
                    raise AssertionError("publisher never recovered")

        try:
            batches = [
                [make_message(channel, p * 100 + i, key=f"k{p % 16}") for i in range(100)]
                for p in range(100)
            ]
            sent = {m.id for b in batches for m in b}
            publishing = asyncio.gather(
                *(publish_with_retry(publishers[i % 4], b) for i, b in enumerate(batches))
            )

            def received() -> set[str]:
                return {m.id for mem in members for m in mem.acked}

            await eventually(lambda: len(received()) >= 1500, spec.timeout * 2, "the stream")
            await spec.restart_broker()
            await eventually(lambda: len(received()) >= 5000, spec.timeout * 3, "after restart 1")
            await spec.restart_broker()
            await publishing
            await eventually(lambda: received() >= sent, spec.timeout * 3, "all 10,000")
            all_acked = [m for mem in members for m in mem.acked]
            _report(f"restart x2 ({retries} publish retries)", all_acked, transport.capabilities)
        finally:
            for mem in members:
                await mem.stop()
            for pub in publishers:
                await pub.close()
