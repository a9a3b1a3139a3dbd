"""Servicewire: interprocess communication for Python microservices.

The names a service author needs, from one place::

    from servicewire import Command, Context, RetryPolicy, Service, ServiceOptions, SuccessReply

    class ValidateConsumerInfo(Command, name="ftgo.consumer.ValidateConsumerInfo",
                               version="1.0.0", channel="ftgo.consumer.commands"):
        consumer_id: str

    consumers = Service("consumer-service", db="sqlite:///consumers.db", transport="memory://")
    tuned = Service("kitchen", options=ServiceOptions(concurrency=8, retry=RetryPolicy(delayed=5)))

Everything else lives in its room and is imported from there: messages and channels in
:mod:`servicewire.messaging`, formats in :mod:`servicewire.codecs`, brokers in
:mod:`servicewire.transports`, the outbox and relays in :mod:`servicewire.outbox` and
:mod:`servicewire.relay`, the pipeline in :mod:`servicewire.pipeline`, REST and gRPC in
:mod:`servicewire.rest` and :mod:`servicewire.grpc`, partial-failure tools in
:mod:`servicewire.resilience`, TLS, tokens and signatures in :mod:`servicewire.security`,
observability in :mod:`servicewire.telemetry` and :mod:`servicewire.exposition`, test
helpers in :mod:`servicewire.testing` (docs/architecture.md draws the whole house).
Importing this package never imports an optional broker, database or web library, nor
SQLAlchemy: the names that need it (``Service``, ``write_messages``, ``create_relay``,
...) are imported on first use, so a program that only defines contracts or uses a
codec (``import servicewire.codecs`` runs this module too) starts in a fraction of the
time.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from servicewire.errors import (
    ConnectionFailedError,
    ContractError,
    DecodeError,
    PermanentError,
    PublishError,
    RequestNotSentError,
    RequestTimeoutError,
    ServicewireError,
    TransportError,
    UnknownContractError,
    UnsupportedVersionError,
)
from servicewire.messaging import (
    Command,
    Contract,
    Document,
    Event,
    FailureReply,
    Message,
    Reply,
    SuccessReply,
    new_id,
)

if TYPE_CHECKING:
    from servicewire.outbox import write_messages
    from servicewire.pipeline import Context, RetryPolicy
    from servicewire.relay import create_relay
    from servicewire.security import TLSConfig
    from servicewire.service import Service, ServiceOptions
    from servicewire.transports import Transport, connect_transport

__version__ = "0.1.0"

# Imported on first use (PEP 562): these modules load SQLAlchemy and the pipeline,
# about 1 s of CPU that ``import servicewire`` would otherwise cost every program.
_LAZY = {
    "write_messages": "servicewire.outbox",
    "Context": "servicewire.pipeline",
    "RetryPolicy": "servicewire.pipeline",
    "create_relay": "servicewire.relay",
    "TLSConfig": "servicewire.security",
    "Service": "servicewire.service",
    "ServiceOptions": "servicewire.service",
    "Transport": "servicewire.transports",
    "connect_transport": "servicewire.transports",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        # A subpackage (``servicewire.outbox``) is an attribute once imported; code that
        # reached one through ``import servicewire`` alone keeps working.
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups are plain module attributes
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Command",
    "ConnectionFailedError",
    "Context",
    "Contract",
    "ContractError",
    "DecodeError",
    "Document",
    "Event",
    "FailureReply",
    "Message",
    "PermanentError",
    "PublishError",
    "Reply",
    "RequestNotSentError",
    "RequestTimeoutError",
    "RetryPolicy",
    "Service",
    "ServiceOptions",
    "ServicewireError",
    "SuccessReply",
    "TLSConfig",
    "Transport",
    "TransportError",
    "UnknownContractError",
    "UnsupportedVersionError",
    "connect_transport",
    "create_relay",
    "new_id",
    "write_messages",
]
