"""A transport wrapper that fails on demand: broker down, or a crash right after publishing."""

from __future__ import annotations

from collections.abc import Sequence

from servicewire.errors import ConnectionFailedError
from servicewire.messaging.message import Message
from servicewire.transports.base import Subscription, Transport


class CrashAfterPublishError(RuntimeError):
    """Stands in for the relay process dying after the broker confirmed."""


class FlakyTransport(Transport):
    """Delegates to ``inner``; refuses publishes while ``down``; can crash after publish."""

    scheme = "flaky"

    def __init__(self, inner: Transport) -> None:
        super().__init__("flaky://", max_message_size=inner.max_message_size)
        self.inner = inner
        self.down = False
        self.crashes_after_publish = 0
        self.crashed_batches: list[list[str]] = []
        self.refused = 0

    @property  # type: ignore[misc]
    def capabilities(self):  # type: ignore[no-untyped-def]
        return self.inner.capabilities

    async def connect(self) -> None:
        await self.inner.connect()

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise ConnectionFailedError("flaky", "flaky://broker", "broker is down (test)")

    async def _send(self, message: Message) -> None:
        self._check()
        await self.inner.publish(message)

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        self._check()
        await self.inner.publish_batch(messages)
        if self.crashes_after_publish > 0:
            self.crashes_after_publish -= 1
            self.crashed_batches.append([m.id for m in messages])
            raise CrashAfterPublishError("crash between publish and delete/confirm (test)")

    async def declare(self, channel: str, group: str) -> None:
        await self.inner.declare(channel, group)

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        return await self.inner.subscribe(channel, group, prefetch=prefetch)

    async def close(self) -> None:
        await self.inner.close()
