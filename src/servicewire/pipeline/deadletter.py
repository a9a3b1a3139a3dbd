"""Dead letters: messages that cannot be handled, kept with the reason, for people to act on.

A dead letter is the original message (same id, headers and payload) sent to
``<channel>.dlq`` with headers that say why, where and how often::

    dlqreason     "handler failed 4 times" / "unknown contract type ..." / "cannot decode ..."
    dlqexception  "ValueError: bad postcode"
    dlqhandler    "ftgo.restaurant.handlers.validate_order"
    dlqchannel    the channel it came from (replay sends it back there)
    dlqgroup      the consuming group
    dlqattempts   deliveries made
    dlqtime       when it was dead-lettered

A dead letter must never be refused for its size (the message would be retried, never
dead-lettered, and its key would wait behind it forever). When the original plus these
headers exceeds the transport's limit, the dead letter goes out with its payload
replaced by a short note and says so::

    dlqpayload        "removed"
    dlqpayloadsize    the original payload's length in bytes
    dlqpayloadreason  "message of 1048780 bytes ... exceeds the limit of 1048576 bytes"

(and when even that is too large, with only the standard and ``dlq*`` headers). Such a
letter can be listed but not replayed: its payload is gone.

``servicewire dlq list|show|replay`` reads and replays them.
"""

from __future__ import annotations

from servicewire.errors import MessageTooLargeError
from servicewire.messaging import headers as h
from servicewire.messaging.channels import dead_letter_channel
from servicewire.messaging.message import Headers, Message, utc_now_rfc3339
from servicewire.transports.base import Transport

DLQ_GROUP = "dead-letters"
"""The group that holds a dead-letter channel's messages until someone reads them."""

_MAX_HEADER = 1000


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_HEADER else text[: _MAX_HEADER - 3] + "..."


def dead_letter_message(
    message: Message,
    *,
    channel: str,
    group: str,
    reason: str,
    exception: BaseException | None = None,
    handler: str | None = None,
    attempts: int = 1,
) -> Message:
    """The dead letter of ``message`` as consumed from ``channel`` by ``group``."""
    changes: dict[str, str | None] = {
        h.DESTINATION: dead_letter_channel(channel),
        h.DLQ_REASON: _clip(reason),
        h.DLQ_CHANNEL: channel,
        h.DLQ_GROUP: group,
        h.DLQ_ATTEMPTS: str(attempts),
        h.DLQ_TIME: utc_now_rfc3339(),
        h.DLQ_EXCEPTION: _clip(f"{type(exception).__name__}: {exception}") if exception else None,
        h.DLQ_HANDLER: handler,
        h.ATTEMPT: None,  # a transport's retry count, said by dlqattempts from here on
    }
    return message.with_header_map(changes)


def without_payload(dead: Message, reason: str) -> Message:
    """``dead`` with its payload replaced by a note, for a dead letter over the size limit.

    >>> slim = without_payload(dead, str(too_large_error))
    >>> slim.headers["dlqpayload"], slim.headers["dlqpayloadsize"]
    ('removed', '1048400')
    """
    size = len(dead.payload)
    note = f"servicewire: payload of {size} bytes removed from this dead letter: {reason}"
    slim = Message(dead.id, dead.headers, note.encode())
    return slim.with_header_map(
        {
            h.DLQ_PAYLOAD: "removed",
            h.DLQ_PAYLOAD_SIZE: str(size),
            h.DLQ_PAYLOAD_REASON: _clip(reason),
        }
    )


def envelope_only(dead: Message) -> Message:
    """``dead`` with only the standard and ``dlq*`` headers, each clipped (last resort)."""
    kept = {
        name: _clip(value)
        for name, value in dead.headers.items()
        if name in h.STANDARD or name.startswith("dlq")
    }
    return Message(dead.id, Headers.adopt(kept), dead.payload)


def payload_removed(dead: Message) -> bool:
    """True for a dead letter sent without its payload (it cannot be replayed)."""
    return dead.headers.get(h.DLQ_PAYLOAD) == "removed"


def replay_message(dead: Message) -> Message:
    """The message to send back to its original channel, dead-letter headers removed."""
    original = dead.headers.get(h.DLQ_CHANNEL)
    if not original:
        raise ValueError(f"message {dead.id} has no {h.DLQ_CHANNEL} header: not a dead letter")
    if payload_removed(dead):
        raise ValueError(f"dead letter {dead.id} has no payload (it was too large): cannot replay")
    changes: dict[str, str | None] = {
        name: None
        for name in (
            h.DLQ_REASON,
            h.DLQ_EXCEPTION,
            h.DLQ_HANDLER,
            h.DLQ_CHANNEL,
            h.DLQ_GROUP,
            h.DLQ_ATTEMPTS,
            h.DLQ_TIME,
            h.ATTEMPT,
        )
    }
    changes[h.DESTINATION] = original
    return dead.with_header_map(changes)


class DeadLetterPublisher:
    """Sends dead letters straight to the transport (declaring the DLQ group once)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._declared: set[str] = set()

    async def send(self, dead: Message) -> Message:
        """Publish ``dead``, made smaller if it exceeds the limit; return what was sent.

        A size refusal happens before any I/O, so this tries at most three forms; it
        raises :class:`~servicewire.errors.MessageTooLargeError` only when even the bare
        envelope does not fit (a limit of a few kilobytes).
        """
        channel = dead.destination
        if channel not in self._declared:
            await self._transport.declare(channel, DLQ_GROUP)
            self._declared.add(channel)
        try:
            await self._transport.publish(dead)
            return dead
        except MessageTooLargeError as exc:
            dead = without_payload(dead, str(exc))
        try:
            await self._transport.publish(dead)
            return dead
        except MessageTooLargeError:
            dead = envelope_only(dead)  # the original's own headers were the bulk
        await self._transport.publish(dead)
        return dead
