"""One shard a member holds the lease of: reads it, hands its records out in key order,
and moves the group's checkpoint to the last record settled without a gap.

::

    reader = ShardReader(kinesis, stream, lease, sub)    # the lease came from LeaseTable
    reader.start()                 # GetShardIterator after the checkpoint, then GetRecords
    ...                            # deliveries go to the subscription's queue
    reader.lease.checkpoint        # what the next write of the lease stores

Order: records of one partition key are handed out one at a time (the next waits until
the previous is settled); records of other keys go out meanwhile, and a message without
a key waits for nothing. ``nack(delay)`` keeps the key blocked and hands the same record
out again after the delay, one attempt later. Each hand-out counts in the lease's
``attempts`` (written with the next renewal), so the count survives a restart, a
handover and a crash in the handler. The checkpoint only passes a record once
it and every record before it in the shard are settled (acks may come out of order
across keys), so after a takeover the new owner starts at the first unsettled record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from servicewire.messaging.channels import DEFAULT_SHARDS, shard_for
from servicewire.messaging.message import Message
from servicewire.transports.base import Delivery
from servicewire.transports.kinesis.client import AWS_ERRORS, error_code, is_missing
from servicewire.transports.kinesis.leases import SHARD_END, Lease
from servicewire.transports.kinesis.options import KinesisOptions
from servicewire.transports.kinesis.records import from_record

log = logging.getLogger("servicewire.transports.kinesis.shard")

_BACKOFF_LIMIT = 5.0
BACKLOG_LIMIT = 10_000
"""Records a reader keeps behind an unsettled one (a retry waiting out a long delay
holds the checkpoint): at this many it stops reading the shard until the head moves."""


class Member(Protocol):
    """What a reader needs of the subscription it reads for."""

    channel: str
    group: str
    options: KinesisOptions
    room: asyncio.Event
    """Set while the member holds fewer records than its prefetch."""
    ready: asyncio.Queue[KinesisDelivery | None]
    """Deliveries for the member's iterator."""

    def took(self, count: int) -> None: ...

    def room_left(self) -> int: ...

    def shard_gone(self, reader: ShardReader) -> None: ...


class Entry:
    """One record read from the shard, until the checkpoint passes it."""

    __slots__ = ("attempt", "key", "message", "sequence", "settled")

    def __init__(self, sequence: str, key: str | None, message: Message, attempt: int) -> None:
        self.sequence = sequence
        self.key = key
        self.message = message
        self.attempt = attempt
        self.settled = False


class KinesisDelivery(Delivery):
    """A record handed to the handler; settling it settles its entry."""

    __slots__ = ("_reader", "entry", "revoked", "taken")

    def __init__(self, reader: ShardReader, entry: Entry) -> None:
        shard = shard_for(entry.message.partition_key, DEFAULT_SHARDS, entry.message.id)
        super().__init__(entry.message, entry.attempt, shard)
        self._reader = reader
        self.entry = entry
        self.taken = False
        """The subscription's iterator gave it to the handler."""
        self.revoked = False
        """Settled for the handler by the transport (its shard moved, or it was retried)."""

    async def ack(self) -> None:
        self._reader.ack(self)

    async def nack(self, delay: float = 0.0) -> None:
        self._reader.nack(self, delay)


class ShardReader:
    """The reading and settling of one leased shard for one member."""

    def __init__(
        self,
        kinesis: Any,
        stream: str,
        lease: Lease,
        sub: Member,
        *,
        on_settled: Callable[[], None],
    ) -> None:
        self.kinesis = kinesis
        self.stream = stream
        self.lease = lease
        self.shard = lease.shard
        self._sub = sub
        self._on_settled = on_settled
        self._options = sub.options
        self.entries: deque[Entry] = deque()
        self._busy: set[str] = set()
        self._held: dict[str, deque[Entry]] = {}
        self._out: dict[Entry, KinesisDelivery] = {}  # handed out, not settled
        self._retries: dict[Entry, asyncio.TimerHandle] = {}
        self._task: asyncio.Task[None] | None = None
        self.closed_shard = False
        """ListShards says the shard is closed (split or merged): it ends."""
        self.ending: str | None = None
        self.ended = False
        """Every record of the closed shard has been read."""
        self.draining = False
        self.stopped = False
        self.dirty = False
        """The checkpoint or the attempts changed since the last write of the lease."""
        self._backlog = asyncio.Event()
        self._backlog.set()

    # Reading ----------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(
            self._read(), name=f"kinesis-read:{self._sub.channel}/{self._sub.group}/{self.shard}"
        )

    async def _iterator(self, after: str | None) -> str | None:
        request: dict[str, Any] = {"StreamName": self.stream, "ShardId": self.shard}
        if after is None:
            request["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["StartingSequenceNumber"] = after
        answer = await self.kinesis.get_shard_iterator(**request)
        iterator = answer.get("ShardIterator")
        return str(iterator) if iterator else None

    async def _read(self) -> None:
        checkpoint = self.lease.checkpoint
        if checkpoint == SHARD_END:
            self.ended = True
            return
        last = checkpoint
        iterator: str | None = None
        failures = 0
        while not self.stopped and not self.draining:
            await self._sub.room.wait()
            await self._backlog.wait()
            if self.stopped or self.draining:
                return
            try:
                if iterator is None:
                    iterator = await self._iterator(last)
                    if iterator is None:
                        self._end()
                        return
                answer = await self.kinesis.get_records(
                    ShardIterator=iterator,
                    Limit=max(1, min(self._options.batch, self._sub.room_left())),
                )
            except AWS_ERRORS as exc:
                if error_code(exc) == "ExpiredIteratorException":
                    iterator = None
                    continue
                if is_missing(exc):
                    log.info("kinesis: %s of %s is gone", self.shard, self.stream)
                    self._sub.shard_gone(self)
                    return
                failures += 1
                log.warning("kinesis: GetRecords on %s failed (%s); retrying", self.shard, exc)
                await asyncio.sleep(min(_BACKOFF_LIMIT, 0.1 * 2**failures))
                iterator = None
                continue
            failures = 0
            records = answer.get("Records") or []
            for raw in records:
                last = str(raw["SequenceNumber"])
                self._arrived(raw)
            iterator = answer.get("NextShardIterator")
            if iterator is None or (not records and self._at_end(last)):
                self._end()
                return
            if not records or answer.get("MillisBehindLatest", 0) == 0:
                await asyncio.sleep(self._options.poll_interval)

    def _at_end(self, last: str | None) -> bool:
        if not self.closed_shard:
            return False
        if self.ending is None or last is None:
            return True
        return int(last) >= int(self.ending)

    def _end(self) -> None:
        self.ended = True
        self._advance()

    def _arrived(self, raw: dict[str, Any]) -> None:
        sequence = str(raw["SequenceNumber"])
        message = from_record(raw, channel=self._sub.channel, shard=self.shard)
        attempt = self.lease.attempts.get(sequence, 0) + 1
        entry = Entry(sequence, message.partition_key, message, attempt)
        self.entries.append(entry)
        if len(self.entries) >= BACKLOG_LIMIT:
            self._backlog.clear()
        self._sub.took(1)
        if entry.key is not None and (entry.key in self._busy or entry.key in self._held):
            self._held.setdefault(entry.key, deque()).append(entry)
        else:
            self._hand_out(entry)

    def _hand_out(self, entry: Entry) -> None:
        if entry.key is not None:
            self._busy.add(entry.key)
        if self.draining or self.stopped:
            return
        self._give(entry)

    def _give(self, entry: Entry) -> None:
        """Hand ``entry`` out, counting the attempt in the lease first: written with the
        next renewal, so a record whose handler kills the process is counted too."""
        delivery = KinesisDelivery(self, entry)
        self._out[entry] = delivery
        self.lease.attempts[entry.sequence] = entry.attempt
        self.dirty = True
        self._sub.ready.put_nowait(delivery)

    def _uncount(self, entry: Entry) -> None:
        """``entry``'s latest attempt never reached the handler (revoked before it was
        taken): take it back from the count."""
        if entry.attempt > 1:
            self.lease.attempts[entry.sequence] = entry.attempt - 1
        else:
            self.lease.attempts.pop(entry.sequence, None)

    # Settling ---------------------------------------------------------------------------

    def ack(self, delivery: KinesisDelivery) -> None:
        entry = delivery.entry
        if delivery.revoked or self._out.get(entry) is not delivery or entry.settled:
            return
        del self._out[entry]
        entry.settled = True
        self.lease.attempts.pop(entry.sequence, None)  # its count matters no more
        self._sub.took(-1)
        if entry.key is not None:
            self._busy.discard(entry.key)
            waiting = self._held.get(entry.key)
            if waiting:
                self._hand_out(waiting.popleft())
                if not waiting:
                    del self._held[entry.key]
        self._advance()
        self._on_settled()

    def nack(self, delivery: KinesisDelivery, delay: float) -> None:
        entry = delivery.entry
        if delivery.revoked or self._out.get(entry) is not delivery or entry.settled:
            return
        del self._out[entry]
        delivery.revoked = True
        self.lease.attempts[entry.sequence] = entry.attempt
        self.dirty = True
        entry.attempt += 1
        loop = asyncio.get_running_loop()
        self._retries[entry] = loop.call_later(max(0.0, delay), self._retry, entry)
        self._on_settled()

    def _retry(self, entry: Entry) -> None:
        self._retries.pop(entry, None)
        if self.stopped or self.draining or entry.settled:
            return
        self._give(entry)

    def _advance(self) -> None:
        """Move the checkpoint over the settled records at the head of the shard."""
        moved = False
        while self.entries and self.entries[0].settled:
            entry = self.entries.popleft()
            self.lease.checkpoint = entry.sequence
            self.lease.attempts.pop(entry.sequence, None)
            moved = True
        if self.ended and not self.entries and self.lease.checkpoint != SHARD_END:
            self.lease.checkpoint = SHARD_END
            self.lease.attempts.clear()
            moved = True
        if moved:
            self.dirty = True
            if len(self.entries) < BACKLOG_LIMIT:
                self._backlog.set()

    @property
    def finished(self) -> bool:
        """A closed shard fully read and settled: its children may start."""
        return self.lease.checkpoint == SHARD_END

    # Giving the shard up ----------------------------------------------------------------

    def drain(self) -> None:
        """Stop handing out; revoke what the handler has not taken yet."""
        self.draining = True
        for entry, delivery in list(self._out.items()):
            if not delivery.taken:
                delivery.revoked = True
                del self._out[entry]
                self._uncount(entry)
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()
        if self._task is not None:
            self._task.cancel()

    @property
    def quiet(self) -> bool:
        """Draining and nothing left with the handler: the lease may be released."""
        return self.draining and not self._out

    def abandon(self) -> None:
        """Stop handing out and holding: anything still out is revoked (it comes back
        to the group through the next owner), and the member's room is freed."""
        if self.stopped:
            return
        self.drain()
        self.stopped = True
        for entry, delivery in self._out.items():
            delivery.revoked = True
            if not delivery.taken:
                self._uncount(entry)
        self._out.clear()
        unsettled = sum(1 for e in self.entries if not e.settled)
        self._sub.took(-unsettled)
        self.entries.clear()
        self._held.clear()
        self._busy.clear()

    async def stop(self) -> None:
        """:meth:`abandon`, then wait for the reading task to end."""
        self.abandon()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task
