"""The order flow on MariaDB, which has no UPDATE ... RETURNING: the Order Service's
reply handlers take their lock-read-write path there (PostgreSQL and SQLite take the
one-statement path, tests/ftgo/test_distributed.py and test_order_flow_embedded.py).
Each of 40 mixed orders reaches the state its data dictates, with exactly one PENDING
and one final state change."""

from __future__ import annotations

import asyncio
import random

from tests.ftgo.scenario import assert_final_states, mix, order_for, prepare_replicated
from tests.fuzz.stores import ftgo_on


async def test_forty_orders_on_mariadb_reach_their_state_once() -> None:
    async with ftgo_on("mariadb") as system:
        scenario = await prepare_replicated(system)
        rng = random.Random(7)
        cases = mix(40)
        orders = await asyncio.gather(
            *(system.orders.create(order_for(case, scenario, rng)) for case in cases)
        )
        await assert_final_states(system, orders, cases, within=60)
