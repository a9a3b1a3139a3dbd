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
