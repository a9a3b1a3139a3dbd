"""Without the OpenTelemetry API (or without a provider) every hook is a no-op."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servicewire import Message
from servicewire.telemetry import tracing as telemetry_tracing


@pytest.fixture
def no_api() -> Iterator[None]:
    saved = telemetry_tracing._api
    telemetry_tracing._api = False  # what a missing `opentelemetry` package leaves
    try:
        yield
    finally:
        telemetry_tracing._api = saved


def test_hooks_do_nothing_without_the_api(no_api: None) -> None:
    message = Message.create(b"{}", destination="orders", type="x.Ping")
    assert not telemetry_tracing.active()
    with telemetry_tracing.span("anything") as current:
        assert current is None
    with telemetry_tracing.handler_span("svc", message) as current:
        assert current is None
    assert telemetry_tracing.current_trace_headers() == {}
    assert telemetry_tracing.current_trace_id() is None
    stamped, spans = telemetry_tracing.start_publish_spans("relay", [message])
    assert stamped == [message] and stamped[0] is message and spans == []
    telemetry_tracing.end_spans(spans)
