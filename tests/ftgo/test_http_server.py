"""FTGO's HTTP server keeps an idle connection open longer than its clients do.

uvicorn's default closes an idle connection after 5 s, the same moment httpx's pool
gives it up: a request written then met a closed socket (``httpx.ReadError``; the
distributed fault test hit it once on CI after a 5 s pause). Here one raw connection
idles past that default and must still carry a second request.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from ftgo.app.web import HttpServer
from servicewire.rest import SERVER_KEEP_ALIVE_SECONDS
from servicewire.timeouts import within

REQUEST = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n"


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await within(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head.split(b"\r\n", 1)[0] + b" " + await reader.readexactly(length)


async def test_an_idle_connection_outlives_uvicorns_default_keep_alive() -> None:
    assert SERVER_KEEP_ALIVE_SECONDS > 15  # longer than httpx's (5 s) and aiohttp's (15 s)
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    server = HttpServer(app)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(REQUEST)
            assert await read_response(reader) == b'HTTP/1.1 200 OK {"pong":"yes"}'
            await asyncio.sleep(6)  # past uvicorn's default 5 s
            assert not reader.at_eof(), "the server closed an idle connection after 6 s"
            writer.write(REQUEST)
            assert await read_response(reader) == b'HTTP/1.1 200 OK {"pong":"yes"}'
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        await server.stop()
