"""A few open connections one worker reuses, transaction after transaction.

A pipeline runs one short transaction per batch, and at low load a batch is one message:
then checking a connection out of SQLAlchemy's pool and back in (the pool's bookkeeping,
its events, a new ``AsyncConnection``) costs about 70 µs of CPU per transaction, a
tenth of a whole delivery. Kept between transactions, the connection skips that::

    held = HeldConnections(engine, keep=2)
    async with held.connection() as conn, conn.begin():
        ...
    await held.close()      # before the engine is disposed: they are checked out

A connection goes back to the shelf only when its block ended normally and it is clean
(not in a transaction, not invalidated); after an error it is closed, so a connection
the server dropped is never offered twice. Connections older than ``max_age`` are closed
too, as the pool's ``pool_recycle`` would. SQLite keeps using the pool (its connections
are a thread each, and a file database has one writer anyway).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

DEFAULT_MAX_AGE = 300.0


class HeldConnections:
    """Up to ``keep`` idle connections of ``engine``, reused by :meth:`connection`."""

    __slots__ = ("_closed", "_engine", "_idle", "_keep", "_max_age")

    def __init__(self, engine: AsyncEngine, *, keep: int, max_age: float = DEFAULT_MAX_AGE):
        self._engine = engine
        # (connection, when it was opened): newest last, taken from the end.
        self._idle: list[tuple[AsyncConnection, float]] = []
        self._keep = keep if engine.dialect.name != "sqlite" else 0  # 0: the pool only
        self._max_age = max_age
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """An open connection: a held one if there is one, else a new one from the pool."""
        if self._idle:
            conn, opened = self._idle.pop()
        else:
            conn, opened = await self._engine.connect(), time.monotonic()
        reusable = False
        try:
            yield conn
            reusable = True
        finally:
            if (
                reusable
                and not self._closed
                and len(self._idle) < self._keep
                and not conn.invalidated
                and not conn.in_transaction()
                and time.monotonic() - opened < self._max_age
            ):
                self._idle.append((conn, opened))
            else:
                await conn.close()

    @property
    def idle(self) -> int:
        """How many connections are held now."""
        return len(self._idle)

    async def close(self) -> None:
        """Close the held connections; later blocks use the pool directly."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _opened in idle:
            with contextlib.suppress(Exception):  # a dead connection closes anyway
                await conn.close()
