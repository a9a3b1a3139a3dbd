"""Request/response over messaging: waiting for replies by correlation id.

The service sends a command with ``replyto`` set to a channel of its own instance and
a fresh correlation id; the replying service copies the correlation id back; this
module matches replies to the waiting callers. A reply nobody waits for any more (late,
or a duplicate) is dropped with a log line::

    pending = PendingReplies()
    with pending.expect(correlation_id) as waiter:   # forgotten on leaving, however
        ...                                          # send the command
        reply_message = await waiter.one(timeout=5)
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType

from servicewire.messaging.message import Message
from servicewire.timeouts import within

log = logging.getLogger("servicewire.service.requests")


class ReplyWaiter:
    """Collects the replies of one correlation id."""

    def __init__(self, owner: PendingReplies, correlation_id: str) -> None:
        self.correlation_id = correlation_id
        self._owner = owner
        self._replies: list[Message] = []
        self._seen: set[str] = set()
        self._arrived = asyncio.Event()

    def __enter__(self) -> ReplyWaiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever ended the request (a reply, a timeout, a failed send, a cancelled
        # caller), nothing may stay waiting for it.
        self._owner.forget(self.correlation_id)

    def _add(self, message: Message) -> None:
        if message.id in self._seen:
            log.info("duplicate reply %s for %s dropped", message.id, self.correlation_id)
            return
        self._seen.add(message.id)
        self._replies.append(message)
        self._arrived.set()

    async def one(self, timeout: float) -> Message | None:
        """The first reply, or ``None`` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while not self._replies:
                    self._arrived.clear()
                    await self._arrived.wait()
            return self._replies[0]
        except TimeoutError:
            return None
        finally:
            self._owner.forget(self.correlation_id)

    async def until(self, deadline: float, expected: int | None = None) -> list[Message]:
        """Every reply that arrives before ``deadline`` (``time.monotonic()``), or until
        ``expected`` replies are in."""
        try:
            while expected is None or len(self._replies) < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await within(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            return list(self._replies)
        finally:
            self._owner.forget(self.correlation_id)


class PendingReplies:
    """The open requests of one service instance, by correlation id."""

    def __init__(self) -> None:
        self._waiters: dict[str, ReplyWaiter] = {}

    def expect(self, correlation_id: str) -> ReplyWaiter:
        waiter = ReplyWaiter(self, correlation_id)
        self._waiters[correlation_id] = waiter
        return waiter

    def forget(self, correlation_id: str) -> None:
        self._waiters.pop(correlation_id, None)

    def deliver(self, message: Message) -> bool:
        """Hand a reply to its waiter; ``False`` (and a log line) when none waits."""
        waiter = self._waiters.get(message.correlation_id or "")
        if waiter is None:
            log.info(
                "late or unexpected reply %s (%s, correlation id %s) dropped",
                message.id,
                message.type,
                message.correlation_id,
            )
            return False
        waiter._add(message)
        return True

    def __len__(self) -> int:
        return len(self._waiters)
