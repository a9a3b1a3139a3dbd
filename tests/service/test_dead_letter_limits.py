"""A dead letter that would exceed the transport's size limit must not wedge its key.

The failing message fits the 1 MiB limit by ~100 bytes; its dead letter (the original
plus the ``dlq*`` headers) does not. It must still be moved aside within a bounded number
of handler runs, the original acknowledged, and the next message of its key handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from servicewire import Context, RetryPolicy, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging import headers as h
from servicewire.messaging.message import Message
from servicewire.pipeline.deadletter_replay import list_dead_letters, replay_dead_letters
from servicewire.transports import connect_transport
from servicewire.transports.base import DEFAULT_MAX_MESSAGE_SIZE, MAX_HEADER_BYTES
from tests.redis_prefix import redis_prefix_url
from tests.service.contracts import CreateTicket


@contextlib.asynccontextmanager
async def transport_url(kind: str) -> AsyncIterator[str]:
    """A private in-memory broker, or a private key prefix on the shared Redis."""
    if kind == "memory":
        yield f"memory://{uuid.uuid4().hex}"
        return
    async with redis_prefix_url("test-dlq") as url:
        yield url


def near_the_limit(order_id: str) -> Message:
    """A failing CreateTicket whose message is ~100 bytes under the size limit."""
    small = to_message(CreateTicket(order_id=order_id, items=[""], fail=True))
    filler = DEFAULT_MAX_MESSAGE_SIZE - 100 - small.size
    message = to_message(CreateTicket(order_id=order_id, items=["x" * filler], fail=True))
    assert DEFAULT_MAX_MESSAGE_SIZE - 120 < message.size <= DEFAULT_MAX_MESSAGE_SIZE - 80
    return message


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_an_oversized_dead_letter_is_moved_aside_and_the_key_continues(kind: str) -> None:
    async with transport_url(kind) as url:
        service = Service(
            "kitchen",
            transport=url,
            options=ServiceOptions(retry=RetryPolicy(immediate=0, delayed=1, backoff=0.01)),
        )
        runs: list[bool] = []

        @service.handles(CreateTicket)
        async def cook(cmd: CreateTicket, ctx: Context) -> None:
            runs.append(cmd.fail)
            if cmd.fail:
                raise ValueError(f"cannot cook {cmd.order_id}")

        tool = await connect_transport(url)
        try:
            async with service:
                big = near_the_limit("order-42")
                await tool.publish(big)
                await tool.publish(to_message(CreateTicket(order_id="order-42")))
                deadline = time.monotonic() + 10
                while service.stats["handled"] < 1:
                    assert time.monotonic() < deadline, (
                        f"next message of the key never handled: {len(runs)} handler runs, "
                        f"stats {dict(service.stats)}"
                    )
                    await asyncio.sleep(0.02)
                assert service.stats["dead-lettered"] == 1
                assert runs.count(True) <= 4  # 2 deliveries; bounded, not a retry loop
                # idle: the first read includes the reader's start (Redis: shard leases),
                # which took over 0.3 s on a loaded machine and found nothing.
                [dead] = await list_dead_letters(tool, "test-kitchen", idle=2.0)
                assert dead.id == big.id
                assert dead.size <= DEFAULT_MAX_MESSAGE_SIZE
                assert "cannot cook order-42" in dead.headers[h.DLQ_EXCEPTION]
                assert dead.headers[h.DLQ_PAYLOAD] == "removed"
                assert dead.headers[h.DLQ_PAYLOAD_SIZE] == str(len(big.payload))
                assert "exceeds the limit" in dead.headers[h.DLQ_PAYLOAD_REASON]
                # Its payload is gone: replaying it would send a note, so it stays put.
                assert await replay_dead_letters(tool, "test-kitchen", idle=2.0) == []
                [kept] = await list_dead_letters(tool, "test-kitchen", idle=2.0)
                assert kept.id == big.id
        finally:
            await tool.close()


async def test_a_dead_letter_whose_headers_are_too_large_keeps_only_the_envelope() -> None:
    async with transport_url("memory") as url:
        service = Service(
            "kitchen",
            transport=url,
            options=ServiceOptions(retry=RetryPolicy(immediate=0, delayed=0)),
        )

        @service.handles(CreateTicket)
        async def cook(cmd: CreateTicket, ctx: Context) -> None:
            if cmd.fail:
                raise ValueError(f"cannot cook {cmd.order_id}")

        tool = await connect_transport(url)
        try:
            async with service:
                failing = to_message(CreateTicket(order_id="order-7", fail=True))
                # Headers just under their own limit (64 KiB): the dlq* headers tip them over.
                filler = (
                    MAX_HEADER_BYTES
                    - 100
                    - sum(len(k) + len(v) for k, v in failing.headers.items())
                )
                failing = failing.with_headers(note="y" * filler)
                await tool.publish(failing)
                await tool.publish(to_message(CreateTicket(order_id="order-7")))
                deadline = time.monotonic() + 10
                while service.stats["handled"] < 1:
                    assert time.monotonic() < deadline, f"stuck: {dict(service.stats)}"
                    await asyncio.sleep(0.02)
                [dead] = await list_dead_letters(tool, "test-kitchen", idle=2.0)
                assert dead.id == failing.id
                assert "note" not in dead.headers
                assert dead.headers[h.DLQ_PAYLOAD] == "removed"
                assert dead.partition_key == "order-7"
        finally:
            await tool.close()
