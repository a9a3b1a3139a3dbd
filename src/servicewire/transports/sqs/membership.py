"""Which groups a channel has: one queue per group, created by ``declare``, listed by prefix.

SQS has no fan-out of its own (that is SNS), so a publisher sends each message to every
group queue of its channel. It learns them with ``ListQueues`` on the channel's name
prefix (:mod:`.naming`) and trusts the list for ``group_refresh`` seconds; its own
declares join the list at once. So a group declared by *another* process receives what
is published from at most ``group_refresh`` seconds after its declare::

    queues = GroupQueues(client, options)
    url = await queues.declare("orders", "billing")     # CreateQueue (FIFO by default)
    for url in await queues.of_channel("orders"):         # every group's queue
        ...
    await queues.delete_channel("orders")                 # every group's queue, gone
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from servicewire.errors import TransportError
from servicewire.messaging.channels import validate_name
from servicewire.transports.sqs.client import AWS_ERRORS, error_code, is_missing_queue
from servicewire.transports.sqs.naming import channel_prefix, queue_name
from servicewire.transports.sqs.options import SqsOptions

CHANNEL_TAG = "servicewire-channel"
GROUP_TAG = "servicewire-group"
CREATED_TAG = "servicewire-created"
_PAGES = 100  # ListQueues pages of 1000: bounded, far above a channel's group count


class GroupQueues:
    """The group queues this transport declared or listed, by channel."""

    def __init__(self, client: Any, options: SqsOptions) -> None:
        self._client = client
        self._options = options
        self._fifo = options.queue_type == "fifo"
        self._urls: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._channels: dict[str, tuple[float, set[str]]] = {}

    def name(self, channel: str, group: str) -> str:
        return queue_name(self._options.prefix, channel, group, fifo=self._fifo)

    # Declaring ----------------------------------------------------------------------------

    async def declare(self, channel: str, group: str) -> str:
        """The URL of ``group``'s queue on ``channel``, created on first use."""
        key = (channel, group)
        known = self._urls.get(key)
        if known is None:
            validate_name(channel, "channel")
            validate_name(group, "group")
            known = self._urls[key] = asyncio.get_running_loop().create_future()
            try:
                known.set_result(await self._create(channel, group))
            except BaseException as exc:
                del self._urls[key]
                known.set_exception(exc)
                known.exception()  # consumed here; awaiting callers still see it
                raise
        url = await asyncio.shield(known)
        listed = self._channels.get(channel)
        if listed is not None:
            listed[1].add(url)
        return url

    async def _create(self, channel: str, group: str) -> str:
        name = self.name(channel, group)
        existing = await self.url_of(name)
        if existing is not None:
            return existing
        options = self._options
        attributes = {
            "VisibilityTimeout": str(options.visibility_timeout),
            "MessageRetentionPeriod": str(options.retention),
        }
        if self._fifo:
            # Our own deduplication id (the message id), not a hash of the body.
            attributes |= {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
        tags = {
            CHANNEL_TAG: channel[:256],
            GROUP_TAG: group[:256],
            CREATED_TAG: str(int(time.time())),
        }
        try:
            made = await self._client.create_queue(QueueName=name, Attributes=attributes, tags=tags)
        except AWS_ERRORS as exc:
            if error_code(exc) in ("QueueAlreadyExists", "QueueNameExists"):
                # Made meanwhile by a client with other settings: theirs stand.
                existing = await self.url_of(name)
                if existing is not None:
                    return existing
            raise TransportError(
                f"sqs: cannot create queue {name!r} for group {group!r} on {channel!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return str(made["QueueUrl"])

    async def url_of(self, name: str) -> str | None:
        """The URL of queue ``name``, or ``None`` when it does not exist."""
        try:
            found = await self._client.get_queue_url(QueueName=name)
        except AWS_ERRORS as exc:
            if is_missing_queue(exc):
                return None
            raise TransportError(f"sqs: cannot look up queue {name!r}: {exc}") from None
        return str(found["QueueUrl"])

    # Listing ------------------------------------------------------------------------------

    async def of_channel(self, channel: str) -> set[str]:
        """The queue URLs of every group on ``channel`` (listed at most every
        ``group_refresh`` seconds)."""
        now = time.monotonic()
        listed = self._channels.get(channel)
        if listed is not None and now - listed[0] < self._options.group_refresh:
            return listed[1]
        urls = set(await self.list(channel_prefix(self._options.prefix, channel)))
        if len(self._channels) >= 10_000:  # bounded: channel names come from callers
            self._channels.clear()
        self._channels[channel] = (now, urls)
        return urls

    async def list(self, prefix: str) -> list[str]:
        """Every queue URL whose name starts with ``prefix``."""
        urls: list[str] = []
        token: str | None = None
        for _page in range(_PAGES):
            request: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 1000}
            if token:
                request["NextToken"] = token
            try:
                page = await self._client.list_queues(**request)
            except AWS_ERRORS as exc:
                raise TransportError(f"sqs: cannot list queues {prefix!r}*: {exc}") from None
            urls.extend(page.get("QueueUrls", []))
            token = page.get("NextToken")
            if not token:
                break
        return urls

    def gone(self, channel: str, url: str) -> None:
        """Forget a queue SQS says no longer exists (its group was deleted)."""
        listed = self._channels.get(channel)
        if listed is not None:
            listed[1].discard(url)
        for key, known in list(self._urls.items()):
            if known.done() and not known.exception() and known.result() == url:
                del self._urls[key]

    # Deleting -----------------------------------------------------------------------------

    async def delete(self, url: str) -> None:
        try:
            await self._client.delete_queue(QueueUrl=url)
        except AWS_ERRORS as exc:
            if not is_missing_queue(exc):
                raise TransportError(f"sqs: cannot delete queue {url!r}: {exc}") from None

    async def delete_group(self, channel: str, group: str) -> None:
        """Delete ``group``'s queue on ``channel`` with its messages (gone: no error)."""
        self._urls.pop((channel, group), None)
        url = await self.url_of(self.name(channel, group))
        if url is not None:
            await self.delete(url)
            self.gone(channel, url)

    async def delete_channel(self, channel: str) -> None:
        """Delete every group queue of ``channel``."""
        for url in await self.list(channel_prefix(self._options.prefix, channel)):
            await self.delete(url)
            self.gone(channel, url)
        self._channels.pop(channel, None)
        for key in [k for k in self._urls if k[0] == channel]:
            del self._urls[key]
