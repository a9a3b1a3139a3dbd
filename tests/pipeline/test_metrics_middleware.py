"""handler_timing: each run observed in servicewire_handler_duration_seconds."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from servicewire.pipeline.middleware import Run
from servicewire.pipeline.middleware.metrics import handler_timing
from servicewire.pipeline.outcome import Outcome
from tests.pipeline.runs import a_run


def observed(service: str) -> float:
    labels = {
        "service": service,
        "channel": "test-kitchen",
        "contract": "test.kitchen.CreateTicket",
    }
    count = REGISTRY.get_sample_value("servicewire_handler_duration_seconds_count", labels)
    return count or 0.0


async def test_every_run_is_timed_whether_it_succeeds_or_fails() -> None:
    service = f"kitchen-{uuid.uuid4().hex[:8]}"  # labels of this test's own

    async def ok(run: Run) -> Outcome:
        return Outcome.HANDLED

    async def failing(run: Run) -> Outcome:
        raise ConnectionError("transient")

    assert await handler_timing(ok)(a_run(service=service)) is Outcome.HANDLED
    assert observed(service) == 1
    with pytest.raises(ConnectionError):
        await handler_timing(failing)(a_run(service=service))
    assert observed(service) == 2
