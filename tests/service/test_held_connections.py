"""A service keeps a couple of connections open between its units of work.

Deliveries and ``service.transaction()`` blocks reuse them instead of checking one out
of the pool each time; a block that failed closes its connection; a connection the
server ended is replaced without losing the delivery; a stopped service holds none.
On SQLite the pool is used as before. Each on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from servicewire import Context, Service, ServiceOptions
from servicewire.codecs import to_message
from servicewire.pipeline.unit_of_work import Outcome
from servicewire.storage.database import create_engine
from servicewire.testing import HarnessDelivery, ServiceHarness
from tests.service.contracts import CreateTicket
from tests.service.test_pipeline_rules import _count, _with_app_tables, tickets


def _kitchen() -> Service:
    service = Service("kitchen", options=ServiceOptions())

    @service.handles(CreateTicket)
    async def create_ticket(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.connection.execute(tickets.insert().values(order_id=cmd.order_id))

    return service


def _delivery(order_id: str) -> HarnessDelivery:
    return HarnessDelivery(to_message(CreateTicket(order_id=order_id), reply_to="x.replies"))


class _Checkouts:
    """Counts connections checked out of the engine's pool."""

    def __init__(self, harness: ServiceHarness) -> None:
        self.count = 0
        self._pool = harness.engine.sync_engine.pool

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def __enter__(self) -> _Checkouts:
        event.listen(self._pool, "checkout", self._seen)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self._pool, "checkout", self._seen)


async def test_units_of_work_reuse_an_open_connection(db: str) -> None:
    async with ServiceHarness(_kitchen(), db=db) as harness:
        await _with_app_tables(harness)
        pipeline = harness.service.pipelines[("test-kitchen", "kitchen")]
        with _Checkouts(harness) as checkouts:
            for i in range(5):
                assert await pipeline.process_batch([_delivery(f"o-{i}")]) == [Outcome.HANDLED]
                async with harness.service.transaction() as ctx:
                    await ctx.connection.execute(tickets.insert().values(order_id=f"t-{i}"))
        assert await _count(harness, tickets) == 10
        if harness.engine.dialect.name == "sqlite":
            assert checkouts.count == 10  # the pool, as before
        else:
            assert checkouts.count <= 1  # one connection, kept between them


async def test_a_block_that_failed_closes_its_connection(db: str) -> None:
    async with ServiceHarness(_kitchen(), db=db) as harness:
        await _with_app_tables(harness)
        async with harness.service.transaction() as ctx:
            await ctx.connection.execute(tickets.insert().values(order_id="t-1"))
        with _Checkouts(harness) as checkouts:
            with pytest.raises(ZeroDivisionError):
                async with harness.service.transaction() as ctx:
                    await ctx.connection.execute(tickets.insert().values(order_id="t-2"))
                    _ = 1 / 0
            async with harness.service.transaction() as ctx:
                await ctx.connection.execute(tickets.insert().values(order_id="t-3"))
        assert await _count(harness, tickets) == 2
        if harness.engine.dialect.name != "sqlite":
            assert checkouts.count == 1  # the failed block's connection was not reused


async def test_a_stopped_service_holds_no_connection(db: str) -> None:
    """Also with an engine the service does not own (and so does not dispose)."""
    engine = create_engine(db)
    out: list[int] = []
    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", lambda *a: out.append(1))
    event.listen(pool, "checkin", lambda *a: out.append(-1))
    try:
        async with ServiceHarness(_kitchen(), db=engine) as harness:
            await _with_app_tables(harness)
            pipeline = harness.service.pipelines[("test-kitchen", "kitchen")]
            assert await pipeline.process_batch([_delivery("o-1")]) == [Outcome.HANDLED]
            async with harness.service.transaction() as ctx:
                await ctx.connection.execute(select(1))
            assert out.count(1) >= 1
        assert sum(out) == 0  # every connection checked out went back
    finally:
        await engine.dispose()


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_a_connection_the_server_ended_is_replaced_and_nothing_is_lost(db: str) -> None:
    """PostgreSQL: pg_terminate_backend ends the session the service holds."""
    async with ServiceHarness(_kitchen(), db=db) as harness:
        await _with_app_tables(harness)
        async with harness.service.transaction() as ctx:
            pid = (await ctx.connection.execute(text("select pg_backend_pid()"))).scalar()
        async with harness.engine.connect() as admin:
            ended = await admin.execute(text("select pg_terminate_backend(:p)"), {"p": pid})
            assert ended.scalar() is True
        delivery = _delivery("o-after")
        # The held connection is dead: the first try fails as an outage, is held and
        # re-run on a new connection; the delivery is handled once.
        assert await harness.service.pipelines[("test-kitchen", "kitchen")].process_batch(
            [delivery]
        ) == [Outcome.HANDLED]
        assert delivery.acked
        async with harness.engine.connect() as conn:
            rows = await conn.execute(
                select(func.count()).select_from(tickets).where(tickets.c.order_id == "o-after")
            )
            assert rows.scalar() == 1
