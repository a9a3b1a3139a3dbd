"""The pipeline's fixed statements straight on asyncpg, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text

from servicewire.messaging.message import Message
from servicewire.outbox import outbox
from servicewire.outbox.writer import PendingRows, outbox_rows
from servicewire.storage.asyncpg_direct import AsyncpgDirect
from servicewire.storage.database import create_engine
from servicewire.storage.failures import is_infrastructure_error
from tests.relay.dbs import private_database


async def test_before_the_first_statement_it_refuses_rather_than_autocommit() -> None:
    # SQLAlchemy sends BEGIN with its first statement; a statement sent directly before
    # that would commit on its own, outside the batch's transaction.
    async with private_database("postgres") as url:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn, conn.begin():
                with pytest.raises(RuntimeError, match="has not begun"):
                    await AsyncpgDirect.on(conn)
                await conn.execute(text("SELECT 1"))
                assert await AsyncpgDirect.on(conn) is not None
        finally:
            await engine.dispose()


async def test_rows_go_in_list_order_inside_the_transaction() -> None:
    # One key's messages must get ascending ids in the order they were sent: relays
    # publish a key's rows in id order.
    messages = [
        Message.create(f"{i}".encode(), destination="orders", partition_key=f"k-{i % 3}")
        for i in range(300)
    ]
    async with private_database("postgres") as url:
        engine = create_engine(url)
        try:
            with pytest.raises(RuntimeError, match="business failure"):
                async with engine.connect() as conn, conn.begin():
                    await conn.execute(text("SELECT 1"))
                    pending = PendingRows()
                    pending.rows.extend(outbox_rows(messages[:5]))
                    await pending.flush(conn, direct=await AsyncpgDirect.on(conn))
                    raise RuntimeError("business failure")
            expected = outbox_rows(messages)
            async with engine.connect() as conn, conn.begin():
                await conn.execute(text("SELECT 1"))
                pending = PendingRows()
                pending.rows.extend(expected)
                assert await pending.flush(conn, direct=await AsyncpgDirect.on(conn)) == 300
                assert pending.rows == []
            async with engine.connect() as conn:
                rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).all()
            # The rolled-back five are gone; the rest match column for column.
            assert [row.message_id for row in rows] == [m.id for m in messages]
            for row, values in zip(rows, expected, strict=True):
                assert json.loads(row.headers) == json.loads(values["headers"])
                assert bytes(row.payload) == values["payload"]
                assert (row.partition_key, row.shard) == (values["partition_key"], values["shard"])
                assert row.created_at == values["created_at"]
        finally:
            await engine.dispose()


async def test_errors_read_as_sqlalchemys() -> None:
    async with private_database("postgres") as url:
        engine = create_engine(url)
        try:
            # A statement that fails on its own: not the database being away.
            async with engine.connect() as conn, conn.begin():
                await conn.execute(text("SELECT 1"))
                direct = await AsyncpgDirect.on(conn)
                assert direct is not None
                with pytest.raises(sa_exc.DatabaseError) as failed:
                    await direct.run("INSERT INTO no_such_table VALUES ($1)", 1)
                assert not is_infrastructure_error(failed.value)
            # The server ends the session: the database is away, not the statement wrong.
            conn = await engine.connect()
            try:
                await conn.begin()
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                direct = await AsyncpgDirect.on(conn)
                assert direct is not None
                async with engine.connect() as other:
                    await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    await other.commit()
                    for _ in range(100):  # bounded: until the server has ended it
                        alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"
                        if not (await other.execute(text(alive), {"pid": pid})).scalar_one():
                            break
                        await asyncio.sleep(0.02)
                with pytest.raises(sa_exc.SQLAlchemyError) as lost:
                    await direct.column("SELECT $1::int", 1)
                assert is_infrastructure_error(lost.value)
            finally:
                await conn.invalidate()
                with contextlib.suppress(sa_exc.SQLAlchemyError):  # its session is gone
                    await conn.close()
        finally:
            await engine.dispose()


async def test_other_drivers_get_none(tmp_path: object) -> None:
    engine = create_engine("sqlite://")
    try:
        async with engine.connect() as conn, conn.begin():
            assert await AsyncpgDirect.on(conn) is None
    finally:
        await engine.dispose()


async def test_a_compiled_statement_returns_what_sqlalchemy_returns() -> None:
    from servicewire.relay.batch_statements import BatchStatements
    from servicewire.storage.asyncpg_direct import CompiledText

    statements = BatchStatements("postgresql", shards=4, cleanup="delete", batch_size=3)
    messages = [
        Message.create(b"x", destination="orders", partition_key=f"k-{i}") for i in range(12)
    ]
    async with private_database("postgres") as url:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(outbox.insert(), outbox_rows(messages, shards=4))
            for shards in ([1, 3], [0, 1, 2, 3]):  # a shard filter, and none
                stmt, values = statements.claim(shards, lock=True)
                async with engine.connect() as conn, conn.begin():
                    through_sqlalchemy = (await conn.execute(stmt, values)).mappings().all()
                async with engine.connect() as conn, conn.begin():
                    await conn.execute(text("SELECT 1"))
                    direct = await AsyncpgDirect.on(conn)
                    assert direct is not None
                    compiled = CompiledText(stmt, conn.dialect)
                    direct_rows = await direct.rows(compiled.sql, *compiled.args(values))
                assert len(through_sqlalchemy) == 3  # the LIMIT, a value fixed in the statement
                assert [dict(r) for r in direct_rows] == [dict(r) for r in through_sqlalchemy]
            with pytest.raises(ValueError, match=r"does not take \$n"):
                CompiledText(stmt, create_engine("sqlite://").dialect)
        finally:
            await engine.dispose()
