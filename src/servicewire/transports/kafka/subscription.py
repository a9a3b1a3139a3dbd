"""One member of a Kafka consumer group: fetch, hand out in order, commit what is done.

A :class:`KafkaSubscription` owns one ``AIOKafkaConsumer`` that joined the group. Kafka
assigns it some partitions of the channel's topic; for each it keeps:

* a buffer of fetched records not yet handed out; when it is full the partition
  alone is paused in the client (``pause``/``resume``), so a partition held back by a
  poison message never stops the fetches of the others;
* an :class:`~servicewire.transports.kafka.offsets.OffsetTracker` of records handed
  out, so the commit is the highest *contiguous* settled offset (auto-commit is off:
  it would commit records whose handler has not finished);
* at most one unsettled delivery when ``ordered`` (the default), which is how the next
  record of a partition waits for the previous one to be settled;
* the attempt count of records nacked here, and a "not before" time after
  ``nack(delay)``: the record goes back to the head of the partition's buffer, so it is
  redelivered before anything after it and order holds. Each nack also writes the
  partition's counts to the group's attempts record
  (:mod:`~servicewire.transports.kafka.attempts`), and a newly assigned partition reads
  them back before it hands anything out, so the count survives a rebalance.

A committer task coalesces watermarks into one OffsetCommit request at a time. On a
rebalance the revoked partitions stop handing out, wait briefly (``revoke_grace_ms``)
for deliveries in flight, commit what is contiguous and forget the rest: the next owner
reads from the committed offset, so an unsettled record is redelivered, never lost::

    sub = await transport.subscribe("orders", "billing", prefetch=64)
    async for delivery in sub:
        await delivery.ack()
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from servicewire.timeouts import within
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.kafka.attempts import AttemptsLog
from servicewire.transports.kafka.closing import stop_consumer
from servicewire.transports.kafka.headers import from_kafka
from servicewire.transports.kafka.membership import Rebalance
from servicewire.transports.kafka.offsets import OffsetTracker
from servicewire.urls import redact_text

log = logging.getLogger("servicewire.transports.kafka.transport")

_FETCH_TIMEOUT_MS = 100
_FETCH_RECORDS = 512  # per getmany: a bounded slice of work between two hand-outs
_COMMIT_TIMEOUT = 10.0


class _Partition:
    """This member's state for one assigned partition."""

    __slots__ = (
        "attempts",
        "buffer",
        "buffered_bytes",
        "draining",
        "failed",
        "gone",
        "inflight",
        "loading",
        "not_before",
        "paused",
        "tp",
        "tracker",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.buffer: deque[Any] = deque()  # aiokafka ConsumerRecord, oldest first
        self.buffered_bytes = 0  # the payloads in ``buffer``
        self.tracker = OffsetTracker()
        self.inflight = 0
        self.not_before = 0.0
        self.attempts: dict[int, int] = {}  # offset -> deliveries made (handed out)
        self.failed: dict[int, int] = {}  # offset -> attempts, of records nacked, unsettled
        self.loading = False  # reading the attempts record: hand out nothing yet
        self.draining = False  # revoked: hand out nothing more, let in-flight settle
        self.gone = False  # revoked and forgotten: settling its deliveries does nothing
        self.paused = False  # its buffer is full: the client fetches nothing more for it

    def requeue(self, record: Any) -> None:
        """Put ``record`` back in offset order (the head, when one is in flight)."""
        offsets = [r.offset for r in self.buffer]
        self.buffer.insert(bisect.bisect_left(offsets, record.offset), record)
        self.buffered_bytes += _size(record)


def _size(record: Any) -> int:
    return len(record.value) if record.value is not None else 0


class KafkaDelivery(Delivery):
    __slots__ = ("_part", "_record", "_settled", "_sub")

    def __init__(self, sub: KafkaSubscription, part: _Partition, record: Any, attempt: int) -> None:
        fallback = f"{record.topic}-{record.partition}-{record.offset}"
        message = from_kafka(record.headers or (), record.value, fallback_id=fallback)
        super().__init__(message, attempt, record.partition)
        self._sub = sub
        self._part = part
        self._record = record
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._sub._settle(self, requeue=False, delay=0.0)

    async def nack(self, delay: float = 0.0) -> None:
        if not self._settled:
            self._settled = True
            self._sub._settle(self, requeue=True, delay=delay)
            await self._sub._record_attempts(self._part)


class KafkaSubscription(Subscription):
    """A member of ``group`` reading the topic of ``channel``."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        channel: str,
        group: str,
        topic: str,
        *,
        prefetch: int,
        revoke_grace_ms: int,
        buffer_records: int,
        buffer_bytes: int,
        commit_interval_ms: int,
        on_close: Callable[[KafkaSubscription], None],
        attempts: AttemptsLog | None = None,
        ordered: bool = True,
    ) -> None:
        self.channel = channel
        self.group = group
        self.topic = topic
        self.prefetch = max(1, prefetch)
        self._consumer = consumer
        self._on_close = on_close
        self._attempts = attempts
        self._loads: set[asyncio.Task[None]] = set()
        self._per = 1 if ordered else self.prefetch  # unsettled per partition
        self._parts: dict[TopicPartition, _Partition] = {}
        self._outstanding = 0
        # Fetched, not yet handed out, per partition: a full buffer pauses that partition
        # only. (A limit for the whole member would let one partition stuck on a poison
        # message fill it and stop every other partition's fetches.) aiokafka drops the
        # unread rest of a paused partition's fetch, so a limit below one fetch's worth
        # (512 records, once) re-read most of every fetch: consume ran at 0.55-0.64x raw
        # aiokafka with the same headers, 0.81-0.89x with room for a whole fetch.
        self._buffer_limit = max(buffer_records, self.prefetch)
        # ... and a byte bound, so large records cannot make thousands of them gigabytes.
        self._buffer_bytes = buffer_bytes
        self._queue: asyncio.Queue[KafkaDelivery | None] = asyncio.Queue()
        self._commit_wanted = asyncio.Event()
        self._committed: dict[TopicPartition, int] = {}
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._revoke_grace = revoke_grace_ms / 1000
        self._commit_interval = commit_interval_ms / 1000

    async def start(self) -> None:
        # Subscribing after start() means start() does not wait for the group to form
        # (a join takes seconds while the coordinator waits for every member); records
        # published meanwhile wait at the offsets ``declare`` committed for the group.
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=Rebalance(self._assign, self._revoke))
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name=f"kafka-fetch-{self.topic}"),
            asyncio.create_task(self._commit_loop(), name=f"kafka-commit-{self.topic}"),
        ]

    # Delivery ---------------------------------------------------------------------------

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self._closed:
            item = await self._queue.get()
            if item is None:
                return
            if item._part.gone:
                continue  # its partition moved to another member, which redelivers it
            yield item

    async def _fetch_loop(self) -> None:
        while not self._closed:
            try:
                batches = await self._consumer.getmany(
                    timeout_ms=_FETCH_TIMEOUT_MS, max_records=_FETCH_RECORDS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the client reconnects by itself; keep polling
                log.warning("kafka fetch from %s failed: %s", self.topic, redact_text(repr(exc)))
                await asyncio.sleep(0.5)
                continue
            for tp, records in batches.items():
                part = self._parts.get(tp)
                if part is None or part.draining:
                    continue  # fetched for a partition that is no longer ours
                part.buffer.extend(records)
                part.buffered_bytes += sum(map(_size, records))
                if not part.paused and (
                    len(part.buffer) >= self._buffer_limit
                    or part.buffered_bytes >= self._buffer_bytes
                ):
                    # Enough of this partition waits locally; the others keep fetching.
                    part.paused = True
                    self._pause(tp, True)
            if batches:
                self._dispatch()

    def _dispatch(self) -> None:
        """Hand out what every partition may hand out now."""
        now = time.monotonic()
        wake: float | None = None
        for part in list(self._parts.values()):
            ready_at = self._dispatch_part(part, now)
            if ready_at is not None:
                wake = ready_at if wake is None else min(wake, ready_at)
        if wake is not None:
            self._schedule(wake - now)

    def _dispatch_part(self, part: _Partition, now: float) -> float | None:
        """Hand out records of ``part``; returns when to retry if it is held back."""
        if part.draining or part.loading:
            return None
        if part.not_before > now:
            return part.not_before if part.buffer else None
        while part.buffer and self._outstanding < self.prefetch and part.inflight < self._per:
            record = part.buffer.popleft()
            part.buffered_bytes -= _size(record)
            attempt = part.attempts.get(record.offset, 0) + 1
            part.attempts[record.offset] = attempt
            part.tracker.started(record.offset)
            part.inflight += 1
            self._outstanding += 1
            self._queue.put_nowait(KafkaDelivery(self, part, record, attempt))
        if (
            part.paused
            and len(part.buffer) <= self._buffer_limit // 2
            and part.buffered_bytes <= self._buffer_bytes // 2
        ):
            part.paused = False
            self._pause(part.tp, False)
        return None

    def _pause(self, tp: TopicPartition, pause: bool) -> None:
        try:
            (self._consumer.pause if pause else self._consumer.resume)(tp)
        except IllegalStateError:
            pass  # no longer assigned: the next assignment starts unpaused anyway

    def _schedule(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None and self._timer.when() <= loop.time() + delay:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(max(0.0, delay), self._wake)

    def _wake(self) -> None:
        self._timer = None
        if not self._closed:
            self._dispatch()

    def _settle(self, delivery: KafkaDelivery, *, requeue: bool, delay: float) -> None:
        part = delivery._part
        if part.gone:
            return  # revoked: the next owner redelivers from the committed offset
        record = delivery._record
        was_full = self._outstanding >= self.prefetch
        part.inflight -= 1
        self._outstanding -= 1
        if requeue:
            part.failed[record.offset] = delivery.attempt
            part.requeue(record)
            if delay > 0:
                part.not_before = max(part.not_before, time.monotonic() + delay)
        else:
            part.attempts.pop(record.offset, None)
            part.failed.pop(record.offset, None)
            if part.tracker.done(record.offset) is not None:
                self._commit_wanted.set()
        if self._closed:
            return
        if was_full or requeue:
            self._dispatch()  # other partitions may have waited on the prefetch cap
        else:
            self._dispatch_part(part, time.monotonic())

    async def _record_attempts(self, part: _Partition) -> None:
        """Write ``part``'s failed records and their counts to the attempts record."""
        if self._attempts is None or part.gone:
            return
        mark = part.tracker.committable
        if mark is not None:  # below the watermark everything is settled
            part.failed = {o: n for o, n in part.failed.items() if o >= mark}
        await self._attempts.save(part.tp.partition, dict(part.failed))

    async def _load_attempts(self, parts: list[_Partition]) -> None:
        """Start the counts of newly assigned ``parts`` where the last owner left them."""
        assert self._attempts is not None
        loaded: dict[int, dict[int, int]] = {}
        try:
            loaded = await self._attempts.load(p.tp.partition for p in parts)
        finally:  # (cancelled by close: the parts are gone anyway)
            for part in parts:
                counts = loaded.get(part.tp.partition, {})
                for offset, n in counts.items():
                    part.attempts[offset] = max(part.attempts.get(offset, 0), n)
                    part.failed[offset] = max(part.failed.get(offset, 0), n)
                part.loading = False
            if not self._closed:
                self._dispatch()

    # Commits ----------------------------------------------------------------------------

    def _pending_commits(self, parts: list[_Partition]) -> dict[TopicPartition, int]:
        offsets: dict[TopicPartition, int] = {}
        for part in parts:
            mark = part.tracker.committable
            if mark is not None and self._committed.get(part.tp) != mark:
                offsets[part.tp] = mark
        return offsets

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await within(self._consumer.commit(offsets), _COMMIT_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except (KafkaError, TimeoutError) as exc:
            # A rebalance or a broker restart refused the commit: those records will be
            # redelivered (at least once), nothing is lost.
            log.info("kafka commit on %s refused: %s", self.topic, redact_text(repr(exc)))
            return
        except Exception as exc:  # e.g. IllegalStateError: partition no longer assigned
            log.info("kafka commit on %s skipped: %s", self.topic, redact_text(repr(exc)))
            return
        for tp, mark in offsets.items():
            if self._committed.get(tp, -1) < mark:
                self._committed[tp] = mark

    async def _commit_loop(self) -> None:
        while not self._closed:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit(self._pending_commits(list(self._parts.values())))
            # Acks arriving meanwhile coalesce into the next request: one commit per
            # interval at most, however fast handlers ack.
            await asyncio.sleep(self._commit_interval)

    # Rebalance --------------------------------------------------------------------------

    def _assign(self, assigned: set[TopicPartition]) -> None:
        new = [_Partition(tp) for tp in assigned if tp not in self._parts]
        for part in new:
            self._parts[part.tp] = part
        if new and self._attempts is not None:
            for part in new:
                part.loading = True
            task = asyncio.create_task(
                self._load_attempts(new), name=f"kafka-attempts-{self.topic}"
            )
            self._loads.add(task)
            task.add_done_callback(self._loads.discard)
        self._dispatch()

    async def _revoke(self, revoked: set[TopicPartition]) -> None:
        parts = [self._parts[tp] for tp in revoked if tp in self._parts]
        for part in parts:
            part.draining = True
            part.buffer.clear()
            part.buffered_bytes = 0
        deadline = time.monotonic() + self._revoke_grace
        while any(p.inflight for p in parts) and time.monotonic() < deadline and not self._closed:
            await asyncio.sleep(0.005)
        await self._commit(self._pending_commits(parts))
        for part in parts:
            part.gone = True
            self._outstanding -= part.inflight
            part.inflight = 0
            self._parts.pop(part.tp, None)
            self._committed.pop(part.tp, None)
        self._dispatch()

    # Shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for task in [*self._tasks, *self._loads]:
            task.cancel()
        for task in [*self._tasks, *self._loads]:
            with contextlib.suppress(BaseException):
                await task
        # Unsettled deliveries are simply not committed: the group gets them again.
        parts = list(self._parts.values())
        await self._commit(self._pending_commits(parts))
        for part in parts:
            part.gone = True
        try:
            await within(stop_consumer(self._consumer), _COMMIT_TIMEOUT)
        except Exception as exc:
            log.info("kafka consumer on %s stopped uncleanly: %s", self.topic, exc)
        self._queue.put_nowait(None)
        self._on_close(self)
