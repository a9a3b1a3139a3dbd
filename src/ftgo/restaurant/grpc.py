"""Restaurant Service's gRPC API, package ``ftgo.restaurant.v1``: ValidateOrderDetails.

The synchronous twin of the ValidateOrderDetails command, for Order Service's
``--validation sync`` mode.
"""

from __future__ import annotations

from typing import Any

from ftgo.generated.restaurant.v1 import restaurant_pb2, restaurant_pb2_grpc
from ftgo.restaurant.service import load_restaurant, price_order
from ftgo.values import LineItem
from servicewire import Service

SERVICE = restaurant_pb2.DESCRIPTOR.services_by_name["RestaurantService"]


class RestaurantServicer(restaurant_pb2_grpc.RestaurantServiceServicer):
    def __init__(self, service: Service) -> None:
        self.service = service

    async def ValidateOrderDetails(
        self, request: Any, context: Any
    ) -> restaurant_pb2.ValidateOrderDetailsResponse:
        items = [
            LineItem(menu_item_id=li.menu_item_id, quantity=max(1, li.quantity))
            for li in request.line_items
        ]
        async with self.service.transaction() as ctx:
            restaurant = await load_restaurant(ctx.connection, request.restaurant_id)
        total, reason = price_order(
            restaurant, request.restaurant_id, items, request.delivery_postcode
        )
        if total is None:
            return restaurant_pb2.ValidateOrderDetailsResponse(valid=False, reason=reason or "")
        return restaurant_pb2.ValidateOrderDetailsResponse(valid=True, order_total=str(total))
