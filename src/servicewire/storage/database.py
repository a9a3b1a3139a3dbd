"""Database engines from plain URLs, with the right async driver and sane defaults.

Users write the URL they know; Servicewire picks the driver (asyncpg, aiomysql,
aiosqlite) and tunes the pool. SQLite runs on aiosqlite: every statement, commit and
checkpoint runs on the connection's own thread, so a slow one never stalls the event
loop (the price, a thread hop per driver call, is measured by
``benchmarks/sqlite_driver.py``). SQLite gets WAL mode, ``synchronous=NORMAL`` and a
wait for the write lock (SQLite's busy handler, sleeping on that thread, not on the
loop), so a relay and the service can share one file::

    engine = create_engine("postgresql://postgres@127.0.0.1:5432/orders")
    engine = create_engine("mariadb://root@127.0.0.1:3306/orders")
    engine = create_engine("sqlite:///orders.db")        # a file
    engine = create_engine("sqlite://")                  # one shared in-memory database
    assert dialect_of(engine) == "sqlite"

TLS to PostgreSQL and MariaDB takes the shared options of :mod:`servicewire.security.tls`
(``tls_ca``, ``tls_cert``, ``tls_key`` ...): the server certificate and host name are
verified, and a server without TLS is refused rather than used in plaintext::

    engine = create_engine("postgresql://app:pw@db:5432/orders?tls_ca=/etc/ca.pem")

:func:`sync_url` gives the matching blocking-driver URL (psycopg2, pymysql, sqlite3) for
code that needs one, such as the log-tailing relays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool

from servicewire.errors import ServicewireError
from servicewire.security.tls import TLSConfig, TLSConfigError, split_tls_options
from servicewire.urls import redact

Dialect = Literal["postgresql", "mysql", "sqlite"]

_ASYNC_DRIVERS: dict[Dialect, str] = {
    "postgresql": "asyncpg",
    "mysql": "aiomysql",
    "sqlite": "aiosqlite",  # a thread per connection: the loop stays free
}
_SYNC_DRIVERS: dict[Dialect, str] = {
    "postgresql": "psycopg2",
    "mysql": "pymysql",
    "sqlite": "pysqlite",
}

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for the lock before giving up.

SQLite's busy handler does the waiting, on the aiosqlite connection's thread: the event
loop (and with it a lock holder of the same process) runs on meanwhile."""


class DatabaseError(ServicewireError):
    """A database URL is not understood, or the database refused what we asked."""


def _parse(url: str | URL) -> URL:
    try:
        return make_url(url) if isinstance(url, str) else url
    except Exception as exc:  # sqlalchemy raises ArgumentError with the URL in it
        text = redact(url) if isinstance(url, str) else repr(url)
        raise DatabaseError(f"invalid database URL {text!r}: {type(exc).__name__}") from None


def dialect_of(engine_or_url: AsyncEngine | str | URL | Any) -> Dialect:
    """``"postgresql"``, ``"mysql"`` (MySQL and MariaDB) or ``"sqlite"``."""
    if isinstance(engine_or_url, (str, URL)):
        name = _parse(engine_or_url).get_backend_name()
    else:
        name = engine_or_url.dialect.name
    if name in ("postgresql", "postgres"):
        return "postgresql"
    if name in ("mysql", "mariadb"):
        return "mysql"
    if name == "sqlite":
        return "sqlite"
    raise DatabaseError(f"unsupported database {name!r}: use postgresql, mysql/mariadb or sqlite")


def async_url(url: str | URL) -> URL:
    """``url`` with the async driver for its database."""
    parsed = _parse(url)
    dialect = dialect_of(parsed)
    return parsed.set(drivername=f"{dialect}+{_ASYNC_DRIVERS[dialect]}")


def sync_url(url: str | URL) -> URL:
    """``url`` with the blocking driver for its database (psycopg2, pymysql, sqlite3)."""
    parsed = _parse(url)
    dialect = dialect_of(parsed)
    return parsed.set(drivername=f"{dialect}+{_SYNC_DRIVERS[dialect]}")


def plain_url(engine_or_url: AsyncEngine | str | URL) -> str:
    """The URL without a driver suffix (``postgresql://...``), password included.

    For handing to other clients (psycopg2, pymysql); never log it, use ``redact``.
    """
    url = engine_or_url.url if isinstance(engine_or_url, AsyncEngine) else _parse(engine_or_url)
    dialect = dialect_of(url)
    return url.set(drivername=dialect).render_as_string(hide_password=False)


def display_url(engine_or_url: AsyncEngine | str | URL) -> str:
    """The URL for logs and messages: password hidden, driver suffix removed."""
    url = engine_or_url.url if isinstance(engine_or_url, AsyncEngine) else _parse(engine_or_url)
    return url.set(drivername=url.get_backend_name()).render_as_string(hide_password=True)


async def missing_tables(engine: AsyncEngine, names: Sequence[str]) -> list[str]:
    """Which of the tables ``names`` do not exist in the database."""

    def check(sync_conn: Any) -> list[str]:
        inspector = inspect(sync_conn)
        return [name for name in names if not inspector.has_table(name)]

    async with engine.connect() as conn:
        return await conn.run_sync(check)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (the relay) run while a writer (the service) commits.
    # synchronous=NORMAL: in WAL mode a commit no longer waits for an fsync (the WAL is
    # synced at checkpoints), and a power cut can lose the last commits but never
    # corrupts the file. The busy timeout is sqlite3's ``timeout`` (see create_engine).
    # No foreign_keys: Servicewire's tables declare no foreign keys.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def is_sqlite_memory(url: str | URL) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``:memory:``).

    ::

        assert is_sqlite_memory("sqlite+aiosqlite://")
        assert not is_sqlite_memory("sqlite:///orders.db")
    """
    parsed = _parse(url)
    return dialect_of(parsed) == "sqlite" and (parsed.database or "") in ("", ":memory:")


def _split_tls(url: URL) -> tuple[URL, TLSConfig | None]:
    """``url`` without its ``tls_*`` options, and the TLS settings they make."""
    query = {k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()}
    tls_query, rest = split_tls_options(query)
    if not tls_query:
        return url, None
    try:
        config = TLSConfig.from_query(tls_query)
    except TLSConfigError as exc:
        raise DatabaseError(f"TLS options of {display_url(url)!r}: {exc}") from None
    return url.set(query=rest), config


def create_engine(url: str | URL, **kw: Any) -> AsyncEngine:
    """An :class:`AsyncEngine` for a plain database URL.

    Keyword arguments go to :func:`sqlalchemy.ext.asyncio.create_async_engine` and
    override the defaults chosen here.
    """
    target, tls = _split_tls(async_url(url))
    dialect = dialect_of(target)
    options: dict[str, Any] = {}
    if tls is not None:
        if dialect == "sqlite":
            raise DatabaseError("tls_* options make no sense for SQLite")
        # asyncpg and aiomysql both take an SSLContext; with one they never fall back
        # to plaintext when the server declines TLS.
        options["connect_args"] = {"ssl": tls.client_context()}
    if dialect == "sqlite":
        # sqlite3's timeout is SQLite's busy handler: a writer that finds the file
        # locked sleeps and retries on the connection's thread, not on the loop.
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if is_sqlite_memory(target):
            # One in-memory database (one connection, one thread) shared by every user.
            options["poolclass"] = StaticPool
        else:
            # A pool of connections, each keeping its thread. SQLAlchemy before 2.0.38
            # gave aiosqlite files a NullPool: a new connection and thread per checkout.
            options["poolclass"] = AsyncAdaptedQueuePool
    else:
        # Relays hold a connection for a batch while the service writes; keep a few
        # spares. No pre-ping: it costs a round trip per transaction (~0.2 ms CPU and
        # ~0.4 ms here, docs/benchmarks.md). After a server restart the first statement
        # fails instead, SQLAlchemy then discards every older pooled connection, and the
        # pipeline and the relays retry that transaction; idle timeouts are met by
        # recycling. Pass pool_pre_ping=True where one failed request is not acceptable.
        options.update(pool_size=10, max_overflow=20, pool_pre_ping=False, pool_recycle=1800)
    options.update(kw)
    engine = _create_async_engine(target, **options)
    if dialect == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    if tls is not None and dialect == "mysql":
        event.listen(engine.sync_engine, "connect", _require_mysql_tls)
    return engine


def _require_mysql_tls(dbapi_connection: Any, _record: Any) -> None:
    # aiomysql quietly stays in plaintext when the server offers no TLS: refuse that.
    if not getattr(getattr(dbapi_connection, "_connection", None), "_secure", False):
        dbapi_connection.close()
        raise DatabaseError("TLS was required, but the MySQL/MariaDB server offers none")
