"""``memory://`` — the in-process reference transport.

Everything the contract suite asks of a broker, inside one event loop: groups, shards,
per-key order with competing members, redelivery on nack (with delay) and when a
member leaves without acking. It is the embedded default (``make demo``) and the
transport for unit tests of handlers::

    transport = await connect_transport("memory://")            # broker named "default"
    other = await connect_transport("memory://")                # same broker, another client
    isolated = await connect_transport("memory://test-42")      # a broker of its own

Clients whose URLs name the same broker share it, like processes sharing a RabbitMQ.
Nothing survives the process (``persistent=False``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import ClassVar

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS, shard_for, validate_name
from servicewire.messaging.message import Message
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Delivery,
    Subscription,
    Transport,
)
from servicewire.transports.memory.options import MemoryOptions


class _Entry:
    __slots__ = ("attempts", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.attempts = 0


class _Blocked:
    """Marks a shard held by a nacked message waiting out its redelivery delay."""


_BLOCKED = _Blocked()


class _MemoryDelivery(Delivery):
    __slots__ = ("_entry", "_group", "_member", "_settled")

    def __init__(
        self, group: _GroupState, shard: int, entry: _Entry, member: MemorySubscription
    ) -> None:
        super().__init__(entry.message, entry.attempts, shard)
        self._group = group
        self._entry = entry
        self._member = member
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._group.settle(self, requeue=False, delay=0.0)

    async def nack(self, delay: float = 0.0) -> None:
        if not self._settled:
            self._settled = True
            self._group.settle(self, requeue=True, delay=delay)


class _GroupState:
    """One group on one channel: a queue per shard, one unsettled delivery per shard."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.queues: list[deque[_Entry]] = [deque() for _ in range(shards)]
        self.inflight: list[_MemoryDelivery | _Blocked | None] = [None] * shards
        self.owner: list[MemorySubscription | None] = [None] * shards
        self.members: list[MemorySubscription] = []

    def enqueue(self, message: Message) -> None:
        shard = shard_for(message.partition_key, self.shards, message.id)
        self.queues[shard].append(_Entry(message))
        self.dispatch(shard)

    def dispatch(self, shard: int) -> None:
        # One unsettled delivery per shard: that is what keeps per-key order while
        # members compete.
        if self.inflight[shard] is not None:
            return
        queue = self.queues[shard]
        member = self.owner[shard]
        if not queue or member is None or member.outstanding >= member.prefetch:
            return
        entry = queue.popleft()
        entry.attempts += 1
        delivery = _MemoryDelivery(self, shard, entry, member)
        self.inflight[shard] = delivery
        member.outstanding += 1
        member.queue.put_nowait(delivery)

    def dispatch_all(self) -> None:
        for shard in range(self.shards):
            self.dispatch(shard)

    def settle(self, delivery: _MemoryDelivery, *, requeue: bool, delay: float) -> None:
        shard = delivery.shard
        assert shard is not None
        if self.inflight[shard] is not delivery:
            return  # stale: its member left and the message was already requeued
        member = delivery._member
        member.outstanding -= 1
        if not requeue:
            self.inflight[shard] = None
        elif delay <= 0:
            self.queues[shard].appendleft(delivery._entry)
            self.inflight[shard] = None
        else:
            self.inflight[shard] = _BLOCKED
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._release, shard, delivery._entry)
        self.dispatch(shard)
        if member.outstanding == member.prefetch - 1:
            self.dispatch_all()  # the member had hit its prefetch cap; other shards may wait

    def _release(self, shard: int, entry: _Entry) -> None:
        self.queues[shard].appendleft(entry)
        self.inflight[shard] = None
        self.dispatch(shard)

    def join(self, member: MemorySubscription) -> None:
        self.members.append(member)
        self.rebalance()

    def leave(self, member: MemorySubscription) -> None:
        if member not in self.members:
            return
        self.members.remove(member)
        for shard, current in enumerate(self.inflight):
            if isinstance(current, _MemoryDelivery) and current._member is member:
                current._settled = True
                self.queues[shard].appendleft(current._entry)
                self.inflight[shard] = None
        member.outstanding = 0
        self.rebalance()

    def rebalance(self) -> None:
        # Shards are dealt round-robin over live members. A shard that moves keeps its
        # unsettled delivery with the old member until settled, so order holds.
        count = len(self.members)
        for shard in range(self.shards):
            self.owner[shard] = self.members[shard % count] if count else None
        self.dispatch_all()

    def backlog(self) -> int:
        return sum(len(q) for q in self.queues) + sum(1 for i in self.inflight if i is not None)


class MemoryBroker:
    """The state of one named in-memory broker: channels and their groups."""

    _brokers: ClassVar[dict[str, MemoryBroker]] = {}

    def __init__(self, name: str, shards: int = DEFAULT_SHARDS) -> None:
        self.name = name
        self.shards = shards
        self.channels: dict[str, dict[str, _GroupState]] = {}

    @classmethod
    def named(cls, name: str) -> MemoryBroker:
        broker = cls._brokers.get(name)
        if broker is None:
            broker = cls._brokers[name] = cls(name)
        return broker

    @classmethod
    def reset(cls, name: str | None = None) -> None:
        """Forget one broker (or all of them): for tests."""
        if name is None:
            cls._brokers.clear()
        else:
            cls._brokers.pop(name, None)

    def group(self, channel: str, group: str) -> _GroupState:
        groups = self.channels.setdefault(channel, {})
        state = groups.get(group)
        if state is None:
            state = groups[group] = _GroupState(self.shards)
        return state

    def publish(self, message: Message) -> None:
        for state in self.channels.get(message.destination, {}).values():
            state.enqueue(message)

    def backlog(self, channel: str, group: str) -> int:
        """Messages not yet acked by ``group`` (queued or in flight)."""
        state = self.channels.get(channel, {}).get(group)
        return state.backlog() if state else 0


class MemorySubscription(Subscription):
    """One member of a group on the in-memory broker."""

    def __init__(
        self,
        transport: MemoryTransport,
        state: _GroupState,
        channel: str,
        group: str,
        prefetch: int,
    ) -> None:
        self.channel = channel
        self.group = group
        self.prefetch = max(1, prefetch)
        self.outstanding = 0
        self.queue: asyncio.Queue[_MemoryDelivery | None] = asyncio.Queue()
        self._transport = transport
        self._state = state
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self._closed:
            item = await self.queue.get()
            if item is None:
                return
            if item._settled:
                continue  # requeued when a rebalance or close took it back
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._state.leave(self)
        self.queue.put_nowait(None)
        self._transport._subscriptions.discard(self)


class MemoryTransport(Transport):
    """A client of a named :class:`MemoryBroker`."""

    scheme = "memory"
    capabilities = Capabilities(
        durable=True,
        persistent=False,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __init__(
        self, url: str = "memory://", *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self.options = MemoryOptions.from_url(url)
        self.broker_name = self.options.broker_name
        self.broker = MemoryBroker.named(self.broker_name)
        self._subscriptions: set[MemorySubscription] = set()
        self._connected = False

    async def connect(self) -> None:
        self._connected = True

    def _check_open(self) -> None:
        if not self._connected:
            raise TransportError(f"memory transport {self.url!r} is not connected")

    async def _send(self, message: Message) -> None:
        self._check_open()
        validate_name(message.destination, "channel")
        self.broker.publish(message)

    async def declare(self, channel: str, group: str) -> None:
        self._check_open()
        self.broker.group(validate_name(channel, "channel"), validate_name(group, "group"))

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        self._check_open()
        state = self.broker.group(validate_name(channel, "channel"), validate_name(group, "group"))
        sub = MemorySubscription(self, state, channel, group, prefetch)
        self._subscriptions.add(sub)
        state.join(sub)
        return sub

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        self._connected = False
