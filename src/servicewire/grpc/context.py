"""The call context carried through gRPC metadata: correlation id and W3C trace context.

A server interceptor reads them from incoming metadata into context variables; a client
(or client interceptor) writes them into outgoing metadata, so a chain of calls shares
one correlation id and one trace, each hop a child span::

    with call_context(correlation_id="order-o-1"):
        await client.unary("kitchen", KitchenStub, "CreateTicket", request)
        # metadata: x-correlation-id: order-o-1, traceparent: 00-<trace>-<new span>-01
"""

from __future__ import annotations

import contextvars
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

CORRELATION_ID: Final = "x-correlation-id"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "servicewire_correlation_id", default=None
)
_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "servicewire_traceparent", default=None
)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def current_traceparent() -> str | None:
    return _traceparent.get()


# Trace and span ids need to be unique, not secret: the random module's generator is
# several times cheaper per call than os.urandom, which matters on a fast unary path.
_bits = random.getrandbits


def _span_id() -> str:
    return f"{_bits(64) or 1:016x}"


def new_id() -> str:
    """A random 128-bit hex id (correlation ids, trace ids)."""
    return f"{_bits(128) or 1:032x}"


def new_traceparent() -> str:
    """A fresh sampled W3C ``traceparent`` (version 00)."""
    return f"00-{new_id()}-{_span_id()}-01"


def child_traceparent(parent: str | None) -> str:
    """A new span in ``parent``'s trace; a new trace when ``parent`` is missing or invalid."""
    match = _TRACEPARENT.match(parent or "")
    if match is None or match[1] == "0" * 32:
        return new_traceparent()
    return f"00-{match[1]}-{_span_id()}-{match[3]}"


def adopt(correlation_id: str | None, traceparent: str | None) -> None:
    """Make incoming values current for the rest of this task (server side)."""
    _correlation_id.set(correlation_id or new_id())
    _traceparent.set(traceparent if traceparent and _TRACEPARENT.match(traceparent) else None)


@contextmanager
def call_context(
    correlation_id: str | None = None, traceparent: str | None = None
) -> Iterator[None]:
    """Set the correlation id (and optionally the trace) for calls made in the block."""
    tokens = (_correlation_id.set(correlation_id), _traceparent.set(traceparent))
    try:
        yield
    finally:
        _correlation_id.reset(tokens[0])
        _traceparent.reset(tokens[1])


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for an outgoing call: the current correlation id and a child span."""
    correlation_id = _correlation_id.get() or new_id()
    parent = _traceparent.get()
    traceparent = child_traceparent(parent) if parent else new_traceparent()
    return ((CORRELATION_ID, correlation_id), (TRACEPARENT, traceparent))
