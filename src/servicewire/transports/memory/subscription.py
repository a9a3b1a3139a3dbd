"""A member of an in-memory group: it reads what the broker hands it::

sub = MemorySubscription(state, "orders", "billing", prefetch=64, on_close=forget)
state.join(sub)
async for delivery in sub:
    await delivery.ack()
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.memory.broker import GroupState, MemoryDelivery


class MemorySubscription(Subscription):
    """One member of a group on the in-memory broker."""

    def __init__(
        self,
        state: GroupState,
        channel: str,
        group: str,
        prefetch: int,
        on_close: Callable[[MemorySubscription], None],
    ) -> None:
        self.channel = channel
        self.group = group
        self.member_id = f"{group}.{uuid.uuid4().hex[:12]}"
        self.prefetch = max(1, prefetch)
        self.outstanding = 0
        self.queue: asyncio.Queue[MemoryDelivery | None] = asyncio.Queue()
        self._state = state
        self._on_close = on_close
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self._closed:
            item = await self.queue.get()
            if item is None:
                return
            if item.settled:
                continue  # requeued when a rebalance or close took it back
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._state.leave(self)
        self.queue.put_nowait(None)
        self._on_close(self)
