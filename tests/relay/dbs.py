"""Private databases for relay tests: each test gets its own, created and dropped.

async with private_database("postgres") as url:
    engine = create_engine(url)
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from servicewire.storage.database import create_engine
from servicewire.storage.schema import all_tables_metadata
from tests.services import URLS, require

KINDS = ("sqlite", "postgres", "mariadb")


@contextlib.asynccontextmanager
async def private_database(kind: str, tmp: Path | None = None) -> AsyncIterator[str]:
    """A fresh database with the Servicewire tables; dropped afterwards."""
    url = await create_database(kind, tmp)
    try:
        yield url
    finally:
        await drop_database(kind, url)


async def create_database(kind: str, tmp: Path | None = None) -> str:
    """A new database with the Servicewire tables, for :func:`drop_database` to drop."""
    name = f"sw_relay_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        assert tmp is not None
        url = f"sqlite:///{tmp / (name + '.db')}"
        await _create_tables(url)
        return url
    require(kind)
    base = URLS[kind]
    admin = create_engine(base)
    try:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        await _create_tables(url)
    except BaseException:
        await drop_database(kind, url)
        raise
    return url


async def drop_database(kind: str, url: str) -> None:
    """Drop what :func:`create_database` made (a SQLite file goes with its directory)."""
    if kind == "sqlite":
        return
    name = make_url(url).database
    admin = create_engine(URLS[kind])
    try:
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            force = " WITH (FORCE)" if kind == "postgres" else ""
            await conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
    finally:
        await admin.dispose()


async def _create_tables(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(all_tables_metadata().create_all)
    finally:
        await engine.dispose()
