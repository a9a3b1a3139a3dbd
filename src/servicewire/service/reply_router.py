"""Reading one instance's reply channel and handing each reply to the request waiting for it.

A reply that cannot be settled (a forged signature, an ack the broker connection drops)
is logged and routing goes on: one bad delivery must not leave every later request
waiting for a timeout (after a failed ack the router leaves and joins again, since an
unsettled reply holds the channel's only shard). When the subscription itself breaks,
the router stops with a log line, and the next :meth:`ReplyRouter.ensure_running`
notices and subscribes again; if that fails, the caller gets the cause at once::

    router = ReplyRouter("order-service.replies.3f2a", "3f2a", pending, authenticity)
    await router.ensure_running(transport)    # before each request is sent
    ...
    await router.close()                      # when the service stops: deletes the channel

The reply channel belongs to this instance alone, so :meth:`ReplyRouter.close` deletes
it from the broker (:meth:`~servicewire.transports.base.Transport.tear_down`); a
crashed instance's is removed by the broker where it can (docs/services.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from servicewire.security.identity import MessageAuthenticity
from servicewire.security.signing import SignatureError
from servicewire.service.requests import PendingReplies
from servicewire.transports import Delivery, Subscription, Transport

# The name the service module logged under before this code moved here.
log = logging.getLogger("servicewire.service.service")

_DELETE_TIMEOUT = 10.0  # seconds: a stop does not wait longer for a broker that is gone


class ReplyRouter:
    """The task that reads one reply channel as one group and routes what arrives."""

    def __init__(
        self,
        channel: str,
        group: str,
        pending: PendingReplies,
        authenticity: MessageAuthenticity,
    ) -> None:
        self.channel = channel
        self._group = group
        self._pending = pending
        self._authenticity = authenticity
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._transport: Transport | None = None  # where the channel was declared

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def ensure_running(self, transport: Transport) -> None:
        """Subscribe and start routing, unless already doing so; raises when it cannot."""
        if self.running:
            return
        if self._task is not None:
            log.warning("reply router of %s had stopped; subscribing again", self.channel)
            await self._leave()
        sub = await transport.subscribe(self.channel, self._group)
        self._transport = transport
        self._subscription = sub
        name = f"servicewire-replies-{self._group}"
        self._task = asyncio.create_task(self._route(sub), name=name)

    async def _route(self, sub: Subscription) -> None:
        try:
            while True:
                async for delivery in sub:
                    if not await self._settle(delivery):
                        break
                else:
                    return  # the subscription ended: it was closed
                sub = await self._rejoin(sub)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Logged here, not re-raised: nobody awaits this task but close(), and the
            # next request subscribes again (ensure_running).
            log.exception("reply router of %s stopped: its subscription failed", self.channel)

    async def _settle(self, delivery: Delivery) -> bool:
        """Route one reply and ack it; ``False`` when the ack failed (logged)."""
        message = delivery.message
        try:
            self._authenticity.check(message)
        except SignatureError as exc:
            # A forged reply must not complete a request; nobody else reads it.
            log.warning("dropped reply %s: signature: %s", message.id, exc)
        else:
            self._pending.deliver(message)
        try:
            await delivery.ack()
        except Exception:
            # The waiter has its reply already; an unacked reply comes back at worst,
            # and is then dropped as late or duplicate.
            log.exception("ack of reply %s on %s failed; routing goes on", message.id, self.channel)
            return False
        return True

    async def _rejoin(self, sub: Subscription) -> Subscription:
        """Leave and join again after a failed ack.

        A reply channel has one shard, and a shard's next message waits until the
        previous one is settled: an unsettled reply would hold every later one. Leaving
        hands it back to the broker (it comes again, and is dropped as a duplicate).
        """
        try:
            await sub.close()
        except Exception:
            log.warning("leaving the reply channel %s failed", self.channel, exc_info=True)
        assert self._transport is not None
        self._subscription = None
        fresh = await self._transport.subscribe(self.channel, self._group)
        self._subscription = fresh
        return fresh

    async def _leave(self) -> None:
        """Close the subscription of a router that stopped by itself (best effort)."""
        sub, self._subscription, self._task = self._subscription, None, None
        if sub is not None:
            try:
                await sub.close()
            except Exception:
                log.warning(
                    "closing the old reply subscription of %s failed",
                    self.channel,
                    exc_info=True,
                )

    async def close(self) -> None:
        """Stop routing, leave the reply channel and delete it; raises if leaving fails.

        Replies still on their way are lost: nobody waits for them any more.
        """
        task, sub, transport = self._task, self._subscription, self._transport
        self._task, self._subscription, self._transport = None, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if sub is not None:
                await sub.close()
        finally:
            if transport is not None:
                await self._delete(transport)

    async def _delete(self, transport: Transport) -> None:
        """Delete the reply channel from the broker; a failure is only logged, since the
        broker removes an abandoned reply channel by itself (docs/services.md)."""
        try:
            async with asyncio.timeout(_DELETE_TIMEOUT):
                await transport.tear_down(self.channel, [self._group])
        except Exception:
            log.warning("deleting the reply channel %s failed", self.channel, exc_info=True)
