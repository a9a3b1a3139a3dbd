"""The create-order flow of DESIGN section 8, embedded: SQLite files + memory transport."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

from ftgo.app.system import FtgoSystem
from ftgo.consumer.service import create_consumer
from ftgo.order.service import CreateOrderRequest
from ftgo.restaurant.service import create_restaurant, revise_menu
from ftgo.values import Address, LineItem, MenuItem

MENU = [
    MenuItem(menu_item_id="chicken-vindaloo", name="Chicken Vindaloo", price=Decimal("12.34")),
    MenuItem(menu_item_id="naan", name="Naan", price=Decimal("2.50")),
]


async def wait_final(system: FtgoSystem, order_id: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = await system.orders.get(order_id)
        assert order is not None
        if order.state != "PENDING":
            return order.state
        await asyncio.sleep(0.02)
    raise AssertionError(f"order {order_id} still PENDING after {timeout}s")


async def one_order_validated_one_rejected(
    system: FtgoSystem, timeout: float, replica_timeout: float = 60.0
) -> None:
    """The flow over a real broker, in short: a restaurant and a consumer, then one order
    that goes VALIDATED and one for an unknown consumer that goes REJECTED with the
    reason. ``replica_timeout`` bounds the wait for the restaurant's replica, ``timeout``
    the wait for each order's final state."""
    restaurant = await create_restaurant(
        system.restaurant_service, name="Ajanta", menu=MENU, postcodes=["94619"]
    )
    ada = await create_consumer(system.consumer_service, name="Ada", order_limit=Decimal("100"))
    deadline = time.monotonic() + replica_timeout
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
    assert await wait_final(system, ok.order_id, timeout=timeout) == "VALIDATED"
    assert await wait_final(system, unknown.order_id, timeout=timeout) == "REJECTED"
    rejected = await system.orders.get(unknown.order_id)
    assert rejected is not None and "does not exist" in (rejected.rejection_reason or "")


async def test_orders_are_validated_or_rejected_with_the_reason(tmp_path: Path) -> None:
    system = FtgoSystem.embedded(tmp_path, transport=f"memory://{uuid.uuid4().hex}")
    async with system:
        restaurant = await create_restaurant(
            system.restaurant_service, name="Ajanta", menu=MENU, postcodes=["94619"]
        )
        ada = await create_consumer(system.consumer_service, name="Ada", order_limit=Decimal("100"))
        idle = await create_consumer(
            system.consumer_service, name="Idle", order_limit=Decimal("100"), active=False
        )
        # the order service learns the restaurant through its replica
        deadline = time.monotonic() + 10
        while await system.orders.restaurant(restaurant.restaurant_id) is None:
            assert time.monotonic() < deadline, "replica never received RestaurantCreated"
            await asyncio.sleep(0.02)

        def request(
            consumer: str, items: list[LineItem], postcode: str = "94619"
        ) -> CreateOrderRequest:
            return CreateOrderRequest(
                consumer_id=consumer,
                restaurant_id=restaurant.restaurant_id,
                line_items=items,
                delivery_address=Address(street="1 Main St", city="Oakland", postcode=postcode),
            )

        two = [LineItem(menu_item_id="chicken-vindaloo", quantity=2)]
        cases = {
            "ok": (request(ada.consumer_id, two), "VALIDATED", None),
            "unknown consumer": (request("nobody", two), "REJECTED", "does not exist"),
            "inactive": (request(idle.consumer_id, two), "REJECTED", "not active"),
            "over limit": (
                request(ada.consumer_id, [LineItem(menu_item_id="naan", quantity=41)]),
                "REJECTED",
                "exceeds",
            ),
            "not on menu": (
                request(ada.consumer_id, [LineItem(menu_item_id="sushi", quantity=1)]),
                "REJECTED",
                "not on the menu",
            ),
            "no delivery": (request(ada.consumer_id, two, "10001"), "REJECTED", "does not deliver"),
        }
        created = {}
        for name, (req, _state, _reason) in cases.items():
            order = await system.orders.create(req)
            assert order.state == "PENDING"
            created[name] = order.order_id
        for name, (_req, state, reason) in cases.items():
            assert await wait_final(system, created[name]) == state, name
            order = await system.orders.get(created[name])
            assert order is not None
            if reason:
                assert order.rejection_reason and reason in order.rejection_reason, name
        ok = await system.orders.get(created["ok"])
        assert ok is not None and ok.order_total == Decimal("24.68")
        history = await system.orders.history(created["ok"])
        assert [h.state for h in history] == ["PENDING", "VALIDATED"]

        # the replica follows menu revisions
        await revise_menu(system.restaurant_service, restaurant.restaurant_id, MENU[:1])
        deadline = time.monotonic() + 10
        while True:
            replica = await system.orders.restaurant(restaurant.restaurant_id)
            if replica is not None and len(replica.menu) == 1:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
