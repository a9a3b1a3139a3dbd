"""FTGO distributed: each service its own PostgreSQL database, a real broker between them.

200 orders of mixed validity each reach VALIDATED or REJECTED with the reason their
data dictates, exactly once (one PENDING and one final state change per order).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select, text

from ftgo.app.system import FtgoSystem
from ftgo.order.service import state_changes
from servicewire.storage.database import create_engine
from tests import services
from tests.ftgo.scenario import CASES, mix, order_for, prepare

PG_BASE = services.URLS["postgres"].rsplit("/", 1)[0]


@pytest.fixture
async def databases() -> AsyncIterator[dict[str, str]]:
    services.require("postgres")
    suffix = uuid.uuid4().hex[:8]
    names = {s: f"sw_ftgo_{suffix}_{s}" for s in ("order", "consumer", "restaurant")}
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        for name in names.values():
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield {s: f"{PG_BASE}/{n}" for s, n in names.items()}
    finally:
        async with admin.connect() as conn:
            for name in names.values():
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
async def test_two_hundred_orders_reach_the_state_their_data_dictates(
    databases: dict[str, str], broker: str
) -> None:
    services.require(broker)
    system = FtgoSystem.create(
        order_db=databases["order"],
        consumer_db=databases["consumer"],
        restaurant_db=databases["restaurant"],
        transport=services.URLS[broker],
    )
    async with system:
        scenario = await prepare(system)
        deadline = time.monotonic() + 20
        while await system.orders.restaurant(scenario.restaurant_id) is None:
            assert time.monotonic() < deadline, "replica never filled"
            await asyncio.sleep(0.05)
        rng = random.Random(5)
        cases = mix(200)
        orders = await asyncio.gather(
            *(system.orders.create(order_for(case, scenario, rng)) for case in cases)
        )
        assert all(o.state == "PENDING" for o in orders)
        deadline = time.monotonic() + 90
        for order, case in zip(orders, cases, strict=True):
            while True:
                current = await system.orders.get(order.order_id)
                assert current is not None
                if current.state != "PENDING":
                    break
                assert time.monotonic() < deadline, f"order for {case!r} stuck PENDING"
                await asyncio.sleep(0.05)
            state, words = CASES[case]
            assert current.state == state, (case, current.rejection_reason)
            if words:
                assert current.rejection_reason and words in current.rejection_reason
        assert system.order_service.engine is not None
        async with system.order_service.engine.connect() as conn:
            per_order = (
                await conn.execute(
                    select(state_changes.c.order_id, func.count()).group_by(
                        state_changes.c.order_id
                    )
                )
            ).all()
        assert len(per_order) == 200
        assert all(count == 2 for _id, count in per_order), "an order changed state twice"
