"""Serving the metrics with prometheus_client: its ASGI app on a REST app, or its own server.

The recorders live in :mod:`servicewire.telemetry.metrics` (prometheus_client's default
registry); the gauges read from databases at scrape time (outbox backlog and oldest
row, inbox size) are a custom collector (:mod:`~.collector`). Each endpoint serves the
recorders plus the gauges of the services or databases it was given. On a REST app::

    mount_metrics(app, service)          # GET /metrics (prometheus_client's ASGI app)

and in a process without a web app (``servicewire relay --metrics-port 9464``), with
prometheus_client's HTTP server on a thread of its own, bound to loopback unless told::

    server = await serve_metrics(9464, engines=[engine])
    ...
    await server.close()

Both need prometheus-client (the ``telemetry`` extra).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from servicewire.exposition.collector import DatabaseCollector
from servicewire.telemetry.metrics import metrics

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

    from servicewire.service import Service

log = logging.getLogger("servicewire.metrics")

_MISSING = "serving metrics needs prometheus-client: pip install 'servicewire[telemetry]'"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise RuntimeError(_MISSING) from None
    return prometheus_client


def exposition() -> bytes:
    """The text exposition of every metric in prometheus_client's default registry."""
    try:
        from prometheus_client import generate_latest
    except ImportError:
        return b"# prometheus-client is not installed\n"
    return bytes(generate_latest())


def metrics_registry(collector: DatabaseCollector) -> Any:
    """A registry serving the default one (the recorders) plus ``collector``'s gauges."""
    prom = _prometheus()
    metrics()  # the recorders exist from the first scrape on, at zero
    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(prom.REGISTRY)
    registry.register(collector)
    return registry


def mount_metrics(app: FastAPI, *services: Service, path: str = "/metrics") -> None:
    """Serve ``GET <path>`` on a FastAPI app with prometheus_client's ASGI app.

    ``services``' inbox and outbox gauges are refreshed before each scrape. Installed
    as the outermost ASGI middleware, so path rewriting (media-type versioning), body
    limits and the OpenAPI document leave it alone. Without prometheus-client nothing
    is mounted (a warning says so).
    """
    try:
        _prometheus()
    except RuntimeError:
        log.warning("GET %s not served: %s", path, _MISSING)
        return
    app.add_middleware(MetricsEndpoint, path=path, collector=DatabaseCollector(services=services))


class MetricsEndpoint:
    """ASGI middleware handing ``GET <path>`` to prometheus_client's ASGI app."""

    def __init__(self, app: Any, *, path: str, collector: DatabaseCollector) -> None:
        self.app = app
        self.path = path
        self.collector = collector
        self.metrics_app = _prometheus().make_asgi_app(metrics_registry(collector))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        await self.collector.refresh()  # in this loop, where the engines live
        await self.metrics_app(scope, receive, send)


class MetricsServer:
    """prometheus_client's HTTP server, started by :func:`serve_metrics`; stop it with
    :meth:`close` (or use it as ``async with``)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (what port 0 picked)."""
        return int(self._server.server_address[1])

    @property
    def serving(self) -> bool:
        return self._thread.is_alive()

    async def close(self) -> None:
        """Stop serving and release the port (off the loop: shutting down waits a poll)."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    async def __aenter__(self) -> MetricsServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def serve_metrics(
    port: int,
    *,
    host: str = "127.0.0.1",
    engines: Sequence[AsyncEngine] = (),
    services: Sequence[Service] = (),
) -> MetricsServer:
    """Start prometheus_client's HTTP server (for processes without a web app).

    Serves the metrics at any path (``/metrics`` by convention) from a thread of its
    own; the database gauges of ``engines`` and ``services`` are read in this event
    loop at each scrape. ``host`` defaults to loopback (prometheus_client's own default
    is every interface); ``port`` 0 picks a free port (``server.port``)::

        async with await serve_metrics(0, engines=[engine]) as server:
            print(f"http://127.0.0.1:{server.port}/metrics")
    """
    prom = _prometheus()
    collector = DatabaseCollector(engines=engines, services=services)
    collector.bind(asyncio.get_running_loop())
    registry = metrics_registry(collector)
    server, thread = await asyncio.to_thread(
        prom.start_http_server, port, addr=host, registry=registry
    )
    return MetricsServer(server, thread)
