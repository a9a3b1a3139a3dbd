"""Our envelope in CloudEvents 1.0 *binary content mode*, for each protocol binding.

A message's headers already are CloudEvents context attributes (see
:mod:`servicewire.messaging.headers`), so a binding only renames them: it adds the binding's
prefix to every attribute and moves ``datacontenttype`` to the protocol's own
content-type field. The payload travels untouched as the event data::

    headers, body = to_binding(message, "kafka")
    # {"ce_id": b"0193...", "ce_type": b"ftgo.order.CreateOrder", ...,
    #  "content-type": b"application/json"}
    same = from_binding("kafka", headers, body)          # == message

=========  =================  ===========================  ================================
binding    attribute prefix   datacontenttype goes to      header values
=========  =================  ===========================  ================================
``amqp``   ``cloudEvents:``   ``content-type`` property    ``str`` (application properties)
``kafka``  ``ce_``            ``content-type`` header      UTF-8 ``bytes``
``nats``   ``ce-``            ``Content-Type`` header      ``str``, percent-encoded
``http``   ``ce-``            ``Content-Type`` header      ``str``, percent-encoded
=========  =================  ===========================  ================================

Readers accept the AMQP binding's newer ``cloudEvents_`` prefix too, and read HTTP/NATS
header names case-insensitively. A transport maps the returned dict onto its client's
message object (for AMQP: ``content-type`` -> the ``content_type`` property, the rest
-> application headers). See docs/envelope.md for the full table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, get_args
from urllib.parse import quote, unquote

from servicewire.errors import DecodeError, EncodeError
from servicewire.messaging import headers as h
from servicewire.messaging.message import Headers, Message

__all__ = ["BINDINGS", "Binding", "from_binding", "to_binding"]

Binding = Literal["amqp", "kafka", "nats", "http"]
BINDINGS: Final[tuple[str, ...]] = get_args(Binding)

AMQP_PREFIX: Final = "cloudEvents:"
AMQP_PREFIX_ALT: Final = "cloudEvents_"
KAFKA_PREFIX: Final = "ce_"
HTTP_PREFIX: Final = "ce-"

_CONTENT_TYPE: Final[dict[str, str]] = {
    "amqp": "content-type",
    "kafka": "content-type",
    "nats": "Content-Type",
    "http": "Content-Type",
}

# HTTP binding 3.1.3.2: printable ASCII except space, double quote and percent is sent
# as is; everything else is percent-encoded as UTF-8. NATS headers share the rules.
_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')

_REQUIRED: Final = (h.ID, h.SOURCE, h.SPEC_VERSION, h.TYPE)


def _check_binding(binding: str) -> None:
    if binding not in BINDINGS:
        raise ValueError(f"unknown CloudEvents binding {binding!r}; expected one of {BINDINGS}")


def to_binding(message: Message, binding: Binding) -> tuple[dict[str, str | bytes], bytes]:
    """``(headers, body)`` of ``message`` in ``binding``'s binary content mode.

    Raises :class:`EncodeError` when the message lacks a CloudEvents required attribute
    (``type`` is the one a hand-built message may leave empty).
    """
    _check_binding(binding)
    attrs = message.headers.to_dict()
    attrs.setdefault(h.SPEC_VERSION, h.CLOUDEVENTS_SPEC_VERSION)
    attrs.setdefault(h.SOURCE, "servicewire")
    missing = [name for name in _REQUIRED if not attrs.get(name)]
    if missing:
        raise EncodeError(
            f"message {message.id} lacks CloudEvents required attribute(s) {', '.join(missing)}"
        )
    out: dict[str, str | bytes] = {}
    content_type = attrs.pop(h.CONTENT_TYPE, None)
    if binding == "amqp":
        for name, value in attrs.items():
            out[AMQP_PREFIX + name] = value
    elif binding == "kafka":
        for name, value in attrs.items():
            out[KAFKA_PREFIX + name] = value.encode("utf-8")
    else:
        for name, value in attrs.items():
            out[HTTP_PREFIX + name] = quote(value, safe=_SAFE)
    if content_type is not None:
        ct_key = _CONTENT_TYPE[binding]
        out[ct_key] = content_type.encode("utf-8") if binding == "kafka" else content_type
    return out, message.payload


def from_binding(binding: Binding, headers: Mapping[str, str | bytes], body: bytes) -> Message:
    """The message carried by a binary-mode CloudEvent of ``binding``.

    Headers without the binding's prefix (other than the content type) are not
    CloudEvents attributes and are left out. A missing ``id`` or an undecodable value
    raises :class:`DecodeError` naming the binding and the header.
    """
    _check_binding(binding)
    fmt = f"cloudevents-{binding}"
    attrs: dict[str, str] = {}
    for key, raw in headers.items():
        name = _attribute_name(binding, key)
        if name is None:
            continue
        try:
            value = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else str(raw)
            if binding in ("nats", "http"):
                value = unquote(value, errors="strict")
        except UnicodeDecodeError as exc:
            raise DecodeError("CloudEvent", fmt, f"not UTF-8: {exc}", field=key) from None
        attrs[name] = value
    message_id = attrs.get(h.ID)
    if not message_id:
        raise DecodeError("CloudEvent", fmt, "missing the required attribute 'id'", field=h.ID)
    return Message(message_id, Headers.adopt(attrs), bytes(body))


def _attribute_name(binding: str, key: str) -> str | None:
    """The CloudEvents attribute a header carries, or ``None`` for other headers."""
    if binding == "amqp":
        for prefix in (AMQP_PREFIX, AMQP_PREFIX_ALT):
            if key.startswith(prefix):
                return key[len(prefix) :]
        return h.CONTENT_TYPE if key.lower() in ("content-type", "content_type") else None
    if binding == "kafka":
        if key.startswith(KAFKA_PREFIX):
            return key[len(KAFKA_PREFIX) :]
        return h.CONTENT_TYPE if key.lower() == "content-type" else None
    lowered = key.lower()
    if lowered.startswith(HTTP_PREFIX):
        return lowered[len(HTTP_PREFIX) :]
    return h.CONTENT_TYPE if lowered == "content-type" else None
