"""Who is in a group right now: heartbeats over a fanout exchange, and the shard deal.

RabbitMQ 3.10's single-active-consumer makes the *first* registered consumer active on
every queue, so left alone one member would own all shards. Members therefore agree on
an assignment: each announces itself on ``<channel>/<group>/members`` (``hello`` on
join, ``beat`` every ``interval``, ``bye`` on leave; a ``hello`` is answered at once so
a newcomer learns the group quickly) and everyone deals the shards over the live
member ids with :func:`~servicewire.transports.sharding.deal`::

    view = Membership(channel, "orders", "billing", member_id, on_change, 1.0, 3.5)
    await view.start()          # on_change(members) whenever the set changes
    deal(view.members(), 16, member_id)   # -> {shards this member should own}

Views may disagree for a moment; the single-active-consumer queues keep that safe
(never two active consumers on one shard). A member that dies without ``bye`` is
dropped after ``timeout`` seconds; until then its shards wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel

from servicewire.timeouts import within
from servicewire.transports.amqp.topology import members_auto_delete, members_exchange

log = logging.getLogger(__name__)

_MEMBER = "x-sw-member"
_EVENT = "x-sw-event"
_TARGET = "x-sw-target"
_SHARD = "x-sw-shard"


class Membership:
    """This member's view of its group, kept fresh by heartbeats."""

    def __init__(
        self,
        channel: AbstractRobustChannel,
        channel_name: str,
        group: str,
        member_id: str,
        on_change: Callable[[list[str]], None],
        interval: float,
        timeout: float,
        on_standby: Callable[[int], None] | None = None,
    ) -> None:
        self._channel = channel
        self._exchange_name = members_exchange(channel_name, group)
        self._auto_delete = members_auto_delete(channel_name)
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self.member_id = member_id
        self._on_change = on_change
        self._on_standby = on_standby
        self._interval = interval
        self._timeout = timeout
        self._seen: dict[str, float] = {member_id: float("inf")}
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def members(self) -> list[str]:
        return sorted(self._seen)

    async def start(self) -> None:
        self._exchange = await self._channel.declare_exchange(
            self._exchange_name,
            aio_pika.ExchangeType.FANOUT,
            durable=False,
            auto_delete=self._auto_delete,
        )
        queue = await self._channel.declare_queue(
            f"{self._exchange_name}/{self.member_id}", exclusive=True, auto_delete=True
        )
        await queue.bind(self._exchange)
        await queue.consume(self._on_message, no_ack=True)
        await self.announce("hello")
        self._ticker = asyncio.create_task(self._tick(), name=f"members {self._exchange_name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            # Not cancelled: a heartbeat half-written would cost the channel.
            try:
                await within(asyncio.shield(self._ticker), 5.0)
            except TimeoutError:
                self._ticker.cancel()
            self._ticker = None
        with contextlib.suppress(Exception):
            await within(self.announce("bye"), 2.0)

    async def announce(self, event: str, **extra: str | int) -> None:
        if self._exchange is None:
            return
        headers: dict[str, Any] = {_MEMBER: self.member_id, _EVENT: event}
        headers.update({f"x-sw-{k}": v for k, v in extra.items()})
        message = aio_pika.Message(b"", headers=headers, expiration=self._timeout)
        await self._exchange.publish(message, routing_key="")

    async def tell_standby(self, member: str, shard: int) -> None:
        """Tell ``member`` its consumer on ``shard`` is a stand-by behind the active one.

        Sent by the active member when another's handover marker reaches it: the other
        waits for a marker that will never reach it, and may cancel at once instead.
        """
        await self.announce("standby", target=member, shard=shard)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        member = message.headers.get(_MEMBER)
        event = message.headers.get(_EVENT)
        if not isinstance(member, str) or member == self.member_id:
            return
        if event == "standby":
            shard = message.headers.get(_SHARD)
            target = message.headers.get(_TARGET)
            if target == self.member_id and isinstance(shard, int) and self._on_standby:
                self._on_standby(shard)
            return
        if event == "bye":
            if self._seen.pop(member, None) is not None:
                self._changed()
            return
        known = member in self._seen
        self._seen[member] = time.monotonic()
        if not known:
            self._changed()
        if event == "hello":
            with contextlib.suppress(Exception):
                await self.announce("beat")  # so the newcomer learns us at once

    def _changed(self) -> None:
        self._on_change(self.members())

    def expire(self) -> None:
        limit = time.monotonic() - self._timeout
        gone = [m for m, seen in self._seen.items() if seen < limit]
        for member in gone:
            del self._seen[member]
        if gone:
            log.info("members %s of %s presumed gone", gone, self._exchange_name)
            self._changed()

    async def _tick(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await within(self._stopping.wait(), self._interval)
            if self._stopping.is_set():
                return
            self.expire()
            try:
                await self.announce("beat")
            except Exception as exc:  # the connection is down: the robust channel recovers
                log.debug("heartbeat of %s not sent: %s", self.member_id, exc)
