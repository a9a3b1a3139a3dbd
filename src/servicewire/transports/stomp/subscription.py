"""One member of a group on ActiveMQ over STOMP: its queue, per-key order, retries.

The member subscribes to its group's queue (:func:`.names.group_queue`) with
``ack: client-individual`` and ``activemq.prefetchSize`` = ``prefetch``. ActiveMQ's
message groups (``JMSXGroupID`` = partition key) give each key to one consumer of the
queue at a time and in order, so members compete while a key stays in order; the broker
moves a key to another member when its owner leaves.

What the broker does not do, the member does:

* the broker sends a key's next messages before the previous one is acked (prefetch),
  so the member hands out one message per key at a time and keeps the rest back;
* ``nack(delay)`` keeps the message unacked here and hands it out again after
  ``delay`` with ``attempt`` one higher. STOMP's NACK cannot be used: ActiveMQ takes
  it as a poison acknowledgement and dead-letters the message at once. Keeping it also
  keeps its place: a key's later messages wait behind it.

Attempts. ActiveMQ 5 tells a STOMP consumer only *whether* a message was delivered
before (``redelivered: true``), not how often, so a count that must outlive the member
travels in the message (:data:`servicewire.messaging.headers.ATTEMPT`). Closing with a
retry waiting, the member gives it back *with its count* when nothing later of its key
is held here: a copy carrying the next attempt number goes to the group queue,
confirmed, and the original is acked (a restart between attempts continues the count).
When later messages of the key are held, the member unsubscribes with the retry unacked
instead: ActiveMQ returns the key's messages in order to the next member, which counts
one more attempt from the ``redelivered`` flag (a member that retried several times
before leaving is counted once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Protocol, TypeVar, cast

import stompman

from servicewire.messaging import headers as h
from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.stomp.headers import attempt_of, decode, encode
from servicewire.transports.stomp.names import group_queue
from servicewire.transports.stomp.options import StompOptions

T = TypeVar("T")


class Owner(Protocol):
    """What a subscription uses of its transport (:class:`.transport.StompTransport`)."""

    @property
    def client(self) -> stompman.Client: ...

    @property
    def options(self) -> StompOptions: ...

    async def guard(self, call: Awaitable[T]) -> T: ...

    def _forget(self, sub: StompSubscription) -> None: ...


log = logging.getLogger(__name__)

_GIVE_BACK_TIMEOUT = 10.0
GIVER = "sw_giveback"
"""Frame header (a message property for ActiveMQ's selectors) naming the member that
gave a copy back; that member's selector excludes it."""


class StompDelivery(Delivery):
    """A MESSAGE frame handed to the application, to be acked or retried once."""

    __slots__ = ("_frame", "_settled", "_sub")

    def __init__(
        self,
        message: Message,
        attempt: int,
        frame: stompman.AckableMessageFrame,
        sub: StompSubscription,
    ) -> None:
        super().__init__(message, attempt)
        self._frame = frame
        self._sub = sub
        self._settled = False

    @property
    def key(self) -> str | None:
        return self.message.partition_key

    def again(self) -> StompDelivery:
        """The same frame, handed out once more (one attempt later)."""
        return StompDelivery(self.message, self.attempt + 1, self._frame, self._sub)

    async def ack(self) -> None:
        await self._sub._ack(self)

    async def nack(self, delay: float = 0.0) -> None:
        await self._sub._retry(self, delay)


class StompSubscription(Subscription):
    """A member of ``group`` on ``channel``: iterate it for deliveries."""

    def __init__(self, transport: Owner, channel: str, group: str, prefetch: int) -> None:
        self.channel = channel
        self.group = group
        self.queue = group_queue(channel, group)
        self.prefetch = max(1, prefetch)
        self._transport = transport
        self._ready: asyncio.Queue[StompDelivery | None] = asyncio.Queue()
        self._busy: set[str] = set()  # keys with a delivery out or a retry waiting
        self._waiting: dict[str, deque[StompDelivery]] = {}
        self._retries: dict[StompDelivery, asyncio.TimerHandle] = {}
        self._stomp: stompman.ManualAckSubscription | None = None
        self._closed = False
        self.member_id = uuid.uuid4().hex

    async def start(self) -> None:
        client = self._transport.client
        self._stomp = await client.subscribe_with_manual_ack(
            self.queue,
            self._on_frame,
            ack="client-individual",
            headers={
                "activemq.prefetchSize": str(self.prefetch),
                # Never our own give-back copies (see _give_back).
                "selector": f"{GIVER} IS NULL OR {GIVER} <> '{self.member_id}'",
            },
            receipt_timeout=self._transport.options.receipt_timeout,
        )

    async def _on_frame(self, frame: stompman.AckableMessageFrame) -> None:
        # stompman runs this in a task per frame, started in arrival order; nothing here
        # awaits, so the order of admission is the order the broker sent.
        if self._closed:
            return  # left unacked: the unsubscribe gives it back to the queue
        # Frame headers are text already (stompman types them as a TypedDict).
        headers = cast(Mapping[str, str], frame.headers)
        message = decode(headers, frame.body, self.channel)
        self._admit(StompDelivery(message, attempt_of(message, headers), frame, self))

    def _admit(self, delivery: StompDelivery) -> None:
        key = delivery.key
        if key is None:
            self._ready.put_nowait(delivery)
        elif key in self._busy:
            self._waiting.setdefault(key, deque()).append(delivery)
        else:
            self._busy.add(key)
            self._ready.put_nowait(delivery)

    def _next_of(self, key: str | None) -> None:
        """The key's previous delivery is settled: hand out its next one, if held."""
        if key is None:
            return
        later = self._waiting.get(key)
        if later:
            self._ready.put_nowait(later.popleft())
            if not later:
                del self._waiting[key]
        else:
            self._busy.discard(key)

    async def _ack(self, delivery: StompDelivery) -> None:
        if delivery._settled:
            return
        delivery._settled = True
        await self._transport.guard(delivery._frame.ack())
        self._next_of(delivery.key)

    async def _retry(self, delivery: StompDelivery, delay: float) -> None:
        if delivery._settled:
            return
        delivery._settled = True
        again = delivery.again()
        if delay <= 0:
            self._ready.put_nowait(again)
            return
        loop = asyncio.get_running_loop()
        self._retries[again] = loop.call_later(delay, self._due, again)

    def _due(self, again: StompDelivery) -> None:
        if self._retries.pop(again, None) is not None and not self._closed:
            self._ready.put_nowait(again)

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self._closed:
            delivery = await self._ready.get()
            if delivery is None or self._closed:
                return
            yield delivery

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        waiting = list(self._retries)
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        for again in waiting:
            if again.key is None or not self._waiting.get(again.key):
                await self._give_back(again)
        if self._stomp is not None:
            # Every unacked frame goes back to the queue, in order, to the next member.
            with contextlib.suppress(stompman.Error, OSError):
                await within(self._stomp.unsubscribe(), 10.0)
        self._ready.put_nowait(None)
        self._transport._forget(self)

    async def _give_back(self, again: StompDelivery) -> None:
        """Put a copy carrying ``again.attempt`` into the group queue; ack the original."""
        copy = again.message.with_headers(**{h.ATTEMPT: str(again.attempt)})
        # The copy must not reach this closing member (it still has prefetch room): it
        # would come back from the unsubscribe marked ``redelivered``, one attempt too
        # many. Its selector leaves out copies marked with its id.
        frame = encode(copy)
        frame[GIVER] = self.member_id
        try:
            # Bounded: a broker that is down must not hold close() (the original, unacked,
            # comes back anyway).
            sending = self._transport.client.send(
                copy.payload,
                self.queue,
                headers=frame,
                receipt_timeout=self._transport.options.receipt_timeout,
            )
            await within(sending, _GIVE_BACK_TIMEOUT)
        except (stompman.Error, OSError, TimeoutError) as exc:
            # Unacked, it still comes back (one attempt counted by ``redelivered``).
            log.warning("could not give %s back with its attempt: %s", copy.id, exc)
            return
        with contextlib.suppress(stompman.Error, OSError):
            await again._frame.ack()
