"""log_context: records made during a run name its message, and only during it."""

from __future__ import annotations

import logging

from servicewire.pipeline.middleware import Run
from servicewire.pipeline.middleware.logging import log_context
from servicewire.pipeline.outcome import Outcome
from servicewire.telemetry.logs import ContextFilter
from tests.pipeline.runs import a_run


def fields() -> tuple[object, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "x", None, None)
    ContextFilter("kitchen").filter(record)
    return record.message_id, record.correlation_id  # type: ignore[attr-defined]


async def test_log_records_name_the_message_being_handled() -> None:
    run = a_run()
    inside: list[tuple[object, object]] = []

    async def unit(run: Run) -> Outcome:
        inside.append(fields())
        return Outcome.HANDLED

    assert await log_context(unit)(run) is Outcome.HANDLED
    assert inside == [(run.message.id, run.message.correlation_id)]
    assert fields() == (None, None)
