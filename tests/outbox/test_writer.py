"""The outbox writer commits rows exactly with the caller's transaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from servicewire.messaging.channels import shard_for
from servicewire.messaging.message import Message
from servicewire.outbox import outbox, write_messages, write_messages_sync
from servicewire.outbox.writer import headers_json
from servicewire.storage.database import create_engine, dialect_of, sync_url
from tests.relay.dbs import KINDS, private_database


def messages(n: int) -> list[Message]:
    return [
        Message.create(f"{i}".encode(), destination="orders", partition_key=f"o-{i}")
        for i in range(n)
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_rows_commit_and_roll_back_with_the_session(kind: str, tmp_path: Path) -> None:
    async with private_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            batch = messages(3)
            async with AsyncSession(engine) as session:
                async with session.begin():
                    await write_messages(session, batch, shards=8)
            with pytest.raises(RuntimeError):
                async with AsyncSession(engine) as session:
                    async with session.begin():
                        await write_messages(session, messages(2))
                        raise RuntimeError("business failure")
            async with engine.connect() as conn:
                rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).all()
            assert [r.message_id for r in rows] == [m.id for m in batch]
            for row, msg in zip(rows, batch, strict=True):
                assert row.destination == "orders"
                assert bytes(row.payload) == msg.payload
                assert json.loads(row.headers) == msg.headers.to_dict()
                assert row.shard == shard_for(msg.partition_key, 8)
                assert row.published_at is None
        finally:
            await engine.dispose()


@given(st.dictionaries(st.text(), st.text()))
def test_the_headers_column_is_ascii_json_of_the_headers(headers: dict[str, str]) -> None:
    # Any text, NUL, non-ASCII and lone surrogates included (json.dumps escapes those).
    written = headers_json(headers)
    assert written.isascii()
    assert json.loads(written) == headers
    assert list(json.loads(written)) == list(headers)  # the order is kept


@pytest.mark.parametrize("kind", KINDS)
async def test_headers_beyond_ascii_come_back_whole(kind: str, tmp_path: Path) -> None:
    # The fast path serializes ASCII headers; the rest are escaped, so a column in a
    # one-byte character set (MariaDB's latin1 default) still holds them.
    message = Message.create(
        b"{}", destination="orders", extra={"note": "caf\u00e9 \u2713 \U0001f600", "nul": "a\x00b"}
    )
    async with private_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            async with AsyncSession(engine) as session, session.begin():
                await write_messages(session, [message])
            async with engine.connect() as conn:
                stored = (await conn.execute(select(outbox.c.headers))).scalar_one()
            assert json.loads(stored) == message.headers.to_dict()
        finally:
            await engine.dispose()


@pytest.mark.parametrize("kind", KINDS)
async def test_sync_writer(kind: str, tmp_path: Path) -> None:
    async with private_database(kind, tmp_path) as url:
        engine = create_sync_engine(sync_url(url))
        try:
            with Session(engine) as session, session.begin():
                write_messages_sync(session, messages(4))
            with engine.begin() as conn:
                write_messages_sync(conn, messages(1))
            with engine.connect() as conn:
                assert conn.execute(select(func.count()).select_from(outbox)).scalar() == 5
        finally:
            engine.dispose()


async def test_delete_after_insert_leaves_the_table_empty() -> None:
    async with private_database("postgres") as url:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await write_messages(conn, messages(3), delete_after_insert=True)
            async with engine.connect() as conn:
                assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() == 0
        finally:
            await engine.dispose()


def test_dialects() -> None:
    assert dialect_of("postgresql://u@h/db") == "postgresql"
    assert dialect_of("mariadb://u@h/db") == "mysql"
    assert dialect_of("mysql://u@h/db") == "mysql"
    assert dialect_of("sqlite://") == "sqlite"
    assert str(sync_url("postgresql://u@h/db")).startswith("postgresql+psycopg2://")
    assert create_engine("mysql://u:pw@h/db").url.drivername == "mysql+aiomysql"
