"""A message as SQS carries it: the body and one attribute holding every header.

SQS allows ten message attributes, and an envelope has more headers than that, so all
headers travel as JSON in one ``String`` attribute, ``servicewire-headers`` (ASCII
only: JSON escapes the rest, and SQS refuses some characters in text). The body is the
payload itself when it is text SQS accepts (UTF-8 without the characters XML forbids),
so a consumer in another language reads a JSON event as it is; any other payload is
base64 and says so in the ``servicewire-body`` attribute::

    body, attributes, size = to_sqs(message)
    message = from_sqs(raw, channel="orders")   # raw: one entry of ReceiveMessage

A *foreign* message (sent by a client that knows nothing of Servicewire) has no
``servicewire-headers``: it is delivered with its body as the payload, its ``String``
and ``Number`` attributes as headers under their own names, and the SQS message id as
its id, like the other transports do.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from servicewire.messaging import headers as h
from servicewire.messaging.message import Headers, Message

HEADERS_ATTRIBUTE = "servicewire-headers"
BODY_ATTRIBUTE = "servicewire-body"
# Characters SQS refuses in a message body: outside #x9 #xA #xD #x20-#xD7FF
# #xE000-#xFFFD #x10000-#x10FFFF (the API reference of SendMessage).
_REFUSED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _body(payload: bytes) -> tuple[str, str | None]:
    """The body text and how it encodes the payload (``None``: as it is)."""
    if not payload:
        return " ", "empty"  # SQS refuses an empty body
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode(), "base64"
    if _REFUSED.search(text):
        return base64.b64encode(payload).decode(), "base64"
    return text, None


def to_sqs(message: Message) -> tuple[str, dict[str, dict[str, str]], int]:
    """The body, the message attributes, and the size SQS counts (body + attributes)."""
    body, encoding = _body(message.payload)
    encoded = json.dumps(message.headers.to_dict(), ensure_ascii=True, separators=(",", ":"))
    attributes = {HEADERS_ATTRIBUTE: {"DataType": "String", "StringValue": encoded}}
    size = len(body.encode()) + len(HEADERS_ATTRIBUTE) + len("String") + len(encoded)
    if encoding is not None:
        attributes[BODY_ATTRIBUTE] = {"DataType": "String", "StringValue": encoding}
        size += len(BODY_ATTRIBUTE) + len("String") + len(encoding)
    return body, attributes, size


def from_sqs(raw: Mapping[str, Any], *, channel: str) -> Message:
    """Rebuild the :class:`Message` in ``raw`` (one ``Messages`` entry) read from ``channel``."""
    attributes: Mapping[str, Mapping[str, Any]] = raw.get("MessageAttributes") or {}
    body: str = raw.get("Body", "")
    ours = attributes.get(HEADERS_ATTRIBUTE)
    data: dict[str, str] = {}
    if ours is not None:
        try:
            decoded = json.loads(ours.get("StringValue", "{}"))
        except ValueError:
            decoded = {}
        if isinstance(decoded, dict):
            data = {str(k): str(v) for k, v in decoded.items()}
    else:
        for name, value in attributes.items():
            text = value.get("StringValue")
            if isinstance(text, str):
                data[name] = text  # a foreign attribute: kept under its own name
    encoding = (attributes.get(BODY_ATTRIBUTE) or {}).get("StringValue")
    payload: bytes
    if encoding == "base64":
        try:
            payload = base64.b64decode(body, validate=True)
        except ValueError:
            payload = body.encode()
    elif encoding == "empty":
        payload = b""
    else:
        payload = body.encode()
    message_id = data.get(h.ID) or str(raw.get("MessageId", ""))
    data[h.ID] = message_id
    data.setdefault(h.DESTINATION, channel)
    return Message(message_id, Headers.adopt(data), payload)
