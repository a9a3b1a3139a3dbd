"""A fresh database per test, for each dialect the pipeline supports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from servicewire.storage.database import create_engine
from tests import services

PG_BASE = services.URLS["postgres"].rsplit("/", 1)[0]
MARIADB_BASE = services.URLS["mariadb"].rsplit("/", 1)[0]


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
async def db(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A database URL: SQLite (temporary file), or a new PostgreSQL / MariaDB database."""
    if request.param == "sqlite":
        yield "sqlite://"
        return
    service = request.param
    services.require(service)
    name = f"sw_pipe_{uuid.uuid4().hex[:10]}"
    base = PG_BASE if service == "postgres" else MARIADB_BASE
    admin_db = "postgres" if service == "postgres" else ""
    admin = create_engine(f"{base}/{admin_db}", isolation_level="AUTOCOMMIT")
    quote = '"' if service == "postgres" else "`"
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {quote}{name}{quote}"))
    try:
        yield f"{base}/{name}"
    finally:
        drop = f"DROP DATABASE IF EXISTS {quote}{name}{quote}"
        if service == "postgres":
            drop += " WITH (FORCE)"
        async with admin.connect() as conn:
            await conn.execute(text(drop))
        await admin.dispose()
