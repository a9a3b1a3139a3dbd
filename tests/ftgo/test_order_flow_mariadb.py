"""The order flow on MariaDB, which has no UPDATE ... RETURNING: the Order Service's
reply handlers take their lock-read-write path there (PostgreSQL and SQLite take the
one-statement path, tests/ftgo/test_distributed.py and test_order_flow_embedded.py).
Each of 40 mixed orders reaches the state its data dictates, with exactly one PENDING
and one final state change."""

from __future__ import annotations

import asyncio
import random
import time

from sqlalchemy import func, select

from ftgo.order.service import state_changes
from tests.ftgo.scenario import CASES, mix, order_for, prepare
from tests.fuzz.stores import ftgo_on


async def test_forty_orders_on_mariadb_reach_their_state_once() -> None:
    async with ftgo_on("mariadb") as system:
        scenario = await prepare(system)
        deadline = time.monotonic() + 20
        while await system.orders.restaurant(scenario.restaurant_id) is None:
            assert time.monotonic() < deadline, "replica never filled"
            await asyncio.sleep(0.05)
        rng = random.Random(7)
        cases = mix(40)
        orders = await asyncio.gather(
            *(system.orders.create(order_for(case, scenario, rng)) for case in cases)
        )
        deadline = time.monotonic() + 60
        for order, case in zip(orders, cases, strict=True):
            while True:
                current = await system.orders.get(order.order_id)
                assert current is not None
                if current.state != "PENDING":
                    break
                assert time.monotonic() < deadline, f"order for {case!r} stuck PENDING"
                await asyncio.sleep(0.05)
            assert current.state == CASES[case][0], (case, current.rejection_reason)
        assert system.order_service.engine is not None
        async with system.order_service.engine.connect() as conn:
            counts = (
                await conn.execute(
                    select(state_changes.c.order_id, func.count()).group_by(
                        state_changes.c.order_id
                    )
                )
            ).all()
        assert len(counts) == 40 and all(n == 2 for _id, n in counts)
