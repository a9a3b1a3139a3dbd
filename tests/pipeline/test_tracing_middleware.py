"""handler_tracing: a handler run is a consumer span, child of the message's sender."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from servicewire.pipeline.middleware import Run
from servicewire.pipeline.middleware.tracing import handler_tracing
from servicewire.pipeline.outcome import Outcome
from servicewire.telemetry.tracing import current_trace_id
from tests.pipeline.runs import TRACEPARENT, a_run


async def test_the_run_is_a_consumer_span_continuing_the_senders_trace(
    spans: InMemorySpanExporter,
) -> None:
    inside: list[str | None] = []

    async def unit(run: Run) -> Outcome:
        inside.append(current_trace_id())
        return Outcome.HANDLED

    assert await handler_tracing(unit)(a_run(service="kitchen")) is Outcome.HANDLED
    [span] = spans.get_finished_spans()
    assert span.name == "handle CreateTicket"
    assert span.kind is SpanKind.CONSUMER
    assert span.attributes is not None
    assert span.attributes["servicewire.service.service"] == "kitchen"
    trace_id = TRACEPARENT.split("-")[1]
    assert f"{span.context.trace_id:032x}" == trace_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
    assert inside == [trace_id]  # the step ran inside the span


async def test_a_failing_run_is_recorded_on_its_span(spans: InMemorySpanExporter) -> None:
    async def unit(run: Run) -> Outcome:
        raise RuntimeError("kitchen on fire")

    with pytest.raises(RuntimeError):
        await handler_tracing(unit)(a_run())
    [span] = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
