"""A database outage while one key flows: nothing is dead-lettered, order holds after.

The shared PostgreSQL is never stopped: the service reaches it through a loopback
proxy (tests/tcp_proxy.py) that the test cuts for 10 s, resetting every open connection
and refusing new ones. Commands of one key keep arriving meanwhile, through RabbitMQ
(whose quorum queues requeue a nacked message at the tail: a nack there would reorder
the key) and through the memory transport.
An unreachable database is no fault of a message: the pipeline must redeliver, never
count it toward the dead-letter budget, and afterwards handle every command exactly
once, in order.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import text

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.pipeline.retry import RetryPolicy
from servicewire.storage.database import create_engine
from servicewire.transports import connect_transport
from tests import services
from tests.service.contracts import CreateTicket
from tests.service.test_pipeline_rules import app_metadata, tickets
from tests.tcp_proxy import TcpProxy

PG_BASE = services.URLS["postgres"].rsplit("/", 1)[0]
KEY = "order-42"


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["amqp", "memory"])
async def test_a_10s_database_outage_dead_letters_nothing_and_keeps_order(broker: str) -> None:
    services.require("postgres")
    if broker == "amqp":
        services.require("rabbitmq")
        transport = services.URLS["rabbitmq"]
    else:
        transport = f"memory://outage-{uuid.uuid4().hex}"
    name = f"sw_outage_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    channel = f"test-outage-{uuid.uuid4().hex[:8]}"
    try:
        async with TcpProxy("127.0.0.1", 5432) as proxy:
            db = f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"
            await _run(proxy, db, transport, channel)
    finally:
        # The database first: a broker that is down must not leave it behind.
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
        if broker == "amqp":
            cleaner = await connect_transport(transport)
            await cleaner.tear_down(channel, ["kitchen"])  # with its .dlq channel
            await cleaner.close()


async def _run(proxy: TcpProxy, db: str, transport: str, channel: str) -> None:
    seen: list[int] = []
    # A small budget: three failing deliveries within a second would dead-letter.
    retry = RetryPolicy(immediate=1, delayed=2, backoff=0.2)
    service = Service(
        "kitchen",
        db=db,
        transport=transport,
        options=ServiceOptions(retry=retry, tables=[app_metadata], relay=False),
    )

    @service.handles(CreateTicket, channel=channel)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        seq = int(cmd.items[0])
        await ctx.session.execute(tickets.insert().values(order_id=f"{cmd.order_id}:{seq}"))
        ctx.after_commit(lambda: seen.append(seq))

    publisher = await connect_transport(transport)
    total = 0
    async with service:
        started = time.monotonic()
        cut_at, restore_at, stop_at = started + 2.0, started + 12.0, started + 14.0
        while (now := time.monotonic()) < stop_at:
            if proxy.down and now >= restore_at:
                proxy.restore()
            elif not proxy.down and cut_at <= now < restore_at:
                proxy.cut()
            command = CreateTicket(order_id=KEY, items=[str(total)])
            await publisher.publish(to_message(command, destination=channel))
            total += 1
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 60
        while len(seen) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        dead = service.stats["dead-lettered"]
    await publisher.close()

    assert proxy.refused > 0, "the outage never reached the service"
    assert dead == 0
    assert seen == list(range(total)), str(seen)  # every command once, in order
