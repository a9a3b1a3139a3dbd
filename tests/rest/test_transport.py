"""RestClient against a hostile server: a raw asyncio TCP server that answers with
exactly the bytes each test chooses, in every framing and past every limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from servicewire.resilience import (
    CallRetryPolicy,
    RemoteError,
    RemoteServerError,
    Resilience,
    ServiceUnavailableError,
    counts_as_failure,
)
from servicewire.rest import Representation, RestClient, UnsafeRequestError
from servicewire.rest.transport import MAX_INTERIM_RESPONSES


@dataclass
class RawServer:
    """Answers each request with ``replies[path]`` (raw bytes, or a coroutine function
    that writes them); records request heads and counts connections."""

    replies: dict[bytes, bytes] = field(default_factory=dict)
    writers: dict[bytes, Callable[[asyncio.StreamWriter], Awaitable[None]]] = field(
        default_factory=dict
    )
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                path = head.split(b" ", 2)[1]
                if path in self.writers:
                    await self.writers[path](writer)
                    break  # these replies end by closing the connection
                writer.write(self.replies.get(path, b"HTTP/1.1 404 Not Found\r\n\r\n"))
                await writer.drain()
                if path.startswith(b"/close"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    raw = RawServer()
    listening = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield raw


def _client(port: int, host: str = "127.0.0.1", **options: object) -> RestClient:
    resilience = Resilience(timeout=3.0, retry=CallRetryPolicy(), is_failure=counts_as_failure)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return RestClient({"raw": [address]}, resilience=resilience, **options)  # type: ignore[arg-type]


def _ok(body: bytes, *extra: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), head, body)


async def _get(server: RawServer, path: str, **options: object) -> Representation:
    async with _client(server.port, **options) as client:
        return await client.get("raw", path)


# ------------------------------------------------------------------ framings, read whole


async def test_close_delimited_body_is_read_whole(server: RawServer) -> None:
    parts = [bytes([65 + i]) * 70_000 for i in range(4)]  # several reads' worth

    async def slowly(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n")
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)

    server.writers[b"/until-close"] = slowly
    assert (await _get(server, "/until-close")).body == b"".join(parts)


async def test_chunked_body_with_extensions_and_trailer_is_read_whole(server: RawServer) -> None:
    server.replies[b"/chunked"] = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b'5\r\nhello\r\n1;ext=1;name="q"\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n'
    )
    server.replies[b"/after"] = _ok(b"next")
    async with _client(server.port) as client:
        assert (await client.get("raw", "/chunked")).body == b"hello world"
        assert (await client.get("raw", "/after")).body == b"next"
    assert server.connections == 1  # the chunked response ended cleanly: reused


async def test_interim_responses_then_the_final_one(server: RawServer) -> None:
    server.replies[b"/interim"] = (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
        + _ok(b"done", b"x-echo: a", b"x-echo: b")
    )
    answer = await _get(server, "/interim")
    assert (answer.status, answer.body, answer.headers["x-echo"]) == (200, b"done", "a, b")


# ------------------------------------------------------------------ limits


async def test_endless_interim_responses_are_cut_off(server: RawServer) -> None:
    async def forever(writer: asyncio.StreamWriter) -> None:
        while not writer.is_closing():
            writer.write(b"HTTP/1.1 102 Processing\r\n\r\n" * 50)
            await writer.drain()
            await asyncio.sleep(0)

    server.writers[b"/interim-forever"] = forever
    started = time.monotonic()
    with pytest.raises(RemoteServerError, match=rf"more than {MAX_INTERIM_RESPONSES} interim"):
        await _get(server, "/interim-forever")
    assert time.monotonic() - started < 1.0  # the limit, not the 3 s deadline


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 100_000 + b"\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x-many: 1\r\n" * 500 + b"content-length: 0\r\n\r\n",
        b"HTTP/1.1 200 " + b"O" * 100_000 + b"\r\ncontent-length: 0\r\n\r\n",
    ],
    ids=["long-header", "many-headers", "long-status-line"],
)
async def test_oversized_head_is_refused(server: RawServer, head: bytes) -> None:
    server.replies[b"/big-head"] = head
    with pytest.raises(RemoteServerError, match="invalid HTTP response"):
        await _get(server, "/big-head")


@pytest.mark.parametrize(
    "trailers",
    [b"x-t: " + b"a" * 100_000 + b"\r\n", b"x-t: 1\r\n" * 500],
    ids=["long-trailer", "many-trailers"],
)
async def test_oversized_trailers_are_refused(server: RawServer, trailers: bytes) -> None:
    server.replies[b"/big-trailer"] = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
        + trailers
        + b"\r\n"
    )
    with pytest.raises(RemoteServerError, match="invalid HTTP response"):
        await _get(server, "/big-trailer")


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2000\r\n\r\n" + b"x" * 2000,
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"400\r\n" + b"x" * 1024
        + b"\r\n" + b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 2000,
    ],
    ids=["content-length", "chunked", "until-close"],
)  # fmt: skip
async def test_body_over_the_cap_is_refused(server: RawServer, reply: bytes) -> None:
    server.replies[b"/close-big"] = reply
    with pytest.raises(RemoteServerError, match="exceeds 1500"):
        await _get(server, "/close-big", max_body_bytes=1500)


@pytest.mark.parametrize("size", [b"+1", b"1_0", b"-1", b"0x1", b" 1"])
async def test_malformed_chunk_size_is_refused(server: RawServer, size: bytes) -> None:
    server.replies[b"/bad-chunk"] = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + size + b"\r\nx\r\n0\r\n\r\n"
    )
    with pytest.raises(RemoteServerError, match="invalid HTTP response"):
        await _get(server, "/bad-chunk")


@pytest.mark.parametrize("length", [b"+1", b"1_0", b"-1", b"1, 2"])
async def test_malformed_content_length_is_refused(server: RawServer, length: bytes) -> None:
    server.replies[b"/bad-length"] = b"HTTP/1.1 200 OK\r\ncontent-length: " + length + b"\r\n\r\nx"
    with pytest.raises(RemoteServerError, match="invalid HTTP response"):
        await _get(server, "/bad-length")


# ------------------------------------------------------------------ connections


async def test_keep_alive_reuses_one_connection(server: RawServer) -> None:
    server.replies[b"/a"] = _ok(b"a")
    async with _client(server.port) as client:
        for _ in range(5):
            assert (await client.get("raw", "/a")).body == b"a"
    assert server.connections == 1


async def test_http_1_0_connection_is_not_reused(server: RawServer) -> None:
    server.replies[b"/old"] = b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold"
    async with _client(server.port) as client:
        for _ in range(3):
            assert (await client.get("raw", "/old")).body == b"old"
    assert server.connections == 3


async def test_connection_close_is_honoured(server: RawServer) -> None:
    server.replies[b"/bye"] = _ok(b"bye", b"connection: close")
    async with _client(server.port) as client:
        for _ in range(3):
            assert (await client.get("raw", "/bye")).body == b"bye"
    assert server.connections == 3


async def test_ipv6_host_is_bracketed() -> None:
    raw = RawServer()
    raw.replies[b"/v6"] = _ok(b"six")
    listening = await asyncio.start_server(raw.handle, "::1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening, _client(port, host="::1") as client:
        assert (await client.get("raw", "/v6")).body == b"six"
    assert f"\r\nHost: [::1]:{port}\r\n".lower().encode() in raw.heads[0].lower()


async def test_closed_client_opens_a_new_session(server: RawServer) -> None:
    server.replies[b"/a"] = _ok(b"a")
    client = _client(server.port)
    for _ in range(2):
        async with client:
            assert (await client.get("raw", "/a")).body == b"a"
    await client.aclose()  # closing twice is harmless
    assert server.connections == 2


# ------------------------------------------------------------------ redirects


async def test_redirect_is_not_followed_nor_success(server: RawServer) -> None:
    server.replies[b"/moved"] = (
        b"HTTP/1.1 302 Found\r\nlocation: /target\r\ncontent-length: 0\r\n\r\n"
    )
    server.replies[b"/target"] = _ok(b"should not be fetched")
    with pytest.raises(RemoteError, match="redirect to /target not followed") as caught:
        await _get(server, "/moved")
    assert caught.value.status == 302
    assert [h.split(b" ")[1] for h in server.heads] == [b"/moved"]


async def test_not_modified_answers_a_conditional_request(server: RawServer) -> None:
    server.replies[b"/cached"] = b'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\n\r\n'
    async with _client(server.port) as client:
        answer = await client.get("raw", "/cached", headers={"if-none-match": '"v1"'})
        assert (answer.status, answer.etag, answer.body) == (304, '"v1"', b"")
        with pytest.raises(RemoteError) as unasked:
            await client.get("raw", "/cached")
        assert unasked.value.status == 304


# ------------------------------------------------------------------ caller input


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/a HTTP/1.1\r\nhost: x\r\n\r\nGET /admin", {}),
        ("/a?q=1\r\nx-injected: 1", {}),
        ("/a\nb", {}),
        ("/a\x00b", {}),
        ("/a?q=\x00", {}),
        ("a-relative-path", {}),
        ("/a", {"x-trace": "1\r\nx-admin: yes"}),
        ("/a", {"x-trace": "1\nx"}),
        ("/a", {"x-trace": "1\x00"}),
        ("/a", {"x-bad\r\nname": "1"}),
        ("/a", {"": "1"}),
    ],
)
async def test_unsafe_caller_input_is_refused_before_sending(
    server: RawServer, path: str, headers: dict[str, str]
) -> None:
    async with _client(server.port) as client:
        with pytest.raises(UnsafeRequestError):
            await client.get("raw", path, headers=headers)
    assert server.connections == 0


async def test_unsafe_default_header_or_link_method_is_refused(server: RawServer) -> None:
    with pytest.raises(UnsafeRequestError, match="'x-key'"):
        RestClient({"raw": [f"127.0.0.1:{server.port}"]}, headers={"x-key": "s\r\nx: 1"})
    body = b'{"_links": {"evil": {"href": "/a", "method": "GET /b HTTP/1.1\\r\\n"}}}'
    server.replies[b"/links"] = _ok(body, b"content-type: application/hal+json")
    async with _client(server.port) as client:
        representation = await client.get("raw", "/links")
        with pytest.raises(UnsafeRequestError, match="not a token"):
            await client.follow(representation, "evil")
    assert len(server.heads) == 1


async def test_header_values_must_be_text(server: RawServer) -> None:
    async with _client(server.port) as client:
        with pytest.raises(TypeError, match="must be str, not int"):
            await client.get("raw", "/a", headers={"x-count": 3})  # type: ignore[dict-item]
    assert server.connections == 0


async def test_header_values_are_not_echoed_in_the_error(server: RawServer) -> None:
    async with _client(server.port) as client:
        with pytest.raises(UnsafeRequestError) as refused:
            await client.get("raw", "/a", headers={"authorization": "Bearer s3cret\r\n"})
    assert "s3cret" not in str(refused.value)


async def test_space_and_unicode_in_path_are_percent_encoded(server: RawServer) -> None:
    server.replies[b"/a%20b/%C3%A9"] = _ok(b"encoded")
    assert (await _get(server, "/a b/é")).body == b"encoded"


async def test_hang_up_is_unavailable_and_a_post_is_sent_once(server: RawServer) -> None:
    async def hang_up(writer: asyncio.StreamWriter) -> None:
        return None  # closes without answering

    server.writers[b"/hang-up"] = hang_up
    async with _client(server.port) as client:
        with pytest.raises(ServiceUnavailableError, match="connection to 127"):
            await client.post("raw", "/hang-up")
    assert len(server.heads) == 1  # not idempotent: never sent again
