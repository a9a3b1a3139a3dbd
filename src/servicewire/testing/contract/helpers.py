"""Helpers for the contract suite: unique names, background members, polling waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports.base import Delivery, Subscription, Transport


def unique(prefix: str) -> str:
    """A channel or group name no other test run uses."""
    return f"ct.{prefix}.{uuid.uuid4().hex[:10]}"


def make_message(channel: str, n: int, key: str | None = None, size: int = 0) -> Message:
    payload = f"{n}".encode() + (b"." * max(0, size - len(str(n))))
    return Message.create(
        payload,
        destination=channel,
        kind="event",
        type="contract.Test",
        version="1.0.0",
        partition_key=key,
        extra={"seq": str(n)},
    )


async def eventually(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.01
) -> None:
    """Wait until ``condition()`` holds; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


Handler = Callable[[Delivery], Awaitable[None]]


class Member:
    """A group member consuming in a background task; records what it acked."""

    def __init__(self, sub: Subscription, handler: Handler | None = None) -> None:
        self.sub = sub
        self.acked: list[Message] = []
        self.deliveries = 0
        self._handler = handler or self._ack
        self._task = asyncio.create_task(self._run())
        self.error: BaseException | None = None

    async def _ack(self, delivery: Delivery) -> None:
        await delivery.ack()
        self.acked.append(delivery.message)

    async def _run(self) -> None:
        try:
            async for delivery in self.sub:
                self.deliveries += 1
                await self._handler(delivery)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc

    async def stop(self) -> None:
        await self.sub.close()
        try:
            await within(asyncio.shield(self._task), timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def ids(messages: list[Message]) -> list[str]:
    return [m.id for m in messages]


def duplicates(messages: list[Message]) -> int:
    """How many receptions were repeats of an id already received."""
    counts = Counter(m.id for m in messages)
    return sum(c - 1 for c in counts.values())


async def publish_all(transport: Transport, messages: list[Message]) -> None:
    for message in messages:
        await transport.publish(message)
