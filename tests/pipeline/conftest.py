"""An OpenTelemetry SDK provider with an in-memory exporter, for the tracing middleware."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from servicewire.telemetry import tracing as telemetry_tracing


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans recorded during the test (the provider is this test's own)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry_tracing.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        telemetry_tracing.use_tracer_provider(None)
        provider.shutdown()
