"""Every example in examples/ runs and shows its interaction style working."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def run(name: str) -> Any:
    return await load(name).main()


async def test_one_way_notification() -> None:
    assert await run("one_way_notification") == ["ada@example.com"]


async def test_request_response_success_failure_and_timeout() -> None:
    results = await run("request_response")
    assert results["small"] == "CreditApproved"
    assert results["big"] == "CreditDenied: 500 exceeds 100"
    assert "no reply to example.credit.Ping" in results["nobody"]


async def test_async_request_response_with_reply_handlers() -> None:
    assert await run("async_request_response") == {
        "b-1": "table 12",
        "b-2": "refused: no table for 7+",
    }


async def test_publish_subscribe_in_order_per_aggregate() -> None:
    assert await run("publish_subscribe") == {"in_order": True, "audit": 60}


async def test_publish_async_responses_until_the_deadline() -> None:
    assert await run("publish_async_responses") == ["acme=9.5", "globex=8.75"]
