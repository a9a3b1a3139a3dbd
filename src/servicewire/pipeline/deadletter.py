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

``servicewire dlq list|show|replay`` reads and replays them.
"""

from __future__ import annotations

from servicewire.messaging import headers as h
from servicewire.messaging.channels import dead_letter_channel
from servicewire.messaging.message import Message, utc_now_rfc3339
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
    }
    return message.with_header_map(changes)


def replay_message(dead: Message) -> Message:
    """The message to send back to its original channel, dead-letter headers removed."""
    original = dead.headers.get(h.DLQ_CHANNEL)
    if not original:
        raise ValueError(f"message {dead.id} has no {h.DLQ_CHANNEL} header: not a dead letter")
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

    async def send(self, dead: Message) -> None:
        channel = dead.destination
        if channel not in self._declared:
            await self._transport.declare(channel, DLQ_GROUP)
            self._declared.add(channel)
        await self._transport.publish(dead)
