"""Where the Redis transport keeps things, and how a message becomes a stream entry.

Key layout (``P`` is the ``prefix`` option, default ``sw``; the channel sits in a hash
tag so every key of one channel lands in the same Redis Cluster slot)::

    P:{orders}:s:3                 stream of shard 3 of channel "orders"
    P:{orders}:g:billing:members   sorted set: live members of group "billing" -> expiry (ms)
    P:{orders}:g:billing:lease:3   string: the member that owns shard 3, with a TTL

A stream entry carries the payload in field ``data`` and each header ``h`` in field
``ce_h`` (the CloudEvents binary-mode convention other bindings use), so a consumer in
another language reads our messages with a plain ``XREADGROUP``::

    opts = RedisOptions.from_url("redis://:secret@127.0.0.1:6379/0?shards=8")
    opts.client_url        # 'redis://:secret@127.0.0.1:6379/0' (our options removed)
    fields = encode_entry(message)
    assert decode_entry(b"1-0", fields).id == message.id
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.messaging.message import Headers, Message
from servicewire.security.tls import TLSConfig, TLSConfigError, driver_options
from servicewire.urls import redact

DATA_FIELD = b"data"
HEADER_PREFIX = "ce_"
_HEADER_PREFIX_B = HEADER_PREFIX.encode()

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Transport options read from the URL's query string (the rest goes to redis-py)."""

    client_url: str
    prefix: str = "sw"
    shards: int = DEFAULT_SHARDS
    lease_ttl: float = 5.0
    """Seconds a shard lease (and a member's heartbeat) lives without renewal."""
    heartbeat: float = 0.25
    """Seconds between membership/lease renewals; also how fast shards move."""
    batch: int = 64
    """Entries a shard worker reads per round trip (kept locally, handed out one by one)."""
    block: float = 2.0
    """Seconds one blocking read waits for new entries before looping."""
    maxlen: int = 0
    """Approximate cap on each shard stream (0 = no trimming; trimming can drop unread entries)."""
    persistent: bool | None = None
    """Declared persistence; ``None`` = ask the server (``appendonly``) at connect."""

    @classmethod
    def from_url(cls, url: str) -> RedisOptions:
        try:
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
            if parts.port is not None and not 0 < parts.port < 65536:
                raise ValueError("port out of range")
        except ValueError as exc:
            raise TransportError(f"invalid redis URL {redact(url)!r}: {exc}") from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise TransportError(
                f"invalid redis URL {redact(url)!r}: scheme must be redis or rediss"
            )
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        scheme = parts.scheme
        try:
            tls = TLSConfig.from_query({k: v for k, v in query if k.startswith("tls")})
        except TLSConfigError as exc:
            raise TransportError(f"TLS options in redis URL {redact(url)!r}: {exc}") from None
        if tls is not None:  # rediss: redis-py requires and checks the certificate
            scheme = "rediss"
            names = {"ca": "ssl_ca_certs", "cert": "ssl_certfile", "key": "ssl_keyfile"}
            insecure = [("ssl_cert_reqs", "none"), ("ssl_check_hostname", "false")]
            theirs.extend(driver_options(tls, names, insecure))
        query = [(k, v) for k, v in query if not k.startswith("tls")]
        for name, value in query:
            if name in _OPTION_NAMES:
                ours[name] = value
            else:
                theirs.append((name, value))
        client_url = urlunsplit(
            (scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment)
        )
        try:
            opts = cls(
                client_url=client_url,
                prefix=ours.get("prefix", "sw"),
                shards=int(ours.get("shards", DEFAULT_SHARDS)),
                lease_ttl=float(ours.get("lease_ttl", 5.0)),
                heartbeat=float(ours.get("heartbeat", 0.25)),
                batch=int(ours.get("batch", 64)),
                block=float(ours.get("block", 2.0)),
                maxlen=int(ours.get("maxlen", 0)),
                persistent=_tristate(ours.get("persistent", "auto")),
            )
        except ValueError as exc:
            raise TransportError(f"invalid option in redis URL {redact(url)!r}: {exc}") from None
        if opts.shards < 1 or opts.batch < 1 or opts.lease_ttl <= 0 or opts.block <= 0:
            raise TransportError(
                f"invalid option in redis URL {redact(url)!r}: "
                "shards, batch, lease_ttl and block must be positive"
            )
        if not 0 < opts.heartbeat <= opts.lease_ttl / 3:
            raise TransportError(
                f"invalid option in redis URL {redact(url)!r}: "
                "heartbeat must be at most lease_ttl/3"
            )
        return opts

    # Keys ---------------------------------------------------------------------------------

    def stream(self, channel: str, shard: int) -> str:
        return f"{self.prefix}:{{{channel}}}:s:{shard}"

    def members(self, channel: str, group: str) -> str:
        return f"{self.prefix}:{{{channel}}}:g:{group}:members"

    def lease(self, channel: str, group: str, shard: int) -> str:
        return f"{self.prefix}:{{{channel}}}:g:{group}:lease:{shard}"


_OPTION_NAMES = frozenset(
    {"prefix", "shards", "lease_ttl", "heartbeat", "batch", "block", "maxlen", "persistent"}
)


def _tristate(value: str) -> bool | None:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    if lowered in ("", "auto"):
        return None
    raise ValueError(f"persistent must be yes, no or auto, not {value!r}")


def encode_entry(message: Message) -> dict[bytes | str, bytes | str]:
    """The stream fields of ``message``: ``data`` plus ``ce_<header>`` per header."""
    fields: dict[bytes | str, bytes | str] = {
        HEADER_PREFIX + name: value for name, value in message.headers.items()
    }
    fields[DATA_FIELD] = message.payload
    return fields


def decode_entry(entry_id: bytes, fields: Mapping[bytes, bytes]) -> Message:
    """The message in a stream entry; tolerant of entries other writers added.

    An entry without an ``id`` header (written by a foreign producer) takes the
    stream entry id, so it can still be acked and traced.
    """
    headers = {
        name[3:].decode("utf-8", "replace"): value.decode("utf-8", "replace")
        for name, value in fields.items()
        if name[:3] == _HEADER_PREFIX_B
    }
    payload = fields.get(DATA_FIELD, b"")
    message_id = headers.get("id") or entry_id.decode()
    return Message(message_id, Headers(headers), payload)
