"""Where the Redis transport keeps things, and how a message becomes a stream entry.

Key layout (``P`` is the ``prefix`` option, default ``sw``; the channel sits in a hash
tag so every key of one channel lands in the same Redis Cluster slot)::

    P:{orders}:s:3                 stream of shard 3 of channel "orders"
    P:{orders}:g:billing:members   sorted set: live members of group "billing" -> expiry (ms)
    P:{orders}:g:billing:lease:3   string: the member that owns shard 3, with a TTL

An instance reply channel (``svc.replies.3f2a``) has one shard stream, which expires
``reply_ttl`` seconds after its reader last renewed it (see docs/transports/redis.md).

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
from dataclasses import dataclass, field, replace
from typing import ClassVar
from urllib.parse import urlencode, urlunsplit

from servicewire.messaging.channels import DEFAULT_SHARDS, shards_of
from servicewire.messaging.message import Headers, Message
from servicewire.security.tls import driver_options
from servicewire.transports.options import INTERNAL, TransportOptions, option

DATA_FIELD = b"data"
HEADER_PREFIX = "ce_"
_HEADER_PREFIX_B = HEADER_PREFIX.encode()

DRIVER_KEYS = frozenset(
    {
        "client_name",
        "db",
        "health_check_interval",
        "max_connections",
        "protocol",
        "retry_on_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_read_size",
        "socket_timeout",
        "ssl_ca_certs",
        "ssl_cert_reqs",
        "ssl_certfile",
        "ssl_check_hostname",
        "ssl_keyfile",
        "ssl_min_version",
        "timeout",
    }
)
"""Query keys redis-py reads from the URL itself (passed on in ``client_url``)."""


@dataclass(frozen=True, slots=True)
class RedisOptions(TransportOptions):
    """Transport options read from the URL's query string (redis-py's own keys go to it)."""

    broker: ClassVar[str] = "redis"
    driver_keys: ClassVar[frozenset[str]] = DRIVER_KEYS

    client_url: str = field(default="redis://127.0.0.1:6379/0", metadata=INTERNAL)
    """The URL for redis-py: our options removed, the ``tls_*`` ones translated."""
    prefix: str = "sw"
    shards: int = option(DEFAULT_SHARDS, at_least=1)
    lease_ttl: float = option(5.0, above=0)
    """Seconds a shard lease (and a member's heartbeat) lives without renewal."""
    heartbeat: float = option(0.25, above=0)
    """Seconds between membership/lease renewals; also how fast shards move."""
    batch: int = option(64, at_least=1)
    """Entries a shard worker reads per round trip (kept locally, handed out one by one)."""
    block: float = option(2.0, above=0)
    """Seconds one blocking read waits for new entries before looping."""
    trim_interval: float = option(10.0, at_least=0)
    """Seconds between a member's safe trims of the shard streams it owns (0 = never):
    ``XTRIM MINID`` below what every group of the stream still needs (:mod:`.trimming`)."""
    maxlen: int = option(0, at_least=0)
    """Hard, lossy cap on each shard stream (``XADD MAXLEN ~``; 0 = none): it drops the
    oldest entries even when a group has not read or acked them yet."""
    persistent: bool | None = None
    """Declared persistence; ``None`` (``auto``) = ask the server (``appendonly``) at connect."""
    reply_ttl: float = option(60.0, at_least=1)
    """Seconds an instance reply stream outlives its last reader (a crashed instance's)."""

    @classmethod
    def from_url(cls, url: str) -> RedisOptions:
        parsed = cls.parse(url)
        parts = parsed.parts
        try:
            if parts.port is not None and not 0 < parts.port < 65536:
                raise ValueError("port out of range")
        except ValueError as exc:
            raise cls.error(url, str(exc)) from None
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise cls.error(url, "scheme must be redis or rediss")
        scheme = parts.scheme
        theirs = list(parsed.driver)
        if parsed.tls is not None:  # rediss: redis-py requires and checks the certificate
            scheme = "rediss"
            names = {"ca": "ssl_ca_certs", "cert": "ssl_certfile", "key": "ssl_keyfile"}
            insecure = [("ssl_cert_reqs", "none"), ("ssl_check_hostname", "false")]
            theirs.extend(driver_options(parsed.tls, names, insecure))
        client_url = urlunsplit(
            (scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment)
        )
        return replace(parsed.options, client_url=client_url)

    def problems(self) -> list[str]:
        if self.heartbeat > self.lease_ttl / 3:
            return ["heartbeat must be at most lease_ttl/3"]
        return []

    # Keys ---------------------------------------------------------------------------------

    def shards_of(self, channel: str) -> int:
        """Shard streams of ``channel``: one for an instance reply channel."""
        return shards_of(channel, self.shards)

    def stream(self, channel: str, shard: int) -> str:
        return f"{self.prefix}:{{{channel}}}:s:{shard}"

    def members(self, channel: str, group: str) -> str:
        return f"{self.prefix}:{{{channel}}}:g:{group}:members"

    def lease(self, channel: str, group: str, shard: int) -> str:
        return f"{self.prefix}:{{{channel}}}:g:{group}:lease:{shard}"


# Header names repeat on every message: each one's field name is built once (bounded,
# since names come from callers).
_FIELD_NAMES: dict[str, str] = {}
_FIELD_NAMES_LIMIT = 4096


def encode_entry(message: Message) -> dict[bytes | str, bytes | str]:
    """The stream fields of ``message``: ``data`` plus ``ce_<header>`` per header."""
    fields: dict[bytes | str, bytes | str] = {}
    names = _FIELD_NAMES
    # view(): plain dict iteration (the Mapping protocol costs more per header, and this
    # runs for every message published).
    for name, value in message.headers.view().items():
        field = names.get(name)
        if field is None:
            field = HEADER_PREFIX + name
            if len(names) < _FIELD_NAMES_LIMIT:
                names[name] = field
        fields[field] = value
    fields[DATA_FIELD] = message.payload
    return fields


# Header fields repeat on every entry: each one's header name is decoded once (bounded).
_ATTRIBUTES: dict[bytes, str] = {}


def _attribute(field: bytes) -> str:
    """The header a ``ce_`` stream field carries, remembered."""
    name = field[3:].decode("utf-8", "replace")
    if len(_ATTRIBUTES) < _FIELD_NAMES_LIMIT:
        _ATTRIBUTES[field] = name
    return name


def decode_entry(entry_id: bytes, fields: Mapping[bytes, bytes]) -> Message:
    """The message in a stream entry; tolerant of entries other writers added.

    An entry without an ``id`` header (written by a foreign producer) takes the
    stream entry id, so it can still be acked and traced.
    """
    headers: dict[str, str] = {}
    attributes = _ATTRIBUTES
    for name, value in fields.items():
        attribute = attributes.get(name)
        if attribute is None:
            if name[:3] != _HEADER_PREFIX_B:
                continue  # the payload, or another writer's own field
            attribute = _attribute(name)
        headers[attribute] = value.decode("utf-8", "replace")
    payload = fields.get(DATA_FIELD, b"")
    message_id = headers.get("id") or entry_id.decode()
    return Message(message_id, Headers.adopt(headers), payload)
