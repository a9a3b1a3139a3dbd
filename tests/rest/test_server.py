"""The REST conventions, over a real uvicorn server: status codes, problem details,
negotiation, ETag/304, versions side by side, the body cap."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from fastapi import FastAPI

from servicewire.rest import PROBLEM_JSON, versioned_router
from servicewire.rest.example import build_app
from tests.rest.server import serve

MAX_BODY = 4096
ORDER = {"consumer_id": "c-1", "items": [{"menu_item_id": "m-1", "quantity": 2}]}


def _app() -> FastAPI:
    app = build_app(max_body_bytes=MAX_BODY)
    broken = versioned_router(1)

    @broken.get("/boom", name="boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("secret internal state at /srv/app.py line 12")

    app.include_router(broken)
    return app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(_app()) as port:
        yield f"http://127.0.0.1:{port}"


async def _call(
    base: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        body = orjson.dumps(json) if json is not None else data
        all_headers = dict(headers or {})
        if json is not None:
            all_headers.setdefault("content-type", "application/json")
        async with session.request(method, base + path, data=body, headers=all_headers) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


def _problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected, body
    assert headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = orjson.loads(body)
    assert problem["status"] == expected and problem["title"] and problem["type"]
    return problem


async def test_create_returns_201_with_location_and_hal_links(base_url: str) -> None:
    status, headers, body = await _call(base_url, "POST", "/v1/orders", json=ORDER)
    assert status == 201
    order = orjson.loads(body)
    assert headers["location"] == f"/v1/orders/{order['id']}"
    assert order["_links"]["self"]["href"] == headers["location"]
    assert order["_links"]["cancel"] == {
        "href": f"/v1/orders/{order['id']}/cancel",
        "method": "POST",
    }


async def test_cancelled_order_has_no_cancel_link_and_cannot_be_cancelled_twice(
    base_url: str,
) -> None:
    _, headers, _ = await _call(base_url, "POST", "/v1/orders", json=ORDER)
    status, _, body = await _call(base_url, "POST", headers["location"] + "/cancel")
    assert status == 200
    assert "cancel" not in orjson.loads(body)["_links"]
    status, headers2, body = await _call(base_url, "POST", headers["location"] + "/cancel")
    assert "CANCELLED" in _problem(status, headers2, body, 409)["detail"]


async def test_unknown_resource_and_route_are_404_problems(base_url: str) -> None:
    missing = _problem(*await _call(base_url, "GET", "/v1/orders/o-missing"), 404)
    nowhere = _problem(*await _call(base_url, "GET", "/nowhere/at/all"), 404)
    assert missing["status"] == nowhere["status"] == 404


async def test_wrong_method_is_a_405_problem_with_allow(base_url: str) -> None:
    status, headers, body = await _call(base_url, "DELETE", "/v1/orders/o-1")
    _problem(status, headers, body, 405)
    assert headers["allow"] == "GET"


async def test_validation_error_is_a_422_problem_naming_the_fields(base_url: str) -> None:
    bad = {"consumer_id": "", "items": [{"menu_item_id": "m", "quantity": 0}]}
    problem = _problem(*await _call(base_url, "POST", "/v1/orders", json=bad), 422)
    fields = {error["field"] for error in problem["errors"]}
    assert fields == {"body.consumer_id", "body.items.0.quantity"}
    problem = _problem(
        *await _call(
            base_url,
            "POST",
            "/v1/orders",
            data=b"{not json",
            headers={"content-type": "application/json"},
        ),
        422,
    )
    assert problem["errors"][0]["code"] == "json_invalid"


async def test_unhandled_exception_is_a_500_problem_without_internals(base_url: str) -> None:
    status, headers, body = await _call(base_url, "GET", "/v1/boom")
    _problem(status, headers, body, 500)
    assert b"secret" not in body and b"Traceback" not in body and b"app.py" not in body


async def test_unsupported_content_type_is_415(base_url: str) -> None:
    status, headers, body = await _call(
        base_url,
        "POST",
        "/v1/orders",
        data=b"<order/>",
        headers={"content-type": "application/xml"},
    )
    problem = _problem(status, headers, body, 415)
    assert problem["status"] == 415


async def test_unacceptable_accept_is_406(base_url: str) -> None:
    status, headers, body = await _call(
        base_url, "GET", "/v1/", headers={"accept": "text/html, image/png;q=0.5"}
    )
    assert "application/json" in _problem(status, headers, body, 406)["detail"]


async def test_oversized_declared_body_is_413_before_reading(base_url: str) -> None:
    status, headers, body = await _call(
        base_url,
        "POST",
        "/v1/orders",
        data=b"x" * (MAX_BODY + 1),
        headers={"content-type": "application/json"},
    )
    assert "exceeds the limit of 4096" in _problem(status, headers, body, 413)["detail"]


def test_oversized_chunked_body_is_413(base_url: str) -> None:
    # A raw socket: chunked transfer without Content-Length; the server must stop reading.
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 1024
        try:
            for _ in range(16):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            pass  # the server may close once it has answered
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert PROBLEM_JSON.encode() in reply


async def test_content_negotiation_json_and_xml(base_url: str) -> None:
    _, headers, _ = await _call(base_url, "POST", "/v1/orders", json=ORDER)
    status, h, body = await _call(
        base_url, "GET", headers["location"], headers={"accept": "application/xml"}
    )
    assert status == 200 and h["content-type"].startswith("application/xml")
    assert b"<consumer_id>c-1</consumer_id>" in body and h["vary"] == "Accept"
    status, h, body = await _call(
        base_url,
        "GET",
        headers["location"],
        headers={"accept": "application/xml;q=0.5, application/json"},
    )
    assert h["content-type"].startswith("application/json")
    assert orjson.loads(body)["consumer_id"] == "c-1"


async def test_etag_and_conditional_get(base_url: str) -> None:
    _, headers, _ = await _call(base_url, "POST", "/v1/orders", json=ORDER)
    location = headers["location"]
    status, h, _ = await _call(base_url, "GET", location)
    etag = h["etag"]
    status, h, body = await _call(base_url, "GET", location, headers={"if-none-match": etag})
    assert status == 304 and body == b"" and h["etag"] == etag
    status, _, _ = await _call(base_url, "GET", location, headers={"if-none-match": '"other"'})
    assert status == 200
    await _call(base_url, "POST", location + "/cancel")  # the representation changes
    status, h, _ = await _call(base_url, "GET", location, headers={"if-none-match": etag})
    assert status == 200 and h["etag"] != etag


async def test_two_majors_side_by_side_and_media_type_versioning(base_url: str) -> None:
    _, _, body = await _call(base_url, "POST", "/v1/orders", json=ORDER)
    order_id = orjson.loads(body)["id"]
    _, _, v1 = await _call(base_url, "GET", f"/v1/orders/{order_id}")
    _, _, v2 = await _call(base_url, "GET", f"/v2/orders/{order_id}")
    assert orjson.loads(v1)["state"] == "PENDING" and "status" not in orjson.loads(v1)
    assert orjson.loads(v2)["status"] == "PENDING" and orjson.loads(v2)["total_quantity"] == 2
    assert orjson.loads(v2)["_links"]["self"]["href"] == f"/v2/orders/{order_id}"
    vendor = "application/vnd.example.v2+json"
    status, h, body = await _call(
        base_url, "GET", f"/orders/{order_id}", headers={"accept": vendor}
    )
    assert status == 200 and h["content-type"] == vendor
    assert orjson.loads(body)["total_quantity"] == 2
    status, h, body = await _call(base_url, "GET", f"/orders/{order_id}")
    assert "state" in orjson.loads(body)  # no vendor type: the default major, v1
