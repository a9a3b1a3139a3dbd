"""An example REST service built with the toolkit: orders, two majors, HAL actions.

It is the app the tests, schemathesis and ``benchmarks/rpc.py`` run, and a template for
a real service. Run it with::

    uvicorn servicewire.rest.example:app --port 8000

``/v1`` and ``/v2`` live side by side (v2 renames ``state`` to ``status`` and adds
``total_quantity``); ``Accept: application/vnd.example.v2+json`` on ``/orders/...`` picks
v2 as well. An order's ``cancel`` link is present only while it can be cancelled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Annotated, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from servicewire.rest.app import create_app
from servicewire.rest.hal import HalResource, Links
from servicewire.rest.openapi import problem_responses
from servicewire.rest.problems import Problem
from servicewire.rest.responses import created
from servicewire.rest.routing import versioned_router

OrderState = Literal["PENDING", "APPROVED", "CANCELLED"]
CANCELLABLE: frozenset[str] = frozenset({"PENDING", "APPROVED"})


class LineItem(BaseModel):
    menu_item_id: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=100)]


class CreateOrderRequest(BaseModel):
    consumer_id: Annotated[str, Field(min_length=1, max_length=64)]
    items: Annotated[list[LineItem], Field(min_length=1, max_length=50)]


class OrderV1(HalResource):
    id: str
    consumer_id: str
    state: OrderState
    items: list[LineItem]


class OrderV2(HalResource):
    id: str
    consumer_id: str
    status: OrderState
    items: list[LineItem]
    total_quantity: int


class Root(HalResource):
    service: str


class Echo(BaseModel):
    message: Annotated[str, Field(max_length=4096)]


@dataclass
class _Order:
    id: str
    consumer_id: str
    items: list[LineItem]
    state: str = "PENDING"


@dataclass
class OrderStore:
    """In-memory orders of one app instance."""

    orders: dict[str, _Order] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, body: CreateOrderRequest) -> _Order:
        order = _Order(f"o-{next(self.ids)}", body.consumer_id, list(body.items))
        self.orders[order.id] = order
        return order

    def get(self, order_id: str) -> _Order:
        order = self.orders.get(order_id)
        if order is None:
            raise Problem(404, "Order not found", detail=f"no order {order_id!r}")
        return order


def _store(request: Request) -> OrderStore:
    store: OrderStore = request.app.state.orders
    return store


def _links(request: Request, order: _Order) -> Links:
    return (
        Links(request)
        .add("self", "get_order", order_id=order.id)
        .when(
            order.state in CANCELLABLE, "cancel", "cancel_order", method="POST", order_id=order.id
        )
    )


def _v1(request: Request, order: _Order) -> OrderV1:
    links = _links(request, order).build()
    return OrderV1(
        id=order.id,
        consumer_id=order.consumer_id,
        state=order.state,
        items=order.items,
        _links=links,
    )


def _v2(request: Request, order: _Order) -> OrderV2:
    links = _links(request, order).build()
    return OrderV2(
        id=order.id,
        consumer_id=order.consumer_id,
        status=order.state,
        items=order.items,
        total_quantity=sum(i.quantity for i in order.items),
        _links=links,
    )


v1 = versioned_router(1, tags=["v1"])
v2 = versioned_router(2, tags=["v2"])


@v1.get("/", name="root")
async def root_v1(request: Request) -> Root:
    links = Links(request).add("orders", "create_order", method="POST").build()
    return Root(service="example", _links=links)


@v1.post("/orders", name="create_order", status_code=201, response_model=OrderV1)
async def create_order_v1(request: Request, body: CreateOrderRequest) -> Response:
    order = _store(request).add(body)
    return created(
        _v1(request, order), location=Links(request).href("get_order", order_id=order.id)
    )


@v1.get("/orders/{order_id}", name="get_order")
async def get_order_v1(request: Request, order_id: str) -> OrderV1:
    return _v1(request, _store(request).get(order_id))


@v1.post("/orders/{order_id}/cancel", name="cancel_order", responses=problem_responses(409))
async def cancel_order_v1(request: Request, order_id: str) -> OrderV1:
    order = _store(request).get(order_id)
    if order.state not in CANCELLABLE:
        raise Problem(409, "Order cannot be cancelled", detail=f"order {order_id} is {order.state}")
    order.state = "CANCELLED"
    return _v1(request, order)


@v1.post("/echo", name="echo")
async def echo_v1(body: Echo) -> Echo:
    return body


@v2.get("/", name="root")
async def root_v2(request: Request) -> Root:
    links = Links(request).add("orders", "create_order", method="POST").build()
    return Root(service="example", _links=links)


@v2.post("/orders", name="create_order", status_code=201, response_model=OrderV2)
async def create_order_v2(request: Request, body: CreateOrderRequest) -> Response:
    order = _store(request).add(body)
    return created(
        _v2(request, order), location=Links(request).href("get_order", order_id=order.id)
    )


@v2.get("/orders/{order_id}", name="get_order")
async def get_order_v2(request: Request, order_id: str) -> OrderV2:
    return _v2(request, _store(request).get(order_id))


@v2.post("/orders/{order_id}/cancel", name="cancel_order", responses=problem_responses(409))
async def cancel_order_v2(request: Request, order_id: str) -> OrderV2:
    order = _store(request).get(order_id)
    if order.state not in CANCELLABLE:
        raise Problem(409, "Order cannot be cancelled", detail=f"order {order_id} is {order.state}")
    order.state = "CANCELLED"
    return _v2(request, order)


def build_app(*, max_body_bytes: int = 1024 * 1024) -> FastAPI:
    """A fresh example app with its own empty store."""
    app = create_app(
        "Servicewire example orders",
        "2.0.0",
        vendor="example",
        max_body_bytes=max_body_bytes,
        description="Orders with HAL links, two majors side by side, problem details.",
    )
    app.state.orders = OrderStore()
    app.include_router(v1)
    app.include_router(v2)
    return app


app = build_app()
