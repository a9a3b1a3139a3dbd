"""One member of a consumer group on Redis Streams: membership, shard leases, delivery.

How per-key order survives competing members (DESIGN section 3, "a lease table
otherwise"): every member heartbeats into a sorted set and, in the same Lua call,
renews the leases it holds and takes the free leases of the shards it should own
(shard ``s`` belongs to the ``s % n``-th live member in name order). A member reads
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
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from servicewire.errors import TransportError
from servicewire.message import Message
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.redis_layout import decode_entry

if TYPE_CHECKING:
    from servicewire.transports.redis import RedisTransport

log = logging.getLogger("servicewire.transports.redis")

_RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, TransportError)

# KEYS[1] = members sorted set, KEYS[2..] = lease keys of shards 0..n-1.
# ARGV = member name, lease TTL in ms. Returns {owned shards, desired shards, live members}.
TICK_SCRIPT = """
local member = ARGV[1]
local ttl = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, member)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 4)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(members)
local n = #members
local idx = 0
for i, m in ipairs(members) do
  if m == member then idx = i - 1 end
end
local owned, desired = {}, {}
for s = 0, #KEYS - 2 do
  local key = KEYS[s + 2]
  local want = (s % n) == idx
  if want then desired[#desired + 1] = s end
  local holder = redis.call('GET', key)
  if holder == member then
    redis.call('PEXPIRE', key, ttl)
    owned[#owned + 1] = s
  elseif (not holder) and want then
    redis.call('SET', key, member, 'PX', ttl)
    owned[#owned + 1] = s
  end
end
return {owned, desired, n}
"""

# KEYS[1] = lease key, KEYS[2] = shard stream. ARGV = member, group.
# Drops the lease if we hold it, and our consumer entry if nothing is pending with it.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[2], '-', '+', 1, ARGV[1])
if ok and #pending == 0 then
  pcall(redis.call, 'XGROUP', 'DELCONSUMER', KEYS[2], ARGV[2], ARGV[1])
end
return 1
"""


def member_name() -> str:
    """A unique, readable consumer name: host, pid and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class RedisDelivery(Delivery):
    """An entry of a shard stream handed to the application."""

    __slots__ = ("_entry_id", "_outcome", "_settled", "_worker")

    def __init__(
        self, worker: _ShardWorker, entry_id: bytes, message: Message, attempt: int
    ) -> None:
        super().__init__(message, attempt, worker.shard)
        self._worker = worker
        self._entry_id = entry_id
        self._settled = False
        self._outcome: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()

    @property
    def settled(self) -> bool:
        return self._settled

    async def ack(self) -> None:
        # No await in here: a caller cancelled mid-ack (a timeout around its loop) must
        # not leave the message acked in Redis but unrecorded by the caller. The XACK is
        # queued at once; the shard's worker waits for Redis to confirm it (retrying
        # across an outage) before it hands out the shard's next entry.
        if self._settled:
            return
        self._settled = True
        worker = self._worker
        confirmation = worker.sub.transport._submit_xack(
            worker.key, worker.sub.group, self._entry_id
        )
        self._finish(_Acked(confirmation))

    async def nack(self, delay: float = 0.0) -> None:
        if self._settled:
            return
        self._settled = True
        self._finish(max(0.0, delay))

    def abandon(self) -> None:
        """The shard left this member: a late ack/nack must do nothing (Redis redelivers)."""
        if not self._settled:
            self._settled = True
            self._finish(None)

    def _finish(self, outcome: _Outcome) -> None:
        self._worker.sub._slots.release()
        if not self._outcome.done():
            self._outcome.set_result(outcome)


class _Acked:
    """Outcome of an ack: the pending XACK reply."""

    __slots__ = ("confirmation",)

    def __init__(self, confirmation: asyncio.Future[Any]) -> None:
        self.confirmation = confirmation


_Outcome = _Acked | float | None
"""Acked (XACK queued), nacked with a delay in seconds, or abandoned (None)."""


class _ShardWorker:
    """Reads one shard stream for one member and hands its entries out one at a time."""

    def __init__(self, sub: RedisSubscription, shard: int) -> None:
        self.sub = sub
        self.shard = shard
        self.key = sub.transport.options.stream(sub.channel, shard)
        self.draining = False
        self.reading = False
        self.current: RedisDelivery | None = None
        self.task = asyncio.create_task(self._run(), name=f"redis-shard-{self.key}")

    async def _run(self) -> None:
        recovering, cursor = True, b"0-0"
        backoff = 0.05
        while not self.draining:
            try:
                self.reading = True
                if recovering:
                    batch, cursor = await self._claim(cursor)
                    recovering = cursor != b"0-0"
                else:
                    batch = await self._read()
                self.reading = False
                backoff = 0.05
            except (*_RETRYABLE, RedisError) as exc:
                # Redis went away (restart, network) or refused a read (e.g. the group
                # vanished with a non-persistent restart): re-read our pending entries
                # from the start once it is back, in case a reply was lost.
                self.reading = False
                if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
                    log.warning("shard %s: the consumer group is gone; creating it again", self.key)
                    await self._recreate_group()
                else:
                    log.debug("shard %s: %s; retrying", self.key, exc)
                recovering, cursor = True, b"0-0"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            for entry_id, fields, attempt in batch:
                if self.draining:
                    break  # the rest stays pending with us; the next owner claims it
                if fields is None:  # deleted (trimmed) while pending: nothing to hand out
                    with contextlib.suppress(*_RETRYABLE):
                        await self.sub.transport._xack(self.key, self.sub.group, entry_id)
                    continue
                await self._deliver(entry_id, decode_entry(entry_id, fields), attempt)

    async def _recreate_group(self) -> None:
        # The stream or group is gone: Redis restarted without persistence, or someone
        # deleted the key. Start the group at the beginning of what exists now, so
        # whatever was published since is still delivered.
        with contextlib.suppress(*_RETRYABLE, RedisError):
            await self.sub.transport.client.xgroup_create(
                self.key, self.sub.group, id="0", mkstream=True
            )

    async def _claim(self, cursor: bytes) -> tuple[list[tuple[bytes, Any, int]], bytes]:
        """Take over every entry pending on this shard (ours or a previous owner's)."""
        client = self.sub.transport.client
        group, member = self.sub.group, self.sub.member
        reply = await client.xautoclaim(
            self.key, group, member, 0, cursor, count=self.sub.transport.options.batch
        )
        next_cursor: bytes = reply[0]
        entries: list[tuple[bytes, Any]] = reply[1]
        batch: list[tuple[bytes, Any, int]] = []
        if entries:
            pending = await client.xpending_range(
                self.key, group, entries[0][0], entries[-1][0], len(entries), member
            )
            counts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
            batch = [(eid, fields, counts.get(eid, 1)) for eid, fields in entries]
        batch.extend((eid, None, 0) for eid in (reply[2] if len(reply) > 2 else []))
        return batch, next_cursor

    async def _read(self) -> list[tuple[bytes, Any, int]]:
        opts = self.sub.transport.options
        reply: Any = await self.sub.transport.client.xreadgroup(
            self.sub.group,
            self.sub.member,
            {self.key: ">"},
            count=opts.batch,
            block=int(opts.block * 1000),
        )
        if not reply:
            return []
        return [(eid, fields, 1) for eid, fields in reply[0][1]]

    async def _deliver(self, entry_id: bytes, message: Message, attempt: int) -> None:
        sub = self.sub
        while True:
            await sub._slots.acquire()
            delivery = RedisDelivery(self, entry_id, message, attempt)
            self.current = delivery
            sub._queue.put_nowait(delivery)
            try:
                outcome = await delivery._outcome
            finally:
                self.current = None
            if outcome is None:
                return
            if isinstance(outcome, _Acked):
                await self._confirm(outcome.confirmation, entry_id)
                return
            delay = outcome
            if delay > 0:
                await asyncio.sleep(delay)
            if self.draining:
                return  # stays pending; the next owner delivers it
            attempt += 1
            # XCLAIM to ourselves bumps Redis's delivery counter, so a later owner
            # sees the true attempt number.
            with contextlib.suppress(*_RETRYABLE, RedisError):
                await sub.transport.client.xclaim(self.key, sub.group, sub.member, 0, [entry_id])

    async def _confirm(self, confirmation: asyncio.Future[Any], entry_id: bytes) -> None:
        try:
            await confirmation
        except TransportError:
            # Redis is away: keep trying, so the shard's next entry never overtakes an
            # ack that did not land.
            await self.sub.transport._xack(self.key, self.sub.group, entry_id)

    async def stop(self) -> None:
        """Finish the delivery in flight, then stop reading (a blocked read is cancelled)."""
        self.draining = True
        if self.reading:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def kill(self) -> None:
        """Stop at once: the delivery in flight is abandoned and Redis keeps it pending."""
        self.draining = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.current is not None:
            self.current.abandon()


class RedisSubscription(Subscription):
    """A member of ``group`` on ``channel`` holding leases on some of its shards."""

    def __init__(self, transport: RedisTransport, channel: str, group: str, prefetch: int) -> None:
        self.transport = transport
        self.channel = channel
        self.group = group
        self.member = member_name()
        self._queue: asyncio.Queue[RedisDelivery | None] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, prefetch))
        self._workers: dict[int, _ShardWorker] = {}
        self._moving: dict[int, asyncio.Task[None]] = {}
        self._closed = False
        self._ticker: asyncio.Task[None] | None = None
        opts = transport.options
        self._members_key = opts.members(channel, group)
        self._lease_keys = [opts.lease(channel, group, s) for s in range(opts.shards)]

    @property
    def owned_shards(self) -> list[int]:
        """The shards this member reads now (for tests and diagnostics)."""
        return sorted(self._workers)

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
        interval = self.transport.options.heartbeat
        while not self._closed:
            await asyncio.sleep(interval)
            try:
                await self._tick()
            except (*_RETRYABLE, RedisError) as exc:
                log.debug("member %s heartbeat failed: %s", self.member, exc)

    async def _tick(self) -> None:
        ttl_ms = int(self.transport.options.lease_ttl * 1000)
        reply = await self.transport._tick_script(
            keys=[self._members_key, *self._lease_keys], args=[self.member, ttl_ms]
        )
        owned, desired = {int(s) for s in reply[0]}, {int(s) for s in reply[1]}
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
            await self._release(shard)
        except (*_RETRYABLE, RedisError) as exc:
            log.debug("releasing shard %s failed: %s (the lease will expire)", shard, exc)
        finally:
            self._moving.pop(shard, None)

    async def _release(self, shard: int) -> None:
        await self.transport._release_script(
            keys=[self._lease_keys[shard], self.transport.options.stream(self.channel, shard)],
            args=[self.member, self.group],
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._moving.values()):
            task.cancel()
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            await worker.kill()
        # Release every lease we may hold (the script only drops leases that are ours),
        # so the next member takes the shards now rather than after the TTL.
        with contextlib.suppress(*_RETRYABLE, RedisError, TimeoutError):
            async with asyncio.timeout(5):
                pipe = self.transport.client.pipeline(transaction=False)
                for shard, lease in enumerate(self._lease_keys):
                    stream = self.transport.options.stream(self.channel, shard)
                    await self.transport._release_script(
                        keys=[lease, stream], args=[self.member, self.group], client=pipe
                    )
                await pipe.execute(raise_on_error=False)
                await self.transport.client.zrem(self._members_key, self.member)
        self._queue.put_nowait(None)
        self.transport._subscriptions.discard(self)
