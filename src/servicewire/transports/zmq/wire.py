"""What the ZeroMQ transport puts on the wire, and how its URL is read.

URL: ``zmq+tcp://HOST:PORT`` or ``zmq+ipc:///path/to/socket``. The address is the
*rendezvous*: the first node to bind it hosts the directory of who consumes what;
every node registers there, then sends messages straight to the consuming peer::

    opts = ZmqOptions.from_url("zmq+tcp://127.0.0.1:5555?shards=8")
    opts.rendezvous          # 'tcp://127.0.0.1:5555'
    opts.data_endpoint()     # 'tcp://127.0.0.1:*' (this node's own inbox, any free port)

Frames between peers (a DEALER per peer on the sending side, one ROUTER per node on
the receiving side; ``TAG`` is the sender's 8-byte number for one transmission)::

    sender -> receiver   M  member  TAG  attempt  headers(JSON)  payload
    receiver -> sender   R  TAG*            receipts: the peer holds these messages now
    receiver -> sender   A  TAG*            acks: handled, forget them
    receiver -> sender   X  (TAG attempt)*  returned unhandled: route them elsewhere
"""

from __future__ import annotations

import ipaddress
import json
import os
import struct
import tempfile
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from servicewire.errors import TransportError
from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.messaging.message import Headers, Message
from servicewire.urls import redact

MSG = b"M"
RECEIPT = b"R"
ACK = b"A"
RETURN = b"X"

_TAG = struct.Struct(">Q")
_TAG_ATTEMPT = struct.Struct(">QI")


@dataclass(frozen=True, slots=True)
class ZmqOptions:
    """Options from the URL query string (the address itself is the rendezvous)."""

    scheme: str
    rendezvous: str
    shards: int = DEFAULT_SHARDS
    heartbeat: float = 0.25
    """Seconds between a node's heartbeats to the directory; 6 missed = the node is gone."""
    timeout: float = 10.0
    """Seconds publish waits for the receiving peers' receipts."""
    bind: str = "127.0.0.1"
    """Interface of this node's inbox (tcp)."""
    advertise: str = "127.0.0.1"
    """Host other nodes use to reach this node's inbox (tcp)."""

    @classmethod
    def from_url(cls, url: str) -> ZmqOptions:
        try:
            parts = urlsplit(url)
            query = dict(parse_qsl(parts.query))
            scheme = parts.scheme.lower()
            if scheme == "zmq+tcp":
                if not parts.hostname or parts.port is None:
                    raise ValueError("zmq+tcp needs host and port, e.g. zmq+tcp://127.0.0.1:5555")
                host = parts.hostname
                rendezvous = f"tcp://{_bracket(host)}:{parts.port}"
                loopback = _is_loopback(host)
                bind = query.get("bind", "127.0.0.1" if loopback else "0.0.0.0")
                advertise = query.get("advertise", bind if bind != "0.0.0.0" else host)
            elif scheme == "zmq+ipc":
                path = (parts.netloc + parts.path) or ""
                if not path.startswith("/"):
                    raise ValueError("zmq+ipc needs an absolute path, e.g. zmq+ipc:///tmp/sw.sock")
                rendezvous, bind, advertise = f"ipc://{path}", "", ""
            else:
                raise ValueError("scheme must be zmq+tcp or zmq+ipc")
            opts = cls(
                scheme=scheme,
                rendezvous=rendezvous,
                shards=int(query.get("shards", DEFAULT_SHARDS)),
                heartbeat=float(query.get("heartbeat", 0.25)),
                timeout=float(query.get("timeout", 10.0)),
                bind=bind,
                advertise=advertise,
            )
        except ValueError as exc:
            raise TransportError(f"invalid zmq URL {redact(url)!r}: {exc}") from None
        if opts.shards < 1 or opts.heartbeat <= 0 or opts.timeout <= 0:
            raise TransportError(
                f"invalid zmq URL {redact(url)!r}: shards, heartbeat and timeout must be positive"
            )
        return opts

    def data_endpoint(self) -> str:
        """Where this node binds its inbox (a free port, or a fresh ipc path)."""
        if self.scheme == "zmq+tcp":
            return f"tcp://{_bracket(self.bind)}:*"
        directory = os.path.dirname(self.rendezvous[len("ipc://") :]) or tempfile.gettempdir()
        return f"ipc://{directory}/sw-node-{uuid.uuid4().hex[:12]}.sock"

    def advertised(self, bound: str) -> str:
        """The address peers dial for an inbox bound at ``bound`` (its LAST_ENDPOINT)."""
        if self.scheme != "zmq+tcp":
            return bound
        port = bound.rsplit(":", 1)[1]
        return f"tcp://{_bracket(self.advertise)}:{port}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Frames ----------------------------------------------------------------------------------


def encode_message(member: bytes, tag: int, attempt: int, message: Message) -> list[bytes]:
    headers = json.dumps(message.headers.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return [MSG, member, _TAG.pack(tag), str(attempt).encode(), headers.encode(), message.payload]


def decode_message(frames: list[bytes]) -> tuple[bytes, int, int, Message]:
    """(member, tag, attempt, message) from an ``M`` frame set (without the kind frame)."""
    member, tag, attempt, headers, payload = frames
    data: dict[str, str] = json.loads(headers)
    return member, _TAG.unpack(tag)[0], int(attempt), Message(data["id"], Headers(data), payload)


def pack_tags(tags: list[int]) -> bytes:
    return b"".join(_TAG.pack(t) for t in tags)


def unpack_tags(blob: bytes) -> list[int]:
    return [t for (t,) in _TAG.iter_unpack(blob)]


def pack_returns(items: list[tuple[int, int]]) -> bytes:
    return b"".join(_TAG_ATTEMPT.pack(tag, attempt) for tag, attempt in items)


def unpack_returns(blob: bytes) -> list[tuple[int, int]]:
    return list(_TAG_ATTEMPT.iter_unpack(blob))
