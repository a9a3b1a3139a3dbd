"""CloudEvents' Kafka protocol binding (binary content mode) for the Kafka transport.

Every header of a :class:`~servicewire.messaging.message.Message` is a CloudEvents attribute; on
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

from servicewire.messaging import headers as h
from servicewire.messaging.message import Headers, Message

PREFIX = "ce_"
CONTENT_TYPE = "content-type"

KafkaHeaders = list[tuple[str, bytes]]


def to_kafka(message: Message) -> tuple[KafkaHeaders, bytes | None]:
    """The record headers and the record key of ``message``."""
    out: KafkaHeaders = []
    pairs = _PAIRS
    # view(): plain dict iteration; the Mapping protocol costs more per item, and this
    # runs once per published message.
    for name, value in message.headers.view().items():
        values = pairs.get(name)
        pair = values.get(value) if values is not None else None
        out.append(pair if pair is not None else _pair(name, value))
    key = message.partition_key
    return out, key.encode() if key is not None else None


# Most header values repeat from message to message (spec version, source, type, content
# type, destination, kind): each such (name, bytes) pair is built once and shared. Besides
# the encoding, that spares an allocation per header, and with it a share of the garbage
# collector's passes: a publish allocated twice the tracked objects raw aiokafka does,
# and collections were about 40 % of its CPU in benchmarks/transports.py. A name seen with
# more distinct values (an id, a time) stops being cached. Bounded: at most _PAIR_NAMES
# names, _PAIR_VALUES short values each.
_PAIRS: dict[str, dict[str, tuple[str, bytes]]] = {}
_UNCACHED: set[str] = set()
_PAIR_NAMES = 256
_PAIR_VALUES = 32
_PAIR_VALUE_CHARS = 128


def _pair(name: str, value: str) -> tuple[str, bytes]:
    """``name``'s record header carrying ``value``, remembered when it may repeat."""
    pair = (CONTENT_TYPE if name == h.CONTENT_TYPE else PREFIX + name, value.encode())
    if name in _UNCACHED or len(value) > _PAIR_VALUE_CHARS:
        return pair
    values = _PAIRS.get(name)
    if values is None:
        if len(_PAIRS) + len(_UNCACHED) >= _PAIR_NAMES:
            return pair
        values = _PAIRS[name] = {}
    if len(values) < _PAIR_VALUES:
        values[value] = pair
    else:  # a value per message: a cache would only cost
        del _PAIRS[name]
        _UNCACHED.add(name)
    return pair


def _attribute(wire: str) -> str:
    if wire == CONTENT_TYPE:
        return h.CONTENT_TYPE
    if wire.startswith(PREFIX):
        return wire[len(PREFIX) :]
    return wire


# Header names repeat on every record: map each wire name to its attribute once.
_ATTRIBUTES: dict[str, str] = {}
_CACHE_LIMIT = 4096


def _learn(wire: str) -> str:
    """The attribute ``wire`` names, remembered (bounded: names come from producers)."""
    name = _attribute(wire)
    if len(_ATTRIBUTES) < _CACHE_LIMIT:
        _ATTRIBUTES[wire] = name
    return name


def from_kafka(
    record_headers: Iterable[tuple[str, bytes | None]],
    payload: bytes | None,
    *,
    fallback_id: str,
) -> Message:
    """Rebuild a message from a record; ``fallback_id`` names records without ``ce_id``."""
    data: dict[str, str] = {}
    names = _ATTRIBUTES
    for wire, raw in record_headers:
        name = names.get(wire) or _learn(wire)
        if raw is None:
            data[name] = ""
            continue
        # Inline rather than a helper per header (a call per header was a sixth of this
        # function's cost); the try costs nothing until a value is not UTF-8.
        try:
            data[name] = raw.decode()
        except UnicodeDecodeError:
            # A foreign producer's non-UTF-8 header must not stop the consumer; the
            # message still reaches the pipeline (and its dead-letter path).
            data[name] = raw.decode("utf-8", errors="replace")
    message_id = data.get(h.ID) or fallback_id
    return Message(message_id, Headers.adopt(data), payload or b"")
