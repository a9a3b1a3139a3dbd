"""Metrics: each handler run's duration in the handler latency histogram.

Observed by service, channel and contract, whether the run succeeds or raises (when
metrics are enabled; otherwise the step runs as is)::

    step = chain([handler_timing], transactional_unit)
"""

from __future__ import annotations

from servicewire.pipeline.middleware.base import Run, Step
from servicewire.pipeline.outcome import Outcome
from servicewire.telemetry.metrics import time_handler


def handler_timing(next_step: Step) -> Step:
    """``next_step``, timed into the handler latency histogram."""

    async def step(run: Run) -> Outcome:
        with time_handler(run.service, run.message):
            return await next_step(run)

    return step
