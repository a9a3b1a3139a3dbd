"""A message as a Kinesis record: one ``Data`` blob holding the headers and the payload.

Kinesis records carry no attributes, only ``Data`` and a ``PartitionKey``, so the
envelope travels inside the data: a 4-byte marker, the length of the headers, the
headers as JSON, then the payload as it is::

    data, key = to_record(message)          # b"SWK1" + len + {"id": ...} + payload
    message = from_record(raw, channel="orders", shard="shardId-000000000001")

The partition key is the message's own (Kinesis hashes it to a shard: per-key order);
a message without one gets its id, which spreads such messages over every shard.
Keys over Kinesis' 256 characters are replaced by their SHA-256 (same key, same shard).

A *foreign* record (written by a producer that knows nothing of Servicewire) does not
start with the marker: it is delivered with its data as the payload, its partition key
as the message's, and ``kinesis:<shard>:<sequence>`` as its id, like the other
transports deliver foreign messages (the pipeline dead-letters what it cannot decode,
with the reason). A record that has the marker but broken headers is delivered the
same way.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any

from servicewire.messaging import headers as h
from servicewire.messaging.message import Headers, Message

MARKER = b"SWK1"
_LENGTH = struct.Struct(">I")
_KEY_LIMIT = 256


def record_key(message: Message) -> str:
    """The ``PartitionKey`` of ``message``: its key, or its id when it has none."""
    key = message.partition_key
    if not key:
        key = message.id
    if len(key) > _KEY_LIMIT:
        key = "h-" + hashlib.sha256(key.encode()).hexdigest()
    return key


def to_record(message: Message) -> tuple[bytes, str]:
    """The record data and partition key of ``message``."""
    encoded = json.dumps(
        message.headers.to_dict(), ensure_ascii=False, separators=(",", ":")
    ).encode()
    data = b"".join((MARKER, _LENGTH.pack(len(encoded)), encoded, message.payload))
    return data, record_key(message)


def record_size(data: bytes, key: str) -> int:
    """What Kinesis counts against its 1 MiB record limit."""
    return len(data) + len(key.encode())


def _ours(data: bytes) -> tuple[dict[str, str], bytes] | None:
    if not data.startswith(MARKER) or len(data) < len(MARKER) + _LENGTH.size:
        return None
    start = len(MARKER) + _LENGTH.size
    (length,) = _LENGTH.unpack_from(data, len(MARKER))
    if start + length > len(data):
        return None
    try:
        decoded = json.loads(data[start : start + length])
    except ValueError:
        return None
    if not isinstance(decoded, dict) or not decoded.get(h.ID):
        return None
    return {str(k): str(v) for k, v in decoded.items()}, data[start + length :]


def from_record(raw: Mapping[str, Any], *, channel: str, shard: str) -> Message:
    """Rebuild the :class:`Message` in ``raw`` (one ``Records`` entry of GetRecords)."""
    data: bytes = raw.get("Data", b"")
    ours = _ours(data)
    if ours is not None:
        headers, payload = ours
        headers.setdefault(h.DESTINATION, channel)
        return Message(headers[h.ID], Headers.adopt(headers), payload)
    message_id = f"kinesis:{shard}:{raw.get('SequenceNumber', '')}"
    foreign = {h.ID: message_id, h.DESTINATION: channel}
    key = raw.get("PartitionKey")
    if isinstance(key, str) and key:
        foreign[h.PARTITION_KEY] = key
    return Message(message_id, Headers.adopt(foreign), data)
