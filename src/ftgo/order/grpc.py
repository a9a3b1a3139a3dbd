"""Order Service's gRPC API, package ``ftgo.order.v1``: CreateOrder, GetOrder, WatchOrder.

WatchOrder streams each state the order enters (the states so far first), and ends
when the order reaches a final state or the client goes away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import ValidationError

from ftgo.generated.order.v1 import order_pb2, order_pb2_grpc
from ftgo.order.service import CreateOrderRequest, Order, Orders, UnknownRestaurantError
from ftgo.values import Address, LineItem
from servicewire.resilience import InvalidArgumentError, NotFoundError

SERVICE = order_pb2.DESCRIPTOR.services_by_name["OrderService"]


def order_message(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        order_id=order.order_id,
        state=order.state.value,
        rejection_reason=order.rejection_reason or "",
        order_total=str(order.order_total),
        consumer_id=order.consumer_id,
        restaurant_id=order.restaurant_id,
        line_items=[
            order_pb2.LineItem(menu_item_id=li.menu_item_id, quantity=li.quantity)
            for li in order.line_items
        ],
        delivery_address=order_pb2.Address(**order.delivery_address.model_dump()),
        delivery_time=order.delivery_time or "",
    )


def create_request(message: order_pb2.CreateOrderRequest) -> CreateOrderRequest:
    address = message.delivery_address
    try:
        return CreateOrderRequest(
            consumer_id=message.consumer_id,
            restaurant_id=message.restaurant_id,
            line_items=[
                LineItem(menu_item_id=li.menu_item_id, quantity=li.quantity)
                for li in message.line_items
            ],
            delivery_address=Address(
                street=address.street, city=address.city, postcode=address.postcode
            ),
            delivery_time=message.delivery_time or None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidArgumentError("order-service", f"{where}: {first['msg']}") from None


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    async def CreateOrder(self, request: Any, context: Any) -> order_pb2.Order:
        try:
            order = await self.orders.create(create_request(request))
        except UnknownRestaurantError as exc:
            raise InvalidArgumentError("order-service", str(exc)) from None
        return order_message(order)

    async def GetOrder(self, request: Any, context: Any) -> order_pb2.Order:
        order = await self.orders.get(request.order_id)
        if order is None:
            raise NotFoundError("order-service", f"no order {request.order_id!r}")
        return order_message(order)

    async def WatchOrder(
        self, request: Any, context: Any
    ) -> AsyncIterator[order_pb2.OrderStateChange]:
        order_id = request.order_id
        queue = self.orders.watch.subscribe(order_id)  # before reading: no change is missed
        try:
            if await self.orders.get(order_id) is None:
                raise NotFoundError("order-service", f"no order {order_id!r}")
            sent = 0
            while True:
                history = await self.orders.history(order_id)
                for change in history[sent:]:
                    yield order_pb2.OrderStateChange(
                        order_id=order_id,
                        state=change.state.value,
                        reason=change.reason or "",
                        at=change.at,
                    )
                sent = len(history)
                if history and history[-1].state.is_final:
                    return
                await queue.get()
        finally:
            self.orders.watch.unsubscribe(order_id, queue)
