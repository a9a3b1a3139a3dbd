"""The web console in headless Chromium (Debian's package, driven by Playwright).

Runs against an embedded FTGO whose services record to SQL journals in their SQLite
databases: the page must show the three services, each database's outbox backlog, a
dead letter with its reason and an order's sequence diagram; a replay happens only
after the confirmation is accepted. Screenshots go to test-results/console/.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftgo.app.system import FtgoSystem
from ftgo.app.web import HttpServer
from ftgo.consumer.service import create_consumer_service
from ftgo.order.service import create_order_service
from ftgo.restaurant.service import create_restaurant_service
from servicewire import Message, ServiceOptions
from servicewire.console import ConsoleState, create_console_app
from servicewire.telemetry import BufferedJournal, sql_journal
from servicewire.transports import connect_transport
from tests.ftgo.scenario import order_for, prepare
from tests.services import services_required

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-results" / "console"


def require_browser() -> None:
    """Skip locally, fail in CI, when Chromium or Playwright is missing."""
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} is missing (scripts/services/60-browser.sh installs it)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (dev extra)"
    if problem is None:
        return
    if services_required():
        pytest.fail(problem + " (SERVICEWIRE_REQUIRE_SERVICES=1)")
    pytest.skip(problem)


@dataclass
class Running:
    system: FtgoSystem
    console_url: str
    order_id: str
    dead_letter_id: str


async def _until(check: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def ftgo(tmp_path: Path) -> AsyncIterator[Running]:
    urls = {n: f"sqlite:///{tmp_path / n}.db" for n in ("order", "consumer", "restaurant")}
    journals: list[BufferedJournal] = [sql_journal(url) for url in urls.values()]
    transport = f"memory://{uuid.uuid4().hex}"
    order, orders = create_order_service(
        urls["order"], transport, options=ServiceOptions(journal=journals[0])
    )
    system = FtgoSystem(
        order_service=order,
        orders=orders,
        consumer_service=create_consumer_service(
            urls["consumer"], transport, options=ServiceOptions(journal=journals[1])
        ),
        restaurant_service=create_restaurant_service(
            urls["restaurant"], transport, options=ServiceOptions(journal=journals[2])
        ),
    )
    async with system:
        scenario = await prepare(system)

        async def replica() -> bool:
            return await system.orders.restaurant(scenario.restaurant_id) is not None

        await _until(replica)
        placed = await system.orders.create(order_for("valid", scenario, random.Random(7)))

        async def validated() -> bool:
            current = await system.orders.get(placed.order_id)
            return current is not None and current.state == "VALIDATED"

        await _until(validated)
        # A command nobody understands: the Consumer Service dead-letters it at once.
        bogus = Message.create(
            b"{}",
            destination="ftgo.consumer.commands",
            kind="command",
            type="ftgo.consumer.Bogus",
            version="1.0.0",
            source="console-test",
        )
        client = await connect_transport(transport)
        await client.publish(bogus)
        await client.close()

        async def dead_lettered() -> bool:
            return system.consumer_service.stats["dead-lettered"] >= 1

        await _until(dead_lettered)
        for journal in journals:
            journal.flush()

        state = ConsoleState(list(urls.values()), transport, dead_letter_interval=0.5)
        await state.start()
        server = HttpServer(create_console_app(state))
        await server.start()
        try:
            yield Running(system, server.url, placed.order_id, bogus.id)
        finally:
            await server.stop()
            await state.stop()
    for journal in journals:
        journal.close()
        journal.engine.dispose()


async def test_console_in_headless_chromium(ftgo: Running) -> None:
    require_browser()
    from playwright.async_api import async_playwright, expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            external: list[str] = []
            page.on(
                "request",
                lambda r: (
                    external.append(r.url) if not r.url.startswith(ftgo.console_url) else None
                ),
            )
            await page.goto(ftgo.console_url + "/")

            services = page.get_by_test_id("services")
            for name in ("order-service", "consumer-service", "restaurant-service"):
                await expect(services).to_contain_text(name, timeout=15_000)
            await expect(services).to_contain_text("ftgo.consumer.commands")

            outbox = page.get_by_test_id("outbox")
            for name in ("order.db", "consumer.db", "restaurant.db"):
                await expect(outbox).to_contain_text(name)
            await expect(outbox.locator("tbody tr")).to_have_count(3)

            dead = page.get_by_test_id("dead-letters")
            await expect(dead).to_contain_text(ftgo.dead_letter_id, timeout=20_000)
            await expect(dead).to_contain_text("unknown contract type")
            await page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

            await page.get_by_test_id("sequence-id").fill(ftgo.order_id)
            await page.get_by_test_id("sequence-show").click()
            diagram = page.get_by_test_id("diagram").locator("svg")
            await expect(diagram).to_contain_text("ValidateConsumerInfo", timeout=10_000)
            await expect(diagram).to_contain_text("OrderDetailsValidated")
            await expect(diagram).to_contain_text("consumer-service")
            await page.get_by_test_id("diagram").scroll_into_view_if_needed()
            await page.screenshot(path=str(SHOTS / "sequence.png"), full_page=True)

            # Dismissed confirmation: nothing is replayed.
            dialogs: list[str] = []

            async def dismiss(dialog: object) -> None:
                dialogs.append(dialog.message)  # type: ignore[attr-defined]
                await dialog.dismiss()  # type: ignore[attr-defined]

            page.once("dialog", dismiss)
            row = dead.locator("tr", has_text=ftgo.dead_letter_id)
            await row.get_by_test_id("replay").click()
            await asyncio.sleep(0.5)
            assert dialogs and ftgo.dead_letter_id in dialogs[0]
            assert ftgo.system.consumer_service.stats["dead-lettered"] == 1
            await expect(page.get_by_test_id("replay-result")).to_have_text("")

            async def accept(dialog: object) -> None:
                dialogs.append(dialog.message)  # type: ignore[attr-defined]
                await dialog.accept()  # type: ignore[attr-defined]

            page.once("dialog", accept)
            await row.get_by_test_id("replay").click()
            await expect(page.get_by_test_id("replay-result")).to_have_text(
                f"replayed {ftgo.dead_letter_id}", timeout=15_000
            )
            # Back on its channel, the command was processed (and dead-lettered) again.
            deadline = time.monotonic() + 10
            while ftgo.system.consumer_service.stats["dead-lettered"] < 2:
                assert time.monotonic() < deadline, "the replayed message never came back"
                await asyncio.sleep(0.05)
            await page.screenshot(path=str(SHOTS / "replayed.png"), full_page=True)
            assert external == [], f"the page fetched outside assets: {external}"
        finally:
            await browser.close()
    assert (SHOTS / "overview.png").stat().st_size > 0
