"""Log context: records made while a handler runs name its message.

Inside the step, log records carry the message id, correlation id and trace id (see
:class:`servicewire.telemetry.logs.ContextFilter`)::

    step = chain([log_context], transactional_unit)
"""

from __future__ import annotations

from servicewire.pipeline.middleware.base import Run, Step
from servicewire.pipeline.outcome import Outcome
from servicewire.telemetry.logs import message_context


def log_context(next_step: Step) -> Step:
    """``next_step`` with the run's message set as the log context."""

    async def step(run: Run) -> Outcome:
        with message_context(run.message):
            return await next_step(run)

    return step
