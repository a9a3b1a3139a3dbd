"""A message as a STOMP frame: the payload is the body, each header ``h`` is ``ce_h``.

STOMP has no CloudEvents binding; we use the ``ce_`` prefix the Redis transport uses,
so the STOMP headers our frames need (``destination``, ``content-type``,
``message-id`` ...) never meet ours, and a consumer in another language reads our
headers as plain frame headers (ActiveMQ keeps them as message properties).
``JMSXGroupID`` carries the partition key: ActiveMQ delivers each group to one
consumer at a time, in order (message groups). ``persistent: true`` makes ActiveMQ
store the message before it sends the receipt that :meth:`StompTransport.publish`
waits for::

    frame_headers = encode(message)
    assert decode(frame_headers, body, "orders").id == message.id
"""

from __future__ import annotations

from collections.abc import Mapping

from servicewire.messaging import headers as h
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Headers, Message

PREFIX = "ce_"
GROUP_HEADER = "JMSXGroupID"
"""ActiveMQ's message group header: one consumer at a time per value, in order."""


def encode(message: Message) -> dict[str, str]:
    """The SEND frame headers for ``message`` (its body is the payload)."""
    frame = {PREFIX + name: value for name, value in message.headers.items()}
    frame["persistent"] = "true"
    key = message.partition_key
    if key is not None:
        frame[GROUP_HEADER] = key
    return frame


# Frame headers the broker or STOMP itself sets: bookkeeping, not the sender's headers.
_BOOKKEEPING = frozenset(
    {
        "ack",
        "content-length",
        "destination",
        "expires",
        "JMSXGroupID",
        "JMSXGroupSeq",
        "message-id",
        "original-destination",
        "originalExpiration",
        "persistent",
        "priority",
        "redelivered",
        "subscription",
        "timestamp",
    }
)

_STOMP_TO_OURS = (("content-type", h.CONTENT_TYPE), ("correlation-id", h.CORRELATION_ID))


def decode(frame: Mapping[str, str], body: bytes, channel: str) -> Message:
    """The message a MESSAGE frame read from ``channel`` carries.

    A frame another producer sent (no ``ce_`` headers) is delivered too: its own headers
    as they are, the broker's ``message-id`` as its id, STOMP's ``content-type`` and
    ``correlation-id`` as ours.
    """
    data = {name[len(PREFIX) :]: value for name, value in frame.items() if name.startswith(PREFIX)}
    if not data:
        data = {n: v for n, v in frame.items() if n not in _BOOKKEEPING and not n.startswith("_")}
        for theirs, ours in _STOMP_TO_OURS:
            if theirs in data:
                data[ours] = data.pop(theirs)
        data.setdefault(h.CONTENT_TYPE, "application/octet-stream")
    message_id = data.get(h.ID) or frame.get("message-id") or new_id()
    data.setdefault(h.DESTINATION, channel)
    return Message(message_id, Headers.adopt(data), body)


def attempt_of(message: Message, frame: Mapping[str, str]) -> int:
    """Which attempt this delivery is: the count a give-back copy carries (else 1), plus
    one when ActiveMQ says it delivered this very message before (``redelivered``)."""
    try:
        carried = max(1, int(message.headers.get(h.ATTEMPT, "1")))
    except ValueError:
        carried = 1
    return carried + (1 if frame.get("redelivered") == "true" else 0)
