"""``Service.transaction()``: a unit of work outside any handler (a REST endpoint, say).

Its business writes and its messages commit together or not at all, whichever way the
block writes (Core on ``ctx.connection``, ORM on ``ctx.session``); the ORM session is
opened only when asked for; on PostgreSQL with asyncpg the outbox rows go straight to
the driver once the transaction has begun. Each on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from servicewire import Service, ServiceOptions
from servicewire.outbox.tables import outbox
from servicewire.testing import ServiceHarness
from tests.service.contracts import CreateTicket
from tests.service.test_batches import _Base, _Note
from tests.service.test_pipeline_rules import _count, _with_app_tables, tickets


def _service() -> Service:
    return Service("kitchen", options=ServiceOptions(tables=[_Base.metadata]))


async def _notes(harness: ServiceHarness) -> list[str]:
    async with harness.engine.connect() as conn:
        rows = await conn.execute(select(_Note.order_id).order_by(_Note.id))
        return list(rows.scalars())


class _Refused(Exception):
    pass


async def test_orm_objects_and_messages_commit_together(db: str) -> None:
    async with ServiceHarness(_service(), db=db) as harness:
        async with harness.service.transaction() as ctx:
            ctx.session.add(_Note(order_id="o-1"))  # flushed by the block, not by us
            await ctx.send(CreateTicket(order_id="o-1"), destination="kitchen")
        assert await _notes(harness) == ["o-1"]
        assert [m.partition_key for m in await harness.sent()] == ["o-1"]

        with pytest.raises(_Refused):
            async with harness.service.transaction() as ctx:
                ctx.session.add(_Note(order_id="o-2"))
                await ctx.session.flush()  # on the server, then rolled back
                await ctx.send(CreateTicket(order_id="o-2"), destination="kitchen")
                raise _Refused
        assert await _notes(harness) == ["o-1"]
        assert len(await harness.sent()) == 1


async def test_the_sessions_commit_does_not_end_the_block(db: str) -> None:
    """The session joins the block's transaction: its ``commit()`` flushes, and a
    failure later in the block still takes everything back."""
    async with ServiceHarness(_service(), db=db) as harness:
        with pytest.raises(_Refused):
            async with harness.service.transaction() as ctx:
                ctx.session.add(_Note(order_id="o-1"))
                await ctx.session.commit()
                await ctx.send(CreateTicket(order_id="o-1"), destination="kitchen")
                raise _Refused
        assert await _notes(harness) == []
        assert await harness.sent() == []


async def test_a_block_that_never_asks_for_the_session_opens_none(db: str) -> None:
    opened: list[object] = []

    def on_begin(session: object, transaction: object, connection: object) -> None:
        opened.append(session)

    async with ServiceHarness(_service(), db=db) as harness:
        await _with_app_tables(harness)
        event.listen(Session, "after_begin", on_begin)
        try:
            async with harness.service.transaction() as ctx:
                await ctx.connection.execute(tickets.insert().values(order_id="o-1"))
                await ctx.send(CreateTicket(order_id="o-1"), destination="kitchen")
            assert opened == []
            async with harness.service.transaction() as ctx:
                ctx.session.add(_Note(order_id="o-2"))
            assert len(opened) == 1
        finally:
            event.remove(Session, "after_begin", on_begin)
        assert await _count(harness, tickets) == 1
        assert await _notes(harness) == ["o-2"]


async def test_outbox_rows_keep_the_order_sent_with_or_without_a_statement_first(
    db: str,
) -> None:
    """A block whose first statement is its outbox insert (nothing ran before it) and
    one that ran a statement first both commit every message, in the order sent. On
    PostgreSQL with asyncpg the second goes to the driver: SQLAlchemy never sees it."""
    through_sqlalchemy: list[str] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {outbox.name.upper()}"):
            through_sqlalchemy.append(statement)

    async with ServiceHarness(_service(), db=db) as harness:
        await _with_app_tables(harness)
        event.listen(harness.engine.sync_engine, "before_cursor_execute", on_execute)
        try:
            async with harness.service.transaction() as ctx:
                for i in range(3):
                    await ctx.send(CreateTicket(order_id=f"a-{i}"), destination="kitchen")
            sends_only = len(through_sqlalchemy)
            async with harness.service.transaction() as ctx:
                await ctx.connection.execute(tickets.insert().values(order_id="b"))
                for i in range(3):
                    await ctx.send(CreateTicket(order_id=f"b-{i}"), destination="kitchen")
            after_statement = len(through_sqlalchemy) - sends_only
        finally:
            event.remove(harness.engine.sync_engine, "before_cursor_execute", on_execute)
        sent = [m.partition_key for m in await harness.sent()]
        assert sent == ["a-0", "a-1", "a-2", "b-0", "b-1", "b-2"]
        assert sends_only == 1  # nothing had begun: SQLAlchemy sends it, with BEGIN
        direct = harness.engine.dialect.driver == "asyncpg"
        assert after_statement == (0 if direct else 1)
