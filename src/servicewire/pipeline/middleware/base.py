"""The shape of a middleware: a function of the next step that returns a step.

A :data:`Step` runs a handler once on one delivery (a :class:`Run`) and says what
became of it; the innermost step is the pipeline's transactional unit (inbox, handler,
outbox, commit). A :data:`Middleware` wraps a step in one concern, as Watermill's
router middleware wraps a handler::

    def timed(next_step: Step) -> Step:
        async def step(run: Run) -> Outcome:
            started = time.perf_counter()
            try:
                return await next_step(run)
            finally:
                print(run.message.type, time.perf_counter() - started)

        return step

    handle = chain([timed], transactional_unit)  # the first middleware is outermost
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from servicewire.messaging.message import Message
from servicewire.pipeline.handlers import HandlerSpec
from servicewire.pipeline.outcome import Outcome
from servicewire.transports.base import Delivery


@dataclass(frozen=True, slots=True)
class Run:
    """One run of a handler on one delivery (a retried delivery has one per run)."""

    service: str
    channel: str
    group: str
    spec: HandlerSpec
    value: object
    """The decoded contract the handler receives."""
    delivery: Delivery
    batch: object | None = None
    """The batch transaction the run takes part in (the pipeline's own; middleware
    passes it on untouched)."""

    @property
    def message(self) -> Message:
        return self.delivery.message


Step = Callable[[Run], Awaitable[Outcome]]
"""Runs the handler once; raises what the handler raised (the pipeline retries)."""

Middleware = Callable[[Step], Step]
"""Wraps a step in one concern (tracing, metrics, log context...)."""


def chain(middleware: Sequence[Middleware], step: Step) -> Step:
    """``step`` wrapped in ``middleware``, the first one outermost."""
    for wrap in reversed(middleware):
        step = wrap(step)
    return step
