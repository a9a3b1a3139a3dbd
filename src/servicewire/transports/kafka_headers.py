"""CloudEvents' Kafka protocol binding (binary content mode) for the Kafka transport.

Every header of a :class:`~servicewire.message.Message` is a CloudEvents attribute; on
Kafka it travels as a record header named ``ce_<attribute>``, except
``datacontenttype``, which is the plain ``content-type`` header. The partition key also
becomes the record key, as the binding asks, so Kafka tooling (compaction, the default
partitioner of other producers) sees it::

    headers, key = to_kafka(message)
    # [("ce_id", b"0193..."), ("content-type", b"application/json"), ...], b"order-17"
    message = from_kafka(headers, payload, fallback_id="orders-3-1042")

Values are UTF-8. Record headers without the ``ce_`` prefix (written by producers that
do not speak CloudEvents) are kept under their own name, so nothing a foreign producer
sent is lost.
"""

from __future__ import annotations

from collections.abc import Iterable

from servicewire import headers as h
from servicewire.message import Headers, Message

PREFIX = "ce_"
CONTENT_TYPE = "content-type"

KafkaHeaders = list[tuple[str, bytes]]


def to_kafka(message: Message) -> tuple[KafkaHeaders, bytes | None]:
    """The record headers and record key for ``message``."""
    out: KafkaHeaders = []
    for name, value in message.headers.items():
        wire = CONTENT_TYPE if name == h.CONTENT_TYPE else PREFIX + name
        out.append((wire, value.encode()))
    key = message.partition_key
    return out, key.encode() if key is not None else None


def from_kafka(
    record_headers: Iterable[tuple[str, bytes]], payload: bytes | None, *, fallback_id: str
) -> Message:
    """Rebuild a message from a record; ``fallback_id`` names records without ``ce_id``."""
    data: dict[str, str] = {}
    for name, raw in record_headers:
        # errors="replace": a foreign producer's non-UTF-8 header must not stop the
        # consumer; the message still reaches the pipeline (and its dead-letter path).
        value = raw.decode("utf-8", errors="replace") if raw is not None else ""
        if name == CONTENT_TYPE:
            data[h.CONTENT_TYPE] = value
        elif name.startswith(PREFIX):
            data[name[len(PREFIX) :]] = value
        else:
            data[name] = value
    message_id = data.get(h.ID) or fallback_id
    return Message(message_id, Headers(data), payload or b"")
