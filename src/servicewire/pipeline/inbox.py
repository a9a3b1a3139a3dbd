"""The inbox: ids of processed messages, which makes at-least-once delivery effectively once.

The delivery pipeline inserts ``(group, message id)`` in the same database transaction
as the handler's work. The insert and the work commit together or not at all, so a
redelivered message finds its id and is acknowledged without running the handler
again. Ids are kept for a retention window (default 7 days) that must exceed the
retry horizon, then cleaned by :func:`purge_expired`::

    async with session.begin():
        if not await claim(session, "billing", message.id):
            return                    # processed before: ack and skip
        ...                           # the handler's work, in this transaction

A batch of deliveries claims all its ids with one statement, and gives back the ids of
the messages whose handler failed before it commits::

    claimed = await claim_many(conn, "billing", ["m-1", "m-2", "m-3"])  # {"m-1", "m-3"}
    await release(conn, "billing", ["m-3"])        # m-3's handler failed: not processed
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Column, DateTime, Index, String, Table, bindparam, delete, func, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.expression import Executable

from servicewire.storage.schema import metadata

DEFAULT_RETENTION = timedelta(days=7)

inbox = Table(
    "servicewire_inbox",
    metadata,
    Column("consumer_group", String(200), primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    Index("ix_servicewire_inbox_processed_at", "processed_at"),
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Insert-or-ignore statements built once: SQLAlchemy then finds each compiled form in
# its cache by identity instead of building, coercing and hashing a new statement per
# message (that cost more than the insert itself on SQLite). Values go in as parameters.
_CLAIM: dict[str, Executable] = {
    "postgresql": pg_insert(inbox).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(inbox).on_conflict_do_nothing(),
    "mysql": mysql_insert(inbox).prefix_with("IGNORE"),
    "mariadb": mysql_insert(inbox).prefix_with("IGNORE"),
}


async def claim(session: AsyncSession | AsyncConnection, group: str, message_id: str) -> bool:
    """Record ``message_id`` as processed by ``group`` in the transaction of ``session``
    (an ORM session or a Core connection).

    Returns ``False`` when it was already recorded (a duplicate delivery). Uses the
    dialect's insert-or-ignore so a duplicate costs no exception and no savepoint.
    """
    values = {"consumer_group": group, "message_id": message_id, "processed_at": _utcnow()}
    if isinstance(session, AsyncConnection):
        dialect = session.dialect.name
    else:
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    stmt = _CLAIM.get(dialect)
    if stmt is None:  # any other database: plain insert, a duplicate raises
        try:
            async with session.begin_nested():
                await session.execute(inbox.insert().values(values))
            return True
        except IntegrityError:
            return False
    result = await session.execute(stmt, values)
    return bool(result.rowcount)  # type: ignore[attr-defined]


# The same, returning the ids actually inserted: a batch learns in one statement which
# of its messages are new. Only where the database returns rows from a multi-row insert
# that skipped some (PostgreSQL, SQLite 3.35+, MariaDB 10.5+); elsewhere each message
# claims its own id (claim_many returns None).
_CLAIM_MANY: dict[str, Executable] = {
    "postgresql": pg_insert(inbox).on_conflict_do_nothing().returning(inbox.c.message_id),
    "sqlite": sqlite_insert(inbox).on_conflict_do_nothing().returning(inbox.c.message_id),
    "mariadb": mysql_insert(inbox).prefix_with("IGNORE").returning(inbox.c.message_id),
}
_RELEASE = delete(inbox).where(
    inbox.c.consumer_group == bindparam("group"),
    inbox.c.message_id.in_(bindparam("ids", expanding=True)),
)


async def claim_many(
    conn: AsyncConnection, group: str, message_ids: Sequence[str]
) -> set[str] | None:
    """Claim ``message_ids`` for ``group`` at once; returns the ids that were new.

    ``None`` when the database cannot tell which rows a multi-row insert-or-ignore
    skipped: the caller then claims each id with :func:`claim`.
    """
    dialect = conn.dialect.name
    stmt = _CLAIM_MANY.get(dialect)
    if stmt is None or not message_ids:
        return None if stmt is None else set()
    now = _utcnow()
    if len(message_ids) == 1:
        # One id: the row count says it all, and a statement without RETURNING spares
        # building a result (a batch of one is every message at low load).
        [only] = message_ids
        values = {"consumer_group": group, "message_id": only, "processed_at": now}
        counted = await conn.execute(_CLAIM[dialect], values)
        return {only} if counted.rowcount else set()
    rows = [{"consumer_group": group, "message_id": i, "processed_at": now} for i in message_ids]
    result = await conn.execute(stmt, rows)
    return set(result.scalars())


async def release(conn: AsyncConnection, group: str, message_ids: Sequence[str]) -> None:
    """Remove claims made in this transaction (their handlers failed: not processed)."""
    if message_ids:
        await conn.execute(_RELEASE, {"group": group, "ids": list(message_ids)})


async def was_processed(session: AsyncSession, group: str, message_id: str) -> bool:
    """Whether ``group`` has recorded ``message_id`` (for tests and tools)."""
    stmt = select(func.count()).where(
        inbox.c.consumer_group == group, inbox.c.message_id == message_id
    )
    return bool((await session.execute(stmt)).scalar_one())


async def purge_expired(engine: AsyncEngine, retention: timedelta = DEFAULT_RETENTION) -> int:
    """Delete ids older than ``retention``; returns how many were removed."""
    cutoff = _utcnow() - retention
    async with engine.begin() as conn:
        result = await conn.execute(delete(inbox).where(inbox.c.processed_at < cutoff))
        return int(result.rowcount)


async def size(engine: AsyncEngine, group: str | None = None) -> int:
    """How many ids the inbox holds (for one group, or all)."""
    stmt = select(func.count()).select_from(inbox)
    if group is not None:
        stmt = stmt.where(inbox.c.consumer_group == group)
    async with engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())
