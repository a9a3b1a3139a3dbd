"""FTGO distributed: each service its own PostgreSQL database, a real broker between them.

200 orders of mixed validity each reach VALIDATED or REJECTED with the reason their
data dictates, exactly once (one PENDING and one final state change per order).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from ftgo.app.system import FtgoSystem
from servicewire.storage.database import create_engine
from tests import services
from tests.activemq import PrivateActiveMQ
from tests.ftgo.scenario import assert_final_states, mix, order_for, prepare_replicated

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
    await _two_hundred_orders(databases, services.URLS[broker])


async def test_two_hundred_orders_over_activemq_stomp(
    databases: dict[str, str], activemq: PrivateActiveMQ
) -> None:
    # The session's private ActiveMQ (tests/conftest.py), over stomp://.
    await _two_hundred_orders(databases, activemq.url("stomp"))


async def _two_hundred_orders(databases: dict[str, str], transport: str) -> None:
    system = FtgoSystem.create(
        order_db=databases["order"],
        consumer_db=databases["consumer"],
        restaurant_db=databases["restaurant"],
        transport=transport,
    )
    async with system:
        scenario = await prepare_replicated(system)
        rng = random.Random(5)
        cases = mix(200)
        orders = await asyncio.gather(
            *(system.orders.create(order_for(case, scenario, rng)) for case in cases)
        )
        assert all(o.state == "PENDING" for o in orders)
        await assert_final_states(system, orders, cases, within=90)
