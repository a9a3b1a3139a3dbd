"""URL options of the NATS transport.

Everything after ``?`` in a ``nats://`` or ``tls://`` URL configures the transport; the
rest is handed to nats-py as the server address (several servers: comma-separated)::

    opts = NatsOptions.from_url("nats://app:secret@127.0.0.1:4222?shards=8&history=all")
    opts.servers     # ['nats://app:secret@127.0.0.1:4222']
    opts.shards      # 8

=================  =========  ===========================================================
option             default    meaning
=================  =========  ===========================================================
``shards``         16         subjects (and consumers per group) per channel
``history``        ``new``    ``all``: a new group starts at the first stored message
``ack_wait``       30         seconds before an unsettled delivery is redelivered
``max_age``        604800     seconds a stream keeps messages (``0``: forever)
``replicas``       1          stream replicas (a clustered server needs 3 for HA)
``storage``        ``file``   ``file`` survives a restart; ``memory`` does not
``lease_ttl``      6          seconds a member's lease lives without renewal
``timeout``        10         seconds to wait for a PubAck or a JetStream API reply
``connect_timeout`` 5         seconds to wait for the first connection
``name``           (none)     client name shown by the server's monitoring
``tls_*``          (off)      TLS, verified by default: see :mod:`servicewire.security.tls`
=================  =========  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.security.tls import TLS_OPTIONS, TLSConfig, TLSConfigError, split_tls_options
from servicewire.urls import redact


@dataclass(frozen=True, slots=True)
class NatsOptions:
    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    shards: int = DEFAULT_SHARDS
    history: str = "new"
    ack_wait: float = 30.0
    max_age: float = 7 * 24 * 3600.0
    replicas: int = 1
    storage: str = "file"
    lease_ttl: float = 6.0
    timeout: float = 10.0
    connect_timeout: float = 5.0
    name: str | None = None
    tls: TLSConfig | None = None

    @classmethod
    def from_url(cls, url: str) -> NatsOptions:
        try:
            parts = urlsplit(url)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
        except ValueError as exc:
            raise TransportError(f"invalid NATS URL {redact(url)!r}: {exc}") from None
        servers = _servers(parts.scheme, parts.netloc, url)
        known = (set(cls.__dataclass_fields__) - {"servers"}) | TLS_OPTIONS
        unknown = set(query) - known
        if unknown:
            raise TransportError(
                f"unknown option(s) {', '.join(sorted(unknown))} in NATS URL {redact(url)!r}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            opts = cls(
                servers=servers,
                shards=int(query.get("shards", DEFAULT_SHARDS)),
                history=query.get("history", "new"),
                ack_wait=float(query.get("ack_wait", 30.0)),
                max_age=float(query.get("max_age", 7 * 24 * 3600.0)),
                replicas=int(query.get("replicas", 1)),
                storage=query.get("storage", "file"),
                lease_ttl=float(query.get("lease_ttl", 6.0)),
                timeout=float(query.get("timeout", 10.0)),
                connect_timeout=float(query.get("connect_timeout", 5.0)),
                name=query.get("name") or None,
                tls=TLSConfig.from_query(
                    split_tls_options(query)[0], secure_scheme=parts.scheme == "tls"
                ),
            )
        except TLSConfigError as exc:
            raise TransportError(f"TLS options in NATS URL {redact(url)!r}: {exc}") from None
        except ValueError as exc:
            raise TransportError(f"bad option value in NATS URL {redact(url)!r}: {exc}") from None
        opts._check(url)
        return opts

    def _check(self, url: str) -> None:
        problems = []
        if not 1 <= self.shards <= 1024:
            problems.append("shards must be 1..1024")
        if self.history not in ("new", "all"):
            problems.append("history must be 'new' or 'all'")
        if self.storage not in ("file", "memory"):
            problems.append("storage must be 'file' or 'memory'")
        if self.ack_wait <= 0 or self.lease_ttl <= 0 or self.timeout <= 0:
            problems.append("ack_wait, lease_ttl and timeout must be positive")
        if problems:
            raise TransportError(f"NATS URL {redact(url)!r}: {'; '.join(problems)}")


def _servers(scheme: str, netloc: str, url: str) -> list[str]:
    """``nats://u:p@a:1,b:2`` -> ``['nats://u:p@a:1', 'nats://u:p@b:2']``."""
    if not netloc:
        raise TransportError(f"NATS URL {redact(url)!r} names no server")
    userinfo, _, hosts = netloc.rpartition("@")
    prefix = f"{userinfo}@" if userinfo else ""
    return [urlunsplit((scheme, prefix + host, "", "", "")) for host in hosts.split(",") if host]
