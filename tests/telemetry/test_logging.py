"""Structured logs: JSON lines with service, message and trace ids; secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from servicewire import Message
from servicewire.telemetry import configure_logging, message_context, span
from servicewire.telemetry.logs import ContextFilter, TextFormatter


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = configure_logging(service="order-service", json=True, stream=out)
    try:
        yield out
    finally:
        logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_carries_service_message_correlation_and_trace(
    stream: io.StringIO, spans: InMemorySpanExporter
) -> None:
    message = Message.create(
        b"{}",
        destination="orders",
        correlation_id="order-1",
        extra={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )
    log = logging.getLogger("ftgo.test")
    log.info("outside")
    with message_context(message):
        log.info("handling %s", "it")
        with span("inner"):
            log.info("in a span")
    first, second, third = lines(stream)[-3:]
    assert first["service"] == "order-service" and "message_id" not in first
    assert second["message"] == "handling it"
    assert second["message_id"] == message.id
    assert second["correlation_id"] == "order-1"
    assert second["trace_id"] == "0af7651916cd43dd8448eb211c80319c"  # from the header
    assert third["trace_id"] == f"{spans.get_finished_spans()[0].context.trace_id:032x}"
    assert second["level"] == "INFO" and second["logger"] == "ftgo.test"


def test_secrets_never_reach_the_log(stream: io.StringIO) -> None:
    log = logging.getLogger("ftgo.test")
    log.warning("cannot reach amqp://guest:s3cret@broker:5672/")
    try:
        raise ConnectionError("postgresql://app:hunter2@db/orders refused")
    except ConnectionError:
        log.exception("failed")
    text = stream.getvalue()
    assert "s3cret" not in text and "hunter2" not in text
    entries = lines(stream)
    assert "exception" in entries[-1]


def test_terminal_format_is_one_readable_line() -> None:
    record = logging.LogRecord("ftgo", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    ContextFilter("consumer-service").filter(record)
    line = TextFormatter().format(record)
    assert "INFO" in line and "consumer-service ftgo: hello you" in line
    assert "\n" not in line


def test_a_malformed_tracestate_is_logged_once_not_recursively(
    stream: io.StringIO, spans: InMemorySpanExporter
) -> None:
    # Reading the trace id of a message whose tracestate is malformed makes OpenTelemetry
    # log a warning, which passes through the same filter while the message is current.
    # The filter must not read the headers again for that warning (it did, until the
    # stack overflowed and the handler's message went to the dead-letter channel).
    message = Message.create(
        b"{}",
        destination="orders",
        extra={"traceparent": "00-not-a-trace-01", "tracestate": "=", "baggage": "%%%"},
    )
    with message_context(message):
        logging.getLogger("ftgo.test").info("handling")
    records = lines(stream)
    assert records[-1]["message"] == "handling"
    assert records[-1]["message_id"] == message.id
    assert "trace_id" not in records[-1]  # malformed: no trace id, and no error
    warnings = [r for r in records if r["logger"].startswith("opentelemetry")]
    assert len(warnings) == 1 and warnings[0]["message_id"] == message.id
