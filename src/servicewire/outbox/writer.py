"""Write outgoing messages into the outbox inside the caller's transaction.

The row commits exactly when the business change commits, so a crash can neither lose
a message of a committed change nor send one of a rolled-back change::

    async with session.begin():
        session.add(order)
        await write_messages(session, [order_created, validate_consumer])

    with sync_session.begin():                       # blocking code (Django-style apps)
        write_messages_sync(sync_session, [message])

The rows of one call travel as one multi-row ``INSERT`` (SQLAlchemy's
insertmanyvalues). ``delete_after_insert=True`` (PostgreSQL with the ``postgres-wal``
relay) deletes the rows again in the same transaction: the insert still reaches the
write-ahead log, which is all the WAL relay reads, and the table stays empty.

The delivery pipeline runs many handlers in one transaction (a batch). Each handler's
messages are written to a :class:`PendingRows` first (in the handler's own span and
savepoint), and the batch writes all of them with one statement before it commits::

    pending = PendingRows()
    await write_messages(pending, first_handlers_messages)
    await write_messages(pending, second_handlers_messages)
    await pending.flush(session)                       # one multi-row INSERT
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy import Connection, Insert, delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from servicewire.messaging.channels import DEFAULT_SHARDS, shard_for
from servicewire.messaging.message import Message
from servicewire.outbox.tables import outbox
from servicewire.storage.asyncpg_direct import AsyncpgDirect


def outbox_shard(message: Message, shards: int = DEFAULT_SHARDS) -> int:
    """The ``shard`` column of ``message``'s outbox row (its partition key's shard)."""
    return shard_for(message.partition_key, shards, message.id)


def headers_json(headers: dict[str, str]) -> str:
    """The ``headers`` column: a JSON object, ASCII only (``\\u`` escapes otherwise).

    ASCII because a MariaDB column may be in a one-byte character set; written by
    pydantic-core's serializer, five times faster than ``json.dumps``, when the result
    is ASCII already (nearly always); otherwise by ``json.dumps``, which escapes the rest.
    (Given a plain dict: pydantic-core walks any other mapping ten times slower.)
    """
    try:
        encoded = to_json(headers)
    except PydanticSerializationError:  # e.g. a lone surrogate, which UTF-8 cannot hold
        encoded = b""
    if encoded and encoded.isascii():
        return encoded.decode("ascii")
    return json.dumps(headers, separators=(",", ":"))


def outbox_rows(messages: Sequence[Message], shards: int = DEFAULT_SHARDS) -> list[dict[str, Any]]:
    """The outbox row values for ``messages`` (without ids: the database assigns them)."""
    now = time.time()
    rows = []
    for message in messages:
        key = message.partition_key
        rows.append(
            {
                "message_id": message.id,
                "destination": message.destination,
                "headers": headers_json(message.headers.to_dict()),
                "payload": message.payload,
                "partition_key": key,
                "shard": outbox_shard(message, shards),
                "created_at": now,
            }
        )
    return rows


# One compiled statement for every call; SQLAlchemy's "insertmanyvalues" sends a list
# of rows as multi-row INSERTs (up to 1,000 rows each), so the statement is cached and
# the rows still travel together.
_INSERT: Insert = outbox.insert()
_INSERT_RETURNING = outbox.insert().returning(outbox.c.id, sort_by_parameter_order=True)


# The columns outbox_rows fills, each with its PostgreSQL array type.
_ARRAYS = (
    ("message_id", "varchar[]"),
    ("destination", "varchar[]"),
    ("headers", "text[]"),
    ("payload", "bytea[]"),
    ("partition_key", "varchar[]"),
    ("shard", "smallint[]"),
    ("created_at", "float8[]"),
)
INSERTED_COLUMNS = tuple(name for name, _kind in _ARRAYS)


def _insert_rows_sql() -> str:
    """PostgreSQL, for asyncpg directly: one array per column, rows inserted in list
    order (ids ascend with it, and relays publish a key's rows in id order).

    (Our table and column names are plain lower-case identifiers: nothing to quote.)
    """
    names = ", ".join(INSERTED_COLUMNS)
    arrays = ", ".join(f"${i}::{kind}" for i, (_name, kind) in enumerate(_ARRAYS, 1))
    values = ", ".join(f"u.{name}" for name in INSERTED_COLUMNS)
    return (
        f"INSERT INTO {outbox.name} ({names}) SELECT {values} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS u({names}, ordinal) ORDER BY u.ordinal"
    )


INSERT_ROWS_SQL = _insert_rows_sql()


def insert_rows_args(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The parameters of :data:`INSERT_ROWS_SQL` for ``rows`` (of :func:`outbox_rows`)."""
    return [[row[name] for row in rows] for name in INSERTED_COLUMNS]


class PendingRows:
    """Outbox rows gathered from several units of work, to be written together."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def mark(self) -> int:
        """Where the rows stand now (to :meth:`rewind` to if a unit rolls back)."""
        return len(self.rows)

    def rewind(self, mark: int) -> None:
        """Drop the rows added since :meth:`mark` returned ``mark``."""
        del self.rows[mark:]

    async def flush(
        self, target: AsyncConnection | AsyncSession, *, direct: AsyncpgDirect | None = None
    ) -> int:
        """Insert every gathered row in ``target``'s transaction; returns how many.

        ``direct`` (the transaction's asyncpg connection) sends them without SQLAlchemy.
        """
        count = len(self.rows)
        if count:
            if direct is not None:
                await direct.run(INSERT_ROWS_SQL, *insert_rows_args(self.rows))
            else:
                await target.execute(_INSERT, self.rows)
            self.rows = []
        return count


async def write_messages(
    target: AsyncConnection | AsyncSession | PendingRows,
    messages: Sequence[Message],
    *,
    shards: int = DEFAULT_SHARDS,
    delete_after_insert: bool = False,
) -> None:
    """Add ``messages`` to the outbox in ``target``'s current transaction."""
    if not messages:
        return
    rows = outbox_rows(messages, shards)
    if isinstance(target, PendingRows):
        if delete_after_insert:
            raise ValueError("delete_after_insert needs a connection or session, not rows")
        target.rows.extend(rows)
        return
    result = await target.execute(_INSERT_RETURNING if delete_after_insert else _INSERT, rows)
    if delete_after_insert:
        ids = list(result.scalars())
        await target.execute(delete(outbox).where(outbox.c.id.in_(ids)))


def write_messages_sync(
    target: Connection | Session,
    messages: Sequence[Message],
    *,
    shards: int = DEFAULT_SHARDS,
    delete_after_insert: bool = False,
) -> None:
    """The blocking twin of :func:`write_messages`, for sync connections and sessions."""
    if not messages:
        return
    rows = outbox_rows(messages, shards)
    result = target.execute(_INSERT_RETURNING if delete_after_insert else _INSERT, rows)
    if delete_after_insert:
        ids = list(result.scalars())
        target.execute(delete(outbox).where(outbox.c.id.in_(ids)))
