"""Message <-> AMQP 0-9-1 properties, after a CloudEvents protocol binding.

Binary content mode: the payload is the AMQP body, ``id`` is also the ``message-id``
property, ``datacontenttype`` is ``content-type``, and every other header travels as an
application header whose name depends on ``naming`` (the ``ce_headers`` URL option):

- ``amqp`` (default): ``cloudEvents:<attribute>``, the CloudEvents AMQP binding's naming
  (``cloudevents.core.bindings.amqp`` reads it);
- ``rabbitmq``: ``ce-<attribute>``, the RabbitMQ binding of Knative eventing-rabbitmq
  (``cloudevents.core.bindings.rabbitmq`` reads it);
- ``both``: both sets, for readers of either kind (about 40 % more encoding work and
  270 more bytes per message than one set; docs/transports/amqp.md).

Messages are persistent (``delivery-mode 2``)::

    body, props = encode(message, "rabbitmq")
    again = decode(body, props, channel="orders")   # same id, headers and payload

:func:`decode` reads every naming (``cloudEvents:``, ``cloudEvents_``, ``ce-``). A
message from a foreign producer (none of them, maybe no message-id) still decodes: its
plain AMQP properties fill the standard headers it lacks, its own application headers
are kept under their names, and it gets an id if it has none.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

from pamqp.commands import Basic

from servicewire.messaging import headers as h
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Headers, Message

PREFIX = "cloudEvents:"
"""Application-header prefix the CloudEvents AMQP binding gives every attribute."""
_ALT_PREFIX = "cloudEvents_"  # the binding's alternative spelling, accepted on input
_PREFIX_LEN = len(PREFIX)
RABBITMQ_PREFIX = "ce-"
"""Header prefix of the RabbitMQ binding (Knative eventing-rabbitmq, the CloudEvents SDK)."""

Naming = Literal["amqp", "rabbitmq", "both"]
"""Which application-header names :func:`encode` writes (the ``ce_headers`` URL option)."""

HANDOVER = "x-sw-handover"
"""Application header of the marker a member puts into a shard queue to hand it over."""

ATTEMPT_HEADER = PREFIX + h.ATTEMPT
"""Application header of a copy a member gave back: the attempt its first delivery is."""

_PERSISTENT = 2
# Header names are few and repeat on every message: build each prefixed name once.
_prefixed: dict[str, str] = {}
_rabbitmq: dict[str, str] = {}


def _prefixed_name(name: str, prefix: str = PREFIX, names: dict[str, str] = _prefixed) -> str:
    full = names.get(name)
    if full is None:
        if len(names) < 4096:  # bounded: names come from messages
            full = names[name] = prefix + name
        else:
            full = prefix + name
    return full


def encode(message: Message, naming: Naming = "amqp") -> tuple[bytes, Basic.Properties]:
    """The AMQP body and properties of ``message``, its headers named after ``naming``."""
    headers = message.headers.view()  # a plain mapping: iterates at C speed
    app: dict[str, Any] = {}
    # ``id`` is a header too: neither binding reads the message-id property.
    if naming != "rabbitmq":
        for name, value in headers.items():
            if name != h.CONTENT_TYPE:
                app[_prefixed_name(name)] = value
    if naming != "amqp":
        for name, value in headers.items():
            if name != h.CONTENT_TYPE:
                app[_prefixed_name(name, RABBITMQ_PREFIX, _rabbitmq)] = value
    props = WireProperties(
        content_type=headers.get(h.CONTENT_TYPE),
        message_id=message.id,
        delivery_mode=_PERSISTENT,
        headers=app,
    )
    return message.payload, props


_LENGTH = struct.Struct(">I")
_FLAGS = Basic.Properties.flags
_WRITTEN = ("content_type", "headers", "delivery_mode", "message_id")  # by WireProperties
_OTHERS = tuple(name for name in Basic.Properties.__slots__ if name not in _WRITTEN)
# Encoded table keys with their value's type tag: b"<len><name>S", built once per name.
_table_keys: dict[str, bytes] = {}


class WireProperties(Basic.Properties):
    """``Basic.Properties`` that marshal what :func:`encode` sets in one pass.

    pamqp's generic marshal walks all 14 properties and dispatches every header value
    on its type: for the envelope's ten text headers, 14.7 µs of encoding against 7.0
    (benchmarks/amqp_headers.py). Anything this fast path does not cover (another
    property set, a value that is not text, a long name) goes through pamqp; a test
    checks that both write the same bytes::

        assert WireProperties(headers={"a": "b"}).marshal() == Basic.Properties(
            headers={"a": "b"}
        ).marshal()
    """

    # No __slots__ of its own: pamqp walks ``self.__slots__`` to marshal, compare and
    # unmarshal, and an empty tuple here would hide the 14 properties from it.

    def marshal(self) -> bytes:
        wire = _marshal(self)
        return super().marshal() if wire is None else wire


def _marshal(props: Basic.Properties) -> bytes | None:
    for name in _OTHERS:
        value = getattr(props, name)
        if value is not None and value != "":  # pamqp writes neither (cluster_id is "")
            return None
    content_type, headers = props.content_type, props.headers
    message_id, mode = props.message_id, props.delivery_mode
    flags = 0
    parts: list[bytes] = []
    if content_type:
        if (short := _short(content_type)) is None:
            return None
        flags |= _FLAGS["content_type"]
        parts.append(short)
    if headers is not None:  # pamqp writes an empty table as such
        if (table := _table(headers)) is None:
            return None
        flags |= _FLAGS["headers"]
        parts.append(table)
    if mode is not None:
        if type(mode) is not int or not 0 <= mode <= 255:
            return None
        flags |= _FLAGS["delivery_mode"]
        parts.append(bytes((mode,)))
    if message_id:
        if (short := _short(message_id)) is None:
            return None
        flags |= _FLAGS["message_id"]
        parts.append(short)
    return flags.to_bytes(2, "big") + b"".join(parts)


def _short(value: Any) -> bytes | None:
    if type(value) is not str:
        return None
    data = value.encode()
    return bytes((len(data),)) + data if len(data) <= 255 else None


def _table(table: Any) -> bytes | None:
    if type(table) is not dict:
        return None
    parts: list[bytes] = []
    for name in sorted(table):  # pamqp's order, so both write the same bytes
        value = table[name]
        key = _table_keys.get(name) if type(value) is str else None
        if key is None:
            if type(value) is not str or type(name) is not str:
                return None
            encoded = name.encode()
            if len(encoded) > 128:  # pamqp truncates such names: leave it to pamqp
                return None
            key = bytes((len(encoded),)) + encoded + b"S"
            if len(_table_keys) < 4096:  # bounded: names come from messages
                _table_keys[name] = key
        data = value.encode()
        parts.append(key + _LENGTH.pack(len(data)) + data)
    body = b"".join(parts)
    return _LENGTH.pack(len(body)) + body


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def decode(body: bytes, props: Basic.Properties, channel: str) -> Message:
    """The :class:`Message` carried by an AMQP delivery read from ``channel``."""
    data: dict[str, str] = {}
    app = props.headers
    foreign = True
    if app:
        for name, value in app.items():
            if name.startswith(PREFIX) or name.startswith(_ALT_PREFIX):
                data[name[_PREFIX_LEN:]] = value if isinstance(value, str) else _text(value)
                foreign = False
            elif name.startswith(RABBITMQ_PREFIX):
                data[name[3:]] = value if isinstance(value, str) else _text(value)
                foreign = False
            elif not name.startswith("x-"):  # x-*: broker bookkeeping, not the sender's
                data[name] = _text(value)
    if foreign:
        _fill_from_properties(data, props)
    message_id = props.message_id or data.get(h.ID) or new_id()
    data[h.ID] = message_id
    content_type = props.content_type
    if content_type:
        data[h.CONTENT_TYPE] = content_type
    elif h.CONTENT_TYPE not in data:
        data[h.CONTENT_TYPE] = "application/octet-stream"
    if h.DESTINATION not in data:
        data[h.DESTINATION] = channel
    if app and "x-death" in app:
        _note_dead_letter(data, app["x-death"], channel)
    return Message(message_id, Headers.adopt(data), body)


def _fill_from_properties(data: dict[str, str], props: Basic.Properties) -> None:
    """Standard headers from plain AMQP properties, for producers that are not ours."""
    pairs = (
        (h.CORRELATION_ID, props.correlation_id),
        (h.REPLY_TO, props.reply_to),
        (h.TYPE, props.message_type),
        (h.SOURCE, props.app_id),
    )
    for name, value in pairs:
        if value and name not in data:
            data[name] = value
    if props.timestamp is not None and h.TIME not in data:
        data[h.TIME] = props.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _note_dead_letter(data: dict[str, str], deaths: Any, channel: str) -> None:
    """Say why the broker dead-lettered a message, in the pipeline's ``dlq*`` headers."""
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], dict):
        return
    last = deaths[0]  # the broker keeps the most recent death first
    reason = _text(last.get("reason", "rejected"))
    queue = _text(last.get("queue", ""))
    original = data.get(h.DESTINATION, "")
    parts = queue.split("/")
    data.setdefault(h.DLQ_REASON, f"dead-lettered by the broker ({reason}) from queue {queue}")
    data.setdefault(h.DLQ_CHANNEL, original or parts[0])
    if len(parts) >= 3:
        data.setdefault(h.DLQ_GROUP, parts[1])
    data[h.DESTINATION] = channel


def attempt_of(props: Basic.Properties, deliver: Basic.Deliver) -> int:
    """``Delivery.attempt`` of an AMQP delivery (1 on the first).

    The broker counts its own redeliveries: a quorum queue's ``x-delivery-count``, or
    only the ``redelivered`` flag on a classic queue (and on a quorum queue since
    RabbitMQ 4.3 counts no requeue). A copy a member gave back with
    :data:`ATTEMPT_HEADER` = n starts at attempt n and adds the broker's count of its
    own redeliveries::

        attempt_of(props_with({"cloudEvents:deliveryattempt": "3"}), redelivered)  # 3, or 4
    """
    headers = props.headers
    count = headers.get("x-delivery-count") if headers else None
    if isinstance(count, int):
        redeliveries = count
    else:
        redeliveries = 1 if deliver.redelivered else 0
    carried = headers.get(ATTEMPT_HEADER) if headers else None
    if carried is None:
        return 1 + redeliveries
    try:
        first = int(_text(carried))
    except ValueError:
        first = 1
    return max(1, first) + redeliveries
