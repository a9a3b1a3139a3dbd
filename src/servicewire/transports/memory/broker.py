"""The in-memory broker: named brokers, their channels, and each group's shard queues.

A group keeps a queue per shard and at most one unsettled delivery per shard, handed to
the shard's owner (:mod:`.membership`); that is what keeps per-key order while members
compete::

    broker = MemoryBroker.named("default")
    state = broker.group("orders", "billing")     # the group keeps messages from now on
    broker.publish(message)                       # queued on its shard of every group
    state.join(member)                            # deals shards; deliveries go to member.queue
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import ClassVar, Protocol

from servicewire.messaging.channels import DEFAULT_SHARDS, shard_for
from servicewire.messaging.message import Message
from servicewire.transports.base import Delivery
from servicewire.transports.memory.membership import Membership


class Consumer(Protocol):
    """What the broker needs of a member (a subscription) to hand it deliveries."""

    prefetch: int
    outstanding: int
    queue: asyncio.Queue[MemoryDelivery | None]

    @property
    def member_id(self) -> str: ...


class _Entry:
    __slots__ = ("attempts", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.attempts = 0


class _Blocked:
    """Marks a shard held by a nacked message waiting out its redelivery delay."""


_BLOCKED = _Blocked()


class MemoryDelivery(Delivery):
    __slots__ = ("_entry", "_group", "_member", "_settled")

    def __init__(self, group: GroupState, shard: int, entry: _Entry, member: Consumer) -> None:
        super().__init__(entry.message, entry.attempts, shard)
        self._group = group
        self._entry = entry
        self._member = member
        self._settled = False

    @property
    def settled(self) -> bool:
        """Acked, nacked, or taken back when its member left."""
        return self._settled

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._group.settle(self, requeue=False, delay=0.0)

    async def nack(self, delay: float = 0.0) -> None:
        if not self._settled:
            self._settled = True
            self._group.settle(self, requeue=True, delay=delay)


class GroupState:
    """One group on one channel: a queue per shard, one unsettled delivery per shard."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.queues: list[deque[_Entry]] = [deque() for _ in range(shards)]
        self.inflight: list[MemoryDelivery | _Blocked | None] = [None] * shards
        self.membership = Membership[Consumer](shards)

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
        member = self.membership.owner[shard]
        if not queue or member is None or member.outstanding >= member.prefetch:
            return
        entry = queue.popleft()
        entry.attempts += 1
        delivery = MemoryDelivery(self, shard, entry, member)
        self.inflight[shard] = delivery
        member.outstanding += 1
        member.queue.put_nowait(delivery)

    def dispatch_all(self) -> None:
        for shard in range(self.shards):
            self.dispatch(shard)

    def settle(self, delivery: MemoryDelivery, *, requeue: bool, delay: float) -> None:
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

    def join(self, member: Consumer) -> None:
        # A shard that moves keeps its unsettled delivery with the old member until
        # settled, so order holds.
        self.membership.join(member)
        self.dispatch_all()

    def leave(self, member: Consumer) -> None:
        if not self.membership.leave(member):
            return
        for shard, current in enumerate(self.inflight):
            if isinstance(current, MemoryDelivery) and current._member is member:
                current._settled = True
                self.queues[shard].appendleft(current._entry)
                self.inflight[shard] = None
        member.outstanding = 0
        self.dispatch_all()

    def backlog(self) -> int:
        return sum(len(q) for q in self.queues) + sum(1 for i in self.inflight if i is not None)


class MemoryBroker:
    """The state of one named in-memory broker: channels and their groups."""

    _brokers: ClassVar[dict[str, MemoryBroker]] = {}

    def __init__(self, name: str, shards: int = DEFAULT_SHARDS) -> None:
        self.name = name
        self.shards = shards
        self.channels: dict[str, dict[str, GroupState]] = {}

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

    def group(self, channel: str, group: str) -> GroupState:
        groups = self.channels.setdefault(channel, {})
        state = groups.get(group)
        if state is None:
            state = groups[group] = GroupState(self.shards)
        return state

    def delete_group(self, channel: str, group: str) -> None:
        """Forget ``group`` on ``channel`` with its messages; its members read nothing more."""
        groups = self.channels.get(channel)
        if groups is not None:
            groups.pop(group, None)
            if not groups:
                del self.channels[channel]

    def delete_channel(self, channel: str) -> None:
        """Forget ``channel`` with every group on it."""
        self.channels.pop(channel, None)

    def publish(self, message: Message) -> None:
        for state in self.channels.get(message.destination, {}).values():
            state.enqueue(message)

    def backlog(self, channel: str, group: str) -> int:
        """Messages not yet acked by ``group`` (queued or in flight)."""
        state = self.channels.get(channel, {}).get(group)
        return state.backlog() if state else 0
