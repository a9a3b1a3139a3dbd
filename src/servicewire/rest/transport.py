"""The HTTP transport under :class:`~servicewire.rest.RestClient`: one aiohttp session
with limits a hostile or broken server cannot get around::

    session = open_session(ssl_context=None, max_connections_per_host=256)
    async with session.request("GET", "http://127.0.0.1:8000/v1/", allow_redirects=False) as r:
        body = await read_body(r, max_bytes=DEFAULT_MAX_BODY)
    await session.close()

What the limits are, and who enforces them:

* the response head: aiohttp's parser (``max_line_size``, ``max_field_size`` and
  ``max_headers``, so at most about 800 KiB); the same parser limits apply to trailers;
* interim (1xx) responses: at most :data:`MAX_INTERIM_RESPONSES` before the final one
  (aiohttp itself would read them for as long as the server sends them);
* the body, whatever its framing (Content-Length, chunked, until the server closes):
  :func:`read_body`, before more than ``max_bytes`` are held.

Redirects are never followed here: the client passes ``allow_redirects=False`` and
treats a 3xx as an answer to report, not a success.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from servicewire.errors import ServicewireError

DEFAULT_MAX_BODY = 64 * 1024 * 1024
MAX_LINE = 8190
"""Longest status line or header line accepted (aiohttp's own default)."""
MAX_HEADERS = 100
"""Most header (or trailer) fields accepted in one response."""
MAX_INTERIM_RESPONSES = 10
"""Most 1xx responses accepted before the final response of one request."""
IDLE_SECONDS = 4.0
"""Idle connections are closed after this, before the server's own keep-alive timeout
(uvicorn: 5 s) could close one under a request being written."""


class ResponseLimitError(ServicewireError):
    """A response broke one of the transport's limits (body size, interim responses)."""


class _CappedResponse(aiohttp.ClientResponse):
    """aiohttp's response, with a cap on the 1xx responses read before the final one.

    aiohttp skips interim responses in a loop with no bound (``ClientResponse.start``
    reads messages from the connection's protocol until one is final); counting the
    messages that read returns is the one place the loop can be stopped.
    tests/rest/test_transport.py fails if a later aiohttp reads them another way.
    """

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        protocol = connection.protocol
        if protocol is None:
            return await super().start(connection)
        read = protocol.read
        interim = 0

        async def read_counting_interim() -> Any:
            nonlocal interim
            message, payload = await read()
            if 100 <= message.code < 200 and message.code != 101:
                interim += 1
                if interim > MAX_INTERIM_RESPONSES:
                    raise ResponseLimitError(
                        f"more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"
                    )
            return message, payload

        protocol.read = read_counting_interim  # type: ignore[method-assign]
        try:
            return await super().start(connection)
        finally:
            del protocol.read  # the class's method again


def open_session(
    *, ssl_context: ssl.SSLContext | None, max_connections_per_host: int
) -> aiohttp.ClientSession:
    """A session with our limits; call it inside the running event loop that will use it.

    Timeouts are off: the caller's deadline (``Resilience``) bounds every call, and an
    aiohttp timer per request would cost CPU for nothing. No ``Accept-Encoding`` is sent
    and nothing is decompressed: bodies are what the server sent, as before.
    """
    connector = aiohttp.TCPConnector(
        limit=0,  # the bulkhead caps concurrency; this only bounds each instance
        limit_per_host=max_connections_per_host,
        keepalive_timeout=IDLE_SECONDS,
        ssl=ssl_context if ssl_context is not None else True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(),
        response_class=_CappedResponse,
        skip_auto_headers=("Accept-Encoding",),
        auto_decompress=False,
        max_line_size=MAX_LINE,
        max_field_size=MAX_LINE,
        max_headers=MAX_HEADERS,
        cookie_jar=aiohttp.DummyCookieJar(),  # calls between services carry no cookies
    )


async def read_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body, however it is framed; :class:`ResponseLimitError` past ``max_bytes``.

    The connection goes back to the pool only once the body was read to its end.
    """
    length = response.content_length
    if length is not None:
        if length > max_bytes:
            raise ResponseLimitError(f"response body of {length} bytes exceeds {max_bytes}")
        return await response.read()
    parts: list[bytes] = []
    total = 0
    while chunk := await response.content.readany():
        total += len(chunk)
        if total > max_bytes:
            raise ResponseLimitError(f"response body exceeds {max_bytes} bytes")
        parts.append(chunk)
    return b"".join(parts)
