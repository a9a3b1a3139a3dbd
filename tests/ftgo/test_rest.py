"""FTGO's REST APIs on real uvicorn servers: the flow, level 3 links, and bad input."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ftgo.app.system import FtgoSystem
from ftgo.app.web import HttpServer
from ftgo.consumer.rest import build_consumer_app
from ftgo.order.rest import build_order_app
from ftgo.order.service import orders
from ftgo.restaurant.rest import build_restaurant_app


class Running:
    def __init__(self, system: FtgoSystem, urls: dict[str, str]) -> None:
        self.system = system
        self.urls = urls


@pytest.fixture
async def ftgo(tmp_path: Path) -> AsyncIterator[Running]:
    system = FtgoSystem.embedded(tmp_path, transport=f"memory://{uuid.uuid4().hex}")
    servers = {
        "order": HttpServer(build_order_app(system.orders)),
        "consumer": HttpServer(build_consumer_app(system.consumer_service)),
        "restaurant": HttpServer(build_restaurant_app(system.restaurant_service)),
    }
    async with system:
        for server in servers.values():
            await server.start()
        try:
            yield Running(system, {k: s.url for k, s in servers.items()})
        finally:
            for server in servers.values():
                await server.stop()


MENU = [
    {"menuItemId": "vindaloo", "name": "Chicken Vindaloo", "price": "12.34"},
    {"menuItemId": "naan", "name": "Naan", "price": "2.50"},
]


async def _setup(client: httpx.AsyncClient, ftgo: Running) -> tuple[str, str]:
    r = await client.post(
        f"{ftgo.urls['restaurant']}/v1/restaurants",
        json={"name": "Ajanta", "menu": MENU, "postcodes": ["94619"]},
    )
    assert r.status_code == 201, r.text
    restaurant_id = r.json()["restaurantId"]
    assert r.headers["location"] == f"/v1/restaurants/{restaurant_id}"
    r = await client.post(
        f"{ftgo.urls['consumer']}/v1/consumers", json={"name": "Ada", "orderLimit": "100"}
    )
    assert r.status_code == 201, r.text
    consumer_id = r.json()["consumerId"]
    deadline = time.monotonic() + 10
    while (
        await client.get(f"{ftgo.urls['order']}/v1/restaurants/{restaurant_id}")
    ).status_code != 200:
        assert time.monotonic() < deadline, "replica never filled"
        await asyncio.sleep(0.02)
    return restaurant_id, consumer_id


def order_body(consumer_id: str, restaurant_id: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "consumerId": consumer_id,
        "restaurantId": restaurant_id,
        "lineItems": [{"menuItemId": "vindaloo", "quantity": 2}],
        "deliveryAddress": {"street": "1 Main St", "city": "Oakland", "postcode": "94619"},
        "deliveryTime": "19:30",
    }
    body.update(changes)
    return body


async def test_create_order_returns_pending_at_once_then_validates(ftgo: Running) -> None:
    async with httpx.AsyncClient() as client:
        restaurant_id, consumer_id = await _setup(client, ftgo)
        r = await client.post(
            f"{ftgo.urls['order']}/v1/orders", json=order_body(consumer_id, restaurant_id)
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["state"] == "PENDING"
        order_id = body["orderId"]
        assert r.headers["location"] == f"/v1/orders/{order_id}"
        assert body["_links"]["cancel"]["method"] == "POST"
        deadline = time.monotonic() + 10
        while True:
            r = await client.get(f"{ftgo.urls['order']}{body['_links']['self']['href']}")
            if r.json()["state"] != "PENDING":
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        view = r.json()
        assert view["state"] == "VALIDATED"
        assert view["orderTotal"] == "24.68"
        assert "cancel" not in view["_links"]  # level 3: no action that is not possible
        etag = r.headers["etag"]
        again = await client.get(
            f"{ftgo.urls['order']}/v1/orders/{order_id}", headers={"If-None-Match": etag}
        )
        assert again.status_code == 304
        cancel = await client.post(f"{ftgo.urls['order']}/v1/orders/{order_id}/cancel")
        assert cancel.status_code == 409
        assert cancel.headers["content-type"].startswith("application/problem+json")


async def test_a_client_cancels_by_following_the_link(ftgo: Running) -> None:
    async with httpx.AsyncClient() as client:
        restaurant_id, _ = await _setup(client, ftgo)
        # an unknown consumer keeps the order PENDING until Consumer Service answers;
        # stop that service first so the order stays PENDING
        await ftgo.system.consumer_service.stop()
        r = await client.post(
            f"{ftgo.urls['order']}/v1/orders", json=order_body("nobody", restaurant_id)
        )
        assert r.status_code == 201
        link = r.json()["_links"]["cancel"]
        cancelled = await client.request(link["method"], f"{ftgo.urls['order']}{link['href']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "CANCELLED"
        assert "cancel" not in cancelled.json()["_links"]


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("malformed json", 422),
        ("wrong types", 422),
        ("empty line items", 422),
        ("negative quantity", 422),
        ("unknown restaurant", 422),
        ("oversized body", 413),
    ],
)
async def test_bad_orders_get_problem_details_and_change_nothing(
    ftgo: Running, case: str, status: int
) -> None:
    async with httpx.AsyncClient() as client:
        restaurant_id, consumer_id = await _setup(client, ftgo)
        url = f"{ftgo.urls['order']}/v1/orders"
        good = order_body(consumer_id, restaurant_id)
        if case == "malformed json":
            r = await client.post(
                url, content=b'{"consumerId": ', headers={"content-type": "application/json"}
            )
        elif case == "wrong types":
            r = await client.post(url, json={**good, "lineItems": "lots"})
        elif case == "empty line items":
            r = await client.post(url, json={**good, "lineItems": []})
        elif case == "negative quantity":
            r = await client.post(
                url, json={**good, "lineItems": [{"menuItemId": "naan", "quantity": -2}]}
            )
        elif case == "unknown restaurant":
            r = await client.post(url, json={**good, "restaurantId": "r-unknown"})
        else:
            r = await client.post(url, json={**good, "deliveryTime": "x" * 2_000_000})
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == status
        order_service = ftgo.system.order_service
        assert order_service.engine is not None
        async with order_service.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(orders))).scalar_one()
        assert count == 0


async def test_unknown_resources_are_404_problems(ftgo: Running) -> None:
    async with httpx.AsyncClient() as client:
        for url in (
            f"{ftgo.urls['order']}/v1/orders/nope",
            f"{ftgo.urls['order']}/v1/restaurants/nope",
            f"{ftgo.urls['consumer']}/v1/consumers/nope",
            f"{ftgo.urls['restaurant']}/v1/restaurants/nope",
        ):
            r = await client.get(url)
            assert r.status_code == 404, url
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await client.put(
            f"{ftgo.urls['restaurant']}/v1/restaurants/nope/menu", json={"menu": []}
        )
        assert r.status_code == 404
        r = await client.post(
            f"{ftgo.urls['consumer']}/v1/consumers", json={"name": "", "orderLimit": "-1"}
        )
        assert r.status_code == 422
