"""Seeing the messages: tracing, structured logs, metrics and the message journal.

One import for everything observability; the pieces live in their own modules:

* :mod:`servicewire.telemetry.tracing` - OpenTelemetry spans at every hop (REST request,
  outbox write, relay publish, handler run), trace context and baggage in message headers;
* :mod:`servicewire.telemetry.propagation` - OpenTelemetry's configured propagators
  (``OTEL_PROPAGATORS``; default W3C trace context + baggage) over message headers,
  HTTP headers and gRPC metadata;
* :mod:`servicewire.telemetry.rest_spans` - the REST request span (installed by ``create_app``);
* :mod:`servicewire.telemetry.grpc_spans` - the gRPC server span per call;
* :mod:`servicewire.telemetry.logs` - JSON (or terminal) log lines with service,
  message id, correlation id and trace id;
* :mod:`servicewire.telemetry.metrics` - Prometheus metrics (served by
  :mod:`servicewire.exposition` with prometheus_client's ASGI app and HTTP server);
* the relay records its publishes through these (:mod:`servicewire.relay.observed`);
* :mod:`servicewire.telemetry.journal` - every send and receive, kept in memory or in
  SQL, and :mod:`servicewire.telemetry.sequence` - one conversation of it drawn as a
  sequence diagram (text, Mermaid, SVG);
* :mod:`servicewire.telemetry.journal_buffer` - a journal written off the event loop.

The gRPC spans need grpcio, so they are imported from :mod:`servicewire.grpc`
(``TracingServerInterceptor``, ``client_span``), not from here.

A service process typically does::

    from servicewire.exposition import mount_metrics
    from servicewire.telemetry import configure_logging, sql_journal

    configure_logging(service="order-service")
    service = Service("order-service", db=url, transport=broker,
                      options=ServiceOptions(journal=sql_journal(url)))
    app = create_app("Order Service", "1.0.0")
    mount_metrics(app, service)                      # GET /metrics

and, to record spans, sets an OpenTelemetry SDK tracer provider (the SDK is optional;
without it tracing costs nothing). A demo or a test draws what one order caused::

    journal = MemoryJournal()
    service = Service("order-service", db=url, transport=broker,
                      options=ServiceOptions(journal=journal))
    ...
    print(render_text(sequence_steps(journal.conversation(order_id))))

Nothing here imports OpenTelemetry or prometheus-client until it is used.
"""

from __future__ import annotations

from servicewire.telemetry.journal import MemoryJournal
from servicewire.telemetry.journal_buffer import BufferedJournal, sql_journal
from servicewire.telemetry.logs import configure_logging, message_context
from servicewire.telemetry.metrics import breaker_listener
from servicewire.telemetry.sequence import render_mermaid, render_svg, render_text
from servicewire.telemetry.sequence import (
    sequence as sequence_steps,  # exported as "sequence" it would hide the module's name
)
from servicewire.telemetry.tracing import (
    active as tracing_active,
)
from servicewire.telemetry.tracing import (
    current_call_headers,
    current_trace_headers,
    current_trace_id,
    span,
)

__all__ = [
    "BufferedJournal",
    "MemoryJournal",
    "breaker_listener",
    "configure_logging",
    "current_call_headers",
    "current_trace_headers",
    "current_trace_id",
    "message_context",
    "render_mermaid",
    "render_svg",
    "render_text",
    "sequence_steps",
    "span",
    "sql_journal",
    "tracing_active",
]
