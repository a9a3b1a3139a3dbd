"""Group membership through leases in a JetStream KV bucket, and shard assignment.

Each live member of a group keeps a key ``<channel>.<group>.<member id>`` in the KV
bucket ``servicewire_members``. The bucket's TTL is the lease: a member renews its key
every third of it, and a member that stops renewing (a crashed process) drops out when
its key ages away. A member that leaves cleanly purges its key at once and tells the
others on a plain NATS subject, so shards move without waiting for the TTL.

Every member reads the live set the same way (one STREAM.INFO with a subject filter,
no consumer) and deals the shards with :func:`~servicewire.transports.sharding.deal`, so
every member that sees the same set computes the same owners::

    members = Membership(nc, js, channel="orders", group="billing", ttl=6.0,
                         on_change=lambda owned: print(sorted(owned)), shards=16)
    await members.start()
    ...
    await members.stop()

Two members may briefly disagree while a change spreads. Per-key order does not depend
on the assignment being exact: each shard consumer has ``max_ack_pending=1``, so the
server itself never hands out a shard's next message before the previous one is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.js.errors import NotFoundError

from servicewire.timeouts import stop_task
from servicewire.transports.nats.names import MEMBERS_BUCKET, members_prefix
from servicewire.transports.sharding import deal

log = logging.getLogger(__name__)

_KV_STREAM = f"KV_{MEMBERS_BUCKET}"


async def ensure_bucket(js: Any, ttl: float) -> float:
    """Create the members bucket if missing; return its TTL (the first creator's wins)."""
    try:
        info = await js.stream_info(_KV_STREAM)
        max_age = info.config.max_age or 0.0
        return float(max_age) if max_age else ttl
    except NotFoundError:
        pass
    with contextlib.suppress(Exception):  # lost a creation race: the bucket exists now
        await js.create_key_value(bucket=MEMBERS_BUCKET, ttl=ttl, history=1)
    return ttl


class Membership:
    """This member's lease, and the shards it owns among the live members."""

    def __init__(
        self,
        nc: Any,
        js: Any,
        *,
        channel: str,
        group: str,
        member_id: str,
        shards: int,
        ttl: float,
        on_change: Callable[[set[int]], None],
    ) -> None:
        self._nc = nc
        self._js = js
        self._prefix = members_prefix(channel, group)
        self.member_id = member_id
        self._shards = shards
        self._ttl = ttl
        self._on_change = on_change
        self._key_subject = f"$KV.{MEMBERS_BUCKET}.{self._prefix}.{member_id}"
        self._notify_subject = f"_SW.members.{self._prefix}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self.members: list[str] = [member_id]
        self._stopping = False

    async def start(self) -> None:
        self._ttl = await ensure_bucket(self._js, self._ttl)
        self._sub = await self._nc.subscribe(self._notify_subject, cb=self._on_notice)
        await self._renew()
        await self._refresh()
        await self._nc.publish(self._notify_subject, b"join")
        self._task = asyncio.create_task(self._run())

    async def _on_notice(self, msg: Any) -> None:
        self._wake.set()

    async def _renew(self) -> None:
        await self._js.publish(self._key_subject, b"", timeout=self._ttl / 3)

    async def _refresh(self) -> None:
        info = await self._js.stream_info(
            _KV_STREAM, subjects_filter=f"$KV.{MEMBERS_BUCKET}.{self._prefix}.*"
        )
        subjects = info.state.subjects or {}
        members = sorted({s.rsplit(".", 1)[1] for s in subjects} | {self.member_id})
        if members != self.members or self._task is None:
            self.members = members
            self._on_change(deal(members, self._shards, self.member_id))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self._ttl / 3
        renewed = loop.time()
        while not self._stopping:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # races with the event, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                if loop.time() - renewed >= interval * 0.9:
                    await self._renew()
                    renewed = loop.time()
                await self._refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # server restarting: keep the last assignment
                log.debug("membership refresh failed: %s", exc)
                await asyncio.sleep(min(0.5, interval))

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await stop_task(self._task)
        with contextlib.suppress(Exception):
            await self._js.purge_stream(_KV_STREAM, subject=self._key_subject)
            await self._nc.publish(self._notify_subject, b"leave")
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
