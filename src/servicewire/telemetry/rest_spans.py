"""A server span per REST request, parented by the trace context of the caller's headers.

Pure ASGI middleware (no dependency beyond the OpenTelemetry API), installed by
:func:`~servicewire.rest.app.create_app` on every Servicewire REST app::

    app.add_middleware(TracingMiddleware)

Inside the request, the span is current: messages the endpoint sends through
``service.transaction()`` carry it as their parent, so the trace continues through
the outbox, the relay and every handler. The span is named after the route template
(``POST /v1/orders``), not the raw path, to keep span names few. The request's trace
context and baggage are read by OpenTelemetry's configured propagators
(:mod:`~.propagation`), and the baggage is current inside the request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from servicewire.telemetry.tracing import active, span

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TracingMiddleware:
    """ASGI middleware: one ``SERVER`` span per HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not active():
            await self.app(scope, receive, send)
            return
        from servicewire.telemetry.propagation import extract_asgi  # OpenTelemetry is there

        parent = extract_asgi(scope)
        method = scope.get("method", "GET")
        status: dict[str, int] = {}

        async def send_status(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        attributes = {"http.request.method": method, "url.path": scope.get("path", "")}
        with span(f"{method} {scope.get('path', '')}", kind="SERVER", parent=parent,
                  attributes=attributes) as current:  # fmt: skip
            try:
                await self.app(scope, receive, send_status)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    current.update_name(f"{method} {template}")
                    current.set_attribute("http.route", template)
                if "code" in status:
                    current.set_attribute("http.response.status_code", status["code"])
                    if status["code"] >= 500:
                        from opentelemetry.trace import Status, StatusCode

                        current.set_status(Status(StatusCode.ERROR))
