"""The consuming side of a service: a task per subscription, and the inbox's upkeep.

Each consumer reads one subscription and hands its pipeline *batches*: the deliveries
that are ready at once (:class:`Batching`), up to ``concurrency`` deliveries in flight.
A batch runs in one database transaction (:meth:`Pipeline.process_batch`). At low load
a batch is the one delivery that arrived, handed over at once; only while an earlier
batch is still running does the consumer linger (``linger`` seconds at most) for more,
which costs no latency since the database is busy anyway. Stopping cancels the readers
first and then waits for the deliveries already in flight::

    consumers = Consumers()
    await consumers.add(transport, "ftgo.order.commands", "order-service", pipeline,
                        prefetch=64, concurrency=32, batching=Batching(size=16))
    ...
    await consumers.stop(timeout=30.0)
    consumers.clear()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.pipeline import inbox
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.unit_of_work import Pipeline
from servicewire.timeouts import within
from servicewire.transports import Subscription, Transport
from servicewire.transports.base import Delivery

# The name the service module logged under before this code moved here.
log = logging.getLogger("servicewire.service.service")


@dataclass(frozen=True, slots=True)
class Batching:
    """How a consumer gathers deliveries into one transaction."""

    size: int = 16
    """Most deliveries in one batch (1: a transaction per delivery, as without batching)."""
    linger: float = 0.002
    """Longest wait, seconds, for more deliveries while an earlier batch still runs."""


class Consumers:
    """The subscriptions a service consumes and the deliveries it is processing."""

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.inflight: set[asyncio.Task[list[Outcome]]] = set()
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
        batching: Batching = Batching(),
    ) -> None:
        """Subscribe to ``channel`` as ``group`` and process what arrives with ``pipeline``."""
        sub = await transport.subscribe(channel, group, prefetch=prefetch)
        self.subscriptions.append(sub)
        ready: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._tasks.append(asyncio.create_task(self._read(sub, ready)))
        self._tasks.append(
            asyncio.create_task(self._dispatch(ready, pipeline, concurrency, batching))
        )

    async def _read(self, sub: Subscription, ready: asyncio.Queue[Delivery | None]) -> None:
        # The transport bounds what is unsettled (prefetch, one per shard), so this
        # queue never holds more than that.
        try:
            async for delivery in sub:
                ready.put_nowait(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer of %s/%s stopped", sub.channel, sub.group)
        ready.put_nowait(None)  # the subscription ended: so does the dispatcher

    async def _dispatch(
        self,
        ready: asyncio.Queue[Delivery | None],
        pipeline: Pipeline,
        concurrency: int,
        batching: Batching,
    ) -> None:
        # Per-key order is the transport's job (one unsettled delivery per shard), so
        # batches can run concurrently here, up to `concurrency` deliveries in all.
        slots = asyncio.Semaphore(concurrency)
        # Transactions at once: concurrency / batch size (2 by default). More would
        # split a busy consumer's work into many small batches competing for the CPU;
        # with batch size 1 it is `concurrency`, one delivery per transaction as before.
        transactions = asyncio.Semaphore(-(-concurrency // batching.size))
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[list[Outcome]]] = set()
        held: Delivery | None = None  # a second one of a shard waits for the next batch
        while True:
            await transactions.acquire()
            await slots.acquire()
            first = held if held is not None else await ready.get()
            held = None
            if first is None:
                slots.release()
                transactions.release()
                return
            batch = [first]
            shards = {first.shard}
            ids = {first.message.id}
            # Linger for more only while an earlier batch runs: at low load a delivery
            # is handed over the moment it arrives.
            deadline = loop.time() + batching.linger if running else None
            while len(batch) < batching.size and not slots.locked():
                if not ready.empty():
                    more = ready.get_nowait()
                elif deadline is None or (left := deadline - loop.time()) <= 0:
                    break
                else:
                    try:
                        more = await within(ready.get(), left)
                    except TimeoutError:
                        break
                if more is None:
                    ready.put_nowait(None)  # seen again after this batch
                    break
                if (more.shard is not None and more.shard in shards) or more.message.id in ids:
                    held = more
                    break
                await slots.acquire()  # not locked: returns at once
                batch.append(more)
                shards.add(more.shard)
                ids.add(more.message.id)
            task = asyncio.create_task(pipeline.process_batch(batch))
            running.add(task)
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
            task.add_done_callback(running.discard)
            task.add_done_callback(functools.partial(_release, slots, len(batch)))
            task.add_done_callback(lambda _task: transactions.release())

    async def stop(self, timeout: float) -> None:
        """Take no more deliveries, wait up to ``timeout`` for those in flight, unsubscribe."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.inflight:
            _done, late = await asyncio.wait(list(self.inflight), timeout=timeout)
            # Still running (a batch waiting out a database outage, a stuck handler):
            # cancelled, so nothing outlives the service. Their transactions roll back
            # and their deliveries, unsettled, go back to the broker when the
            # subscriptions close just below.
            for straggler in late:
                straggler.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
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


def _release(slots: asyncio.Semaphore, count: int, _task: object) -> None:
    for _ in range(count):
        slots.release()


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
