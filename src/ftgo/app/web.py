"""An in-process HTTP server for FTGO's REST apps (the demo and ``ftgo serve``).

    server = HttpServer(build_order_app(system.orders), port=0)   # 0: a free port
    await server.start()
    print(server.url)
    await server.stop()

The camelCase body models the REST adapters share are in :mod:`ftgo.rest_models`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="off", access_log=False
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
            await asyncio.wait_for(self._task, 10)
        self._task = None
