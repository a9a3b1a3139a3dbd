"""The REST client against real uvicorn servers: level 3 link following, typed errors,
deadlines, retries, the circuit breaker, the bulkhead and discovery."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from xml.etree import ElementTree

import pytest
from fastapi import FastAPI, Request

from servicewire.discovery import Instance, Locator, RedisRegistry
from servicewire.resilience import (
    BulkheadFullError,
    CallRetryPolicy,
    CircuitOpenError,
    CircuitState,
    ConflictError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    Resilience,
    ServiceUnavailableError,
    counts_as_failure,
    is_transient,
)
from servicewire.rest import LinkNotFoundError, Problem, RestClient, versioned_router
from servicewire.rest.example import build_app
from tests.rest.server import free_port, serve
from tests.services import URLS, require

ORDER = {"consumer_id": "c-1", "items": [{"menu_item_id": "m-1", "quantity": 2}]}


def _app() -> FastAPI:
    app = build_app()
    extra = versioned_router(1)
    hits: Counter[str] = Counter()

    @extra.get("/slow", name="slow")
    async def slow(seconds: float = 1.0) -> dict[str, str]:
        await asyncio.sleep(seconds)
        return {"ok": "late"}

    @extra.api_route("/flaky/{key}", methods=["GET", "POST"], name="flaky")
    async def flaky(request: Request, key: str, failures: int = 1) -> dict[str, int]:
        hits[key] += 1
        if hits[key] <= failures:
            raise Problem(503, detail="warming up")
        return {"attempts": hits[key]}

    @extra.get("/whoami", name="whoami")
    async def whoami(request: Request) -> dict[str, int]:
        return {"port": request.url.port or 0}

    app.include_router(extra)
    return app


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serve(_app()) as port:
        yield port


def _client(port: int, **resilience: object) -> RestClient:
    options: dict[str, object] = {
        "timeout": 2.0,
        "retry": CallRetryPolicy(attempts=3, initial_backoff=0.01, retryable=is_transient),
        "is_failure": counts_as_failure,
    }
    options.update(resilience)
    return RestClient({"orders": [f"127.0.0.1:{port}"]}, resilience=Resilience(**options))  # type: ignore[arg-type]


async def test_client_follows_links_to_perform_actions(port: int) -> None:
    async with _client(port) as client:
        root = await client.get("orders", "/v1/")
        order = await client.follow(root, "orders", json=ORDER)
        assert order.status == 201 and order.location == f"/v1/orders/{order.data['id']}"
        assert set(order.links) == {"self", "cancel"}
        cancelled = await client.follow(order, "cancel")
        assert cancelled.data["state"] == "CANCELLED"
        assert "cancel" not in cancelled.links
        with pytest.raises(LinkNotFoundError, match="'cancel'"):
            await client.follow(cancelled, "cancel")
        again = await client.follow(cancelled, "self")
        assert again.data["state"] == "CANCELLED" and again.etag


async def test_problem_details_become_typed_errors(port: int) -> None:
    async with _client(port) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.get("orders", "/v1/orders/o-nope")
        assert missing.value.status == 404 and "o-nope" in missing.value.detail
        with pytest.raises(InvalidArgumentError) as invalid:
            await client.post("orders", "/v1/orders", json={"consumer_id": "c", "items": []})
        assert [e["field"] for e in invalid.value.errors] == ["body.items"]
        order = await client.post("orders", "/v1/orders", json=ORDER)
        await client.follow(order, "cancel")
        with pytest.raises(ConflictError):
            await client.post("orders", order.links["cancel"].href)
        # Client errors say nothing about the service's health.
        assert client.resilience.breaker("orders").state is CircuitState.CLOSED


async def test_expired_deadline_is_a_clear_timeout(port: int) -> None:
    async with _client(port) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="GET orders/v1/slow"):
            await client.get("orders", "/v1/slow?seconds=2", timeout=0.2)
        assert time.monotonic() - started < 1.0


async def test_idempotent_get_is_retried_but_post_is_not(port: int) -> None:
    async with _client(port) as client:
        key = uuid.uuid4().hex
        ok = await client.get("orders", f"/v1/flaky/{key}?failures=2")
        assert ok.data == {"attempts": 3}
        key = uuid.uuid4().hex
        with pytest.raises(ServiceUnavailableError):
            await client.post("orders", f"/v1/flaky/{key}?failures=1")
        ok = await client.post("orders", f"/v1/flaky/{key}?failures=1")
        assert ok.data == {"attempts": 2}


async def test_retry_moves_to_a_live_instance(port: int) -> None:
    dead = free_port()
    client = RestClient(
        {"orders": [f"127.0.0.1:{dead}", f"127.0.0.1:{port}"]},
        resilience=Resilience(
            timeout=2.0,
            retry=CallRetryPolicy(attempts=2, initial_backoff=0.01, retryable=is_transient),
            failure_threshold=100,
        ),
    )
    async with client:
        for _ in range(4):
            assert (await client.get("orders", "/v1/whoami")).data == {"port": port}


async def test_circuit_opens_fails_fast_half_opens_and_closes() -> None:
    port = free_port()  # nothing listens here yet
    async with _client(
        port, failure_threshold=3, reset_timeout=0.5, retry=CallRetryPolicy()
    ) as client:
        for _ in range(3):
            with pytest.raises(ServiceUnavailableError, match="cannot connect"):
                await client.get("orders", "/v1/")
        breaker = client.resilience.breaker("orders")
        assert breaker.state is CircuitState.OPEN
        started = time.monotonic()
        with pytest.raises(CircuitOpenError):
            await client.get("orders", "/v1/")
        assert time.monotonic() - started < 0.5  # no connect, no retry: immediate
        with serve(_app(), port=port):
            await asyncio.sleep(0.5)
            assert breaker.state is CircuitState.HALF_OPEN
            client.locator = Locator(client.locator.resolver)  # forget the failure marks
            assert (await client.get("orders", "/v1/")).status == 200
            assert breaker.state is CircuitState.CLOSED


async def test_bulkhead_rejects_beyond_its_cap(port: int) -> None:
    async with _client(port, max_concurrent=2) as client:
        slow = [asyncio.create_task(client.get("orders", "/v1/slow?seconds=0.5")) for _ in range(2)]
        await asyncio.sleep(0.1)
        with pytest.raises(BulkheadFullError, match="'orders'"):
            await client.get("orders", "/v1/")
        assert all(r.status == 200 for r in await asyncio.gather(*slow))
        assert (await client.get("orders", "/v1/")).status == 200


async def test_client_resolves_instances_registered_in_redis(port: int) -> None:
    require("redis")
    registry = RedisRegistry(URLS["redis"], prefix=f"test-rest-{uuid.uuid4().hex}")
    try:
        async with registry.register(Instance("orders", "127.0.0.1", port), ttl=5.0):
            async with RestClient(registry) as client:
                assert (await client.get("orders", "/v1/whoami")).data == {"port": port}
    finally:
        await registry.close()


async def test_load_balancing_across_registered_instances_and_failover() -> None:
    require("redis")
    registry = RedisRegistry(URLS["redis"], prefix=f"test-rest-lb-{uuid.uuid4().hex}")
    try:
        with serve(_app()) as first, serve(_app()) as second:
            alive = registry.register(Instance("orders", "127.0.0.1", first), ttl=5.0)
            doomed = registry.register(Instance("orders", "127.0.0.1", second), ttl=1.0)
            await alive.start()
            await doomed.start()
            try:
                async with RestClient(Locator(registry, refresh=0.1)) as client:
                    ports = Counter(
                        [(await client.get("orders", "/v1/whoami")).data["port"] for _ in range(6)]
                    )
                    assert ports == {first: 3, second: 3}
                    doomed.abandon()  # the second instance "dies": no heartbeat, no goodbye
                    await asyncio.sleep(1.2)
                    for _ in range(6):
                        assert (await client.get("orders", "/v1/whoami")).data["port"] == first
            finally:
                await alive.stop()
                await doomed.stop()
    finally:
        await registry.close()


async def test_client_negotiates_xml_and_sends_conditional_requests(port: int) -> None:
    async with _client(port) as client:
        order = await client.post("orders", "/v1/orders", json=ORDER)
        path = order.links["self"].href
        xml = await client.get("orders", path, headers={"accept": "application/xml"})
        assert xml.headers["content-type"].startswith("application/xml")
        assert ElementTree.fromstring(xml.body).tag
        fresh = await client.get("orders", path)
        assert fresh.etag
        unchanged = await client.get("orders", path, headers={"if-none-match": fresh.etag})
        assert (unchanged.status, unchanged.body) == (304, b"")
