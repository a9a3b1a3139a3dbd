"""The receiving side of brokerless ZeroMQ: one group member inside a node.

Senders route each message of a shard to the shard's owner among the group's members
(see :mod:`servicewire.transports.zmq.routing`); the member keeps a queue per shard and hands
the application one message of a shard at a time, the next only after the previous
was acked — or nacked and, after its delay, handed out again. That is per-key order
with competing members, kept without a broker. Acks travel back to the sending
process, which forgets the message; a member that leaves returns what it holds, and
the sender routes it to the shard's new owner::

    sub = await transport.subscribe("orders", "billing")
    async for delivery in sub:
        await delivery.ack()          # the sender drops its copy
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from servicewire.messaging.channels import shard_for
from servicewire.messaging.message import Message
from servicewire.transports.base import Delivery, Subscription


class Node(Protocol):
    """What a member needs from its node (the transport)."""

    def send_ack(self, routing_id: bytes, tag: int) -> None: ...

    def send_return(self, routing_id: bytes, tag: int, attempt: int) -> None: ...

    async def leave(self, sub: ZmqSubscription) -> None: ...


class Incoming:
    """A message this member holds for a sender, until it is acked or returned."""

    __slots__ = ("attempt", "message", "routing_id", "tag")

    def __init__(self, routing_id: bytes, tag: int, attempt: int, message: Message) -> None:
        self.routing_id = routing_id
        self.tag = tag
        self.attempt = attempt
        """The attempt number of the next hand-out."""
        self.message = message


class ZmqDelivery(Delivery):
    __slots__ = ("_incoming", "_settled", "_sub")

    def __init__(self, sub: ZmqSubscription, shard: int, incoming: Incoming) -> None:
        super().__init__(incoming.message, incoming.attempt, shard)
        self._sub = sub
        self._incoming = incoming
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._sub._settle(self, requeue=False, delay=0.0)

    async def nack(self, delay: float = 0.0) -> None:
        if not self._settled:
            self._settled = True
            self._sub._settle(self, requeue=True, delay=delay)


class ZmqSubscription(Subscription):
    """One member of ``group`` on ``channel``, living in one node."""

    def __init__(
        self, node: Node, channel: str, group: str, member: str, prefetch: int, shards: int
    ) -> None:
        self.channel = channel
        self.group = group
        self.member = member
        self.prefetch = max(1, prefetch)
        self.shards = shards
        self.closed = False
        self._leaving = False
        self._node = node
        self._queues: list[deque[Incoming]] = [deque() for _ in range(shards)]
        self._inflight: list[ZmqDelivery | None] = [None] * shards
        self._delayed: dict[int, tuple[Incoming, asyncio.TimerHandle]] = {}
        self._outstanding = 0
        self._out: asyncio.Queue[ZmqDelivery | None] = asyncio.Queue()

    def accept(self, incoming: Incoming) -> None:
        """A message arrived from a sender."""
        if self.closed:
            self._node.send_return(incoming.routing_id, incoming.tag, incoming.attempt)
            return
        message = incoming.message
        shard = shard_for(message.partition_key, self.shards, message.id)
        self._queues[shard].append(incoming)
        self._dispatch(shard)

    def _dispatch(self, shard: int) -> None:
        if self._leaving or self._inflight[shard] is not None or shard in self._delayed:
            return
        queue = self._queues[shard]
        if not queue or self._outstanding >= self.prefetch:
            return
        delivery = ZmqDelivery(self, shard, queue.popleft())
        self._inflight[shard] = delivery
        self._outstanding += 1
        self._out.put_nowait(delivery)

    def _dispatch_all(self) -> None:
        for shard in range(self.shards):
            self._dispatch(shard)

    def _settle(self, delivery: ZmqDelivery, *, requeue: bool, delay: float) -> None:
        shard = delivery.shard
        assert shard is not None
        if self.closed or self._inflight[shard] is not delivery:
            return  # returned to its sender when the member closed
        self._inflight[shard] = None
        self._outstanding -= 1
        incoming = delivery._incoming
        if not requeue:
            self._node.send_ack(incoming.routing_id, incoming.tag)
        else:
            incoming.attempt += 1
            if delay <= 0:
                self._queues[shard].appendleft(incoming)
            else:
                timer = asyncio.get_running_loop().call_later(delay, self._release, shard)
                self._delayed[shard] = (incoming, timer)
        self._dispatch(shard)
        if self._outstanding == self.prefetch - 1:
            self._dispatch_all()  # we were at the prefetch cap: other shards may wait

    def _release(self, shard: int) -> None:
        incoming, _ = self._delayed.pop(shard)
        self._queues[shard].appendleft(incoming)
        self._dispatch(shard)

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            item = await self._out.get()
            if item is None:
                return
            if item._settled or self.closed:
                continue
            yield item

    async def close(self) -> None:
        if self._leaving:
            return
        # Leave the directory first (still queueing what arrives meanwhile, handing out
        # nothing new): once every sender's view is without us, nothing new comes. Then
        # hand back what we hold, in order, so it goes to the shard's new owner.
        self._leaving = True
        try:
            await self._node.leave(self)
        finally:
            self.closed = True
        for shard in range(self.shards):
            current = self._inflight[shard]
            if current is not None:
                current._settled = True
                incoming = current._incoming
                self._node.send_return(incoming.routing_id, incoming.tag, incoming.attempt + 1)
                self._inflight[shard] = None
            delayed = self._delayed.pop(shard, None)
            if delayed is not None:
                delayed[1].cancel()
                self._node.send_return(delayed[0].routing_id, delayed[0].tag, delayed[0].attempt)
            for incoming in self._queues[shard]:
                self._node.send_return(incoming.routing_id, incoming.tag, incoming.attempt)
            self._queues[shard].clear()
        self._outstanding = 0
        self._out.put_nowait(None)
