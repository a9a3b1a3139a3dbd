"""A small HTTP/1.1 keep-alive client: the transport under :class:`RestClient`.

Why our own: measured against one uvicorn server at 64 concurrent calls, the client's
CPU per request decides REST throughput once the machine is busy; aiohttp spends about
3x the CPU of a minimal asyncio client per call and httpx about 10x (docs/rest.md has
the figures). This client does only what service-to-service calls need::

    pool = HttpPool()
    response = await pool.request("127.0.0.1", 8000, "GET", "/v1/orders/o-1",
                                  {"accept": "application/json"}, None)
    response.status, response.headers["etag"], response.body
    await pool.close()

Supported: persistent connections per host, Content-Length and chunked bodies,
bodies delimited by close, HEAD/204/304 without body, 1xx interim responses, size
limits on heads and bodies. Not supported (not needed between our services): TLS,
proxies, HTTP/2, pipelining, cookies, redirects.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import NamedTuple

DEFAULT_MAX_BODY = 64 * 1024 * 1024
MAX_HEAD = 64 * 1024


class HttpResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ``", "``."""
    body: bytes


class HttpProtocolError(Exception):
    """The server's response is not valid HTTP/1.1 (or exceeds a limit)."""


class StaleConnectionError(ConnectionError):
    """A reused keep-alive connection was closed by the server before it answered."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


def _encode_request(
    method: str, target: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    # One decode and str operations: a third of the cost of per-line bytes handling.
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0]
    if not status_line.startswith("HTTP/1.") or len(status_line) < 12:
        raise HttpProtocolError(f"bad status line {status_line[:40]!r}")
    code = status_line[9:12]
    if not code.isdigit():
        raise HttpProtocolError(f"bad status line {status_line[:40]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:-2]:
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpProtocolError(f"bad header line {line[:40]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(code), headers


class HttpPool:
    """Keep-alive connections per ``host:port``, reused across requests.

    Idle connections older than ``idle_timeout`` are dropped rather than reused:
    servers close idle connections after a few seconds (uvicorn: 5 s), and a request
    written into a connection the server is closing would be lost.
    """

    def __init__(
        self,
        *,
        idle_timeout: float = 4.0,
        max_idle_per_host: int = 256,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        """HTTPS when set (see servicewire.security.tls): the server certificate is verified."""
        self.idle_timeout = idle_timeout
        self.max_idle_per_host = max_idle_per_host
        self.max_body_bytes = max_body_bytes
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.reader.at_eof() or now - connection.idle_since > self.idle_timeout:
                connection.close()
                continue
            return connection
        return None

    def _give_back(self, key: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle_per_host:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        retry_stale: bool = True,
    ) -> HttpResponse:
        """Send one request and read its response.

        Connection errors propagate as ``OSError`` (``ConnectionRefusedError`` when
        nothing listens). When a reused connection turns out closed before any byte of
        the answer arrived, the request is sent once more on a fresh connection if
        ``retry_stale`` (pass ``False`` for non-idempotent requests: they raise
        :class:`StaleConnectionError` instead).
        """
        key = (host, port)
        payload = _encode_request(method, target, f"{host}:{port}", headers, body)
        connection = self._take_idle(key)
        if connection is not None:
            try:
                return await self._exchange(key, connection, method, payload, reused=True)
            except StaleConnectionError:
                if not retry_stale:
                    raise
        reader, writer = await asyncio.open_connection(
            host, port, limit=MAX_HEAD, ssl=self.ssl_context
        )
        return await self._exchange(key, _Connection(reader, writer), method, payload, False)

    async def _exchange(
        self,
        key: tuple[str, int],
        connection: _Connection,
        method: str,
        payload: bytes,
        reused: bool,
    ) -> HttpResponse:
        reader = connection.reader
        try:
            connection.writer.write(payload)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial:
                    raise StaleConnectionError(
                        "keep-alive connection closed by the server"
                    ) from None
                raise ConnectionResetError("connection closed before the response head") from None
            except asyncio.LimitOverrunError:
                raise HttpProtocolError(f"response head exceeds {MAX_HEAD} bytes") from None
            status, headers = _parse_head(head)
            while 100 <= status < 200 and status != 101:
                head = await reader.readuntil(b"\r\n\r\n")
                status, headers = _parse_head(head)
            body, reusable = await self._read_body(reader, method, status, headers)
        except BaseException:
            # Cancelled (deadline) or failed mid-exchange: the connection's state is
            # unknown, so it is never reused.
            connection.close()
            raise
        if reusable and headers.get("connection", "").lower() != "close":
            self._give_back(key, connection)
        else:
            connection.close()
        return HttpResponse(status, headers, body)

    async def _read_body(
        self, reader: asyncio.StreamReader, method: str, status: int, headers: dict[str, str]
    ) -> tuple[bytes, bool]:
        if method == "HEAD" or status in (204, 304):
            return b"", True
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(reader), True
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise HttpProtocolError(f"bad content-length {length!r}") from None
            if size < 0 or size > self.max_body_bytes:
                raise HttpProtocolError(f"response body of {size} bytes exceeds the limit")
            return await reader.readexactly(size), True
        # Delimited by the server closing the connection.
        body = await reader.read(self.max_body_bytes + 1)
        if len(body) > self.max_body_bytes:
            raise HttpProtocolError("response body exceeds the limit")
        return body, False

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpProtocolError(f"bad chunk size line {line[:20]!r}") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers: ignored
                return b"".join(parts)
            total += size
            if total > self.max_body_bytes:
                raise HttpProtocolError("response body exceeds the limit")
            chunk = await reader.readexactly(size + 2)
            parts.append(chunk[:-2])

    async def close(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
