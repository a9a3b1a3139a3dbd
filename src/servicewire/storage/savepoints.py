"""Savepoints inside a batch transaction, at the driver's cost.

A batch runs each handler in a savepoint of its own: a plain ``SAVEPOINT`` before the
run and ``ROLLBACK TO SAVEPOINT`` if it fails (never released: ``COMMIT`` releases them
all). Sent through SQLAlchemy, each of these fixed texts went through its whole
execution machinery (and, on asyncpg, a prepared statement): a sixth of a handled
message's CPU in ``benchmarks/pipeline.py``. On asyncpg they go to the driver's
simple-query ``execute`` instead, on the very connection of the transaction; other
drivers keep ``exec_driver_sql``::

    savepoints = await Savepoints.on(conn)     # conn: the batch's AsyncConnection
    await savepoints.mark()
    try:
        await run_handler()
    except Exception:
        await savepoints.roll_back()

A connection that is gone raises :class:`sqlalchemy.exc.DisconnectionError` from the
driver's error, so :func:`~servicewire.storage.failures.is_infrastructure_error` tells it
from a statement that failed on its own, as for any statement SQLAlchemy ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from servicewire.storage.asyncpg_direct import AsyncpgDirect

SAVEPOINT = "SAVEPOINT servicewire_run"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT servicewire_run"


class Savepoints:
    """``SAVEPOINT`` / ``ROLLBACK TO SAVEPOINT`` on one transaction's connection."""

    __slots__ = ("_execute", "_gone")

    def __init__(
        self,
        execute: Callable[[str], Awaitable[Any]],
        gone: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._execute = execute
        self._gone = gone

    @classmethod
    async def on(cls, conn: AsyncConnection, direct: AsyncpgDirect | None = None) -> Savepoints:
        """The cheapest way to send savepoint statements on ``conn``'s transaction
        (``direct``: the transaction's asyncpg connection, when the caller has it)."""
        if direct is not None:
            return cls(direct.run)  # it translates errors as _send does
        if conn.dialect.driver == "asyncpg":
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            if driver is not None:
                import asyncpg

                gone = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError)
                return cls(driver.execute, gone)
        return cls(conn.exec_driver_sql)

    async def mark(self) -> None:
        """Open a savepoint (the newest one a later :meth:`roll_back` returns to)."""
        await self._send(SAVEPOINT)

    async def roll_back(self) -> None:
        """Undo everything since the newest :meth:`mark`."""
        await self._send(ROLLBACK_TO_SAVEPOINT)

    async def _send(self, statement: str) -> None:
        try:
            await self._execute(statement)
        except self._gone as exc:
            raise sa_exc.DisconnectionError(f"{statement}: {exc}") from exc
