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
``reply_ttl``      60         seconds an instance reply consumer outlives its reader
``timeout``        10         seconds to wait for a PubAck or a JetStream API reply
``connect_timeout`` 5         seconds to wait for the first connection
``name``           (none)     client name shown by the server's monitoring
``tls_*``          (off)      TLS, verified by default: see :mod:`servicewire.security.tls`
=================  =========  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.security.tls import TLSConfig
from servicewire.transports.options import INTERNAL, TransportOptions, option
from servicewire.urls import redact


@dataclass(frozen=True, slots=True)
class NatsOptions(TransportOptions):
    broker: ClassVar[str] = "NATS"

    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"], metadata=INTERNAL)
    shards: int = option(DEFAULT_SHARDS, at_least=1, at_most=1024)
    history: Literal["new", "all"] = "new"
    ack_wait: float = option(30.0, above=0)
    max_age: float = option(7 * 24 * 3600.0, at_least=0)
    replicas: int = option(1, at_least=1)
    storage: Literal["file", "memory"] = "file"
    lease_ttl: float = option(6.0, above=0)
    reply_ttl: float = option(60.0, at_least=1)
    timeout: float = option(10.0, above=0)
    connect_timeout: float = option(5.0, above=0)
    name: str | None = None
    tls: TLSConfig | None = field(default=None, metadata=INTERNAL)

    @classmethod
    def from_url(cls, url: str) -> NatsOptions:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise TransportError(f"invalid NATS URL {redact(url)!r}: {exc}") from None
        servers = _servers(parts.scheme, parts.netloc, url)
        parsed = cls.parse(url, secure_scheme=parts.scheme == "tls", servers=servers)
        return replace(parsed.options, tls=parsed.tls)


def _servers(scheme: str, netloc: str, url: str) -> list[str]:
    """``nats://u:p@a:1,b:2`` -> ``['nats://u:p@a:1', 'nats://u:p@b:2']``."""
    if not netloc:
        raise TransportError(f"NATS URL {redact(url)!r} names no server")
    userinfo, _, hosts = netloc.rpartition("@")
    prefix = f"{userinfo}@" if userinfo else ""
    return [urlunsplit((scheme, prefix + host, "", "", "")) for host in hosts.split(",") if host]
