"""An in-process HTTP server for FTGO's REST apps (the demo and ``ftgo serve``).

    server = HttpServer(build_order_app(system.orders), port=0)   # 0: a free port
    await server.start()
    print(server.url, server.parser)                               # ... httptools
    await server.stop()

The server parses HTTP with httptools (the C parser uvicorn's fast stack uses) when it
is installed, which the ``rest`` extra does; ``ftgo serve`` also runs its event loop on
uvloop (:func:`run`). Without them both fall back to the pure-Python h11 parser and
asyncio's own loop, and say so in the service's ready line.

The camelCase body models the REST adapters share are in :mod:`ftgo.rest_models`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from servicewire.rest import SERVER_KEEP_ALIVE_SECONDS
from servicewire.timeouts import within

log = logging.getLogger("ftgo.app.web")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_parser() -> str:
    """``"httptools"`` when the C parser is installed, else ``"h11"`` (pure Python)."""
    try:
        import httptools  # noqa: F401  (uvicorn imports it lazily: prove it is here)
    except ImportError:
        return "h11"
    return "httptools"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed (no Windows build), else on
    asyncio's own loop with a warning naming the extra that brings it."""
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed: running on asyncio's loop (pip install uvloop)")
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def loop_name() -> str:
    """What the running event loop is: ``"uvloop"`` or ``"asyncio"``."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


class HttpServer:
    """Runs a FastAPI app on uvicorn inside the current event loop.

    server = HttpServer(app, port=8081)
    await server.start()
    ...
    await server.stop()
    """

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port()
        self.parser = http_parser()
        config = uvicorn.Config(
            app,
            host=host,
            port=self.port,
            http=self.parser,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_keep_alive=SERVER_KEEP_ALIVE_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task: asyncio.Task[Any] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(500):
            if self._server.started:
                return
            if self._task.done():
                self._task.result()  # raises the startup error
            await asyncio.sleep(0.01)
        raise RuntimeError(f"HTTP server on {self.url} did not start")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await within(self._task, 10)
        self._task = None
