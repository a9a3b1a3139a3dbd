"""Order Service's REST API (``/v1``): orders, and the restaurant replica.

    POST /v1/orders                 {"consumerId", "restaurantId", "lineItems": [{"menuItemId",
                                     "quantity"}], "deliveryAddress": {"street", "city",
                                     "postcode"}, "deliveryTime"}  -> 201 PENDING + Location
    GET  /v1/orders/{id}            state, rejectionReason, orderTotal, ... and _links
    POST /v1/orders/{id}/cancel     while PENDING (409 otherwise)
    GET  /v1/restaurants/{id}       from the replica fed by Restaurant Service's events

An order's representation links only to what can be done now: ``cancel`` appears
while it is PENDING.
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import Field

from ftgo.order.service import (
    CreateOrderRequest,
    Order,
    Orders,
    OrderStateError,
    UnknownRestaurantError,
)
from ftgo.order.state import OrderState
from ftgo.order.sync_validation import ValidationUnavailableError
from ftgo.rest_models import CamelModel
from ftgo.restaurant.rest import MenuItemBody
from ftgo.values import Address, LineItem
from servicewire.exposition import mount_metrics
from servicewire.rest import (
    HalResource,
    Links,
    Problem,
    create_app,
    created,
    problem_responses,
    versioned_router,
)

API_VERSION = "1.0.0"


class LineItemBody(CamelModel):
    menu_item_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)


class AddressBody(CamelModel):
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postcode: str = Field(min_length=1, max_length=20)


class CreateOrderBody(CamelModel):
    consumer_id: str = Field(min_length=1, max_length=64)
    restaurant_id: str = Field(min_length=1, max_length=64)
    line_items: list[LineItemBody] = Field(min_length=1, max_length=100)
    delivery_address: AddressBody
    delivery_time: str | None = Field(default=None, max_length=64)

    def request(self) -> CreateOrderRequest:
        return CreateOrderRequest(
            consumer_id=self.consumer_id,
            restaurant_id=self.restaurant_id,
            line_items=[LineItem(**li.model_dump()) for li in self.line_items],
            delivery_address=Address(**self.delivery_address.model_dump()),
            delivery_time=self.delivery_time,
        )


class OrderView(HalResource, CamelModel):
    order_id: str
    state: str
    rejection_reason: str | None = None
    order_total: Decimal
    consumer_id: str
    restaurant_id: str
    line_items: list[LineItemBody]
    delivery_address: AddressBody
    delivery_time: str | None = None


class ReplicaView(HalResource, CamelModel):
    restaurant_id: str
    name: str
    menu: list[MenuItemBody]
    postcodes: list[str]


def order_view(request: Request, order: Order) -> OrderView:
    links = (
        Links(request)
        .add("self", "get_order", order_id=order.order_id)
        .add("restaurant", "get_restaurant_replica", restaurant_id=order.restaurant_id)
        .when(
            order.state is OrderState.PENDING,
            "cancel",
            "cancel_order",
            method="POST",
            order_id=order.order_id,
        )
    )
    return OrderView(
        order_id=order.order_id,
        state=order.state.value,
        rejection_reason=order.rejection_reason,
        order_total=order.order_total,
        consumer_id=order.consumer_id,
        restaurant_id=order.restaurant_id,
        line_items=[LineItemBody(**li.model_dump()) for li in order.line_items],
        delivery_address=AddressBody(**order.delivery_address.model_dump()),
        delivery_time=order.delivery_time,
        _links=links.build(),
    )


def build_order_app(orders: Orders) -> FastAPI:
    app = create_app("FTGO Order Service", API_VERSION, vendor="ftgo")
    v1 = versioned_router(1, tags=["orders"])

    @v1.post(
        "/orders",
        name="create_order",
        status_code=201,
        response_model=OrderView,
        responses=problem_responses(422, 503),
    )
    async def create(request: Request, body: CreateOrderBody) -> Response:
        try:
            order = await orders.create(body.request())
        except UnknownRestaurantError as exc:
            raise Problem(422, "Unknown restaurant", detail=str(exc)) from None
        except ValidationUnavailableError as exc:
            raise Problem(503, "Validation unavailable", detail=str(exc)) from None
        href = Links(request).href("get_order", order_id=order.order_id)
        return created(order_view(request, order), location=href)

    @v1.get("/orders/{order_id}", name="get_order", responses=problem_responses(404))
    async def get(request: Request, order_id: str) -> OrderView:
        order = await orders.get(order_id)
        if order is None:
            raise Problem(404, "Order not found", detail=f"no order {order_id!r}")
        return order_view(request, order)

    @v1.post(
        "/orders/{order_id}/cancel", name="cancel_order", responses=problem_responses(404, 409)
    )
    async def cancel(request: Request, order_id: str) -> OrderView:
        try:
            order = await orders.cancel(order_id)
        except OrderStateError as exc:
            raise Problem(409, "Order cannot be cancelled", detail=str(exc)) from None
        except LookupError as exc:
            raise Problem(404, "Order not found", detail=str(exc)) from None
        return order_view(request, order)

    @v1.get(
        "/restaurants/{restaurant_id}",
        name="get_restaurant_replica",
        responses=problem_responses(404),
    )
    async def restaurant(request: Request, restaurant_id: str) -> ReplicaView:
        replica = await orders.restaurant(restaurant_id)
        if replica is None:
            raise Problem(404, "Restaurant not found", detail=f"no restaurant {restaurant_id!r}")
        links = Links(request).add("self", "get_restaurant_replica", restaurant_id=restaurant_id)
        return ReplicaView(
            restaurant_id=replica.restaurant_id,
            name=replica.name,
            menu=[MenuItemBody(**m.model_dump()) for m in replica.menu],
            postcodes=replica.postcodes,
            _links=links.build(),
        )

    app.include_router(v1)
    mount_metrics(app, orders.service)  # GET /metrics (not in the OpenAPI document)
    return app
