"""The call context carried through gRPC metadata: our correlation id, OpenTelemetry's trace.

The correlation id (``x-correlation-id``) is ours: every call carries one, the caller's
or a new one. The trace context and baggage are OpenTelemetry's: written and read by its
configured text-map propagators (``OTEL_PROPAGATORS``; by default W3C ``traceparent``,
``tracestate`` and ``baggage``: :mod:`servicewire.telemetry.propagation`). A server
interceptor makes the incoming values current for the handler; a client (or client
interceptor) writes the current ones into outgoing metadata, so a chain of calls shares
one correlation id, one trace and one baggage::

    with call_context(correlation_id="order-o-1"):
        await client.unary("kitchen", KitchenStub, "CreateTicket", request)
        # metadata: x-correlation-id: order-o-1 (+ traceparent, baggage when current)

No span ids are made here. With an OpenTelemetry SDK tracer provider, spans
(:class:`~servicewire.telemetry.grpc_spans.TracingServerInterceptor`,
:func:`~servicewire.telemetry.grpc_spans.client_span`) make each hop a child; without
one, the OpenTelemetry API passes the incoming trace context on unchanged, and a call
made outside any trace carries none.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from servicewire.telemetry.propagation import extract_metadata, inject_call

CORRELATION_ID: Final = "x-correlation-id"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "servicewire_correlation_id", default=None
)
_W3C = TraceContextTextMapPropagator()


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def current_traceparent() -> str | None:
    """The ``traceparent`` the configured propagators write for the current context.

    ``None`` outside any trace, or when the propagators write no ``traceparent``
    (``OTEL_PROPAGATORS=b3``, say).
    """
    return inject_call().get(TRACEPARENT)


# Correlation ids need to be unique, not secret: the random module's generator is
# several times cheaper per call than os.urandom, which matters on a fast unary path.
_bits = random.getrandbits


def new_id() -> str:
    """A random 128-bit hex id (correlation ids)."""
    return f"{_bits(128) or 1:032x}"


def adopt(metadata: Iterable[tuple[str, Any]] | None) -> None:
    """Make an incoming call's context current for the rest of this task (server side).

    The correlation id (a new one when the caller sent none) and what the propagators
    extract from the metadata (remote parent span, baggage); a malformed value is
    ignored. Each RPC runs in a task of its own, with a copy of the contextvars, so
    nothing needs resetting: the values end with the call.
    """
    pairs = tuple(metadata or ())
    correlation_id = next((v for k, v in pairs if k == CORRELATION_ID and isinstance(v, str)), None)
    _correlation_id.set(correlation_id or new_id())
    otel_context.attach(extract_metadata(pairs))


@contextmanager
def call_context(
    correlation_id: str | None = None, traceparent: str | None = None
) -> Iterator[None]:
    """Set the correlation id (and optionally the trace) for calls made in the block.

    ``traceparent``: a W3C ``traceparent`` to continue (its span becomes the current
    remote parent, baggage stays); a malformed one is ignored. Without it the current
    OpenTelemetry context (a span, or what a server interceptor extracted) goes out.
    """
    token = _correlation_id.set(correlation_id)
    attached = None
    if traceparent is not None:
        current = otel_context.get_current()
        attached = otel_context.attach(_W3C.extract({TRACEPARENT: traceparent}, current))
    try:
        yield
    finally:
        if attached is not None:
            otel_context.detach(attached)
        _correlation_id.reset(token)


def outgoing_metadata(given: Sequence[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """Metadata for an outgoing call: the correlation id, the propagators' fields, ``given``.

    A key in ``given`` (a caller's own metadata, ``client_span``'s) wins over ours.
    """
    ours = [(CORRELATION_ID, _correlation_id.get() or new_id()), *inject_call().items()]
    if given:
        names = {key for key, _ in given}
        return (*(pair for pair in ours if pair[0] not in names), *given)
    return tuple(ours)
