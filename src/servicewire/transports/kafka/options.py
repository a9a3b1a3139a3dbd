"""The Kafka transport's URL: brokers, credentials and tuning options.

::

    kafka://127.0.0.1:9092
    kafka://broker-1:9092,broker-2:9092/?partitions=32&replication=3
    kafka+ssl://svc:secret@broker:9093/?cafile=/etc/ca.pem&sasl_mechanism=SCRAM-SHA-256
    kafka://127.0.0.1:9092/?session_timeout_ms=6000&heartbeat_interval_ms=200

Unknown options are refused with a clear error rather than ignored, so a typo does not
silently fall back to a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal
from urllib.parse import unquote

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.security.tls import TLSConfig
from servicewire.transports.options import TransportOptions, option
from servicewire.urls import redact


@dataclass(frozen=True, slots=True)
class KafkaOptions(TransportOptions):
    """Everything the URL can set; defaults suit a production cluster."""

    broker: ClassVar[str] = "kafka"

    partitions: int = option(DEFAULT_SHARDS, at_least=1)
    """Partitions of each topic the transport creates (the channel's shards)."""
    replication: int = option(1, at_least=1)
    """Replication factor of created topics (set 3 on a real cluster)."""
    client_id: str = "servicewire"
    session_timeout_ms: int = option(10_000, at_least=1)
    heartbeat_interval_ms: int = option(1_000, at_least=1)
    max_poll_interval_ms: int = option(300_000, at_least=1)
    rebalance_timeout_ms: int = option(30_000, at_least=1)
    request_timeout_ms: int = option(30_000, at_least=1)
    connect_timeout_ms: int = option(10_000, at_least=1)
    linger_ms: int = option(2, at_least=0)
    idempotence: Literal["auto", "true", "false"] = "auto"
    """``auto`` (use it when the broker grants a producer id), ``true`` or ``false``."""
    topic_prefix: str = ""
    cafile: str = ""
    sasl_mechanism: str = "PLAIN"
    commit_interval_ms: int = option(50, at_least=0)
    """Least time between two offset commits of one member (they coalesce meanwhile)."""
    revoke_grace_ms: int = option(1_000, at_least=0)
    """How long a revoked partition waits for its in-flight deliveries to settle."""
    buffer_records: int = option(4_096, at_least=1)
    """Fetched records a member holds per partition before it pauses that partition.
    Above what one fetch brings (``max_partition_fetch_bytes``: 2 MiB by default,
    about 4,000 records of 500 bytes): pausing makes the client drop the unread rest
    of the partition's fetch and read it again later."""
    fetch_max_wait_ms: int = option(200, at_least=1)
    """Longest a fetch waits at the broker for records (Kafka answers as soon as one
    arrives; tansu 0.6 only when this expires, so there it is about twice the latency)."""


@dataclass(frozen=True, slots=True)
class KafkaAddress:
    """Where and how to connect."""

    bootstrap: list[str]
    ssl: bool
    username: str | None
    password: str | None
    options: KafkaOptions
    tls: TLSConfig | None = None
    """The shared ``tls_*`` options (servicewire.security.tls): TLS with client certs, verified."""


def parse_kafka_url(url: str) -> KafkaAddress:
    """Parse ``url``; raises :class:`TransportError` naming the (redacted) URL."""
    parsed = KafkaOptions.parse(url)
    parts, tls, options = parsed.parts, parsed.tls, parsed.options
    scheme = parts.scheme.lower()
    if scheme not in ("kafka", "kafka+ssl"):
        raise TransportError(f"not a kafka URL: {redact(url)!r}")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user), unquote(secret)
    hosts = [h.strip() for h in netloc.split(",") if h.strip()]
    if not hosts:
        raise TransportError(f"kafka URL {redact(url)!r} names no broker (kafka://host:9092)")
    bootstrap: list[str] = []
    for host in hosts:
        name, sep, port = host.rpartition(":")
        if not sep:
            name, port = host, "9092"
        if not name or not port.isdigit():
            raise TransportError(f"kafka URL {redact(url)!r}: bad broker address {host!r}")
        bootstrap.append(f"{name}:{port}")
    secure = scheme == "kafka+ssl" or tls is not None
    return KafkaAddress(bootstrap, secure, username, password, options, tls)
