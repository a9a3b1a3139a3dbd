"""Tracing: OpenTelemetry spans at every hop, W3C trace context in every envelope.

One trace follows a request through the whole system::

    POST /v1/orders            (server span, REST middleware; parent from HTTP headers)
      outbox write             (the transaction that stored the order's messages)
        relay publish          (producer span per message; parent from its traceparent)
          handle ValidateX     (consumer span in the receiving service)
            outbox write       (the reply) -> relay publish -> handle the reply ...

The parent of each hop travels in the message's ``traceparent``/``tracestate`` headers,
so the trace survives the outbox table, the relay process and the broker. Spans are
made with the OpenTelemetry *API* only; install the SDK and set a tracer provider to
record them::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    trace.set_tracer_provider(TracerProvider())     # plus an exporter of your choice

Without the API installed, or with no tracer provider set, every helper here is a
cheap no-op (a function call and a global lookup), so the hot paths pay nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from servicewire.messaging import headers as h
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


_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _parent(carrier: Mapping[str, str]) -> Any:
    """The OpenTelemetry context a carrier's ``traceparent`` names (none: a new trace).

    Parsed here rather than by the W3C propagator: on a relay's hot path the generic
    propagator (carrier copies, getters, validation) costs several times more.
    """
    match = _TRACEPARENT.match(carrier.get(h.TRACEPARENT, ""))
    if match is None:
        return None
    trace = _trace()
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not trace_id or not span_id:
        return None
    state = carrier.get(h.TRACESTATE)
    remote = trace.SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=trace.TraceFlags(int(match[3], 16)),
        trace_state=trace.TraceState.from_header([state]) if state else None,
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(remote))


def _headers_of(current: Any) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) naming span ``current``."""
    context = current.get_span_context()
    if not context.is_valid:
        return {}
    headers = {
        h.TRACEPARENT: f"00-{context.trace_id:032x}-{context.span_id:016x}-"
        f"{context.trace_flags:02x}"
    }
    if context.trace_state:
        headers[h.TRACESTATE] = context.trace_state.to_header()
    return headers


def current_trace_headers() -> dict[str, str]:
    """``traceparent``/``tracestate`` of the current span; empty when none is recording."""
    if not active():
        return {}
    return _headers_of(_trace().get_current_span())


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, for logs."""
    if not active():
        return None
    span_context = _trace().get_current_span().get_span_context()
    return f"{span_context.trace_id:032x}" if span_context.is_valid else None


def trace_id_of(message: Message) -> str | None:
    """The trace id a message's ``traceparent`` carries, if well formed."""
    parts = message.headers.get(h.TRACEPARENT, "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: str = "INTERNAL",
    carrier: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A current span named ``name`` (``None`` when tracing is off).

    ``carrier``: headers whose ``traceparent`` is the parent (a message, an HTTP
    request, gRPC metadata); without it the span continues the current trace.
    An exception escaping the block is recorded on the span and re-raised.
    """
    if not active():
        yield None
        return
    trace = _trace()
    parent = _parent(carrier) if carrier is not None else None
    with _tracer().start_as_current_span(
        name,
        context=parent,
        kind=getattr(trace.SpanKind, kind),
        attributes=dict(attributes or {}),
    ) as current:
        yield current


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
        current = tracer.start_span(
            f"publish {short}",
            context=_parent(message.headers),
            kind=trace.SpanKind.PRODUCER,
            attributes=attributes,
        )
        stamped.append(message.with_header_map(_headers_of(current)))
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
    headers.update(current_trace_headers())
