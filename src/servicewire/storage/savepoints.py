"""Savepoints inside a batch transaction, at the driver's cost.

A batch runs each handler in a savepoint of its own: a plain ``SAVEPOINT`` before the
run and ``ROLLBACK TO SAVEPOINT`` if it fails (never released: ``COMMIT`` releases them
all). Sent through SQLAlchemy, each of these fixed texts went through its whole
execution machinery (and, on asyncpg, a prepared statement): a sixth of a handled
message's CPU in ``benchmarks/pipeline.py``. On asyncpg they go to the driver's
simple-query ``execute`` instead, on the very connection of the transaction
(:class:`~servicewire.storage.asyncpg_direct.AsyncpgDirect`); other drivers keep
``exec_driver_sql``::

    savepoints = await Savepoints.on(conn)     # conn: the batch's AsyncConnection
    await savepoints.mark()
    try:
        await run_handler()
    except Exception:
        await savepoints.roll_back()

A connection that is gone raises :class:`sqlalchemy.exc.DisconnectionError` from the
driver's error (AsyncpgDirect translates it), so
:func:`~servicewire.storage.failures.is_infrastructure_error` tells it from a statement
that failed on its own, as for any statement SQLAlchemy ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from servicewire.storage.asyncpg_direct import AsyncpgDirect

SAVEPOINT = "SAVEPOINT servicewire_run"
ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT servicewire_run"


class Savepoints:
    """``SAVEPOINT`` / ``ROLLBACK TO SAVEPOINT`` on one transaction's connection."""

    __slots__ = ("_execute",)

    def __init__(self, execute: Callable[[str], Awaitable[Any]]) -> None:
        self._execute = execute

    @classmethod
    async def on(cls, conn: AsyncConnection, direct: AsyncpgDirect | None = None) -> Savepoints:
        """The cheapest way to send savepoint statements on ``conn``'s transaction, after
        its first statement (``direct``: the transaction's asyncpg connection, when the
        caller has it already). On asyncpg, :class:`AsyncpgDirect` sends them and reads
        its errors as SQLAlchemy's; other drivers go through ``exec_driver_sql``."""
        if direct is None:
            direct = await AsyncpgDirect.on(conn)
        return cls(direct.run if direct is not None else conn.exec_driver_sql)

    async def mark(self) -> None:
        """Open a savepoint (the newest one a later :meth:`roll_back` returns to)."""
        await self._send(SAVEPOINT)

    async def roll_back(self) -> None:
        """Undo everything since the newest :meth:`mark`."""
        await self._send(ROLLBACK_TO_SAVEPOINT)

    async def _send(self, statement: str) -> None:
        await self._execute(statement)
