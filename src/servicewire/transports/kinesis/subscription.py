"""One member of a group on a channel: takes its share of the stream's shards, reads
them, hands out their records, and writes the group's checkpoints.

::

    sub = KinesisSubscription(clients, "sw-orders-1a2b3c4d", table, "orders", "billing",
                              options=opts, prefetch=64)
    await sub.start()
    async for delivery in sub:
        await delivery.ack()               # the checkpoint moves at the next write
        # or: await delivery.nack(1.0)     # the same record again after 1 s

Every tick (a third of ``lease_time``, or ``checkpoint_interval`` if shorter) the
member renews its heartbeat, reads the group's leases, and:

* writes each held lease with its checkpoint and attempt counts (the renewal; a lost
  one stops that shard at once: another member owns it now);
* splits the eligible shards evenly over the live members (:mod:`.membership`), takes
  the free, released or silent leases of its share, and gives up the shards that are no
  longer its own: first it stops handing out their records, then waits until the
  handler settled what it holds, then writes the checkpoint and releases the lease, so
  the next owner starts exactly after the last settled record of every key.

``close`` releases every lease with its checkpoint: unsettled records go to whoever
takes the shards next. A member that dies keeps its shards for ``lease_time``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from servicewire.errors import TransportError
from servicewire.timeouts import within
from servicewire.transports.base import Delivery, Subscription
from servicewire.transports.kinesis.client import AWS_ERRORS, Clients, is_missing
from servicewire.transports.kinesis.leases import SHARD_END, LeaseLost, LeaseTable
from servicewire.transports.kinesis.membership import Observed, ShardInfo, assign, eligible
from servicewire.transports.kinesis.options import KinesisOptions
from servicewire.transports.kinesis.shard import KinesisDelivery, ShardReader

log = logging.getLogger("servicewire.transports.kinesis.subscription")


class KinesisSubscription(Subscription):
    """A member of ``group`` on ``channel``, reading the channel's ``stream``."""

    def __init__(
        self,
        clients: Clients,
        stream: str,
        table: LeaseTable,
        channel: str,
        group: str,
        *,
        options: KinesisOptions,
        prefetch: int = 64,
        on_close: Callable[[KinesisSubscription], None] | None = None,
    ) -> None:
        self.channel = channel
        self.group = group
        self.stream = stream
        self.options = options
        self.member = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._clients = clients
        self._table = table
        self._prefetch = max(1, prefetch)
        self._on_close = on_close
        self.ready: asyncio.Queue[KinesisDelivery | None] = asyncio.Queue()
        self.room = asyncio.Event()
        self.room.set()
        self._held = 0
        self._readers: dict[str, ShardReader] = {}
        self._listing: list[ShardInfo] = []
        self._listed_at = -1e9
        self._observed = Observed(options.lease_time)
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.failure: TransportError | None = None
        """Why the member stopped before it was closed (its stream or table is gone)."""
        self._tick = max(0.05, min(options.lease_time / 3, options.checkpoint_interval or 1e9))

    # Flow control -----------------------------------------------------------------------

    def took(self, count: int) -> None:
        """``count`` more (or fewer) records are held by this member."""
        self._held += count
        if self._held < self._prefetch:
            self.room.set()
        else:
            self.room.clear()

    def room_left(self) -> int:
        return self._prefetch - self._held

    # Running ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._table.beat(self.group, self.member)
        await self._balance()
        self._task = asyncio.create_task(
            self._run(), name=f"kinesis-member:{self.channel}/{self.group}"
        )

    async def _run(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        last_beat = loop.time()
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            try:
                if loop.time() - last_beat >= self._tick:
                    await self._table.beat(self.group, self.member)
                    last_beat = loop.time()
                    await self._renew()
                    await self._balance()
                else:  # woken by a settled record: only hand over what is quiet
                    await self._release_quiet()
                failures = 0
            except AWS_ERRORS as exc:
                if is_missing(exc):
                    # Deleted (delete_channel), or an emulator restarted empty: nothing is
                    # left to read, and the member says so rather than wait forever.
                    self.failure = TransportError(
                        f"kinesis: the stream or lease table of {self.channel!r} is gone"
                    )
                    for shard in list(self._readers):
                        await self._drop(shard)
                    self.ready.put_nowait(None)
                    return
                failures += 1
                log.warning("kinesis: member of %s/%s: %s", self.channel, self.group, exc)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    def _settled(self) -> None:
        if any(r.draining for r in self._readers.values()) or any(
            r.finished for r in self._readers.values()
        ):
            self._wake.set()

    async def _renew(self) -> None:
        """Write every held lease (renewal, checkpoint, attempts); drop the lost ones."""
        for shard, reader in list(self._readers.items()):
            try:
                await self._table.write(reader.lease)
                reader.dirty = False
            except LeaseLost:
                log.info("kinesis: %s/%s lost %s", self.channel, self.group, shard)
                await self._drop(shard)

    async def _drop(self, shard: str) -> None:
        reader = self._readers.pop(shard, None)
        if reader is not None:
            await reader.stop()

    async def _release(self, shard: str) -> None:
        reader = self._readers.get(shard)
        if reader is None:
            return
        await reader.stop()
        self._readers.pop(shard, None)
        with contextlib.suppress(LeaseLost):
            await self._table.write(reader.lease, release=True)

    async def _release_quiet(self) -> None:
        for shard, reader in list(self._readers.items()):
            if reader.quiet or reader.finished:
                await self._release(shard)

    async def _list_shards(self) -> None:
        loop = asyncio.get_running_loop()
        if self._listing and loop.time() - self._listed_at < self.options.shard_refresh:
            return
        listing: list[ShardInfo] = []
        token: str | None = None
        for _ in range(1000):
            request: dict[str, Any] = {"NextToken": token} if token else {"StreamName": self.stream}
            answer = await self._clients.kinesis.list_shards(**request)
            listing.extend(ShardInfo.from_listing(raw) for raw in answer.get("Shards", []))
            token = answer.get("NextToken")
            if not token:
                break
        self._listing, self._listed_at = listing, loop.time()
        for info in listing:
            reader = self._readers.get(info.shard)
            if reader is not None and info.ending is not None:
                reader.closed_shard, reader.ending = True, info.ending

    async def _balance(self) -> None:
        await self._list_shards()
        state = await self._table.read(self.group)
        live = self._observed.live_members(state.members, self.member)
        for member in state.members.keys() - set(live):
            # Silent for lease_time: crashed (a paused member that wakes up beats again,
            # which makes its item anew). Its leases go silent too and are taken.
            await self._table.leave(self.group, member)
        listed = {info.shard for info in self._listing}
        for shard, held in state.shards.items():
            if held.checkpoint == SHARD_END and shard not in listed:
                await self._table.forget(self.group, shard)  # trimmed away: done with it
        shards = eligible(self._listing, state.shards)
        mine = assign(shards, live, self.member)
        # Give up what is no longer ours (finished shards included).
        for shard, reader in list(self._readers.items()):
            if reader.finished or shard not in mine:
                reader.drain()
        await self._release_quiet()
        for shard in sorted(mine):
            if shard in self._readers or self._closed:
                continue
            seen = state.shards.get(shard)
            # Ours already (a release that failed): take it back under a new epoch.
            mine_still = seen is not None and seen.owner == self.member
            if not mine_still and not self._observed.takeable(seen):
                continue
            lease = await self._table.acquire(self.group, shard, self.member, seen)
            if lease is None:
                continue
            reader = ShardReader(
                self._clients.kinesis, self.stream, lease, self, on_settled=self._settled
            )
            info = next((i for i in self._listing if i.shard == shard), None)
            if info is not None and info.ending is not None:
                reader.closed_shard, reader.ending = True, info.ending
            self._readers[shard] = reader
            reader.start()

    def shard_gone(self, reader: ShardReader) -> None:
        """The stream or shard vanished under ``reader`` (deleted): stop it."""
        self._readers.pop(reader.shard, None)
        reader.abandon()

    # Consuming --------------------------------------------------------------------------

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        while True:
            delivery = await self.ready.get()
            if delivery is None:
                self.ready.put_nowait(None)  # every iterator ends
                if self.failure is not None and not self._closed:
                    raise self.failure
                return
            if delivery.revoked:
                continue
            delivery.taken = True
            yield delivery

    # Closing ----------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self.room.set()
        if self._task is not None:
            # Let a rebalance in flight finish (a lease it takes is released below);
            # cancelled mid-way, it could leave a lease held until it goes silent.
            try:
                await within(asyncio.shield(self._task), 15)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
            except Exception:  # its own failure ended it
                log.debug("kinesis: member of %s ended with an error", self.channel, exc_info=True)
        for shard in list(self._readers):
            try:
                await self._release(shard)
            except AWS_ERRORS as exc:
                if not is_missing(exc):
                    log.warning("kinesis: release of %s failed: %s", shard, exc)
        with contextlib.suppress(*AWS_ERRORS):
            await self._table.leave(self.group, self.member)
        self.ready.put_nowait(None)
        if self._on_close is not None:
            self._on_close(self)
