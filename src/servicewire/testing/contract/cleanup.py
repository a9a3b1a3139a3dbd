"""What a contract case declared, and deleting it afterwards.

Every client the case makes (``spec.make()``, the ``transport`` fixture's too) is
watched: the channels it publishes to, declares or subscribes to, and the groups on
them. After the case, a fresh client deletes them all with
:meth:`~servicewire.transports.base.Transport.tear_down`, so a run leaves a shared
broker as it found it::

    declared = Declared()
    spec.make = declared.watching(spec.make)      # done by the suite's autouse fixture
    ...
    await declared.delete(original_make)
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from servicewire.messaging.message import Message
from servicewire.transports.base import Subscription, Transport

Make = Callable[[], Awaitable[Transport]]


class Declared:
    """The channels (and their groups) clients made through :meth:`watching` touched."""

    def __init__(self) -> None:
        self.groups: defaultdict[str, set[str]] = defaultdict(set)

    def watching(self, make: Make) -> Make:
        """``make``, whose clients report what they declare to this record."""

        async def watched() -> Transport:
            transport = await make()
            self.watch(transport)
            return transport

        return watched

    def watch(self, transport: Transport) -> None:
        """Record, on this instance only, what ``transport`` declares from now on."""
        declare, subscribe = transport.declare, transport.subscribe
        publish, publish_batch = transport.publish, transport.publish_batch

        async def declare_(channel: str, group: str) -> None:
            self.groups[channel].add(group)
            await declare(channel, group)

        async def subscribe_(channel: str, group: str, **options: Any) -> Subscription:
            self.groups[channel].add(group)
            return await subscribe(channel, group, **options)

        async def publish_(message: Message) -> None:
            self.groups[message.destination]
            await publish(message)

        async def publish_batch_(messages: Sequence[Message]) -> None:
            for message in messages:
                self.groups[message.destination]
            await publish_batch(messages)

        # Instance attributes: the class (and isinstance checks) stay the transport's own.
        for name, method in (
            ("declare", declare_),
            ("subscribe", subscribe_),
            ("publish", publish_),
            ("publish_batch", publish_batch_),
        ):
            setattr(transport, name, method)

    async def delete(self, make: Make, timeout: float) -> None:
        """Delete every recorded channel with its groups, through a new client of ``make``."""
        if not self.groups:
            return
        cleaner = await make()
        try:
            async with asyncio.timeout(timeout):
                for channel, groups in sorted(self.groups.items()):
                    await cleaner.tear_down(channel, sorted(groups))
        finally:
            await cleaner.close()
        self.groups.clear()
