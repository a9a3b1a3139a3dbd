"""A reproducible mix of orders for FTGO's end-to-end tests and benchmark."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from ftgo.app.system import FtgoSystem
from ftgo.consumer.service import create_consumer
from ftgo.order.service import CreateOrderRequest
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
