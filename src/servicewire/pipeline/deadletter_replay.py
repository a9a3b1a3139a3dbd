"""Reading and replaying dead letters on any transport.

A dead-letter channel is an ordinary channel read by the ``dead-letters`` group. To
*look* at its messages without losing them, the reader rotates them: it takes each
message, publishes it again to the same channel, then acknowledges the original; it
stops when a message comes round a second time, or when none arrives for ``idle``
seconds. Replay sends chosen messages back to the channel they came from (without
their dead-letter headers) and rotates the rest::

    dead = await list_dead_letters(transport, "ftgo.consumer.commands")
    replayed = await replay_dead_letters(transport, "ftgo.consumer.commands", ids={dead[0].id})
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from servicewire.messaging.channels import dead_letter_channel
from servicewire.messaging.message import Message
from servicewire.pipeline.deadletter import DLQ_GROUP, payload_removed, replay_message
from servicewire.timeouts import within
from servicewire.transports.base import Delivery, Transport

log = logging.getLogger("servicewire.pipeline.deadletter")


def dlq_channel_for(channel: str) -> str:
    """``orders`` -> ``orders.dlq``; a name that already ends in ``.dlq`` is kept."""
    return channel if channel.endswith(".dlq") else dead_letter_channel(channel)


async def _rotate(
    transport: Transport,
    channel: str,
    *,
    take: Callable[[Message], bool],
    idle: float,
    limit: int,
    progress: Callable[[int], None] | None,
) -> tuple[list[Message], list[Message]]:
    """Walk the dead letters once; ``take`` decides which leave the channel."""
    dlq = dlq_channel_for(channel)
    await transport.declare(dlq, DLQ_GROUP)
    sub = await transport.subscribe(dlq, DLQ_GROUP, prefetch=16)
    seen: set[str] = set()
    kept: list[Message] = []
    taken: list[Message] = []
    iterator = sub.__aiter__()
    try:
        while len(seen) < limit:
            try:
                delivery: Delivery = await within(iterator.__anext__(), idle)
            except (TimeoutError, StopAsyncIteration):
                break
            message = delivery.message
            if message.id in seen:
                await delivery.nack()  # came round again: the walk is complete
                break
            seen.add(message.id)
            if take(message) and payload_removed(message):
                # Its payload was too large to keep: nothing to replay, so it stays.
                log.warning("dead letter %s has no payload (too large): not replayed", message.id)
                await transport.publish(message)
                kept.append(message)
            elif take(message):
                await transport.publish(replay_message(message))
                taken.append(message)
            else:
                await transport.publish(message)  # rotate: back to the end of the channel
                kept.append(message)
            await delivery.ack()
            if progress is not None:
                progress(len(seen))
    finally:
        await sub.close()
    return kept, taken


async def list_dead_letters(
    transport: Transport,
    channel: str,
    *,
    idle: float = 1.0,
    limit: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> list[Message]:
    """Every dead letter of ``channel`` (left in place)."""
    kept, _ = await _rotate(
        transport, channel, take=lambda _m: False, idle=idle, limit=limit, progress=progress
    )
    return kept


async def replay_dead_letters(
    transport: Transport,
    channel: str,
    *,
    ids: set[str] | None = None,
    idle: float = 1.0,
    limit: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> list[Message]:
    """Send dead letters back to their channel: those in ``ids``, or all when ``None``."""

    def take(message: Message) -> bool:
        return ids is None or message.id in ids

    _, taken = await _rotate(
        transport, channel, take=take, idle=idle, limit=limit, progress=progress
    )
    return taken
