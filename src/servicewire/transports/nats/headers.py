"""Message headers to and from NATS headers (CloudEvents NATS binding, binary mode).

Each Servicewire header (a CloudEvents attribute or extension) travels as a NATS header
named ``ce-<name>``, except ``datacontenttype`` which travels as ``Content-Type``, as in
the CloudEvents HTTP and NATS bindings. Values are percent-encoded where NATS headers
cannot carry them verbatim (non-ASCII, ``%``, ``"``, spaces, control characters), again
as the binding says. ``Nats-Msg-Id`` carries the message id so JetStream drops a
retried publish it already stored. ``destination`` is not sent: the subject names the
channel, and the reader restores it::

    headers = to_nats(message)                       # {'ce-id': ..., 'Content-Type': ...}
    again = from_nats(headers, payload, channel="orders", fallback_id="nats:SW_orders:17")

A *foreign* message (published by a client that knows nothing of Servicewire) keeps its
headers as they are; it gets ``fallback_id`` as id and the channel as destination.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote

from servicewire.messaging import headers as h
from servicewire.messaging.message import Headers, Message

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
    """The NATS headers of ``message`` as a dict (what :func:`header_block` encodes)."""
    out = {MSG_ID: message.id}
    for name, value in message.headers.items():
        if name != h.DESTINATION:
            out[_nats_name(name)] = encode_value(value)
    return out


_BLOCK_START = b"NATS/1.0\r\n"
_NAME_BYTES: dict[str, bytes] = {}


def header_block(message: Message) -> bytes:
    """The NATS header block of ``message`` (``NATS/1.0`` line, one line per header).

    Same content as :func:`to_nats`, built straight into bytes: the publish path sends
    it as is instead of having nats-py validate and re-encode ten headers per message.
    """
    parts = [_BLOCK_START, b"Nats-Msg-Id: ", message.id.encode(), b"\r\n"]
    for name, value in message.headers.items():
        if name == h.DESTINATION:
            continue  # the subject says it; the reader restores it (one header less to parse)
        prefix = _NAME_BYTES.get(name)
        if prefix is None:
            prefix = f"{_nats_name(name)}: ".encode()
            if len(_NAME_BYTES) < 4096:  # header names are few; never grow without bound
                _NAME_BYTES[name] = prefix
        parts.append(prefix)
        parts.append(encode_value(value).encode())
        parts.append(b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


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
    return Message(message_id, Headers.adopt(data), payload)
