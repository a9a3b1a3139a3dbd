"""Request/reply and scatter-gather from one service instance, over its own reply channel.

A request goes out in a transaction of its own with ``replyto`` set to the instance's
reply channel and a fresh correlation id; the instance subscribes to that channel on
the first request and hands each reply to the caller waiting for its correlation id
(:mod:`~.requests`)::

    calls = InstanceRequests("order-service.replies.3f2a", "3f2a", authenticity=authenticity,
                             codecs=codecs, transaction=service.transaction)
    reply = await calls.request(transport, CheckCredit(consumer_id="c-1"), timeout=5)
    replies = await calls.scatter(transport, QuoteRequested(...), timeout=2)
    ...
    await calls.close()                 # when the service stops
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from servicewire.codecs import CodecRegistry
from servicewire.codecs.serialization import from_message
from servicewire.errors import RequestTimeoutError
from servicewire.messaging.contracts import Command, Event, Reply
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Message
from servicewire.pipeline.context import Context
from servicewire.security.identity import MessageAuthenticity
from servicewire.security.signing import SignatureError
from servicewire.service.requests import PendingReplies
from servicewire.transports import Subscription, Transport

# The name the service module logged under before this code moved here.
log = logging.getLogger("servicewire.service.service")


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
        self._group = group
        self._authenticity = authenticity
        self._codecs = codecs
        self._transaction = transaction
        self._pending = PendingReplies()
        self._subscription: Subscription | None = None
        self._router: asyncio.Task[None] | None = None

    async def _ensure_subscribed(self, transport: Transport) -> None:
        if self._subscription is not None:
            return
        sub = await transport.subscribe(self.channel, self._group)
        self._subscription = sub

        async def route() -> None:
            async for delivery in sub:
                try:
                    self._authenticity.check(delivery.message)
                except SignatureError as exc:
                    # A forged reply must not complete a request; nobody else reads it.
                    log.warning("dropped reply %s: signature: %s", delivery.message.id, exc)
                else:
                    self._pending.deliver(delivery.message)
                await delivery.ack()

        self._router = asyncio.create_task(route())

    async def close(self) -> None:
        """Stop reading replies; a later request subscribes again."""
        if self._subscription is not None:
            await self._subscription.close()
        if self._router is not None:
            self._router.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._router
        self._subscription = None
        self._router = None

    async def request(
        self,
        transport: Transport,
        command: Command,
        *,
        timeout: float,
        destination: str | None,
    ) -> Reply:
        """Send ``command`` and wait for its reply up to ``timeout``; see ``Service.request``."""
        await self._ensure_subscribed(transport)
        correlation_id = new_id()
        waiter = self._pending.expect(correlation_id)
        async with self._transaction() as ctx:
            await ctx.send(
                command,
                destination=destination,
                reply_to=self.channel,
                correlation_id=correlation_id,
            )
        message = await waiter.one(timeout)
        if message is None:
            raise RequestTimeoutError(command.contract_name(), correlation_id, timeout)
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
        await self._ensure_subscribed(transport)
        correlation_id = new_id()
        waiter = self._pending.expect(correlation_id)
        deadline = time.monotonic() + timeout
        async with self._transaction() as ctx:
            if isinstance(request, Event):
                await ctx.publish(
                    request,
                    headers={
                        "replyto": self.channel,
                        "correlationid": correlation_id,
                    },
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
