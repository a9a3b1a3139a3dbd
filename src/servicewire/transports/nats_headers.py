"""Message headers to and from NATS headers (CloudEvents NATS binding, binary mode).

Each Servicewire header (a CloudEvents attribute or extension) travels as a NATS header
named ``ce-<name>``, except ``datacontenttype`` which travels as ``Content-Type``, as in
the CloudEvents HTTP and NATS bindings. Values are percent-encoded where NATS headers
cannot carry them verbatim (non-ASCII, ``%``, ``"``, spaces, control characters), again
as the binding says. ``Nats-Msg-Id`` carries the message id so JetStream drops a
retried publish it already stored::

    headers = to_nats(message)                       # {'ce-id': ..., 'Content-Type': ...}
    again = from_nats(headers, payload, channel="orders", fallback_id="nats:SW_orders:17")

A *foreign* message (published by a client that knows nothing of Servicewire) keeps its
headers as they are; it gets ``fallback_id`` as id and the channel as destination.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

from servicewire import headers as h
from servicewire.message import Headers, Message

CE_PREFIX = "ce-"
CONTENT_TYPE = "Content-Type"
MSG_ID = "Nats-Msg-Id"

# Printable ASCII except space, '"' and '%' passes as is (CloudEvents HTTP binding 3.1.3.2).
_NEEDS_QUOTE = re.compile(r"[^\x21\x23\x24\x26-\x7e]")
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')

# Per-name cache of the NATS header name: building the f-string per message shows up
# in the publish profile.
_NAMES: dict[str, str] = {h.CONTENT_TYPE: CONTENT_TYPE}


def _nats_name(name: str) -> str:
    nats_name = _NAMES.get(name)
    if nats_name is None:
        nats_name = _NAMES[name] = CE_PREFIX + name
    return nats_name


def encode_value(value: str) -> str:
    """``value`` percent-encoded where a NATS header cannot carry it verbatim."""
    if _NEEDS_QUOTE.search(value) is None:
        return value
    return quote(value, safe=_SAFE)


def to_nats(message: Message) -> dict[str, str]:
    """The NATS headers of ``message``."""
    out = {MSG_ID: message.id}
    for name, value in message.headers.items():
        out[_nats_name(name)] = encode_value(value)
    return out


def wire_size(headers: Mapping[str, str], payload: bytes) -> int:
    """Bytes the server counts against ``max_payload``: header block plus payload."""
    size = 12  # "NATS/1.0\r\n" ... "\r\n"
    for name, value in headers.items():
        size += len(name) + len(value.encode()) + 4  # ": " and "\r\n"
    return size + len(payload)


def from_nats(
    headers: Mapping[str, str] | None, payload: bytes, *, channel: str, fallback_id: str
) -> Message:
    """Rebuild a :class:`Message` from a NATS message of ``channel``."""
    data: dict[str, str] = {}
    foreign_id: str | None = None
    if headers:
        for name, value in headers.items():
            lower = name.lower()
            if lower.startswith(CE_PREFIX):
                data[name[3:]] = unquote(value) if "%" in value else value
            elif lower == "content-type":
                data[h.CONTENT_TYPE] = value
            elif lower == "nats-msg-id":
                foreign_id = value
            else:
                data[name] = value  # a foreign header: kept under its own name
    message_id = data.get(h.ID) or foreign_id or fallback_id
    data[h.ID] = message_id
    data.setdefault(h.DESTINATION, channel)
    return Message(message_id, Headers(data), payload)
