"""``redis://`` and ``rediss://`` — Redis Streams through redis-py (asyncio).

A channel is split into shard streams (``shard_for(partition key, shards, message
id)``); each group is a Redis consumer group on every shard stream, created at ``$`` so
it gets what is published from then on. Members of a group hold leases on shards
(see :mod:`servicewire.transports.redis.subscription`), which keeps per-key order while
they compete. Publishes from concurrent callers are pipelined, and each returns when
Redis answered its XADD::

    transport = await connect_transport("redis://127.0.0.1:6379/0?shards=16")
    await transport.declare("orders", "billing")
    await transport.publish(message)             # XADD confirmed
    async with await transport.subscribe("orders", "billing") as sub:
        async for delivery in sub:
            await delivery.ack()                 # XACK confirmed

URL options (query string; anything else goes to redis-py): ``shards`` (16),
``prefix`` (``sw``), ``lease_ttl`` (5 s), ``heartbeat`` (0.25 s), ``batch`` (64),
``block`` (2 s), ``trim_interval`` (10 s: members trim their shard streams below what
every group still needs; 0 = never), ``maxlen`` (0 = no hard cap; a cap is lossy),
``persistent`` (``auto``: ask the server whether ``appendonly`` is on; ``yes``/``no``
to declare it).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from servicewire.errors import ConnectionFailedError, PublishError, TransportError
from servicewire.messaging.channels import (
    dead_letter_channel,
    is_instance_reply_channel,
    shard_for,
    validate_name,
)
from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Subscription,
    Transport,
)
from servicewire.transports.redis.batch import AckBatcher, Pipeliner
from servicewire.transports.redis.options import RedisOptions, encode_entry
from servicewire.transports.redis.replies import ReplyStreams
from servicewire.transports.redis.subscription import RedisSubscription
from servicewire.urls import redact, redact_text


class RedisTransport(Transport):
    """A client of one Redis server (or a single-slot-per-channel Redis Cluster proxy)."""

    scheme = "redis"
    capabilities = Capabilities(
        durable=True,
        persistent=False,  # replaced at connect by what the server (or the URL) says
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __init__(self, url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self.options = RedisOptions.from_url(url)
        self._client: Redis | None = None
        self._adds: Pipeliner | None = None
        self._acks: AckBatcher | None = None
        self._subscriptions: set[RedisSubscription] = set()
        self._declared: set[tuple[str, str]] = set()
        self._replies = ReplyStreams(self)
        self._closing = False

    # Connection -----------------------------------------------------------------------

    @property
    def client(self) -> Redis:
        if self._client is None or self._closing:
            raise TransportError(f"redis transport {redact(self.url)} is not connected")
        return self._client

    async def connect(self) -> None:
        extra: dict[str, Any] = {}
        if "max_connections=" not in self.options.client_url:
            # Each idle shard a member owns holds one connection in a blocking read;
            # redis-py's default pool of 100 is too small for many subscriptions.
            extra["max_connections"] = 10_000
        try:
            client = Redis.from_url(
                self.options.client_url,
                **extra,
                decode_responses=False,
                socket_connect_timeout=5,
                # No silent retries inside redis-py: a read whose reply was lost in a
                # restart has already moved entries into our pending list, and a
                # retried XREADGROUP would quietly skip them. Errors reach our own
                # loops, which re-read the pending list; publishers see the error.
                retry=Retry(NoBackoff(), 0),
            )
        except (ValueError, RedisError) as exc:
            raise ConnectionFailedError("redis", self.url, redact_text(str(exc))) from None
        try:
            await client.ping()
            persistent = self.options.persistent
            if persistent is None:
                persistent = await _server_persists(client)
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise ConnectionFailedError("redis", self.url, _reason(exc)) from None
        # The class declares the conservative default; this instance declares what its
        # server actually does (AOF on or off), as the contract suite checks.
        setattr(self, "capabilities", dataclasses.replace(self.capabilities, persistent=persistent))  # noqa: B010
        self._client = client
        self._adds = Pipeliner(client, on_error=self._wrap_error)
        self._acks = AckBatcher(client)
        self._closing = False

    def _wrap_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, TransportError):
            return exc
        where = redact(self.url)
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
            return TransportError(f"redis {where} unreachable: {_reason(exc)}")
        return PublishError(f"redis {where} refused the command: {_reason(exc)}")

    # Publishing -----------------------------------------------------------------------

    def _entry(self, message: Message) -> tuple[str, Any]:
        """The shard stream key and the fields of ``message`` (names checked, no I/O)."""
        channel = validate_name(message.destination, "channel")
        opts = self.options
        shards = opts.shards_of(channel)
        key = opts.stream(channel, shard_for(message.partition_key, shards, message.id))
        return key, encode_entry(message)

    def _adder(self) -> Pipeliner:
        if self._adds is None or self._closing:
            raise TransportError(f"redis transport {redact(self.url)} is not connected")
        return self._adds

    async def _send(self, message: Message) -> None:
        key, fields = self._entry(message)
        maxlen = self.options.maxlen or None
        # A reply to an instance whose stream is gone is dropped, not a stream made anew.
        only = is_instance_reply_channel(message.destination)
        await self._adder().submit(
            lambda pipe: pipe.xadd(key, fields, maxlen=maxlen, approximate=True, nomkstream=only)
        )

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        # Names first: one bad message refuses the whole batch before any I/O.
        entries = [(*self._entry(m), is_instance_reply_channel(m.destination)) for m in messages]
        if not entries:
            return
        maxlen = self.options.maxlen or None

        def add_all(pipe: Pipeline) -> None:
            for key, fields, only in entries:
                pipe.xadd(key, fields, maxlen=maxlen, approximate=True, nomkstream=only)

        # One queue entry and one future for the batch; still one reply per message.
        await self._adder().submit(add_all, commands=len(entries))

    def queue_ack(self, key: str, group: str, entry_id: bytes) -> None:
        """Queue an XACK (no await); the batcher sends it with the next round."""
        if self._acks is not None:
            self._acks.add(key, group, entry_id)

    async def acks_landed(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until queued XACKs were answered."""
        if self._acks is not None:
            with contextlib.suppress(TimeoutError):
                await within(self._acks.drain(), timeout)

    # Groups ---------------------------------------------------------------------------

    async def declare(self, channel: str, group: str) -> None:
        validate_name(channel, "channel")
        validate_name(group, "group")
        if (channel, group) in self._declared:
            return
        pipe: Pipeline = self.client.pipeline(transaction=False)
        for shard in range(self.options.shards_of(channel)):
            pipe.xgroup_create(self.options.stream(channel, shard), group, id="$", mkstream=True)
        self._replies.bound(pipe, channel)
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            raise self._wrap_error(exc) from None
        for result in results:
            if isinstance(result, ResponseError) and "BUSYGROUP" in str(result):
                continue  # the group exists already: keep its position
            if isinstance(result, Exception):
                raise self._wrap_error(result)
        self._declared.add((channel, group))

    async def delete_group(self, channel: str, group: str) -> bool:
        """Delete ``group`` on ``channel``: its consumer group on every shard stream (with
        its pending entries), its members and its leases; the streams stay::

            await transport.delete_group("orders", "billing")
        """
        validate_name(channel, "channel")
        validate_name(group, "group")
        opts = self.options
        shards = range(opts.shards_of(channel))
        pipe: Pipeline = self.client.pipeline(transaction=False)
        for shard in shards:
            pipe.xgroup_destroy(opts.stream(channel, shard), group)
        pipe.delete(opts.members(channel, group), *(opts.lease(channel, group, s) for s in shards))
        try:
            # A missing stream answers with an error: nothing to delete there.
            await pipe.execute(raise_on_error=False)
        except (RedisError, OSError) as exc:
            raise self._wrap_error(exc) from None
        self._declared.discard((channel, group))
        return True

    async def delete_channel(self, channel: str) -> bool:
        """Delete ``channel`` and its ``.dlq`` channel: every shard stream, group and lease
        key (tests, tools)::

            await transport.delete_channel("orders")
        """
        for name in (channel, dead_letter_channel(channel)):
            validate_name(name, "channel")
            # Every key of a channel shares its hash tag ``{channel}``; validated names
            # hold no glob characters, so the pattern matches this channel only.
            pattern = f"{self.options.prefix}:{{{name}}}:*"
            try:
                keys = [key async for key in self.client.scan_iter(match=pattern, count=500)]
                if keys:
                    await self.client.delete(*keys)
            except (RedisError, OSError) as exc:
                raise self._wrap_error(exc) from None
            self._declared = {(c, g) for c, g in self._declared if c != name}
        return True

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        await self.declare(channel, group)
        sub = RedisSubscription(self, channel, group, prefetch, self._subscriptions.discard)
        self._subscriptions.add(sub)
        try:
            await sub.start()
        except (RedisError, OSError) as exc:
            await sub.close()
            raise self._wrap_error(exc) from None
        self._replies.keep(channel, lambda: sub in self._subscriptions)
        return sub

    # Shutdown -------------------------------------------------------------------------

    async def close(self) -> None:
        if self._client is None:
            return
        if self._adds is not None:
            await self._adds.drain()  # publishes in flight get their confirmation first
        for sub in list(self._subscriptions):
            await sub.close()
        await self._replies.close()
        if self._acks is not None:
            with contextlib.suppress(TimeoutError):
                await within(self._acks.drain(final=True), 10)
        self._closing = True
        client, self._client = self._client, None
        self._adds = self._acks = None
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()


async def _server_persists(client: Redis) -> bool:
    """Whether the server logs every write (AOF); RDB snapshots alone lose recent writes."""
    try:
        reply: Any = await client.config_get("appendonly")
    except ResponseError:
        return False  # CONFIG is disabled (managed Redis): declare the safe answer
    value = reply.get(b"appendonly") or reply.get("appendonly")
    return value in (b"yes", "yes")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact_text(text)
