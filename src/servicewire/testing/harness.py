"""Test helpers: unit-test a service's handlers with no broker and no server.

:class:`ServiceHarness` runs a service on a private in-memory transport and an
in-memory SQLite database (unless you give it one), without consumers or relay, and
lets a test deliver one message straight into the delivery pipeline and look at what
the handler sent::

    async def test_rejects_unknown_consumer() -> None:
        async with ServiceHarness(consumer_service) as harness:
            outcome = await harness.deliver(
                ValidateConsumerInfo(consumer_id="nobody", order_total=10),
                reply_to="order-service.replies",
            )
            assert outcome is Outcome.HANDLED
            [reply] = harness.sent_contracts()
            assert isinstance(reply, ConsumerValidationFailed)

The same message delivered twice is handled once (the inbox); a handler that raises
leaves nothing in the outbox; both are visible through :meth:`ServiceHarness.sent`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.codecs.serialization import from_message, to_message
from servicewire.messaging import headers
from servicewire.messaging.contracts import Contract
from servicewire.messaging.message import Message
from servicewire.pipeline.deadletter import DLQ_GROUP
from servicewire.pipeline.outcome import Outcome
from servicewire.service.service import Service
from servicewire.transports.base import Delivery


class HarnessDelivery(Delivery):
    """A delivery the harness hands to the pipeline; records how it was settled."""

    def __init__(self, message: Message, attempt: int = 1) -> None:
        super().__init__(message, attempt)
        self.acked = False
        self.nacked_with: float | None = None

    async def ack(self) -> None:
        self.acked = True

    async def nack(self, delay: float = 0.0) -> None:
        self.nacked_with = delay


class ServiceHarness:
    """Runs ``service`` for a test: private memory transport, SQLite, no relay."""

    def __init__(self, service: Service, *, db: str | AsyncEngine | None = None) -> None:
        self.service = service
        service._db = db or "sqlite://"
        service._transport_spec = f"memory://harness-{uuid.uuid4().hex}"
        # The harness reads the outbox itself (sent()); a relay would empty it first.
        service.options = replace(service.options, relay=False)
        service._subscribe = False
        self.dead_letters: list[Message] = []

    async def __aenter__(self) -> ServiceHarness:
        await self.service.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()

    @property
    def engine(self) -> AsyncEngine:
        assert self.service.engine is not None
        return self.service.engine

    async def deliver(
        self,
        value: Contract | Message,
        *,
        channel: str | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        attempt: int = 1,
    ) -> Outcome:
        """Run one message through the pipeline of its channel and return the outcome."""
        if isinstance(value, Message):
            message = value
        else:
            message = to_message(
                value,
                destination=channel,
                reply_to=reply_to,
                correlation_id=correlation_id,
                extra=headers,
                codec=self.service.codecs.for_content_type(self.service.content_type),
            )
        target = channel or message.destination
        matches = [p for (ch, _g), p in self.service.pipelines.items() if ch == target]
        if not matches:
            raise LookupError(f"{self.service.name} has no handler on channel {target!r}")
        delivery = HarnessDelivery(message, attempt)
        outcome = await matches[0].process(delivery)
        return outcome

    async def sent(self) -> list[Message]:
        """Every message the handlers have written to the outbox, oldest first."""
        from servicewire.outbox.tables import outbox

        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
        return [_row_message(row) for row in rows]

    async def sent_contracts(self) -> list[Contract]:
        """:meth:`sent`, decoded into contracts."""
        return [from_message(m, codecs=self.service.codecs) for m in await self.sent()]

    async def dead_lettered(self) -> list[Message]:
        """Messages the pipeline dead-lettered (read from the harness's memory broker)."""
        from servicewire.transports.memory.transport import MemoryTransport

        transport = self.service.transport
        assert isinstance(transport, MemoryTransport)
        found: list[Message] = []
        for channel, groups in transport.broker.channels.items():
            state = groups.get(DLQ_GROUP)
            if state is not None and channel.endswith(".dlq"):
                for queue in state.queues:
                    found.extend(entry.message for entry in queue)
        # shards scatter them; the dead-letter time puts them back in order
        return sorted(found, key=lambda m: m.headers.get(headers.DLQ_TIME, ""))


def _row_message(row: Mapping[Any, Any]) -> Message:
    headers = row["headers"]
    if isinstance(headers, (str, bytes)):
        headers = json.loads(headers)
    return Message(row["message_id"], headers, bytes(row["payload"]))
