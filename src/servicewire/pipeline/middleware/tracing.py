"""Tracing: each handler run is a consumer span, a child of the message's sender.

With OpenTelemetry configured, a run is the span ``handle <Type>``; what the handler
sends carries it as parent. Without it the step runs as is::

    step = chain([handler_tracing], transactional_unit)
"""

from __future__ import annotations

from servicewire.pipeline.middleware.base import Run, Step
from servicewire.pipeline.outcome import Outcome
from servicewire.telemetry.tracing import handler_span


def handler_tracing(next_step: Step) -> Step:
    """``next_step`` inside the run's handler span."""

    async def step(run: Run) -> Outcome:
        with handler_span(run.service, run.message):
            return await next_step(run)

    return step
