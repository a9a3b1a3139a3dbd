"""The three FTGO services wired together in one process (the embedded default).

    async with FtgoSystem.embedded(Path("/tmp/ftgo")) as ftgo:
        restaurant = await create_restaurant(ftgo.restaurant_service, ...)
        order = await ftgo.orders.create(CreateOrderRequest(...))

Each service keeps its own database (a SQLite file each, or a URL each) and they
share one transport, exactly as separate processes would share a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftgo.consumer.service import create_consumer_service
from ftgo.order.service import Orders, create_order_service
from ftgo.restaurant.service import create_restaurant_service
from servicewire import Service, ServiceOptions


@dataclass
class FtgoSystem:
    """The three services, and the Order Service's operations (what its adapters call)."""

    order_service: Service
    orders: Orders
    consumer_service: Service
    restaurant_service: Service

    @classmethod
    def create(
        cls,
        *,
        order_db: str,
        consumer_db: str,
        restaurant_db: str,
        transport: str,
        options: ServiceOptions | None = None,
    ) -> FtgoSystem:
        order_service, orders = create_order_service(order_db, transport, options=options)
        return cls(
            order_service=order_service,
            orders=orders,
            consumer_service=create_consumer_service(consumer_db, transport, options),
            restaurant_service=create_restaurant_service(restaurant_db, transport, options),
        )

    @classmethod
    def embedded(
        cls,
        directory: Path,
        transport: str = "memory://ftgo",
        options: ServiceOptions | None = None,
    ) -> FtgoSystem:
        """SQLite files in ``directory`` and the in-memory transport."""
        directory.mkdir(parents=True, exist_ok=True)
        return cls.create(
            order_db=f"sqlite:///{directory / 'order.db'}",
            consumer_db=f"sqlite:///{directory / 'consumer.db'}",
            restaurant_db=f"sqlite:///{directory / 'restaurant.db'}",
            transport=transport,
            options=options,
        )

    @property
    def services(self) -> list[Service]:
        """In the order they start (they stop in reverse): the Order Service last."""
        return [self.restaurant_service, self.consumer_service, self.order_service]

    async def start(self) -> None:
        for service in self.services:
            await service.start()

    async def stop(self) -> None:
        for service in reversed(self.services):
            await service.stop()

    async def __aenter__(self) -> FtgoSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
