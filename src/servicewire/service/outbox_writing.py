"""How a service writes what it sends: to the outbox, signed if it signs, in a span.

write = outbox_writer(authenticity, "order-service")
async with sessions() as session, session.begin():
    await write(session, [message])
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from servicewire.messaging.message import Message
from servicewire.outbox.writer import PendingRows
from servicewire.pipeline.unit_of_work import OutboxWriter
from servicewire.security.identity import MessageAuthenticity
from servicewire.telemetry.tracing import traced_outbox_writer


def outbox_writer(authenticity: MessageAuthenticity, service: str) -> OutboxWriter:
    """Writes outgoing messages to the outbox: signed (if configured), in a span."""
    from servicewire.outbox.writer import write_messages

    if authenticity.signer is None:
        return traced_outbox_writer(write_messages, service)
    sign_all = authenticity.sign_all

    async def write_signed(
        session: AsyncSession | PendingRows, messages: Sequence[Message]
    ) -> None:
        # Signed last, just before the write: nothing may change a header after.
        await write_messages(session, sign_all(messages))

    return traced_outbox_writer(write_signed, service)
