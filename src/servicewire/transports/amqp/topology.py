"""The RabbitMQ objects behind channels, groups and shards (DESIGN section 3).

For channel ``orders`` with ``shards=16`` and group ``billing``::

    exchange  orders                 direct, durable; routing key = shard number "0".."15"
    exchange  orders/unrouted        fanout; alternate exchange of ``orders``: catches
                                     foreign messages whose routing key is no shard
    queue     orders/billing/0..15   durable (quorum), single active consumer, bound to
                                     ``orders`` with key "<shard>"; shard 0 also to
                                     ``orders/unrouted``; dead letters go to ``orders.dlq``
    exchange  orders/billing/members fanout for the group's membership heartbeats
    exchange  orders.dlq             the dead-letter channel (one shard), with its
    queue     orders.dlq/dead-letters/0  group ``dead-letters`` keeping what arrives

An instance reply channel (``<service>.replies.<instance>``, see
:func:`~servicewire.messaging.channels.is_instance_reply_channel`) is one classic queue
named like the channel, with ``x-expires`` so that RabbitMQ deletes it once its
instance is gone, however it went; replies reach it through the default exchange, so a
sender declares nothing and a late reply to a vanished instance is simply dropped::

    queue     order-service.replies.3f2a    classic, durable, x-expires=reply_expires
    exchange  order-service.replies.3f2a/<group>/members   fanout, auto-delete

``/`` never occurs in a channel or group name, so these names cannot collide.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq

from servicewire.errors import InvalidNameError, TransportError
from servicewire.messaging.channels import (
    dead_letter_channel,
    is_instance_reply_channel,
    validate_name,
)
from servicewire.messaging.channels import shards_of as _channel_shards

DLQ_SUFFIX = ".dlq"
DEAD_LETTER_GROUP = (
    "dead-letters"  # the pipeline's dead-letter group (servicewire.pipeline.deadletter)
)
_MAX_NAME = 255  # AMQP short string


def _short(name: str) -> str:
    if len(name.encode()) <= _MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()  # a name, not a secret
    return f"{name[:150]}~{digest}"


def check_channel(channel: str) -> str:
    validate_name(channel, "channel")
    if channel.startswith("amq."):
        raise InvalidNameError(f"invalid channel name {channel!r}: 'amq.' is reserved by AMQP")
    return channel


def exchange_name(channel: str) -> str:
    return _short(channel)


def unrouted_exchange(channel: str) -> str:
    return _short(f"{channel}/unrouted")


def queue_name(channel: str, group: str, shard: int) -> str:
    if is_instance_reply_channel(channel):
        return _short(channel)  # one reader, one queue: senders address it by name
    return _short(f"{channel}/{group}/{shard}")


def members_exchange(channel: str, group: str) -> str:
    return _short(f"{channel}/{group}/members")


def shards_of(channel: str, shards: int) -> int:
    """Dead-letter channels have one shard: order does not matter there, people do.
    An instance reply channel has one too: it has one reader."""
    return 1 if channel.endswith(DLQ_SUFFIX) else _channel_shards(channel, shards)


def members_auto_delete(channel: str) -> bool:
    """Whether ``channel``'s membership exchanges go when their last member leaves.

    Only an instance reply channel's: the other channels' members exchanges were
    declared without auto-delete by earlier versions, and RabbitMQ refuses to declare
    an exchange again with another setting. There is one of those per group, not per
    instance, so they do not accumulate.
    """
    return is_instance_reply_channel(channel)


ShardKeys = tuple[str, ...]
SHARD_KEYS: ShardKeys = tuple(str(i) for i in range(1024))


class Topology:
    """Declares exchanges and queues once per client; later calls are free."""

    def __init__(
        self,
        channel: Callable[[], Awaitable[aiormq.abc.AbstractChannel]],
        *,
        shards: int,
        queue_type: str,
        delivery_limit: int,
        reply_expires: float = 60.0,
    ) -> None:
        self._channel = channel
        self.shards = shards
        self.queue_type = queue_type
        self.delivery_limit = delivery_limit
        self.reply_expires = reply_expires
        self._exchanges: dict[str, asyncio.Future[None]] = {}
        self._groups: dict[tuple[str, str], asyncio.Future[None]] = {}

    def known_exchange(self, channel: str) -> bool:
        fut = self._exchanges.get(channel)
        return fut is not None and fut.done() and fut.exception() is None

    async def ensure_exchange(self, channel: str) -> None:
        await self._once(self._exchanges, channel, lambda: self._declare_exchange(channel))

    async def ensure_group(self, channel: str, group: str) -> None:
        validate_name(group, "group")
        await self._once(
            self._groups, (channel, group), lambda: self._declare_group(channel, group)
        )

    def forget(self, channel: str, group: str | None = None) -> None:
        """Drop cached declarations (after the objects were deleted)."""
        if group is None:
            self._exchanges.pop(channel, None)
            for key in [k for k in self._groups if k[0] == channel]:
                self._groups.pop(key, None)
        else:
            self._groups.pop((channel, group), None)

    async def _once(
        self,
        cache: dict[Any, asyncio.Future[None]],
        key: Any,
        declare: Callable[[], Awaitable[None]],
    ) -> None:
        # Concurrent first uses share one declaration; a failed one is retried next time.
        fut = cache.get(key)
        if fut is None:
            fut = cache[key] = asyncio.get_running_loop().create_future()
            try:
                await declare()
            except BaseException as exc:
                cache.pop(key, None)
                fut.set_exception(exc)
                fut.exception()  # mark retrieved: waiters re-raise it themselves
                raise
            fut.set_result(None)
            return
        await asyncio.shield(fut)

    async def _declare_exchange(self, channel: str) -> None:
        check_channel(channel)
        ch = await self._channel()
        unrouted = unrouted_exchange(channel)
        await ch.exchange_declare(unrouted, exchange_type="fanout", durable=True)
        await ch.exchange_declare(
            exchange_name(channel),
            exchange_type="direct",
            durable=True,
            arguments={"alternate-exchange": unrouted},
        )

    def queue_arguments(self, channel: str) -> dict[str, Any]:
        args: dict[str, Any] = {"x-single-active-consumer": True}
        if is_instance_reply_channel(channel):
            # Classic: a quorum queue costs a Raft member, a WAL share and file handles,
            # far too much for a queue that lives as long as one process. Unused (no
            # consumer) for reply_expires, RabbitMQ deletes it: a crashed instance's too.
            args["x-queue-type"] = "classic"
            args["x-expires"] = max(1, round(self.reply_expires * 1000))
            return args
        if self.queue_type == "quorum":
            args["x-queue-type"] = "quorum"
            if self.delivery_limit > 0:
                args["x-delivery-limit"] = self.delivery_limit
        if not channel.endswith(DLQ_SUFFIX):
            args["x-dead-letter-exchange"] = exchange_name(dead_letter_channel(channel))
            args["x-dead-letter-routing-key"] = "0"
        return args

    async def _declare_group(self, channel: str, group: str) -> None:
        if is_instance_reply_channel(channel):
            await self._declare_reply_queue(channel, group)
            return
        await self.ensure_exchange(channel)
        if not channel.endswith(DLQ_SUFFIX):
            # Dead letters need somewhere to land before the first one happens.
            await self.ensure_group(dead_letter_channel(channel), DEAD_LETTER_GROUP)
        ch = await self._channel()
        args = self.queue_arguments(channel)
        exchange = exchange_name(channel)
        for shard in range(shards_of(channel, self.shards)):
            queue = queue_name(channel, group, shard)
            await ch.queue_declare(queue, durable=True, arguments=args)
            await ch.queue_bind(queue, exchange, routing_key=SHARD_KEYS[shard])
            if shard == 0:
                await ch.queue_bind(queue, unrouted_exchange(channel))
        await ch.exchange_declare(
            members_exchange(channel, group), exchange_type="fanout", durable=False
        )

    async def _declare_reply_queue(self, channel: str, group: str) -> None:
        ch = await self._channel()
        queue = queue_name(channel, group, 0)
        await ch.queue_declare(queue, durable=True, arguments=self.queue_arguments(channel))
        await ch.exchange_declare(
            members_exchange(channel, group),
            exchange_type="fanout",
            durable=False,
            auto_delete=True,
        )

    async def delete_group(self, channel: str, group: str) -> None:
        """Delete a group's shard queues (and every message in them)."""
        ch = await self._channel()
        for shard in range(shards_of(channel, self.shards)):
            await ch.queue_delete(queue_name(channel, group, shard))
        await ch.exchange_delete(members_exchange(channel, group))
        self.forget(channel, group)

    async def delete_channel(self, channel: str) -> None:
        """Delete a channel's exchanges and its dead-letter channel with the
        ``dead-letters`` group (declared with the channel's first group). The other
        groups' queues stay until :meth:`delete_group` removes them. An instance reply
        channel has no exchanges: its queue goes with its group."""
        if is_instance_reply_channel(channel):
            self.forget(channel)
            return
        ch = await self._channel()
        if not channel.endswith(DLQ_SUFFIX):
            await self.delete_group(dead_letter_channel(channel), DEAD_LETTER_GROUP)
            await self.delete_channel(dead_letter_channel(channel))
        await ch.exchange_delete(exchange_name(channel))
        await ch.exchange_delete(unrouted_exchange(channel))
        self.forget(channel)


def declare_error(what: str, exc: BaseException) -> TransportError:
    return TransportError(f"amqp transport cannot declare {what}: {exc}")
