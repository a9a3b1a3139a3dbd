"""ConcurrencyLimit: at most ``limit`` requests inside the app at once; the others wait
(without failing) and are admitted in arrival order as slots free up."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from servicewire.rest import ConcurrencyLimit


def build(limit: int) -> tuple[FastAPI, dict[str, int], list[int], asyncio.Event]:
    app = FastAPI()
    seen = {"now": 0, "most": 0}
    order: list[int] = []
    release = asyncio.Event()

    @app.get("/work/{n}")
    async def work(n: int) -> dict[str, int]:
        order.append(n)
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        await release.wait()
        seen["now"] -= 1
        return {"n": n}

    app.add_middleware(ConcurrencyLimit, limit=limit)
    return app, seen, order, release


async def test_at_most_limit_requests_run_and_the_rest_wait_their_turn() -> None:
    app, seen, order, release = build(limit=3)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        calls = []
        for n in range(10):
            calls.append(asyncio.create_task(client.get(f"/work/{n}")))
            await asyncio.sleep(0.005)  # arrival order is the index
        for _ in range(200):
            if seen["now"] == 3:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        assert seen["now"] == 3 and order == [0, 1, 2], "more than the limit got in"
        release.set()
        responses = await asyncio.wait_for(asyncio.gather(*calls), 10)
    assert [r.status_code for r in responses] == [200] * 10
    assert seen["most"] == 3
    assert order == list(range(10)), "not admitted in arrival order"


def test_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimit(FastAPI(), limit=0)
