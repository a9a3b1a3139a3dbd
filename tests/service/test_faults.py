"""Faults the pipeline must absorb: duplicated deliveries, flaky handlers, dead letters."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from servicewire import Context, RetryPolicy, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.messaging.message import Message
from servicewire.pipeline.deadletter_replay import list_dead_letters, replay_dead_letters
from servicewire.transports import connect_transport
from servicewire.transports.memory.transport import MemoryTransport
from tests.service.contracts import CreateTicket

app = MetaData()
applied = Table(
    "test_applied",
    app,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(50), nullable=False),
)


class DuplicatingTransport(MemoryTransport):
    """Publishes every message twice: the broker-level duplicate the inbox must absorb."""

    async def publish(self, message: Message) -> None:
        await super().publish(message)
        await super().publish(message)

    async def publish_batch(self, messages: Sequence[Message]) -> None:
        for message in messages:
            await self.publish(message)


def counting_service(url: str | MemoryTransport, fail_rate: float = 0.0) -> Service:
    service = Service(
        "kitchen",
        transport=url,
        options=ServiceOptions(
            tables=[app], retry=RetryPolicy(immediate=1, delayed=8, backoff=0.01, factor=1.5)
        ),
    )

    @service.handles(CreateTicket)
    async def apply(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.session.execute(applied.insert().values(order_id=cmd.order_id))
        if random.random() < fail_rate:
            raise RuntimeError("injected failure")

    return service


async def _applied(service: Service) -> tuple[int, int]:
    assert service.engine is not None
    async with service.engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(applied))).scalar_one()
        distinct = (
            await conn.execute(select(func.count(func.distinct(applied.c.order_id))))
        ).scalar_one()
    return int(total), int(distinct)


async def _wait_applied(service: Service, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (await _applied(service))[1] < n:
        assert time.monotonic() < deadline, f"only {(await _applied(service))[1]} of {n}"
        await asyncio.sleep(0.05)


async def test_every_message_delivered_twice_gives_the_same_final_state() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    service = counting_service(url)
    sender = DuplicatingTransport(url)
    await sender.connect()
    async with service:
        for i in range(200):
            await sender.publish(to_message(CreateTicket(order_id=f"o-{i}")))
        await _wait_applied(service, 200)
        await asyncio.sleep(0.3)
        assert await _applied(service) == (200, 200)
        assert service.stats["duplicate"] >= 200
    await sender.close()


async def test_twenty_percent_of_handler_calls_fail_yet_each_message_applies_once() -> None:
    random.seed(7)
    url = f"memory://{uuid.uuid4().hex}"
    service = counting_service(url, fail_rate=0.2)
    sender = await connect_transport(url)
    async with service:
        for i in range(300):
            await sender.publish(to_message(CreateTicket(order_id=f"o-{i}")))
        await _wait_applied(service, 300)
        await service.wait_idle()
        assert await _applied(service) == (300, 300)
        assert service.stats["dead-lettered"] == 0
        assert service.stats["retrying"] > 0
    await sender.close()


async def test_dead_letters_can_be_listed_and_replayed() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    broken = Service(
        "kitchen", transport=url, options=ServiceOptions(retry=RetryPolicy(immediate=0, delayed=0))
    )
    fixed = {"on": False}

    @broken.handles(CreateTicket)
    async def handler(cmd: CreateTicket, ctx: Context) -> None:
        if not fixed["on"]:
            raise ValueError(f"cannot cook {cmd.order_id}")

    tool = await connect_transport(url)
    async with broken:
        for i in range(5):
            await tool.publish(to_message(CreateTicket(order_id=f"o-{i}")))
        deadline = time.monotonic() + 10
        while broken.stats["dead-lettered"] < 5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        dead = await list_dead_letters(tool, "test-kitchen", idle=0.3)
        assert len(dead) == 5
        assert all("cannot cook" in m.headers["dlqexception"] for m in dead)
        again = await list_dead_letters(tool, "test-kitchen", idle=0.3)
        assert {m.id for m in again} == {m.id for m in dead}  # listing loses nothing
        fixed["on"] = True
        replayed = await replay_dead_letters(tool, "test-kitchen", ids={dead[0].id}, idle=0.3)
        assert [m.id for m in replayed] == [dead[0].id]
        deadline = time.monotonic() + 10
        while broken.stats["handled"] < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        rest = await replay_dead_letters(tool, "test-kitchen", idle=0.3)
        assert len(rest) == 4
        assert await list_dead_letters(tool, "test-kitchen", idle=0.3) == []
    await tool.close()
