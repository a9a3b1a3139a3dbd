"""FTGO's gRPC API (ftgo.order.v1) on a real grpc.aio server: create, get, watch."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from ftgo.app.system import FtgoSystem
from ftgo.consumer.service import create_consumer
from ftgo.generated.order.v1 import order_pb2, order_pb2_grpc
from ftgo.generated.restaurant.v1 import restaurant_pb2, restaurant_pb2_grpc
from ftgo.order.grpc import SERVICE as ORDER_SERVICE
from ftgo.order.grpc import OrderServicer
from ftgo.restaurant.grpc import SERVICE as RESTAURANT_SERVICE
from ftgo.restaurant.grpc import RestaurantServicer
from ftgo.restaurant.service import create_restaurant
from ftgo.values import MenuItem
from servicewire.grpc import Server


async def test_create_get_and_watch_an_order_over_grpc(tmp_path: Path) -> None:
    system = FtgoSystem.embedded(tmp_path, transport=f"memory://{uuid.uuid4().hex}")
    async with system:
        restaurant = await create_restaurant(
            system.restaurant_service,
            name="Ajanta",
            menu=[MenuItem(menu_item_id="naan", name="Naan", price=Decimal("2.50"))],
            postcodes=["94619"],
        )
        ada = await create_consumer(system.consumer_service, name="Ada", order_limit=Decimal("50"))
        deadline = time.monotonic() + 10
        while await system.orders.restaurant(restaurant.restaurant_id) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        server = Server()
        server.add_service(
            order_pb2_grpc.add_OrderServiceServicer_to_server,
            OrderServicer(system.orders),
            ORDER_SERVICE,
        )
        server.add_service(
            restaurant_pb2_grpc.add_RestaurantServiceServicer_to_server,
            RestaurantServicer(system.restaurant_service),
            RESTAURANT_SERVICE,
        )
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = order_pb2_grpc.OrderServiceStub(channel)
                created = await stub.CreateOrder(
                    order_pb2.CreateOrderRequest(
                        consumer_id=ada.consumer_id,
                        restaurant_id=restaurant.restaurant_id,
                        line_items=[order_pb2.LineItem(menu_item_id="naan", quantity=4)],
                        delivery_address=order_pb2.Address(
                            street="1 Main St", city="Oakland", postcode="94619"
                        ),
                    ),
                    timeout=5,
                )
                assert created.state == "PENDING"
                states = [
                    change.state
                    async for change in stub.WatchOrder(
                        order_pb2.WatchOrderRequest(order_id=created.order_id), timeout=10
                    )
                ]
                assert states == ["PENDING", "VALIDATED"]
                got = await stub.GetOrder(
                    order_pb2.GetOrderRequest(order_id=created.order_id), timeout=5
                )
                assert got.state == "VALIDATED" and got.order_total == "10.00"

                with pytest.raises(grpc.aio.AioRpcError) as missing:
                    await stub.GetOrder(order_pb2.GetOrderRequest(order_id="nope"), timeout=5)
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
                with pytest.raises(grpc.aio.AioRpcError) as invalid:
                    await stub.CreateOrder(
                        order_pb2.CreateOrderRequest(
                            consumer_id=ada.consumer_id,
                            restaurant_id=restaurant.restaurant_id,
                            line_items=[order_pb2.LineItem(menu_item_id="naan", quantity=-1)],
                            delivery_address=order_pb2.Address(
                                street="x", city="y", postcode="94619"
                            ),
                        ),
                        timeout=5,
                    )
                assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT

                restaurants = restaurant_pb2_grpc.RestaurantServiceStub(channel)
                check = await restaurants.ValidateOrderDetails(
                    restaurant_pb2.ValidateOrderDetailsRequest(
                        order_id="o",
                        restaurant_id=restaurant.restaurant_id,
                        line_items=[restaurant_pb2.LineItem(menu_item_id="naan", quantity=2)],
                        delivery_postcode="10001",
                    ),
                    timeout=5,
                )
                assert not check.valid and "does not deliver" in check.reason
        finally:
            await server.stop(0.5)
