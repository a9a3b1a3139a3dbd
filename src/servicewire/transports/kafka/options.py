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

from dataclasses import dataclass, fields
from urllib.parse import parse_qsl, unquote, urlsplit

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.security.tls import TLSConfig, TLSConfigError
from servicewire.urls import redact


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    """Everything the URL can set; defaults suit a production cluster."""

    partitions: int = DEFAULT_SHARDS
    """Partitions of each topic the transport creates (the channel's shards)."""
    replication: int = 1
    """Replication factor of created topics (set 3 on a real cluster)."""
    client_id: str = "servicewire"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    max_poll_interval_ms: int = 300_000
    rebalance_timeout_ms: int = 30_000
    request_timeout_ms: int = 30_000
    connect_timeout_ms: int = 10_000
    linger_ms: int = 2
    idempotence: str = "auto"
    """``auto`` (use it when the broker grants a producer id), ``true`` or ``false``."""
    topic_prefix: str = ""
    cafile: str = ""
    sasl_mechanism: str = "PLAIN"
    commit_interval_ms: int = 50
    """Least time between two offset commits of one member (they coalesce meanwhile)."""
    revoke_grace_ms: int = 1_000
    """How long a revoked partition waits for its in-flight deliveries to settle."""


_INT_FIELDS = {f.name for f in fields(KafkaOptions) if f.type in ("int", int)}
_KNOWN = {f.name for f in fields(KafkaOptions)}


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
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise TransportError(f"invalid kafka URL {redact(url)!r}: {exc}") from None
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
    values: dict[str, object] = {}
    query = parse_qsl(parts.query, keep_blank_values=True)
    try:
        tls = TLSConfig.from_query({k: v for k, v in query if k.startswith("tls")})
    except TLSConfigError as exc:
        raise TransportError(f"TLS options in kafka URL {redact(url)!r}: {exc}") from None
    for key, value in query:
        if key.startswith("tls"):
            continue
        if key not in _KNOWN:
            known = ", ".join(sorted(_KNOWN))
            raise TransportError(f"kafka URL {redact(url)!r}: unknown option {key!r} ({known})")
        if key in _INT_FIELDS:
            try:
                values[key] = int(value)
            except ValueError:
                raise TransportError(
                    f"kafka URL {redact(url)!r}: option {key} needs an integer, got {value!r}"
                ) from None
        else:
            values[key] = value
    options = KafkaOptions(**values)  # type: ignore[arg-type]
    if options.idempotence not in ("auto", "true", "false"):
        raise TransportError(f"kafka URL {redact(url)!r}: idempotence is auto, true or false")
    if options.partitions < 1:
        raise TransportError(f"kafka URL {redact(url)!r}: partitions must be at least 1")
    secure = scheme == "kafka+ssl" or tls is not None
    return KafkaAddress(bootstrap, secure, username, password, options, tls)
