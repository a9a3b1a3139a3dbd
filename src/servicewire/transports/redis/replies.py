"""Instance reply streams that expire once their reader is gone.

An instance reply channel (``svc.replies.3f2a``) has one shard stream. ``declare``
gives it a TTL of ``reply_ttl`` seconds, and while a member reads it the transport
renews that TTL every third of it; when the instance stops, ``Service.stop`` deletes
the stream, and when it crashes, Redis drops the stream (with its group) once the TTL
runs out. Senders add replies with ``NOMKSTREAM``, so a late reply does not bring a
deleted stream back::

    replies = ReplyStreams(transport)
    replies.bound(pipe, "svc.replies.3f2a")   # queue a PEXPIRE on a declare pipeline
    replies.keep("svc.replies.3f2a", lambda: sub in open_subscriptions)  # renew meanwhile
    await replies.close()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from servicewire.errors import TransportError
from servicewire.messaging.channels import is_instance_reply_channel
from servicewire.timeouts import stop_task
from servicewire.transports.redis.membership import RedisLink


class ReplyStreams:
    """Keeps the TTL of the instance reply streams this transport reads."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._tasks: set[asyncio.Task[None]] = set()

    def _ttl_ms(self) -> int:
        return round(self._link.options.reply_ttl * 1000)

    def bound(self, pipe: Pipeline, channel: str) -> None:
        """Queue the TTL of ``channel``'s stream on ``pipe`` if it is an instance reply channel."""
        if is_instance_reply_channel(channel):
            pipe.pexpire(self._link.options.stream(channel, 0), self._ttl_ms())

    def keep(self, channel: str, reading: Callable[[], bool]) -> None:
        """Renew the TTL of ``channel``'s stream while ``reading()`` (reply channels only)."""
        if is_instance_reply_channel(channel):
            task = asyncio.create_task(self._renew(channel, reading), name=f"sw-ttl {channel}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _renew(self, channel: str, reading: Callable[[], bool]) -> None:
        key = self._link.options.stream(channel, 0)
        every = self._link.options.reply_ttl / 3
        while True:
            await asyncio.sleep(every)
            if not reading():
                return
            with contextlib.suppress(RedisError, OSError, TransportError):
                await self._link.client.pexpire(key, self._ttl_ms())

    async def close(self) -> None:
        """Stop renewing (the transport closes)."""
        for task in list(self._tasks):
            # A loop without a stop flag: a cancel lost in redis-py's send would leave
            # it renewing forever, and this wait with it (see stop_task).
            await stop_task(task)
