"""One FTGO order, one trace: REST request, outbox writes, relay publishes, every handler."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ftgo.app.system import FtgoSystem
from ftgo.app.web import HttpServer
from ftgo.consumer.rest import build_consumer_app
from ftgo.order.rest import build_order_app
from ftgo.restaurant.rest import build_restaurant_app
from servicewire import ServiceOptions

MENU = [{"menuItemId": "naan", "name": "Naan", "price": "2.50"}]
ADDRESS = {"street": "1 Main St", "city": "Oakland", "postcode": "94619"}


async def _until(
    client: httpx.AsyncClient, url: str, ok: object, timeout: float = 10
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(url)
        if r.status_code == 200 and (ok is None or r.json().get("state") != ok):
            return dict(r.json())
        assert time.monotonic() < deadline, f"{url} not ready"
        await asyncio.sleep(0.02)


async def test_one_order_is_one_trace_across_three_services_and_relays(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    system = FtgoSystem.embedded(tmp_path, transport=f"memory://{uuid.uuid4().hex}")
    servers = {
        "order": HttpServer(build_order_app(system.orders)),
        "consumer": HttpServer(build_consumer_app(system.consumer_service)),
        "restaurant": HttpServer(build_restaurant_app(system.restaurant_service)),
    }
    async with system, httpx.AsyncClient(timeout=10) as client:
        for server in servers.values():
            await server.start()
        try:
            urls = {k: s.url for k, s in servers.items()}
            r = await client.post(
                f"{urls['restaurant']}/v1/restaurants",
                json={"name": "Ajanta", "menu": MENU, "postcodes": ["94619"]},
            )
            restaurant_id = r.json()["restaurantId"]
            r = await client.post(
                f"{urls['consumer']}/v1/consumers", json={"name": "Ada", "orderLimit": "100"}
            )
            consumer_id = r.json()["consumerId"]
            await _until(client, f"{urls['order']}/v1/restaurants/{restaurant_id}", None)
            spans.clear()

            r = await client.post(
                f"{urls['order']}/v1/orders",
                json={
                    "consumerId": consumer_id,
                    "restaurantId": restaurant_id,
                    "lineItems": [{"menuItemId": "naan", "quantity": 2}],
                    "deliveryAddress": ADDRESS,
                },
            )
            assert r.status_code == 201, r.text
            order_id = r.json()["orderId"]
            view = await _until(client, f"{urls['order']}/v1/orders/{order_id}", "PENDING")
            assert view["state"] == "VALIDATED"
            await system.order_service.wait_idle()
        finally:
            for server in servers.values():
                await server.stop()
    # Stopping drained the relays: the final OrderValidated publish is recorded too.

    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.name == "POST /v1/orders/"] or [
        s for s in finished if s.name.startswith("POST /v1/orders")
    ]
    assert len(roots) == 1, [s.name for s in finished]
    root = roots[0]
    trace_id = root.context.trace_id
    mine = [s for s in finished if s.context.trace_id == trace_id]
    names = {s.name for s in mine}
    for expected in (
        "outbox write",
        "publish ValidateConsumerInfo",
        "publish ValidateOrderDetails",
        "publish OrderCreated",
        "handle ValidateConsumerInfo",
        "handle ValidateOrderDetails",
        "publish ConsumerValidated",
        "publish OrderDetailsValidated",
        "handle ConsumerValidated",
        "handle OrderDetailsValidated",
        "publish OrderValidated",
    ):
        assert expected in names, f"{expected} missing from {sorted(names)}"

    services = {s.attributes.get("servicewire.service.service") for s in mine} - {None}
    assert services == {"order-service", "consumer-service", "restaurant-service"}
    relays = {s.attributes.get("servicewire.relay") for s in mine} - {None}
    assert relays == {"order-service-relay", "consumer-service-relay", "restaurant-service-relay"}

    # Every span hangs under the request: parents resolve, hop by hop, to the root.
    by_id = {s.context.span_id: s for s in mine}
    for s in mine:
        hops = 0
        node = s
        while node.parent is not None:
            assert node.parent.span_id in by_id, f"{node.name}: parent not in the trace"
            node = by_id[node.parent.span_id]
            hops += 1
            assert hops < 50
        assert node is root, f"{s.name} does not lead to the request"

    # The chain: request -> outbox write -> publish -> handle -> outbox write -> publish.
    def parent_name(name: str) -> str:
        s = next(x for x in mine if x.name == name)
        assert s.parent is not None
        return by_id[s.parent.span_id].name

    assert parent_name("publish ValidateConsumerInfo") == "outbox write"
    assert parent_name("handle ValidateConsumerInfo") == "publish ValidateConsumerInfo"
    assert parent_name("publish ConsumerValidated") == "outbox write"
    assert parent_name("handle ConsumerValidated") == "publish ConsumerValidated"
    handler = next(x for x in mine if x.name == "handle ConsumerValidated")
    assert handler.attributes["messaging.message.conversation_id"] == order_id


async def test_without_a_provider_messages_carry_no_new_trace(tmp_path: Path) -> None:
    from decimal import Decimal

    from ftgo.consumer.service import create_consumer
    from servicewire.telemetry import tracing as telemetry_tracing
    from servicewire.telemetry.journal import MemoryJournal

    assert not telemetry_tracing.active()
    journal = MemoryJournal()
    system = FtgoSystem.embedded(
        tmp_path,
        transport=f"memory://{uuid.uuid4().hex}",
        options=ServiceOptions(journal=journal),
    )
    async with system:
        await create_consumer(system.consumer_service, name="Ada", order_limit=Decimal("1"))
    assert telemetry_tracing.current_trace_headers() == {}
    assert any(e.type.endswith("ConsumerCreated") for e in journal.entries)
