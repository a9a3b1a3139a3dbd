"""What every relay shares: the start/stop/run/wake/drain life cycle, retry with
backoff, progress reports, and the cleanup of published rows.

A relay runs either as a background task inside a service (the embedded default)::

    relay = PollingRelay(engine, transport)
    await relay.start()
    ...                       # after each commit that wrote outbox rows:
    relay.wake()              # publish now instead of at the next poll
    await relay.stop()        # finishes the batch in flight

or in the foreground of its own process (``servicewire relay``): ``await relay.run()``,
which returns after :meth:`Relay.stop` (the CLI calls it on SIGTERM).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.messaging.message import Message
from servicewire.outbox.tables import ALL_TABLES, outbox
from servicewire.relay.observed import observed_transport
from servicewire.storage.database import DatabaseError, display_url, missing_tables
from servicewire.timeouts import stop_task, within, woken
from servicewire.transports.base import Transport
from servicewire.urls import redact_text

log = logging.getLogger("servicewire.relay")

MAX_BACKOFF = 5.0
"""Longest wait between attempts while the database or the broker is down."""


class Relay(abc.ABC):
    """A message relay: moves committed outbox messages to a transport."""

    mode: ClassVar[str]

    def __init__(
        self,
        engine: AsyncEngine,
        transport: Transport,
        *,
        name: str = "relay",
        batch_size: int = 500,
        progress_interval: float = 5.0,
    ) -> None:
        self.engine = engine
        self._setup(
            transport, name=name, batch_size=batch_size, progress_interval=progress_interval
        )

    def _setup(
        self, transport: Transport, *, name: str, batch_size: int, progress_interval: float
    ) -> None:
        """Everything but the engine (a relay on a store without one, such as DynamoDB,
        calls this instead of ``__init__`` and overrides what reads the engine)."""
        # Publishes are traced (a span per message) and counted for /metrics.
        self.transport = observed_transport(transport, relay=name)
        self.name = name
        self.batch_size = batch_size
        self.progress_interval = progress_interval
        self.published = 0
        """Messages this relay published since it started (duplicates included)."""
        self.moved_aside = 0
        self.last_published_at: float | None = None
        self.last_error: str | None = None
        self.active = False
        """True while this relay owns what it publishes (shards, lease, slot, binlog stream)."""
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        # Extra events for relays that run several loops: a wake-up must reach each one,
        # and one loop clearing a shared event would hide it from the others.
        self._worker_wakeups: list[asyncio.Event] = []
        self._task: asyncio.Task[None] | None = None

    # Life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the relay as a background task of the current event loop."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"servicewire-relay-{self.name}")

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch in flight is published and recorded."""
        self._stopping.set()
        self._wake_all()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await within(asyncio.shield(task), timeout)
        except TimeoutError:
            log.warning("relay %s did not stop within %.0fs; cancelling it", self.name, timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the batch in flight (safe in a signal handler)."""
        self._stopping.set()
        self._wake_all()

    def wake(self) -> None:
        """Look for new rows now (call it right after a commit that wrote outbox rows)."""
        self._wake_all()

    def wake_for(self, messages: Sequence[Message]) -> None:
        """Look for the rows just committed for ``messages`` (a relay with several batch
        loops may wake only those that have something to do)::

            relay.wake_for(ctx.outgoing)   # right after the commit that wrote them
        """
        self.wake()

    def _wake_all(self) -> None:
        self._wakeup.set()
        for event in self._worker_wakeups:
            event.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Relay in the foreground until :meth:`stop`; survives database and broker outages."""
        self._stopping.clear()
        await self.check_tables()
        progress = asyncio.create_task(self._report_progress())
        backoff = 0.1
        try:
            while not self._stopping.is_set():
                try:
                    await self._serve()
                    backoff = 0.1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    while isinstance(exc, ExceptionGroup) and exc.exceptions:
                        exc = exc.exceptions[0]  # a worker's own error, not the group
                    self.last_error = redact_text(f"{type(exc).__name__}: {exc}")
                    log.warning(
                        "relay %s: %s; retrying in %.1fs", self.name, self.last_error, backoff
                    )
                    await self._idle(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            await stop_task(progress)  # its backlog query may lose a cancel (stop_task)
            self.active = False
            await self._release()

    async def check_tables(self) -> None:
        """Fail at once, with the fix, when the outbox tables are missing."""
        missing = await missing_tables(self.engine, [t.name for t in ALL_TABLES])
        if missing:
            raise DatabaseError(
                f"{display_url(self.engine)} lacks {', '.join(missing)}: "
                "run `servicewire db init URL` (or your migrations) first"
            )

    @abc.abstractmethod
    async def _serve(self) -> None:
        """Relay until stopping (return) or failure (raise: :meth:`run` retries)."""

    async def _release(self) -> None:  # noqa: B027 - optional hook
        """Give up ownership (leases, slots, locks) after :meth:`run` ends."""

    async def _idle(self, seconds: float, event: asyncio.Event | None = None) -> None:
        """Sleep ``seconds`` or until woken or stopped (``event``: a worker's own)."""
        if seconds <= 0:
            return
        event = event or self._wakeup
        await woken(event, seconds)
        event.clear()

    def _activate(self, detail: str) -> None:
        if not self.active:
            log.info("relay %s active (%s): %s", self.name, self.mode, detail)
        self.active = True

    def _count(self, published: int, moved: int) -> None:
        self.published += published
        self.moved_aside += moved
        if published:
            self.last_published_at = time.time()

    # Progress and draining ---------------------------------------------------------------

    async def backlog(self) -> int:
        """Rows waiting in the outbox table."""
        async with self.engine.connect() as conn:
            stmt = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            return int((await conn.execute(stmt)).scalar_one())

    async def _report_progress(self) -> None:
        # Long drains say how far they are; an idle relay stays quiet.
        last = self.published
        while True:
            await asyncio.sleep(self.progress_interval)
            try:
                waiting = await self.backlog()
            except Exception:
                continue
            done = self.published - last
            last = self.published
            if waiting or done:
                rate = done / self.progress_interval
                log.info(
                    "relay %s (%s): published %d (%.0f msg/s), backlog %d",
                    self.name,
                    self.mode,
                    self.published,
                    rate,
                    waiting,
                )

    @abc.abstractmethod
    async def drain(self, timeout: float) -> None:
        """Return once every row committed before the call is published.

        Raises :class:`TimeoutError` after ``timeout`` seconds.
        """

    async def _wait_for(
        self, check: Callable[[], Awaitable[bool]], timeout: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if await check():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"relay {self.name}: {what} not done within {timeout:.0f}s")
            self.wake()
            await asyncio.sleep(0.02)
