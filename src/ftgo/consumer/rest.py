"""Consumer Service's REST API (``/v1``): create and read consumers.

POST /v1/consumers            {"name": "Ada", "orderLimit": "100.00", "active": true}
GET  /v1/consumers/{id}
"""

from __future__ import annotations

from decimal import Decimal

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import Field

from ftgo.consumer.service import Consumer, check_consumer, create_consumer, get_consumer
from ftgo.rest_models import CamelModel
from servicewire import Service
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


class CreateConsumerBody(CamelModel):
    name: str = Field(min_length=1, max_length=200)
    order_limit: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    active: bool = True


class OrderValidationView(CamelModel):
    valid: bool
    reason: str | None = None


class ConsumerView(HalResource, CamelModel):
    consumer_id: str
    name: str
    active: bool
    order_limit: Decimal


def _view(request: Request, consumer: Consumer) -> ConsumerView:
    links = Links(request).add("self", "get_consumer", consumer_id=consumer.consumer_id)
    return ConsumerView(**consumer.model_dump(), _links=links.build())


def build_consumer_app(service: Service) -> FastAPI:
    app = create_app("FTGO Consumer Service", API_VERSION, vendor="ftgo")
    v1 = versioned_router(1, tags=["consumers"])

    @v1.post(
        "/consumers",
        name="create_consumer",
        status_code=201,
        response_model=ConsumerView,
        responses=problem_responses(422),
    )
    async def create(request: Request, body: CreateConsumerBody) -> Response:
        consumer = await create_consumer(
            service, name=body.name, order_limit=body.order_limit, active=body.active
        )
        view = _view(request, consumer)
        href = Links(request).href("get_consumer", consumer_id=consumer.consumer_id)
        return created(view, location=href)

    @v1.get("/consumers/{consumer_id}", name="get_consumer", responses=problem_responses(404))
    async def get(request: Request, consumer_id: str) -> ConsumerView:
        consumer = await get_consumer(service, consumer_id)
        if consumer is None:
            raise Problem(404, "Consumer not found", detail=f"no consumer {consumer_id!r}")
        return _view(request, consumer)

    @v1.get(
        "/consumers/{consumer_id}/order-validation",
        name="validate_consumer_order",
        responses=problem_responses(422),
    )
    async def validate(
        consumer_id: str, order_total: Decimal = Query(alias="orderTotal", ge=0)
    ) -> OrderValidationView:
        """May this consumer place an order of ``orderTotal``? (Order Service's sync mode.)

        A read-only question, so GET: safe to retry.
        """
        consumer = await get_consumer(service, consumer_id)
        reason = check_consumer(consumer, consumer_id, order_total)
        return OrderValidationView(valid=reason is None, reason=reason)

    app.include_router(v1)
    mount_metrics(app, service)  # GET /metrics (not in the OpenAPI document)
    return app
