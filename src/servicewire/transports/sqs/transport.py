"""``sqs://`` — Amazon SQS through aiobotocore.

A group is a queue, ``<prefix><channel>__<group>.fifo`` (:mod:`.naming`), created by
``declare``; a publish sends the message to every group queue of its channel
(:mod:`.membership`), so each group gets everything and a group's members compete for
its queue::

    transport = await connect_transport("sqs:///?region=eu-west-1")
    await transport.declare("orders", "billing")     # CreateQueue
    await transport.publish(message)                 # SendMessage to each group's queue
    async with await transport.subscribe("orders", "billing") as sub:
        async for delivery in sub:
            await delivery.ack()                     # DeleteMessage

FIFO queues (the default) carry the partition key as ``MessageGroupId``: SQS delivers
a key in order, one message in flight at a time, across competing members; the
message id is the ``MessageDeduplicationId``, so a publish retried within SQS's five
minutes is stored once. A message without a key is its own group (no order, full
parallelism). ``?queue_type=standard`` declares no order. Dead letters use the
``<channel>.dlq`` channel like every transport (the pipeline writes why); no redrive
policy is set, since SQS would move a message there without the reason. See
docs/transports/sqs.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, NoRegionError

from servicewire.errors import ConnectionFailedError, MessageTooLargeError, PublishError
from servicewire.messaging.channels import dead_letter_channel, is_instance_reply_channel
from servicewire.messaging.message import Message
from servicewire.transports.base import Capabilities, Subscription, Transport
from servicewire.transports.sqs.client import AWS_ERRORS, is_missing_queue, open_client
from servicewire.transports.sqs.headers import to_sqs
from servicewire.transports.sqs.membership import GroupQueues
from servicewire.transports.sqs.options import describe, parse_sqs_url
from servicewire.transports.sqs.replies import ReplyQueues
from servicewire.transports.sqs.subscription import SqsSubscription
from servicewire.urls import redact, redact_text

# MessageGroupId and MessageDeduplicationId: up to 128 of these (SendMessage reference).
_SQS_ID = re.compile(r"^[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}$")
_BATCH_BYTES = 256 * 1024
_CLOSE_WAIT = 120.0


def sqs_id(text: str) -> str:
    """``text`` if SQS accepts it as a group or deduplication id, else a digest of it."""
    if _SQS_ID.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()


class SqsTransport(Transport):
    """A client of Amazon SQS (or an SQS-compatible server such as moto)."""

    scheme = "sqs"
    capabilities = Capabilities(
        durable=True,
        persistent=True,
        ordered_per_key=True,
        competing_consumers=True,
        exactly_once=False,
        replays_history=False,
    )

    def __init__(self, url: str, *, max_message_size: int | None = None) -> None:
        self.address = parse_sqs_url(url)
        options = self.address.options
        super().__init__(url, max_message_size=max_message_size or options.max_message_size)
        self._fifo = options.queue_type == "fifo"
        declared = dataclasses.replace(
            type(self).capabilities, ordered_per_key=self._fifo, persistent=options.persistent
        )
        setattr(self, "capabilities", declared)  # noqa: B010 - per instance, as its URL says
        self._client: Any = None
        self._context: Any = None
        self._queues: GroupQueues | None = None
        self._replies: ReplyQueues | None = None
        self._subscriptions: set[SqsSubscription] = set()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    # Connection -------------------------------------------------------------------------

    def _failed(self, reason: str) -> ConnectionFailedError:
        return ConnectionFailedError("sqs", self.url, redact_text(reason))

    async def connect(self) -> None:
        try:
            self._client, self._context = await open_client(self.address)
        except NoRegionError:
            raise self._failed(
                "no AWS region: set ?region= in the URL, AWS_REGION, or the AWS config file"
            ) from None
        except (BotoCoreError, ValueError) as exc:
            raise self._failed(f"{type(exc).__name__}: {exc}") from None
        try:
            # One cheap call proves the endpoint answers and the credentials work.
            await self._client.list_queues(
                QueueNamePrefix=self.address.options.prefix, MaxResults=1
            )
        except AWS_ERRORS as exc:
            await self._close_client()
            where = describe(self.address)
            raise self._failed(f"{where}: {type(exc).__name__}: {exc}") from None
        self._queues = GroupQueues(self._client, self.address.options)
        self._replies = ReplyQueues(self._client, self._queues, self.address.options)
        self._closing = False

    def _require(self) -> GroupQueues:
        if self._queues is None or self._closing:
            raise PublishError(f"sqs transport {redact(self.url)} is not connected")
        return self._queues

    # Publishing -------------------------------------------------------------------------

    def _entry(self, message: Message) -> dict[str, Any]:
        """The SendMessage fields of ``message``; refused here when SQS would refuse it."""
        body, attributes, size = to_sqs(message)
        if size > self.max_message_size:
            # check_size counted headers and payload; SQS counts the body (base64 for
            # binary payloads) and the attributes (headers as JSON).
            raise MessageTooLargeError(size, self.max_message_size, message.destination)
        entry: dict[str, Any] = {"MessageBody": body, "MessageAttributes": attributes}
        if self._fifo:
            key = message.partition_key
            entry["MessageGroupId"] = sqs_id(key if key is not None else message.id)
            entry["MessageDeduplicationId"] = sqs_id(message.id)
        return entry

    async def _send(self, message: Message) -> None:
        entry = self._entry(message)
        queues = self._require()
        self._started()
        try:
            urls = await queues.of_channel(message.destination)
            await asyncio.gather(
                *(self._send_one(queues, message.destination, url, entry) for url in urls)
            )
        finally:
            self._finished()

    async def _send_one(
        self, queues: GroupQueues, channel: str, url: str, entry: dict[str, Any]
    ) -> None:
        try:
            await self._client.send_message(QueueUrl=url, **entry)
        except AWS_ERRORS as exc:
            if is_missing_queue(exc):
                queues.gone(channel, url)  # its group was deleted: nothing to deliver
                return
            raise PublishError(
                f"sqs: publish to {channel!r} not confirmed: {redact_text(repr(exc))}"
            ) from None

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        """``SendMessageBatch`` per group queue: ten entries (and 256 KiB) a request,
        the requests of one queue in order, queues in parallel."""
        if len(messages) < 2:
            await super()._send_batch(messages)
            return
        queues = self._require()
        by_channel: dict[str, list[dict[str, Any]]] = {}
        for message in messages:
            by_channel.setdefault(message.destination, []).append(self._entry(message))
        self._started()
        try:
            sends = []
            for channel, entries in by_channel.items():
                for url in await queues.of_channel(channel):
                    sends.append(self._send_entries(queues, channel, url, entries))
            await asyncio.gather(*sends)
        finally:
            self._finished()

    async def _send_entries(
        self, queues: GroupQueues, channel: str, url: str, entries: list[dict[str, Any]]
    ) -> None:
        chunk: list[dict[str, Any]] = []
        size = 0
        for entry in entries:
            entry_size = len(entry["MessageBody"]) + 1024
            if chunk and (len(chunk) == 10 or size + entry_size > _BATCH_BYTES):
                await self._send_chunk(queues, channel, url, chunk)
                chunk, size = [], 0
            chunk.append(entry)
            size += entry_size
        if chunk:
            await self._send_chunk(queues, channel, url, chunk)

    async def _send_chunk(
        self, queues: GroupQueues, channel: str, url: str, chunk: list[dict[str, Any]]
    ) -> None:
        request = [{"Id": str(n), **entry} for n, entry in enumerate(chunk)]
        try:
            answer = await self._client.send_message_batch(QueueUrl=url, Entries=request)
        except AWS_ERRORS as exc:
            if is_missing_queue(exc):
                queues.gone(channel, url)
                return
            raise PublishError(
                f"sqs: publish to {channel!r} not confirmed: {redact_text(repr(exc))}"
            ) from None
        failed = answer.get("Failed") or []
        if failed:
            raise PublishError(
                f"sqs: {len(failed)} of {len(chunk)} messages to {channel!r} refused: "
                f"{failed[0].get('Code')}: {failed[0].get('Message')}"
            )

    def _started(self) -> None:
        self._inflight += 1
        self._idle.clear()

    def _finished(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    # Groups -----------------------------------------------------------------------------

    async def declare(self, channel: str, group: str) -> None:
        queues = self._require()
        url = await queues.declare(channel, group)
        if is_instance_reply_channel(channel) and self._replies is not None:
            await self._replies.declared(channel, url)

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        queues = self._require()
        url = await queues.declare(channel, group)
        sub = SqsSubscription(
            self._client,
            url,
            channel,
            group,
            options=self.address.options,
            prefetch=prefetch,
            on_close=self._closed_subscription,
        )
        if is_instance_reply_channel(channel) and self._replies is not None:
            await self._replies.declared(channel, url)
            self._replies.keep(url, sub)
        await sub.start()
        self._subscriptions.add(sub)
        return sub

    def _closed_subscription(self, sub: SqsSubscription) -> None:
        self._subscriptions.discard(sub)
        if self._replies is not None:
            self._replies.release(sub)

    # Cleanup ----------------------------------------------------------------------------

    async def delete_group(self, channel: str, group: str) -> bool:
        """Delete ``group``'s queue on ``channel`` with its messages."""
        await self._require().delete_group(channel, group)
        return True

    async def delete_channel(self, channel: str) -> bool:
        """Delete every group queue of ``channel`` and of ``<channel>.dlq``.

        Each group is a queue of its own, so this is also every group's delete: SQS keeps
        nothing per channel besides its groups' queues.
        """
        queues = self._require()
        await queues.delete_channel(channel)
        await queues.delete_channel(dead_letter_channel(channel))
        return True

    async def sweep_reply_queues(self, channel_start: str = "") -> int:
        """Delete instance reply queues whose reader stopped renewing them over
        ``reply_ttl`` seconds ago (crashed instances); returns how many went."""
        self._require()
        assert self._replies is not None
        return await self._replies.sweep(channel_start)

    # Shutdown ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closing:
            return
        # Publishes already started finish (or fail) before the client goes away; each
        # is bounded by botocore's timeouts and retries.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT):
                await self._idle.wait()
        self._closing = True
        for sub in list(self._subscriptions):
            await sub.close()
        if self._replies is not None:
            await self._replies.close()
        await self._close_client()

    async def _close_client(self) -> None:
        if self._context is not None:
            with contextlib.suppress(Exception):
                await self._context.__aexit__(None, None, None)
        self._client = self._context = None
