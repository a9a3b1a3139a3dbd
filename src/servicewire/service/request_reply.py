"""Request/reply and scatter-gather from one service instance, over its own reply channel.

A request goes out in a transaction of its own with ``replyto`` set to the instance's
reply channel and a fresh correlation id; the instance subscribes to that channel on
the first request and hands each reply to the caller waiting for its correlation id
(:mod:`~.requests`, :mod:`~.reply_router`). A request that cannot be sent (its outbox
write fails, or its reply channel cannot be read) raises
:class:`~servicewire.errors.RequestNotSentError` and leaves nothing waiting::

    calls = InstanceRequests("order-service.replies.3f2a", "3f2a", authenticity=authenticity,
                             codecs=codecs, transaction=service.transaction)
    reply = await calls.request(transport, CheckCredit(consumer_id="c-1"), timeout=5)
    replies = await calls.scatter(transport, QuoteRequested(...), timeout=2)
    ...
    await calls.close()                 # when the service stops
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from servicewire.codecs import CodecRegistry
from servicewire.codecs.serialization import from_message
from servicewire.errors import RequestNotSentError, RequestTimeoutError
from servicewire.messaging.contracts import Command, Event, Reply
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Message
from servicewire.pipeline.context import Context
from servicewire.security.identity import MessageAuthenticity
from servicewire.service.reply_router import ReplyRouter
from servicewire.service.requests import PendingReplies
from servicewire.transports import Transport


class InstanceRequests:
    """The requests one service instance makes, and the replies that come back to it."""

    def __init__(
        self,
        channel: str,
        group: str,
        *,
        authenticity: MessageAuthenticity,
        codecs: CodecRegistry,
        transaction: Callable[[], AbstractAsyncContextManager[Context]],
    ) -> None:
        self.channel = channel
        self._codecs = codecs
        self._transaction = transaction
        self._pending = PendingReplies()
        self._router = ReplyRouter(channel, group, self._pending, authenticity)

    @property
    def pending(self) -> int:
        """How many requests are waiting for replies right now."""
        return len(self._pending)

    async def close(self) -> None:
        """Stop reading replies; a later request subscribes again."""
        await self._router.close()

    @asynccontextmanager
    async def _sending(
        self, transport: Transport, contract: str, correlation_id: str
    ) -> AsyncIterator[Context]:
        """The transaction that sends a request, once its replies can be read.

        Raises :class:`RequestNotSentError`, the cause chained, when the reply channel
        cannot be read or the transaction fails (its outbox write, say).
        """
        try:
            await self._router.ensure_running(transport)
            async with self._transaction() as ctx:
                yield ctx
        except Exception as exc:
            raise RequestNotSentError(contract, correlation_id, exc) from exc

    async def request(
        self,
        transport: Transport,
        command: Command,
        *,
        timeout: float,
        destination: str | None,
    ) -> Reply:
        """Send ``command`` and wait for its reply up to ``timeout``; see ``Service.request``."""
        contract = command.contract_name()
        correlation_id = new_id()
        with self._pending.expect(correlation_id) as waiter:
            async with self._sending(transport, contract, correlation_id) as ctx:
                await ctx.send(
                    command,
                    destination=destination,
                    reply_to=self.channel,
                    correlation_id=correlation_id,
                )
            message = await waiter.one(timeout)
        if message is None:
            raise RequestTimeoutError(contract, correlation_id, timeout)
        return self._decode_reply(message)

    async def scatter(
        self,
        transport: Transport,
        request: Command | Event,
        *,
        timeout: float,
        destinations: Sequence[str] | None,
        expected: int | None,
    ) -> list[Reply]:
        """Send ``request``, gather replies until ``timeout``; see ``Service.scatter``."""
        correlation_id = new_id()
        deadline = time.monotonic() + timeout
        with self._pending.expect(correlation_id) as waiter:
            async with self._sending(transport, request.contract_name(), correlation_id) as ctx:
                if isinstance(request, Event):
                    await ctx.publish(
                        request,
                        headers={"replyto": self.channel, "correlationid": correlation_id},
                    )
                else:
                    for destination in destinations or [None]:  # type: ignore[list-item]
                        await ctx.send(
                            request,
                            destination=destination,
                            reply_to=self.channel,
                            correlation_id=correlation_id,
                        )
            messages = await waiter.until(deadline, expected)
        return [self._decode_reply(m) for m in messages]

    def _decode_reply(self, message: Message) -> Reply:
        value = from_message(message, codecs=self._codecs)
        if not isinstance(value, Reply):
            raise TypeError(f"expected a reply, got {message.type}")
        return value
