"""``stomp://``: Apache ActiveMQ over STOMP 1.2, through stompman (asyncio).

    transport = await connect_transport("stomp://127.0.0.1:61613")

A channel is an ActiveMQ virtual topic and each group its own queue on it
(:mod:`.names`); the partition key is the message group (``JMSXGroupID``), so ActiveMQ
itself keeps a key in order with competing members; :mod:`.subscription` adds one
message per key at a time and retries that keep their place. Every publish waits for
the broker's RECEIPT of a persistent message, which ActiveMQ sends once it stored it.

What it cannot do over STOMP: remove a destination. ``delete_group`` and
``delete_channel`` read and discard every message of the queues a channel has (an
ActiveMQ queue has no purge verb on STOMP); the empty queue itself stays until the
broker removes it (its ``gcInactiveDestinations`` policy, or an operator), see
docs/transports/stomp.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import ClassVar, TypeVar

import stompman

from servicewire.errors import ConnectionFailedError, TransportError
from servicewire.messaging.channels import dead_letter_channel, is_instance_reply_channel
from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Subscription,
    Transport,
)
from servicewire.transports.stomp.headers import encode
from servicewire.transports.stomp.names import group_queue, topic
from servicewire.transports.stomp.options import endpoint
from servicewire.transports.stomp.subscription import StompSubscription

log = logging.getLogger(__name__)
T = TypeVar("T")
DLQ_GROUP = "dead-letters"  # servicewire.pipeline.deadletter.DLQ_GROUP (a layer above)


class StompTransport(Transport):
    """A connection to one ActiveMQ broker's STOMP connector."""

    scheme = "stomp"
    capabilities: ClassVar[Capabilities] = Capabilities(
        durable=True,
        persistent=True,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __init__(self, url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self.endpoint, self.options = endpoint(url)
        self._client: stompman.Client | None = None
        self._stack = AsyncExitStack()
        self._subs: set[StompSubscription] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._groups: dict[str, set[str]] = {}

    @property
    def client(self) -> stompman.Client:
        if self._client is None:
            raise TransportError("stomp transport is not connected")
        return self._client

    async def connect(self) -> None:
        where = self.endpoint
        client = stompman.Client(
            servers=[
                stompman.ConnectionParameters(
                    host=where.host, port=where.port, login=where.login, passcode=where.passcode
                )
            ],
            heartbeat=stompman.Heartbeat(1000, 1000),
            connect_retry_attempts=3,
            connect_retry_interval=1,
            connect_timeout=max(1, round(self.options.connect_timeout)),
            # Through a broker restart: keep reconnecting (and resubscribing) behind the
            # scenes; publishes meanwhile fail with TransportError and are retried by
            # their callers (the relay, the pipeline).
            keep_alive_on_connection_failure=True,
            max_concurrent_handlers=None,  # each frame handler only queues the frame
            on_error_frame=_log_error_frame,
        )
        try:
            await self._stack.enter_async_context(client)
        except (stompman.Error, OSError) as exc:
            await self._stack.aclose()
            raise ConnectionFailedError("stomp", self.url, _reason(exc)) from None
        self._client = client

    async def guard(self, call: Awaitable[T]) -> T:
        """``call``, with the client library's failures as :class:`TransportError`."""
        try:
            return await call
        except stompman.Error as exc:
            raise TransportError(f"stomp: {_reason(exc)}") from exc
        except OSError as exc:
            raise TransportError(f"stomp: {exc}") from exc

    async def _send(self, message: Message) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sending.add(task)  # close() waits for publishes in flight
        try:
            frame = encode(message)
            if is_instance_reply_channel(message.destination):
                # A reply nobody reads (its instance is gone) expires: ActiveMQ drops it,
                # and its emptied queue is then removed by the gcInactiveDestinations
                # policy (docs/transports/stomp.md). The broker compares with its clock.
                frame["expires"] = str(round((time.time() + self.options.reply_ttl) * 1000))
            await self.guard(
                self.client.send(
                    message.payload,
                    topic(message.destination),
                    headers=frame,
                    receipt_timeout=self.options.receipt_timeout,
                )
            )
        finally:
            if task is not None:
                self._sending.discard(task)

    async def declare(self, channel: str, group: str) -> None:
        """Create the group's queue: ActiveMQ makes a queue when a consumer subscribes to
        it, and from then on copies the channel's messages into it. The consumer asks
        for nothing (prefetch 0) and leaves at once."""
        queue = group_queue(channel, group)
        self._groups.setdefault(channel, set()).add(group)

        async def keep(frame: stompman.AckableMessageFrame) -> None:
            return None  # prefetch 0: never called; unacked anyway, so it stays queued

        sub = await self.guard(
            self.client.subscribe_with_manual_ack(
                queue,
                keep,
                headers={"activemq.prefetchSize": "0"},
                receipt_timeout=self.options.receipt_timeout,
            )
        )
        await self.guard(sub.unsubscribe())

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        self._groups.setdefault(channel, set()).add(group)
        sub = StompSubscription(self, channel, group, prefetch)
        await self.guard(sub.start())
        self._subs.add(sub)
        return sub

    def _forget(self, sub: StompSubscription) -> None:
        self._subs.discard(sub)

    async def close(self) -> None:
        if self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)
        for sub in list(self._subs):
            with contextlib.suppress(Exception):
                await sub.close()
        self._client = None
        with contextlib.suppress(stompman.Error, OSError, TimeoutError):
            await within(self._stack.aclose(), 10.0)

    # Cleanup ----------------------------------------------------------------------------

    async def delete_group(self, channel: str, group: str) -> bool:
        """Discard every message of the group's queue (STOMP cannot remove the queue)."""
        await self._purge(group_queue(channel, group))
        self._groups.get(channel, set()).discard(group)
        return True

    async def delete_channel(self, channel: str) -> bool:
        """Purge the channel's groups this client knows and its dead-letter channel's."""
        for name in (channel, dead_letter_channel(channel)):
            for group in sorted(self._groups.pop(name, set()) | {DLQ_GROUP}):
                await self._purge(group_queue(name, group))
        return True

    async def _purge(self, queue: str) -> int:
        """Read and ack a queue's messages until it stays quiet for ``purge_idle``."""
        got = asyncio.Event()
        count = 0

        async def discard(frame: stompman.MessageFrame) -> None:
            nonlocal count
            count += 1
            got.set()

        sub = await self.guard(
            self.client.subscribe(
                queue,
                discard,
                ack="auto",
                headers={"activemq.prefetchSize": "1000"},
                on_suppressed_exception=_ignore,
                receipt_timeout=self.options.receipt_timeout,
            )
        )
        try:
            for _ in range(100_000):  # bounded: a purge of a queue still being filled ends
                got.clear()
                try:
                    await within(got.wait(), self.options.purge_idle)
                except TimeoutError:
                    break
        finally:
            await self.guard(sub.unsubscribe())
        return count


def _ignore(exc: Exception, frame: stompman.MessageFrame) -> None:
    return None


def _log_error_frame(frame: stompman.ErrorFrame) -> None:
    log.warning("stomp broker error: %s %s", frame.headers.get("message"), frame.body[:200])


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
