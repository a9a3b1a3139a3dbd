"""``kinesis://`` — Amazon Kinesis Data Streams through aiobotocore.

A channel is a stream, ``<prefix><channel>-<hash>`` (:mod:`.naming`), with ``shards``
shards; a publish is one ``PutRecord`` whose partition key is the message's (Kinesis
hashes it to a shard, so a key keeps its order). Each group reads every shard on its
own, from its own checkpoints; the members of a group split the shards between them
through leases in the channel's DynamoDB table (:mod:`.leases`), like the Kinesis
Client Library::

    transport = await connect_transport("kinesis:///?region=eu-west-1")
    await transport.declare("orders", "billing")     # CreateStream, CreateTable
    await transport.publish(message)                 # PutRecord
    async with await transport.subscribe("orders", "billing") as sub:
        async for delivery in sub:
            await delivery.ack()                     # checkpoint (in order per shard)

Kinesis keeps records for ``retention`` hours whoever read them, so a new group starts
at the oldest record (``TRIM_HORIZON``): the transport declares ``replays_history``, and
a publish to a channel nobody declared creates its stream (records wait there for the
groups to come). Dead letters use the ``<channel>.dlq`` channel like every transport.
See docs/transports/kinesis.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, NoRegionError

from servicewire.errors import ConnectionFailedError, MessageTooLargeError, PublishError
from servicewire.messaging.channels import (
    dead_letter_channel,
    is_instance_reply_channel,
    shards_of,
)
from servicewire.messaging.message import Message
from servicewire.transports.base import Capabilities, Subscription, Transport
from servicewire.transports.kinesis.client import AWS_ERRORS, Clients, error_code, is_missing
from servicewire.transports.kinesis.leases import LeaseTable
from servicewire.transports.kinesis.naming import stream_name, table_name
from servicewire.transports.kinesis.options import describe, parse_kinesis_url
from servicewire.transports.kinesis.records import record_size, to_record
from servicewire.transports.kinesis.replies import ReplyStreams
from servicewire.transports.kinesis.subscription import KinesisSubscription
from servicewire.urls import redact, redact_text

_BATCH_RECORDS = 500
_BATCH_BYTES = 5 * 1024 * 1024
_ACTIVE_WAIT = 300.0
_CLOSE_WAIT = 120.0
_PUT_RETRIES = 8


class KinesisTransport(Transport):
    """A client of Amazon Kinesis Data Streams (or an emulator such as moto)."""

    scheme = "kinesis"
    capabilities = Capabilities(
        durable=True,
        persistent=True,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=True,
    )

    def __init__(self, url: str, *, max_message_size: int | None = None) -> None:
        self.address = parse_kinesis_url(url)
        options = self.address.options
        super().__init__(url, max_message_size=max_message_size or options.max_message_size)
        declared = dataclasses.replace(type(self).capabilities, persistent=options.persistent)
        setattr(self, "capabilities", declared)  # noqa: B010 - per instance, as its URL says
        self._clients: Clients | None = None
        self._streams: dict[str, asyncio.Future[None]] = {}
        self._tables: dict[str, asyncio.Future[LeaseTable]] = {}
        self._subscriptions: set[KinesisSubscription] = set()
        self._replies: ReplyStreams | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    # Connection -------------------------------------------------------------------------

    def _failed(self, reason: str) -> ConnectionFailedError:
        return ConnectionFailedError("kinesis", self.url, redact_text(reason))

    async def connect(self) -> None:
        try:
            self._clients = await Clients.open(self.address)
        except NoRegionError:
            raise self._failed(
                "no AWS region: set ?region= in the URL, AWS_REGION, or the AWS config file"
            ) from None
        except (BotoCoreError, ValueError) as exc:
            raise self._failed(f"{type(exc).__name__}: {exc}") from None
        try:
            # One cheap call to each API proves the endpoint answers and the credentials work.
            await self._clients.kinesis.list_streams(Limit=1)
            await self._clients.dynamodb.list_tables(Limit=1)
        except AWS_ERRORS as exc:
            await self._close_clients()
            where = describe(self.address)
            raise self._failed(f"{where}: {type(exc).__name__}: {exc}") from None
        self._replies = ReplyStreams(self._clients, self.address.options)
        self._closing = False

    def _require(self) -> Clients:
        if self._clients is None or self._closing:
            raise PublishError(f"kinesis transport {redact(self.url)} is not connected")
        return self._clients

    def stream(self, channel: str) -> str:
        """The name of ``channel``'s stream."""
        return stream_name(self.address.options.prefix, channel)

    # Streams and tables -----------------------------------------------------------------

    async def _ensure_stream(self, channel: str) -> None:
        """Create ``channel``'s stream unless it exists; return once it is active."""
        known = self._streams.get(channel)
        if known is None or (known.done() and known.exception() is not None):
            known = asyncio.ensure_future(self._create_stream(channel))
            self._streams[channel] = known
        await asyncio.shield(known)

    async def _create_stream(self, channel: str) -> None:
        kinesis = self._require().kinesis
        options = self.address.options
        name = self.stream(channel)
        # An instance's reply channel has one reader: one shard is all it can use.
        shards = shards_of(channel, options.shards)
        summary: dict[str, Any] = {}
        async with asyncio.timeout(_ACTIVE_WAIT):
            while not summary:
                try:
                    await kinesis.create_stream(StreamName=name, ShardCount=shards)
                except AWS_ERRORS as exc:
                    if error_code(exc) != "ResourceInUseException":
                        raise
                # CREATING: wait. DELETING (deleted just before): create it again after.
                while True:
                    try:
                        answer = await kinesis.describe_stream_summary(StreamName=name)
                    except AWS_ERRORS as exc:
                        if not is_missing(exc):
                            raise
                        break
                    status = answer["StreamDescriptionSummary"]["StreamStatus"]
                    if status in ("ACTIVE", "UPDATING"):
                        summary = answer["StreamDescriptionSummary"]
                        break
                    await asyncio.sleep(1.0)
        if options.retention > summary.get("RetentionPeriodHours", 24):
            await kinesis.increase_stream_retention_period(
                StreamName=name, RetentionPeriodHours=options.retention
            )

    async def _table(self, channel: str) -> LeaseTable:
        known = self._tables.get(channel)
        if known is None or (known.done() and known.exception() is not None):
            known = asyncio.ensure_future(self._create_table(channel))
            self._tables[channel] = known
        return await asyncio.shield(known)

    async def _create_table(self, channel: str) -> LeaseTable:
        table = LeaseTable(
            self._require().dynamodb, table_name(self.address.options.prefix, channel)
        )
        await table.ensure()
        return table

    # Publishing -------------------------------------------------------------------------

    def _record(self, message: Message) -> tuple[bytes, str]:
        """The record of ``message``; refused here when Kinesis would refuse it."""
        data, key = to_record(message)
        size = record_size(data, key)
        if size > self.max_message_size:
            # check_size counted headers and payload; Kinesis counts the data (with our
            # envelope) and the partition key.
            raise MessageTooLargeError(size, self.max_message_size, message.destination)
        return data, key

    async def _send(self, message: Message) -> None:
        data, key = self._record(message)
        clients = self._require()
        self._started()
        try:
            for attempt in range(2):
                try:
                    await clients.kinesis.put_record(
                        StreamName=self.stream(message.destination), Data=data, PartitionKey=key
                    )
                    return
                except AWS_ERRORS as exc:
                    if is_missing(exc) and is_instance_reply_channel(message.destination):
                        return  # its instance is gone: a sender never creates it
                    if is_missing(exc) and attempt == 0:
                        self._streams.pop(message.destination, None)
                        await self._ensure_stream(message.destination)
                        continue
                    raise PublishError(
                        f"kinesis: publish to {message.destination!r} not confirmed: "
                        f"{redact_text(repr(exc))}"
                    ) from None
        finally:
            self._finished()

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        """``PutRecords`` per channel: 500 records (and 5 MiB) a request, in order;
        records Kinesis refused (throttling) are sent again before the next request."""
        if len(messages) < 2:
            await super()._send_batch(messages)
            return
        self._require()
        by_channel: dict[str, list[tuple[bytes, str]]] = {}
        for message in messages:
            by_channel.setdefault(message.destination, []).append(self._record(message))
        self._started()
        try:
            await asyncio.gather(*(self._send_records(c, r) for c, r in by_channel.items()))
        finally:
            self._finished()

    async def _send_records(self, channel: str, records: list[tuple[bytes, str]]) -> None:
        chunk: list[tuple[bytes, str]] = []
        size = 0
        for record in records:
            record_bytes = record_size(*record)
            if chunk and (len(chunk) == _BATCH_RECORDS or size + record_bytes > _BATCH_BYTES):
                await self._put_chunk(channel, chunk)
                chunk, size = [], 0
            chunk.append(record)
            size += record_bytes
        if chunk:
            await self._put_chunk(channel, chunk)

    async def _put_chunk(self, channel: str, chunk: list[tuple[bytes, str]]) -> None:
        kinesis = self._require().kinesis
        pending = chunk
        for attempt in range(_PUT_RETRIES):
            entries = [{"Data": data, "PartitionKey": key} for data, key in pending]
            try:
                answer = await kinesis.put_records(StreamName=self.stream(channel), Records=entries)
            except AWS_ERRORS as exc:
                if is_missing(exc) and is_instance_reply_channel(channel):
                    return  # its instance is gone: a sender never creates it
                if is_missing(exc) and attempt == 0:
                    self._streams.pop(channel, None)
                    await self._ensure_stream(channel)
                    continue
                raise PublishError(
                    f"kinesis: publish to {channel!r} not confirmed: {redact_text(repr(exc))}"
                ) from None
            results = answer.get("Records") or []
            pending = [
                record
                for record, result in zip(pending, results, strict=False)
                if result.get("ErrorCode")
            ]
            if not pending:
                return
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        raise PublishError(f"kinesis: {len(pending)} records to {channel!r} refused (throttled)")

    def _started(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _finished(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    # Groups -----------------------------------------------------------------------------

    async def declare(self, channel: str, group: str) -> None:
        """Create the channel's stream and lease table; a group needs nothing more (it
        starts at the oldest record the stream keeps)."""
        self._require()
        await self._ensure_stream(channel)
        await self._table(channel)
        if is_instance_reply_channel(channel) and self._replies is not None:
            await self._replies.declared(channel, self.stream(channel))

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        for attempt in range(2):
            try:
                return await self._subscribe(channel, group, prefetch)
            except AWS_ERRORS as exc:
                if not is_missing(exc) or attempt == 1:
                    raise
                # Deleted elsewhere since this client made them: make them again.
                self._streams.pop(channel, None)
                self._tables.pop(channel, None)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _subscribe(self, channel: str, group: str, prefetch: int) -> Subscription:
        clients = self._require()
        await self._ensure_stream(channel)
        table = await self._table(channel)
        sub = KinesisSubscription(
            clients,
            self.stream(channel),
            table,
            channel,
            group,
            options=self.address.options,
            prefetch=prefetch,
            on_close=self._closed_subscription,
        )
        await sub.start()
        self._subscriptions.add(sub)
        if is_instance_reply_channel(channel) and self._replies is not None:
            await self._replies.declared(channel, self.stream(channel))
            self._replies.keep(self.stream(channel), channel, sub)
        return sub

    def _closed_subscription(self, sub: KinesisSubscription) -> None:
        self._subscriptions.discard(sub)
        if self._replies is not None:
            self._replies.release(sub)

    # Cleanup ----------------------------------------------------------------------------

    async def delete_group(self, channel: str, group: str) -> bool:
        """Delete ``group``'s leases and checkpoints on ``channel`` (its items in the
        channel's table). The records stay: they are the channel's."""
        clients = self._require()
        table = LeaseTable(clients.dynamodb, table_name(self.address.options.prefix, channel))
        await table.delete_group(group)
        return True

    async def delete_channel(self, channel: str) -> bool:
        """Delete the streams and lease tables of ``channel`` and ``<channel>.dlq``."""
        clients = self._require()
        prefix = self.address.options.prefix
        for name in (channel, dead_letter_channel(channel)):
            self._streams.pop(name, None)
            self._tables.pop(name, None)
            try:
                await clients.kinesis.delete_stream(
                    StreamName=stream_name(prefix, name), EnforceConsumerDeletion=True
                )
            except AWS_ERRORS as exc:
                if not is_missing(exc):
                    raise
            await LeaseTable(clients.dynamodb, table_name(prefix, name)).drop()
        return True

    async def sweep_reply_streams(self, channel_start: str = "") -> int:
        """Delete instance reply streams whose reader stopped renewing them over
        ``reply_ttl`` seconds ago (crashed instances); returns how many went."""
        self._require()
        assert self._replies is not None
        return await self._replies.sweep(channel_start)

    # Shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closing:
            return
        # Publishes already started finish (or fail) before the clients go away.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT):
                await self._idle.wait()
        self._closing = True
        for sub in list(self._subscriptions):
            await sub.close()
        if self._replies is not None:
            await self._replies.close()
        pending: list[asyncio.Future[Any]] = [*self._streams.values(), *self._tables.values()]
        for future in pending:
            if not future.done():
                future.cancel()
        await self._close_clients()

    async def _close_clients(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            await clients.close()
