"""NUL and lone surrogates at FTGO's edges, on PostgreSQL and MariaDB (issue 19).

PostgreSQL refuses NUL in text, so ``POST /v1/orders`` with a NUL in ``restaurantId``
answered 500 there (and a stored field took NUL happily on MariaDB and SQLite). Each
such input is now refused where it enters, naming the field: REST answers 422 with
``code: unsafe_text``, gRPC INVALID_ARGUMENT. And nothing changed: every table of the
Order Service's database holds the same rows as before (no order, no outbox message,
no inbox id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import func as sql_func
from sqlalchemy import inspect, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from ftgo.app.system import FtgoSystem
from ftgo.app.web import HttpServer
from ftgo.generated.order.v1 import order_pb2, order_pb2_grpc
from ftgo.order.grpc import SERVICE as ORDER_SERVICE
from ftgo.order.grpc import OrderServicer
from ftgo.order.rest import build_order_app
from servicewire.grpc import Server
from tests.ftgo.scenario import Scenario, prepare_replicated
from tests.fuzz.stores import ftgo_on

STORES = ["postgres", "mariadb"]


@contextlib.asynccontextmanager
async def ftgo_prepared(store: str) -> AsyncIterator[tuple[FtgoSystem, Scenario]]:
    """FTGO on private databases of ``store``, with a restaurant (replicated) and consumers."""
    async with ftgo_on(store) as system:
        yield system, await prepare_replicated(system)


async def rows(engine: AsyncEngine | None) -> dict[str, int]:
    """How many rows each table holds, once two readings 0.2 s apart agree."""
    assert engine is not None
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    previous: dict[str, int] | None = None
    deadline = time.monotonic() + 10
    while True:
        async with engine.connect() as conn:
            counts = {
                name: (
                    await conn.execute(select(sql_func.count()).select_from(table(name)))
                ).scalar_one()
                for name in names
            }
        if counts == previous:
            return counts
        assert time.monotonic() < deadline, f"the database never settled: {counts}"
        previous = counts
        await asyncio.sleep(0.2)


def order_body(s: Scenario, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "consumerId": s.active,
        "restaurantId": s.restaurant_id,
        "lineItems": [{"menuItemId": "naan", "quantity": 1}],
        "deliveryAddress": {"street": "1 Main St", "city": "Oakland", "postcode": "94619"},
    }
    for key, value in changes.items():
        if key == "street":
            body["deliveryAddress"] = {**body["deliveryAddress"], "street": value}
        else:
            body[key] = value
    return body


def assert_refused(response: httpx.Response, field: str, words: str) -> None:
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert error["field"] == field and error["code"] == "unsafe_text", error
    assert words in error["message"], error


@pytest.mark.parametrize("store", STORES)
async def test_rest_refuses_nul_and_lone_surrogates_and_writes_nothing(store: str) -> None:
    async with ftgo_prepared(store) as (system, s):
        server = HttpServer(build_order_app(system.orders))
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                before = await rows(system.order_service.engine)

                async def post(body: dict[str, Any]) -> httpx.Response:
                    # json.dumps writes "\u0000" and "\udb66" as the escapes a client sends.
                    return await client.post(
                        "/v1/orders",
                        content=json.dumps(body).encode(),
                        headers={"content-type": "application/json"},
                    )

                nul_restaurant = order_body(s, restaurantId=s.restaurant_id + "\x00")
                assert_refused(await post(nul_restaurant), "body.restaurantId", "NUL (U+0000)")
                lone = order_body(s, restaurantId="\udb66" + s.restaurant_id)
                assert_refused(await post(lone), "body.restaurantId", "surrogate (U+DB66)")
                # A field that is stored as it is (MariaDB and SQLite took the NUL).
                nul_street = order_body(s, street="1 Main\x00St")
                assert_refused(await post(nul_street), "body.deliveryAddress.street", "NUL")
                path = await client.get("/v1/orders/o%00x")
                assert_refused(path, "path.order_id", "NUL (U+0000)")
                query = await client.get("/v1/orders/o-1", params={"expand": "a\x00"})
                assert_refused(query, "query.expand", "NUL (U+0000)")

                assert await rows(system.order_service.engine) == before
                valid = await post(order_body(s))  # the same body, clean, is taken
                assert valid.status_code == 201, valid.text
        finally:
            await server.stop()


def _raw_request(s: Scenario, *, restaurant_id: str, street: str = "1 Main St") -> bytes:
    return order_pb2.CreateOrderRequest(
        consumer_id=s.active,
        restaurant_id=restaurant_id,
        line_items=[order_pb2.LineItem(menu_item_id="naan", quantity=1)],
        delivery_address=order_pb2.Address(street=street, city="Oakland", postcode="94619"),
    ).SerializeToString()


@pytest.mark.parametrize("store", STORES)
async def test_grpc_refuses_nul_and_lone_surrogates_and_writes_nothing(store: str) -> None:
    async with ftgo_prepared(store) as (system, s):
        server = Server()
        server.add_service(
            order_pb2_grpc.add_OrderServiceServicer_to_server,
            OrderServicer(system.orders),
            ORDER_SERVICE,
        )
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                create = channel.unary_unary("/ftgo.order.v1.OrderService/CreateOrder")
                get = channel.unary_unary("/ftgo.order.v1.OrderService/GetOrder")
                before = await rows(system.order_service.engine)
                # A lone surrogate travels as its three bytes ED AD A6 (what a client that
                # encodes with "surrogatepass" writes): not UTF-8.
                marker = "R" * 8
                lone = _raw_request(s, restaurant_id=marker).replace(
                    marker.encode(), "\udb66".encode("utf-8", "surrogatepass")
                )
                cases = [
                    (_raw_request(s, restaurant_id=s.restaurant_id + "\x00"), "restaurant_id"),
                    (_raw_request(s, restaurant_id=s.restaurant_id, street="a\x00b"), "street"),
                    (lone, "not a valid protobuf message"),
                ]
                for raw, words in cases:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await create(raw, timeout=5)
                    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (
                        refused.value.code(),
                        refused.value.details(),
                    )
                    assert words in (refused.value.details() or ""), refused.value.details()
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await get(order_pb2.GetOrderRequest(order_id="o\x00").SerializeToString())
                assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                assert "order_id" in (refused.value.details() or "")

                assert await rows(system.order_service.engine) == before
                created = order_pb2.Order.FromString(
                    await create(_raw_request(s, restaurant_id=s.restaurant_id), timeout=5)
                )
                assert created.state == "PENDING"
        finally:
            await server.stop()
