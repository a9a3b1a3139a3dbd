"""GET /metrics served by prometheus_client: its ASGI app on a REST app, its own server."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import prometheus_client
import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from servicewire import Command, Service, ServiceOptions
from servicewire.exposition import DatabaseCollector, metrics_registry, mount_metrics, serve_metrics
from servicewire.rest import create_app
from servicewire.storage.database import create_engine, display_url
from tests.telemetry.test_metrics import value


class Note(Command, name="telemetry.test.Note", version="1.0.0", channel="metrics-notes"):
    n: int


def _service(tmp_path: Path) -> Service:
    return Service(
        f"notes-{uuid.uuid4().hex[:6]}",
        db=f"sqlite:///{tmp_path / 'notes.db'}",
        transport=f"memory://{uuid.uuid4().hex}",
        options=ServiceOptions(relay=False),  # the rows stay: a backlog to report
    )


async def test_mounted_endpoint_is_prometheus_clients_asgi_app(tmp_path: Path) -> None:
    service = _service(tmp_path)
    app = create_app("Notes", "1.0.0")
    mount_metrics(app, service)
    async with service:
        for n in range(3):
            await service.send(Note(n=n))
        assert service.engine is not None
        database = display_url(service.engine)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with client:
            r = await client.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
            assert value(r.text, "servicewire_outbox_backlog", database=database) == 3
            assert "servicewire_outbox_oldest_age_seconds{" in r.text
            assert f'servicewire_inbox_size{{service="{service.name}"}} 0.0' in r.text
            assert "# TYPE servicewire_messages_published_total counter" in r.text
            # Read at each scrape, not cached.
            await service.send(Note(n=3))
            r = await client.get("/metrics")
            assert value(r.text, "servicewire_outbox_backlog", database=database) == 4
            # prometheus_client's own content negotiation: OpenMetrics when asked.
            r = await client.get("/metrics", headers={"accept": "application/openmetrics-text"})
            assert r.headers["content-type"].startswith("application/openmetrics-text")
            assert r.text.rstrip().endswith("# EOF")
            # Only GET is handed to it; the rest is the app's.
            assert (await client.post("/metrics")).status_code in (404, 405)


async def test_standalone_server_binds_loopback_serves_and_stops(tmp_path: Path) -> None:
    service = _service(tmp_path)
    async with service:
        for n in range(2):
            await service.send(Note(n=n))
        assert service.engine is not None
        database = display_url(service.engine)
        server = await serve_metrics(0, services=[service])
        try:
            assert server.host == "127.0.0.1" and server.serving
            url = f"http://127.0.0.1:{server.port}/metrics"
            async with httpx.AsyncClient(timeout=10) as client:
                text = (await client.get(url)).text
                # Collected on the server's thread, read from the database in this loop.
                assert value(text, "servicewire_outbox_backlog", database=database) == 2
                await service.send(Note(n=2))
                text = (await client.get(url)).text
                assert value(text, "servicewire_outbox_backlog", database=database) == 3
                assert f'servicewire_inbox_size{{service="{service.name}"}}' in text
        finally:
            await server.close()
        assert not server.serving
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(timeout=2) as client:
                await client.get(url)


async def test_an_unreadable_database_does_not_fail_the_scrape(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'nowhere.db'}")
    collector = DatabaseCollector(engines=[engine])
    try:
        async with await serve_metrics(0, engines=[engine]) as server:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.get(f"http://127.0.0.1:{server.port}/metrics")
            assert r.status_code == 200
            assert "# TYPE servicewire_outbox_backlog gauge" in r.text
            assert "servicewire_outbox_backlog{" not in r.text  # nothing read, nothing made up
        await collector.refresh()  # logs a warning, raises nothing
        text = prometheus_client.generate_latest(metrics_registry(collector)).decode()
        assert "servicewire_outbox_backlog{" not in text
    finally:
        await engine.dispose()
