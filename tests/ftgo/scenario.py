"""A reproducible mix of orders for FTGO's end-to-end tests and benchmark."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from ftgo.app.system import FtgoSystem
from ftgo.consumer.service import create_consumer
from ftgo.order.service import CreateOrderRequest, Order, state_changes
from ftgo.restaurant.service import create_restaurant
from ftgo.values import Address, LineItem, MenuItem

MENU = [
    MenuItem(menu_item_id="vindaloo", name="Chicken Vindaloo", price=Decimal("12.34")),
    MenuItem(menu_item_id="naan", name="Naan", price=Decimal("2.50")),
    MenuItem(menu_item_id="lassi", name="Mango Lassi", price=Decimal("4.00")),
]
HOME = Address(street="1 Main St", city="Oakland", postcode="94619")
AWAY = Address(street="5 Broadway", city="New York", postcode="10001")

# case name -> (expected state, words the rejection reason contains)
CASES: dict[str, tuple[str, str | None]] = {
    "valid": ("VALIDATED", None),
    "unknown consumer": ("REJECTED", "does not exist"),
    "inactive consumer": ("REJECTED", "not active"),
    "over limit": ("REJECTED", "exceeds"),
    "not on menu": ("REJECTED", "not on the menu"),
    "no delivery": ("REJECTED", "does not deliver"),
}


@dataclass
class Scenario:
    restaurant_id: str
    active: str
    inactive: str


async def prepare(system: FtgoSystem) -> Scenario:
    restaurant = await create_restaurant(
        system.restaurant_service, name="Ajanta", menu=MENU, postcodes=["94619"]
    )
    active = await create_consumer(system.consumer_service, name="Ada", order_limit=Decimal("100"))
    inactive = await create_consumer(
        system.consumer_service, name="Idle", order_limit=Decimal("100"), active=False
    )
    return Scenario(restaurant.restaurant_id, active.consumer_id, inactive.consumer_id)


def order_for(case: str, s: Scenario, rng: random.Random) -> CreateOrderRequest:
    items = [LineItem(menu_item_id="naan", quantity=rng.randint(1, 4))]
    consumer, address = s.active, HOME
    if case == "unknown consumer":
        consumer = f"nobody-{rng.randint(0, 10**6)}"
    elif case == "inactive consumer":
        consumer = s.inactive
    elif case == "over limit":
        items = [LineItem(menu_item_id="vindaloo", quantity=9)]
    elif case == "not on menu":
        items = [LineItem(menu_item_id="sushi", quantity=1)]
    elif case == "no delivery":
        address = AWAY
    return CreateOrderRequest(
        consumer_id=consumer,
        restaurant_id=s.restaurant_id,
        line_items=items,
        delivery_address=address,
    )


def mix(n: int, seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    names = list(CASES)
    return [names[0] if rng.random() < 0.5 else rng.choice(names[1:]) for _ in range(n)]


async def prepare_replicated(system: FtgoSystem) -> Scenario:
    """:func:`prepare`, then wait (at most 20 s) until the Order Service's replica holds
    the restaurant, so that orders for it can be taken."""
    scenario = await prepare(system)
    deadline = time.monotonic() + 20
    while await system.orders.restaurant(scenario.restaurant_id) is None:
        assert time.monotonic() < deadline, "replica never filled"
        await asyncio.sleep(0.05)
    return scenario


async def assert_final_states(
    system: FtgoSystem, orders: list[Order], cases: list[str], within: float
) -> None:
    """Each order leaves PENDING within ``within`` seconds, for the state (and reason)
    its case dictates, and changed state exactly twice (PENDING, then final)."""
    deadline = time.monotonic() + within
    for order, case in zip(orders, cases, strict=True):
        while True:
            current = await system.orders.get(order.order_id)
            assert current is not None
            if current.state != "PENDING":
                break
            assert time.monotonic() < deadline, f"order for {case!r} stuck PENDING"
            await asyncio.sleep(0.05)
        state, words = CASES[case]
        assert current.state == state, (case, current.rejection_reason)
        if words:
            assert current.rejection_reason and words in current.rejection_reason
    assert system.order_service.engine is not None
    async with system.order_service.engine.connect() as conn:
        per_order = (
            await conn.execute(
                select(state_changes.c.order_id, func.count()).group_by(state_changes.c.order_id)
            )
        ).all()
    assert len(per_order) == len(orders)
    assert all(count == 2 for _id, count in per_order), "an order changed state twice"
