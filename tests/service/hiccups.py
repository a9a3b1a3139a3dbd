"""A transport wrapper whose reply channel hiccups on demand, like a broker connection would.

It delegates everything to a real transport and fails, for real, only on the channels
named in ``hiccup_on``::

    transport = HiccupTransport(transport_from_url("memory://x"), hiccup_on=service_reply)
    transport.failing_acks = {1}          # the first ack on that channel raises
    transport.break_iteration_after = 2   # the subscription's iterator raises after 2
    transport.failing_closes = 1          # the next close of that subscription raises
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from servicewire.errors import ConnectionFailedError
from servicewire.messaging.message import Message
from servicewire.transports.base import Delivery, Subscription, Transport


def hiccup(what: str) -> ConnectionFailedError:
    return ConnectionFailedError("hiccup", "hiccup://broker", f"{what} failed (test)")


class HiccupDelivery(Delivery):
    """A delivery whose ack may raise instead of reaching the broker."""

    def __init__(self, inner: Delivery, fails: bool) -> None:
        super().__init__(inner.message, inner.attempt, inner.shard)
        self.inner = inner
        self.fails = fails

    async def ack(self) -> None:
        if self.fails:
            raise hiccup("ack")
        await self.inner.ack()

    async def nack(self, delay: float = 0.0) -> None:
        await self.inner.nack(delay)


class HiccupSubscription(Subscription):
    """Reads ``inner``; its acks, iteration and close fail as its transport says."""

    def __init__(self, inner: Subscription, owner: HiccupTransport) -> None:
        self.channel = inner.channel
        self.group = inner.group
        self.inner = inner
        self.owner = owner

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        async for delivery in self.inner:
            owner = self.owner
            owner.acks_seen += 1
            yield HiccupDelivery(delivery, fails=owner.acks_seen in owner.failing_acks)
            if owner.break_iteration_after == owner.acks_seen:
                owner.break_iteration_after = None
                raise hiccup("reading the reply channel")

    async def close(self) -> None:
        await self.inner.close()
        if self.owner.failing_closes > 0:
            self.owner.failing_closes -= 1
            raise hiccup("leaving the reply channel")


class HiccupTransport(Transport):
    """Delegates to ``inner``; the subscriptions to ``hiccup_on`` fail on demand."""

    scheme = "hiccup"

    def __init__(self, inner: Transport, *, hiccup_on: str) -> None:
        super().__init__("hiccup://", max_message_size=inner.max_message_size)
        self.inner = inner
        self.hiccup_on = hiccup_on
        self.failing_acks: set[int] = set()
        self.break_iteration_after: int | None = None
        self.failing_closes = 0
        self.acks_seen = 0
        self.closed = False

    @property  # type: ignore[misc]
    def capabilities(self):  # type: ignore[no-untyped-def]
        return self.inner.capabilities

    async def connect(self) -> None:
        await self.inner.connect()

    async def _send(self, message: Message) -> None:
        await self.inner.publish(message)

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        await self.inner.publish_batch(messages)

    async def declare(self, channel: str, group: str) -> None:
        await self.inner.declare(channel, group)

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        sub = await self.inner.subscribe(channel, group, prefetch=prefetch)
        return HiccupSubscription(sub, self) if channel == self.hiccup_on else sub

    async def delete_group(self, channel: str, group: str) -> bool:
        return await self.inner.delete_group(channel, group)

    async def delete_channel(self, channel: str) -> bool:
        return await self.inner.delete_channel(channel)

    async def close(self) -> None:
        await self.inner.close()
        self.closed = True
