"""A batch's fixed statements straight on the asyncpg connection, without SQLAlchemy.

SQLAlchemy Core adds about 60 µs of CPU to every statement it runs on asyncpg (the
greenlet hop, the execution context, the result), more than asyncpg itself spends, and
its multi-row inserts grow with the row count. The delivery pipeline sends the same few
statements in every batch (the inbox claim, the outbox insert), so on asyncpg it sends
them on the batch's own driver connection, inside the transaction SQLAlchemy began (with
its first statement: SQLAlchemy sends ``BEGIN`` lazily). Lists travel as array parameters
(``unnest``), so the SQL text never changes and asyncpg prepares it once per connection::

    claimed = await inbox.claim_many(conn, group, ids)   # through SQLAlchemy: BEGIN
    direct = await AsyncpgDirect.on(conn)                # then, on PostgreSQL + asyncpg
    if direct is not None:
        await direct.run(INSERT_ROWS_SQL, *insert_rows_args(rows))

Errors come back as SQLAlchemy's, as if SQLAlchemy had run the statement: a lost
connection as :class:`sqlalchemy.exc.DisconnectionError` (so
:func:`~servicewire.storage.failures.is_infrastructure_error` tells it from a statement
that failed), a server that is shutting down or out of resources as
:class:`sqlalchemy.exc.OperationalError`, anything else as
:class:`sqlalchemy.exc.DatabaseError`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import ClauseElement
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

# SQLSTATE classes that say the server, not the statement, is the problem: connection
# exceptions, insufficient resources, operator intervention (shutdown, crash, recovery).
_SERVER_CLASSES = ("08", "53", "57")


@functools.cache
def _driver_errors() -> tuple[tuple[type[BaseException], ...], type[BaseException]]:
    """asyncpg's errors of an unusable connection, and its base server error (imported on
    first use: asyncpg is optional)."""
    import asyncpg

    # InternalClientError: the protocol met a message it did not expect, as when the
    # server ended the session while the connection sat idle. Unusable either way.
    gone = (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        ConnectionError,
    )
    return gone, asyncpg.PostgresError


async def _asyncpg_under(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``, or ``None`` on any other driver."""
    if conn.dialect.driver != "asyncpg":
        return None
    raw = await conn.get_raw_connection()
    return raw.driver_connection


class AsyncpgDirect:
    """Runs fixed statements on one transaction's asyncpg connection."""

    __slots__ = ("_driver",)

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    @classmethod
    async def on(cls, conn: AsyncConnection) -> AsyncpgDirect | None:
        """The driver connection under ``conn``, or ``None`` when it is not asyncpg.

        Call it after ``conn`` ran a statement in its transaction: SQLAlchemy sends
        ``BEGIN`` only with the first statement it runs, and a statement sent here
        before that would commit on its own. That mistake raises ``RuntimeError``.
        """
        driver = await _asyncpg_under(conn)
        if driver is None:
            return None
        if conn.in_transaction() and not driver.is_in_transaction():
            raise RuntimeError(
                "the transaction has not begun on the server yet: run a statement through "
                "SQLAlchemy first (it sends BEGIN with its first statement)"
            )
        return cls(driver)

    @classmethod
    async def begun(cls, conn: AsyncConnection) -> AsyncpgDirect | None:
        """As :meth:`on`, but ``None`` too while ``conn``'s transaction has not begun on
        the server: the caller then runs its statement through SQLAlchemy, which sends
        ``BEGIN`` with it (a unit of work whose first statement is its outbox insert)."""
        driver = await _asyncpg_under(conn)
        if driver is None or not driver.is_in_transaction():
            return None
        return cls(driver)

    @property
    def driver(self) -> Any:
        """The asyncpg connection (for :class:`~servicewire.storage.savepoints.Savepoints`)."""
        return self._driver

    async def column(self, sql: str, *args: Any) -> list[Any]:
        """The first column of every row ``sql`` returns."""
        try:
            return [row[0] for row in await self._driver.fetch(sql, *args)]
        except Exception as exc:
            raise self._translated(sql, exc) from exc

    async def rows(self, sql: str, *args: Any) -> list[Any]:
        """Every row ``sql`` returns (asyncpg records: by name or position)."""
        try:
            return list(await self._driver.fetch(sql, *args))
        except Exception as exc:
            raise self._translated(sql, exc) from exc

    async def run(self, sql: str, *args: Any) -> None:
        """Run ``sql``; its rows, if any, are not read."""
        try:
            await self._driver.execute(sql, *args)
        except Exception as exc:
            raise self._translated(sql, exc) from exc

    def _translated(self, sql: str, exc: Exception) -> Exception:
        gone, postgres_error = _driver_errors()
        if isinstance(exc, gone):
            return sa_exc.DisconnectionError(f"{sql.split(' ', 1)[0]}: {exc}")
        if isinstance(exc, postgres_error):
            state = str(getattr(exc, "sqlstate", "") or "")
            kind = sa_exc.OperationalError if state[:2] in _SERVER_CLASSES else sa_exc.DatabaseError
            return kind(sql, None, exc)
        return exc


class CompiledText:
    """A SQLAlchemy statement as the SQL text and parameter order asyncpg takes, compiled
    once: what SQLAlchemy itself would send for it, without its per-call machinery::

        claim = CompiledText(select(outbox).limit(500).with_for_update(), engine.dialect)
        rows = await direct.rows(claim.sql, *claim.args({}))

    Values go to asyncpg as given, with no SQLAlchemy type processing: only for
    statements whose parameters are numbers, text, or lists of those.
    """

    __slots__ = ("_defaults", "_names", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if dialect.paramstyle != "numeric_dollar":
            raise ValueError(f"{dialect.name}+{dialect.driver} does not take $n parameters")
        self.sql = str(compiled)
        self._names = list(compiled.positiontup or ())
        # Values fixed in the statement itself (constants, LIMIT): their bound values.
        self._defaults = {name: bind.effective_value for name, bind in compiled.binds.items()}

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for ``values`` (by bound-parameter name)."""
        defaults = self._defaults
        return [values[name] if name in values else defaults[name] for name in self._names]
