"""Servicewire: interprocess communication for Python microservices.

The public API, re-exported here so users import from one place::

    from servicewire import Command, Message, connect_transport, to_message
"""

from servicewire.codecs import Codec, CodecRegistry, JsonCodec, default_codecs
from servicewire.codecs.xml import XmlCodec
from servicewire.discovery import (
    DiscoveryError,
    DnsResolver,
    Instance,
    Locator,
    NoInstancesError,
    Resolver,
    StaticResolver,
)
from servicewire.errors import (
    ConnectionFailedError,
    ContractError,
    DecodeError,
    DuplicateContractError,
    EncodeError,
    InvalidNameError,
    MessageTooLargeError,
    PermanentError,
    PublishError,
    RequestTimeoutError,
    ServiceStateError,
    ServicewireError,
    TransportError,
    UnknownContractError,
    UnsupportedContentTypeError,
    UnsupportedVersionError,
)
from servicewire.evolution.generate.model import ChannelUse
from servicewire.messaging import headers
from servicewire.messaging.channels import (
    DEFAULT_SHARDS,
    dead_letter_channel,
    shard_for,
    validate_name,
)
from servicewire.messaging.cloudevents import from_binding, to_binding
from servicewire.messaging.contracts import (
    Command,
    Contract,
    ContractRegistry,
    Document,
    Event,
    FailureReply,
    Reply,
    SuccessReply,
    default_registry,
)
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Headers, Message, MessageKind
from servicewire.messaging.serialization import from_message, to_message
from servicewire.messaging.versioning import SemVer
from servicewire.outbox import write_messages, write_messages_sync
from servicewire.pipeline.context import Context
from servicewire.pipeline.retry import NO_RETRY, RetryPolicy
from servicewire.pipeline.unit_of_work import Outcome
from servicewire.relay import Relay, create_relay
from servicewire.resilience import (
    BadRequestError,
    Bulkhead,
    BulkheadFullError,
    CallRetryPolicy,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ConflictError,
    Deadline,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    RemoteError,
    RemoteServerError,
    Resilience,
    ServiceUnavailableError,
)
from servicewire.security.identity import (
    AuthenticationError,
    Identity,
    PermissionDeniedError,
    Policy,
    TokenIssuer,
    TokenVerifier,
)
from servicewire.security.tls import TLSConfig, TLSConfigError
from servicewire.service.service import Service
from servicewire.telemetry import BufferedJournal, configure_logging, mount_metrics, sql_journal
from servicewire.transports import (
    Capabilities,
    Delivery,
    Subscription,
    Transport,
    connect_transport,
    transport_from_url,
)
from servicewire.transports.memory.transport import MemoryBroker, MemoryTransport
from servicewire.urls import redact

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SHARDS",
    "NO_RETRY",
    "AuthenticationError",
    "BadRequestError",
    "BufferedJournal",
    "Bulkhead",
    "BulkheadFullError",
    "CallRetryPolicy",
    "Capabilities",
    "ChannelUse",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Codec",
    "CodecRegistry",
    "Command",
    "ConflictError",
    "ConnectionFailedError",
    "Context",
    "Contract",
    "ContractError",
    "ContractRegistry",
    "Deadline",
    "DeadlineExceededError",
    "DecodeError",
    "Delivery",
    "DiscoveryError",
    "DnsResolver",
    "Document",
    "DuplicateContractError",
    "EncodeError",
    "Event",
    "FailureReply",
    "Headers",
    "Identity",
    "Instance",
    "InvalidArgumentError",
    "InvalidNameError",
    "JsonCodec",
    "Locator",
    "MemoryBroker",
    "MemoryTransport",
    "Message",
    "MessageKind",
    "MessageTooLargeError",
    "NoInstancesError",
    "NotFoundError",
    "Outcome",
    "PermanentError",
    "PermissionDeniedError",
    "Policy",
    "PublishError",
    "Relay",
    "RemoteError",
    "RemoteServerError",
    "Reply",
    "RequestTimeoutError",
    "Resilience",
    "Resolver",
    "RetryPolicy",
    "SemVer",
    "Service",
    "ServiceStateError",
    "ServiceUnavailableError",
    "ServicewireError",
    "StaticResolver",
    "Subscription",
    "SuccessReply",
    "TLSConfig",
    "TLSConfigError",
    "TokenIssuer",
    "TokenVerifier",
    "Transport",
    "TransportError",
    "UnknownContractError",
    "UnsupportedContentTypeError",
    "UnsupportedVersionError",
    "XmlCodec",
    "configure_logging",
    "connect_transport",
    "create_relay",
    "dead_letter_channel",
    "default_codecs",
    "default_registry",
    "from_binding",
    "from_message",
    "headers",
    "mount_metrics",
    "new_id",
    "redact",
    "shard_for",
    "sql_journal",
    "to_binding",
    "to_message",
    "transport_from_url",
    "validate_name",
    "write_messages",
    "write_messages_sync",
]
