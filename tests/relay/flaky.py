"""A transport wrapper that fails on demand: broker down, or a crash right after publishing."""

from __future__ import annotations

from collections.abc import Sequence

from servicewire.errors import ConnectionFailedError, PublishError
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


class FailOnceTransport(Transport):
    """Delegates to ``inner`` but refuses the first publish of each id in ``fail_ids``.

    Batches go through the base class's concurrent ``_send_batch``, so the other messages
    of a batch reach the broker while one of them fails: a partial batch failure.
    """

    scheme = "fail-once"

    def __init__(self, inner: Transport, fail_ids: set[str]) -> None:
        super().__init__("fail-once://", max_message_size=inner.max_message_size)
        self.inner = inner
        self.fail_ids = set(fail_ids)
        self.failed: list[str] = []

    @property  # type: ignore[misc]
    def capabilities(self):  # type: ignore[no-untyped-def]
        return self.inner.capabilities

    async def connect(self) -> None:
        await self.inner.connect()

    async def _send(self, message: Message) -> None:
        if message.id in self.fail_ids:
            self.fail_ids.discard(message.id)
            self.failed.append(message.id)
            raise PublishError(f"broker did not confirm {message.id} (test, once)")
        await self.inner.publish(message)

    async def declare(self, channel: str, group: str) -> None:
        await self.inner.declare(channel, group)

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        return await self.inner.subscribe(channel, group, prefetch=prefetch)

    async def close(self) -> None:
        await self.inner.close()
