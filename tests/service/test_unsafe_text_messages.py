"""A message whose payload or id holds NUL is dead-lettered at once, on every store
(issue 19).

NUL is a valid JSON escape (``"\\u0000"``) and PostgreSQL refuses it in text: a handler
that stored the field failed on every attempt there (and stored it on MariaDB and
SQLite), and so did the inbox's claim of a message id holding one. The contract
refuses such text when the payload is decoded, and the pipeline such an id before
that, so the message is dead-lettered on its first delivery with the reason, the
handler never runs, no inbox id is claimed, no outbox row is written, and the next
message of its key goes through. The transport is the shared Redis (a private key
prefix).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from servicewire import Context, RetryPolicy, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging import headers as h
from servicewire.messaging.ids import new_id
from servicewire.messaging.message import Message
from servicewire.outbox.tables import outbox
from servicewire.pipeline.deadletter_replay import list_dead_letters
from servicewire.pipeline.inbox import size as inbox_size
from servicewire.transports import connect_transport
from tests.service.contracts import CreateTicket, TicketEvent
from tests.service.test_dead_letter_limits import transport_url

VALID = to_message(CreateTicket(order_id="order-9", items=["naan"]))
HOSTILE = {
    "payload": (
        Message(new_id(), VALID.headers, b'{"order_id": "order-\\u00009", "items": ["naan"]}'),
        "undecodable: cannot decode test.kitchen.CreateTicket from json at field 'order_id': "
        "text must not contain NUL (U+0000); found at character 6",
    ),
    "id": (
        Message(f"{new_id()}\x00", VALID.headers, VALID.payload),
        "unsafe message id: text must not contain NUL (U+0000); found at character 36",
    ),
}


@pytest.mark.parametrize("where", sorted(HOSTILE))
async def test_nul_is_dead_lettered_on_its_first_delivery(db: str, where: str) -> None:
    async with transport_url("redis") as url:
        service = Service(
            "kitchen",
            db=db,
            transport=url,
            options=ServiceOptions(retry=RetryPolicy(immediate=2, delayed=1, backoff=0.01)),
        )
        runs: list[str] = []

        @service.handles(CreateTicket)
        async def cook(cmd: CreateTicket, ctx: Context) -> None:
            runs.append(cmd.order_id)
            await ctx.publish(TicketEvent(order_id=cmd.order_id, seq=1))

        hostile, reason = HOSTILE[where]
        tool = await connect_transport(url)
        try:
            async with service:
                await tool.publish(hostile)
                await tool.publish(VALID)
                deadline = time.monotonic() + 15
                while service.stats["handled"] < 1:
                    assert time.monotonic() < deadline, f"stuck: {dict(service.stats)}, {runs}"
                    await asyncio.sleep(0.02)
                assert runs == ["order-9"]  # the hostile one never reached the handler
                assert service.stats["dead-lettered"] == 1
                [dead] = await list_dead_letters(tool, "test-kitchen", idle=2.0)
                assert dead.id == hostile.id
                assert dead.headers[h.DLQ_ATTEMPTS] == "1"  # at once, never retried
                assert dead.headers[h.DLQ_REASON] == reason
                assert service.engine is not None
                assert await inbox_size(service.engine) == 1  # the valid message's id only
                async with service.engine.connect() as conn:
                    keys = (await conn.execute(select(outbox.c.partition_key))).scalars().all()
                    total = (
                        await conn.execute(select(func.count()).select_from(outbox))
                    ).scalar_one()
                assert "order-\x009" not in keys and total <= 1, (keys, total)
        finally:
            await tool.close()
