"""Synchronous validation keeps the trace: REST and gRPC client spans, server spans."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ftgo.app.web import HttpServer
from ftgo.consumer.rest import build_consumer_app
from ftgo.consumer.service import create_consumer, create_consumer_service
from ftgo.generated.restaurant.v1 import restaurant_pb2_grpc
from ftgo.order.rest import build_order_app
from ftgo.order.service import create_order_service
from ftgo.order.sync_validation import SyncValidator
from ftgo.restaurant.grpc import SERVICE as RESTAURANT_SERVICE
from ftgo.restaurant.grpc import RestaurantServicer
from ftgo.restaurant.service import create_restaurant, create_restaurant_service
from ftgo.values import MenuItem
from servicewire.grpc import GrpcClient, Server
from servicewire.rest import RestClient
from servicewire.telemetry.grpc_spans import TracingServerInterceptor

MENU = [MenuItem(menu_item_id="naan", name="Naan", price=Decimal("2.50"))]


async def test_sync_order_trace_spans_rest_and_grpc_hops(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    transport = f"memory://{uuid.uuid4().hex}"
    consumer = create_consumer_service(f"sqlite:///{tmp_path / 'c.db'}", transport)
    restaurant = create_restaurant_service(f"sqlite:///{tmp_path / 'r.db'}", transport)
    consumer_http = HttpServer(build_consumer_app(consumer))
    grpc_server = Server(interceptors=[TracingServerInterceptor()])
    grpc_server.add_service(
        restaurant_pb2_grpc.add_RestaurantServiceServicer_to_server,
        RestaurantServicer(restaurant),
        RESTAURANT_SERVICE,
    )
    async with consumer, restaurant:
        await consumer_http.start()
        grpc_port = await grpc_server.start()
        rest = RestClient({"consumer-service": [f"127.0.0.1:{consumer_http.port}"]})
        grpc = GrpcClient({"restaurant-service": [f"127.0.0.1:{grpc_port}"]})
        order, orders = create_order_service(
            f"sqlite:///{tmp_path / 'o.db'}", transport, validator=SyncValidator(rest, grpc)
        )
        server = HttpServer(build_order_app(orders))
        try:
            async with order:
                await server.start()
                place = await create_restaurant(
                    restaurant, name="Ajanta", menu=MENU, postcodes=["94619"]
                )
                ada = await create_consumer(consumer, name="Ada", order_limit=Decimal("50"))
                deadline = time.monotonic() + 10
                while await orders.restaurant(place.restaurant_id) is None:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                spans.clear()
                async with httpx.AsyncClient(base_url=server.url) as client:
                    r = await client.post(
                        "/v1/orders",
                        json={
                            "consumerId": ada.consumer_id,
                            "restaurantId": place.restaurant_id,
                            "lineItems": [{"menuItemId": "naan", "quantity": 2}],
                            "deliveryAddress": {
                                "street": "1 Main St",
                                "city": "Oakland",
                                "postcode": "94619",
                            },
                        },
                    )
                assert r.status_code == 201 and r.json()["state"] == "VALIDATED", r.text
                await server.stop()
        finally:
            await consumer_http.stop()
            await rest.close()
            await grpc.close()
            await grpc_server.stop(0.2)

    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name.startswith("POST /v1/orders"))
    mine = {s.context.span_id: s for s in finished if s.context.trace_id == root.context.trace_id}
    by_name = {s.name: s for s in mine.values()}

    def parent(name: str) -> str:
        span = by_name[name]
        assert span.parent is not None, name
        return mine[span.parent.span_id].name

    grpc_server_span = "ftgo.restaurant.v1.RestaurantService/ValidateOrderDetails"
    assert parent("call restaurant-service/ValidateOrderDetails") == root.name
    assert parent(grpc_server_span) == "call restaurant-service/ValidateOrderDetails"
    assert parent("call consumer-service/GET order-validation") == root.name
    consumer_server = next(n for n in by_name if n.startswith("GET /v1/consumers/"))
    assert parent(consumer_server) == "call consumer-service/GET order-validation"
    assert by_name[grpc_server_span].kind.name == "SERVER"
