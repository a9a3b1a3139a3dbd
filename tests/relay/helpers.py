"""Helpers for relay tests: messages with a sequence per key, and a collecting consumer."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

from servicewire.messaging.message import Message
from servicewire.transports.base import Subscription, Transport


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def make_messages(channel: str, count: int, keys: int = 4, start: int = 0) -> list[Message]:
    """``count`` messages to ``channel``; key ``k{n % keys}``, header ``seq`` = n."""
    return [
        Message.create(
            f'{{"n": {n}}}'.encode(),
            destination=channel,
            kind="event",
            type="test.Relayed",
            partition_key=f"k{n % keys}",
            extra={"seq": str(n)},
        )
        for n in range(start, start + count)
    ]


class Collector:
    """Consumes ``channel`` in the background and records every message it sees."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.messages: list[Message] = []
        self.counts: Counter[str] = Counter()
        self._task = asyncio.create_task(self._run())

    @classmethod
    async def open(cls, transport: Transport, channel: str, group: str = "g") -> Collector:
        return cls(await transport.subscribe(channel, group, prefetch=1000))

    async def _run(self) -> None:
        async for delivery in self.sub:
            self.messages.append(delivery.message)
            self.counts[delivery.message.id] += 1
            await delivery.ack()

    @property
    def unique_ids(self) -> set[str]:
        return set(self.counts)

    @property
    def duplicates(self) -> int:
        return sum(c - 1 for c in self.counts.values())

    def seqs_by_key(self) -> dict[str, list[int]]:
        """First-seen order of ``seq`` per partition key (duplicates dropped)."""
        seen: set[str] = set()
        out: dict[str, list[int]] = {}
        for m in self.messages:
            if m.id in seen:
                continue
            seen.add(m.id)
            out.setdefault(m.partition_key or "", []).append(int(m.headers["seq"]))
        return out

    async def close(self) -> None:
        await self.sub.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def eventually(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    interval: float = 0.02,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
