"""Place one order on FTGO over PostgreSQL and RabbitMQ and wait until it is VALIDATED.

Run by tests/packaging/test_wheel.py inside a venv that has only
``servicewire[postgres,amqp]``: argv = postgres base URL (no database), AMQP URL.
Creates three databases and drops them again; prints the final state.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from decimal import Decimal

from sqlalchemy import text

from ftgo.consumer.service import create_consumer
from ftgo.order.service import CreateOrderRequest
from ftgo.restaurant.service import create_restaurant
from ftgo.system import FtgoSystem
from ftgo.types import Address, LineItem, MenuItem
from servicewire.database import create_engine


async def main(pg_base: str, amqp: str) -> str:
    suffix = uuid.uuid4().hex[:8]
    names = {s: f"sw_wheel_{suffix}_{s}" for s in ("order", "consumer", "restaurant")}
    admin = create_engine(f"{pg_base}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        for name in names.values():
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        system = FtgoSystem.create(
            order_db=f"{pg_base}/{names['order']}",
            consumer_db=f"{pg_base}/{names['consumer']}",
            restaurant_db=f"{pg_base}/{names['restaurant']}",
            transport=amqp,
        )
        async with system:
            restaurant = await create_restaurant(
                system.restaurant,
                name="Ajanta",
                menu=[MenuItem(menu_item_id="naan", name="Naan", price=Decimal("2.50"))],
                postcodes=["94619"],
            )
            consumer = await create_consumer(
                system.consumer, name="Ada", order_limit=Decimal("100")
            )
            deadline = time.monotonic() + 60
            while await system.orders.restaurant(restaurant.restaurant_id) is None:
                assert time.monotonic() < deadline, "the restaurant replica never filled"
                await asyncio.sleep(0.05)
            order = await system.orders.create(
                CreateOrderRequest(
                    consumer_id=consumer.consumer_id,
                    restaurant_id=restaurant.restaurant_id,
                    line_items=[LineItem(menu_item_id="naan", quantity=2)],
                    delivery_address=Address(street="1 Main St", city="Oakland", postcode="94619"),
                )
            )
            # Generous: on a loaded two-core machine the three services share the CPU
            # with other suites; the flow itself takes well under a second here.
            deadline = time.monotonic() + 90
            while True:
                current = await system.orders.get(order.order_id)
                assert current is not None
                if current.state != "PENDING":
                    return str(current.state)
                assert time.monotonic() < deadline, "the order stayed PENDING"
                await asyncio.sleep(0.05)
    finally:
        async with admin.connect() as conn:
            for name in names.values():
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], sys.argv[2])))
