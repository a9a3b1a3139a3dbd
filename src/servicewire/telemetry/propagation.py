"""Trace context across process boundaries: OpenTelemetry's propagators over our carriers.

What is written and read is the choice of OpenTelemetry's global text-map propagator:
by default W3C trace context and baggage (``traceparent``, ``tracestate``,
``baggage``); the ``OTEL_PROPAGATORS`` environment variable (read once, when
``opentelemetry.propagate`` is first imported) or ``propagate.set_global_textmap``
change it. This module only says where each carrier keeps the values::

    context = extract_message(message.headers)      # parent span + baggage of a message
    headers = inject_message(context)               # {"traceparent": ..., "baggage": ...}
    context = extract_asgi(scope)                   # an incoming HTTP request
    context = extract_metadata(call.invocation_metadata())   # an incoming gRPC call
    metadata = inject_call()                        # outgoing HTTP headers / gRPC metadata

Message headers are CloudEvents attributes, whose names are lowercase letters and
digits only, so a propagator's field is stored under that form of its name
(:func:`servicewire.messaging.headers.propagation_header`): the W3C names are unchanged,
B3's ``x-b3-traceid`` becomes ``xb3traceid``. HTTP headers and gRPC metadata use the
field names as the propagator writes them.

A malformed value is ignored by the propagators (the hop starts a new trace); it is
never an error. Imports the OpenTelemetry API: :mod:`~.tracing` imports this module only
once a tracer provider is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter

from servicewire.messaging.headers import propagation_header


class _MessageGetter(Getter[Mapping[str, str]]):
    """Reads a propagator's fields from message headers (stored under CE-safe names)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(propagation_header(key))
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


class _MessageSetter(Setter[MutableMapping[str, str]]):
    """Writes a propagator's fields as message headers (under CE-safe names)."""

    def set(self, carrier: MutableMapping[str, str], key: str, value: str) -> None:
        carrier[propagation_header(key)] = value


class _PairsGetter(Getter[Iterable[tuple[Any, Any]]]):
    """Reads (name, value) pairs: ASGI headers (bytes) or gRPC metadata (str).

    Names are compared lowercase (HTTP header names are case-insensitive); repeated
    headers give every value. gRPC binary (``-bin``) values are not text and are skipped.
    """

    def get(self, carrier: Iterable[tuple[Any, Any]], key: str) -> list[str] | None:
        wanted = key.lower()
        found = [_text(v) for k, v in carrier if _text(k).lower() == wanted and _is_text(v)]
        return found or None

    def keys(self, carrier: Iterable[tuple[Any, Any]]) -> list[str]:
        return [_text(k).lower() for k, _ in carrier]


def _is_text(value: Any) -> bool:
    return isinstance(value, str | bytes)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


MESSAGE_GETTER = _MessageGetter()
MESSAGE_SETTER = _MessageSetter()
PAIRS_GETTER = _PairsGetter()


def extract_message(headers: Mapping[str, str], context: Context | None = None) -> Context:
    """The context (remote parent span, baggage) a message's headers carry."""
    return propagate.extract(headers, context, getter=MESSAGE_GETTER)


def inject_message(context: Context | None = None) -> dict[str, str]:
    """Message headers carrying ``context`` (default: the current one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context, setter=MESSAGE_SETTER)
    return carrier


def extract_asgi(scope: Mapping[str, Any]) -> Context:
    """The context an incoming HTTP request carries (its ASGI ``headers``)."""
    return propagate.extract(scope.get("headers", ()), getter=PAIRS_GETTER)


def extract_metadata(metadata: Iterable[tuple[str, Any]] | None) -> Context:
    """The context an incoming gRPC call carries (its invocation metadata)."""
    return propagate.extract(tuple(metadata or ()), getter=PAIRS_GETTER)


def inject_call(context: Context | None = None) -> dict[str, str]:
    """Outgoing HTTP headers or gRPC metadata carrying ``context`` (default: current)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context)
    return carrier


def fields() -> set[str]:
    """The carrier fields the configured propagators write (as the propagators name them)."""
    return set(propagate.get_global_textmap().fields)
