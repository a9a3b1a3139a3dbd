"""Prometheus metrics of a service process (prometheus-client, an optional extra).

What is counted, and where:

======================================================  =================================
``servicewire_messages_published_total``                relay, per channel and contract
``servicewire_messages_consumed_total``                 pipeline (handled or duplicate)
``servicewire_messages_retried_total``                  pipeline (redelivery scheduled)
``servicewire_messages_dead_lettered_total``            pipeline
``servicewire_handler_duration_seconds``                pipeline, histogram
``servicewire_relay_publish_latency_seconds``           relay, commit (message time) to publish
``servicewire_outbox_backlog`` / ``_oldest_age_seconds``  per database, read at scrape
``servicewire_inbox_size``                              per service, read at scrape
``servicewire_circuit_breaker_state``                   0 closed, 1 half open, 2 open
======================================================  =================================

These are the recorders, called by the pipeline and the relay; serving them (``GET
/metrics``) is :mod:`servicewire.exposition`, whose custom collector also reads the
three gauges read at scrape from the databases. Without prometheus-client every recording
function is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from servicewire.messaging import headers as h
from servicewire.messaging.message import Message

log = logging.getLogger("servicewire.telemetry")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class _Metrics:
    """The metric objects, created once per process in the default registry."""

    def __init__(self, prom: Any) -> None:
        self.published = prom.Counter(
            "servicewire_messages_published",
            "Messages a relay published to the transport",
            ["channel", "contract"],
        )
        self.consumed = prom.Counter(
            "servicewire_messages_consumed",
            "Messages a service consumed (handled, or skipped as duplicates)",
            ["service", "channel", "contract"],
        )
        self.retried = prom.Counter(
            "servicewire_messages_retried",
            "Deliveries that failed and were scheduled for redelivery",
            ["service", "channel", "contract"],
        )
        self.dead_lettered = prom.Counter(
            "servicewire_messages_dead_lettered",
            "Messages moved to a dead-letter channel",
            ["service", "channel", "contract"],
        )
        self.handler_seconds = prom.Histogram(
            "servicewire_handler_duration_seconds",
            "Handler run time, transaction included",
            ["service", "channel", "contract"],
            buckets=_LATENCY_BUCKETS,
        )
        self.relay_latency = prom.Histogram(
            "servicewire_relay_publish_latency_seconds",
            "From the message's creation in the committing transaction to its publish",
            ["relay"],
            buckets=_LATENCY_BUCKETS,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self.breaker = prom.Gauge(
            "servicewire_circuit_breaker_state",
            "Circuit breaker state per remote service: 0 closed, 1 half open, 2 open",
            ["service"],
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: prometheus-client's lookup takes a lock."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found


_metrics: _Metrics | bool | None = None


def metrics() -> _Metrics | None:
    """The process's metric objects; ``None`` without prometheus-client."""
    global _metrics
    if _metrics is None:
        try:
            import prometheus_client
        except ImportError:
            _metrics = False
        else:
            _metrics = _Metrics(prometheus_client)
    return _metrics if isinstance(_metrics, _Metrics) else None


def _contract(message: Message) -> str:
    return message.type or "(untyped)"


def record_outcome(service: str, message: Message, outcome: str) -> None:
    """Count one delivery's outcome (the pipeline's :class:`~.unit_of_work.Outcome`)."""
    m = metrics()
    if m is None:
        return
    labels = (service, message.destination, _contract(message))
    if outcome in ("handled", "duplicate"):
        m.child(m.consumed, *labels).inc()
    elif outcome == "retrying":
        m.child(m.retried, *labels).inc()
    elif outcome == "dead-lettered":
        m.child(m.dead_lettered, *labels).inc()


@contextlib.contextmanager
def time_handler(service: str, message: Message) -> Iterator[None]:
    """Observe the block's duration in the handler latency histogram."""
    m = metrics()
    if m is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram = m.child(m.handler_seconds, service, message.destination, _contract(message))
        histogram.observe(time.perf_counter() - started)


_LATENCY_SAMPLES = 50
"""At most this many latency observations per published batch (evenly spread)."""


def record_published(relay: str, messages: Sequence[Message]) -> None:
    """Count published messages and observe their commit-to-publish latency.

    A relay publishes batches of hundreds of messages at tens of thousands per second,
    so counts are added per (channel, contract) once per batch and latency is sampled
    (at most :data:`_LATENCY_SAMPLES` per batch, which keeps the distribution).
    """
    m = metrics()
    if m is None or not messages:
        return
    counts: dict[tuple[str, str], int] = {}
    for message in messages:
        key = (message.destination, _contract(message))
        counts[key] = counts.get(key, 0) + 1
    for (channel, contract), n in counts.items():
        m.child(m.published, channel, contract).inc(n)
    now = time.time()
    latency = m.child(m.relay_latency, relay)
    step = -(-len(messages) // _LATENCY_SAMPLES)
    for message in messages[::step]:
        sent = message.headers.get(h.TIME)
        if sent:
            try:
                latency.observe(max(0.0, now - datetime.fromisoformat(sent).timestamp()))
            except ValueError:
                pass  # a foreign producer's odd timestamp is not worth a failure


def breaker_listener(service: str, _old: str, new: str) -> None:
    """A :class:`~servicewire.resilience.CircuitBreaker` ``on_state_change`` listener.

    States are :class:`~servicewire.resilience.CircuitState` values (string enums).
    """
    m = metrics()
    if m is not None:
        m.breaker.labels(service).set(_BREAKER_VALUE.get(str(new), -1))
