"""An async SQLAlchemy driver for SQLite that runs sqlite3 calls inline on the loop.

aiosqlite gives every connection a thread and hops to it for each statement: about
2-3 ms per trivial transaction on a busy machine, while the statement itself takes
microseconds. This driver calls the standard :mod:`sqlite3` module directly on the
event-loop thread, inside SQLAlchemy's greenlet bridge, so a handled message costs a
few hundred microseconds instead of milliseconds. Blocking the loop that briefly is
cheaper than the hop.

The one wait that is not brief is another connection's write lock. SQLite's own busy
handler would sleep on the loop thread, and if the lock holder is a coroutine of the
same loop that sleep can never end. So connections here have no busy timeout: a
statement that finds the database locked gives the loop back (``asyncio.sleep``
through the greenlet bridge) and tries again, with a growing pause, until
:data:`BUSY_TIMEOUT` seconds have passed.

:func:`servicewire.storage.database.create_engine` picks this driver for ``sqlite://`` URLs;
``sqlite+aiosqlite://`` still selects aiosqlite explicitly::

    from servicewire.storage.database import create_engine

    engine = create_engine("sqlite:///orders.db")            # sqlite+inline
    engine = create_engine("sqlite+aiosqlite:///orders.db")  # threads, as before

Importing this module registers the dialect name ``sqlite+inline`` with SQLAlchemy,
so ``create_async_engine("sqlite+inline:///orders.db")`` works too.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import ConnectArgsType, DBAPICursor
from sqlalchemy.util.concurrency import in_greenlet

try:  # SQLAlchemy 2.1 renamed await_only to await_; 2.0 (our floor) has only the old name
    from sqlalchemy.util.concurrency import await_
except ImportError:  # pragma: no cover - exercised by make test-minimum
    from sqlalchemy.util.concurrency import await_only as await_

DRIVER = "inline"
"""The driver name in URLs: ``sqlite+inline://``."""

BUSY_TIMEOUT = 10.0
"""Seconds a statement keeps retrying while another connection holds the write lock."""

_FIRST_PAUSE = 0.0005
_MAX_PAUSE = 0.05

# SQLITE_BUSY and its extended codes that a retry can cure. SQLITE_BUSY_SNAPSHOT (517)
# is left out on purpose: a read transaction that lost the race to write stays stale,
# so only a new transaction helps; the pipeline's retry of the whole transaction does that.
_RETRYABLE = frozenset({5, 5 | (1 << 8), 5 | (3 << 8)})  # BUSY, BUSY_RECOVERY, BUSY_TIMEOUT

_T = TypeVar("_T")


def _retry_busy(call: Callable[[], _T]) -> _T:
    deadline = 0.0
    pause = _FIRST_PAUSE
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in _RETRYABLE:
                raise
            now = time.monotonic()
            if not deadline:
                deadline = now + BUSY_TIMEOUT
            elif now >= deadline:
                raise
            _pause(pause)
            pause = min(pause * 2, _MAX_PAUSE)


def _pause(seconds: float) -> None:
    # Inside SQLAlchemy's async bridge: hand the loop back so the lock holder can finish.
    # Outside it (a sync caller such as a pool finalizer): a plain sleep is all we have.
    if in_greenlet():
        await_(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


async def _nothing() -> None:
    return None


def _checkpoint() -> None:
    # AsyncConnection.execute insists that a driver awaited something (a guard against
    # sync drivers). Awaiting a coroutine that finishes at once satisfies it for the
    # price of two greenlet switches, without giving the loop away mid-transaction.
    if in_greenlet():
        await_(_nothing())


class InlineCursor(sqlite3.Cursor):
    """A :class:`sqlite3.Cursor` whose statements wait out a locked database politely."""

    def execute(self, sql: str, parameters: Any = (), /) -> InlineCursor:
        _checkpoint()
        return _retry_busy(lambda: super(InlineCursor, self).execute(sql, parameters))

    def executemany(self, sql: str, parameters: Any, /) -> InlineCursor:
        # Retrying is safe: a statement that met SQLITE_BUSY changed nothing, and an
        # iterator of parameters is materialised first so a retry sees every row.
        rows = parameters if isinstance(parameters, (list, tuple)) else list(parameters)
        _checkpoint()
        return _retry_busy(lambda: super(InlineCursor, self).executemany(sql, rows))

    async def _async_soft_close(self) -> None:
        # SQLAlchemy's async result asks adapted cursors to detach from their driver;
        # a sqlite3 cursor steps its rows lazily from memory, so there is nothing to do.
        return None


class InlineConnection(sqlite3.Connection):
    """A :class:`sqlite3.Connection` handing out :class:`InlineCursor` objects."""

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or InlineCursor)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def commit(self) -> None:
        # In WAL mode a commit can meet a checkpoint's lock; the transaction stays open.
        _retry_busy(super().commit)


class _InlineExecutionContext(SQLiteExecutionContext):
    def create_server_side_cursor(self) -> DBAPICursor:
        return self._dbapi_connection.cursor()


class SQLiteDialect_inline(SQLiteDialect_pysqlite):
    """pysqlite's dialect, declared async so ``create_async_engine`` accepts it."""

    driver = DRIVER
    is_async = True
    supports_statement_cache = True
    # A sqlite3 cursor already steps rows on demand, so it serves as the "server side"
    # cursor that AsyncConnection.stream() asks for.
    supports_server_side_cursors = True
    execution_ctx_cls = _InlineExecutionContext

    def create_connect_args(self, url: URL) -> ConnectArgsType:
        args, options = super().create_connect_args(url)
        options["factory"] = InlineConnection
        # No busy handler inside SQLite: it would sleep on the event-loop thread.
        options["timeout"] = 0
        # Connections are used on the loop thread, but the pool may close one from a
        # finalizer elsewhere, and an engine may serve a second loop (a test server).
        options.setdefault("check_same_thread", False)
        return args, options

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if cls._is_url_file_db(url):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inline")
