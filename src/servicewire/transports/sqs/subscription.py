"""One member of a group: long-polls the group's queue, holds what it received, settles it.

::

    sub = SqsSubscription(client, url, "orders", "billing", options=opts, prefetch=64)
    await sub.start()
    async for delivery in sub:
        await delivery.ack()              # DeleteMessage
        # or: await delivery.nack(1.0)    # again after 1 s, before the next of its key

What SQS gives and what this class adds:

* On a FIFO queue SQS hands out nothing more of a message group (= partition key) while
  one of its messages is in flight, but one receive may return *several* messages of a
  group, in order. The member hands out the first and holds the rest until it is
  settled, so the next message of a key never reaches the handler before the previous
  one is acked.
* Visibility: everything received is renewed to ``visibility_timeout`` every third of
  it while the member holds it, so a slow handler keeps its message and a dead member's
  messages return after at most that long.
* ``nack(delay)`` keeps the message in flight and hands it out again after ``delay``
  (its attempt one higher), so the messages held behind it keep waiting and SQS's
  receive count is not inflated by messages that were never handled. A delay above
  :data:`LOCAL_DELAY_LIMIT` is SQS's own: the message's visibility becomes the delay
  and the messages held behind it go back first.
* ``close`` returns what it holds: later messages visible at once, a waiting retry
  after what is left of its delay; another member takes over in the same order.
* ``attempt`` is SQS's ``ApproximateReceiveCount`` plus the local retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS, shard_for
from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.sqs.client import AWS_ERRORS, is_missing_queue
from servicewire.transports.sqs.headers import from_sqs
from servicewire.transports.sqs.options import SqsOptions

log = logging.getLogger("servicewire.transports.sqs.subscription")

LOCAL_DELAY_LIMIT = 900.0
"""Longest retry delay a member waits for itself, the message kept in flight."""
_SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "MessageGroupId"]
_BACKOFF_LIMIT = 5.0


class SqsDelivery(Delivery):
    """A received message; its receipt handle settles it."""

    __slots__ = ("_sub", "due", "group_id", "receipt", "settled")

    def __init__(
        self,
        sub: SqsSubscription,
        message: Message,
        *,
        attempt: int,
        shard: int | None,
        receipt: str,
        group_id: str | None,
    ) -> None:
        super().__init__(message, attempt, shard)
        self._sub = sub
        self.receipt = receipt
        self.group_id = group_id
        self.settled = False
        self.due: float | None = None
        """When a local retry hands it out again (monotonic), while one waits."""

    async def ack(self) -> None:
        await self._sub._ack(self)

    async def nack(self, delay: float = 0.0) -> None:
        await self._sub._nack(self, delay)


class SqsSubscription(Subscription):
    """A member of ``group`` on ``channel``, reading the group's queue at ``url``."""

    def __init__(
        self,
        client: Any,
        url: str,
        channel: str,
        group: str,
        *,
        options: SqsOptions,
        prefetch: int = 64,
        on_close: Callable[[SqsSubscription], None] | None = None,
    ) -> None:
        self.channel = channel
        self.group = group
        self.url = url
        self._client = client
        self._options = options
        self._fifo = options.queue_type == "fifo"
        self._prefetch = max(1, prefetch)
        self._on_close = on_close
        self._ready: asyncio.Queue[SqsDelivery | None] = asyncio.Queue()
        self._unsettled: dict[str, SqsDelivery] = {}  # receipt -> what this member holds
        self._busy: set[str] = set()  # message groups with a delivery handed out
        self._held: dict[str, deque[SqsDelivery]] = {}  # waiting behind the busy one
        self._retries: dict[str, asyncio.TimerHandle] = {}  # receipt -> local retry
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._deletes: list[str] = []  # receipts acked, their DeleteMessage not sent yet
        self._deleting = asyncio.Event()
        self.failure: TransportError | None = None
        """Why the member stopped receiving before it was closed (its queue is gone)."""

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._poll(), name=f"sqs-poll:{self.channel}/{self.group}"),
            asyncio.create_task(self._renew(), name=f"sqs-renew:{self.channel}/{self.group}"),
            asyncio.create_task(self._delete(), name=f"sqs-ack:{self.channel}/{self.group}"),
        ]

    # Receiving --------------------------------------------------------------------------

    async def _poll(self) -> None:
        failures = 0
        while not self._closed:
            await self._room.wait()
            if self._closed:
                return
            want = min(10, self._prefetch - len(self._unsettled))
            try:
                answer = await self._client.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=max(1, want),
                    WaitTimeSeconds=self._options.wait_time,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
                )
            except AWS_ERRORS as exc:
                if is_missing_queue(exc):
                    # Deleted (delete_group), or an emulator restarted empty: this member
                    # has nothing left to read, and says so rather than wait forever.
                    self.failure = TransportError(
                        f"sqs: the queue of group {self.group!r} on {self.channel!r} is gone"
                    )
                    self._ready.put_nowait(None)
                    return
                failures += 1
                log.warning("sqs: receive on %s failed (%s); retrying", self.channel, exc)
                await asyncio.sleep(min(_BACKOFF_LIMIT, 0.1 * 2**failures))
                continue
            failures = 0
            for raw in answer.get("Messages", ()):
                self._arrived(raw)

    def _arrived(self, raw: dict[str, Any]) -> None:
        message = from_sqs(raw, channel=self.channel)
        system = raw.get("Attributes") or {}
        group_id = system.get("MessageGroupId") if self._fifo else None
        shard = shard_for(message.partition_key, DEFAULT_SHARDS, message.id)
        delivery = SqsDelivery(
            self,
            message,
            attempt=int(system.get("ApproximateReceiveCount", "1")),
            shard=shard if self._fifo else None,
            receipt=str(raw["ReceiptHandle"]),
            group_id=group_id,
        )
        self._unsettled[delivery.receipt] = delivery
        self._update_room()
        if self._closed:
            return  # close() returns it
        if group_id is not None and (group_id in self._busy or group_id in self._held):
            self._held.setdefault(group_id, deque()).append(delivery)
        else:
            self._hand_out(delivery)

    def _hand_out(self, delivery: SqsDelivery) -> None:
        if delivery.group_id is not None:
            self._busy.add(delivery.group_id)
        self._ready.put_nowait(delivery)

    def _update_room(self) -> None:
        if len(self._unsettled) < self._prefetch or self._closed:
            self._room.set()
        else:
            self._room.clear()

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            delivery = await self._ready.get()
            if delivery is None:
                self._ready.put_nowait(None)  # every iterator ends
                if self.failure is not None and not self._closed:
                    raise self.failure
                return
            if not delivery.settled:
                yield delivery

    # Settling ---------------------------------------------------------------------------

    def _settled(self, delivery: SqsDelivery) -> None:
        """``delivery`` is done here: free its place, hand out the next of its group."""
        delivery.settled = True
        self._unsettled.pop(delivery.receipt, None)
        self._update_room()
        group_id = delivery.group_id
        if group_id is None:
            return
        self._busy.discard(group_id)
        waiting = self._held.get(group_id)
        if waiting:
            self._hand_out(waiting.popleft())
            if not waiting:
                del self._held[group_id]

    async def _ack(self, delivery: SqsDelivery) -> None:
        """Settle ``delivery`` now; its ``DeleteMessage`` goes out with the next batch.

        Like an AMQP ack, it does not wait for the broker: no await, so a caller
        cancelled around it never leaves a message deleted but "not acked". A delete
        that fails leaves the message to come back after its visibility timeout (at
        least once), still before the next message of its key.
        """
        if delivery.settled:
            return
        self._settled(delivery)
        self._deletes.append(delivery.receipt)
        self._deleting.set()

    async def _delete(self) -> None:
        """Send the acks' deletes, up to ten a request, until closed and drained."""
        while True:
            await self._deleting.wait()
            self._deleting.clear()
            while self._deletes:
                chunk, self._deletes = self._deletes[:10], self._deletes[10:]
                entries = [{"Id": str(n), "ReceiptHandle": r} for n, r in enumerate(chunk)]
                try:
                    answer = await self._client.delete_message_batch(
                        QueueUrl=self.url, Entries=entries
                    )
                except AWS_ERRORS as exc:
                    log.warning("sqs: %d acks on %s failed: %s", len(chunk), self.channel, exc)
                    continue
                for failed in answer.get("Failed", ()):
                    # ReceiptHandleIsInvalid: its visibility ran out and SQS handed it
                    # out again (the newer receipt settles it), or it is gone already.
                    log.debug("sqs: ack refused on %s: %s", self.channel, failed)
            if self._closed:
                return

    async def _nack(self, delivery: SqsDelivery, delay: float) -> None:
        if delivery.settled or self._closed:
            return
        delay = max(0.0, delay)
        if delay <= LOCAL_DELAY_LIMIT:
            delivery.due = time.monotonic() + delay
            loop = asyncio.get_running_loop()
            self._retries[delivery.receipt] = loop.call_later(delay, self._retry, delivery)
            return
        # A long delay: SQS keeps the message, invisible for the delay. What was held
        # behind it goes back first, while it still blocks its group.
        self._settled_quietly(delivery)
        await self._return(self._take_held(delivery.group_id), 0)
        await self._return([delivery], min(43_200, math.ceil(delay)))

    def _retry(self, delivery: SqsDelivery) -> None:
        """Hand ``delivery`` out again, one attempt later (its group stays busy)."""
        self._retries.pop(delivery.receipt, None)
        if self._closed or delivery.settled:
            return
        delivery.settled = True  # this object is done; its successor takes the receipt
        again = SqsDelivery(
            self,
            delivery.message,
            attempt=delivery.attempt + 1,
            shard=delivery.shard,
            receipt=delivery.receipt,
            group_id=delivery.group_id,
        )
        self._unsettled[again.receipt] = again
        self._ready.put_nowait(again)

    def _settled_quietly(self, delivery: SqsDelivery) -> None:
        delivery.settled = True
        self._unsettled.pop(delivery.receipt, None)
        if delivery.group_id is not None:
            self._busy.discard(delivery.group_id)
        self._update_room()

    def _take_held(self, group_id: str | None) -> list[SqsDelivery]:
        if group_id is None:
            return []
        held = list(self._held.pop(group_id, ()))
        for delivery in held:
            self._settled_quietly(delivery)
        return held

    async def _return(self, deliveries: Iterable[SqsDelivery], visibility: int) -> None:
        """Make ``deliveries`` visible to the group again after ``visibility`` seconds."""
        await self._change_visibility([(d.receipt, visibility) for d in deliveries])

    async def _change_visibility(self, entries: list[tuple[str, int]]) -> None:
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            request = [
                {"Id": str(n), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                for n, (receipt, seconds) in enumerate(chunk)
            ]
            try:
                answer = await self._client.change_message_visibility_batch(
                    QueueUrl=self.url, Entries=request
                )
            except AWS_ERRORS as exc:
                # They come back anyway once their visibility runs out.
                log.warning("sqs: visibility change on %s failed: %s", self.channel, exc)
                continue
            for failed in answer.get("Failed", ()):
                log.debug("sqs: visibility change refused: %s", failed)

    # Keeping what is held ---------------------------------------------------------------

    async def _renew(self) -> None:
        """Renew the visibility of everything held, every third of the timeout."""
        timeout = self._options.visibility_timeout
        while not self._closed:
            await asyncio.sleep(max(0.5, timeout / 3))
            receipts = list(self._unsettled)
            if receipts and not self._closed:
                await self._change_visibility([(r, timeout) for r in receipts])

    # Closing ----------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._room.set()
        poll, renew, deleter = self._tasks or (None, None, None)
        if renew is not None:
            renew.cancel()
            with contextlib.suppress(BaseException):
                await renew
        if poll is not None:
            # Let a long poll in flight end: what it brings is returned below, where a
            # cancelled request would leave it invisible for the visibility timeout.
            try:
                await within(asyncio.shield(poll), self._options.wait_time + 5)
            except (TimeoutError, asyncio.CancelledError):
                poll.cancel()
                with contextlib.suppress(BaseException):
                    await poll
            except Exception:  # the poller's own failure ended it
                log.debug("sqs: poller of %s ended with an error", self.channel, exc_info=True)
        if deleter is not None:
            # The acks made so far are sent before anything is returned.
            self._deleting.set()
            try:
                await within(asyncio.shield(deleter), 30)
            except (TimeoutError, asyncio.CancelledError):
                deleter.cancel()
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()
        now = time.monotonic()
        held = [d for queue in self._held.values() for d in queue]
        self._held.clear()
        heads = [d for d in self._unsettled.values() if d not in held]
        for delivery in [*held, *heads]:
            delivery.settled = True
        self._unsettled.clear()
        self._busy.clear()
        # Later messages of a group first, while its head still blocks the group.
        entries = [(d.receipt, 0) for d in held]
        entries += [(d.receipt, math.ceil(max(0.0, (d.due or now) - now))) for d in heads]
        with contextlib.suppress(*AWS_ERRORS):
            await self._change_visibility(entries)
        self._ready.put_nowait(None)
        if self._on_close is not None:
            self._on_close(self)
