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
Importing this package never imports an optional broker, database or web library.
"""

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
from servicewire.outbox import write_messages
from servicewire.pipeline import Context, RetryPolicy
from servicewire.relay import create_relay
from servicewire.security import TLSConfig
from servicewire.service import Service, ServiceOptions
from servicewire.transports import Transport, connect_transport

__version__ = "0.1.0"

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
