"""The small HTTP/1.1 client against a raw asyncio server that answers in every framing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from servicewire.rest.http import HttpPool, HttpProtocolError, StaleConnectionError
from tests.rest.server import free_port


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if path == b"/chunked":
                writer.write(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n"
                )
            elif path == b"/until-close":
                writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
                await writer.drain()
                break
            elif path == b"/interim":
                writer.write(
                    b"HTTP/1.1 100 Continue\r\n\r\n"
                    b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
                )
            elif path == b"/garbage":
                writer.write(b"SMTP ready\r\n\r\n")
            elif path == b"/hang-up":
                break  # closes without answering, no connection: close announced
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nx-echo: a\r\nx-echo: b\r\n\r\n%s"
                    % (len(body), body)
                )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_framings(port: int) -> None:
    pool = HttpPool()
    try:
        echo = await pool.request("127.0.0.1", port, "POST", "/echo", {}, b"payload")
        assert (echo.status, echo.body, echo.headers["x-echo"]) == (200, b"payload", "a, b")
        chunked = await pool.request("127.0.0.1", port, "GET", "/chunked", {}, None)
        assert chunked.body == b"hello world"
        interim = await pool.request("127.0.0.1", port, "GET", "/interim", {}, None)
        assert (interim.status, interim.body) == (201, b"ok")
        closing = await pool.request("127.0.0.1", port, "GET", "/until-close", {}, None)
        assert closing.body == b"all of it"
        with pytest.raises(HttpProtocolError):
            await pool.request("127.0.0.1", port, "GET", "/garbage", {}, None)
    finally:
        await pool.close()


async def test_keep_alive_reuses_one_connection(port: int) -> None:
    pool = HttpPool()
    try:
        for i in range(5):
            body = str(i).encode()
            assert (await pool.request("127.0.0.1", port, "POST", "/e", {}, body)).body == body
        assert sum(len(c) for c in pool._idle.values()) == 1
    finally:
        await pool.close()


async def test_stale_connection_is_retried_only_when_allowed(port: int) -> None:
    pool = HttpPool()
    try:
        await pool.request("127.0.0.1", port, "GET", "/e", {}, None)
        connection = pool._idle[("127.0.0.1", port)][0]
        # The server hangs up on the next request on this connection.
        with pytest.raises((StaleConnectionError, ConnectionError)):
            await pool.request("127.0.0.1", port, "POST", "/hang-up", {}, b"", retry_stale=False)
        assert connection.writer.is_closing()
        await pool.request("127.0.0.1", port, "GET", "/e", {}, None)
        with pytest.raises(ConnectionError):
            await pool.request("127.0.0.1", port, "GET", "/hang-up", {}, None)
    finally:
        await pool.close()


async def test_refused_connection_is_an_os_error() -> None:
    pool = HttpPool()
    with pytest.raises(ConnectionRefusedError):
        await pool.request("127.0.0.1", free_port(), "GET", "/", {}, None)
