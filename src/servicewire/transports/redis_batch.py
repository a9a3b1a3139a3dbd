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
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

Op = Callable[[Pipeline], Any]


class Pipeliner:
    """Sends queued commands as pipelines, one pipeline in flight at a time."""

    def __init__(
        self,
        client: Redis,
        *,
        on_error: Callable[[BaseException], BaseException],
        max_batch: int = 512,
    ) -> None:
        self._client = client
        self._on_error = on_error
        self._max_batch = max_batch
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue ``op`` (it adds one command to a pipeline); the future gets its reply.

        Synchronous up to the queueing, so a caller that was scheduled before
        :meth:`drain` is always answered by it.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return future

    async def drain(self) -> None:
        """Wait until every submitted command has its reply (or error)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            pipe = self._client.pipeline(transaction=False)
            for op, _ in batch:
                op(pipe)
            try:
                results = await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.cancel()
                raise
            except Exception as exc:  # the whole batch failed: every caller gets the error
                error = self._on_error(exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(self._on_error(result))
                else:
                    future.set_result(result)


class AckBatcher:
    """XACKs of many deliveries as one ``XACK key group id id ...`` per stream and round trip."""

    def __init__(
        self, client: Redis, *, on_error: Callable[[BaseException], BaseException]
    ) -> None:
        self._client = client
        self._on_error = on_error
        self._pending: dict[tuple[str, str], list[tuple[bytes, asyncio.Future[Any]]]] = {}
        self._task: asyncio.Task[None] | None = None

    def submit(self, key: str, group: str, entry_id: bytes) -> asyncio.Future[Any]:
        """Queue the ack now (no await); the future completes when Redis answered."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.setdefault((key, group), []).append((entry_id, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return future

    async def drain(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            pipe = self._client.pipeline(transaction=False)
            for (key, group), items in batch.items():
                pipe.xack(key, group, *[entry_id for entry_id, _ in items])
            try:
                results = await pipe.execute(raise_on_error=False)
            except asyncio.CancelledError:
                for items in batch.values():
                    for _, future in items:
                        future.cancel()
                raise
            except Exception as exc:
                results = [exc] * len(batch)
            for items, result in zip(batch.values(), results, strict=True):
                error = self._on_error(result) if isinstance(result, Exception) else None
                for _, future in items:
                    if future.done():
                        continue
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(None)
