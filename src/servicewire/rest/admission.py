"""Admission: at most ``limit`` HTTP requests inside the app at once, the rest wait.

A service's REST handlers share its database pool with its message handlers and its
outbox relay. Under more load than the service can take, an unbounded number of
requests each holds or waits for a pooled connection: the relay and the reply
handlers then queue behind them, nothing moves on, and the service's real throughput
collapses while its backlog grows. Waiting here costs no connection, so a few
requests at a time keep the rest of the service flowing, and the excess waits its
turn in arrival order::

    app.add_middleware(ConcurrencyLimit, limit=8)

Only ``http`` scopes are counted (lifespan and websockets pass). ``in_flight`` and
``waiting`` tell how full it is.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send


class ConcurrencyLimit:
    """ASGI middleware admitting at most ``limit`` HTTP requests at once (FIFO)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.app = app
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)  # bound to a loop at first wait (3.10+)
        self.in_flight = 0
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            self.in_flight += 1
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self._slots.release()
