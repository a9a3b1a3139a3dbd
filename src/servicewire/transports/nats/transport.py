"""``nats://`` and ``tls://`` — NATS JetStream through nats-py.

A stream per channel holds one subject per shard, ``sw.<channel>.<shard>``; each group
has a durable pull consumer per shard with explicit acks and ``max_ack_pending=1``, so
messages of one partition key are handled in order even while members compete. Members
spread the shards among themselves through leases in a JetStream KV bucket (see
:mod:`~servicewire.transports.nats.membership`)::

    transport = await connect_transport("nats://127.0.0.1:4222?shards=16")
    await transport.declare("ftgo.orders", "billing")
    await transport.publish(message)                 # returns after the JetStream PubAck
    async with await transport.subscribe("ftgo.orders", "billing") as sub:
        async for delivery in sub:
            await delivery.ack()                     # nack(delay=2.0): NAK with a delay

Options go in the URL query (:mod:`~servicewire.transports.nats.options`); the layout,
guarantees and differences are in ``docs/transports/nats.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from nats.js import api
from nats.js.errors import NotFoundError

from servicewire.errors import ConnectionFailedError, MessageTooLargeError, TransportError
from servicewire.messaging.channels import (
    dead_letter_channel,
    is_instance_reply_channel,
    shard_for,
    shards_of,
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
from servicewire.transports.nats.client import FastHeadersClient
from servicewire.transports.nats.headers import header_block
from servicewire.transports.nats.names import (
    REPLY_MAX_AGE,
    durable_name,
    shard_subject,
    stream_name,
    stream_subjects,
    subject_prefix,
)
from servicewire.transports.nats.options import NatsOptions
from servicewire.transports.nats.publisher import AckInbox
from servicewire.transports.nats.subscription import NatsSubscription
from servicewire.urls import redact, redact_text

log = logging.getLogger(__name__)

# JetStream API error codes that mean "it already exists", which declare() accepts.
_STREAM_IN_USE = 10058
_CONSUMER_EXISTS = (10013, 10148, 10105)


class NatsTransport(Transport):
    """A client of one NATS server (or cluster) with JetStream enabled."""

    scheme = "nats"
    capabilities: ClassVar[Capabilities] = Capabilities(
        durable=True,
        persistent=True,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __new__(cls, url: str, **options: Any) -> NatsTransport:
        # The history option changes a declared capability, so it picks the class.
        if cls is NatsTransport and NatsOptions.from_url(url).history == "all":
            cls = NatsReplayTransport
        return super().__new__(cls)

    def __init__(self, url: str, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(url, max_message_size=max_message_size)
        self.options = NatsOptions.from_url(url)
        self.address = redact(",".join(self.options.servers))
        self.nc: Any = None
        self.js: Any = None
        self._acks: AckInbox | None = None
        self._max_payload = max_message_size
        self._streams: dict[str, asyncio.Future[None]] = {}
        self._prefixes: dict[str, str] = {}
        self._declared: set[tuple[str, str]] = set()
        self._subscriptions: set[NatsSubscription] = set()
        self._publishing = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._last_error: str = ""

    # Connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        opts = self.options
        try:
            self.nc = FastHeadersClient()
            await within(
                self.nc.connect(
                    opts.servers,
                    name=opts.name,
                    # No TLS options: None, and nats-py follows the scheme (tls:// verifies).
                    tls=opts.tls.client_context() if opts.tls else None,
                    tls_hostname=opts.tls.server_name if opts.tls else None,
                    connect_timeout=max(1, int(opts.connect_timeout)),
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=self._on_error,
                    reconnected_cb=self._on_reconnected,
                    disconnected_cb=self._on_disconnected,
                ),
                timeout=opts.connect_timeout,
            )
        except (TimeoutError, Exception) as exc:
            reason = self._last_error or redact_text(str(exc)) or type(exc).__name__
            with contextlib.suppress(Exception):  # stop any reconnect loop it started
                await self.nc.close()
            self.nc = None
            raise ConnectionFailedError("nats", self.address, reason) from None
        if opts.tls is not None and not self.nc._server_info.get("tls_required"):
            # nats-py stays in plaintext when the server does not offer TLS: refuse that.
            await self.nc.close()
            self.nc = None
            raise ConnectionFailedError("nats", self.address, "TLS required, server offers none")
        self.js = self.nc.jetstream(timeout=opts.timeout)
        self._max_payload = min(self.max_message_size, int(self.nc.max_payload))
        self._acks = AckInbox(self.nc, timeout=opts.timeout, on_no_stream=self._forget_stream)
        await self._acks.start()

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = redact_text(str(exc)) or type(exc).__name__
        log.debug("nats %s: %s", self.address, self._last_error)

    async def _on_disconnected(self) -> None:
        log.info("nats %s: disconnected, reconnecting", self.address)

    async def _on_reconnected(self) -> None:
        log.info("nats %s: reconnected", self.address)
        for sub in self._subscriptions:
            sub.reset_pulls()  # a restarted server forgot our pull requests

    def _check_open(self) -> None:
        if self.nc is None or self.nc.is_closed:
            raise TransportError(f"nats transport {self.address} is not connected")
        if self._closing:
            raise TransportError(f"nats transport {self.address} is closing")

    # Streams and consumers --------------------------------------------------------------

    async def _ensure_stream(self, channel: str) -> None:
        future = self._streams.get(channel)
        if future is None:
            future = self._streams[channel] = asyncio.ensure_future(self._create_stream(channel))
        try:
            await asyncio.shield(future)
        except BaseException:
            if future.done() and self._streams.get(channel) is future:
                del self._streams[channel]
            raise

    async def _create_stream(self, channel: str) -> None:
        opts = self.options
        # Instance reply channels share one stream whose replies expire by themselves.
        replies = is_instance_reply_channel(channel)
        config = api.StreamConfig(
            name=stream_name(channel),
            subjects=[stream_subjects(channel)],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE if opts.storage == "file" else api.StorageType.MEMORY,
            max_age=REPLY_MAX_AGE if replies else opts.max_age or None,
            num_replicas=opts.replicas,
            duplicate_window=120.0,
            max_msg_size=self._max_payload,
        )
        try:
            await self.js.add_stream(config)
        except Exception as exc:
            if getattr(exc, "err_code", None) != _STREAM_IN_USE:
                raise TransportError(
                    f"nats transport {self.address}: cannot create stream for {channel!r}: {exc}"
                ) from None

    def _forget_stream(self, subject: str) -> None:
        # A 503 on publish: the stream is gone (deleted by an operator) or JetStream is
        # still starting; the next publish creates it again if needed.
        for channel, prefix in list(self._prefixes.items()):
            if subject.startswith(prefix):
                future = self._streams.get(channel)
                if future is not None and future.done():
                    del self._streams[channel]

    async def declare(self, channel: str, group: str) -> None:
        self._check_open()
        validate_name(channel, "channel")
        validate_name(group, "group")
        if (channel, group) in self._declared:
            return
        await self._ensure_stream(channel)
        opts = self.options
        deliver = api.DeliverPolicy.ALL if opts.history == "all" else api.DeliverPolicy.NEW
        stream = stream_name(channel)

        # An instance reply consumer goes by itself once nobody pulled for reply_ttl.
        inactive = opts.reply_ttl if is_instance_reply_channel(channel) else None

        async def one(shard: int) -> None:
            config = api.ConsumerConfig(
                durable_name=durable_name(channel, group, shard),
                filter_subject=shard_subject(channel, shard),
                deliver_policy=deliver,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=opts.ack_wait,
                max_ack_pending=1,  # the shard's next message waits for this one's ack
                max_deliver=-1,
                max_waiting=512,
                inactive_threshold=inactive,
            )
            try:
                await self.js.add_consumer(stream, config)
            except Exception as exc:
                if getattr(exc, "err_code", None) not in _CONSUMER_EXISTS:
                    raise TransportError(
                        f"nats transport {self.address}: cannot create consumer for group "
                        f"{group!r} on {channel!r}: {exc}"
                    ) from None

        await asyncio.gather(*(one(shard) for shard in range(shards_of(channel, opts.shards))))
        self._declared.add((channel, group))

    # Publishing -------------------------------------------------------------------------

    def _prepare(self, message: Message) -> tuple[str, bytes]:
        channel = message.destination
        prefix = self._prefixes.get(channel)
        if prefix is None:
            prefix = self._prefixes[channel] = subject_prefix(validate_name(channel, "channel"))
        header = header_block(message)
        size = len(header) + len(message.payload)
        if size > self._max_payload:
            raise MessageTooLargeError(size, self._max_payload, channel)
        shard = shard_for(
            message.partition_key, shards_of(channel, self.options.shards), message.id
        )
        return f"{prefix}{shard}", header

    async def _send(self, message: Message) -> None:
        subject, headers = self._prepare(message)
        self._check_open()
        self._enter()
        try:
            await self._ensure_stream(message.destination)
            assert self._acks is not None
            future = await self._acks.send(subject, message.payload, headers)
            await future
        finally:
            self._leave()

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        prepared = [self._prepare(m) for m in messages]  # every server limit checked before I/O
        self._check_open()
        self._enter()
        try:
            for channel in {m.destination for m in messages}:
                await self._ensure_stream(channel)
            assert self._acks is not None
            futures = [
                await self._acks.send(subject, m.payload, header)
                for (subject, header), m in zip(prepared, messages, strict=True)
            ]
            await asyncio.gather(*futures)
        finally:
            self._leave()

    def _enter(self) -> None:
        self._publishing += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._publishing -= 1
        if self._publishing == 0:
            self._idle.set()

    # Consuming --------------------------------------------------------------------------

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        await self.declare(channel, group)
        sub = NatsSubscription(
            channel,
            group,
            prefetch,
            nc=self.nc,
            js=self.js,
            options=self.options,
            on_close=self._subscriptions.discard,
        )
        self._subscriptions.add(sub)
        try:
            await sub.start()
        except Exception as exc:
            await sub.close()
            raise TransportError(
                f"nats transport {self.address}: cannot join group {group!r} on {channel!r}: "
                f"{redact_text(str(exc))}"
            ) from None
        return sub

    # Administration ---------------------------------------------------------------------

    async def delete_group(self, channel: str, group: str) -> bool:
        """Delete ``group``'s consumers on ``channel`` with their positions (tests, tools)."""
        self._check_open()
        validate_name(channel, "channel")
        validate_name(group, "group")
        stream = stream_name(channel)
        for shard in range(shards_of(channel, self.options.shards)):
            with contextlib.suppress(NotFoundError):  # already gone
                await self.js.delete_consumer(stream, durable_name(channel, group, shard))
        self._declared.discard((channel, group))
        return True

    async def delete_channel(self, channel: str) -> bool:
        """Delete ``channel``'s stream and its ``.dlq`` stream with every message and
        group on them (tests, tools). An instance reply channel's replies are purged
        from the shared reply stream, which stays."""
        self._check_open()
        validate_name(channel, "channel")
        if is_instance_reply_channel(channel):
            with contextlib.suppress(NotFoundError):
                await self.js.purge_stream(
                    stream_name(channel), subject=f"{subject_prefix(channel)}*"
                )
            self._declared = {(c, g) for c, g in self._declared if c != channel}
            return True
        for name in (channel, dead_letter_channel(channel)):
            with contextlib.suppress(NotFoundError):  # already gone
                await self.js.delete_stream(stream_name(name))
            self._streams.pop(name, None)
            self._declared = {(c, g) for c, g in self._declared if c != name}
        return True

    # Shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self.nc is None or self._closing:
            return
        self._closing = True
        timeout = self.options.timeout
        # Publishes already started finish (and get their PubAck) before the connection goes.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout + 1):
                await self._idle.wait()
        for sub in list(self._subscriptions):
            await sub.close()
        if self._acks is not None:
            await self._acks.close()
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)  # acks and NAKs written just before
        with contextlib.suppress(Exception):
            await self.nc.close()


class NatsReplayTransport(NatsTransport):
    """``?history=all``: a new group starts at the first message the stream still holds."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        durable=True,
        persistent=True,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=True,
    )
