"""Instance reply queues that do not pile up: deleted on stop, swept after a crash.

SQS queues have no time to live. An instance reply channel (``svc.replies.3f2a``) is
read by one instance only; ``Service.stop`` tears its queue down
(:mod:`servicewire.service.reply_router`). For the instance that crashes instead, the
queue carries a ``servicewire-beat`` tag: the time its reader last said it is alive,
renewed every third of ``reply_ttl`` while a member reads it. When an instance declares
its own reply channel, it sweeps the reply queues of its service whose beat is older
than ``reply_ttl``: the crashed sibling's queue goes with the next start of any
instance of that service (or with :meth:`SqsTransport.sweep_reply_queues`)::

    replies = ReplyQueues(client, queues, options)
    await replies.declared("svc.replies.3f2a", url)   # tags the beat, sweeps dead siblings
    replies.keep(url, sub)                             # renews the beat while sub reads
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from servicewire.transports.sqs.client import AWS_ERRORS, is_missing_queue
from servicewire.transports.sqs.membership import CHANNEL_TAG, GroupQueues
from servicewire.transports.sqs.naming import search_prefix
from servicewire.transports.sqs.options import SqsOptions

log = logging.getLogger("servicewire.transports.sqs.replies")

BEAT_TAG = "servicewire-beat"


class ReplyQueues:
    """Beats of the reply queues this transport reads; sweeps of dead ones."""

    def __init__(self, client: Any, queues: GroupQueues, options: SqsOptions) -> None:
        self._client = client
        self._queues = queues
        self._options = options
        self._readers: dict[object, asyncio.Task[None]] = {}
        self._swept: set[str] = set()

    async def beat(self, url: str) -> None:
        """Say the reader of the queue at ``url`` is alive now."""
        with contextlib.suppress(*AWS_ERRORS):
            await self._client.tag_queue(QueueUrl=url, Tags={BEAT_TAG: str(int(time.time()))})

    async def declared(self, channel: str, url: str) -> None:
        """``channel``'s reply queue exists at ``url``: beat, then sweep its service's
        dead ones (once per service and transport)."""
        await self.beat(url)
        service = channel.split(".replies.", 1)[0] + ".replies."
        if service not in self._swept:
            self._swept.add(service)
            swept = await self.sweep(service, keep=url)
            if swept:
                log.info("sqs: swept %d dead reply queue(s) of %s", swept, service)

    def keep(self, url: str, reader: object) -> None:
        """Renew the beat of ``url`` while ``reader`` is open (until :meth:`release`)."""
        self._readers[reader] = asyncio.create_task(self._keep(url), name=f"sqs-beat:{url}")

    def release(self, reader: object) -> None:
        task = self._readers.pop(reader, None)
        if task is not None:
            task.cancel()

    async def _keep(self, url: str) -> None:
        while True:
            await asyncio.sleep(self._options.reply_ttl / 3)
            await self.beat(url)

    async def sweep(self, channel_start: str = "", keep: str | None = None) -> int:
        """Delete reply queues (channels starting with ``channel_start``) whose beat is
        older than ``reply_ttl``; a queue without a beat is not ours to judge."""
        now = time.time()
        swept = 0
        for url in await self._queues.list(search_prefix(self._options.prefix, channel_start)):
            if url == keep:
                continue
            try:
                tags = (await self._client.list_queue_tags(QueueUrl=url)).get("Tags") or {}
            except AWS_ERRORS as exc:
                if not is_missing_queue(exc):
                    log.warning("sqs: cannot read the tags of %s: %s", url, exc)
                continue
            channel, beat = tags.get(CHANNEL_TAG, ""), tags.get(BEAT_TAG)
            if not channel.startswith(channel_start) or beat is None or not beat.isdigit():
                continue
            if now - int(beat) > self._options.reply_ttl:
                await self._queues.delete(url)
                swept += 1
        return swept

    async def close(self) -> None:
        for task in self._readers.values():
            task.cancel()
        for task in list(self._readers.values()):
            with contextlib.suppress(BaseException):
                await task
        self._readers.clear()
