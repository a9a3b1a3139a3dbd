"""Tracing: OpenTelemetry spans at every hop, trace context and baggage in every envelope.

One trace follows a request through the whole system::

    POST /v1/orders            (server span, REST middleware; parent from HTTP headers)
      outbox write             (the transaction that stored the order's messages)
        relay publish          (producer span per message; parent from its headers)
          handle ValidateX     (consumer span in the receiving service)
            outbox write       (the reply) -> relay publish -> handle the reply ...

The parent of each hop, and the baggage, travel in message headers written and read by
OpenTelemetry's configured propagators (``OTEL_PROPAGATORS``; by default W3C
``traceparent``/``tracestate`` and ``baggage``: :mod:`~.propagation`), so the trace
survives the outbox table, the relay process and the broker. Spans are made with the
OpenTelemetry *API* only; install the SDK and set a tracer provider to record them::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())     # plus an exporter of your choice

Without the API installed, or with no tracer provider set, every helper here is a
cheap no-op (a function call and a global lookup), so the hot paths pay nothing; the
pipeline then passes the W3C headers of a message on to what its handler sends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from servicewire.messaging.message import Message

TRACER_NAME = "servicewire"

_api: Any = None  # the opentelemetry.trace module once imported, False when missing


def _trace() -> Any:
    global _api
    if _api is None:
        try:
            from opentelemetry import trace
        except ImportError:  # the telemetry extra is optional
            _api = False
        else:
            _api = trace
    return _api


_provider: Any = None  # set by use_tracer_provider; else OpenTelemetry's global one


def use_tracer_provider(provider: Any) -> None:
    """Record Servicewire's spans with ``provider`` instead of the global one.

    ``None`` goes back to the global provider. OpenTelemetry lets the global provider be
    set once per process; this lets a test (or a tool) swap providers freely.
    """
    global _provider
    _provider = provider


def active() -> bool:
    """True when spans are recorded: the API is installed and a tracer provider is set."""
    if _provider is not None:
        return True
    trace = _trace()
    if not trace:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _tracer() -> Any:
    provider = _provider if _provider is not None else _trace().get_tracer_provider()
    return provider.get_tracer(TRACER_NAME)


def _propagation() -> Any:
    """:mod:`~.propagation` (imports OpenTelemetry's propagators; call once tracing is on)."""
    from servicewire.telemetry import propagation

    return propagation


def _headers_of(current: Any, context: Any = None) -> dict[str, str]:
    """Message headers naming span ``current`` as parent (plus ``context``'s baggage)."""
    headers: dict[str, str] = _propagation().inject_message(
        _trace().set_span_in_context(current, context)
    )
    return headers


def current_trace_headers() -> dict[str, str]:
    """Message headers the configured propagators write for the current context.

    By default ``traceparent``, ``tracestate`` and ``baggage``; empty when tracing is
    off (no tracer provider set).
    """
    if not active():
        return {}
    headers: dict[str, str] = _propagation().inject_message()
    return headers


def current_call_headers() -> dict[str, str]:
    """HTTP headers (or gRPC metadata) carrying the current context; empty when off."""
    if not active():
        return {}
    headers: dict[str, str] = _propagation().inject_call()
    return headers


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, for logs."""
    if not active():
        return None
    span_context = _trace().get_current_span().get_span_context()
    return f"{span_context.trace_id:032x}" if span_context.is_valid else None


def trace_id_of(message: Message) -> str | None:
    """The trace id a message's trace headers carry (read by the configured propagators).

    ``None`` when they carry none, are malformed, or the OpenTelemetry API is missing.
    """
    trace = _trace()
    if not trace:
        return None
    context = _propagation().extract_message(message.headers)
    span_context = trace.get_current_span(context).get_span_context()
    return f"{span_context.trace_id:032x}" if span_context.is_valid else None


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: str = "INTERNAL",
    carrier: Mapping[str, str] | None = None,
    parent: Any = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A current span named ``name`` (``None`` when tracing is off).

    ``carrier``: message headers carrying the parent (and baggage), read by the
    configured propagators; ``parent``: an OpenTelemetry context already extracted
    (an HTTP request's, a gRPC call's: :mod:`~.propagation`). With neither the span
    continues the current trace. The extracted baggage is current inside the block.
    An exception escaping the block is recorded on the span and re-raised.
    """
    if not active():
        yield None
        return
    trace = _trace()
    if carrier is not None:
        parent = _propagation().extract_message(carrier)
    if parent is None:
        with _tracer().start_as_current_span(
            name, kind=getattr(trace.SpanKind, kind), attributes=dict(attributes or {})
        ) as current:
            yield current
        return
    from opentelemetry import context as otel_context

    token = otel_context.attach(parent)  # the baggage is current for the block too
    try:
        with _tracer().start_as_current_span(
            name,
            context=parent,
            kind=getattr(trace.SpanKind, kind),
            attributes=dict(attributes or {}),
        ) as current:
            yield current
    finally:
        otel_context.detach(token)


def message_attributes(message: Message, operation: str) -> dict[str, str]:
    """OpenTelemetry messaging attributes of ``message``."""
    attributes = {
        "messaging.system": "servicewire",
        "messaging.operation.type": operation,
        "messaging.destination.name": message.destination,
        "messaging.message.id": message.id,
        "servicewire.messaging.message.type": message.type,
        "servicewire.messaging.message.kind": message.kind,
    }
    if message.correlation_id:
        attributes["messaging.message.conversation_id"] = message.correlation_id
    return attributes


def handler_span(service: str, message: Message) -> contextlib.AbstractContextManager[Any]:
    """The consumer span of one handler run, a child of the message's sender."""
    if not active():  # before the attributes: this runs for every message
        return contextlib.nullcontext()
    short = message.type.rsplit(".", 1)[-1] or "message"
    attributes = message_attributes(message, "process")
    attributes["servicewire.service.service"] = service
    return span(f"handle {short}", kind="CONSUMER", carrier=message.headers, attributes=attributes)


def _restamp(messages: Sequence[Message]) -> list[Message]:
    """Copies whose ``traceparent`` names the current span (the parent of the next hop)."""
    carrier = current_trace_headers()
    if not carrier:
        return list(messages)
    return [m.with_header_map(carrier) for m in messages]


# The target is a session, or the pipeline's pending rows (written once per batch).
OutboxWriter = Callable[[Any, Sequence[Message]], Awaitable[None]]


def traced_outbox_writer(writer: OutboxWriter, service: str) -> OutboxWriter:
    """``writer`` inside an ``outbox write`` span; the rows carry that span as parent."""

    async def write(session: Any, messages: Sequence[Message]) -> None:
        if not active() or not messages:
            await writer(session, messages)
            return
        attributes = {
            "servicewire.service.service": service,
            "messaging.batch.message_count": len(messages),
        }
        with span("outbox write", attributes=attributes):
            await writer(session, _restamp(messages))

    return write


def start_publish_spans(relay: str, messages: Sequence[Message]) -> tuple[list[Message], list[Any]]:
    """Producer spans for a relay's batch: (copies to publish, spans to :func:`end_spans`).

    Each copy carries its publish span as parent, so the consumer's span hangs under
    the relay's, which hangs under the outbox write. The spans are not made current:
    a batch publishes many messages of many traces at once.
    """
    if not active():
        return list(messages), []
    trace = _trace()
    tracer = _tracer()
    extract = _propagation().extract_message
    stamped: list[Message] = []
    spans: list[Any] = []
    for message in messages:
        short = message.type.rsplit(".", 1)[-1] or "message"
        # Fewer attributes than a handler span: each one is validated by the SDK.
        attributes = {
            "messaging.operation.type": "publish",
            "messaging.destination.name": message.destination,
            "messaging.message.id": message.id,
            "servicewire.relay": relay,
        }
        parent = extract(message.headers)  # the writer's span and the baggage
        current = tracer.start_span(
            f"publish {short}", context=parent, kind=trace.SpanKind.PRODUCER, attributes=attributes
        )
        stamped.append(message.with_header_map(_headers_of(current, parent)))
        spans.append(current)
    return stamped, spans


def end_spans(spans: Sequence[Any], error: BaseException | None = None) -> None:
    """End spans from :func:`start_publish_spans`, marking them failed on ``error``."""
    for current in spans:
        if error is not None:
            current.record_exception(error)
            current.set_status(_trace().Status(_trace().StatusCode.ERROR, str(error)))
        current.end()


def inject_http(headers: MutableMapping[str, str]) -> None:
    """Add the current trace context to outgoing HTTP headers (or gRPC metadata)."""
    headers.update(current_call_headers())
