"""The gauges read from databases at scrape time, as a prometheus_client custom collector.

Outbox backlog and oldest-row age per database (what ``servicewire relay status``
reports) and inbox size per service are not recorded as things happen: they are read
when Prometheus scrapes. The queries are asynchronous and need the event loop that owns
the engines, while prometheus_client collects synchronously, so the readings are taken
by :meth:`DatabaseCollector.refresh` (awaited in the loop) and handed out by
:meth:`~DatabaseCollector.collect`::

    collector = DatabaseCollector(engines=[engine], services=[service])
    registry.register(collector)
    await collector.refresh()           # the ASGI endpoint does this before each scrape

Collected from another thread (prometheus_client's own HTTP server), ``collect`` first
runs the refresh in the owning loop and waits for it, so every scrape is fresh. A
database that cannot be read keeps its last reading, with a warning: a scrape answers
with what it has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from servicewire.pipeline.inbox import inbox as inbox_table
from servicewire.relay.status import relay_status
from servicewire.storage.database import display_url

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from servicewire.service import Service

log = logging.getLogger("servicewire.metrics")

# name, help, label: the metric names Servicewire has always exposed.
_BACKLOG = ("servicewire_outbox_backlog", "Outbox rows not yet published", "database")
_OLDEST = (
    "servicewire_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row (0 when empty)",
    "database",
)
_INBOX = ("servicewire_inbox_size", "Message ids kept by the inbox", "service")


class DatabaseCollector:
    """Outbox and inbox gauges of some databases and services, read at scrape time.

    ``engines``: databases whose outbox is reported; ``services``: services whose inbox
    is reported, and whose database's outbox too (read once the service has started).
    ``timeout`` bounds a refresh asked for from another thread.
    """

    def __init__(
        self,
        *,
        engines: Sequence[AsyncEngine] = (),
        services: Sequence[Service] = (),
        timeout: float = 10.0,
    ) -> None:
        self.engines = tuple(engines)
        self.services = tuple(services)
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._readings: dict[tuple[str, ...], dict[str, float]] = {
            _BACKLOG: {},
            _OLDEST: {},
            _INBOX: {},
        }

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that owns the engines (set by the first refresh otherwise)."""
        self._loop = loop

    async def refresh(self) -> None:
        """Read every gauge now (in the loop that owns the engines)."""
        self._loop = asyncio.get_running_loop()
        engines = {display_url(e): e for e in self.engines}
        for service in self.services:
            if service.engine is None:
                continue  # not started yet
            engines.setdefault(display_url(service.engine), service.engine)
            try:
                await self._read_inbox(service)
            except Exception as exc:
                log.warning("metrics: inbox of %s not read: %s", service.name, type(exc).__name__)
        for name, engine in engines.items():
            try:
                status = await relay_status(engine)
            except Exception as exc:
                log.warning("metrics: outbox of %s not read: %s", name, type(exc).__name__)
                continue
            self._readings[_BACKLOG][name] = float(status.backlog)
            self._readings[_OLDEST][name] = status.oldest_unpublished_age or 0.0

    async def _read_inbox(self, service: Service) -> None:
        assert service.engine is not None
        async with service.engine.connect() as conn:
            size = (await conn.execute(select(func.count()).select_from(inbox_table))).scalar_one()
        self._readings[_INBOX][service.name] = float(size)

    def describe(self) -> list[Any]:
        """The metric families, without samples (so registering reads nothing)."""
        return [_family(spec, {}) for spec in self._readings]

    def collect(self) -> Iterator[Any]:
        """The gauges (refreshed first when called off the owning loop's thread)."""
        self._refresh_from_another_thread()
        for spec, values in self._readings.items():
            yield _family(spec, values)

    def _refresh_from_another_thread(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running() or _runs_in(loop):
            return  # in the loop: the ASGI endpoint refreshed just before collecting
        future = asyncio.run_coroutine_threadsafe(self.refresh(), loop)
        try:
            future.result(self.timeout)
        except Exception as exc:  # TimeoutError included: serve the last readings
            future.cancel()
            log.warning("metrics refresh failed: %s", type(exc).__name__)


def _runs_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs in this thread, so the owner runs in another
        return False


def _family(spec: tuple[str, ...], values: dict[str, float]) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    name, documentation, label = spec
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value_label, value in sorted(values.items()):
        family.add_metric([value_label], value)
    return family
