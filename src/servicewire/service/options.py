"""How a :class:`~servicewire.service.Service` behaves: one frozen, typed options object.

Where a service runs (``db``, ``transport``) is passed to the service itself; how it
behaves lives here, so that a configuration can be built once, checked once, shared
and varied with :func:`dataclasses.replace`::

    from dataclasses import replace
    from servicewire.service import Service, ServiceOptions, Signatures

    options = ServiceOptions(
        concurrency=8,
        retry=RetryPolicy(delayed=5),
        signatures=Signatures(signer=ring, verifier=ring, required=True),
    )
    kitchen = Service("kitchen", db=url, transport=broker, options=options)
    quiet = Service("audit", options=replace(options, relay=False))

Every field has the default a bare ``Service(name)`` gets. Values are checked when
the object is made (a :class:`ValueError` names the field and what it must be), not
when the service starts. Signing is a sub-object because its three fields only make
sense together (``required`` needs a ``verifier``); the other fields are independent
knobs, set one at a time, and stay flat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import MetaData

from servicewire.codecs import CodecRegistry
from servicewire.messaging.message import Message
from servicewire.pipeline import inbox
from servicewire.pipeline.handlers import HandlerSpec
from servicewire.pipeline.middleware import Middleware
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.retry import RetryPolicy
from servicewire.security.signing import Signer, Verifier
from servicewire.telemetry.journal import Journal

OutcomeHook = Callable[[Message, Outcome, HandlerSpec | None], None]
"""Called with every settled delivery: the message, its outcome, the handler if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Signatures:
    """Message signatures (:mod:`servicewire.security.signing`) for a service::

    Signatures(signer=ring)                                  # sign what it sends
    Signatures(signer=ring, verifier=ring, required=True)    # and refuse unsigned input
    """

    signer: Signer | None = None
    """Signs every message as it is written to the outbox; ``None`` sends unsigned."""
    verifier: Verifier | None = None
    """Checks incoming messages before they are decoded; ``None`` checks nothing."""
    required: bool = False
    """Refuse unsigned messages too (without it they pass, and signed ones must verify)."""

    def __post_init__(self) -> None:
        if self.required and self.verifier is None:
            raise ValueError("Signatures(required=True) needs a verifier")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceOptions:
    """How a service encodes, retries, consumes, relays, records and signs messages."""

    content_type: str = "application/json"
    """The codec for messages this service sends (incoming ones carry their own)."""
    codecs: CodecRegistry | None = None
    """The codecs to encode and decode with; ``None`` uses the process-wide registry."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """How a failing handler is retried before its message is dead-lettered."""
    concurrency: int = 32
    """Deliveries handled at once, per subscription (at least 1)."""
    batch_size: int = 16
    """Most deliveries run in one database transaction (group commit), each handler in
    its own savepoint, one after the other; ``concurrency / batch_size`` transactions
    run at once. 1 gives every delivery a transaction of its own, ``concurrency`` at
    once: the choice for handlers that mostly wait on other systems (at least 1)."""
    batch_linger: float = 0.002
    """Longest wait, seconds, for a batch to fill while an earlier batch of the same
    subscription is still running; a delivery that finds nothing running is handled at
    once, so at low load batching adds no latency (0 never waits)."""
    prefetch: int = 64
    """Deliveries the broker may hand over ahead of handling, per subscription (at least 1)."""
    relay: bool = True
    """Run an outbox relay in this process; turn off when another process relays."""
    relay_poll_interval: float = 0.25
    """Seconds between outbox polls; commits made in this process wake the relay at once."""
    create_tables: bool = True
    """Create servicewire's tables and ``tables`` at start, where they are missing."""
    inbox_retention: timedelta = inbox.DEFAULT_RETENTION
    """How long handled message ids are remembered; must outlast the retry horizon."""
    inbox_cleanup_every: float = 3600.0
    """Seconds between purges of inbox entries older than ``inbox_retention``."""
    instance_id: str | None = None
    """This instance's id (its reply channel's suffix); ``None`` makes a fresh one."""
    tables: Sequence[MetaData] = ()
    """The application's own tables, created with servicewire's (kept as a tuple)."""
    journal: Journal | None = None
    """Where sends and receives are recorded (:mod:`servicewire.telemetry.journal`)."""
    on_outcome: OutcomeHook | None = None
    """Told of every settled delivery (benchmarks measure latency with it); to act once
    a handler's work is committed, use ``ctx.after_commit`` instead."""
    middleware: Sequence[Middleware] = ()
    """Around every handler run, outermost first, inside servicewire's own telemetry."""
    signatures: Signatures = field(default_factory=Signatures)
    """Whether messages are signed, checked, and required to be signed."""

    def __post_init__(self) -> None:
        # Sequences are kept as tuples, so that a list passed in and changed later
        # cannot change a configuration that claims to be frozen.
        object.__setattr__(self, "tables", tuple(self.tables))
        object.__setattr__(self, "middleware", tuple(self.middleware))
        _at_least("concurrency", self.concurrency, 1)
        _at_least("prefetch", self.prefetch, 1)
        _at_least("batch_size", self.batch_size, 1)
        if isinstance(self.batch_linger, bool) or not self.batch_linger >= 0:
            raise ValueError(
                f"batch_linger must be a number of seconds of at least 0, not {self.batch_linger!r}"
            )
        _positive("relay_poll_interval", self.relay_poll_interval)
        _positive("inbox_cleanup_every", self.inbox_cleanup_every)
        if self.inbox_retention <= self.retry.horizon():
            raise ValueError(
                f"inbox_retention {self.inbox_retention} must exceed the retry horizon "
                f"{self.retry.horizon()}, or late redeliveries would be processed twice"
            )


def _at_least(name: str, value: int, least: int) -> None:
    # bool is an int to Python, but concurrency=True is a mistake, not a count.
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an integer of at least {least}, not {value!r}")


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")


__all__ = ["OutcomeHook", "ServiceOptions", "Signatures"]
