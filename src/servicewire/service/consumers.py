"""The consuming side of a service: a task per subscription, and the inbox's upkeep.

Each consumer task reads one subscription and hands deliveries to its pipeline, up to
``concurrency`` at a time; stopping cancels the readers first and then waits for the
deliveries already in flight::

    consumers = Consumers()
    await consumers.add(transport, "ftgo.order.commands", "order-service", pipeline,
                        prefetch=64, concurrency=32)
    ...
    await consumers.stop(timeout=30.0)
    consumers.clear()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.pipeline import inbox
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.unit_of_work import Pipeline
from servicewire.transports import Subscription, Transport

# The name the service module logged under before this code moved here.
log = logging.getLogger("servicewire.service.service")


class Consumers:
    """The subscriptions a service consumes and the deliveries it is processing."""

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.inflight: set[asyncio.Task[Outcome]] = set()
        """Deliveries being processed right now."""
        self._tasks: list[asyncio.Task[None]] = []

    async def add(
        self,
        transport: Transport,
        channel: str,
        group: str,
        pipeline: Pipeline,
        *,
        prefetch: int,
        concurrency: int,
    ) -> None:
        """Subscribe to ``channel`` as ``group`` and process what arrives with ``pipeline``."""
        sub = await transport.subscribe(channel, group, prefetch=prefetch)
        self.subscriptions.append(sub)
        self._tasks.append(asyncio.create_task(self._consume(sub, pipeline, concurrency)))

    async def _consume(self, sub: Subscription, pipeline: Pipeline, concurrency: int) -> None:
        # Per-key order is the transport's job (one unsettled delivery per shard), so
        # deliveries can be processed concurrently here up to `concurrency`.
        slots = asyncio.Semaphore(concurrency)
        try:
            async for delivery in sub:
                await slots.acquire()
                task = asyncio.create_task(pipeline.process(delivery))
                self.inflight.add(task)
                task.add_done_callback(self.inflight.discard)
                task.add_done_callback(lambda _t: slots.release())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer of %s/%s stopped", sub.channel, sub.group)

    async def stop(self, timeout: float) -> None:
        """Take no more deliveries, wait up to ``timeout`` for those in flight, unsubscribe."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.inflight:
            await asyncio.wait(list(self.inflight), timeout=timeout)
        first: Exception | None = None
        for sub in self.subscriptions:
            try:  # one subscription failing to close must not keep the others open
                await sub.close()
            except Exception as exc:
                log.exception("closing the subscription to %s/%s failed", sub.channel, sub.group)
                first = first or exc
        if first is not None:
            raise first

    def clear(self) -> None:
        """Forget the stopped subscriptions and tasks (the last step of stopping)."""
        self.subscriptions.clear()
        self._tasks.clear()


async def clean_inbox_forever(
    engine: AsyncEngine, retention: timedelta, every: float, service: str
) -> None:
    """Every ``every`` seconds, remove the inbox ids older than ``retention``."""
    while True:
        await asyncio.sleep(every)
        try:
            removed = await inbox.purge_expired(engine, retention)
            if removed:
                log.info("%s: removed %d expired inbox ids", service, removed)
        except Exception:
            log.exception("inbox cleanup failed; will try again")
