"""REST APIs under schemathesis: FTGO's three apps and the example app, on real servers.

Every documented operation gets generated requests, valid and invalid (bodies, paths,
query strings, headers); none may answer 5xx or hang, and every answer conforms to the
document (status, media type, body schema). The FTGO system runs in a thread
of its own (its own event loop, in-memory transport), on each store of
``SERVICEWIRE_FUZZ_STORES`` (PostgreSQL by default: on SQLite, which stores NUL
happily, a NUL in a body never failed), so schemathesis' synchronous calls reach it
over real HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import schemathesis
from hypothesis import settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests import services
from tests.fuzz.settings import FUZZ, STORES, per_operation
from tests.fuzz.stores import ServeProcess, ftgo_on
from tests.relay.dbs import create_database, drop_database
from tests.rest.server import serve

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api"
APIS = {
    "order": "ftgo-order.json",
    "consumer": "ftgo-consumer.json",
    "restaurant": "ftgo-restaurant.json",
}


def _operations(document: str) -> int:
    paths = json.loads((DOCS / document).read_text())["paths"]
    verbs = {"get", "put", "post", "delete", "patch", "head", "options"}
    return sum(1 for item in paths.values() for verb in item if verb in verbs)


class FtgoInThread:
    """FTGO on ``store`` and its three HTTP servers, on a loop in a thread."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.dir = tempfile.TemporaryDirectory(prefix="sw-fuzz-ftgo-")
        self.urls: dict[str, str] = {}
        self.running = contextlib.AsyncExitStack()

    async def _start(self) -> None:
        from ftgo.app.web import HttpServer
        from ftgo.consumer.rest import build_consumer_app
        from ftgo.order.rest import build_order_app
        from ftgo.restaurant.rest import build_restaurant_app

        self.system = await self.running.enter_async_context(
            ftgo_on(self.store, Path(self.dir.name))
        )
        self.servers = {
            "order": HttpServer(build_order_app(self.system.orders)),
            "consumer": HttpServer(build_consumer_app(self.system.consumer_service)),
            "restaurant": HttpServer(build_restaurant_app(self.system.restaurant_service)),
        }
        for name, server in self.servers.items():
            await server.start()
            self.urls[name] = server.url

    async def _stop(self) -> None:
        for server in self.servers.values():
            await server.stop()
        await self.running.aclose()  # FTGO stops, its databases are dropped

    def __enter__(self) -> FtgoInThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(60)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
            self.dir.cleanup()


@pytest.fixture(scope="module", params=STORES)
def ftgo(request: pytest.FixtureRequest) -> Iterator[FtgoInThread]:
    if request.param != "sqlite":
        services.require(request.param)
    with FtgoInThread(request.param) as running:
        yield running


# No 5xx, and every answer is one the document describes: a status it lists, its media
# type, a body matching its schema. (Not schemathesis' positive_data_acceptance: a
# schema-valid order for an unknown restaurant is rightly 422, as is text with NUL.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _no_server_error(case: schemathesis.Case, base_url: str) -> None:
    # A hang fails as a timeout; CHECKS raise on a 5xx or an answer off the document.
    response = case.call_and_validate(base_url=base_url, timeout=10, checks=CHECKS)
    assert response.status_code < 500, response.text


def _fuzz_settings(document: str) -> settings:
    return settings(FUZZ, max_examples=per_operation(_operations(document)))


order_schema = schemathesis.openapi.from_path(DOCS / APIS["order"])
consumer_schema = schemathesis.openapi.from_path(DOCS / APIS["consumer"])
restaurant_schema = schemathesis.openapi.from_path(DOCS / APIS["restaurant"])


@order_schema.parametrize()
@_fuzz_settings(APIS["order"])
def test_ftgo_order_api(case: schemathesis.Case, ftgo: FtgoInThread) -> None:
    _no_server_error(case, ftgo.urls["order"])


@consumer_schema.parametrize()
@_fuzz_settings(APIS["consumer"])
def test_ftgo_consumer_api(case: schemathesis.Case, ftgo: FtgoInThread) -> None:
    _no_server_error(case, ftgo.urls["consumer"])


@restaurant_schema.parametrize()
@_fuzz_settings(APIS["restaurant"])
def test_ftgo_restaurant_api(case: schemathesis.Case, ftgo: FtgoInThread) -> None:
    _no_server_error(case, ftgo.urls["restaurant"])


@pytest.fixture(scope="module", params=STORES)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The three services as ``ftgo serve`` processes, as a user runs them: each on its
    own new database of the store, messages over Redis (a private key prefix)."""
    store = request.param
    services.require("redis")
    directory = tmp_path_factory.mktemp(f"live-{store}")
    prefix = f"test-fuzz-live-{uuid.uuid4().hex[:10]}"
    transport = f"{services.URLS['redis']}?prefix={prefix}"
    dbs: dict[str, str] = {}
    running: list[ServeProcess] = []
    try:
        for name in APIS:
            dbs[name] = asyncio.run(create_database(store, directory))
        running = [ServeProcess(name, dbs[name], transport, directory) for name in APIS]
        yield {name: proc.ready() for name, proc in zip(APIS, running, strict=True)}
    finally:
        for proc in running:
            proc.terminate()  # all at once: each takes about a second to finish
        for proc in running:
            proc.stop()
        for url in dbs.values():
            asyncio.run(drop_database(store, url))
        client = redis.Redis.from_url(services.URLS["redis"])
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@order_schema.parametrize()
@_fuzz_settings(APIS["order"])
def test_live_ftgo_order_api(case: schemathesis.Case, live: dict[str, str]) -> None:
    _no_server_error(case, live["order"])


@consumer_schema.parametrize()
@_fuzz_settings(APIS["consumer"])
def test_live_ftgo_consumer_api(case: schemathesis.Case, live: dict[str, str]) -> None:
    _no_server_error(case, live["consumer"])


@restaurant_schema.parametrize()
@_fuzz_settings(APIS["restaurant"])
def test_live_ftgo_restaurant_api(case: schemathesis.Case, live: dict[str, str]) -> None:
    _no_server_error(case, live["restaurant"])


@pytest.fixture(scope="module")
def example_url() -> Iterator[str]:
    from servicewire.rest.example import build_app

    with serve(build_app()) as port:
        yield f"http://127.0.0.1:{port}"


example_schema = schemathesis.openapi.from_path(DOCS / "example.json")


@example_schema.parametrize()
@_fuzz_settings("example.json")
def test_example_api(case: schemathesis.Case, example_url: str) -> None:
    _no_server_error(case, example_url)


def test_raw_hostile_bodies_are_4xx(ftgo: FtgoInThread) -> None:
    """Bodies no schema would generate: huge, deeply nested, not JSON, wrong type."""
    import httpx

    url = ftgo.urls["order"]
    bodies = [
        b"[" * 100_000 + b"]" * 100_000,  # nesting far beyond any parser's comfort
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"\xff\xfe\x00garbage",
        b"x" * (2 * 1024 * 1024),  # over the 1 MiB body limit: 413 before parsing
        b"",
    ]
    with httpx.Client(timeout=10) as client:
        for body in bodies:
            for path in ("/v1/orders", "/orders"):
                response = client.post(
                    url + path, content=body, headers={"content-type": "application/json"}
                )
                assert 400 <= response.status_code < 500, (path, len(body), response.status_code)
