"""Synchronous validation: Order Service asks the other two services *while* it creates.

Consumer Service over REST, Restaurant Service over gRPC, concurrently, through the
resilient clients (deadline, circuit breaker, bulkhead) and service discovery. This is
the style DESIGN section 8 compares with the asynchronous one: the order is final when
the call returns, but creating an order now needs both services up; when one is down
the call fails (fast, once its circuit is open) and the client gets 503.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from ftgo.generated.restaurant.v1 import restaurant_pb2, restaurant_pb2_grpc
from servicewire import ServicewireError
from servicewire.grpc import GrpcClient, client_span
from servicewire.rest import RestClient

CONSUMER = "consumer-service"
RESTAURANT = "restaurant-service"


class ValidationUnavailableError(ServicewireError):
    """A service needed for synchronous validation did not answer."""


class SyncValidator:
    def __init__(self, rest: RestClient, grpc: GrpcClient, *, timeout: float = 2.0) -> None:
        self.rest = rest
        self.grpc = grpc
        self.timeout = timeout

    async def validate(
        self,
        *,
        order_id: str,
        consumer_id: str,
        restaurant_id: str,
        line_items: list[tuple[str, int]],
        postcode: str,
        estimated_total: Decimal,
    ) -> tuple[Decimal | None, str | None]:
        """(priced total, None) if both services accept the order, else (None, reason)."""
        results = await asyncio.gather(
            self._check_consumer(consumer_id, estimated_total),
            self._check_restaurant(order_id, restaurant_id, line_items, postcode),
            return_exceptions=True,
        )
        for result, name in zip(results, (CONSUMER, RESTAURANT), strict=True):
            if isinstance(result, BaseException):
                raise ValidationUnavailableError(f"{name} did not answer: {result}") from result
        consumer, restaurant = results
        assert not isinstance(consumer, BaseException)
        assert not isinstance(restaurant, BaseException)
        verdict = consumer.data
        if not verdict["valid"]:
            return None, f"consumer: {verdict['reason']}"
        if not restaurant.valid:
            return None, f"restaurant: {restaurant.reason}"
        return Decimal(restaurant.order_total), None

    # Each call in a client span whose context goes out with it (HTTP headers, gRPC
    # metadata), so the callee's server span joins the order's trace.

    async def _check_consumer(self, consumer_id: str, estimated_total: Decimal) -> Any:
        with client_span(CONSUMER, "GET order-validation") as trace:
            return await self.rest.get(
                CONSUMER,
                f"/v1/consumers/{consumer_id}/order-validation?orderTotal={estimated_total}",
                timeout=self.timeout,
                headers=dict(trace),
            )

    async def _check_restaurant(
        self, order_id: str, restaurant_id: str, line_items: list[tuple[str, int]], postcode: str
    ) -> Any:
        with client_span(RESTAURANT, "ValidateOrderDetails") as trace:
            return await self.grpc.unary(
                RESTAURANT,
                restaurant_pb2_grpc.RestaurantServiceStub,
                "ValidateOrderDetails",
                restaurant_pb2.ValidateOrderDetailsRequest(
                    order_id=order_id,
                    restaurant_id=restaurant_id,
                    line_items=[
                        restaurant_pb2.LineItem(menu_item_id=item, quantity=qty)
                        for item, qty in line_items
                    ],
                    delivery_postcode=postcode,
                ),
                timeout=self.timeout,
                idempotent=True,
                metadata=trace,
            )
