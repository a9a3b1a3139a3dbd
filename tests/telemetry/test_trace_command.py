"""``servicewire trace ORDER_ID --db x3`` draws an FTGO order's sequence from SQL journals."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from ftgo.app.system import FtgoSystem
from ftgo.consumer.service import create_consumer_service
from ftgo.order.service import create_order_service
from ftgo.restaurant.service import create_restaurant_service
from servicewire import ServiceOptions
from servicewire.cli.main import main
from servicewire.telemetry import BufferedJournal, sql_journal
from tests.ftgo.scenario import order_for, prepare


async def _place_order(directory: Path) -> tuple[str, list[str]]:
    urls = {
        name: f"sqlite:///{directory / name}.db" for name in ("order", "consumer", "restaurant")
    }
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
    import random

    async with system:
        scenario = await prepare(system)
        deadline = time.monotonic() + 10
        while await system.orders.restaurant(scenario.restaurant_id) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        placed = await system.orders.create(order_for("valid", scenario, random.Random(1)))
        while (await system.orders.get(placed.order_id)).state == "PENDING":  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    for journal in journals:
        journal.close()
        journal.engine.dispose()
    return placed.order_id, list(urls.values())


def test_trace_prints_and_draws_an_order_across_three_databases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order_id, urls = asyncio.run(_place_order(tmp_path))
    svg = tmp_path / "out" / "order.svg"
    argv = ["trace", order_id, "--svg", str(svg), "--mermaid"]
    for url in urls:
        argv += ["--db", url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for expected in (
        "order-service -> consumer-service: ValidateConsumerInfo (command)",
        "order-service -> restaurant-service: ValidateOrderDetails (command)",
        "consumer-service -> order-service: ConsumerValidated (reply)",
        "restaurant-service -> order-service: OrderDetailsValidated (reply)",
        "OrderValidated (event)",
        "sequenceDiagram",
    ):
        assert expected in out, out
    drawing = svg.read_text()
    assert drawing.startswith("<svg") and "ValidateConsumerInfo" in drawing
    assert "consumer-service" in drawing and "restaurant-service" in drawing
    assert svg.with_suffix(".mmd").read_text().startswith("sequenceDiagram")

    # One message id finds the same conversation.
    first_line = next(line for line in out.splitlines() if "ValidateConsumerInfo" in line)
    assert first_line


def test_trace_says_clearly_when_nothing_or_no_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["trace", "nothing", "--db", empty, "--no-svg"]) == 1
    assert "no servicewire_journal table" in capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'j.db'}"
    sql_journal(url).close()
    assert main(["trace", "nothing", "--db", url, "--no-svg"]) == 1
    assert "no journal entries for nothing" in capsys.readouterr().err
