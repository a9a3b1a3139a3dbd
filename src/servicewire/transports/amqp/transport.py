"""``amqp://`` and ``amqps://`` — RabbitMQ through aio-pika.

    transport = await connect_transport("amqp://guest:guest@127.0.0.1:5672/?shards=16")
    await transport.declare("orders", "billing")      # exchange, 16 shard queues, DLX
    await transport.publish(message)                  # persistent, publisher-confirmed
    async with await transport.subscribe("orders", "billing") as sub:
        async for delivery in sub:
            ...
            await delivery.ack()                      # or nack(delay=2.0), or reject()

Topology (:mod:`.amqp_topology`): an exchange per channel, a durable quorum queue per
group and shard with single-active-consumer, messages routed to shard
``shard_for(partition key, shards, message id)``. Members of a group deal the shards
among themselves (:mod:`.amqp_members`) and hand them over without letting a key's next
message overtake its previous one (:mod:`.amqp_subscription`). The connection is
aio-pika's robust connection: after a broker restart it reconnects, channels and
consumers come back, and a publish caught by the outage is sent again once the broker
is back (within ``publish_timeout``; otherwise it fails with :class:`PublishError`).
URL options: :mod:`.amqp_options`. Full story: docs/transports/amqp.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from pamqp.commands import Basic

from servicewire.errors import (
    ConnectionFailedError,
    PublishError,
    TransportError,
)
from servicewire.messaging.channels import is_instance_reply_channel, shard_for, validate_name
from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports.amqp.headers import encode
from servicewire.transports.amqp.options import AmqpOptions, parse
from servicewire.transports.amqp.subscription import AmqpDelivery, AmqpSubscription
from servicewire.transports.amqp.topology import (
    SHARD_KEYS,
    Topology,
    check_channel,
    exchange_name,
    queue_name,
    shards_of,
)
from servicewire.transports.base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Capabilities,
    Subscription,
    Transport,
)
from servicewire.urls import redact, redact_text

__all__ = ["AmqpDelivery", "AmqpOptions", "AmqpSubscription", "AmqpTransport"]

log = logging.getLogger(__name__)

# What a lost connection looks like to a publisher: retry once the broker is back.
_RETRYABLE = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
    OSError,
    asyncio.CancelledError,
)


class AmqpTransport(Transport):
    """A client of one RabbitMQ virtual host."""

    scheme = "amqp"
    capabilities = Capabilities(
        durable=True,
        persistent=True,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __init__(self, url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self._client_url, self.options = parse(url)
        self.address = redact(url)
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._pub: aiormq.Channel | None = None
        self._admin: AbstractRobustChannel | None = None
        self._topology = Topology(
            self._admin_channel,
            shards=self.options.shards,
            queue_type=self.options.queue_type,
            delivery_limit=self.options.delivery_limit,
            reply_expires=self.options.reply_expires,
        )
        self._subscriptions: set[AmqpSubscription] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing = False

    # Connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._connection is not None:
            return
        options = self.options
        try:
            connection = await within(
                aio_pika.connect_robust(
                    self._client_url,
                    reconnect_interval=options.reconnect_delay,
                    timeout=options.connect_timeout,
                ),
                options.connect_timeout + 1,
            )
        except TimeoutError:
            raise ConnectionFailedError(
                "amqp", self.url, f"no answer within {options.connect_timeout:g}s"
            ) from None
        except (aiormq.exceptions.AMQPError, OSError, ValueError) as exc:
            raise ConnectionFailedError("amqp", self.url, _reason(exc)) from None
        self._connection = connection
        try:
            self._publisher = await self._open_channel(confirms=True)
            self._pub = await _concrete(self._publisher)
            self._admin = await self._open_channel(confirms=False)
            if options.queue_type == "quorum" and not _supports_quorum(connection):
                self._topology.queue_type = "classic"  # RabbitMQ before 3.8
        except BaseException:
            await connection.close()
            self._connection = None
            raise

    async def _open_channel(self, *, confirms: bool) -> AbstractRobustChannel:
        if self._connection is None:
            raise TransportError(f"amqp transport {self.address} is not connected")
        channel = await self._connection.channel(publisher_confirms=confirms)
        assert isinstance(channel, AbstractRobustChannel)
        return channel

    async def _admin_channel(self) -> aiormq.abc.AbstractChannel:
        if self._admin is None:
            raise TransportError(f"amqp transport {self.address} is not connected")
        if self._admin.is_closed:
            # A refused declaration closes the channel; open a fresh one for the next.
            self._admin = await self._open_channel(confirms=False)
        return await self._admin.get_underlay_channel()

    # Publishing -------------------------------------------------------------------------

    async def _send(self, message: Message) -> None:
        self._begin()
        try:
            await self._publish(message)
        finally:
            self._end()

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        self._begin()
        try:
            await asyncio.gather(*(self._publish(m) for m in messages))
        finally:
            self._end()

    def _begin(self) -> None:
        if self._closing or self._connection is None:
            raise TransportError(f"amqp transport {self.address} is closed")
        self._in_flight += 1
        self._drained.clear()

    def _end(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._drained.set()

    async def _publish(self, message: Message) -> None:
        channel = message.destination
        if self._topology.known_exchange(channel):
            exchange, key = exchange_name(channel), self._shard_key(message, channel)
        elif is_instance_reply_channel(channel):
            # The default exchange routes by queue name: nothing to declare, and a reply
            # to an instance whose queue expired is dropped instead of bringing it back.
            check_channel(channel)
            exchange, key = "", queue_name(channel, "", 0)
        else:
            check_channel(channel)
            await self._retrying(channel, lambda: self._topology.ensure_exchange(channel))
            exchange, key = exchange_name(channel), self._shard_key(message, channel)
        body, props = encode(message, self.options.ce_headers)
        pub = self._pub
        if pub is not None and not pub.is_closed:
            # The hot path: one frame set, one confirm, no retry machinery. wait=False:
            # the confirm comes only after the frames were written anyway, and waiting
            # for the writer first costs a task switch per message.
            try:
                # Bounded like every publish: a confirm that never comes (a broker gone
                # silent without closing the connection) must not hold the caller forever.
                confirm = await pub.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=key,
                    properties=props,
                    wait=False,
                    timeout=self.options.publish_timeout,
                )
            except TimeoutError:
                raise PublishError(
                    f"RabbitMQ at {self.address} did not confirm message {message.id} for "
                    f"channel {channel!r} within {self.options.publish_timeout:g}s"
                ) from None
            except _RETRYABLE as exc:
                _reraise_own_cancellation(exc)  # else: the channel died, retry below
            else:
                if not isinstance(confirm, Basic.Ack):
                    raise PublishError(
                        f"RabbitMQ at {self.address} refused message {message.id} "
                        f"for channel {channel!r}"
                    )
                return

        async def send() -> None:
            pub = await self._publisher_channel()
            confirm = await pub.basic_publish(
                body, exchange=exchange, routing_key=key, properties=props, wait=False
            )
            if not isinstance(confirm, Basic.Ack):
                raise PublishError(
                    f"RabbitMQ at {self.address} refused message {message.id} "
                    f"for channel {channel!r}"
                )

        await self._retrying(channel, send)

    def _shard_key(self, message: Message, channel: str) -> str:
        shards = shards_of(channel, self.options.shards)
        return SHARD_KEYS[shard_for(message.partition_key, shards, message.id)]

    async def _publisher_channel(self) -> aiormq.Channel:
        assert self._publisher is not None
        await self._publisher.ready()
        self._pub = await _concrete(self._publisher)
        return self._pub

    async def _retrying(self, channel: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` until it succeeds, waiting out reconnections, or time out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.publish_timeout
        delay = 0.05
        while True:
            try:
                remaining = max(0.1, deadline - loop.time())
                await within(action(), remaining)
                return
            except PublishError:
                raise
            except aiormq.exceptions.ChannelNotFoundEntity:
                self._topology.forget(channel)  # deleted under us: declare again
                await self._topology.ensure_exchange(channel)
            except (*_RETRYABLE, TimeoutError) as exc:
                _reraise_own_cancellation(exc)
                if loop.time() >= deadline:
                    raise PublishError(
                        f"amqp transport could not publish to channel {channel!r} at "
                        f"{self.address} within {self.options.publish_timeout:g}s: "
                        f"{_reason(exc)}"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    # Groups -----------------------------------------------------------------------------

    async def declare(self, channel: str, group: str) -> None:
        self._check_open()
        check_channel(channel)
        try:
            await self._topology.ensure_group(channel, group)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise TransportError(
                f"amqp transport: group {group!r} on channel {channel!r} exists with other "
                f"settings (shards, queue_type or delivery_limit differ): {_reason(exc)}"
            ) from None

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        await self.declare(channel, group)
        sub = AmqpSubscription(
            channel,
            group,
            prefetch,
            options=self.options,
            open_channel=self._open_channel,
            background=self._background,
            on_close=self._subscriptions.discard,
        )
        self._subscriptions.add(sub)
        try:
            await sub.start()
        except BaseException:
            await sub.close()
            raise
        return sub

    async def delete_group(self, channel: str, group: str) -> bool:
        """Delete ``group``'s shard queues on ``channel`` with their messages, and its
        members exchange. Queues are found by name for this client's ``shards``: a
        group declared with more shards keeps the others."""
        self._check_open()
        check_channel(channel)
        validate_name(group, "group")
        await self._topology.delete_group(channel, group)
        return True

    async def delete_channel(self, channel: str) -> bool:
        """Delete ``channel``'s exchanges and its ``.dlq`` channel with the
        ``dead-letters`` group; the channel's own groups are queues of their own:
        delete them first (:meth:`~servicewire.transports.base.Transport.tear_down`)."""
        self._check_open()
        check_channel(channel)
        await self._topology.delete_channel(channel)
        return True

    def _check_open(self) -> None:
        if self._connection is None or self._closing:
            raise TransportError(f"amqp transport {self.address} is not connected")

    # Close ------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        # Publishes already started finish (or fail) first: close never drops them.
        with contextlib.suppress(TimeoutError):
            await within(self._drained.wait(), self.options.publish_timeout + 5)
        for sub in list(self._subscriptions):
            await sub.close()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await within(task, 1.0)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await within(self._connection.close(), 5.0)
        self._connection = None


def _reraise_own_cancellation(exc: BaseException) -> None:
    """Re-raise ``exc`` if it is our caller cancelling us rather than a channel dying.

    aiormq fails a publish pending on a closed channel with ``CancelledError`` too.
    """
    current = asyncio.current_task()
    if isinstance(exc, asyncio.CancelledError) and current is not None and current.cancelling():
        raise exc


def _supports_quorum(connection: AbstractRobustConnection) -> bool:
    """Quorum queues arrived in RabbitMQ 3.8."""
    try:
        transport = connection.transport
        assert transport is not None
        props = transport.connection.server_properties
        version = props.get("version", b"")
        text = version.decode() if isinstance(version, bytes) else str(version)
        major, minor = (int(p) for p in text.split(".")[:2])
    except Exception:
        return True
    return (major, minor) >= (3, 8)


async def _concrete(robust: AbstractRobustChannel) -> aiormq.Channel:
    """The aiormq channel under ``robust`` (its ``basic_publish`` takes ``wait``)."""
    channel = await robust.get_underlay_channel()
    assert isinstance(channel, aiormq.Channel)  # aiormq's one channel class
    return channel


def _close_frame(exc: BaseException) -> Any:
    """The ``Connection.Close`` frame an aiormq error carries, if any."""
    for arg in (*exc.args, getattr(exc, "frame", None)):
        if hasattr(arg, "reply_code") and hasattr(arg, "reply_text"):
            return arg
    return None


def _closed_with(exc: BaseException, code: int) -> bool:
    close = _close_frame(exc)
    return close is not None and close.reply_code == code


def _reason(exc: BaseException) -> str:
    """A short, password-free description of a connection or channel error."""
    refused = isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, aiormq.exceptions.AMQPConnectionError)
        and bool(exc.args)
        and exc.args[0] == errno.ECONNREFUSED
    )
    if refused:
        text = "connection refused (is RabbitMQ running and listening there?)"
    elif isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        text = "authentication failed (check user and password)"
    elif (
        isinstance(exc, aiormq.exceptions.ConnectionNotAllowed)
        or _closed_with(exc, 530)
        # aiormq reports a refused Connection.Open as an unexpected Close frame
        or ("Connection.OpenOk" in str(exc) and "Connection.Close" in str(exc))
    ):
        text = "access refused: check the virtual host exists and the user may use it"
    elif (close := _close_frame(exc)) is not None:
        text = f"the broker closed the connection: {close.reply_code} {close.reply_text}"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact_text(text)
