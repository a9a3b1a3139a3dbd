"""Prometheus metrics scraped from real endpoints: FTGO's /metrics and a relay's own port."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx

from ftgo.app.system import FtgoSystem
from ftgo.app.web import HttpServer
from ftgo.consumer.rest import build_consumer_app
from ftgo.order.rest import build_order_app
from ftgo.restaurant.rest import build_restaurant_app
from servicewire import Command, Service, ServiceOptions
from servicewire.exposition import exposition
from servicewire.resilience import CircuitState
from servicewire.telemetry import breaker_listener
from servicewire.timeouts import within


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels...}`` in an exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_ftgo_apps_serve_message_metrics(tmp_path: Path) -> None:
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
                json={
                    "name": "Ajanta",
                    "menu": [{"menuItemId": "naan", "name": "Naan", "price": "2.50"}],
                    "postcodes": ["94619"],
                },
            )
            restaurant_id = r.json()["restaurantId"]
            r = await client.post(
                f"{urls['consumer']}/v1/consumers", json={"name": "Ada", "orderLimit": "100"}
            )
            consumer_id = r.json()["consumerId"]
            deadline = time.monotonic() + 10
            while (await client.get(f"{urls['order']}/v1/restaurants/{restaurant_id}")).is_error:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            r = await client.post(
                f"{urls['order']}/v1/orders",
                json={
                    "consumerId": consumer_id,
                    "restaurantId": restaurant_id,
                    "lineItems": [{"menuItemId": "naan", "quantity": 1}],
                    "deliveryAddress": {"street": "1 Main", "city": "Oakland", "postcode": "94619"},
                },
            )
            order_url = f"{urls['order']}/v1/orders/{r.json()['orderId']}"
            while (await client.get(order_url)).json()["state"] == "PENDING":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await system.order_service.wait_idle()

            r = await client.get(f"{urls['order']}/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain")
            text = r.text
            contract = "ftgo.consumer.ValidateConsumerInfo"
            channel = "ftgo.consumer.commands"
            assert value(text, "servicewire_messages_published_total", contract=contract) >= 1
            assert (
                value(
                    text,
                    "servicewire_messages_consumed_total",
                    service="consumer-service",
                    channel=channel,
                    contract=contract,
                )
                >= 1
            )
            assert (
                value(
                    text,
                    "servicewire_handler_duration_seconds_count",
                    service="order-service",
                    contract="ftgo.consumer.ConsumerValidated",
                )
                >= 1
            )
            assert value(text, "servicewire_relay_publish_latency_seconds_count") >= 1
            assert value(text, "servicewire_inbox_size", service="order-service") >= 2
            assert "servicewire_outbox_backlog{" in text
            assert "servicewire_outbox_oldest_age_seconds{" in text
            assert "servicewire_messages_retried_total" in text
            assert "servicewire_messages_dead_lettered_total" in text
            # The endpoint is not part of the published API.
            paths = (await client.get(f"{urls['order']}/openapi.json")).json()["paths"]
            assert "/metrics" not in paths
        finally:
            for server in servers.values():
                await server.stop()


def test_breaker_state_is_a_gauge() -> None:
    breaker_listener("kitchen-service", CircuitState.CLOSED, CircuitState.OPEN)
    text = exposition().decode()
    assert value(text, "servicewire_circuit_breaker_state", service="kitchen-service") == 2
    breaker_listener("kitchen-service", CircuitState.OPEN, CircuitState.HALF_OPEN)
    text = exposition().decode()
    assert value(text, "servicewire_circuit_breaker_state", service="kitchen-service") == 1


class Ping(Command, name="telemetry.test.Ping", version="1.0.0", channel="telemetry-ping"):
    n: int


async def test_relay_process_serves_metrics_on_its_own_port(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'relay.db'}"
    async with Service(
        "pinger", db=db, transport="memory://", options=ServiceOptions(relay=False)
    ) as service:
        for n in range(25):
            await service.send(Ping(n=n))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "servicewire.cli.main", "relay", "--db", db, "--transport",
        f"memory://{uuid.uuid4().hex}", "--name", "metrics-test", "--metrics-port", "0",
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        port = None
        deadline = time.monotonic() + 30
        lines: list[str] = []
        while port is None and time.monotonic() < deadline:
            line = (await within(proc.stderr.readline(), 30)).decode()
            if not line:
                break
            lines.append(line)
            record = json.loads(line)  # logs are JSON lines when stderr is not a terminal
            assert record["service"] == "relay-metrics-test"
            found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", record["message"])
            port = int(found[1]) if found else None
        assert port, lines
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                published = value(
                    text, "servicewire_messages_published_total", contract="telemetry.test.Ping"
                )
                if published >= 25:
                    break
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.1)
            assert value(text, "servicewire_outbox_backlog") == 0
            latency = "servicewire_relay_publish_latency_seconds_count"
            assert value(text, latency, relay="metrics-test") == 25
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await within(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()
