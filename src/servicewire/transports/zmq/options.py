"""How the ZeroMQ transport reads its URL.

URL: ``zmq+tcp://HOST:PORT`` or ``zmq+ipc:///path/to/socket``. The address is the
*rendezvous*: the first node to bind it hosts the directory of who consumes what;
every node registers there, then sends messages straight to the consuming peer::

    opts = ZmqOptions.from_url("zmq+tcp://127.0.0.1:5555?shards=8")
    opts.rendezvous          # 'tcp://127.0.0.1:5555'
    opts.data_endpoint()     # 'tcp://127.0.0.1:*' (this node's own inbox, any free port)

=============  ===========  ==========================================================
option         default      meaning
=============  ===========  ==========================================================
``shards``     16           shards per channel (same value on every node)
``heartbeat``  0.25         seconds between a node's heartbeats to the directory
``timeout``    10           seconds publish waits for the receiving peers' receipts (acks)
``bind``       (see below)  interface of this node's inbox (tcp only)
``advertise``  (see below)  host other nodes dial to reach this node's inbox (tcp only)
=============  ===========  ==========================================================

``bind`` defaults to ``127.0.0.1`` for a loopback rendezvous and ``0.0.0.0`` otherwise;
``advertise`` to ``bind``, or to the rendezvous host when bound to ``0.0.0.0``.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import uuid
from dataclasses import dataclass, field, replace
from typing import ClassVar

from servicewire.messaging.channels import DEFAULT_SHARDS
from servicewire.transports.options import INTERNAL, TransportOptions, option


@dataclass(frozen=True, slots=True)
class ZmqOptions(TransportOptions):
    """Options from the URL query string (the address itself is the rendezvous)."""

    broker: ClassVar[str] = "zmq"
    supports_tls: ClassVar[bool] = False

    scheme: str = field(default="zmq+tcp", metadata=INTERNAL)
    rendezvous: str = field(default="", metadata=INTERNAL)
    shards: int = option(DEFAULT_SHARDS, at_least=1)
    heartbeat: float = option(0.25, above=0)
    """Seconds between a node's heartbeats to the directory; 6 missed = the node is gone."""
    timeout: float = option(10.0, above=0)
    """Seconds publish waits for the receiving peers' receipts (their acks inside
    :func:`~servicewire.transports.handled.confirm_handled`, as outbox relays publish)."""
    bind: str = ""
    """Interface of this node's inbox (tcp); empty: derived from the rendezvous host."""
    advertise: str = ""
    """Host other nodes use to reach this node's inbox (tcp); empty: derived from ``bind``."""

    @classmethod
    def from_url(cls, url: str) -> ZmqOptions:
        parsed = cls.parse(url)
        parts, opts = parsed.parts, parsed.options
        scheme = parts.scheme.lower()
        try:
            if scheme == "zmq+tcp":
                if not parts.hostname or parts.port is None:
                    raise ValueError("zmq+tcp needs host and port, e.g. zmq+tcp://127.0.0.1:5555")
                host = parts.hostname
                bind = opts.bind or ("127.0.0.1" if _is_loopback(host) else "0.0.0.0")
                return replace(
                    opts,
                    scheme=scheme,
                    rendezvous=f"tcp://{_bracket(host)}:{parts.port}",
                    bind=bind,
                    advertise=opts.advertise or (bind if bind != "0.0.0.0" else host),
                )
            if scheme == "zmq+ipc":
                path = (parts.netloc + parts.path) or ""
                if not path.startswith("/"):
                    raise ValueError("zmq+ipc needs an absolute path, e.g. zmq+ipc:///tmp/sw.sock")
                rendezvous = f"ipc://{path}"
                return replace(opts, scheme=scheme, rendezvous=rendezvous, bind="", advertise="")
            raise ValueError("scheme must be zmq+tcp or zmq+ipc")
        except ValueError as exc:
            raise cls.error(url, str(exc)) from None

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
