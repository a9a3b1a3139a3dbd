"""FTGO's create-order flow over ``kinesis://``: SQLite files + a private moto server
(Kinesis and DynamoDB emulated). Orders placed go PENDING -> VALIDATED (or REJECTED with
the reason) through Kinesis streams, and stopping the system deletes the instances'
reply streams."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

from ftgo.app.system import FtgoSystem
from ftgo.consumer.service import create_consumer
from ftgo.order.service import CreateOrderRequest
from ftgo.restaurant.service import create_restaurant
from ftgo.values import Address, LineItem
from servicewire.testing.moto_server import PrivateMoto
from servicewire.transports.kinesis.client import Clients
from servicewire.transports.kinesis.options import parse_kinesis_url
from tests.ftgo.test_order_flow_embedded import MENU, wait_final


async def test_orders_are_validated_over_kinesis(tmp_path: Path) -> None:
    with PrivateMoto() as moto:
        url = moto.kinesis_url(
            poll_interval="0.1", lease_time="3", checkpoint_interval="0.5", shards="2"
        )
        system = FtgoSystem.embedded(tmp_path, transport=url)
        async with system:
            restaurant = await create_restaurant(
                system.restaurant_service, name="Ajanta", menu=MENU, postcodes=["94619"]
            )
            ada = await create_consumer(
                system.consumer_service, name="Ada", order_limit=Decimal("100")
            )
            deadline = time.monotonic() + 60
            while await system.orders.restaurant(restaurant.restaurant_id) is None:
                assert time.monotonic() < deadline, "replica never received RestaurantCreated"
                await asyncio.sleep(0.05)

            def request(consumer: str) -> CreateOrderRequest:
                return CreateOrderRequest(
                    consumer_id=consumer,
                    restaurant_id=restaurant.restaurant_id,
                    line_items=[LineItem(menu_item_id="chicken-vindaloo", quantity=2)],
                    delivery_address=Address(street="1 Main St", city="Oakland", postcode="94619"),
                )

            ok = await system.orders.create(request(ada.consumer_id))
            unknown = await system.orders.create(request("nobody"))
            assert await wait_final(system, ok.order_id, timeout=90) == "VALIDATED"
            assert await wait_final(system, unknown.order_id, timeout=90) == "REJECTED"
            rejected = await system.orders.get(unknown.order_id)
            assert rejected is not None and "does not exist" in (rejected.rejection_reason or "")
        clients = await Clients.open(parse_kinesis_url(url))
        try:
            names = list((await clients.kinesis.list_streams()).get("StreamNames", []))
        finally:
            await clients.close()
        # <service>.replies.<instance> streams: each instance deleted its own when it
        # stopped (the shared reply channel stays).
        print(f"[ftgo over kinesis] streams after stop: {names}")
        assert names, "nothing was declared: the flow did not run over Kinesis"
        assert not [n for n in names if ".replies." in n], "an instance reply stream was left"
