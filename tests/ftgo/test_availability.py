"""Availability of the two validation styles when Consumer Service is down (DESIGN §8).

Asynchronous: orders are still accepted (201 PENDING) and finish when it is back.
Synchronous: creating an order fails, fast once the circuit is open, with 503.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from ftgo.app.system import FtgoSystem
from ftgo.app.web import HttpServer
from ftgo.consumer.rest import build_consumer_app
from ftgo.consumer.service import create_consumer, create_consumer_service
from ftgo.generated.restaurant.v1 import restaurant_pb2_grpc
from ftgo.order.rest import build_order_app
from ftgo.order.sync_validation import SyncValidator
from ftgo.restaurant.grpc import SERVICE as RESTAURANT_SERVICE
from ftgo.restaurant.grpc import RestaurantServicer
from ftgo.restaurant.service import create_restaurant, create_restaurant_service
from ftgo.values import MenuItem
from servicewire import Service
from servicewire.grpc import GrpcClient, Server
from servicewire.resilience import Resilience
from servicewire.rest import RestClient

MENU = [MenuItem(menu_item_id="naan", name="Naan", price=Decimal("2.50"))]


class OtherServices:
    """Consumer and Restaurant Services without an Order Service of their own."""

    def __init__(self, consumer: Service, restaurant: Service) -> None:
        self.consumer = consumer
        self.restaurant = restaurant

    async def __aenter__(self) -> OtherServices:
        await self.consumer.start()
        await self.restaurant.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.restaurant.stop()
        await self.consumer.stop()


def body(consumer_id: str, restaurant_id: str) -> dict[str, Any]:
    return {
        "consumerId": consumer_id,
        "restaurantId": restaurant_id,
        "lineItems": [{"menuItemId": "naan", "quantity": 2}],
        "deliveryAddress": {"street": "1 Main St", "city": "Oakland", "postcode": "94619"},
    }


async def wait_replica(system: FtgoSystem, restaurant_id: str) -> None:
    deadline = time.monotonic() + 10
    while await system.orders.restaurant(restaurant_id) is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_async_style_accepts_orders_while_consumer_service_is_down(tmp_path: Path) -> None:
    system = FtgoSystem.embedded(tmp_path, transport=f"memory://{uuid.uuid4().hex}")
    async with system:
        restaurant = await create_restaurant(
            system.restaurant_service, name="Ajanta", menu=MENU, postcodes=["94619"]
        )
        ada = await create_consumer(system.consumer_service, name="Ada", order_limit=Decimal("50"))
        await wait_replica(system, restaurant.restaurant_id)
        server = HttpServer(build_order_app(system.orders))
        await server.start()
        try:
            await system.consumer_service.stop()
            async with httpx.AsyncClient(base_url=server.url) as client:
                ids = []
                for _ in range(5):
                    r = await client.post(
                        "/v1/orders", json=body(ada.consumer_id, restaurant.restaurant_id)
                    )
                    assert r.status_code == 201 and r.json()["state"] == "PENDING"
                    ids.append(r.json()["orderId"])
                await asyncio.sleep(0.5)
                for order_id in ids:
                    assert (await client.get(f"/v1/orders/{order_id}")).json()["state"] == "PENDING"
                await system.consumer_service.start()
                deadline = time.monotonic() + 15
                for order_id in ids:
                    while (
                        state := (await client.get(f"/v1/orders/{order_id}")).json()["state"]
                    ) == "PENDING":
                        assert time.monotonic() < deadline, "order stuck after the restart"
                        await asyncio.sleep(0.05)
                    assert state == "VALIDATED"
        finally:
            await server.stop()


async def test_sync_style_fails_fast_with_503_once_the_circuit_opens(tmp_path: Path) -> None:
    transport = f"memory://{uuid.uuid4().hex}"
    consumer_side = OtherServices(
        create_consumer_service(f"sqlite:///{tmp_path / 'c.db'}", transport),
        create_restaurant_service(f"sqlite:///{tmp_path / 'r.db'}", transport),
    )
    consumer_http = HttpServer(build_consumer_app(consumer_side.consumer))
    grpc_server = Server()
    grpc_server.add_service(
        restaurant_pb2_grpc.add_RestaurantServiceServicer_to_server,
        RestaurantServicer(consumer_side.restaurant),
        RESTAURANT_SERVICE,
    )
    resilience = Resilience(timeout=1.0, failure_threshold=3, reset_timeout=30.0)
    async with consumer_side:
        await consumer_http.start()
        grpc_port = await grpc_server.start()
        rest = RestClient(
            {"consumer-service": [f"127.0.0.1:{consumer_http.port}"]}, resilience=resilience
        )
        grpc = GrpcClient({"restaurant-service": [f"127.0.0.1:{grpc_port}"]})
        from ftgo.order.service import create_order_service

        order, orders = create_order_service(
            f"sqlite:///{tmp_path / 'sync-order.db'}",
            transport,
            validator=SyncValidator(rest, grpc, timeout=1.0),
        )
        await order.start()
        server = HttpServer(build_order_app(orders))
        await server.start()
        try:
            restaurant = await create_restaurant(
                consumer_side.restaurant, name="Ajanta", menu=MENU, postcodes=["94619"]
            )
            ada = await create_consumer(
                consumer_side.consumer, name="Ada", order_limit=Decimal("50")
            )
            deadline = time.monotonic() + 10
            while await orders.restaurant(restaurant.restaurant_id) is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            async with httpx.AsyncClient(base_url=server.url) as client:
                ok = await client.post(
                    "/v1/orders", json=body(ada.consumer_id, restaurant.restaurant_id)
                )
                assert ok.status_code == 201 and ok.json()["state"] == "VALIDATED"

                await consumer_http.stop()  # Consumer Service is down
                timings = []
                for _ in range(6):
                    start = time.monotonic()
                    r = await client.post(
                        "/v1/orders", json=body(ada.consumer_id, restaurant.restaurant_id)
                    )
                    timings.append(time.monotonic() - start)
                    assert r.status_code == 503, r.text
                    assert r.headers["content-type"].startswith("application/problem+json")
                last = r.json()
                assert "consumer-service" in last["detail"]
                assert "circuit" in last["detail"].lower() or "open" in last["detail"].lower()
                assert max(timings[3:]) < 0.2, f"not failing fast once open: {timings}"
                assert resilience.breaker("consumer-service").state.value == "open"
        finally:
            await server.stop()
            await order.stop()
            await rest.close()
            await grpc.close()
            await grpc_server.stop(0.2)
