"""Servicewire's own options in an ``amqp://`` URL, split from the ones aio-pika reads.

    amqp://guest:guest@127.0.0.1:5672/?shards=16&delivery_limit=20&heartbeat=30

================  =========  ===========================================================
option            default    meaning
================  =========  ===========================================================
shards            16         shard queues per group (same value in every client!)
queue_type        quorum     ``quorum`` (durable, replicated, delivery count) or ``classic``
delivery_limit    0          quorum only: after this many deliveries the broker
                             dead-letters the message (0: never)
publish_timeout   30         seconds a publish may wait (for a reconnect) before it fails
connect_timeout   10         seconds the first connection attempt may take
reconnect_delay   1          seconds between reconnection attempts
member_interval   1          seconds between membership heartbeats of a group member
member_timeout    3.5        a member silent this long is presumed gone; its shards move
================  =========  ===========================================================

Anything else in the query (``heartbeat``, ``name`` ...) goes to aio-pika. The shared
``tls_*`` options (:mod:`servicewire.security.tls`) switch to ``amqps`` with the server certificate
verified: ``amqp://app:pw@broker:5671/?tls_ca=/etc/ca.pem&tls_cert=c.pem&tls_key=k.pem``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.security.tls import TLSConfig, TLSConfigError, driver_options
from servicewire.urls import redact


@dataclass(frozen=True, slots=True)
class AmqpOptions:
    shards: int = DEFAULT_SHARDS
    queue_type: str = "quorum"
    delivery_limit: int = 0
    publish_timeout: float = 30.0
    connect_timeout: float = 10.0
    reconnect_delay: float = 1.0
    member_interval: float = 1.0
    member_timeout: float = 3.5


_INTS = {"shards", "delivery_limit"}
_FLOATS = {
    "publish_timeout",
    "connect_timeout",
    "reconnect_delay",
    "member_interval",
    "member_timeout",
}


def parse(url: str) -> tuple[str, AmqpOptions]:
    """The URL for aio-pika (our options removed) and our options."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as exc:
        raise TransportError(f"invalid amqp URL {redact(url)!r}: {exc}") from None
    ours: dict[str, int | float | str] = {}
    rest: list[tuple[str, str]] = []
    scheme = parts.scheme
    try:
        tls = TLSConfig.from_query({k: v for k, v in query if k.startswith("tls")})
    except TLSConfigError as exc:
        raise TransportError(f"TLS options in amqp URL {redact(url)!r}: {exc}") from None
    if tls is not None:
        # aiormq verifies amqps connections by default; these only name the files.
        scheme = "amqps"
        names = {"ca": "cafile", "cert": "certfile", "key": "keyfile"}
        rest.extend(driver_options(tls, names, [("no_verify_ssl", "1")]))
    query = [(k, v) for k, v in query if not k.startswith("tls")]
    for key, value in query:
        try:
            if key in _INTS:
                ours[key] = int(value)
            elif key in _FLOATS:
                ours[key] = float(value)
            elif key == "queue_type":
                if value not in ("quorum", "classic"):
                    raise ValueError("use quorum or classic")
                ours[key] = value
            else:
                rest.append((key, value))
        except ValueError as exc:
            raise TransportError(
                f"invalid option {key}={value!r} in amqp URL {redact(url)!r}: {exc}"
            ) from None
    options = AmqpOptions(**ours)  # type: ignore[arg-type]
    if options.shards < 1 or options.shards > 1024:
        raise TransportError(f"shards must be 1..1024 in amqp URL {redact(url)!r}")
    if options.member_timeout <= options.member_interval:
        raise TransportError("member_timeout must exceed member_interval")
    plain = urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return plain, options
