"""One member of a consumer group on Redis Streams: its shard workers and deliveries.

How per-key order survives competing members (DESIGN section 3, "a lease table
otherwise"): every member heartbeats and holds leases on the shards dealt to it
(:mod:`.membership`). A member reads
only the shard streams it holds a lease for, one worker task per shard, and hands the
application one entry of a shard at a time: the next is handed out only after the
previous was acked, or nacked and redelivered. A shard that must move (a member joined
or left) is released only after its delivery in flight is settled; the new owner first
XAUTOCLAIMs whatever is still pending on the stream (entries stuck with a dead or
departed member) and only then reads new ones, so order holds across the move::

    sub = await transport.subscribe("orders", "billing")
    async for delivery in sub:
        ...
        await delivery.ack()            # XACK, confirmed before the shard moves on
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from redis.exceptions import RedisError, ResponseError

from servicewire.errors import TransportError
from servicewire.messaging.message import Message
from servicewire.timeouts import stop_task, within
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.redis.membership import RETRYABLE as _RETRYABLE
from servicewire.transports.redis.membership import Membership, RedisLink
from servicewire.transports.redis.options import decode_entry
from servicewire.transports.redis.trimming import trim_streams

log = logging.getLogger("servicewire.transports.redis.transport")


class ShardLink(RedisLink, Protocol):
    """What a member needs from its transport: the client, options, and batched acks."""

    def queue_ack(self, key: str, group: str, entry_id: bytes) -> None:
        """Queue an XACK (no await); it is sent with the next batch."""

    async def acks_landed(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until queued XACKs were answered."""


class RedisDelivery(Delivery):
    """An entry of a shard stream handed to the application."""

    __slots__ = ("_entry", "_settled", "_worker")

    def __init__(self, worker: _ShardWorker, entry: _Entry, message: Message) -> None:
        super().__init__(message, entry.attempt, worker.shard)
        self._worker = worker
        self._entry = entry
        self._settled = False

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        # No await in here: a caller cancelled mid-ack (a timeout around its loop) must
        # not leave the message acked in Redis but unrecorded by the caller. The XACK
        # is queued at once (pipelined with other acks) and confirmed in the background.
        if not self._settled:
            self._settled = True
            self._worker.acked(self)

    async def nack(self, delay: float = 0.0) -> None:
        if not self._settled:
            self._settled = True
            self._worker.nacked(self, max(0.0, delay))


class _Entry:
    """A stream entry this member read (or claimed) and has not acked yet."""

    __slots__ = ("attempt", "entry_id", "fields")

    def __init__(self, entry_id: bytes, fields: Any, attempt: int) -> None:
        self.entry_id = entry_id
        self.fields = fields
        self.attempt = attempt


class _ShardWorker:
    """Reads one shard stream for one member and hands its entries out one at a time.

    Reading is a task (one blocking XREADGROUP at a time); handing out is synchronous:
    settling a delivery hands out the shard's next buffered entry at once, which keeps
    the per-message cost to the application's own awaits.
    """

    def __init__(self, sub: RedisSubscription, shard: int) -> None:
        self.sub = sub
        self.shard = shard
        self.key = sub.link.options.stream(sub.channel, shard)
        self.draining = False
        self.buffer: deque[_Entry] = deque()
        self.current: RedisDelivery | None = None
        self._delayed: tuple[_Entry, asyncio.TimerHandle] | None = None
        self._need_more = asyncio.Event()
        self._need_more.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._background: set[asyncio.Future[Any]] = set()
        self.task = asyncio.create_task(self._run(), name=f"redis-shard-{self.key}")

    # Reading --------------------------------------------------------------------------

    async def _run(self) -> None:
        recovering, cursor = True, b"0-0"
        backoff = 0.05
        while not self.draining:
            await self._need_more.wait()
            try:
                if recovering:
                    batch, cursor = await self._claim(cursor)
                    recovering = cursor != b"0-0"
                else:
                    batch = await self._read()
                backoff = 0.05
            except (*_RETRYABLE, RedisError) as exc:
                # Redis went away (restart, network) or refused a read (e.g. the group
                # vanished with a non-persistent restart): re-read our pending entries
                # from the start once it is back, in case a reply was lost.
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    log.warning("shard %s: the consumer group is gone; creating it again", self.key)
                    await self._recreate_group()
                else:
                    log.debug("shard %s: %s; retrying", self.key, exc)
                recovering, cursor = True, b"0-0"
                self.buffer.clear()  # all of it is pending with us; the claim reads it again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if batch:
                self.buffer.extend(batch)
                self._need_more.clear()
                self.pump()

    async def _recreate_group(self) -> None:
        # The stream or group is gone: Redis restarted without persistence, or someone
        # deleted the key. Start the group at the beginning of what exists now, so
        # whatever was published since is still delivered.
        with contextlib.suppress(*_RETRYABLE, RedisError):
            await self.sub.link.client.xgroup_create(
                self.key, self.sub.group, id="0", mkstream=True
            )

    async def _claim(self, cursor: bytes) -> tuple[list[_Entry], bytes]:
        """Take over every entry pending on this shard (ours or a previous owner's)."""
        client = self.sub.link.client
        group, member = self.sub.group, self.sub.member
        reply = await client.xautoclaim(
            self.key, group, member, 0, cursor, count=self.sub.link.options.batch
        )
        next_cursor: bytes = reply[0]
        entries: list[tuple[bytes, Any]] = reply[1]
        batch: list[_Entry] = []
        if entries:
            pending = await client.xpending_range(
                self.key, group, entries[0][0], entries[-1][0], len(entries), member
            )
            counts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
            batch = [_Entry(eid, fields, counts.get(eid, 1)) for eid, fields in entries]
        batch.extend(_Entry(eid, None, 0) for eid in (reply[2] if len(reply) > 2 else []))
        return batch, next_cursor

    async def _read(self) -> list[_Entry]:
        opts = self.sub.link.options
        reply: Any = await self.sub.link.client.xreadgroup(
            self.sub.group,
            self.sub.member,
            {self.key: ">"},
            count=opts.batch,
            block=int(opts.block * 1000),
        )
        if not reply:
            return []
        return [_Entry(eid, fields, 1) for eid, fields in reply[0][1]]

    # Handing out ----------------------------------------------------------------------

    def pump(self) -> None:
        """Hand out the next buffered entry if the shard is free and the member has room."""
        if self.draining or self.current is not None or self._delayed is not None:
            return
        sub = self.sub
        while self.buffer:
            if sub._outstanding >= sub.prefetch:
                sub._starved.add(self)
                return
            entry = self.buffer.popleft()
            if entry.fields is None:  # deleted (trimmed) while pending: just ack it
                self._ack_entry(entry.entry_id)
                continue
            delivery = RedisDelivery(self, entry, decode_entry(entry.entry_id, entry.fields))
            self.current = delivery
            self._idle.clear()
            sub._outstanding += 1
            sub._queue.put_nowait(delivery)
            return
        self._need_more.set()

    def _settled(self) -> None:
        self.current = None
        self._idle.set()
        self.sub._outstanding -= 1
        self.pump()
        self.sub._wake_starved()

    def acked(self, delivery: RedisDelivery) -> None:
        if self.current is not delivery:
            return  # abandoned when the shard left us; Redis redelivers it elsewhere
        # The shard's next entry goes out before Redis confirms this XACK: if it never
        # lands, this entry comes back later as a duplicate of one already handled, so
        # the order in which entries are first handled still holds.
        self._ack_entry(delivery._entry.entry_id)
        self._settled()

    def nacked(self, delivery: RedisDelivery, delay: float) -> None:
        if self.current is not delivery:
            return
        entry = delivery._entry
        if delay > 0:
            timer = asyncio.get_running_loop().call_later(delay, self._redeliver)
            self._delayed = (entry, timer)
        else:
            self._again(entry)
        self._settled()

    def _redeliver(self) -> None:
        if self._delayed is not None:
            entry, _ = self._delayed
            self._delayed = None
            self._again(entry)
            self.pump()

    def _again(self, entry: _Entry) -> None:
        """Put a nacked entry first in line for its next attempt.

        XCLAIM to ourselves bumps Redis's delivery counter as a read would, so a later
        owner continues the count. Not at the nack: a member stopping during the delay
        would leave the counter one ahead of the deliveries made.
        """
        entry.attempt += 1
        sub = self.sub
        with contextlib.suppress(TransportError):
            client = sub.link.client
            claim = client.xclaim(self.key, sub.group, sub.member, 0, [entry.entry_id])
            self._track(asyncio.ensure_future(claim))
        self.buffer.appendleft(entry)

    def _ack_entry(self, entry_id: bytes) -> None:
        self.sub.link.queue_ack(self.key, self.sub.group, entry_id)

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._background.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: asyncio.Future[Any]) -> None:
        self._background.discard(future)
        if not future.cancelled():
            future.exception()  # retrieved: a failed XCLAIM only leaves the count low

    # Stopping -------------------------------------------------------------------------

    async def stop(self) -> None:
        """Finish the delivery in flight, then stop reading and hand the shard over."""
        self.draining = True
        await stop_task(self.task)
        await self._idle.wait()
        if self._delayed is not None:
            self._delayed[1].cancel()  # stays pending in Redis; the next owner delivers it
            self._delayed = None
        await self.uncount_buffered()
        # Hand the shard over only once our acks landed, or the next owner would claim
        # and redeliver entries we already handled.
        await self.sub.link.acks_landed()

    async def kill(self) -> None:
        """Stop at once: the delivery in flight is abandoned and Redis keeps it pending."""
        self.draining = True
        # Not a plain cancel: one landing while redis-py sends the next XREADGROUP
        # (its wait_for, Python 3.11) is lost, and the read then blocks for the full
        # ``block`` time. Closing a member killed its shards one after the other, so
        # an idle member of 16 shards took up to 32 s to close (benchmarks/transports.py).
        await stop_task(self.task)
        if self._delayed is not None:
            self._delayed[1].cancel()
            self._delayed = None
        current, self.current = self.current, None
        if current is not None and not current._settled:
            current._settled = True
            self.sub._outstanding -= 1
        self._idle.set()

    async def uncount_buffered(self) -> None:
        """Set Redis's delivery counter of entries read but never handed out back to the
        deliveries made, so the next owner's XAUTOCLAIM (which adds one) hands them out
        as the attempt they are, not one later (``XCLAIM ... RETRYCOUNT n JUSTID``).
        Only while we still hold the shard's lease: XCLAIM makes us their owner again.
        Best effort: without an answer within a second they count one extra."""
        by_count: dict[int, list[Any]] = {}
        for entry in self.buffer:
            if entry.fields is not None:
                by_count.setdefault(entry.attempt - 1, []).append(entry.entry_id)
        self.buffer.clear()
        sub = self.sub
        for count, entry_ids in by_count.items():
            with contextlib.suppress(*_RETRYABLE, RedisError, TransportError, TimeoutError):
                await within(
                    sub.link.client.xclaim(
                        self.key,
                        sub.group,
                        sub.member,
                        0,
                        tuple(entry_ids),
                        retrycount=count,
                        justid=True,
                    ),
                    1.0,
                )


class RedisSubscription(Subscription):
    """A member of ``group`` on ``channel`` holding leases on some of its shards."""

    def __init__(
        self,
        link: ShardLink,
        channel: str,
        group: str,
        prefetch: int,
        on_close: Callable[[RedisSubscription], None],
    ) -> None:
        self.link = link
        self.channel = channel
        self.group = group
        self._membership = Membership(link, channel, group)
        self.member = self._membership.member
        self._on_close = on_close
        self._queue: asyncio.Queue[RedisDelivery | None] = asyncio.Queue()
        self.prefetch = max(1, prefetch)
        self._outstanding = 0
        self._starved: set[_ShardWorker] = set()
        self._workers: dict[int, _ShardWorker] = {}
        self._moving: dict[int, asyncio.Task[None]] = {}
        self._closed = False
        self._ticker: asyncio.Task[None] | None = None

    @property
    def owned_shards(self) -> list[int]:
        """The shards this member reads now (for tests and diagnostics)."""
        return sorted(self._workers)

    def _wake_starved(self) -> None:
        # A delivery settled: shards that waited for room under the prefetch cap go on.
        while self._starved and self._outstanding < self.prefetch:
            self._starved.pop().pump()

    async def start(self) -> None:
        await self._tick()
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"redis-member-{self.member}")

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while not self._closed:
            item = await self._queue.get()
            if item is None:
                return
            if item.settled:
                continue  # abandoned when its shard left us
            yield item

    async def _tick_loop(self) -> None:
        opts = self.link.options
        loop = asyncio.get_running_loop()
        next_trim = loop.time() + opts.trim_interval
        while not self._closed:
            await asyncio.sleep(opts.heartbeat)
            try:
                await self._tick()
            except (*_RETRYABLE, RedisError) as exc:
                log.debug("member %s heartbeat failed: %s", self.member, exc)
                continue
            if opts.trim_interval and loop.time() >= next_trim and not self._closed:
                next_trim = loop.time() + opts.trim_interval
                try:
                    await self.trim()
                except Exception as exc:  # trimming only saves memory: never stop heartbeats
                    log.warning("member %s: trimming failed: %s", self.member, exc)

    async def trim(self) -> dict[str, int]:
        """Trim the shard streams this member owns below what every group still needs.

        Runs every ``trim_interval`` seconds; each shard has one owner per group, so a
        stream is trimmed once per group and interval, whatever the message rate.
        """
        keys = [self.link.options.stream(self.channel, shard) for shard in self.owned_shards]
        return await trim_streams(self.link.client, keys)

    async def _tick(self) -> None:
        owned, desired = await self._membership.tick()
        if self._closed:
            return
        for shard in owned:
            if shard in self._moving:
                continue
            if shard in desired:
                if shard not in self._workers:
                    self._workers[shard] = _ShardWorker(self, shard)
            else:
                self._hand_over(shard)
        for shard in list(self._workers):
            if shard not in owned and shard not in self._moving:
                # Our lease expired (Redis was away longer than the TTL): another member
                # may own the shard now, so stop at once and let Redis redeliver.
                worker = self._workers.pop(shard)
                await worker.kill()

    def _hand_over(self, shard: int) -> None:
        self._moving[shard] = asyncio.create_task(self._move(shard))

    async def _move(self, shard: int) -> None:
        try:
            worker = self._workers.get(shard)
            if worker is not None:
                await worker.stop()
                self._workers.pop(shard, None)
            await self._membership.release(shard)
        except (*_RETRYABLE, RedisError) as exc:
            log.debug("releasing shard %s failed: %s (the lease will expire)", shard, exc)
        finally:
            self._moving.pop(shard, None)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            await stop_task(self._ticker)
        for task in list(self._moving.values()):
            task.cancel()
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            await worker.kill()
            await worker.uncount_buffered()  # the leases are still ours until leave()
        await self._membership.leave()
        self._queue.put_nowait(None)
        self._on_close(self)
