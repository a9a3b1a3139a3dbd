"""Serving the metrics: ``GET /metrics`` on a FastAPI app or a tiny server of its own.

The recorders live in :mod:`servicewire.telemetry.metrics`; this module reads them out
and refreshes the gauges that are read from databases at scrape time (outbox backlog
and oldest row, inbox size). Expose them on a REST app, refreshing the gauges of
``services`` at each scrape::

    mount_metrics(app, service)          # GET /metrics

and in a process without a web app (``servicewire relay --metrics-port 9464``)::

    server = await serve_metrics(9464, refresh=[lambda: refresh_database(engine)])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from servicewire.pipeline.inbox import inbox as inbox_table
from servicewire.relay.status import relay_status
from servicewire.storage.database import display_url
from servicewire.telemetry.metrics import CONTENT_TYPE, metrics
from servicewire.timeouts import within

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

    from servicewire.service import Service

log = logging.getLogger("servicewire.metrics")


# Gauges refreshed at scrape time ----------------------------------------------------------


async def refresh_database(engine: AsyncEngine) -> None:
    """Set the outbox backlog and oldest-row age gauges of one database."""
    m = metrics()
    if m is None:
        return
    status = await relay_status(engine)
    name = display_url(engine)
    m.backlog.labels(name).set(status.backlog)
    m.oldest_age.labels(name).set(status.oldest_unpublished_age or 0.0)


async def refresh_service(service: Service) -> None:
    """Set a running service's inbox size and its database's outbox gauges."""
    m = metrics()
    if m is None or service.engine is None:
        return
    async with service.engine.connect() as conn:
        size = (await conn.execute(select(func.count()).select_from(inbox_table))).scalar_one()
    m.inbox.labels(service.name).set(int(size))
    await refresh_database(service.engine)


async def _refresh_all(refresh: Sequence[Callable[[], Awaitable[None]]]) -> None:
    for step in refresh:
        try:
            await step()
        except Exception as exc:  # a scrape must still answer with what it has
            log.warning("metrics refresh failed: %s", type(exc).__name__)


def exposition() -> bytes:
    """The text exposition of every metric in the default registry."""
    try:
        from prometheus_client import generate_latest
    except ImportError:
        return b"# prometheus-client is not installed\n"
    return bytes(generate_latest())


def mount_metrics(app: FastAPI, *services: Service, path: str = "/metrics") -> None:
    """Serve ``GET /metrics`` on a FastAPI app, refreshing ``services``' gauges per scrape.

    Installed as the outermost ASGI middleware, so path rewriting (media-type
    versioning), body limits and the OpenAPI document leave it alone.
    """
    app.add_middleware(MetricsEndpoint, path=path, refresh=tuple(_refresher(s) for s in services))


class MetricsEndpoint:
    """ASGI middleware answering ``GET <path>`` with the metrics exposition."""

    def __init__(
        self, app: Any, *, path: str, refresh: Sequence[Callable[[], Awaitable[None]]]
    ) -> None:
        self.app = app
        self.path = path
        self.refresh = refresh

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            status, body, kind = 405, b"method not allowed\n", b"text/plain"
        else:
            await _refresh_all(self.refresh)
            status, body, kind = 200, exposition(), CONTENT_TYPE.encode()
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""}
        )


def _refresher(service: Service) -> Callable[[], Awaitable[None]]:
    async def refresh() -> None:
        await refresh_service(service)

    return refresh


async def serve_metrics(
    port: int,
    *,
    host: str = "127.0.0.1",
    refresh: Sequence[Callable[[], Awaitable[None]]] = (),
) -> asyncio.Server:
    """A tiny HTTP server answering ``GET /metrics`` (for processes without a web app).

    Runs in the event loop, so the refresh steps may query databases asynchronously.
    ``port`` 0 picks a free port (``server.sockets[0].getsockname()[1]``).
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await within(reader.readuntil(b"\r\n\r\n"), 10)
            first = request.split(b"\r\n", 1)[0].split()
            if len(first) >= 2 and first[0] == b"GET" and first[1].split(b"?")[0] == b"/metrics":
                await _refresh_all(refresh)
                status, body, kind = b"200 OK", exposition(), CONTENT_TYPE.encode()
            else:
                status, body, kind = b"404 Not Found", b"not found\n", b"text/plain"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind
                + b"\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port)
