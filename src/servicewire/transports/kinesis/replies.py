"""Instance reply streams that do not pile up: deleted on stop, swept after a crash.

Kinesis streams have no time to live, and one costs shard-hours while it exists. An
instance reply channel (``svc.replies.3f2a``) is read by one instance only and is a
stream of one shard; ``Service.stop`` tears it down
(:mod:`servicewire.service.reply_router`), and a sender never creates it (a reply to a
gone instance goes nowhere). For the instance that crashes instead, the stream carries
the tags ``servicewire-channel`` and ``servicewire-beat`` (the time its reader last said
it is alive, renewed every third of ``reply_ttl`` while a member reads it). When an
instance subscribes to its own reply channel, it sweeps the reply streams of its
service whose beat is older than ``reply_ttl``::

    replies = ReplyStreams(clients, options)
    await replies.declared("svc.replies.3f2a", stream)   # tags the beat, sweeps dead siblings
    replies.keep(stream, sub)                            # renews the beat while sub reads
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from servicewire.transports.kinesis.client import AWS_ERRORS, Clients, is_missing
from servicewire.transports.kinesis.leases import LeaseTable
from servicewire.transports.kinesis.naming import LEASES_SUFFIX, stream_prefix
from servicewire.transports.kinesis.options import KinesisOptions

log = logging.getLogger("servicewire.transports.kinesis.replies")

BEAT_TAG = "servicewire-beat"
CHANNEL_TAG = "servicewire-channel"


class ReplyStreams:
    """Beats of the reply streams this transport reads; sweeps of dead ones."""

    def __init__(self, clients: Clients, options: KinesisOptions) -> None:
        self._clients = clients
        self._options = options
        self._readers: dict[object, asyncio.Task[None]] = {}
        self._swept: set[str] = set()

    async def beat(self, stream: str, channel: str) -> None:
        """Say the reader of ``stream`` is alive now."""
        with contextlib.suppress(*AWS_ERRORS):
            await self._clients.kinesis.add_tags_to_stream(
                StreamName=stream,
                Tags={BEAT_TAG: str(int(time.time())), CHANNEL_TAG: channel[:256]},
            )

    async def declared(self, channel: str, stream: str) -> None:
        """``channel``'s reply stream exists: beat, then sweep its service's dead ones
        (once per service and transport)."""
        await self.beat(stream, channel)
        service = channel.split(".replies.", 1)[0] + ".replies."
        if service not in self._swept:
            self._swept.add(service)
            swept = await self.sweep(service, keep=stream)
            if swept:
                log.info("kinesis: swept %d dead reply stream(s) of %s", swept, service)

    def keep(self, stream: str, channel: str, reader: object) -> None:
        """Renew the beat of ``stream`` while ``reader`` is open (until :meth:`release`)."""
        self._readers[reader] = asyncio.create_task(
            self._keep(stream, channel), name=f"kinesis-beat:{stream}"
        )

    def release(self, reader: object) -> None:
        task = self._readers.pop(reader, None)
        if task is not None:
            task.cancel()

    async def _keep(self, stream: str, channel: str) -> None:
        while True:
            await asyncio.sleep(self._options.reply_ttl / 3)
            await self.beat(stream, channel)

    async def _streams(self, start: str) -> list[str]:
        names: list[str] = []
        request: dict[str, object] = {"Limit": 100}
        for _ in range(10_000):
            answer = await self._clients.kinesis.list_streams(**request)
            found = answer.get("StreamNames", [])
            names += [n for n in found if n.startswith(start)]
            if not answer.get("HasMoreStreams") or not found:
                break
            request = {"Limit": 100, "ExclusiveStartStreamName": found[-1]}
        return names

    async def sweep(self, channel_start: str = "", keep: str | None = None) -> int:
        """Delete reply streams (channels starting with ``channel_start``) whose beat is
        older than ``reply_ttl``, with their lease tables; a stream without a beat is
        not ours to judge."""
        now = time.time()
        swept = 0
        kinesis = self._clients.kinesis
        for stream in await self._streams(stream_prefix(self._options.prefix, channel_start)):
            if stream == keep:
                continue
            try:
                answer = await kinesis.list_tags_for_stream(StreamName=stream)
            except AWS_ERRORS as exc:
                if not is_missing(exc):
                    log.warning("kinesis: cannot read the tags of %s: %s", stream, exc)
                continue
            tags = {t["Key"]: t.get("Value", "") for t in answer.get("Tags", [])}
            channel, beat = tags.get(CHANNEL_TAG, ""), tags.get(BEAT_TAG)
            if not channel.startswith(channel_start) or beat is None or not beat.isdigit():
                continue
            if now - int(beat) > self._options.reply_ttl:
                with contextlib.suppress(*AWS_ERRORS):
                    await kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
                    await LeaseTable(self._clients.dynamodb, stream + LEASES_SUFFIX).drop()
                    swept += 1
        return swept

    async def close(self) -> None:
        for task in self._readers.values():
            task.cancel()
        for task in list(self._readers.values()):
            with contextlib.suppress(BaseException):
                await task
        self._readers.clear()
