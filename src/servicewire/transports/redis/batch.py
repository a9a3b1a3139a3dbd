"""Automatic pipelining: many concurrent callers, one Redis round trip per batch.

Every ``publish`` (XADD) and every ``ack`` (XACK) is a tiny command; sent one by one
they cost a round trip each. A :class:`Pipeliner` queues them while a pipeline is in
flight and sends the queue as the next pipeline, so concurrent callers share round
trips while each caller still waits for its own reply (the broker's confirmation)::

    xadd = Pipeliner(client, on_error=wrap)
    entry_id = await xadd.submit(lambda pipe: pipe.xadd("s", {"data": b"x"}))
    await xadd.drain()      # on close: everything submitted has been answered

Acks go through an :class:`AckBatcher`, which also merges the acks of one stream into
a single ``XACK`` with many ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

Op = Callable[[Pipeline], Any]

log = logging.getLogger("servicewire.transports.redis.transport")


class Pipeliner:
    """Sends queued commands as pipelines, one pipeline in flight at a time."""

    def __init__(
        self,
        client: Redis,
        *,
        on_error: Callable[[BaseException], BaseException],
        max_batch: int = 1024,
    ) -> None:
        self._client = client
        self._on_error = on_error
        self._max_batch = max_batch
        # (op, commands it adds, future): a whole publish_batch is one entry, one future.
        self._pending: list[tuple[Op, int, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, op: Op, commands: int = 1) -> asyncio.Future[Any]:
        """Queue ``op``, which adds ``commands`` commands to a pipeline.

        The future gets the reply (or, for several commands, the list of replies; an
        error reply fails it). Synchronous up to the queueing, so a caller that was
        scheduled before :meth:`drain` is always answered by it.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, commands, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return future

    async def drain(self) -> None:
        """Wait until every submitted command has its reply (or error)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def _take(self) -> list[tuple[Op, int, asyncio.Future[Any]]]:
        taken, size = 0, 0
        for _, commands, _ in self._pending:
            if taken and size + commands > self._max_batch:
                break
            taken, size = taken + 1, size + commands
        batch = self._pending[:taken]
        del self._pending[:taken]
        return batch

    async def _run(self) -> None:
        while self._pending:
            batch = self._take()
            pipe = self._client.pipeline(transaction=False)
            for op, _, _ in batch:
                op(pipe)
            try:
                results = await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                for _, _, future in batch:
                    if not future.done():
                        future.cancel()
                raise
            except Exception as exc:  # the whole batch failed: every caller gets the error
                error = self._on_error(exc)
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            at = 0
            for _, commands, future in batch:
                replies = results[at : at + commands]
                at += commands
                if future.done():
                    continue
                failed = next((r for r in replies if isinstance(r, Exception)), None)
                if failed is not None:
                    future.set_exception(self._on_error(failed))
                else:
                    future.set_result(replies[0] if commands == 1 else replies)


class AckBatcher:
    """XACKs of many deliveries as one ``XACK key group id id ...`` per stream and round trip.

    Acks carry no future: an ack is final for the application, so the batcher itself
    keeps retrying a failed round (Redis restarting) for ``retry_for`` seconds; after
    that, or once closed, the entries stay pending and are redelivered.
    """

    def __init__(self, client: Redis, *, retry_for: float = 30.0) -> None:
        self._client = client
        self._retry_for = retry_for
        self._pending: dict[tuple[str, str], list[bytes]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, key: str, group: str, entry_id: bytes) -> None:
        """Queue the ack now (no await); it goes out with the next round."""
        self._pending.setdefault((key, group), []).append(entry_id)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def drain(self, *, final: bool = False) -> None:
        """Wait until every queued ack was answered (``final``: stop retrying first)."""
        self._closed = self._closed or final
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        delay, failing_since = 0.05, 0.0
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, {}
            pipe = self._client.pipeline(transaction=False)
            for (key, group), ids in batch.items():
                pipe.xack(key, group, *ids)
            try:
                await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failing_since = failing_since or loop.time()
                if self._closed or loop.time() - failing_since > self._retry_for:
                    count = sum(len(ids) for ids in batch.values())
                    log.warning("dropping %d acks (%s): Redis will redeliver them", count, exc)
                    failing_since = 0.0
                    continue
                for (key, group), ids in batch.items():  # back in front, then wait
                    self._pending.setdefault((key, group), [])[:0] = ids
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay, failing_since = 0.05, 0.0
